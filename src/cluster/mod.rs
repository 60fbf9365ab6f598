//! Cluster mode: the implementations of the domain's seams that let several keyward nodes share
//! one truth through Redis (`serve --redis URL`). This module sits beside the store, below the
//! wiring and above the domain: it implements domain traits ([`crate::domain::ratelimit::Counters`])
//! over Redis, and nothing in the domain or the HTTP layer knows it exists.
//!
//! Today: rate-limit counters ([`counters`]). Without `--redis` nothing here runs.

pub mod counters;
