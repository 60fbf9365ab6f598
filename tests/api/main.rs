//! Black-box tests of keyward through its HTTP API, one binary for the whole suite.
//!
//! Each test spawns its own server on port 0 over a fresh database: a SQLite file by default, or a
//! new PostgreSQL database when `KEYWARD_TEST_POSTGRES` names a server (see `scripts/test`).

#![allow(clippy::unwrap_used)]

mod analytics;
mod apis;
mod audit;
mod auth;
mod cli;
mod cluster;
mod cluster_credits;
mod connections;
mod dashboard;
mod dashboard_authorization;
mod dashboard_identities;
mod dashboard_ratelimits;
mod errors;
mod faults;
mod fuzzing;
mod health;
mod helpers;
mod identities;
mod keys;
mod logs;
mod memory;
mod nodes;
mod ratelimit;
mod rbac;
mod served;
mod sweep;
mod vault;
mod verify;
mod workspace_limit;
