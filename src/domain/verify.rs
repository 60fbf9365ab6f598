//! `keys.verifyKey`: the hot path.
//!
//! A verification is a sequence of steps, each of which may end it with an outcome code, in the
//! reference order:
//!
//! 1. find the key by the hash of the presented string (cache first; on-demand migration);
//! 2. isolation: another workspace's key, a deleted API, or a root key that may not verify keys of
//!    this API all read as a bare `NOT_FOUND`;
//! 3. the key's own state: `DISABLED`, then `EXPIRED`;
//! 4. `FORBIDDEN`: the API's IP whitelist;
//! 5. `INSUFFICIENT_PERMISSIONS`: the permission query against the key's permissions, direct and
//!    through roles (the query is parsed after step 2, so a malformed one is a 400 only for keys
//!    the caller may see);
//! 6. `RATE_LIMITED` (slots in with the rate-limit issue);
//! 7. `USAGE_EXCEEDED`: credits, spent exactly by the ledger.
//!
//! Steps 4-7 run only while the outcome is still `VALID`. Every verification that gets past step 2
//! is recorded as an event.

use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest as _, Sha256};

use crate::domain::auth::Principal;
use crate::domain::credits::Spend;
use crate::domain::keycache::{Cached, CachedKey, Digest};
use crate::domain::keys::KeyService;
use crate::domain::permissions::Requirement;
use crate::domain::query::{self, QueryError};
use crate::store::{StoreError, VerificationEvent};

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyCode {
    Valid,
    NotFound,
    Forbidden,
    InsufficientPermissions,
    UsageExceeded,
    RateLimited,
    Disabled,
    Expired,
}

impl VerifyCode {
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyCode::Valid => "VALID",
            VerifyCode::NotFound => "NOT_FOUND",
            VerifyCode::Forbidden => "FORBIDDEN",
            VerifyCode::InsufficientPermissions => "INSUFFICIENT_PERMISSIONS",
            VerifyCode::UsageExceeded => "USAGE_EXCEEDED",
            VerifyCode::RateLimited => "RATE_LIMITED",
            VerifyCode::Disabled => "DISABLED",
            VerifyCode::Expired => "EXPIRED",
        }
    }
}

/// What the caller asked for.
#[derive(Debug)]
pub struct VerifyRequest<'a> {
    pub key: &'a str,
    pub tags: &'a [String],
    /// `None`: the default cost of 1, charged only to keys with a balance.
    pub credits_cost: Option<i64>,
    /// A permission query such as `docs.read AND (billing.admin OR billing.view)`.
    pub permissions: Option<&'a str>,
    pub migration_id: Option<&'a str>,
    /// The client's address, for the IP whitelist.
    pub client_ip: Option<&'a str>,
    pub request_id: &'a str,
    pub now: i64,
    pub started: Instant,
}

/// The verdict.
#[derive(Debug)]
pub struct Verdict {
    pub code: VerifyCode,
    /// `None` for a bare `NOT_FOUND` that reveals nothing.
    pub key: Option<Arc<CachedKey>>,
    /// The balance after this verification; `None` for unlimited keys.
    pub remaining: Option<i64>,
}

impl Verdict {
    fn not_found() -> Self {
        Verdict {
            code: VerifyCode::NotFound,
            key: None,
            remaining: None,
        }
    }
}

