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
                Some(handle)
            }
            Err(err) => {
                tracing::warn!(error = %err, "metrics recorder not installed; /metrics is empty");
                None
            }
        })
        .clone()
}
