//! What the domain needs from storage, one trait per resource. [`super::Store`] is all of them
//! together; a caller that needs only one role can hold just that (`Arc<dyn KeyStore>`, upcast from
//! a [`super::SharedStore`]).
//!
//! Every mutation takes the audit events to write in the same transaction. Lookups return `None`
//! for "not there"; `Err` means the backend failed.

use async_trait::async_trait;

use super::{EventLog, StoreResult};
use crate::model::audit::AuditEvent;
use crate::model::*;

/// Workspaces and root keys: the operator's and the management API's own credentials.
#[async_trait]
pub trait AdminStore: Send + Sync + 'static {
    /// Which backend this is, for logs (`sqlite` or `postgres`).
    fn backend(&self) -> &'static str;

    /// How the connection pools are used right now (for `/metrics`).
    fn pool_usage(&self) -> Vec<PoolUsage>;
    /// Runs the cheapest query there is, to tell whether the database answers.
    async fn ping(&self) -> StoreResult<()>;

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

    /// Sets (or with `None` clears) the workspace's limit on API calls per minute; returns
    /// whether the workspace exists. Running nodes drop their root keys' cached limit through
    /// the change feed.
    async fn set_workspace_rate_limit(
        &self,
        id: &str,
        requests_per_minute: Option<i64>,
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
}

/// APIs and their key spaces.
#[async_trait]
pub trait ApiStore: Send + Sync + 'static {
    async fn create_api(&self, api: &Api, audit: &[AuditEvent]) -> StoreResult<()>;
    /// The API if it and its key space are live and it belongs to `workspace_id`.
    async fn find_live_api(&self, workspace_id: &str, id: &str) -> StoreResult<Option<Api>>;
    /// The API by id alone, for the operator's CLI.
    async fn get_api(&self, id: &str) -> StoreResult<Option<Api>>;
    /// A workspace's live APIs in id order, at most `limit` from `cursor` (inclusive).
    async fn list_apis(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<Api>>;
    /// Soft-deletes; returns whether a live API existed.
    async fn delete_api(&self, id: &str, now: i64, audit: &[AuditEvent]) -> StoreResult<bool>;
    async fn set_api_delete_protection(
        &self,
        id: &str,
        protected: bool,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;

    /// Turns recoverable keys on or off for an API's key space; returns whether the API is live.
    async fn set_api_recoverable(
        &self,
        id: &str,
        recoverable: bool,
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
}

/// Ordinary keys: reading them (with permissions, roles and rate limits) and changing them.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    async fn list_keys(&self, page: KeyPage<'_>) -> StoreResult<Vec<KeyRow>>;
    /// Live keys of a key space whose name or visible start begins with `prefix`, in id order,
    /// at most `limit`: the dashboard's search, answered from the two prefix indexes.
    async fn search_keys(
        &self,
        key_space_id: &str,
        prefix: &str,
        limit: i64,
    ) -> StoreResult<Vec<KeyRow>>;

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
}

/// Key balances. The store keeps them; how they change (refill, then spend) is decided above it,
/// by the credit rule the domain owns, and handed in as `decide`.
#[async_trait]
pub trait CreditStore: Send + Sync + 'static {
    /// A key's stored balance, for the ledgers.
    async fn load_credits(&self, key_id: &str) -> StoreResult<Option<CreditRow>>;
    /// Writes balances decided in memory: `(key id, remaining, last refill)`.
    async fn write_balances(&self, rows: &[(String, i64, i64)]) -> StoreResult<()>;
    /// Reads a live key's credits and writes what `decide` makes of them, in one transaction
    /// during which no other writer can change them (a row lock where the backend has
    /// concurrent writers). `decide` returning `None` writes nothing.
    ///
    /// With a `record` (a management change) the write also sets the key's refill settings and
    /// `updated_at`, and appends the key's change-feed entry and `record.audit`. Without one (a
    /// spend) only the balance (`remaining`, `last_refill_at`) is written, and only if it changed.
    ///
    /// Returns whether a live key with that id exists (`decide` runs only then).
    async fn modify_credits(
        &self,
        key_id: &str,
        decide: &mut (dyn for<'s> FnMut(&'s StoredCredits) -> Option<CreditWrite> + Send),
        record: Option<CreditRecord<'_>>,
    ) -> StoreResult<bool>;
}

/// Migrations of keys from another system, under their legacy hashes.
#[async_trait]
pub trait MigrationStore: Send + Sync + 'static {
    async fn create_migration(
        &self,
        migration: &Migration,
        now: i64,
        audit: &[AuditEvent],
    ) -> StoreResult<()>;
    async fn find_migration(&self, workspace_id: &str, id: &str) -> StoreResult<Option<Migration>>;
    /// Creates `setup`'s permissions and roles (those not there by then), then inserts the keys
    /// whose hash is not taken yet, each with its audit events, all in one transaction; returns
    /// the hashes that were taken (those keys and their events are skipped).
    async fn insert_migrated_keys(
        &self,
        setup: &ImportSetup,
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
}

/// Permissions, roles, and their links to keys.
#[async_trait]
pub trait RbacStore: Send + Sync + 'static {
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
}

/// Identities: the owners keys can share, with their rate limits.
#[async_trait]
pub trait IdentityStore: Send + Sync + 'static {
    /// The id of the live identity with this external id in the workspace.
    async fn find_identity_id(
        &self,
        workspace_id: &str,
        external_id: &str,
    ) -> StoreResult<Option<String>>;
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
}

