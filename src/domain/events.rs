//! Analytics events (verifications and rate-limit decisions): recorded off the request path and
//! written in batches.
//!
//! The request path only pushes a [`PendingEvent`] or [`PendingRatelimit`] into a bounded queue
//! ([`EventSink::record`] never waits for the writer, which holds the queue's lock only to swap
//! vectors, and copies no ids: a verification points at the cached key, a decision at the cached
//! namespace). A writer drains it and writes up to [`BATCH`] events per
//! transaction, at least every [`FLUSH_INTERVAL`], and drains the rest at shutdown. The rollups'
//! counts (events per minute, hour, day and month bucket and per everything a query can group by)
//! gather in memory and are written every [`ROLLUP_INTERVAL`], so a key verified many times in
//! that span costs one upsert per bucket rather than one per event; a round of them is written
//! [`ROLLUP_CHUNK`] rows a transaction, between the raw batches. Where the store offers a synchronous [`EventLog`] (SQLite: a connection of
//! its own with a prepared statement) the writer is a dedicated thread that takes the queue every
//! [`WRITER_TICK`];
//! otherwise it is an async task using [`crate::store::EventStore::insert_events`]. If the
//! database falls so far behind that the queue fills, events are dropped and counted rather than
//! slowing verifications down. Old events and rollups are pruned in the background
//! ([`Retention`]).
//!
//! The writer also keeps each key's latest verification time and writes them to
//! `key_last_used` (what `lastUsedAt` shows) every [`LAST_USED_INTERVAL`] by default and at
//! shutdown: one update per key used in the interval, however often it was verified, sorted by key
//! id and written a chunk per writer tick, instead of a random index write per verification.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::domain::keys::cache::CachedKey;
use crate::ids::RequestId;
use crate::model::{
    AnalyticsCutoffs, EventBatch, LastUse, Namespace, NewRatelimitEvent, NewVerification,
};
use crate::store::{EventLog, EventStore};

mod rollups;

use rollups::Rollups;
pub use rollups::ROLLUP_INTERVAL;

/// Events kept in memory before new ones are dropped.
pub const CAPACITY: usize = 100_000;
/// Rows per write.
pub const BATCH: usize = 5_000;
/// The longest an event waits before it is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// How often the dedicated writer thread looks at the queue. Short, so that each round writes a
/// small batch: the writer shares the cores with the request path, and at 56,000 verifications a
/// second a 50 ms round was about 8 ms of one core's time in one go, which every request that
/// arrived meanwhile waited behind (measured p99 of keys.verifyKey at saturation: 3.6 ms at
/// 50 ms, 2.7 ms at 10 ms, 1.9-2.0 ms at 5 ms; the writer's CPU per event grows by about 15%
/// from 50 to 5 ms, with more, smaller commits).
pub const WRITER_TICK: Duration = Duration::from_millis(5);

/// How often keys' `lastUsedAt` is brought up to date, by default. Unkey's own is about a minute
/// late too.
pub const LAST_USED_INTERVAL: Duration = Duration::from_secs(60);

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// How long analytics is kept, in days: the raw events and the minute and hour rollups for
/// `days` (`--analytics-retention-days`, 90 by default), the day rollups for at least a year and
/// the month rollups for at least three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { days: 90 }
    }
}

impl Retention {
    pub const MIN_DAY_ROLLUP_DAYS: i64 = 365;
    pub const MIN_MONTH_ROLLUP_DAYS: i64 = 3 * 365;

    /// Where each table is cut at `now_ms`.
    pub fn cutoffs(self, now_ms: i64) -> AnalyticsCutoffs {
        let days = i64::from(self.days);
        AnalyticsCutoffs {
            raw_ms: now_ms - days * DAY_MS,
            day_ms: now_ms - days.max(Self::MIN_DAY_ROLLUP_DAYS) * DAY_MS,
            month_ms: now_ms - days.max(Self::MIN_MONTH_ROLLUP_DAYS) * DAY_MS,
        }
    }
}

/// Where verifications come from, in the `source` column. Unkey also has `gateway`.
pub const SOURCE_API: &str = "api";

