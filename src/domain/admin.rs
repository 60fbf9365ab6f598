//! Operator actions: workspaces, root keys and API protection, as the CLI (and the first start of
//! the server) performs them. Every action is audited with the CLI as its actor.

use crate::domain::keys::hash::generate_root_key;
use crate::domain::rbac::requirement::{all_root_permissions, is_valid_root_permission};
use crate::ids::{self, Prefix};
use crate::model::audit::{Actor, AuditEvent, Target};
use crate::model::{RootKey, Workspace};
use crate::store::{SharedStore, StoreError};

/// Why an operator action was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("workspace '{0}' does not exist")]
    WorkspaceNotFound(String),
    #[error("root key '{0}' does not exist (or was deleted)")]
    RootKeyNotFound(String),
    #[error("API '{0}' does not exist (or was deleted)")]
    ApiNotFound(String),
    #[error("'{0}' is not a root-key permission: use <resource>.<id or *>.<action>, e.g. api.*.create_key")]
    InvalidPermission(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A root key just made: the stored record and the plaintext, which exists only here.
pub struct NewRootKey {
    pub record: RootKey,
    pub plaintext: String,
}

fn check_name(name: &str, what: &str) -> Result<(), AdminError> {
    let len = name.chars().count();
    if name.trim().is_empty() || len > 255 {
        return Err(AdminError::InvalidInput(format!(
            "{what} name must be 1 to 255 characters and not blank"
        )));
    }
    Ok(())
}

pub async fn create_workspace(
    store: &SharedStore,
    now: i64,
    name: &str,
) -> Result<Workspace, AdminError> {
    check_name(name, "workspace")?;
    let workspace = Workspace {
        id: ids::new_id(Prefix::Workspace),
        name: name.to_string(),
        enabled: true,
        created_at: now,
    };
    let event = AuditEvent::new(
        &workspace.id,
        "workspace.create",
        format!("Created workspace {}", workspace.id),
        &Actor::cli(),
        now,
        vec![Target::new(
            "workspace",
            &workspace.id,
            Some(workspace.name.clone()),
        )],
    );
    store.create_workspace(&workspace, &[event]).await?;
    Ok(workspace)
}

pub async fn set_workspace_enabled(
    store: &SharedStore,
    now: i64,
    id: &str,
    enabled: bool,
) -> Result<(), AdminError> {
    let verb = if enabled { "Enabled" } else { "Disabled" };
    let event = AuditEvent::new(
        id,
        "workspace.update",
        format!("{verb} workspace {id}"),
        &Actor::cli(),
        now,
        vec![Target::new("workspace", id, None)],
    );
    if store
        .set_workspace_enabled(id, enabled, now, &[event])
        .await?
    {
        Ok(())
    } else {
        Err(AdminError::WorkspaceNotFound(id.to_string()))
    }
}

/// Creates a root key for a workspace. Without explicit permissions it holds every permission.
pub async fn create_root_key(
    store: &SharedStore,
    now: i64,
    workspace_id: &str,
    name: Option<&str>,
    permissions: &[String],
    expires: Option<i64>,
) -> Result<NewRootKey, AdminError> {
    if let Some(name) = name {
        check_name(name, "root key")?;
    }
    if expires.is_some_and(|at| at <= now) {
        return Err(AdminError::InvalidInput(
            "a root key's expiry must be in the future".into(),
        ));
    }
    if store.get_workspace(workspace_id).await?.is_none() {
        return Err(AdminError::WorkspaceNotFound(workspace_id.to_string()));
    }
    if let Some(bad) = permissions.iter().find(|p| !is_valid_root_permission(p)) {
        return Err(AdminError::InvalidPermission(bad.clone()));
    }
    let mut granted = if permissions.is_empty() {
        all_root_permissions()
    } else {
        permissions.to_vec()
    };
    granted.sort();
    granted.dedup();
    let key = generate_root_key();
    let record = RootKey {
        id: ids::new_id(Prefix::Key),
        workspace_id: workspace_id.to_string(),
        name: name.map(str::to_string),
        hash: key.hash.clone(),
        start: key.start.clone(),
        permissions: granted,
        enabled: true,
        expires,
        created_at: now,
    };
    let event = AuditEvent::new(
        workspace_id,
        "rootKey.create",
        format!("Created root key {}", record.id),
        &Actor::cli(),
        now,
        vec![Target::new("key", &record.id, record.name.clone())],
    );
    store.insert_root_key(&record, &[event]).await?;
    Ok(NewRootKey {
        record,
        plaintext: key.plaintext,
    })
}

async fn root_key_workspace(store: &SharedStore, id: &str) -> Result<String, AdminError> {
    store
        .get_root_key(id)
        .await?
        .map(|k| k.workspace_id)
        .ok_or_else(|| AdminError::RootKeyNotFound(id.to_string()))
}

pub async fn set_root_key_enabled(
    store: &SharedStore,
    now: i64,
    id: &str,
    enabled: bool,
) -> Result<(), AdminError> {
    let workspace_id = root_key_workspace(store, id).await?;
    let verb = if enabled { "Enabled" } else { "Disabled" };
    let event = AuditEvent::new(
        &workspace_id,
        "rootKey.update",
        format!("{verb} root key {id}"),
        &Actor::cli(),
        now,
        vec![Target::new("key", id, None)],
    );
    if store
        .set_root_key_enabled(id, enabled, now, &[event])
        .await?
    {
        Ok(())
    } else {
        Err(AdminError::RootKeyNotFound(id.to_string()))
    }
}

pub async fn delete_root_key(store: &SharedStore, now: i64, id: &str) -> Result<(), AdminError> {
    let workspace_id = root_key_workspace(store, id).await?;
    let event = AuditEvent::new(
        &workspace_id,
        "rootKey.delete",
        format!("Deleted root key {id}"),
        &Actor::cli(),
        now,
        vec![Target::new("key", id, None)],
    );
    if store.delete_root_key(id, now, &[event]).await? {
        Ok(())
    } else {
        Err(AdminError::RootKeyNotFound(id.to_string()))
    }
}

pub async fn list_root_keys(
    store: &SharedStore,
    workspace_id: &str,
) -> Result<Vec<RootKey>, AdminError> {
    if store.get_workspace(workspace_id).await?.is_none() {
        return Err(AdminError::WorkspaceNotFound(workspace_id.to_string()));
    }
    Ok(store.list_root_keys(workspace_id).await?)
}

pub async fn set_api_delete_protection(
    store: &SharedStore,
    now: i64,
    id: &str,
    protected: bool,
) -> Result<(), AdminError> {
    let api = store
        .get_api(id)
        .await?
        .ok_or_else(|| AdminError::ApiNotFound(id.to_string()))?;
    let verb = if protected { "Enabled" } else { "Disabled" };
    let event = AuditEvent::new(
        &api.workspace_id,
        "api.update",
        format!("{verb} delete protection of API {id}"),
        &Actor::cli(),
        now,
        vec![Target::new("api", id, Some(api.name.clone()))],
    );
    if store
        .set_api_delete_protection(id, protected, now, &[event])
        .await?
    {
        Ok(())
    } else {
        Err(AdminError::ApiNotFound(id.to_string()))
    }
}

/// Sets or clears (`None`) a workspace's limit on calls to the API per minute.
pub async fn set_workspace_rate_limit(
    store: &SharedStore,
    now: i64,
    id: &str,
    requests_per_minute: Option<i64>,
) -> Result<(), AdminError> {
    let description = match requests_per_minute {
        Some(n) => format!("Set the API rate limit of workspace {id} to {n} requests per minute"),
        None => format!("Removed the API rate limit of workspace {id}"),
    };
    let event = AuditEvent::new(
        id,
        "workspace.update",
        description,
        &Actor::cli(),
        now,
        vec![Target::new("workspace", id, None)],
    )
    .with_meta(serde_json::json!({ "requestsPerMinute": requests_per_minute }));
    if store
        .set_workspace_rate_limit(id, requests_per_minute, now, &[event])
        .await?
    {
        Ok(())
    } else {
        Err(AdminError::WorkspaceNotFound(id.to_string()))
    }
}

/// Allows or refuses recoverable keys in an API (its key space's `store_encrypted_keys`).
pub async fn set_api_recoverable(
    store: &SharedStore,
    now: i64,
    id: &str,
    recoverable: bool,
) -> Result<(), AdminError> {
    let api = store
        .get_api(id)
        .await?
        .ok_or_else(|| AdminError::ApiNotFound(id.to_string()))?;
    let verb = if recoverable { "Enabled" } else { "Disabled" };
    let event = AuditEvent::new(
        &api.workspace_id,
        "api.update",
        format!("{verb} recoverable keys of API {id}"),
        &Actor::cli(),
        now,
        vec![Target::new("api", id, Some(api.name.clone()))],
    )
    .with_meta(serde_json::json!({ "recoverable": recoverable }));
    if store
        .set_api_recoverable(id, recoverable, now, &[event])
        .await?
    {
        Ok(())
    } else {
        Err(AdminError::ApiNotFound(id.to_string()))
    }
}

/// On a database with no workspace yet: a first workspace and an all-powerful root key, so a new
/// user can call the API at once. Returns `None` when the database already has a workspace.
pub async fn bootstrap(
    store: &SharedStore,
    now: i64,
) -> Result<Option<(Workspace, NewRootKey)>, AdminError> {
    if store.count_workspaces().await? > 0 {
        return Ok(None);
    }
    let workspace = create_workspace(store, now, "default").await?;
    let key = create_root_key(store, now, &workspace.id, Some("bootstrap"), &[], None).await?;
    Ok(Some((workspace, key)))
}

/// Restricts verifications of an API's keys to client IPs in `ips` (empty: no restriction).
pub async fn set_api_ip_whitelist(
    store: &SharedStore,
    now: i64,
    id: &str,
    ips: &[String],
) -> Result<(), AdminError> {
    crate::domain::apis::check_ip_whitelist(ips).map_err(AdminError::InvalidInput)?;
    let api = store
        .get_api(id)
        .await?
        .ok_or_else(|| AdminError::ApiNotFound(id.to_string()))?;
    let list = (!ips.is_empty()).then(|| ips.join(","));
    let event = AuditEvent::new(
        &api.workspace_id,
        "api.update",
        format!("Set the IP whitelist of API {id}"),
        &Actor::cli(),
        now,
        vec![Target::new("api", id, Some(api.name.clone()))],
    );
    if store
        .set_api_ip_whitelist(id, list.as_deref(), now, &[event])
        .await?
    {
        Ok(())
    } else {
        Err(AdminError::ApiNotFound(id.to_string()))
    }
}

/// Deletes a rate-limit namespace by name or id.
pub async fn delete_namespace(
    store: &SharedStore,
    now: i64,
    workspace_id: &str,
    name_or_id: &str,
) -> Result<(), AdminError> {
    let namespace = store
        .find_namespace(workspace_id, name_or_id)
        .await?
        .filter(|ns| !ns.deleted)
        .ok_or_else(|| {
            AdminError::InvalidInput(format!(
                "namespace '{name_or_id}' does not exist in '{workspace_id}'"
            ))
        })?;
    let event = AuditEvent::new(
        workspace_id,
        "ratelimitNamespace.delete",
        format!(
            "Deleted ratelimit namespace {} ({})",
            namespace.name, namespace.id
        ),
        &Actor::cli(),
        now,
        vec![Target::new(
            "ratelimitNamespace",
            &namespace.id,
            Some(namespace.name.clone()),
        )],
    );
    store
        .delete_namespace(workspace_id, &namespace.id, now, &[event])
        .await?;
    Ok(())
}
