//! `apis.*`: create, read, delete APIs and list their keys.

use axum::extract::State;
use axum::routing::{post, MethodRouter};
use serde::{Deserialize, Serialize};

use super::keys::vault_missing;
use super::{Method, Operation, AUTH_ERRORS};
use crate::domain::apis::DeleteOutcome;
use crate::domain::keys::recover::Reveal;
use crate::domain::rbac::requirement::Requirement;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::{Authed, Caller, RequestBody};
use crate::http::schema::{
    array, boolean, cached_schema, integer, object, optional, required, string, Schema, ID_PATTERN,
};
use crate::http::{ApiResponse, AppState, Empty};
use crate::model::Api;

use crate::http::shapes::{key_data, key_data_schema, KeyData};

const API_NOT_FOUND: &str = "The requested API does not exist or has been deleted.";

fn api_id_schema() -> Schema {
    string().min_len(8).max_len(255).pattern(ID_PATTERN)
}

/// Looks up a live API of the caller's workspace; 404 when missing, deleted or someone else's.
async fn live_api(state: &AppState, caller: &Caller, api_id: &str) -> Result<Api, ApiError> {
    state
        .apis
        .live(caller.workspace_id(), api_id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::ApiNotFound, API_NOT_FOUND))
}

// ---- apis.createApi ----

#[derive(Deserialize)]
struct CreateApiRequest {
    name: String,
}

impl RequestBody for CreateApiRequest {
    fn schema() -> &'static Schema {
        cached_schema!({
            object(vec![required(
                "name",
                string()
                    .min_len(3)
                    .max_len(256)
                    .describe("A name for the API, for people; not unique."),
            )])
        })
    }
}

#[derive(Serialize)]
struct CreateApiData {
    #[serde(rename = "apiId")]
    api_id: String,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn create_api(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<CreateApiRequest>,
) -> Result<ApiResponse<CreateApiData>, ApiError> {
    caller.require(&Requirement::one("api.*.create_api"))?;
    let api = state
        .apis
        .create(
            state.now(),
            caller.workspace_id(),
            &caller.actor(),
            &body.name,
        )
        .await?;
    Ok(ApiResponse::data(CreateApiData { api_id: api.id }))
}

// ---- apis.getApi ----

#[derive(Deserialize)]
struct ApiIdRequest {
    #[serde(rename = "apiId")]
    api_id: String,
}

impl RequestBody for ApiIdRequest {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![required("apiId", api_id_schema())]))
    }
}

