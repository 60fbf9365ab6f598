//! Storage: the [`Store`] trait the domain talks to, its records, and the choice of backend.
//!
//! Two backends share one SQL implementation ([`sql::SqlStore`], on sqlx's `Any` driver) and differ
//! only in how they connect, tune and migrate ([`sqlite`], [`postgres`]). The backend is chosen once,
//! from the database URL, in [`connect`]; nothing else in the program knows which one runs.

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::audit::AuditEvent;

pub mod postgres;
pub mod sql;
pub mod sqlite;

/// A failure of the storage backend itself (not "row not found", which is a value).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://USER@HOST:PORT/DB")]
    UnsupportedUrl(String),
    #[error("could not prepare the database location: {0}")]
    Io(#[from] std::io::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

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
}

/// An API and its key space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub key_space_id: String,
    pub delete_protection: bool,
    pub created_at: i64,
}

/// A key as listed by `apis.listKeys` (the fields the keys issue fills in grow here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySummary {
    pub id: String,
    pub start: String,
    pub name: Option<String>,
    pub meta: Option<String>,
    pub enabled: bool,
    pub expires: Option<i64>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

/// A page request over keys of one key space, ordered by id.
#[derive(Debug, Clone)]
pub struct KeyPage<'a> {
    pub key_space_id: &'a str,
    /// Inclusive: the first id of the page.
    pub cursor: Option<&'a str>,
    pub identity_id: Option<&'a str>,
    /// Rows to fetch; callers ask for one more than they show to learn whether more exist.
    pub limit: i64,
}

/// What a change-feed entry invalidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    RootKey,
    Workspace,
    Api,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::RootKey => "root_key",
            ChangeKind::Workspace => "workspace",
            ChangeKind::Api => "api",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "root_key" => Some(ChangeKind::RootKey),
            "workspace" => Some(ChangeKind::Workspace),
            "api" => Some(ChangeKind::Api),
            _ => None,
        }
    }
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub kind: ChangeKind,
    pub entity_id: String,
}

/// A stored audit event, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAuditEvent {
    pub id: String,
    pub workspace_id: String,
    pub event: String,
    pub time_ms: i64,
    pub description: String,
    pub actor_type: String,
    pub actor_id: String,
    pub remote_ip: Option<String>,
    pub user_agent: Option<String>,
    pub targets: serde_json::Value,
}

/// Everything the domain needs from storage. Every mutation takes the audit events to write in the
/// same transaction. Lookups return `None` for "not there"; `Err` means the backend failed.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which backend this is, for logs (`sqlite` or `postgres`).
    fn backend(&self) -> &'static str;

    async fn count_workspaces(&self) -> StoreResult<i64>;
    async fn create_workspace(
        &self,
        workspace: &Workspace,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;
    async fn get_workspace(&self, id: &str) -> StoreResult<Option<Workspace>>;
    /// Returns whether the workspace exists.
    async fn set_workspace_enabled(
        &self,
        id: &str,
        enabled: bool,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;

    async fn insert_root_key(&self, key: &RootKey, audit: &[AuditEvent]) -> StoreResult<()>;
    async fn find_root_key_by_hash(&self, hash: &str) -> StoreResult<Option<RootKeyAuth>>;
    async fn get_root_key(&self, id: &str) -> StoreResult<Option<RootKey>>;
    async fn list_root_keys(&self, workspace_id: &str) -> StoreResult<Vec<RootKey>>;
    /// Returns whether a live root key with that id exists.
    async fn set_root_key_enabled(
        &self,
        id: &str,
        enabled: bool,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;
    /// Soft-deletes; returns whether a live root key with that id existed.
    async fn delete_root_key(&self, id: &str, now: i64, audit: &[AuditEvent]) -> StoreResult<bool>;
    /// Whether a live ordinary (non-root) key has this hash.
    async fn ordinary_key_exists(&self, hash: &str) -> StoreResult<bool>;

    async fn create_api(&self, api: &Api, audit: &[AuditEvent]) -> StoreResult<()>;
    /// The API if it and its key space are live and it belongs to `workspace_id`.
    async fn find_live_api(&self, workspace_id: &str, id: &str) -> StoreResult<Option<Api>>;
    /// The API by id alone, for the operator's CLI.
    async fn get_api(&self, id: &str) -> StoreResult<Option<Api>>;
    /// Soft-deletes; returns whether a live API existed.
    async fn delete_api(&self, id: &str, now: i64, audit: &[AuditEvent]) -> StoreResult<bool>;
    async fn set_api_delete_protection(
        &self,
        id: &str,
        protected: bool,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;

    /// The id of the live identity with this external id in the workspace.
    async fn find_identity_id(
        &self,
        workspace_id: &str,
        external_id: &str,
    ) -> StoreResult<Option<String>>;
    async fn list_keys(&self, page: KeyPage<'_>) -> StoreResult<Vec<KeySummary>>;

    /// Change-feed entries written at or after `since_ms`.
    async fn changes_since(&self, since_ms: i64) -> StoreResult<Vec<Change>>;
    /// Drops change-feed entries older than `before_ms`; returns how many.
    async fn prune_changes(&self, before_ms: i64) -> StoreResult<u64>;

    /// Audit events of a workspace, newest first.
    async fn list_audit_events(
        &self,
        workspace_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<StoredAuditEvent>>;
}

/// A store shared by the whole process.
pub type SharedStore = Arc<dyn Store>;

/// Opens (creating if needed) and migrates the database named by `url`.
pub async fn connect(url: &str) -> StoreResult<SharedStore> {
    sqlx::any::install_default_drivers();
    if let Some(path) = sqlite::path_from_url(url) {
        Ok(Arc::new(sqlite::connect(&path).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::connect(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}
