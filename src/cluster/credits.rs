//! Credits in cluster mode: spent in Redis, never overspent, durable in the database.
//!
//! # The protocol
//!
//! A key's credits live in two places, and each credit is in exactly one of them:
//! - its database row, the durable part (`remaining`), changed only in row-locked transactions;
//! - its *holding* in Redis (`keyward:cr:v1:<key id>`): `held` credits moved out of the row,
//!   spent by `credits.lua` atomically, one script call per verification.
//!
//! A spend that `held` covers is one Redis call and touches no database. Otherwise the node
//! *moves* credits, under a per-key lock in Redis (`<holding>:lock`, with an expiry): the script
//! hands it what was still held (zeroing `held`), and the node, in one row-locked transaction,
//! adds that back to the row, applies the credit rule of [`crate::domain::credits`] (refill if
//! due, then spend), and takes up to [`MOVE_BLOCK`] credits out of the row again; then it
//! installs them as the new holding. A due refill always moves, so the database decides refills.
//! The holding also records the row's balance after the move (`db`); since only moves and spends
//! on the row (which lower it) change the row between moves, `held + db` is the balance a
//! verification reports, and `held + db < cost` refuses without a move.
//!
//! Credits cross between the two places only by taking them out of one before putting them into
//! the other, so a crash or a failure in between loses them (the key is refused sooner than it
//! should be) and never lets them be spent twice: **never overspend; when in doubt, refuse.**
//!
//! A management change of a key's credits (`updateCredits`, `updateKey` with credits, `rerollKey`)
//! first *fences* the key: it takes the lock and every held credit back into the row, so the row
//! is exact while the change is made; dropping the guard forgets the holding, and the next spend
//! moves from the changed row.
//!
//! # Failures (docs/cluster.md)
//!
//! - Redis unreachable: spends go to [`DatabaseLedger`], the row-locked transaction, on the
//!   row's part only; what Redis holds waits for Redis (refused meanwhile, not overspent).
//!   Management changes of credits answer 503 then, since part of the balance is out of reach;
//!   deletion still works.
//! - Redis restarts without persistence, or fails over to a replica that missed writes: the held
//!   credits of each key spent from in the last [`IDLE_HOLDING`] (at most [`MOVE_BLOCK`] each)
//!   are lost; keys start again from their rows. Every node hands holdings idle that long back to
//!   their rows ([`RedisLedger::return_idle`]), so idle keys risk nothing.
//! - A node dies while it holds a move lock: the lock expires (the request timeout plus
//!   [`LOCK_MARGIN`]); the credits it had taken back are lost.
//! - While Redis is unreachable, spends on the row apply no refill: the refill is decided by the
//!   next move, over the row and what Redis holds together (refused meanwhile, never doubled).
//! - The database unreachable: spends that `held` covers go on; a move answers 503 and hands
//!   back what it took when the transaction surely never started.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::cluster::link::RedisLink;
use crate::domain::credits::{
    balance_of, last_refill_boundary, spend_stored, Balance, DatabaseLedger, KeyCredits, Ledger,
    LedgerGuard, Spend,
};
use crate::model::{CreditWrite, StoredCredits};
use crate::store::{CreditStore, StoreError, StoreResult};

/// The most credits a move takes out of a row: what a Redis data loss can cost per key.
pub const MOVE_BLOCK: i64 = 1000;
/// How much longer a move or fence lock lives than the longest request (the request timeout):
/// a mover's request is dropped, and its transaction rolled back, before its lock can expire, so
/// no other node ever moves or fences the key while a move is still in flight.
pub const LOCK_MARGIN: Duration = Duration::from_secs(5);
/// A holding nobody spent from for this long goes back to its row.
pub const IDLE_HOLDING: Duration = Duration::from_secs(600);
/// How often idle holdings are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How long a spend waits for another node's move before it tries the row instead.
const BUSY_WAIT: Duration = Duration::from_millis(200);
/// How long a spend the row cannot cover waits for the move in flight, which may hold what the
/// row lacks, before it refuses: at most this, and at most half the request timeout, so the
/// request still gets its answer.
const MOVE_WAIT: Duration = Duration::from_secs(3);
/// How long a management change waits for a move in flight.
const FENCE_WAIT: Duration = Duration::from_secs(3);
/// Prefix of every holding, versioned with the script's layout.
const KEY_PREFIX: &str = "keyward:cr:v1:";

/// The script's answers (see credits.lua).
const SPENT: i64 = 0;
const SHORT: i64 = 1;
const MOVE: i64 = 2;
const BUSY: i64 = 3;
const DONE: i64 = 4;

