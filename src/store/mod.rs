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
mod sql_ratelimit;
mod sql_rbac;
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
    #[error("{0}")]
    Failed(String),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
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

/// The live identity a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRef {
    pub id: String,
    pub external_id: String,
    /// JSON text.
    pub meta: Option<String>,
    /// The identity's own rate limits, by name.
    pub ratelimits: Vec<RatelimitConfig>,
}

/// A named rate limit attached to a key or an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatelimitConfig {
    pub id: String,
    pub name: String,
    pub limit: i64,
    pub duration_ms: i64,
    pub auto_apply: bool,
}

/// Who owns a set of rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitOwner<'a> {
    Key(&'a str),
    Identity(&'a str),
}

/// A customer: keys grouped under an external id, with shared metadata and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub workspace_id: String,
    pub external_id: String,
    /// JSON text of an object.
    pub meta: Option<String>,
    pub created_at: i64,
    pub ratelimits: Vec<RatelimitConfig>,
}

/// A namespace of standalone rate limits, with its live overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub deleted: bool,
    pub created_at: i64,
    pub overrides: Vec<Override>,
}

/// A per-identifier (or wildcard) replacement of a namespace's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub id: String,
    pub namespace_id: String,
    pub identifier: String,
    pub limit: i64,
    pub duration_ms: i64,
}

/// A live key with what verification and the management routes need to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub id: String,
    pub key_space_id: String,
    pub workspace_id: String,
    pub api_id: String,
    pub hash: String,
    pub start: String,
    pub name: Option<String>,
    /// JSON text of an object.
    pub meta: Option<String>,
    pub identity: Option<IdentityRef>,
    pub expires: Option<i64>,
    pub enabled: bool,
    /// `None`: unlimited.
    pub remaining: Option<i64>,
    /// `None` with an amount: daily.
    pub refill_day: Option<i64>,
    pub refill_amount: Option<i64>,
    pub last_refill_at: Option<i64>,
    pub last_used_at: i64,
    pub pending_migration_id: Option<String>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
    /// The key's API (or key space) was deleted: the key no longer resolves.
    pub api_deleted: bool,
    /// Comma-separated client IPs the API accepts verifications from.
    pub ip_whitelist: Option<String>,
    pub workspace_enabled: bool,
    /// Permission slugs the key holds, directly or through its roles; sorted, no duplicates.
    pub permissions: Vec<String>,
    /// Names of the key's roles, sorted.
    pub roles: Vec<String>,
    /// The key's own rate limits, by name.
    pub ratelimits: Vec<RatelimitConfig>,
}

/// A permission a key can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub created_at: i64,
}

/// A named set of permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: i64,
    /// Sorted by slug.
    pub permissions: Vec<Permission>,
}

/// How a set changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetChange<T> {
    Add(Vec<T>),
    Remove(Vec<T>),
    Set(Vec<T>),
}

/// Changes to a key's permissions and roles, applied in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RbacChange {
    /// Permissions to create first (skipped if their slug appeared meanwhile).
    pub create: Vec<Permission>,
    /// Direct permissions, by slug.
    pub permissions: Option<SetChange<String>>,
    /// Roles, by id.
    pub roles: Option<SetChange<String>>,
}

/// A key to insert. The identity named by `external_id` is linked, and created (with
/// `new_identity_id`) if the workspace has no live one.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: String,
    pub key_space_id: String,
    pub workspace_id: String,
    pub hash: String,
    pub start: String,
    pub name: Option<String>,
    pub meta: Option<String>,
    pub external_id: Option<String>,
    pub new_identity_id: String,
    pub expires: Option<i64>,
    pub enabled: bool,
    pub remaining: Option<i64>,
    pub refill_day: Option<i64>,
    pub refill_amount: Option<i64>,
    pub pending_migration_id: Option<String>,
    pub created_at: i64,
    /// Permissions and roles to attach.
    pub rbac: RbacChange,
    /// The key's own rate limits.
    pub ratelimits: Vec<RatelimitConfig>,
}

/// A field of a partial update: leave it, clear it, or set it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

/// Changes to a key's credit settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreditsPatch {
    pub remaining: Patch<i64>,
    /// `(amount, refill day or None for daily)`.
    pub refill: Patch<(i64, Option<i64>)>,
}

/// A partial update of a key.
#[derive(Debug, Clone, Default)]
pub struct KeyPatch {
    pub name: Patch<String>,
    pub meta: Patch<String>,
    pub expires: Patch<i64>,
    pub enabled: Option<bool>,
    /// `Set(external id)` links (creating the identity with `new_identity_id` if needed).
    pub external_id: Patch<String>,
    pub new_identity_id: String,
    pub credits: Option<CreditsPatch>,
    pub rbac: RbacChange,
    /// `Some`: replace the key's rate limits with these (ids kept for names that stay).
    pub ratelimits: Option<Vec<RatelimitConfig>>,
}

