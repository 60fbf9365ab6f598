//! `keys.migrateKeys`: importing keys from another system by their hashes.

use super::*;

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
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    ratelimits: Vec<RatelimitRequest>,
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
                    optional(
                        "permissions",
                        slugs_schema(1000).describe(
                            "Direct permissions by slug; missing ones are created."
                        )
                    ),
                    optional(
                        "roles",
                        role_names_schema(100)
                            .describe("Roles by name; missing ones are created, without permissions.")
                    ),
                    optional("ratelimits", array(ratelimit_request_schema()).max_items(50)),
                ]))
                .min_items(1)
                .describe("No item cap: the 10 MiB request body is the limit (over 100,000 keys of a hash each). All keys import in one transaction.")
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
        let refill = import_refill(i, remaining, refill)
            .map_err(|message| ApiError::invalid_input(message, vec![]))?;
        let ratelimits = limit_inputs_at(
            k.ratelimits,
            &format!("body.keys[{i}].ratelimits"),
            &format!("keys[{i}]: "),
        )?;
        keys.push(ImportedKey {
            hash: k.hash,
            name: k.name,
            external_id: k.external_id,
            meta: meta_text(k.meta),
            expires: k.expires,
            enabled: k.enabled,
            remaining: k.credits.and_then(|c| c.remaining),
            refill,
            permissions: k.permissions,
            roles: k.roles,
            ratelimits,
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

pub(super) fn routes() -> Vec<(Operation, MethodRouter<AppState>)> {
    let op = operation;
    vec![(
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
    )]
}
