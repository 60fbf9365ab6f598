//! The operation table: every route keyward serves, with what the OpenAPI document says of it.
//!
//! Each resource module returns its `(Operation, MethodRouter)` pairs; [`crate::http::app`] mounts
//! them and [`openapi::document`] describes them, so a route cannot exist without its description.

use std::any::Any;

use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use super::error::ApiError;
use super::schema::Schema;
use super::AppState;

pub mod analytics;
pub mod apis;
pub mod audit;
pub mod docs;
pub mod identities;
pub mod keys;
pub mod liveness;
pub mod openapi;
pub mod permissions;
pub mod ratelimit;

/// How a route is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// One operation of the API, as the OpenAPI document describes it.
pub struct Operation {
    pub path: &'static str,
    pub method: Method,
    pub operation_id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    /// Which root-key permissions the route needs, in words.
    pub permissions: &'static str,
    pub request: Option<&'static Schema>,
    /// The schema of `data` in a success response.
    pub response: Schema,
    pub paginated: bool,
    /// Error statuses the route can answer with.
    pub errors: &'static [u16],
}

impl Operation {
    pub fn authenticated(&self) -> bool {
        self.request.is_some()
    }
}

/// Routes whose success body is `{meta}` alone, without `data` (as in Unkey's spec).
pub const META_ONLY: &[&str] = &["/v2/identities.deleteIdentity"];

/// Error statuses every authenticated route can produce.
pub const AUTH_ERRORS: &[u16] = &[400, 401, 403, 413, 500];

/// Every operation and its handler.
pub fn all() -> Vec<(Operation, MethodRouter<AppState>)> {
    let mut routes = liveness::routes();
    routes.extend(apis::routes());
    routes.extend(keys::routes());
    routes.extend(permissions::routes());
    routes.extend(ratelimit::routes());
    routes.extend(identities::routes());
    routes.extend(audit::routes());
    routes.extend(analytics::routes());
    routes
}

/// The answer to a panic inside a handler: a 500 envelope, with the panic logged.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    ApiError::internal(format!("handler panicked: {message}")).into_response()
}
