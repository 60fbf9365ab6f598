//! The vault: recoverable keys, kept by envelope encryption with AES-256-GCM.
//!
//! - The operator's **master key** (32 random bytes, never stored) seals each workspace's **data
//!   keys**; a sealed data key is bound to its id and workspace (associated data), so it cannot
//!   be moved to another workspace.
//! - A recoverable key's plaintext is sealed under its workspace's newest data key, bound to the
//!   workspace and the key id: a sealed copy moved onto another key, or into another workspace,
//!   does not open.
//! - Rotation: a process may hold a previous master key beside the current one and opens data
//!   keys sealed under either; [`Vault::rotate_master`] reseals every data key under the current
//!   one. [`Vault::rotate_data_key`] starts a new data key for a workspace and can reseal its
//!   keys under it.
//!
//! Plaintexts live in [`Zeroizing`] buffers, wiped when dropped, and are never logged; the master
//! and data keys are wiped with their ciphers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::ids::{self, Prefix};
use crate::model::{EncryptedKey, SealedKey, StoredDataKey, VaultWorkspace};
use crate::store::{SharedStore, StoreError};

/// The length of a master key and of a data key, in bytes.
pub const KEY_LEN: usize = 32;
/// The version byte that starts every sealed value.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
/// How long a process keeps sealing under the data key it last saw as a workspace's newest: a
/// data key rotated by the CLI is picked up within this.
const LATEST_TTL: Duration = Duration::from_secs(30);
/// Rows read per round by the rotations.
const ROTATION_PAGE: i64 = 500;

/// Why a master key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MasterKeyError {
    #[error("the master key is not base64")]
    NotBase64,
    #[error("the master key must be {KEY_LEN} bytes (base64 of {KEY_LEN} random bytes), not {0}")]
    WrongLength(usize),
}

/// Why the vault could not seal or open.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// A data key is sealed under a master key this process was not given.
    #[error("data key {data_key} is sealed under master key {master_key}, which this process does not hold (pass it as --master-key or --previous-master-key)")]
    UnknownMasterKey {
        data_key: String,
        master_key: String,
    },
    #[error("data key {0} does not exist")]
    MissingDataKey(String),
    /// Authentication failed: the wrong key, other associated data, or altered bytes.
    #[error("a sealed value did not open: it was altered, or belongs to another key or workspace")]
    Rejected,
    #[error("a sealed value is malformed")]
    Malformed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An AES-256-GCM key with the id it is known by.
struct SealingKey {
    id: String,
    cipher: Aes256Gcm,
}

impl SealingKey {
    fn new(id: String, bytes: &[u8; KEY_LEN]) -> Self {
        SealingKey {
            id,
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(bytes)),
        }
    }

    /// `version || nonce || ciphertext`, base64.
    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, VaultError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| VaultError::Rejected)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(BASE64.encode(out))
    }

    fn open(&self, sealed: &str, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let bytes = BASE64.decode(sealed).map_err(|_| VaultError::Malformed)?;
        if bytes.len() < 1 + NONCE_LEN || bytes[0] != FORMAT_V1 {
            return Err(VaultError::Malformed);
        }
        let (nonce, ciphertext) = bytes[1..].split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Rejected)
    }
}

/// The operator's master key.
pub struct MasterKey(SealingKey);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MasterKey").field(&self.0.id).finish()
    }
}

impl MasterKey {
    /// Reads base64 of 32 bytes (surrounding white space ignored).
    pub fn from_base64(text: &str) -> Result<Self, MasterKeyError> {
        let bytes = Zeroizing::new(
            BASE64
                .decode(text.trim())
                .map_err(|_| MasterKeyError::NotBase64)?,
        );
        let key: &[u8; KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| MasterKeyError::WrongLength(bytes.len()))?;
        Ok(MasterKey(SealingKey::new(master_key_id(key), key)))
    }

    /// A fresh master key, base64.
    pub fn generate() -> Zeroizing<String> {
        Zeroizing::new(BASE64.encode(random_key().as_slice()))
    }

    /// The key's id (`kek_…`): a digest of the key, which names it without revealing it.
    pub fn id(&self) -> &str {
        &self.0.id
    }
}

