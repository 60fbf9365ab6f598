//! `permissions.*`: the permissions and roles of a workspace. Every route authorizes before it
//! looks anything up, with `rbac.*` permissions.

use axum::extract::State;
use axum::routing::{post, MethodRouter};
use serde::{Deserialize, Serialize};

use super::{Method, Operation};
use crate::domain::rbac;
use crate::domain::rbac::requirement::Requirement;
use crate::http::error::{ApiError, ErrorCode, FieldError};
use crate::http::extract::{Authed, Caller, RequestBody};
use crate::http::schema::{
    array, cached_schema, integer, object, optional, required, string, Pattern, Schema,
};
use crate::http::shapes::{
    permission_data, permission_schema, role_data, role_schema, PermissionData, RoleData,
};
use crate::http::{split_page, ApiResponse, AppState, Empty};
use crate::model::{Permission, Role};

/// `^[a-zA-Z0-9_:\-\.\*]+$`: permission slugs.
pub const SLUG_PATTERN: Pattern = Pattern {
    source: "^[a-zA-Z0-9_:\\-\\.\\*]+$",
    matches: |s| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-' | b'.' | b'*'))
    },
};

/// `^[a-zA-Z0-9_-]+$`: role ids in `setRolePermissions`.
const ROLE_ID_PATTERN: Pattern = Pattern {
    source: "^[a-zA-Z0-9_-]+$",
    matches: |s| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    },
};

const PERMISSION_NOT_FOUND: &str = "The requested permission does not exist.";
const ROLE_NOT_FOUND: &str = "The requested role does not exist.";

fn rbac(action: &str) -> Requirement {
    Requirement::one(format!("rbac.*.{action}"))
}

/// The caller may create the missing permissions of `plan`, if any.
fn may_create(caller: &Caller, plan: &rbac::SlugPlan) -> Result<(), ApiError> {
    if plan.missing.is_empty() {
        Ok(())
    } else {
        caller.require(&rbac("create_permission"))
    }
}

// ---- createPermission ----

#[derive(Deserialize)]
struct CreatePermissionRequest {
    name: String,
    slug: String,
    description: Option<String>,
}

impl RequestBody for CreatePermissionRequest {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![
            required("name", string().min_len(1).max_len(512)),
            required(
                "slug",
                string().min_len(1).max_len(128).pattern(SLUG_PATTERN)
            ),
            optional("description", string().max_len(512)),
        ]))
    }
}

#[derive(Serialize)]
struct PermissionIdData {
    #[serde(rename = "permissionId")]
    permission_id: String,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn create_permission(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<CreatePermissionRequest>,
) -> Result<ApiResponse<PermissionIdData>, ApiError> {
    caller.require(&rbac("create_permission"))?;
    let created = state
        .rbac
        .create_permission(
            state.now(),
            caller.workspace_id(),
            &caller.actor(),
            &body.name,
            &body.slug,
            body.description,
        )
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::PermissionAlreadyExists,
                format!(
                    "A permission with slug '{}' already exists in this workspace",
                    body.slug
                ),
            )
        })?;
    Ok(ApiResponse::data(PermissionIdData {
        permission_id: created.id,
    }))
}

// ---- getPermission / deletePermission ----

#[derive(Deserialize)]
struct PermissionRef {
    permission: String,
}

impl RequestBody for PermissionRef {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![required(
            "permission",
            string()
                .min_len(1)
                .max_len(128)
                .pattern(SLUG_PATTERN)
                .describe("The permission's id or slug.")
        )]))
    }
}

async fn find_permission(
    state: &AppState,
    caller: &Caller,
    id_or_slug: &str,
) -> Result<Permission, ApiError> {
    state
        .rbac
        .find_permission(caller.workspace_id(), id_or_slug)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::PermissionNotFound, PERMISSION_NOT_FOUND))
}

#[tracing::instrument(level = "debug", skip_all)]
async fn get_permission(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<PermissionRef>,
) -> Result<ApiResponse<PermissionData>, ApiError> {
    caller.require(&rbac("read_permission"))?;
    let permission = find_permission(&state, &caller, &body.permission).await?;
    Ok(ApiResponse::data(permission_data(permission)))
}

