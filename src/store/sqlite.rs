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
use super::sqlite_keys::SqliteSimpleKeys;
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
            // A connection to a local file does not go stale, and sqlx's check before handing
            // one out is a round trip to the connection's worker thread on every acquire.
            .test_before_acquire(false)
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
    let simple_keys = SqliteSimpleKeys::open(path, PRAGMAS)?;
    let path = path.to_path_buf();
    let log_path = path.clone();
    Ok(SqlStore::new(
        Dialect::sqlite(),
        reader,
        writer,
        Some(Box::new(simple_keys)),
    )
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

/// A parameter's value, as the event log binds it.
#[derive(Clone, Copy)]
enum Param<'a> {
    Int(i64),
    Text(&'a str),
    Null,
}

impl PartialEq for Param<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Param::Int(a), Param::Int(b)) => a == b,
            // The same text (a busy key's ids, the region) is most often the very same string.
            (Param::Text(a), Param::Text(b)) => std::ptr::eq(*a, *b) || a == b,
            (Param::Null, Param::Null) => true,
            _ => false,
        }
    }
}

impl From<i64> for Param<'_> {
    fn from(value: i64) -> Self {
        Param::Int(value)
    }
}

impl From<bool> for Param<'_> {
    fn from(value: bool) -> Self {
        Param::Int(i64::from(value))
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(value: &'a str) -> Self {
        Param::Text(value)
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(value: Option<&'a str>) -> Self {
        value.map_or(Param::Null, Param::Text)
    }
}

/// A prepared statement and what each of its parameters holds. SQLite keeps a parameter's value
/// across executions, and binding text copies it, so a value equal to the one already bound is
/// not bound again. Most columns of consecutive events repeat (the workspace, the region, the
/// source, the outcome, the tags; every key id of a busy key), which halves the binding work of a
/// batch.
struct Bound<'t, 'a> {
    statement: rusqlite::CachedStatement<'t>,
    /// Indexed by parameter number - 1; `None` until bound. A statement taken from the cache has
    /// its bindings cleared, so it starts all `None`.
    held: Vec<Option<Param<'a>>>,
}

impl<'t, 'a> Bound<'t, 'a> {
    fn new(statement: rusqlite::CachedStatement<'t>) -> Self {
        let held = vec![None; statement.parameter_count()];
        Bound { statement, held }
    }

    /// Binds `values` to the parameters from `offset + 1` on.
    fn bind(&mut self, offset: usize, values: &[Param<'a>]) -> rusqlite::Result<()> {
        for (i, &value) in values.iter().enumerate() {
            let slot = &mut self.held[offset + i];
            if *slot == Some(value) {
                continue;
            }
            let index = offset + i + 1;
            match value {
                Param::Int(n) => self.statement.raw_bind_parameter(index, n)?,
                Param::Text(text) => self.statement.raw_bind_parameter(index, text)?,
                Param::Null => self
                    .statement
                    .raw_bind_parameter(index, rusqlite::types::Null)?,
            }
            *slot = Some(value);
        }
        Ok(())
    }

    fn execute(&mut self) -> rusqlite::Result<()> {
        self.statement.raw_execute().map(drop)
    }
}

/// Inserts `rows` through the many-row statement in runs of [`ROWS_PER_INSERT`], the rest one
/// by one. Each statement is taken from the cache once per call, not once per run: returning it
/// clears its bindings, which frees every bound string, so each run would bind them all anew
/// (and look the long statement text up again).
fn insert_rows<'a, T, const N: usize>(
    tx: &rusqlite::Transaction<'_>,
    statements: &[String; 2],
    rows: &'a [T],
    values: impl Fn(&'a T) -> [Param<'a>; N],
) -> rusqlite::Result<()> {
    let mut runs = rows.chunks_exact(ROWS_PER_INSERT);
    if runs.len() > 0 {
        let mut insert = Bound::new(tx.prepare_cached(&statements[0])?);
        for run in runs.by_ref() {
            for (i, r) in run.iter().enumerate() {
                insert.bind(i * N, &values(r))?;
            }
            insert.execute()?;
        }
    }
    let rest = runs.remainder();
    if !rest.is_empty() {
        let mut insert = Bound::new(tx.prepare_cached(&statements[1])?);
        for r in rest {
            insert.bind(0, &values(r))?;
            insert.execute()?;
        }
    }
    Ok(())
}

/// Upserts `rows`, each through the statement of its table (`table_of` indexes `sql`): each
/// statement is taken from the cache on first use and held to the end (see [`insert_rows`]).
fn upsert_rows<'a, T, const N: usize>(
    tx: &rusqlite::Transaction<'_>,
    sql: &[String],
    rows: &'a [T],
    table_of: impl Fn(&T) -> usize,
    values: impl Fn(&'a T) -> [Param<'a>; N],
) -> rusqlite::Result<()> {
    let mut held: Vec<Option<Bound<'_, 'a>>> = sql.iter().map(|_| None).collect();
    for r in rows {
        let table = table_of(r);
        let upsert = match &mut held[table] {
            Some(upsert) => upsert,
            empty => empty.insert(Bound::new(tx.prepare_cached(&sql[table])?)),
        };
        upsert.bind(0, &values(r))?;
        upsert.execute()?;
    }
    Ok(())
}

