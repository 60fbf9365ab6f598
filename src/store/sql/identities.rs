//! Identities: the owners keys can share, with their rate limits.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{like_pattern, SqlStore, Tx, FIRST};
use crate::model::audit::AuditEvent;
use crate::model::{ChangeKind, Identity, LimitOwner, RatelimitConfig};
use crate::store::{IdentityStore, StoreResult};

fn identity_from(row: &AnyRow) -> StoreResult<Identity> {
    Ok(Identity {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        external_id: row.try_get("external_id")?,
        meta: row.try_get("meta")?,
        created_at: row.try_get("created_at_m")?,
        ratelimits: Vec::new(),
    })
}

/// Creates the live identity of an external id in a workspace unless there is one: `$1` the new
/// identity's id, `$2` the workspace, `$3` the external id, `$4` the time.
pub(in crate::store) const IDENTITY_INSERT_IF_ABSENT: &str =
    "INSERT INTO identities (id, workspace_id, external_id, meta, deleted, created_at_m) \
     VALUES ($1, $2, $3, '{}', 0, $4) \
     ON CONFLICT (workspace_id, external_id) WHERE deleted = 0 DO NOTHING";

/// The id of the live identity of external id `$2` in workspace `$1`.
pub(in crate::store) const IDENTITY_ID: &str =
    "SELECT id FROM identities WHERE workspace_id = $1 AND external_id = $2 AND deleted = 0";

impl SqlStore {
    /// The live identity with `external_id`, created with `new_id` if there is none.
    pub(super) async fn upsert_identity(
        tx: &mut Tx,
        workspace_id: &str,
        external_id: &str,
        new_id: &str,
        now: i64,
    ) -> StoreResult<String> {
        sqlx::query(IDENTITY_INSERT_IF_ABSENT)
            .bind(new_id)
            .bind(workspace_id)
            .bind(external_id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        let row = sqlx::query(IDENTITY_ID)
            .bind(workspace_id)
            .bind(external_id)
            .fetch_one(&mut **tx)
            .await?;
        Ok(row.try_get("id")?)
    }

    async fn identities_with_limits(
        &self,
        mut identities: Vec<Identity>,
    ) -> StoreResult<Vec<Identity>> {
        let ids: Vec<&str> = identities.iter().map(|i| i.id.as_str()).collect();
        let mut by_identity =
            Self::limits_of(&mut *self.reader.acquire().await?, "identity_id", &ids).await?;
        for identity in identities.iter_mut() {
            identity.ratelimits = by_identity.remove(&identity.id).unwrap_or_default();
        }
        Ok(identities)
    }
}

#[async_trait]
impl IdentityStore for SqlStore {
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

    async fn create_identity(
        &self,
        identity: &Identity,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "INSERT INTO identities (id, workspace_id, external_id, meta, deleted, created_at_m) \
             VALUES ($1, $2, $3, $4, 0, $5) ON CONFLICT (workspace_id, external_id) WHERE deleted = 0 DO NOTHING",
        )
        .bind(&identity.id)
        .bind(&identity.workspace_id)
        .bind(&identity.external_id)
        .bind(identity.meta.as_deref().unwrap_or("{}"))
        .bind(identity.created_at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        Self::replace_ratelimits_in(
            &mut tx,
            LimitOwner::Identity(&identity.id),
            &identity.workspace_id,
            &identity.ratelimits,
            identity.created_at,
        )
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn find_identity(
        &self,
        workspace_id: &str,
        id_or_external_id: &str,
    ) -> StoreResult<Option<Identity>> {
        let row = sqlx::query(
            "SELECT id, workspace_id, external_id, meta, created_at_m FROM identities \
             WHERE workspace_id = $1 AND deleted = 0 AND (id = $2 OR external_id = $2) \
             ORDER BY CASE WHEN id = $2 THEN 0 ELSE 1 END LIMIT 1",
        )
        .bind(workspace_id)
        .bind(id_or_external_id)
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(self
            .identities_with_limits(vec![identity_from(&row)?])
            .await?
            .pop())
    }

    async fn list_identities(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: i64,
        search: Option<&str>,
    ) -> StoreResult<Vec<Identity>> {
        let rows = sqlx::query(
            "SELECT id, workspace_id, external_id, meta, created_at_m FROM identities \
             WHERE workspace_id = $1 AND deleted = 0 AND id >= $2 \
             AND ($3 IS NULL OR lower(id) LIKE $3 ESCAPE '\\' OR lower(external_id) LIKE $3 ESCAPE '\\') \
             ORDER BY id LIMIT $4",
        )
        .bind(workspace_id)
        .bind(cursor.unwrap_or(FIRST))
        .bind(search.map(like_pattern))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        let identities = rows
            .iter()
            .map(identity_from)
            .collect::<StoreResult<Vec<_>>>()?;
        self.identities_with_limits(identities).await
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
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE identities SET meta = CASE WHEN $1 = 1 THEN $2 ELSE meta END, updated_at_m = $3 \
             WHERE id = $4 AND workspace_id = $5 AND deleted = 0",
        )
        .bind(i64::from(meta.is_some()))
        .bind(meta.flatten())
        .bind(now)
        .bind(id)
        .bind(workspace_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(limits) = ratelimits {
            Self::replace_ratelimits_in(
                &mut tx,
                LimitOwner::Identity(id),
                workspace_id,
                limits,
                now,
            )
            .await?;
        }
        Self::insert_change(&mut tx, ChangeKind::Identity, id, now).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_identity(
        &self,
        workspace_id: &str,
        id: &str,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE identities SET deleted = 1, updated_at_m = $1 WHERE id = $2 AND workspace_id = $3 AND deleted = 0",
        )
        .bind(now)
        .bind(id)
        .bind(workspace_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM ratelimits WHERE identity_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        Self::insert_change(&mut tx, ChangeKind::Identity, id, now).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }
}
