//! `dashboard_sessions`: signed-in dashboard browsers.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::SqlStore;
use crate::model::DashboardSession;
use crate::store::{SessionStore, StoreResult};

fn session_from(row: &AnyRow) -> StoreResult<DashboardSession> {
    Ok(DashboardSession {
        id_hash: row.try_get("id_hash")?,
        workspace_id: row.try_get("workspace_id")?,
        root_key_id: row.try_get("root_key_id")?,
        root_key_hash: row.try_get("root_key_hash")?,
        created_at: row.try_get("created_at_m")?,
        last_seen: row.try_get("last_seen_m")?,
    })
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn insert_session(&self, session: &DashboardSession) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO dashboard_sessions \
             (id_hash, workspace_id, root_key_id, root_key_hash, created_at_m, last_seen_m) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&session.id_hash)
        .bind(&session.workspace_id)
        .bind(&session.root_key_id)
        .bind(&session.root_key_hash)
        .bind(session.created_at)
        .bind(session.last_seen)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn find_session(&self, id_hash: &str) -> StoreResult<Option<DashboardSession>> {
        let row = sqlx::query(
            "SELECT id_hash, workspace_id, root_key_id, root_key_hash, created_at_m, last_seen_m \
             FROM dashboard_sessions WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(session_from).transpose()
    }

    async fn touch_session(&self, id_hash: &str, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE dashboard_sessions SET last_seen_m = $1 WHERE id_hash = $2")
            .bind(now)
            .bind(id_hash)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM dashboard_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn prune_sessions(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM dashboard_sessions WHERE last_seen_m < $1")
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }
}
