//! APIs and their key spaces.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{flag, SqlStore, FIRST};
use crate::model::audit::AuditEvent;
use crate::model::{Api, ChangeKind};
use crate::store::{ApiStore, StoreResult};

const API_COLUMNS: &str = "a.id, a.workspace_id, a.name, a.key_space_id, a.delete_protection, \
     ks.store_encrypted_keys, a.ip_whitelist, a.created_at_m";

fn api_from(row: &AnyRow) -> StoreResult<Api> {
    Ok(Api {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        name: row.try_get("name")?,
        key_space_id: row.try_get("key_space_id")?,
        delete_protection: flag(row, "delete_protection")?,
        recoverable: flag(row, "store_encrypted_keys")?,
        ip_whitelist: row.try_get("ip_whitelist")?,
        created_at: row.try_get("created_at_m")?,
    })
}

#[async_trait]
impl ApiStore for SqlStore {
    async fn create_api(&self, api: &Api, audit: &[AuditEvent]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO key_spaces (id, workspace_id, store_encrypted_keys, created_at_m) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&api.key_space_id)
        .bind(&api.workspace_id)
        .bind(i64::from(api.recoverable))
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
        let sql = format!(
            "SELECT {API_COLUMNS} FROM apis a JOIN key_spaces ks ON ks.id = a.key_space_id \
             WHERE a.id = $1 AND a.deleted_at_m IS NULL"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(api_from).transpose()
    }

    async fn list_apis(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<Api>> {
        let sql = format!(
            "SELECT {API_COLUMNS} FROM apis a JOIN key_spaces ks ON ks.id = a.key_space_id \
             WHERE a.workspace_id = $1 AND a.deleted_at_m IS NULL AND ks.deleted_at_m IS NULL \
             AND a.id >= $2 ORDER BY a.id LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(workspace_id)
            .bind(cursor.unwrap_or(FIRST))
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(api_from).collect()
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

    async fn set_api_recoverable(
        &self,
        id: &str,
        recoverable: bool,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        self.update_one(
            "UPDATE key_spaces SET store_encrypted_keys = $1, updated_at_m = $2 \
             WHERE id = (SELECT key_space_id FROM apis WHERE id = $3 AND deleted_at_m IS NULL) \
             AND deleted_at_m IS NULL",
            (i64::from(recoverable), now, id),
            None,
            audit,
        )
        .await
    }
}
