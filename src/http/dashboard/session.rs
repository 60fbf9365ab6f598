//! Signing in and out, the session extractor and the anti-forgery check of every form.
//!
//! The session cookie carries only the random session id ([`crate::domain::sessions`]). Forms
//! carry the session's anti-forgery token in a hidden `_csrf` field; the sign-in form, which has
//! no session yet, uses a random token that is both in a short-lived cookie and in the form.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use maud::html;
use rand::RngCore;
use serde::Deserialize;

use super::layout::{self, Notice};
use super::{html, St};
use crate::domain::auth::{AuthFailure, Principal};
use crate::domain::rbac::requirement::Requirement;
use crate::domain::sessions::SignInError;
use crate::http::AppState;

/// The session cookie.
const SESSION_COOKIE: &str = "kw_session";
/// The sign-in form's anti-forgery cookie.
const SIGN_IN_COOKIE: &str = "kw_sign_in";
/// Largest form body a page accepts.
const FORM_LIMIT: usize = 256 * 1024;

/// Where a request came from, passed on to the API calls a page makes (for audit records).
#[derive(Clone, Default)]
pub struct Client {
    pub peer: Option<SocketAddr>,
    pub forwarded_for: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
}

impl Client {
    fn of(parts: &Parts) -> Self {
        Client {
            peer: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| *addr),
            forwarded_for: parts.headers.get("x-forwarded-for").cloned(),
            user_agent: parts.headers.get(header::USER_AGENT).cloned(),
        }
    }

    /// The client's address as the API sees it: the first `X-Forwarded-For` entry, else the peer.
    pub fn ip(&self) -> Option<IpAddr> {
        self.forwarded_for
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
            .or(self.peer.map(|addr| addr.ip()))
    }
}

/// A signed-in browser: the root key it acts as and its anti-forgery token.
pub struct Session {
    pub principal: Arc<Principal>,
    pub csrf: String,
    pub client: Client,
}

impl Session {
    pub fn may(&self, requirement: &Requirement) -> bool {
        requirement.is_satisfied_by(&self.principal.permissions)
    }

    /// The signed-in root key as the audit actor of this request, for the few changes a page
    /// makes through a domain service rather than an API call.
    pub fn actor(&self) -> crate::model::audit::Actor {
        crate::http::extract::root_key_actor(
            &self.principal,
            self.client.ip().map(|ip| ip.to_string()),
            self.client
                .user_agent
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        )
    }

    /// Whether the key holds `<resource>.*.<action>` or `<resource>.<id>.<action>`.
    pub fn may_on(&self, resource: &str, id: &str, action: &str) -> bool {
        let held = &self.principal.permissions;
        held.contains(&format!("{resource}.*.{action}"))
            || held.contains(&format!("{resource}.{id}.{action}"))
    }

    /// Whether the key holds `action` on any API (workspace-wide or on one).
    pub fn may_any(&self, resource: &str, action: &str) -> bool {
        let suffix = format!(".{action}");
        let prefix = format!("{resource}.");
        self.principal
            .permissions
            .iter()
            .any(|p| p.starts_with(&prefix) && p.ends_with(&suffix))
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Whether the dashboard is reached over https (directly, or through a proxy that says so).
fn is_https(state: &AppState, headers: &HeaderMap) -> bool {
    state.public_url.starts_with("https://")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    value: &str,
    max_age: Option<u64>,
) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if is_https(state, headers) {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Only a path of this site may be a destination after sign-in (no `//host`, no scheme).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path.to_string()
        }
        _ => "/apis".to_string(),
    }
}

fn to_sign_in(parts: &Parts) -> Response {
    let here = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    let next: String = url_escape(&here);
    Redirect::to(&format!("/sign-in?next={next}")).into_response()
}

/// Percent-encodes a query value.
pub fn url_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_sign_in(parts));
        };
        match state.sessions.resolve(id).await {
            Ok(Some(active)) => {
                crate::http::scope::set_caller(&active.principal);
                Ok(Session {
                    principal: active.principal,
                    csrf: active.csrf,
                    client: Client::of(parts),
                })
            }
            Ok(None) => Err(to_sign_in(parts)),
            Err(err) => {
                tracing::error!(error = %err, "dashboard: could not read the session");
                Err(layout::failure_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The database did not answer. Please try again.",
                ))
            }
        }
    }
}

/// The fields of a posted form, in order.
pub struct FormData(Vec<(String, String)>);

impl FormData {
    /// A form filled in from known values (to edit what exists).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        FormData(pairs)
    }

    /// The first value of a field, as sent.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a field (ticked checkboxes of one name), trimmed, without blanks.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The first value of a field, trimmed; `None` when missing or blank.
    pub fn text(&self, name: &str) -> Option<String> {
        self.raw(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    /// Whether a checkbox was ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.raw(name).is_some()
    }
}

async fn read_form(body: axum::body::Body) -> Result<FormData, Response> {
    let bytes = axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| {
        layout::failure_page(StatusCode::PAYLOAD_TOO_LARGE, "The form was too large.")
    })?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).map_err(|_| {
        layout::failure_page(StatusCode::BAD_REQUEST, "The form could not be read.")
    })?;
    Ok(FormData(pairs))
}

/// Compares two tokens in time independent of where they differ.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A form posted by a signed-in browser, its anti-forgery token checked.
pub struct Posted {
    pub session: Session,
    pub form: FormData,
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let form = read_form(body).await?;
        let token_ok = form
            .raw("_csrf")
            .is_some_and(|sent| same_token(sent, &session.csrf));
        if !token_ok {
            return Err(layout::failure_page(
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from this dashboard. Go back, reload the page and try again.",
            ));
        }
        Ok(Posted { session, form })
    }
}