/// A verification as the request path hands it over.
pub struct PendingEvent {
    pub key: Arc<CachedKey>,
    pub request_id: RequestId,
    pub time_ms: i64,
    pub outcome: &'static str,
    pub tags: Vec<String>,
    pub spent_credits: i64,
    pub latency_us: i64,
}

/// A rate-limit decision as the request path hands it over.
pub struct PendingRatelimit {
    pub namespace: Arc<Namespace>,
    pub request_id: RequestId,
    pub time_ms: i64,
    pub identifier: String,
    pub passed: bool,
    pub latency_us: i64,
    pub override_id: Option<String>,
    pub limit: i64,
    pub remaining: i64,
    pub reset_at_ms: i64,
    pub tokens: i64,
}

/// What travels through the queue.
pub enum Event {
    Verification(PendingEvent),
    Ratelimit(PendingRatelimit),
}

/// The queue between the request path and the writer: the events recorded since the writer last
/// took them, in a vector behind a lock. Recording is a lock, a write and an unlock; the writer
/// takes the whole vector at once and leaves the one it emptied in its place, so the memory the
/// request path writes into is the memory the writer read a round ago, still in the CPU's cache
/// (a channel of [`CAPACITY`] slots walks through megabytes and misses the cache on each event),
/// and neither side allocates once both vectors have grown to the load.
#[derive(Default)]
struct Queue {
    pending: Mutex<Vec<Event>>,
}

