//! The workspace's limit on calls to keyward's own API (`keyward workspace limit`): one unit per
//! authenticated request, on the same sliding-window counters as every other limit, so it is exact
//! on one node and shared by nodes that share Redis. Unkey's rule, with its fail-open.

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::domain::ratelimit::{Counters, LimitCheck};

/// The window of the workspace limit.
pub const WINDOW_MS: i64 = 60_000;

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    pub passed: bool,
    pub limit: i64,
    pub remaining: i64,
    /// Whole seconds until the window's current cell ends (floored, at least 0).
    pub reset_secs: i64,
    /// Whether the `RateLimit-*` headers are sent (not for a limit of 0, as Unkey does).
    pub headers: bool,
}

/// Decides the workspace limit of each request.
pub struct WorkspaceLimiter {
    counters: Arc<dyn Counters>,
    clock: SharedClock,
}

impl WorkspaceLimiter {
    pub fn new(counters: Arc<dyn Counters>, clock: SharedClock) -> Self {
        WorkspaceLimiter { counters, clock }
    }

    /// Charges one request to the workspace; `None` when it has no limit, or when the counters
    /// failed (the request passes: a limit must not take the API down).
    pub async fn admit(&self, workspace_id: &str, per_minute: Option<i64>) -> Option<Admission> {
        let limit = per_minute?;
        if limit <= 0 {
            return Some(Admission {
                passed: false,
                limit: 0,
                remaining: 0,
                reset_secs: 0,
                headers: false,
            });
        }
        let now = self.clock.now_ms();
        let check = LimitCheck {
            key: format!("workspace-api:{workspace_id}"),
            limit,
            duration_ms: WINDOW_MS,
            cost: 1,
        };
        match self
            .counters
            .decide(std::slice::from_ref(&check), now)
            .await
        {
            Ok(outcomes) => outcomes.first().map(|o| Admission {
                passed: o.passed,
                limit,
                remaining: o.remaining,
                reset_secs: ((o.reset - now) / 1000).max(0),
                headers: true,
            }),
            Err(err) => {
                tracing::warn!(workspace_id, error = %err, "workspace rate limit not checked; the request passes");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::ratelimit::LocalCounters;

    #[tokio::test]
    async fn a_limit_admits_that_many_per_window_and_none_admits_all() {
        let clock = ManualClock::new(1_000_000);
        let limiter =
            WorkspaceLimiter::new(Arc::new(LocalCounters::default()), Arc::new(clock.clone()));
        assert_eq!(limiter.admit("ws_a", None).await, None);
        let remaining: Vec<(bool, i64)> = {
            let mut seen = Vec::new();
            for _ in 0..3 {
                let a = limiter.admit("ws_a", Some(2)).await.unwrap();
                assert!(a.headers && a.reset_secs <= 60);
                seen.push((a.passed, a.remaining));
            }
            seen
        };
        assert_eq!(remaining, [(true, 1), (true, 0), (false, 0)]);
        // Another workspace has its own window.
        assert!(limiter.admit("ws_b", Some(2)).await.unwrap().passed);
        let zero = limiter.admit("ws_c", Some(0)).await.unwrap();
        assert!(!zero.passed && !zero.headers);
    }
}
