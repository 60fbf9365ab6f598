//! Credits: a key's usage balance, its refill schedule, and the ledgers that spend it exactly.
//!
//! Refill is computed, not scheduled: at the first use after a refill boundary (00:00 UTC daily, or
//! the refill day of the month, clamped to the month's last day) the balance is raised to the refill
//! amount, never lowered. Nothing depends on a job running.
//!
//! Two ledgers implement [`Ledger`]:
//! - [`LocalLedger`] (the embedded SQLite server) keeps the authoritative balance of each key in
//!   memory, decides every spend under that key's lock, and writes dirty balances back in one
//!   transaction every [`FLUSH_INTERVAL`] and at shutdown. Exact for any concurrency in one process.
//!   A crash (kill -9) can lose the spends of the last flush interval: the database then shows a
//!   balance up to that much higher than what was acknowledged.
//! - [`DatabaseLedger`] (PostgreSQL, several nodes) runs the same rule on the key's row inside one
//!   transaction that holds the row's lock (`SELECT ... FOR UPDATE`, then `UPDATE`), so the
//!   database row is the only truth and nodes can never overspend together.
//! - In cluster mode (`--redis`) the ledger is `cluster::credits::RedisLedger`, which moves
//!   credits from the row into Redis in blocks and spends them there, with [`DatabaseLedger`] as
//!   its fallback.
//!
//! The rule itself (refill if due, then spend) is written once, in [`spend`] and [`apply`]; the
//! store only locks, reads and writes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use time::{Date, Month, OffsetDateTime, Time};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::model::{CreditOp, CreditRow, CreditState, CreditUpdate, CreditWrite, StoredCredits};
use crate::store::{CreditStore, StoreResult};

/// How often [`LocalLedger`] writes dirty balances back.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// A refill schedule: raise the balance to `amount` daily, or monthly on `day`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refill {
    pub amount: i64,
    /// `None`: daily. `Some(d)`: monthly on day `d` (1..=31).
    pub day: Option<i64>,
}

fn month_start(year: i32, month: Month) -> Date {
    Date::from_calendar_date(year, month, 1).unwrap_or(Date::MIN)
}

fn day_in_month(year: i32, month: Month, day: i64) -> Date {
    let last = month.length(year);
    let day = day.clamp(1, i64::from(last)) as u8;
    Date::from_calendar_date(year, month, day).unwrap_or_else(|_| month_start(year, month))
}

fn millis(date: Date) -> i64 {
    let at = date.with_time(Time::MIDNIGHT).assume_utc();
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The most recent refill instant at or before `now_ms`.
pub fn last_refill_boundary(now_ms: i64, day: Option<i64>) -> i64 {
    let now = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let today = now.date();
    match day {
        None => millis(today),
        Some(day) => {
            let this_month = day_in_month(today.year(), today.month(), day);
            if this_month <= today {
                millis(this_month)
            } else {
                let previous = month_start(today.year(), today.month())
                    .previous_day()
                    .unwrap_or(Date::MIN);
                millis(day_in_month(previous.year(), previous.month(), day))
            }
        }
    }
}

/// A balance and when it was last refilled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    pub remaining: i64,
    /// When the balance was last refilled (or the key created, before any refill).
    pub refilled_at: i64,
}

impl Balance {
    /// Applies a refill that fell due since `refilled_at`. Returns whether one did.
    pub fn refill(&mut self, refill: Option<Refill>, now: i64) -> bool {
        let Some(refill) = refill else { return false };
        if self.refilled_at >= last_refill_boundary(now, refill.day) {
            return false;
        }
        self.remaining = self.remaining.max(refill.amount);
        self.refilled_at = now;
        true
    }
}

/// What a key's credit settings are, as the verification path knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCredits<'a> {
    pub key_id: &'a str,
    pub refill: Option<Refill>,
    pub created_at: i64,
}

