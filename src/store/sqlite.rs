//! The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`, so every committed
//! transaction survives a crash or power loss. Readers use a small pool; writes go through one
//! connection so they queue in-process rather than contend for the file lock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::Executor;

use super::sql::{
    ratelimit_count_head, ratelimit_count_tail, verification_count_head, verification_count_tail,
    Dialect, SqlStore, LAST_USED_UPSERT, RATELIMIT_COLUMNS, RATELIMIT_COUNT_COLUMNS,
    RATELIMIT_INSERT, VERIFICATION_COLUMNS, VERIFICATION_COUNT_COLUMNS, VERIFICATION_INSERT,
};
use super::{EventLog, StoreResult};
use crate::model::{EventBatch, Granularity, LastUse};

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
    create_private(path)?;
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
    let log_path = path.clone();
    Ok(SqlStore::new(Dialect::sqlite(), reader, writer)
        .with_event_log(Box::new(move || {
            Ok(Box::new(SqliteEventLog::open(&log_path)?) as Box<dyn EventLog>)
        }))
        .with_sqlite_analytics(path))
}

/// Creates what does not exist yet of the database's folder (mode `0700`) and file (`0600`), so
/// that hashes, audit logs and analytics are readable by the server's user alone, whatever the
/// umask. SQLite gives the `-wal` and `-shm` files it creates later the database file's mode.
/// An existing folder or file keeps the mode the operator gave it.
fn create_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        builder.mode(0o700);
        builder.create(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

/// The event writer's own connection. Analytics events are not worth an fsync each, so its
/// commits use `synchronous=NORMAL`: in WAL mode that survives a crash of the process; only a power
/// loss can take the last batches with it.
pub struct SqliteEventLog {
    conn: rusqlite::Connection,
    /// Each statement's text, built once: `[0]` for [`ROWS_PER_INSERT`] rows, `[1]` for one.
    verifications: [String; 2],
    ratelimits: [String; 2],
    /// One upsert per rollup table, indexed by `Granularity as usize`.
    verification_counts: Vec<String>,
    ratelimit_counts: Vec<String>,
    upsert_last_used: String,
}

impl SqliteEventLog {
    pub fn open(path: &Path) -> StoreResult<Self> {
        let conn = rusqlite::Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
        )?;
        let insert = |head: &str, columns: usize| {
            [
                values(head, ROWS_PER_INSERT, columns),
                values(head, 1, columns),
            ]
        };
        Ok(SqliteEventLog {
            conn,
            verifications: insert(VERIFICATION_INSERT, VERIFICATION_COLUMNS),
            ratelimits: insert(RATELIMIT_INSERT, RATELIMIT_COLUMNS),
            verification_counts: Granularity::ALL
                .iter()
                .map(|&g| {
                    values(&verification_count_head(g), 1, VERIFICATION_COUNT_COLUMNS)
                        + &verification_count_tail(g)
                })
                .collect(),
            ratelimit_counts: Granularity::ALL
                .iter()
                .map(|&g| {
                    values(&ratelimit_count_head(g), 1, RATELIMIT_COUNT_COLUMNS)
                        + &ratelimit_count_tail(g)
                })
                .collect(),
            upsert_last_used: format!(
                "INSERT INTO key_last_used (key_id, time_m) VALUES (?1, ?2){}",
                LAST_USED_UPSERT
            ),
        })
    }
}

/// Rows per multi-row `INSERT`: one statement step per this many events rather than per event.
const ROWS_PER_INSERT: usize = 32;

/// `head` followed by `rows` rows of `columns` anonymous parameters.
fn values(head: &str, rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    let mut sql = String::from(head);
    sql.push_str(&vec![row; rows].join(", "));
    sql
}