/// A key's balance as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditRow {
    pub remaining: Option<i64>,
    pub last_refill_at: Option<i64>,
    pub created_at: i64,
}

/// The result of an atomic spend in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendRow {
    Spent(i64),
    Insufficient(i64),
    Unlimited,
}

/// How `keys.updateCredits` changes a balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditOp {
    /// `None`: unlimited (and no refill).
    Set(Option<i64>),
    Increment(i64),
    /// Floors at zero.
    Decrement(i64),
}

/// Credit settings after `keys.updateCredits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditState {
    pub remaining: Option<i64>,
    pub refill_amount: Option<i64>,
    pub refill_day: Option<i64>,
}

/// The outcome of `update_credits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditUpdate {
    Done(CreditState),
    /// Increment or decrement of an unlimited key.
    Unlimited,
    NotFound,
}

/// A registered migration of keys from another system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub id: String,
    pub workspace_id: String,
    pub algorithm: String,
}

/// One verification, as recorded for analytics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationEvent {
    pub request_id: String,
    pub time_ms: i64,
    pub workspace_id: String,
    pub api_id: String,
    pub key_space_id: String,
    pub key_id: String,
    pub identity_id: Option<String>,
    pub outcome: &'static str,
    /// JSON text of the tag array.
    pub tags: String,
    pub spent_credits: i64,
    pub latency_us: i64,
}

/// One verification to record, borrowing its data (the writer inserts thousands at a time).
#[derive(Debug, Clone, Copy)]
pub struct NewVerification<'a> {
    pub request_id: &'a str,
    pub time_ms: i64,
    pub workspace_id: &'a str,
    pub api_id: &'a str,
    pub key_space_id: &'a str,
    pub key_id: &'a str,
    pub identity_id: Option<&'a str>,
    pub outcome: &'static str,
    /// JSON text of the tag array.
    pub tags: &'a str,
    pub spent_credits: i64,
    pub latency_us: i64,
}

