//! The verification cache: keys by the SHA-256 of their plaintext, including "no such key".
//!
//! Sharded `RwLock<HashMap>`s keyed by the raw 32-byte digest, bounded in size. Every mutation of
//! a key removes its entry on this node at once, and on other nodes through the change feed. Each
//! shard has a generation counter, so a database read that raced with an invalidation cannot put
//! the stale row back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::value::RawValue;

use crate::domain::credits::{KeyCredits, Refill};
use crate::domain::invalidation::Invalidate;
use crate::domain::keys::hash::{digest_of_hash, Digest, DigestMap};
use crate::model::{ChangeKind, KeyRow, RatelimitConfig};

/// A key's identity as verification needs it.
#[derive(Debug)]
pub struct CachedIdentity {
    pub id: Box<str>,
    pub external_id: Box<str>,
    pub meta: Option<Box<RawValue>>,
    pub ratelimits: Box<[RatelimitConfig]>,
}

/// The terms of a key's balance (the balance itself lives in the ledger).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditTerms {
    pub refill: Option<Refill>,
    pub created_at: i64,
}

/// A key as verification needs it, compact: a million of these must fit comfortably in memory.
/// The ids every key of a key space shares (workspace, API, key space) are one interned
/// [`KeySpaceIds`]; JSON is kept pre-validated; what most keys lack (a name, meta, an identity,
/// credits, permissions, roles, limits, an IP allowlist) sits behind one pointer that is `None`
/// when the key has none of it, so a plain key takes 56 bytes here instead of 240.
#[derive(Debug)]
pub struct CachedKey {
    pub id: Box<str>,
    space: Arc<KeySpaceIds>,
    pub expires: Option<i64>,
    pub enabled: bool,
    /// The key's API (or key space) was deleted.
    pub api_deleted: bool,
    details: Option<Box<KeyDetails>>,
}

/// Where a key belongs: shared by all cached keys of its key space.
#[derive(Debug, PartialEq, Eq)]
struct KeySpaceIds {
    workspace_id: Box<str>,
    api_id: Box<str>,
    key_space_id: Box<str>,
}

/// The parts of a [`CachedKey`] that most keys do not have.
#[derive(Debug, Default)]
struct KeyDetails {
    name: Option<Box<str>>,
    meta: Option<Box<RawValue>>,
    identity: Option<CachedIdentity>,
    /// `None`: the key has unlimited credits.
    credits: Option<CreditTerms>,
    /// Client IPs the key's API accepts; `None`: any.
    ip_whitelist: Option<Box<[Box<str>]>>,
    /// Permission slugs, direct and through roles: sorted, without duplicates.
    permissions: Box<[Box<str>]>,
    /// Role names, sorted.
    roles: Box<[Box<str>]>,
    /// The key's own rate limits.
    ratelimits: Box<[RatelimitConfig]>,
}

impl KeyDetails {
    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.meta.is_none()
            && self.identity.is_none()
            && self.credits.is_none()
            && self.ip_whitelist.is_none()
            && self.permissions.is_empty()
            && self.roles.is_empty()
            && self.ratelimits.is_empty()
    }
}

fn raw_object(json: Option<&str>) -> Option<Box<RawValue>> {
    let json = json?;
    // Only objects are shown; anything else stored there is treated as absent.
    json.trim_start()
        .starts_with('{')
        .then(|| RawValue::from_string(json.to_string()).ok())
        .flatten()
}

fn boxed(items: Vec<String>) -> Box<[Box<str>]> {
    items.into_iter().map(String::into_boxed_str).collect()
}

/// Shares the ids of a key space among its cached keys.
#[derive(Default)]
pub struct Interner {
    spaces: Mutex<HashMap<Box<str>, Arc<KeySpaceIds>>>,
}

/// Bound on interned key spaces; past it the table starts over (old `Arc`s stay valid).
const INTERNER_CAPACITY: usize = 100_000;

impl Interner {
    fn key_space(
        &self,
        workspace_id: String,
        api_id: String,
        key_space_id: String,
    ) -> Arc<KeySpaceIds> {
        let ids = KeySpaceIds {
            workspace_id: workspace_id.into_boxed_str(),
            api_id: api_id.into_boxed_str(),
            key_space_id: key_space_id.into_boxed_str(),
        };
        let mut spaces = self.spaces.lock().unwrap_or_else(|p| p.into_inner());
        // A key space belongs to one workspace and one API for good; compared anyway, so that
        // the shared ids are always the row's own.
        if let Some(found) = spaces
            .get(&ids.key_space_id)
            .filter(|found| ***found == ids)
        {
            return found.clone();
        }
        if spaces.len() >= INTERNER_CAPACITY {
            spaces.clear();
        }
        let shared = Arc::new(ids);
        spaces.insert(shared.key_space_id.clone(), shared.clone());
        shared
    }
}

