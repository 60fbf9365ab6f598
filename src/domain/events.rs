//! Verification events: recorded off the request path and written in batches.
//!
//! The request path only pushes a [`PendingEvent`] into a bounded channel ([`EventSink::record`]
//! never waits, and copies no ids: the event points at the cached key). A writer task drains it
//! and inserts up to [`BATCH`] rows per transaction, at least every [`FLUSH_INTERVAL`], and drains
//! the rest at shutdown. If the database falls so far behind that the channel fills, events are
//! dropped and counted rather than slowing verifications down. Events older than [`RETENTION_MS`]
//! are pruned.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::clock::{Clock, SystemClock};
use crate::domain::keycache::CachedKey;
use crate::store::{NewVerification, SharedStore};

/// Events kept in memory before new ones are dropped.
pub const CAPACITY: usize = 100_000;
/// Rows per write.
pub const BATCH: usize = 5_000;
/// The longest an event waits before it is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

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
    tx: mpsc::Sender<PendingEvent>,
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
    rx: mpsc::Receiver<PendingEvent>,
    store: SharedStore,
}

/// A connected sink and writer.
pub fn channel(store: SharedStore) -> (EventSink, EventWriter) {
    let (tx, rx) = mpsc::channel(CAPACITY);
    (
        EventSink {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        },
        EventWriter { rx, store },
    )
}

impl EventWriter {
    /// Writes whatever is queued now, in batches. Returns how many events were written.
    pub async fn run_once(&mut self) -> usize {
        let mut written = 0;
        loop {
            let mut batch: Vec<PendingEvent> = Vec::new();
            while batch.len() < BATCH {
                match self.rx.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                return written;
            }
            written += batch.len();
            let tags: Vec<Option<String>> = batch
                .iter()
                .map(|e| {
                    (!e.tags.is_empty()).then(|| serde_json::to_string(&e.tags).unwrap_or_default())
                })
                .collect();
            let rows: Vec<NewVerification<'_>> = batch
                .iter()
                .zip(&tags)
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
                .collect();
            if let Err(err) = self.store.insert_verifications(&rows).await {
                tracing::error!(error = %err, lost = batch.len(), "writing verification events failed");
            }
        }
    }

    /// Writes every [`FLUSH_INTERVAL`] until `shutdown`, then drains the queue.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut rounds: u64 = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(FLUSH_INTERVAL) => {}
                _ = shutdown.changed() => break,
            }
            self.run_once().await;
            rounds += 1;
            // About once an hour.
            if rounds % 7200 == 1 {
                let cutoff = SystemClock.now_ms() - RETENTION_MS;
                if let Err(err) = self.store.prune_verifications(cutoff).await {
                    tracing::warn!(error = %err, "pruning old verification events failed");
                }
            }
        }
        self.run_once().await;
    }
}
