//! `keys.*`: the key lifecycle and `keys.verifyKey`.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::State;
use axum::routing::{post, MethodRouter};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::{Method, Operation};
use crate::domain::keys::{credits_patch, CreateKeyInput, Interval, KeyError, RefillInput};
use crate::domain::limits::{duplicate_name, LimitInput};
use crate::domain::migrate::{self, ImportedKey};
use crate::domain::permissions::Requirement;
use crate::domain::rbac::{KeyHolding, KeyRbacOutcome, RbacError, SetKind};
use crate::domain::verify::{may_verify_some_keys, VerifyError, VerifyRequest as DomainVerify};
use crate::domain::verify::{CheckedLimit, RequestedLimit};
use crate::http::context::current_request_id;
use crate::http::error::{ApiError, ErrorCode, FieldError};
use crate::http::extract::{Authed, Caller, RequestBody};
use crate::http::schema::{
    array, boolean, cached_schema, free_object, integer, object, optional, required, string,
    Schema, EXTERNAL_ID_PATTERN, ID_PATTERN,
};
use crate::http::{ApiResponse, AppState, Empty};
use crate::ids::{self, Prefix};
use crate::model::{Api, CreditOp, CreditUpdate, KeyPatch, KeyRow, Patch, RatelimitConfig};

use super::permissions::{
    permission_data, permission_schema, role_data, role_schema, PermissionData, RoleData,
    SLUG_PATTERN,
};

const KEY_NOT_FOUND: &str = "The specified key was not found.";
const MAX_EXPIRES: i64 = 4_102_444_800_000;

fn key_id_schema() -> Schema {
    string().min_len(3).max_len(255).pattern(ID_PATTERN)
}

fn meta_schema() -> Schema {
    free_object().max_properties(100)
}

