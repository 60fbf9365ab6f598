//! Records of the vault, which keeps recoverable keys: data keys as stored (wrapped by the master
//! key) and keys' sealed plaintexts. Neither holds anything readable without the master key.

/// A workspace's data key as stored: the key itself sealed under a master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDataKey {
    pub id: String,
    pub workspace_id: String,
    /// Which master key sealed it (`kek_…`, derived from the master key, never the key).
    pub master_key_id: String,
    /// Base64 of nonce and ciphertext.
    pub wrapped: String,
    pub created_at: i64,
}

/// A key's plaintext sealed under one of its workspace's data keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedKey {
    pub data_key_id: String,
    /// Base64 of nonce and ciphertext.
    pub sealed: String,
}

/// A recoverable key's sealed copy, with the key it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedKey {
    pub key_id: String,
    pub workspace_id: String,
    pub sealed: SealedKey,
}

/// What the vault holds for one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultWorkspace {
    pub workspace_id: String,
    pub data_keys: i64,
    pub encrypted_keys: i64,
    /// The newest data key, which new recoverable keys are sealed under.
    pub latest_data_key_id: Option<String>,
}