#[tracing::instrument(level = "debug", skip_all)]
async fn delete_permission(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<PermissionRef>,
) -> Result<ApiResponse<Empty>, ApiError> {
    caller.require(&rbac("delete_permission"))?;
    let permission = find_permission(&state, &caller, &body.permission).await?;
    if !state
        .rbac
        .delete_permission(state.now(), &caller.actor(), &permission)
        .await?
    {
        return Err(ApiError::new(
            ErrorCode::PermissionNotFound,
            PERMISSION_NOT_FOUND,
        ));
    }
    Ok(ApiResponse::data(Empty {}))
}

// ---- listPermissions / listRoles ----

#[derive(Deserialize)]
struct ListRequest {
    cursor: Option<String>,
    #[serde(default = "default_limit")]
    limit: i64,
    search: Option<String>,
}

fn default_limit() -> i64 {
    100
}

impl RequestBody for ListRequest {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![
            optional("cursor", string().min_len(1).max_len(1024)),
            optional("limit", integer().minimum(1).maximum(100).default_int(100)),
            optional("search", string().min_len(1).max_len(256)),
        ]))
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn list_permissions(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<ListRequest>,
) -> Result<ApiResponse<Vec<PermissionData>>, ApiError> {
    caller.require(&rbac("read_permission"))?;
    let rows = state
        .rbac
        .list_permissions(
            caller.workspace_id(),
            body.cursor.as_deref(),
            body.limit + 1,
            body.search.as_deref(),
        )
        .await?;
    let (rows, next) = split_page(rows, body.limit as usize, |p| p.id.clone());
    Ok(ApiResponse::page(
        rows.into_iter().map(permission_data).collect(),
        next,
    ))
}

#[tracing::instrument(level = "debug", skip_all)]
async fn list_roles(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<ListRequest>,
) -> Result<ApiResponse<Vec<RoleData>>, ApiError> {
    caller.require(&rbac("read_role"))?;
    let rows = state
        .rbac
        .list_roles(
            caller.workspace_id(),
            body.cursor.as_deref(),
            body.limit + 1,
            body.search.as_deref(),
        )
        .await?;
    let (rows, next) = split_page(rows, body.limit as usize, |r| r.id.clone());
    Ok(ApiResponse::page(
        rows.into_iter().map(role_data).collect(),
        next,
    ))
}

// ---- createRole ----

#[derive(Deserialize)]
struct CreateRoleRequest {
    name: String,
    description: Option<String>,
    #[serde(default)]
    permissions: Vec<String>,
}

impl RequestBody for CreateRoleRequest {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![
            required("name", string().min_len(1).max_len(128)),
            optional("description", string().max_len(512)),
            optional(
                "permissions",
                array(string().min_len(1).max_len(128).pattern(SLUG_PATTERN)).max_items(1000)
            ),
        ]))
    }
}

#[derive(Serialize)]
struct RoleIdData {
    #[serde(rename = "roleId")]
    role_id: String,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn create_role(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<CreateRoleRequest>,
) -> Result<ApiResponse<RoleIdData>, ApiError> {
    caller.require(&rbac("create_role"))?;
    if !body.permissions.is_empty() {
        caller.require(&rbac("add_permission_to_role"))?;
    }
    let now = state.now();
    let plan = state
        .rbac
        .plan_slugs(caller.workspace_id(), &body.permissions, now)
        .await?;
    may_create(&caller, &plan)?;
    let role = state
        .rbac
        .create_role(
            now,
            caller.workspace_id(),
            &caller.actor(),
            &body.name,
            body.description,
            plan,
        )
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::RoleAlreadyExists,
                format!(
                    "A role with name '{}' already exists in this workspace",
                    body.name
                ),
            )
        })?;
    Ok(ApiResponse::data(RoleIdData { role_id: role.id }))
}

// ---- getRole / deleteRole ----

#[derive(Deserialize)]
struct RoleRef {
    role: String,
}

