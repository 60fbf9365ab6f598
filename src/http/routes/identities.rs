//! `identities.*`: the customers keys belong to. An identity is addressed by its id or by its
//! external id.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Method, Operation};
use crate::domain::identities::{meta_too_large, MAX_META_BYTES};
use crate::domain::rbac::requirement::Requirement;
use crate::http::error::{ApiError, ErrorCode, FieldError};
use crate::http::extract::{Authed, Caller, RequestBody};
use crate::http::schema::{
    array, cached_schema, free_object, integer, object, optional, required, string, Schema,
    EXTERNAL_ID_PATTERN,
};
use crate::http::shapes::{
    limit_inputs, ratelimit_data, ratelimit_data_schema, ratelimit_request_schema, RatelimitData,
    RatelimitRequest,
};
use crate::http::{split_page, ApiResponse, AppState, Meta};
use crate::model::Identity;

const IDENTITY_NOT_FOUND: &str = "This identity does not exist.";

fn identity_action(action: &str) -> Requirement {
    Requirement::one(format!("identity.*.{action}"))
}

/// The serialized meta, refused when over 1 MiB.
fn checked_meta(meta: Option<serde_json::Map<String, Value>>) -> Result<Option<String>, ApiError> {
    let Some(meta) = meta else { return Ok(None) };
    let text = Value::Object(meta).to_string();
    if text.len() > MAX_META_BYTES {
        let detail = meta_too_large(text.len());
        return Err(ApiError::invalid_input(
            detail.clone(),
            vec![FieldError {
                location: "body.meta".into(),
                message: detail,
                fix: Some("Keep identity metadata under 1 MiB; store large data elsewhere and reference it.".into()),
            }],
        ));
    }
    Ok(Some(text))
}

/// `Identity` as responses show it.
#[derive(Serialize)]
struct IdentityData {
    id: String,
    #[serde(rename = "externalId")]
    external_id: String,
    meta: Value,
    ratelimits: Vec<RatelimitData>,
}

fn identity_data(i: &Identity) -> IdentityData {
    IdentityData {
        id: i.id.clone(),
        external_id: i.external_id.clone(),
        meta: i
            .meta
            .as_deref()
            .and_then(|m| serde_json::from_str::<Value>(m).ok())
            .filter(Value::is_object)
            .unwrap_or_else(|| Value::Object(Default::default())),
        ratelimits: i.ratelimits.iter().map(ratelimit_data).collect(),
    }
}

fn identity_schema() -> Schema {
    object(vec![
        required("id", string()),
        required("externalId", string()),
        optional("meta", free_object()),
        optional("ratelimits", array(ratelimit_data_schema())),
    ])
}

async fn find_identity(
    state: &AppState,
    caller: &Caller,
    id_or_external_id: &str,
) -> Result<Identity, ApiError> {
    state
        .identities
        .find(caller.workspace_id(), id_or_external_id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::IdentityNotFound, IDENTITY_NOT_FOUND))
}

// ---- createIdentity ----

#[derive(Deserialize)]
struct CreateIdentityBody {
    #[serde(rename = "externalId")]
    external_id: String,
    meta: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    ratelimits: Vec<RatelimitRequest>,
}

impl RequestBody for CreateIdentityBody {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![
            required(
                "externalId",
                string()
                    .min_len(1)
                    .max_len(255)
                    .pattern(EXTERNAL_ID_PATTERN)
            ),
            optional("meta", free_object().max_properties(100)),
            optional(
                "ratelimits",
                array(ratelimit_request_schema()).max_items(50)
            ),
        ]))
    }
}

#[derive(Serialize)]
struct IdentityIdData {
    #[serde(rename = "identityId")]
    identity_id: String,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn create_identity(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<CreateIdentityBody>,
) -> Result<ApiResponse<IdentityIdData>, ApiError> {
    caller.require(&identity_action("create_identity"))?;
    let meta = checked_meta(body.meta)?;
    let limits = limit_inputs(body.ratelimits)?;
    let created = state
        .identities
        .create(
            state.now(),
            caller.workspace_id(),
            &caller.actor(),
            &body.external_id,
            meta,
            limits,
        )
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::IdentityAlreadyExists,
                format!(
                    "Identity with externalId '{}' already exists in this workspace.",
                    body.external_id
                ),
            )
        })?;
    Ok(ApiResponse::data(IdentityIdData {
        identity_id: created.id,
    }))
}

// ---- getIdentity / deleteIdentity ----

#[derive(Deserialize)]
struct IdentityRef {
    identity: String,
}

impl RequestBody for IdentityRef {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![required(
            "identity",
            string()
                .min_len(1)
                .max_len(255)
                .describe("The identity's id or external id.")
        )]))
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn get_identity(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<IdentityRef>,
) -> Result<ApiResponse<IdentityData>, ApiError> {
    let identity = find_identity(&state, &caller, &body.identity).await?;
    caller.require(&Requirement::any_of([
        "identity.*.read_identity".to_string(),
        format!("identity.{}.read_identity", identity.id),
    ]))?;
    Ok(ApiResponse::data(identity_data(&identity)))
}

/// `{meta}` with no `data`: what `identities.deleteIdentity` answers.
struct MetaOnly;

