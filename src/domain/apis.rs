//! APIs: the containers keys live in. Each API owns one key space, created with it.

use std::sync::Arc;

use crate::domain::invalidation::Invalidator;
use crate::ids::{self, Prefix};
use crate::model::audit::{Actor, AuditEvent, Target};
use crate::model::{Api, ChangeKind, KeyPage, KeyRow};
use crate::store::{SharedStore, StoreError};

/// What became of a delete request for a live API.
#[derive(Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    /// Delete protection is on; nothing changed.
    Protected,
    /// Someone else deleted it first.
    AlreadyGone,
}

/// Most addresses an API's IP whitelist may hold.
pub const MAX_WHITELISTED_IPS: usize = 100;

/// Why a whitelist is refused: an entry that is not an IP address, or too many entries.
pub fn check_ip_whitelist(ips: &[String]) -> Result<(), String> {
    if let Some(bad) = ips
        .iter()
        .find(|ip| ip.parse::<std::net::IpAddr>().is_err())
    {
        return Err(format!("'{bad}' is not an IP address"));
    }
    if ips.len() > MAX_WHITELISTED_IPS {
        return Err(format!("at most {MAX_WHITELISTED_IPS} addresses"));
    }
    Ok(())
}

/// An API's settings, as the dashboard edits them.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub delete_protection: bool,
    /// Client IPs its keys verify from, each a valid address (empty: any).
    pub ip_whitelist: Vec<String>,
    pub recoverable: bool,
}

/// One page of a listing, in the listing's order (ids for APIs, names for namespaces).
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts (its first id or name), when there is one.
    pub next_cursor: Option<String>,
}

/// APIs of a workspace: creation, deletion and their keys.
pub struct ApiService {
    store: SharedStore,
    invalidator: Arc<Invalidator>,
}

impl ApiService {
    pub fn new(store: SharedStore, invalidator: Arc<Invalidator>) -> Self {
        ApiService { store, invalidator }
    }

    /// The API if it and its key space are live and it belongs to the workspace.
    pub async fn live(&self, workspace_id: &str, api_id: &str) -> Result<Option<Api>, StoreError> {
        self.store.find_live_api(workspace_id, api_id).await
    }

