//! The vault's side of the command line: the master keys `serve` and the `vault` commands take,
//! and `keyward vault generate-master-key | status | rotate-master | rotate-data-key`.

use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;
use zeroize::Zeroizing;

use crate::domain::vault::{Keyring, MasterKey, Vault};
use crate::store::SharedStore;

/// The vault's master keys, as `serve` and the `vault` commands take them. Its `Debug` never
/// shows a key.
#[derive(Args, Default)]
pub struct MasterKeyArgs {
    /// The vault's master key: base64 of 32 random bytes (`keyward vault generate-master-key`).
    /// Without one, recoverable keys are off (412). Losing it loses every recoverable key.
    #[arg(
        long,
        env = "KEYWARD_MASTER_KEY",
        hide_env_values = true,
        conflicts_with = "master_key_file"
    )]
    pub master_key: Option<String>,
    /// Read the master key from this file instead (its only content, base64).
    #[arg(long, env = "KEYWARD_MASTER_KEY_FILE")]
    pub master_key_file: Option<std::path::PathBuf>,
    /// During a rotation, the master key being replaced: data keys still sealed under it open.
    #[arg(
        long,
        env = "KEYWARD_PREVIOUS_MASTER_KEY",
        hide_env_values = true,
        conflicts_with = "previous_master_key_file"
    )]
    pub previous_master_key: Option<String>,
    /// Read the previous master key from this file instead.
    #[arg(long, env = "KEYWARD_PREVIOUS_MASTER_KEY_FILE")]
    pub previous_master_key_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for MasterKeyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let given = |key: &Option<String>| key.as_ref().map(|_| "<redacted>");
        f.debug_struct("MasterKeyArgs")
            .field("master_key", &given(&self.master_key))
            .field("master_key_file", &self.master_key_file)
            .field("previous_master_key", &given(&self.previous_master_key))
            .field("previous_master_key_file", &self.previous_master_key_file)
            .finish()
    }
}

