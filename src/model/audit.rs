//! Audit records: who changed what, from where. The domain builds one for every mutation and the
//! store writes it in the mutation's own transaction, so a change without its record cannot exist.

use serde::Serialize;

use crate::ids::{self, Prefix};

/// Who performed a mutation.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Actor {
    /// `rootkey` for API calls, `system` for the operator's CLI.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The caller's address (first `X-Forwarded-For` entry, else the socket peer), if known.
    #[serde(skip)]
    pub remote_ip: Option<String>,
    #[serde(skip)]
    pub user_agent: Option<String>,
}

impl Actor {
    /// The operator acting through the command line.
    pub fn cli() -> Self {
        Actor {
            kind: "system".into(),
            id: "cli".into(),
            name: Some("keyward CLI".into()),
            remote_ip: None,
            user_agent: None,
        }
    }
}

/// A resource an event touched.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Target {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Target {
    pub fn new(kind: &'static str, id: impl Into<String>, name: Option<String>) -> Self {
        Target {
            kind,
            id: id.into(),
            name,
        }
    }
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: String,
    pub workspace_id: String,
    pub event: &'static str,
    pub time_ms: i64,
    pub description: String,
    pub actor: Actor,
    pub targets: Vec<Target>,
}

/// The bucket Unkey files API mutations under.
pub const BUCKET: &str = "unkey_mutations";

impl AuditEvent {
    pub fn new(
        workspace_id: &str,
        event: &'static str,
        description: String,
        actor: &Actor,
        time_ms: i64,
        targets: Vec<Target>,
    ) -> Self {
        AuditEvent {
            id: ids::new_id(Prefix::AuditLog),
            workspace_id: workspace_id.to_string(),
            event,
            time_ms,
            description,
            actor: actor.clone(),
            targets,
        }
    }
}

/// A stored audit event, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAuditEvent {
    pub id: String,
    pub workspace_id: String,
    pub event: String,
    pub time_ms: i64,
    pub description: String,
    pub actor_type: String,
    pub actor_id: String,
    pub remote_ip: Option<String>,
    pub user_agent: Option<String>,
    pub targets: serde_json::Value,
}
