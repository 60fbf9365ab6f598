//! Analytics events (verifications and rate-limit decisions): recorded off the request path and
//! written in batches.
//!
//! The request path only pushes a [`PendingEvent`] or [`PendingRatelimit`] into a bounded channel
//! ([`EventSink::record`] never waits, and copies no ids: a verification points at the cached key,
//! a decision at the cached namespace). A writer drains it and writes up to [`BATCH`] events per
//! transaction, at least every [`FLUSH_INTERVAL`], and drains the rest at shutdown. The rollups'
//! counts (events per minute, hour, day and month bucket and per everything a query can group by)
//! gather in memory and are written every [`ROLLUP_INTERVAL`], so a key verified many times in
//! that span costs one upsert per bucket rather than one per event. Where the store offers a synchronous [`EventLog`] (SQLite: a connection of
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
    pending: HashMap<Box<str>, i64>,
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
            pending: HashMap::new(),
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

/// Counts held at most before they are written early, whatever the interval (about 150 bytes
/// each): many distinct keys in little time.
const MAX_PENDING_COUNTS: usize = 200_000;

/// A cached key, compared and hashed by identity (the `Arc`): cheap on the writer's busiest path,
/// and exact, since everything a rollup row keeps of a key is in the entry. Two entries of one key
/// (before and after a change) only make two groups that the write merges again.
#[derive(Clone)]
struct SameKey(Arc<CachedKey>);

impl PartialEq for SameKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SameKey {}

impl std::hash::Hash for SameKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as usize).hash(state);
    }
}

/// Verifications gathered per minute, key, outcome and tags; the hour, day and month counts are
/// derived from these when they are written.
#[derive(Clone, PartialEq, Eq, Hash)]
struct MinuteGroup {
    minute_ms: i64,
    key: SameKey,
    outcome: &'static str,
    /// JSON text of the tags; `None` for none.
    tags: Option<Box<str>>,
}

/// What a rate-limit rollup row is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct RatelimitGroup {
    granularity: Granularity,
    time_ms: i64,
    workspace_id: Box<str>,
    namespace_id: Box<str>,
    identifier: Box<str>,
}

/// The rollups' counts not yet written.
struct Rollups {
    minutes: HashMap<MinuteGroup, (i64, i64)>,
    ratelimits: HashMap<RatelimitGroup, [i64; 4]>,
    since: Instant,
    interval: Duration,
}

impl Rollups {
    fn new(interval: Duration) -> Self {
        Rollups {
            minutes: HashMap::new(),
            ratelimits: HashMap::new(),
            since: Instant::now(),
            interval,
        }
    }

    /// Counts a round's verifications once they are written: one map entry per event, with no
    /// copy of any id. The events are consumed: each one's key handle moves into its group (or is
    /// dropped, as the event would have been), so counting adds no reference-count traffic on a
    /// hot key's entry, which every request thread also touches.
    fn note(&mut self, events: Vec<Event>, tags: Vec<Option<String>>) {
        for (event, tags) in events.into_iter().zip(tags) {
            let Event::Verification(e) = event else {
                continue;
            };
            let sums = self
                .minutes
                .entry(MinuteGroup {
                    minute_ms: Granularity::Minute.start(e.time_ms),
                    key: SameKey(e.key),
                    outcome: e.outcome,
                    tags: tags.map(String::into_boxed_str),
                })
                .or_default();
            // Saturating: a client chooses the costs, and a sum must not overflow.
            sums.0 = sums.0.saturating_add(1);
            sums.1 = sums.1.saturating_add(e.spent_credits);
        }
    }

    /// Takes a batch's rate-limit counts over, leaving it the raw rows only.
    fn absorb(&mut self, batch: &mut EventBatch<'_>) {
        for c in batch.ratelimit_counts.drain(..) {
            let sums = self
                .ratelimits
                .entry(RatelimitGroup {
                    granularity: c.granularity,
                    time_ms: c.time_ms,
                    workspace_id: c.workspace_id.into(),
                    namespace_id: c.namespace_id.into(),
                    identifier: c.identifier.into(),
                })
                .or_default();
            for (sum, add) in
                sums.iter_mut()
                    .zip([c.passed, c.total, c.passed_tokens, c.total_tokens])
            {
                *sum = sum.saturating_add(add);
            }
        }
    }