impl EventLog for SqliteEventLog {
    fn append(&mut self, batch: &EventBatch<'_>) -> StoreResult<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        insert_rows(
            &tx,
            &self.verifications,
            &batch.verifications,
            |r| -> [Param<'_>; VERIFICATION_COLUMNS] {
                [
                    r.request_id.into(),
                    r.time_ms.into(),
                    r.workspace_id.into(),
                    r.api_id.into(),
                    r.key_space_id.into(),
                    r.key_id.into(),
                    r.identity_id.into(),
                    r.outcome.into(),
                    r.tags.into(),
                    r.spent_credits.into(),
                    r.latency_us.into(),
                    r.external_id.into(),
                    r.region.into(),
                    r.source.into(),
                ]
            },
        )?;
        insert_rows(
            &tx,
            &self.ratelimits,
            &batch.ratelimits,
            |r| -> [Param<'_>; RATELIMIT_COLUMNS] {
                [
                    r.request_id.into(),
                    r.time_ms.into(),
                    r.workspace_id.into(),
                    r.namespace_id.into(),
                    r.identifier.into(),
                    r.passed.into(),
                    r.latency_us.into(),
                    r.override_id.into(),
                    r.limit.into(),
                    r.remaining.into(),
                    r.reset_at_ms.into(),
                    r.tokens.into(),
                ]
            },
        )?;
        upsert_rows(
            &tx,
            &self.verification_counts,
            &batch.verification_counts,
            |c| c.granularity as usize,
            |c| -> [Param<'_>; VERIFICATION_COUNT_COLUMNS] {
                [
                    c.workspace_id.into(),
                    c.time_ms.into(),
                    c.key_space_id.into(),
                    c.key_id.into(),
                    c.identity_id.into(),
                    c.external_id.into(),
                    c.outcome.into(),
                    c.source.into(),
                    c.tags.into(),
                    c.count.into(),
                    c.spent_credits.into(),
                ]
            },
        )?;
        upsert_rows(
            &tx,
            &self.ratelimit_counts,
            &batch.ratelimit_counts,
            |c| c.granularity as usize,
            |c| -> [Param<'_>; RATELIMIT_COUNT_COLUMNS] {
                [
                    c.workspace_id.into(),
                    c.time_ms.into(),
                    c.namespace_id.into(),
                    c.identifier.into(),
                    c.passed.into(),
                    c.total.into(),
                    c.passed_tokens.into(),
                    c.total_tokens.into(),
                ]
            },
        )?;
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
