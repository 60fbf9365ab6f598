//! `ratelimit.*`: standalone rate limiting and its overrides.
//!
//! Namespaces are addressed by name or id and created on first use (which needs
//! `ratelimit.*.create_namespace`); a deleted namespace answers 410 to limit calls and 404 to
//! override calls.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::routing::{post, MethodRouter};
use serde::{Deserialize, Serialize};

use super::{Method, Operation};
use crate::domain::ratelimit::namespaces::{match_override, LimitRequest, Requested};
use crate::domain::rbac::requirement::Requirement;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::{Authed, Caller, RequestBody};
use crate::http::schema::{
    array, boolean, cached_schema, integer, object, optional, required, string, Schema,
};
use crate::http::scope::current_request_id;
use crate::http::{split_page, ApiResponse, AppState, Empty};
use crate::model::{Namespace, Override};

const MAX_DURATION: i64 = 2_592_000_000;
const NAMESPACE_GONE: &str =
    "This namespace has been deleted. An operator can restore it or you can use another name.";
const NAMESPACE_NOT_FOUND: &str = "This namespace does not exist.";
const OVERRIDE_NOT_FOUND: &str = "This override does not exist.";

fn namespace_schema() -> Schema {
    string()
        .min_len(1)
        .max_len(512)
        .describe("The namespace's name or id.")
}

fn identifier_schema() -> Schema {
    string().min_len(1).max_len(512)
}

/// `ratelimit.<nsId>.<action> OR ratelimit.*.<action>`.
fn on_namespace(action: &str, namespace_id: &str) -> Requirement {
    Requirement::any_of([
        format!("ratelimit.{namespace_id}.{action}"),
        format!("ratelimit.*.{action}"),
    ])
}

fn gone() -> ApiError {
    ApiError::new(ErrorCode::RatelimitNamespaceGone, NAMESPACE_GONE)
}

/// A live namespace for the override routes: missing or deleted is a 404.
async fn existing_namespace(
    state: &AppState,
    caller: &Caller,
    name_or_id: &str,
) -> Result<Arc<Namespace>, ApiError> {
    match state
        .limits
        .namespace(caller.workspace_id(), name_or_id)
        .await?
    {
        Some(ns) if !ns.deleted => Ok(ns),
        _ => Err(ApiError::new(
            ErrorCode::RatelimitNamespaceNotFound,
            NAMESPACE_NOT_FOUND,
        )),
    }
}

/// The namespace for a limit call: created on first use, 410 when deleted.
async fn namespace_for_limit(
    state: &AppState,
    caller: &Caller,
    name_or_id: &str,
) -> Result<Arc<Namespace>, ApiError> {
    match state
        .limits
        .namespace(caller.workspace_id(), name_or_id)
        .await?
    {
        Some(ns) if ns.deleted => Err(gone()),
        Some(ns) => Ok(ns),
        None => {
            caller.require(&Requirement::one("ratelimit.*.create_namespace"))?;
            let ns = state
                .limits
                .create_namespace(
                    state.now(),
                    caller.workspace_id(),
                    &caller.actor(),
                    name_or_id,
                )
                .await?;
            if ns.deleted {
                return Err(gone());
            }
            Ok(ns)
        }
    }
}

// ---- ratelimit.limit ----

#[derive(Deserialize)]
struct LimitBody {
    namespace: String,
    identifier: String,
    limit: i64,
    duration: i64,
    #[serde(default = "one")]
    cost: i64,
}

fn one() -> i64 {
    1
}

fn limit_body_schema() -> Schema {
    object(vec![
        required("namespace", namespace_schema()),
        required("identifier", identifier_schema()),
        required("limit", integer().minimum(1)),
        required("duration", integer().minimum(1000).maximum(MAX_DURATION)),
        optional("cost", integer().minimum(0).default_int(1)),
    ])
}

impl RequestBody for LimitBody {
    fn schema() -> &'static Schema {
        cached_schema!(limit_body_schema())
    }
}

