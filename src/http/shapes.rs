//! Request and response shapes several routes share: named rate limits, keys, permissions and
//! roles as the wire shows them.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::domain::ratelimit::named::{duplicate_name, LimitInput};
use crate::http::error::ApiError;
use crate::http::error::FieldError;
use crate::http::schema::{
    array, boolean, free_object, integer, object, optional, required, string, Schema,
};
use crate::http::AppState;
use crate::model::{KeyRow, Permission, RatelimitConfig, Role};

/// `RatelimitRequest`: a named limit of a key or identity.
#[derive(Deserialize, Clone)]
pub struct RatelimitRequest {
    pub name: String,
    pub limit: i64,
    pub duration: i64,
    #[serde(default, rename = "autoApply")]
    pub auto_apply: bool,
}

pub fn ratelimit_request_schema() -> Schema {
    object(vec![
        required("name", string().min_len(3).max_len(128)),
        required("limit", integer().minimum(1)),
        required("duration", integer().minimum(1000).maximum(2_592_000_000)),
        optional("autoApply", boolean().default_bool(false)),
    ])
}

/// Limit requests as the domain takes them; a repeated name is a 400 naming it.
pub fn limit_inputs(requests: Vec<RatelimitRequest>) -> Result<Vec<LimitInput>, ApiError> {
    limit_inputs_at(requests, "body.ratelimits", "")
}

/// [`limit_inputs`] for limits at `location`; `detail_prefix` starts the detail (e.g. `keys[3]: `).
pub fn limit_inputs_at(
    requests: Vec<RatelimitRequest>,
    location: &str,
    detail_prefix: &str,
) -> Result<Vec<LimitInput>, ApiError> {
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
            format!(
                "{detail_prefix}Ratelimit with name '{name}' is already defined in the request"
            ),
            vec![FieldError {
                location: location.to_string(),
                message: format!("duplicate name '{name}'"),
                fix: Some("Give every rate limit a different name.".into()),
            }],
        ));
    }
    Ok(inputs)
}

/// `RatelimitResponse`.
#[derive(Serialize)]
pub struct RatelimitData {
    pub id: String,
    pub name: String,
    pub limit: i64,
    pub duration: i64,
    #[serde(rename = "autoApply")]
    pub auto_apply: bool,
}

pub fn ratelimit_data(l: &RatelimitConfig) -> RatelimitData {
    RatelimitData {
        id: l.id.clone(),
        name: l.name.clone(),
        limit: l.limit,
        duration: l.duration_ms,
        auto_apply: l.auto_apply,
    }
}

pub fn ratelimit_data_schema() -> Schema {
    object(vec![
        required("id", string()),
        required("name", string()),
        required("limit", integer()),
        required("duration", integer()),
        required("autoApply", boolean()),
    ])
}

/// A refill schedule, as requests and responses spell it.
pub fn refill_schema() -> Schema {
    object(vec![
        required("interval", string().one_of(&["daily", "monthly"])),
        required("amount", integer().minimum(1)),
        optional("refillDay", integer().minimum(1).maximum(31)),
    ])
}

// ---- The key as responses show it ----

#[derive(Serialize)]
pub struct RefillData {
    pub interval: &'static str,
    pub amount: i64,
    #[serde(rename = "refillDay", skip_serializing_if = "Option::is_none")]
    pub refill_day: Option<i64>,
}

#[derive(Serialize)]
pub struct CreditsData {
    pub remaining: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refill: Option<RefillData>,
}

pub fn refill_data(amount: Option<i64>, day: Option<i64>) -> Option<RefillData> {
    amount.map(|amount| RefillData {
        interval: if day.is_some() { "monthly" } else { "daily" },
        amount,
        refill_day: day,
    })
}

#[derive(Serialize)]
pub struct IdentityData {
    pub id: String,
    #[serde(rename = "externalId")]
    pub external_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ratelimits: Vec<RatelimitData>,
}

/// `KeyResponseData`.
#[derive(Serialize)]
pub struct KeyData {
    #[serde(rename = "keyId")]
    pub key_id: String,
    pub start: String,
    pub enabled: bool,
    #[serde(rename = "createdAt")]
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    #[serde(rename = "updatedAt", skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
    #[serde(rename = "lastUsedAt", skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<CreditsData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityData>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ratelimits: Vec<RatelimitData>,
    /// A recoverable key's plaintext, with `decrypt: true` only; wiped when the response is.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "plaintext")]
    pub plaintext: Option<Zeroizing<String>>,
}

fn plaintext<S: serde::Serializer>(
    value: &Option<Zeroizing<String>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(text) => serializer.serialize_str(text),
        None => serializer.serialize_none(),
    }
}

pub fn json_object(text: Option<&str>) -> Option<Value> {
    serde_json::from_str::<Value>(text?)
        .ok()
        .filter(Value::is_object)
}

/// A key as `keys.getKey`, `keys.whoami` and `apis.listKeys` show it.
pub async fn key_data(state: &AppState, key: KeyRow) -> KeyData {
    let remaining = state.keys.remaining(&key, state.now()).await;
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
        plaintext: None,
    }
}

pub fn key_data_schema() -> Schema {
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
        optional("plaintext", string()),
    ])
}

pub fn credits_data_schema() -> Schema {
    object(vec![
        required("remaining", integer().nullable()),
        optional("refill", refill_schema()),
    ])
}

/// A permission as responses show it.
#[derive(Serialize)]
pub struct PermissionData {
    pub id: String,
    pub name: String,
    pub slug: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

pub fn permission_data(p: Permission) -> PermissionData {
    PermissionData {
        id: p.id,
        name: p.name,
        slug: p.slug,
        description: p.description,
    }
}

pub fn permission_schema() -> Schema {
    object(vec![
        required("id", string()),
        required("name", string()),
        required("slug", string()),
        optional("description", string()),
    ])
}

/// A role as responses show it.
#[derive(Serialize)]
pub struct RoleData {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub permissions: Vec<PermissionData>,
}

pub fn role_data(r: Role) -> RoleData {
    RoleData {
        id: r.id,
        name: r.name,
        description: r.description,
        permissions: r.permissions.into_iter().map(permission_data).collect(),
    }
}

pub fn role_schema() -> Schema {
    object(vec![
        required("id", string()),
        required("name", string()),
        optional("description", string()),
        optional("permissions", array(permission_schema())),
    ])
}
