//! The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`, so every committed
//! transaction survives a crash or power loss. Readers use a small pool; writes go through one
//! connection so they queue in-process rather than contend for the file lock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::Executor;

use super::sql::{Dialect, SqlStore, LAST_USED_UPSERT};
use super::{EventLog, StoreResult};
use crate::model::{LastUse, NewVerification};

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
    let path = path.to_path_buf();
    Ok(
        SqlStore::new(Dialect::sqlite(), reader, writer).with_event_log(Box::new(move || {
            Ok(Box::new(SqliteEventLog::open(&path)?) as Box<dyn EventLog>)
        })),
    )
}

/// The event writer's own connection. Verification events are analytics, so its commits use
/// `synchronous=NORMAL`: in WAL mode that survives a crash of the process and costs no fsync per
/// batch; only a power loss can take the last batches with it.
pub struct SqliteEventLog {
    conn: rusqlite::Connection,
    /// The insert of [`ROWS_PER_INSERT`] rows, and of one.
    insert_many: String,
    insert_one: String,
    upsert_last_used: String,
}

impl SqliteEventLog {
    pub fn open(path: &Path) -> StoreResult<Self> {
        let conn = rusqlite::Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
        )?;
        Ok(SqliteEventLog {
            conn,
            insert_many: insert_sql(ROWS_PER_INSERT),
            insert_one: insert_sql(1),
            upsert_last_used: format!(
                "INSERT INTO key_last_used (key_id, time_m) VALUES (?1, ?2){}",
                LAST_USED_UPSERT
            ),
        })
    }
}

/// Rows per multi-row `INSERT`: one statement step per this many events rather than per event.
const ROWS_PER_INSERT: usize = 32;

const INSERT_HEAD: &str = "INSERT INTO key_verifications (request_id, time_m, workspace_id, api_id, \
                           key_space_id, key_id, identity_id, outcome, tags, spent_credits, latency_us) VALUES ";

/// `INSERT ... VALUES (?, ...), ...` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(INSERT_HEAD);
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    }
    sql
}

fn bind_row(
    statement: &mut rusqlite::CachedStatement<'_>,
    offset: usize,
    r: &NewVerification<'_>,
) -> rusqlite::Result<()> {
    statement.raw_bind_parameter(offset + 1, r.request_id)?;
    statement.raw_bind_parameter(offset + 2, r.time_ms)?;
    statement.raw_bind_parameter(offset + 3, r.workspace_id)?;
    statement.raw_bind_parameter(offset + 4, r.api_id)?;
    statement.raw_bind_parameter(offset + 5, r.key_space_id)?;
    statement.raw_bind_parameter(offset + 6, r.key_id)?;
    statement.raw_bind_parameter(offset + 7, r.identity_id)?;
    statement.raw_bind_parameter(offset + 8, r.outcome)?;
    statement.raw_bind_parameter(offset + 9, r.tags)?;
    statement.raw_bind_parameter(offset + 10, r.spent_credits)?;
    statement.raw_bind_parameter(offset + 11, r.latency_us)?;
    Ok(())
}

impl EventLog for SqliteEventLog {
    fn append(&mut self, rows: &[NewVerification<'_>]) -> StoreResult<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            for chunk in rows.chunks(ROWS_PER_INSERT) {
                if chunk.len() == ROWS_PER_INSERT {
                    let mut insert = tx.prepare_cached(&self.insert_many)?;
                    for (i, r) in chunk.iter().enumerate() {
                        bind_row(&mut insert, i * 11, r)?;
                    }
                    insert.raw_execute()?;
                } else {
                    let mut insert = tx.prepare_cached(&self.insert_one)?;
                    for r in chunk {
                        bind_row(&mut insert, 0, r)?;
                        insert.raw_execute()?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn touch_last_used(&mut self, uses: &[LastUse<'_>]) -> StoreResult<()> {
        // One transaction: the event writer hands over a sorted chunk at a time, so it rewrites a
        // run of neighbouring pages and holds the write lock briefly.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut upsert = tx.prepare_cached(&self.upsert_last_used)?;
            for used in uses {
                upsert.execute(rusqlite::params![used.key_id, used.time_ms])?;
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
