//! Keys: creating, reading, changing and deleting them, with the verification cache and the
//! credit ledger kept consistent on every change. Verification itself is in [`super::verify`].

pub mod cache;
pub mod hash;
pub mod migrate;
pub mod recover;
pub mod verify;

use std::sync::Arc;

use crate::domain::credits::{self, Balance, Ledger, Refill};
use crate::domain::events::EventSink;
use crate::domain::invalidation::Invalidator;
use crate::domain::keys::cache::{Interner, KeyCache};
use crate::domain::keys::hash::{generate_key, GeneratedKey};
use crate::domain::ratelimit::named::{merge_limits, LimitInput};
use crate::domain::ratelimit::Counters;
use crate::domain::vault::{Vault, VaultError};
use crate::ids::{self, Prefix};
use crate::model::audit::{Actor, AuditEvent, Target};
use crate::model::{
    Api, ChangeKind, CreditOp, CreditRecord, CreditUpdate, CreditWrite, CreditsPatch, KeyPatch,
    KeyRow, NewKey, Patch, RatelimitConfig, RbacChange, SetChange, StoredCredits,
};
use crate::store::{SharedStore, StoreError};

/// Why a key operation was refused (beyond "not found", which callers decide).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The request is inconsistent; `field` is the JSON path of the culprit.
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// A recoverable key was asked of a process with no master key.
    #[error("recoverable keys need a vault, and this server has no master key")]
    VaultMissing,
    /// The vault could not seal the new key.
    #[error("the vault could not seal the key: {0}")]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl KeyError {
    fn invalid(field: &'static str, message: &str) -> Self {
        KeyError::Invalid {
            field,
            message: message.to_string(),
        }
    }
}

/// How often a refill happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Daily,
    Monthly,
}

/// A refill as requested.
#[derive(Debug, Clone, Copy)]
pub struct RefillInput {
    pub interval: Interval,
    pub amount: i64,
    pub refill_day: Option<i64>,
}

impl RefillInput {
    /// The stored form `(amount, day)`; monthly needs a day, daily must not have one.
    pub fn stored(self) -> Result<(i64, Option<i64>), KeyError> {
        match (self.interval, self.refill_day) {
            (Interval::Monthly, None) => Err(KeyError::invalid(
                "credits.refill.refillDay",
                "`refillDay` must be provided when the refill interval is `monthly`.",
            )),
            (Interval::Daily, Some(_)) => Err(KeyError::invalid(
                "credits.refill.refillDay",
                "`refillDay` must not be provided when the refill interval is `daily`.",
            )),
            (_, day) => Ok((self.amount, day)),
        }
    }
}

/// Everything `keys.createKey` accepts (after schema validation).
#[derive(Debug, Clone, Default)]
pub struct CreateKeyInput {
    pub prefix: Option<String>,
    pub name: Option<String>,
    pub byte_length: Option<usize>,
    pub external_id: Option<String>,
    /// JSON text of an object.
    pub meta: Option<String>,
    pub expires: Option<i64>,
    /// `Some(None)`: credits given with `remaining: null` (unlimited).
    pub remaining: Option<Option<i64>>,
    pub refill: Option<RefillInput>,
    pub enabled: bool,
    /// The key's id, made by the caller so that RBAC audit events can name it.
    pub key_id: String,
    /// Permissions and roles to attach, with their audit events.
    pub rbac: RbacChange,
    pub rbac_events: Vec<AuditEvent>,
    /// The key's own rate limits.
    pub ratelimits: Vec<LimitInput>,
    /// Keep a sealed copy of the plaintext in the vault.
    pub recoverable: bool,
}

/// The default size of a key's random part, in bytes.
pub const DEFAULT_BYTE_LENGTH: usize = 16;

/// The key service: the store plus the verification cache, the ledger and the event sink.
pub struct KeyService {
    pub store: SharedStore,
    /// This node's verification cache.
    pub cache: Arc<KeyCache>,
    /// Where every mutation reports what it made stale.
    pub invalidator: Arc<Invalidator>,
    /// Shares the ids cached keys repeat.
    pub interner: Interner,
    pub ledger: Arc<dyn Ledger>,
    pub events: EventSink,
    /// Rate-limit counters, for the limits of keys and identities.
    pub counters: Arc<dyn Counters>,
    /// Recoverable keys' vault, when the operator gave a master key.
    pub vault: Option<Arc<Vault>>,
}

/// The result of creating or rerolling a key: its id and the plaintext, shown once.
pub struct IssuedKey {
    pub key_id: String,
    pub key: String,
}

