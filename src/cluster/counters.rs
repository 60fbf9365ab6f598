//! Rate-limit counters shared by every node through Redis, with this node's own counters as the
//! fallback while Redis cannot be reached.
//!
//! Each decision (one check or a whole all-or-nothing batch) is one call of `counters.lua`, which
//! runs the sliding window of [`crate::domain::ratelimit`] atomically inside Redis on Redis's own
//! clock. The script is the one place the window's arithmetic is written a second time, because
//! it must run where the counts are; the tests of `tests/api/cluster.rs` hold both to the same
//! answers. (Lua computes in doubles: the previous cell's weight is exact while
//! `previous × duration` stays under 2^53, which holds for every limit below about a million per
//! 100-day window; past that it may round by one.)
//!
//! Failure policy: the [`RedisLink`]'s. A decision Redis does not give in time is made by
//! [`LocalCounters`] instead, and [`RedisLink::fallbacks`] counts them.

use std::sync::Arc;

use async_trait::async_trait;

use crate::cluster::link::RedisLink;
use crate::domain::health::Probe;
use crate::domain::ratelimit::{CounterError, Counters, LimitCheck, LimitOutcome, LocalCounters};

/// Prefix of every counter key, versioned with the script's cell layout.
const KEY_PREFIX: &str = "keyward:rl:v1:";

/// Counters in Redis, one script call per decision.
pub struct RedisCounters {
    link: Arc<RedisLink>,
    script: redis::Script,
}

impl RedisCounters {
    pub fn new(link: Arc<RedisLink>) -> Self {
        RedisCounters {
            link,
            script: redis::Script::new(include_str!("counters.lua")),
        }
    }

    /// Decides a batch in Redis, on Redis's clock, within the link's timeout.
    pub async fn decide(&self, checks: &[LimitCheck]) -> Result<Vec<LimitOutcome>, CounterError> {
        if checks.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.script.prepare_invoke();
        for check in checks {
            invocation
                .key(format!("{KEY_PREFIX}{}", check.key))
                .arg(check.limit)
                .arg(check.duration_ms)
                .arg(check.cost);
        }
        let flat: Vec<i64> = self
            .link
            .call(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await
            .map_err(|err| CounterError(err.0))?;
        if flat.len() != checks.len() * 3 {
            return Err(CounterError(format!(
                "Redis answered {} numbers for {} checks",
                flat.len(),
                checks.len()
            )));
        }
        Ok(flat
            .chunks_exact(3)
            .map(|c| LimitOutcome {
                passed: c[0] == 1,
                remaining: c[1],
                reset: c[2],
            })
            .collect())
    }
}

/// Cluster mode's counters: Redis while it answers in time, this node's counters while not.
pub struct ClusterCounters {
    redis: RedisCounters,
    local: Arc<LocalCounters>,
}

impl ClusterCounters {
    pub fn new(redis: RedisCounters, local: Arc<LocalCounters>) -> Self {
        ClusterCounters { redis, local }
    }

    /// The link these counters reach Redis through.
    pub fn link(&self) -> &RedisLink {
        &self.redis.link
    }
}

#[async_trait]
impl Probe for ClusterCounters {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn check(&self) -> Result<(), String> {
        self.redis.link.ping().await.map_err(|err| err.0)
    }
}

#[async_trait]
impl Counters for ClusterCounters {
    async fn decide(
        &self,
        checks: &[LimitCheck],
        now: i64,
    ) -> Result<Vec<LimitOutcome>, CounterError> {
        match self.redis.decide(checks).await {
            Ok(outcomes) => Ok(outcomes),
            Err(_) => Ok(self.local.decide_now(checks, now)),
        }
    }
}