impl RequestBody for RoleRef {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![required(
            "role",
            string()
                .min_len(1)
                .max_len(128)
                .describe("The role's id or name.")
        )]))
    }
}

async fn find_role(state: &AppState, caller: &Caller, id_or_name: &str) -> Result<Role, ApiError> {
    state
        .rbac
        .find_role(caller.workspace_id(), id_or_name)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::RoleNotFound, ROLE_NOT_FOUND))
}

#[tracing::instrument(level = "debug", skip_all)]
async fn get_role(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<RoleRef>,
) -> Result<ApiResponse<RoleData>, ApiError> {
    caller.require(&rbac("read_role"))?;
    let role = find_role(&state, &caller, &body.role).await?;
    Ok(ApiResponse::data(role_data(role)))
}

#[tracing::instrument(level = "debug", skip_all)]
async fn delete_role(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<RoleRef>,
) -> Result<ApiResponse<Empty>, ApiError> {
    caller.require(&rbac("delete_role"))?;
    let role = find_role(&state, &caller, &body.role).await?;
    if !state
        .rbac
        .delete_role(state.now(), &caller.actor(), &role)
        .await?
    {
        return Err(ApiError::new(ErrorCode::RoleNotFound, ROLE_NOT_FOUND));
    }
    Ok(ApiResponse::data(Empty {}))
}

// ---- setRolePermissions ----

/// The role is named by `role` (its id or name; what unkey.py 3.2 sends) or by `roleId` (its id
/// only; Unkey's spec before `role`, now deprecated, and what @unkey/api 2.5 sends): exactly one.
#[derive(Deserialize)]
struct SetRolePermissionsRequest {
    role: Option<String>,
    #[serde(rename = "roleId")]
    role_id: Option<String>,
    permissions: Vec<String>,
}

impl RequestBody for SetRolePermissionsRequest {
    fn schema() -> &'static Schema {
        cached_schema!(object(vec![
            optional(
                "role",
                string()
                    .min_len(1)
                    .max_len(255)
                    .describe("The role's id or name. Send this or `roleId`, not both.")
            ),
            optional(
                "roleId",
                string()
                    .min_len(3)
                    .max_len(255)
                    .pattern(ROLE_ID_PATTERN)
                    .describe("Deprecated: the role's id. Send this or `role`, not both.")
            ),
            required(
                "permissions",
                array(string().min_len(1).max_len(128).pattern(SLUG_PATTERN)).max_items(1000)
            ),
        ]))
    }
}

/// How a `setRolePermissions` body names its role.
#[derive(Clone, Copy)]
enum RoleName<'a> {
    IdOrName(&'a str),
    Id(&'a str),
}

impl SetRolePermissionsRequest {
    fn role_name(&self) -> Result<RoleName<'_>, ApiError> {
        match (&self.role, &self.role_id) {
            (Some(role), None) => Ok(RoleName::IdOrName(role)),
            (None, Some(id)) => Ok(RoleName::Id(id)),
            (role, _) => {
                let detail = if role.is_some() {
                    "Send either 'role' or the deprecated 'roleId', not both."
                } else {
                    "The role is missing: send 'role' (its id or name)."
                };
                Err(ApiError::invalid_input(
                    detail,
                    vec![FieldError {
                        location: "body.role".into(),
                        message: detail.into(),
                        fix: Some("Name the role once, as 'role'.".into()),
                    }],
                ))
            }
        }
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn set_role_permissions(
    State(state): State<AppState>,
    Authed { caller, body }: Authed<SetRolePermissionsRequest>,
) -> Result<ApiResponse<Vec<PermissionData>>, ApiError> {
    let named = body.role_name()?;
    caller.require(&rbac("add_permission_to_role").and(rbac("remove_permission_from_role")))?;
    let (RoleName::IdOrName(wanted) | RoleName::Id(wanted)) = named;
    let role = state
        .rbac
        .find_role(caller.workspace_id(), wanted)
        .await?
        .filter(|r| match named {
            RoleName::IdOrName(_) => true,
            RoleName::Id(id) => r.id == id,
        })
        .ok_or_else(|| ApiError::new(ErrorCode::RoleNotFound, ROLE_NOT_FOUND))?;
    let now = state.now();
    let plan = state
        .rbac
        .plan_slugs(caller.workspace_id(), &body.permissions, now)
        .await?;
    may_create(&caller, &plan)?;
    let permissions = state
        .rbac
        .set_role_permissions(now, &caller.actor(), &role, plan)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::RoleNotFound, ROLE_NOT_FOUND))?;
    Ok(ApiResponse::data(
        permissions.into_iter().map(permission_data).collect(),
    ))
}