impl KeyService {
    pub fn new(
        store: SharedStore,
        cache: Arc<KeyCache>,
        invalidator: Arc<Invalidator>,
        ledger: Arc<dyn Ledger>,
        events: EventSink,
        counters: Arc<dyn Counters>,
        vault: Option<Arc<Vault>>,
    ) -> Self {
        KeyService {
            store,
            cache,
            invalidator,
            interner: Interner::default(),
            ledger,
            events,
            counters,
            vault,
        }
    }

    /// The live key with this id, as stored (including keys of deleted APIs, flagged).
    pub async fn find_by_id(&self, id: &str) -> Result<Option<KeyRow>, StoreError> {
        self.store.find_key_by_id(id).await
    }

    /// Creates a key in `api`.
    pub async fn create(
        &self,
        now: i64,
        actor: &Actor,
        api: &Api,
        input: CreateKeyInput,
    ) -> Result<IssuedKey, KeyError> {
        let refill = match input.refill {
            Some(refill) => {
                if !matches!(input.remaining, Some(Some(_))) {
                    return Err(KeyError::invalid(
                        "credits.remaining",
                        "`credits.remaining` must be provided when `credits.refill` is set.",
                    ));
                }
                Some(refill.stored()?)
            }
            None => None,
        };
        let generated = generate_key(
            input.prefix.as_deref(),
            input.byte_length.unwrap_or(DEFAULT_BYTE_LENGTH),
        );
        let mut key = NewKey {
            id: input.key_id,
            key_space_id: api.key_space_id.clone(),
            workspace_id: api.workspace_id.clone(),
            hash: generated.hash.clone(),
            start: generated.start.clone(),
            name: input.name,
            meta: input.meta,
            external_id: input.external_id,
            new_identity_id: ids::new_id(Prefix::Identity),
            expires: input.expires,
            enabled: input.enabled,
            remaining: input.remaining.flatten(),
            refill_day: refill.and_then(|(_, day)| day),
            refill_amount: refill.map(|(amount, _)| amount),
            pending_migration_id: None,
            created_at: now,
            rbac: input.rbac,
            ratelimits: Vec::new(),
            sealed: None,
        };
        if input.recoverable {
            key.sealed = Some(
                self.seal(now, &key.workspace_id, &key.id, &generated.plaintext)
                    .await?,
            );
        }
        let mut events = input.rbac_events;
        let (ratelimits, limit_events) =
            merge_limits(&api.workspace_id, actor, now, &[], input.ratelimits);
        key.ratelimits = ratelimits;
        events.extend(limit_events);
        events.push(
            AuditEvent::new(
                &api.workspace_id,
                "key.create",
                format!("Created key {}", key.id),
                actor,
                now,
                vec![
                    Target::new("key", &key.id, key.name.clone()),
                    Target::new("api", &api.id, Some(api.name.clone())),
                ],
            )
            .with_meta(serde_json::json!({
                "start": key.start,
                "enabled": key.enabled,
                "expires": key.expires,
                "remaining": key.remaining,
                "refillAmount": key.refill_amount,
                "externalId": key.external_id,
                "ratelimits": key.ratelimits.iter().map(|l| &l.name).collect::<Vec<_>>(),
                "recoverable": key.sealed.is_some(),
            })),
        );
        self.store.insert_key(&key, &events).await?;
        self.invalidator.apply(ChangeKind::Key, &key.hash);
        Ok(IssuedKey {
            key_id: key.id,
            key: generated.plaintext,
        })
    }

    /// A key's balance as of `now`, with any due refill applied, without spending: the stored
    /// one as the ledger knows it (see [`Ledger::balance`]).
    pub async fn remaining(&self, key: &KeyRow, now: i64) -> Option<i64> {
        let stored = Balance {
            remaining: key.remaining?,
            refilled_at: key.last_refill_at.unwrap_or(key.created_at),
        };
        let mut balance = self.ledger.balance(&key.id, stored).await;
        balance.refill(refill_of(key), now);
        Some(balance.remaining)
    }

    /// Applies a partial update to a live key.
    pub async fn update(
        &self,
        now: i64,
        actor: &Actor,
        key: &KeyRow,
        mut patch: KeyPatch,
        rbac_events: Vec<AuditEvent>,
        ratelimits: Option<Vec<LimitInput>>,
    ) -> Result<bool, KeyError> {
        if let Some(credits) = &patch.credits {
            let unlimited_after = match credits.remaining {
                Patch::Clear => true,
                Patch::Set(_) => false,
                Patch::Keep => key.remaining.is_none(),
            };
            if unlimited_after && matches!(credits.refill, Patch::Set(_)) {
                return Err(KeyError::invalid(
                    "credits.remaining",
                    "`credits.remaining` must be provided when `credits.refill` is set.",
                ));
            }
        }
        patch.new_identity_id = ids::new_id(Prefix::Identity);
        let mut events = rbac_events;
        if let Some(requested) = ratelimits {
            let (merged, limit_events) =
                merge_limits(&key.workspace_id, actor, now, &key.ratelimits, requested);
            patch.ratelimits = Some(merged);
            events.extend(limit_events);
        }
        events.push(
            AuditEvent::new(
                &key.workspace_id,
                "key.update",
                format!("Updated key {}", key.id),
                actor,
                now,
                vec![
                    Target::new("key", &key.id, key.name.clone()),
                    Target::new("api", &key.api_id, None),
                ],
            )
            .with_meta(serde_json::json!({ "changed": changed_fields(&patch) })),
        );
        let _guard = match patch.credits {
            Some(_) => Some(self.ledger.exclusive(&key.id).await?),
            None => None,
        };
        let done = self.store.update_key(&key.id, &patch, now, &events).await?;
        self.invalidator.apply(ChangeKind::Key, &key.hash);
        Ok(done)
    }