/// The cluster's ledger: credits held in Redis, moved from and to the database row.
pub struct RedisLedger {
    link: Arc<RedisLink>,
    store: Arc<dyn CreditStore>,
    database: DatabaseLedger,
    script: redis::Script,
    /// How long move and fence locks live: longer than any request ([`LOCK_MARGIN`]).
    lock_ttl: Duration,
    /// How long a spend waits for a move in flight before a refusal stands ([`MOVE_WAIT`]).
    move_wait: Duration,
}

fn holding(key_id: &str) -> String {
    format!("{KEY_PREFIX}{key_id}")
}

fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl RedisLedger {
    /// `request_timeout`: the longest a request may run (its locks outlive it by
    /// [`LOCK_MARGIN`]).
    pub fn new(
        link: Arc<RedisLink>,
        store: Arc<dyn CreditStore>,
        request_timeout: Duration,
    ) -> Self {
        RedisLedger {
            link,
            database: DatabaseLedger::new(store.clone()),
            store,
            script: redis::Script::new(include_str!("credits.lua")),
            lock_ttl: request_timeout + LOCK_MARGIN,
            move_wait: MOVE_WAIT.min(request_timeout / 2),
        }
    }

    /// Runs one operation of the script on a key's holding: its code, number, and the row's part
    /// of the balance where it applies.
    async fn run(&self, key_id: &str, args: &[String]) -> Result<(i64, i64, i64), StoreError> {
        let key = holding(key_id);
        let mut invocation = self.script.prepare_invoke();
        invocation.key(&key).key(format!("{key}:lock"));
        for arg in args {
            invocation.arg(arg);
        }
        let (code, number, db): (i64, i64, String) = self
            .link
            .call(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await
            .map_err(|err| StoreError::Failed(format!("credits in Redis: {err}")))?;
        Ok((code, number, db.parse().unwrap_or(0)))
    }

    /// Moves credits for a spend (the caller holds the lock and took back `taken`).
    async fn move_and_spend(
        &self,
        key: &KeyCredits<'_>,
        cost: i64,
        now: i64,
        lock: &str,
        taken: i64,
    ) -> StoreResult<Spend> {
        let mut outcome = Spend::Unlimited;
        let mut moved: Option<(i64, i64, i64)> = None;
        let mut decide = |stored: &StoredCredits| {
            let (mut write, after, spent) = spend_stored(stored, key.refill, taken, cost, now)?;
            let block = after.remaining.clamp(0, MOVE_BLOCK);
            write.remaining = Some(after.remaining - block);
            moved = Some((block, after.remaining - block, after.refilled_at));
            outcome = spent;
            Some(write)
        };
        match self
            .store
            .modify_credits(key.key_id, &mut decide, None)
            .await
        {
            Ok(_) => {}
            Err(err) => {
                self.hand_back(key.key_id, lock, taken, &err).await;
                return Err(err);
            }
        }
        let (block, db, at) = moved.unwrap_or((0, 0, 0));
        let install = match moved {
            // An unlimited or vanished key: nothing to hold, free the lock.
            None => vec!["put_back".into(), lock.into(), "0".into()],
            Some(_) => vec![
                "install".into(),
                lock.into(),
                block.to_string(),
                db.to_string(),
                at.to_string(),
            ],
        };
        let lost = match self.run(key.key_id, &install).await {
            Ok((DONE, ..)) => None,
            Ok((code, ..)) => Some(format!("the move lock was lost (answer {code})")),
            Err(err) => Some(err.to_string()),
        };
        if let Some(why) = lost {
            // The row no longer has them and Redis may not: refuse them rather than risk
            // spending them twice.
            tracing::error!(
                key_id = key.key_id,
                credits = block,
                error = %why,
                "credits moved out of the database could not be handed to Redis and are lost"
            );
        }
        Ok(outcome)
    }

    /// After a failed transaction: gives what a move or fence took back to Redis when the
    /// database surely never saw it, else logs it as lost.
    async fn hand_back(&self, key_id: &str, lock: &str, taken: i64, err: &StoreError) {
        let give = if err.never_reached_database() {
            taken
        } else {
            0
        };
        if taken != give {
            tracing::error!(
                key_id,
                credits = taken,
                error = %err,
                "credits taken back from Redis may or may not have reached the database; \
                 they are withheld rather than risk spending them twice"
            );
        }
        let args = ["put_back".into(), lock.into(), give.to_string()];
        match self.run(key_id, &args).await {
            Ok((DONE, ..)) => {}
            Ok(_) => tracing::error!(
                key_id,
                credits = give,
                "the credit lock was lost; credits kept out of circulation"
            ),
            Err(err) => {
                tracing::warn!(key_id, error = %err, "could not free a credit lock in Redis; it expires by itself")
            }
        }
    }
}

impl RedisLedger {
    /// Adds credits taken back from a holding (under `lock`) to the key's row; on failure hands
    /// them back as [`RedisLedger::hand_back`] decides, and frees the lock.
    async fn give_back(&self, key_id: &str, lock: &str, taken: i64) -> StoreResult<()> {
        if taken == 0 {
            return Ok(());
        }
        let mut decide = |stored: &StoredCredits| {
            Some(CreditWrite {
                remaining: Some(stored.remaining?.saturating_add(taken)),
                refill_amount: stored.refill_amount,
                refill_day: stored.refill_day,
                last_refill_at: stored.last_refill_at,
            })
        };
        if let Err(err) = self.store.modify_credits(key_id, &mut decide, None).await {
            self.hand_back(key_id, lock, taken, &err).await;
            return Err(err);
        }
        Ok(())
    }

    fn release_handle(&self, key_id: &str, lock: String) -> ReleaseHandle {
        ReleaseHandle {
            link: self.link.clone(),
            script: self.script.clone(),
            key_id: key_id.to_string(),
            lock,
        }
    }

    /// Hands the holdings nobody has spent from for `idle` back to their keys' rows, so a Redis
    /// data loss can only cost the credits of keys in recent use. Returns how many it returned.
    pub async fn return_idle(&self, idle: Duration) -> StoreResult<u64> {
        let mut cursor: u64 = 0;
        let mut returned = 0;
        let mut failed = None;
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .link
                .call(|mut connection| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(format!("{KEY_PREFIX}*"))
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut connection)
                        .await
                })
                .await
                .map_err(|err| StoreError::Failed(format!("credits in Redis: {err}")))?;
            for key in keys.iter().filter(|k| !k.ends_with(":lock")) {
                let key_id = &key[KEY_PREFIX.len()..];
                // Bounded well inside the lock's life, like a request; one key failing (the
                // database away) does not stop the others.
                match tokio::time::timeout(
                    self.lock_ttl - LOCK_MARGIN,
                    self.return_one(key_id, idle),
                )
                .await
                {
                    Ok(Ok(true)) => returned += 1,
                    Ok(Ok(false)) => {}
                    Ok(Err(err)) => failed = Some(err),
                    Err(_) => {
                        failed = Some(StoreError::Failed("returning a holding timed out".into()))
                    }
                }
            }
            if next == 0 {
                return match failed {
                    Some(err) if returned == 0 => Err(err),
                    _ => Ok(returned),
                };
            }
            cursor = next;
        }
    }

    /// Hands one holding back if it is idle; whether it did.
    async fn return_one(&self, key_id: &str, idle: Duration) -> StoreResult<bool> {
        let lock = token();
        let args = [
            "sweep".to_string(),
            lock.clone(),
            millis(self.lock_ttl).to_string(),
            millis(idle).to_string(),
        ];
        match self.run(key_id, &args).await? {
            (DONE, -1, _) => Ok(false),
            (DONE, taken, _) => {
                self.give_back(key_id, &lock, taken).await?;
                self.release_handle(key_id, lock).release().await;
                Ok(true)
            }
            (code, ..) => Err(StoreError::Failed(format!(
                "credits in Redis: unexpected answer {code}"
            ))),
        }
    }

    /// The key's terms without its refill: for spends on the row alone, which must not refill
    /// what Redis may partly hold (the next move refills the whole).
    fn without_refill<'a>(key: &KeyCredits<'a>) -> KeyCredits<'a> {
        KeyCredits {
            refill: None,
            ..*key
        }
    }

    /// Spends on the row alone, exactly, without a refill (see [`Self::without_refill`]).
    async fn spend_on_row(&self, key: &KeyCredits<'_>, cost: i64, now: i64) -> StoreResult<Spend> {
        self.database
            .spend(&Self::without_refill(key), cost, now)
            .await
    }

    /// Returns idle holdings every [`SWEEP_EVERY`] until `shutdown`.
    pub async fn run_sweeper(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(SWEEP_EVERY) => {}
                _ = shutdown.changed() => return,
            }
            match self.return_idle(IDLE_HOLDING).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(keys = n, "idle credit holdings handed back to the database")
                }
                Err(err) => {
                    tracing::warn!(error = %err, "returning idle credit holdings failed; will retry")
                }
            }
        }
    }
}

