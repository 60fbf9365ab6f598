//! The SQL both backends run, on sqlx's `Any` driver.
//!
//! The statements here are the common subset of SQLite and PostgreSQL: `$N` placeholders, 0/1
//! integer flags, text JSON, `ON CONFLICT`. Writes go through [`SqlStore::writer`], which on SQLite
//! is a single connection opened with `BEGIN IMMEDIATE`, so writers queue in-process instead of
//! failing with `SQLITE_BUSY`.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::{EventLog, Store, StoreError, StoreResult};
use crate::model::audit::AuditEvent;
use crate::model::{
    Api, Change, ChangeKind, CreditOp, CreditRow, CreditState, CreditUpdate, Identity, IdentityRef,
    KeyPage, KeyPatch, KeyRow, LastUse, LimitOwner, Migration, Namespace, NewKey, NewVerification,
    Override, Patch, Permission, RatelimitConfig, RbacChange, Role, RootKey, RootKeyAuth, SpendRow,
    StoredAuditEvent, VerificationEvent, Workspace,
};

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
    /// [`Store::changes_are_ordered`]). SQLite has one writer at a time (across
    /// processes too): a transaction takes its sequence number only after every earlier one has
    /// committed or rolled back. PostgreSQL's sequences hand out numbers to concurrent
    /// transactions that may commit in another order.
    pub ordered_changes: bool,
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
        }
    }
}

/// Opens a dedicated synchronous [`EventLog`] (a connection of its own), for backends that have
/// one; see [`Store::event_log`].
pub type EventLogOpener = Box<dyn Fn() -> StoreResult<Box<dyn EventLog>> + Send + Sync>;

/// A store over one reader pool and one writer pool (the same pool on PostgreSQL).
pub struct SqlStore {
    pub(super) dialect: Dialect,
    pub(super) reader: AnyPool,
    pub(super) writer: AnyPool,
    /// Key inserts waiting to be committed together (see [`SqlStore::new`]).
    key_inserts: mpsc::Sender<KeyInsert>,
    /// Opens the event writer's own connection, where the backend offers one.
    event_log: Option<EventLogOpener>,
}

/// A key insert handed to the group committer, with where to send its outcome.
struct KeyInsert {
    key: NewKey,
    audit: Vec<AuditEvent>,
    done: oneshot::Sender<StoreResult<()>>,
}

/// Most key inserts committed by one transaction.
const GROUP_COMMIT_MAX: usize = 256;

pub(super) type Tx = Transaction<'static, Any>;

fn flag(row: &AnyRow, column: &str) -> StoreResult<bool> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

fn workspace_from(row: &AnyRow) -> StoreResult<Workspace> {
    Ok(Workspace {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        enabled: flag(row, "enabled")?,
        created_at: row.try_get("created_at_m")?,
    })
}

fn root_key_from(row: &AnyRow) -> StoreResult<RootKey> {
    let permissions: String = row.try_get("permissions")?;
    let permissions = serde_json::from_str(&permissions)
        .map_err(|e| StoreError::Corrupt(format!("root key permissions: {e}")))?;
    Ok(RootKey {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        name: row.try_get("name")?,
        hash: row.try_get("hash")?,
        start: row.try_get("start")?,
        permissions,
        enabled: flag(row, "enabled")?,
        expires: row.try_get("expires_m")?,
        created_at: row.try_get("created_at_m")?,
    })
}

fn api_from(row: &AnyRow) -> StoreResult<Api> {
    Ok(Api {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        name: row.try_get("name")?,
        key_space_id: row.try_get("key_space_id")?,
        delete_protection: flag(row, "delete_protection")?,
        created_at: row.try_get("created_at_m")?,
    })
}

/// The tail of the `key_last_used` upsert: a time only ever moves forward.
pub(super) const LAST_USED_UPSERT: &str =
    " ON CONFLICT (key_id) DO UPDATE SET time_m = excluded.time_m \
     WHERE key_last_used.time_m < excluded.time_m";

/// Every column of [`KeyRow`], over `keys k` joined to its key space, API, workspace and identity.
const KEY_SELECT: &str = "SELECT k.id, k.key_space_id, k.workspace_id, a.id AS api_id, k.hash, k.start, k.name, \
     k.meta, k.expires_m, k.enabled, k.remaining_requests, k.refill_day, k.refill_amount, k.last_refill_at_m, \
     COALESCE(lu.time_m, k.last_used_at_m) AS last_used_at_m, k.pending_migration_id, k.created_at_m, k.updated_at_m, \
     CASE WHEN a.deleted_at_m IS NULL AND ks.deleted_at_m IS NULL THEN 0 ELSE 1 END AS api_deleted, \
     a.ip_whitelist, w.enabled AS workspace_enabled, \
     i.id AS identity_id, i.external_id AS identity_external_id, i.meta AS identity_meta \
     FROM keys k JOIN key_spaces ks ON ks.id = k.key_space_id JOIN apis a ON a.key_space_id = k.key_space_id \
     JOIN workspaces w ON w.id = k.workspace_id \
     LEFT JOIN identities i ON i.id = k.identity_id AND i.deleted = 0 \
     LEFT JOIN key_last_used lu ON lu.key_id = k.id";

/// Change-feed rows as changes, skipping kinds this version does not know.
fn changes_from(rows: &[AnyRow]) -> StoreResult<Vec<Change>> {
    let mut changes = Vec::with_capacity(rows.len());
    for row in rows {
        let kind: String = row.try_get("kind")?;
        let Some(kind) = ChangeKind::parse(&kind) else {
            tracing::warn!(kind, "ignoring change of unknown kind");
            continue;
        };
        changes.push(Change {
            seq: row.try_get("seq")?,
            kind,
            entity_id: row.try_get("entity_id")?,
        });
    }
    Ok(changes)
}

