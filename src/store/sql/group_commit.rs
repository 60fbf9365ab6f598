//! The group committer of key inserts: concurrent `insert_key` calls share one transaction, which
//! spends one durable commit on many keys.
//!
//! A backend may hand the committer a [`SimpleKeyWriter`] of its own: batches of simple keys (the
//! usual `createKey`: see [`NewKey::is_simple`]) then go through it, the rest through the shared
//! SQL below.

use std::sync::{Arc, Mutex};

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::{SqlStore, Tx};
use crate::model::audit::AuditEvent;
use crate::model::{ChangeKind, NewKey};
use crate::store::{StoreError, StoreResult};

/// A key insert handed to the group committer, with where to send its outcome.
pub(super) struct KeyInsert {
    pub(super) key: NewKey,
    pub(super) audit: Vec<AuditEvent>,
    pub(super) done: oneshot::Sender<StoreResult<()>>,
}

/// Most key inserts committed by one transaction.
const GROUP_COMMIT_MAX: usize = 256;

/// A backend's own writer of a batch of simple keys (see [`NewKey::is_simple`]): the keys, the
/// identities they name, their change-feed entries and their audit events in one transaction on a
/// blocking connection, where the shared SQL costs a round trip to sqlx's worker thread per
/// statement.
pub trait SimpleKeyWriter: Send {
    /// Writes the whole batch and commits it, or leaves nothing behind.
    fn insert_simple_keys(&mut self, batch: &[(&NewKey, &[AuditEvent])]) -> StoreResult<()>;
}

/// Starts the committer on the writer pool; key inserts sent to the returned channel are
/// committed in batches, each one's outcome sent back on its own `done`.
pub(super) fn start(
    writer: AnyPool,
    begin_write: &'static str,
    simple: Option<Box<dyn SimpleKeyWriter>>,
) -> mpsc::Sender<KeyInsert> {
    let (key_inserts, rx) = mpsc::channel(GROUP_COMMIT_MAX * 4);
    let simple = simple.map(|writer| Arc::new(Mutex::new(writer)));
    tokio::spawn(commit_key_inserts(writer, begin_write, simple, rx));
    key_inserts
}

type SharedSimpleKeyWriter = Arc<Mutex<Box<dyn SimpleKeyWriter>>>;

async fn commit_key_inserts(
    writer: AnyPool,
    begin_write: &'static str,
    simple: Option<SharedSimpleKeyWriter>,
    mut rx: mpsc::Receiver<KeyInsert>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT_MAX {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        if let Some(simple) = &simple {
            if batch.iter().all(|item| item.key.is_simple()) {
                match write_simple(&writer, simple.clone(), batch).await {
                    (batch, Ok(())) => {
                        for item in batch {
                            let _ = item.done.send(Ok(()));
                        }
                        continue;
                    }
                    // Nothing was written: the shared path below tells which key failed.
                    (rest, Err(err)) => {
                        tracing::debug!(error = %err, "batch of simple keys failed; retrying it key by key");
                        if rest.is_empty() {
                            continue;
                        }
                        batch = rest;
                    }
                }
            }
        }
        match insert_keys_together(&writer, begin_write, &batch).await {
            Ok(outcomes) => {
                for (item, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = item.done.send(outcome);
                }
            }
            Err(err) => {
                let message = err.to_string();
                for item in batch {
                    let _ = item.done.send(Err(StoreError::Failed(message.clone())));
                }
            }
        }
    }
}

