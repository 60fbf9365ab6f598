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
//! 6. `RATE_LIMITED`: the key's and its identity's limits (auto-applied, named in the request, or
//!    ad-hoc), all decided together; nothing is counted if one fails;
//! 7. `USAGE_EXCEEDED`: credits, spent exactly by the ledger.
//!
//! Steps 4-7 run only while the outcome is still `VALID`. Every verification that gets past step 2
//! is recorded as an event.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use crate::domain::auth::Principal;
use crate::domain::credits::Spend;
use crate::domain::keys::cache::{Cached, CachedKey};
use crate::domain::keys::hash::{digest_key, hash_of_digest, hex_sha256, Digest};
use crate::domain::keys::KeyService;

use crate::domain::events::PendingEvent;
use crate::domain::ratelimit::{named_key, CounterError, LimitCheck};
use crate::domain::rbac::query::{self, QueryError};
use crate::ids::RequestId;
use crate::model::{ChangeKind, RatelimitConfig};
use crate::store::StoreError;

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
pub struct VerifyRequest<'a> {
    pub key: &'a str,
    pub tags: &'a [String],
    /// `None`: the default cost of 1, charged only to keys with a balance.
    pub credits_cost: Option<i64>,
    /// A permission query such as `docs.read AND (billing.admin OR billing.view)`.
    pub permissions: Option<&'a str>,
    /// Limits named (or defined ad hoc) by the request.
    pub ratelimits: &'a [RequestedLimit],
    pub migration_id: Option<&'a str>,
    /// The client's address, for the IP whitelist (computed only for APIs that have one).
    pub client_ip: &'a (dyn Fn() -> Option<String> + Sync),
    pub request_id: RequestId,
    pub now: i64,
    pub started: Instant,
}

/// A limit a verification asks for: by name, or ad hoc with both `limit` and `duration_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedLimit {
    pub name: String,
    pub cost: Option<i64>,
    pub limit: Option<i64>,
    pub duration_ms: Option<i64>,
}

/// A limit that was checked, as the verify response lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedLimit {
    /// Empty for ad-hoc limits.
    pub id: String,
    pub name: String,
    pub limit: i64,
    pub duration_ms: i64,
    pub reset: i64,
    pub remaining: i64,
    pub exceeded: bool,
    pub auto_apply: bool,
}

/// The verdict.
#[derive(Debug)]
pub struct Verdict {
    pub code: VerifyCode,
    /// `None` for a bare `NOT_FOUND` that reveals nothing.
    pub key: Option<Arc<CachedKey>>,
    /// The balance after this verification; `None` for unlimited keys.
    pub remaining: Option<i64>,
    /// The limits checked, auto-applied first (by name), then in request order.
    pub ratelimits: Vec<CheckedLimit>,
}

impl Verdict {
    fn not_found() -> Self {
        Verdict {
            code: VerifyCode::NotFound,
            key: None,
            remaining: None,
            ratelimits: Vec::new(),
        }
    }
}

