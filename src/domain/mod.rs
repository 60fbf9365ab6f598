//! The rules of keyward, free of HTTP and SQL: authentication of root keys, the operations on
//! each resource, and the caches with their invalidation. Handlers call in here; this layer calls
//! the [`crate::store::Store`] trait.

pub mod admin;
pub mod apis;
pub mod auth;
pub mod changes;
pub mod credits;
pub mod events;
pub mod identities;
pub mod keycache;
pub mod keys;
pub mod limits;
pub mod migrate;
pub mod permissions;
pub mod query;
pub mod ratelimit;
pub mod rbac;
pub mod secret;
pub mod verify;
