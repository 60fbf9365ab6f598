//! `analytics.getVerifications` and `analytics.getRatelimits` (the caller's SQL over its own
//! events, as Unkey's), and `analytics.getUsage` (keyward's own: a zero-filled usage series
//! without SQL).

use axum::extract::State;
use axum::routing::{post, MethodRouter};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Method, Operation};
use crate::domain::analytics::query::{Family, QueryErrorCode};
use crate::domain::analytics::usage::{Subject, UsagePoint, UsageRequest, MAX_POINTS};
use crate::domain::analytics::{AnalyticsError, Scope};
use crate::http::error::{ApiError, ErrorCode, FieldError};
use crate::http::extract::{Authed, Caller, RequestBody};
use crate::http::schema::{
    array, cached_schema, free_object, integer, object, optional, required, string, Schema,
};
use crate::http::{ApiResponse, AppState};
use crate::model::Granularity;

impl From<AnalyticsError> for ApiError {
    fn from(err: AnalyticsError) -> Self {
        let code = match &err {
            AnalyticsError::Forbidden(_) => ErrorCode::InsufficientPermissions,
            AnalyticsError::Query(q) => match q.code {
                QueryErrorCode::InvalidQuery => ErrorCode::InvalidAnalyticsQuery,
                QueryErrorCode::InvalidQueryType => ErrorCode::InvalidAnalyticsQueryType,
                QueryErrorCode::InvalidTable => ErrorCode::InvalidAnalyticsTable,
                QueryErrorCode::InvalidFunction => ErrorCode::InvalidAnalyticsFunction,
                QueryErrorCode::RangeExceedsRetention => ErrorCode::QueryRangeExceedsRetention,
            },
            AnalyticsError::Refused(_) => ErrorCode::InvalidAnalyticsQuery,
            AnalyticsError::Timeout => ErrorCode::QueryExecutionTimeout,
            AnalyticsError::TooLarge => ErrorCode::QueryMemoryLimitExceeded,
            AnalyticsError::QuotaExceeded => ErrorCode::QueryQuotaExceeded,
            AnalyticsError::Counters(cause) => {
                tracing::warn!(error = %cause, "analytics quota counters unavailable");
                return ApiError::new(
                    ErrorCode::ServiceUnavailable,
                    "The analytics query quota could not be checked. Please try again.",
                );
            }
            AnalyticsError::Store(_) => {
                let AnalyticsError::Store(cause) = err else {
                    unreachable!("matched above")
                };
                return ApiError::from(cause);
            }
        };
        ApiError::new(code, err.to_string())
    }
}

#[derive(Deserialize)]
struct QueryRequest {
    query: String,
}

impl RequestBody for QueryRequest {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![required(
            "query",
            string().describe(
                "One SELECT in the ClickHouse-flavoured SQL of Unkey's analytics, over the \
                 public tables; at most 16 KiB."
            ),
        )]))
    }
}

async fn run_query(
    state: &AppState,
    caller: &Caller,
    family: Family,
    query: &str,
) -> Result<ApiResponse<Vec<Value>>, ApiError> {
    let scope = state
        .analytics
        .scope(caller.workspace_id(), family, &caller.principal.permissions)
        .await?;
    let rows = state
        .analytics
        .query(caller.workspace_id(), family, &scope, query, state.now())
        .await?;
    Ok(ApiResponse::data(rows))
}

#[tracing::instrument(level = "debug", skip_all)]
async fn get_verifications(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<QueryRequest>,
) -> Result<ApiResponse<Vec<Value>>, ApiError> {
    run_query(&state, &caller, Family::Verifications, &body.query).await
}

#[tracing::instrument(level = "debug", skip_all)]
async fn get_ratelimits(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<QueryRequest>,
) -> Result<ApiResponse<Vec<Value>>, ApiError> {
    run_query(&state, &caller, Family::Ratelimits, &body.query).await
}

// ---- analytics.getUsage ----

const DAY_MS: i64 = 86_400_000;
/// The window when none is given.
const DEFAULT_WINDOW_MS: i64 = 30 * DAY_MS;
/// 9999-12-31T23:59:59.999Z, the last time a usage window may reach: its buckets are calendar
/// dates.
const LAST_MS: i64 = 253_402_300_799_999;

#[derive(Deserialize)]
struct UsageBody {
    #[serde(rename = "keyId")]
    key_id: Option<String>,
    #[serde(rename = "apiId")]
    api_id: Option<String>,
    #[serde(rename = "externalId")]
    external_id: Option<String>,
    #[serde(rename = "startTime")]
    start_time: Option<i64>,
    #[serde(rename = "endTime")]
    end_time: Option<i64>,
    granularity: Option<String>,
}

