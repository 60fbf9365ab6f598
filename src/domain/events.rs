//! Verification events: recorded off the request path and written in batches.
//!
//! The request path only pushes into a bounded channel ([`EventSink::record`] never waits). A
//! writer task drains it and inserts up to [`BATCH`] rows per transaction, at least every
//! [`FLUSH_INTERVAL`], and drains the rest at shutdown. If the database falls so far behind that
//! the channel fills, events are dropped and counted rather than slowing verifications down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::store::{SharedStore, VerificationEvent};

/// Events kept in memory before new ones are dropped.
pub const CAPACITY: usize = 100_000;
/// Rows per write.
pub const BATCH: usize = 5_000;
/// The longest an event waits before it is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// The request path's handle.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<VerificationEvent>,
    dropped: Arc<AtomicU64>,
}

impl EventSink {
    /// Queues an event; drops it (and counts the drop) if the queue is full.
    pub fn record(&self, event: VerificationEvent) {
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
    rx: mpsc::Receiver<VerificationEvent>,
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
            let mut batch = Vec::new();
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
            if let Err(err) = self.store.insert_verifications(&batch).await {
                tracing::error!(error = %err, lost = batch.len(), "writing verification events failed");
            }
        }
    }

    /// Writes every [`FLUSH_INTERVAL`] until `shutdown`, then drains the queue.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(FLUSH_INTERVAL) => {}
                _ = shutdown.changed() => break,
            }
            self.run_once().await;
        }
        self.run_once().await;
    }
}
