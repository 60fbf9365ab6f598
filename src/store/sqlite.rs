//! The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`, so every committed
//! transaction survives a crash or power loss. Readers use a small pool; writes go through one
//! connection so they queue in-process rather than contend for the file lock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::Executor;

use super::sql::SqlStore;
use super::{EventLog, NewVerification, StoreResult};

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
    let mut store = SqlStore::new("sqlite", reader, writer, "BEGIN IMMEDIATE", "", true);
    store.sqlite_path = Some(path.to_path_buf());
    Ok(store)
}

/// The event writer's own connection. Verification events are analytics, so its commits use
/// `synchronous=NORMAL`: in WAL mode that survives a crash of the process and costs no fsync per
/// batch; only a power loss can take the last batches with it.
pub struct SqliteEventLog {
    conn: rusqlite::Connection,
}

impl SqliteEventLog {
    pub fn open(path: &Path) -> StoreResult<Self> {
        let conn = rusqlite::Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
        )?;
        Ok(SqliteEventLog { conn })
    }
}

impl EventLog for SqliteEventLog {
    fn append(&mut self, rows: &[NewVerification<'_>]) -> StoreResult<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO key_verifications (request_id, time_m, workspace_id, api_id, key_space_id, key_id, \
                 identity_id, outcome, tags, spent_credits, latency_us) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for r in rows {
                insert.execute(rusqlite::params![
                    r.request_id,
                    r.time_ms,
                    r.workspace_id,
                    r.api_id,
                    r.key_space_id,
                    r.key_id,
                    r.identity_id,
                    r.outcome,
                    r.tags,
                    r.spent_credits,
                    r.latency_us,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
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
