//! Permissions and roles, and a change to what a key (or role) holds.

use crate::model::patch::SetChange;

/// A permission a key can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub created_at: i64,
}

/// A named set of permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: i64,
    /// Sorted by slug.
    pub permissions: Vec<Permission>,
}

/// Changes to a key's permissions and roles, applied in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RbacChange {
    /// Permissions to create first (skipped if their slug appeared meanwhile).
    pub create: Vec<Permission>,
    /// Direct permissions, by slug.
    pub permissions: Option<SetChange<String>>,
    /// Roles, by id.
    pub roles: Option<SetChange<String>>,
}

impl RbacChange {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.permissions.is_none() && self.roles.is_none()
    }
}
