//! `analytics.getUsage`: how much a workspace, an API, a key or a customer (external id) used,
//! and when, without writing SQL: verifications by outcome and spent credits per bucket,
//! zero-filled, with the bucket size chosen from the window.
//!
//! It is an ordinary analytics query underneath: the request becomes a query over the rollup
//! table of the chosen granularity and goes through the same compiler, sandbox and quota.

use std::collections::HashMap;

use super::query::Family;
use super::{AnalyticsError, AnalyticsService, Scope};
use crate::model::{AnalyticsValue, Granularity};

/// The most buckets one answer holds.
pub const MAX_POINTS: i64 = 1_500;

/// What to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Workspace,
    KeySpace(String),
    Key(String),
    ExternalId(String),
}

/// A usage question, already checked: `start_ms < end_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRequest {
    pub subject: Subject,
    pub start_ms: i64,
    pub end_ms: i64,
    /// `None`: chosen from the window.
    pub granularity: Option<Granularity>,
}

/// Verifications of one bucket, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsagePoint {
    /// The bucket's start (unix ms).
    pub time_ms: i64,
    pub total: i64,
    pub valid: i64,
    pub rate_limited: i64,
    pub usage_exceeded: i64,
    pub disabled: i64,
    pub expired: i64,
    pub forbidden: i64,
    pub insufficient_permissions: i64,
    pub spent_credits: i64,
}

impl UsagePoint {
    fn add(&mut self, outcome: &str, count: i64, spent: i64) {
        self.total += count;
        self.spent_credits += spent;
        let slot = match outcome {
            "VALID" => &mut self.valid,
            "RATE_LIMITED" => &mut self.rate_limited,
            "USAGE_EXCEEDED" => &mut self.usage_exceeded,
            "DISABLED" => &mut self.disabled,
            "EXPIRED" => &mut self.expired,
            "FORBIDDEN" => &mut self.forbidden,
            "INSUFFICIENT_PERMISSIONS" => &mut self.insufficient_permissions,
            _ => return,
        };
        *slot += count;
    }

    fn merge(&mut self, other: &UsagePoint) {
        self.total += other.total;
        self.valid += other.valid;
        self.rate_limited += other.rate_limited;
        self.usage_exceeded += other.usage_exceeded;
        self.disabled += other.disabled;
        self.expired += other.expired;
        self.forbidden += other.forbidden;
        self.insufficient_permissions += other.insufficient_permissions;
        self.spent_credits += other.spent_credits;
    }
}

/// The answer: every bucket of the window, in order, and their sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub granularity: Granularity,
    /// The first bucket's start and the window's end (unix ms).
    pub start_ms: i64,
    pub end_ms: i64,
    pub points: Vec<UsagePoint>,
    pub totals: UsagePoint,
}

/// Why a usage request cannot be answered as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooManyPoints {
    pub points: i64,
}

const DAY_MS: i64 = 86_400_000;

/// The bucket size for a window: at most [`MAX_POINTS`] buckets, as fine as that allows among
/// minute (up to 2 hours), hour (up to 7 days), day (up to 92 days) and month.
pub fn granularity_for(span_ms: i64) -> Granularity {
    if span_ms <= 2 * 3_600_000 {
        Granularity::Minute
    } else if span_ms <= 7 * DAY_MS {
        Granularity::Hour
    } else if span_ms <= 92 * DAY_MS {
        Granularity::Day
    } else {
        Granularity::Month
    }
}

/// The start of the bucket after the one starting at `start`.
fn next_bucket(granularity: Granularity, start: i64) -> i64 {
    match granularity {
        Granularity::Minute => start.saturating_add(60_000),
        Granularity::Hour => start.saturating_add(3_600_000),
        Granularity::Day => start.saturating_add(DAY_MS),
        // 32 days on from a month's first day is always inside the next month.
        Granularity::Month => Granularity::Month.start(start.saturating_add(32 * DAY_MS)),
    }
}

/// The month of a time as a count of months since year 0 (proleptic Gregorian, UTC), for any
/// time at all.
fn month_number(time_ms: i64) -> i64 {
    // Days since 0000-03-01, in 400-year eras of 146,097 days (H. Hinnant's civil_from_days).
    let days = time_ms.div_euclid(DAY_MS) + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March: 0 = March, ..., 11 = February (of the next calendar year).
    let march_month = (5 * day_of_year + 2) / 153;
    (era * 400 + year_of_era) * 12 + march_month + 2
}

/// How many buckets cover `[start, end)`: counted, not listed, so a window of any length costs
/// the same.
pub fn bucket_count(granularity: Granularity, start: i64, end: i64) -> i64 {
    let first = granularity.start(start);
    if first >= end {
        return 0;
    }
    let size = match granularity {
        Granularity::Minute => 60_000,
        Granularity::Hour => 3_600_000,
        Granularity::Day => DAY_MS,
        Granularity::Month => return month_number(end - 1) - month_number(first) + 1,
    };
    (end - 1 - first) / size + 1
}

/// The bucket starts covering `[start, end)`. Callers bound [`bucket_count`] first.
pub fn buckets(granularity: Granularity, start: i64, end: i64) -> Vec<i64> {
    let count = bucket_count(granularity, start, end);
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut at = granularity.start(start);
    for _ in 0..count {
        out.push(at);
        at = next_bucket(granularity, at);
    }
    out
}

/// A ClickHouse string literal.
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// `'YYYY-MM-DD hh:mm:ss'` of a time, as the query language reads date-times.
fn datetime_literal(ms: i64) -> String {
    let iso = super::rfc3339_seconds(ms);
    format!("'{}'", iso.trim_end_matches('Z').replace('T', " "))
}

