//! `audit.getLogs`: keyward's own route (Unkey has no public audit read), a workspace's audit log
//! in log order, page by page, for SIEM pollers and people.

use axum::extract::State;
use axum::routing::{post, MethodRouter};
use serde::{Deserialize, Serialize};

use super::{Method, Operation};
use crate::domain::rbac::requirement::Requirement;
use crate::http::error::{ApiError, FieldError};
use crate::http::extract::{Authed, RequestBody};
use crate::http::schema::{
    array, cached_schema, free_object, integer, object, optional, required, string, Schema,
};
use crate::http::{ApiResponse, AppState};
use crate::model::{AuditQuery, StoredAuditEvent};

/// The permission `audit.getLogs` needs (keyward's own; Unkey never named one).
pub const READ_AUDIT_LOG: &str = "audit.*.read_audit_log";

#[derive(Deserialize)]
struct GetLogsRequest {
    #[serde(default = "default_limit")]
    limit: i64,
    cursor: Option<String>,
    #[serde(rename = "startTime")]
    start_time: Option<i64>,
    #[serde(rename = "endTime")]
    end_time: Option<i64>,
    bucket: Option<String>,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default, rename = "actorIds")]
    actor_ids: Vec<String>,
    #[serde(default, rename = "actorTypes")]
    actor_types: Vec<String>,
    #[serde(default, rename = "targetIds")]
    target_ids: Vec<String>,
    #[serde(default, rename = "targetTypes")]
    target_types: Vec<String>,
    #[serde(rename = "correlationId")]
    correlation_id: Option<String>,
}

fn default_limit() -> i64 {
    50
}

fn filter(what: &'static str) -> Schema {
    array(string().min_len(1).max_len(255))
        .max_items(100)
        .describe(what)
}

impl RequestBody for GetLogsRequest {
    fn schema() -> &'static Schema {
        cached_schema!({
            object(vec![
                optional("limit", integer().minimum(1).maximum(100).default_int(50)),
                optional(
                    "cursor",
                    string()
                        .min_len(1)
                        .max_len(32)
                        .describe("`pagination.cursor` of the previous page."),
                ),
                optional(
                    "startTime",
                    integer()
                        .minimum(0)
                        .describe("Only events at or after this time (unix ms)."),
                ),
                optional(
                    "endTime",
                    integer()
                        .minimum(0)
                        .describe("Only events at or before this time (unix ms)."),
                ),
                optional(
                    "bucket",
                    string()
                        .min_len(1)
                        .max_len(255)
                        .describe("Only events of this bucket (`unkey_mutations`)."),
                ),
                optional("events", filter("Only these events, e.g. `key.create`.")),
                optional(
                    "actorIds",
                    filter("Only events by these actors (root key ids, `cli`)."),
                ),
                optional(
                    "actorTypes",
                    filter("Only events by these actor types (`rootkey`, `system`)."),
                ),
                optional(
                    "targetIds",
                    filter("Only events that touched one of these resources."),
                ),
                optional(
                    "targetTypes",
                    filter("Only events that touched a resource of one of these types."),
                ),
                optional(
                    "correlationId",
                    string().min_len(1).max_len(255).describe(
                        "Only the events of one request (its request id) or one command-line run.",
                    ),
                ),
            ])
        })
    }
}