/// The result of trying to spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// Spent; the balance after.
    Spent(i64),
    /// Not enough; the balance, unchanged.
    Insufficient(i64),
    /// The key has no balance: it is unlimited (or gone).
    Unlimited,
}

/// Spends `cost` credits of a balance, after applying the refill due since its last one (see
/// [`Balance::refill`]): all of the cost when the balance covers it, else nothing. Returns the
/// balance after, and the outcome (never [`Spend::Unlimited`]).
pub fn spend(balance: Balance, refill: Option<Refill>, cost: i64, now: i64) -> (Balance, Spend) {
    let mut after = balance;
    after.refill(refill, now);
    if after.remaining >= cost {
        after.remaining -= cost;
        (after, Spend::Spent(after.remaining))
    } else {
        (after, Spend::Insufficient(after.remaining))
    }
}

/// Applies a `keys.updateCredits` operation to a key's stored credits, after the refill due since
/// their last one: the settings after, or [`CreditUpdate::Unlimited`] for an increment or
/// decrement of an unlimited key (which changes nothing).
///
/// `Set(None)` makes the key unlimited and drops its refill; `Set(Some(n))` keeps the refill
/// settings; `Increment` saturates; `Decrement` floors at zero. `refill` is the schedule the
/// caller knows; it applies only while the stored key has a refill too.
pub fn apply(
    stored: &StoredCredits,
    refill: Option<Refill>,
    op: CreditOp,
    now: i64,
) -> CreditUpdate {
    let current = stored_balance(stored).map(|mut balance| {
        balance.refill(locked_refill(refill, stored), now);
        balance.remaining
    });
    let kept = |remaining| CreditState {
        remaining: Some(remaining),
        refill_amount: stored.refill_amount,
        refill_day: stored.refill_day,
    };
    CreditUpdate::Done(match (op, current) {
        (CreditOp::Set(None), _) => CreditState {
            remaining: None,
            refill_amount: None,
            refill_day: None,
        },
        (CreditOp::Set(Some(v)), _) => kept(v),
        (CreditOp::Increment(_) | CreditOp::Decrement(_), None) => return CreditUpdate::Unlimited,
        (CreditOp::Increment(n), Some(c)) => kept(c.saturating_add(n)),
        (CreditOp::Decrement(n), Some(c)) => kept((c - n).max(0)),
    })
}

/// Credits read from the database as a balance; `None` when unlimited.
fn stored_balance(stored: &StoredCredits) -> Option<Balance> {
    Some(Balance {
        remaining: stored.remaining?,
        refilled_at: stored.last_refill_at.unwrap_or(stored.created_at),
    })
}

/// The refill schedule to apply to credits read under lock: the one the caller knows (from its
/// view of the key, which sets the amount), unless the stored key no longer has one.
fn locked_refill(known: Option<Refill>, stored: &StoredCredits) -> Option<Refill> {
    known.filter(|_| stored.refill_amount.is_some())
}

/// [`spend`] on credits read under lock, with `returned` credits (held outside the database until
/// now) added back first: the write that records the outcome, the balance after, and the outcome.
/// `None` for an unlimited key (nothing to write). `refill` is the schedule the caller knows.
pub fn spend_stored(
    stored: &StoredCredits,
    refill: Option<Refill>,
    returned: i64,
    cost: i64,
    now: i64,
) -> Option<(CreditWrite, Balance, Spend)> {
    let before = stored_balance(stored)?;
    let whole = Balance {
        remaining: before.remaining.saturating_add(returned),
        ..before
    };
    let (after, outcome) = spend(whole, locked_refill(refill, stored), cost, now);
    let write = CreditWrite {
        remaining: Some(after.remaining),
        refill_amount: stored.refill_amount,
        refill_day: stored.refill_day,
        // Unchanged (possibly still unset) unless refilled.
        last_refill_at: if after.refilled_at != before.refilled_at {
            Some(after.refilled_at)
        } else {
            stored.last_refill_at
        },
    };
    Some((write, after, outcome))
}

