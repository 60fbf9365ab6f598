//! Running the server: [`build`] wires the services for a store, [`Server::serve`] serves a bound
//! listener until a shutdown future resolves, with the background tasks alongside (change feed,
//! credit flusher, event writer), and lets each finish its last write before returning. Tests call
//! it on port 0.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::SharedClock;
use crate::cluster::changes::{self, Publisher, Subscriber};
use crate::cluster::counters::{ClusterCounters, RedisCounters};
use crate::cluster::credits::RedisLedger;
use crate::cluster::link::{LinkError, RedisLink};
use crate::domain::analytics::{AnalyticsService, AnalyticsSettings};
use crate::domain::apis::ApiService;
use crate::domain::audit::AuditService;
use crate::domain::auth::Authenticator;
use crate::domain::auth::RootKeyCache;
use crate::domain::credits::{DatabaseLedger, Ledger, LocalLedger};
use crate::domain::events::{self, EventWriter, Retention, WriterConfig};
use crate::domain::health::{HealthService, Probe};
use crate::domain::identities::IdentityService;
use crate::domain::invalidation::{
    ChangeBus, ChangeFeed, Invalidator, PolledChanges, POLL_INTERVAL, SAFETY_POLL_INTERVAL,
};
use crate::domain::keys::cache::KeyCache;
use crate::domain::keys::migrate::MigrationService;
use crate::domain::keys::KeyService;
use crate::domain::ratelimit::namespaces::{LimitService, NamespaceCache};
use crate::domain::ratelimit::workspace::WorkspaceLimiter;
use crate::domain::ratelimit::{duration_of_key, Counters, LocalCounters};
use crate::domain::rbac::RbacService;
use crate::domain::sessions::SessionService;
use crate::domain::vault::{Keyring, Vault};
use crate::domain::Services;
use crate::http::conn::ConnectionLimits;
use crate::http::{app, AppState};
use crate::store::{SharedStore, Topology};

/// Settings of a server beyond its store.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Base URL of error `type` links.
    pub public_url: String,
    /// How many keys (and unknown hashes) the verification cache holds.
    pub key_cache_capacity: usize,
    /// How often keys' `lastUsedAt` is written ([`events::LAST_USED_INTERVAL`] by default).
    pub last_used_interval: std::time::Duration,
    /// Cluster mode: the Redis every node shares rate limits, credits and invalidation through.
    pub redis_url: Option<String>,
    /// The longest a request waits on Redis ([`crate::cluster::link::DEFAULT_REDIS_TIMEOUT`] by
    /// default).
    pub redis_timeout: std::time::Duration,
    /// The longest a request may take before it is answered 503 ([`DEFAULT_REQUEST_TIMEOUT`]).
    pub request_timeout: std::time::Duration,
    /// A request slower than this is logged as a warning ([`DEFAULT_SLOW_REQUEST_THRESHOLD`]).
    pub slow_request_threshold: std::time::Duration,
    /// The connection cap and the header-read and idle timeouts.
    pub connections: ConnectionLimits,
    /// How long audit events are kept.
    pub audit_retention: std::time::Duration,
    /// This node's name in analytics (`region`).
    pub region: String,
    pub analytics: AnalyticsSettings,
    /// The master keys of the vault; `None`: no recoverable keys (412 when asked for).
    pub master_keys: Option<Arc<Keyring>>,
    /// The embedded dashboard at `/`; `None`: not served.
    pub dashboard: Option<DashboardConfig>,
}

/// Settings of the embedded dashboard.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// A session unused for this long is signed out.
    pub session_idle: std::time::Duration,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            session_idle: crate::domain::sessions::DEFAULT_IDLE,
        }
    }
}