impl Queue {
    fn pending(&self) -> MutexGuard<'_, Vec<Event>> {
        // A panic while the lock was held cannot leave the vector half-written.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The request path's handle.
#[derive(Clone)]
pub struct EventSink {
    queue: Arc<Queue>,
    dropped: Arc<AtomicU64>,
    rounds: Arc<Rounds>,
}

/// How many rounds the writer has finished, for those waiting on the next one.
#[derive(Default)]
struct Rounds {
    done: AtomicU64,
    notify: tokio::sync::Notify,
    /// Someone waits in [`EventSink::written`]: write the rollups' pending counts now.
    flush: AtomicBool,
}

impl Rounds {
    fn finished(&self) {
        self.done.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

impl EventSink {
    /// Queues a verification; drops it (and counts the drop) if the queue is full.
    pub fn record(&self, event: PendingEvent) {
        self.send(Event::Verification(event));
    }

    /// Queues a rate-limit decision, like [`EventSink::record`].
    pub fn record_ratelimit(&self, event: PendingRatelimit) {
        self.send(Event::Ratelimit(event));
    }

    fn send(&self, event: Event) {
        let mut pending = self.queue.pending();
        if pending.len() < CAPACITY {
            pending.push(event);
            return;
        }
        // Full: the event is dropped here, outside the lock, and counted.
        drop(pending);
        let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!(dropped = n, "analytics event queue full; events dropped");
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Events waiting in the queue for the writer.
    pub fn queued(&self) -> u64 {
        self.queue.pending().len() as u64
    }

    /// Waits until the writer has finished a round that began after this call, so that every
    /// event recorded before it is written (or was dropped and counted), rollups included.
    ///
    /// For tests and tools that must see the events in the store; it waits as long as it takes,
    /// so call it only while the server (and so its writer) runs.
    pub async fn written(&self) {
        // First a round that began after this call: it takes every event queued before it.
        self.rounds_pass(2).await;
        // Then ask for the rollups and wait for a round that began after the asking: the first
        // to see the flag writes the counts, which by then include those events. (Asking once,
        // up front, could be answered by a round that had not yet taken all of them.)
        self.rounds.flush.store(true, Ordering::SeqCst);
        self.rounds_pass(2).await;
    }

    /// Waits until `n` more writer rounds have finished.
    async fn rounds_pass(&self, n: u64) {
        let start = self.rounds.done.load(Ordering::SeqCst);
        loop {
            // Registered before the check, so a round finishing in between still wakes us.
            let notified = self.rounds.notify.notified();
            if self.rounds.done.load(Ordering::SeqCst) >= start + n {
                return;
            }
            notified.await;
        }
    }
}

/// The writer side.
pub struct EventWriter {
    queue: Arc<Queue>,
    /// The vector the writer emptied last, put in the queue's place at the next take.
    spare: Vec<Event>,
    store: Arc<dyn EventStore>,
    last_used: LastUsed,
    rounds: Arc<Rounds>,
    config: WriterConfig,
    rollups: Rollups,
}

/// How the writer labels and keeps events.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// How often keys' `lastUsedAt` is brought up to date.
    pub last_used_interval: Duration,
    /// This node's name, in every verification's `region` column.
    pub region: String,
    pub retention: Retention,
    /// How long the rollups' counts gather in memory ([`ROLLUP_INTERVAL`] by default).
    pub rollup_interval: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            last_used_interval: LAST_USED_INTERVAL,
            region: String::new(),
            retention: Retention::default(),
            rollup_interval: ROLLUP_INTERVAL,
        }
    }
}

/// A connected sink and writer.
pub fn channel(store: Arc<dyn EventStore>, config: WriterConfig) -> (EventSink, EventWriter) {
    let queue = Arc::new(Queue::default());
    let rounds = Arc::new(Rounds::default());
    (
        EventSink {
            queue: queue.clone(),
            dropped: Arc::new(AtomicU64::new(0)),
            rounds: rounds.clone(),
        },
        EventWriter {
            queue,
            spare: Vec::new(),
            store,
            last_used: LastUsed::new(config.last_used_interval),
            rounds,
            rollups: Rollups::new(config.rollup_interval),
            config,
        },
    )
}

/// A cached key, compared and hashed by its id: the pending `lastUsedAt` times hold the key the
/// request path verified (one pointer, no copy of its id), and a key read again from the
/// database after an invalidation is still the same key.
#[derive(Clone)]
struct ById(Arc<CachedKey>);

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for ById {}

impl std::hash::Hash for ById {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}

/// Looked up by id, so that a key already pending costs no reference count (shared with the
/// request threads) to find.
impl std::borrow::Borrow<str> for ById {
    fn borrow(&self) -> &str {
        &self.0.id
    }
}

/// Keys' latest verification times not yet written to `key_last_used`.
struct LastUsed {
    pending: FastMap<ById, i64>,
    interval: Duration,
    since: Instant,
    /// A round being written, sorted by key id, a chunk at a time between event batches.
    writing: std::vec::IntoIter<(ById, i64)>,
}

/// Keys written per chunk of a `lastUsedAt` round. Between chunks the writer goes back to the
/// event queue, so a round over a million keys never holds up the events for long.
const LAST_USED_CHUNK: usize = 20_000;

impl LastUsed {
    fn new(interval: Duration) -> Self {
        LastUsed {
            pending: FastMap::default(),
            interval,
            since: Instant::now(),
            writing: Vec::new().into_iter(),
        }
    }

    fn note(&mut self, batch: &[Event]) {
        for event in batch {
            let Event::Verification(event) = event else {
                continue;
            };
            match self.pending.get_mut(&*event.key.id) {
                Some(time) => *time = (*time).max(event.time_ms),
                None => {
                    self.pending.insert(ById(event.key.clone()), event.time_ms);
                }
            }
        }
    }

    /// The next chunk to write: of the round in progress, else of a new round when the interval
    /// has passed (or at once when `stopping`). A round is sorted by key id, so each chunk
    /// rewrites a run of neighbouring pages.
    fn next_chunk(&mut self, stopping: bool) -> Option<Vec<(ById, i64)>> {
        if self.writing.len() == 0 {
            let due = stopping || self.since.elapsed() >= self.interval;
            if self.pending.is_empty() || !due {
                return None;
            }
            self.since = Instant::now();
            let mut round: Vec<(ById, i64)> = self.pending.drain().collect();
            round.sort_unstable_by(|a, b| a.0 .0.id.cmp(&b.0 .0.id));
            self.writing = round.into_iter();
        }
        Some(self.writing.by_ref().take(LAST_USED_CHUNK).collect())
    }
}

fn last_uses(taken: &[(ById, i64)]) -> Vec<LastUse<'_>> {
    taken
        .iter()
        .map(|(key, time_ms)| LastUse {
            key_id: &key.0.id,
            time_ms: *time_ms,
        })
        .collect()
}

