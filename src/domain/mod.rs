//! The rules of keyward, free of HTTP and SQL: authentication of root keys, the operations on
//! each resource, and the caches with their invalidation. Handlers call the [`Services`] here and
//! nothing below them; this layer calls the store's role traits.

use std::sync::Arc;

pub mod admin;
pub mod analytics;
pub mod apis;
pub mod audit;
pub mod auth;
pub mod credits;
pub mod events;
pub mod health;
pub mod identities;
pub mod invalidation;
pub mod keys;
pub mod ratelimit;
pub mod rbac;
pub mod sessions;
pub mod vault;

/// Every domain service the HTTP layer may call, built once by [`crate::server::build`].
pub struct Services {
    pub auth: Arc<auth::Authenticator>,
    pub apis: Arc<apis::ApiService>,
    pub keys: Arc<keys::KeyService>,
    pub migrations: Arc<keys::migrate::MigrationService>,
    pub identities: Arc<identities::IdentityService>,
    pub rbac: Arc<rbac::RbacService>,
    pub limits: Arc<ratelimit::namespaces::LimitService>,
    pub health: Arc<health::HealthService>,
    pub audit: Arc<audit::AuditService>,
    pub analytics: Arc<analytics::AnalyticsService>,
    /// The workspace's limit on calls to the API itself.
    pub workspace_limits: Arc<ratelimit::workspace::WorkspaceLimiter>,
    /// Dashboard sign-ins.
    pub sessions: Arc<sessions::SessionService>,
}

/// The failure of the storage below the domain, as the domain's callers see it.
pub use crate::store::StoreError;
