//! Key balances: loading and writing them back for the in-memory ledger, and changing them under
//! lock for the database ledger and management routes. What a change is, is the caller's decision.

use async_trait::async_trait;
use sqlx::Row;

use super::SqlStore;
use crate::model::{ChangeKind, CreditRecord, CreditRow, CreditWrite, StoredCredits};
use crate::store::{CreditStore, StoreResult};

#[async_trait]
impl CreditStore for SqlStore {
    async fn load_credits(&self, key_id: &str) -> StoreResult<Option<CreditRow>> {
        let row = sqlx::query(
            "SELECT remaining_requests, last_refill_at_m, created_at_m FROM keys WHERE id = $1 AND deleted_at_m IS NULL",
        )
        .bind(key_id)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|row| {
            Ok(CreditRow {
                remaining: row.try_get("remaining_requests")?,
                last_refill_at: row.try_get("last_refill_at_m")?,
                created_at: row.try_get("created_at_m")?,
            })
        })
        .transpose()
    }

    async fn write_balances(&self, rows: &[(String, i64, i64)]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for (key_id, remaining, refilled_at) in rows {
            sqlx::query(
                "UPDATE keys SET remaining_requests = $1, last_refill_at_m = $2 \
                 WHERE id = $3 AND remaining_requests IS NOT NULL",
            )
            .bind(remaining)
            .bind(refilled_at)
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn modify_credits(
        &self,
        key_id: &str,
        decide: &mut (dyn for<'s> FnMut(&'s StoredCredits) -> Option<CreditWrite> + Send),
        record: Option<CreditRecord<'_>>,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        // The lock holds until commit, so concurrent nodes decide on each other's results.
        let sql = format!(
            "SELECT hash, remaining_requests, refill_amount, refill_day, last_refill_at_m, created_at_m \
             FROM keys WHERE id = $1 AND deleted_at_m IS NULL{}",
            self.dialect.for_update
        );
        let Some(row) = sqlx::query(&sql)
            .bind(key_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            tx.rollback().await?;
            return Ok(false);
        };
        let hash: String = row.try_get("hash")?;
        let stored = StoredCredits {
            remaining: row.try_get("remaining_requests")?,
            refill_amount: row.try_get("refill_amount")?,
            refill_day: row.try_get("refill_day")?,
            last_refill_at: row.try_get("last_refill_at_m")?,
            created_at: row.try_get("created_at_m")?,
        };
        let Some(write) = decide(&stored) else {
            tx.rollback().await?;
            return Ok(true);
        };
        match record {
            Some(record) => {
                sqlx::query(
                    "UPDATE keys SET remaining_requests = $1, refill_amount = $2, refill_day = $3, \
                     last_refill_at_m = $4, updated_at_m = $5 WHERE id = $6",
                )
                .bind(write.remaining)
                .bind(write.refill_amount)
                .bind(write.refill_day)
                .bind(write.last_refill_at)
                .bind(record.now)
                .bind(key_id)
                .execute(&mut *tx)
                .await?;
                Self::insert_change(&mut tx, ChangeKind::Key, &hash, record.now).await?;
                Self::insert_audit(&mut tx, record.audit).await?;
            }
            None => {
                if write.remaining != stored.remaining
                    || write.last_refill_at != stored.last_refill_at
                {
                    sqlx::query(
                        "UPDATE keys SET remaining_requests = $1, last_refill_at_m = $2 WHERE id = $3",
                    )
                    .bind(write.remaining)
                    .bind(write.last_refill_at)
                    .bind(key_id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(true)
    }
}