impl AnalyticsService {
    /// Answers a usage question for a caller who may read `scope` (of verifications).
    pub async fn usage(
        &self,
        workspace_id: &str,
        scope: &Scope,
        request: &UsageRequest,
        now_ms: i64,
    ) -> Result<Result<Usage, TooManyPoints>, AnalyticsError> {
        let span = request.end_ms - request.start_ms;
        let granularity = request.granularity.unwrap_or_else(|| granularity_for(span));
        // Nothing older than the retention is kept: start at the first bucket inside it.
        let oldest = now_ms - i64::from(self.settings.retention_days) * DAY_MS;
        let mut start = granularity.start(request.start_ms);
        // The first bucket start at or after the retention's edge (or the window's end).
        let edge = oldest.min(request.end_ms);
        if start < edge {
            start = granularity.start(edge);
            if start < edge {
                start = next_bucket(granularity, start);
            }
        }
        // Counted before anything is listed: a window of a million years is refused at once.
        let points = bucket_count(granularity, start, request.end_ms);
        if points > MAX_POINTS {
            return Ok(Err(TooManyPoints { points }));
        }
        let buckets = buckets(granularity, start, request.end_ms);
        let mut points: Vec<UsagePoint> = buckets
            .iter()
            .map(|&time_ms| UsagePoint {
                time_ms,
                ..Default::default()
            })
            .collect();
        if !points.is_empty() {
            let filter = match &request.subject {
                Subject::Workspace => String::new(),
                Subject::KeySpace(id) => format!(" AND key_space_id = {}", literal(id)),
                Subject::Key(id) => format!(" AND key_id = {}", literal(id)),
                Subject::ExternalId(id) => format!(" AND external_id = {}", literal(id)),
            };
            let sql = format!(
                "SELECT time, outcome, sum(count) AS n, sum(spent_credits) AS c \
                 FROM key_verifications_per_{}_v1 WHERE time >= {} AND time < {}{filter} \
                 GROUP BY time, outcome",
                granularity.as_str(),
                datetime_literal(start),
                datetime_literal(request.end_ms),
            );
            let compiled = self
                .prepare(workspace_id, Family::Verifications, scope, &sql, now_ms)
                .await?;
            let index: HashMap<i64, usize> =
                buckets.iter().enumerate().map(|(i, &t)| (t, i)).collect();
            for row in self.run_rows(&compiled).await? {
                let mut values = row.into_iter();
                let (
                    Some(AnalyticsValue::Int(time)),
                    Some(AnalyticsValue::Text(outcome)),
                    Some(count),
                    Some(spent),
                ) = (values.next(), values.next(), values.next(), values.next())
                else {
                    continue;
                };
                if let Some(&i) = index.get(&time) {
                    points[i].add(&outcome, as_int(&count), as_int(&spent));
                }
            }
        }
        let mut totals = UsagePoint {
            time_ms: start,
            ..Default::default()
        };
        for point in &points {
            totals.merge(point);
        }
        Ok(Ok(Usage {
            granularity,
            start_ms: start,
            end_ms: request.end_ms,
            points,
            totals,
        }))
    }
}

fn as_int(value: &AnalyticsValue) -> i64 {
    match value {
        AnalyticsValue::Int(v) => *v,
        AnalyticsValue::Float(v) => *v as i64,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_picks_the_finest_granularity_that_fits() {
        assert_eq!(granularity_for(3_600_000), Granularity::Minute);
        assert_eq!(granularity_for(DAY_MS), Granularity::Hour);
        assert_eq!(granularity_for(30 * DAY_MS), Granularity::Day);
        assert_eq!(granularity_for(365 * DAY_MS), Granularity::Month);
        for span in [2 * 3_600_000, 7 * DAY_MS, 92 * DAY_MS, 3 * 365 * DAY_MS] {
            let g = granularity_for(span);
            assert!(buckets(g, 0, span).len() as i64 <= MAX_POINTS, "{g:?}");
        }
    }

    #[test]
    fn buckets_are_counted_without_being_listed() {
        let year_2000 = 946_684_800_000;
        for g in [
            Granularity::Minute,
            Granularity::Hour,
            Granularity::Day,
            Granularity::Month,
        ] {
            for (start, end) in [
                (0, 1),
                (1, 60_000),
                (59_999, 60_001),
                (year_2000 - 7 * DAY_MS, year_2000 + 13 * DAY_MS + 5),
                (year_2000, year_2000 + 400 * DAY_MS),
                (1_000, 1_000),
            ] {
                let listed = buckets(g, start, end);
                assert_eq!(
                    bucket_count(g, start, end),
                    listed.len() as i64,
                    "{g:?} {start}..{end}"
                );
            }
        }
        // 1970-01 up to 2000-12 (end exclusive at 2001-01-01): 31 years of months.
        assert_eq!(
            bucket_count(Granularity::Month, 0, 978_307_200_000),
            31 * 12
        );
        // Any window at all is counted in constant time.
        assert_eq!(
            bucket_count(Granularity::Minute, 0, i64::MAX),
            (i64::MAX - 1) / 60_000 + 1
        );
        assert!(bucket_count(Granularity::Month, 0, i64::MAX) > MAX_POINTS);
    }

    #[test]
    fn month_buckets_follow_the_calendar() {
        // 2025-01-15 to 2025-04-02: January, February, March, April.
        let starts = buckets(Granularity::Month, 1_736_899_200_000, 1_743_552_000_000);
        assert_eq!(
            starts,
            [
                1_735_689_600_000,
                1_738_368_000_000,
                1_740_787_200_000,
                1_743_465_600_000
            ]
        );
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(literal(r"a'b\c"), r"'a\'b\\c'");
        assert_eq!(datetime_literal(1_735_689_600_000), "'2025-01-01 00:00:00'");
    }
}
