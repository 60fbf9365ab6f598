//! The task-local scope of the request being served, and what code below the middleware reads of
//! it: its id, whether errors should be problem+json, and the public URL; and what code below
//! tells the middleware ([`Progress`]): who the caller turned out to be, for the access log, and
//! whether the body is still being read, for the request timeout's answer. It imports nothing of
//! the HTTP layer, so errors and the middleware can both depend on it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::domain::auth::Principal;
use crate::domain::ratelimit::workspace::Admission;
use crate::ids::RequestId;

/// What the middleware knows about the request being served.
pub struct RequestContext {
    pub request_id: RequestId,
    pub wants_problem_json: bool,
    /// The route's errors are declared as `application/problem+json` in Unkey's spec, so the
    /// official SDKs only parse them with that content type.
    pub problem_json_route: bool,
    pub public_url: Arc<str>,
    /// What the code below has told the middleware so far.
    pub progress: Progress,
}

/// What the middleware learns of a request from the code that serves it.
#[derive(Default)]
pub struct Progress {
    /// The authenticated caller, once the extractor knows it (the access log's workspace).
    pub caller: OnceLock<Arc<Principal>>,
    /// The body is being read: a timeout now is the client's slowness, not the server's.
    pub reading_body: AtomicBool,
    /// The workspace rate limit's decision, for the `RateLimit-*` headers of the response.
    pub workspace_limit: OnceLock<Admission>,
}

impl Progress {
    pub fn reading_body(&self) -> bool {
        self.reading_body.load(Ordering::Relaxed)
    }
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// The id of the request being served (`req_…`), or `req_unknown` outside a request.
pub fn current_request_id() -> RequestId {
    CONTEXT
        .try_with(|c| c.request_id)
        .unwrap_or(RequestId::UNKNOWN)
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
    let _ = CONTEXT.try_with(|c| c.progress.caller.set(principal.clone()));
}

/// Records the workspace rate limit's decision for the request being served.
pub fn set_workspace_limit(admission: Admission) {
    let _ = CONTEXT.try_with(|c| c.progress.workspace_limit.set(admission));
}

/// Marks the start (`true`) and the end (`false`) of reading the request's body.
pub fn set_reading_body(reading: bool) {
    let _ = CONTEXT.try_with(|c| c.progress.reading_body.store(reading, Ordering::Relaxed));
}

/// Whether the request being served is still reading its body (false outside a request).
pub fn current_reading_body() -> bool {
    CONTEXT
        .try_with(|c| c.progress.reading_body())
        .unwrap_or(false)
}

/// `future` inside `context`'s scope: each poll of it sees the context. The middleware's own
/// future holds this and takes the context back when it is done.
pub fn scoped<F: std::future::Future>(
    context: RequestContext,
    future: F,
) -> tokio::task::futures::TaskLocalFuture<RequestContext, F> {
    CONTEXT.scope(context, future)
}