/// Why a verification could not be carried out at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A migration of the prefixed-api-key kind needs `prefix_short_long` keys.
    #[error("Invalid key format")]
    MalformedMigratedKey,
    #[error("unknown migration algorithm '{0}'")]
    UnknownAlgorithm(String),
    /// The permission query does not parse.
    #[error("{0}")]
    Query(QueryError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The digest and the stored (base64) form of a presented key.
pub fn digest_key(key: &str) -> (Digest, String) {
    use base64::Engine as _;
    let digest: Digest = Sha256::digest(key.as_bytes()).into();
    (
        digest,
        base64::engine::general_purpose::STANDARD.encode(digest),
    )
}

/// Whether the root key may verify any key at all.
pub fn may_verify_some_keys(principal: &Principal) -> bool {
    principal
        .permissions
        .iter()
        .any(|p| p.ends_with(".verify_key"))
}

impl KeyService {
    /// Finds a live key by the hash of its plaintext, through the cache.
    pub async fn find_by_plaintext(&self, key: &str) -> Result<Option<Arc<CachedKey>>, StoreError> {
        let (digest, hash) = digest_key(key);
        self.find_by_digest(digest, &hash).await
    }

    async fn find_by_digest(
        &self,
        digest: Digest,
        hash: &str,
    ) -> Result<Option<Arc<CachedKey>>, StoreError> {
        match self.cache.get(&digest) {
            Some(Cached::Found(key)) => return Ok(Some(key)),
            Some(Cached::Missing) => return Ok(None),
            None => {}
        }
        let generation = self.cache.generation(&digest);
        let found = self
            .store
            .find_key_by_hash(hash)
            .await?
            .map(|row| Arc::new(CachedKey::new(row)));
        let entry = match &found {
            Some(key) => Cached::Found(key.clone()),
            None => Cached::Missing,
        };
        self.cache.insert(digest, generation, entry);
        Ok(found)
    }

    /// Verifies a key for `principal`. The caller has already checked that the principal may
    /// verify some keys ([`may_verify_some_keys`]).
    pub async fn verify(
        &self,
        principal: &Principal,
        req: VerifyRequest<'_>,
    ) -> Result<Verdict, VerifyError> {
        // 1. Lookup.
        let (digest, hash) = digest_key(req.key);
        let mut found = self.find_by_digest(digest, &hash).await?;
        if found.is_none() {
            if let Some(migration_id) = req.migration_id {
                found = self
                    .migrate_on_demand(principal, migration_id, req.key, req.now)
                    .await?;
            }
        }
        let Some(key) = found else {
            return Ok(Verdict::not_found());
        };

        // 2. Isolation and root-key scope.
        let row = &key.row;
        if row.workspace_id != principal.workspace_id || row.api_deleted {
            return Ok(Verdict::not_found());
        }
        if !Requirement::api("verify_key", &row.api_id).is_satisfied_by(&principal.permissions) {
            return Ok(Verdict::not_found());
        }
        let permission_query = match req.permissions {
            Some(text) => Some(query::parse(text).map_err(VerifyError::Query)?),
            None => None,
        };

        // 3. The key's own state.
        let mut code = if !row.enabled {
            VerifyCode::Disabled
        } else if row.expires.is_some_and(|at| req.now > at) {
            VerifyCode::Expired
        } else {
            VerifyCode::Valid
        };

        // 4. IP whitelist.
        if code == VerifyCode::Valid {
            if let Some(allowed) = &key.ip_whitelist {
                let ok = req
                    .client_ip
                    .is_some_and(|ip| allowed.iter().any(|a| a == ip));
                if !ok {
                    code = VerifyCode::Forbidden;
                }
            }
        }

        // 5. Permissions.
        if code == VerifyCode::Valid {
            if let Some(query) = &permission_query {
                if !query.is_satisfied_by(&key.permission_set) {
                    code = VerifyCode::InsufficientPermissions;
                }
            }
        }

        // 6. Rate limits slot in here.

        // 7. Credits.
        let mut remaining = None;
        let mut spent = 0;
        if let Some(credits) = &key.credits {
            if code == VerifyCode::Valid {
                let cost = req.credits_cost.unwrap_or(1);
                match self.ledger.spend(credits, cost, req.now).await? {
                    Spend::Spent(after) => {
                        remaining = Some(after);
                        spent = cost;
                    }
                    Spend::Insufficient(balance) => {
                        remaining = Some(balance);
                        code = VerifyCode::UsageExceeded;
                    }
                    Spend::Unlimited => {}
                }
            } else {
                remaining = self.ledger.current(credits, req.now).await?;
            }
        }

        self.events.record(VerificationEvent {
            request_id: req.request_id.to_string(),
            time_ms: req.now,
            workspace_id: row.workspace_id.clone(),
            api_id: row.api_id.clone(),
            key_space_id: row.key_space_id.clone(),
            key_id: row.id.clone(),
            identity_id: row.identity.as_ref().map(|i| i.id.clone()),
            outcome: code.as_str(),
            tags: serde_json::to_string(req.tags).unwrap_or_else(|_| "[]".into()),
            spent_credits: spent,
            latency_us: req.started.elapsed().as_micros().min(i64::MAX as u128) as i64,
        });
        Ok(Verdict {
            code,
            key: Some(key),
            remaining,
        })
    }

    /// Upgrades a key imported with `migration_id` the first time it is presented.
    async fn migrate_on_demand(
        &self,
        principal: &Principal,
        migration_id: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<Arc<CachedKey>>, VerifyError> {
        let Some(migration) = self
            .store
            .find_migration(&principal.workspace_id, migration_id)
            .await?
        else {
            return Ok(None);
        };
        match migration.algorithm.as_str() {
            // Imported with keyward's own hash: a plain lookup already failed.
            crate::domain::migrate::SHA256 => Ok(None),
            crate::domain::migrate::PREFIXED_API_KEY => {
                let parts: Vec<&str> = key.split('_').collect();
                if parts.len() < 3 {
                    return Err(VerifyError::MalformedMigratedKey);
                }
                let long = parts[parts.len() - 1];
                let short = parts[parts.len() - 2];
                let prefix = parts[..parts.len() - 2].join("_");
                let legacy: String = Sha256::digest(long.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let Some(row) = self
                    .store
                    .find_pending_migration(&principal.workspace_id, migration_id, &legacy)
                    .await?
                else {
                    return Ok(None);
                };
                let (digest, hash) = digest_key(key);
                let tail: String = format!("{short}_{long}").chars().take(4).collect();
                let start = format!("{prefix}_{tail}");
                self.store
                    .complete_migration(&row.id, &hash, &start, now)
                    .await?;
                self.forget(&row.hash);
                self.cache.remove(&digest);
                Ok(self.find_by_digest(digest, &hash).await?)
            }
            other => Err(VerifyError::UnknownAlgorithm(other.to_string())),
        }
    }
}
