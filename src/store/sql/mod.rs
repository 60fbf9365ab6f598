//! The SQL both backends run, on sqlx's `Any` driver: [`SqlStore`] implements every role trait of
//! [`super::Store`], one file per role, and the few places where SQLite and PostgreSQL differ are
//! read from its [`Dialect`].
//!
//! The statements here are the common subset of SQLite and PostgreSQL: `$N` placeholders, 0/1
//! integer flags, text JSON, `ON CONFLICT`. Writes go through `SqlStore::begin`, which on SQLite
//! is a single connection opened with `BEGIN IMMEDIATE`, so writers queue in-process instead of
//! failing with `SQLITE_BUSY`.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};
use tokio::sync::mpsc;

use super::{EventLog, StoreResult};
use crate::model::audit::AuditEvent;
use crate::model::ChangeKind;

mod admin;
mod analytics;
mod analytics_udf;
pub use analytics_udf::register_sqlite_functions;
mod apis;
mod audit;
pub use audit::chain_hash;
pub(in crate::store) use audit::{
    chain_events, HEAD_ADVANCE, HEAD_SET_HASH, LOG_COLUMNS, LOG_INSERT, TARGET_COLUMNS,
    TARGET_INSERT,
};
mod changes;
mod credits;
mod events;
mod group_commit;
pub use group_commit::SimpleKeyWriter;
mod identities;
pub(in crate::store) use identities::{IDENTITY_ID, IDENTITY_INSERT_IF_ABSENT};
mod keys;
pub(in crate::store) use keys::{KEY_COLUMNS, KEY_INSERT};
mod limits;
mod migrations;
mod rbac;
mod sessions;
mod vault;

pub(in crate::store) use events::{
    ratelimit_count_head, ratelimit_count_tail, verification_count_head, verification_count_tail,
    LAST_USED_UPSERT, RATELIMIT_COLUMNS, RATELIMIT_COUNT_COLUMNS, RATELIMIT_INSERT,
    VERIFICATION_COLUMNS, VERIFICATION_COUNT_COLUMNS, VERIFICATION_INSERT,
};

/// The cursor of a listing's first page: the empty string sorts before every id and name (in
/// any collation), so a page is always `col >= $n`, an index range. (An optional test,
/// `$n IS NULL OR col >= $n`, hides the range from the planner: every page would scan from the
/// first row.)
pub(super) const FIRST: &str = "";

/// What differs between the SQL backends, as a value: everything else is shared SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// Which backend this is, for logs (`sqlite` or `postgres`).
    pub name: &'static str,
    /// The statement that opens a write transaction. SQLite's `BEGIN IMMEDIATE` takes the write
    /// lock at once, so a transaction that reads before it writes cannot fail to upgrade its lock.
    pub begin_write: &'static str,
    /// Appended to a SELECT that must lock its rows until the transaction ends (PostgreSQL's
    /// `FOR UPDATE`; SQLite's write transactions already exclude each other).
    pub for_update: &'static str,
    /// Whether placeholders of very large statements may be anonymous (`?`). SQLite looks up the
    /// name of every numbered placeholder in a list, which makes binding a statement with
    /// thousands of `$N`s quadratic; PostgreSQL only understands `$N`.
    pub anonymous_params: bool,
    /// Whether change-feed sequence numbers become visible in order (see
    /// [`super::ChangeStore::changes_are_ordered`]). SQLite has one writer at a time (across
    /// processes too): a transaction takes its sequence number only after every earlier one has
    /// committed or rolled back. PostgreSQL's sequences hand out numbers to concurrent
    /// transactions that may commit in another order.
    pub ordered_changes: bool,
    /// Appended to a text column so that it compares byte by byte, as its prefix indexes are
    /// built (SQLite's default collation already does).
    pub byte_order: &'static str,
}

impl Dialect {
    /// The embedded backend.
    pub const fn sqlite() -> Self {
        Dialect {
            name: "sqlite",
            begin_write: "BEGIN IMMEDIATE",
            for_update: "",
            anonymous_params: true,
            ordered_changes: true,
            byte_order: "",
        }
    }

    /// The shared backend.
    pub const fn postgres() -> Self {
        Dialect {
            name: "postgres",
            begin_write: "BEGIN",
            for_update: " FOR UPDATE",
            anonymous_params: false,
            ordered_changes: false,
            byte_order: " COLLATE \"C\"",
        }
    }
}

/// Opens a dedicated synchronous [`EventLog`] (a connection of its own), for backends that have
/// one; see [`super::EventStore::event_log`].
pub type EventLogOpener = Box<dyn Fn() -> StoreResult<Box<dyn EventLog>> + Send + Sync>;

