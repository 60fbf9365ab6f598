//! Health checks for load balancers, both unauthenticated: `GET /v2/liveness` (the process serves
//! HTTP) and keyward's own `GET /ready` (the node can serve: its database answers; the state of
//! Redis in cluster mode is reported alongside); and `GET /metrics`, for Prometheus.

use axum::extract::State;
use axum::routing::{get, MethodRouter};
use serde::Serialize;

use super::{Method, Operation};
use crate::domain::health::DependencyState;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::schema::{object, optional, required, string};
use crate::http::{ApiResponse, AppState};

#[derive(Serialize)]
struct Liveness {
    message: &'static str,
}

async fn liveness() -> ApiResponse<Liveness> {
    ApiResponse::data(Liveness { message: "OK" })
}

/// `data` of a ready node: `"up"` or `"down"` for each dependency (`redis` only in cluster mode).
#[derive(Serialize)]
struct Ready {
    status: &'static str,
    database: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<&'static str>,
}

fn word(state: &DependencyState) -> &'static str {
    match state {
        DependencyState::Up => "up",
        DependencyState::Down(_) => "down",
    }
}

async fn ready(State(state): State<AppState>) -> Result<ApiResponse<Ready>, ApiError> {
    let report = state.health.readiness().await;
    if let DependencyState::Down(why) = &report.database {
        tracing::warn!(reason = %why, "not ready: the database does not answer");
        return Err(ApiError::new(
            ErrorCode::ServiceUnavailable,
            "This node is not ready: its database does not answer.",
        ));
    }
    let redis = report
        .others
        .iter()
        .find(|(name, _)| *name == "redis")
        .map(|(_, s)| word(s));
    Ok(ApiResponse::data(Ready {
        status: "ready",
        database: word(&report.database),
        redis,
    }))
}

/// `GET /metrics`: the process's metrics in Prometheus's text format (see `crate::telemetry`).
pub async fn metrics(State(state): State<AppState>) -> axum::response::Response {
    use crate::telemetry::{DB_CONNECTIONS, EVENTS_DROPPED, EVENTS_QUEUED, KEY_CACHE_ENTRIES};
    use axum::response::IntoResponse;
    // What is cheaper to read at a scrape than to count on every request.
    metrics::gauge!(KEY_CACHE_ENTRIES).set(state.keys.cache.len() as f64);
    metrics::counter!(EVENTS_DROPPED).absolute(state.keys.events.dropped());
    metrics::gauge!(EVENTS_QUEUED).set(state.keys.events.queued() as f64);
    for usage in state.health.pool_usage() {
        let busy = usage.open.saturating_sub(usage.idle);
        metrics::gauge!(DB_CONNECTIONS, "pool" => usage.pool, "state" => "busy")
            .set(f64::from(busy));
        metrics::gauge!(DB_CONNECTIONS, "pool" => usage.pool, "state" => "idle")
            .set(f64::from(usage.idle));
    }
    let body = state
        .metrics
        .as_ref()
        .map(|handle| handle.render())
        .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

pub fn routes() -> Vec<(Operation, MethodRouter<AppState>)> {
    vec![
        (
            Operation {
                path: "/v2/liveness",
                method: Method::Get,
                operation_id: "liveness",
                tag: "liveness",
                summary: "Health check",
                permissions: "None: this route needs no authentication.",
                request: None,
                response: object(vec![required("message", string())]),
                paginated: false,
                errors: &[500],
            },
            get(liveness),
        ),
        (
            Operation {
                path: "/ready",
                method: Method::Get,
                operation_id: "ready",
                tag: "liveness",
                summary:
                    "Readiness (keyward extension): 200 while the node's database answers, 503 \
                          when it does not; in cluster mode, Redis's state is reported too",
                permissions: "None: this route needs no authentication.",
                request: None,
                response: object(vec![
                    required("status", string()),
                    required("database", string().one_of(&["up", "down"])),
                    optional("redis", string().one_of(&["up", "down"])),
                ]),
                paginated: false,
                errors: &[500, 503],
            },
            get(ready),
        ),
    ]
}
