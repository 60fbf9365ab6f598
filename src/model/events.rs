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
    pub external_id: String,
    pub region: String,
    pub source: String,
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
    /// The external id of the key's identity when the event was written (`""` for none).
    pub external_id: &'a str,
    /// The node that verified (`--region`).
    pub region: &'a str,
    /// Where the verification came from: always `api` in keyward.
    pub source: &'a str,
}

/// One decision of `ratelimit.limit` / `ratelimit.multiLimit`, to record.
#[derive(Debug, Clone, Copy)]
pub struct NewRatelimitEvent<'a> {
    pub request_id: &'a str,
    pub time_ms: i64,
    pub workspace_id: &'a str,
    pub namespace_id: &'a str,
    pub identifier: &'a str,
    pub passed: bool,
    pub latency_us: i64,
    /// `""` when no override applied.
    pub override_id: &'a str,
    pub limit: i64,
    pub remaining: i64,
    pub reset_at_ms: i64,
    /// The cost asked for.
    pub tokens: i64,
}

/// The buckets analytics counts events in. Each has a table of its own per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Granularity {
    Minute,
    Hour,
    Day,
    Month,
}

impl Granularity {
    pub const ALL: [Granularity; 4] = [
        Granularity::Minute,
        Granularity::Hour,
        Granularity::Day,
        Granularity::Month,
    ];

    /// The name in table names (`key_verifications_per_minute`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
            Granularity::Month => "month",
        }
    }

    /// The start (unix ms, UTC) of the bucket holding `time_ms`.
    pub fn start(self, time_ms: i64) -> i64 {
        const MINUTE: i64 = 60_000;
        const HOUR: i64 = 60 * MINUTE;
        const DAY: i64 = 24 * HOUR;
        match self {
            Granularity::Minute => time_ms.div_euclid(MINUTE) * MINUTE,
            Granularity::Hour => time_ms.div_euclid(HOUR) * HOUR,
            Granularity::Day => time_ms.div_euclid(DAY) * DAY,
            Granularity::Month => {
                let day = time_ms.div_euclid(DAY);
                let date = time::Date::from_julian_day(UNIX_EPOCH_JULIAN_DAY + day as i32)
                    .unwrap_or(time::Date::MIN);
                let first = date.replace_day(1).unwrap_or(date);
                (first.to_julian_day() - UNIX_EPOCH_JULIAN_DAY) as i64 * DAY
            }
        }
    }
}

/// `time::Date::to_julian_day` of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

/// Verifications counted in one bucket, for one combination of what queries group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerificationCount<'a> {
    pub granularity: Granularity,
    pub time_ms: i64,
    pub workspace_id: &'a str,
    pub key_space_id: &'a str,
    pub key_id: &'a str,
    /// `""` for none.
    pub identity_id: &'a str,
    pub external_id: &'a str,
    pub outcome: &'a str,
    pub source: &'a str,
    /// JSON text of the tag array.
    pub tags: &'a str,
    pub count: i64,
    pub spent_credits: i64,
}

/// Rate-limit decisions counted in one bucket, per namespace and identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatelimitCount<'a> {
    pub granularity: Granularity,
    pub time_ms: i64,
    pub workspace_id: &'a str,
    pub namespace_id: &'a str,
    pub identifier: &'a str,
    pub passed: i64,
    pub total: i64,
    pub passed_tokens: i64,
    pub total_tokens: i64,
}

/// What one round of the event writer writes, in one transaction: raw events and the rollups'
/// increments.
#[derive(Debug, Default)]
pub struct EventBatch<'a> {
    pub verifications: Vec<NewVerification<'a>>,
    pub ratelimits: Vec<NewRatelimitEvent<'a>>,
    pub verification_counts: Vec<VerificationCount<'a>>,
    pub ratelimit_counts: Vec<RatelimitCount<'a>>,
}

impl EventBatch<'_> {
    pub fn is_empty(&self) -> bool {
        self.verifications.is_empty()
            && self.ratelimits.is_empty()
            && self.verification_counts.is_empty()
            && self.ratelimit_counts.is_empty()
    }
}

/// Where each analytics table is cut: rows older than these (unix ms) are pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnalyticsCutoffs {
    /// The raw tables, and the minute and hour rollups.
    pub raw_ms: i64,
    pub day_ms: i64,
    pub month_ms: i64,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_start_on_utc_boundaries() {
        // 2025-03-17T13:45:30.250Z
        let t = 1_742_219_130_250;
        assert_eq!(Granularity::Minute.start(t), 1_742_219_100_000);
        assert_eq!(Granularity::Hour.start(t), 1_742_216_400_000);
        assert_eq!(Granularity::Day.start(t), 1_742_169_600_000);
        // 2025-03-01T00:00:00Z
        assert_eq!(Granularity::Month.start(t), 1_740_787_200_000);
        assert_eq!(
            Granularity::Month.start(1_740_787_200_000),
            1_740_787_200_000
        );
        // Before the epoch too: 1969-12-31T23:59:59.999Z is in December 1969.
        assert_eq!(Granularity::Day.start(-1), -86_400_000);
        assert_eq!(Granularity::Month.start(-1), -2_678_400_000);
    }
}