/// A store over one reader pool and one writer pool (the same pool on PostgreSQL).
pub struct SqlStore {
    dialect: Dialect,
    reader: AnyPool,
    writer: AnyPool,
    /// Key inserts waiting to be committed together (see [`SqlStore::new`]).
    key_inserts: mpsc::Sender<group_commit::KeyInsert>,
    /// Opens the event writer's own connection, where the backend offers one.
    event_log: Option<EventLogOpener>,
    /// Read-only connections for analytics queries, on SQLite (PostgreSQL uses the pool).
    analytics: Option<std::sync::Arc<analytics::SqliteAnalytics>>,
}

type Tx = Transaction<'static, Any>;

impl SqlStore {
    /// A store over its pools. Starts the group committer of key inserts: concurrent
    /// `insert_key` calls share one transaction (each inside its own savepoint, so one failure
    /// fails only itself), which spends one durable commit on many keys.
    ///
    /// `simple_keys`, when the backend has one, writes the batches of simple keys (see
    /// [`crate::model::NewKey::is_simple`]).
    pub(in crate::store) fn new(
        dialect: Dialect,
        reader: AnyPool,
        writer: AnyPool,
        simple_keys: Option<Box<dyn SimpleKeyWriter>>,
    ) -> Self {
        let key_inserts = group_commit::start(writer.clone(), dialect.begin_write, simple_keys);
        SqlStore {
            dialect,
            reader,
            writer,
            key_inserts,
            event_log: None,
            analytics: None,
        }
    }

    /// Gives the event writer a dedicated connection, opened by `open` whenever it starts.
    pub(in crate::store) fn with_event_log(mut self, open: EventLogOpener) -> Self {
        self.event_log = Some(open);
        self
    }

    /// Runs analytics queries on read-only connections of their own to this SQLite file.
    pub(in crate::store) fn with_sqlite_analytics(mut self, path: std::path::PathBuf) -> Self {
        self.analytics = Some(std::sync::Arc::new(analytics::SqliteAnalytics::new(path)));
        self
    }

    async fn begin(&self) -> StoreResult<Tx> {
        Ok(self.writer.begin_with(self.dialect.begin_write).await?)
    }

