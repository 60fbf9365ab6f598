//! Resource identifiers: `<prefix>_` followed by random alphanumerics.
//!
//! Ids are not secrets, but they come from a CSPRNG anyway (the thread-local generator, seeded from
//! the OS) so that they cannot be guessed across tenants. Sixteen characters from 62 give ~95 bits,
//! enough that collisions never matter.

use rand::distributions::Alphanumeric;
use rand::Rng;

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
}
