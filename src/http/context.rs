//! The per-request context: request id, response format preference and public URL.
//!
//! The outermost middleware makes the context and runs the rest of the request inside a task-local
//! scope, so that an error rendered anywhere below (a handler, an extractor rejection, the 404
//! fallback) carries the same request id as the `X-Request-Id` header, without threading it through
//! every signature.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ErrorCode};
use super::AppState;
use crate::ids;

/// What the middleware knows about the request being served.
#[derive(Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub wants_problem_json: bool,
    /// The route's errors are declared as `application/problem+json` in Unkey's spec, so the
    /// official SDKs only parse them with that content type.
    pub problem_json_route: bool,
    pub public_url: Arc<str>,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// The id of the request being served (`req_…`), or `req_unknown` outside a request.
pub fn current_request_id() -> String {
    CONTEXT
        .try_with(|c| c.request_id.clone())
        .unwrap_or_else(|_| "req_unknown".to_string())
}

/// Whether error bodies should be labelled `application/problem+json`.
pub fn current_wants_problem_json() -> bool {
    CONTEXT.try_with(|c| c.wants_problem_json).unwrap_or(false)
}

/// The public base URL of this server, without a trailing slash.
pub fn public_url() -> Arc<str> {
    CONTEXT
        .try_with(|c| c.public_url.clone())
        .unwrap_or_else(|_| Arc::from("http://127.0.0.1:7070"))
}

/// Routes whose every error response Unkey's spec declares as `application/problem+json`.
const PROBLEM_JSON_ROUTES: &[&str] = &["/v2/identities.deleteIdentity"];

/// Whether the route being served declares its errors as problem+json.
pub fn current_route_uses_problem_json() -> bool {
    CONTEXT.try_with(|c| c.problem_json_route).unwrap_or(false)
}

/// Unkey labels error bodies as problem+json when the client accepts it explicitly or by wildcard.
fn accepts_problem_json(accept: Option<&HeaderValue>) -> bool {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    accept.split(',').any(|part| {
        let media = part.split(';').next().unwrap_or("").trim();
        matches!(media, "application/problem+json" | "application/*" | "*/*")
    })
}

/// Outermost middleware: assigns the request id, scopes the context, turns the router's bare
/// 404/405 answers into the error envelope and sets `X-Request-Id` on every response.
pub async fn request_context(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let context = RequestContext {
        request_id: ids::new_id(ids::Prefix::Request),
        wants_problem_json: accepts_problem_json(request.headers().get(header::ACCEPT)),
        problem_json_route: PROBLEM_JSON_ROUTES.contains(&request.uri().path()),
        public_url: state.public_url.clone(),
    };
    let request_id = context.request_id.clone();
    let response = CONTEXT
        .scope(context, async move {
            let response = next.run(request).await;
            envelope_bare_errors(response)
        })
        .await;
    let mut response = response;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The router answers unknown paths and wrong methods with an empty body; give them the envelope.
fn envelope_bare_errors(response: Response) -> Response {
    let has_body_type = response.headers().contains_key(header::CONTENT_TYPE);
    if has_body_type {
        return response;
    }
    match response.status() {
        StatusCode::NOT_FOUND => ApiError::new(
            ErrorCode::RouteNotFound,
            "No route matches this path. keyward's routes are POST /v2/<group>.<operation> and GET /v2/liveness.",
        )
        .into_response(),
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = response.headers().get(header::ALLOW).cloned();
            let mut out = ApiError::new(
                ErrorCode::MethodNotAllowed,
                "This route exists but does not accept this HTTP method. Every /v2 route except liveness is POST.",
            )
            .into_response();
            if let Some(allow) = allow {
                out.headers_mut().insert(header::ALLOW, allow);
            }
            out
        }
        _ => response,
    }
}

/// Runs `future` inside a context, for code that renders errors outside the middleware (tests).
pub async fn with_context<F: std::future::Future>(context: RequestContext, future: F) -> F::Output {
    CONTEXT.scope(context, future).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_json_is_chosen_for_explicit_or_wildcard_accept() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert!(accepts_problem_json(Some(&v("application/problem+json"))));
        assert!(accepts_problem_json(Some(&v("text/html, */*;q=0.8"))));
        assert!(accepts_problem_json(Some(&v("application/*"))));
        assert!(!accepts_problem_json(Some(&v("application/json"))));
        assert!(!accepts_problem_json(None));
    }
}
