//! Verification events and keys' `lastUsedAt`.

use async_trait::async_trait;
use sqlx::Row;

use super::SqlStore;
use crate::model::{LastUse, NewVerification, VerificationEvent};
use crate::store::{EventLog, EventStore, StoreResult};

/// The tail of the `key_last_used` upsert: a time only ever moves forward.
pub(in crate::store) const LAST_USED_UPSERT: &str =
    " ON CONFLICT (key_id) DO UPDATE SET time_m = excluded.time_m \
     WHERE key_last_used.time_m < excluded.time_m";

#[async_trait]
impl EventStore for SqlStore {
    fn event_log(&self) -> StoreResult<Option<Box<dyn EventLog>>> {
        self.event_log.as_ref().map(|open| open()).transpose()
    }

    async fn insert_verifications(&self, events: &[NewVerification<'_>]) -> StoreResult<()> {
        const COLUMNS: usize = 11;
        // 5,500 parameters: under SQLite's limit of 32,766 and PostgreSQL's of 65,535.
        const ROWS_PER_STATEMENT: usize = 500;
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO key_verifications (request_id, time_m, workspace_id, api_id, key_space_id, key_id, \
                 identity_id, outcome, tags, spent_credits, latency_us) VALUES ",
            );
            self.push_value_rows(&mut sql, chunk.len(), COLUMNS);
            let mut query = sqlx::query(&sql);
            for e in chunk {
                // Borrowed strings bind without copies.
                query = query
                    .bind(e.request_id)
                    .bind(e.time_ms)
                    .bind(e.workspace_id)
                    .bind(e.api_id)
                    .bind(e.key_space_id)
                    .bind(e.key_id)
                    .bind(e.identity_id)
                    .bind(e.outcome)
                    .bind(e.tags)
                    .bind(e.spent_credits)
                    .bind(e.latency_us);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn touch_last_used(&self, uses: &[LastUse<'_>]) -> StoreResult<()> {
        // 2,000 parameters a statement; a transaction a statement, so no lock is held for long.
        const PER_STATEMENT: usize = 1_000;
        for chunk in uses.chunks(PER_STATEMENT) {
            let mut sql = String::from("INSERT INTO key_last_used (key_id, time_m) VALUES ");
            self.push_value_rows(&mut sql, chunk.len(), 2);
            sql.push_str(LAST_USED_UPSERT);
            let mut query = sqlx::query(&sql);
            for used in chunk {
                query = query.bind(used.key_id).bind(used.time_ms);
            }
            query.execute(&self.writer).await?;
        }
        Ok(())
    }

    async fn prune_verifications(&self, before_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM key_verifications WHERE time_m < $1")
            .bind(before_ms)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn list_verifications(
        &self,
        key_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<VerificationEvent>> {
        let rows = sqlx::query(
            "SELECT request_id, time_m, workspace_id, api_id, key_space_id, key_id, identity_id, outcome, tags, \
             spent_credits, latency_us FROM key_verifications WHERE key_id = $1 ORDER BY time_m DESC LIMIT $2",
        )
        .bind(key_id)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let outcome: String = row.try_get("outcome")?;
                Ok(VerificationEvent {
                    request_id: row.try_get("request_id")?,
                    time_ms: row.try_get("time_m")?,
                    workspace_id: row.try_get("workspace_id")?,
                    api_id: row.try_get("api_id")?,
                    key_space_id: row.try_get("key_space_id")?,
                    key_id: row.try_get("key_id")?,
                    identity_id: row.try_get("identity_id")?,
                    outcome: crate::model::outcome_name(&outcome),
                    tags: row.try_get("tags")?,
                    spent_credits: row.try_get("spent_credits")?,
                    latency_us: row.try_get("latency_us")?,
                })
            })
            .collect()
    }
}