    /// Ends a transaction whose main statement touched `rows` rows: rolls back and answers
    /// `false` when it touched none; otherwise appends the change-feed entry `(kind, entity,
    /// time)` and the audit events, commits, and answers `true`.
    async fn finish(
        mut tx: Tx,
        rows: u64,
        change: Option<(ChangeKind, &str, i64)>,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        if rows == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some((kind, entity, time)) = change {
            Self::insert_change(&mut tx, kind, entity, time).await?;
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Runs one UPDATE that must touch at most one row, with its change-feed entry and audit
    /// events; commits only when a row was touched. Returns whether one was.
    async fn update_one(
        &self,
        sql: &'static str,
        binds: (i64, i64, &str),
        change: Option<ChangeKind>,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(sql)
            .bind(binds.0)
            .bind(binds.1)
            .bind(binds.2)
            .execute(&mut *tx)
            .await?;
        let change = change.map(|kind| (kind, binds.2, binds.1));
        Self::finish(tx, done.rows_affected(), change, audit).await
    }

    /// Appends audit events to their workspaces' chains: each takes the next position after the
    /// workspace's head (whose row lock orders concurrent writers, so positions follow commit
    /// order with no gaps) and the hash over its content and the previous event's hash.
    ///
    /// A few statements per workspace and batch rather than per event (the group committer hands
    /// over the events of a whole batch of keys): the head moves by the number of events at once,
    /// the hashes are chained in memory, and the events and their targets go in with multi-row
    /// inserts. Workspaces are taken in sorted order, so concurrent writers lock heads in one order.
    async fn insert_audit(tx: &mut Tx, events: &[AuditEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let anonymous = tx.backend_name().eq_ignore_ascii_case("sqlite");
        let mut workspaces: Vec<&str> = events.iter().map(|e| e.workspace_id.as_str()).collect();
        workspaces.sort_unstable();
        workspaces.dedup();
        let mut records = Vec::with_capacity(events.len());
        for workspace in workspaces {
            let mine: Vec<&AuditEvent> = events
                .iter()
                .filter(|e| e.workspace_id == workspace)
                .collect();
            // One statement creates the head or moves it on, and hands back its new position and
            // the hash of the chain's last event.
            let head = sqlx::query(audit::HEAD_ADVANCE)
                .bind(workspace)
                .bind(mine.len() as i64)
                .fetch_one(&mut **tx)
                .await?;
            let (chained, last_hash) =
                audit::chain_events(&mine, head.try_get("seq")?, head.try_get("hash")?)?;
            records.extend(chained);
            sqlx::query(audit::HEAD_SET_HASH)
                .bind(workspace)
                .bind(&last_hash)
                .execute(&mut **tx)
                .await?;
        }
        // Rows per statement: far under SQLite's 32,766 parameters and PostgreSQL's 65,535.
        for chunk in records.chunks(256) {
            let mut sql = String::from(audit::LOG_INSERT);
            push_value_rows(&mut sql, anonymous, chunk.len(), audit::LOG_COLUMNS);
            let mut query = sqlx::query(&sql);
            for (record, targets_text) in chunk {
                query = query
                    .bind(&record.id)
                    .bind(&record.workspace_id)
                    .bind(&record.bucket)
                    .bind(&record.event)
                    .bind(record.time_ms)
                    .bind(&record.description)
                    .bind(&record.actor_type)
                    .bind(&record.actor_id)
                    .bind(&record.actor_name)
                    .bind(&record.remote_ip)
                    .bind(&record.user_agent)
                    .bind(targets_text)
                    .bind(record.seq)
                    .bind(&record.correlation_id)
                    .bind(&record.prev_hash)
                    .bind(&record.hash)
                    .bind(&record.meta);
            }
            query.execute(&mut **tx).await?;
        }
        let targets: Vec<_> = events
            .iter()
            .flat_map(|e| e.targets.iter().map(move |t| (e, t)))
            .collect();
        for chunk in targets.chunks(1024) {
            let mut sql = String::from(audit::TARGET_INSERT);
            push_value_rows(&mut sql, anonymous, chunk.len(), audit::TARGET_COLUMNS);
            let mut query = sqlx::query(&sql);
            for (e, target) in chunk {
                query = query
                    .bind(&e.id)
                    .bind(&e.workspace_id)
                    .bind(target.kind)
                    .bind(&target.id);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Appends change-feed entries `(kind, entity, time)`, in one statement.
    async fn insert_changes(tx: &mut Tx, changes: &[(ChangeKind, &str, i64)]) -> StoreResult<()> {
        let anonymous = tx.backend_name().eq_ignore_ascii_case("sqlite");
        for chunk in changes.chunks(1024) {
            let mut sql = String::from(CHANGE_INSERT);
            push_value_rows(&mut sql, anonymous, chunk.len(), CHANGE_COLUMNS);
            let mut query = sqlx::query(&sql);
            for (kind, entity_id, time) in chunk {
                query = query.bind(kind.as_str()).bind(*entity_id).bind(*time);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    async fn insert_change(
        tx: &mut Tx,
        kind: ChangeKind,
        entity_id: &str,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO changes (kind, entity_id, created_at_m) VALUES ($1, $2, $3)")
            .bind(kind.as_str())
            .bind(entity_id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Appends `rows` parenthesised tuples of `columns` parameters, for a multi-row `VALUES`, in
    /// this backend's style (see [`push_value_rows`]).
    fn push_value_rows(&self, sql: &mut String, rows: usize, columns: usize) {
        push_value_rows(sql, self.dialect.anonymous_params, rows, columns);
    }
}

/// Appends `rows` parenthesised tuples of `columns` parameters, for a multi-row `VALUES`: `?` when
/// `anonymous` (SQLite, which looks numbered parameters up one by one, quadratic in a long
/// statement), else `$1, $2, ...` (PostgreSQL).
pub(super) fn push_value_rows(sql: &mut String, anonymous: bool, rows: usize, columns: usize) {
    use std::fmt::Write;
    for i in 0..rows {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            if anonymous {
                sql.push('?');
            } else {
                let _ = write!(sql, "${}", i * columns + c + 1);
            }
        }
        sql.push(')');
    }
}

/// The start of a change-feed insert, followed by rows of [`CHANGE_COLUMNS`] values: kind, entity
/// id, time.
pub(in crate::store) const CHANGE_INSERT: &str =
    "INSERT INTO changes (kind, entity_id, created_at_m) VALUES ";
pub(in crate::store) const CHANGE_COLUMNS: usize = 3;

/// A 0/1 integer column as a flag.
fn flag(row: &AnyRow, column: &str) -> StoreResult<bool> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

/// `$start, $start+1, …` for `n` values.
fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `%text%` for a LIKE (with `ESCAPE '\'`) that matches `text` literally, without case.
fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{}%", escaped.to_lowercase())
}
