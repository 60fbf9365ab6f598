//! Extractors: the validated JSON body and the authenticated caller.
//!
//! [`Authed`] fixes the order Unkey's clients rely on: the `Authorization` header's presence and
//! shape first, then the body (size, content type, JSON, schema), and only then the key lookup.
//! A malformed request is therefore rejected before it costs a query, and every rejection, axum's
//! own included, leaves through [`ApiError`] and its envelope.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;

use super::error::{ApiError, ErrorCode, FieldError};
use super::schema::Schema;
use super::AppState;
use crate::domain::auth::{AuthFailure, Principal};
use crate::domain::rbac::requirement::Requirement;
use crate::model::audit::Actor;

/// A request body type with the schema it must satisfy.
pub trait RequestBody: DeserializeOwned + Send {
    /// The schema, built once per process.
    fn schema() -> &'static Schema;
}

/// Why a root key is refused, prefixed the way Unkey prefixes it (except a disabled key's).
const INVALID_ROOT_KEY: &str = "The provided root key is invalid.";

/// The whole `detail` of a disabled root key's 403 (`key_disabled`, title `Forbidden`).
pub const KEY_DISABLED_DETAIL: &str = "The API key used for authentication has been disabled";

/// The root key from `Authorization: Bearer <key>`.
fn bearer_token(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(missing_authorization());
    };
    let malformed = || {
        ApiError::new(
            ErrorCode::AuthenticationMalformed,
            "You must provide a valid root key in the Authorization header in the format 'Bearer ROOT_KEY'. \
             Your authorization header is missing the 'Bearer ' prefix.",
        )
    };
    let value = value.to_str().map_err(|_| malformed())?.trim();
    if value.is_empty() {
        return Err(missing_authorization());
    }
    let token = value.strip_prefix("Bearer ").ok_or_else(malformed)?.trim();
    if token.is_empty() {
        return Err(malformed());
    }
    Ok(token.to_string())
}

fn missing_authorization() -> ApiError {
    let mut err = ApiError::new(
        ErrorCode::AuthenticationMissing,
        "Authorization header for 'bearer' scheme was not found. Send 'Authorization: Bearer <root key>'.",
    );
    err.errors = vec![FieldError {
        location: "security".into(),
        message: "Authorization header was not found".into(),
        fix: Some("Add an 'Authorization' header to this request".into()),
    }];
    err
}

/// Whether a `Content-Type`'s media type (parameters cut off) is JSON: `application/json` or a
/// `+json` type, in any case.
fn is_json_media_type(media: &str) -> bool {
    const SUFFIX: &str = "+json";
    media.eq_ignore_ascii_case("application/json")
        || media.len() >= SUFFIX.len()
            && media.is_char_boundary(media.len() - SUFFIX.len())
            && media[media.len() - SUFFIX.len()..].eq_ignore_ascii_case(SUFFIX)
}

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
enum BodyError {
    /// It went past the limit.
    TooLarge,
    /// The connection failed or the client broke the framing.
    Unreadable,
}

/// The whole body, at most `limit` bytes. A small request's body nearly always arrives as one
/// frame: that frame is returned as it is, without the buffer list of a general collect; only a
/// body in several frames is copied into one buffer.
async fn body_bytes(mut body: Body, limit: usize) -> Result<Bytes, BodyError> {
    use http_body_util::BodyExt as _;
    let mut first: Option<Bytes> = None;
    let mut joined: Option<Vec<u8>> = None;
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Unreadable)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers: not part of the body
        };
        len = len.saturating_add(data.len());
        if len > limit {
            return Err(BodyError::TooLarge);
        }
        match (&mut joined, first.take()) {
            (Some(buffer), _) => buffer.extend_from_slice(&data),
            (None, None) => first = Some(data),
            (None, Some(earlier)) => {
                let mut buffer = Vec::with_capacity(len);
                buffer.extend_from_slice(&earlier);
                buffer.extend_from_slice(&data);
                joined = Some(buffer);
            }
        }
    }
    Ok(match joined {
        Some(buffer) => Bytes::from(buffer),
        None => first.unwrap_or_default(),
    })
}

