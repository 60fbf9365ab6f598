//! Rate-limit configuration: the limits of keys and identities, namespaces and their overrides.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::Row;

use super::{placeholders, SqlStore, Tx, FIRST};
use crate::model::audit::AuditEvent;
use crate::model::{ChangeKind, KeyRow, LimitOwner, Namespace, Override, RatelimitConfig};
use crate::store::{LimitStore, StoreResult};

const LIMIT_COLUMNS: &str = "id, name, limit_value, duration_ms, auto_apply, key_id, identity_id";

fn limit_from(row: &AnyRow) -> StoreResult<RatelimitConfig> {
    Ok(RatelimitConfig {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        limit: row.try_get("limit_value")?,
        duration_ms: row.try_get("duration_ms")?,
        auto_apply: row.try_get::<i64, _>("auto_apply")? != 0,
    })
}

fn override_from(row: &AnyRow) -> StoreResult<Override> {
    Ok(Override {
        id: row.try_get("id")?,
        namespace_id: row.try_get("namespace_id")?,
        identifier: row.try_get("identifier")?,
        limit: row.try_get("limit_value")?,
        duration_ms: row.try_get("duration_ms")?,
    })
}

/// Rate limits by owner id, for a set of key ids or identity ids.
pub(super) type LimitsByOwner = HashMap<String, Vec<RatelimitConfig>>;

impl SqlStore {
    /// The rate limits of these owners (`column`: `key_id` or `identity_id`).
    pub(super) async fn limits_of(
        conn: &mut AnyConnection,
        column: &str,
        owners: &[&str],
    ) -> StoreResult<LimitsByOwner> {
        let mut by_owner: LimitsByOwner = HashMap::new();
        if owners.is_empty() {
            return Ok(by_owner);
        }
        let sql = format!(
            "SELECT {LIMIT_COLUMNS} FROM ratelimits WHERE {column} IN ({}) ORDER BY name",
            placeholders(1, owners.len())
        );
        let mut query = sqlx::query(&sql);
        for owner in owners {
            query = query.bind(*owner);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let owner: String = row.try_get(column)?;
            by_owner.entry(owner).or_default().push(limit_from(&row)?);
        }
        Ok(by_owner)
    }

    /// Fills the rate limits of key rows and of their identities.
    pub(super) async fn attach_ratelimits(
        conn: &mut AnyConnection,
        rows: &mut [KeyRow],
    ) -> StoreResult<()> {
        let keys: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let mut by_key = Self::limits_of(conn, "key_id", &keys).await?;
        let identities: Vec<&str> = rows
            .iter()
            .filter_map(|r| r.identity.as_ref().map(|i| i.id.as_str()))
            .collect();
        let by_identity = Self::limits_of(conn, "identity_id", &identities).await?;
        for row in rows.iter_mut() {
            row.ratelimits = by_key.remove(&row.id).unwrap_or_default();
            if let Some(identity) = row.identity.as_mut() {
                identity.ratelimits = by_identity.get(&identity.id).cloned().unwrap_or_default();
            }
        }
        Ok(())
    }