fn refill_schema() -> Schema {
    object(vec![
        required("interval", string().one_of(&["daily", "monthly"])),
        required("amount", integer().minimum(1)),
        optional("refillDay", integer().minimum(1).maximum(31)),
    ])
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
            KeyError::Store(err) => err.into(),
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

/// `RatelimitRequest`: a named limit of a key or identity.
#[derive(Deserialize, Clone)]
pub(super) struct RatelimitRequest {
    name: String,
    limit: i64,
    duration: i64,
    #[serde(default, rename = "autoApply")]
    auto_apply: bool,
}

pub(super) fn ratelimit_request_schema() -> Schema {
    object(vec![
        required("name", string().min_len(3).max_len(128)),
        required("limit", integer().minimum(1)),
        required("duration", integer().minimum(1000).maximum(2_592_000_000)),
        optional("autoApply", boolean().default_bool(false)),
    ])
}

/// Limit requests as the domain takes them; a repeated name is a 400 naming it.
pub(super) fn limit_inputs(requests: Vec<RatelimitRequest>) -> Result<Vec<LimitInput>, ApiError> {
    let inputs: Vec<LimitInput> = requests
        .into_iter()
        .map(|r| LimitInput {
            name: r.name,
            limit: r.limit,
            duration_ms: r.duration,
            auto_apply: r.auto_apply,
        })
        .collect();
    if let Some(name) = duplicate_name(&inputs) {
        return Err(ApiError::invalid_input(
            format!("Ratelimit with name '{name}' is already defined in the request"),
            vec![FieldError {
                location: "body.ratelimits".into(),
                message: format!("duplicate name '{name}'"),
                fix: Some("Give every rate limit a different name.".into()),
            }],
        ));
    }
    Ok(inputs)
}

/// `RatelimitResponse`.
#[derive(Serialize)]
pub(super) struct RatelimitData {
    id: String,
    name: String,
    limit: i64,
    duration: i64,
    #[serde(rename = "autoApply")]
    auto_apply: bool,
}

pub(super) fn ratelimit_data(l: &RatelimitConfig) -> RatelimitData {
    RatelimitData {
        id: l.id.clone(),
        name: l.name.clone(),
        limit: l.limit,
        duration: l.duration_ms,
        auto_apply: l.auto_apply,
    }
}

pub(super) fn ratelimit_data_schema() -> Schema {
    object(vec![
        required("id", string()),
        required("name", string()),
        required("limit", integer()),
        required("duration", integer()),
        required("autoApply", boolean()),
    ])
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

// ---- The key as responses show it ----

#[derive(Serialize)]
pub(super) struct RefillData {
    interval: &'static str,
    amount: i64,
    #[serde(rename = "refillDay", skip_serializing_if = "Option::is_none")]
    refill_day: Option<i64>,
}

#[derive(Serialize)]
pub(super) struct CreditsData {
    remaining: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refill: Option<RefillData>,
}

fn refill_data(amount: Option<i64>, day: Option<i64>) -> Option<RefillData> {
    amount.map(|amount| RefillData {
        interval: if day.is_some() { "monthly" } else { "daily" },
        amount,
        refill_day: day,
    })
}

#[derive(Serialize)]
pub(super) struct IdentityData {
    id: String,
    #[serde(rename = "externalId")]
    external_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ratelimits: Vec<RatelimitData>,
}

/// `KeyResponseData`.
#[derive(Serialize)]
pub(super) struct KeyData {
    #[serde(rename = "keyId")]
    key_id: String,
    start: String,
    enabled: bool,
    #[serde(rename = "createdAt")]
    created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<Value>,
    #[serde(rename = "updatedAt", skip_serializing_if = "Option::is_none")]
    updated_at: Option<i64>,
    #[serde(rename = "lastUsedAt", skip_serializing_if = "Option::is_none")]
    last_used_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credits: Option<CreditsData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<IdentityData>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    permissions: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    roles: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ratelimits: Vec<RatelimitData>,
}

fn json_object(text: Option<&str>) -> Option<Value> {
    serde_json::from_str::<Value>(text?)
        .ok()
        .filter(Value::is_object)
}

/// A key as `keys.getKey`, `keys.whoami` and `apis.listKeys` show it.
pub(super) fn key_data(state: &AppState, key: KeyRow) -> KeyData {
    let remaining = state.keys.remaining(&key, state.now());
    KeyData {
        credits: key.remaining.map(|_| CreditsData {
            remaining,
            refill: refill_data(key.refill_amount, key.refill_day),
        }),
        identity: key.identity.map(|i| IdentityData {
            meta: json_object(i.meta.as_deref()),
            ratelimits: i.ratelimits.iter().map(ratelimit_data).collect(),
            id: i.id,
            external_id: i.external_id,
        }),
        ratelimits: key.ratelimits.iter().map(ratelimit_data).collect(),
        meta: json_object(key.meta.as_deref()),
        permissions: key.permissions,
        roles: key.roles,
        key_id: key.id,
        start: key.start,
        enabled: key.enabled,
        created_at: key.created_at,
        name: key.name,
        updated_at: key.updated_at,
        last_used_at: (key.last_used_at > 0).then_some(key.last_used_at),
        expires: key.expires,
    }
}

pub(super) fn key_data_schema() -> Schema {
    object(vec![
        required("keyId", string()),
        required("start", string()),
        required("enabled", boolean()),
        required("createdAt", integer()),
        optional("name", string()),
        optional("meta", free_object()),
        optional("updatedAt", integer()),
        optional("lastUsedAt", integer()),
        optional("expires", integer()),
        optional("credits", credits_data_schema()),
        optional(
            "identity",
            object(vec![
                required("id", string()),
                required("externalId", string()),
                optional("meta", free_object()),
                optional("ratelimits", array(ratelimit_data_schema())),
            ]),
        ),
        optional("permissions", array(string())),
        optional("roles", array(string())),
        optional("ratelimits", array(ratelimit_data_schema())),
    ])
}

fn credits_data_schema() -> Schema {
    object(vec![
        required("remaining", integer().nullable()),
        optional("refill", refill_schema()),
    ])
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

fn vault_missing() -> ApiError {
    ApiError::new(
        ErrorCode::PreconditionFailed,
        "Vault hasn't been set up: keyward cannot store or decrypt recoverable keys yet.",
    )
}

// ---- keys.createKey ----

#[derive(Deserialize)]
struct CreditsRequest {
    remaining: Option<i64>,
    refill: Option<RefillRequest>,
}

#[derive(Deserialize)]
struct CreateKeyRequest {
    #[serde(rename = "apiId")]
    api_id: String,
    prefix: Option<String>,
    name: Option<String>,
    #[serde(rename = "byteLength")]
    byte_length: Option<usize>,
    #[serde(rename = "externalId")]
    external_id: Option<String>,
    meta: Option<serde_json::Map<String, Value>>,
    expires: Option<i64>,
    credits: Option<CreditsRequest>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    recoverable: bool,
    permissions: Option<Vec<String>>,
    roles: Option<Vec<String>>,
    #[serde(default)]
    ratelimits: Vec<RatelimitRequest>,
}

fn yes() -> bool {
    true
}

impl RequestBody for CreateKeyRequest {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![
            required("apiId", string().min_len(3).max_len(255).pattern(ID_PATTERN)),
            optional("prefix", string().min_len(1).max_len(16).pattern(ID_PATTERN)),
            optional("name", string().min_len(1).max_len(255)),
            optional("byteLength", integer().minimum(16).maximum(255).default_int(16)),
            optional(
                "externalId",
                string().min_len(1).max_len(255).pattern(EXTERNAL_ID_PATTERN)
            ),
            optional("meta", meta_schema()),
            optional("expires", integer().minimum(0).maximum(MAX_EXPIRES)),
            optional(
                "credits",
                object(vec![
                    required("remaining", integer().minimum(0).nullable()),
                    optional("refill", refill_schema()),
                ])
            ),
            optional("enabled", boolean().default_bool(true)),
            optional("permissions", slugs_schema(1000)),
            optional("roles", role_names_schema(100)),
            optional("ratelimits", array(ratelimit_request_schema()).max_items(50)),
            optional(
                "recoverable",
                boolean()
                    .default_bool(false)
                    .describe("Recoverable keys need a vault, which keyward does not have yet: true answers 412.")
            ),
        ]))
    }
}

