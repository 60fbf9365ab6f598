//! Root-key authentication, with a cache in front of the store.
//!
//! A presented root key is hashed and looked up by hash; the result is cached so that repeated
//! calls with the same key cost no query. The cache is emptied whenever the change feed (or a
//! local mutation) reports a root-key or workspace change, so a disabled key is refused on the
//! next request on this node and within the poll interval on every other.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::clock::SharedClock;
use crate::domain::invalidation::Invalidate;
use crate::domain::keys::hash::{digest_key, digest_of_hash};
use crate::domain::keys::hash::{Digest, DigestMap};
use crate::model::{ChangeKind, RootKeyAuth};
use crate::store::{AdminStore, StoreError};

/// An authenticated root key: who is calling, for which workspace, with which permissions.
#[derive(Debug, Clone)]
pub struct Principal {
    pub root_key_id: String,
    pub workspace_id: String,
    pub name: Option<String>,
    pub permissions: HashSet<String>,
    /// Whether the key holds any `*.verify_key` permission at all.
    pub may_verify_keys: bool,
    /// The workspace's limit on calls to the API per minute (`None`: no limit).
    pub workspace_requests_per_minute: Option<i64>,
}

/// Why a presented root key was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    #[error("no live root key has this hash")]
    NotFound,
    #[error("the key is an ordinary key, not a root key")]
    NotARootKey,
    #[error("the root key is disabled")]
    Disabled,
    #[error("the root key expired at {0}")]
    Expired(i64),
    #[error("the root key's workspace does not exist")]
    WorkspaceNotFound,
    #[error("the root key's workspace is disabled")]
    WorkspaceDisabled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the cache keeps per hash: the stored row and the permission set built from it once.
struct Entry {
    auth: RootKeyAuth,
    principal: Arc<Principal>,
}

/// Bound on cached root keys; past it the cache starts over (root keys are few in practice).
const CAPACITY: usize = 10_000;

/// Root keys by hash. A generation counter stops a lookup that raced with an invalidation from
/// re-inserting what the invalidation just removed.
#[derive(Default)]
pub struct RootKeyCache {
    entries: RwLock<DigestMap<Arc<Entry>>>,
    generation: AtomicU64,
}

impl RootKeyCache {
    fn get(&self, digest: &Digest) -> Option<Arc<Entry>> {
        self.entries.read().ok()?.get(digest).cloned()
    }

    fn insert(&self, generation: u64, digest: Digest, entry: Arc<Entry>) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(digest, entry);
    }

    /// Forgets every cached root key.
    pub fn invalidate_all(&self) {
        if let Ok(mut entries) = self.entries.write() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            entries.clear();
        }
    }
}

impl Invalidate for RootKeyCache {
    /// A root key's permissions, state or workspace changed: root keys are few, so all go.
    fn invalidate(&self, kind: ChangeKind, _entity: &str) {
        if matches!(kind, ChangeKind::RootKey | ChangeKind::Workspace) {
            self.invalidate_all();
        }
    }
}

/// Authenticates root keys against the store, through the cache.
pub struct Authenticator {
    store: Arc<dyn AdminStore>,
    clock: SharedClock,
    cache: Arc<RootKeyCache>,
}

impl Authenticator {
    pub fn new(store: Arc<dyn AdminStore>, clock: SharedClock, cache: Arc<RootKeyCache>) -> Self {
        Authenticator {
            store,
            clock,
            cache,
        }
    }

    /// Checks a presented root key, in Unkey's order: existence, workspace, enabled, expiry.
    pub async fn authenticate(&self, token: &str) -> Result<Arc<Principal>, AuthFailure> {
        self.authenticate_digest(digest_key(token)).await
    }

    /// [`Self::authenticate`] for a root key known by its stored hash (a dashboard session's):
    /// the same checks, through the same cache.
    pub async fn authenticate_hash(&self, hash: &str) -> Result<Arc<Principal>, AuthFailure> {
        let digest = digest_of_hash(hash).ok_or(AuthFailure::NotFound)?;
        self.authenticate_digest(digest).await
    }

    /// The workspace's live root keys (without their secrets), for the dashboard's listing.
    pub async fn root_keys(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<crate::model::RootKey>, StoreError> {
        self.store.list_root_keys(workspace_id).await
    }

    async fn authenticate_digest(&self, digest: Digest) -> Result<Arc<Principal>, AuthFailure> {
        let entry = match self.cache.get(&digest) {
            Some(entry) => entry,
            None => {
                let hash = crate::domain::keys::hash::hash_of_digest(&digest);
                let generation = self.cache.generation.load(Ordering::SeqCst);
                let Some(auth) = self.store.find_root_key_by_hash(&hash).await? else {
                    return Err(if self.store.ordinary_key_exists(&hash).await? {
                        AuthFailure::NotARootKey
                    } else {
                        AuthFailure::NotFound
                    });
                };
                let principal = Arc::new(Principal {
                    root_key_id: auth.key.id.clone(),
                    workspace_id: auth.key.workspace_id.clone(),
                    name: auth.key.name.clone(),
                    permissions: auth.key.permissions.iter().cloned().collect(),
                    may_verify_keys: auth
                        .key
                        .permissions
                        .iter()
                        .any(|p| p.ends_with(".verify_key")),
                    workspace_requests_per_minute: auth.workspace_requests_per_minute,
                });
                let entry = Arc::new(Entry { auth, principal });
                self.cache.insert(generation, digest, entry.clone());
                entry
            }
        };
        match entry.auth.workspace_enabled {
            None => return Err(AuthFailure::WorkspaceNotFound),
            Some(false) => return Err(AuthFailure::WorkspaceDisabled),
            Some(true) => {}
        }
        if !entry.auth.key.enabled {
            return Err(AuthFailure::Disabled);
        }
        if let Some(expires) = entry.auth.key.expires {
            if expires < self.clock.now_ms() {
                return Err(AuthFailure::Expired(expires));
            }
        }
        Ok(entry.principal.clone())
    }
}
