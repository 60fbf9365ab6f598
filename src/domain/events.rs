//! Analytics events (verifications and rate-limit decisions): recorded off the request path and
//! written in batches.
//!
//! The request path only pushes a [`PendingEvent`] or [`PendingRatelimit`] into a bounded channel
//! ([`EventSink::record`] never waits, and copies no ids: a verification points at the cached key,
//! a decision at the cached namespace). A writer drains it and writes up to [`BATCH`] events per
//! transaction, at least every [`FLUSH_INTERVAL`], and drains the rest at shutdown. The rollups'
//! counts (events per minute, hour, day and month bucket and per everything a query can group by)
//! gather in memory and are written every [`ROLLUP_INTERVAL`], so a key verified many times in
//! that span costs one upsert per bucket rather than one per event; a round of them is written
//! [`ROLLUP_CHUNK`] rows a transaction, between the raw batches. Where the store offers a synchronous [`EventLog`] (SQLite: a connection of
//! its own with a prepared statement) the writer is a dedicated thread that blocks on the channel;
//! otherwise it is an async task using [`crate::store::EventStore::insert_events`]. If the
//! database falls so far behind that the channel fills, events are dropped and counted rather than
//! slowing verifications down. Old events and rollups are pruned in the background
//! ([`Retention`]).
//!
//! The writer also keeps each key's latest verification time and writes them to
//! `key_last_used` (what `lastUsedAt` shows) every [`LAST_USED_INTERVAL`] by default and at
//! shutdown: one update per key used in the interval, however often it was verified, sorted by key
//! id and written a chunk per writer tick, instead of a random index write per verification.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::domain::keys::cache::CachedKey;
use crate::model::{
    AnalyticsCutoffs, EventBatch, Granularity, LastUse, Namespace, NewRatelimitEvent,
    NewVerification, RatelimitCount, VerificationCount,
};
use crate::store::{EventLog, EventStore};

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
    pub request_id: String,
    pub time_ms: i64,
    pub outcome: &'static str,
    pub tags: Vec<String>,
    pub spent_credits: i64,
    pub latency_us: i64,
}

/// A rate-limit decision as the request path hands it over.
pub struct PendingRatelimit {
    pub namespace: Arc<Namespace>,
    pub request_id: Arc<str>,
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

/// The request path's handle.
#[derive(Clone)]
pub struct EventSink {
    tx: SyncSender<Event>,
    dropped: Arc<AtomicU64>,
    /// Events queued and not yet taken by the writer (the channel cannot tell its length).
    queued: Arc<AtomicU64>,
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
        // Counted before sending, so the writer never takes more than was counted.
        self.queued.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(event).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "analytics event queue full; events dropped");
            }
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Events waiting in the queue for the writer.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
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
    rx: Receiver<Event>,
    queued: Arc<AtomicU64>,
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
    let (tx, rx) = mpsc::sync_channel(CAPACITY);
    let rounds = Arc::new(Rounds::default());
    let queued = Arc::new(AtomicU64::new(0));
    (
        EventSink {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            queued: queued.clone(),
            rounds: rounds.clone(),
        },
        EventWriter {
            rx,
            queued,
            store,
            last_used: LastUsed::new(config.last_used_interval),
            rounds,
            rollups: Rollups::new(config.rollup_interval),
            config,
        },
    )
}

/// Keys' latest verification times not yet written to `key_last_used`.
struct LastUsed {
    pending: FastMap<Box<str>, i64>,
    interval: Duration,
    since: Instant,
    /// A round being written, sorted by key id, a chunk at a time between event batches.
    writing: std::vec::IntoIter<(Box<str>, i64)>,
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
                    self.pending.insert(event.key.id.clone(), event.time_ms);
                }
            }
        }
    }

    /// The next chunk to write: of the round in progress, else of a new round when the interval
    /// has passed (or at once when `stopping`). A round is sorted by key id, so each chunk
    /// rewrites a run of neighbouring pages.
    fn next_chunk(&mut self, stopping: bool) -> Option<Vec<(Box<str>, i64)>> {
        if self.writing.len() == 0 {
            let due = stopping || self.since.elapsed() >= self.interval;
            if self.pending.is_empty() || !due {
                return None;
            }
            self.since = Instant::now();
            let mut round: Vec<(Box<str>, i64)> = self.pending.drain().collect();
            round.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            self.writing = round.into_iter();
        }
        Some(self.writing.by_ref().take(LAST_USED_CHUNK).collect())
    }
}