/// The writer's maps: foldhash rather than std's SipHash, at a fraction of the cost per event;
/// its seeded "quality" variant, since identifiers and tags are the clients' input.
type FastMap<K, V> = HashMap<K, V, foldhash::quality::RandomState>;

/// How long the dedicated writer spends on rollup chunks in one tick, at most (it finishes the
/// chunk it is in). A chunk is a few milliseconds; a round of many groups (a million identifiers
/// in a minute) then keeps up with the events instead of piling up counts in memory, and the raw
/// events still wait at most this long.
const ROLLUP_BUDGET: Duration = Duration::from_millis(20);

/// Tag arrays as stored (JSON), `None` for the common empty one and for decisions.
fn tags_json(batch: &[Event]) -> Vec<Option<String>> {
    batch
        .iter()
        .map(|e| match e {
            Event::Verification(e) if !e.tags.is_empty() => {
                Some(serde_json::to_string(&e.tags).unwrap_or_default())
            }
            _ => None,
        })
        .collect()
}

/// A round's raw rows, borrowing from its events (the rollups count the events afterwards, in
/// [`Rollups::note`]).
fn batch<'a>(events: &'a [Event], tags: &'a [Option<String>], region: &'a str) -> EventBatch<'a> {
    let verifications = events
        .iter()
        .filter(|e| matches!(e, Event::Verification(_)))
        .count();
    let mut out = EventBatch {
        verifications: Vec::with_capacity(verifications),
        ratelimits: Vec::with_capacity(events.len() - verifications),
        ..Default::default()
    };
    for (event, tags) in events.iter().zip(tags) {
        match event {
            Event::Verification(e) => {
                let identity = e.key.identity();
                out.verifications.push(NewVerification {
                    request_id: e.request_id.as_str(),
                    time_ms: e.time_ms,
                    workspace_id: e.key.workspace_id(),
                    api_id: e.key.api_id(),
                    key_space_id: e.key.key_space_id(),
                    key_id: &e.key.id,
                    identity_id: identity.map(|i| &*i.id),
                    outcome: e.outcome,
                    tags: tags.as_deref().unwrap_or("[]"),
                    spent_credits: e.spent_credits,
                    latency_us: e.latency_us,
                    external_id: identity.map(|i| &*i.external_id).unwrap_or(""),
                    region,
                    source: SOURCE_API,
                });
            }
            Event::Ratelimit(e) => {
                out.ratelimits.push(NewRatelimitEvent {
                    request_id: e.request_id.as_str(),
                    time_ms: e.time_ms,
                    workspace_id: &e.namespace.workspace_id,
                    namespace_id: &e.namespace.id,
                    identifier: &e.identifier,
                    passed: e.passed,
                    latency_us: e.latency_us,
                    override_id: e.override_id.as_deref().unwrap_or(""),
                    limit: e.limit,
                    remaining: e.remaining,
                    reset_at_ms: e.reset_at_ms,
                    tokens: e.tokens,
                });
            }
        }
    }
    out
}

impl EventWriter {
    /// Takes what is queued now, up to [`BATCH`] events (the oldest), and whether every sender
    /// is gone. Hand the batch back to [`EventWriter::recycle`] once it is written.
    fn take_batch(&mut self) -> (Vec<Event>, bool) {
        // Read before taking: once every sender is gone, this take gets all that they sent.
        let closed = Arc::strong_count(&self.queue) == 1;
        let mut pending = self.queue.pending();
        let batch = if pending.len() <= BATCH {
            std::mem::replace(&mut *pending, std::mem::take(&mut self.spare))
        } else {
            // A backlog: the rest stays queued for the next take.
            let rest = pending.split_off(BATCH);
            std::mem::replace(&mut *pending, rest)
        };
        (batch, closed)
    }

