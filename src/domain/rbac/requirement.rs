//! Permission requirements: a boolean expression over permission strings, checked against the set
//! a caller holds.
//!
//! Root keys hold Unkey's tuple strings (`api.*.create_key`, `api.<apiId>.read_key`). Matching is by
//! exact string: `*` is a literal, and "any API" is expressed by OR-ing `api.*.x` with
//! `api.<id>.x`. When a requirement fails, [`Requirement::check`] names what would have been
//! enough, in the words of Unkey's messages.

use std::collections::HashSet;
use std::fmt;

/// A boolean expression of permission strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Permission(String),
    And(Vec<Requirement>),
    Or(Vec<Requirement>),
}

impl Requirement {
    /// One permission.
    pub fn one(permission: impl Into<String>) -> Self {
        Requirement::Permission(permission.into())
    }

    /// Any of the given permissions.
    pub fn any_of<I, S>(permissions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Requirement::Or(permissions.into_iter().map(Requirement::one).collect())
    }

    /// `api.*.<action> OR api.<api_id>.<action>`: the usual shape of a per-API permission.
    pub fn api(action: &str, api_id: &str) -> Self {
        Requirement::any_of([format!("api.*.{action}"), format!("api.{api_id}.{action}")])
    }

    /// Both requirements.
    pub fn and(self, other: Requirement) -> Self {
        match self {
            Requirement::And(mut items) => {
                items.push(other);
                Requirement::And(items)
            }
            first => Requirement::And(vec![first, other]),
        }
    }

    /// Whether `held` satisfies the requirement.
    pub fn is_satisfied_by(&self, held: &HashSet<String>) -> bool {
        self.evaluate(&|p| held.contains(p))
    }

    /// Whether the requirement holds, given what `holds` says of each permission.
    pub fn evaluate(&self, holds: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Requirement::Permission(p) => holds(p),
            Requirement::And(items) => items.iter().all(|r| r.evaluate(holds)),
            Requirement::Or(items) => items.iter().any(|r| r.evaluate(holds)),
        }
    }

    /// Checks the requirement; on failure, the message that names what was missing.
    pub fn check(&self, held: &HashSet<String>) -> Result<(), String> {
        match self {
            Requirement::Permission(p) if held.contains(p) => Ok(()),
            Requirement::Permission(p) => Err(format!("Missing permission: '{p}'")),
            Requirement::And(items) => items.iter().try_for_each(|r| r.check(held)),
            Requirement::Or(items) if items.iter().any(|r| r.is_satisfied_by(held)) => Ok(()),
            Requirement::Or(items) => {
                let options: Vec<String> = items.iter().map(|r| r.to_string()).collect();
                Err(format!(
                    "Missing one of these permissions: {}",
                    options.join(" or ")
                ))
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn join(f: &mut fmt::Formatter<'_>, items: &[Requirement], op: &str) -> fmt::Result {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    write!(f, " {op} ")?;
                }
                match item {
                    Requirement::Permission(_) => write!(f, "{item}")?,
                    _ => write!(f, "({item})")?,
                }
            }
            Ok(())
        }
        match self {
            Requirement::Permission(p) => write!(f, "'{p}'"),
            Requirement::And(items) => join(f, items, "and"),
            Requirement::Or(items) => join(f, items, "or"),
        }
    }
}

/// Every action of every resource type a root key can be granted, as `(resource, actions)`.
const ROOT_VOCABULARY: &[(&str, &[&str])] = &[
    (
        "api",
        &[
            "read_api",
            "create_api",
            "delete_api",
            "update_api",
            "create_key",
            "update_key",
            "delete_key",
            "encrypt_key",
            "decrypt_key",
            "read_key",
            "verify_key",
            "read_analytics",
        ],
    ),
    (
        "ratelimit",
        &[
            "limit",
            "create_namespace",
            "read_namespace",
            "update_namespace",
            "delete_namespace",
            "set_override",
            "read_override",
            "delete_override",
            "list_overrides",
            "read_analytics",
        ],
    ),
    (
        "rbac",
        &[
            "create_permission",
            "update_permission",
            "delete_permission",
            "read_permission",
            "create_role",
            "update_role",
            "delete_role",
            "read_role",
            "add_permission_to_key",
            "remove_permission_from_key",
            "add_role_to_key",
            "remove_role_from_key",
            "add_permission_to_role",
            "remove_permission_from_role",
        ],
    ),
    (
        "identity",
        &[
            "create_identity",
            "read_identity",
            "update_identity",
            "delete_identity",
        ],
    ),
    // keyward's own: reading the audit log (`audit.getLogs`).
    ("audit", &["read_audit_log"]),
];

/// The workspace-wide (`*`) grant of every action: what a root key created without explicit
/// permissions holds.
pub fn all_root_permissions() -> Vec<String> {
    ROOT_VOCABULARY
        .iter()
        .flat_map(|(resource, actions)| actions.iter().map(move |a| format!("{resource}.*.{a}")))
        .collect()
}

/// Whether `permission` is a well-formed root-key grant: `<resource>.<id or *>.<known action>`.
pub fn is_valid_root_permission(permission: &str) -> bool {
    let mut parts = permission.splitn(3, '.');
    let (Some(resource), Some(id), Some(action)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let id_ok =
        id == "*" || (!id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    id_ok
        && ROOT_VOCABULARY
            .iter()
            .any(|(r, actions)| *r == resource && actions.contains(&action))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(items: &[&str]) -> HashSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn wildcard_is_a_literal_not_a_pattern() {
        let req = Requirement::one("api.*.create_key");
        assert!(req.check(&held(&["api.*.create_key"])).is_ok());
        assert!(req.check(&held(&["api.api_1.create_key"])).is_err());
    }

    #[test]
    fn per_api_requirement_accepts_either_form_and_names_both_when_missing() {
        let req = Requirement::api("read_api", "api_1");
        assert!(req.check(&held(&["api.api_1.read_api"])).is_ok());
        assert!(req.check(&held(&["api.*.read_api"])).is_ok());
        assert_eq!(
            req.check(&held(&["api.api_2.read_api"])).unwrap_err(),
            "Missing one of these permissions: 'api.*.read_api' or 'api.api_1.read_api'"
        );
    }

    #[test]
    fn and_reports_its_first_failing_part() {
        let req = Requirement::api("read_key", "a").and(Requirement::api("read_api", "a"));
        let err = req.check(&held(&["api.*.read_key"])).unwrap_err();
        assert!(err.contains("read_api"), "{err}");
        assert!(req
            .check(&held(&["api.*.read_key", "api.a.read_api"]))
            .is_ok());
    }

    #[test]
    fn every_default_permission_is_valid_and_unique() {
        let all = all_root_permissions();
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
        assert!(all.iter().all(|p| is_valid_root_permission(p)));
        assert!(all.contains(&"api.*.verify_key".to_string()));
    }

    #[test]
    fn malformed_root_permissions_are_rejected() {
        for bad in [
            "api",
            "api.*",
            "api.*.fly",
            "nope.*.read_api",
            "api..read_api",
            "api.a-b.read_api",
        ] {
            assert!(!is_valid_root_permission(bad), "{bad}");
        }
        assert!(is_valid_root_permission("api.api_123.read_key"));
    }
}
