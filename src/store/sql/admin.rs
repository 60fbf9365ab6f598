//! Workspaces and root keys.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{flag, SqlStore};
use crate::model::audit::AuditEvent;
use crate::model::{ChangeKind, PoolUsage, RootKey, RootKeyAuth, Workspace};
use crate::store::{AdminStore, StoreError, StoreResult};

const ROOT_KEY_COLUMNS: &str =
    "rk.id, rk.workspace_id, rk.name, rk.hash, rk.start, rk.permissions, rk.enabled, rk.expires_m, rk.created_at_m";

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

#[async_trait]
impl AdminStore for SqlStore {
    fn backend(&self) -> &'static str {
        self.dialect.name
    }

    fn pool_usage(&self) -> Vec<PoolUsage> {
        [("reader", &self.reader), ("writer", &self.writer)]
            .into_iter()
            .map(|(pool, p)| PoolUsage {
                pool,
                open: p.size(),
                idle: u32::try_from(p.num_idle()).unwrap_or(u32::MAX),
            })
            .collect()
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
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

    async fn set_workspace_rate_limit(
        &self,
        id: &str,
        requests_per_minute: Option<i64>,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE workspaces SET api_requests_per_minute = $1, updated_at_m = $2 WHERE id = $3",
        )
        .bind(requests_per_minute)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        Self::finish(
            tx,
            done.rows_affected(),
            Some((ChangeKind::Workspace, id, now)),
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
            "SELECT {ROOT_KEY_COLUMNS}, w.enabled AS workspace_enabled, \
             w.api_requests_per_minute AS workspace_rpm FROM root_keys rk \
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
            workspace_requests_per_minute: row.try_get("workspace_rpm")?,
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
}