    /// Soft-deletes a key, or erases it with `permanent`.
    pub async fn delete(
        &self,
        now: i64,
        actor: &Actor,
        key: &KeyRow,
        permanent: bool,
    ) -> Result<bool, KeyError> {
        let description = if permanent {
            format!("Permanently deleted {}", key.id)
        } else {
            format!("Deleted {}", key.id)
        };
        let event = AuditEvent::new(
            &key.workspace_id,
            "key.delete",
            description,
            actor,
            now,
            vec![
                Target::new("key", &key.id, key.name.clone()),
                Target::new("api", &key.api_id, None),
            ],
        )
        .with_meta(serde_json::json!({ "permanent": permanent }));
        // Revocation never waits on the ledger: a deleted key's balance no longer matters.
        let _guard = match self.ledger.exclusive(&key.id).await {
            Ok(guard) => Some(guard),
            Err(err) => {
                tracing::warn!(key_id = %key.id, error = %err, "deleting a key whose credits the ledger could not take back");
                None
            }
        };
        let done = self
            .store
            .delete_key(&key.id, permanent, now, &[event])
            .await?;
        self.invalidator.apply(ChangeKind::Key, &key.hash);
        Ok(done)
    }

    /// Sets, increments or decrements a balance. `Ok(None)` when the key vanished meanwhile.
    pub async fn update_credits(
        &self,
        now: i64,
        actor: &Actor,
        key: &KeyRow,
        op: CreditOp,
    ) -> Result<CreditUpdate, KeyError> {
        let shown = match op {
            CreditOp::Set(None) => "unlimited".to_string(),
            CreditOp::Set(Some(v)) => v.to_string(),
            CreditOp::Increment(v) => format!("+{v}"),
            CreditOp::Decrement(v) => format!("-{v}"),
        };
        let event = AuditEvent::new(
            &key.workspace_id,
            "key.update",
            format!("Updated Key {}, set remaining to {shown}.", key.id),
            actor,
            now,
            vec![
                Target::new("keySpace", &key.key_space_id, None),
                Target::new("key", &key.id, key.name.clone()),
            ],
        )
        .with_meta(match op {
            CreditOp::Set(value) => serde_json::json!({ "operation": "set", "value": value }),
            CreditOp::Increment(value) => {
                serde_json::json!({ "operation": "increment", "value": value })
            }
            CreditOp::Decrement(value) => {
                serde_json::json!({ "operation": "decrement", "value": value })
            }
        });
        // Stays `NotFound` for a key that is gone (`decide` never runs).
        let mut update = CreditUpdate::NotFound;
        let mut decide = |stored: &StoredCredits| {
            update = credits::apply(stored, refill_of(key), op, now);
            match update {
                CreditUpdate::Done(state) => Some(CreditWrite {
                    remaining: state.remaining,
                    refill_amount: state.refill_amount,
                    refill_day: state.refill_day,
                    // A changed balance starts its refill period now.
                    last_refill_at: Some(now),
                }),
                CreditUpdate::Unlimited | CreditUpdate::NotFound => None,
            }
        };
        let record = CreditRecord {
            now,
            audit: &[event],
        };
        let _guard = self.ledger.exclusive(&key.id).await?;
        self.store
            .modify_credits(&key.id, &mut decide, Some(record))
            .await?;
        self.invalidator.apply(ChangeKind::Key, &key.hash);
        Ok(update)
    }

