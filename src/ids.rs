//! Resource identifiers: `<prefix>_` followed by sixteen alphanumerics.
//!
//! A resource id starts with its creation time, so ids sort (as bytes) in the order they were
//! made, like Unkey's: each new key, audit event or identity lands at the right edge of every index
//! that holds its id, instead of on a random page. Creating keys at a few thousand a second used
//! to dirty about eight random index pages per key (the key's id in four indexes, the audit
//! event's and its targets'), which SQLite writes to the WAL in full at every commit and again at
//! the checkpoint. The rest of an id comes from a CSPRNG (the thread-local generator, seeded from
//! the OS): 9 characters, about 53 bits a millisecond, so ids cannot be guessed and never collide.
//! Request ids need no order and are all random.

use std::time::{SystemTime, UNIX_EPOCH};

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

/// Characters after the prefix's `_`.
const ID_LEN: usize = 16;
/// Of those, the creation time: milliseconds since 1970 in base 62, enough until the year 2081.
const TIME_LEN: usize = 7;

/// The 62 characters of a resource id, in byte order (so a fixed-width number in them sorts as
/// the number does).
const SORTED: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A fresh id such as `api_0TSw1Hb9kQ3xPzLm`: the creation time, then randomness.
pub fn new_id(prefix: Prefix) -> String {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    id_at(prefix, now_ms, &mut rand::thread_rng())
}

fn id_at(prefix: Prefix, now_ms: u128, rng: &mut impl Rng) -> String {
    let mut id = String::with_capacity(prefix.as_str().len() + 1 + ID_LEN);
    id.push_str(prefix.as_str());
    id.push('_');
    let mut time = [0u8; TIME_LEN];
    let mut rest = now_ms;
    for digit in time.iter_mut().rev() {
        *digit = SORTED[(rest % 62) as usize];
        rest /= 62;
    }
    id.extend(time.iter().map(|&c| char::from(c)));
    id.extend((TIME_LEN..ID_LEN).map(|_| char::from(SORTED[rng.gen_range(0..62)])));
    id
}

/// A fresh request id, `req_` and 16 alphanumerics, all random: drawn uniformly from the same
/// generator as [`new_id`]'s, but six bits at a time from 64-bit words (a 6-bit value of 62 or 63 is
/// skipped), so it takes two or three calls of the generator instead of sixteen. Every request
/// gets one.
pub fn new_request_id() -> String {
    let mut rng = rand::thread_rng();
    let mut id = String::with_capacity(4 + ID_LEN);
    id.push_str("req_");
    let (mut bits, mut left) = (0u64, 0u32);
    let mut written = 0;
    while written < ID_LEN {
        if left < 6 {
            bits = rng.next_u64();
            left = 64;
        }
        let six = (bits & 63) as usize;
        bits >>= 6;
        left -= 6;
        if let Some(&c) = SORTED.get(six) {
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
        assert_eq!(id.len(), 4 + ID_LEN);
        assert!(id[4..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(new_id(Prefix::Api), id);
    }

    #[test]
    fn ids_sort_in_the_order_they_were_made() {
        let mut rng = rand::thread_rng();
        let times = [
            0,
            1,
            61,
            62,
            999,
            1_764_633_600_000,
            1_764_633_600_001,
            3_500_000_000_000,
        ];
        let ids: Vec<String> = times
            .iter()
            .map(|&t| id_at(Prefix::Key, t, &mut rng))
            .collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
        }
        for id in &ids {
            assert_eq!(id.len(), 4 + ID_LEN, "{id}");
            assert!(id[4..].bytes().all(|c| c.is_ascii_alphanumeric()), "{id}");
        }
        // Two ids of one millisecond differ in their random part.
        let same_ms: std::collections::HashSet<String> =
            (0..1000).map(|_| id_at(Prefix::Key, 5, &mut rng)).collect();
        assert_eq!(same_ms.len(), 1000);
        // Fresh ids are made now: later ones never sort before earlier ones' millisecond.
        let first = new_id(Prefix::Api);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(new_id(Prefix::Api)[..4 + TIME_LEN] > first[..4 + TIME_LEN]);
    }

    #[test]
    fn request_ids_are_req_and_16_alphanumerics_spread_over_the_alphabet() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let id = new_request_id();
            assert!(id.starts_with("req_"), "{id}");
            assert_eq!(id.len(), 4 + ID_LEN, "{id}");
            assert!(id[4..].bytes().all(|c| c.is_ascii_alphanumeric()), "{id}");
            seen.extend(id[4..].bytes());
        }
        // 32,000 draws: every one of the 62 characters shows up, the last two included.
        assert_eq!(seen.len(), 62);
        assert_ne!(new_request_id(), new_request_id());
    }
}