/// The hidden anti-forgery field of a form.
pub fn csrf_field(session: &Session) -> maud::Markup {
    html! { input type="hidden" name="_csrf" value=(session.csrf); }
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn sign_in_form(token: &str, next: &str, problem: Option<&str>) -> maud::Markup {
    layout::bare_page(
        "Sign in",
        html! {
            main.sign-in {
                h1 { "keyward" }
                p.lede { "Sign in with a root key. The dashboard can do exactly what that key may do." }
                @if let Some(problem) = problem {
                    (layout::notice(&Notice::Error(problem.to_string())))
                }
                form method="post" action="/sign-in" data-busy="Signing in…" {
                    input type="hidden" name="_csrf" value=(token);
                    input type="hidden" name="next" value=(next);
                    label for="root-key" { "Root key" }
                    input #root-key type="password" name="rootKey" required autocomplete="off"
                        autofocus spellcheck="false" placeholder="unkey_…";
                    p.hint { "Create root keys with " code { "keyward root-key create" } "." }
                    button.primary type="submit" { "Sign in" }
                }
            }
        },
    )
}

fn sign_in_response(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    next: &str,
    problem: Option<&str>,
) -> Response {
    let mut token = [0u8; 18];
    rand::rngs::OsRng.fill_bytes(&mut token);
    let token = URL_SAFE_NO_PAD.encode(token);
    let mut response = html(sign_in_form(&token, next, problem));
    *response.status_mut() = status;
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, headers, SIGN_IN_COOKIE, &token, Some(3600)),
    );
    response
}

/// `GET /sign-in`.
pub async fn sign_in_page(
    State(state): St,
    Query(query): Query<NextQuery>,
    headers: HeaderMap,
) -> Response {
    let next = safe_next(query.next.as_deref());
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        if let Ok(Some(_)) = state.sessions.resolve(id).await {
            return Redirect::to(&next).into_response();
        }
    }
    sign_in_response(&state, &headers, StatusCode::OK, &next, None)
}

/// `POST /sign-in`.
pub async fn sign_in(State(state): St, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let form = match read_form(body).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let next = safe_next(form.raw("next"));
    let token_ok = match (cookie(&parts.headers, SIGN_IN_COOKIE), form.raw("_csrf")) {
        (Some(expected), Some(sent)) => same_token(expected, sent),
        _ => false,
    };
    if !token_ok {
        return sign_in_response(
            &state,
            &parts.headers,
            StatusCode::FORBIDDEN,
            &next,
            Some("The sign-in form expired. Please try again."),
        );
    }
    let Some(root_key) = form.text("rootKey") else {
        return sign_in_response(
            &state,
            &parts.headers,
            StatusCode::BAD_REQUEST,
            &next,
            Some("Enter a root key."),
        );
    };
    let client = Client::of(&parts);
    let refused = |status, message: &str| {
        sign_in_response(&state, &parts.headers, status, &next, Some(message))
    };
    match state.sessions.sign_in(&root_key, client.ip()).await {
        Ok(signed_in) => {
            tracing::info!(
                root_key_id = %signed_in.principal.root_key_id,
                workspace_id = %signed_in.principal.workspace_id,
                "dashboard sign-in"
            );
            let mut response = Redirect::to(&next).into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    &state,
                    &parts.headers,
                    SESSION_COOKIE,
                    &signed_in.session_id,
                    None,
                ),
            );
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(&state, &parts.headers, SIGN_IN_COOKIE, "", Some(0)),
            );
            response
        }
        Err(SignInError::Throttled(seconds)) => refused(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many failed sign-ins from your address. Try again in {} minute(s).",
                seconds.div_ceil(60)
            ),
        ),
        Err(SignInError::Refused(failure)) => {
            let message = match failure {
                AuthFailure::Disabled => "This root key has been disabled.",
                AuthFailure::Expired(_) => "This root key has expired.",
                AuthFailure::WorkspaceDisabled => "This root key's workspace is disabled.",
                _ => "That is not a valid root key.",
            };
            refused(StatusCode::UNAUTHORIZED, message)
        }
        Err(SignInError::Store(err)) => {
            tracing::error!(error = %err, "dashboard: sign-in could not reach the database");
            refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database did not answer. Please try again.",
            )
        }
    }
}

/// `POST /sign-out`.
pub async fn sign_out(State(state): St, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    // An expired session has nothing left to end.
    let mut response = Redirect::to("/sign-in").into_response();
    if let Ok(session) = Session::from_request_parts(&mut parts, &state).await {
        let form = match read_form(body).await {
            Ok(form) => form,
            Err(response) => return response,
        };
        if !form
            .raw("_csrf")
            .is_some_and(|t| same_token(t, &session.csrf))
        {
            return layout::failure_page(
                StatusCode::FORBIDDEN,
                "This form has expired. Reload the page and try again.",
            );
        }
        if let Some(id) = cookie(&parts.headers, SESSION_COOKIE) {
            if let Err(err) = state.sessions.sign_out(id).await {
                tracing::error!(error = %err, "dashboard: could not end a session");
            }
        }
    }
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, &parts.headers, SESSION_COOKIE, "", Some(0)),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/keys/key_1")), "/keys/key_1");
        assert_eq!(safe_next(Some("//evil.example/")), "/apis");
        assert_eq!(safe_next(Some("https://evil.example/")), "/apis");
        assert_eq!(safe_next(Some("/\\evil.example")), "/apis");
        assert_eq!(safe_next(None), "/apis");
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; kw_session_x=2; kw_session=abc"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "abcd"));
    }
}