pub fn routes() -> Vec<(Operation, MethodRouter<AppState>)> {
    const ERRORS: &[u16] = &[400, 401, 403, 404, 413, 500];
    let op = |path, operation_id, summary, permissions, request, response| Operation {
        path,
        method: Method::Post,
        operation_id,
        tag: "permissions",
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
                errors: &[400, 401, 403, 409, 413, 500],
                ..op(
                    "/v2/permissions.createPermission",
                    "permissions.createPermission",
                    "Create a permission",
                    "`rbac.*.create_permission`",
                    CreatePermissionRequest::schema(),
                    object(vec![required("permissionId", string())]),
                )
            },
            post(create_permission),
        ),
        (
            op(
                "/v2/permissions.getPermission",
                "permissions.getPermission",
                "Read a permission by id or slug",
                "`rbac.*.read_permission`",
                PermissionRef::schema(),
                permission_schema(),
            ),
            post(get_permission),
        ),
        (
            Operation {
                paginated: true,
                ..op(
                    "/v2/permissions.listPermissions",
                    "permissions.listPermissions",
                    "List permissions, a page at a time",
                    "`rbac.*.read_permission`",
                    ListRequest::schema(),
                    array(permission_schema()),
                )
            },
            post(list_permissions),
        ),
        (
            op(
                "/v2/permissions.deletePermission",
                "permissions.deletePermission",
                "Delete a permission; it is removed from every key and role",
                "`rbac.*.delete_permission`",
                PermissionRef::schema(),
                object(vec![]),
            ),
            post(delete_permission),
        ),
        (
            Operation {
                errors: &[400, 401, 403, 409, 413, 500],
                ..op(
                    "/v2/permissions.createRole",
                    "permissions.createRole",
                    "Create a role, optionally with permissions (missing ones are created)",
                    "`rbac.*.create_role`; with permissions also `rbac.*.add_permission_to_role`; to create missing ones also `rbac.*.create_permission`",
                    CreateRoleRequest::schema(),
                    object(vec![required("roleId", string())]),
                )
            },
            post(create_role),
        ),
        (
            op(
                "/v2/permissions.getRole",
                "permissions.getRole",
                "Read a role and its permissions by id or name",
                "`rbac.*.read_role`",
                RoleRef::schema(),
                role_schema(),
            ),
            post(get_role),
        ),
        (
            Operation {
                paginated: true,
                ..op(
                    "/v2/permissions.listRoles",
                    "permissions.listRoles",
                    "List roles with their permissions, a page at a time",
                    "`rbac.*.read_role`",
                    ListRequest::schema(),
                    array(role_schema()),
                )
            },
            post(list_roles),
        ),
        (
            op(
                "/v2/permissions.deleteRole",
                "permissions.deleteRole",
                "Delete a role; it is removed from every key",
                "`rbac.*.delete_role`",
                RoleRef::schema(),
                object(vec![]),
            ),
            post(delete_role),
        ),
        (
            op(
                "/v2/permissions.setRolePermissions",
                "permissions.setRolePermissions",
                "Replace a role's permissions (missing ones are created)",
                "`rbac.*.add_permission_to_role` and `rbac.*.remove_permission_from_role`; to create missing ones also `rbac.*.create_permission`",
                SetRolePermissionsRequest::schema(),
                array(permission_schema()),
            ),
            post(set_role_permissions),
        ),
    ]
}