fn last_uses(taken: &[(Box<str>, i64)]) -> Vec<LastUse<'_>> {
    taken
        .iter()
        .map(|(key_id, time_ms)| LastUse {
            key_id,
            time_ms: *time_ms,
        })
        .collect()
}

/// How long the rollups' counts gather in memory before they are written, by default
/// (`--analytics-rollup-interval`): a key verified many times in that span costs one upsert per
/// bucket instead of one per batch. A crash loses at most this much of the rollups' counts (the
/// raw events are written in every round).
pub const ROLLUP_INTERVAL: Duration = Duration::from_secs(30);

/// Minute groups held at most before a round of rollups starts early, whatever the interval
/// (each becomes a row in each of the four rollup tables): many distinct keys or identifiers in
/// little time.
const MAX_PENDING_COUNTS: usize = 100_000;

/// Rollup rows written per transaction. A round is written a chunk per writer tick, between the
/// raw events, so a round over hundreds of thousands of groups never holds the write lock (or the
/// event queue) for long.
const ROLLUP_CHUNK: usize = 5_000;

/// The writer's maps: foldhash rather than std's SipHash, at a fraction of the cost per event;
/// its seeded "quality" variant, since identifiers and tags are the clients' input.
type FastMap<K, V> = HashMap<K, V, foldhash::quality::RandomState>;

/// How long the dedicated writer spends on rollup chunks in one tick, at most (it finishes the
/// chunk it is in). A chunk is a few milliseconds; a round of many groups (a million identifiers
/// in a minute) then keeps up with the events instead of piling up counts in memory, and the raw
/// events still wait at most this long.
const ROLLUP_BUDGET: Duration = Duration::from_millis(20);

/// A handle compared and hashed by identity (the `Arc`): cheap on the writer's busiest path, and
/// exact, since everything a rollup row keeps of a key or namespace is in the entry. Two entries
/// of one key (before and after a change) only make two groups that a round merges again.
struct Same<T>(Arc<T>);

impl<T> Clone for Same<T> {
    fn clone(&self) -> Self {
        Same(self.0.clone())
    }
}

impl<T> PartialEq for Same<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T> Eq for Same<T> {}

impl<T> std::hash::Hash for Same<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as usize).hash(state);
    }
}

/// Verifications gathered per minute, key, outcome and tags; the hour, day and month counts are
/// derived from these when a round starts.
#[derive(Clone, PartialEq, Eq, Hash)]
struct MinuteGroup {
    minute_ms: i64,
    key: Same<CachedKey>,
    outcome: &'static str,
    /// JSON text of the tags; `None` for none.
    tags: Option<Arc<str>>,
}

/// Rate-limit decisions gathered per minute, namespace and identifier.
#[derive(Clone, PartialEq, Eq, Hash)]
struct RatelimitMinute {
    minute_ms: i64,
    namespace: Same<Namespace>,
    identifier: Arc<str>,
}

/// A verification rollup row of a round: what it is keyed by, held through the key's entry.
struct CountRow {
    granularity: Granularity,
    time_ms: i64,
    key: Arc<CachedKey>,
    outcome: &'static str,
    tags: Option<Arc<str>>,
    count: i64,
    spent_credits: i64,
}

impl CountRow {
    fn keyed(&self) -> CountedAs<'_> {
        counted_as(
            self.granularity,
            self.time_ms,
            &self.key,
            self.outcome,
            self.tags.as_deref(),
        )
    }
}

/// A rate-limit rollup row of a round.
struct LimitRow {
    granularity: Granularity,
    time_ms: i64,
    namespace: Arc<Namespace>,
    identifier: Arc<str>,
    /// passed, total, passed tokens, total tokens.
    sums: [i64; 4],
}

impl LimitRow {
    fn keyed(&self) -> (Granularity, i64, &str, &str, &str) {
        (
            self.granularity,
            self.time_ms,
            &self.namespace.workspace_id,
            &self.namespace.id,
            &self.identifier,
        )
    }
}

