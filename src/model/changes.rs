//! The change feed: what a mutation tells other processes to drop from their caches.

/// What a change-feed entry invalidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    RootKey,
    Workspace,
    Api,
    /// A key changed; the entity is its hash.
    Key,
    /// An identity changed; the entity is its id.
    Identity,
    /// Roles or permissions changed in a way that can touch many keys; the entity is the workspace.
    Rbac,
    /// A rate-limit namespace or its overrides changed; the entity is the namespace id.
    Namespace,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::RootKey => "root_key",
            ChangeKind::Workspace => "workspace",
            ChangeKind::Api => "api",
            ChangeKind::Key => "key",
            ChangeKind::Identity => "identity",
            ChangeKind::Rbac => "rbac",
            ChangeKind::Namespace => "namespace",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "root_key" => Some(ChangeKind::RootKey),
            "workspace" => Some(ChangeKind::Workspace),
            "api" => Some(ChangeKind::Api),
            "key" => Some(ChangeKind::Key),
            "identity" => Some(ChangeKind::Identity),
            "rbac" => Some(ChangeKind::Rbac),
            "namespace" => Some(ChangeKind::Namespace),
            _ => None,
        }
    }
}

/// One entry of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub kind: ChangeKind,
    pub entity_id: String,
}
