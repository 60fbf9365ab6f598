//! Importing keys from another system by their hashes (`keys.migrateKeys`), and the migrations
//! that group such imports.

use std::sync::Arc;

use std::collections::HashMap;

use crate::domain::invalidation::Invalidator;
use crate::domain::keys::{Interval, KeyError, RefillInput};
use crate::domain::ratelimit::named::{merge_limits, LimitInput};
use crate::domain::rbac::{created_events, role_created_event, RbacService};
use crate::ids::{self, Prefix};
use crate::model::audit::{Actor, AuditEvent, Target};
use crate::model::{Api, ChangeKind, ImportSetup, Migration, NewKey, RbacChange, SetChange};
use crate::store::{MigrationStore, SharedStore, StoreError};

/// Hashes are already keyward's (base64 SHA-256 of the key): plain verification finds them.
pub const SHA256: &str = "sha256";
/// Keys of the `prefix_short_long` form whose hash is the hex SHA-256 of `long`; each is rewritten
/// to keyward's hash the first time it is verified with the migration's id.
pub const PREFIXED_API_KEY: &str = "github.com/seamapi/prefixed-api-key";

/// The algorithms a migration can declare.
pub const ALGORITHMS: &[&str] = &[SHA256, PREFIXED_API_KEY];

/// Registers a migration for a workspace (an operator action).
pub async fn create_migration(
    store: &SharedStore,
    now: i64,
    workspace_id: &str,
    algorithm: &str,
) -> Result<Migration, StoreError> {
    let migration = Migration {
        id: ids::new_id(Prefix::Migration),
        workspace_id: workspace_id.to_string(),
        algorithm: algorithm.to_string(),
    };
    let event = AuditEvent::new(
        workspace_id,
        "migration.create",
        format!("Created migration {} ({algorithm})", migration.id),
        &Actor::cli(),
        now,
        vec![Target::new("workspace", workspace_id, None)],
    );
    store.create_migration(&migration, now, &[event]).await?;
    Ok(migration)
}

/// The refill schedule of the key at `index` of an import, checked: a refill needs a balance
/// to refill, and a monthly one its day. The message names the key's position.
pub fn import_refill(
    index: usize,
    remaining: Option<i64>,
    refill: Option<RefillInput>,
) -> Result<Option<(i64, Option<i64>)>, String> {
    let Some(refill) = refill else {
        return Ok(None);
    };
    if remaining.is_none() {
        return Err(format!(
            "keys[{index}]: `credits.remaining` must be provided when `credits.refill` is set."
        ));
    }
    // Imports accept (and drop) a day on a daily refill; otherwise the rule is createKey's.
    let refill = match refill.interval {
        Interval::Daily => RefillInput {
            refill_day: None,
            ..refill
        },
        Interval::Monthly => refill,
    };
    refill
        .stored()
        .map(Some)
        .map_err(|err: KeyError| format!("keys[{index}]: {err}"))
}

/// One key to import.
#[derive(Debug, Clone)]
pub struct ImportedKey {
    pub hash: String,
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub meta: Option<String>,
    pub expires: Option<i64>,
    pub enabled: bool,
    pub remaining: Option<i64>,
    pub refill: Option<(i64, Option<i64>)>,
    /// Direct permissions by slug; those that do not exist are created.
    pub permissions: Vec<String>,
    /// Roles by name; those that do not exist are created (without permissions).
    pub roles: Vec<String>,
    pub ratelimits: Vec<LimitInput>,
}

/// The outcome: `(hash, key id)` of each imported key, and the hashes that were already taken.
pub struct ImportResult {
    pub migrated: Vec<(String, String)>,
    pub failed: Vec<String>,
}

/// Migrations and the keys imported under them.
pub struct MigrationService {
    store: Arc<dyn MigrationStore>,
    rbac: Arc<RbacService>,
    invalidator: Arc<Invalidator>,
}

impl MigrationService {
    pub fn new(
        store: Arc<dyn MigrationStore>,
        rbac: Arc<RbacService>,
        invalidator: Arc<Invalidator>,
    ) -> Self {
        MigrationService {
            store,
            rbac,
            invalidator,
        }
    }