impl MasterKeyArgs {
    /// The keyring these name, `None` when no master key was given.
    pub fn keyring(&self) -> anyhow::Result<Option<Arc<Keyring>>> {
        let read = |text: Option<&String>, file: Option<&std::path::PathBuf>, what: &str| {
            let text = match (text, file) {
                (Some(text), _) => Zeroizing::new(text.clone()),
                (None, Some(path)) => {
                    Zeroizing::new(std::fs::read_to_string(path).with_context(|| {
                        format!("could not read the {what} from {}", path.display())
                    })?)
                }
                (None, None) => return Ok(None),
            };
            MasterKey::from_base64(&text)
                .map(Some)
                .with_context(|| format!("invalid {what}"))
        };
        let current = read(
            self.master_key.as_ref(),
            self.master_key_file.as_ref(),
            "master key",
        )?;
        let previous = read(
            self.previous_master_key.as_ref(),
            self.previous_master_key_file.as_ref(),
            "previous master key",
        )?;
        match (current, previous) {
            (Some(current), previous) => Ok(Some(Arc::new(Keyring::new(current, previous)))),
            (None, Some(_)) => {
                anyhow::bail!("a previous master key was given without a master key")
            }
            (None, None) => Ok(None),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum VaultCommand {
    /// Print a fresh master key (base64 of 32 random bytes). Keep it in a secret store: without
    /// it no recoverable key can be read again.
    GenerateMasterKey,
    /// The master key's id, and per workspace its data keys and recoverable keys.
    Status {
        #[command(flatten)]
        keys: MasterKeyArgs,
        #[arg(long)]
        json: bool,
    },
    /// Reseal every data key under the current master key (`--master-key`), opening the old ones
    /// with `--previous-master-key`. Servers keep running: they open data keys sealed under
    /// either key as long as they hold both.
    RotateMaster {
        #[command(flatten)]
        keys: MasterKeyArgs,
    },
    /// Start a new data key for a workspace (or every workspace with recoverable keys); new
    /// recoverable keys are sealed under it. `--reencrypt` reseals existing ones too and
    /// deletes the data keys left sealing nothing.
    RotateDataKey {
        #[command(flatten)]
        keys: MasterKeyArgs,
        #[arg(long)]
        workspace: Option<String>,
        #[arg(long)]
        reencrypt: bool,
    },
}

pub(super) async fn run(store: SharedStore, now: i64, cmd: VaultCommand) -> anyhow::Result<()> {
    let open = |keys: &MasterKeyArgs| -> anyhow::Result<Vault> {
        let keyring = keys
            .keyring()?
            .context("this command needs the master key: --master-key, --master-key-file or KEYWARD_MASTER_KEY")?;
        Ok(Vault::new(keyring, store.clone()))
    };
    match cmd {
        VaultCommand::GenerateMasterKey => {
            println!("{}", MasterKey::generate().as_str());
        }
        VaultCommand::Status { keys, json } => {
            let vault = open(&keys)?;
            let workspaces = vault.status().await?;
            let unopenable = vault.unopenable_data_keys().await?;
            if json {
                let rows: Vec<_> = workspaces
                    .iter()
                    .map(|w| {
                        json!({"workspaceId": w.workspace_id, "dataKeys": w.data_keys,
                               "encryptedKeys": w.encrypted_keys, "latestDataKeyId": w.latest_data_key_id})
                    })
                    .collect();
                let unopenable: Vec<_> = unopenable.iter().map(|k| &k.id).collect();
                println!(
                    "{}",
                    json!({"masterKeyId": vault.keyring().current_id(),
                           "previousMasterKeyId": vault.keyring().previous_id(),
                           "workspaces": rows, "unopenableDataKeys": unopenable})
                );
            } else {
                println!("master key: {}", vault.keyring().current_id());
                if let Some(previous) = vault.keyring().previous_id() {
                    println!("previous master key: {previous}");
                }
                if workspaces.is_empty() {
                    println!("no data keys yet (none is made before the first recoverable key)");
                }
                for w in &workspaces {
                    println!(
                        "{}: {} data key(s), {} recoverable key(s), newest data key {}",
                        w.workspace_id,
                        w.data_keys,
                        w.encrypted_keys,
                        w.latest_data_key_id.as_deref().unwrap_or("-")
                    );
                }
                for k in &unopenable {
                    println!(
                        "WARNING: data key {} ({}) is sealed under {}, which was not given",
                        k.id, k.workspace_id, k.master_key_id
                    );
                }
            }
            if !unopenable.is_empty() {
                anyhow::bail!(
                    "{} data key(s) do not open with the given master keys",
                    unopenable.len()
                );
            }
        }
        VaultCommand::RotateMaster { keys } => {
            let vault = open(&keys)?;
            let report = vault.rotate_master().await?;
            println!(
                "resealed {} data key(s) under {}; {} already were",
                report.resealed,
                vault.keyring().current_id(),
                report.current
            );
            if !report.failed.is_empty() {
                anyhow::bail!(
                    "{} data key(s) did not open with the given master keys and were left as they are: {}",
                    report.failed.len(),
                    report.failed.join(", ")
                );
            }
        }
        VaultCommand::RotateDataKey {
            keys,
            workspace,
            reencrypt,
        } => {
            let vault = open(&keys)?;
            let workspaces = match workspace {
                Some(id) => {
                    if store.get_workspace(&id).await?.is_none() {
                        anyhow::bail!("workspace '{id}' does not exist");
                    }
                    vec![id]
                }
                None => vault
                    .status()
                    .await?
                    .into_iter()
                    .map(|w| w.workspace_id)
                    .collect(),
            };
            let mut failed = 0;
            for id in workspaces {
                let report = vault.rotate_data_key(now, &id, reencrypt).await?;
                println!(
                    "{}: new data key {}{}",
                    report.workspace_id,
                    report.data_key_id,
                    if reencrypt {
                        format!(
                            "; resealed {} key(s), retired {} data key(s)",
                            report.resealed, report.retired
                        )
                    } else {
                        String::new()
                    }
                );
                failed += report.failed;
            }
            if failed > 0 {
                anyhow::bail!("{failed} key(s) did not open and stay under their old data key");
            }
        }
    }
    Ok(())
}