    /// Whether to write now: when asked to (`now`), after the interval, or when many counts are
    /// pending.
    fn due(&self, now: bool) -> bool {
        let pending = self.minutes.len() + self.ratelimits.len();
        pending > 0
            && (now || self.since.elapsed() >= self.interval || pending >= MAX_PENDING_COUNTS)
    }

    /// The pending counts as a batch to write, sorted so that concurrent writers (several
    /// nodes on PostgreSQL) lock rollup rows in one order.
    fn batch(&self) -> EventBatch<'_> {
        // Every granularity's rows from the minute groups, merged by what a row is keyed by.
        let mut counted: HashMap<CountedAs<'_>, (i64, i64)> = HashMap::new();
        for (g, &(count, spent)) in &self.minutes {
            let key = &g.key.0;
            let identity = key.identity.as_deref();
            for granularity in Granularity::ALL {
                let sums = counted
                    .entry(CountedAs {
                        granularity,
                        time_ms: granularity.start(g.minute_ms),
                        workspace_id: &key.workspace_id,
                        key_space_id: &key.key_space_id,
                        key_id: &key.id,
                        identity_id: identity.map_or("", |i| &*i.id),
                        external_id: identity.map_or("", |i| &*i.external_id),
                        outcome: g.outcome,
                        tags: g.tags.as_deref().unwrap_or("[]"),
                    })
                    .or_default();
                sums.0 = sums.0.saturating_add(count);
                sums.1 = sums.1.saturating_add(spent);
            }
        }
        let mut verifications: Vec<_> = counted.into_iter().collect();
        verifications.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut ratelimits: Vec<_> = self.ratelimits.iter().collect();
        ratelimits.sort_unstable_by(|a, b| a.0.cmp(b.0));
        EventBatch {
            verification_counts: verifications
                .into_iter()
                .map(|(g, (count, spent_credits))| VerificationCount {
                    granularity: g.granularity,
                    time_ms: g.time_ms,
                    workspace_id: g.workspace_id,
                    key_space_id: g.key_space_id,
                    key_id: g.key_id,
                    identity_id: g.identity_id,
                    external_id: g.external_id,
                    outcome: g.outcome,
                    source: SOURCE_API,
                    tags: g.tags,
                    count,
                    spent_credits,
                })
                .collect(),
            ratelimit_counts: ratelimits
                .into_iter()
                .map(|(g, s)| RatelimitCount {
                    granularity: g.granularity,
                    time_ms: g.time_ms,
                    workspace_id: &g.workspace_id,
                    namespace_id: &g.namespace_id,
                    identifier: &g.identifier,
                    passed: s[0],
                    total: s[1],
                    passed_tokens: s[2],
                    total_tokens: s[3],
                })
                .collect(),
            ..Default::default()
        }
    }

    fn clear(&mut self) {
        self.minutes.clear();
        self.ratelimits.clear();
        self.since = Instant::now();
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

/// What a round writes, borrowing from its events: the raw rows, and the batch's rate-limit
/// counts per rollup group (which [`Rollups::absorb`] takes over; verifications are counted by
/// [`Rollups::note`]).
fn batch<'a>(events: &'a [Event], tags: &'a [Option<String>], region: &'a str) -> EventBatch<'a> {
    let mut out = EventBatch::default();
    let mut limits: HashMap<(Granularity, i64, &str, &str, &str), [i64; 4]> = HashMap::new();
    for (event, tags) in events.iter().zip(tags) {
        match event {
            Event::Verification(e) => {
                let identity = e.key.identity.as_deref();
                let row = NewVerification {
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
                };
                out.verifications.push(row);
            }
            Event::Ratelimit(e) => {
                let row = NewRatelimitEvent {
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
                };
                for granularity in Granularity::ALL {
                    let sums = limits
                        .entry((
                            granularity,
                            granularity.start(row.time_ms),
                            row.workspace_id,
                            row.namespace_id,
                            row.identifier,
                        ))
                        .or_default();
                    // Saturating: `tokens` is the client's `cost`, up to i64::MAX each.
                    let passed_tokens = if row.passed { row.tokens } else { 0 };
                    for (sum, add) in
                        sums.iter_mut()
                            .zip([i64::from(row.passed), 1, passed_tokens, row.tokens])
                    {
                        *sum = sum.saturating_add(add);
                    }
                }
                out.ratelimits.push(row);
            }
        }
    }
    out.ratelimit_counts = limits
        .into_iter()
        .map(
            |(
                (granularity, time_ms, ws, namespace, identifier),
                [passed, total, passed_tokens, total_tokens],
            )| {
                RatelimitCount {
                    granularity,
                    time_ms,
                    workspace_id: ws,
                    namespace_id: namespace,
                    identifier,
                    passed,
                    total,
                    passed_tokens,
                    total_tokens,
                }
            },
        )
        .collect();
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
            {
                let mut rows = self::batch(&batch, &tags, &self.config.region);
                self.rollups.absorb(&mut rows);
                if let Err(err) = self.store.insert_events(&rows).await {
                    tracing::error!(error = %err, lost = batch.len(), "writing analytics events failed");
                    crate::telemetry::db_error(&err);
                }
            }
            self.rollups.note(batch, tags);
        }
    }

    /// Writes the rollups' pending counts through the async store when they are due (or `now`).
    async fn write_rollups(&mut self, now: bool) {
        let now = now || self.rounds.flush.swap(false, Ordering::SeqCst);
        if !self.rollups.due(now) {
            return;
        }
        if let Err(err) = self.store.insert_events(&self.rollups.batch()).await {
            tracing::error!(error = %err, "writing analytics rollups failed");
            crate::telemetry::db_error(&err);
        }
        self.rollups.clear();
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
                    {
                        let mut rows = self::batch(&batch, &tags, &self.config.region);
                        self.rollups.absorb(&mut rows);
                        if let Err(err) = log.append(&rows) {
                            tracing::error!(error = %err, lost = batch.len(), "writing analytics events failed");
                            crate::telemetry::db_error(&err);
                        }
                    }
                    self.rollups.note(batch, tags);
                }
                if !full {
                    break senders_gone;
                }
            };
            let last = stopping || senders_gone;
            let flush = self.rounds.flush.swap(false, Ordering::SeqCst);
            if self.rollups.due(last || flush) {
                if let Err(err) = log.append(&self.rollups.batch()) {
                    tracing::error!(error = %err, "writing analytics rollups failed");
                    crate::telemetry::db_error(&err);
                }
                self.rollups.clear();
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

    #[test]
    fn rollup_counts_gather_across_rounds_until_they_are_due() {
        let mut rollups = Rollups::new(Duration::from_secs(3600));
        assert!(!rollups.due(true), "nothing pending");
        let (a, b) = (key("a"), key("b"));
        // A second cache entry of key a (after a change): the write merges it with the first.
        let a_again = key("a");
        let first = [
            verified(&b, 60_000, 1),
            verified(&a, 60_001, 1),
            verified(&b, 61_000, 1),
        ];
        let tags = tags_json(&first);
        rollups.note(first.into(), tags);
        let second = [verified(&a_again, 90_000, 2), verified(&a, 3_700_000, 0)];
        let tags = tags_json(&second);
        rollups.note(second.into(), tags);
        let mut limits = EventBatch {
            ratelimit_counts: vec![RatelimitCount {
                granularity: Granularity::Hour,
                time_ms: 0,
                workspace_id: "ws",
                namespace_id: "ns",
                identifier: "x",
                passed: 1,
                total: 2,
                passed_tokens: 1,
                total_tokens: 2,
            }],
            ..Default::default()
        };
        rollups.absorb(&mut limits);
        assert!(limits.ratelimit_counts.is_empty(), "taken over");
        assert!(!rollups.due(false), "the interval has not passed");
        assert!(rollups.due(true));
        let batch = rollups.batch();
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
        assert_eq!(batch.ratelimit_counts.len(), 1);
        assert!(batch.verifications.is_empty() && !batch.is_empty());
        drop(batch);
        rollups.clear();
        assert!(!rollups.due(true));
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
