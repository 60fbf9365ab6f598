//! Verification events: recorded off the request path and written in batches.
//!
//! The request path only pushes a [`PendingEvent`] into a bounded channel ([`EventSink::record`]
//! never waits, and copies no ids: the event points at the cached key). A writer drains it and
//! inserts up to [`BATCH`] rows per transaction, at least every [`FLUSH_INTERVAL`], and drains the
//! rest at shutdown. Where the store offers a synchronous [`EventLog`] (SQLite: a connection of
//! its own with a prepared statement) the writer is a dedicated thread that blocks on the channel;
//! otherwise it is an async task using [`crate::store::Store::insert_verifications`]. If the
//! database falls so far behind that the channel fills, events are dropped and counted rather than
//! slowing verifications down. Events older than [`RETENTION_MS`] are pruned.
//!
//! The writer also keeps each key's latest verification time and writes them to
//! `key_last_used` (what `lastUsedAt` shows) every [`LAST_USED_INTERVAL`] by default and at
//! shutdown: one update per key used in the interval, sorted by key id, however often it was
//! verified, instead of a random index write per verification.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::domain::keycache::CachedKey;
use crate::store::{EventLog, LastUse, NewVerification, SharedStore};

/// Events kept in memory before new ones are dropped.
pub const CAPACITY: usize = 100_000;
/// Rows per write.
pub const BATCH: usize = 5_000;
/// The longest an event waits before it is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// How often the dedicated writer thread looks at the queue.
pub const WRITER_TICK: Duration = Duration::from_millis(50);

/// How often keys' `lastUsedAt` is brought up to date, by default. Unkey's own is about a minute
/// late too.
pub const LAST_USED_INTERVAL: Duration = Duration::from_secs(60);

/// How long verification events are kept: 90 days.
pub const RETENTION_MS: i64 = 90 * 24 * 60 * 60 * 1000;

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

/// The request path's handle.
#[derive(Clone)]
pub struct EventSink {
    tx: SyncSender<PendingEvent>,
    dropped: Arc<AtomicU64>,
}

impl EventSink {
    /// Queues an event; drops it (and counts the drop) if the queue is full.
    pub fn record(&self, event: PendingEvent) {
        if self.tx.try_send(event).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "verification event queue full; events dropped");
            }
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The writer side.
pub struct EventWriter {
    rx: Receiver<PendingEvent>,
    store: SharedStore,
    last_used: LastUsed,
}

/// A connected sink and writer; the writer updates `lastUsedAt` every `last_used_interval`.
pub fn channel(store: SharedStore, last_used_interval: Duration) -> (EventSink, EventWriter) {
    let (tx, rx) = mpsc::sync_channel(CAPACITY);
    (
        EventSink {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        },
        EventWriter {
            rx,
            store,
            last_used: LastUsed::new(last_used_interval),
        },
    )
}

/// Keys' latest verification times not yet written to `key_last_used`.
struct LastUsed {
    pending: HashMap<Box<str>, i64>,
    interval: Duration,
    since: Instant,
}

impl LastUsed {
    fn new(interval: Duration) -> Self {
        LastUsed {
            pending: HashMap::new(),
            interval,
            since: Instant::now(),
        }
    }

    fn note(&mut self, batch: &[PendingEvent]) {
        for event in batch {
            match self.pending.get_mut(&*event.key.id) {
                Some(time) => *time = (*time).max(event.time_ms),
                None => {
                    self.pending.insert(event.key.id.clone(), event.time_ms);
                }
            }
        }
    }

    /// Whether the pending times should be written now (always when `stopping`).
    fn due(&self, stopping: bool) -> bool {
        !self.pending.is_empty() && (stopping || self.since.elapsed() >= self.interval)
    }