/// The default bound of a request: well past any healthy one, short enough for a load balancer
/// to retry elsewhere.
pub const DEFAULT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The default threshold of the slow-request warning: far past a healthy request (a few
/// milliseconds), well before the request timeout.
pub const DEFAULT_SLOW_REQUEST_THRESHOLD: std::time::Duration = std::time::Duration::from_secs(1);

/// The default capacity of the verification cache.
pub const DEFAULT_KEY_CACHE_CAPACITY: usize = 1_000_000;

/// A server ready to serve: its state and the background work that goes with it.
pub struct Server {
    state: AppState,
    feed: Arc<ChangeFeed>,
    events: EventWriter,
    local_ledger: Option<Arc<LocalLedger>>,
    counters: Arc<LocalCounters>,
    redis: Option<Arc<RedisLink>>,
    cluster: Option<ClusterWorkers>,
    audit_retention: std::time::Duration,
    connections: ConnectionLimits,
    /// `--metrics-listen`: `GET /metrics` there instead of on the main listener.
    metrics_listener: Option<TcpListener>,
}

/// Cluster mode's workers: announcing this node's changes, hearing the others'.
struct ClusterWorkers {
    publisher: Publisher,
    subscriber: Subscriber,
    /// Hands idle credit holdings back to the database (PostgreSQL only).
    sweeper: Option<Arc<RedisLedger>>,
}

/// Wires the services. The ledger follows the topology: one process on SQLite decides credits in
/// memory; nodes sharing PostgreSQL decide them in the database, or in Redis in cluster mode.
pub fn build(
    store: SharedStore,
    topology: Topology,
    clock: SharedClock,
    config: &ServerConfig,
) -> Result<Server, LinkError> {
    let (sink, events) = events::channel(
        store.clone(),
        WriterConfig {
            last_used_interval: config.last_used_interval,
            region: config.region.clone(),
            retention: Retention {
                days: config.analytics.retention_days,
            },
            rollup_interval: config.analytics.rollup_interval,
        },
    );
    let redis = match &config.redis_url {
        Some(url) => Some(Arc::new(RedisLink::new(url, config.redis_timeout)?)),
        None => None,
    };
    // The ledger, and the background work it needs (the local flusher or the Redis sweeper).
    let local_ledger = matches!(topology, Topology::SingleProcess)
        .then(|| Arc::new(LocalLedger::new(store.clone())));
    let redis_ledger = match (topology, &redis) {
        (Topology::Shared, Some(link)) => Some(Arc::new(RedisLedger::new(
            link.clone(),
            store.clone(),
            config.request_timeout,
        ))),
        _ => None,
    };
    let ledger: Arc<dyn Ledger> = match (&local_ledger, &redis_ledger) {
        (Some(local), _) => local.clone(),
        (None, Some(cluster)) => cluster.clone(),
        (None, None) => Arc::new(DatabaseLedger::new(store.clone())),
    };
    let counters = Arc::new(LocalCounters::new());
    // Cluster mode decides rate limits in Redis, with this node's counters as the fallback.
    let cluster_counters = redis.as_ref().map(|link| {
        Arc::new(ClusterCounters::new(
            RedisCounters::new(link.clone()),
            counters.clone(),
        ))
    });
    let shared_counters: Arc<dyn Counters> = match &cluster_counters {
        Some(cluster) => cluster.clone(),
        None => counters.clone(),
    };
    // Every per-node cache, and the one invalidator that local mutations and the change feed
    // both report to.
    let key_cache = Arc::new(KeyCache::new(config.key_cache_capacity));
    let root_key_cache = Arc::new(RootKeyCache::default());
    let namespace_cache = Arc::new(NamespaceCache::default());
    let mut invalidator = Invalidator::new(vec![
        key_cache.clone(),
        root_key_cache.clone(),
        namespace_cache.clone(),
    ]);
    // Cluster mode announces this node's changes to the others through Redis.
    let mut publisher = None;
    if let Some(link) = &redis {
        let (announcer, worker) = changes::announcements(link.clone());
        invalidator = invalidator.announcing(announcer);
        publisher = Some(worker);
    }
    let invalidator = Arc::new(invalidator);
    let keys = Arc::new(KeyService::new(
        store.clone(),
        key_cache,
        invalidator.clone(),
        ledger,
        sink.clone(),
        shared_counters.clone(),
        config
            .master_keys
            .as_ref()
            .map(|keyring| Arc::new(Vault::new(keyring.clone(), store.clone()))),
    ));
    let apis = Arc::new(ApiService::new(store.clone(), invalidator.clone()));
    // A query must give up before its request does, so that it answers 422
    // query_execution_timeout rather than the request timeout's 503.
    let mut analytics_settings = config.analytics.clone();
    analytics_settings.query_timeout = analytics_settings.query_timeout.min(
        config
            .request_timeout
            .saturating_sub(std::time::Duration::from_secs(1))
            .max(std::time::Duration::from_millis(500)),
    );
    let analytics = Arc::new(AnalyticsService::new(
        store.clone(),
        store.backend(),
        apis.clone(),
        shared_counters.clone(),
        analytics_settings,
    ));
    let rbac = Arc::new(RbacService::new(store.clone(), invalidator.clone()));
    let workspace_limits = Arc::new(WorkspaceLimiter::new(
        shared_counters.clone(),
        clock.clone(),
    ));
    let auth = Arc::new(Authenticator::new(
        store.clone(),
        clock.clone(),
        root_key_cache,
    ));
    let sessions = Arc::new(SessionService::new(
        store.clone(),
        auth.clone(),
        clock.clone(),
        config
            .dashboard
            .as_ref()
            .map_or(crate::domain::sessions::DEFAULT_IDLE, |d| d.session_idle),
    ));
    let services = Services {
        workspace_limits,
        auth,
        sessions,
        apis,
        analytics,
        migrations: Arc::new(MigrationService::new(
            store.clone(),
            rbac.clone(),
            invalidator.clone(),
        )),
        identities: Arc::new(IdentityService::new(store.clone(), invalidator.clone())),
        rbac,
        limits: Arc::new(LimitService::new(
            store.clone(),
            shared_counters.clone(),
            namespace_cache,
            invalidator.clone(),
            sink.clone(),
        )),
        keys,
        audit: Arc::new(AuditService::new(store.clone())),
        health: Arc::new(HealthService::new(
            store.clone(),
            cluster_counters
                .iter()
                .map(|c| c.clone() as Arc<dyn Probe>)
                .collect(),
        )),
    };
    let bus: Arc<dyn ChangeBus> = Arc::new(PolledChanges::new(store));
    let interval = match redis {
        Some(_) => SAFETY_POLL_INTERVAL,
        None => POLL_INTERVAL,
    };
    let feed = Arc::new(ChangeFeed::new(bus, invalidator, interval));
    let cluster = match (&redis, publisher) {
        (Some(link), Some(publisher)) => Some(ClusterWorkers {
            subscriber: Subscriber::new(link, publisher.node(), feed.clone()),
            publisher,
            sweeper: redis_ledger,
        }),
        _ => None,
    };
    Ok(Server {
        state: AppState::new(
            services,
            clock,
            &config.public_url,
            config.request_timeout,
            config.slow_request_threshold,
            config.dashboard.is_some(),
        ),
        feed,
        events,
        local_ledger,
        counters,
        redis,
        cluster,
        audit_retention: config.audit_retention,
        metrics_listener: None,
        connections: config.connections,
    })
}

/// Handles on the background workers, so tests can run a round themselves instead of waiting
/// for one.
#[derive(Clone)]
pub struct Workers {
    /// Receives changes made by other processes and applies them (`run_once`).
    pub feed: Arc<ChangeFeed>,
    /// Cluster mode's link to Redis (with `--redis`), which counts the calls Redis did not answer.
    pub redis: Option<Arc<RedisLink>>,
}

impl Server {
    /// Serves `GET /metrics` on `listener` only (not on the main one), e.g. on a private
    /// interface.
    pub fn with_metrics_listener(mut self, listener: TcpListener) -> Self {
        self.metrics_listener = Some(listener);
        self
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn workers(&self) -> Workers {
        Workers {
            feed: self.feed.clone(),
            redis: self.redis.clone(),
        }
    }

    /// Serves until `shutdown` resolves (within the connection limits, see [`crate::http::conn`]),
    /// drains in-flight requests, then flushes credits and verification events.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Server {
            state,
            feed,
            events,
            local_ledger,
            counters,
            cluster,
            audit_retention,
            connections,
            metrics_listener,
            redis,
            ..
        } = self;
        if let Some(link) = redis {
            // In the background: serving never waits for Redis.
            tokio::spawn(async move { link.connect(std::time::Duration::from_secs(2)).await });
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = vec![
            tokio::spawn(feed.run(stop_rx.clone())),
            tokio::spawn(events.run(stop_rx.clone())),
            tokio::spawn(evict_counters(
                counters,
                state.clock.clone(),
                stop_rx.clone(),
            )),
        ];
        tasks.push(tokio::spawn(
            state
                .audit
                .clone()
                .run_retention(audit_retention, stop_rx.clone()),
        ));
        if state.dashboard {
            tasks.push(tokio::spawn(prune_sessions(
                state.sessions.clone(),
                stop_rx.clone(),
            )));
        }
        if let Some(ledger) = local_ledger {
            tasks.push(tokio::spawn(ledger.run(stop_rx.clone())));
        }
        if let Some(cluster) = cluster {
            tasks.push(tokio::spawn(cluster.publisher.run(stop_rx.clone())));
            tasks.push(tokio::spawn(cluster.subscriber.run(stop_rx.clone())));
            if let Some(sweeper) = cluster.sweeper {
                tasks.push(tokio::spawn(sweeper.run_sweeper(stop_rx.clone())));
            }
        }
        let router = match metrics_listener {
            Some(metrics) => {
                let mut stop = stop_rx.clone();
                let metrics_router = crate::http::metrics_app(state.clone());
                tasks.push(tokio::spawn(async move {
                    let stopped = async move {
                        let _ = stop.changed().await;
                    };
                    if let Err(err) = axum::serve(metrics, metrics_router)
                        .with_graceful_shutdown(stopped)
                        .await
                    {
                        tracing::error!(error = %err, "the metrics listener failed");
                    }
                }));
                crate::http::app_with(state, false)
            }
            None => app(state),
        };
        let result = crate::http::conn::serve(listener, router, connections, shutdown).await;
        let _ = stop_tx.send(true);
        for task in tasks {
            let _ = task.await;
        }
        result
    }
}

/// Drops rate-limit counters too old to matter, every few seconds, so memory follows the set of
/// identifiers active in the last two windows.
async fn evict_counters(
    counters: Arc<LocalCounters>,
    clock: SharedClock,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            _ = shutdown.changed() => return,
        }
        counters.evict_expired(clock.now_ms(), duration_of_key);
        // Same rhythm: fold the latency histogram's samples into their buckets.
        crate::telemetry::upkeep();
    }
}

/// Deletes dashboard sessions idle past their timeout, every ten minutes. (An idle session is
/// refused when presented whether or not it has been pruned; this only keeps the table small.)
async fn prune_sessions(sessions: Arc<SessionService>, mut shutdown: watch::Receiver<bool>) {
    loop {
        match sessions.prune().await {
            Ok(0) => {}
            Ok(pruned) => tracing::debug!(pruned, "pruned idle dashboard sessions"),
            Err(err) => tracing::warn!(error = %err, "could not prune dashboard sessions"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(600)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received, draining requests");
}
