//! keyward: self-hosted API-key management and rate limiting that speaks Unkey's `/v2` API.
//!
//! Layers, one direction: [`http`] (parse, authorize, respond) -> [`domain`] (the rules) ->
//! [`store`] (SQL), all speaking the records of [`model`]. [`cluster`] implements domain seams
//! over Redis for several nodes. [`cli`] is the command line, [`server`] wires the services and
//! runs the HTTP service; [`telemetry`] holds the metrics.

pub mod cli;
pub mod clock;
pub mod cluster;
pub mod domain;
pub mod http;
pub mod ids;
pub mod model;
pub mod server;
pub mod store;
pub mod telemetry;
