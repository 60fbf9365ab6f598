//! Permissions and roles: creating, attaching and detaching them, with their audit records.
//!
//! Slugs are compared without case (a workspace cannot hold `Docs.Read` and `docs.read`); a key's
//! permissions are the union of its direct permissions and those of its roles. Changes that can
//! touch many keys (a role's permissions, deleting a permission or role) clear every verification
//! cache; changes to one key drop only that key.

pub mod query;
pub mod requirement;

use std::collections::HashSet;
use std::sync::Arc;

use crate::domain::invalidation::Invalidator;
use crate::ids::{self, Prefix};
use crate::model::audit::{Actor, AuditEvent, Target};
use crate::model::{ChangeKind, KeyRow, Permission, RbacChange, Role, SetChange};
use crate::store::{RbacStore, StoreError};

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

/// The audit event of a role made.
pub(crate) fn role_created_event(actor: &Actor, now: i64, role: &Role) -> AuditEvent {
    AuditEvent::new(
        &role.workspace_id,
        "role.create",
        format!("Created role {}", role.id),
        actor,
        now,
        vec![Target::new("role", &role.id, Some(role.name.clone()))],
    )
}

pub(crate) fn created_events(
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

/// The result of changing what a key holds.
#[derive(Debug)]
pub enum KeyRbacOutcome<T> {
    /// Done; what the key holds now.
    Done(T),
    /// Some permissions would have to be created and the caller may not create them.
    NeedsCreate,
    /// The key was deleted meanwhile.
    KeyGone,
}

/// The key an RBAC change is for, and what it holds now (nothing, for a key being created).
pub struct KeyHolding<'a> {
    pub key_id: &'a str,
    pub key_name: Option<&'a str>,
    pub workspace_id: &'a str,
    pub permissions: Vec<Permission>,
    pub roles: Vec<Role>,
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

/// Permissions and roles, and what keys hold of them.
pub struct RbacService {
    store: Arc<dyn RbacStore>,
    invalidator: Arc<Invalidator>,
}

impl RbacService {
    pub fn new(store: Arc<dyn RbacStore>, invalidator: Arc<Invalidator>) -> Self {
        RbacService { store, invalidator }
    }

    /// A permission by id or slug (case-insensitive).
    pub async fn find_permission(
        &self,
        workspace_id: &str,
        id_or_slug: &str,
    ) -> Result<Option<Permission>, StoreError> {
        self.store.find_permission(workspace_id, id_or_slug).await
    }

    /// Up to `limit` permissions from `cursor` on, in id order.
    pub async fn list_permissions(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: i64,
        search: Option<&str>,
    ) -> Result<Vec<Permission>, StoreError> {
        self.store
            .list_permissions(workspace_id, cursor, limit, search)
            .await
    }

    /// A role (with its permissions) by id or name (case-insensitive).
    pub async fn find_role(
        &self,
        workspace_id: &str,
        id_or_name: &str,
    ) -> Result<Option<Role>, StoreError> {
        self.store.find_role(workspace_id, id_or_name).await
    }

    /// Up to `limit` roles from `cursor` on, in id order.
    pub async fn list_roles(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: i64,
        search: Option<&str>,
    ) -> Result<Vec<Role>, StoreError> {
        self.store
            .list_roles(workspace_id, cursor, limit, search)
            .await
    }

    /// A key's direct permissions, sorted by slug.
    pub async fn key_permissions(&self, key_id: &str) -> Result<Vec<Permission>, StoreError> {
        self.store.key_permissions(key_id).await
    }

    /// A key's roles with their permissions, sorted by name.
    pub async fn key_roles(&self, key_id: &str) -> Result<Vec<Role>, StoreError> {
        self.store.key_roles(key_id).await
    }

    /// What a stored key holds directly and through roles.
    pub async fn holding<'a>(&self, key: &'a KeyRow) -> Result<KeyHolding<'a>, StoreError> {
        Ok(KeyHolding {
            key_id: &key.id,
            key_name: key.name.as_deref(),
            workspace_id: &key.workspace_id,
            permissions: self.store.key_permissions(&key.id).await?,
            roles: self.store.key_roles(&key.id).await?,
        })
    }

    /// Looks the slugs up; missing ones become new permissions named after their slug.
    pub async fn plan_slugs(
        &self,
        workspace_id: &str,
        slugs: &[String],
        now: i64,
    ) -> Result<SlugPlan, StoreError> {
        let slugs = dedup_slugs(slugs);
        let existing = self
            .store
            .find_permissions_by_slug(workspace_id, &slugs)
            .await?;
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
        &self,
        workspace_id: &str,
        names: &[String],
    ) -> Result<Vec<Role>, RbacError> {
        let names = dedup_slugs(names);
        let roles = self.store.find_roles_by_name(workspace_id, &names).await?;
        let known: HashSet<String> = roles.iter().map(|r| r.name.to_lowercase()).collect();
        if let Some(missing) = names.iter().find(|n| !known.contains(&n.to_lowercase())) {
            return Err(RbacError::RoleNotFound(missing.clone()));
        }
        Ok(roles)
    }

    /// Roles by name split into those that exist and new ones (no description, no permissions)
    /// to create, as `keys.migrateKeys` does where `createKey` would refuse.
    pub async fn plan_roles(
        &self,
        workspace_id: &str,
        names: &[String],
        now: i64,
    ) -> Result<(Vec<Role>, Vec<Role>), StoreError> {
        let names = dedup_slugs(names);
        let existing = self.store.find_roles_by_name(workspace_id, &names).await?;
        let known: HashSet<String> = existing.iter().map(|r| r.name.to_lowercase()).collect();
        let missing = names
            .iter()
            .filter(|n| !known.contains(&n.to_lowercase()))
            .map(|name| Role {
                id: ids::new_id(Prefix::Role),
                workspace_id: workspace_id.to_string(),
                name: name.clone(),
                description: None,
                created_at: now,
                permissions: Vec::new(),
            })
            .collect();
        Ok((existing, missing))
    }

    /// Creates a permission; `Ok(None)` when its slug is taken.
    pub async fn create_permission(
        &self,
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
        Ok(self
            .store
            .create_permission(&permission, &events)
            .await?
            .then_some(permission))
    }

    /// Creates a role holding `plan`'s permissions (creating the missing ones); `Ok(None)` when the
    /// name is taken.
    pub async fn create_role(
        &self,
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
        let mut events = vec![role_created_event(actor, now, &role)];
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
        Ok(self
            .store
            .create_role(&role, &change, &events)
            .await?
            .then_some(role))
    }

    /// Deletes a permission everywhere.
    pub async fn delete_permission(
        &self,
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
        let done = self
            .store
            .delete_permission(&permission.workspace_id, &permission.id, now, &[event])
            .await?;
        self.invalidator
            .apply(ChangeKind::Rbac, &permission.workspace_id);
        Ok(done)
    }

    /// Deletes a role everywhere.
    pub async fn delete_role(
        &self,
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
        let done = self
            .store
            .delete_role(&role.workspace_id, &role.id, now, &[event])
            .await?;
        self.invalidator.apply(ChangeKind::Rbac, &role.workspace_id);
        Ok(done)
    }

    /// Replaces a role's permissions; `Ok(None)` when the role vanished.
    pub async fn set_role_permissions(
        &self,
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
        let result = self
            .store
            .set_role_permissions(&role.workspace_id, &role.id, &change, now, &events)
            .await?;
        self.invalidator.apply(ChangeKind::Rbac, &role.workspace_id);
        Ok(result)
    }

    /// Applies a key's RBAC change and drops the key from the verification cache.
    pub async fn change_key(
        &self,
        now: i64,
        key: &KeyRow,
        change: RbacChange,
        events: Vec<AuditEvent>,
    ) -> Result<bool, StoreError> {
        let done = self
            .store
            .change_key_rbac(&key.id, &change, now, &events)
            .await?;
        self.invalidator.apply(ChangeKind::Key, &key.hash);
        Ok(done.is_some())
    }

    /// The change (and its audit events) that `createKey` and `updateKey` ask for: permissions by
    /// slug, created when missing (as the reference does, with no extra permission check), and
    /// roles by name, which must exist.
    pub async fn key_change_for(
        &self,
        now: i64,
        actor: &Actor,
        holding: &KeyHolding<'_>,
        permissions: Option<(SetKind, Vec<String>)>,
        roles: Option<(SetKind, Vec<String>)>,
    ) -> Result<(RbacChange, Vec<AuditEvent>), RbacError> {
        let workspace_id = holding.workspace_id;
        let plan = match permissions {
            Some((kind, slugs)) => Some((kind, self.plan_slugs(workspace_id, &slugs, now).await?)),
            None => None,
        };
        let roles = match roles {
            Some((kind, names)) => Some((kind, self.roles_by_name(workspace_id, &names).await?)),
            None => None,
        };
        Ok(key_change(now, actor, holding, plan, roles))
    }

    /// Adds, removes or sets a key's direct permissions. Slugs that do not exist yet are created
    /// (when adding or setting, and only if `may_create`); removing one that does not exist is
    /// [`RbacError::PermissionNotFound`]. Returns the key's direct permissions after.
    pub async fn change_key_permissions(
        &self,
        now: i64,
        actor: &Actor,
        key: &KeyRow,
        kind: SetKind,
        slugs: &[String],
        may_create: bool,
    ) -> Result<KeyRbacOutcome<Vec<Permission>>, RbacError> {
        let plan = self.plan_slugs(&key.workspace_id, slugs, now).await?;
        if let Some(missing) = plan.missing.first() {
            if kind == SetKind::Remove {
                return Err(RbacError::PermissionNotFound(missing.slug.clone()));
            }
            if !may_create {
                return Ok(KeyRbacOutcome::NeedsCreate);
            }
        }
        let holding = self.holding(key).await?;
        let (change, events) = key_change(now, actor, &holding, Some((kind, plan)), None);
        if !self.change_key(now, key, change, events).await? {
            return Ok(KeyRbacOutcome::KeyGone);
        }
        Ok(KeyRbacOutcome::Done(self.key_permissions(&key.id).await?))
    }

    /// Adds, removes or sets a key's roles, by name (each must exist). Returns the key's roles
    /// after.
    pub async fn change_key_roles(
        &self,
        now: i64,
        actor: &Actor,
        key: &KeyRow,
        kind: SetKind,
        names: &[String],
    ) -> Result<KeyRbacOutcome<Vec<Role>>, RbacError> {
        let roles = self.roles_by_name(&key.workspace_id, names).await?;
        let holding = self.holding(key).await?;
        let (change, events) = key_change(now, actor, &holding, None, Some((kind, roles)));
        if !self.change_key(now, key, change, events).await? {
            return Ok(KeyRbacOutcome::KeyGone);
        }
        Ok(KeyRbacOutcome::Done(self.key_roles(&key.id).await?))
    }
}