    /// Makes an owner's limits exactly `limits` (ids kept by the caller for names that stay).
    pub(super) async fn replace_ratelimits_in(
        tx: &mut Tx,
        owner: LimitOwner<'_>,
        workspace_id: &str,
        limits: &[RatelimitConfig],
        now: i64,
    ) -> StoreResult<()> {
        let (column, owner_id) = match owner {
            LimitOwner::Key(id) => ("key_id", id),
            LimitOwner::Identity(id) => ("identity_id", id),
        };
        let keep = if limits.is_empty() {
            String::new()
        } else {
            format!(" AND id NOT IN ({})", placeholders(2, limits.len()))
        };
        let sql = format!("DELETE FROM ratelimits WHERE {column} = $1{keep}");
        let mut query = sqlx::query(&sql).bind(owner_id);
        for limit in limits {
            query = query.bind(&limit.id);
        }
        query.execute(&mut **tx).await?;
        for limit in limits {
            let (key_id, identity_id) = match owner {
                LimitOwner::Key(id) => (Some(id), None),
                LimitOwner::Identity(id) => (None, Some(id)),
            };
            sqlx::query(
                "INSERT INTO ratelimits (id, workspace_id, name, key_id, identity_id, limit_value, duration_ms, \
                 auto_apply, created_at_m) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (id) DO UPDATE SET name = $3, limit_value = $6, duration_ms = $7, auto_apply = $8, \
                 updated_at_m = $9",
            )
            .bind(&limit.id)
            .bind(workspace_id)
            .bind(&limit.name)
            .bind(key_id)
            .bind(identity_id)
            .bind(limit.limit)
            .bind(limit.duration_ms)
            .bind(i64::from(limit.auto_apply))
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl LimitStore for SqlStore {
    async fn find_namespace(
        &self,
        workspace_id: &str,
        name_or_id: &str,
    ) -> StoreResult<Option<Namespace>> {
        let row = sqlx::query(
            "SELECT id, workspace_id, name, created_at_m, deleted_at_m FROM ratelimit_namespaces \
             WHERE workspace_id = $1 AND (id = $2 OR name = $2) ORDER BY CASE WHEN id = $2 THEN 0 ELSE 1 END LIMIT 1",
        )
        .bind(workspace_id)
        .bind(name_or_id)
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get("id")?;
        let deleted: Option<i64> = row.try_get("deleted_at_m")?;
        let overrides = sqlx::query(
            "SELECT id, namespace_id, identifier, limit_value, duration_ms FROM ratelimit_overrides \
             WHERE namespace_id = $1 AND deleted_at_m IS NULL ORDER BY id",
        )
        .bind(&id)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(override_from)
        .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some(Namespace {
            id,
            workspace_id: row.try_get("workspace_id")?,
            name: row.try_get("name")?,
            deleted: deleted.is_some(),
            created_at: row.try_get("created_at_m")?,
            overrides,
        }))
    }

    async fn create_namespace(
        &self,
        ns: &Namespace,
        audit: &[AuditEvent],
    ) -> StoreResult<Namespace> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "INSERT INTO ratelimit_namespaces (id, workspace_id, name, created_at_m) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&ns.id)
        .bind(&ns.workspace_id)
        .bind(&ns.name)
        .bind(ns.created_at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 {
            Self::insert_change(&mut tx, ChangeKind::Namespace, &ns.id, ns.created_at).await?;
            Self::insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(self
            .find_namespace(&ns.workspace_id, &ns.name)
            .await?
            .unwrap_or_else(|| ns.clone()))
    }

    async fn delete_namespace(
        &self,
        workspace_id: &str,
        id: &str,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE ratelimit_namespaces SET deleted_at_m = $1, updated_at_m = $1 \
             WHERE id = $2 AND workspace_id = $3 AND deleted_at_m IS NULL",
        )
        .bind(now)
        .bind(id)
        .bind(workspace_id)
        .execute(&mut *tx)
        .await?;
        Self::finish(
            tx,
            done.rows_affected(),
            Some((ChangeKind::Namespace, id, now)),
            audit,
        )
        .await
    }

    async fn set_override(
        &self,
        workspace_id: &str,
        new: &Override,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<String> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO ratelimit_overrides (id, workspace_id, namespace_id, identifier, limit_value, duration_ms, \
             created_at_m) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (namespace_id, identifier) DO UPDATE SET limit_value = $5, duration_ms = $6, \
             updated_at_m = $7, deleted_at_m = NULL",
        )
        .bind(&new.id)
        .bind(workspace_id)
        .bind(&new.namespace_id)
        .bind(&new.identifier)
        .bind(new.limit)
        .bind(new.duration_ms)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let id: String = sqlx::query(
            "SELECT id FROM ratelimit_overrides WHERE namespace_id = $1 AND identifier = $2",
        )
        .bind(&new.namespace_id)
        .bind(&new.identifier)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        Self::insert_change(&mut tx, ChangeKind::Namespace, &new.namespace_id, now).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn delete_override(
        &self,
        workspace_id: &str,
        namespace_id: &str,
        identifier: &str,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE ratelimit_overrides SET deleted_at_m = $1, updated_at_m = $1 \
             WHERE namespace_id = $2 AND identifier = $3 AND workspace_id = $4 AND deleted_at_m IS NULL",
        )
        .bind(now)
        .bind(namespace_id)
        .bind(identifier)
        .bind(workspace_id)
        .execute(&mut *tx)
        .await?;
        Self::finish(
            tx,
            done.rows_affected(),
            Some((ChangeKind::Namespace, namespace_id, now)),
            audit,
        )
        .await
    }

    async fn list_namespaces(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<Namespace>> {
        // Answered from the unique index on (workspace_id, name).
        sqlx::query(
            "SELECT id, workspace_id, name, created_at_m FROM ratelimit_namespaces \
             WHERE workspace_id = $1 AND deleted_at_m IS NULL AND name >= $2 \
             ORDER BY name LIMIT $3",
        )
        .bind(workspace_id)
        .bind(cursor.unwrap_or(FIRST))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|row| {
            Ok(Namespace {
                id: row.try_get("id")?,
                workspace_id: row.try_get("workspace_id")?,
                name: row.try_get("name")?,
                deleted: false,
                created_at: row.try_get("created_at_m")?,
                overrides: Vec::new(),
            })
        })
        .collect()
    }

    async fn list_overrides(
        &self,
        namespace_id: &str,
        cursor: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<Override>> {
        sqlx::query(
            "SELECT id, namespace_id, identifier, limit_value, duration_ms FROM ratelimit_overrides \
             WHERE namespace_id = $1 AND deleted_at_m IS NULL AND id >= $2 ORDER BY id LIMIT $3",
        )
        .bind(namespace_id)
        .bind(cursor.unwrap_or(FIRST))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(override_from)
        .collect()
    }
}
