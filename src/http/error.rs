//! The one error type of the HTTP layer and the table of every error code keyward can emit.
//!
//! Each code is one line in [`error_codes!`]: its URN, HTTP status and title. The URN decides the
//! `type` URL (`<public-url>/docs/errors/<system>/<category>/<specific>`) and the docs page served
//! there. Handlers return `Result<_, ApiError>` and use `?`; [`ApiError::into_response`] renders the
//! envelope exactly once. 5xx bodies never carry the cause: it is logged with the request id.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::scope::{
    current_request_id, current_route_uses_problem_json, current_wants_problem_json, public_url,
};

macro_rules! error_codes {
    ($($variant:ident => ($urn:literal, $status:literal, $title:literal),)*) => {
        /// Every error code keyward can put on the wire.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($variant,)* }

        impl ErrorCode {
            /// All codes, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The URN, `err:<system>:<category>:<specific>`.
            pub fn urn(self) -> &'static str {
                match self { $(ErrorCode::$variant => $urn,)* }
            }

            /// The HTTP status the code is sent with.
            pub fn status(self) -> StatusCode {
                let code: u16 = match self { $(ErrorCode::$variant => $status,)* };
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }

            /// The short, constant title of the code.
            pub fn title(self) -> &'static str {
                match self { $(ErrorCode::$variant => $title,)* }
            }
        }
    };
}

error_codes! {
    KeyNotFound => ("err:unkey:data:key_not_found", 404, "Not Found"),
    WorkspaceNotFound => ("err:unkey:data:workspace_not_found", 404, "Not Found"),
    ApiNotFound => ("err:unkey:data:api_not_found", 404, "Not Found"),
    MigrationNotFound => ("err:unkey:data:migration_not_found", 404, "Not Found"),
    KeySpaceNotFound => ("err:unkey:data:key_space_not_found", 404, "Not Found"),
    PermissionNotFound => ("err:unkey:data:permission_not_found", 404, "Not Found"),
    RoleNotFound => ("err:unkey:data:role_not_found", 404, "Not Found"),
    KeyAuthNotFound => ("err:unkey:data:key_auth_not_found", 404, "Not Found"),
    RatelimitNamespaceNotFound => ("err:unkey:data:ratelimit_namespace_not_found", 404, "Not Found"),
    RatelimitOverrideNotFound => ("err:unkey:data:ratelimit_override_not_found", 404, "Not Found"),
    IdentityNotFound => ("err:unkey:data:identity_not_found", 404, "Not Found"),
    AuditLogNotFound => ("err:unkey:data:audit_log_not_found", 404, "Not Found"),
    IdentityAlreadyExists => ("err:unkey:data:identity_already_exists", 409, "Conflicting Resource"),
    RoleAlreadyExists => ("err:unkey:data:role_already_exists", 409, "Conflicting Resource"),
    PermissionAlreadyExists => ("err:unkey:data:permission_already_exists", 409, "Conflicting Resource"),
    RatelimitNamespaceGone => ("err:unkey:data:ratelimit_namespace_gone", 410, "Resource Gone"),
    AnalyticsNotConfigured => ("err:unkey:data:analytics_not_configured", 412, "Precondition Failed"),
    InvalidInput => ("err:unkey:application:invalid_input", 400, "Bad Request"),
    ProtectedResource => ("err:unkey:application:protected_resource", 412, "Resource is protected"),
    PreconditionFailed => ("err:unkey:application:precondition_failed", 412, "Precondition Failed"),
    UnexpectedError => ("err:unkey:application:unexpected_error", 500, "Internal Server Error"),
    ServiceUnavailable => ("err:unkey:application:service_unavailable", 503, "Service Unavailable"),
    AuthenticationMissing => ("err:unkey:authentication:missing", 400, "Bad Request"),
    AuthenticationMalformed => ("err:unkey:authentication:malformed", 400, "Bad Request"),
    AuthenticationKeyNotFound => ("err:unkey:authentication:key_not_found", 401, "Unauthorized"),
    InsufficientPermissions => ("err:unkey:authorization:insufficient_permissions", 403, "Insufficient Permissions"),
    Forbidden => ("err:unkey:authorization:forbidden", 403, "Forbidden"),
    KeyDisabled => ("err:unkey:authorization:key_disabled", 403, "Forbidden"),
    WorkspaceDisabled => ("err:unkey:authorization:workspace_disabled", 403, "Workspace is disabled"),
    PermissionsQuerySyntaxError => ("err:user:bad_request:permissions_query_syntax_error", 400, "Bad Request"),
    RequestBodyUnreadable => ("err:user:bad_request:request_body_unreadable", 400, "Bad Request"),
    RequestTimeout => ("err:user:bad_request:request_timeout", 408, "Request Timeout"),
    RequestBodyTooLarge => ("err:user:bad_request:request_body_too_large", 413, "Request Entity Too Large"),
    RouteNotFound => ("err:user:not_found:route_not_found", 404, "Not Found"),
    MethodNotAllowed => ("err:user:method_not_allowed:method_not_allowed", 405, "Method Not Allowed"),
    WorkspaceRateLimited => ("err:user:too_many_requests:workspace_rate_limited", 429, "Too Many Requests"),
    InvalidAnalyticsQuery => ("err:user:bad_request:invalid_analytics_query", 400, "Bad Request"),
    InvalidAnalyticsQueryType => ("err:user:bad_request:invalid_analytics_query_type", 400, "Bad Request"),
    InvalidAnalyticsTable => ("err:user:bad_request:invalid_analytics_table", 400, "Bad Request"),
    InvalidAnalyticsFunction => ("err:user:bad_request:invalid_analytics_function", 400, "Bad Request"),
    QueryRangeExceedsRetention => ("err:user:bad_request:query_range_exceeds_retention", 400, "Bad Request"),
    QueryExecutionTimeout => ("err:user:unprocessable_entity:query_execution_timeout", 422, "Unprocessable Entity"),
    QueryMemoryLimitExceeded => ("err:user:unprocessable_entity:query_memory_limit_exceeded", 422, "Unprocessable Entity"),
    QueryRowsLimitExceeded => ("err:user:unprocessable_entity:query_rows_limit_exceeded", 422, "Unprocessable Entity"),
    QueryQuotaExceeded => ("err:user:too_many_requests:query_quota_exceeded", 429, "Too Many Requests"),
}