impl IntoResponse for MetaOnly {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            meta: Meta,
        }
        let bytes = serde_json::to_vec(&Body {
            meta: Meta::current(),
        })
        .unwrap_or_default();
        let mut response = bytes.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn delete_identity(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<IdentityRef>,
) -> Result<MetaOnly, ApiError> {
    caller.require(&identity_action("delete_identity"))?;
    let identity = find_identity(&state, &caller, &body.identity).await?;
    if !state
        .identities
        .delete(state.now(), &caller.actor(), &identity)
        .await?
    {
        return Err(ApiError::new(
            ErrorCode::IdentityNotFound,
            IDENTITY_NOT_FOUND,
        ));
    }
    Ok(MetaOnly)
}

// ---- listIdentities ----

#[derive(Deserialize)]
struct ListIdentitiesBody {
    #[serde(default = "default_limit")]
    limit: i64,
    cursor: Option<String>,
    search: Option<String>,
}

fn default_limit() -> i64 {
    100
}

impl RequestBody for ListIdentitiesBody {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![
            optional("limit", integer().minimum(1).maximum(100).default_int(100)),
            optional("cursor", string().min_len(1).max_len(1024)),
            optional("search", string().max_len(256)),
        ]))
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn list_identities(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<ListIdentitiesBody>,
) -> Result<ApiResponse<Vec<IdentityData>>, ApiError> {
    let search = body.search.as_deref().filter(|s| !s.is_empty());
    let rows = state
        .identities
        .list(
            caller.workspace_id(),
            body.cursor.as_deref(),
            body.limit + 1,
            search,
        )
        .await?;
    let (rows, next) = split_page(rows, body.limit as usize, |i| i.id.clone());
    // Every identity shown must be readable by the caller; one that is not fails the call.
    for identity in &rows {
        caller.require(&Requirement::any_of([
            "identity.*.read_identity".to_string(),
            format!("identity.{}.read_identity", identity.id),
        ]))?;
    }
    if rows.is_empty() {
        caller.require(&identity_action("read_identity"))?;
    }
    Ok(ApiResponse::page(
        rows.iter().map(identity_data).collect(),
        next,
    ))
}

// ---- updateIdentity ----

#[derive(Deserialize)]
struct UpdateIdentityBody {
    identity: String,
    meta: Option<serde_json::Map<String, Value>>,
    ratelimits: Option<Vec<RatelimitRequest>>,
}

impl RequestBody for UpdateIdentityBody {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![
            required("identity", string().min_len(1).max_len(255)),
            optional("meta", free_object().max_properties(100)),
            optional(
                "ratelimits",
                array(ratelimit_request_schema()).max_items(50)
            ),
        ]))
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn update_identity(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<UpdateIdentityBody>,
) -> Result<ApiResponse<IdentityData>, ApiError> {
    caller.require(&identity_action("update_identity"))?;
    let meta = match body.meta {
        Some(meta) => Some(checked_meta(Some(meta))?),
        None => None,
    };
    let limits = body.ratelimits.map(limit_inputs).transpose()?;
    let identity = find_identity(&state, &caller, &body.identity).await?;
    if !state
        .identities
        .update(state.now(), &caller.actor(), &identity, meta, limits)
        .await?
    {
        return Err(ApiError::new(
            ErrorCode::IdentityNotFound,
            IDENTITY_NOT_FOUND,
        ));
    }
    let updated = find_identity(&state, &caller, &identity.id).await?;
    Ok(ApiResponse::data(identity_data(&updated)))
}

pub fn routes() -> Vec<(Operation, MethodRouter<AppState>)> {
    let op = |path, operation_id, summary, permissions, request, response, errors| Operation {
        path,
        method: Method::Post,
        operation_id,
        tag: "identities",
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
                "/v2/identities.createIdentity",
                "identities.createIdentity",
                "Create an identity, with metadata and rate limits its keys share",
                "`identity.*.create_identity`",
                CreateIdentityBody::schema(),
                object(vec![required("identityId", string())]),
                &[400, 401, 403, 409, 413, 500],
            ),
            post(create_identity),
        ),
        (
            op(
                "/v2/identities.getIdentity",
                "identities.getIdentity",
                "Read an identity by id or external id",
                "`identity.*.read_identity` or `identity.<identityId>.read_identity`",
                IdentityRef::schema(),
                identity_schema(),
                &[400, 401, 403, 404, 413, 500],
            ),
            post(get_identity),
        ),
        (
            Operation {
                paginated: true,
                ..op(
                    "/v2/identities.listIdentities",
                    "identities.listIdentities",
                    "List identities, a page at a time; `search` matches id or external id",
                    "`identity.*.read_identity`, or `identity.<identityId>.read_identity` for every identity listed",
                    ListIdentitiesBody::schema(),
                    array(identity_schema()),
                    &[400, 401, 403, 413, 500],
                )
            },
            post(list_identities),
        ),
        (
            op(
                "/v2/identities.updateIdentity",
                "identities.updateIdentity",
                "Replace an identity's metadata and/or rate limits",
                "`identity.*.update_identity`",
                UpdateIdentityBody::schema(),
                identity_schema(),
                &[400, 401, 403, 404, 413, 500],
            ),
            post(update_identity),
        ),
        (
            Operation {
                response: object(vec![]),
                ..op(
                    "/v2/identities.deleteIdentity",
                    "identities.deleteIdentity",
                    "Delete an identity; its keys keep working without it. The answer has no `data`.",
                    "`identity.*.delete_identity`",
                    IdentityRef::schema(),
                    object(vec![]),
                    &[400, 401, 403, 404, 413, 500],
                )
            },
            post(delete_identity),
        ),
    ]
}
