//! Key material: generating keys, and the one home of hashing them (presented keys, root keys
//! and stored hashes all go through here).
//!
//! A key is `prefix_` + base58 (Bitcoin alphabet) of random bytes from the OS CSPRNG. Only
//! `base64(sha256(key))` is ever stored, which is Unkey's format, so exported Unkey hashes import
//! unchanged. The plaintext leaves this module once, in the response that creates the key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest as _, Sha256};

/// The stored form of a key: standard base64 of its SHA-256, 44 characters.
pub fn hash_key(key: &str) -> String {
    hash_of_digest(&digest_key(key))
}

/// A freshly generated key: plaintext (to return once), its hash and its visible start.
pub struct GeneratedKey {
    pub plaintext: String,
    pub hash: String,
    pub start: String,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("plaintext", &"<redacted>")
            .field("start", &self.start)
            .finish()
    }
}

/// Generates a key of `byte_length` random bytes with an optional prefix.
///
/// `start` is the prefix plus the first four encoded characters, enough for a person to tell keys
/// apart and useless to an attacker.
pub fn generate_key(prefix: Option<&str>, byte_length: usize) -> GeneratedKey {
    let mut random = vec![0u8; byte_length];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let encoded = bs58::encode(&random).into_string();
    let head: String = encoded.chars().take(4).collect();
    let (plaintext, start) = match prefix {
        Some(p) => (format!("{p}_{encoded}"), format!("{p}_{head}")),
        None => (encoded, head),
    };
    GeneratedKey {
        hash: hash_key(&plaintext),
        plaintext,
        start,
    }
}

/// The prefix every root key carries, so secret scanners and Unkey tooling recognise them.
pub const ROOT_KEY_PREFIX: &str = "unkey";

/// Generates a root key (`unkey_…`, 16 random bytes).
pub fn generate_root_key() -> GeneratedKey {
    generate_key(Some(ROOT_KEY_PREFIX), 16)
}

/// Lowercase hex of the SHA-256 of `text`: how keys of the prefixed-api-key kind are stored by
/// the systems they are migrated from.
pub fn hex_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The SHA-256 of a presented key: what caches are keyed by.
pub type Digest = [u8; 32];

/// A map keyed by [`Digest`]s, hashed with foldhash rather than std's SipHash: a lookup on every
/// verification then costs a few dozen instructions instead of a few hundred. foldhash is seeded
/// per process, and a key's digest is SHA-256 output, which a client cannot steer into chosen
/// buckets without a per-process seed it never sees.
pub type DigestMap<V> = std::collections::HashMap<Digest, V, foldhash::fast::RandomState>;

/// The SHA-256 digest of a presented key (its stored form is [`hash_of_digest`] of it).
pub fn digest_key(key: &str) -> Digest {
    Sha256::digest(key.as_bytes()).into()
}

/// The stored (base64) form of a digest.
pub fn hash_of_digest(digest: &Digest) -> String {
    STANDARD.encode(digest)
}

/// Decodes a stored key hash (base64 of SHA-256) into its digest.
pub fn digest_of_hash(hash: &str) -> Option<Digest> {
    let bytes = STANDARD.decode(hash).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_standard_base64_of_sha256() {
        // sha256("hello") = 2cf24dba...; base64 of those 32 bytes:
        assert_eq!(
            hash_key("hello"),
            "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
        );
    }

    #[test]
    fn generated_keys_have_prefix_start_and_matching_hash() {
        let key = generate_key(Some("sk"), 16);
        assert!(key.plaintext.starts_with("sk_"));
        assert_eq!(key.start.len(), "sk_".len() + 4);
        assert!(key.plaintext.starts_with(&key.start));
        assert_eq!(key.hash, hash_key(&key.plaintext));
        assert!(!format!("{key:?}").contains(&key.plaintext));
    }

    #[test]
    fn keys_without_prefix_are_bare_base58() {
        let key = generate_key(None, 32);
        assert!(!key.plaintext.contains('_'));
        assert!(bs58::decode(&key.plaintext).into_vec().is_ok());
    }
}