/// Held by a management operation that changes a key's credits: no spend of that key and no
/// flush runs until it is dropped, and the ledger reloads the key afterwards.
pub struct LedgerGuard {
    _flush: Option<OwnedMutexGuard<()>>,
    slot: Option<OwnedMutexGuard<Slot>>,
    on_release: Option<Box<dyn FnOnce() + Send>>,
}

impl LedgerGuard {
    /// A guard that holds nothing (a ledger whose truth is the database row).
    pub fn none() -> Self {
        LedgerGuard {
            _flush: None,
            slot: None,
            on_release: None,
        }
    }

    /// A guard that runs `release` when dropped (it must not block: spawn what waits).
    pub fn releasing(release: impl FnOnce() + Send + 'static) -> Self {
        LedgerGuard {
            _flush: None,
            slot: None,
            on_release: Some(Box::new(release)),
        }
    }
}

impl Drop for LedgerGuard {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.as_mut() {
            slot.balance = None;
            slot.dirty = false;
        }
        if let Some(release) = self.on_release.take() {
            release();
        }
    }
}

/// Spends credits.
#[async_trait]
pub trait Ledger: Send + Sync + 'static {
    /// Spends `cost` credits of the key, applying any due refill first.
    async fn spend(&self, key: &KeyCredits<'_>, cost: i64, now: i64) -> StoreResult<Spend>;
    /// The key's balance as this ledger knows it, given the one stored in its row (which may
    /// lag behind the ledger, or leave out what the ledger holds elsewhere): for views of a key.
    /// Never fails; never reads the database.
    async fn balance(&self, key_id: &str, stored: Balance) -> Balance;
    /// The key's balance now, with any due refill applied, without spending: for verifications
    /// that end before the credit step but still report the balance.
    async fn current(&self, key: &KeyCredits<'_>, now: i64) -> StoreResult<Option<i64>>;
    /// Takes the key out of circulation while a management operation rewrites its credits in the
    /// database: writes back any unflushed balance first, and reloads after the guard is dropped.
    async fn exclusive(&self, key_id: &str) -> StoreResult<LedgerGuard>;
    /// Writes back everything not yet written.
    async fn flush(&self) -> StoreResult<()>;
}

/// The state of one key in [`LocalLedger`].
#[derive(Debug, Default)]
pub struct Slot {
    /// `None` until loaded (or after a management change): the next use reads the database.
    balance: Option<Option<Balance>>,
    dirty: bool,
}

const SHARDS: usize = 64;

/// The in-memory ledger of a single server process.
pub struct LocalLedger {
    store: Arc<dyn CreditStore>,
    shards: Vec<StdMutex<HashMap<String, Arc<Mutex<Slot>>>>>,
    dirty: StdMutex<HashSet<String>>,
    flush_lock: Arc<Mutex<()>>,
}

fn shard_of(key_id: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % SHARDS as u64) as usize
}

/// A stored row's balance; `None` when the key is gone or unlimited.
pub fn balance_of(row: Option<CreditRow>) -> Option<Balance> {
    let row = row?;
    Some(Balance {
        remaining: row.remaining?,
        refilled_at: row.last_refill_at.unwrap_or(row.created_at),
    })
}

impl LocalLedger {
    pub fn new(store: Arc<dyn CreditStore>) -> Self {
        LocalLedger {
            store,
            shards: (0..SHARDS).map(|_| StdMutex::new(HashMap::new())).collect(),
            dirty: StdMutex::new(HashSet::new()),
            flush_lock: Arc::new(Mutex::new(())),
        }
    }

    fn slot(&self, key_id: &str) -> Arc<Mutex<Slot>> {
        let mut shard = self.shards[shard_of(key_id)]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = shard.get(key_id) {
            return slot.clone();
        }
        shard.entry(key_id.to_string()).or_default().clone()
    }

