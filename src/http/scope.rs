//! The task-local scope of the request being served, and what code below the middleware reads of
//! it: its id, whether errors should be problem+json, and the public URL; and the one thing code
//! below tells the middleware: who the caller turned out to be, for the access log. It imports
//! nothing of the HTTP layer, so errors and the middleware can both depend on it.

use std::sync::{Arc, OnceLock};

use crate::domain::auth::Principal;

/// What the middleware knows about the request being served.
#[derive(Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub wants_problem_json: bool,
    /// The route's errors are declared as `application/problem+json` in Unkey's spec, so the
    /// official SDKs only parse them with that content type.
    pub problem_json_route: bool,
    pub public_url: Arc<str>,
    /// The authenticated caller, once the extractor knows it (the access log's workspace).
    pub caller: Arc<OnceLock<Arc<Principal>>>,
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

/// Whether the route being served declares its errors as problem+json.
pub fn current_route_uses_problem_json() -> bool {
    CONTEXT.try_with(|c| c.problem_json_route).unwrap_or(false)
}

/// Records the authenticated caller of the request being served (no-op outside a request).
pub fn set_caller(principal: &Arc<Principal>) {
    let _ = CONTEXT.try_with(|c| c.caller.set(principal.clone()));
}

/// Runs `future` inside a context, for code that renders errors outside the middleware (tests).
pub async fn with_context<F: std::future::Future>(context: RequestContext, future: F) -> F::Output {
    CONTEXT.scope(context, future).await
}
