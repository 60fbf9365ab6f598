//! Tenants, root keys and registered key migrations, as stored.

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub created_at: i64,
}

/// A root key as stored: never the plaintext, only its hash and visible start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootKey {
    pub id: String,
    pub workspace_id: String,
    pub name: Option<String>,
    pub hash: String,
    pub start: String,
    pub permissions: Vec<String>,
    pub enabled: bool,
    pub expires: Option<i64>,
    pub created_at: i64,
}

/// A root key found by hash, with the state of its workspace, for authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootKeyAuth {
    pub key: RootKey,
    /// `None` when the workspace row no longer exists.
    pub workspace_enabled: Option<bool>,
    /// The workspace's limit on API calls per minute (`None`: no limit).
    pub workspace_requests_per_minute: Option<i64>,
}

/// A registered migration of keys from another system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub id: String,
    pub workspace_id: String,
    pub algorithm: String,
}

/// What an import creates before its keys, in the same transaction: the permissions and roles
/// its keys name that do not exist yet, with their audit events.
#[derive(Debug, Clone, Default)]
pub struct ImportSetup {
    pub permissions: Vec<crate::model::Permission>,
    pub roles: Vec<crate::model::Role>,
    pub audit: Vec<crate::model::audit::AuditEvent>,
}

/// A connection pool's use at one moment, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUsage {
    /// `reader` or `writer`.
    pub pool: &'static str,
    /// Connections open.
    pub open: u32,
    /// Of those, idle.
    pub idle: u32,
}
