//! Reading the audit log: pages for `audit.getLogs` (keyward's own route), the chain check of
//! `keyward audit verify`, and the NDJSON export of `keyward audit export`.
//!
//! Pages follow each workspace's log position (`seq`), which the store assigns in commit order
//! with no gaps: a poller that reads page after page while writes go on sees every event exactly
//! once, on SQLite and on PostgreSQL alike.

use std::sync::Arc;

use crate::model::{AuditQuery, StoredAuditEvent};
use crate::store::{chain_hash, AuditStore, StoreResult};

/// How many events a chain check or an export reads per round.
const BATCH: i64 = 500;
/// How long audit events are kept by default (`--audit-retention-days`).
pub const DEFAULT_RETENTION_DAYS: u32 = 365;
/// How often the retention is applied.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// What `keyward audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainReport {
    /// Every chained event links to the one before it; `unchained` events predate the chain;
    /// the first `pruned` positions were removed by retention (the chain is checked from the
    /// first event that is left).
    Intact {
        chained: u64,
        unchained: u64,
        pruned: i64,
    },
    /// The first event whose link does not hold, and why.
    Broken {
        seq: i64,
        id: String,
        reason: String,
    },
}

/// The audit log's readers.
pub struct AuditService {
    store: Arc<dyn AuditStore>,
}

impl AuditService {
    pub fn new(store: Arc<dyn AuditStore>) -> Self {
        AuditService { store }
    }

    /// One page: at most `query.limit` events, and whether more follow.
    pub async fn page(&self, query: &AuditQuery) -> StoreResult<(Vec<StoredAuditEvent>, bool)> {
        let mut wider = query.clone();
        wider.limit = query.limit + 1;
        let mut events = self.store.audit_page(&wider).await?;
        let more = events.len() as i64 > query.limit;
        events.truncate(query.limit.max(0) as usize);
        Ok((events, more))
    }

    /// Every event of a workspace (from `since_ms` on, when given), in log order, handed to
    /// `each`; read in batches.
    /// Stops at the first error `each` returns, and returns it.
    pub async fn for_each<E: Send>(
        &self,
        workspace_id: &str,
        since_ms: Option<i64>,
        each: &mut (dyn FnMut(&StoredAuditEvent) -> Result<(), E> + Send),
    ) -> StoreResult<Result<(), E>> {
        let mut query = AuditQuery {
            workspace_id: workspace_id.to_string(),
            limit: BATCH,
            start_time: since_ms,
            ..AuditQuery::default()
        };
        loop {
            let events = self.store.audit_page(&query).await?;
            for event in &events {
                if let Err(err) = each(event) {
                    return Ok(Err(err));
                }
            }
            match events.last() {
                Some(last) if events.len() as i64 == BATCH => query.after_seq = last.seq,
                _ => return Ok(Ok(())),
            }
        }
    }

    /// Removes the events written before `before_ms` (a prefix of each workspace's log).
    pub async fn prune(&self, before_ms: i64) -> StoreResult<u64> {
        self.store.prune_audit(before_ms).await
    }

    /// Applies `retention` about once an hour (and once at start) until `shutdown`.
    pub async fn run_retention(
        self: Arc<Self>,
        retention: std::time::Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        use crate::clock::{Clock, SystemClock};
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        loop {
            let cutoff = SystemClock.now_ms().saturating_sub(retention_ms);
            match self.prune(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "audit events past their retention removed"),
                Err(err) => tracing::warn!(error = %err, "audit retention failed; will retry"),
            }
            tokio::select! {
                _ = tokio::time::sleep(PRUNE_EVERY) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Walks a workspace's chain from its first event and reports the first broken link.
    pub async fn verify(&self, workspace_id: &str) -> StoreResult<ChainReport> {
        let mut expected_seq: Option<i64> = None;
        let mut pruned = 0;
        let mut prev: Option<String> = None;
        let (mut chained, mut unchained) = (0u64, 0u64);
        let mut check = |e: &StoredAuditEvent| -> Result<(), ChainReport> {
            let fail = |reason: &str| {
                Err(ChainReport::Broken {
                    seq: e.seq,
                    id: e.id.clone(),
                    reason: reason.to_string(),
                })
            };
            // Retention removes a prefix of the log: the first event left starts the check.
            let expected = *expected_seq.get_or_insert_with(|| {
                pruned = e.seq - 1;
                e.seq
            });
            if e.seq != expected {
                return fail("the event before it is missing");
            }
            expected_seq = Some(expected + 1);
            let (Some(stored_prev), Some(hash)) = (&e.prev_hash, &e.hash) else {
                if prev.is_some() {
                    return fail("it carries no hash, but the chain began before it");
                }
                unchained += 1;
                return Ok(());
            };
            if prev.as_ref().is_some_and(|prev| prev != stored_prev) {
                return fail("its previous hash is not the hash of the event before it");
            }
            if &chain_hash(stored_prev, e) != hash {
                return fail("its content does not match its hash: it was changed");
            }
            prev = Some(hash.clone());
            chained += 1;
            Ok(())
        };
        Ok(match self.for_each(workspace_id, None, &mut check).await? {
            Err(broken) => broken,
            Ok(()) => ChainReport::Intact {
                chained,
                unchained,
                pruned,
            },
        })
    }
}
