//! Cache invalidation, in one place: what a mutation made stale, on this node and on every other.
//!
//! Every mutation records a `(kind, entity)` change in its own transaction (the store writes it to
//! the `changes` table) and then reports the same change to this node's [`Invalidator`]. Other
//! processes learn of it through a [`ChangeBus`] and hand it to their own `Invalidator`, so a local
//! change and a remote one take exactly the same path. Each cache says, by implementing
//! [`Invalidate`], which kinds of change concern it.
//!
//! In cluster mode a node also announces each change it makes through Redis ([`Announce`],
//! implemented in `cluster::changes`), and every node applies what it hears at once; the poll then
//! runs every [`SAFETY_POLL_INTERVAL`], only to repair a lost announcement.
//!
//! The poll is [`PolledChanges`], which reads the `changes` table every [`POLL_INTERVAL`]. On
//! PostgreSQL it reads the rows of the last [`WINDOW_MS`] and applies those it has not applied yet:
//! a window rather than "after the last sequence number" also catches a transaction that took a
//! lower sequence number but committed later. Where sequence numbers become visible in order
//! (SQLite, whose writers take turns) it keeps a cursor and reads only the rows after it, so a
//! busy writer does not make every poll re-read ten seconds of rows. Applying a change only drops
//! cache entries, which is idempotent, and costs the verification path nothing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::model::{Change, ChangeKind};
use crate::store::{ChangeStore, StoreResult};

/// How often the feed is read. Revocation reaches other processes within this plus one query.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often the feed is read in cluster mode, where announcements carry changes at once and the
/// poll repairs a lost one, and carries the changes of operator commands run without `--redis`
/// (so those too reach every node within a second).
pub const SAFETY_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How far back each read looks; covers slow transactions and modest clock skew between nodes.
pub const WINDOW_MS: i64 = 10_000;
/// How long rows stay in the table before pruning.
pub const RETENTION_MS: i64 = 60 * 60 * 1000;
/// Prune once every this many polls (about once a minute).
const PRUNE_EVERY: u64 = 240;

/// A per-node cache that a change can make stale.
pub trait Invalidate: Send + Sync {
    /// Drops whatever `(kind, entity)` makes stale; a change of another kind is ignored.
    fn invalidate(&self, kind: ChangeKind, entity: &str);
}

/// How a node tells the others at once of a change it made (cluster mode's fast path; the
/// change is in the `changes` table already, so a lost announcement costs only time).
pub trait Announce: Send + Sync {
    /// Sends the change on its way without waiting.
    fn announce(&self, kind: ChangeKind, entity: &str);
}

/// The one entry point of invalidation: every cache of this node, told of every change.
pub struct Invalidator {
    caches: Vec<Arc<dyn Invalidate>>,
    announcer: Option<Arc<dyn Announce>>,
}

impl Invalidator {
    pub fn new(caches: Vec<Arc<dyn Invalidate>>) -> Self {
        Invalidator {
            caches,
            announcer: None,
        }
    }

    /// Also announces every change made on this node to the others.
    pub fn announcing(mut self, announcer: Arc<dyn Announce>) -> Self {
        self.announcer = Some(announcer);
        self
    }

    /// Applies a change made on this node, and announces it.
    pub fn apply(&self, kind: ChangeKind, entity: &str) {
        self.receive(kind, entity);
        if let Some(announcer) = &self.announcer {
            announcer.announce(kind, entity);
        }
    }

    /// Applies a change another process made.
    pub fn receive(&self, kind: ChangeKind, entity: &str) {
        for cache in &self.caches {
            cache.invalidate(kind, entity);
        }
    }
}

/// How a node hears of the changes other processes make.
#[async_trait]
pub trait ChangeBus: Send + Sync + 'static {
    /// The changes not yet received by this node (it may also return a few it has already seen;
    /// applying a change twice is harmless).
    async fn receive(&self) -> StoreResult<Vec<Change>>;
}

/// The change bus over the store's `changes` table: polled, with a window or a cursor (see the
/// module documentation), and pruned now and then.
pub struct PolledChanges {
    store: Arc<dyn ChangeStore>,
    seen: Mutex<Seen>,
}

/// What the poller has received: the sequence numbers of the current window, and (where the
/// store's sequence numbers are ordered) the last one read.
#[derive(Default)]
struct Seen {
    applied: HashSet<i64>,
    cursor: Option<i64>,
    polls: u64,
}

impl PolledChanges {
    pub fn new(store: Arc<dyn ChangeStore>) -> Self {
        PolledChanges {
            store,
            seen: Mutex::new(Seen::default()),
        }
    }

    async fn prune(&self) {
        let cutoff = SystemClock.now_ms() - RETENTION_MS;
        if let Err(err) = self.store.prune_changes(cutoff).await {
            tracing::warn!(error = %err, "change feed prune failed");
        }
    }
}

#[async_trait]
impl ChangeBus for PolledChanges {
    async fn receive(&self) -> StoreResult<Vec<Change>> {
        // The feed is wall-clock infrastructure, shared between processes: it never uses the
        // injectable business clock.
        let since = SystemClock.now_ms() - WINDOW_MS;
        let ordered = self.store.changes_are_ordered();
        let (cursor, polls) = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.polls += 1;
            (seen.cursor, seen.polls)
        };
        if polls.is_multiple_of(PRUNE_EVERY) {
            self.prune().await;
        }
        // The first read (and every read where order is not guaranteed) is of the window.
        let changes = match cursor {
            Some(after) if ordered => self.store.changes_after(after).await?,
            _ => self.store.changes_since(since).await?,
        };
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let fresh: Vec<Change> = changes
            .iter()
            .filter(|c| !seen.applied.contains(&c.seq))
            .cloned()
            .collect();
        if ordered {
            // Nothing can appear at or below the last row read: the cursor is all that is needed.
            if let Some(last) = changes.last() {
                seen.cursor = Some(last.seq);
            }
            seen.applied.clear();
        } else {
            // Everything older than the window can no longer come back: only the window is kept.
            seen.applied = changes.iter().map(|c| c.seq).collect();
        }
        Ok(fresh)
    }
}

/// The background worker that hands what the bus receives to this node's [`Invalidator`].
pub struct ChangeFeed {
    bus: Arc<dyn ChangeBus>,
    invalidator: Arc<Invalidator>,
    interval: Duration,
}

impl ChangeFeed {
    /// A feed that reads the bus every `interval` ([`POLL_INTERVAL`] alone; in cluster mode,
    /// where announcements carry changes at once, [`SAFETY_POLL_INTERVAL`]).
    pub fn new(bus: Arc<dyn ChangeBus>, invalidator: Arc<Invalidator>, interval: Duration) -> Self {
        ChangeFeed {
            bus,
            invalidator,
            interval,
        }
    }

    /// The invalidator this feed reports to.
    pub fn invalidator(&self) -> &Arc<Invalidator> {
        &self.invalidator
    }

    /// Receives once and applies what is new. Returns how many changes were applied.
    pub async fn run_once(&self) -> StoreResult<usize> {
        let changes = self.bus.receive().await?;
        for change in &changes {
            self.invalidator.receive(change.kind, &change.entity_id);
        }
        Ok(changes.len())
    }

    /// Runs every interval until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(err) = self.run_once().await {
                tracing::warn!(error = %err, "change feed poll failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
