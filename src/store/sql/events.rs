//! Verification events and keys' `lastUsedAt`.

use async_trait::async_trait;
use sqlx::Row;

use super::SqlStore;
use crate::model::{AnalyticsCutoffs, EventBatch, Granularity, LastUse, VerificationEvent};
use crate::store::{EventLog, EventStore, StoreResult};

/// The tail of the `key_last_used` upsert: a time only ever moves forward.
pub(in crate::store) const LAST_USED_UPSERT: &str =
    " ON CONFLICT (key_id) DO UPDATE SET time_m = excluded.time_m \
     WHERE key_last_used.time_m < excluded.time_m";

pub(in crate::store) const VERIFICATION_COLUMNS: usize = 14;
pub(in crate::store) const VERIFICATION_INSERT: &str =
    "INSERT INTO key_verifications (request_id, time_m, workspace_id, api_id, key_space_id, key_id, \
     identity_id, outcome, tags, spent_credits, latency_us, external_id, region, source) VALUES ";

pub(in crate::store) const RATELIMIT_COLUMNS: usize = 12;
pub(in crate::store) const RATELIMIT_INSERT: &str =
    "INSERT INTO ratelimit_events (request_id, time_m, workspace_id, namespace_id, identifier, passed, \
     latency_us, override_id, limit_value, remaining, reset_at_m, tokens) VALUES ";

pub(in crate::store) const VERIFICATION_COUNT_COLUMNS: usize = 11;
pub(in crate::store) const RATELIMIT_COUNT_COLUMNS: usize = 8;

/// `INSERT INTO key_verifications_per_<g> (...) VALUES `; the rows and
/// [`verification_count_tail`] follow.
pub(in crate::store) fn verification_count_head(granularity: Granularity) -> String {
    format!(
        "INSERT INTO key_verifications_per_{} (workspace_id, time_m, key_space_id, key_id, identity_id, \
         external_id, outcome, source, tags, total, spent_credits) VALUES ",
        granularity.as_str()
    )
}

/// `column = table.column + excluded.column`, stopping at i64::MAX instead of overflowing (the
/// sums are of non-negative counts, and costs are the clients' choice); SQLite and PostgreSQL alike.
fn saturating_sum(table: &str, column: &str) -> String {
    format!(
        "{column} = CASE WHEN {table}.{column} > 9223372036854775807 - excluded.{column} \
         THEN 9223372036854775807 ELSE {table}.{column} + excluded.{column} END"
    )
}

/// Adds an increment to the bucket's row, or makes the row.
pub(in crate::store) fn verification_count_tail(granularity: Granularity) -> String {
    let table = format!("key_verifications_per_{}", granularity.as_str());
    format!(
        " ON CONFLICT (workspace_id, time_m, key_id, outcome, tags, key_space_id, identity_id, external_id, source) \
         DO UPDATE SET {}, {}",
        saturating_sum(&table, "total"),
        saturating_sum(&table, "spent_credits"),
    )
}

pub(in crate::store) fn ratelimit_count_head(granularity: Granularity) -> String {
    format!(
        "INSERT INTO ratelimits_per_{} (workspace_id, time_m, namespace_id, identifier, passed, total, \
         passed_tokens, total_tokens) VALUES ",
        granularity.as_str()
    )
}

pub(in crate::store) fn ratelimit_count_tail(granularity: Granularity) -> String {
    let table = format!("ratelimits_per_{}", granularity.as_str());
    format!(
        " ON CONFLICT (workspace_id, time_m, namespace_id, identifier) DO UPDATE SET {}",
        ["passed", "total", "passed_tokens", "total_tokens"]
            .map(|column| saturating_sum(&table, column))
            .join(", ")
    )
}

/// Analytics rows removed by one statement of a prune.
const PRUNE_CHUNK: i64 = 5_000;

/// Every analytics table and where retention cuts it.
fn analytics_tables(cutoffs: &AnalyticsCutoffs) -> Vec<(String, i64)> {
    let mut tables = vec![
        ("key_verifications".to_string(), cutoffs.raw_ms),
        ("ratelimit_events".to_string(), cutoffs.raw_ms),
    ];
    for granularity in Granularity::ALL {
        let cutoff = match granularity {
            Granularity::Minute | Granularity::Hour => cutoffs.raw_ms,
            Granularity::Day => cutoffs.day_ms,
            Granularity::Month => cutoffs.month_ms,
        };
        for family in ["key_verifications_per", "ratelimits_per"] {
            tables.push((format!("{family}_{}", granularity.as_str()), cutoff));
        }
    }
    tables
}

#[async_trait]
impl EventStore for SqlStore {
    fn event_log(&self) -> StoreResult<Option<Box<dyn EventLog>>> {
        self.event_log.as_ref().map(|open| open()).transpose()
    }