/// Why a verification could not be carried out at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The root key holds no verify permission for any API (DECISIONS.md, behaviour 6).
    #[error("Missing one of these permissions: 'api.*.verify_key' or 'api.<apiId>.verify_key'")]
    NoVerifyPermission,
    /// A migration of the prefixed-api-key kind needs `prefix_short_long` keys.
    #[error("Invalid key format")]
    MalformedMigratedKey,
    #[error("unknown migration algorithm '{0}'")]
    UnknownAlgorithm(String),
    /// The permission query does not parse.
    #[error("{0}")]
    Query(QueryError),
    /// A requested limit name exists neither on the key nor on its identity.
    #[error("{0}")]
    UnknownLimit(String),
    /// An ad-hoc limit is malformed.
    #[error("{0}")]
    BadLimit(String),
    #[error(transparent)]
    Counters(#[from] CounterError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether the root key may verify keys of this API, without allocating in the common case.
fn may_verify_api(principal: &Principal, api_id: &str) -> bool {
    principal.permissions.contains("api.*.verify_key")
        || principal
            .permissions
            .contains(&format!("api.{api_id}.verify_key"))
}

impl KeyService {
    /// Finds a live key by the hash of its plaintext, through the cache.
    pub async fn find_by_plaintext(&self, key: &str) -> Result<Option<Arc<CachedKey>>, StoreError> {
        self.find_by_digest(digest_key(key)).await
    }

    async fn find_by_digest(&self, digest: Digest) -> Result<Option<Arc<CachedKey>>, StoreError> {
        let cached = self.cache.get(&digest);
        crate::telemetry::key_cache_lookup(cached.is_some());
        match cached {
            Some(Cached::Found(key)) => return Ok(Some(key)),
            Some(Cached::Missing) => return Ok(None),
            None => {}
        }
        let generation = self.cache.generation(&digest);
        let found = self
            .store
            .find_key_by_hash(&hash_of_digest(&digest))
            .await?
            .map(|row| Arc::new(CachedKey::new(row, &self.interner)));
        let entry = match &found {
            Some(key) => Cached::Found(key.clone()),
            None => Cached::Missing,
        };
        self.cache.insert(digest, generation, entry);
        Ok(found)
    }

    /// Verifies a key for `principal`: both permission checks happen here. A root key that may
    /// verify no API's keys is refused outright; one that may verify only other APIs' keys gets
    /// a bare `NOT_FOUND`, so it learns nothing of the key.
    pub async fn verify(
        &self,
        principal: &Principal,
        req: VerifyRequest<'_>,
    ) -> Result<Verdict, VerifyError> {
        if !principal.may_verify_keys {
            return Err(VerifyError::NoVerifyPermission);
        }
        // 1. Lookup.
        let mut found = self.find_by_digest(digest_key(req.key)).await?;
        if found.is_none() {
            if let Some(migration_id) = req.migration_id {
                // Boxed: this rare path's state (about 1 KiB) would otherwise be part of every
                // verification's future, which is moved into place on each request.
                found = Box::pin(self.migrate_on_demand(principal, migration_id, req.key, req.now))
                    .await?;
            }
        }
        let Some(key) = found else {
            return Ok(Verdict::not_found());
        };

        // 2. Isolation and root-key scope.
        if key.workspace_id() != &*principal.workspace_id || key.api_deleted {
            return Ok(Verdict::not_found());
        }
        if !may_verify_api(principal, key.api_id()) {
            return Ok(Verdict::not_found());
        }
        let permission_query = match req.permissions {
            Some(text) => Some(query::parse_cached(text).map_err(VerifyError::Query)?),
            None => None,
        };

        // 3. The key's own state.
        let mut code = if !key.enabled {
            VerifyCode::Disabled
        } else if key.expires.is_some_and(|at| req.now > at) {
            VerifyCode::Expired
        } else {
            VerifyCode::Valid
        };

        // 4. IP whitelist.
        if code == VerifyCode::Valid {
            if let Some(allowed) = key.ip_whitelist() {
                let ok =
                    (req.client_ip)().is_some_and(|ip| allowed.iter().any(|a| a.as_ref() == ip));
                if !ok {
                    code = VerifyCode::Forbidden;
                }
            }
        }

        // 5. Permissions.
        if code == VerifyCode::Valid {
            if let Some(query) = &permission_query {
                if !query.evaluate(&|p| key.holds(p)) {
                    code = VerifyCode::InsufficientPermissions;
                }
            }
        }

        // 6. Rate limits.
        let mut checked = Vec::new();
        if code == VerifyCode::Valid {
            let (limits, passed) = self.check_limits(&key, req.ratelimits, req.now).await?;
            checked = limits;
            if !passed {
                code = VerifyCode::RateLimited;
            }
        }

        // 7. Credits.
        let mut remaining = None;
        let mut spent = 0;
        if let Some(credits) = key.ledger_terms() {
            if code == VerifyCode::Valid {
                let cost = req.credits_cost.unwrap_or(1);
                match self.ledger.spend(&credits, cost, req.now).await? {
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
                remaining = self.ledger.current(&credits, req.now).await?;
            }
        }

        self.events.record(PendingEvent {
            key: key.clone(),
            request_id: req.request_id,
            time_ms: req.now,
            outcome: code.as_str(),
            tags: req.tags.to_vec(),
            spent_credits: spent,
            latency_us: req.started.elapsed().as_micros().min(i64::MAX as u128) as i64,
        });
        Ok(Verdict {
            code,
            key: Some(key),
            remaining,
            ratelimits: checked,
        })
    }

    /// Decides the key's limits for one verification. Returns the checked limits in response
    /// order and whether all passed.
    async fn check_limits(
        &self,
        key: &CachedKey,
        requested: &[RequestedLimit],
        now: i64,
    ) -> Result<(Vec<CheckedLimit>, bool), VerifyError> {
        // By name: the identity's limits that no key limit shadows, and the key's own.
        let mut configs: BTreeMap<&str, (&RatelimitConfig, &str)> = BTreeMap::new();
        if let Some(identity) = key.identity() {
            for limit in key.identity_limits() {
                configs.insert(&limit.name, (limit, &identity.id));
            }
        }
        for limit in key.ratelimits() {
            configs.insert(&limit.name, (limit, &key.id));
        }
        if configs.is_empty() && requested.is_empty() {
            return Ok((Vec::new(), true));
        }
        let asked: HashSet<&str> = requested.iter().map(|r| r.name.as_str()).collect();
        let mut shown: Vec<CheckedLimit> = Vec::new();
        let mut checks: Vec<LimitCheck> = Vec::new();
        let mut push = |id: &str,
                        name: &str,
                        limit: i64,
                        duration: i64,
                        auto: bool,
                        owner: &str,
                        cost: i64| {
            checks.push(LimitCheck {
                key: named_key(key.workspace_id(), name, owner, duration),
                limit,
                duration_ms: duration,
                cost,
            });
            shown.push(CheckedLimit {
                id: id.to_string(),
                name: name.to_string(),
                limit,
                duration_ms: duration,
                reset: 0,
                remaining: 0,
                exceeded: false,
                auto_apply: auto,
            });
        };
        for (name, (config, owner)) in &configs {
            if config.auto_apply && !asked.contains(name) {
                push(
                    &config.id,
                    name,
                    config.limit,
                    config.duration_ms,
                    true,
                    owner,
                    1,
                );
            }
        }
        for r in requested {
            let cost = r.cost.unwrap_or(1);
            match (r.limit, r.duration_ms) {
                (Some(limit), Some(duration)) => {
                    if duration < 1000 {
                        return Err(VerifyError::BadLimit(format!(
                            "The ad-hoc ratelimit '{}' has a duration of {duration} ms; it must be at least 1000 ms.",
                            r.name
                        )));
                    }
                    push("", &r.name, limit, duration, false, &key.id, cost);
                }
                _ => {
                    let Some((config, owner)) = configs.get(r.name.as_str()) else {
                        return Err(VerifyError::UnknownLimit(match key.identity() {
                            Some(identity) => format!(
                                "ratelimit '{}' was requested but does not exist for key '{}' nor identity: '{}' external ID: '{}'",
                                r.name, key.id, identity.id, identity.external_id
                            ),
                            None => format!(
                                "ratelimit '{}' was requested but does not exist for key '{}' and there is no identity connected.",
                                r.name, key.id
                            ),
                        }));
                    };
                    push(
                        &config.id,
                        &r.name,
                        config.limit,
                        config.duration_ms,
                        config.auto_apply,
                        owner,
                        cost,
                    );
                }
            }
        }
        let outcomes = self.counters.decide(&checks, now).await?;
        let mut passed = true;
        for (shown, outcome) in shown.iter_mut().zip(outcomes) {
            shown.reset = outcome.reset;
            shown.remaining = outcome.remaining;
            shown.exceeded = !outcome.passed;
            passed &= outcome.passed;
        }
        Ok((shown, passed))
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
            crate::domain::keys::migrate::SHA256 => Ok(None),
            crate::domain::keys::migrate::PREFIXED_API_KEY => {
                let parts: Vec<&str> = key.split('_').collect();
                if parts.len() < 3 {
                    return Err(VerifyError::MalformedMigratedKey);
                }
                let long = parts[parts.len() - 1];
                let short = parts[parts.len() - 2];
                let prefix = parts[..parts.len() - 2].join("_");
                let legacy = hex_sha256(long);
                let Some(row) = self
                    .store
                    .find_pending_migration(&principal.workspace_id, migration_id, &legacy)
                    .await?
                else {
                    return Ok(None);
                };
                let digest = digest_key(key);
                let hash = hash_of_digest(&digest);
                let tail: String = format!("{short}_{long}").chars().take(4).collect();
                let start = format!("{prefix}_{tail}");
                self.store
                    .complete_migration(&row.id, &hash, &start, now)
                    .await?;
                self.invalidator.apply(ChangeKind::Key, &row.hash);
                self.cache.remove(&digest);
                Ok(self.find_by_digest(digest).await?)
            }
            other => Err(VerifyError::UnknownAlgorithm(other.to_string())),
        }
    }
}
