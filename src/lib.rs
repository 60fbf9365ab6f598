//! keyward: self-hosted API-key management and rate limiting that speaks Unkey's `/v2` API.
//!
//! Layers, one direction: [`http`] (parse, authorize, respond) -> [`domain`] (the rules) ->
//! [`store`] (SQL). [`cli`] is the command line, [`server`] runs the HTTP service.

pub mod cli;
pub mod clock;
pub mod domain;
pub mod http;
pub mod ids;
pub mod model;
pub mod server;
pub mod store;
