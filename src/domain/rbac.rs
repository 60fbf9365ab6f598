//! Permissions and roles: creating, attaching and detaching them, with their audit records.
//!
//! Slugs are compared without case (a workspace cannot hold `Docs.Read` and `docs.read`); a key's
//! permissions are the union of its direct permissions and those of its roles. Changes that can
//! touch many keys (a role's permissions, deleting a permission or role) clear every verification
//! cache; changes to one key drop only that key.

use std::collections::HashSet;

use crate::domain::keys::KeyService;
use crate::ids::{self, Prefix};
use crate::model::audit::{Actor, AuditEvent, Target};
use crate::model::{KeyRow, Permission, RbacChange, Role, SetChange};
use crate::store::{SharedStore, StoreError};

/// Why an RBAC operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    #[error("Permission '{0}' was not found.")]
    PermissionNotFound(String),
    #[error("Role '{0}' was not found.")]
    RoleNotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Slugs in the order first given, without case-insensitive repeats.
pub fn dedup_slugs(slugs: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    slugs
        .iter()
        .filter(|s| seen.insert(s.to_lowercase()))
        .cloned()
        .collect()
}

/// Requested slugs split into the permissions that exist and new ones to create.
#[derive(Debug, Default)]
pub struct SlugPlan {
    pub existing: Vec<Permission>,
    pub missing: Vec<Permission>,
}

impl SlugPlan {
    /// Every requested slug, as it will be stored.
    pub fn slugs(&self) -> Vec<String> {
        self.existing
            .iter()
            .chain(&self.missing)
            .map(|p| p.slug.clone())
            .collect()
    }
}

/// Looks the slugs up; missing ones become new permissions named after their slug.
pub async fn plan_slugs(
    store: &SharedStore,
    workspace_id: &str,
    slugs: &[String],
    now: i64,
) -> Result<SlugPlan, StoreError> {
    let slugs = dedup_slugs(slugs);
    let existing = store.find_permissions_by_slug(workspace_id, &slugs).await?;
    let known: HashSet<String> = existing.iter().map(|p| p.slug.to_lowercase()).collect();
    let missing = slugs
        .iter()
        .filter(|s| !known.contains(&s.to_lowercase()))
        .map(|slug| Permission {
            id: ids::new_id(Prefix::Permission),
            workspace_id: workspace_id.to_string(),
            name: slug.clone(),
            slug: slug.clone(),
            description: Some(format!("Auto-created permission: {slug}")),
            created_at: now,
        })
        .collect();
    Ok(SlugPlan { existing, missing })
}

/// The roles with these names; the first unknown name is an error.
pub async fn roles_by_name(
    store: &SharedStore,
    workspace_id: &str,
    names: &[String],
) -> Result<Vec<Role>, RbacError> {
    let names = dedup_slugs(names);
    let roles = store.find_roles_by_name(workspace_id, &names).await?;
    let known: HashSet<String> = roles.iter().map(|r| r.name.to_lowercase()).collect();
    if let Some(missing) = names.iter().find(|n| !known.contains(&n.to_lowercase())) {
        return Err(RbacError::RoleNotFound(missing.clone()));
    }
    Ok(roles)
}

fn created_events(
    workspace_id: &str,
    actor: &Actor,
    now: i64,
    created: &[Permission],
) -> Vec<AuditEvent> {
    created
        .iter()
        .map(|p| {
            AuditEvent::new(
                workspace_id,
                "permission.create",
                format!("Created {} ({})", p.slug, p.id),
                actor,
                now,
                vec![Target::new("permission", &p.id, Some(p.slug.clone()))],
            )
        })
        .collect()
}

/// Creates a permission; `Ok(None)` when its slug is taken.
pub async fn create_permission(
    store: &SharedStore,
    now: i64,
    workspace_id: &str,
    actor: &Actor,
    name: &str,
    slug: &str,
    description: Option<String>,
) -> Result<Option<Permission>, StoreError> {
    let permission = Permission {
        id: ids::new_id(Prefix::Permission),
        workspace_id: workspace_id.to_string(),
        name: name.to_string(),
        slug: slug.to_string(),
        description,
        created_at: now,
    };
    let events = created_events(workspace_id, actor, now, std::slice::from_ref(&permission));
    Ok(store
        .create_permission(&permission, &events)
        .await?
        .then_some(permission))
}

