//! Migrations of keys from another system: keys stored under a legacy hash until their first
//! verification rewrites them.

use async_trait::async_trait;
use sqlx::Row;

use super::keys::KEY_SELECT;
use super::SqlStore;
use crate::model::audit::AuditEvent;
use crate::model::{ChangeKind, ImportSetup, KeyRow, Migration, NewKey};
use crate::store::{MigrationStore, StoreResult};

#[async_trait]
impl MigrationStore for SqlStore {
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
        setup: &ImportSetup,
        keys: &[(NewKey, Vec<AuditEvent>)],
    ) -> StoreResult<Vec<String>> {
        let mut tx = self.begin().await?;
        Self::create_permissions_in(&mut tx, &setup.permissions).await?;
        Self::create_roles_in(&mut tx, &setup.roles).await?;
        Self::insert_audit(&mut tx, &setup.audit).await?;
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
        self.find_one_key(&sql, &[legacy_hash, migration_id, workspace_id])
            .await
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
}