fn bind_all(
    statement: &mut rusqlite::CachedStatement<'_>,
    offset: usize,
    values: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<()> {
    for (i, value) in values.iter().enumerate() {
        statement.raw_bind_parameter(offset + i + 1, value)?;
    }
    Ok(())
}

/// Inserts `rows` through the many-row statement in runs of [`ROWS_PER_INSERT`], the rest one
/// by one. Each statement is taken from the cache once per call, not once per run: returning it
/// clears its bindings, which frees every bound string, so each run would allocate them anew
/// (and look the long statement text up again).
fn insert_rows<T>(
    tx: &rusqlite::Transaction<'_>,
    statements: &[String; 2],
    columns: usize,
    rows: &[T],
    bind: impl Fn(&mut rusqlite::CachedStatement<'_>, usize, &T) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let mut runs = rows.chunks_exact(ROWS_PER_INSERT);
    if runs.len() > 0 {
        let mut insert = tx.prepare_cached(&statements[0])?;
        for run in runs.by_ref() {
            for (i, r) in run.iter().enumerate() {
                bind(&mut insert, i * columns, r)?;
            }
            insert.raw_execute()?;
        }
    }
    let rest = runs.remainder();
    if !rest.is_empty() {
        let mut insert = tx.prepare_cached(&statements[1])?;
        for r in rest {
            bind(&mut insert, 0, r)?;
            insert.raw_execute()?;
        }
    }
    Ok(())
}

/// Statements of a set (one per rollup table), each taken from the cache on first use and held
/// until the set is dropped.
struct Statements<'t, 's> {
    tx: &'t rusqlite::Transaction<'t>,
    sql: &'s [String],
    held: Vec<Option<rusqlite::CachedStatement<'t>>>,
}

impl<'t, 's> Statements<'t, 's> {
    fn new(tx: &'t rusqlite::Transaction<'t>, sql: &'s [String]) -> Self {
        Statements {
            tx,
            sql,
            held: sql.iter().map(|_| None).collect(),
        }
    }

    fn get(&mut self, i: usize) -> rusqlite::Result<&mut rusqlite::CachedStatement<'t>> {
        let (Some(slot), Some(sql)) = (self.held.get_mut(i), self.sql.get(i)) else {
            return Err(rusqlite::Error::InvalidParameterCount(i, self.sql.len()));
        };
        match slot {
            Some(statement) => Ok(statement),
            empty => Ok(empty.insert(self.tx.prepare_cached(sql)?)),
        }
    }
}

impl EventLog for SqliteEventLog {
    fn append(&mut self, batch: &EventBatch<'_>) -> StoreResult<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        insert_rows(
            &tx,
            &self.verifications,
            VERIFICATION_COLUMNS,
            &batch.verifications,
            |statement, offset, r| {
                bind_all(
                    statement,
                    offset,
                    &[
                        &r.request_id,
                        &r.time_ms,
                        &r.workspace_id,
                        &r.api_id,
                        &r.key_space_id,
                        &r.key_id,
                        &r.identity_id,
                        &r.outcome,
                        &r.tags,
                        &r.spent_credits,
                        &r.latency_us,
                        &r.external_id,
                        &r.region,
                        &r.source,
                    ],
                )
            },
        )?;
        insert_rows(
            &tx,
            &self.ratelimits,
            RATELIMIT_COLUMNS,
            &batch.ratelimits,
            |statement, offset, r| {
                bind_all(
                    statement,
                    offset,
                    &[
                        &r.request_id,
                        &r.time_ms,
                        &r.workspace_id,
                        &r.namespace_id,
                        &r.identifier,
                        &r.passed,
                        &r.latency_us,
                        &r.override_id,
                        &r.limit,
                        &r.remaining,
                        &r.reset_at_ms,
                        &r.tokens,
                    ],
                )
            },
        )?;
        // One statement per rollup table, each taken from the cache once (see `insert_rows`).
        let mut upserts = Statements::new(&tx, &self.verification_counts);
        for c in &batch.verification_counts {
            let upsert = upserts.get(c.granularity as usize)?;
            bind_all(
                upsert,
                0,
                &[
                    &c.workspace_id,
                    &c.time_ms,
                    &c.key_space_id,
                    &c.key_id,
                    &c.identity_id,
                    &c.external_id,
                    &c.outcome,
                    &c.source,
                    &c.tags,
                    &c.count,
                    &c.spent_credits,
                ],
            )?;
            upsert.raw_execute()?;
        }
        drop(upserts);
        let mut upserts = Statements::new(&tx, &self.ratelimit_counts);
        for c in &batch.ratelimit_counts {
            let upsert = upserts.get(c.granularity as usize)?;
            bind_all(
                upsert,
                0,
                &[
                    &c.workspace_id,
                    &c.time_ms,
                    &c.namespace_id,
                    &c.identifier,
                    &c.passed,
                    &c.total,
                    &c.passed_tokens,
                    &c.total_tokens,
                ],
            )?;
            upsert.raw_execute()?;
        }
        drop(upserts);
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
