//! Standalone rate limiting (`ratelimit.*`): namespaces with their overrides (cached per node,
//! invalidated through the change feed) and override matching.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use crate::domain::apis::Page;
use crate::domain::events::{EventSink, PendingRatelimit};
use crate::domain::invalidation::{Invalidate, Invalidator};
use crate::domain::ratelimit::{namespace_key, CounterError, Counters, LimitCheck, LimitOutcome};
use crate::ids::{self, Prefix, RequestId};
use crate::model::audit::{Actor, AuditEvent, Target};
use crate::model::{ChangeKind, Namespace, Override};
use crate::store::{LimitStore, StoreError};

/// Whether `identifier` matches an override pattern where `*` stands for any run of characters.
pub fn wildcard_match(pattern: &str, identifier: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), identifier.chars().collect());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The override that applies to `identifier`: an exact one first, else the most specific
/// wildcard (most literal characters, then lowest id) that matches.
pub fn match_override<'a>(namespace: &'a Namespace, identifier: &str) -> Option<&'a Override> {
    if let Some(exact) = namespace
        .overrides
        .iter()
        .find(|o| o.identifier == identifier)
    {
        return Some(exact);
    }
    namespace
        .overrides
        .iter()
        .filter(|o| o.identifier.contains('*') && wildcard_match(&o.identifier, identifier))
        .max_by(|a, b| {
            let literal = |o: &Override| o.identifier.chars().filter(|c| *c != '*').count();
            literal(a).cmp(&literal(b)).then_with(|| b.id.cmp(&a.id))
        })
}

/// One item of `ratelimit.limit` / `ratelimit.multiLimit`.
#[derive(Debug, Clone)]
pub struct LimitRequest<'a> {
    pub namespace: &'a Arc<Namespace>,
    pub identifier: &'a str,
    pub limit: i64,
    pub duration_ms: i64,
    pub cost: i64,
}

/// The decision for one item, with the limit that applied (after any override).
#[derive(Debug, Clone)]
pub struct LimitDecision {
    pub outcome: LimitOutcome,
    pub limit: i64,
    pub override_id: Option<String>,
}

/// This node's cache of namespaces by workspace, then by name or id (two levels, so a lookup
/// allocates nothing). Emptied through the [`Invalidator`].
#[derive(Default)]
pub struct NamespaceCache {
    map: RwLock<HashMap<String, HashMap<String, Arc<Namespace>>>>,
}

/// Bound on cached namespaces; past it the cache starts over.
const NAMESPACE_CAPACITY: usize = 100_000;

impl NamespaceCache {
    fn get(&self, workspace_id: &str, name_or_id: &str) -> Option<Arc<Namespace>> {
        self.map
            .read()
            .ok()
            .and_then(|m| m.get(workspace_id)?.get(name_or_id).cloned())
    }

    fn insert(&self, workspace_id: &str, name_or_id: &str, namespace: Arc<Namespace>) {
        if let Ok(mut map) = self.map.write() {
            if map.values().map(HashMap::len).sum::<usize>() >= NAMESPACE_CAPACITY {
                map.clear();
            }
            map.entry(workspace_id.to_string())
                .or_default()
                .insert(name_or_id.to_string(), namespace);
        }
    }

    /// Forgets every cached namespace.
    pub fn clear(&self) {
        if let Ok(mut map) = self.map.write() {
            map.clear();
        }
    }
}

impl Invalidate for NamespaceCache {
    /// A namespace or one of its overrides changed; namespaces are few, so all go.
    fn invalidate(&self, kind: ChangeKind, _entity: &str) {
        if kind == ChangeKind::Namespace {
            self.clear();
        }
    }
}

/// Namespaces and overrides, through the per-node cache; and the counters.
pub struct LimitService {
    pub store: Arc<dyn LimitStore>,
    pub counters: Arc<dyn Counters>,
    cache: Arc<NamespaceCache>,
    invalidator: Arc<Invalidator>,
    /// Where decisions are recorded for analytics.
    events: EventSink,
}

/// The request a batch of limits is decided for, as analytics records it.
#[derive(Debug, Clone, Copy)]
pub struct Requested {
    pub request_id: RequestId,
    pub started: Instant,
}