const GRANULARITIES: &[&str] = &["minute", "hour", "day", "month"];

impl RequestBody for UsageBody {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![
            optional(
                "keyId",
                string()
                    .min_len(3)
                    .max_len(255)
                    .describe("Count this key only."),
            ),
            optional(
                "apiId",
                string()
                    .min_len(3)
                    .max_len(255)
                    .describe("Count this API's keys only."),
            ),
            optional(
                "externalId",
                string()
                    .min_len(1)
                    .max_len(255)
                    .describe("Count the keys of this identity (your customer's id) only."),
            ),
            optional(
                "startTime",
                integer()
                    .minimum(0)
                    .maximum(LAST_MS)
                    .describe("Start of the window (unix ms); default: 30 days before `endTime`."),
            ),
            optional(
                "endTime",
                integer()
                    .minimum(0)
                    .maximum(LAST_MS)
                    .describe("End of the window (unix ms, exclusive); default: now."),
            ),
            optional(
                "granularity",
                string().one_of(GRANULARITIES).describe(
                    "Bucket size; default: the finest that keeps the series within 1500 points \
                     (minute up to 2 hours, hour up to 7 days, day up to 92 days, else month)."
                ),
            ),
        ]))
    }
}

#[derive(Serialize)]
struct PointData {
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<i64>,
    total: i64,
    valid: i64,
    #[serde(rename = "rateLimited")]
    rate_limited: i64,
    #[serde(rename = "usageExceeded")]
    usage_exceeded: i64,
    disabled: i64,
    expired: i64,
    forbidden: i64,
    #[serde(rename = "insufficientPermissions")]
    insufficient_permissions: i64,
    #[serde(rename = "spentCredits")]
    spent_credits: i64,
}

fn point_data(point: &UsagePoint, time: Option<i64>) -> PointData {
    PointData {
        time,
        total: point.total,
        valid: point.valid,
        rate_limited: point.rate_limited,
        usage_exceeded: point.usage_exceeded,
        disabled: point.disabled,
        expired: point.expired,
        forbidden: point.forbidden,
        insufficient_permissions: point.insufficient_permissions,
        spent_credits: point.spent_credits,
    }
}

#[derive(Serialize)]
struct UsageData {
    granularity: &'static str,
    #[serde(rename = "startTime")]
    start_time: i64,
    #[serde(rename = "endTime")]
    end_time: i64,
    points: Vec<PointData>,
    totals: PointData,
}

fn invalid(location: &str, message: String) -> ApiError {
    ApiError::invalid_input(
        message.clone(),
        vec![FieldError {
            location: location.into(),
            message,
            fix: None,
        }],
    )
}