#[derive(Serialize)]
struct IssuedData {
    #[serde(rename = "keyId")]
    key_id: String,
    key: String,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn create_key(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<CreateKeyRequest>,
) -> Result<ApiResponse<IssuedData>, ApiError> {
    let api = api_for_keys(
        &state,
        &caller,
        &body.api_id,
        &Requirement::api("create_key", &body.api_id),
    )
    .await?;
    if body.recoverable {
        return Err(vault_missing());
    }
    let ratelimits = limit_inputs(body.ratelimits)?;
    let now = state.now();
    let actor = caller.actor();
    let key_id = ids::new_id(Prefix::Key);
    let (rbac, rbac_events) = state
        .rbac
        .key_change_for(
            now,
            &actor,
            &KeyHolding {
                key_id: &key_id,
                key_name: body.name.as_deref(),
                workspace_id: caller.workspace_id(),
                permissions: Vec::new(),
                roles: Vec::new(),
            },
            body.permissions.map(|p| (SetKind::Set, p)),
            body.roles.map(|r| (SetKind::Set, r)),
        )
        .await?;
    let input = CreateKeyInput {
        prefix: body.prefix,
        name: body.name,
        byte_length: body.byte_length,
        external_id: body.external_id,
        meta: meta_text(body.meta),
        expires: body.expires,
        remaining: body.credits.as_ref().map(|c| c.remaining),
        refill: body.credits.and_then(|c| c.refill).map(RefillInput::from),
        enabled: body.enabled,
        key_id,
        rbac,
        rbac_events,
        ratelimits,
    };
    let issued = state.keys.create(now, &actor, &api, input).await?;
    Ok(ApiResponse::data(IssuedData {
        key_id: issued.key_id,
        key: issued.key,
    }))
}

// ---- keys.getKey ----

#[derive(Deserialize)]
struct GetKeyRequest {
    #[serde(rename = "keyId")]
    key_id: String,
    #[serde(default)]
    decrypt: bool,
}

impl RequestBody for GetKeyRequest {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![
            required("keyId", key_id_schema()),
            optional("decrypt", boolean().default_bool(false)),
        ]))
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn get_key(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<GetKeyRequest>,
) -> Result<ApiResponse<KeyData>, ApiError> {
    let key = live_key(&state, &caller, &body.key_id).await?;
    caller.require(&Requirement::api("read_key", &key.api_id))?;
    if body.decrypt {
        return Err(vault_missing());
    }
    Ok(ApiResponse::data(key_data(&state, key)))
}

// ---- keys.whoami ----

#[derive(Deserialize)]
struct WhoamiRequest {
    key: String,
}

impl RequestBody for WhoamiRequest {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![required(
            "key",
            string().min_len(1).max_len(512)
        )]))
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn whoami(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<WhoamiRequest>,
) -> Result<ApiResponse<KeyData>, ApiError> {
    let found = state.keys.find_by_plaintext(&body.key).await?;
    let Some(key) = found.filter(|k| !k.api_deleted) else {
        return Err(ApiError::new(
            ErrorCode::KeyNotFound,
            "We could not find the requested key.",
        ));
    };
    if *key.workspace_id != *caller.workspace_id() {
        return Err(ApiError::new(ErrorCode::KeyNotFound, KEY_NOT_FOUND));
    }
    caller.require(&Requirement::api("read_key", &key.api_id))?;
    // The cached row is enough to authorize; show the stored one, with its current usage.
    let row = state
        .keys
        .find_by_id(&key.id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::KeyNotFound, KEY_NOT_FOUND))?;
    Ok(ApiResponse::data(key_data(&state, row)))
}

// ---- keys.deleteKey ----

#[derive(Deserialize)]
struct DeleteKeyRequest {
    #[serde(rename = "keyId")]
    key_id: String,
    #[serde(default)]
    permanent: bool,
}

impl RequestBody for DeleteKeyRequest {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![
            required("keyId", key_id_schema()),
            optional("permanent", boolean().default_bool(false)),
        ]))
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn delete_key(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<DeleteKeyRequest>,
) -> Result<ApiResponse<Empty>, ApiError> {
    let key = live_key(&state, &caller, &body.key_id).await?;
    caller.require(&Requirement::api("delete_key", &key.api_id))?;
    if !state
        .keys
        .delete(state.now(), &caller.actor(), &key, body.permanent)
        .await?
    {
        return Err(ApiError::new(ErrorCode::KeyNotFound, KEY_NOT_FOUND));
    }
    Ok(ApiResponse::data(Empty {}))
}

// ---- keys.updateKey ----

#[derive(Deserialize)]
struct UpdateCreditsRequest {
    #[serde(default, deserialize_with = "tri_state")]
    remaining: Option<Option<i64>>,
    #[serde(default, deserialize_with = "tri_state")]
    refill: Option<Option<RefillRequest>>,
}

#[derive(Deserialize)]
struct UpdateKeyRequest {
    #[serde(rename = "keyId")]
    key_id: String,
    #[serde(default, deserialize_with = "tri_state")]
    name: Option<Option<String>>,
    #[serde(default, rename = "externalId", deserialize_with = "tri_state")]
    external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "tri_state")]
    meta: Option<Option<serde_json::Map<String, Value>>>,
    #[serde(default, deserialize_with = "tri_state")]
    expires: Option<Option<i64>>,
    #[serde(default, deserialize_with = "tri_state")]
    credits: Option<Option<UpdateCreditsRequest>>,
    enabled: Option<bool>,
    permissions: Option<Vec<String>>,
    roles: Option<Vec<String>>,
    ratelimits: Option<Vec<RatelimitRequest>>,
}