/// Writes a batch of simple keys with the backend's own writer, on a blocking thread. Meanwhile it
/// holds the writer pool's connection, so no other write of this process waits for the database's
/// lock in SQLite's busy handler: they queue for the connection, as they would behind the shared
/// path. Answers the batch back with the outcome; an error means nothing was written.
async fn write_simple(
    pool: &AnyPool,
    writer: SharedSimpleKeyWriter,
    batch: Vec<KeyInsert>,
) -> (Vec<KeyInsert>, StoreResult<()>) {
    let _turn = match pool.acquire().await {
        Ok(connection) => connection,
        Err(err) => return (batch, Err(err.into())),
    };
    let written = tokio::task::spawn_blocking(move || {
        let outcome = match writer.lock() {
            Ok(mut writer) => {
                let items: Vec<(&NewKey, &[AuditEvent])> = batch
                    .iter()
                    .map(|item| (&item.key, item.audit.as_slice()))
                    .collect();
                writer.insert_simple_keys(&items)
            }
            // A panic in an earlier batch: its transaction was rolled back when the writer's
            // connection dropped it, but the writer is not trusted again.
            Err(_) => Err(StoreError::Failed("the simple key writer panicked".into())),
        };
        (batch, outcome)
    })
    .await;
    match written {
        Ok(written) => written,
        // The batch went down with the thread: its callers hear that the writer stopped.
        Err(err) => (
            Vec::new(),
            Err(StoreError::Failed(format!(
                "the simple key writer failed: {err}"
            ))),
        ),
    }
}

/// The change-feed entries and audit events of a whole batch of keys.
async fn changes_and_audit(tx: &mut Tx, batch: &[KeyInsert]) -> StoreResult<()> {
    let changes: Vec<_> = batch
        .iter()
        // A server may have cached "no such key" for this hash.
        .map(|item| (ChangeKind::Key, item.key.hash.as_str(), item.key.created_at))
        .collect();
    SqlStore::insert_changes(tx, &changes).await?;
    let audit: Vec<AuditEvent> = batch.iter().flat_map(|item| item.audit.clone()).collect();
    SqlStore::insert_audit(tx, &audit).await
}

/// Inserts a batch of keys in one transaction; the outer error means nothing was committed.
async fn insert_keys_together(
    writer: &AnyPool,
    begin_write: &'static str,
    batch: &[KeyInsert],
) -> StoreResult<Vec<StoreResult<()>>> {
    async fn one(tx: &mut Tx, item: &KeyInsert) -> StoreResult<()> {
        SqlStore::insert_key_in(tx, &item.key).await?;
        // A server may have cached "no such key" for this hash.
        SqlStore::insert_change(tx, ChangeKind::Key, &item.key.hash, item.key.created_at).await?;
        SqlStore::insert_audit(tx, &item.audit).await
    }
    let mut tx = writer.begin_with(begin_write).await?;
    if let [item] = batch {
        one(&mut tx, item).await?;
        tx.commit().await?;
        return Ok(vec![Ok(())]);
    }
    // Inserts almost never fail, so first try the whole batch without savepoints (two
    // statements fewer per key), the keys that are their row alone in multi-row inserts, and the
    // batch's change-feed entries and audit events together at the end (a few statements for the
    // whole batch, not several per key). If a key fails, start over with a savepoint around each.
    let (plain, other): (Vec<&KeyInsert>, Vec<&KeyInsert>) =
        batch.iter().partition(|item| item.key.is_plain());
    let plain: Vec<&NewKey> = plain.iter().map(|item| &item.key).collect();
    let mut all_ok = SqlStore::insert_plain_keys(&mut tx, &plain).await.is_ok();
    for item in other {
        if !all_ok {
            break;
        }
        all_ok = SqlStore::insert_key_in(&mut tx, &item.key).await.is_ok();
    }
    if all_ok && changes_and_audit(&mut tx, batch).await.is_ok() {
        tx.commit().await?;
        return Ok(batch.iter().map(|_| Ok(())).collect());
    }
    tx.rollback().await?;
    let mut tx = writer.begin_with(begin_write).await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for item in batch {
        sqlx::query("SAVEPOINT key_insert")
            .execute(&mut *tx)
            .await?;
        match one(&mut tx, item).await {
            Ok(()) => outcomes.push(Ok(())),
            Err(err) => {
                sqlx::query("ROLLBACK TO SAVEPOINT key_insert")
                    .execute(&mut *tx)
                    .await?;
                outcomes.push(Err(err));
            }
        }
        sqlx::query("RELEASE SAVEPOINT key_insert")
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}