    /// Keeps a written batch's memory for the queue's next turn, unless a backlog made it large.
    fn recycle(&mut self, mut batch: Vec<Event>) {
        batch.clear();
        if batch.capacity() <= BATCH {
            self.spare = batch;
        }
    }

    /// Writes whatever is queued now, through the async store. Returns how many were written.
    pub async fn run_once(&mut self) -> usize {
        let mut written = 0;
        loop {
            let (mut batch, _) = self.take_batch();
            if batch.is_empty() {
                return written;
            }
            written += batch.len();
            self.last_used.note(&batch);
            let tags = tags_json(&batch);
            let rows = self::batch(&batch, &tags, &self.config.region);
            if let Err(err) = self.store.insert_events(&rows).await {
                tracing::error!(error = %err, lost = batch.len(), "writing analytics events failed");
                crate::telemetry::db_error(&err);
            }
            drop(rows);
            self.rollups.note(&mut batch, tags);
            self.recycle(batch);
        }
    }

    /// Writes chunks of rollups through the async store, for up to half a [`FLUSH_INTERVAL`],
    /// when a round is under way or due; all that is pending when `now` (or when a round was
    /// asked for).
    async fn write_rollups(&mut self, now: bool) {
        let now = now || self.rounds.flush.swap(false, Ordering::SeqCst);
        let until = Instant::now() + FLUSH_INTERVAL / 2;
        while let Some(chunk) = self.rollups.next_chunk(now) {
            if let Err(err) = self.store.insert_events(&chunk).await {
                tracing::error!(error = %err, "writing analytics rollups failed");
                crate::telemetry::db_error(&err);
            }
            if !now && Instant::now() >= until {
                break;
            }
        }
    }

    /// Writes `lastUsedAt` times through the async store when they are due: one chunk, or
    /// everything when `stopping`.
    async fn touch_last_used(&mut self, stopping: bool) {
        while let Some(chunk) = self.last_used.next_chunk(stopping) {
            if let Err(err) = self.store.touch_last_used(&last_uses(&chunk)).await {
                tracing::warn!(error = %err, keys = chunk.len(), "updating keys' lastUsedAt failed");
            }
            if !stopping {
                break;
            }
        }
    }

    /// Writes until `shutdown`, then drains the queue; prunes old events about once an hour.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let log = match self.store.event_log() {
            Ok(log) => log,
            Err(err) => {
                tracing::warn!(error = %err, "no dedicated event log; writing events through the store");
                None
            }
        };
        let pruner = tokio::spawn(prune_loop(
            self.store.clone(),
            self.config.retention,
            shutdown.clone(),
        ));
        match log {
            Some(log) => {
                let stop = Arc::new(AtomicBool::new(false));
                let flag = stop.clone();
                let thread = tokio::task::spawn_blocking(move || self.run_blocking(log, &flag));
                let _ = shutdown.changed().await;
                stop.store(true, Ordering::SeqCst);
                let _ = thread.await;
            }
            None => loop {
                tokio::select! {
                    _ = tokio::time::sleep(FLUSH_INTERVAL) => {}
                    _ = shutdown.changed() => {
                        self.run_once().await;
                        self.write_rollups(true).await;
                        self.touch_last_used(true).await;
                        break;
                    }
                }
                self.run_once().await;
                self.write_rollups(false).await;
                self.touch_last_used(false).await;
                self.rounds.finished();
            },
        }
        let _ = pruner.await;
    }

    /// The dedicated writer thread: wakes every [`WRITER_TICK`] and writes what has queued, in
    /// batches; after `stop` is set it drains the queue and ends. It never blocks on the queue
    /// itself: a waiting receiver would be woken by every single event, and each wake-up would
    /// write a transaction of one row.
    fn run_blocking(mut self, mut log: Box<dyn EventLog>, stop: &AtomicBool) {
        loop {
            let stopping = stop.load(Ordering::SeqCst);
            let senders_gone = loop {
                let (mut batch, senders_gone) = self.take_batch();
                let full = batch.len() == BATCH;
                if !batch.is_empty() {
                    self.last_used.note(&batch);
                    let tags = tags_json(&batch);
                    let rows = self::batch(&batch, &tags, &self.config.region);
                    if let Err(err) = log.append(&rows) {
                        tracing::error!(error = %err, lost = batch.len(), "writing analytics events failed");
                        crate::telemetry::db_error(&err);
                    }
                    drop(rows);
                    self.rollups.note(&mut batch, tags);
                }
                self.recycle(batch);
                if !full {
                    break senders_gone;
                }
            };
            let last = stopping || senders_gone;
            // Chunks of rollups for up to ROLLUP_BUDGET a tick (all that is pending when
            // stopping or asked to).
            let now = last || self.rounds.flush.swap(false, Ordering::SeqCst);
            let until = Instant::now() + ROLLUP_BUDGET;
            while let Some(chunk) = self.rollups.next_chunk(now) {
                if let Err(err) = log.append(&chunk) {
                    tracing::error!(error = %err, "writing analytics rollups failed");
                    crate::telemetry::db_error(&err);
                }
                if !now && Instant::now() >= until {
                    break;
                }
            }
            // One chunk of lastUsedAt per tick (all of it when stopping).
            while let Some(chunk) = self.last_used.next_chunk(last) {
                if let Err(err) = log.touch_last_used(&last_uses(&chunk)) {
                    tracing::warn!(error = %err, keys = chunk.len(), "updating keys' lastUsedAt failed");
                }
                if !last {
                    break;
                }
            }
            self.rounds.finished();
            // Stopped by the server, or the server is gone altogether (its runtime dropped).
            if last {
                return;
            }
            std::thread::sleep(WRITER_TICK);
        }
    }
}