#[derive(Serialize)]
struct LimitData {
    limit: i64,
    remaining: i64,
    reset: i64,
    success: bool,
    #[serde(rename = "overrideId", skip_serializing_if = "Option::is_none")]
    override_id: Option<String>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn limit(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<LimitBody>,
) -> Result<ApiResponse<LimitData>, ApiError> {
    let started = Instant::now();
    let ns = namespace_for_limit(&state, &caller, &body.namespace).await?;
    caller.require_scoped("ratelimit", &ns.id, "limit")?;
    let decisions = state
        .limits
        .limit(
            &[LimitRequest {
                namespace: &ns,
                identifier: &body.identifier,
                limit: body.limit,
                duration_ms: body.duration,
                cost: body.cost,
            }],
            state.now(),
            Requested {
                request_id: current_request_id(),
                started,
            },
        )
        .await
        .map_err(ApiError::internal)?;
    let decision = decisions
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("no decision for a limit check"))?;
    Ok(ApiResponse::data(LimitData {
        limit: decision.limit,
        remaining: decision.outcome.remaining,
        reset: decision.outcome.reset,
        success: decision.outcome.passed,
        override_id: decision.override_id,
    }))
}

// ---- ratelimit.multiLimit ----

#[derive(Deserialize)]
#[serde(transparent)]
struct MultiLimitBody(Vec<LimitBody>);

impl RequestBody for MultiLimitBody {
    fn schema() -> &'static Schema {
        cached_schema!(array(limit_body_schema()).min_items(1).max_items(100))
    }
}

#[derive(Serialize)]
struct MultiLimitItem {
    namespace: String,
    identifier: String,
    limit: i64,
    remaining: i64,
    reset: i64,
    passed: bool,
    #[serde(rename = "overrideId", skip_serializing_if = "Option::is_none")]
    override_id: Option<String>,
}

#[derive(Serialize)]
struct MultiLimitData {
    passed: bool,
    limits: Vec<MultiLimitItem>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn multi_limit(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<MultiLimitBody>,
) -> Result<ApiResponse<MultiLimitData>, ApiError> {
    let started = Instant::now();
    let items = body.0;
    // Look every namespace up first: a deleted one fails the whole batch before anything else.
    let mut namespaces = Vec::with_capacity(items.len());
    for item in &items {
        let found = state
            .limits
            .namespace(caller.workspace_id(), &item.namespace)
            .await?;
        if found.as_ref().is_some_and(|ns| ns.deleted) {
            return Err(gone());
        }
        namespaces.push(found);
    }
    if namespaces.iter().any(Option::is_none) {
        caller.require(&Requirement::one("ratelimit.*.create_namespace"))?;
    }
    let mut resolved = Vec::with_capacity(items.len());
    for (item, found) in items.iter().zip(namespaces) {
        resolved.push(match found {
            Some(ns) => ns,
            None => namespace_for_limit(&state, &caller, &item.namespace).await?,
        });
    }
    let every = resolved.iter().fold(None::<Requirement>, |acc, ns| {
        let one = Requirement::one(format!("ratelimit.{}.limit", ns.id));
        Some(match acc {
            None => one,
            Some(acc) => acc.and(one),
        })
    });
    let needed = match every {
        Some(every) => Requirement::Or(vec![Requirement::one("ratelimit.*.limit"), every]),
        None => Requirement::one("ratelimit.*.limit"),
    };
    caller.require(&needed)?;
    let requests: Vec<LimitRequest<'_>> = items
        .iter()
        .zip(&resolved)
        .map(|(item, ns)| LimitRequest {
            namespace: ns,
            identifier: &item.identifier,
            limit: item.limit,
            duration_ms: item.duration,
            cost: item.cost,
        })
        .collect();
    let decisions = state
        .limits
        .limit(
            &requests,
            state.now(),
            Requested {
                request_id: current_request_id(),
                started,
            },
        )
        .await
        .map_err(ApiError::internal)?;
    let passed = decisions.iter().all(|d| d.outcome.passed);
    let limits = items
        .into_iter()
        .zip(decisions)
        .map(|(item, d)| MultiLimitItem {
            namespace: item.namespace,
            identifier: item.identifier,
            limit: d.limit,
            remaining: d.outcome.remaining,
            reset: d.outcome.reset,
            passed: d.outcome.passed,
            override_id: d.override_id,
        })
        .collect();
    Ok(ApiResponse::data(MultiLimitData { passed, limits }))
}

// ---- overrides ----

#[derive(Deserialize)]
struct SetOverrideBody {
    namespace: String,
    identifier: String,
    limit: i64,
    duration: i64,
}

impl RequestBody for SetOverrideBody {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![
            required("namespace", namespace_schema()),
            required(
                "identifier",
                identifier_schema().describe(
                    "An identifier, or a pattern where `*` matches any run of characters."
                )
            ),
            required(
                "limit",
                integer()
                    .minimum(0)
                    .describe("0 blocks the identifier entirely.")
            ),
            required("duration", integer().minimum(1000).maximum(MAX_DURATION)),
        ]))
    }
}

