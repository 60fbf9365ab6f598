//! Metrics in Prometheus's text format, served at `GET /metrics` (see README "Metrics").
//!
//! The process has one recorder, installed by the first [`recorder`] call; the `metrics` crate's
//! macros anywhere in the code record into it. Names are `keyward_*`; each is described here,
//! where an operator looks them up.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests answered, by `route` (the matched pattern, `(no route)` for unknown paths) and
/// `status`.
pub const HTTP_REQUESTS: &str = "keyward_http_requests_total";
/// How long requests took, by `route`, in seconds (a histogram).
pub const HTTP_DURATION: &str = "keyward_http_request_duration_seconds";
/// The latency histogram's buckets, in seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// `keys.verifyKey` answers by `code` (VALID, NOT_FOUND, RATE_LIMITED, ...).
pub const VERIFICATIONS: &str = "keyward_verifications_total";
/// `ratelimit.limit` and `multiLimit` decisions by `outcome` (`passed`, `blocked`).
pub const RATELIMIT_DECISIONS: &str = "keyward_ratelimit_decisions_total";
/// Verification-cache lookups by `result` (`hit`, `miss`).
pub const KEY_CACHE_LOOKUPS: &str = "keyward_key_cache_lookups_total";

/// Calls Redis did not answer in cluster mode (failed, timed out, or skipped while Redis is left
/// alone after a failure); each such decision was made without Redis.
pub const REDIS_FALLBACKS: &str = "keyward_redis_fallbacks_total";

/// Recoverable keys whose plaintext the vault sealed (created or rerolled).
pub const VAULT_SEALED: &str = "keyward_vault_keys_sealed_total";
/// Plaintexts of recoverable keys handed out by `getKey`/`listKeys` with `decrypt`.
pub const VAULT_REVEALED: &str = "keyward_vault_keys_revealed_total";
/// Sealed copies that did not open (altered, moved, or under a master key not given).
pub const VAULT_OPEN_FAILURES: &str = "keyward_vault_open_failures_total";

/// Keys (and unknown hashes) in this node's verification cache, read when scraped.
pub const KEY_CACHE_ENTRIES: &str = "keyward_key_cache_entries";
/// Analytics events dropped because the writer's queue was full, since start.
pub const EVENTS_DROPPED: &str = "keyward_events_dropped_total";
/// Database connections by pool (`reader`, `writer`) and state (`busy`, `idle`), when scraped.
pub const DB_CONNECTIONS: &str = "keyward_db_connections";
/// Analytics events queued for the event writer and not yet taken by it, when scraped.
pub const EVENTS_QUEUED: &str = "keyward_events_queued";
/// Database failures by `kind` (`pool_timeout`, `pool_closed`, `connection`, `query`, `other`):
/// every one a request answered 503 with, or an event batch the writer could not write.
pub const DB_ERRORS: &str = "keyward_db_errors_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on first use; `None` if another recorder was installed
/// first (metrics are then not served).
pub fn recorder() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.to_string()), DURATION_BUCKETS)
            .and_then(PrometheusBuilder::install_recorder)
        {
            Ok(handle) => {
                metrics::describe_counter!(
                    REDIS_FALLBACKS,
                    "Calls to Redis that were not answered, so the node decided without Redis"
                );
                metrics::describe_counter!(
                    HTTP_REQUESTS,
                    "Requests answered, by route (matched pattern) and status"
                );
                metrics::describe_histogram!(
                    HTTP_DURATION,
                    metrics::Unit::Seconds,
                    "How long requests took, by route"
                );
                metrics::describe_counter!(VERIFICATIONS, "keys.verifyKey answers by code");
                metrics::describe_counter!(
                    RATELIMIT_DECISIONS,
                    "ratelimit.limit and multiLimit decisions by outcome (passed, blocked)"
                );
                metrics::describe_counter!(
                    KEY_CACHE_LOOKUPS,
                    "Verification-cache lookups by result (hit, miss)"
                );
                metrics::describe_gauge!(
                    KEY_CACHE_ENTRIES,
                    "Keys and unknown hashes in this node's verification cache"
                );
                metrics::describe_counter!(
                    EVENTS_DROPPED,
                    "Analytics events dropped because the event writer's queue was full"
                );
                metrics::describe_gauge!(
                    DB_CONNECTIONS,
                    "Database connections by pool (reader, writer) and state (busy, idle)"
                );
                metrics::describe_gauge!(
                    EVENTS_QUEUED,
                    "Analytics events waiting in the event writer's queue"
                );
                metrics::describe_counter!(
                    DB_ERRORS,
                    "Database failures by kind (pool_timeout, pool_closed, connection, query, other)"
                );
                metrics::describe_counter!(
                    VAULT_SEALED,
                    "Recoverable keys whose plaintext the vault sealed"
                );
                metrics::describe_counter!(
                    VAULT_REVEALED,
                    "Plaintexts of recoverable keys revealed by getKey or listKeys with decrypt"
                );
                metrics::describe_counter!(
                    VAULT_OPEN_FAILURES,
                    "Sealed key copies that did not open (altered, moved, or sealed under a master key not given)"
                );
                Some(handle)
            }
            Err(err) => {
                tracing::warn!(error = %err, "metrics recorder not installed; /metrics is empty");
                None
            }
        })
        .clone()
}

