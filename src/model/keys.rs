//! Keys and the APIs whose key spaces hold them: the records the key lifecycle and verification
//! read and write.

use crate::model::credits::CreditsPatch;
use crate::model::limits::RatelimitConfig;
use crate::model::patch::Patch;
use crate::model::rbac::RbacChange;
use crate::model::vault::SealedKey;

/// An API and its key space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub key_space_id: String,
    pub delete_protection: bool,
    /// Whether keys of this API may be recoverable (its key space stores encrypted copies).
    pub recoverable: bool,
    /// Comma-separated client IPs its keys verify from (`None`: any).
    pub ip_whitelist: Option<String>,
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
    /// A recoverable key's plaintext, sealed by the vault; stored in the same transaction.
    pub sealed: Option<SealedKey>,
}

impl NewKey {
    /// Whether the key is its row alone: no identity to link, no permissions, roles or rate limits
    /// of its own, nothing sealed.
    pub fn is_plain(&self) -> bool {
        self.external_id.is_none()
            && self.rbac.is_empty()
            && self.ratelimits.is_empty()
            && self.sealed.is_none()
    }

    /// Whether the key is its row, and at most the identity of its external id: nothing else of
    /// its own (no permissions, roles or rate limits, nothing sealed).
    pub fn is_simple(&self) -> bool {
        self.rbac.is_empty() && self.ratelimits.is_empty() && self.sealed.is_none()
    }
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