/// Reads, parses and validates a JSON body against `T`'s schema.
async fn read_body<T: RequestBody>(parts: &Parts, body: Body, limit: usize) -> Result<T, ApiError> {
    let route = parts.uri.path();
    if let Some(content_type) = parts.headers.get(header::CONTENT_TYPE) {
        let media = content_type
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim();
        if !is_json_media_type(media) {
            let media = media.to_ascii_lowercase();
            return Err(ApiError::invalid_input(
                format!("POST request body for '{route}' must be JSON, not '{media}'"),
                vec![FieldError {
                    location: "header.Content-Type".into(),
                    message: format!("content type '{media}' is not supported"),
                    fix: Some(
                        "Send the body as JSON with 'Content-Type: application/json'.".into(),
                    ),
                }],
            ));
        }
    }
    crate::http::scope::set_reading_body(true);
    let read = body_bytes(body, limit).await;
    crate::http::scope::set_reading_body(false);
    let bytes = read.map_err(|err| match err {
        BodyError::TooLarge => ApiError::new(
            ErrorCode::RequestBodyTooLarge,
            format!("The request body exceeds the maximum allowed size of {limit} bytes."),
        ),
        BodyError::Unreadable => ApiError::new(
            ErrorCode::RequestBodyUnreadable,
            "The request body could not be read.",
        ),
    })?;
    let mut value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|err| {
        ApiError::invalid_input(
            format!("POST request body for '{route}' is not valid JSON"),
            vec![FieldError {
                location: "body".into(),
                message: err.to_string(),
                fix: Some("Send a JSON object that matches the route's schema.".into()),
            }],
        )
    })?;
    let errors = T::schema().validate_request(&mut value);
    if !errors.is_empty() {
        return Err(ApiError::invalid_input(
            format!("POST request body for '{route}' failed to validate schema"),
            errors,
        ));
    }
    serde_json::from_value(value).map_err(|err| {
        ApiError::invalid_input(
            "The request body is invalid.",
            vec![FieldError {
                location: "body".into(),
                message: err.to_string(),
                fix: None,
            }],
        )
    })
}

/// The authenticated root key behind a request, and where the request came from.
pub struct Caller {
    pub principal: Arc<Principal>,
    /// The socket peer, and the headers that describe the client; turned into strings only when
    /// something needs them (audit records, IP whitelists), not on every request.
    peer: Option<SocketAddr>,
    forwarded_for: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
}

impl Caller {
    pub fn workspace_id(&self) -> &str {
        &self.principal.workspace_id
    }

    /// The client's address: the first `X-Forwarded-For` entry, else the socket peer.
    pub fn remote_ip(&self) -> Option<String> {
        let forwarded = self
            .forwarded_for
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        match forwarded {
            Some(ip) => Some(ip.to_string()),
            None => self.peer.map(|addr| addr.ip().to_string()),
        }
    }