impl RequestBody for UpdateKeyRequest {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![
            required("keyId", key_id_schema()),
            optional("name", string().min_len(1).max_len(255).nullable()),
            optional(
                "externalId",
                string()
                    .min_len(1)
                    .max_len(255)
                    .pattern(EXTERNAL_ID_PATTERN)
                    .nullable()
            ),
            optional("meta", meta_schema().nullable()),
            optional(
                "expires",
                integer().minimum(0).maximum(MAX_EXPIRES).nullable()
            ),
            optional(
                "credits",
                object(vec![
                    optional("remaining", integer().minimum(0).nullable()),
                    optional("refill", refill_schema().nullable()),
                ])
                .nullable()
            ),
            optional("enabled", boolean()),
            optional("permissions", slugs_schema(1000)),
            optional("roles", role_names_schema(100)),
            optional(
                "ratelimits",
                array(ratelimit_request_schema()).max_items(50)
            ),
        ]))
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn update_key(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<UpdateKeyRequest>,
) -> Result<ApiResponse<Empty>, ApiError> {
    let key = live_key(&state, &caller, &body.key_id).await?;
    caller.require(&Requirement::api("update_key", &key.api_id))?;
    let credits = match body.credits {
        None => None,
        Some(None) => Some(credits_patch(Patch::Clear, Patch::Keep)?),
        Some(Some(c)) => Some(credits_patch(
            patch(c.remaining),
            patch(c.refill.map(|r| r.map(RefillInput::from))),
        )?),
    };
    let ratelimits = body.ratelimits.map(limit_inputs).transpose()?;
    let now = state.now();
    let (rbac, rbac_events) = if body.permissions.is_some() || body.roles.is_some() {
        let holding = state.rbac.holding(&key).await?;
        state
            .rbac
            .key_change_for(
                now,
                &caller.actor(),
                &holding,
                body.permissions.map(|p| (SetKind::Set, p)),
                body.roles.map(|r| (SetKind::Set, r)),
            )
            .await?
    } else {
        Default::default()
    };
    let changes = KeyPatch {
        name: patch(body.name),
        meta: patch(body.meta.map(meta_text)),
        expires: patch(body.expires),
        enabled: body.enabled,
        external_id: patch(body.external_id),
        new_identity_id: String::new(),
        credits,
        rbac,
        ratelimits: None,
    };
    if !state
        .keys
        .update(now, &caller.actor(), &key, changes, rbac_events, ratelimits)
        .await?
    {
        return Err(ApiError::new(ErrorCode::KeyNotFound, KEY_NOT_FOUND));
    }
    Ok(ApiResponse::data(Empty {}))
}

// ---- keys.updateCredits ----

#[derive(Deserialize)]
struct UpdateCreditsBody {
    #[serde(rename = "keyId")]
    key_id: String,
    operation: String,
    value: Option<i64>,
}

impl RequestBody for UpdateCreditsBody {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![
            required("keyId", string().min_len(3).max_len(255)),
            required(
                "operation",
                string().one_of(&["set", "increment", "decrement"])
            ),
            optional("value", integer().minimum(0).nullable()),
        ]))
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn update_credits(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<UpdateCreditsBody>,
) -> Result<ApiResponse<CreditsData>, ApiError> {
    let key = live_key(&state, &caller, &body.key_id).await?;
    caller.require(&Requirement::api("update_key", &key.api_id))?;
    let needs_value = || {
        ApiError::invalid_input(
            "When specifying an increment or decrement operation, a value must be provided.",
            vec![FieldError {
                location: "body.value".into(),
                message: "required for increment and decrement".into(),
                fix: Some("Send the amount to add or remove as 'value'.".into()),
            }],
        )
    };
    let op = match (body.operation.as_str(), body.value) {
        ("set", value) => CreditOp::Set(value),
        ("increment", Some(v)) => CreditOp::Increment(v),
        ("decrement", Some(v)) => CreditOp::Decrement(v),
        _ => return Err(needs_value()),
    };
    match state
        .keys
        .update_credits(state.now(), &caller.actor(), &key, op)
        .await?
    {
        CreditUpdate::Done(credits) => Ok(ApiResponse::data(CreditsData {
            remaining: credits.remaining,
            refill: refill_data(credits.refill_amount, credits.refill_day),
        })),
        CreditUpdate::Unlimited => Err(ApiError::invalid_input(
            "You cannot increment or decrement a key with unlimited credits.",
            vec![FieldError {
                location: "body.operation".into(),
                message: "the key has unlimited credits".into(),
                fix: Some("Use operation 'set' to give the key a balance first.".into()),
            }],
        )),
        CreditUpdate::NotFound => Err(ApiError::new(ErrorCode::KeyNotFound, KEY_NOT_FOUND)),
    }
}

// ---- keys.rerollKey ----

#[derive(Deserialize)]
struct RerollKeyRequest {
    #[serde(rename = "keyId")]
    key_id: String,
    expiration: i64,
}

impl RequestBody for RerollKeyRequest {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![
            required("keyId", key_id_schema()),
            required(
                "expiration",
                integer()
                    .minimum(0)
                    .maximum(MAX_EXPIRES)
                    .describe("How long the old key keeps working, in milliseconds (rounded up to a minute; 0: it stops at once).")
            ),
        ]))
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn reroll_key(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<RerollKeyRequest>,
) -> Result<ApiResponse<IssuedData>, ApiError> {
    let key = live_key(&state, &caller, &body.key_id).await?;
    caller.require(&Requirement::api("create_key", &key.api_id))?;
    let api = state
        .apis
        .live(caller.workspace_id(), &key.api_id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::KeyNotFound, KEY_NOT_FOUND))?;
    let issued = state
        .keys
        .reroll(state.now(), &caller.actor(), &api, &key, body.expiration)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::KeyNotFound, KEY_NOT_FOUND))?;
    Ok(ApiResponse::data(IssuedData {
        key_id: issued.key_id,
        key: issued.key,
    }))
}

// ---- keys.migrateKeys ----

#[derive(Deserialize)]
struct MigrateKey {
    hash: String,
    name: Option<String>,
    #[serde(rename = "externalId")]
    external_id: Option<String>,
    meta: Option<serde_json::Map<String, Value>>,
    expires: Option<i64>,
    #[serde(default = "yes")]
    enabled: bool,
    credits: Option<CreditsRequest>,
}

#[derive(Deserialize)]
struct MigrateKeysRequest {
    #[serde(rename = "migrationId")]
    migration_id: String,
    #[serde(rename = "apiId")]
    api_id: String,
    keys: Vec<MigrateKey>,
}

