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
    /// Shared by every event of one request (its request id) or one command-line run.
    #[serde(skip)]
    pub correlation_id: Option<String>,
}

impl Actor {
    /// The operator acting through the command line; one run is one correlation.
    pub fn cli() -> Self {
        Actor {
            kind: "system".into(),
            id: "cli".into(),
            name: Some("keyward CLI".into()),
            remote_ip: None,
            user_agent: None,
            correlation_id: Some(ids::new_id(Prefix::Request)),
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
    /// Details the description leaves out (what changed, to what), as a JSON object.
    pub meta: Option<serde_json::Value>,
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
            meta: None,
        }
    }

    /// The event with `meta`, an object of details.
    pub fn with_meta(mut self, meta: serde_json::Value) -> Self {
        self.meta = Some(meta);
        self
    }
}

/// A stored audit event, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAuditEvent {
    pub id: String,
    pub workspace_id: String,
    /// Position in the workspace's log: assigned in commit order, gap-free, from 1.
    pub seq: i64,
    pub bucket: String,
    pub event: String,
    pub time_ms: i64,
    pub description: String,
    pub actor_type: String,
    pub actor_id: String,
    pub actor_name: Option<String>,
    pub remote_ip: Option<String>,
    pub user_agent: Option<String>,
    pub correlation_id: Option<String>,
    pub meta: Option<String>,
    pub targets: serde_json::Value,
    /// The hash chain: the previous event's hash and this one's (`None` for events written
    /// before the chain existed).
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

/// Which audit events to read: one workspace, after a position, with optional filters (each
/// list matches any of its values; an empty list matches everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub workspace_id: String,
    /// Only events after this position.
    pub after_seq: i64,
    pub limit: i64,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub bucket: Option<String>,
    pub events: Vec<String>,
    pub actor_ids: Vec<String>,
    pub actor_types: Vec<String>,
    pub target_ids: Vec<String>,
    pub target_types: Vec<String>,
    pub correlation_id: Option<String>,
}
