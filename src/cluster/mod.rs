//! Cluster mode: the implementations of the domain's seams that let several keyward nodes share
//! one truth through Redis (`serve --redis URL`). This module sits beside the store, below the
//! wiring and above the domain: it implements domain traits over Redis, and nothing in the domain
//! or the HTTP layer knows it exists.
//!
//! - [`link`]: the node's connection to Redis and the failure policy all of it shares;
//! - [`counters`]: rate-limit counters ([`crate::domain::ratelimit::Counters`]);
//! - [`credits`]: the credit ledger ([`crate::domain::credits::Ledger`]);
//! - [`changes`]: cache invalidation between nodes
//!   ([`crate::domain::invalidation::ChangeBus`]).
//!
//! Without `--redis` nothing here runs.

pub mod changes;
pub mod counters;
pub mod credits;
pub mod link;
