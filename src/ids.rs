//! Resource identifiers: `<prefix>_` followed by sixteen alphanumerics.
//!
//! A resource id starts with its creation time, so ids sort (as bytes) in the order they were
//! made, like Unkey's: each new key, audit event or identity lands at the right edge of every index
//! that holds its id, instead of on a random page. Creating keys at a few thousand a second used
//! to dirty about eight random index pages per key (the key's id in four indexes, the audit
//! event's and its targets'), which SQLite writes to the WAL in full at every commit and again at
//! the checkpoint. The rest of an id comes from a CSPRNG (the thread-local generator, seeded from
//! the OS): 9 characters, about 53 bits a millisecond, so ids cannot be guessed and never collide.
//! Request ids need no order and are all random, drawn from a fast generator of each thread's
//! own (Xoshiro256++, seeded from the CSPRNG): they name a request in logs and answers, and are
//! not secrets, so they need no cryptographic strength, only to be unique (96 random bits).

use std::time::{SystemTime, UNIX_EPOCH};

use std::cell::RefCell;

use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};

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

/// A request id: `req_` and 16 alphanumerics, or `req_unknown` outside a request. Held inline
/// and `Copy`, so the many places a request's id goes (the response's header and `meta`, its
/// analytics event, its log lines) copy 24 bytes instead of allocating a string each.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId {
    len: u8,
    bytes: [u8; RequestId::CAPACITY],
}

impl RequestId {
    /// The longest id it holds, in bytes.
    pub const CAPACITY: usize = 23;

    /// The id of whatever runs outside a request.
    pub const UNKNOWN: RequestId = {
        let text = b"req_unknown";
        let mut bytes = [0u8; RequestId::CAPACITY];
        let mut i = 0;
        while i < text.len() {
            bytes[i] = text[i];
            i += 1;
        }
        RequestId {
            len: text.len() as u8,
            bytes,
        }
    };

    pub fn as_str(&self) -> &str {
        // Built from a `str` cut at a character boundary, so always UTF-8.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("req_unknown")
    }
}

/// From any text, cut to [`RequestId::CAPACITY`] bytes at a character boundary (ids of other
/// systems, tests).
impl From<&str> for RequestId {
    fn from(text: &str) -> Self {
        let mut end = text.len().min(Self::CAPACITY);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut bytes = [0u8; Self::CAPACITY];
        bytes[..end].copy_from_slice(&text.as_bytes()[..end]);
        RequestId {
            len: end as u8,
            bytes,
        }
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl serde::Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

thread_local! {
    /// The generator of request ids (see the module's documentation).
    static REQUEST_ID_RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(rand::thread_rng()).unwrap_or_else(|_| SmallRng::from_entropy()));
}

/// A fresh request id, `req_` and 16 alphanumerics, all random. Every request gets one, so it is
/// cheap: two 64-bit words of the thread's fast generator, each read as a fraction in [0, 1)
/// and turned into eight base-62 digits by multiplying by 62 and taking the whole part, each
/// time (no loop that skips values). The digits are uniform to within one part in 40,000 (the
/// eighth of a word rests on its low 22 bits).
pub fn new_request_id() -> RequestId {
    REQUEST_ID_RNG.with_borrow_mut(request_id_from)
}

fn request_id_from(rng: &mut SmallRng) -> RequestId {
    let mut bytes = [0u8; RequestId::CAPACITY];
    bytes[..4].copy_from_slice(b"req_");
    for half in bytes[4..4 + ID_LEN].chunks_exact_mut(ID_LEN / 2) {
        let mut fraction = rng.next_u64();
        for digit in half {
            let scaled = u128::from(fraction) * 62;
            // The whole part is below 62; the fractional part carries the rest.
            *digit = SORTED[(scaled >> 64) as usize];
            fraction = scaled as u64;
        }
    }
    RequestId {
        len: (4 + ID_LEN) as u8,
        bytes,
    }
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

    #[test]
    fn request_ids_from_text_are_cut_at_a_character_boundary() {
        assert_eq!(RequestId::UNKNOWN.as_str(), "req_unknown");
        assert_eq!(RequestId::from("req_abc").as_str(), "req_abc");
        let long = "req_ééééééééééééééééééééé";
        let cut = RequestId::from(long);
        assert!(cut.len() <= RequestId::CAPACITY && long.starts_with(cut.as_str()));
        assert_eq!(cut.len(), 22, "the last two-byte character did not fit");
        assert_eq!(
            serde_json::to_string(&cut).ok(),
            serde_json::to_string(cut.as_str()).ok()
        );
    }
}