impl RequestBody for MigrateKeysRequest {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![
            required("migrationId", string().min_len(3).max_len(255)),
            required("apiId", string().min_len(3).max_len(255)),
            required(
                "keys",
                array(object(vec![
                    required("hash", string().min_len(3)),
                    optional("name", string().min_len(1).max_len(255)),
                    optional("externalId", string().min_len(1).max_len(255)),
                    optional("meta", meta_schema()),
                    optional("expires", integer().minimum(0).maximum(MAX_EXPIRES)),
                    optional("enabled", boolean().default_bool(true)),
                    optional(
                        "credits",
                        object(vec![
                            required("remaining", integer().minimum(0).nullable()),
                            optional("refill", refill_schema()),
                        ])
                    ),
                ]))
                .min_items(1)
                .max_items(10_000)
            ),
        ]))
    }
}

#[derive(Serialize)]
struct MigratedKey {
    hash: String,
    #[serde(rename = "keyId")]
    key_id: String,
}

#[derive(Serialize)]
struct MigrateData {
    migrated: Vec<MigratedKey>,
    failed: Vec<String>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn migrate_keys(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<MigrateKeysRequest>,
) -> Result<ApiResponse<MigrateData>, ApiError> {
    caller.require(&Requirement::api("create_key", &body.api_id))?;
    let api = state
        .apis
        .live(caller.workspace_id(), &body.api_id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::ApiNotFound,
                "The requested API does not exist or has been deleted.",
            )
        })?;
    let migration = state
        .migrations
        .find(caller.workspace_id(), &body.migration_id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::MigrationNotFound,
                "The requested Migration does not exist or has been deleted.",
            )
        })?;
    let mut keys = Vec::with_capacity(body.keys.len());
    for (i, k) in body.keys.into_iter().enumerate() {
        let remaining = k.credits.as_ref().and_then(|c| c.remaining);
        let refill = k
            .credits
            .as_ref()
            .and_then(|c| c.refill)
            .map(RefillInput::from);
        let refill = migrate::import_refill(i, remaining, refill)
            .map_err(|message| ApiError::invalid_input(message, vec![]))?;
        keys.push(ImportedKey {
            hash: k.hash,
            name: k.name,
            external_id: k.external_id,
            meta: meta_text(k.meta),
            expires: k.expires,
            enabled: k.enabled,
            remaining: k.credits.and_then(|c| c.remaining),
            refill,
        });
    }
    let result = state
        .migrations
        .import(state.now(), &caller.actor(), &api, &migration, keys)
        .await?;
    Ok(ApiResponse::data(MigrateData {
        migrated: result
            .migrated
            .into_iter()
            .map(|(hash, key_id)| MigratedKey { hash, key_id })
            .collect(),
        failed: result.failed,
    }))
}

// ---- keys.{add,remove,set}Permissions and keys.{add,remove,set}Roles ----

/// `{keyId, permissions}`; `MIN` is the least number of slugs (1 to add or remove, 0 to set).
#[derive(Deserialize)]
struct KeyPermissionsBody<const MIN: usize> {
    #[serde(rename = "keyId")]
    key_id: String,
    permissions: Vec<String>,
}

impl<const MIN: usize> RequestBody for KeyPermissionsBody<MIN> {
    fn schema() -> &'static Schema {
        static AT_LEAST_ONE: OnceLock<Schema> = OnceLock::new();
        static ANY: OnceLock<Schema> = OnceLock::new();
        let build = || {
            object(vec![
                required("keyId", key_id_schema()),
                required("permissions", slugs_schema(1000).min_items(MIN)),
            ])
        };
        if MIN == 0 {
            ANY.get_or_init(build)
        } else {
            AT_LEAST_ONE.get_or_init(build)
        }
    }
}

/// `{keyId, roles}`; `MIN` as above.
#[derive(Deserialize)]
struct KeyRolesBody<const MIN: usize> {
    #[serde(rename = "keyId")]
    key_id: String,
    roles: Vec<String>,
}

impl<const MIN: usize> RequestBody for KeyRolesBody<MIN> {
    fn schema() -> &'static Schema {
        static AT_LEAST_ONE: OnceLock<Schema> = OnceLock::new();
        static ANY: OnceLock<Schema> = OnceLock::new();
        let build = || {
            object(vec![
                required("keyId", key_id_schema()),
                required("roles", role_names_schema(100).min_items(MIN)),
            ])
        };
        if MIN == 0 {
            ANY.get_or_init(build)
        } else {
            AT_LEAST_ONE.get_or_init(build)
        }
    }
}

async fn change_key_permissions(
    state: &AppState,
    caller: &Caller,
    key_id: &str,
    slugs: &[String],
    kind: SetKind,
) -> Result<ApiResponse<Vec<PermissionData>>, ApiError> {
    let key = live_key(state, caller, key_id).await?;
    let rbac_action = |action: &str| Requirement::one(format!("rbac.*.{action}"));
    let needed = match kind {
        SetKind::Add => rbac_action("add_permission_to_key"),
        SetKind::Remove => rbac_action("remove_permission_from_key"),
        SetKind::Set => {
            rbac_action("add_permission_to_key").and(rbac_action("remove_permission_from_key"))
        }
    };
    caller.require(&Requirement::api("update_key", &key.api_id).and(needed))?;
    let create = rbac_action("create_permission");
    let outcome = state
        .rbac
        .change_key_permissions(
            state.now(),
            &caller.actor(),
            &key,
            kind,
            slugs,
            caller.may(&create),
        )
        .await?;
    match outcome {
        KeyRbacOutcome::Done(permissions) => Ok(ApiResponse::data(
            permissions.into_iter().map(permission_data).collect(),
        )),
        KeyRbacOutcome::NeedsCreate => Err(caller.require(&create).err().unwrap_or_else(|| {
            ApiError::internal("a permission check disagreed with itself".to_string())
        })),
        KeyRbacOutcome::KeyGone => Err(ApiError::new(ErrorCode::KeyNotFound, KEY_NOT_FOUND)),
    }
}

