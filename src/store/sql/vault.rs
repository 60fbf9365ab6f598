//! The vault's tables: `vault_data_keys` (each workspace's data keys, sealed under the master
//! key) and `encrypted_keys` (recoverable keys' sealed plaintexts; written with the key itself in
//! [`SqlStore::insert_key_in`]).

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{placeholders, SqlStore};
use crate::model::{EncryptedKey, SealedKey, StoredDataKey, VaultWorkspace};
use crate::store::{StoreResult, VaultStore};

const DATA_KEY_COLUMNS: &str = "id, workspace_id, master_key_id, wrapped, created_at_m";
const ENCRYPTED_COLUMNS: &str = "key_id, workspace_id, data_key_id, sealed";

fn data_key_from(row: &AnyRow) -> StoreResult<StoredDataKey> {
    Ok(StoredDataKey {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        master_key_id: row.try_get("master_key_id")?,
        wrapped: row.try_get("wrapped")?,
        created_at: row.try_get("created_at_m")?,
    })
}

fn encrypted_from(row: &AnyRow) -> StoreResult<EncryptedKey> {
    Ok(EncryptedKey {
        key_id: row.try_get("key_id")?,
        workspace_id: row.try_get("workspace_id")?,
        sealed: SealedKey {
            data_key_id: row.try_get("data_key_id")?,
            sealed: row.try_get("sealed")?,
        },
    })
}

#[async_trait]
impl VaultStore for SqlStore {
    async fn data_keys(&self, workspace_id: &str) -> StoreResult<Vec<StoredDataKey>> {
        let sql = format!(
            "SELECT {DATA_KEY_COLUMNS} FROM vault_data_keys WHERE workspace_id = $1 \
             ORDER BY created_at_m DESC, id DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(workspace_id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(data_key_from).collect()
    }

    async fn data_key(&self, id: &str) -> StoreResult<Option<StoredDataKey>> {
        let sql = format!("SELECT {DATA_KEY_COLUMNS} FROM vault_data_keys WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(data_key_from).transpose()
    }

    async fn insert_data_key(&self, key: &StoredDataKey) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO vault_data_keys (id, workspace_id, master_key_id, wrapped, created_at_m) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&key.id)
        .bind(&key.workspace_id)
        .bind(&key.master_key_id)
        .bind(&key.wrapped)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn all_data_keys(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<StoredDataKey>> {
        let sql = format!(
            "SELECT {DATA_KEY_COLUMNS} FROM vault_data_keys WHERE ($1 IS NULL OR id > $1) \
             ORDER BY id LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(data_key_from).collect()
    }

    async fn rewrap_data_key(
        &self,
        id: &str,
        expected_master_key_id: &str,
        rewrapped: &StoredDataKey,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE vault_data_keys SET master_key_id = $1, wrapped = $2 \
             WHERE id = $3 AND master_key_id = $4",
        )
        .bind(&rewrapped.master_key_id)
        .bind(&rewrapped.wrapped)
        .bind(id)
        .bind(expected_master_key_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_unused_data_keys(&self, workspace_id: &str, keep: &str) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "DELETE FROM vault_data_keys WHERE workspace_id = $1 AND id <> $2 \
             AND NOT EXISTS (SELECT 1 FROM encrypted_keys e WHERE e.data_key_id = vault_data_keys.id)",
        )
        .bind(workspace_id)
        .bind(keep)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn encrypted_keys(&self, key_ids: &[&str]) -> StoreResult<Vec<EncryptedKey>> {
        if key_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {ENCRYPTED_COLUMNS} FROM encrypted_keys WHERE key_id IN ({})",
            placeholders(1, key_ids.len())
        );
        let mut query = sqlx::query(&sql);
        for id in key_ids {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&self.reader).await?;
        rows.iter().map(encrypted_from).collect()
    }

    async fn encrypted_keys_not_under(
        &self,
        workspace_id: &str,
        data_key_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<EncryptedKey>> {
        let sql = format!(
            "SELECT {ENCRYPTED_COLUMNS} FROM encrypted_keys WHERE workspace_id = $1 \
             AND data_key_id <> $2 AND ($3 IS NULL OR key_id > $3) ORDER BY key_id LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(workspace_id)
            .bind(data_key_id)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(encrypted_from).collect()
    }

    async fn reseal_key(
        &self,
        key_id: &str,
        expected_data_key_id: &str,
        sealed: &SealedKey,
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE encrypted_keys SET data_key_id = $1, sealed = $2, updated_at_m = $3 \
             WHERE key_id = $4 AND data_key_id = $5",
        )
        .bind(&sealed.data_key_id)
        .bind(&sealed.sealed)
        .bind(now)
        .bind(key_id)
        .bind(expected_data_key_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn vault_summary(&self) -> StoreResult<Vec<VaultWorkspace>> {
        let rows = sqlx::query(
            "SELECT d.workspace_id AS workspace_id, COUNT(*) AS data_keys, \
             (SELECT COUNT(*) FROM encrypted_keys e WHERE e.workspace_id = d.workspace_id) AS encrypted_keys, \
             (SELECT l.id FROM vault_data_keys l WHERE l.workspace_id = d.workspace_id \
              ORDER BY l.created_at_m DESC, l.id DESC LIMIT 1) AS latest \
             FROM vault_data_keys d GROUP BY d.workspace_id ORDER BY d.workspace_id",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(VaultWorkspace {
                    workspace_id: row.try_get("workspace_id")?,
                    data_keys: row.try_get("data_keys")?,
                    encrypted_keys: row.try_get("encrypted_keys")?,
                    latest_data_key_id: row.try_get("latest")?,
                })
            })
            .collect()
    }
}