impl ErrorCode {
    /// The docs path of the code, `<system>/<category>/<specific>`.
    pub fn doc_path(self) -> String {
        self.urn().trim_start_matches("err:").replace(':', "/")
    }

    /// Finds a code by its docs path, as used in `/docs/errors/<path>`.
    pub fn from_doc_path(path: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|c| c.doc_path() == path)
    }

    /// The `type` URL of the code: its documentation page on this server.
    pub fn type_url(self) -> String {
        format!("{}/docs/errors/{}", public_url(), self.doc_path())
    }
}

/// One entry of the `errors` array of a 400 response.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    pub location: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// A request that could not be served, as it goes on the wire.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError {
            code,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// A 400 `invalid_input` with the field errors that caused it.
    pub fn invalid_input(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        ApiError {
            code: ErrorCode::InvalidInput,
            detail: detail.into(),
            errors,
        }
    }

    /// A 500 whose cause is logged here, with the request id, and never sent to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(request_id = %current_request_id(), error = %cause, "internal error");
        ApiError::new(
            ErrorCode::UnexpectedError,
            "An unexpected error occurred. The cause has been logged with this request's id.",
        )
    }
}

impl From<crate::domain::StoreError> for ApiError {
    fn from(err: crate::domain::StoreError) -> Self {
        tracing::error!(request_id = %current_request_id(), error = %err, "storage error");
        crate::telemetry::db_error(&err);
        ApiError::new(
            ErrorCode::ServiceUnavailable,
            "The storage backend could not complete the request. Please try again.",
        )
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    title: &'static str,
    detail: &'a str,
    status: u16,
    #[serde(rename = "type")]
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    meta: super::Meta,
    error: ErrorBody<'a>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        // 400-class bodies that describe the request carry `errors`, always present; others omit it.
        let with_errors = matches!(status.as_u16(), 400 | 408 | 413);
        let body = Envelope {
            meta: super::Meta::current(),
            error: ErrorBody {
                title: self.code.title(),
                detail: &self.detail,
                status: status.as_u16(),
                kind: self.code.type_url(),
                errors: with_errors.then_some(self.errors.as_slice()),
            },
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        // The content type the spec declares for this route and status wins, so that the SDKs parse
        // the error into its typed class; elsewhere the client's Accept decides, as in Unkey.
        let declared_problem =
            status == StatusCode::TOO_MANY_REQUESTS || current_route_uses_problem_json();
        let content_type = if declared_problem
            || (current_wants_problem_json() && self.code != ErrorCode::InvalidInput)
        {
            "application/problem+json"
        } else {
            "application/json"
        };
        let mut response = (status, bytes).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_unique_urn_and_a_doc_path_that_round_trips() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.urn()), "duplicate urn {}", code.urn());
            assert_eq!(code.urn().split(':').count(), 4, "{}", code.urn());
            assert_eq!(ErrorCode::from_doc_path(&code.doc_path()), Some(*code));
        }
    }

    #[test]
    fn disabled_key_maps_to_403_with_its_title() {
        assert_eq!(ErrorCode::KeyDisabled.status(), StatusCode::FORBIDDEN);
        assert_eq!(ErrorCode::KeyDisabled.title(), "Forbidden");
        assert_eq!(
            ErrorCode::KeyDisabled.doc_path(),
            "unkey/authorization/key_disabled"
        );
    }
}
