//! Ordinary keys: the key row (joined to its key space, API, workspace and identity), inserting,
//! changing, deleting and rerolling keys.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::Row;
use tokio::sync::oneshot;

use super::group_commit::KeyInsert;
use super::{flag, push_value_rows, SqlStore, Tx};
use crate::model::audit::AuditEvent;
use crate::model::{
    ChangeKind, IdentityRef, KeyPage, KeyPatch, KeyRow, LimitOwner, NewKey, Patch, RbacChange,
};
use crate::store::{KeyStore, StoreError, StoreResult};

/// Every column of [`KeyRow`], over `keys k` joined to its key space, API, workspace and identity.
pub(super) const KEY_SELECT: &str = "SELECT k.id, k.key_space_id, k.workspace_id, a.id AS api_id, k.hash, k.start, k.name, \
     k.meta, k.expires_m, k.enabled, k.remaining_requests, k.refill_day, k.refill_amount, k.last_refill_at_m, \
     COALESCE(lu.time_m, k.last_used_at_m) AS last_used_at_m, k.pending_migration_id, k.created_at_m, k.updated_at_m, \
     CASE WHEN a.deleted_at_m IS NULL AND ks.deleted_at_m IS NULL THEN 0 ELSE 1 END AS api_deleted, \
     a.ip_whitelist, w.enabled AS workspace_enabled, \
     i.id AS identity_id, i.external_id AS identity_external_id, i.meta AS identity_meta \
     FROM keys k JOIN key_spaces ks ON ks.id = k.key_space_id JOIN apis a ON a.key_space_id = k.key_space_id \
     JOIN workspaces w ON w.id = k.workspace_id \
     LEFT JOIN identities i ON i.id = k.identity_id AND i.deleted = 0 \
     LEFT JOIN key_last_used lu ON lu.key_id = k.id";

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

/// The start of a key row's insert, followed by [`KEY_COLUMNS`] values a row ([`bind_key`]).
pub(in crate::store) const KEY_INSERT: &str = "INSERT INTO keys (id, key_space_id, workspace_id, hash, start, name, identity_id, meta, \
     expires_m, enabled, remaining_requests, refill_day, refill_amount, last_refill_at_m, pending_migration_id, \
     created_at_m) VALUES ";
pub(in crate::store) const KEY_COLUMNS: usize = 16;

/// Binds the values of `key`'s row, in [`KEY_INSERT`]'s order.
fn bind_key<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    key: &'q NewKey,
    identity_id: Option<String>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
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
}

/// A value for a statement built at run time.
enum Bind {
    Int(Option<i64>),
    Text(Option<String>),
}