#[derive(Serialize)]
struct ActorData {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

#[derive(Serialize)]
struct LogData {
    id: String,
    time: i64,
    bucket: String,
    event: String,
    description: String,
    actor: ActorData,
    #[serde(rename = "remoteIp", skip_serializing_if = "Option::is_none")]
    remote_ip: Option<String>,
    #[serde(rename = "userAgent", skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
    targets: serde_json::Value,
    #[serde(rename = "correlationId", skip_serializing_if = "Option::is_none")]
    correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<serde_json::Value>,
    /// keyward's hash chain: this event's hash, and its predecessor's.
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<String>,
    #[serde(rename = "previousHash", skip_serializing_if = "Option::is_none")]
    previous_hash: Option<String>,
}

fn log_schema() -> Schema {
    let target = object(vec![
        required("type", string()),
        required("id", string()),
        optional("name", string()),
    ]);
    object(vec![
        required("id", string()),
        required("time", integer()),
        required("bucket", string()),
        required("event", string()),
        required("description", string()),
        required(
            "actor",
            object(vec![
                required("type", string()),
                required("id", string()),
                optional("name", string()),
            ]),
        ),
        optional("remoteIp", string()),
        optional("userAgent", string()),
        required("targets", array(target)),
        optional("correlationId", string()),
        optional("meta", free_object()),
        optional("hash", string()),
        optional("previousHash", string()),
    ])
}

fn log_data(e: StoredAuditEvent) -> LogData {
    LogData {
        id: e.id,
        time: e.time_ms,
        bucket: e.bucket,
        event: e.event,
        description: e.description,
        actor: ActorData {
            kind: e.actor_type,
            id: e.actor_id,
            name: e.actor_name,
        },
        remote_ip: e.remote_ip,
        user_agent: e.user_agent,
        targets: e.targets,
        correlation_id: e.correlation_id,
        meta: e.meta.and_then(|m| serde_json::from_str(&m).ok()),
        hash: e.hash,
        previous_hash: e.prev_hash.filter(|p| !p.is_empty()),
    }
}

fn invalid(location: &str, message: &str) -> ApiError {
    ApiError::invalid_input(
        message,
        vec![FieldError {
            location: location.into(),
            message: message.into(),
            fix: None,
        }],
    )
}

#[tracing::instrument(level = "debug", skip_all)]
async fn get_logs(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<GetLogsRequest>,
) -> Result<ApiResponse<Vec<LogData>>, ApiError> {
    caller.require(&Requirement::one(READ_AUDIT_LOG))?;
    let body_cursor = body.cursor.clone();
    let after_seq = match &body.cursor {
        None => 0,
        Some(cursor) => cursor
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                invalid(
                    "body.cursor",
                    "`cursor` must be the `pagination.cursor` of a previous page.",
                )
            })?,
    };
    if let (Some(start), Some(end)) = (body.start_time, body.end_time) {
        if start > end {
            return Err(invalid(
                "body.endTime",
                "`endTime` must not be before `startTime`.",
            ));
        }
    }
    let query = AuditQuery {
        workspace_id: caller.workspace_id().to_string(),
        after_seq,
        limit: body.limit,
        start_time: body.start_time,
        end_time: body.end_time,
        bucket: body.bucket,
        events: body.events,
        actor_ids: body.actor_ids,
        actor_types: body.actor_types,
        target_ids: body.target_ids,
        target_types: body.target_types,
        correlation_id: body.correlation_id,
    };
    let (events, more) = state.audit.page(&query).await?;
    // The position of the last event, even on the last page for now: a poller resumes there
    // and sees what is written later, without a gap and without a repeat. An empty page keeps
    // the caller's cursor.
    let cursor = events
        .last()
        .map(|last| last.seq.to_string())
        .or(body_cursor);
    Ok(ApiResponse::log_page(
        events.into_iter().map(log_data).collect(),
        cursor,
        more,
    ))
}

pub fn routes() -> Vec<(Operation, MethodRouter<AppState>)> {
    vec![(
        Operation {
            path: "/v2/audit.getLogs",
            method: Method::Post,
            operation_id: "audit.getLogs",
            tag: "audit",
            summary: "keyward's own: read the workspace's audit log in log order, a page at a time",
            permissions: "`audit.*.read_audit_log` (keyward's own permission)",
            request: Some(GetLogsRequest::schema()),
            response: array(log_schema()),
            paginated: true,
            errors: &[400, 401, 403, 413, 500],
        },
        post(get_logs),
    )]
}
