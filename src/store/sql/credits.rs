//! Key balances: loading and writing them back for the in-memory ledger, spending and changing
//! them under lock for the database ledger and management routes.

use async_trait::async_trait;
use sqlx::Row;

use super::{SqlStore, Tx};
use crate::model::audit::AuditEvent;
use crate::model::{ChangeKind, CreditOp, CreditRow, CreditState, CreditUpdate, SpendRow};
use crate::store::{CreditStore, StoreResult};

/// Applies a refill due since `boundary` and returns the balance and last refill after it.
fn refilled(
    row: &CreditRowFull,
    boundary: Option<(i64, i64)>,
    now: i64,
) -> (Option<i64>, Option<i64>) {
    let last = row.last_refill_at.unwrap_or(row.created_at);
    match (row.remaining, row.refill_amount, boundary) {
        (Some(remaining), Some(_), Some((instant, amount))) if last < instant => {
            (Some(remaining.max(amount)), Some(now))
        }
        _ => (row.remaining, row.last_refill_at),
    }
}

/// A balance with its refill settings, read under lock.
struct CreditRowFull {
    hash: String,
    remaining: Option<i64>,
    refill_amount: Option<i64>,
    refill_day: Option<i64>,
    last_refill_at: Option<i64>,
    created_at: i64,
}

impl SqlStore {
    async fn lock_credits(&self, tx: &mut Tx, id: &str) -> StoreResult<Option<CreditRowFull>> {
        let sql = format!(
            "SELECT hash, remaining_requests, refill_amount, refill_day, last_refill_at_m, created_at_m \
             FROM keys WHERE id = $1 AND deleted_at_m IS NULL{}",
            self.dialect.for_update
        );
        let row = sqlx::query(&sql).bind(id).fetch_optional(&mut **tx).await?;
        row.map(|row| {
            Ok(CreditRowFull {
                hash: row.try_get("hash")?,
                remaining: row.try_get("remaining_requests")?,
                refill_amount: row.try_get("refill_amount")?,
                refill_day: row.try_get("refill_day")?,
                last_refill_at: row.try_get("last_refill_at_m")?,
                created_at: row.try_get("created_at_m")?,
            })
        })
        .transpose()
    }
}

#[async_trait]
impl CreditStore for SqlStore {
    async fn update_credits(
        &self,
        id: &str,
        op: CreditOp,
        boundary: Option<(i64, i64)>,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<CreditUpdate> {
        let mut tx = self.begin().await?;
        let Some(row) = self.lock_credits(&mut tx, id).await? else {
            tx.rollback().await?;
            return Ok(CreditUpdate::NotFound);
        };
        let (current, _) = refilled(&row, boundary, now);
        let (remaining, refill_amount, refill_day) = match (op, current) {
            (CreditOp::Set(None), _) => (None, None, None),
            (CreditOp::Set(Some(v)), _) => (Some(v), row.refill_amount, row.refill_day),
            (CreditOp::Increment(_) | CreditOp::Decrement(_), None) => {
                tx.rollback().await?;
                return Ok(CreditUpdate::Unlimited);
            }
            (CreditOp::Increment(n), Some(c)) => {
                (Some(c.saturating_add(n)), row.refill_amount, row.refill_day)
            }
            (CreditOp::Decrement(n), Some(c)) => {
                (Some((c - n).max(0)), row.refill_amount, row.refill_day)
            }
        };
        sqlx::query(
            "UPDATE keys SET remaining_requests = $1, refill_amount = $2, refill_day = $3, \
             last_refill_at_m = $4, updated_at_m = $4 WHERE id = $5",
        )
        .bind(remaining)
        .bind(refill_amount)
        .bind(refill_day)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        Self::insert_change(&mut tx, ChangeKind::Key, &row.hash, now).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(CreditUpdate::Done(CreditState {
            remaining,
            refill_amount,
            refill_day,
        }))
    }

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

    async fn spend_credits(
        &self,
        key_id: &str,
        cost: i64,
        now: i64,
        boundary: Option<(i64, i64)>,
    ) -> StoreResult<SpendRow> {
        let mut tx = self.begin().await?;
        let Some(row) = self.lock_credits(&mut tx, key_id).await? else {
            tx.rollback().await?;
            return Ok(SpendRow::Unlimited);
        };
        let (current, last_refill) = refilled(&row, boundary, now);
        let Some(current) = current else {
            tx.rollback().await?;
            return Ok(SpendRow::Unlimited);
        };
        let (after, outcome) = if current >= cost {
            (current - cost, SpendRow::Spent(current - cost))
        } else {
            (current, SpendRow::Insufficient(current))
        };
        if Some(after) != row.remaining || last_refill != row.last_refill_at {
            sqlx::query(
                "UPDATE keys SET remaining_requests = $1, last_refill_at_m = $2 WHERE id = $3",
            )
            .bind(after)
            .bind(last_refill)
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }
}