impl SqlStore {
    /// Inserts a key (creating its identity if needed) with its permissions, roles and rate
    /// limits, inside a transaction.
    pub(super) async fn insert_key_in(tx: &mut Tx, key: &NewKey) -> StoreResult<()> {
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
        let mut sql = String::from(KEY_INSERT);
        push_value_rows(
            &mut sql,
            tx.backend_name().eq_ignore_ascii_case("sqlite"),
            1,
            KEY_COLUMNS,
        );
        bind_key(sqlx::query(&sql), key, identity_id)
            .execute(&mut **tx)
            .await?;
        Self::change_key_rbac_in(tx, &key.id, &key.workspace_id, &key.rbac, key.created_at).await?;
        if let Some(sealed) = &key.sealed {
            sqlx::query(
                "INSERT INTO encrypted_keys (key_id, workspace_id, data_key_id, sealed, created_at_m) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&key.id)
            .bind(&key.workspace_id)
            .bind(&sealed.data_key_id)
            .bind(&sealed.sealed)
            .bind(key.created_at)
            .execute(&mut **tx)
            .await?;
        }
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

    /// Inserts keys that need nothing but their row (see [`NewKey::is_plain`]) with multi-row
    /// statements: the group committer's batches are mostly such keys, and each statement is a
    /// round trip to SQLite's worker thread.
    pub(super) async fn insert_plain_keys(tx: &mut Tx, keys: &[&NewKey]) -> StoreResult<()> {
        let anonymous = tx.backend_name().eq_ignore_ascii_case("sqlite");
        // 16 parameters a row: far under SQLite's 32,766 and PostgreSQL's 65,535 per statement.
        for chunk in keys.chunks(256) {
            let mut sql = String::from(KEY_INSERT);
            push_value_rows(&mut sql, anonymous, chunk.len(), KEY_COLUMNS);
            let mut query = sqlx::query(&sql);
            for key in chunk {
                debug_assert!(key.is_plain());
                query = bind_key(query, key, None);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// The key of `row` with its permissions, roles and rate limits, read on `conn`.
    pub(super) async fn one_key(
        conn: &mut AnyConnection,
        row: Option<AnyRow>,
    ) -> StoreResult<Option<KeyRow>> {
        let Some(row) = row else { return Ok(None) };
        let mut keys = vec![key_from(&row)?];
        Self::attach_parts(conn, &mut keys).await?;
        Ok(keys.pop())
    }

    /// Fills in the keys' permissions, roles and rate limits, on one connection: each
    /// acquisition and release of a pooled connection is a round trip to its thread (sqlx pings
    /// a connection as it goes back to the pool), and a key read on a cache miss is four queries.
    pub(super) async fn attach_parts(
        conn: &mut AnyConnection,
        keys: &mut [KeyRow],
    ) -> StoreResult<()> {
        Self::attach_rbac(conn, keys).await?;
        Self::attach_ratelimits(conn, keys).await
    }

    /// A key by one `KEY_SELECT ... WHERE` query, with all its parts, on one pooled connection.
    pub(super) async fn find_one_key(
        &self,
        sql: &str,
        binds: &[&str],
    ) -> StoreResult<Option<KeyRow>> {
        let mut conn = self.reader.acquire().await?;
        let mut query = sqlx::query(sql);
        for value in binds {
            query = query.bind(*value);
        }
        let row = query.fetch_optional(&mut *conn).await?;
        Self::one_key(&mut conn, row).await
    }

    async fn key_hash(tx: &mut Tx, id: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT hash FROM keys WHERE id = $1 AND deleted_at_m IS NULL")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        Ok(row.map(|r| r.try_get("hash")).transpose()?)
    }
}

#[async_trait]
impl KeyStore for SqlStore {
    async fn list_keys(&self, page: KeyPage<'_>) -> StoreResult<Vec<KeyRow>> {
        // Only the filters given, so that each is an index range (an `$n IS NULL OR ...` test
        // would make every page scan from the first key): (key_space_id, deleted_at_m, id) for
        // a page, (key_space_id, identity_id, id) for one owner's keys.
        let mut sql = format!("{KEY_SELECT} WHERE k.key_space_id = $1 AND k.deleted_at_m IS NULL");
        let mut n = 1;
        if page.identity_id.is_some() {
            n += 1;
            sql.push_str(&format!(" AND k.identity_id = ${n}"));
        }
        if page.cursor.is_some() {
            n += 1;
            sql.push_str(&format!(" AND k.id >= ${n}"));
        }
        sql.push_str(&format!(" ORDER BY k.id LIMIT ${}", n + 1));
        let mut query = sqlx::query(&sql).bind(page.key_space_id);
        if let Some(identity_id) = page.identity_id {
            query = query.bind(identity_id);
        }
        if let Some(cursor) = page.cursor {
            query = query.bind(cursor);
        }
        let mut conn = self.reader.acquire().await?;
        let rows = query.bind(page.limit).fetch_all(&mut *conn).await?;
        let mut keys = rows.iter().map(key_from).collect::<StoreResult<Vec<_>>>()?;
        Self::attach_parts(&mut conn, &mut keys).await?;
        Ok(keys)
    }

    async fn search_keys(
        &self,
        key_space_id: &str,
        prefix: &str,
        limit: i64,
    ) -> StoreResult<Vec<KeyRow>> {
        // One indexed range scan per column, each stopping after `limit` rows, however many
        // keys match: `prefix <= col < prefix || U+10FFFF` in byte order.
        let upper = format!("{prefix}\u{10FFFF}");
        let mut found: Vec<KeyRow> = Vec::new();
        for column in ["name", "start"] {
            let ordered = format!("k.{column}{}", self.dialect.byte_order);
            let sql = format!(
                "{KEY_SELECT} WHERE k.key_space_id = $1 AND k.deleted_at_m IS NULL \
                 AND {ordered} >= $2 AND {ordered} < $3 ORDER BY {ordered}, k.id LIMIT $4"
            );
            let rows = sqlx::query(&sql)
                .bind(key_space_id)
                .bind(prefix)
                .bind(&upper)
                .bind(limit)
                .fetch_all(&self.reader)
                .await?;
            for row in &rows {
                let key = key_from(row)?;
                if !found.iter().any(|k| k.id == key.id) {
                    found.push(key);
                }
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found.truncate(limit.max(0) as usize);
        Self::attach_parts(&mut *self.reader.acquire().await?, &mut found).await?;
        Ok(found)
    }

    async fn find_key_by_hash(&self, hash: &str) -> StoreResult<Option<KeyRow>> {
        let sql = format!("{KEY_SELECT} WHERE k.hash = $1 AND k.deleted_at_m IS NULL");
        self.find_one_key(&sql, &[hash]).await
    }

    async fn find_key_by_id(&self, id: &str) -> StoreResult<Option<KeyRow>> {
        let sql = format!("{KEY_SELECT} WHERE k.id = $1 AND k.deleted_at_m IS NULL");
        self.find_one_key(&sql, &[id]).await
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
            sqlx::query("DELETE FROM encrypted_keys WHERE key_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
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
}
