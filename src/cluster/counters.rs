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
//! Failure policy (DECISIONS.md): no request waits on Redis longer than [`REDIS_TIMEOUT`]. A call
//! that fails or times out is decided by [`LocalCounters`] instead, Redis is left alone for
//! [`RETRY_AFTER`], and the next call after that tries it again, so cluster mode comes back by
//! itself. Each switch is logged once; [`ClusterCounters::fallbacks`] counts the decisions made
//! locally.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

use crate::domain::health::Probe;
use crate::domain::ratelimit::{CounterError, Counters, LimitCheck, LimitOutcome, LocalCounters};

/// The longest a request waits on Redis before it is decided locally.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// How long Redis is left alone after a failure before it is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Prefix of every counter key, versioned with the script's cell layout.
const KEY_PREFIX: &str = "keyward:rl:v1:";

/// Counters in Redis, one script call per decision.
pub struct RedisCounters {
    client: redis::Client,
    /// Made on first use (so a node starts while Redis is down); it reconnects by itself.
    connection: OnceCell<ConnectionManager>,
    script: redis::Script,
}

impl RedisCounters {
    /// Counters on the Redis at `url` (`redis://[:password@]host:port[/db]`). Checks the URL
    /// only; the connection is made on first use.
    pub fn new(url: &str) -> Result<Self, CounterError> {
        let client = redis::Client::open(url)
            .map_err(|err| CounterError(format!("invalid Redis URL: {err}")))?;
        Ok(RedisCounters {
            client,
            connection: OnceCell::new(),
            script: redis::Script::new(include_str!("counters.lua")),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, CounterError> {
        self.connection
            .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
            .await
            .cloned()
            .map_err(|err| CounterError(format!("connecting to Redis: {err}")))
    }

    /// Asks Redis for a `PONG`.
    pub async fn ping(&self) -> Result<(), CounterError> {
        let mut connection = self.connection().await?;
        let _: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(|err| CounterError(format!("Redis: {err}")))?;
        Ok(())
    }

    /// Decides a batch in Redis, on Redis's clock.
    pub async fn decide(&self, checks: &[LimitCheck]) -> Result<Vec<LimitOutcome>, CounterError> {
        if checks.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.connection().await?;
        let mut invocation = self.script.prepare_invoke();
        for check in checks {
            invocation
                .key(format!("{KEY_PREFIX}{}", check.key))
                .arg(check.limit)
                .arg(check.duration_ms)
                .arg(check.cost);
        }
        let flat: Vec<i64> = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|err| CounterError(format!("Redis: {err}")))?;
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
    started: Instant,
    /// Milliseconds since `started` before which Redis is not tried (0: try it).
    retry_at_ms: AtomicI64,
    /// Whether the last decision was made locally (for logging the switches once).
    degraded: AtomicBool,
    fallbacks: AtomicU64,
}

impl ClusterCounters {
    pub fn new(redis: RedisCounters, local: Arc<LocalCounters>) -> Self {
        ClusterCounters {
            redis,
            local,
            started: Instant::now(),
            retry_at_ms: AtomicI64::new(0),
            degraded: AtomicBool::new(false),
            fallbacks: AtomicU64::new(0),
        }
    }

    /// How many decisions were made by this node's counters because Redis was unavailable.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Whether decisions currently go to Redis (false while it is being left alone).
    pub fn using_redis(&self) -> bool {
        !self.degraded.load(Ordering::Relaxed)
    }

    fn elapsed_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }
}

#[async_trait]
impl Probe for ClusterCounters {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn check(&self) -> Result<(), String> {
        self.redis.ping().await.map_err(|err| err.0)
    }
}

#[async_trait]
impl Counters for ClusterCounters {
    async fn decide(
        &self,
        checks: &[LimitCheck],
        now: i64,
    ) -> Result<Vec<LimitOutcome>, CounterError> {
        if self.elapsed_ms() >= self.retry_at_ms.load(Ordering::Relaxed) {
            let failure = match tokio::time::timeout(REDIS_TIMEOUT, self.redis.decide(checks)).await
            {
                Ok(Ok(outcomes)) => {
                    if self.degraded.swap(false, Ordering::Relaxed) {
                        tracing::warn!("Redis answers again: rate limits are shared by every node");
                    }
                    return Ok(outcomes);
                }
                Ok(Err(err)) => err.0,
                Err(_) => format!("no answer within {} ms", REDIS_TIMEOUT.as_millis()),
            };
            let retry = self.elapsed_ms() + i64::try_from(RETRY_AFTER.as_millis()).unwrap_or(0);
            self.retry_at_ms.store(retry, Ordering::Relaxed);
            if !self.degraded.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    error = %failure,
                    "Redis unavailable: rate limits fall back to this node's own counters"
                );
            }
        }
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        Ok(self.local.decide_now(checks, now))
    }
}
