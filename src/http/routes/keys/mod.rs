//! `keys.*`: what the key routes share (request pieces, lookups, error mapping) and the
//! operation table, made of the four concerns below.

mod lifecycle;
mod migrate;
mod rbac;
mod verify;

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::State;
use axum::routing::{post, MethodRouter};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::{Method, Operation};
use crate::domain::keys::migrate::{import_refill, ImportedKey};
use crate::domain::keys::recover::Reveal;
use crate::domain::keys::verify::{CheckedLimit, RequestedLimit};
use crate::domain::keys::verify::{VerifyError, VerifyRequest as DomainVerify};
use crate::domain::keys::{credits_patch, CreateKeyInput, Interval, KeyError, RefillInput};
use crate::domain::rbac::requirement::Requirement;
use crate::domain::rbac::{KeyHolding, KeyRbacOutcome, RbacError, SetKind};
use crate::domain::vault::VaultError;
use crate::http::error::{ApiError, ErrorCode, FieldError};
use crate::http::extract::{Authed, Caller, RequestBody};
use crate::http::schema::{
    array, boolean, cached_schema, free_object, integer, object, optional, required, string,
    Schema, EXTERNAL_ID_PATTERN, ID_PATTERN,
};
use crate::http::scope::current_request_id;
use crate::http::{ApiResponse, AppState, Empty};
use crate::ids::{self, Prefix};
use crate::model::{Api, CreditOp, CreditUpdate, KeyPatch, KeyRow, Patch};

use super::permissions::SLUG_PATTERN;
use crate::http::shapes::*;

const KEY_NOT_FOUND: &str = "The specified key was not found.";
const MAX_EXPIRES: i64 = 4_102_444_800_000;

fn key_id_schema() -> Schema {
    string().min_len(3).max_len(255).pattern(ID_PATTERN)
}

fn meta_schema() -> Schema {
    free_object().max_properties(100)
}

/// Reads a field that may be absent (outer `None`), `null` (`Some(None)`) or a value.
fn tri_state<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

fn patch<T>(field: Option<Option<T>>) -> Patch<T> {
    match field {
        None => Patch::Keep,
        Some(None) => Patch::Clear,
        Some(Some(v)) => Patch::Set(v),
    }
}

fn meta_text(meta: Option<serde_json::Map<String, Value>>) -> Option<String> {
    meta.map(|m| Value::Object(m).to_string())
}

impl From<KeyError> for ApiError {
    fn from(err: KeyError) -> Self {
        match err {
            KeyError::Invalid { field, message } => ApiError::invalid_input(
                message.clone(),
                vec![FieldError {
                    location: format!("body.{field}"),
                    message,
                    fix: None,
                }],
            ),
            KeyError::VaultMissing => vault_missing(),
            KeyError::Vault(VaultError::Store(err)) | KeyError::Store(err) => err.into(),
            KeyError::Vault(err) => {
                tracing::error!(error = %err, "vault: a key could not be sealed");
                ApiError::new(
                    ErrorCode::ServiceUnavailable,
                    "Failed to encrypt key in vault.",
                )
            }
        }
    }
}

impl From<RbacError> for ApiError {
    fn from(err: RbacError) -> Self {
        match err {
            RbacError::PermissionNotFound(_) => {
                ApiError::new(ErrorCode::PermissionNotFound, err.to_string())
            }
            RbacError::RoleNotFound(_) => ApiError::new(ErrorCode::RoleNotFound, err.to_string()),
            RbacError::Store(err) => err.into(),
        }
    }
}

fn slugs_schema(max: usize) -> Schema {
    array(string().min_len(1).max_len(128).pattern(SLUG_PATTERN)).max_items(max)
}

fn role_names_schema(max: usize) -> Schema {
    array(string().min_len(1).max_len(128)).max_items(max)
}

#[derive(Deserialize, Clone, Copy)]
struct RefillRequest {
    interval: IntervalName,
    amount: i64,
    #[serde(rename = "refillDay")]
    refill_day: Option<i64>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum IntervalName {
    Daily,
    Monthly,
}

impl From<RefillRequest> for RefillInput {
    fn from(r: RefillRequest) -> Self {
        RefillInput {
            interval: match r.interval {
                IntervalName::Daily => Interval::Daily,
                IntervalName::Monthly => Interval::Monthly,
            },
            amount: r.amount,
            refill_day: r.refill_day,
        }
    }
}

#[derive(Deserialize)]
struct CreditsRequest {
    remaining: Option<i64>,
    refill: Option<RefillRequest>,
}

fn yes() -> bool {
    true
}

/// The caller's live key by id; 404 when missing, deleted, in a deleted API or someone else's.
async fn live_key(state: &AppState, caller: &Caller, key_id: &str) -> Result<KeyRow, ApiError> {
    match state.keys.find_by_id(key_id).await? {
        Some(key) if key.workspace_id == caller.workspace_id() && !key.api_deleted => Ok(key),
        _ => Err(ApiError::new(ErrorCode::KeyNotFound, KEY_NOT_FOUND)),
    }
}

/// The caller's live API for a key operation; `masked` hides it when the caller may not act.
async fn api_for_keys(
    state: &AppState,
    caller: &Caller,
    api_id: &str,
    requirement: &Requirement,
) -> Result<Api, ApiError> {
    let not_found = || ApiError::new(ErrorCode::ApiNotFound, "The specified API was not found.");
    let api = state
        .apis
        .live(caller.workspace_id(), api_id)
        .await?
        .ok_or_else(not_found)?;
    if !caller.may(requirement) {
        return Err(not_found());
    }
    Ok(api)
}

/// 412 for a recoverable key, or a decrypt, on a server started without a master key.
pub(in crate::http) fn vault_missing() -> ApiError {
    ApiError::new(ErrorCode::PreconditionFailed, "Vault hasn't been set up.")
}

/// 412 for a recoverable key in an API that has not opted in (`keyward api recoverable`).
fn api_not_recoverable() -> ApiError {
    ApiError::new(
        ErrorCode::PreconditionFailed,
        "This API does not support key encryption.",
    )
}

/// A keys operation: POST, tagged `keys`, with the usual error statuses.
fn operation(
    path: &'static str,
    operation_id: &'static str,
    summary: &'static str,
    permissions: &'static str,
    request: &'static Schema,
    response: Schema,
) -> Operation {
    Operation {
        path,
        method: Method::Post,
        operation_id,
        tag: "keys",
        summary,
        permissions,
        request: Some(request),
        response,
        paginated: false,
        errors: &[400, 401, 403, 404, 413, 500],
    }
}

/// Every `keys.*` operation, in the order the OpenAPI document lists them.
pub fn routes() -> Vec<(Operation, MethodRouter<AppState>)> {
    let mut routes = lifecycle::routes();
    routes.extend(migrate::routes());
    routes.extend(rbac::routes());
    routes.extend(verify::routes());
    routes
}