impl LimitService {
    pub fn new(
        store: Arc<dyn LimitStore>,
        counters: Arc<dyn Counters>,
        cache: Arc<NamespaceCache>,
        invalidator: Arc<Invalidator>,
        events: EventSink,
    ) -> Self {
        LimitService {
            store,
            counters,
            cache,
            invalidator,
            events,
        }
    }

    /// One page (at most `limit`) of the workspace's live namespaces in name order, from the name
    /// `cursor` on, without their overrides; the next page's cursor when there is one.
    pub async fn list_namespaces(
        &self,
        workspace_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Namespace>, StoreError> {
        let mut items = self
            .store
            .list_namespaces(workspace_id, cursor, limit as i64 + 1)
            .await?;
        let next_cursor = if items.len() > limit {
            items.truncate(limit + 1);
            items.pop().map(|ns| ns.name)
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Up to `limit` live overrides of a namespace from `cursor` on, in id order.
    pub async fn list_overrides(
        &self,
        namespace_id: &str,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Override>, StoreError> {
        self.store.list_overrides(namespace_id, cursor, limit).await
    }

    /// A namespace by name or id, live or deleted, through the cache.
    pub async fn namespace(
        &self,
        workspace_id: &str,
        name_or_id: &str,
    ) -> Result<Option<Arc<Namespace>>, StoreError> {
        if let Some(found) = self.cache.get(workspace_id, name_or_id) {
            return Ok(Some(found));
        }
        let Some(found) = self.store.find_namespace(workspace_id, name_or_id).await? else {
            return Ok(None);
        };
        let found = Arc::new(found);
        self.cache.insert(workspace_id, name_or_id, found.clone());
        Ok(Some(found))
    }

    /// Creates a namespace on first use (or returns the one that won a race).
    pub async fn create_namespace(
        &self,
        now: i64,
        workspace_id: &str,
        actor: &Actor,
        name: &str,
    ) -> Result<Arc<Namespace>, StoreError> {
        let namespace = Namespace {
            id: ids::new_id(Prefix::Namespace),
            workspace_id: workspace_id.to_string(),
            name: name.to_string(),
            deleted: false,
            created_at: now,
            overrides: Vec::new(),
        };
        let event = AuditEvent::new(
            workspace_id,
            "ratelimitNamespace.create",
            format!("Created ratelimit namespace {} ({})", name, namespace.id),
            actor,
            now,
            vec![Target::new(
                "ratelimitNamespace",
                &namespace.id,
                Some(name.to_string()),
            )],
        );
        let created = self.store.create_namespace(&namespace, &[event]).await?;
        self.invalidator.apply(ChangeKind::Namespace, &created.id);
        Ok(Arc::new(created))
    }

    /// Decides a batch of standalone limits together (overrides applied), and records each
    /// decision for analytics.
    pub async fn limit(
        &self,
        items: &[LimitRequest<'_>],
        now: i64,
        requested: Requested,
    ) -> Result<Vec<LimitDecision>, CounterError> {
        let mut checks = Vec::with_capacity(items.len());
        let mut applied = Vec::with_capacity(items.len());
        for item in items {
            let (limit, duration, override_id) =
                match match_override(item.namespace, item.identifier) {
                    Some(o) => (o.limit, o.duration_ms, Some(o.id.clone())),
                    None => (item.limit, item.duration_ms, None),
                };
            checks.push(LimitCheck {
                key: namespace_key(
                    &item.namespace.workspace_id,
                    &item.namespace.id,
                    item.identifier,
                    duration,
                ),
                limit,
                duration_ms: duration,
                cost: item.cost,
            });
            applied.push((limit, override_id));
        }
        let outcomes = self.counters.decide(&checks, now).await?;
        let decisions: Vec<LimitDecision> = outcomes
            .into_iter()
            .zip(applied)
            .map(|(outcome, (limit, override_id))| LimitDecision {
                outcome,
                limit,
                override_id,
            })
            .collect();
        let latency_us = requested
            .started
            .elapsed()
            .as_micros()
            .min(i64::MAX as u128) as i64;
        for (item, decision) in items.iter().zip(&decisions) {
            crate::telemetry::ratelimit_decision(decision.outcome.passed);
            self.events.record_ratelimit(PendingRatelimit {
                namespace: item.namespace.clone(),
                request_id: requested.request_id,
                time_ms: now,
                identifier: item.identifier.to_string(),
                passed: decision.outcome.passed,
                latency_us,
                override_id: decision.override_id.clone(),
                limit: decision.limit,
                remaining: decision.outcome.remaining,
                reset_at_ms: decision.outcome.reset,
                tokens: item.cost,
            });
        }
        Ok(decisions)
    }

    /// Creates or replaces (and revives) an override; returns its id.
    pub async fn set_override(
        &self,
        now: i64,
        actor: &Actor,
        namespace: &Namespace,
        identifier: &str,
        limit: i64,
        duration_ms: i64,
    ) -> Result<String, StoreError> {
        let new = Override {
            id: ids::new_id(Prefix::Override),
            namespace_id: namespace.id.clone(),
            identifier: identifier.to_string(),
            limit,
            duration_ms,
        };
        let event = AuditEvent::new(
            &namespace.workspace_id,
            "ratelimit.set_override",
            format!(
                "Set override for {identifier} in namespace {}",
                namespace.name
            ),
            actor,
            now,
            vec![
                Target::new(
                    "ratelimitNamespace",
                    &namespace.id,
                    Some(namespace.name.clone()),
                ),
                Target::new("ratelimitOverride", &new.id, Some(identifier.to_string())),
            ],
        )
        .with_meta(serde_json::json!({
            "identifier": identifier,
            "limit": limit,
            "duration": duration_ms,
        }));
        let id = self
            .store
            .set_override(&namespace.workspace_id, &new, now, &[event])
            .await?;
        self.invalidator.apply(ChangeKind::Namespace, &namespace.id);
        Ok(id)
    }

    /// Deletes the override of exactly `identifier`.
    pub async fn delete_override(
        &self,
        now: i64,
        actor: &Actor,
        namespace: &Namespace,
        override_: &Override,
    ) -> Result<bool, StoreError> {
        let event = AuditEvent::new(
            &namespace.workspace_id,
            "ratelimit.delete_override",
            format!(
                "Deleted override for {} in namespace {}",
                override_.identifier, namespace.name
            ),
            actor,
            now,
            vec![
                Target::new(
                    "ratelimitNamespace",
                    &namespace.id,
                    Some(namespace.name.clone()),
                ),
                Target::new(
                    "ratelimitOverride",
                    &override_.id,
                    Some(override_.identifier.clone()),
                ),
            ],
        );
        let done = self
            .store
            .delete_override(
                &namespace.workspace_id,
                &namespace.id,
                &override_.identifier,
                now,
                &[event],
            )
            .await?;
        self.invalidator.apply(ChangeKind::Namespace, &namespace.id);
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(overrides: &[(&str, &str)]) -> Namespace {
        Namespace {
            id: "rlns_1".into(),
            workspace_id: "ws".into(),
            name: "n".into(),
            deleted: false,
            created_at: 0,
            overrides: overrides
                .iter()
                .map(|(id, ident)| Override {
                    id: id.to_string(),
                    namespace_id: "rlns_1".into(),
                    identifier: ident.to_string(),
                    limit: 1,
                    duration_ms: 1000,
                })
                .collect(),
        }
    }

    #[test]
    fn wildcards_match_any_run_of_characters_and_nothing_else_is_special() {
        assert!(wildcard_match("user_*", "user_123"));
        assert!(wildcard_match("*@acme.com", "bob@acme.com"));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("user_*", "admin_1"));
        assert!(!wildcard_match("a.c", "abc"), "a dot is literal");
        assert!(!wildcard_match("a*c", "abcd"));
    }

    #[test]
    fn exact_overrides_win_then_the_most_specific_wildcard() {
        let n = ns(&[("rlor_a", "*"), ("rlor_b", "user_*"), ("rlor_c", "user_1")]);
        assert_eq!(
            match_override(&n, "user_1").map(|o| o.id.as_str()),
            Some("rlor_c")
        );
        assert_eq!(
            match_override(&n, "user_2").map(|o| o.id.as_str()),
            Some("rlor_b")
        );
        assert_eq!(
            match_override(&n, "other").map(|o| o.id.as_str()),
            Some("rlor_a")
        );
        assert!(match_override(&ns(&[("rlor_x", "x")]), "y").is_none());
    }
}
