//! The change feed consumer: how a server learns that another process changed something it caches.
//!
//! Mutations append `(kind, entity)` rows to the `changes` table in their own transaction. Every
//! [`POLL_INTERVAL`] this process reads what is new and applies it. On PostgreSQL it reads the rows
//! of the last [`WINDOW_MS`] and applies those it has not applied yet: reading a window rather than
//! "after the last sequence number" also catches a transaction that took a lower sequence number
//! but committed later. Where sequence numbers become visible in order (SQLite, whose writers take
//! turns) it keeps a cursor instead and reads only the rows after it, so a busy writer (thousands
//! of keys created a second) does not make every poll re-read ten seconds of rows. Applying a
//! change only drops cache entries, which is idempotent, and costs the verification path nothing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::domain::auth::Authenticator;
use crate::domain::keys::KeyService;
use crate::domain::ratelimit::namespaces::LimitService;
use crate::model::ChangeKind;
use crate::store::{SharedStore, StoreResult};

/// How often the feed is read. Revocation reaches other processes within this plus one query.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How far back each read looks; covers slow transactions and modest clock skew between nodes.
pub const WINDOW_MS: i64 = 10_000;
/// How long rows stay in the table before pruning.
pub const RETENTION_MS: i64 = 60 * 60 * 1000;
/// Prune once every this many polls (about once a minute).
const PRUNE_EVERY: u64 = 240;

/// Applies change-feed entries to this process's caches.
pub struct ChangeFeed {
    store: SharedStore,
    auth: Arc<Authenticator>,
    keys: Arc<KeyService>,
    limits: Arc<LimitService>,
    seen: Mutex<Seen>,
}

/// What the feed has applied: the sequence numbers of the current window, and (where the store's
/// sequence numbers are ordered) the last one read.
#[derive(Default)]
struct Seen {
    applied: HashSet<i64>,
    cursor: Option<i64>,
}

impl ChangeFeed {
    pub fn new(
        store: SharedStore,
        auth: Arc<Authenticator>,
        keys: Arc<KeyService>,
        limits: Arc<LimitService>,
    ) -> Self {
        ChangeFeed {
            store,
            auth,
            keys,
            limits,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Reads the window once and applies what is new. Returns how many entries were applied.
    pub async fn run_once(&self) -> StoreResult<usize> {
        // The feed is wall-clock infrastructure, shared between processes: it never uses the
        // injectable business clock.
        let since = SystemClock.now_ms() - WINDOW_MS;
        let ordered = self.store.changes_are_ordered();
        let cursor = self.seen.lock().unwrap_or_else(|p| p.into_inner()).cursor;
        // The first read (and every read where order is not guaranteed) is of the window.
        let changes = match cursor {
            Some(after) if ordered => self.store.changes_after(after).await?,
            _ => self.store.changes_since(since).await?,
        };
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let applied = &seen.applied;
        let fresh: Vec<_> = changes
            .iter()
            .filter(|c| !applied.contains(&c.seq))
            .collect();
        for change in &fresh {
            match change.kind {
                ChangeKind::RootKey => self.auth.cache().invalidate_all(),
                ChangeKind::Workspace => {
                    self.auth.cache().invalidate_all();
                    self.keys.cache.clear();
                }
                ChangeKind::Api | ChangeKind::Identity | ChangeKind::Rbac => {
                    self.keys.cache.clear()
                }
                ChangeKind::Key => self.keys.forget(&change.entity_id),
                ChangeKind::Namespace => self.limits.forget_namespaces(),
            }
        }
        let fresh = fresh.len();
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

    /// Polls until `shutdown` turns true, pruning old rows now and then.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut polls: u64 = 0;
        loop {
            if let Err(err) = self.run_once().await {
                tracing::warn!(error = %err, "change feed poll failed");
            }
            polls += 1;
            if polls % PRUNE_EVERY == 0 {
                let cutoff = SystemClock.now_ms() - RETENTION_MS;
                if let Err(err) = self.store.prune_changes(cutoff).await {
                    tracing::warn!(error = %err, "change feed prune failed");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