/// The rollups' counts not yet written, and the round being written.
struct Rollups {
    minutes: FastMap<MinuteGroup, (i64, i64)>,
    ratelimits: FastMap<RatelimitMinute, [i64; 4]>,
    since: Instant,
    interval: Duration,
    round: Round,
}

/// A round of rollup rows, sorted so that concurrent writers (several nodes on PostgreSQL) lock
/// rollup rows in one order, and written a chunk at a time.
#[derive(Default)]
struct Round {
    counts: Vec<CountRow>,
    limits: Vec<LimitRow>,
    /// Rows of each written so far.
    counts_done: usize,
    limits_done: usize,
}

impl Round {
    fn is_done(&self) -> bool {
        self.counts_done == self.counts.len() && self.limits_done == self.limits.len()
    }

    /// The next chunk, at most [`ROLLUP_CHUNK`] rows, as a batch to write; the rows count as
    /// written (a failed write loses them, as a failed write of raw events does).
    fn next_chunk(&mut self) -> EventBatch<'_> {
        let counts = self.counts_done..(self.counts_done + ROLLUP_CHUNK).min(self.counts.len());
        let room = ROLLUP_CHUNK - counts.len();
        let limits = self.limits_done..(self.limits_done + room).min(self.limits.len());
        self.counts_done = counts.end;
        self.limits_done = limits.end;
        EventBatch {
            verification_counts: self.counts[counts]
                .iter()
                .map(|row| {
                    let k = row.keyed();
                    VerificationCount {
                        granularity: k.granularity,
                        time_ms: k.time_ms,
                        workspace_id: k.workspace_id,
                        key_space_id: k.key_space_id,
                        key_id: k.key_id,
                        identity_id: k.identity_id,
                        external_id: k.external_id,
                        outcome: k.outcome,
                        source: SOURCE_API,
                        tags: k.tags,
                        count: row.count,
                        spent_credits: row.spent_credits,
                    }
                })
                .collect(),
            ratelimit_counts: self.limits[limits]
                .iter()
                .map(|row| {
                    let (granularity, time_ms, workspace_id, namespace_id, identifier) =
                        row.keyed();
                    let [passed, total, passed_tokens, total_tokens] = row.sums;
                    RatelimitCount {
                        granularity,
                        time_ms,
                        workspace_id,
                        namespace_id,
                        identifier,
                        passed,
                        total,
                        passed_tokens,
                        total_tokens,
                    }
                })
                .collect(),
            ..Default::default()
        }
    }
}

impl Rollups {
    fn new(interval: Duration) -> Self {
        Rollups {
            minutes: FastMap::default(),
            ratelimits: FastMap::default(),
            since: Instant::now(),
            interval,
            round: Round::default(),
        }
    }

    /// Counts a round's events once they are written: one map entry per event, with no copy of
    /// any id. The events are consumed: each one's key (or namespace) handle and identifier move
    /// into its group (or are dropped, as the event would have been), so counting adds no
    /// reference-count traffic on a hot key's entry, which every request thread also touches.
    fn note(&mut self, events: Vec<Event>, tags: Vec<Option<String>>) {
        for (event, tags) in events.into_iter().zip(tags) {
            match event {
                Event::Verification(e) => {
                    let sums = self
                        .minutes
                        .entry(MinuteGroup {
                            minute_ms: Granularity::Minute.start(e.time_ms),
                            key: Same(e.key),
                            outcome: e.outcome,
                            tags: tags.map(Arc::from),
                        })
                        .or_default();
                    // Saturating: a client chooses the costs, and a sum must not overflow.
                    sums.0 = sums.0.saturating_add(1);
                    sums.1 = sums.1.saturating_add(e.spent_credits);
                }
                Event::Ratelimit(e) => {
                    let sums = self
                        .ratelimits
                        .entry(RatelimitMinute {
                            minute_ms: Granularity::Minute.start(e.time_ms),
                            namespace: Same(e.namespace),
                            identifier: Arc::from(e.identifier),
                        })
                        .or_default();
                    // Saturating: `tokens` is the client's `cost`, up to i64::MAX each.
                    let passed_tokens = if e.passed { e.tokens } else { 0 };
                    for (sum, add) in
                        sums.iter_mut()
                            .zip([i64::from(e.passed), 1, passed_tokens, e.tokens])
                    {
                        *sum = sum.saturating_add(add);
                    }
                }
            }
        }
    }

