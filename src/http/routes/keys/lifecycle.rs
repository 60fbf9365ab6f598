//! The key lifecycle: `keys.createKey`, `getKey`, `whoami`, `deleteKey`, `updateKey`,
//! `updateCredits` and `rerollKey`.

use super::*;

// ---- keys.createKey ----

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
                    .describe("Keep an encrypted copy of the key, for keys.getKey and apis.listKeys with `decrypt: true`. Needs a server with a master key, an API opted in (`keyward api recoverable`) and `encrypt_key`.")
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
        if !state.keys.has_vault() {
            return Err(vault_missing());
        }
        // Masked like the create_key check: the caller learns nothing of the API.
        if !caller.may(&Requirement::api("encrypt_key", &api.id)) {
            return Err(ApiError::new(
                ErrorCode::ApiNotFound,
                "The specified API was not found.",
            ));
        }
        if !api.recoverable {
            return Err(api_not_recoverable());
        }
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
        recoverable: body.recoverable,
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
    if !body.decrypt {
        return Ok(ApiResponse::data(key_data(&state, key).await));
    }
    if !state.keys.has_vault() {
        return Err(vault_missing());
    }
    caller.require(&Requirement::api("decrypt_key", &key.api_id))?;
    let recoverable_api = state
        .apis
        .live(caller.workspace_id(), &key.api_id)
        .await?
        .is_some_and(|api| api.recoverable);
    if !recoverable_api {
        return Err(ApiError::new(
            ErrorCode::PreconditionFailed,
            "The API for this key does not support key encryption.",
        ));
    }
    let mut revealed = state
        .keys
        .reveal(
            state.now(),
            &caller.actor(),
            caller.workspace_id(),
            &key.api_id,
            &[Reveal {
                key_id: &key.id,
                name: key.name.as_deref(),
            }],
        )
        .await?;
    let plaintext = revealed.remove(&key.id);
    let mut data = key_data(&state, key).await;
    data.plaintext = plaintext;
    Ok(ApiResponse::data(data))
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
    if key.workspace_id() != caller.workspace_id() {
        return Err(ApiError::new(ErrorCode::KeyNotFound, KEY_NOT_FOUND));
    }
    caller.require(&Requirement::api("read_key", key.api_id()))?;
    // The cached row is enough to authorize; show the stored one, with its current usage.
    let row = state
        .keys
        .find_by_id(&key.id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::KeyNotFound, KEY_NOT_FOUND))?;
    Ok(ApiResponse::data(key_data(&state, row).await))
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
    let recoverable = state.keys.is_recoverable(&key.id).await?;
    let mut requirement = Requirement::api("create_key", &key.api_id);
    if recoverable {
        requirement = requirement.and(Requirement::api("encrypt_key", &key.api_id));
    }
    caller.require(&requirement)?;
    let api = state
        .apis
        .live(caller.workspace_id(), &key.api_id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::KeyNotFound, KEY_NOT_FOUND))?;
    if recoverable {
        if !state.keys.has_vault() {
            return Err(vault_missing());
        }
        if !api.recoverable {
            return Err(api_not_recoverable());
        }
    }
    let issued = state
        .keys
        .reroll(
            state.now(),
            &caller.actor(),
            &api,
            &key,
            body.expiration,
            recoverable,
        )
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::KeyNotFound, KEY_NOT_FOUND))?;
    Ok(ApiResponse::data(IssuedData {
        key_id: issued.key_id,
        key: issued.key,
    }))
}

pub(super) fn routes() -> Vec<(Operation, MethodRouter<AppState>)> {
    let op = operation;
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
            Operation {
                // 412: a recoverable key, without the vault or in an API not opted in.
                errors: &[400, 401, 403, 404, 412, 413, 500],
                ..op(
                    "/v2/keys.rerollKey",
                    "keys.rerollKey",
                    "Issue a new key with the same settings; the old one expires after a grace period",
                    "`api.*.create_key` or `api.<apiId>.create_key`",
                    RerollKeyRequest::schema(),
                    object(vec![required("keyId", string()), required("key", string())]),
                )
            },
            post(reroll_key),
        ),
    ]
}