    async fn loaded<'a>(
        &self,
        slot: &'a mut Slot,
        key_id: &str,
    ) -> StoreResult<&'a mut Option<Balance>> {
        if slot.balance.is_none() {
            slot.balance = Some(balance_of(self.store.load_credits(key_id).await?));
        }
        Ok(slot.balance.get_or_insert(None))
    }

    fn mark_dirty(&self, key_id: &str) {
        self.dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key_id.to_string());
    }

    /// Drops clean slots, bounding memory to the keys in active use. Called by the flusher.
    pub fn evict_clean(&self) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            shard.retain(|_, slot| match slot.try_lock() {
                Ok(s) => s.dirty,
                Err(_) => true,
            });
        }
    }

    /// Flushes every [`FLUSH_INTERVAL`] until `shutdown`, then a last time.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut rounds: u64 = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(FLUSH_INTERVAL) => {}
                _ = shutdown.changed() => break,
            }
            if let Err(err) = self.flush().await {
                tracing::error!(error = %err, "credit flush failed; will retry");
            }
            rounds += 1;
            if rounds.is_multiple_of(600) {
                self.evict_clean();
            }
        }
        if let Err(err) = self.flush().await {
            tracing::error!(error = %err, "final credit flush failed");
        }
    }
}

#[async_trait]
impl Ledger for LocalLedger {
    async fn spend(&self, key: &KeyCredits<'_>, cost: i64, now: i64) -> StoreResult<Spend> {
        let slot = self.slot(key.key_id);
        let mut slot = slot.lock().await;
        let Some(balance) = self.loaded(&mut slot, key.key_id).await?.as_mut() else {
            return Ok(Spend::Unlimited);
        };
        let before = *balance;
        let outcome;
        (*balance, outcome) = spend(before, key.refill, cost, now);
        // A refill always moves `refilled_at` (to now, past the boundary it was before).
        let refilled = balance.refilled_at != before.refilled_at;
        // Only a clean slot needs registering as dirty: the flusher writes what it finds.
        if (refilled || matches!(outcome, Spend::Spent(_)) && cost > 0) && !slot.dirty {
            slot.dirty = true;
            self.mark_dirty(key.key_id);
        }
        Ok(outcome)
    }

    async fn balance(&self, key_id: &str, stored: Balance) -> Balance {
        let slot = self.shards[shard_of(key_id)]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key_id)
            .cloned();
        let held = slot.and_then(|slot| slot.try_lock().ok().and_then(|s| s.balance.flatten()));
        held.unwrap_or(stored)
    }

    async fn current(&self, key: &KeyCredits<'_>, now: i64) -> StoreResult<Option<i64>> {
        let slot = self.slot(key.key_id);
        let mut slot = slot.lock().await;
        Ok(self.loaded(&mut slot, key.key_id).await?.map(|mut b| {
            b.refill(key.refill, now);
            b.remaining
        }))
    }

    async fn exclusive(&self, key_id: &str) -> StoreResult<LedgerGuard> {
        let flush = self.flush_lock.clone().lock_owned().await;
        let slot = self.slot(key_id).lock_owned().await;
        if slot.dirty {
            if let Some(Some(balance)) = slot.balance {
                self.store
                    .write_balances(&[(key_id.to_string(), balance.remaining, balance.refilled_at)])
                    .await?;
            }
        }
        Ok(LedgerGuard {
            _flush: Some(flush),
            slot: Some(slot),
            on_release: None,
        })
    }

    async fn flush(&self) -> StoreResult<()> {
        let _flush = self.flush_lock.lock().await;
        let keys: Vec<String> = self
            .dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(keys.len());
        for key_id in &keys {
            let slot = self.slot(key_id);
            let mut slot = slot.lock().await;
            if let (true, Some(Some(b))) = (slot.dirty, slot.balance) {
                rows.push((key_id.clone(), b.remaining, b.refilled_at));
                slot.dirty = false;
            }
        }
        if let Err(err) = self.store.write_balances(&rows).await {
            // Put them back so the next round retries.
            for (key_id, ..) in &rows {
                self.slot(key_id).lock().await.dirty = true;
                self.mark_dirty(key_id);
            }
            return Err(err);
        }
        Ok(())
    }
}