/// Rate-limit namespaces and their overrides.
#[async_trait]
pub trait LimitStore: Send + Sync + 'static {
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
    /// A page of a workspace's live namespaces in name order, from the name `cursor` on (their
    /// overrides not read: `overrides` is empty).
    async fn list_namespaces(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<Namespace>>;
    /// A page of a namespace's live overrides in id order.
    async fn list_overrides(
        &self,
        namespace_id: &str,
        cursor: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<Override>>;
}

/// Analytics events (verifications, rate-limit decisions, their rollups) and keys' `lastUsedAt`.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// A dedicated synchronous event log, where the backend has one (SQLite); `None` means
    /// events go through [`EventStore::insert_events`].
    fn event_log(&self) -> StoreResult<Option<Box<dyn EventLog>>>;
    /// Appends a batch's events and adds its increments to the rollups, in one transaction.
    async fn insert_events(&self, batch: &EventBatch<'_>) -> StoreResult<()>;
    /// Advances each key's `lastUsedAt` (table `key_last_used`) to the given time, never backwards.
    async fn touch_last_used(&self, uses: &[LastUse<'_>]) -> StoreResult<()>;
    /// Drops the analytics rows retention no longer keeps; returns how many.
    async fn prune_analytics(&self, cutoffs: &AnalyticsCutoffs) -> StoreResult<u64>;
    /// Verification events of a key, newest first (for tests and analytics).
    async fn list_verifications(
        &self,
        key_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<VerificationEvent>>;
}

/// Compiled analytics queries, run read-only with a time limit.
#[async_trait]
pub trait AnalyticsStore: Send + Sync + 'static {
    async fn run_analytics(
        &self,
        query: &AnalyticsQuery,
    ) -> Result<AnalyticsRows, super::AnalyticsRunError>;
}

/// The change feed other nodes follow to drop what they cached.
#[async_trait]
pub trait ChangeStore: Send + Sync + 'static {
    /// Change-feed entries written at or after `since_ms`.
    async fn changes_since(&self, since_ms: i64) -> StoreResult<Vec<Change>>;
    /// Whether change-feed sequence numbers become visible in order (no entry can appear below
    /// one already read): true where writers take turns (SQLite), so readers can keep a cursor.
    fn changes_are_ordered(&self) -> bool;
    /// Change-feed entries after sequence number `after_seq`, in order.
    async fn changes_after(&self, after_seq: i64) -> StoreResult<Vec<Change>>;
    /// Drops change-feed entries older than `before_ms`; returns how many.
    async fn prune_changes(&self, before_ms: i64) -> StoreResult<u64>;
}

/// The audit log, as written by every mutation above.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Audit events of a workspace, newest first.
    async fn list_audit_events(
        &self,
        workspace_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<StoredAuditEvent>>;
    /// Appends events that no other change goes with (a key's plaintext was read, say).
    async fn append_audit(&self, events: &[AuditEvent]) -> StoreResult<()>;
    /// Audit events matching `query`, in log order (by position), at most `query.limit`.
    async fn audit_page(&self, query: &AuditQuery) -> StoreResult<Vec<StoredAuditEvent>>;
    /// Deletes, in each workspace, every event up to the last one written before `before_ms`,
    /// so what stays is always an unbroken end of the log. Returns how many were deleted.
    async fn prune_audit(&self, before_ms: i64) -> StoreResult<u64>;
}

/// The vault's storage: data keys (sealed under the master key) and keys' sealed plaintexts.
/// A sealed copy is written with its key ([`NewKey::sealed`]) and erased with it.
#[async_trait]
pub trait VaultStore: Send + Sync + 'static {
    /// A workspace's data keys, newest first.
    async fn data_keys(&self, workspace_id: &str) -> StoreResult<Vec<StoredDataKey>>;
    async fn data_key(&self, id: &str) -> StoreResult<Option<StoredDataKey>>;
    async fn insert_data_key(&self, key: &StoredDataKey) -> StoreResult<()>;
    /// Every data key of every workspace, in id order, at most `limit` after `after`.
    async fn all_data_keys(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<StoredDataKey>>;
    /// Replaces a data key's sealed form, if it is still sealed under `expected_master_key_id`.
    async fn rewrap_data_key(
        &self,
        id: &str,
        expected_master_key_id: &str,
        rewrapped: &StoredDataKey,
    ) -> StoreResult<bool>;
    /// Deletes a workspace's data keys that seal no key, except `keep`; returns how many.
    async fn delete_unused_data_keys(&self, workspace_id: &str, keep: &str) -> StoreResult<u64>;
    /// The sealed copies of these keys (those that have one), in any order.
    async fn encrypted_keys(&self, key_ids: &[&str]) -> StoreResult<Vec<EncryptedKey>>;
    /// A workspace's sealed copies not under `data_key_id`, in key id order, at most `limit`
    /// after `after`.
    async fn encrypted_keys_not_under(
        &self,
        workspace_id: &str,
        data_key_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<EncryptedKey>>;
    /// Replaces a key's sealed copy, if it is still sealed under `expected_data_key_id`.
    async fn reseal_key(
        &self,
        key_id: &str,
        expected_data_key_id: &str,
        sealed: &SealedKey,
        now: i64,
    ) -> StoreResult<bool>;
    /// Per workspace with anything in the vault: its data keys and sealed copies.
    async fn vault_summary(&self) -> StoreResult<Vec<VaultWorkspace>>;
}

/// Dashboard sessions: which browser acts as which root key, and since when.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    async fn insert_session(&self, session: &DashboardSession) -> StoreResult<()>;
    async fn find_session(&self, id_hash: &str) -> StoreResult<Option<DashboardSession>>;
    /// Records that the session was used at `now`.
    async fn touch_session(&self, id_hash: &str, now: i64) -> StoreResult<()>;
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;
    /// Deletes sessions last used before `before`; returns how many.
    async fn prune_sessions(&self, before: i64) -> StoreResult<u64>;
}
