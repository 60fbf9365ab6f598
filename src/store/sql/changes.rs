//! The change feed: what changed, in commit order, for other nodes to drop what they cached.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::SqlStore;
use crate::model::{Change, ChangeKind};
use crate::store::{ChangeStore, StoreResult};

/// Change-feed entries removed by one statement of a prune.
const PRUNE_CHUNK: i64 = 5_000;

/// Change-feed rows as changes, skipping kinds this version does not know.
fn changes_from(rows: &[AnyRow]) -> StoreResult<Vec<Change>> {
    let mut changes = Vec::with_capacity(rows.len());
    for row in rows {
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

#[async_trait]
impl ChangeStore for SqlStore {
    async fn changes_since(&self, since_ms: i64) -> StoreResult<Vec<Change>> {
        let rows = sqlx::query(
            "SELECT seq, kind, entity_id FROM changes WHERE created_at_m >= $1 ORDER BY seq",
        )
        .bind(since_ms)
        .fetch_all(&self.reader)
        .await?;
        changes_from(&rows)
    }

    fn changes_are_ordered(&self) -> bool {
        self.dialect.ordered_changes
    }

    async fn changes_after(&self, after_seq: i64) -> StoreResult<Vec<Change>> {
        let rows =
            sqlx::query("SELECT seq, kind, entity_id FROM changes WHERE seq > $1 ORDER BY seq")
                .bind(after_seq)
                .fetch_all(&self.reader)
                .await?;
        changes_from(&rows)
    }

    async fn prune_changes(&self, before_ms: i64) -> StoreResult<u64> {
        // In chunks, each its own short statement: a busy hour of createKey leaves hundreds of
        // thousands of entries, and one DELETE of them all would hold the write lock for seconds.
        let mut removed = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM changes WHERE seq IN (SELECT seq FROM changes \
                 WHERE created_at_m < $1 ORDER BY created_at_m LIMIT $2)",
            )
            .bind(before_ms)
            .bind(PRUNE_CHUNK)
            .execute(&self.writer)
            .await?;
            removed += done.rows_affected();
            if done.rows_affected() < PRUNE_CHUNK as u64 {
                return Ok(removed);
            }
        }
    }
}