/// 403 unless `scope` covers the key space; names the permission that would.
fn require_key_space(scope: &Scope, key_space_id: &str, api_id: &str) -> Result<(), ApiError> {
    match scope {
        Scope::Only(ids) if !ids.iter().any(|id| id == key_space_id) => Err(ApiError::new(
            ErrorCode::InsufficientPermissions,
            format!("Missing permission: 'api.{api_id}.read_analytics'"),
        )),
        _ => Ok(()),
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn get_usage(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<UsageBody>,
) -> Result<ApiResponse<UsageData>, ApiError> {
    let subjects = [&body.key_id, &body.api_id, &body.external_id]
        .iter()
        .filter(|s| s.is_some())
        .count();
    if subjects > 1 {
        return Err(invalid(
            "body",
            "Give at most one of `keyId`, `apiId` and `externalId`.".into(),
        ));
    }
    let now = state.now();
    let end = body.end_time.unwrap_or(now);
    let start = body.start_time.unwrap_or(end - DEFAULT_WINDOW_MS).max(0);
    if start >= end {
        return Err(invalid(
            "body.startTime",
            "`startTime` must be before `endTime`.".into(),
        ));
    }
    let granularity = match body.granularity.as_deref() {
        None => None,
        Some("minute") => Some(Granularity::Minute),
        Some("hour") => Some(Granularity::Hour),
        Some("day") => Some(Granularity::Day),
        Some(_) => Some(Granularity::Month),
    };
    let workspace = caller.workspace_id();
    let scope = state
        .analytics
        .scope(
            workspace,
            Family::Verifications,
            &caller.principal.permissions,
        )
        .await?;
    let subject = if let Some(key_id) = body.key_id {
        let key = state
            .keys
            .find_by_id(&key_id)
            .await?
            .filter(|k| k.workspace_id == workspace)
            .ok_or_else(|| {
                ApiError::new(ErrorCode::KeyNotFound, "The specified key was not found.")
            })?;
        require_key_space(&scope, &key.key_space_id, &key.api_id)?;
        Subject::Key(key_id)
    } else if let Some(api_id) = body.api_id {
        let api = state.apis.live(workspace, &api_id).await?.ok_or_else(|| {
            ApiError::new(
                ErrorCode::ApiNotFound,
                "The requested API does not exist or has been deleted.",
            )
        })?;
        require_key_space(&scope, &api.key_space_id, &api.id)?;
        Subject::KeySpace(api.key_space_id)
    } else if let Some(external_id) = body.external_id {
        Subject::ExternalId(external_id)
    } else {
        Subject::Workspace
    };
    let request = UsageRequest {
        subject,
        start_ms: start,
        end_ms: end,
        granularity,
    };
    let usage = state
        .analytics
        .usage(workspace, &scope, &request, now)
        .await?
        .map_err(|too_many| {
            invalid(
                "body.granularity",
                format!(
                    "That window holds {} buckets of this granularity; at most {MAX_POINTS} are \
                     answered. Choose a coarser granularity or a shorter window.",
                    too_many.points
                ),
            )
        })?;
    Ok(ApiResponse::data(UsageData {
        granularity: usage.granularity.as_str(),
        start_time: usage.start_ms,
        end_time: usage.end_ms,
        points: usage
            .points
            .iter()
            .map(|p| point_data(p, Some(p.time_ms)))
            .collect(),
        totals: point_data(&usage.totals, None),
    }))
}

fn usage_point_schema(with_time: bool) -> Schema {
    let count = |what: &'static str| integer().describe(what);
    let mut fields = Vec::new();
    if with_time {
        fields.push(required(
            "time",
            integer().describe("The bucket's start (unix ms)."),
        ));
    }
    fields.extend([
        required("total", count("Verifications of every outcome.")),
        required("valid", count("Verifications that were valid.")),
        required("rateLimited", count("Refused by a rate limit.")),
        required("usageExceeded", count("Refused for lack of credits.")),
        required("disabled", count("Refused because the key was disabled.")),
        required("expired", count("Refused because the key had expired.")),
        required(
            "forbidden",
            count("Refused by an IP whitelist or another rule."),
        ),
        required(
            "insufficientPermissions",
            count("Refused by a permission query."),
        ),
        required("spentCredits", count("Credits spent.")),
    ]);
    object(fields)
}

pub fn routes() -> Vec<(Operation, MethodRouter<AppState>)> {
    let rows = || array(free_object().describe("One row; its fields are the query's columns."));
    vec![
        (
            Operation {
                path: "/v2/analytics.getVerifications",
                method: Method::Post,
                operation_id: "analytics.getVerifications",
                tag: "analytics",
                summary: "Run a SQL query over the workspace's key verifications",
                permissions: "`api.*.read_analytics`, or `api.<apiId>.read_analytics` to read those APIs only",
                request: Some(QueryRequest::schema()),
                response: rows(),
                paginated: false,
                errors: &[400, 401, 403, 413, 422, 429, 500, 503],
            },
            post(get_verifications),
        ),
        (
            Operation {
                path: "/v2/analytics.getRatelimits",
                method: Method::Post,
                operation_id: "analytics.getRatelimits",
                tag: "analytics",
                summary: "Run a SQL query over the workspace's rate-limit decisions",
                permissions: "`ratelimit.*.read_analytics`, or `ratelimit.<namespaceId>.read_analytics` to read those namespaces only",
                request: Some(QueryRequest::schema()),
                response: rows(),
                paginated: false,
                errors: &[400, 401, 403, 413, 422, 429, 500, 503],
            },
            post(get_ratelimits),
        ),
        (
            Operation {
                path: "/v2/analytics.getUsage",
                method: Method::Post,
                operation_id: "analytics.getUsage",
                tag: "analytics",
                summary: "keyward's own: verifications by outcome and spent credits over time, zero-filled, for the workspace, an API, a key or an external id",
                permissions: "`api.*.read_analytics`, or `api.<apiId>.read_analytics` for that API's keys",
                request: Some(UsageBody::schema()),
                response: object(vec![
                    required("granularity", string().one_of(GRANULARITIES)),
                    required("startTime", integer().describe("The first bucket's start (unix ms).")),
                    required("endTime", integer().describe("The window's end (unix ms, exclusive).")),
                    required("points", array(usage_point_schema(true))),
                    required("totals", usage_point_schema(false)),
                ]),
                paginated: false,
                errors: &[400, 401, 403, 404, 413, 429, 500, 503],
            },
            post(get_usage),
        ),
    ]
}