/// The handles of one route's metrics, registered once so that each request costs a lookup in
/// a per-thread map and two atomic updates, not a registry lookup with allocated labels.
struct RouteHandles {
    duration: Histogram,
    /// By status: a route answers with a handful of them, so a short list beats a map.
    by_status: Vec<(u16, Counter)>,
}

thread_local! {
    /// Each worker thread's own handles (clones of the same registered metrics), so that threads
    /// do not contend for a lock. foldhash: the keys are route patterns, not hostile input.
    static ROUTES: RefCell<HashMap<Box<str>, RouteHandles, foldhash::fast::RandomState>> =
        RefCell::new(HashMap::default());
}

/// Counts one answered request and its latency.
pub fn record_request(route: &str, status: u16, seconds: f64) {
    ROUTES.with_borrow_mut(|routes| {
        // One lookup on the hot path; the entry is made once per route and thread.
        if let Some(handles) = routes.get_mut(route) {
            handles.record(route, status, seconds);
            return;
        }
        routes
            .entry(Box::from(route))
            .or_insert_with(|| RouteHandles {
                duration: metrics::histogram!(HTTP_DURATION, "route" => route.to_string()),
                by_status: Vec::new(),
            })
            .record(route, status, seconds);
    });
}

impl RouteHandles {
    fn record(&mut self, route: &str, status: u16, seconds: f64) {
        self.duration.record(seconds);
        match self.by_status.iter().find(|(s, _)| *s == status) {
            Some((_, counter)) => counter.increment(1),
            None => {
                let counter = metrics::counter!(HTTP_REQUESTS, "route" => route.to_string(), "status" => status.to_string());
                counter.increment(1);
                self.by_status.push((status, counter));
            }
        }
    }
}

/// Drains histogram samples into their buckets; without it they would pile up between scrapes.
/// Run every few seconds by the server.
pub fn upkeep() {
    if let Some(Some(handle)) = HANDLE.get() {
        handle.run_upkeep();
    }
}

static CACHE_LOOKUPS: OnceLock<[Counter; 2]> = OnceLock::new();

/// Counts one verification-cache lookup.
pub fn key_cache_lookup(hit: bool) {
    let [hits, misses] = CACHE_LOOKUPS.get_or_init(|| {
        [
            metrics::counter!(KEY_CACHE_LOOKUPS, "result" => "hit"),
            metrics::counter!(KEY_CACHE_LOOKUPS, "result" => "miss"),
        ]
    });
    if hit { hits } else { misses }.increment(1);
}

static RATELIMIT_OUTCOMES: OnceLock<[Counter; 2]> = OnceLock::new();

/// Counts one rate-limit decision.
pub fn ratelimit_decision(passed: bool) {
    let [passed_counter, blocked] = RATELIMIT_OUTCOMES.get_or_init(|| {
        [
            metrics::counter!(RATELIMIT_DECISIONS, "outcome" => "passed"),
            metrics::counter!(RATELIMIT_DECISIONS, "outcome" => "blocked"),
        ]
    });
    if passed { passed_counter } else { blocked }.increment(1);
}

/// One slot per verification code (the codes are a small fieldless enum).
const VERIFY_CODE_SLOTS: usize = 16;
static VERIFY_CODES: [OnceLock<Counter>; VERIFY_CODE_SLOTS] =
    [const { OnceLock::new() }; VERIFY_CODE_SLOTS];

/// Counts one `keys.verifyKey` answer by its code; `slot` is the code's index (below 16), so
/// the count is one atomic add after the first.
pub fn verification(slot: usize, code: &'static str) {
    match VERIFY_CODES.get(slot) {
        Some(cell) => cell
            .get_or_init(|| metrics::counter!(VERIFICATIONS, "code" => code))
            .increment(1),
        None => metrics::counter!(VERIFICATIONS, "code" => code).increment(1),
    }
}

/// Counts one database failure by its kind.
pub fn db_error(err: &crate::store::StoreError) {
    metrics::counter!(DB_ERRORS, "kind" => err.kind()).increment(1);
}
