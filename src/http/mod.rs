//! The HTTP layer: parse, authorize, shape the response. No SQL here and no business rules: those
//! live in [`crate::domain`].
//!
//! [`app`] builds the router from the operation table of [`routes`], the same table the OpenAPI
//! document is generated from.

use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;

use crate::clock::SharedClock;
use crate::domain::Services;

pub mod conn;
pub mod context;
pub mod dashboard;
pub mod error;
pub mod error_docs;
pub mod extract;
pub mod routes;
pub mod schema;
pub mod scope;
pub mod shapes;

/// The default cap on request bodies, as Unkey's: 10 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 10 * 1024 * 1024;

/// What every handler can reach: the domain services and the server's settings, nothing below
/// them. Cloned per request, so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<StateInner>);

impl std::ops::Deref for AppState {
    type Target = StateInner;

    fn deref(&self) -> &StateInner {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct StateInner {
    pub services: Services,
    pub clock: SharedClock,
    /// Base of error `type` URLs, without a trailing slash.
    pub public_url: Arc<str>,
    pub body_limit: usize,
    /// The longest a request may take before it is answered 503 (see [`context`]).
    pub request_timeout: std::time::Duration,
    /// A request slower than this is logged as a warning (see [`context`]).
    pub slow_request_threshold: std::time::Duration,
    /// What `GET /metrics` renders (`None`: another recorder owns the process's metrics).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Whether the embedded dashboard is served at `/`.
    pub dashboard: bool,
}

impl std::ops::Deref for StateInner {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

impl AppState {
    pub fn new(
        services: Services,
        clock: SharedClock,
        public_url: &str,
        request_timeout: std::time::Duration,
        slow_request_threshold: std::time::Duration,
        dashboard: bool,
    ) -> Self {
        AppState(Arc::new(StateInner {
            services,
            clock,
            public_url: Arc::from(public_url.trim_end_matches('/')),
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout,
            slow_request_threshold,
            metrics: crate::telemetry::recorder(),
            dashboard,
        }))
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// `meta` of every response.
#[derive(Debug, Serialize)]
pub struct Meta {
    #[serde(rename = "requestId")]
    pub request_id: crate::ids::RequestId,
}

impl Meta {
    pub fn current() -> Self {
        Meta {
            request_id: scope::current_request_id(),
        }
    }
}

/// `data` of routes that answer with an empty object.
#[derive(Debug, Serialize)]
pub struct Empty {}

/// Splits `limit + 1` fetched rows into a page and the first id of the next one.
pub fn split_page<T>(
    mut rows: Vec<T>,
    limit: usize,
    id: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    if rows.len() > limit {
        let next = rows.get(limit).map(&id);
        rows.truncate(limit);
        (rows, next)
    } else {
        (rows, None)
    }
}

/// `pagination` of list responses.
#[derive(Debug, Serialize)]
pub struct Pagination {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(rename = "hasMore")]
    pub has_more: bool,
}

/// A success response: `{meta, data}`, plus `pagination` for lists.
#[derive(Debug, Serialize)]
pub struct ApiResponse<T: Serialize> {
    pub meta: Meta,
    pub data: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
}

impl<T: Serialize> ApiResponse<T> {
    pub fn data(data: T) -> Self {
        ApiResponse {
            meta: Meta::current(),
            data,
            pagination: None,
        }
    }

    /// A page of a log that grows: `cursor` continues after the last item even when nothing
    /// more is there yet (`hasMore` false), so a poller can resume from it.
    pub fn log_page(data: T, cursor: Option<String>, has_more: bool) -> Self {
        ApiResponse {
            meta: Meta::current(),
            data,
            pagination: Some(Pagination { has_more, cursor }),
        }
    }

    pub fn page(data: T, next_cursor: Option<String>) -> Self {
        ApiResponse {
            meta: Meta::current(),
            data,
            pagination: Some(Pagination {
                has_more: next_cursor.is_some(),
                cursor: next_cursor,
            }),
        }
    }
}

impl<T: Serialize> IntoResponse for ApiResponse<T> {
    fn into_response(self) -> Response {
        // Most bodies are a few hundred bytes: start there rather than growing from 128.
        let mut bytes = Vec::with_capacity(512);
        match serde_json::to_writer(&mut bytes, &self) {
            Ok(()) => {
                // Built directly: `Vec<u8>`'s own response would first label it
                // `application/octet-stream`, a header insert only to be replaced.
                let mut response = Response::new(axum::body::Body::from(bytes));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            Err(err) => {
                error::ApiError::internal(format!("serializing response: {err}")).into_response()
            }
        }
    }
}

/// The whole application: every route, the fallback, and the middleware, with `GET /metrics`.
pub fn app(state: AppState) -> Router {
    app_with(state, true)
}

/// [`app`], with `GET /metrics` only when `metrics` (else it is served on its own listener,
/// [`metrics_app`]).
pub fn app_with(state: AppState, metrics: bool) -> Router {
    let mut router = api_routes();
    router = router.merge(routes::docs::router());
    if metrics {
        router = router.route("/metrics", axum::routing::get(routes::liveness::metrics));
    }
    if state.dashboard {
        router = router.merge(dashboard::router(api_app(state.clone())));
    }
    with_layers(router, state)
}

/// The `/v2` routes of the operation table.
fn api_routes() -> Router<AppState> {
    let mut router = Router::new();
    for (operation, handler) in routes::all() {
        router = router.route(operation.path, handler);
    }
    router
}

/// The `/v2` routes alone, with the same middleware: what the dashboard calls in-process.
fn api_app(state: AppState) -> Router {
    with_layers(api_routes(), state)
}

fn with_layers(router: Router<AppState>, state: AppState) -> Router {
    router
        .layer(context::RequestContextLayer::new(state.clone()))
        .with_state(state)
}

/// `GET /metrics` alone, for `--metrics-listen`.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(routes::liveness::metrics))
        .with_state(state)
}