#[derive(Serialize)]
struct GetApiData {
    id: String,
    name: String,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn get_api(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<ApiIdRequest>,
) -> Result<ApiResponse<GetApiData>, ApiError> {
    caller.require(&Requirement::api("read_api", &body.api_id))?;
    let api = live_api(&state, &caller, &body.api_id).await?;
    Ok(ApiResponse::data(GetApiData {
        id: api.id,
        name: api.name,
    }))
}

// ---- apis.deleteApi ----

#[tracing::instrument(level = "debug", skip_all)]
async fn delete_api(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<ApiIdRequest>,
) -> Result<ApiResponse<Empty>, ApiError> {
    caller.require(&Requirement::api("delete_api", &body.api_id))?;
    let api = live_api(&state, &caller, &body.api_id).await?;
    match state
        .apis
        .delete(state.now(), &caller.actor(), &api)
        .await?
    {
        DeleteOutcome::Deleted => Ok(ApiResponse::data(Empty {})),
        DeleteOutcome::Protected => Err(ApiError::new(
            ErrorCode::ProtectedResource,
            "This API has delete protection enabled. Disable it before attempting to delete.",
        )),
        DeleteOutcome::AlreadyGone => Err(ApiError::new(ErrorCode::ApiNotFound, API_NOT_FOUND)),
    }
}

// ---- apis.listKeys ----

#[derive(Deserialize)]
struct ListKeysRequest {
    #[serde(rename = "apiId")]
    api_id: String,
    #[serde(default = "default_limit")]
    limit: usize,
    cursor: Option<String>,
    #[serde(rename = "externalId")]
    external_id: Option<String>,
    #[serde(default)]
    decrypt: bool,
    /// Accepted for compatibility; keyward always reads current state.
    #[serde(default, rename = "revalidateKeysCache")]
    _revalidate_keys_cache: bool,
}

fn default_limit() -> usize {
    100
}

impl RequestBody for ListKeysRequest {
    fn schema() -> &'static Schema {
        cached_schema!({
            object(vec![
                required("apiId", string().min_len(1).max_len(255)),
                optional("limit", integer().minimum(1).maximum(100).default_int(100)),
                optional(
                    "cursor",
                    string()
                        .min_len(1)
                        .max_len(1024)
                        .describe("`pagination.cursor` of the previous page."),
                ),
                optional("externalId", string().min_len(1).max_len(255)),
                optional("decrypt", boolean().default_bool(false)),
                optional(
                    "revalidateKeysCache",
                    boolean().default_bool(false).describe(
                        "Accepted for compatibility; listings always read current state.",
                    ),
                ),
            ])
        })
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn list_keys(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<ListKeysRequest>,
) -> Result<ApiResponse<Vec<KeyData>>, ApiError> {
    let api = live_api(&state, &caller, &body.api_id).await?;
    let may_list = Requirement::api("read_key", &api.id).and(Requirement::api("read_api", &api.id));
    if !caller.may(&may_list) {
        // Masked: a caller who may not list keys learns nothing about the API either.
        return Err(ApiError::new(ErrorCode::ApiNotFound, API_NOT_FOUND));
    }
    if body.decrypt {
        if !state.keys.has_vault() {
            return Err(vault_missing());
        }
        caller.require(&Requirement::api("decrypt_key", &api.id))?;
        if !api.recoverable {
            return Err(ApiError::new(
                ErrorCode::PreconditionFailed,
                "The requested API does not support key encryption.",
            ));
        }
    }
    let page = state
        .apis
        .list_keys(
            &api,
            body.cursor.as_deref(),
            body.limit,
            body.external_id.as_deref(),
        )
        .await?;
    let mut revealed = if body.decrypt {
        let asked: Vec<Reveal> = page
            .items
            .iter()
            .map(|key| Reveal {
                key_id: &key.id,
                name: key.name.as_deref(),
            })
            .collect();
        state
            .keys
            .reveal(
                state.now(),
                &caller.actor(),
                caller.workspace_id(),
                &api.id,
                &asked,
            )
            .await?
    } else {
        Default::default()
    };
    let mut items = Vec::with_capacity(page.items.len());
    for key in page.items {
        let plaintext = revealed.remove(&key.id);
        let mut data = key_data(&state, key).await;
        data.plaintext = plaintext;
        items.push(data);
    }
    Ok(ApiResponse::page(items, page.next_cursor))
}

pub fn routes() -> Vec<(Operation, MethodRouter<AppState>)> {
    vec![
        (
            Operation {
                path: "/v2/apis.createApi",
                method: Method::Post,
                operation_id: "apis.createApi",
                tag: "apis",
                summary: "Create an API, the container keys are issued in",
                permissions: "`api.*.create_api`",
                request: Some(CreateApiRequest::schema()),
                response: object(vec![required("apiId", api_id_schema())]),
                paginated: false,
                errors: AUTH_ERRORS,
            },
            post(create_api),
        ),
        (
            Operation {
                path: "/v2/apis.getApi",
                method: Method::Post,
                operation_id: "apis.getApi",
                tag: "apis",
                summary: "Read an API's id and name",
                permissions: "`api.*.read_api` or `api.<apiId>.read_api`",
                request: Some(ApiIdRequest::schema()),
                response: object(vec![
                    required("id", api_id_schema()),
                    required("name", string().min_len(3).max_len(256)),
                ]),
                paginated: false,
                errors: &[400, 401, 403, 404, 413, 500],
            },
            post(get_api),
        ),
        (
            Operation {
                path: "/v2/apis.deleteApi",
                method: Method::Post,
                operation_id: "apis.deleteApi",
                tag: "apis",
                summary: "Delete an API; its keys stop verifying at once",
                permissions: "`api.*.delete_api` or `api.<apiId>.delete_api`",
                request: Some(ApiIdRequest::schema()),
                response: object(vec![]),
                paginated: false,
                errors: &[400, 401, 403, 404, 412, 413, 500],
            },
            post(delete_api),
        ),
        (
            Operation {
                path: "/v2/apis.listKeys",
                method: Method::Post,
                operation_id: "apis.listKeys",
                tag: "apis",
                summary: "List an API's keys, a page at a time",
                permissions: "(`api.*.read_key` or `api.<apiId>.read_key`) and (`api.*.read_api` or `api.<apiId>.read_api`); without them the API reads as not found",
                request: Some(ListKeysRequest::schema()),
                response: array(key_data_schema()),
                paginated: true,
                errors: &[400, 401, 403, 404, 412, 413, 500],
            },
            post(list_keys),
        ),
    ]
}
