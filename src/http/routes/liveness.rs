//! `GET /v2/liveness`: unauthenticated health check for load balancers.

use axum::routing::{get, MethodRouter};
use serde::Serialize;

use super::{Method, Operation};
use crate::http::schema::{object, required, string};
use crate::http::{ApiResponse, AppState};

#[derive(Serialize)]
struct Liveness {
    message: &'static str,
}

async fn liveness() -> ApiResponse<Liveness> {
    ApiResponse::data(Liveness { message: "OK" })
}

pub fn routes() -> Vec<(Operation, MethodRouter<AppState>)> {
    vec![(
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
    )]
}