/// Prunes what `retention` no longer keeps, about once an hour, until `shutdown`.
async fn prune_loop(
    store: Arc<dyn EventStore>,
    retention: Retention,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let cutoffs = retention.cutoffs(SystemClock.now_ms());
        match store.prune_analytics(&cutoffs).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "pruned old analytics"),
            Err(err) => tracing::warn!(error = %err, "pruning old analytics failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_used_rounds_wait_for_the_interval_and_come_sorted_in_chunks() {
        let mut last_used = LastUsed::new(Duration::from_secs(3600));
        assert!(last_used.next_chunk(true).is_none(), "nothing pending");
        for i in (0..LAST_USED_CHUNK + 5).rev() {
            let key = CachedKey::plain(&format!("key_{i:06}"), "ws", "api", "ks");
            last_used.pending.insert(ById(Arc::new(key)), i as i64);
        }
        // The same key again, as a new copy from the database: one entry, the later time.
        let again = CachedKey::plain("key_000000", "ws", "api", "ks");
        last_used.note(&[Event::Verification(PendingEvent {
            key: Arc::new(again),
            request_id: "req".into(),
            time_ms: 7,
            outcome: "VALID",
            tags: Vec::new(),
            spent_credits: 0,
            latency_us: 0,
        })]);
        assert_eq!(last_used.pending.len(), LAST_USED_CHUNK + 5);
        assert!(
            last_used.next_chunk(false).is_none(),
            "the interval has not passed"
        );
        let first = last_used.next_chunk(true).expect("a round when stopping");
        assert_eq!(first.len(), LAST_USED_CHUNK);
        let ids = |chunk: &[(ById, i64)]| -> Vec<(String, i64)> {
            chunk
                .iter()
                .map(|(k, t)| (k.0.id.to_string(), *t))
                .collect()
        };
        let first = ids(&first);
        assert!(
            first.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted by key id"
        );
        assert_eq!(first[0], ("key_000000".into(), 7));
        // The round goes on at the next tick without waiting for another interval.
        let rest = ids(&last_used.next_chunk(false).expect("the rest of the round"));
        assert_eq!(rest.len(), 5);
        assert!(first[first.len() - 1].0 < rest[0].0);
        assert!(last_used.next_chunk(false).is_none());
        assert!(last_used.pending.is_empty());
    }
}
