//! `keys.verifyKey`: the hot path, from request to verdict.

use super::*;

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
                request_id,
                now: state.now(),
                started,
            },
        )
        .await
        .map_err(|err| match err {
            VerifyError::NoVerifyPermission => {
                ApiError::new(ErrorCode::InsufficientPermissions, err.to_string())
            }
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
    crate::telemetry::verification(code as usize, code.as_str());
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
            valid: code == crate::domain::keys::verify::VerifyCode::Valid,
            code: code.as_str(),
            key_id: Some(&key.id),
            name: key.name(),
            meta: key.meta(),
            expires: key.expires,
            credits: verdict.remaining,
            enabled: Some(key.enabled),
            identity: key.identity().map(|i| VerifyIdentity {
                id: &i.id,
                external_id: &i.external_id,
                meta: i.meta.as_deref(),
                ratelimits: key.identity_limits().map(ratelimit_data).collect(),
            }),
            permissions: key.permissions(),
            roles: key.roles(),
            ratelimits: verdict
                .ratelimits
                .iter()
                .map(VerifyLimitData::from)
                .collect(),
        },
    };
    Ok(ApiResponse::data(data).into_response())
}

pub(super) fn routes() -> Vec<(Operation, MethodRouter<AppState>)> {
    let op = operation;
    vec![
        (
            Operation {
                // 412: a requested rate limit that neither the key nor its identity has.
                errors: &[400, 401, 403, 404, 412, 413, 500],
                ..op(
                    "/v2/keys.verifyKey",
                    "keys.verifyKey",
                    "Verify a key: every outcome is a 200 with `valid` and `code`",
                    "`api.*.verify_key` or `api.<apiId>.verify_key`; a root key that may verify only other APIs' keys gets NOT_FOUND",
                    VerifyKeyRequest::schema(),
                    verify_data_schema(),
                )
            },
            post(verify_key),
        ),
    ]
}
