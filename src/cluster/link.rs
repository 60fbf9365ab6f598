//! The one connection a node keeps to Redis, and the failure policy every cluster-mode component
//! shares through it.
//!
//! Policy (DECISIONS.md, docs/cluster.md): no request waits on Redis longer than the link's
//! timeout (`--redis-timeout`, [`DEFAULT_REDIS_TIMEOUT`] by default). A call that fails or times
//! out makes the caller decide without Redis (each component has its own fallback), and the link
//! leaves Redis alone for [`RETRY_AFTER`]; the next call after that tries again, so cluster mode comes back by itself. The switches are logged once
//! each way, and [`RedisLink::fallbacks`] (and the metric `keyward_redis_fallbacks_total`) counts
//! the calls Redis did not answer.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

/// The longest a request waits on Redis before it is decided without it, unless the operator
/// chose another (`--redis-timeout`).
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// How long Redis is left alone after a failure before it is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A failed or skipped Redis call, as text for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LinkError(pub String);

/// A node's shared connection to Redis, with the timeout and the back-off around each call.
pub struct RedisLink {
    client: redis::Client,
    /// Made on first use (so a node starts while Redis is down); it reconnects by itself.
    connection: OnceCell<ConnectionManager>,
    started: Instant,
    /// The longest one call may take.
    timeout: Duration,
    /// Milliseconds since `started` before which Redis is not tried (0: try it).
    retry_at_ms: AtomicI64,
    /// Whether Redis is being left alone (for logging the switches once).
    degraded: AtomicBool,
    fallbacks: AtomicU64,
}

impl RedisLink {
    /// A link to the Redis at `url` (`redis://[:password@]host:port[/db]`) whose calls wait at
    /// most `timeout`. Checks the URL only; the connection is made on first use.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, LinkError> {
        let client = redis::Client::open(url)
            .map_err(|err| LinkError(format!("invalid Redis URL: {err}")))?;
        Ok(RedisLink {
            client,
            connection: OnceCell::new(),
            started: Instant::now(),
            timeout,
            retry_at_ms: AtomicI64::new(0),
            degraded: AtomicBool::new(false),
            fallbacks: AtomicU64::new(0),
        })
    }

    /// The client, for what needs a connection of its own (a pub/sub subscription).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    async fn connection(&self) -> Result<ConnectionManager, LinkError> {
        self.connection
            .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
            .await
            .cloned()
            .map_err(|err| LinkError(format!("connecting to Redis: {err}")))
    }

    /// Makes the connection now, waiting up to `within` (a node calls this in the background as
    /// it starts): the first requests then do not spend their timeout on connecting,
    /// which on a busy host can take longer and sends the node to its fallbacks for
    /// [`RETRY_AFTER`]. A failure is only logged; calls connect on their own later.
    pub async fn connect(&self, within: Duration) {
        let failure = match tokio::time::timeout(within, self.connection()).await {
            Ok(Ok(_)) => return,
            Ok(Err(err)) => err,
            Err(_) => LinkError(format!("no connection within {} ms", within.as_millis())),
        };
        tracing::warn!(error = %failure, "could not connect to Redis at start; will retry on use");
    }

    /// Runs `call` on the shared connection, within the link's timeout, unless Redis is being left
    /// alone after a recent failure. An error means the caller must decide without Redis.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, LinkError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if self.elapsed_ms() < self.retry_at_ms.load(Ordering::Relaxed) {
            self.count_fallback();
            return Err(LinkError(
                "Redis is being left alone after a failure".into(),
            ));
        }
        let attempt = async {
            let connection = self.connection().await?;
            call(connection)
                .await
                .map_err(|err| LinkError(format!("Redis: {err}")))
        };
        let failure = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(value)) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        "Redis answers again: rate limits and credits are shared by every node"
                    );
                }
                return Ok(value);
            }
            Ok(Err(err)) => err,
            Err(_) => LinkError(format!("no answer within {} ms", self.timeout.as_millis())),
        };
        self.rest();
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error = %failure,
                "Redis unavailable: rate limits fall back to this node's counters, credits to the \
                 database"
            );
        }
        self.count_fallback();
        Err(failure)
    }

    fn count_fallback(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::telemetry::REDIS_FALLBACKS).increment(1);
    }

    /// Leaves Redis alone for [`RETRY_AFTER`].
    fn rest(&self) {
        let retry = self.elapsed_ms() + i64::try_from(RETRY_AFTER.as_millis()).unwrap_or(0);
        self.retry_at_ms.store(retry, Ordering::Relaxed);
    }

    /// Asks Redis for a `PONG` within the link's timeout, like any request would wait (for
    /// readiness; it ignores and does not change the back-off).
    pub async fn ping(&self) -> Result<(), LinkError> {
        let attempt = async {
            let mut connection = self.connection().await?;
            let _: String = redis::cmd("PING")
                .query_async(&mut connection)
                .await
                .map_err(|err| LinkError(format!("Redis: {err}")))?;
            Ok(())
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(LinkError(format!(
                    "no answer to PING within {} ms",
                    self.timeout.as_millis()
                )))
            })
    }

    /// How many calls were not answered by Redis (failed, timed out, or skipped while resting).
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Whether calls currently go to Redis (false while it is being left alone).
    pub fn using_redis(&self) -> bool {
        !self.degraded.load(Ordering::Relaxed)
    }

    fn elapsed_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }
}