impl CachedKey {
    pub fn workspace_id(&self) -> &str {
        &self.space.workspace_id
    }

    pub fn api_id(&self) -> &str {
        &self.space.api_id
    }

    pub fn key_space_id(&self) -> &str {
        &self.space.key_space_id
    }

    pub fn name(&self) -> Option<&str> {
        self.details.as_ref()?.name.as_deref()
    }

    /// The key's meta, when it is a JSON object.
    pub fn meta(&self) -> Option<&RawValue> {
        self.details.as_ref()?.meta.as_deref()
    }

    pub fn identity(&self) -> Option<&CachedIdentity> {
        self.details.as_ref()?.identity.as_ref()
    }

    /// `None`: the key has unlimited credits.
    pub fn credits(&self) -> Option<CreditTerms> {
        self.details.as_ref()?.credits
    }

    /// Client IPs the key's API accepts; `None`: any.
    pub fn ip_whitelist(&self) -> Option<&[Box<str>]> {
        self.details.as_ref()?.ip_whitelist.as_deref()
    }

    /// Permission slugs, direct and through roles: sorted, without duplicates.
    pub fn permissions(&self) -> &[Box<str>] {
        self.details.as_ref().map_or(&[], |d| &d.permissions)
    }

    /// Role names, sorted.
    pub fn roles(&self) -> &[Box<str>] {
        self.details.as_ref().map_or(&[], |d| &d.roles)
    }

    /// The key's own rate limits.
    pub fn ratelimits(&self) -> &[RatelimitConfig] {
        self.details.as_ref().map_or(&[], |d| &d.ratelimits)
    }

    /// The identity's rate limits that apply to this key: all but those a key limit of the same
    /// name shadows (the key's own limit wins).
    pub fn identity_limits(&self) -> impl Iterator<Item = &RatelimitConfig> {
        let own = self.ratelimits();
        self.identity()
            .into_iter()
            .flat_map(|identity| identity.ratelimits.iter())
            .filter(move |limit| !own.iter().any(|k| k.name == limit.name))
    }

    pub fn new(row: KeyRow, interner: &Interner) -> Self {
        let ip_whitelist = row.ip_whitelist.as_deref().and_then(|list| {
            let ips: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|ip| !ip.is_empty())
                .map(str::to_string)
                .collect();
            (!ips.is_empty()).then(|| boxed(ips))
        });
        let credits = row.remaining.map(|_| CreditTerms {
            refill: row.refill_amount.map(|amount| Refill {
                amount,
                day: row.refill_day,
            }),
            created_at: row.created_at,
        });
        let mut permissions = row.permissions;
        permissions.sort_unstable();
        permissions.dedup();
        let mut roles = row.roles;
        roles.sort_unstable();
        let details = KeyDetails {
            name: row.name.map(String::into_boxed_str),
            meta: raw_object(row.meta.as_deref()),
            identity: row.identity.map(|i| CachedIdentity {
                meta: raw_object(i.meta.as_deref()),
                id: i.id.into_boxed_str(),
                external_id: i.external_id.into_boxed_str(),
                ratelimits: i.ratelimits.into_boxed_slice(),
            }),
            credits,
            ip_whitelist,
            permissions: boxed(permissions),
            roles: boxed(roles),
            ratelimits: row.ratelimits.into_boxed_slice(),
        };
        CachedKey {
            space: interner.key_space(row.workspace_id, row.api_id, row.key_space_id),
            expires: row.expires,
            enabled: row.enabled,
            api_deleted: row.api_deleted,
            details: (!details.is_empty()).then(|| Box::new(details)),
            id: row.id.into_boxed_str(),
        }
    }

    /// A key with nothing but its ids, enabled, never expiring (for tests).
    #[cfg(test)]
    pub(crate) fn plain(id: &str, workspace_id: &str, api_id: &str, key_space_id: &str) -> Self {
        CachedKey {
            id: id.into(),
            space: Arc::new(KeySpaceIds {
                workspace_id: workspace_id.into(),
                api_id: api_id.into(),
                key_space_id: key_space_id.into(),
            }),
            expires: None,
            enabled: true,
            api_deleted: false,
            details: None,
        }
    }

    /// What the ledger needs to spend this key's credits.
    pub fn ledger_terms(&self) -> Option<KeyCredits<'_>> {
        self.credits().map(|terms| KeyCredits {
            key_id: &self.id,
            refill: terms.refill,
            created_at: terms.created_at,
        })
    }

    /// Whether the key holds a permission (exact slug).
    pub fn holds(&self, permission: &str) -> bool {
        self.permissions()
            .binary_search_by(|p| p.as_ref().cmp(permission))
            .is_ok()
    }
}

