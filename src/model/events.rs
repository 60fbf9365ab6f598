//! Verification events, as queued on the request path and as stored for analytics.

/// One verification, as recorded for analytics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationEvent {
    pub request_id: String,
    pub time_ms: i64,
    pub workspace_id: String,
    pub api_id: String,
    pub key_space_id: String,
    pub key_id: String,
    pub identity_id: Option<String>,
    pub outcome: &'static str,
    /// JSON text of the tag array.
    pub tags: String,
    pub spent_credits: i64,
    pub latency_us: i64,
}

/// One verification to record, borrowing its data (the writer inserts thousands at a time).
#[derive(Debug, Clone, Copy)]
pub struct NewVerification<'a> {
    pub request_id: &'a str,
    pub time_ms: i64,
    pub workspace_id: &'a str,
    pub api_id: &'a str,
    pub key_space_id: &'a str,
    pub key_id: &'a str,
    pub identity_id: Option<&'a str>,
    pub outcome: &'static str,
    /// JSON text of the tag array.
    pub tags: &'a str,
    pub spent_credits: i64,
    pub latency_us: i64,
}

/// A key's latest verification, for its `lastUsedAt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastUse<'a> {
    pub key_id: &'a str,
    pub time_ms: i64,
}

/// The verification outcome codes, as stored.
pub const OUTCOMES: &[&str] = &[
    "VALID",
    "NOT_FOUND",
    "FORBIDDEN",
    "INSUFFICIENT_PERMISSIONS",
    "USAGE_EXCEEDED",
    "RATE_LIMITED",
    "DISABLED",
    "EXPIRED",
];

/// The static name of a stored outcome (unknown ones read as `NOT_FOUND`).
pub fn outcome_name(s: &str) -> &'static str {
    OUTCOMES
        .iter()
        .copied()
        .find(|o| *o == s)
        .unwrap_or("NOT_FOUND")
}