    /// Issues a new key with the old one's settings; the old one expires `expiration_ms` from now,
    /// rounded up to a whole minute (0: at once). With `recoverable`, the new key's plaintext is
    /// sealed in the vault too.
    pub async fn reroll(
        &self,
        now: i64,
        actor: &Actor,
        api: &Api,
        old: &KeyRow,
        expiration_ms: i64,
        recoverable: bool,
    ) -> Result<Option<IssuedKey>, KeyError> {
        let guard = self.ledger.exclusive(&old.id).await?;
        // The ledger has written its balance back, so the stored one is exact.
        let Some(current) = self.store.find_key_by_id(&old.id).await? else {
            return Ok(None);
        };
        let remaining = current.remaining.map(|remaining| {
            let mut balance = Balance {
                remaining,
                refilled_at: current.last_refill_at.unwrap_or(current.created_at),
            };
            balance.refill(refill_of(&current), now);
            balance.remaining
        });
        let prefix = old.start.split_once('_').map(|(p, _)| p.to_string());
        let generated: GeneratedKey = generate_key(prefix.as_deref(), DEFAULT_BYTE_LENGTH);
        let mut new = NewKey {
            id: ids::new_id(Prefix::Key),
            key_space_id: current.key_space_id.clone(),
            workspace_id: current.workspace_id.clone(),
            hash: generated.hash.clone(),
            start: generated.start.clone(),
            name: current.name.clone(),
            meta: current.meta.clone(),
            external_id: current.identity.as_ref().map(|i| i.external_id.clone()),
            new_identity_id: ids::new_id(Prefix::Identity),
            expires: current.expires,
            enabled: current.enabled,
            remaining,
            refill_day: current.refill_day,
            refill_amount: current.refill_amount,
            pending_migration_id: None,
            created_at: now,
            rbac: RbacChange {
                create: Vec::new(),
                permissions: Some(SetChange::Add(
                    self.store
                        .key_permissions(&old.id)
                        .await?
                        .into_iter()
                        .map(|p| p.slug)
                        .collect(),
                )),
                roles: Some(SetChange::Add(
                    self.store
                        .key_roles(&old.id)
                        .await?
                        .into_iter()
                        .map(|r| r.id)
                        .collect(),
                )),
            },
            ratelimits: current
                .ratelimits
                .iter()
                .map(|l| RatelimitConfig {
                    id: ids::new_id(Prefix::Ratelimit),
                    ..l.clone()
                })
                .collect(),
            sealed: None,
        };
        if recoverable {
            new.sealed = Some(
                self.seal(now, &new.workspace_id, &new.id, &generated.plaintext)
                    .await?,
            );
        }
        let old_expires = if expiration_ms == 0 {
            now
        } else {
            let at = now.saturating_add(expiration_ms);
            at.div_euclid(60_000) * 60_000 + if at % 60_000 == 0 { 0 } else { 60_000 }
        };
        let event = AuditEvent::new(
            &old.workspace_id,
            "key.reroll",
            format!("Rerolled key ({}) to ({})", old.id, new.id),
            actor,
            now,
            vec![
                Target::new("key", &new.id, new.name.clone()),
                Target::new("key", &old.id, old.name.clone()),
                Target::new("api", &api.id, Some(api.name.clone())),
            ],
        )
        .with_meta(serde_json::json!({
            "newKeyId": new.id,
            "oldKeyId": old.id,
            "oldKeyExpires": old_expires,
            "recoverable": new.sealed.is_some(),
        }));
        let done = self
            .store
            .reroll_key(&old.id, old_expires, &new, now, &[event])
            .await?;
        drop(guard);
        self.invalidator.apply(ChangeKind::Key, &old.hash);
        self.invalidator.apply(ChangeKind::Key, &new.hash);
        Ok(done.then_some(IssuedKey {
            key_id: new.id,
            key: generated.plaintext,
        }))
    }
}

/// A key's refill schedule.
/// The fields a key update sets (request names), for its audit event's `meta`.
fn changed_fields(patch: &KeyPatch) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut note = |set: bool, name: &'static str| {
        if set {
            changed.push(name);
        }
    };
    note(!matches!(patch.name, Patch::Keep), "name");
    note(!matches!(patch.meta, Patch::Keep), "meta");
    note(!matches!(patch.expires, Patch::Keep), "expires");
    note(patch.enabled.is_some(), "enabled");
    note(!matches!(patch.external_id, Patch::Keep), "externalId");
    note(patch.credits.is_some(), "credits");
    note(patch.rbac.permissions.is_some(), "permissions");
    note(patch.rbac.roles.is_some(), "roles");
    note(patch.ratelimits.is_some(), "ratelimits");
    changed
}

pub fn refill_of(key: &KeyRow) -> Option<Refill> {
    key.refill_amount.map(|amount| Refill {
        amount,
        day: key.refill_day,
    })
}

/// The credits patch of `keys.updateKey`, checked.
pub fn credits_patch(
    remaining: Patch<i64>,
    refill: Patch<RefillInput>,
) -> Result<CreditsPatch, KeyError> {
    let refill = match refill {
        Patch::Keep => Patch::Keep,
        Patch::Clear => Patch::Clear,
        Patch::Set(r) => Patch::Set(r.stored()?),
    };
    Ok(CreditsPatch { remaining, refill })
}