/// A synchronous writer of verification events with a connection of its own, for a dedicated
/// thread: it avoids the async driver's per-value overhead on the busiest write path.
pub trait EventLog: Send {
    /// Appends rows in one transaction.
    fn append(&mut self, rows: &[NewVerification<'_>]) -> StoreResult<()>;
    /// Advances each key's `lastUsedAt` (table `key_last_used`) to the given time, never
    /// backwards, in one transaction.
    fn touch_last_used(&mut self, uses: &[LastUse<'_>]) -> StoreResult<()>;
}

/// A key's latest verification, for its `lastUsedAt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastUse<'a> {
    pub key_id: &'a str,
    pub time_ms: i64,
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
    /// A key changed; the entity is its hash.
    Key,
    /// An identity changed; the entity is its id.
    Identity,
    /// Roles or permissions changed in a way that can touch many keys; the entity is the workspace.
    Rbac,
    /// A rate-limit namespace or its overrides changed; the entity is the namespace id.
    Namespace,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::RootKey => "root_key",
            ChangeKind::Workspace => "workspace",
            ChangeKind::Api => "api",
            ChangeKind::Key => "key",
            ChangeKind::Identity => "identity",
            ChangeKind::Rbac => "rbac",
            ChangeKind::Namespace => "namespace",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "root_key" => Some(ChangeKind::RootKey),
            "workspace" => Some(ChangeKind::Workspace),
            "api" => Some(ChangeKind::Api),
            "key" => Some(ChangeKind::Key),
            "identity" => Some(ChangeKind::Identity),
            "rbac" => Some(ChangeKind::Rbac),
            "namespace" => Some(ChangeKind::Namespace),
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

/// The verification outcome codes, as stored.
pub const OUTCOMES: &[&str] = &[
    "VALID",
    "NOT_FOUND",
    "FORBIDDEN",
    "INSUFFICIENT_PERMISSIONS",
    "USAGE_EXCEEDED",
    "RATE_LIMITED",
    "DISABLED",
    "EXPIRED",
];

/// The static name of a stored outcome (unknown ones read as `NOT_FOUND`).
pub fn outcome_name(s: &str) -> &'static str {
    OUTCOMES
        .iter()
        .copied()
        .find(|o| *o == s)
        .unwrap_or("NOT_FOUND")
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

    /// Sets (or with `None` clears) the comma-separated IP whitelist of an API.
    async fn set_api_ip_whitelist(
        &self,
        id: &str,
        whitelist: Option<&str>,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;

    /// The id of the live identity with this external id in the workspace.
    async fn find_identity_id(
        &self,
        workspace_id: &str,
        external_id: &str,
    ) -> StoreResult<Option<String>>;
    async fn list_keys(&self, page: KeyPage<'_>) -> StoreResult<Vec<KeyRow>>;

    /// The live key with this hash (including keys of deleted APIs, flagged).
    async fn find_key_by_hash(&self, hash: &str) -> StoreResult<Option<KeyRow>>;
    /// The live key with this id.
    async fn find_key_by_id(&self, id: &str) -> StoreResult<Option<KeyRow>>;
    async fn insert_key(&self, key: &NewKey, audit: &[AuditEvent]) -> StoreResult<()>;
    /// Applies a patch; returns whether the live key existed.
    async fn update_key(
        &self,
        id: &str,
        patch: &KeyPatch,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;
    /// Soft- or hard-deletes; returns whether the live key existed.
    async fn delete_key(
        &self,
        id: &str,
        permanent: bool,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;
    /// Inserts the new key and sets the old one to expire at `old_expires`, together.
    async fn reroll_key(
        &self,
        old_id: &str,
        old_expires: i64,
        new: &NewKey,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;
    /// Changes a balance; a refill due since `boundary` (`(instant, amount)`) is applied first.
    async fn update_credits(
        &self,
        id: &str,
        op: CreditOp,
        boundary: Option<(i64, i64)>,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<CreditUpdate>;

    /// A key's stored balance, for the ledgers.
    async fn load_credits(&self, key_id: &str) -> StoreResult<Option<CreditRow>>;
    /// Writes balances decided in memory: `(key id, remaining, last refill)`.
    async fn write_balances(&self, rows: &[(String, i64, i64)]) -> StoreResult<()>;
    /// Spends atomically in the database, applying a refill due since `boundary` first.
    async fn spend_credits(
        &self,
        key_id: &str,
        cost: i64,
        now: i64,
        boundary: Option<(i64, i64)>,
    ) -> StoreResult<SpendRow>;

    async fn create_migration(
        &self,
        migration: &Migration,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;
    async fn find_migration(&self, workspace_id: &str, id: &str) -> StoreResult<Option<Migration>>;
    /// Inserts keys whose hash is not taken yet, each with its audit events; returns the hashes
    /// that were taken (those keys and their events are skipped).
    async fn insert_migrated_keys(
        &self,
        keys: &[(NewKey, Vec<AuditEvent>)],
    ) -> StoreResult<Vec<String>>;
    /// A key awaiting migration `migration_id`, stored under `legacy_hash`.
    async fn find_pending_migration(
        &self,
        workspace_id: &str,
        migration_id: &str,
        legacy_hash: &str,
    ) -> StoreResult<Option<KeyRow>>;
    /// Rewrites a migrated key to keyward's hash and start, clearing its pending migration.
    async fn complete_migration(
        &self,
        key_id: &str,
        hash: &str,
        start: &str,
        now: i64,
    ) -> StoreResult<bool>;

    /// Creates a permission; `false` when the slug is taken in the workspace.
    async fn create_permission(
        &self,
        permission: &Permission,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;
    /// A permission by id or slug (case-insensitive).
    async fn find_permission(
        &self,
        workspace_id: &str,
        id_or_slug: &str,
    ) -> StoreResult<Option<Permission>>;
    /// Permissions with these slugs (case-insensitive).
    async fn find_permissions_by_slug(
        &self,
        workspace_id: &str,
        slugs: &[String],
    ) -> StoreResult<Vec<Permission>>;
    /// A page of permissions in id order; `search` matches id, name, slug or description.
    async fn list_permissions(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: i64,
        search: Option<&str>,
    ) -> StoreResult<Vec<Permission>>;
    /// Deletes a permission and detaches it from every key and role.
    async fn delete_permission(
        &self,
        workspace_id: &str,
        id: &str,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;

    /// Creates a role with permissions (creating `change.create` first); `false` when the name is taken.
    async fn create_role(
        &self,
        role: &Role,
        change: &RbacChange,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;
    /// A role (with its permissions) by id or name (case-insensitive).
    async fn find_role(&self, workspace_id: &str, id_or_name: &str) -> StoreResult<Option<Role>>;
    /// Roles with these names (case-insensitive), with their permissions.
    async fn find_roles_by_name(
        &self,
        workspace_id: &str,
        names: &[String],
    ) -> StoreResult<Vec<Role>>;
    /// A page of roles in id order; `search` matches id, name or description.
    async fn list_roles(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: i64,
        search: Option<&str>,
    ) -> StoreResult<Vec<Role>>;
    /// Deletes a role and detaches it from every key.
    async fn delete_role(
        &self,
        workspace_id: &str,
        id: &str,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;
    /// Replaces a role's permissions (`change.permissions` must be a `Set`); `None` if the role is gone.
    async fn set_role_permissions(
        &self,
        workspace_id: &str,
        role_id: &str,
        change: &RbacChange,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<Option<Vec<Permission>>>;

    /// Changes a key's direct permissions and roles; `None` if the key is gone.
    async fn change_key_rbac(
        &self,
        key_id: &str,
        change: &RbacChange,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<Option<()>>;
    /// A key's direct permissions, sorted by slug.
    async fn key_permissions(&self, key_id: &str) -> StoreResult<Vec<Permission>>;
    /// A key's roles with their permissions, sorted by name.
    async fn key_roles(&self, key_id: &str) -> StoreResult<Vec<Role>>;

    /// Creates an identity with its rate limits; `false` when the external id is taken.
    async fn create_identity(&self, identity: &Identity, audit: &[AuditEvent])
        -> StoreResult<bool>;
    /// A live identity (with its rate limits) by id or external id.
    async fn find_identity(
        &self,
        workspace_id: &str,
        id_or_external_id: &str,
    ) -> StoreResult<Option<Identity>>;
    /// A page of live identities in id order; `search` matches id or external id without case.
    async fn list_identities(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: i64,
        search: Option<&str>,
    ) -> StoreResult<Vec<Identity>>;
    /// Replaces an identity's meta (`Some`) and rate limits (`Some`); `false` if it is gone.
    async fn update_identity(
        &self,
        workspace_id: &str,
        id: &str,
        meta: Option<Option<String>>,
        ratelimits: Option<&[RatelimitConfig]>,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;
    /// Soft-deletes an identity and drops its rate limits; its keys stay, without it.
    async fn delete_identity(
        &self,
        workspace_id: &str,
        id: &str,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;

    /// A namespace (live or deleted) by name or id, with its live overrides.
    async fn find_namespace(
        &self,
        workspace_id: &str,
        name_or_id: &str,
    ) -> StoreResult<Option<Namespace>>;
    /// Creates a namespace unless one with the name exists; returns the namespace either way.
    async fn create_namespace(
        &self,
        namespace: &Namespace,
        audit: &[AuditEvent],
    ) -> StoreResult<Namespace>;
    /// Soft-deletes a namespace; `false` if there was no live one.
    async fn delete_namespace(
        &self,
        workspace_id: &str,
        id: &str,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;
    /// Creates or replaces (and revives) the override of an identifier; returns its id.
    async fn set_override(
        &self,
        workspace_id: &str,
        new: &Override,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<String>;
    /// Soft-deletes the override of exactly this identifier; `false` if there was none.
    async fn delete_override(
        &self,
        workspace_id: &str,
        namespace_id: &str,
        identifier: &str,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;
    /// A page of a namespace's live overrides in id order.
    async fn list_overrides(
        &self,
        namespace_id: &str,
        cursor: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<Override>>;

    /// A dedicated synchronous event log, where the backend has one (SQLite); `None` means
    /// events go through [`Store::insert_verifications`].
    fn event_log(&self) -> StoreResult<Option<Box<dyn EventLog>>>;
    /// Appends verification events.
    async fn insert_verifications(&self, events: &[NewVerification<'_>]) -> StoreResult<()>;
    /// Advances each key's `lastUsedAt` (table `key_last_used`) to the given time, never backwards.
    async fn touch_last_used(&self, uses: &[LastUse<'_>]) -> StoreResult<()>;
    /// Drops verification events older than `before_ms`; returns how many.
    async fn prune_verifications(&self, before_ms: i64) -> StoreResult<u64>;
    /// Verification events of a key, newest first (for tests and analytics).
    async fn list_verifications(
        &self,
        key_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<VerificationEvent>>;

    /// Change-feed entries written at or after `since_ms`.
    async fn changes_since(&self, since_ms: i64) -> StoreResult<Vec<Change>>;
    /// Whether change-feed sequence numbers become visible in order (no entry can appear below
    /// one already read): true where writers take turns (SQLite), so readers can keep a cursor.
    fn changes_are_ordered(&self) -> bool;
    /// Change-feed entries after sequence number `after_seq`, in order.
    async fn changes_after(&self, after_seq: i64) -> StoreResult<Vec<Change>>;
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
    connect_backend(url).await.map(|(store, _)| store)
}

/// Whether a store is the embedded, single-process kind (one server per database file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// SQLite: one server process owns the file, so in-memory state can be authoritative.
    SingleProcess,
    /// PostgreSQL: any number of nodes share the database.
    Shared,
}

/// Opens a store and says which topology it implies.
pub async fn connect_backend(url: &str) -> StoreResult<(SharedStore, Topology)> {
    sqlx::any::install_default_drivers();
    if let Some(path) = sqlite::path_from_url(url) {
        Ok((
            Arc::new(sqlite::connect(&path).await?),
            Topology::SingleProcess,
        ))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok((Arc::new(postgres::connect(url).await?), Topology::Shared))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}