async fn change_key_roles(
    state: &AppState,
    caller: &Caller,
    key_id: &str,
    names: &[String],
    kind: SetKind,
) -> Result<ApiResponse<Vec<RoleData>>, ApiError> {
    let key = live_key(state, caller, key_id).await?;
    let mut needed = Requirement::api("update_key", &key.api_id);
    if kind == SetKind::Add {
        needed = needed.and(Requirement::one("rbac.*.add_role_to_key"));
    }
    caller.require(&needed)?;
    let outcome = state
        .rbac
        .change_key_roles(state.now(), &caller.actor(), &key, kind, names)
        .await?;
    match outcome {
        KeyRbacOutcome::Done(roles) => Ok(ApiResponse::data(
            roles.into_iter().map(role_data).collect(),
        )),
        KeyRbacOutcome::NeedsCreate | KeyRbacOutcome::KeyGone => {
            Err(ApiError::new(ErrorCode::KeyNotFound, KEY_NOT_FOUND))
        }
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn add_permissions(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<KeyPermissionsBody<1>>,
) -> Result<ApiResponse<Vec<PermissionData>>, ApiError> {
    change_key_permissions(
        &state,
        &caller,
        &body.key_id,
        &body.permissions,
        SetKind::Add,
    )
    .await
}

#[tracing::instrument(level = "debug", skip_all)]
async fn remove_permissions(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<KeyPermissionsBody<1>>,
) -> Result<ApiResponse<Vec<PermissionData>>, ApiError> {
    change_key_permissions(
        &state,
        &caller,
        &body.key_id,
        &body.permissions,
        SetKind::Remove,
    )
    .await
}

#[tracing::instrument(level = "debug", skip_all)]
async fn set_permissions(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<KeyPermissionsBody<0>>,
) -> Result<ApiResponse<Vec<PermissionData>>, ApiError> {
    change_key_permissions(
        &state,
        &caller,
        &body.key_id,
        &body.permissions,
        SetKind::Set,
    )
    .await
}

#[tracing::instrument(level = "debug", skip_all)]
async fn add_roles(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<KeyRolesBody<1>>,
) -> Result<ApiResponse<Vec<RoleData>>, ApiError> {
    change_key_roles(&state, &caller, &body.key_id, &body.roles, SetKind::Add).await
}

#[tracing::instrument(level = "debug", skip_all)]
async fn remove_roles(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<KeyRolesBody<1>>,
) -> Result<ApiResponse<Vec<RoleData>>, ApiError> {
    change_key_roles(&state, &caller, &body.key_id, &body.roles, SetKind::Remove).await
}

#[tracing::instrument(level = "debug", skip_all)]
async fn set_roles(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<KeyRolesBody<0>>,
) -> Result<ApiResponse<Vec<RoleData>>, ApiError> {
    change_key_roles(&state, &caller, &body.key_id, &body.roles, SetKind::Set).await
}

// ---- keys.verifyKey ----

#[derive(Deserialize)]
struct VerifyCredits {
    cost: i64,
}

#[derive(Deserialize)]
struct VerifyLimitRequest {
    name: String,
    cost: Option<i64>,
    limit: Option<i64>,
    duration: Option<i64>,
}

#[derive(Deserialize)]
struct VerifyKeyRequest {
    key: String,
    #[serde(default)]
    tags: Vec<String>,
    permissions: Option<String>,
    #[serde(default)]
    ratelimits: Vec<VerifyLimitRequest>,
    credits: Option<VerifyCredits>,
    #[serde(rename = "migrationId")]
    migration_id: Option<String>,
}

impl RequestBody for VerifyKeyRequest {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![
            required("key", string().min_len(1).max_len(512)),
            optional(
                "tags",
                array(string().min_len(1).max_len(512)).max_items(20)
            ),
            optional(
                "permissions",
                string().min_len(1).max_len(1000).describe(
                    "A permission query, e.g. `docs.read AND (billing.admin OR billing.view)`."
                )
            ),
            optional(
                "credits",
                object(vec![required(
                    "cost",
                    integer().minimum(0).maximum(1_000_000_000_000)
                )])
            ),
            optional(
                "ratelimits",
                array(object(vec![
                    required("name", string().min_len(3).max_len(255)),
                    optional("cost", integer().minimum(0).default_int(1)),
                    optional("limit", integer().minimum(0)),
                    optional("duration", integer().minimum(0)),
                ]))
                .max_items(100)
            ),
            optional("migrationId", string().max_len(256)),
        ]))
    }
}

#[derive(Serialize)]
struct VerifyIdentity<'a> {
    id: &'a str,
    #[serde(rename = "externalId")]
    external_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ratelimits: Vec<RatelimitData>,
}

/// One checked limit in a verify response.
#[derive(Serialize)]
struct VerifyLimitData<'a> {
    exceeded: bool,
    id: &'a str,
    name: &'a str,
    limit: i64,
    duration: i64,
    reset: i64,
    remaining: i64,
    #[serde(rename = "autoApply")]
    auto_apply: bool,
}

impl<'a> From<&'a CheckedLimit> for VerifyLimitData<'a> {
    fn from(c: &'a CheckedLimit) -> Self {
        VerifyLimitData {
            exceeded: c.exceeded,
            id: &c.id,
            name: &c.name,
            limit: c.limit,
            duration: c.duration_ms,
            reset: c.reset,
            remaining: c.remaining,
            auto_apply: c.auto_apply,
        }
    }
}

