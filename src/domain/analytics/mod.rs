//! Analytics: the caller's SQL over its own verifications and rate-limit decisions
//! (`analytics.getVerifications`, `analytics.getRatelimits`), and a ready-made usage series
//! (`analytics.getUsage`).
//!
//! A query goes: quota (per workspace, through the shared rate-limit counters) → compile
//! ([`query::compile`]: validation with Unkey's error codes, then a rewrite whose only sources are
//! CTEs pre-filtered to the caller's workspace and scope) → run (the store, read-only, with a
//! deadline) → rows turned into JSON by the column kinds the compiler inferred, within the
//! response cap.

pub mod query;

use std::time::Duration;

/// What an operator can tune about analytics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsSettings {
    /// Days of raw events (and minute and hour rollups) kept, and the range a query may reach
    /// back (`--analytics-retention-days`).
    pub retention_days: u32,
    /// Queries per workspace per hour; 0 for no quota (`--analytics-query-quota`).
    pub queries_per_hour: u32,
    /// The longest a query may run.
    pub query_timeout: Duration,
    /// The most rows a query may return.
    pub max_rows: u64,
    /// The largest encoded response.
    pub max_response_bytes: usize,
}

/// Kept 90 days by default (Unkey keeps 3 to 14, by plan).
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// Queries per workspace and hour, as Unkey's quota.
pub const DEFAULT_QUERIES_PER_HOUR: u32 = 1000;
/// A query's deadline, as Unkey's client deadline.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The row cap, as Unkey's default.
pub const MAX_ROWS: u64 = 10_000_000;
/// The response cap: 4 MiB, as Unkey's.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

impl Default for AnalyticsSettings {
    fn default() -> Self {
        AnalyticsSettings {
            retention_days: DEFAULT_RETENTION_DAYS,
            queries_per_hour: DEFAULT_QUERIES_PER_HOUR,
            query_timeout: QUERY_TIMEOUT,
            max_rows: MAX_ROWS,
            max_response_bytes: MAX_RESPONSE_BYTES,
        }
    }
}