#[async_trait]
impl Ledger for RedisLedger {
    async fn spend(&self, key: &KeyCredits<'_>, cost: i64, now: i64) -> StoreResult<Spend> {
        let boundary = key
            .refill
            .map_or(-1, |refill| last_refill_boundary(now, refill.day));
        let lock = token();
        let args = [
            "spend".to_string(),
            cost.to_string(),
            boundary.to_string(),
            lock.clone(),
            millis(self.lock_ttl).to_string(),
        ];
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        let mut tried_row = false;
        loop {
            let answer = match self.run(key.key_id, &args).await {
                Ok(answer) => answer,
                // Redis is out of reach: the row's part, exactly, in the database.
                Err(_) => return self.spend_on_row(key, cost, now).await,
            };
            match answer {
                (SPENT, held, db) => return Ok(Spend::Spent(held.saturating_add(db))),
                (SHORT, held, db) => return Ok(Spend::Insufficient(held.saturating_add(db))),
                (MOVE, taken, _) => return self.move_and_spend(key, cost, now, &lock, taken).await,
                (BUSY, ..) if started.elapsed() < BUSY_WAIT => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                // Another node has been moving for long (a slow database): spend on the row if
                // it covers the cost, which is exact. What it lacks may be in the move (a move
                // takes up to MOVE_BLOCK credits out of the row), so a refusal waits for the move
                // to finish and tries Redis again, up to `move_wait`, before it stands.
                (BUSY, ..) if !tried_row => {
                    tried_row = true;
                    match self.spend_on_row(key, cost, now).await? {
                        Spend::Insufficient(_) if started.elapsed() < self.move_wait => {}
                        outcome => return Ok(outcome),
                    }
                }
                (BUSY, ..) if started.elapsed() < self.move_wait => {
                    tokio::time::sleep(pause).await;
                }
                (BUSY, ..) => return self.spend_on_row(key, cost, now).await,
                (code, ..) => {
                    return Err(StoreError::Failed(format!(
                        "credits in Redis: unexpected answer {code}"
                    )))
                }
            }
        }
    }