    /// A migration of the workspace, by id.
    pub async fn find(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> Result<Option<Migration>, StoreError> {
        self.store.find_migration(workspace_id, id).await
    }

    /// Imports keys into `api` under `migration`, with their permissions, roles and rate limits.
    /// Permissions and roles the keys name that do not exist yet are created first (once each),
    /// in the same transaction.
    pub async fn import(
        &self,
        now: i64,
        actor: &Actor,
        api: &Api,
        migration: &Migration,
        keys: Vec<ImportedKey>,
    ) -> Result<ImportResult, StoreError> {
        let workspace_id = &api.workspace_id;
        let all_slugs: Vec<String> = keys.iter().flat_map(|k| k.permissions.clone()).collect();
        let all_roles: Vec<String> = keys.iter().flat_map(|k| k.roles.clone()).collect();
        let plan = self.rbac.plan_slugs(workspace_id, &all_slugs, now).await?;
        let (existing_roles, new_roles) =
            self.rbac.plan_roles(workspace_id, &all_roles, now).await?;
        let mut setup = ImportSetup {
            audit: created_events(workspace_id, actor, now, &plan.missing),
            ..Default::default()
        };
        setup.audit.extend(
            new_roles
                .iter()
                .map(|role| role_created_event(actor, now, role)),
        );
        // Slugs and names match without case, and are stored as first written.
        let slug_of: HashMap<String, String> = plan
            .slugs()
            .into_iter()
            .map(|slug| (slug.to_lowercase(), slug))
            .collect();
        let role_id: HashMap<String, (String, String)> = existing_roles
            .iter()
            .chain(&new_roles)
            .map(|r| (r.name.to_lowercase(), (r.id.clone(), r.name.clone())))
            .collect();
        setup.permissions = plan.missing;
        setup.roles = new_roles;
        let rows: Vec<(NewKey, Vec<AuditEvent>)> = keys
            .into_iter()
            .map(|k| {
                let mut key = NewKey {
                    id: ids::new_id(Prefix::Key),
                    key_space_id: api.key_space_id.clone(),
                    workspace_id: api.workspace_id.clone(),
                    hash: k.hash,
                    start: String::new(),
                    name: k.name,
                    meta: k.meta,
                    external_id: k.external_id,
                    new_identity_id: ids::new_id(Prefix::Identity),
                    expires: k.expires,
                    enabled: k.enabled,
                    remaining: k.remaining,
                    refill_day: k.refill.and_then(|(_, day)| day),
                    refill_amount: k.refill.map(|(amount, _)| amount),
                    pending_migration_id: Some(migration.id.clone()),
                    created_at: now,
                    rbac: RbacChange::default(),
                    ratelimits: Vec::new(),
                    sealed: None,
                };
                let mut events = vec![AuditEvent::new(
                    &api.workspace_id,
                    "key.create",
                    format!("Created key {} in migration {}", key.id, migration.id),
                    actor,
                    now,
                    vec![
                        Target::new("key", &key.id, key.name.clone()),
                        Target::new("api", &api.id, Some(api.name.clone())),
                    ],
                )];
                let key_target = Target::new("key", &key.id, key.name.clone());
                let mut slugs: Vec<String> = Vec::new();
                for asked in &k.permissions {
                    let Some(slug) = slug_of.get(&asked.to_lowercase()) else {
                        continue;
                    };
                    if slugs.contains(slug) {
                        continue;
                    }
                    events.push(AuditEvent::new(
                        workspace_id,
                        "authorization.connect_permission_and_key",
                        format!("Added permission {slug} to key {}", key.id),
                        actor,
                        now,
                        vec![
                            key_target.clone(),
                            Target::new("permission", slug.clone(), Some(slug.clone())),
                        ],
                    ));
                    slugs.push(slug.clone());
                }
                let mut roles: Vec<String> = Vec::new();
                for asked in &k.roles {
                    let Some((id, name)) = role_id.get(&asked.to_lowercase()) else {
                        continue;
                    };
                    if roles.contains(id) {
                        continue;
                    }
                    events.push(AuditEvent::new(
                        workspace_id,
                        "authorization.connect_role_and_key",
                        format!("Connected role {name} to key {}", key.id),
                        actor,
                        now,
                        vec![
                            key_target.clone(),
                            Target::new("role", id.clone(), Some(name.clone())),
                        ],
                    ));
                    roles.push(id.clone());
                }
                key.rbac = RbacChange {
                    create: Vec::new(),
                    permissions: (!slugs.is_empty()).then_some(SetChange::Set(slugs)),
                    roles: (!roles.is_empty()).then_some(SetChange::Set(roles)),
                };
                let (limits, limit_events) =
                    merge_limits(workspace_id, actor, now, &[], k.ratelimits);
                key.ratelimits = limits;
                events.extend(limit_events);
                (key, events)
            })
            .collect();
        let failed = self.store.insert_migrated_keys(&setup, &rows).await?;
        let migrated: Vec<(String, String)> = rows
            .into_iter()
            .filter(|(k, _)| !failed.contains(&k.hash))
            .map(|(k, _)| (k.hash, k.id))
            .collect();
        // Keys imported over hashes this node had cached as unknown resolve at once.
        for (hash, _) in &migrated {
            self.invalidator.apply(ChangeKind::Key, hash);
        }
        Ok(ImportResult { migrated, failed })
    }
}
