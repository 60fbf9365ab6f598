//! Rate-limit configuration: named limits of keys and identities, namespaces and their overrides.

/// A named rate limit attached to a key or an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatelimitConfig {
    pub id: String,
    pub name: String,
    pub limit: i64,
    pub duration_ms: i64,
    pub auto_apply: bool,
}

/// Who owns a set of rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitOwner<'a> {
    Key(&'a str),
    Identity(&'a str),
}

/// A namespace of standalone rate limits, with its live overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub deleted: bool,
    pub created_at: i64,
    pub overrides: Vec<Override>,
}

/// A per-identifier (or wildcard) replacement of a namespace's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub id: String,
    pub namespace_id: String,
    pub identifier: String,
    pub limit: i64,
    pub duration_ms: i64,
}
