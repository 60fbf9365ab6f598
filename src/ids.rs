//! Resource identifiers: `<prefix>_` followed by random alphanumerics.
//!
//! Ids are not secrets, but they come from a CSPRNG anyway (the thread-local generator, seeded from
//! the OS) so that they cannot be guessed across tenants. Sixteen characters from 62 give ~95 bits,
//! enough that collisions never matter.

use rand::distributions::Alphanumeric;
use rand::{Rng, RngCore};

/// The kinds of resource that get ids, each with Unkey's prefix.
#[derive(Debug, Clone, Copy)]
pub enum Prefix {
    Workspace,
    Api,
    KeySpace,
    Key,
    Identity,
    Request,
    AuditLog,
    Migration,
    Permission,
    Role,
    Ratelimit,
    Namespace,
    Override,
    DataKey,
}

impl Prefix {
    fn as_str(self) -> &'static str {
        match self {
            Prefix::Workspace => "ws",
            Prefix::Api => "api",
            Prefix::KeySpace => "ks",
            Prefix::Key => "key",
            Prefix::Identity => "id",
            Prefix::Request => "req",
            Prefix::AuditLog => "log",
            Prefix::Migration => "mig",
            Prefix::Permission => "perm",
            Prefix::Role => "role",
            Prefix::Ratelimit => "rl",
            Prefix::Namespace => "rlns",
            Prefix::DataKey => "dek",
            Prefix::Override => "rlor",
        }
    }
}

const RANDOM_LEN: usize = 16;

/// A fresh id such as `api_3kQ9x...`.
pub fn new_id(prefix: Prefix) -> String {
    let mut id = String::with_capacity(prefix.as_str().len() + 1 + RANDOM_LEN);
    id.push_str(prefix.as_str());
    id.push('_');
    id.extend(
        rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(RANDOM_LEN)
            .map(char::from),
    );
    id
}

/// The 62 characters of an id's random part.
const ALPHANUMERIC: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A fresh request id, `req_` and 16 alphanumerics: drawn like [`new_id`]'s, uniformly from
/// the same generator, but six bits at a time from 64-bit words (a 6-bit value of 62 or 63 is
/// skipped), so it takes two or three calls of the generator instead of sixteen. Every request
/// gets one.
pub fn new_request_id() -> String {
    let mut rng = rand::thread_rng();
    let mut id = String::with_capacity(4 + RANDOM_LEN);
    id.push_str("req_");
    let (mut bits, mut left) = (0u64, 0u32);
    let mut written = 0;
    while written < RANDOM_LEN {
        if left < 6 {
            bits = rng.next_u64();
            left = 64;
        }
        let six = (bits & 63) as usize;
        bits >>= 6;
        left -= 6;
        if let Some(&c) = ALPHANUMERIC.get(six) {
            id.push(char::from(c));
            written += 1;
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_only_alphanumerics() {
        let id = new_id(Prefix::Api);
        assert!(id.starts_with("api_"));
        assert_eq!(id.len(), 4 + RANDOM_LEN);
        assert!(id[4..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(new_id(Prefix::Api), id);
    }

    #[test]
    fn request_ids_are_req_and_16_alphanumerics_spread_over_the_alphabet() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let id = new_request_id();
            assert!(id.starts_with("req_"), "{id}");
            assert_eq!(id.len(), 4 + RANDOM_LEN, "{id}");
            assert!(id[4..].bytes().all(|c| c.is_ascii_alphanumeric()), "{id}");
            seen.extend(id[4..].bytes());
        }
        // 32,000 draws: every one of the 62 characters shows up, the last two included.
        assert_eq!(seen.len(), 62);
        assert_ne!(new_request_id(), new_request_id());
    }
}