/// 32 bytes from the operating system's random source, wiped when dropped.
fn random_key() -> Zeroizing<[u8; KEY_LEN]> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    OsRng.fill_bytes(key.as_mut_slice());
    key
}

fn master_key_id(key: &[u8; KEY_LEN]) -> String {
    let digest = Sha256::new()
        .chain_update(b"keyward vault master key id\0")
        .chain_update(key)
        .finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("kek_{hex}")
}

/// The master keys a process holds: the current one seals; it and the previous one open.
#[derive(Debug)]
pub struct Keyring {
    current: MasterKey,
    previous: Option<MasterKey>,
}

impl Keyring {
    pub fn new(current: MasterKey, previous: Option<MasterKey>) -> Self {
        let previous = previous.filter(|p| p.id() != current.id());
        Keyring { current, previous }
    }

    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    pub fn previous_id(&self) -> Option<&str> {
        self.previous.as_ref().map(MasterKey::id)
    }

    fn by_id(&self, id: &str) -> Option<&SealingKey> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|m| m.id() == id)
            .map(|m| &m.0)
    }
}

fn data_key_aad(id: &str, workspace_id: &str) -> Vec<u8> {
    format!("keyward-vault-v1|data-key|{id}|{workspace_id}").into_bytes()
}

fn key_aad(workspace_id: &str, key_id: &str) -> Vec<u8> {
    format!("keyward-vault-v1|key|{workspace_id}|{key_id}").into_bytes()
}

/// An opened data key.
struct DataKey {
    workspace_id: String,
    key: SealingKey,
}

/// What [`Vault::rotate_master`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MasterRotation {
    /// Data keys resealed under the current master key.
    pub resealed: u64,
    /// Data keys already under it.
    pub current: u64,
    /// Data keys no held master key opens (named in the log); they stay as they are.
    pub failed: Vec<String>,
}

/// What [`Vault::rotate_data_key`] did for one workspace.
#[derive(Debug, PartialEq, Eq)]
pub struct DataKeyRotation {
    pub workspace_id: String,
    pub data_key_id: String,
    /// Keys resealed under the new data key (with `reencrypt`).
    pub resealed: u64,
    /// Keys that did not open, so were left under their old data key.
    pub failed: u64,
    /// Old data keys deleted because no key is sealed under them any more.
    pub retired: u64,
}

/// Seals and opens recoverable keys; present only when the operator gave a master key.
pub struct Vault {
    keyring: Arc<Keyring>,
    store: SharedStore,
    /// Opened data keys, by id.
    opened: Mutex<HashMap<String, Arc<DataKey>>>,
    /// Each workspace's newest data key id, and when it was read.
    latest: Mutex<HashMap<String, (String, Instant)>>,
    /// Held while a workspace's first data key is made, so one process makes one.
    creating: tokio::sync::Mutex<()>,
}