/// The ledger of several nodes over one PostgreSQL database: every spend is one transaction over
/// the key's locked row.
///
/// Spends of one key on this node also take turns in memory first ([`KeyTurns`]), so a hot key
/// has one transaction at a time waiting on its row instead of every pooled connection: the rest
/// of the pool stays free for other keys, events and management.
pub struct DatabaseLedger {
    store: Arc<dyn CreditStore>,
    turns: KeyTurns,
}

impl DatabaseLedger {
    pub fn new(store: Arc<dyn CreditStore>) -> Self {
        DatabaseLedger {
            store,
            turns: KeyTurns::default(),
        }
    }
}

/// One queue per key in use: an async lock made on first use and dropped by the last holder.
struct KeyTurns {
    shards: Vec<StdMutex<HashMap<String, Arc<Mutex<()>>>>>,
}

impl Default for KeyTurns {
    fn default() -> Self {
        KeyTurns {
            shards: (0..SHARDS).map(|_| StdMutex::new(HashMap::new())).collect(),
        }
    }
}

/// A key's turn; dropping it lets the next spend of that key go.
struct Turn<'a> {
    turns: &'a KeyTurns,
    key_id: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyTurns {
    async fn take(&self, key_id: &str) -> Turn<'_> {
        let lock = self.shards[shard_of(key_id)]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key_id.to_string())
            .or_default()
            .clone();
        Turn {
            turns: self,
            key_id: key_id.to_string(),
            guard: Some(lock.lock_owned().await),
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut shard = self.turns.shards[shard_of(&self.key_id)]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.guard = None;
        // Nobody waits (only the map holds it): forget the key.
        if shard
            .get(&self.key_id)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            shard.remove(&self.key_id);
        }
    }
}

#[async_trait]
impl Ledger for DatabaseLedger {
    async fn spend(&self, key: &KeyCredits<'_>, cost: i64, now: i64) -> StoreResult<Spend> {
        // Stays `Unlimited` for a key that is gone (`decide` never runs) or has no balance.
        let mut outcome = Spend::Unlimited;
        let mut decide = |stored: &StoredCredits| {
            let (write, _, spent) = spend_stored(stored, key.refill, 0, cost, now)?;
            outcome = spent;
            Some(write)
        };
        let _turn = self.turns.take(key.key_id).await;
        self.store
            .modify_credits(key.key_id, &mut decide, None)
            .await?;
        Ok(outcome)
    }

    async fn balance(&self, _key_id: &str, stored: Balance) -> Balance {
        stored
    }

    async fn current(&self, key: &KeyCredits<'_>, now: i64) -> StoreResult<Option<i64>> {
        Ok(
            balance_of(self.store.load_credits(key.key_id).await?).map(|mut b| {
                b.refill(key.refill, now);
                b.remaining
            }),
        )
    }

    async fn exclusive(&self, _key_id: &str) -> StoreResult<LedgerGuard> {
        Ok(LedgerGuard::none())
    }

