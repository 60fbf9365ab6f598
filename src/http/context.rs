//! The outermost middleware: it makes the per-request context (request id, response format
//! preference, public URL) and runs the rest of the request inside its [`super::scope`], so that
//! an error rendered anywhere below (a handler, an extractor rejection, the 404 fallback) carries
//! the same request id as the `X-Request-Id` header, without threading it through every
//! signature. It also bounds every request by the server's request timeout (503 past it, or 408
//! when the client had not finished sending its body), and writes the access log: one line per
//! request (target [`ACCESS_TARGET`]) with its id, method, route, status, latency and, once
//! authenticated, workspace; and a warning (target [`SLOW_TARGET`]) for a request slower than the
//! configured threshold. Neither ever holds a header, a key or a body: the route is the matched
//! pattern, not the path the client sent.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::CatchUnwind;
use futures_util::FutureExt;
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tokio::time::Sleep;
use tower_service::Service;

use super::error::{ApiError, ErrorCode, FieldError};
use super::scope::{scoped, Progress, RequestContext};
use super::AppState;
use crate::ids;

/// The tracing target of the access log's lines (`--log 'info,keyward::access=off'` silences it).
pub const ACCESS_TARGET: &str = "keyward::access";
/// The tracing target of slow-request warnings.
pub const SLOW_TARGET: &str = "keyward::slow_request";

/// The response header that carries the request id.
static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The workspace rate limit's response headers.
static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Routes whose every error response Unkey's spec declares as `application/problem+json`.
const PROBLEM_JSON_ROUTES: &[&str] = &["/v2/identities.deleteIdentity"];

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

/// The outermost middleware as a tower layer, applied to every route (and the fallback) by
/// [`super::app`]: it assigns the request id, scopes the context, catches a handler's panic
/// (a 500 envelope), turns the router's bare 404/405 answers into the error envelope and sets
/// `X-Request-Id` on every response.
///
/// Written as a service rather than with `axum::middleware::from_fn` because it runs on every
/// request: the route is called at once, so nothing is cloned or boxed per request but the one
/// future this returns.
#[derive(Clone)]
pub struct RequestContextLayer(AppState);

impl RequestContextLayer {
    pub fn new(state: AppState) -> Self {
        RequestContextLayer(state)
    }
}

impl<S> tower_layer::Layer<S> for RequestContextLayer {
    type Service = RequestContextService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestContextService {
            inner,
            state: self.0.clone(),
        }
    }
}

/// The service of [`RequestContextLayer`].
#[derive(Clone)]
pub struct RequestContextService<S> {
    inner: S,
    state: AppState,
}

impl<S> Service<Request> for RequestContextService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ContextFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let context = RequestContext {
            request_id: ids::new_request_id(),
            wants_problem_json: accepts_problem_json(request.headers().get(header::ACCEPT)),
            problem_json_route: PROBLEM_JSON_ROUTES.contains(&request.uri().path()),
            public_url: self.state.public_url.clone(),
            progress: Progress::default(),
        };
        let method = request.method().clone();
        let route = request.extensions().get::<MatchedPath>().cloned();
        // The route only builds its future here; the handler runs when it is polled, inside
        // the context's scope.
        let inner = AssertUnwindSafe(self.inner.call(request)).catch_unwind();
        ContextFuture {
            scoped: scoped(
                context,
                Bounded {
                    inner,
                    timer: None,
                    deadline: started + self.state.request_timeout,
                    timeout: self.state.request_timeout,
                },
            ),
            method,
            route,
            started,
            slow_request_threshold: self.state.slow_request_threshold,
        }
    }
}

pin_project! {
    /// What [`RequestContextService`] answers with: the route's future in the request's scope,
    /// bounded by the request timeout, then [`finish`]ed. A struct rather than an `async` block,
    /// so that it is a few hundred bytes moved once rather than a state machine of kilobytes,
    /// and the timer is armed only when the route has to wait.
    pub struct ContextFuture<F> {
        #[pin]
        scoped: TaskLocalFuture<RequestContext, Bounded<F>>,
        method: Method,
        route: Option<MatchedPath>,
        started: Instant,
        slow_request_threshold: Duration,
    }
}

impl<F> Future for ContextFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let response = ready!(this.scoped.as_mut().poll(cx));
        // The scope gives its context back once the route is done: the request id and what
        // the route told the middleware, for the header and the access log.
        let Some(context) = this.scoped.take_value() else {
            return Poll::Ready(Ok(response));
        };
        Poll::Ready(Ok(finish(
            context.request_id.as_str(),
            this.method,
            this.route.as_ref(),
            &context.progress,
            response,
            *this.started,
            *this.slow_request_threshold,
        )))
    }
}

