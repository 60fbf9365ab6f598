//! The verification cache: keys by the SHA-256 of their plaintext, including "no such key".
//!
//! Sharded `RwLock<HashMap>`s keyed by the raw 32-byte digest, bounded in size. Every mutation of
//! a key removes its entry on this node at once, and on other nodes through the change feed. Each
//! shard has a generation counter, so a database read that raced with an invalidation cannot put
//! the stale row back.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::value::RawValue;

use crate::domain::credits::{KeyCredits, Refill};
use crate::store::KeyRow;

/// The SHA-256 of a presented key.
pub type Digest = [u8; 32];

/// A key as verification needs it, with its JSON pre-parsed once.
#[derive(Debug)]
pub struct CachedKey {
    pub row: KeyRow,
    pub meta: Option<Box<RawValue>>,
    pub identity_meta: Option<Box<RawValue>>,
    /// Client IPs the key's API accepts; `None`: any.
    pub ip_whitelist: Option<Vec<String>>,
    /// `None`: the key has unlimited credits.
    pub credits: Option<KeyCredits>,
    /// The permission slugs the key holds, for permission queries.
    pub permission_set: HashSet<String>,
}

fn raw_object(json: Option<&str>) -> Option<Box<RawValue>> {
    let json = json?;
    // Only objects are shown; anything else stored there is treated as absent.
    json.trim_start()
        .starts_with('{')
        .then(|| RawValue::from_string(json.to_string()).ok())
        .flatten()
}

impl CachedKey {
    pub fn new(row: KeyRow) -> Self {
        let ip_whitelist = row.ip_whitelist.as_deref().and_then(|list| {
            let ips: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|ip| !ip.is_empty())
                .map(str::to_string)
                .collect();
            (!ips.is_empty()).then_some(ips)
        });
        let credits = row.remaining.map(|_| KeyCredits {
            key_id: row.id.clone(),
            refill: row.refill_amount.map(|amount| Refill {
                amount,
                day: row.refill_day,
            }),
            created_at: row.created_at,
        });
        CachedKey {
            permission_set: row.permissions.iter().cloned().collect(),
            meta: raw_object(row.meta.as_deref()),
            identity_meta: raw_object(row.identity.as_ref().and_then(|i| i.meta.as_deref())),
            ip_whitelist,
            credits,
            row,
        }
    }
}

/// What the cache knows about a digest.
#[derive(Debug, Clone)]
pub enum Cached {
    Found(Arc<CachedKey>),
    Missing,
}

struct Shard {
    map: RwLock<HashMap<Digest, Cached>>,
    generation: AtomicU64,
}

const SHARDS: usize = 64;

/// The cache. `capacity` bounds the number of entries (found and missing) across all shards.
pub struct KeyCache {
    shards: Vec<Shard>,
    per_shard: usize,
}

impl KeyCache {
    pub fn new(capacity: usize) -> Self {
        KeyCache {
            shards: (0..SHARDS)
                .map(|_| Shard {
                    map: RwLock::new(HashMap::new()),
                    generation: AtomicU64::new(0),
                })
                .collect(),
            per_shard: (capacity / SHARDS).max(1),
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

/// The stored (base64) form of a digest.
pub fn hash_of_digest(digest: &Digest) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// Decodes a stored key hash (base64 of SHA-256) into its digest.
pub fn digest_of_hash(hash: &str) -> Option<Digest> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(hash)
        .ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(cache.len() <= SHARDS * 2);
    }

    #[test]
    fn stored_hashes_decode_to_digests() {
        let hash = crate::domain::secret::hash_key("hello");
        let digest = digest_of_hash(&hash).unwrap();
        assert_eq!(digest[0], 0x2c);
        assert!(digest_of_hash("not base64!").is_none());
    }
}