    /// Whether a new round should start: when asked to (`now`), after the interval, or when many
    /// counts are pending.
    fn due(&self, now: bool) -> bool {
        let pending = self.minutes.len() + self.ratelimits.len();
        pending > 0
            && (now || self.since.elapsed() >= self.interval || pending >= MAX_PENDING_COUNTS)
    }

    /// The next chunk to write: of the round in progress, else of a new round when one is due
    /// (see [`Rollups::due`]). `None` when there is nothing to write now.
    fn next_chunk(&mut self, now: bool) -> Option<EventBatch<'_>> {
        if self.round.is_done() {
            if !self.due(now) {
                return None;
            }
            self.start_round();
        }
        Some(self.round.next_chunk())
    }

    /// Takes the pending counts into a new round: every granularity's rows from the minute
    /// groups, sorted, and merged where they are keyed alike (the minutes of one hour; two
    /// entries of one key or namespace).
    fn start_round(&mut self) {
        let minutes = std::mem::take(&mut self.minutes);
        let ratelimits = std::mem::take(&mut self.ratelimits);
        self.since = Instant::now();

        let mut counts: Vec<CountRow> = Vec::with_capacity(minutes.len() * Granularity::ALL.len());
        for (g, (count, spent_credits)) in minutes {
            counts.extend(Granularity::ALL.map(|granularity| CountRow {
                granularity,
                time_ms: granularity.start(g.minute_ms),
                key: g.key.0.clone(),
                outcome: g.outcome,
                tags: g.tags.clone(),
                count,
                spent_credits,
            }));
        }
        counts.sort_unstable_by(|a, b| a.keyed().cmp(&b.keyed()));
        counts.dedup_by(|later, kept| {
            let same = later.keyed() == kept.keyed();
            if same {
                kept.count = kept.count.saturating_add(later.count);
                kept.spent_credits = kept.spent_credits.saturating_add(later.spent_credits);
            }
            same
        });

        let mut limits: Vec<LimitRow> =
            Vec::with_capacity(ratelimits.len() * Granularity::ALL.len());
        for (g, sums) in ratelimits {
            limits.extend(Granularity::ALL.map(|granularity| LimitRow {
                granularity,
                time_ms: granularity.start(g.minute_ms),
                namespace: g.namespace.0.clone(),
                identifier: g.identifier.clone(),
                sums,
            }));
        }
        limits.sort_unstable_by(|a, b| a.keyed().cmp(&b.keyed()));
        limits.dedup_by(|later, kept| {
            let same = later.keyed() == kept.keyed();
            if same {
                for (sum, add) in kept.sums.iter_mut().zip(later.sums) {
                    *sum = sum.saturating_add(add);
                }
            }
            same
        });

        self.round = Round {
            counts,
            limits,
            counts_done: 0,
            limits_done: 0,
        };
    }
}

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

/// What a verification rollup row is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct CountedAs<'a> {
    granularity: Granularity,
    time_ms: i64,
    workspace_id: &'a str,
    key_space_id: &'a str,
    key_id: &'a str,
    identity_id: &'a str,
    external_id: &'a str,
    outcome: &'a str,
    tags: &'a str,
}

