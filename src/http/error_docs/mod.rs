//! The human documentation of every error code: what happened, an example `detail`, how to fix it,
//! the usual mistakes and the related codes.
//!
//! The code table itself (URN, status, title) lives in [`super::error`]; this file owns only the
//! shape of the page served at `/docs/errors/<system>/<category>/<specific>`. [`doc`] matches every
//! code with no wildcard arm (the prose is in [`resources`], [`request`] and [`analytics`]), so a code added to the table without its page does not compile.
//!
//! The text is plain: the page renderer escapes it and turns `backticked` spans into `<code>`.
//! Commands shown are those of keyward's CLI; every one of them also takes `--database URL`
//! (or `KEYWARD_DATABASE`), which must name the database the server uses.

mod analytics;
mod request;
mod resources;

use super::error::ErrorCode;

/// Human documentation for one error code.
#[derive(Debug, Clone, Copy)]
pub struct ErrorDoc {
    /// One or two paragraphs: what happened, when keyward returns this.
    pub what_happened: &'static str,
    /// A realistic `detail` string keyward would send with this code.
    pub example_detail: &'static str,
    /// Steps to fix it, in order (each a sentence; may contain `code` in backticks, rendered as
    /// `<code>`).
    pub how_to_fix: &'static [&'static str],
    /// Common mistakes that lead here.
    pub common_mistakes: &'static [&'static str],
    /// Related codes, linked from the page.
    pub related: &'static [ErrorCode],
}