pin_project! {
    /// Runs the route's future within the request timeout and turns what it gives into a
    /// response: a panic becomes a 500 envelope, the router's bare 404/405 the error envelope.
    /// Polled inside the request's scope, so every error it renders carries the request id.
    pub struct Bounded<F> {
        #[pin]
        inner: CatchUnwind<AssertUnwindSafe<F>>,
        // Armed by the first poll that leaves the route waiting: most requests are answered
        // in their first poll and never touch the timer wheel.
        timer: Option<Pin<Box<Sleep>>>,
        deadline: Instant,
        timeout: Duration,
    }
}

impl<F> Future for Bounded<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let this = self.project();
        if let Poll::Ready(outcome) = this.inner.poll(cx) {
            return Poll::Ready(match outcome {
                Ok(Ok(response)) => envelope_bare_errors(response),
                Ok(Err(never)) => match never {},
                Err(panic) => super::routes::panic_response(panic),
            });
        }
        // A dependency that hangs (a database behind a dead network path) must not hold the
        // caller: past the bound the request is dropped, which rolls back any transaction it
        // had open, and answered 503 (408 when the client had not sent its whole body).
        let deadline = *this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(timed_out(*this.timeout))
    }
}

/// The answer to a request that outlived the request timeout: 408 when the client had not yet
/// sent its whole body, as Unkey answers any timeout, else 503.
fn timed_out(timeout: Duration) -> Response {
    if super::scope::current_reading_body() {
        tracing::warn!(
            request_id = %super::scope::current_request_id(),
            timeout_ms = timeout.as_millis() as u64,
            "request body not received within the request timeout"
        );
        let mut error = ApiError::new(
            ErrorCode::RequestTimeout,
            format!(
                "The request body did not arrive within the request timeout of {} ms.",
                timeout.as_millis()
            ),
        );
        error.errors.push(FieldError {
            location: "body".into(),
            message: "the body was still arriving when the request timed out".into(),
            fix: Some(
                "Send the whole body promptly, with a Content-Length that matches it.".into(),
            ),
        });
        return error.into_response();
    }
    tracing::error!(
        request_id = %super::scope::current_request_id(),
        timeout_ms = timeout.as_millis() as u64,
        "request timed out"
    );
    ApiError::new(
        ErrorCode::ServiceUnavailable,
        "The request did not complete in time: a storage backend is not answering. \
         Please try again.",
    )
    .into_response()
}

/// The response's last touches (`X-Request-Id`, the workspace limit's headers) and its access
/// log line.
fn finish(
    request_id: &str,
    method: &Method,
    route: Option<&MatchedPath>,
    progress: &Progress,
    mut response: Response,
    started: Instant,
    slow_request_threshold: Duration,
) -> Response {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(&REQUEST_ID, value);
    }
    if let Some(admission) = progress.workspace_limit.get() {
        add_rate_limit_headers(&mut response, admission);
    }
    log_access(
        request_id,
        method,
        route,
        progress.caller.get(),
        &response,
        started,
        slow_request_threshold,
    );
    response
}

/// `RateLimit-Limit`, `-Remaining` and `-Reset` (seconds) of the workspace limit, and
/// `Retry-After` when it refused the request.
fn add_rate_limit_headers(
    response: &mut Response,
    admission: &crate::domain::ratelimit::workspace::Admission,
) {
    if !admission.headers {
        return;
    }
    let headers = response.headers_mut();
    headers.insert(&RATELIMIT_LIMIT, HeaderValue::from(admission.limit));
    headers.insert(&RATELIMIT_REMAINING, HeaderValue::from(admission.remaining));
    headers.insert(&RATELIMIT_RESET, HeaderValue::from(admission.reset_secs));
    if !admission.passed {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(admission.reset_secs));
    }
}

/// The access-log line of one request, and the slow-request warning when it took too long.
fn log_access(
    request_id: &str,
    method: &Method,
    route: Option<&MatchedPath>,
    caller: Option<&Arc<crate::domain::auth::Principal>>,
    response: &Response,
    started: Instant,
    slow_request_threshold: Duration,
) {
    let elapsed = started.elapsed();
    // Milliseconds with microsecond precision.
    let latency_ms = elapsed.as_micros() as f64 / 1000.0;
    // Unmatched paths are whatever a client typed: not worth a log line's trust.
    let route = route.map_or("(no route)", MatchedPath::as_str);
    let workspace_id = caller.map(|p| p.workspace_id.as_str());
    let status = response.status().as_u16();
    crate::telemetry::record_request(route, status, elapsed.as_secs_f64());
    tracing::info!(
        target: ACCESS_TARGET,
        request_id,
        method = method.as_str(),
        route,
        status,
        latency_ms,
        workspace_id,
        "request"
    );
    if elapsed > slow_request_threshold {
        tracing::warn!(
            target: SLOW_TARGET,
            request_id,
            method = method.as_str(),
            route,
            status,
            latency_ms,
            workspace_id,
            threshold_ms = slow_request_threshold.as_millis() as u64,
            "slow request"
        );
    }
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