impl Vault {
    pub fn new(keyring: Arc<Keyring>, store: SharedStore) -> Self {
        Vault {
            keyring,
            store,
            opened: Mutex::new(HashMap::new()),
            latest: Mutex::new(HashMap::new()),
            creating: tokio::sync::Mutex::new(()),
        }
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Seals a key's plaintext under its workspace's newest data key (made on first use).
    pub async fn seal(
        &self,
        now: i64,
        workspace_id: &str,
        key_id: &str,
        plaintext: &str,
    ) -> Result<SealedKey, VaultError> {
        let data_key_id = self.latest_data_key(now, workspace_id).await?;
        let data_key = self.data_key(&data_key_id).await?;
        if data_key.workspace_id != workspace_id {
            return Err(VaultError::Rejected);
        }
        let sealed = data_key
            .key
            .seal(plaintext.as_bytes(), &key_aad(workspace_id, key_id))?;
        metrics::counter!(crate::telemetry::VAULT_SEALED).increment(1);
        Ok(SealedKey {
            sealed,
            data_key_id,
        })
    }

    /// Opens a key's sealed copy.
    pub async fn open(&self, copy: &EncryptedKey) -> Result<Zeroizing<String>, VaultError> {
        let data_key = self.data_key(&copy.sealed.data_key_id).await?;
        if data_key.workspace_id != copy.workspace_id {
            return Err(VaultError::Rejected);
        }
        let bytes = data_key.key.open(
            &copy.sealed.sealed,
            &key_aad(&copy.workspace_id, &copy.key_id),
        )?;
        let text = std::str::from_utf8(&bytes).map_err(|_| VaultError::Malformed)?;
        Ok(Zeroizing::new(text.to_string()))
    }

    /// The plaintexts of those of `key_ids` (all in `workspace_id`) that have a sealed copy which
    /// opens. A copy that does not open is logged (never its content) and left out.
    pub async fn open_keys(
        &self,
        workspace_id: &str,
        key_ids: &[&str],
    ) -> Result<HashMap<String, Zeroizing<String>>, StoreError> {
        let copies = self.store.encrypted_keys(key_ids).await?;
        let mut opened = HashMap::with_capacity(copies.len());
        for copy in copies {
            if copy.workspace_id != workspace_id {
                tracing::warn!(key_id = %copy.key_id, "a sealed key copy names another workspace; not opened");
                continue;
            }
            match self.open(&copy).await {
                Ok(plaintext) => {
                    opened.insert(copy.key_id, plaintext);
                }
                Err(VaultError::Store(err)) => return Err(err),
                Err(err) => {
                    metrics::counter!(crate::telemetry::VAULT_OPEN_FAILURES).increment(1);
                    tracing::warn!(key_id = %copy.key_id, error = %err, "a recoverable key did not decrypt");
                }
            }
        }
        Ok(opened)
    }

    /// The workspace's newest data key, made (sealed under the current master key) if it has
    /// none.
    async fn latest_data_key(&self, now: i64, workspace_id: &str) -> Result<String, VaultError> {
        if let Some(id) = self.cached_latest(workspace_id) {
            return Ok(id);
        }
        let id = match self.store.data_keys(workspace_id).await?.first() {
            Some(newest) => newest.id.clone(),
            None => {
                let _creating = self.creating.lock().await;
                match self.store.data_keys(workspace_id).await?.first() {
                    Some(newest) => newest.id.clone(),
                    None => self.create_data_key(now, workspace_id).await?,
                }
            }
        };
        self.remember_latest(workspace_id, &id);
        Ok(id)
    }

    fn cached_latest(&self, workspace_id: &str) -> Option<String> {
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        latest
            .get(workspace_id)
            .filter(|(_, at)| at.elapsed() < LATEST_TTL)
            .map(|(id, _)| id.clone())
    }

    fn remember_latest(&self, workspace_id: &str, id: &str) {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(workspace_id.to_string(), (id.to_string(), Instant::now()));
    }

    /// Makes, seals and stores a new data key for the workspace; returns its id.
    async fn create_data_key(&self, now: i64, workspace_id: &str) -> Result<String, VaultError> {
        let id = ids::new_id(Prefix::DataKey);
        let bytes = random_key();
        let wrapped = self
            .keyring
            .current
            .0
            .seal(bytes.as_slice(), &data_key_aad(&id, workspace_id))?;
        self.store
            .insert_data_key(&StoredDataKey {
                id: id.clone(),
                workspace_id: workspace_id.to_string(),
                master_key_id: self.keyring.current_id().to_string(),
                wrapped,
                created_at: now,
            })
            .await?;
        self.opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id.clone(),
                Arc::new(DataKey {
                    workspace_id: workspace_id.to_string(),
                    key: SealingKey::new(id.clone(), &bytes),
                }),
            );
        tracing::info!(data_key = %id, workspace_id, "vault: new data key");
        Ok(id)
    }

    /// The data key with this id, opened (and kept opened).
    async fn data_key(&self, id: &str) -> Result<Arc<DataKey>, VaultError> {
        if let Some(key) = self
            .opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
        {
            return Ok(key.clone());
        }
        let stored = self
            .store
            .data_key(id)
            .await?
            .ok_or_else(|| VaultError::MissingDataKey(id.to_string()))?;
        let bytes = self.unwrap_data_key(&stored)?;
        let key: &[u8; KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::Malformed)?;
        let opened = Arc::new(DataKey {
            workspace_id: stored.workspace_id.clone(),
            key: SealingKey::new(stored.id.clone(), key),
        });
        self.opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(stored.id, opened.clone());
        Ok(opened)
    }