    fn user_agent(&self) -> Option<String> {
        self.user_agent
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// 403 `insufficient_permissions` unless the caller satisfies `requirement`.
    pub fn require(&self, requirement: &Requirement) -> Result<(), ApiError> {
        requirement
            .check(&self.principal.permissions)
            .map_err(|missing| ApiError::new(ErrorCode::InsufficientPermissions, missing))
    }

    /// Whether the caller satisfies `requirement`, for routes that hide what they may not see.
    pub fn may(&self, requirement: &Requirement) -> bool {
        requirement.is_satisfied_by(&self.principal.permissions)
    }

    /// 403 unless the caller holds `<resource>.*.<action>` or `<resource>.<id>.<action>`: the
    /// shape of most per-resource requirements, checked without building a requirement tree.
    pub fn require_scoped(&self, resource: &str, id: &str, action: &str) -> Result<(), ApiError> {
        let held = &self.principal.permissions;
        // Built by hand rather than with `format!`: this runs on every rate-limit call.
        let slug = |middle: &str| {
            let mut s = String::with_capacity(resource.len() + middle.len() + action.len() + 2);
            s.push_str(resource);
            s.push('.');
            s.push_str(middle);
            s.push('.');
            s.push_str(action);
            s
        };
        if held.contains(&slug("*")) || held.contains(&slug(id)) {
            return Ok(());
        }
        self.require(&Requirement::any_of([
            format!("{resource}.*.{action}"),
            format!("{resource}.{id}.{action}"),
        ]))
    }

    /// The caller as an audit actor.
    pub fn actor(&self) -> Actor {
        root_key_actor(&self.principal, self.remote_ip(), self.user_agent())
    }
}

/// A root key as the audit actor of the current request (an API call, or a dashboard page).
pub fn root_key_actor(
    principal: &Principal,
    remote_ip: Option<String>,
    user_agent: Option<String>,
) -> Actor {
    Actor {
        kind: "rootkey".into(),
        id: principal.root_key_id.clone(),
        name: Some(principal.name.clone().unwrap_or_else(|| "root key".into())),
        remote_ip,
        user_agent,
        correlation_id: Some(crate::http::scope::current_request_id().to_string()),
    }
}

impl From<AuthFailure> for ApiError {
    fn from(failure: AuthFailure) -> Self {
        let (code, reason) = match failure {
            AuthFailure::NotFound => (
                ErrorCode::AuthenticationKeyNotFound,
                Some("We could not find the requested key.".to_string()),
            ),
            AuthFailure::NotARootKey => (ErrorCode::AuthenticationKeyNotFound, None),
            // The seed's contract: word for word the envelope of the page that defines the
            // code, not Unkey's server's "The provided root key is invalid. The key is disabled."
            AuthFailure::Disabled => {
                return ApiError::new(ErrorCode::KeyDisabled, KEY_DISABLED_DETAIL);
            }
            AuthFailure::Expired(at) => (
                ErrorCode::Forbidden,
                Some(format!("the key has expired on {}", rfc3339(at))),
            ),
            AuthFailure::WorkspaceNotFound => (
                ErrorCode::WorkspaceNotFound,
                Some("The requested workspace does not exist.".into()),
            ),
            AuthFailure::WorkspaceDisabled => (
                ErrorCode::WorkspaceDisabled,
                Some("The workspace is disabled.".into()),
            ),
            AuthFailure::Store(err) => return ApiError::from(err),
        };
        let detail = match reason {
            Some(reason) => format!("{INVALID_ROOT_KEY} {reason}"),
            None => INVALID_ROOT_KEY.to_string(),
        };
        ApiError::new(code, detail)
    }
}

/// Unix milliseconds as an RFC 3339 UTC timestamp (`2024-01-02T03:04:05.678Z`).
pub fn rfc3339(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

/// Marks a request as made in-process for an already authenticated root key: the dashboard
/// calls the API's own routes this way for its signed-in sessions, so every check, rule and
/// audit record is the API's. Only code in this process can attach a request extension; nothing
/// a client sends can produce one.
#[derive(Clone)]
pub struct ActingAs(pub Arc<Principal>);

/// An authenticated request with a valid body of type `T`.
pub struct Authed<T> {
    pub caller: Caller,
    pub body: T,
}

impl<T: RequestBody> FromRequest<AppState> for Authed<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let principal = match parts.extensions.get::<ActingAs>() {
            // A call the dashboard makes for a signed-in root key, already authenticated.
            Some(ActingAs(principal)) => {
                let principal = principal.clone();
                let body = read_body::<T>(&parts, body, state.body_limit).await?;
                (principal, body)
            }
            None => {
                let token = bearer_token(&parts.headers)?;
                let body = read_body::<T>(&parts, body, state.body_limit).await?;
                (state.auth.authenticate(&token).await?, body)
            }
        };
        let (principal, body) = principal;
        crate::http::scope::set_caller(&principal);
        if let Some(admission) = state
            .workspace_limits
            .admit(
                &principal.workspace_id,
                principal.workspace_requests_per_minute,
            )
            .await
        {
            crate::http::scope::set_workspace_limit(admission);
            if !admission.passed {
                return Err(ApiError::new(
                    ErrorCode::WorkspaceRateLimited,
                    format!(
                        "This workspace has exceeded its API rate limit of {}/1m0s. Please try again later.",
                        admission.limit
                    ),
                ));
            }
        }
        Ok(Authed {
            caller: Caller {
                principal,
                peer: parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|ConnectInfo(addr)| *addr),
                forwarded_for: parts.headers.get("x-forwarded-for").cloned(),
                user_agent: parts.headers.get(header::USER_AGENT).cloned(),
            },
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn body_of(chunks: &[&'static str]) -> Body {
        let frames: Vec<Result<Bytes, std::io::Error>> = chunks
            .iter()
            .map(|chunk| Ok(Bytes::from_static(chunk.as_bytes())))
            .collect();
        Body::from_stream(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_body_is_read_whole_from_one_frame_or_many_and_never_past_its_limit() {
        let one = body_bytes(body_of(&[r#"{"key":"k"}"#]), 11).await;
        assert_eq!(one.as_deref(), Ok(&b"{\"key\":\"k\"}"[..]));
        let many = body_bytes(body_of(&["{\"ke", "", "y\":", "\"k\"}"]), 64).await;
        assert_eq!(many.as_deref(), Ok(&b"{\"key\":\"k\"}"[..]));
        assert_eq!(body_bytes(Body::empty(), 0).await.as_deref(), Ok(&b""[..]));
        assert_eq!(
            body_bytes(body_of(&[r#"{"key":"k"}"#]), 10).await,
            Err(BodyError::TooLarge)
        );
        assert_eq!(
            body_bytes(body_of(&["{\"key\"", ":1}"]), 8).await,
            Err(BodyError::TooLarge),
            "the limit counts every frame"
        );
        let broken = futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"{")),
            Err(std::io::Error::other("reset")),
        ]);
        assert_eq!(
            body_bytes(Body::from_stream(broken), 64).await,
            Err(BodyError::Unreadable)
        );
    }

    fn headers(auth: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        assert_eq!(bearer_token(&headers(Some("Bearer abc"))).unwrap(), "abc");
        assert_eq!(
            bearer_token(&headers(Some("  Bearer  abc  "))).unwrap(),
            "abc"
        );
        let code = |h| bearer_token(&h).unwrap_err().code;
        assert_eq!(code(headers(None)), ErrorCode::AuthenticationMissing);
        assert_eq!(code(headers(Some(""))), ErrorCode::AuthenticationMissing);
        assert_eq!(
            code(headers(Some("bearer abc"))),
            ErrorCode::AuthenticationMalformed
        );
        assert_eq!(
            code(headers(Some("abc"))),
            ErrorCode::AuthenticationMalformed
        );
        assert_eq!(
            code(headers(Some("Bearer    "))),
            ErrorCode::AuthenticationMalformed
        );
    }

    #[test]
    fn json_media_types_are_recognised_in_any_case() {
        for media in [
            "application/json",
            "Application/JSON",
            "application/problem+json",
            "x+JSON",
        ] {
            assert!(is_json_media_type(media), "{media}");
        }
        for media in [
            "text/plain",
            "application/jsonp",
            "json",
            "",
            "é+jso",
            "application/x-www-form-urlencoded",
        ] {
            assert!(!is_json_media_type(media), "{media}");
        }
    }

    #[test]
    fn timestamps_render_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_709_251_200_123), "2024-03-01T00:00:00.123Z");
    }
}