#[derive(Serialize)]
struct VerifyData<'a> {
    valid: bool,
    code: &'static str,
    #[serde(rename = "keyId", skip_serializing_if = "Option::is_none")]
    key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credits: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<VerifyIdentity<'a>>,
    #[serde(skip_serializing_if = "<[Box<str>]>::is_empty")]
    permissions: &'a [Box<str>],
    #[serde(skip_serializing_if = "<[Box<str>]>::is_empty")]
    roles: &'a [Box<str>],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ratelimits: Vec<VerifyLimitData<'a>>,
}

fn verify_data_schema() -> Schema {
    object(vec![
        required("valid", boolean()),
        required(
            "code",
            string().one_of(&[
                "VALID",
                "NOT_FOUND",
                "FORBIDDEN",
                "INSUFFICIENT_PERMISSIONS",
                "USAGE_EXCEEDED",
                "RATE_LIMITED",
                "DISABLED",
                "EXPIRED",
            ]),
        ),
        optional("keyId", string()),
        optional("name", string()),
        optional("meta", free_object()),
        optional("expires", integer()),
        optional("credits", integer()),
        optional("enabled", boolean()),
        optional(
            "identity",
            object(vec![
                required("id", string()),
                required("externalId", string()),
                optional("meta", free_object()),
                optional("ratelimits", array(ratelimit_data_schema())),
            ]),
        ),
        optional("permissions", array(string())),
        optional("roles", array(string())),
        optional(
            "ratelimits",
            array(object(vec![
                required("exceeded", boolean()),
                required("id", string()),
                required("name", string()),
                required("limit", integer()),
                required("duration", integer()),
                required("reset", integer()),
                required("remaining", integer()),
                required("autoApply", boolean()),
            ])),
        ),
    ])
}

#[tracing::instrument(level = "debug", skip_all)]
async fn verify_key(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<VerifyKeyRequest>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let started = Instant::now();
    if !may_verify_some_keys(&caller.principal) {
        return Err(ApiError::new(
            ErrorCode::InsufficientPermissions,
            "Missing one of these permissions: 'api.*.verify_key' or 'api.<apiId>.verify_key'",
        ));
    }
    let request_id = current_request_id();
    let requested: Vec<RequestedLimit> = body
        .ratelimits
        .into_iter()
        .map(|r| RequestedLimit {
            name: r.name,
            cost: r.cost,
            limit: r.limit,
            duration_ms: r.duration,
        })
        .collect();
    let verdict = state
        .keys
        .verify(
            &caller.principal,
            DomainVerify {
                key: &body.key,
                tags: &body.tags,
                credits_cost: body.credits.map(|c| c.cost),
                permissions: body.permissions.as_deref(),
                ratelimits: &requested,
                migration_id: body.migration_id.as_deref(),
                client_ip: &|| caller.remote_ip(),
                request_id: &request_id,
                now: state.now(),
                started,
            },
        )
        .await
        .map_err(|err| match err {
            VerifyError::MalformedMigratedKey => {
                ApiError::new(ErrorCode::AuthenticationMalformed, "Invalid key format")
            }
            VerifyError::UnknownAlgorithm(alg) => {
                ApiError::internal(format!("migration uses unknown algorithm {alg}"))
            }
            VerifyError::Query(err) => {
                ApiError::new(ErrorCode::PermissionsQuerySyntaxError, err.message)
            }
            VerifyError::UnknownLimit(detail) => {
                ApiError::new(ErrorCode::PreconditionFailed, detail)
            }
            VerifyError::BadLimit(detail) => ApiError::invalid_input(
                detail.clone(),
                vec![FieldError {
                    location: "body.ratelimits".into(),
                    message: detail,
                    fix: Some("Give ad-hoc limits a duration of at least 1000 ms.".into()),
                }],
            ),
            VerifyError::Counters(err) => ApiError::internal(err),
            VerifyError::Store(err) => err.into(),
        })?;
    let code = verdict.code;
    let data = match &verdict.key {
        None => VerifyData {
            valid: false,
            code: code.as_str(),
            key_id: None,
            name: None,
            meta: None,
            expires: None,
            credits: None,
            enabled: None,
            identity: None,
            permissions: &[],
            roles: &[],
            ratelimits: Vec::new(),
        },
        Some(key) => VerifyData {
            valid: code == crate::domain::verify::VerifyCode::Valid,
            code: code.as_str(),
            key_id: Some(&key.id),
            name: key.name.as_deref(),
            meta: key.meta.as_deref(),
            expires: key.expires,
            credits: verdict.remaining,
            enabled: Some(key.enabled),
            identity: key.identity.as_ref().map(|i| VerifyIdentity {
                id: &i.id,
                external_id: &i.external_id,
                meta: i.meta.as_deref(),
                // The identity's limits not shadowed by a key limit of the same name.
                ratelimits: i
                    .ratelimits
                    .iter()
                    .filter(|l| !key.ratelimits.iter().any(|k| k.name == l.name))
                    .map(ratelimit_data)
                    .collect(),
            }),
            permissions: &key.permissions,
            roles: &key.roles,
            ratelimits: verdict
                .ratelimits
                .iter()
                .map(VerifyLimitData::from)
                .collect(),
        },
    };
    Ok(ApiResponse::data(data).into_response())
}

