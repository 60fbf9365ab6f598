//! Readiness: whether this node can serve, and the state of what it depends on.
//!
//! The database is required: without it nothing but cached verifications can be answered, so a
//! node whose database does not answer within [`PROBE_TIMEOUT`] is not ready. Other dependencies
//! (Redis in cluster mode) are reported but do not make a node unready: every node shares them,
//! and each has a fallback, so taking nodes out of a load balancer for them would help nobody.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::store::AdminStore;

/// The longest a readiness check waits on one dependency.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A dependency that can be asked whether it answers.
#[async_trait]
pub trait Probe: Send + Sync {
    /// Its name in readiness reports (`redis`).
    fn name(&self) -> &'static str;
    /// `Err` says why it does not answer.
    async fn check(&self) -> Result<(), String>;
}

/// What a check found of one dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencyState {
    Up,
    Down(String),
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub database: DependencyState,
    /// The optional dependencies, by name, in wiring order.
    pub others: Vec<(&'static str, DependencyState)>,
}

impl Readiness {
    /// Ready to take traffic: the database answers.
    pub fn ready(&self) -> bool {
        self.database == DependencyState::Up
    }
}

/// Checks the database and the other dependencies, each within [`PROBE_TIMEOUT`].
pub struct HealthService {
    store: Arc<dyn AdminStore>,
    probes: Vec<Arc<dyn Probe>>,
}

impl HealthService {
    pub fn new(store: Arc<dyn AdminStore>, probes: Vec<Arc<dyn Probe>>) -> Self {
        HealthService { store, probes }
    }

    /// The database pools' use right now.
    pub fn pool_usage(&self) -> Vec<crate::model::PoolUsage> {
        self.store.pool_usage()
    }

    pub async fn readiness(&self) -> Readiness {
        let database = state(async { self.store.ping().await.map_err(|e| e.to_string()) }).await;
        let mut others = Vec::with_capacity(self.probes.len());
        for probe in &self.probes {
            others.push((probe.name(), state(probe.check()).await));
        }
        Readiness { database, others }
    }
}

async fn state(check: impl std::future::Future<Output = Result<(), String>>) -> DependencyState {
    match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(Ok(())) => DependencyState::Up,
        Ok(Err(why)) => DependencyState::Down(why),
        Err(_) => {
            DependencyState::Down(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis()))
        }
    }
}