/// Creates a role holding `plan`'s permissions (creating the missing ones); `Ok(None)` when the
/// name is taken.
pub async fn create_role(
    store: &SharedStore,
    now: i64,
    workspace_id: &str,
    actor: &Actor,
    name: &str,
    description: Option<String>,
    plan: SlugPlan,
) -> Result<Option<Role>, StoreError> {
    let role = Role {
        id: ids::new_id(Prefix::Role),
        workspace_id: workspace_id.to_string(),
        name: name.to_string(),
        description,
        created_at: now,
        permissions: Vec::new(),
    };
    let mut events = vec![AuditEvent::new(
        workspace_id,
        "role.create",
        format!("Created role {}", role.id),
        actor,
        now,
        vec![Target::new("role", &role.id, Some(role.name.clone()))],
    )];
    events.extend(created_events(workspace_id, actor, now, &plan.missing));
    for slug in plan.slugs() {
        events.push(AuditEvent::new(
            workspace_id,
            "authorization.connect_role_and_permission",
            format!("Connected role {} and permission {slug}", role.id),
            actor,
            now,
            vec![
                Target::new("role", &role.id, Some(role.name.clone())),
                Target::new("permission", slug.clone(), Some(slug)),
            ],
        ));
    }
    let change = RbacChange {
        permissions: Some(SetChange::Add(plan.slugs())),
        create: plan.missing,
        roles: None,
    };
    Ok(store
        .create_role(&role, &change, &events)
        .await?
        .then_some(role))
}

/// Deletes a permission everywhere.
pub async fn delete_permission(
    store: &SharedStore,
    keys: &KeyService,
    now: i64,
    actor: &Actor,
    permission: &Permission,
) -> Result<bool, StoreError> {
    let event = AuditEvent::new(
        &permission.workspace_id,
        "permission.delete",
        format!("Deleted permission {}", permission.id),
        actor,
        now,
        vec![Target::new(
            "permission",
            &permission.id,
            Some(permission.slug.clone()),
        )],
    );
    let done = store
        .delete_permission(&permission.workspace_id, &permission.id, now, &[event])
        .await?;
    keys.cache.clear();
    Ok(done)
}

/// Deletes a role everywhere.
pub async fn delete_role(
    store: &SharedStore,
    keys: &KeyService,
    now: i64,
    actor: &Actor,
    role: &Role,
) -> Result<bool, StoreError> {
    let event = AuditEvent::new(
        &role.workspace_id,
        "role.delete",
        format!("Deleted role {}", role.id),
        actor,
        now,
        vec![Target::new("role", &role.id, Some(role.name.clone()))],
    );
    let done = store
        .delete_role(&role.workspace_id, &role.id, now, &[event])
        .await?;
    keys.cache.clear();
    Ok(done)
}

/// Replaces a role's permissions; `Ok(None)` when the role vanished.
pub async fn set_role_permissions(
    store: &SharedStore,
    keys: &KeyService,
    now: i64,
    actor: &Actor,
    role: &Role,
    plan: SlugPlan,
) -> Result<Option<Vec<Permission>>, StoreError> {
    let wanted: HashSet<String> = plan.slugs().iter().map(|s| s.to_lowercase()).collect();
    let had: HashSet<String> = role
        .permissions
        .iter()
        .map(|p| p.slug.to_lowercase())
        .collect();
    let mut events = created_events(&role.workspace_id, actor, now, &plan.missing);
    let target = || Target::new("role", &role.id, Some(role.name.clone()));
    for slug in plan
        .slugs()
        .into_iter()
        .filter(|s| !had.contains(&s.to_lowercase()))
    {
        events.push(AuditEvent::new(
            &role.workspace_id,
            "authorization.connect_role_and_permission",
            format!("Connected role {} and permission {slug}", role.id),
            actor,
            now,
            vec![
                target(),
                Target::new("permission", slug.clone(), Some(slug)),
            ],
        ));
    }
    for p in role
        .permissions
        .iter()
        .filter(|p| !wanted.contains(&p.slug.to_lowercase()))
    {
        events.push(AuditEvent::new(
            &role.workspace_id,
            "authorization.disconnect_role_and_permissions",
            format!("Disconnected role {} and permission {}", role.id, p.slug),
            actor,
            now,
            vec![
                target(),
                Target::new("permission", &p.id, Some(p.slug.clone())),
            ],
        ));
    }
    let change = RbacChange {
        permissions: Some(SetChange::Set(plan.slugs())),
        create: plan.missing,
        roles: None,
    };
    let result = store
        .set_role_permissions(&role.workspace_id, &role.id, &change, now, &events)
        .await?;
    keys.cache.clear();
    Ok(result)
}

/// How a key's permissions or roles are to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    Add,
    Remove,
    Set,
}

fn set_change<T>(kind: SetKind, items: Vec<T>) -> SetChange<T> {
    match kind {
        SetKind::Add => SetChange::Add(items),
        SetKind::Remove => SetChange::Remove(items),
        SetKind::Set => SetChange::Set(items),
    }
}

/// The key an RBAC change is for, and what it holds now (nothing, for a key being created).
pub struct KeyHolding<'a> {
    pub key_id: &'a str,
    pub key_name: Option<&'a str>,
    pub workspace_id: &'a str,
    pub permissions: Vec<Permission>,
    pub roles: Vec<Role>,
}