fn key_from(row: &AnyRow) -> StoreResult<KeyRow> {
    let identity_id: Option<String> = row.try_get("identity_id")?;
    let identity = match identity_id {
        Some(id) => Some(IdentityRef {
            id,
            external_id: row.try_get("identity_external_id")?,
            meta: row.try_get("identity_meta")?,
            ratelimits: Vec::new(),
        }),
        None => None,
    };
    Ok(KeyRow {
        id: row.try_get("id")?,
        key_space_id: row.try_get("key_space_id")?,
        workspace_id: row.try_get("workspace_id")?,
        api_id: row.try_get("api_id")?,
        hash: row.try_get("hash")?,
        start: row.try_get("start")?,
        name: row.try_get("name")?,
        meta: row.try_get("meta")?,
        identity,
        expires: row.try_get("expires_m")?,
        enabled: flag(row, "enabled")?,
        remaining: row.try_get("remaining_requests")?,
        refill_day: row.try_get("refill_day")?,
        refill_amount: row.try_get("refill_amount")?,
        last_refill_at: row.try_get("last_refill_at_m")?,
        last_used_at: row.try_get("last_used_at_m")?,
        pending_migration_id: row.try_get("pending_migration_id")?,
        created_at: row.try_get("created_at_m")?,
        updated_at: row.try_get("updated_at_m")?,
        api_deleted: flag(row, "api_deleted")?,
        ip_whitelist: row.try_get("ip_whitelist")?,
        workspace_enabled: flag(row, "workspace_enabled")?,
        permissions: Vec::new(),
        roles: Vec::new(),
        ratelimits: Vec::new(),
    })
}

/// `$start, $start+1, …` for `n` values.
pub(super) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `%text%` for a LIKE (with `ESCAPE '\'`) that matches `text` literally, without case.
pub(super) fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{}%", escaped.to_lowercase())
}

/// A value for a statement built at run time.
enum Bind {
    Int(Option<i64>),
    Text(Option<String>),
}

/// Applies a refill due since `boundary` and returns the balance and last refill after it.
fn refilled(
    row: &CreditRowFull,
    boundary: Option<(i64, i64)>,
    now: i64,
) -> (Option<i64>, Option<i64>) {
    let last = row.last_refill_at.unwrap_or(row.created_at);
    match (row.remaining, row.refill_amount, boundary) {
        (Some(remaining), Some(_), Some((instant, amount))) if last < instant => {
            (Some(remaining.max(amount)), Some(now))
        }
        _ => (row.remaining, row.last_refill_at),
    }
}

/// A balance with its refill settings, read under lock.
struct CreditRowFull {
    hash: String,
    remaining: Option<i64>,
    refill_amount: Option<i64>,
    refill_day: Option<i64>,
    last_refill_at: Option<i64>,
    created_at: i64,
}

const ROOT_KEY_COLUMNS: &str =
    "rk.id, rk.workspace_id, rk.name, rk.hash, rk.start, rk.permissions, rk.enabled, rk.expires_m, rk.created_at_m";
const API_COLUMNS: &str =
    "a.id, a.workspace_id, a.name, a.key_space_id, a.delete_protection, a.created_at_m";

impl SqlStore {
    /// A store over its pools. Starts the group committer of key inserts: concurrent
    /// `insert_key` calls share one transaction (each inside its own savepoint, so one failure
    /// fails only itself), which spends one durable commit on many keys.
    pub(super) fn new(dialect: Dialect, reader: AnyPool, writer: AnyPool) -> Self {
        let (key_inserts, rx) = mpsc::channel(GROUP_COMMIT_MAX * 4);
        tokio::spawn(Self::commit_key_inserts(
            writer.clone(),
            dialect.begin_write,
            rx,
        ));
        SqlStore {
            dialect,
            reader,
            writer,
            key_inserts,
            event_log: None,
        }
    }

    /// Gives the event writer a dedicated connection, opened by `open` whenever it starts.
    pub(super) fn with_event_log(mut self, open: EventLogOpener) -> Self {
        self.event_log = Some(open);
        self
    }

