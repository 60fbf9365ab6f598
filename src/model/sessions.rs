//! Dashboard sign-ins, as stored.

/// One signed-in browser. The browser holds the session id; only its SHA-256 is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardSession {
    /// Hex SHA-256 of the session id the cookie carries.
    pub id_hash: String,
    pub workspace_id: String,
    pub root_key_id: String,
    /// The root key's stored hash: the session re-authenticates through it on every request.
    pub root_key_hash: String,
    pub created_at: i64,
    pub last_seen: i64,
}
