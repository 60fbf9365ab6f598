//! Recoverable keys: sealing a new key's plaintext in the vault, and revealing sealed ones to a
//! caller allowed to, with an audit event for every reveal.

use std::collections::HashMap;

use zeroize::Zeroizing;

use super::{KeyError, KeyService};
use crate::model::audit::{Actor, AuditEvent, Target};
use crate::model::SealedKey;
use crate::store::StoreError;

/// A key whose plaintext is asked for: its id and name (for the audit event).
pub struct Reveal<'a> {
    pub key_id: &'a str,
    pub name: Option<&'a str>,
}

impl KeyService {
    /// Whether this server can keep recoverable keys (it was given a master key).
    pub fn has_vault(&self) -> bool {
        self.vault.is_some()
    }

    /// Whether the key has a sealed copy in the vault.
    pub async fn is_recoverable(&self, key_id: &str) -> Result<bool, StoreError> {
        Ok(!self.store.encrypted_keys(&[key_id]).await?.is_empty())
    }

    pub(super) async fn seal(
        &self,
        now: i64,
        workspace_id: &str,
        key_id: &str,
        plaintext: &str,
    ) -> Result<SealedKey, KeyError> {
        let vault = self.vault.as_ref().ok_or(KeyError::VaultMissing)?;
        Ok(vault.seal(now, workspace_id, key_id, plaintext).await?)
    }

    /// The plaintexts of those `keys` (of one API in `workspace_id`) that are recoverable and
    /// open. When any does, one `key.decrypt` audit event names them, written before they are
    /// handed out. A copy that does not open is left out (and logged), never an error.
    pub async fn reveal(
        &self,
        now: i64,
        actor: &Actor,
        workspace_id: &str,
        api_id: &str,
        keys: &[Reveal<'_>],
    ) -> Result<HashMap<String, Zeroizing<String>>, KeyError> {
        let vault = self.vault.as_ref().ok_or(KeyError::VaultMissing)?;
        let ids: Vec<&str> = keys.iter().map(|k| k.key_id).collect();
        let opened = vault.open_keys(workspace_id, &ids).await?;
        if opened.is_empty() {
            return Ok(opened);
        }
        let mut targets: Vec<Target> = keys
            .iter()
            .filter(|k| opened.contains_key(k.key_id))
            .map(|k| Target::new("key", k.key_id, k.name.map(str::to_string)))
            .collect();
        let description = match targets.as_slice() {
            [one] => format!("Decrypted key {}", one.id),
            many => format!("Decrypted {} keys", many.len()),
        };
        targets.push(Target::new("api", api_id, None));
        let event = AuditEvent::new(
            workspace_id,
            "key.decrypt",
            description,
            actor,
            now,
            targets,
        )
        .with_meta(serde_json::json!({ "count": opened.len() }));
        self.store.append_audit(&[event]).await?;
        metrics::counter!(crate::telemetry::VAULT_REVEALED).increment(opened.len() as u64);
        Ok(opened)
    }
}