    /// The pending times, sorted by key id (neighbouring ids share index pages), and a fresh start.
    fn take(&mut self) -> Vec<(Box<str>, i64)> {
        self.since = Instant::now();
        let mut taken: Vec<(Box<str>, i64)> = self.pending.drain().collect();
        taken.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        taken
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

/// Tag arrays as stored (JSON), `None` for the common empty one.
fn tags_json(batch: &[PendingEvent]) -> Vec<Option<String>> {
    batch
        .iter()
        .map(|e| (!e.tags.is_empty()).then(|| serde_json::to_string(&e.tags).unwrap_or_default()))
        .collect()
}

/// The rows of a batch, borrowing from it.
fn rows<'a>(batch: &'a [PendingEvent], tags: &'a [Option<String>]) -> Vec<NewVerification<'a>> {
    batch
        .iter()
        .zip(tags)
        .map(|(e, tags)| NewVerification {
            request_id: &e.request_id,
            time_ms: e.time_ms,
            workspace_id: &e.key.workspace_id,
            api_id: &e.key.api_id,
            key_space_id: &e.key.key_space_id,
            key_id: &e.key.id,
            identity_id: e.key.identity.as_ref().map(|i| &*i.id),
            outcome: e.outcome,
            tags: tags.as_deref().unwrap_or("[]"),
            spent_credits: e.spent_credits,
            latency_us: e.latency_us,
        })
        .collect()
}

impl EventWriter {
    /// Takes what is queued now, up to [`BATCH`] events, and whether every sender is gone.
    fn take_batch(&self) -> (Vec<PendingEvent>, bool) {
        let mut batch: Vec<PendingEvent> = Vec::new();
        while batch.len() < BATCH {
            match self.rx.try_recv() {
                Ok(event) => batch.push(event),
                Err(TryRecvError::Empty) => return (batch, false),
                Err(TryRecvError::Disconnected) => return (batch, true),
            }
        }
        (batch, false)
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
            if let Err(err) = self.store.insert_verifications(&rows(&batch, &tags)).await {
                tracing::error!(error = %err, lost = batch.len(), "writing verification events failed");
            }
        }
    }

    /// Writes the pending `lastUsedAt` times through the async store if they are due.
    async fn touch_last_used(&mut self, stopping: bool) {
        if !self.last_used.due(stopping) {
            return;
        }
        let taken = self.last_used.take();
        if let Err(err) = self.store.touch_last_used(&last_uses(&taken)).await {
            tracing::warn!(error = %err, keys = taken.len(), "updating keys' lastUsedAt failed");
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
        let pruner = tokio::spawn(prune_loop(self.store.clone(), shutdown.clone()));
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
                        self.touch_last_used(true).await;
                        break;
                    }
                }
                self.run_once().await;
                self.touch_last_used(false).await;
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
                if !batch.is_empty() {
                    self.last_used.note(&batch);
                    let tags = tags_json(&batch);
                    if let Err(err) = log.append(&rows(&batch, &tags)) {
                        tracing::error!(error = %err, lost = batch.len(), "writing verification events failed");
                    }
                }
                if batch.len() < BATCH {
                    break senders_gone;
                }
            };
            let last = stopping || senders_gone;
            if self.last_used.due(last) {
                let taken = self.last_used.take();
                if let Err(err) = log.touch_last_used(&last_uses(&taken)) {
                    tracing::warn!(error = %err, keys = taken.len(), "updating keys' lastUsedAt failed");
                }
            }
            // Stopped by the server, or the server is gone altogether (its runtime dropped).
            if last {
                return;
            }
            std::thread::sleep(WRITER_TICK);
        }
    }
}

/// Prunes events older than [`RETENTION_MS`] about once an hour, until `shutdown`.
async fn prune_loop(store: SharedStore, mut shutdown: watch::Receiver<bool>) {
    loop {
        let cutoff = SystemClock.now_ms() - RETENTION_MS;
        if let Err(err) = store.prune_verifications(cutoff).await {
            tracing::warn!(error = %err, "pruning old verification events failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = shutdown.changed() => return,
        }
    }
}