/// What the cache knows about a digest.
#[derive(Debug, Clone)]
pub enum Cached {
    Found(Arc<CachedKey>),
    Missing,
}

struct Shard {
    map: RwLock<DigestMap<Cached>>,
    generation: AtomicU64,
}

const SHARDS: usize = 64;

/// Entries one shard may hold when the cache is for `capacity`: its even share plus room for the
/// uneven spread of random digests over the shards (four standard deviations of it, and two more
/// for tiny caches), so that `capacity` keys fit with near certainty. 1,000,000 keys: 16,127 a
/// shard, 3% over the even share; 1,000 keys: 35.
fn per_shard(capacity: usize) -> usize {
    let even = capacity.div_ceil(SHARDS);
    even + 4 * (even as f64).sqrt().ceil() as usize + 2
}

/// The cache, for about `capacity` entries (found and missing): each shard holds at most
/// [`per_shard`] of them.
pub struct KeyCache {
    shards: Vec<Shard>,
    per_shard: usize,
}

impl KeyCache {
    pub fn new(capacity: usize) -> Self {
        KeyCache {
            shards: (0..SHARDS)
                .map(|_| Shard {
                    map: RwLock::new(DigestMap::default()),
                    generation: AtomicU64::new(0),
                })
                .collect(),
            per_shard: per_shard(capacity),
        }
    }

    fn shard(&self, digest: &Digest) -> &Shard {
        &self.shards[digest[0] as usize % SHARDS]
    }

    pub fn get(&self, digest: &Digest) -> Option<Cached> {
        self.shard(digest).map.read().ok()?.get(digest).cloned()
    }

    /// The generation to pass to [`KeyCache::insert`] after a database read.
    pub fn generation(&self, digest: &Digest) -> u64 {
        self.shard(digest).generation.load(Ordering::SeqCst)
    }

    /// Inserts unless the shard was invalidated since `generation` was read.
    pub fn insert(&self, digest: Digest, generation: u64, value: Cached) {
        let shard = self.shard(&digest);
        let Ok(mut map) = shard.map.write() else {
            return;
        };
        if shard.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if map.len() >= self.per_shard && !map.contains_key(&digest) {
            // Make room by dropping an arbitrary entry; it will be read again if needed.
            if let Some(victim) = map.keys().next().copied() {
                map.remove(&victim);
            }
        }
        map.insert(digest, value);
    }

    pub fn remove(&self, digest: &Digest) {
        let shard = self.shard(digest);
        if let Ok(mut map) = shard.map.write() {
            shard.generation.fetch_add(1, Ordering::SeqCst);
            map.remove(digest);
        }
    }