#[derive(Serialize)]
struct OverrideIdData {
    #[serde(rename = "overrideId")]
    override_id: String,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn set_override(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<SetOverrideBody>,
) -> Result<ApiResponse<OverrideIdData>, ApiError> {
    let ns = existing_namespace(&state, &caller, &body.namespace).await?;
    caller.require(&on_namespace("set_override", &ns.id))?;
    let override_id = state
        .limits
        .set_override(
            state.now(),
            &caller.actor(),
            &ns,
            &body.identifier,
            body.limit,
            body.duration,
        )
        .await?;
    Ok(ApiResponse::data(OverrideIdData { override_id }))
}

#[derive(Deserialize)]
struct OverrideRef {
    namespace: String,
    identifier: String,
}

impl RequestBody for OverrideRef {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![
            required("namespace", namespace_schema()),
            required("identifier", identifier_schema()),
        ]))
    }
}

#[derive(Serialize)]
struct OverrideData {
    #[serde(rename = "overrideId")]
    override_id: String,
    duration: i64,
    identifier: String,
    limit: i64,
}

fn override_data(o: &Override) -> OverrideData {
    OverrideData {
        override_id: o.id.clone(),
        duration: o.duration_ms,
        identifier: o.identifier.clone(),
        limit: o.limit,
    }
}

fn override_schema() -> Schema {
    object(vec![
        required("overrideId", string()),
        required("duration", integer()),
        required("identifier", string()),
        required("limit", integer()),
    ])
}

#[tracing::instrument(level = "debug", skip_all)]
async fn get_override(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<OverrideRef>,
) -> Result<ApiResponse<OverrideData>, ApiError> {
    let ns = existing_namespace(&state, &caller, &body.namespace).await?;
    let not_found = || ApiError::new(ErrorCode::RatelimitOverrideNotFound, OVERRIDE_NOT_FOUND);
    let found = match_override(&ns, &body.identifier).ok_or_else(not_found)?;
    // Masked: a caller who may not read overrides cannot tell whether one exists.
    if !caller.may(&on_namespace("read_override", &ns.id)) {
        return Err(not_found());
    }
    Ok(ApiResponse::data(override_data(found)))
}

#[tracing::instrument(level = "debug", skip_all)]
async fn delete_override(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<OverrideRef>,
) -> Result<ApiResponse<Empty>, ApiError> {
    let ns = existing_namespace(&state, &caller, &body.namespace).await?;
    caller.require(&on_namespace("delete_override", &ns.id))?;
    let not_found = || ApiError::new(ErrorCode::RatelimitOverrideNotFound, OVERRIDE_NOT_FOUND);
    let found = ns
        .overrides
        .iter()
        .find(|o| o.identifier == body.identifier)
        .ok_or_else(not_found)?;
    if !state
        .limits
        .delete_override(state.now(), &caller.actor(), &ns, found)
        .await?
    {
        return Err(not_found());
    }
    Ok(ApiResponse::data(Empty {}))
}

#[derive(Deserialize)]
struct ListOverridesBody {
    namespace: String,
    cursor: Option<String>,
    #[serde(default = "default_list_limit")]
    limit: i64,
}

fn default_list_limit() -> i64 {
    50
}

