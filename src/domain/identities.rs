//! Identities: the customers keys belong to. An identity groups keys under an external id and
//! carries metadata and rate limits that all its keys share.

use std::sync::Arc;

use crate::domain::invalidation::Invalidator;
use crate::domain::ratelimit::named::{merge_limits, LimitInput};
use crate::ids::{self, Prefix};
use crate::model::audit::{Actor, AuditEvent, Target};
use crate::model::{ChangeKind, Identity};
use crate::store::{IdentityStore, StoreError};

/// The largest identity `meta`, serialized: 1 MiB.
pub const MAX_META_BYTES: usize = 1_048_576;

/// The refusal for metadata over [`MAX_META_BYTES`], in decimal units.
pub fn meta_too_large(bytes: usize) -> String {
    let size = if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1_000_000.0)
    } else {
        format!("{:.1} kB", bytes as f64 / 1_000.0)
    };
    format!("Metadata is too large: it must be at most 1.0 MB, but is {size}.")
}

/// Identities: creation, updates and deletion, keeping the verification cache in step.
pub struct IdentityService {
    store: Arc<dyn IdentityStore>,
    invalidator: Arc<Invalidator>,
}

impl IdentityService {
    pub fn new(store: Arc<dyn IdentityStore>, invalidator: Arc<Invalidator>) -> Self {
        IdentityService { store, invalidator }
    }

    /// A live identity (with its rate limits) by id or external id.
    pub async fn find(
        &self,
        workspace_id: &str,
        id_or_external_id: &str,
    ) -> Result<Option<Identity>, StoreError> {
        self.store
            .find_identity(workspace_id, id_or_external_id)
            .await
    }

    /// Up to `limit` live identities from `cursor` on, in id order; `search` matches id or
    /// external id without case.
    pub async fn list(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: i64,
        search: Option<&str>,
    ) -> Result<Vec<Identity>, StoreError> {
        self.store
            .list_identities(workspace_id, cursor, limit, search)
            .await
    }

    /// Creates an identity; `Ok(None)` when its external id is taken.
    pub async fn create(
        &self,
        now: i64,
        workspace_id: &str,
        actor: &Actor,
        external_id: &str,
        meta: Option<String>,
        limits: Vec<LimitInput>,
    ) -> Result<Option<Identity>, StoreError> {
        let id = ids::new_id(Prefix::Identity);
        let (ratelimits, mut events) = merge_limits(workspace_id, actor, now, &[], limits);
        events.insert(
            0,
            AuditEvent::new(
                workspace_id,
                "identity.create",
                format!("Created identity {id}."),
                actor,
                now,
                vec![Target::new("identity", &id, Some(external_id.to_string()))],
            ),
        );
        let identity = Identity {
            id,
            workspace_id: workspace_id.to_string(),
            external_id: external_id.to_string(),
            meta,
            created_at: now,
            ratelimits,
        };
        Ok(self
            .store
            .create_identity(&identity, &events)
            .await?
            .then_some(identity))
    }

    /// Replaces an identity's meta and/or rate limits (by name, keeping ids).
    pub async fn update(
        &self,
        now: i64,
        actor: &Actor,
        identity: &Identity,
        meta: Option<Option<String>>,
        limits: Option<Vec<LimitInput>>,
    ) -> Result<bool, StoreError> {
        let mut events = vec![AuditEvent::new(
            &identity.workspace_id,
            "identity.update",
            format!("Updated identity {}.", identity.id),
            actor,
            now,
            vec![Target::new(
                "identity",
                &identity.id,
                Some(identity.external_id.clone()),
            )],
        )];
        let merged = limits.map(|limits| {
            let (merged, limit_events) = merge_limits(
                &identity.workspace_id,
                actor,
                now,
                &identity.ratelimits,
                limits,
            );
            events.extend(limit_events);
            merged
        });
        let done = self
            .store
            .update_identity(
                &identity.workspace_id,
                &identity.id,
                meta,
                merged.as_deref(),
                now,
                &events,
            )
            .await?;
        // Keys carry their identity's limits and meta in the verification cache.
        self.invalidator.apply(ChangeKind::Identity, &identity.id);
        Ok(done)
    }

    /// Deletes an identity; its keys keep working without it.
    pub async fn delete(
        &self,
        now: i64,
        actor: &Actor,
        identity: &Identity,
    ) -> Result<bool, StoreError> {
        let mut events = vec![AuditEvent::new(
            &identity.workspace_id,
            "identity.delete",
            format!("Deleted identity {}.", identity.id),
            actor,
            now,
            vec![Target::new(
                "identity",
                &identity.id,
                Some(identity.external_id.clone()),
            )],
        )];
        let (_, limit_events) = merge_limits(
            &identity.workspace_id,
            actor,
            now,
            &identity.ratelimits,
            Vec::new(),
        );
        events.extend(limit_events);
        let done = self
            .store
            .delete_identity(&identity.workspace_id, &identity.id, now, &events)
            .await?;
        self.invalidator.apply(ChangeKind::Identity, &identity.id);
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_meta_is_described_in_decimal_units() {
        assert_eq!(
            meta_too_large(1_500_000),
            "Metadata is too large: it must be at most 1.0 MB, but is 1.5 MB."
        );
    }
}
