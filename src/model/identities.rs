//! Identities: the customers keys belong to.

use crate::model::limits::RatelimitConfig;

/// A customer: keys grouped under an external id, with shared metadata and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub workspace_id: String,
    pub external_id: String,
    /// JSON text of an object.
    pub meta: Option<String>,
    pub created_at: i64,
    pub ratelimits: Vec<RatelimitConfig>,
}
