//! The audit log: written by every mutation (see `SqlStore::insert_audit`), read by position.
//!
//! Each workspace's log is a hash chain: an event's `hash` is SHA-256 over the previous event's
//! hash and the event's own content ([`chain_hash`]), so changing, removing or reordering a stored
//! event breaks every link after it. How the content is laid out for hashing is written once,
//! here, for the writer and for whoever checks the chain.

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::SqlStore;
use crate::model::{AuditEvent, AuditQuery, StoredAuditEvent};
use crate::store::{AuditStore, StoreError, StoreResult};

/// The hash of an event in its workspace's chain: hex SHA-256 over the previous event's hash, a
/// newline, and the event's content as a JSON array in a fixed order (`prev_hash` and `hash`
/// themselves excluded; maps inside `targets` with sorted keys).
pub fn chain_hash(prev_hash: &str, e: &StoredAuditEvent) -> String {
    let content = serde_json::json!([
        e.seq,
        e.id,
        e.workspace_id,
        e.bucket,
        e.event,
        e.time_ms,
        e.description,
        e.actor_type,
        e.actor_id,
        e.actor_name,
        e.remote_ip,
        e.user_agent,
        e.correlation_id,
        e.meta,
        e.targets,
    ]);
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(content.to_string().as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Creates a workspace's head or moves it on by `$2` events; answers the head's new position (the
/// last of the positions taken) and the hash of the chain's last event before them.
pub(in crate::store) const HEAD_ADVANCE: &str =
    "INSERT INTO audit_heads (workspace_id, seq, hash) VALUES ($1, $2, '') \
     ON CONFLICT (workspace_id) DO UPDATE SET seq = audit_heads.seq + $2 RETURNING seq, hash";

/// Stores the hash of the chain's new last event in its workspace's head.
pub(in crate::store) const HEAD_SET_HASH: &str =
    "UPDATE audit_heads SET hash = $2 WHERE workspace_id = $1";

/// The start of an audit event insert, followed by rows of [`LOG_COLUMNS`] values in this order.
pub(in crate::store) const LOG_INSERT: &str =
    "INSERT INTO audit_logs (id, workspace_id, bucket, event, time_m, description, actor_type, \
     actor_id, actor_name, remote_ip, user_agent, targets, seq, correlation_id, prev_hash, hash, \
     meta) VALUES ";
pub(in crate::store) const LOG_COLUMNS: usize = 17;

/// The start of an audit target insert, followed by rows of [`TARGET_COLUMNS`] values.
pub(in crate::store) const TARGET_INSERT: &str =
    "INSERT INTO audit_log_targets (log_id, workspace_id, type, target_id) VALUES ";
pub(in crate::store) const TARGET_COLUMNS: usize = 4;

/// The stored form of `events`, all of one workspace, appended to its chain after the head moved
/// to `head_seq` (the last of their positions; see [`HEAD_ADVANCE`]) from a chain that ended with
/// `prev_hash`: each event with its position and hash, and its targets as JSON text. Also answers
/// the hash of the new last event, for the head.
pub(in crate::store) fn chain_events(
    events: &[&AuditEvent],
    head_seq: i64,
    mut prev_hash: String,
) -> StoreResult<(Vec<(StoredAuditEvent, String)>, String)> {
    let first_seq = head_seq + 1 - events.len() as i64;
    let mut records = Vec::with_capacity(events.len());
    for (e, seq) in events.iter().zip(first_seq..) {
        let targets_text = serde_json::to_string(&e.targets)
            .map_err(|err| StoreError::Corrupt(format!("audit targets: {err}")))?;
        let mut record = StoredAuditEvent {
            id: e.id.clone(),
            workspace_id: e.workspace_id.clone(),
            seq,
            bucket: crate::model::audit::BUCKET.to_string(),
            event: e.event.to_string(),
            time_ms: e.time_ms,
            description: e.description.clone(),
            actor_type: e.actor.kind.clone(),
            actor_id: e.actor.id.clone(),
            actor_name: e.actor.name.clone(),
            remote_ip: e.actor.remote_ip.clone(),
            user_agent: e.actor.user_agent.clone(),
            correlation_id: e.actor.correlation_id.clone(),
            meta: e.meta.as_ref().map(|m| m.to_string()),
            targets: serde_json::from_str(&targets_text)
                .map_err(|err| StoreError::Corrupt(format!("audit targets: {err}")))?,
            prev_hash: Some(prev_hash.clone()),
            hash: None,
        };
        let hash = chain_hash(&prev_hash, &record);
        record.hash = Some(hash.clone());
        prev_hash = hash;
        records.push((record, targets_text));
    }
    Ok((records, prev_hash))
}

const COLUMNS: &str = "id, workspace_id, seq, bucket, event, time_m, description, actor_type, \
                       actor_id, actor_name, remote_ip, user_agent, correlation_id, meta, targets, \
                       prev_hash, hash";

fn event_of(row: &AnyRow) -> StoreResult<StoredAuditEvent> {
    let targets: String = row.try_get("targets")?;
    Ok(StoredAuditEvent {
        id: row.try_get("id")?,
        workspace_id: row.try_get("workspace_id")?,
        seq: row.try_get("seq")?,
        bucket: row.try_get("bucket")?,
        event: row.try_get("event")?,
        time_ms: row.try_get("time_m")?,
        description: row.try_get("description")?,
        actor_type: row.try_get("actor_type")?,
        actor_id: row.try_get("actor_id")?,
        actor_name: row.try_get("actor_name")?,
        remote_ip: row.try_get("remote_ip")?,
        user_agent: row.try_get("user_agent")?,
        correlation_id: row.try_get("correlation_id")?,
        meta: row.try_get("meta")?,
        targets: serde_json::from_str(&targets)
            .map_err(|e| StoreError::Corrupt(format!("audit targets: {e}")))?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Appends ` AND <column> IN ($n, ...)` for a non-empty list, numbering placeholders from
/// `binds.len() + 1`.
fn any_of(sql: &mut String, binds: &mut Vec<String>, column: &str, values: &[String]) {
    if values.is_empty() {
        return;
    }
    let start = binds.len() + 1;
    let placeholders: Vec<String> = (start..start + values.len())
        .map(|n| format!("${n}"))
        .collect();
    sql.push_str(&format!(" AND {column} IN ({})", placeholders.join(", ")));
    binds.extend(values.iter().cloned());
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn append_audit(&self, events: &[AuditEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        Self::insert_audit(&mut tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_audit_events(
        &self,
        workspace_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<StoredAuditEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_logs WHERE workspace_id = $1 ORDER BY seq DESC LIMIT $2"
        ))
        .bind(workspace_id)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(event_of).collect()
    }

    async fn audit_page(&self, query: &AuditQuery) -> StoreResult<Vec<StoredAuditEvent>> {
        // Text binds first ($1..), then the numbers, whose placeholders follow them.
        let mut sql = format!("SELECT {COLUMNS} FROM audit_logs a WHERE a.workspace_id = $1");
        let mut binds = vec![query.workspace_id.clone()];
        if let Some(bucket) = &query.bucket {
            binds.push(bucket.clone());
            sql.push_str(&format!(" AND a.bucket = ${}", binds.len()));
        }
        if let Some(correlation) = &query.correlation_id {
            binds.push(correlation.clone());
            sql.push_str(&format!(" AND a.correlation_id = ${}", binds.len()));
        }
        any_of(&mut sql, &mut binds, "a.event", &query.events);
        any_of(&mut sql, &mut binds, "a.actor_id", &query.actor_ids);
        any_of(&mut sql, &mut binds, "a.actor_type", &query.actor_types);
        if !query.target_ids.is_empty() || !query.target_types.is_empty() {
            let mut inner = String::from(
                " AND EXISTS (SELECT 1 FROM audit_log_targets t \
                 WHERE t.log_id = a.id AND t.workspace_id = a.workspace_id",
            );
            any_of(&mut inner, &mut binds, "t.target_id", &query.target_ids);
            any_of(&mut inner, &mut binds, "t.type", &query.target_types);
            inner.push(')');
            sql.push_str(&inner);
        }
        let mut numbers = vec![query.after_seq];
        sql.push_str(&format!(" AND a.seq > ${}", binds.len() + numbers.len()));
        if let Some(start) = query.start_time {
            numbers.push(start);
            sql.push_str(&format!(
                " AND a.time_m >= ${}",
                binds.len() + numbers.len()
            ));
        }
        if let Some(end) = query.end_time {
            numbers.push(end);
            sql.push_str(&format!(
                " AND a.time_m <= ${}",
                binds.len() + numbers.len()
            ));
        }
        numbers.push(query.limit);
        sql.push_str(&format!(
            " ORDER BY a.seq LIMIT ${}",
            binds.len() + numbers.len()
        ));
        let mut statement = sqlx::query(&sql);
        for bind in &binds {
            statement = statement.bind(bind);
        }
        for number in &numbers {
            statement = statement.bind(*number);
        }
        let rows = statement.fetch_all(&self.reader).await?;
        rows.iter().map(event_of).collect()
    }

    async fn prune_audit(&self, before_ms: i64) -> StoreResult<u64> {
        let workspaces: Vec<String> =
            sqlx::query_scalar("SELECT workspace_id FROM audit_heads ORDER BY workspace_id")
                .fetch_all(&self.reader)
                .await?;
        let mut removed = 0;
        for workspace in &workspaces {
            // A prefix of the log, up to its last event before the cutoff: what stays is an
            // unbroken end of the chain. Positions have no gaps, so a range of them is a range of
            // events, removed PRUNE_CHUNK at a time, each chunk its own short transaction: the
            // writers of keys and events never wait long behind a prune.
            let bounds: (Option<i64>, Option<i64>) = sqlx::query_as(
                "SELECT MIN(seq), (SELECT MAX(seq) FROM audit_logs \
                 WHERE workspace_id = $1 AND time_m < $2) FROM audit_logs WHERE workspace_id = $1",
            )
            .bind(workspace)
            .bind(before_ms)
            .fetch_one(&self.reader)
            .await?;
            let (Some(first), Some(last)) = bounds else {
                continue;
            };
            let mut from = first;
            while from <= last {
                let to = last.min(from + PRUNE_CHUNK - 1);
                let mut tx = self.begin().await?;
                sqlx::query(
                    "DELETE FROM audit_log_targets WHERE log_id IN (SELECT id FROM audit_logs \
                     WHERE workspace_id = $1 AND seq BETWEEN $2 AND $3)",
                )
                .bind(workspace)
                .bind(from)
                .bind(to)
                .execute(&mut *tx)
                .await?;
                let done = sqlx::query(
                    "DELETE FROM audit_logs WHERE workspace_id = $1 AND seq BETWEEN $2 AND $3",
                )
                .bind(workspace)
                .bind(from)
                .bind(to)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                removed += done.rows_affected();
                from = to + 1;
            }
        }
        Ok(removed)
    }
}

/// Audit positions removed by one transaction of a prune.
const PRUNE_CHUNK: i64 = 2_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> StoredAuditEvent {
        StoredAuditEvent {
            id: "log_1".into(),
            workspace_id: "ws_1".into(),
            seq: 7,
            bucket: "unkey_mutations".into(),
            event: "key.create".into(),
            time_ms: 1_700_000_000_000,
            description: "Created key key_1".into(),
            actor_type: "rootkey".into(),
            actor_id: "key_root".into(),
            actor_name: None,
            remote_ip: Some("10.0.0.1".into()),
            user_agent: None,
            correlation_id: Some("req_1".into()),
            meta: None,
            targets: serde_json::json!([{"type": "key", "id": "key_1"}]),
            prev_hash: None,
            hash: None,
        }
    }

    #[test]
    fn the_chain_hash_covers_the_content_and_the_previous_hash() {
        let base = chain_hash("abc", &event());
        assert_eq!(base.len(), 64);
        // Pinned: a stored chain must stay verifiable by every later version.
        assert_eq!(
            base,
            "2fcef9001c5fb4d5235734e5a64084e444a8b46861ee7c753401a2becd8ff765"
        );
        assert_ne!(base, chain_hash("abd", &event()));
        let mut changed = event();
        changed.description.push('!');
        assert_ne!(base, chain_hash("abc", &changed));
        let mut moved = event();
        moved.seq = 8;
        assert_ne!(base, chain_hash("abc", &moved));
        // The hash fields themselves are not part of what is hashed.
        let mut stored = event();
        stored.prev_hash = Some("abc".into());
        stored.hash = Some(base.clone());
        assert_eq!(base, chain_hash("abc", &stored));
    }
}
