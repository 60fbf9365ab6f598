//! The group committer of key inserts: concurrent `insert_key` calls share one transaction, which
//! spends one durable commit on many keys.

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

/// Starts the committer on the writer pool; key inserts sent to the returned channel are
/// committed in batches, each one's outcome sent back on its own `done`.
pub(super) fn start(writer: AnyPool, begin_write: &'static str) -> mpsc::Sender<KeyInsert> {
    let (key_inserts, rx) = mpsc::channel(GROUP_COMMIT_MAX * 4);
    tokio::spawn(commit_key_inserts(writer, begin_write, rx));
    key_inserts
}

async fn commit_key_inserts(
    writer: AnyPool,
    begin_write: &'static str,
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