    /// Forgets every entry (API, workspace or identity changes).
    pub fn clear(&self) {
        for shard in &self.shards {
            if let Ok(mut map) = shard.map.write() {
                shard.generation.fetch_add(1, Ordering::SeqCst);
                map.clear();
            }
        }
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.map.read().map(|m| m.len()).unwrap_or(0))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Invalidate for KeyCache {
    /// A key changed: drop it (the entity is its hash). Its workspace, API, identity or roles
    /// changed: any number of keys may be affected, so the cache starts over.
    fn invalidate(&self, kind: ChangeKind, entity: &str) {
        match kind {
            ChangeKind::Key => {
                if let Some(digest) = digest_of_hash(entity) {
                    self.remove(&digest);
                }
            }
            ChangeKind::Workspace | ChangeKind::Api | ChangeKind::Identity | ChangeKind::Rbac => {
                self.clear()
            }
            ChangeKind::RootKey | ChangeKind::Namespace => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> KeyRow {
        KeyRow {
            id: id.into(),
            key_space_id: "ks_1".into(),
            workspace_id: "ws_1".into(),
            api_id: "api_1".into(),
            hash: String::new(),
            start: "bk_".into(),
            name: None,
            meta: None,
            identity: None,
            expires: None,
            enabled: true,
            remaining: None,
            refill_day: None,
            refill_amount: None,
            last_refill_at: None,
            last_used_at: 0,
            pending_migration_id: None,
            created_at: 0,
            updated_at: None,
            api_deleted: false,
            ip_whitelist: None,
            workspace_enabled: true,
            permissions: Vec::new(),
            roles: Vec::new(),
            ratelimits: Vec::new(),
        }
    }

    #[test]
    fn a_plain_key_is_compact_and_a_detailed_one_keeps_its_details() {
        // A million cached keys: every byte here is a megabyte.
        assert!(std::mem::size_of::<CachedKey>() <= 56);
        let interner = Interner::default();
        let plain = CachedKey::new(row("key_1"), &interner);
        assert!(plain.details.is_none());
        assert_eq!(
            (plain.name(), plain.credits(), plain.ip_whitelist()),
            (None, None, None)
        );
        assert!(plain.permissions().is_empty() && plain.roles().is_empty());

        let mut detailed = row("key_2");
        detailed.name = Some("n".into());
        detailed.meta = Some(r#"{"a":1}"#.into());
        detailed.remaining = Some(5);
        detailed.ip_whitelist = Some("1.2.3.4, 5.6.7.8".into());
        detailed.permissions = vec!["b".into(), "a".into(), "a".into()];
        detailed.roles = vec!["r".into()];
        let key = CachedKey::new(detailed, &interner);
        assert_eq!(key.name(), Some("n"));
        assert_eq!(key.meta().map(RawValue::get), Some(r#"{"a":1}"#));
        assert!(key.credits().is_some());
        assert_eq!(key.ip_whitelist().map(<[_]>::len), Some(2));
        assert_eq!(key.permissions(), &["a".into(), "b".into()] as &[Box<str>]);
        assert!(key.holds("a") && !key.holds("c"));
        assert_eq!(key.roles().len(), 1);
        // The ids are shared between keys of one key space.
        assert!(Arc::ptr_eq(&plain.space, &key.space));
        assert_eq!(
            (key.workspace_id(), key.api_id(), key.key_space_id()),
            ("ws_1", "api_1", "ks_1")
        );
    }

    #[test]
    fn an_invalidation_during_a_read_keeps_the_stale_row_out() {
        let cache = KeyCache::new(1000);
        let d = [7u8; 32];
        let generation = cache.generation(&d);
        cache.remove(&d);
        cache.insert(d, generation, Cached::Missing);
        assert!(cache.get(&d).is_none());
        let generation = cache.generation(&d);
        cache.insert(d, generation, Cached::Missing);
        assert!(matches!(cache.get(&d), Some(Cached::Missing)));
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let cache = KeyCache::new(SHARDS * 2);
        for i in 0..1000u32 {
            let mut d = [0u8; 32];
            d[0] = (i % 256) as u8;
            d[1..5].copy_from_slice(&i.to_be_bytes());
            cache.insert(d, cache.generation(&d), Cached::Missing);
        }
        assert!(cache.len() <= SHARDS * per_shard(SHARDS * 2));
        for shard in &cache.shards {
            assert!(shard.map.read().unwrap().len() <= per_shard(SHARDS * 2));
        }
    }

    #[test]
    fn a_cache_holds_as_many_random_keys_as_it_is_for() {
        for capacity in [1, 10, 1_000, 20_000] {
            let cache = KeyCache::new(capacity);
            let digests: Vec<Digest> = (0..capacity)
                .map(|i| {
                    let hash = crate::domain::keys::hash::hash_key(&format!("key {capacity} {i}"));
                    digest_of_hash(&hash).unwrap()
                })
                .collect();
            for d in &digests {
                cache.insert(*d, cache.generation(d), Cached::Missing);
            }
            assert_eq!(cache.len(), capacity, "every key of {capacity} fits");
            assert!(digests.iter().all(|d| cache.get(d).is_some()));
        }
    }

    #[test]
    fn stored_hashes_decode_to_digests() {
        let hash = crate::domain::keys::hash::hash_key("hello");
        let digest = digest_of_hash(&hash).unwrap();
        assert_eq!(digest[0], 0x2c);
        assert!(digest_of_hash("not base64!").is_none());
    }
}