fn counted_as<'a>(
    granularity: Granularity,
    time_ms: i64,
    key: &'a CachedKey,
    outcome: &'a str,
    tags: Option<&'a str>,
) -> CountedAs<'a> {
    let identity = key.identity.as_deref();
    CountedAs {
        granularity,
        time_ms,
        workspace_id: &key.workspace_id,
        key_space_id: &key.key_space_id,
        key_id: &key.id,
        identity_id: identity.map_or("", |i| &*i.id),
        external_id: identity.map_or("", |i| &*i.external_id),
        outcome,
        tags: tags.unwrap_or("[]"),
    }
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
                let identity = e.key.identity.as_deref();
                out.verifications.push(NewVerification {
                    request_id: &e.request_id,
                    time_ms: e.time_ms,
                    workspace_id: &e.key.workspace_id,
                    api_id: &e.key.api_id,
                    key_space_id: &e.key.key_space_id,
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
                    request_id: &e.request_id,
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
    /// Takes what is queued now, up to [`BATCH`] events, and whether every sender is gone.
    fn take_batch(&self) -> (Vec<Event>, bool) {
        let mut batch: Vec<Event> = Vec::new();
        let mut closed = false;
        while batch.len() < BATCH {
            match self.rx.try_recv() {
                Ok(event) => batch.push(event),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        self.queued.fetch_sub(batch.len() as u64, Ordering::Relaxed);
        (batch, closed)
    }

    /// Writes whatever is queued now, through the async store. Returns how many were written.
    pub async fn run_once(&mut self) -> usize {
        let mut written = 0;
        loop {
            let (batch, _) = self.take_batch();
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
            self.rollups.note(batch, tags);
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
                let (batch, senders_gone) = self.take_batch();
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
                    self.rollups.note(batch, tags);
                }
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

    fn key(id: &str) -> Arc<CachedKey> {
        Arc::new(CachedKey {
            id: id.into(),
            workspace_id: "ws".into(),
            api_id: "api".into(),
            key_space_id: "ks".into(),
            name: None,
            meta: None,
            identity: None,
            expires: None,
            enabled: true,
            api_deleted: false,
            credits: None,
            ip_whitelist: None,
            permissions: Box::default(),
            roles: Box::default(),
            ratelimits: Box::default(),
        })
    }

    fn verified(key: &Arc<CachedKey>, time_ms: i64, spent_credits: i64) -> Event {
        Event::Verification(PendingEvent {
            key: key.clone(),
            request_id: "req".into(),
            time_ms,
            outcome: "VALID",
            tags: Vec::new(),
            spent_credits,
            latency_us: 1,
        })
    }

    fn namespace(id: &str) -> Arc<Namespace> {
        Arc::new(Namespace {
            id: id.into(),
            workspace_id: "ws".into(),
            name: id.into(),
            deleted: false,
            created_at: 0,
            overrides: Vec::new(),
        })
    }

    fn decided(namespace: &Arc<Namespace>, identifier: &str, time_ms: i64, passed: bool) -> Event {
        Event::Ratelimit(PendingRatelimit {
            namespace: namespace.clone(),
            request_id: "req".into(),
            time_ms,
            identifier: identifier.into(),
            passed,
            latency_us: 1,
            override_id: None,
            limit: 10,
            remaining: 9,
            reset_at_ms: time_ms + 1000,
            tokens: 2,
        })
    }

    fn note(rollups: &mut Rollups, events: Vec<Event>) {
        let tags = tags_json(&events);
        rollups.note(events, tags);
    }

    #[test]
    fn rollup_counts_gather_across_rounds_until_they_are_due() {
        let mut rollups = Rollups::new(Duration::from_secs(3600));
        assert!(!rollups.due(true), "nothing pending");
        assert!(rollups.next_chunk(true).is_none());
        let (a, b) = (key("a"), key("b"));
        // A second cache entry of key a (after a change): the round merges it with the first.
        let a_again = key("a");
        let ns = namespace("ns");
        note(
            &mut rollups,
            vec![
                verified(&b, 60_000, 1),
                verified(&a, 60_001, 1),
                verified(&b, 61_000, 1),
                decided(&ns, "x", 1_000, true),
            ],
        );
        // Another entry of the namespace, as after an override changed: merged too.
        note(
            &mut rollups,
            vec![
                verified(&a_again, 90_000, 2),
                verified(&a, 3_700_000, 0),
                decided(&namespace("ns"), "x", 2_000, false),
            ],
        );
        assert!(!rollups.due(false), "the interval has not passed");
        assert!(rollups.next_chunk(false).is_none());
        assert!(rollups.due(true));
        let batch = rollups.next_chunk(true).expect("a round when asked");
        let seen = |granularity: Granularity| -> Vec<(&str, i64, i64, i64)> {
            batch
                .verification_counts
                .iter()
                .filter(|c| c.granularity == granularity)
                .map(|c| (c.key_id, c.time_ms, c.count, c.spent_credits))
                .collect()
        };
        // One row per group, in group order (bucket, then key).
        assert_eq!(
            seen(Granularity::Minute),
            [
                ("a", 60_000, 2, 3),
                ("b", 60_000, 2, 2),
                ("a", 3_660_000, 1, 0)
            ]
        );
        assert_eq!(
            seen(Granularity::Hour),
            [("a", 0, 2, 3), ("b", 0, 2, 2), ("a", 3_600_000, 1, 0)]
        );
        assert_eq!(seen(Granularity::Month), [("a", 0, 3, 3), ("b", 0, 2, 2)]);
        // One decision's row per granularity, both decisions in it: passed, total, tokens.
        let limits: Vec<_> = batch
            .ratelimit_counts
            .iter()
            .map(|c| {
                (
                    c.granularity,
                    c.identifier,
                    [c.passed, c.total, c.passed_tokens, c.total_tokens],
                )
            })
            .collect();
        assert_eq!(
            limits,
            Granularity::ALL.map(|g| (g, "x", [1, 2, 2, 4])).to_vec()
        );
        assert!(batch.verifications.is_empty() && !batch.is_empty());
        drop(batch);
        assert!(!rollups.due(true), "the round took every count");
        assert!(rollups.next_chunk(true).is_none());
    }

    #[test]
    fn a_large_round_is_written_a_chunk_at_a_time_in_order() {
        let mut rollups = Rollups::new(Duration::from_secs(3600));
        let ns = namespace("ns");
        let groups = ROLLUP_CHUNK; // identifiers, each a row in four tables
        note(
            &mut rollups,
            (0..groups)
                .map(|i| decided(&ns, &format!("id{i:06}"), 0, true))
                .collect(),
        );
        let mut written = Vec::new();
        // Not asked for and not due: nothing; then a round, a chunk per call.
        assert!(rollups.next_chunk(false).is_none());
        let first = rollups.next_chunk(true).expect("a round");
        assert_eq!(first.ratelimit_counts.len(), ROLLUP_CHUNK);
        written.extend(
            first
                .ratelimit_counts
                .iter()
                .map(|c| (c.granularity, c.identifier.to_string())),
        );
        drop(first);
        // Counts that arrive meanwhile wait for the next round.
        note(&mut rollups, vec![decided(&ns, "later", 0, true)]);
        while let Some(chunk) = rollups.next_chunk(false) {
            assert!(chunk.ratelimit_counts.len() <= ROLLUP_CHUNK);
            assert!(
                chunk
                    .ratelimit_counts
                    .iter()
                    .all(|c| c.identifier != "later"),
                "a round holds what was pending when it started"
            );
            written.extend(
                chunk
                    .ratelimit_counts
                    .iter()
                    .map(|c| (c.granularity, c.identifier.to_string())),
            );
        }
        assert_eq!(written.len(), 4 * groups);
        assert!(
            written.windows(2).all(|w| w[0] < w[1]),
            "sorted, so locks are taken in one order"
        );
        let next = rollups.next_chunk(true).expect("the next round");
        assert_eq!(next.ratelimit_counts.len(), 4);
        assert!(next
            .ratelimit_counts
            .iter()
            .all(|c| c.identifier == "later"));
    }

    #[test]
    fn last_used_rounds_wait_for_the_interval_and_come_sorted_in_chunks() {
        let mut last_used = LastUsed::new(Duration::from_secs(3600));
        assert!(last_used.next_chunk(true).is_none(), "nothing pending");
        for i in (0..LAST_USED_CHUNK + 5).rev() {
            let id: Box<str> = format!("key_{i:06}").into();
            last_used.pending.insert(id, i as i64);
        }
        assert!(
            last_used.next_chunk(false).is_none(),
            "the interval has not passed"
        );
        let first = last_used.next_chunk(true).expect("a round when stopping");
        assert_eq!(first.len(), LAST_USED_CHUNK);
        assert!(
            first.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted by key id"
        );
        assert_eq!(first[0], ("key_000000".into(), 0));
        // The round goes on at the next tick without waiting for another interval.
        let rest = last_used.next_chunk(false).expect("the rest of the round");
        assert_eq!(rest.len(), 5);
        assert!(first[first.len() - 1].0 < rest[0].0);
        assert!(last_used.next_chunk(false).is_none());
        assert!(last_used.pending.is_empty());
    }
}
