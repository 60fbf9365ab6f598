//! The named rate limits of keys and identities: how a requested list replaces the stored one
//! (by name, keeping ids) and which audit events that makes.

use crate::ids::{self, Prefix};
use crate::model::audit::{Actor, AuditEvent, Target};
use crate::model::RatelimitConfig;

/// A rate limit as a request describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitInput {
    pub name: String,
    pub limit: i64,
    pub duration_ms: i64,
    pub auto_apply: bool,
}

/// The new list of an owner's limits: same name keeps its id, new names get new ids. Returns the
/// list and the audit events (`ratelimit.create/update/delete`) relative to `existing`.
pub fn merge_limits(
    workspace_id: &str,
    actor: &Actor,
    now: i64,
    existing: &[RatelimitConfig],
    requested: Vec<LimitInput>,
) -> (Vec<RatelimitConfig>, Vec<AuditEvent>) {
    let mut events = Vec::new();
    let event = |name: &'static str, verb: &str, limit: &RatelimitConfig| {
        AuditEvent::new(
            workspace_id,
            name,
            format!("{verb} ratelimit {} ({})", limit.name, limit.id),
            actor,
            now,
            vec![Target::new(
                "ratelimit",
                &limit.id,
                Some(limit.name.clone()),
            )],
        )
    };
    let merged: Vec<RatelimitConfig> = requested
        .into_iter()
        .map(|r| {
            let current = existing.iter().find(|e| e.name == r.name);
            let limit = RatelimitConfig {
                id: current
                    .map(|e| e.id.clone())
                    .unwrap_or_else(|| ids::new_id(Prefix::Ratelimit)),
                name: r.name,
                limit: r.limit,
                duration_ms: r.duration_ms,
                auto_apply: r.auto_apply,
            };
            match current {
                None => events.push(event("ratelimit.create", "Created", &limit)),
                Some(c) if c != &limit => events.push(event("ratelimit.update", "Updated", &limit)),
                Some(_) => {}
            }
            limit
        })
        .collect();
    for gone in existing
        .iter()
        .filter(|e| !merged.iter().any(|m| m.name == e.name))
    {
        events.push(event("ratelimit.delete", "Deleted", gone));
    }
    (merged, events)
}

/// The first duplicate name in a list of limits, if any.
pub fn duplicate_name(limits: &[LimitInput]) -> Option<&str> {
    limits
        .iter()
        .enumerate()
        .find(|(i, l)| limits[..*i].iter().any(|o| o.name == l.name))
        .map(|(_, l)| l.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_limits_keep_ids_by_name_and_report_changes() {
        let actor = Actor::cli();
        let existing = vec![
            RatelimitConfig {
                id: "rl_1".into(),
                name: "a".into(),
                limit: 1,
                duration_ms: 1000,
                auto_apply: false,
            },
            RatelimitConfig {
                id: "rl_2".into(),
                name: "b".into(),
                limit: 1,
                duration_ms: 1000,
                auto_apply: false,
            },
        ];
        let (merged, events) = merge_limits(
            "ws",
            &actor,
            0,
            &existing,
            vec![
                LimitInput {
                    name: "a".into(),
                    limit: 5,
                    duration_ms: 1000,
                    auto_apply: true,
                },
                LimitInput {
                    name: "c".into(),
                    limit: 1,
                    duration_ms: 1000,
                    auto_apply: false,
                },
            ],
        );
        assert_eq!(merged[0].id, "rl_1");
        assert!(merged[1].id.starts_with("rl_"));
        let kinds: Vec<&str> = events.iter().map(|e| e.event).collect();
        assert_eq!(
            kinds,
            ["ratelimit.update", "ratelimit.create", "ratelimit.delete"]
        );
    }

    #[test]
    fn duplicate_names_are_found() {
        let l = |n: &str| LimitInput {
            name: n.into(),
            limit: 1,
            duration_ms: 1000,
            auto_apply: false,
        };
        assert_eq!(duplicate_name(&[l("a"), l("b"), l("a")]), Some("a"));
        assert_eq!(duplicate_name(&[l("a"), l("b")]), None);
    }
}