    /// A page of the workspace's live APIs, in id order.
    pub async fn list(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Api>, StoreError> {
        let mut items = self
            .store
            .list_apis(workspace_id, cursor, limit as i64 + 1)
            .await?;
        let next_cursor = if items.len() > limit {
            items.truncate(limit + 1);
            items.pop().map(|api| api.id)
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Live keys of an API whose name or visible start begins with `prefix`, at most `limit`.
    /// An empty prefix finds nothing (list the keys instead).
    pub async fn search_keys(
        &self,
        api: &Api,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<KeyRow>, StoreError> {
        if prefix.is_empty() {
            return Ok(Vec::new());
        }
        self.store
            .search_keys(&api.key_space_id, prefix, limit as i64)
            .await
    }

    /// Creates an API and its key space.
    pub async fn create(
        &self,
        now: i64,
        workspace_id: &str,
        actor: &Actor,
        name: &str,
    ) -> Result<Api, StoreError> {
        let api = Api {
            id: ids::new_id(Prefix::Api),
            workspace_id: workspace_id.to_string(),
            name: name.to_string(),
            key_space_id: ids::new_id(Prefix::KeySpace),
            delete_protection: false,
            recoverable: false,
            ip_whitelist: None,
            created_at: now,
        };
        let event = AuditEvent::new(
            workspace_id,
            "api.create",
            format!("Created API {}", api.id),
            actor,
            now,
            vec![
                Target::new("api", &api.id, Some(api.name.clone())),
                Target::new("keySpace", &api.key_space_id, None),
            ],
        );
        self.store.create_api(&api, &[event]).await?;
        Ok(api)
    }

    /// Soft-deletes a live API unless it is protected. Its keys stop resolving with it.
    pub async fn delete(
        &self,
        now: i64,
        actor: &Actor,
        api: &Api,
    ) -> Result<DeleteOutcome, StoreError> {
        if api.delete_protection {
            return Ok(DeleteOutcome::Protected);
        }
        let event = AuditEvent::new(
            &api.workspace_id,
            "api.delete",
            format!("Deleted API {}", api.id),
            actor,
            now,
            vec![Target::new("api", &api.id, Some(api.name.clone()))],
        );
        Ok(if self.store.delete_api(&api.id, now, &[event]).await? {
            // Its keys stop verifying on this node at once (other nodes follow the change feed).
            self.invalidator.apply(ChangeKind::Api, &api.id);
            DeleteOutcome::Deleted
        } else {
            DeleteOutcome::AlreadyGone
        })
    }

    /// Applies an API's settings, each only if it changed: delete protection, the IP whitelist
    /// (empty: none) and whether its keys may be recoverable. Returns whether the API was still
    /// live. Each change is its own audit event; the whitelist and recoverability reach the
    /// verification caches at once here and through the change feed elsewhere.
    pub async fn update_settings(
        &self,
        now: i64,
        actor: &Actor,
        api: &Api,
        settings: &ApiSettings,
    ) -> Result<bool, StoreError> {
        let target = || vec![Target::new("api", &api.id, Some(api.name.clone()))];
        let event = |description: String, meta: serde_json::Value| {
            AuditEvent::new(
                &api.workspace_id,
                "api.update",
                description,
                actor,
                now,
                target(),
            )
            .with_meta(meta)
        };
        let mut live = true;
        if settings.delete_protection != api.delete_protection {
            let verb = if settings.delete_protection {
                "Enabled"
            } else {
                "Disabled"
            };
            let audit = event(
                format!("{verb} delete protection of API {}", api.id),
                serde_json::json!({ "deleteProtection": settings.delete_protection }),
            );
            live &= self
                .store
                .set_api_delete_protection(&api.id, settings.delete_protection, now, &[audit])
                .await?;
        }
        let whitelist =
            (!settings.ip_whitelist.is_empty()).then(|| settings.ip_whitelist.join(","));
        if live && whitelist != api.ip_whitelist {
            let audit = event(
                format!("Set the IP whitelist of API {}", api.id),
                serde_json::json!({ "ipWhitelist": settings.ip_whitelist }),
            );
            live &= self
                .store
                .set_api_ip_whitelist(&api.id, whitelist.as_deref(), now, &[audit])
                .await?;
        }
        if live && settings.recoverable != api.recoverable {
            let verb = if settings.recoverable {
                "Enabled"
            } else {
                "Disabled"
            };
            let audit = event(
                format!("{verb} recoverable keys of API {}", api.id),
                serde_json::json!({ "recoverable": settings.recoverable }),
            );
            live &= self
                .store
                .set_api_recoverable(&api.id, settings.recoverable, now, &[audit])
                .await?;
        }
        self.invalidator.apply(ChangeKind::Api, &api.id);
        Ok(live)
    }

    /// Lists an API's live keys, optionally only those of one identity (by external id).
    pub async fn list_keys(
        &self,
        api: &Api,
        cursor: Option<&str>,
        limit: usize,
        external_id: Option<&str>,
    ) -> Result<Page<KeyRow>, StoreError> {
        let identity_id = match external_id {
            Some(external_id) => match self
                .store
                .find_identity_id(&api.workspace_id, external_id)
                .await?
            {
                Some(id) => Some(id),
                // An unknown owner has no keys.
                None => {
                    return Ok(Page {
                        items: Vec::new(),
                        next_cursor: None,
                    })
                }
            },
            None => None,
        };
        let mut items = self
            .store
            .list_keys(KeyPage {
                key_space_id: &api.key_space_id,
                cursor,
                identity_id: identity_id.as_deref(),
                limit: limit as i64 + 1,
            })
            .await?;
        let next_cursor = if items.len() > limit {
            items.truncate(limit + 1);
            items.pop().map(|k| k.id)
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}