    fn unwrap_data_key(&self, stored: &StoredDataKey) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let master = self.keyring.by_id(&stored.master_key_id).ok_or_else(|| {
            VaultError::UnknownMasterKey {
                data_key: stored.id.clone(),
                master_key: stored.master_key_id.clone(),
            }
        })?;
        master.open(
            &stored.wrapped,
            &data_key_aad(&stored.id, &stored.workspace_id),
        )
    }

    /// Reseals every data key not yet under the current master key. Keys themselves are not
    /// touched, so this is quick and safe while servers run (they open either form).
    pub async fn rotate_master(&self) -> Result<MasterRotation, VaultError> {
        let mut report = MasterRotation::default();
        for stored in self.every_data_key().await? {
            if stored.master_key_id == self.keyring.current_id() {
                report.current += 1;
                continue;
            }
            let bytes = match self.unwrap_data_key(&stored) {
                Ok(bytes) => bytes,
                Err(err) => {
                    tracing::error!(data_key = %stored.id, error = %err, "vault: data key not resealed");
                    report.failed.push(stored.id);
                    continue;
                }
            };
            let rewrapped = StoredDataKey {
                master_key_id: self.keyring.current_id().to_string(),
                wrapped: self
                    .keyring
                    .current
                    .0
                    .seal(&bytes, &data_key_aad(&stored.id, &stored.workspace_id))?,
                ..stored.clone()
            };
            if self
                .store
                .rewrap_data_key(&stored.id, &stored.master_key_id, &rewrapped)
                .await?
            {
                report.resealed += 1;
            } else {
                // Resealed meanwhile by another rotation.
                report.current += 1;
            }
        }
        Ok(report)
    }

    /// Starts a new data key for the workspace: new keys are sealed under it (by running
    /// servers within [`LATEST_TTL`]). With `reencrypt`, every key sealed under an older data
    /// key is resealed under the new one, and older data keys left sealing nothing are deleted.
    pub async fn rotate_data_key(
        &self,
        now: i64,
        workspace_id: &str,
        reencrypt: bool,
    ) -> Result<DataKeyRotation, VaultError> {
        let data_key_id = self.create_data_key(now, workspace_id).await?;
        self.remember_latest(workspace_id, &data_key_id);
        let mut report = DataKeyRotation {
            workspace_id: workspace_id.to_string(),
            data_key_id: data_key_id.clone(),
            resealed: 0,
            failed: 0,
            retired: 0,
        };
        if !reencrypt {
            return Ok(report);
        }
        let new_key = self.data_key(&data_key_id).await?;
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .encrypted_keys_not_under(
                    workspace_id,
                    &data_key_id,
                    after.as_deref(),
                    ROTATION_PAGE,
                )
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key_id.clone());
            for copy in page {
                let plaintext = match self.open(&copy).await {
                    Ok(plaintext) => plaintext,
                    Err(VaultError::Store(err)) => return Err(err.into()),
                    Err(err) => {
                        tracing::error!(key_id = %copy.key_id, error = %err, "vault: key not resealed");
                        report.failed += 1;
                        continue;
                    }
                };
                let sealed = SealedKey {
                    sealed: new_key
                        .key
                        .seal(plaintext.as_bytes(), &key_aad(workspace_id, &copy.key_id))?,
                    data_key_id: data_key_id.clone(),
                };
                if self
                    .store
                    .reseal_key(&copy.key_id, &copy.sealed.data_key_id, &sealed, now)
                    .await?
                {
                    report.resealed += 1;
                }
            }
        }
        report.retired = self
            .store
            .delete_unused_data_keys(workspace_id, &data_key_id)
            .await?;
        Ok(report)
    }

    /// What the vault holds, per workspace.
    pub async fn status(&self) -> Result<Vec<VaultWorkspace>, StoreError> {
        self.store.vault_summary().await
    }

    /// Which stored data keys no held master key opens (to report before trouble).
    pub async fn unopenable_data_keys(&self) -> Result<Vec<StoredDataKey>, StoreError> {
        Ok(self
            .every_data_key()
            .await?
            .into_iter()
            .filter(|stored| self.unwrap_data_key(stored).is_err())
            .collect())
    }

    /// Every stored data key of every workspace (a few per workspace), read page by page.
    async fn every_data_key(&self) -> Result<Vec<StoredDataKey>, StoreError> {
        let mut all = Vec::new();
        loop {
            let after = all.last().map(|k: &StoredDataKey| k.id.clone());
            let page = self
                .store
                .all_data_keys(after.as_deref(), ROTATION_PAGE)
                .await?;
            let full = page.len() as i64 == ROTATION_PAGE;
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealing_key() -> SealingKey {
        SealingKey::new("dek_test".into(), &[7u8; KEY_LEN])
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_associated_data() {
        let key = sealing_key();
        let sealed = key.seal(b"sk_secret", &key_aad("ws_a", "key_1")).unwrap();
        assert!(!sealed.contains("sk_secret"));
        let opened = key.open(&sealed, &key_aad("ws_a", "key_1")).unwrap();
        assert_eq!(opened.as_slice(), b"sk_secret");
        assert!(matches!(
            key.open(&sealed, &key_aad("ws_a", "key_2")),
            Err(VaultError::Rejected)
        ));
        assert!(matches!(
            key.open(&sealed, &key_aad("ws_b", "key_1")),
            Err(VaultError::Rejected)
        ));
    }

    #[test]
    fn an_altered_byte_is_rejected_and_garbage_is_malformed() {
        let key = sealing_key();
        let sealed = key.seal(b"sk_secret", b"aad").unwrap();
        let mut bytes = BASE64.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(
            key.open(&BASE64.encode(&bytes), b"aad"),
            Err(VaultError::Rejected)
        ));
        assert!(matches!(
            key.open("not base64!", b"aad"),
            Err(VaultError::Malformed)
        ));
        assert!(matches!(
            key.open("AQID", b"aad"),
            Err(VaultError::Malformed)
        ));
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let key = sealing_key();
        assert_ne!(
            key.seal(b"same", b"aad").unwrap(),
            key.seal(b"same", b"aad").unwrap()
        );
    }

    #[test]
    fn master_keys_are_32_bytes_of_base64_and_named_by_a_digest() {
        let text = MasterKey::generate();
        let key = MasterKey::from_base64(&format!(" {}\n", text.as_str())).unwrap();
        assert!(key.id().starts_with("kek_"));
        assert_eq!(key.id(), MasterKey::from_base64(&text).unwrap().id());
        assert_ne!(
            key.id(),
            MasterKey::from_base64(&MasterKey::generate()).unwrap().id()
        );
        assert!(!format!("{key:?}").contains(text.as_str()));
        assert_eq!(
            MasterKey::from_base64("c2hvcnQ=").unwrap_err(),
            MasterKeyError::WrongLength(5)
        );
        assert_eq!(
            MasterKey::from_base64("%%%").unwrap_err(),
            MasterKeyError::NotBase64
        );
    }

    #[test]
    fn a_keyring_opens_with_either_key_and_ignores_a_repeated_previous() {
        let current = MasterKey::from_base64(&MasterKey::generate()).unwrap();
        let previous = MasterKey::from_base64(&MasterKey::generate()).unwrap();
        let (current_id, previous_id) = (current.id().to_string(), previous.id().to_string());
        let ring = Keyring::new(current, Some(previous));
        assert!(ring.by_id(&current_id).is_some());
        assert!(ring.by_id(&previous_id).is_some());
        assert!(ring.by_id("kek_other").is_none());
        let same = MasterKey::from_base64(&BASE64.encode([1u8; KEY_LEN])).unwrap();
        let again = MasterKey::from_base64(&BASE64.encode([1u8; KEY_LEN])).unwrap();
        assert_eq!(Keyring::new(same, Some(again)).previous_id(), None);
    }
}