    async fn flush(&self) -> StoreResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u8, d: u8, h: u8) -> i64 {
        let date = Date::from_calendar_date(y, Month::try_from(m).unwrap(), d).unwrap();
        let t = date.with_hms(h, 0, 0).unwrap().assume_utc();
        (t.unix_timestamp_nanos() / 1_000_000) as i64
    }

    #[test]
    fn daily_boundary_is_midnight_utc_of_today() {
        assert_eq!(
            last_refill_boundary(at(2026, 3, 5, 13), None),
            at(2026, 3, 5, 0)
        );
        assert_eq!(
            last_refill_boundary(at(2026, 3, 5, 0), None),
            at(2026, 3, 5, 0)
        );
    }

    #[test]
    fn monthly_boundary_is_this_or_last_months_refill_day() {
        assert_eq!(
            last_refill_boundary(at(2026, 3, 20, 5), Some(15)),
            at(2026, 3, 15, 0)
        );
        assert_eq!(
            last_refill_boundary(at(2026, 3, 10, 5), Some(15)),
            at(2026, 2, 15, 0)
        );
        // Day 31 in a short month falls on its last day.
        assert_eq!(
            last_refill_boundary(at(2026, 2, 28, 1), Some(31)),
            at(2026, 2, 28, 0)
        );
        assert_eq!(
            last_refill_boundary(at(2026, 2, 27, 1), Some(31)),
            at(2026, 1, 31, 0)
        );
        assert_eq!(
            last_refill_boundary(at(2024, 2, 29, 1), Some(30)),
            at(2024, 2, 29, 0)
        );
        // Across a year boundary.
        assert_eq!(
            last_refill_boundary(at(2026, 1, 2, 1), Some(5)),
            at(2025, 12, 5, 0)
        );
    }

    #[test]
    fn refill_raises_but_never_lowers_and_only_once_per_period() {
        let daily = Some(Refill {
            amount: 10,
            day: None,
        });
        let mut b = Balance {
            remaining: 3,
            refilled_at: at(2026, 3, 4, 12),
        };
        assert!(!b.refill(daily, at(2026, 3, 4, 23)));
        assert_eq!(b.remaining, 3);
        assert!(b.refill(daily, at(2026, 3, 5, 1)));
        assert_eq!(b.remaining, 10);
        b.remaining = 4;
        assert!(!b.refill(daily, at(2026, 3, 5, 22)));
        assert_eq!(b.remaining, 4);
        let mut rich = Balance {
            remaining: 50,
            refilled_at: at(2026, 3, 4, 12),
        };
        assert!(rich.refill(daily, at(2026, 3, 6, 0)));
        assert_eq!(rich.remaining, 50);
    }

    #[tokio::test]
    async fn a_keys_turns_follow_each_other_and_are_forgotten_after() {
        let turns = KeyTurns::default();
        let first = turns.take("key_a").await;
        // Another key goes at once; the same key waits for the first turn.
        drop(turns.take("key_b").await);
        let waiting = tokio::time::timeout(Duration::from_millis(50), turns.take("key_a")).await;
        assert!(waiting.is_err(), "the same key must wait its turn");
        drop(first);
        drop(turns.take("key_a").await);
        let held: usize = turns.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert_eq!(held, 0, "keys nobody waits for are forgotten");
    }

    const DAILY: Option<Refill> = Some(Refill {
        amount: 10,
        day: None,
    });

    #[test]
    fn spend_takes_all_of_the_cost_or_nothing() {
        let b = Balance {
            remaining: 5,
            refilled_at: at(2026, 3, 5, 1),
        };
        let now = at(2026, 3, 5, 2);
        assert_eq!(
            spend(b, DAILY, 5, now),
            (Balance { remaining: 0, ..b }, Spend::Spent(0))
        );
        assert_eq!(spend(b, DAILY, 6, now), (b, Spend::Insufficient(5)));
        assert_eq!(spend(b, None, 0, now), (b, Spend::Spent(5)));
        let empty = Balance { remaining: 0, ..b };
        assert_eq!(spend(empty, DAILY, 0, now), (empty, Spend::Spent(0)));
        assert_eq!(spend(empty, DAILY, 1, now), (empty, Spend::Insufficient(0)));
    }

    #[test]
    fn spend_refills_first_when_a_refill_is_due() {
        let b = Balance {
            remaining: 2,
            refilled_at: at(2026, 3, 4, 12),
        };
        let now = at(2026, 3, 5, 1);
        assert_eq!(
            spend(b, DAILY, 3, now),
            (
                Balance {
                    remaining: 7,
                    refilled_at: now
                },
                Spend::Spent(7)
            )
        );
        // A refill that is due happens even when the spend is refused.
        assert_eq!(
            spend(b, DAILY, 11, now),
            (
                Balance {
                    remaining: 10,
                    refilled_at: now
                },
                Spend::Insufficient(10)
            )
        );
        // Without a schedule nothing is due.
        assert_eq!(spend(b, None, 3, now), (b, Spend::Insufficient(2)));
    }

    fn stored(remaining: Option<i64>, refill_amount: Option<i64>) -> StoredCredits {
        StoredCredits {
            remaining,
            refill_amount,
            refill_day: refill_amount.map(|_| 15),
            last_refill_at: Some(at(2026, 3, 4, 12)),
            created_at: at(2026, 1, 1, 0),
        }
    }

    fn done(remaining: Option<i64>, refill_amount: Option<i64>) -> CreditUpdate {
        CreditUpdate::Done(CreditState {
            remaining,
            refill_amount,
            refill_day: refill_amount.map(|_| 15),
        })
    }

    #[test]
    fn apply_sets_increments_and_decrements() {
        let now = at(2026, 3, 4, 13);
        let s = stored(Some(4), Some(10));
        let refill = Some(Refill {
            amount: 10,
            day: Some(15),
        });
        assert_eq!(
            apply(&s, refill, CreditOp::Set(Some(7)), now),
            done(Some(7), Some(10))
        );
        assert_eq!(
            apply(&s, refill, CreditOp::Set(None), now),
            done(None, None)
        );
        assert_eq!(
            apply(&s, refill, CreditOp::Increment(3), now),
            done(Some(7), Some(10))
        );
        assert_eq!(
            apply(&s, refill, CreditOp::Decrement(3), now),
            done(Some(1), Some(10))
        );
        assert_eq!(
            apply(&s, refill, CreditOp::Decrement(9), now),
            done(Some(0), Some(10))
        );
        let rich = stored(Some(i64::MAX - 1), None);
        assert_eq!(
            apply(&rich, None, CreditOp::Increment(5), now),
            done(Some(i64::MAX), None)
        );
    }

    #[test]
    fn apply_leaves_unlimited_keys_to_set_only() {
        let now = at(2026, 3, 4, 13);
        let s = stored(None, None);
        assert_eq!(
            apply(&s, None, CreditOp::Increment(1), now),
            CreditUpdate::Unlimited
        );
        assert_eq!(
            apply(&s, None, CreditOp::Decrement(1), now),
            CreditUpdate::Unlimited
        );
        assert_eq!(
            apply(&s, None, CreditOp::Set(Some(3)), now),
            done(Some(3), None)
        );
        assert_eq!(apply(&s, None, CreditOp::Set(None), now), done(None, None));
    }

    #[test]
    fn apply_refills_first_unless_the_stored_key_has_no_refill_any_more() {
        // Monthly on the 15th, last refilled on the 4th of March: due from the 15th.
        let now = at(2026, 3, 16, 0);
        let refill = Some(Refill {
            amount: 10,
            day: Some(15),
        });
        let s = stored(Some(4), Some(10));
        assert_eq!(
            apply(&s, refill, CreditOp::Increment(1), now),
            done(Some(11), Some(10))
        );
        assert_eq!(
            apply(&s, refill, CreditOp::Decrement(1), now),
            done(Some(9), Some(10))
        );
        // Not due yet.
        let early = at(2026, 3, 14, 0);
        assert_eq!(
            apply(&s, refill, CreditOp::Increment(1), early),
            done(Some(5), Some(10))
        );
        // The caller's view of the key had a refill; the stored key has none.
        let cleared = stored(Some(4), None);
        assert_eq!(
            apply(&cleared, refill, CreditOp::Increment(1), now),
            done(Some(5), None)
        );
    }
}