    async fn insert_events(&self, batch: &EventBatch<'_>) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        // Rows per statement: under SQLite's limit of 32,766 parameters and PostgreSQL's of 65,535.
        for chunk in batch.verifications.chunks(500) {
            let mut sql = String::from(VERIFICATION_INSERT);
            self.push_value_rows(&mut sql, chunk.len(), VERIFICATION_COLUMNS);
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
                    .bind(e.latency_us)
                    .bind(e.external_id)
                    .bind(e.region)
                    .bind(e.source);
            }
            query.execute(&mut *tx).await?;
        }
        for chunk in batch.ratelimits.chunks(500) {
            let mut sql = String::from(RATELIMIT_INSERT);
            self.push_value_rows(&mut sql, chunk.len(), RATELIMIT_COLUMNS);
            let mut query = sqlx::query(&sql);
            for e in chunk {
                query = query
                    .bind(e.request_id)
                    .bind(e.time_ms)
                    .bind(e.workspace_id)
                    .bind(e.namespace_id)
                    .bind(e.identifier)
                    .bind(i64::from(e.passed))
                    .bind(e.latency_us)
                    .bind(e.override_id)
                    .bind(e.limit)
                    .bind(e.remaining)
                    .bind(e.reset_at_ms)
                    .bind(e.tokens);
            }
            query.execute(&mut *tx).await?;
        }
        // The increments come sorted by granularity (then by row), so each run is one table.
        for run in batch
            .verification_counts
            .chunk_by(|a, b| a.granularity == b.granularity)
        {
            for chunk in run.chunks(500) {
                let mut sql = verification_count_head(chunk[0].granularity);
                self.push_value_rows(&mut sql, chunk.len(), VERIFICATION_COUNT_COLUMNS);
                sql.push_str(&verification_count_tail(chunk[0].granularity));
                let mut query = sqlx::query(&sql);
                for c in chunk {
                    query = query
                        .bind(c.workspace_id)
                        .bind(c.time_ms)
                        .bind(c.key_space_id)
                        .bind(c.key_id)
                        .bind(c.identity_id)
                        .bind(c.external_id)
                        .bind(c.outcome)
                        .bind(c.source)
                        .bind(c.tags)
                        .bind(c.count)
                        .bind(c.spent_credits);
                }
                query.execute(&mut *tx).await?;
            }
        }
        for run in batch
            .ratelimit_counts
            .chunk_by(|a, b| a.granularity == b.granularity)
        {
            for chunk in run.chunks(500) {
                let mut sql = ratelimit_count_head(chunk[0].granularity);
                self.push_value_rows(&mut sql, chunk.len(), RATELIMIT_COUNT_COLUMNS);
                sql.push_str(&ratelimit_count_tail(chunk[0].granularity));
                let mut query = sqlx::query(&sql);
                for c in chunk {
                    query = query
                        .bind(c.workspace_id)
                        .bind(c.time_ms)
                        .bind(c.namespace_id)
                        .bind(c.identifier)
                        .bind(c.passed)
                        .bind(c.total)
                        .bind(c.passed_tokens)
                        .bind(c.total_tokens);
                }
                query.execute(&mut *tx).await?;
            }
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

    async fn prune_analytics(&self, cutoffs: &AnalyticsCutoffs) -> StoreResult<u64> {
        let workspaces: Vec<String> = sqlx::query_scalar("SELECT id FROM workspaces")
            .fetch_all(&self.reader)
            .await?;
        let mut removed = 0;
        // The oldest rows first, about PRUNE_CHUNK per statement (up to the time of the chunk's
        // last row; more only where many rows share it), each statement its own short
        // transaction, so the event writer never waits long behind a prune: the hourly prune of a
        // busy deployment removes an hour of events, millions of rows. Every analytics table
        // leads an index or its key with (workspace_id, time_m); the rollups have no rowid.
        for (table, cutoff) in analytics_tables(cutoffs) {
            let sql = format!(
                "DELETE FROM {table} WHERE workspace_id = $1 AND time_m < $2 AND time_m <= \
                 COALESCE((SELECT time_m FROM {table} WHERE workspace_id = $1 AND time_m < $2 \
                 ORDER BY time_m LIMIT 1 OFFSET $3), $2)"
            );
            for workspace in &workspaces {
                loop {
                    let done = sqlx::query(&sql)
                        .bind(workspace)
                        .bind(cutoff)
                        .bind(PRUNE_CHUNK - 1)
                        .execute(&self.writer)
                        .await?;
                    removed += done.rows_affected();
                    if done.rows_affected() < PRUNE_CHUNK as u64 {
                        break;
                    }
                }
            }
        }
        Ok(removed)
    }

    async fn list_verifications(
        &self,
        key_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<VerificationEvent>> {
        let rows = sqlx::query(
            "SELECT request_id, time_m, workspace_id, api_id, key_space_id, key_id, identity_id, outcome, tags, \
             spent_credits, latency_us, external_id, region, source FROM key_verifications \
             WHERE key_id = $1 ORDER BY time_m DESC LIMIT $2",
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
                    external_id: row.try_get("external_id")?,
                    region: row.try_get("region")?,
                    source: row.try_get("source")?,
                })
            })
            .collect()
    }
}
