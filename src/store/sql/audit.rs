//! The audit log, as written by every mutation (see `SqlStore::insert_audit`).

use async_trait::async_trait;
use sqlx::Row;

use super::SqlStore;
use crate::model::StoredAuditEvent;
use crate::store::{AuditStore, StoreError, StoreResult};

#[async_trait]
impl AuditStore for SqlStore {
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
