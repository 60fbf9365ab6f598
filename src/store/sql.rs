//! The SQL both backends run, on sqlx's `Any` driver.
//!
//! The statements here are the common subset of SQLite and PostgreSQL: `$N` placeholders, 0/1
//! integer flags, text JSON, `ON CONFLICT`. Writes go through [`SqlStore::writer`], which on SQLite
//! is a single connection opened with `BEGIN IMMEDIATE`, so writers queue in-process instead of
//! failing with `SQLITE_BUSY`.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use super::{
    Api, Change, ChangeKind, KeyPage, KeySummary, RootKey, RootKeyAuth, Store, StoreError,
    StoreResult, StoredAuditEvent, Workspace,
};
use crate::domain::audit::AuditEvent;

/// A store over one reader pool and one writer pool (the same pool on PostgreSQL).
pub struct SqlStore {
    pub(super) backend: &'static str,
    pub(super) reader: AnyPool,
    pub(super) writer: AnyPool,
    /// The statement that opens a write transaction.
    pub(super) begin_write: &'static str,
}

type Tx = Transaction<'static, Any>;

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

const ROOT_KEY_COLUMNS: &str =
    "rk.id, rk.workspace_id, rk.name, rk.hash, rk.start, rk.permissions, rk.enabled, rk.expires_m, rk.created_at_m";
const API_COLUMNS: &str =
    "a.id, a.workspace_id, a.name, a.key_space_id, a.delete_protection, a.created_at_m";

impl SqlStore {
    async fn begin(&self) -> StoreResult<Tx> {
        Ok(self.writer.begin_with(self.begin_write).await?)
    }

    async fn insert_audit(tx: &mut Tx, events: &[AuditEvent]) -> StoreResult<()> {
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
            .bind(crate::domain::audit::BUCKET)
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
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(kind) = change {
            Self::insert_change(&mut tx, kind, binds.2, binds.1).await?;
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        self.backend
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

    async fn list_keys(&self, page: KeyPage<'_>) -> StoreResult<Vec<KeySummary>> {
        let rows = sqlx::query(
            "SELECT id, start, name, meta, enabled, expires_m, created_at_m, updated_at_m FROM keys \
             WHERE key_space_id = $1 AND deleted_at_m IS NULL \
             AND ($2 IS NULL OR id >= $2) AND ($3 IS NULL OR identity_id = $3) \
             ORDER BY id LIMIT $4",
        )
        .bind(page.key_space_id)
        .bind(page.cursor)
        .bind(page.identity_id)
        .bind(page.limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(KeySummary {
                    id: row.try_get("id")?,
                    start: row.try_get("start")?,
                    name: row.try_get("name")?,
                    meta: row.try_get("meta")?,
                    enabled: flag(row, "enabled")?,
                    expires: row.try_get("expires_m")?,
                    created_at: row.try_get("created_at_m")?,
                    updated_at: row.try_get("updated_at_m")?,
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
        let mut changes = Vec::with_capacity(rows.len());
        for row in &rows {
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