    async fn commit_key_inserts(
        writer: AnyPool,
        begin_write: &'static str,
        mut rx: mpsc::Receiver<KeyInsert>,
    ) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < GROUP_COMMIT_MAX {
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            match Self::insert_keys_together(&writer, begin_write, &batch).await {
                Ok(outcomes) => {
                    for (item, outcome) in batch.into_iter().zip(outcomes) {
                        let _ = item.done.send(outcome);
                    }
                }
                Err(err) => {
                    let message = err.to_string();
                    for item in batch {
                        let _ = item.done.send(Err(StoreError::Failed(message.clone())));
                    }
                }
            }
        }
    }

    /// Inserts a batch of keys in one transaction; the outer error means nothing was committed.
    async fn insert_keys_together(
        writer: &AnyPool,
        begin_write: &'static str,
        batch: &[KeyInsert],
    ) -> StoreResult<Vec<StoreResult<()>>> {
        async fn one(tx: &mut Tx, item: &KeyInsert) -> StoreResult<()> {
            SqlStore::insert_key_in(tx, &item.key).await?;
            // A server may have cached "no such key" for this hash.
            SqlStore::insert_change(tx, ChangeKind::Key, &item.key.hash, item.key.created_at)
                .await?;
            SqlStore::insert_audit(tx, &item.audit).await
        }
        let mut tx = writer.begin_with(begin_write).await?;
        if let [item] = batch {
            one(&mut tx, item).await?;
            tx.commit().await?;
            return Ok(vec![Ok(())]);
        }
        // Inserts almost never fail, so first try the whole batch without savepoints (two
        // statements fewer per key). If one fails, start over with a savepoint around each key.
        let mut all_ok = true;
        for item in batch {
            if one(&mut tx, item).await.is_err() {
                all_ok = false;
                break;
            }
        }
        if all_ok {
            tx.commit().await?;
            return Ok(batch.iter().map(|_| Ok(())).collect());
        }
        tx.rollback().await?;
        let mut tx = writer.begin_with(begin_write).await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for item in batch {
            sqlx::query("SAVEPOINT key_insert")
                .execute(&mut *tx)
                .await?;
            match one(&mut tx, item).await {
                Ok(()) => outcomes.push(Ok(())),
                Err(err) => {
                    sqlx::query("ROLLBACK TO SAVEPOINT key_insert")
                        .execute(&mut *tx)
                        .await?;
                    outcomes.push(Err(err));
                }
            }
            sqlx::query("RELEASE SAVEPOINT key_insert")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Ends a transaction whose main statement touched `rows` rows: rolls back and answers
    /// `false` when it touched none; otherwise appends the change-feed entry `(kind, entity,
    /// time)` and the audit events, commits, and answers `true`.
    pub(super) async fn finish(
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

    /// Appends `rows` parenthesised tuples of `columns` parameters, for a multi-row `VALUES`:
    /// `?` on SQLite (which looks numbered parameters up one by one, quadratic in a long
    /// statement), `$1, $2, ...` on PostgreSQL.
    fn push_value_rows(&self, sql: &mut String, rows: usize, columns: usize) {
        use std::fmt::Write;
        for i in 0..rows {
            sql.push_str(if i == 0 { "(" } else { ", (" });
            for c in 0..columns {
                if c > 0 {
                    sql.push_str(", ");
                }
                if self.dialect.anonymous_params {
                    sql.push('?');
                } else {
                    let _ = write!(sql, "${}", i * columns + c + 1);
                }
            }
            sql.push(')');
        }
    }

    pub(super) async fn begin(&self) -> StoreResult<Tx> {
        Ok(self.writer.begin_with(self.dialect.begin_write).await?)
    }

    /// The live identity with `external_id`, created with `new_id` if there is none.
    async fn upsert_identity(
        tx: &mut Tx,
        workspace_id: &str,
        external_id: &str,
        new_id: &str,
        now: i64,
    ) -> StoreResult<String> {
        sqlx::query(
            "INSERT INTO identities (id, workspace_id, external_id, meta, deleted, created_at_m) \
             VALUES ($1, $2, $3, '{}', 0, $4) \
             ON CONFLICT (workspace_id, external_id) WHERE deleted = 0 DO NOTHING",
        )
        .bind(new_id)
        .bind(workspace_id)
        .bind(external_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        let row = sqlx::query(
            "SELECT id FROM identities WHERE workspace_id = $1 AND external_id = $2 AND deleted = 0",
        )
        .bind(workspace_id)
        .bind(external_id)
        .fetch_one(&mut **tx)
        .await?;
        Ok(row.try_get("id")?)
    }

    async fn insert_key_in(tx: &mut Tx, key: &NewKey) -> StoreResult<()> {
        let identity_id = match &key.external_id {
            Some(external_id) => Some(
                Self::upsert_identity(
                    tx,
                    &key.workspace_id,
                    external_id,
                    &key.new_identity_id,
                    key.created_at,
                )
                .await?,
            ),
            None => None,
        };
        sqlx::query(
            "INSERT INTO keys (id, key_space_id, workspace_id, hash, start, name, identity_id, meta, expires_m, \
             enabled, remaining_requests, refill_day, refill_amount, last_refill_at_m, pending_migration_id, created_at_m) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(&key.id)
        .bind(&key.key_space_id)
        .bind(&key.workspace_id)
        .bind(&key.hash)
        .bind(&key.start)
        .bind(&key.name)
        .bind(identity_id)
        .bind(&key.meta)
        .bind(key.expires)
        .bind(i64::from(key.enabled))
        .bind(key.remaining)
        .bind(key.refill_day)
        .bind(key.refill_amount)
        .bind(key.remaining.map(|_| key.created_at))
        .bind(&key.pending_migration_id)
        .bind(key.created_at)
        .execute(&mut **tx)
        .await?;
        Self::change_key_rbac_in(tx, &key.id, &key.workspace_id, &key.rbac, key.created_at).await?;
        if !key.ratelimits.is_empty() {
            Self::replace_ratelimits_in(
                tx,
                LimitOwner::Key(&key.id),
                &key.workspace_id,
                &key.ratelimits,
                key.created_at,
            )
            .await?;
        }
        Ok(())
    }

    /// A key row with its permissions and roles.
    async fn one_key(&self, row: Option<AnyRow>) -> StoreResult<Option<KeyRow>> {
        let Some(row) = row else { return Ok(None) };
        let mut keys = vec![key_from(&row)?];
        self.attach_rbac(&mut keys).await?;
        self.attach_ratelimits(&mut keys).await?;
        Ok(keys.pop())
    }

    async fn key_hash(tx: &mut Tx, id: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT hash FROM keys WHERE id = $1 AND deleted_at_m IS NULL")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        Ok(row.map(|r| r.try_get("hash")).transpose()?)
    }

    async fn lock_credits(&self, tx: &mut Tx, id: &str) -> StoreResult<Option<CreditRowFull>> {
        let sql = format!(
            "SELECT hash, remaining_requests, refill_amount, refill_day, last_refill_at_m, created_at_m \
             FROM keys WHERE id = $1 AND deleted_at_m IS NULL{}",
            self.dialect.for_update
        );
        let row = sqlx::query(&sql).bind(id).fetch_optional(&mut **tx).await?;
        row.map(|row| {
            Ok(CreditRowFull {
                hash: row.try_get("hash")?,
                remaining: row.try_get("remaining_requests")?,
                refill_amount: row.try_get("refill_amount")?,
                refill_day: row.try_get("refill_day")?,
                last_refill_at: row.try_get("last_refill_at_m")?,
                created_at: row.try_get("created_at_m")?,
            })
        })
        .transpose()
    }

    pub(super) async fn insert_audit(tx: &mut Tx, events: &[AuditEvent]) -> StoreResult<()> {
        for e in events {
            let targets = serde_json::to_string(&e.targets)
                .map_err(|err| StoreError::Corrupt(format!("audit targets: {err}")))?;
            sqlx::query(
                "INSERT INTO audit_logs (id, workspace_id, bucket, event, time_m, description, actor_type, \
                 actor_id, actor_name, remote_ip, user_agent, targets) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(&e.id)
            .bind(&e.workspace_id)
            .bind(crate::model::audit::BUCKET)
            .bind(e.event)
            .bind(e.time_ms)
            .bind(&e.description)
            .bind(&e.actor.kind)
            .bind(&e.actor.id)
            .bind(&e.actor.name)
            .bind(&e.actor.remote_ip)
            .bind(&e.actor.user_agent)
            .bind(targets)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    pub(super) async fn insert_change(
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
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        self.dialect.name
    }

    async fn count_workspaces(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM workspaces")
            .fetch_one(&self.reader)
            .await?;
        Ok(row.try_get("n")?)
    }

    async fn create_workspace(&self, ws: &Workspace, audit: &[AuditEvent]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO workspaces (id, name, enabled, created_at_m) VALUES ($1, $2, $3, $4)",
        )
        .bind(&ws.id)
        .bind(&ws.name)
        .bind(i64::from(ws.enabled))
        .bind(ws.created_at)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_workspace(&self, id: &str) -> StoreResult<Option<Workspace>> {
        let row =
            sqlx::query("SELECT id, name, enabled, created_at_m FROM workspaces WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.reader)
                .await?;
        row.as_ref().map(workspace_from).transpose()
    }

    async fn set_workspace_enabled(
        &self,
        id: &str,
        enabled: bool,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        self.update_one(
            "UPDATE workspaces SET enabled = $1, updated_at_m = $2 WHERE id = $3",
            (i64::from(enabled), now, id),
            Some(ChangeKind::Workspace),
            audit,
        )
        .await
    }

    async fn insert_root_key(&self, key: &RootKey, audit: &[AuditEvent]) -> StoreResult<()> {
        let permissions = serde_json::to_string(&key.permissions)
            .map_err(|e| StoreError::Corrupt(format!("root key permissions: {e}")))?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO root_keys (id, workspace_id, name, hash, start, permissions, enabled, expires_m, created_at_m) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&key.id)
        .bind(&key.workspace_id)
        .bind(&key.name)
        .bind(&key.hash)
        .bind(&key.start)
        .bind(permissions)
        .bind(i64::from(key.enabled))
        .bind(key.expires)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn find_root_key_by_hash(&self, hash: &str) -> StoreResult<Option<RootKeyAuth>> {
        let sql = format!(
            "SELECT {ROOT_KEY_COLUMNS}, w.enabled AS workspace_enabled FROM root_keys rk \
             LEFT JOIN workspaces w ON w.id = rk.workspace_id \
             WHERE rk.hash = $1 AND rk.deleted_at_m IS NULL"
        );
        let row = sqlx::query(&sql)
            .bind(hash)
            .fetch_optional(&self.reader)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let workspace_enabled: Option<i64> = row.try_get("workspace_enabled")?;
        Ok(Some(RootKeyAuth {
            key: root_key_from(&row)?,
            workspace_enabled: workspace_enabled.map(|v| v != 0),
        }))
    }

    async fn get_root_key(&self, id: &str) -> StoreResult<Option<RootKey>> {
        let sql = format!(
            "SELECT {ROOT_KEY_COLUMNS} FROM root_keys rk WHERE rk.id = $1 AND rk.deleted_at_m IS NULL"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(root_key_from).transpose()
    }

    async fn list_root_keys(&self, workspace_id: &str) -> StoreResult<Vec<RootKey>> {
        let sql = format!(
            "SELECT {ROOT_KEY_COLUMNS} FROM root_keys rk \
             WHERE rk.workspace_id = $1 AND rk.deleted_at_m IS NULL ORDER BY rk.created_at_m, rk.id"
        );
        let rows = sqlx::query(&sql)
            .bind(workspace_id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(root_key_from).collect()
    }

    async fn set_root_key_enabled(
        &self,
        id: &str,
        enabled: bool,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        self.update_one(
            "UPDATE root_keys SET enabled = $1, updated_at_m = $2 WHERE id = $3 AND deleted_at_m IS NULL",
            (i64::from(enabled), now, id),
            Some(ChangeKind::RootKey),
            audit,
        )
        .await
    }

    async fn delete_root_key(&self, id: &str, now: i64, audit: &[AuditEvent]) -> StoreResult<bool> {
        self.update_one(
            "UPDATE root_keys SET deleted_at_m = $1, updated_at_m = $2 WHERE id = $3 AND deleted_at_m IS NULL",
            (now, now, id),
            Some(ChangeKind::RootKey),
            audit,
        )
        .await
    }

    async fn ordinary_key_exists(&self, hash: &str) -> StoreResult<bool> {
        let row = sqlx::query("SELECT 1 AS one FROM keys WHERE hash = $1 AND deleted_at_m IS NULL")
            .bind(hash)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.is_some())
    }

    async fn create_api(&self, api: &Api, audit: &[AuditEvent]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO key_spaces (id, workspace_id, created_at_m) VALUES ($1, $2, $3)")
            .bind(&api.key_space_id)
            .bind(&api.workspace_id)
            .bind(api.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO apis (id, workspace_id, name, key_space_id, delete_protection, created_at_m) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&api.id)
        .bind(&api.workspace_id)
        .bind(&api.name)
        .bind(&api.key_space_id)
        .bind(i64::from(api.delete_protection))
        .bind(api.created_at)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn find_live_api(&self, workspace_id: &str, id: &str) -> StoreResult<Option<Api>> {
        let sql = format!(
            "SELECT {API_COLUMNS} FROM apis a JOIN key_spaces ks ON ks.id = a.key_space_id \
             WHERE a.id = $1 AND a.workspace_id = $2 AND a.deleted_at_m IS NULL AND ks.deleted_at_m IS NULL"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(workspace_id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(api_from).transpose()
    }

    async fn get_api(&self, id: &str) -> StoreResult<Option<Api>> {
        let sql =
            format!("SELECT {API_COLUMNS} FROM apis a WHERE a.id = $1 AND a.deleted_at_m IS NULL");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(api_from).transpose()
    }

    async fn delete_api(&self, id: &str, now: i64, audit: &[AuditEvent]) -> StoreResult<bool> {
        self.update_one(
            "UPDATE apis SET deleted_at_m = $1, updated_at_m = $2 WHERE id = $3 AND deleted_at_m IS NULL",
            (now, now, id),
            Some(ChangeKind::Api),
            audit,
        )
        .await
    }

    async fn set_api_delete_protection(
        &self,
        id: &str,
        protected: bool,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        self.update_one(
            "UPDATE apis SET delete_protection = $1, updated_at_m = $2 WHERE id = $3 AND deleted_at_m IS NULL",
            (i64::from(protected), now, id),
            None,
            audit,
        )
        .await
    }

    async fn set_api_ip_whitelist(
        &self,
        id: &str,
        whitelist: Option<&str>,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE apis SET ip_whitelist = $1, updated_at_m = $2 WHERE id = $3 AND deleted_at_m IS NULL",
        )
        .bind(whitelist)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        Self::finish(
            tx,
            done.rows_affected(),
            Some((ChangeKind::Api, id, now)),
            audit,
        )
        .await
    }

    async fn find_identity_id(
        &self,
        workspace_id: &str,
        external_id: &str,
    ) -> StoreResult<Option<String>> {
        let row = sqlx::query(
            "SELECT id FROM identities WHERE workspace_id = $1 AND external_id = $2 AND deleted = 0",
        )
        .bind(workspace_id)
        .bind(external_id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|r| r.try_get("id")).transpose()?)
    }

    async fn list_keys(&self, page: KeyPage<'_>) -> StoreResult<Vec<KeyRow>> {
        let sql = format!(
            "{KEY_SELECT} WHERE k.key_space_id = $1 AND k.deleted_at_m IS NULL \
             AND ($2 IS NULL OR k.id >= $2) AND ($3 IS NULL OR k.identity_id = $3) \
             ORDER BY k.id LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(page.key_space_id)
            .bind(page.cursor)
            .bind(page.identity_id)
            .bind(page.limit)
            .fetch_all(&self.reader)
            .await?;
        let mut keys = rows.iter().map(key_from).collect::<StoreResult<Vec<_>>>()?;
        self.attach_rbac(&mut keys).await?;
        self.attach_ratelimits(&mut keys).await?;
        Ok(keys)
    }

    async fn find_key_by_hash(&self, hash: &str) -> StoreResult<Option<KeyRow>> {
        let sql = format!("{KEY_SELECT} WHERE k.hash = $1 AND k.deleted_at_m IS NULL");
        let row = sqlx::query(&sql)
            .bind(hash)
            .fetch_optional(&self.reader)
            .await?;
        self.one_key(row).await
    }

    async fn find_key_by_id(&self, id: &str) -> StoreResult<Option<KeyRow>> {
        let sql = format!("{KEY_SELECT} WHERE k.id = $1 AND k.deleted_at_m IS NULL");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        self.one_key(row).await
    }

    async fn insert_key(&self, key: &NewKey, audit: &[AuditEvent]) -> StoreResult<()> {
        let (done, outcome) = oneshot::channel();
        let item = KeyInsert {
            key: key.clone(),
            audit: audit.to_vec(),
            done,
        };
        if self.key_inserts.send(item).await.is_err() {
            return Err(StoreError::Failed("the key writer has stopped".into()));
        }
        outcome
            .await
            .unwrap_or_else(|_| Err(StoreError::Failed("the key writer has stopped".into())))
    }

    async fn update_key(
        &self,
        id: &str,
        patch: &KeyPatch,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let Some(hash) = Self::key_hash(&mut tx, id).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        let mut sets: Vec<String> = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        let mut set = |column: &str, value: Bind| {
            binds.push(value);
            sets.push(format!("{column} = ${}", binds.len()));
        };
        let text = |p: &Patch<String>| match p {
            Patch::Keep => None,
            Patch::Clear => Some(Bind::Text(None)),
            Patch::Set(v) => Some(Bind::Text(Some(v.clone()))),
        };
        if let Some(b) = text(&patch.name) {
            set("name", b);
        }
        if let Some(b) = text(&patch.meta) {
            set("meta", b);
        }
        match patch.expires {
            Patch::Keep => {}
            Patch::Clear => set("expires_m", Bind::Int(None)),
            Patch::Set(v) => set("expires_m", Bind::Int(Some(v))),
        }
        if let Some(enabled) = patch.enabled {
            set("enabled", Bind::Int(Some(i64::from(enabled))));
        }
        match &patch.external_id {
            Patch::Keep => {}
            Patch::Clear => set("identity_id", Bind::Text(None)),
            Patch::Set(external_id) => {
                let workspace: String = sqlx::query("SELECT workspace_id FROM keys WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("workspace_id")?;
                let identity = Self::upsert_identity(
                    &mut tx,
                    &workspace,
                    external_id,
                    &patch.new_identity_id,
                    now,
                )
                .await?;
                set("identity_id", Bind::Text(Some(identity)));
            }
        }
        if let Some(credits) = &patch.credits {
            match credits.remaining {
                Patch::Keep => {}
                Patch::Clear => {
                    set("remaining_requests", Bind::Int(None));
                    set("refill_amount", Bind::Int(None));
                    set("refill_day", Bind::Int(None));
                }
                Patch::Set(v) => set("remaining_requests", Bind::Int(Some(v))),
            }
            if credits.remaining != Patch::Clear {
                match credits.refill {
                    Patch::Keep => {}
                    Patch::Clear => {
                        set("refill_amount", Bind::Int(None));
                        set("refill_day", Bind::Int(None));
                    }
                    Patch::Set((amount, day)) => {
                        set("refill_amount", Bind::Int(Some(amount)));
                        set("refill_day", Bind::Int(day));
                    }
                }
            }
            // A changed balance or schedule starts its refill period now.
            set("last_refill_at_m", Bind::Int(Some(now)));
        }
        set("updated_at_m", Bind::Int(Some(now)));
        binds.push(Bind::Text(Some(id.to_string())));
        let sql = format!(
            "UPDATE keys SET {} WHERE id = ${}",
            sets.join(", "),
            binds.len()
        );
        let mut query = sqlx::query(&sql);
        for bind in binds {
            query = match bind {
                Bind::Int(v) => query.bind(v),
                Bind::Text(v) => query.bind(v),
            };
        }
        query.execute(&mut *tx).await?;
        if patch.rbac != RbacChange::default() {
            let workspace: String = sqlx::query("SELECT workspace_id FROM keys WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("workspace_id")?;
            Self::change_key_rbac_in(&mut tx, id, &workspace, &patch.rbac, now).await?;
        }
        if let Some(limits) = &patch.ratelimits {
            let workspace: String = sqlx::query("SELECT workspace_id FROM keys WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("workspace_id")?;
            Self::replace_ratelimits_in(&mut tx, LimitOwner::Key(id), &workspace, limits, now)
                .await?;
        }
        Self::insert_change(&mut tx, ChangeKind::Key, &hash, now).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_key(
        &self,
        id: &str,
        permanent: bool,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let Some(hash) = Self::key_hash(&mut tx, id).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        if permanent {
            sqlx::query("DELETE FROM keys WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM key_last_used WHERE key_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query("UPDATE keys SET deleted_at_m = $1, updated_at_m = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        Self::insert_change(&mut tx, ChangeKind::Key, &hash, now).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn reroll_key(
        &self,
        old_id: &str,
        old_expires: i64,
        new: &NewKey,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let Some(old_hash) = Self::key_hash(&mut tx, old_id).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        sqlx::query("UPDATE keys SET expires_m = $1, updated_at_m = $2 WHERE id = $3")
            .bind(old_expires)
            .bind(now)
            .bind(old_id)
            .execute(&mut *tx)
            .await?;
        Self::insert_key_in(&mut tx, new).await?;
        Self::insert_change(&mut tx, ChangeKind::Key, &old_hash, now).await?;
        Self::insert_change(&mut tx, ChangeKind::Key, &new.hash, now).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn update_credits(
        &self,
        id: &str,
        op: CreditOp,
        boundary: Option<(i64, i64)>,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<CreditUpdate> {
        let mut tx = self.begin().await?;
        let Some(row) = self.lock_credits(&mut tx, id).await? else {
            tx.rollback().await?;
            return Ok(CreditUpdate::NotFound);
        };
        let (current, _) = refilled(&row, boundary, now);
        let (remaining, refill_amount, refill_day) = match (op, current) {
            (CreditOp::Set(None), _) => (None, None, None),
            (CreditOp::Set(Some(v)), _) => (Some(v), row.refill_amount, row.refill_day),
            (CreditOp::Increment(_) | CreditOp::Decrement(_), None) => {
                tx.rollback().await?;
                return Ok(CreditUpdate::Unlimited);
            }
            (CreditOp::Increment(n), Some(c)) => {
                (Some(c.saturating_add(n)), row.refill_amount, row.refill_day)
            }
            (CreditOp::Decrement(n), Some(c)) => {
                (Some((c - n).max(0)), row.refill_amount, row.refill_day)
            }
        };
        sqlx::query(
            "UPDATE keys SET remaining_requests = $1, refill_amount = $2, refill_day = $3, \
             last_refill_at_m = $4, updated_at_m = $4 WHERE id = $5",
        )
        .bind(remaining)
        .bind(refill_amount)
        .bind(refill_day)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        Self::insert_change(&mut tx, ChangeKind::Key, &row.hash, now).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(CreditUpdate::Done(CreditState {
            remaining,
            refill_amount,
            refill_day,
        }))
    }

    async fn load_credits(&self, key_id: &str) -> StoreResult<Option<CreditRow>> {
        let row = sqlx::query(
            "SELECT remaining_requests, last_refill_at_m, created_at_m FROM keys WHERE id = $1 AND deleted_at_m IS NULL",
        )
        .bind(key_id)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|row| {
            Ok(CreditRow {
                remaining: row.try_get("remaining_requests")?,
                last_refill_at: row.try_get("last_refill_at_m")?,
                created_at: row.try_get("created_at_m")?,
            })
        })
        .transpose()
    }

    async fn write_balances(&self, rows: &[(String, i64, i64)]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for (key_id, remaining, refilled_at) in rows {
            sqlx::query(
                "UPDATE keys SET remaining_requests = $1, last_refill_at_m = $2 \
                 WHERE id = $3 AND remaining_requests IS NOT NULL",
            )
            .bind(remaining)
            .bind(refilled_at)
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn spend_credits(
        &self,
        key_id: &str,
        cost: i64,
        now: i64,
        boundary: Option<(i64, i64)>,
    ) -> StoreResult<SpendRow> {
        let mut tx = self.begin().await?;
        let Some(row) = self.lock_credits(&mut tx, key_id).await? else {
            tx.rollback().await?;
            return Ok(SpendRow::Unlimited);
        };
        let (current, last_refill) = refilled(&row, boundary, now);
        let Some(current) = current else {
            tx.rollback().await?;
            return Ok(SpendRow::Unlimited);
        };
        let (after, outcome) = if current >= cost {
            (current - cost, SpendRow::Spent(current - cost))
        } else {
            (current, SpendRow::Insufficient(current))
        };
        if Some(after) != row.remaining || last_refill != row.last_refill_at {
            sqlx::query(
                "UPDATE keys SET remaining_requests = $1, last_refill_at_m = $2 WHERE id = $3",
            )
            .bind(after)
            .bind(last_refill)
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn create_migration(
        &self,
        migration: &Migration,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO key_migrations (id, workspace_id, algorithm, created_at_m) VALUES ($1, $2, $3, $4)")
            .bind(&migration.id)
            .bind(&migration.workspace_id)
            .bind(&migration.algorithm)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn find_migration(&self, workspace_id: &str, id: &str) -> StoreResult<Option<Migration>> {
        let row = sqlx::query("SELECT id, workspace_id, algorithm FROM key_migrations WHERE id = $1 AND workspace_id = $2")
            .bind(id)
            .bind(workspace_id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|row| {
            Ok(Migration {
                id: row.try_get("id")?,
                workspace_id: row.try_get("workspace_id")?,
                algorithm: row.try_get("algorithm")?,
            })
        })
        .transpose()
    }

    async fn insert_migrated_keys(
        &self,
        keys: &[(NewKey, Vec<AuditEvent>)],
    ) -> StoreResult<Vec<String>> {
        let mut tx = self.begin().await?;
        let mut taken = Vec::new();
        for (key, audit) in keys {
            let exists = sqlx::query("SELECT 1 AS one FROM keys WHERE hash = $1")
                .bind(&key.hash)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if exists {
                taken.push(key.hash.clone());
                continue;
            }
            Self::insert_key_in(&mut tx, key).await?;
            Self::insert_change(&mut tx, ChangeKind::Key, &key.hash, key.created_at).await?;
            Self::insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(taken)
    }

    async fn find_pending_migration(
        &self,
        workspace_id: &str,
        migration_id: &str,
        legacy_hash: &str,
    ) -> StoreResult<Option<KeyRow>> {
        let sql = format!(
            "{KEY_SELECT} WHERE k.hash = $1 AND k.pending_migration_id = $2 AND k.workspace_id = $3 \
             AND k.deleted_at_m IS NULL"
        );
        let row = sqlx::query(&sql)
            .bind(legacy_hash)
            .bind(migration_id)
            .bind(workspace_id)
            .fetch_optional(&self.reader)
            .await?;
        self.one_key(row).await
    }

    async fn complete_migration(
        &self,
        key_id: &str,
        hash: &str,
        start: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE keys SET hash = $1, start = $2, pending_migration_id = NULL, updated_at_m = $3 \
             WHERE id = $4 AND pending_migration_id IS NOT NULL",
        )
        .bind(hash)
        .bind(start)
        .bind(now)
        .bind(key_id)
        .execute(&mut *tx)
        .await?;
        Self::insert_change(&mut tx, ChangeKind::Key, hash, now).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_permission(
        &self,
        permission: &Permission,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        self.rbac_create_permission(permission, audit).await
    }

    async fn find_permission(
        &self,
        workspace_id: &str,
        id_or_slug: &str,
    ) -> StoreResult<Option<Permission>> {
        self.rbac_find_permission(workspace_id, id_or_slug).await
    }

    async fn find_permissions_by_slug(
        &self,
        workspace_id: &str,
        slugs: &[String],
    ) -> StoreResult<Vec<Permission>> {
        self.rbac_find_permissions_by_slug(workspace_id, slugs)
            .await
    }

    async fn list_permissions(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: i64,
        search: Option<&str>,
    ) -> StoreResult<Vec<Permission>> {
        self.rbac_list_permissions(workspace_id, cursor, limit, search)
            .await
    }

    async fn delete_permission(
        &self,
        workspace_id: &str,
        id: &str,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        self.rbac_delete_permission(workspace_id, id, now, audit)
            .await
    }

    async fn create_role(
        &self,
        role: &Role,
        change: &RbacChange,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        self.rbac_create_role(role, change, audit).await
    }

    async fn find_role(&self, workspace_id: &str, id_or_name: &str) -> StoreResult<Option<Role>> {
        self.rbac_find_role(workspace_id, id_or_name).await
    }

    async fn find_roles_by_name(
        &self,
        workspace_id: &str,
        names: &[String],
    ) -> StoreResult<Vec<Role>> {
        self.rbac_find_roles_by_name(workspace_id, names).await
    }

    async fn list_roles(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: i64,
        search: Option<&str>,
    ) -> StoreResult<Vec<Role>> {
        self.rbac_list_roles(workspace_id, cursor, limit, search)
            .await
    }

    async fn delete_role(
        &self,
        workspace_id: &str,
        id: &str,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        self.rbac_delete_role(workspace_id, id, now, audit).await
    }

    async fn set_role_permissions(
        &self,
        workspace_id: &str,
        role_id: &str,
        change: &RbacChange,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<Option<Vec<Permission>>> {
        self.rbac_set_role_permissions(workspace_id, role_id, change, now, audit)
            .await
    }

    async fn change_key_rbac(
        &self,
        key_id: &str,
        change: &RbacChange,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<Option<()>> {
        self.rbac_change_key(key_id, change, now, audit).await
    }

    async fn key_permissions(&self, key_id: &str) -> StoreResult<Vec<Permission>> {
        self.rbac_key_permissions(key_id).await
    }

    async fn key_roles(&self, key_id: &str) -> StoreResult<Vec<Role>> {
        self.rbac_key_roles(key_id).await
    }

    async fn create_identity(
        &self,
        identity: &Identity,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        self.rl_create_identity(identity, audit).await
    }

    async fn find_identity(
        &self,
        workspace_id: &str,
        id_or_external_id: &str,
    ) -> StoreResult<Option<Identity>> {
        self.rl_find_identity(workspace_id, id_or_external_id).await
    }

    async fn list_identities(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: i64,
        search: Option<&str>,
    ) -> StoreResult<Vec<Identity>> {
        self.rl_list_identities(workspace_id, cursor, limit, search)
            .await
    }

    async fn update_identity(
        &self,
        workspace_id: &str,
        id: &str,
        meta: Option<Option<String>>,
        ratelimits: Option<&[RatelimitConfig]>,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        self.rl_update_identity(workspace_id, id, meta, ratelimits, now, audit)
            .await
    }

    async fn delete_identity(
        &self,
        workspace_id: &str,
        id: &str,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        self.rl_delete_identity(workspace_id, id, now, audit).await
    }

    async fn find_namespace(
        &self,
        workspace_id: &str,
        name_or_id: &str,
    ) -> StoreResult<Option<Namespace>> {
        self.rl_find_namespace(workspace_id, name_or_id).await
    }

    async fn create_namespace(
        &self,
        namespace: &Namespace,
        audit: &[AuditEvent],
    ) -> StoreResult<Namespace> {
        self.rl_create_namespace(namespace, audit).await
    }

    async fn delete_namespace(
        &self,
        workspace_id: &str,
        id: &str,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        self.rl_delete_namespace(workspace_id, id, now, audit).await
    }

    async fn set_override(
        &self,
        workspace_id: &str,
        new: &Override,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<String> {
        self.rl_set_override(workspace_id, new, now, audit).await
    }

    async fn delete_override(
        &self,
        workspace_id: &str,
        namespace_id: &str,
        identifier: &str,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        self.rl_delete_override(workspace_id, namespace_id, identifier, now, audit)
            .await
    }

    async fn list_overrides(
        &self,
        namespace_id: &str,
        cursor: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<Override>> {
        self.rl_list_overrides(namespace_id, cursor, limit).await
    }

    fn event_log(&self) -> StoreResult<Option<Box<dyn EventLog>>> {
        self.event_log.as_ref().map(|open| open()).transpose()
    }

    async fn insert_verifications(&self, events: &[NewVerification<'_>]) -> StoreResult<()> {
        const COLUMNS: usize = 11;
        // 5,500 parameters: under SQLite's limit of 32,766 and PostgreSQL's of 65,535.
        const ROWS_PER_STATEMENT: usize = 500;
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO key_verifications (request_id, time_m, workspace_id, api_id, key_space_id, key_id, \
                 identity_id, outcome, tags, spent_credits, latency_us) VALUES ",
            );
            self.push_value_rows(&mut sql, chunk.len(), COLUMNS);
            let mut query = sqlx::query(&sql);
            for e in chunk {
                // Borrowed strings bind without copies.
                query = query
                    .bind(e.request_id)
                    .bind(e.time_ms)
                    .bind(e.workspace_id)
                    .bind(e.api_id)
                    .bind(e.key_space_id)
                    .bind(e.key_id)
                    .bind(e.identity_id)
                    .bind(e.outcome)
                    .bind(e.tags)
                    .bind(e.spent_credits)
                    .bind(e.latency_us);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn touch_last_used(&self, uses: &[LastUse<'_>]) -> StoreResult<()> {
        // 2,000 parameters a statement; a transaction a statement, so no lock is held for long.
        const PER_STATEMENT: usize = 1_000;
        for chunk in uses.chunks(PER_STATEMENT) {
            let mut sql = String::from("INSERT INTO key_last_used (key_id, time_m) VALUES ");
            self.push_value_rows(&mut sql, chunk.len(), 2);
            sql.push_str(LAST_USED_UPSERT);
            let mut query = sqlx::query(&sql);
            for used in chunk {
                query = query.bind(used.key_id).bind(used.time_ms);
            }
            query.execute(&self.writer).await?;
        }
        Ok(())
    }

    async fn prune_verifications(&self, before_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM key_verifications WHERE time_m < $1")
            .bind(before_ms)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn list_verifications(
        &self,
        key_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<VerificationEvent>> {
        let rows = sqlx::query(
            "SELECT request_id, time_m, workspace_id, api_id, key_space_id, key_id, identity_id, outcome, tags, \
             spent_credits, latency_us FROM key_verifications WHERE key_id = $1 ORDER BY time_m DESC LIMIT $2",
        )
        .bind(key_id)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let outcome: String = row.try_get("outcome")?;
                Ok(VerificationEvent {
                    request_id: row.try_get("request_id")?,
                    time_ms: row.try_get("time_m")?,
                    workspace_id: row.try_get("workspace_id")?,
                    api_id: row.try_get("api_id")?,
                    key_space_id: row.try_get("key_space_id")?,
                    key_id: row.try_get("key_id")?,
                    identity_id: row.try_get("identity_id")?,
                    outcome: crate::model::outcome_name(&outcome),
                    tags: row.try_get("tags")?,
                    spent_credits: row.try_get("spent_credits")?,
                    latency_us: row.try_get("latency_us")?,
                })
            })
            .collect()
    }

    async fn changes_since(&self, since_ms: i64) -> StoreResult<Vec<Change>> {
        let rows = sqlx::query(
            "SELECT seq, kind, entity_id FROM changes WHERE created_at_m >= $1 ORDER BY seq",
        )
        .bind(since_ms)
        .fetch_all(&self.reader)
        .await?;
        changes_from(&rows)
    }

    fn changes_are_ordered(&self) -> bool {
        self.dialect.ordered_changes
    }

    async fn changes_after(&self, after_seq: i64) -> StoreResult<Vec<Change>> {
        let rows =
            sqlx::query("SELECT seq, kind, entity_id FROM changes WHERE seq > $1 ORDER BY seq")
                .bind(after_seq)
                .fetch_all(&self.reader)
                .await?;
        changes_from(&rows)
    }

    async fn prune_changes(&self, before_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM changes WHERE created_at_m < $1")
            .bind(before_ms)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn list_audit_events(
        &self,
        workspace_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<StoredAuditEvent>> {
        let rows = sqlx::query(
            "SELECT id, workspace_id, event, time_m, description, actor_type, actor_id, remote_ip, user_agent, targets \
             FROM audit_logs WHERE workspace_id = $1 ORDER BY time_m DESC, id DESC LIMIT $2",
        )
        .bind(workspace_id)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let targets: String = row.try_get("targets")?;
                Ok(StoredAuditEvent {
                    id: row.try_get("id")?,
                    workspace_id: row.try_get("workspace_id")?,
                    event: row.try_get("event")?,
                    time_ms: row.try_get("time_m")?,
                    description: row.try_get("description")?,
                    actor_type: row.try_get("actor_type")?,
                    actor_id: row.try_get("actor_id")?,
                    remote_ip: row.try_get("remote_ip")?,
                    user_agent: row.try_get("user_agent")?,
                    targets: serde_json::from_str(&targets)
                        .map_err(|e| StoreError::Corrupt(format!("audit targets: {e}")))?,
                })
            })
            .collect()
    }
}