impl RequestBody for ListOverridesBody {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![
            required("namespace", namespace_schema()),
            optional("cursor", string().min_len(1).max_len(1024)),
            optional("limit", integer().minimum(1).maximum(100).default_int(50)),
        ]))
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn list_overrides(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<ListOverridesBody>,
) -> Result<ApiResponse<Vec<OverrideData>>, ApiError> {
    let ns = existing_namespace(&state, &caller, &body.namespace).await?;
    caller.require(&on_namespace("read_override", &ns.id))?;
    let rows = state
        .limits
        .list_overrides(&ns.id, body.cursor.as_deref(), body.limit + 1)
        .await?;
    let (rows, next) = split_page(rows, body.limit as usize, |o| o.id.clone());
    Ok(ApiResponse::page(
        rows.iter().map(override_data).collect(),
        next,
    ))
}

pub fn routes() -> Vec<(Operation, MethodRouter<AppState>)> {
    let op = |path, operation_id, summary, permissions, request, response, errors| Operation {
        path,
        method: Method::Post,
        operation_id,
        tag: "ratelimit",
        summary,
        permissions,
        request: Some(request),
        response,
        paginated: false,
        errors,
    };
    vec![
        (
            op(
                "/v2/ratelimit.limit",
                "ratelimit.limit",
                "Check and count one request against a limit",
                "`ratelimit.*.limit` or `ratelimit.<namespaceId>.limit`; a new namespace also needs `ratelimit.*.create_namespace`",
                LimitBody::schema(),
                object(vec![
                    required("limit", integer()),
                    required("remaining", integer()),
                    required("reset", integer()),
                    required("success", boolean()),
                    optional("overrideId", string()),
                ]),
                &[400, 401, 403, 410, 413, 500],
            ),
            post(limit),
        ),
        (
            op(
                "/v2/ratelimit.multiLimit",
                "ratelimit.multiLimit",
                "Check several limits at once: all are counted, or none",
                "`ratelimit.*.limit`, or `ratelimit.<namespaceId>.limit` for every namespace; new namespaces also need `ratelimit.*.create_namespace`",
                MultiLimitBody::schema(),
                object(vec![
                    required("passed", boolean()),
                    required(
                        "limits",
                        array(object(vec![
                            required("namespace", string()),
                            required("identifier", string()),
                            required("limit", integer()),
                            required("remaining", integer()),
                            required("reset", integer()),
                            required("passed", boolean()),
                            optional("overrideId", string()),
                        ])),
                    ),
                ]),
                &[400, 401, 403, 410, 413, 500],
            ),
            post(multi_limit),
        ),
        (
            op(
                "/v2/ratelimit.setOverride",
                "ratelimit.setOverride",
                "Give an identifier (or a wildcard pattern) its own limit",
                "`ratelimit.*.set_override` or `ratelimit.<namespaceId>.set_override`",
                SetOverrideBody::schema(),
                object(vec![required("overrideId", string())]),
                &[400, 401, 403, 404, 413, 500],
            ),
            post(set_override),
        ),
        (
            op(
                "/v2/ratelimit.getOverride",
                "ratelimit.getOverride",
                "Read the override that applies to an identifier",
                "`ratelimit.*.read_override` or `ratelimit.<namespaceId>.read_override`; without them the override reads as not found",
                OverrideRef::schema(),
                override_schema(),
                &[400, 401, 403, 404, 413, 500],
            ),
            post(get_override),
        ),
        (
            op(
                "/v2/ratelimit.deleteOverride",
                "ratelimit.deleteOverride",
                "Delete the override of exactly this identifier",
                "`ratelimit.*.delete_override` or `ratelimit.<namespaceId>.delete_override`",
                OverrideRef::schema(),
                object(vec![]),
                &[400, 401, 403, 404, 413, 500],
            ),
            post(delete_override),
        ),
        (
            Operation {
                paginated: true,
                ..op(
                    "/v2/ratelimit.listOverrides",
                    "ratelimit.listOverrides",
                    "List a namespace's overrides, a page at a time",
                    "`ratelimit.*.read_override` or `ratelimit.<namespaceId>.read_override`",
                    ListOverridesBody::schema(),
                    array(override_schema()),
                    &[400, 401, 403, 404, 413, 500],
                )
            },
            post(list_overrides),
        ),
    ]
}
