//! What a key holds: `keys.{add,remove,set}Permissions` and `keys.{add,remove,set}Roles`.

use super::*;

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

pub(super) fn routes() -> Vec<(Operation, MethodRouter<AppState>)> {
    let op = operation;
    vec![
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
    ]
}