impl<'a> KeyHolding<'a> {
    /// What a stored key holds directly and through roles.
    pub async fn of(store: &SharedStore, key: &'a KeyRow) -> Result<KeyHolding<'a>, StoreError> {
        Ok(KeyHolding {
            key_id: &key.id,
            key_name: key.name.as_deref(),
            workspace_id: &key.workspace_id,
            permissions: store.key_permissions(&key.id).await?,
            roles: store.key_roles(&key.id).await?,
        })
    }
}

/// The change and audit events that take a key from what it holds to what is asked.
pub fn key_change(
    now: i64,
    actor: &Actor,
    holding: &KeyHolding<'_>,
    permissions: Option<(SetKind, SlugPlan)>,
    roles: Option<(SetKind, Vec<Role>)>,
) -> (RbacChange, Vec<AuditEvent>) {
    let mut change = RbacChange::default();
    let mut events = Vec::new();
    let workspace_id = holding.workspace_id;
    let key_id = holding.key_id;
    let key_target = || Target::new("key", key_id, holding.key_name.map(str::to_string));
    if let Some((kind, plan)) = permissions {
        let had = &holding.permissions;
        let had_slugs: HashSet<String> = had.iter().map(|p| p.slug.to_lowercase()).collect();
        let asked: HashSet<String> = plan.slugs().iter().map(|s| s.to_lowercase()).collect();
        let added: Vec<String> = match kind {
            SetKind::Remove => Vec::new(),
            _ => plan
                .slugs()
                .into_iter()
                .filter(|s| !had_slugs.contains(&s.to_lowercase()))
                .collect(),
        };
        let removed: Vec<&Permission> = match kind {
            SetKind::Add => Vec::new(),
            SetKind::Remove => had
                .iter()
                .filter(|p| asked.contains(&p.slug.to_lowercase()))
                .collect(),
            SetKind::Set => had
                .iter()
                .filter(|p| !asked.contains(&p.slug.to_lowercase()))
                .collect(),
        };
        events.extend(created_events(workspace_id, actor, now, &plan.missing));
        for slug in added {
            events.push(AuditEvent::new(
                workspace_id,
                "authorization.connect_permission_and_key",
                format!("Added permission {slug} to key {key_id}"),
                actor,
                now,
                vec![
                    key_target(),
                    Target::new("permission", slug.clone(), Some(slug)),
                ],
            ));
        }
        for p in removed {
            events.push(AuditEvent::new(
                workspace_id,
                "authorization.disconnect_permission_and_key",
                format!("Removed permission {} from key {key_id}", p.slug),
                actor,
                now,
                vec![
                    key_target(),
                    Target::new("permission", &p.id, Some(p.slug.clone())),
                ],
            ));
        }
        change.permissions = Some(set_change(kind, plan.slugs()));
        change.create = plan.missing;
    }
    if let Some((kind, roles)) = roles {
        let had = &holding.roles;
        let had_ids: HashSet<&str> = had.iter().map(|r| r.id.as_str()).collect();
        let asked: HashSet<&str> = roles.iter().map(|r| r.id.as_str()).collect();
        if kind != SetKind::Remove {
            for r in roles.iter().filter(|r| !had_ids.contains(r.id.as_str())) {
                events.push(AuditEvent::new(
                    workspace_id,
                    "authorization.connect_role_and_key",
                    format!("Added role {} to key {key_id}", r.name),
                    actor,
                    now,
                    vec![
                        key_target(),
                        Target::new("role", &r.id, Some(r.name.clone())),
                    ],
                ));
            }
        }
        let removed: Vec<&Role> = match kind {
            SetKind::Add => Vec::new(),
            SetKind::Remove => had
                .iter()
                .filter(|r| asked.contains(r.id.as_str()))
                .collect(),
            SetKind::Set => had
                .iter()
                .filter(|r| !asked.contains(r.id.as_str()))
                .collect(),
        };
        for r in removed {
            events.push(AuditEvent::new(
                workspace_id,
                "authorization.disconnect_role_and_key",
                format!("Removed role {} from key {key_id}", r.name),
                actor,
                now,
                vec![
                    key_target(),
                    Target::new("role", &r.id, Some(r.name.clone())),
                ],
            ));
        }
        change.roles = Some(set_change(kind, roles.into_iter().map(|r| r.id).collect()));
    }
    (change, events)
}

/// Applies a key's RBAC change and drops the key from the verification cache.
pub async fn change_key(
    store: &SharedStore,
    keys: &KeyService,
    now: i64,
    key: &KeyRow,
    change: RbacChange,
    events: Vec<AuditEvent>,
) -> Result<bool, StoreError> {
    let done = store
        .change_key_rbac(&key.id, &change, now, &events)
        .await?;
    keys.forget(&key.hash);
    Ok(done.is_some())
}
