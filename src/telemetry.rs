//! Metrics in Prometheus's text format, served at `GET /metrics` (see README "Metrics").
//!
//! The process has one recorder, installed by the first [`recorder`] call; the `metrics` crate's
//! macros anywhere in the code record into it. Names are `keyward_*`; each is described here,
//! where an operator looks them up.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

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

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on first use; `None` if another recorder was installed
/// first (metrics are then not served).
pub fn recorder() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => {
                metrics::describe_counter!(
                    REDIS_FALLBACKS,
                    "Calls to Redis that were not answered, so the node decided without Redis"
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