pub fn routes() -> Vec<(Operation, MethodRouter<AppState>)> {
    const ERRORS: &[u16] = &[400, 401, 403, 404, 413, 500];
    let op = |path, operation_id, summary, permissions, request, response| Operation {
        path,
        method: Method::Post,
        operation_id,
        tag: "keys",
        summary,
        permissions,
        request: Some(request),
        response,
        paginated: false,
        errors: ERRORS,
    };
    vec![
        (
            Operation {
                errors: &[400, 401, 403, 404, 412, 413, 500],
                ..op(
                    "/v2/keys.createKey",
                    "keys.createKey",
                    "Create a key; the plaintext is returned this once",
                    "`api.*.create_key` or `api.<apiId>.create_key`; without them the API reads as not found",
                    CreateKeyRequest::schema(),
                    object(vec![required("keyId", string()), required("key", string())]),
                )
            },
            post(create_key),
        ),
        (
            Operation {
                errors: &[400, 401, 403, 404, 412, 413, 500],
                ..op(
                    "/v2/keys.getKey",
                    "keys.getKey",
                    "Read a key by id",
                    "`api.*.read_key` or `api.<apiId>.read_key`",
                    GetKeyRequest::schema(),
                    key_data_schema(),
                )
            },
            post(get_key),
        ),
        (
            op(
                "/v2/keys.whoami",
                "keys.whoami",
                "Read a key by its plaintext",
                "`api.*.read_key` or `api.<apiId>.read_key`",
                WhoamiRequest::schema(),
                key_data_schema(),
            ),
            post(whoami),
        ),
        (
            op(
                "/v2/keys.deleteKey",
                "keys.deleteKey",
                "Delete a key (soft, or for good with `permanent`)",
                "`api.*.delete_key` or `api.<apiId>.delete_key`",
                DeleteKeyRequest::schema(),
                object(vec![]),
            ),
            post(delete_key),
        ),
        (
            op(
                "/v2/keys.updateKey",
                "keys.updateKey",
                "Change a key: absent fields stay, null clears, a value sets",
                "`api.*.update_key` or `api.<apiId>.update_key`",
                UpdateKeyRequest::schema(),
                object(vec![]),
            ),
            post(update_key),
        ),
        (
            op(
                "/v2/keys.updateCredits",
                "keys.updateCredits",
                "Set, increment or decrement a key's credits",
                "`api.*.update_key` or `api.<apiId>.update_key`",
                UpdateCreditsBody::schema(),
                credits_data_schema(),
            ),
            post(update_credits),
        ),
        (
            op(
                "/v2/keys.rerollKey",
                "keys.rerollKey",
                "Issue a new key with the same settings; the old one expires after a grace period",
                "`api.*.create_key` or `api.<apiId>.create_key`",
                RerollKeyRequest::schema(),
                object(vec![required("keyId", string()), required("key", string())]),
            ),
            post(reroll_key),
        ),
        (
            op(
                "/v2/keys.migrateKeys",
                "keys.migrateKeys",
                "Import keys from another system by their hashes",
                "`api.*.create_key` or `api.<apiId>.create_key`",
                MigrateKeysRequest::schema(),
                object(vec![
                    required(
                        "migrated",
                        array(object(vec![
                            required("hash", string()),
                            required("keyId", string()),
                        ])),
                    ),
                    required("failed", array(string())),
                ]),
            ),
            post(migrate_keys),
        ),
        (
            op(
                "/v2/keys.addPermissions",
                "keys.addPermissions",
                "Give a key permissions directly (missing ones are created)",
                "(`api.*.update_key` or `api.<apiId>.update_key`) and `rbac.*.add_permission_to_key`; to create missing ones also `rbac.*.create_permission`",
                KeyPermissionsBody::<1>::schema(),
                array(permission_schema()),
            ),
            post(add_permissions),
        ),
        (
            op(
                "/v2/keys.removePermissions",
                "keys.removePermissions",
                "Take direct permissions away from a key",
                "(`api.*.update_key` or `api.<apiId>.update_key`) and `rbac.*.remove_permission_from_key`",
                KeyPermissionsBody::<1>::schema(),
                array(permission_schema()),
            ),
            post(remove_permissions),
        ),
        (
            op(
                "/v2/keys.setPermissions",
                "keys.setPermissions",
                "Replace a key's direct permissions (missing ones are created)",
                "(`api.*.update_key` or `api.<apiId>.update_key`) and `rbac.*.add_permission_to_key` and `rbac.*.remove_permission_from_key`; to create missing ones also `rbac.*.create_permission`",
                KeyPermissionsBody::<0>::schema(),
                array(permission_schema()),
            ),
            post(set_permissions),
        ),
        (
            op(
                "/v2/keys.addRoles",
                "keys.addRoles",
                "Give a key roles",
                "(`api.*.update_key` or `api.<apiId>.update_key`) and `rbac.*.add_role_to_key`",
                KeyRolesBody::<1>::schema(),
                array(role_schema()),
            ),
            post(add_roles),
        ),
        (
            op(
                "/v2/keys.removeRoles",
                "keys.removeRoles",
                "Take roles away from a key",
                "`api.*.update_key` or `api.<apiId>.update_key`",
                KeyRolesBody::<1>::schema(),
                array(role_schema()),
            ),
            post(remove_roles),
        ),
        (
            op(
                "/v2/keys.setRoles",
                "keys.setRoles",
                "Replace a key's roles",
                "`api.*.update_key` or `api.<apiId>.update_key`",
                KeyRolesBody::<0>::schema(),
                array(role_schema()),
            ),
            post(set_roles),
        ),
        (
            op(
                "/v2/keys.verifyKey",
                "keys.verifyKey",
                "Verify a key: every outcome is a 200 with `valid` and `code`",
                "`api.*.verify_key` or `api.<apiId>.verify_key`; a root key that may verify only other APIs' keys gets NOT_FOUND",
                VerifyKeyRequest::schema(),
                verify_data_schema(),
            ),
            post(verify_key),
        ),
    ]
}