    async fn balance(&self, key_id: &str, stored: Balance) -> Balance {
        let key = holding(key_id);
        let held = self
            .link
            .call(|mut connection| async move {
                redis::cmd("HGET")
                    .arg(&key)
                    .arg("held")
                    .query_async::<Option<i64>>(&mut connection)
                    .await
            })
            .await
            .ok()
            .flatten()
            .unwrap_or(0);
        Balance {
            remaining: stored.remaining.saturating_add(held),
            ..stored
        }
    }

    async fn current(&self, key: &KeyCredits<'_>, now: i64) -> StoreResult<Option<i64>> {
        let key_holding = holding(key.key_id);
        let read = self
            .link
            .call(|mut connection| async move {
                redis::cmd("HMGET")
                    .arg(&key_holding)
                    .arg("held")
                    .arg("db")
                    .arg("at")
                    .query_async::<(Option<i64>, Option<i64>, Option<i64>)>(&mut connection)
                    .await
            })
            .await;
        let Ok((held, db, at)) = read else {
            return self.database.current(&Self::without_refill(key), now).await;
        };
        let held = held.unwrap_or(0);
        let due = |at: i64| {
            key.refill
                .is_some_and(|refill| at < last_refill_boundary(now, refill.day))
        };
        if let (Some(db), Some(at)) = (db, at) {
            if !due(at) {
                return Ok(Some(held.saturating_add(db)));
            }
        }
        let stored = balance_of(self.store.load_credits(key.key_id).await?);
        Ok(stored.map(|mut balance| {
            balance.remaining = balance.remaining.saturating_add(held);
            balance.refill(key.refill, now);
            balance.remaining
        }))
    }

    async fn exclusive(&self, key_id: &str) -> StoreResult<LedgerGuard> {
        let lock = token();
        let args = [
            "fence".to_string(),
            lock.clone(),
            millis(self.lock_ttl).to_string(),
        ];
        let started = Instant::now();
        let taken = loop {
            match self.run(key_id, &args).await? {
                (DONE, taken, _) => break taken,
                (BUSY, ..) if started.elapsed() < FENCE_WAIT => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                (BUSY, ..) => {
                    return Err(StoreError::Failed(format!(
                        "the credits of key {key_id} are being moved by another node"
                    )))
                }
                (code, ..) => {
                    return Err(StoreError::Failed(format!(
                        "credits in Redis: unexpected answer {code}"
                    )))
                }
            }
        };
        self.give_back(key_id, &lock, taken).await?;
        let release = self.release_handle(key_id, lock);
        Ok(LedgerGuard::releasing(move || {
            tokio::spawn(release.release());
        }))
    }

    async fn flush(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// What a fence's guard needs to lift it once the management change is done.
struct ReleaseHandle {
    link: Arc<RedisLink>,
    script: redis::Script,
    key_id: String,
    lock: String,
}

impl ReleaseHandle {
    async fn release(self) {
        let key = holding(&self.key_id);
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(&key)
            .key(format!("{key}:lock"))
            .arg("release")
            .arg(&self.lock);
        let released: Result<(i64, i64, String), _> = self
            .link
            .call(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await;
        if let Err(err) = released {
            tracing::warn!(key_id = %self.key_id, error = %err, "could not lift a credit fence in Redis; it expires by itself");
        }
    }
}
