//! The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`, so every committed
//! transaction survives a crash or power loss. Readers use a small pool; writes go through one
//! connection so they queue in-process rather than contend for the file lock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::Executor;

use super::sql::SqlStore;
use super::StoreResult;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Pragmas for every connection. `busy_timeout` lets other processes (the CLI, a second server)
/// wait for the write lock instead of failing.
const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                       PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;";

/// The file path of a `sqlite:` URL (`sqlite:///abs/file.db`, `sqlite://rel/file.db`,
/// `sqlite:file.db`), or `None` when the URL is not SQLite's.
pub fn path_from_url(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// Opens the database file (creating it and its folder if needed) and migrates it.
pub async fn connect(path: &Path) -> StoreResult<SqlStore> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let options = || {
        AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(PRAGMAS).await?;
                    Ok(())
                })
            })
    };
    let writer = options().max_connections(1).connect(&url).await?;
    MIGRATOR.run(&writer).await?;
    let reader = options().max_connections(8).connect(&url).await?;
    Ok(SqlStore::new(
        "sqlite",
        reader,
        writer,
        "BEGIN IMMEDIATE",
        "",
        true,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            path_from_url("sqlite:///abs/k.db"),
            Some(PathBuf::from("/abs/k.db"))
        );
        assert_eq!(
            path_from_url("sqlite://rel/k.db?mode=rwc"),
            Some(PathBuf::from("rel/k.db"))
        );
        assert_eq!(path_from_url("sqlite:k.db"), Some(PathBuf::from("k.db")));
        assert_eq!(path_from_url("sqlite://"), None);
        assert_eq!(path_from_url("postgres://x"), None);
    }
}