/// The documentation of `code`. Every code has one (exhaustive match, no wildcard arm).
pub fn doc(code: ErrorCode) -> ErrorDoc {
    match code {
        ErrorCode::KeyNotFound => resources::KEY_NOT_FOUND,
        ErrorCode::WorkspaceNotFound => resources::WORKSPACE_NOT_FOUND,
        ErrorCode::ApiNotFound => resources::API_NOT_FOUND,
        ErrorCode::MigrationNotFound => resources::MIGRATION_NOT_FOUND,
        ErrorCode::KeySpaceNotFound => resources::KEY_SPACE_NOT_FOUND,
        ErrorCode::PermissionNotFound => resources::PERMISSION_NOT_FOUND,
        ErrorCode::RoleNotFound => resources::ROLE_NOT_FOUND,
        ErrorCode::KeyAuthNotFound => resources::KEY_AUTH_NOT_FOUND,
        ErrorCode::RatelimitNamespaceNotFound => resources::RATELIMIT_NAMESPACE_NOT_FOUND,
        ErrorCode::RatelimitOverrideNotFound => resources::RATELIMIT_OVERRIDE_NOT_FOUND,
        ErrorCode::IdentityNotFound => resources::IDENTITY_NOT_FOUND,
        ErrorCode::AuditLogNotFound => resources::AUDIT_LOG_NOT_FOUND,
        ErrorCode::IdentityAlreadyExists => resources::IDENTITY_ALREADY_EXISTS,
        ErrorCode::RoleAlreadyExists => resources::ROLE_ALREADY_EXISTS,
        ErrorCode::PermissionAlreadyExists => resources::PERMISSION_ALREADY_EXISTS,
        ErrorCode::RatelimitNamespaceGone => resources::RATELIMIT_NAMESPACE_GONE,
        ErrorCode::AnalyticsNotConfigured => request::ANALYTICS_NOT_CONFIGURED,
        ErrorCode::InvalidInput => request::INVALID_INPUT,
        ErrorCode::ProtectedResource => request::PROTECTED_RESOURCE,
        ErrorCode::PreconditionFailed => request::PRECONDITION_FAILED,
        ErrorCode::UnexpectedError => request::UNEXPECTED_ERROR,
        ErrorCode::ServiceUnavailable => request::SERVICE_UNAVAILABLE,
        ErrorCode::AuthenticationMissing => request::AUTHENTICATION_MISSING,
        ErrorCode::AuthenticationMalformed => request::AUTHENTICATION_MALFORMED,
        ErrorCode::AuthenticationKeyNotFound => request::AUTHENTICATION_KEY_NOT_FOUND,
        ErrorCode::InsufficientPermissions => request::INSUFFICIENT_PERMISSIONS,
        ErrorCode::Forbidden => request::FORBIDDEN,
        ErrorCode::KeyDisabled => request::KEY_DISABLED,
        ErrorCode::WorkspaceDisabled => request::WORKSPACE_DISABLED,
        ErrorCode::PermissionsQuerySyntaxError => request::PERMISSIONS_QUERY_SYNTAX_ERROR,
        ErrorCode::RequestBodyUnreadable => request::REQUEST_BODY_UNREADABLE,
        ErrorCode::RequestTimeout => request::REQUEST_TIMEOUT,
        ErrorCode::RequestBodyTooLarge => request::REQUEST_BODY_TOO_LARGE,
        ErrorCode::RouteNotFound => request::ROUTE_NOT_FOUND,
        ErrorCode::MethodNotAllowed => request::METHOD_NOT_ALLOWED,
        ErrorCode::WorkspaceRateLimited => request::WORKSPACE_RATE_LIMITED,
        ErrorCode::InvalidAnalyticsQuery => analytics::INVALID_ANALYTICS_QUERY,
        ErrorCode::InvalidAnalyticsQueryType => analytics::INVALID_ANALYTICS_QUERY_TYPE,
        ErrorCode::InvalidAnalyticsTable => analytics::INVALID_ANALYTICS_TABLE,
        ErrorCode::InvalidAnalyticsFunction => analytics::INVALID_ANALYTICS_FUNCTION,
        ErrorCode::QueryRangeExceedsRetention => analytics::QUERY_RANGE_EXCEEDS_RETENTION,
        ErrorCode::QueryExecutionTimeout => analytics::QUERY_EXECUTION_TIMEOUT,
        ErrorCode::QueryMemoryLimitExceeded => analytics::QUERY_MEMORY_LIMIT_EXCEEDED,
        ErrorCode::QueryRowsLimitExceeded => analytics::QUERY_ROWS_LIMIT_EXCEEDED,
        ErrorCode::QueryQuotaExceeded => analytics::QUERY_QUOTA_EXCEEDED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_page_with_text_and_fix_steps() {
        for &code in ErrorCode::ALL {
            let page = doc(code);
            assert!(!page.what_happened.trim().is_empty(), "{}", code.urn());
            assert!(!page.example_detail.trim().is_empty(), "{}", code.urn());
            assert!(!page.how_to_fix.is_empty(), "{}", code.urn());
            for step in page.how_to_fix.iter().chain(page.common_mistakes) {
                assert!(!step.trim().is_empty(), "{}", code.urn());
            }
        }
    }

    #[test]
    fn no_code_lists_itself_or_the_same_code_twice_as_related() {
        for &code in ErrorCode::ALL {
            let related = doc(code).related;
            assert!(!related.contains(&code), "{} lists itself", code.urn());
            for (i, other) in related.iter().enumerate() {
                assert!(
                    !related[i + 1..].contains(other),
                    "{} lists {} twice",
                    code.urn(),
                    other.urn()
                );
            }
        }
    }

    #[test]
    fn backticks_are_balanced_so_every_code_span_closes() {
        for &code in ErrorCode::ALL {
            let page = doc(code);
            let texts = [page.what_happened]
                .into_iter()
                .chain(page.how_to_fix.iter().copied())
                .chain(page.common_mistakes.iter().copied());
            for text in texts {
                assert_eq!(text.matches('`').count() % 2, 0, "{}: {text}", code.urn());
            }
        }
    }

    #[test]
    fn the_disabled_key_page_tells_an_operator_how_to_find_enable_or_replace_the_key() {
        let steps = doc(ErrorCode::KeyDisabled).how_to_fix.join(" ");
        for command in [
            "root-key list",
            "root-key enable",
            "root-key create",
            "root-key delete",
        ] {
            assert!(steps.contains(command), "missing `{command}`");
        }
    }
}
