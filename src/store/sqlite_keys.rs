//! SQLite's writer of simple keys for the group committer (see [`SimpleKeyWriter`]): a batch's
//! keys, the identities they name, their change-feed entries and audit events in one transaction
//! on a connection of its own, driven from a blocking thread. Through sqlx each statement is a
//! round trip to a worker thread, and a batch took about nine; here the batch is one call, and the
//! statements stay prepared.
//!
//! The SQL is the shared store's ([`super::sql`]), so both paths write the same rows.

use std::path::Path;

use rusqlite::{named_params, params, Connection, TransactionBehavior};

use super::sql::{
    chain_events, SimpleKeyWriter, CHANGE_COLUMNS, CHANGE_INSERT, HEAD_ADVANCE, HEAD_SET_HASH,
    IDENTITY_ID, IDENTITY_INSERT_IF_ABSENT, KEY_COLUMNS, KEY_INSERT, LOG_COLUMNS, LOG_INSERT,
    TARGET_COLUMNS, TARGET_INSERT,
};
use super::StoreResult;
use crate::model::audit::AuditEvent;
use crate::model::{ChangeKind, NewKey};

pub struct SqliteSimpleKeys {
    conn: Connection,
    /// One row's insert into keys, changes, audit_logs and audit_log_targets.
    key_insert: String,
    change_insert: String,
    log_insert: String,
    target_insert: String,
}

/// `head` followed by one row of `columns` anonymous parameters.
fn one_row(head: &str, columns: usize) -> String {
    format!("{head}({})", vec!["?"; columns].join(", "))
}

impl SqliteSimpleKeys {
    /// Opens a connection to the database at `path` with `pragmas`: the same ones as the store's
    /// pools, so its commits are as durable (`synchronous=FULL`).
    pub fn open(path: &Path, pragmas: &str) -> StoreResult<Self> {
        let conn = Connection::open(path)?;
        conn.execute_batch(pragmas)?;
        Ok(SqliteSimpleKeys {
            conn,
            key_insert: one_row(KEY_INSERT, KEY_COLUMNS),
            change_insert: one_row(CHANGE_INSERT, CHANGE_COLUMNS),
            log_insert: one_row(LOG_INSERT, LOG_COLUMNS),
            target_insert: one_row(TARGET_INSERT, TARGET_COLUMNS),
        })
    }
}

impl SimpleKeyWriter for SqliteSimpleKeys {
    fn insert_simple_keys(&mut self, batch: &[(&NewKey, &[AuditEvent])]) -> StoreResult<()> {
        // Dropped without a commit, the transaction rolls back.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(&self.key_insert)?;
            for (key, _) in batch {
                debug_assert!(key.is_simple());
                // The shared statements number their parameters (`$1`, `$2`); SQLite numbers
                // them in the order they first appear, so they are bound by name.
                let identity_id: Option<String> = match &key.external_id {
                    Some(external_id) => {
                        tx.prepare_cached(IDENTITY_INSERT_IF_ABSENT)?
                            .execute(named_params! {
                                "$1": key.new_identity_id,
                                "$2": key.workspace_id,
                                "$3": external_id,
                                "$4": key.created_at,
                            })?;
                        Some(tx.prepare_cached(IDENTITY_ID)?.query_row(
                            named_params! {"$1": key.workspace_id, "$2": external_id},
                            |row| row.get(0),
                        )?)
                    }
                    None => None,
                };
                // In the order of KEY_INSERT's columns, as the shared path binds them.
                insert.execute(params![
                    key.id,
                    key.key_space_id,
                    key.workspace_id,
                    key.hash,
                    key.start,
                    key.name,
                    identity_id,
                    key.meta,
                    key.expires,
                    i64::from(key.enabled),
                    key.remaining,
                    key.refill_day,
                    key.refill_amount,
                    key.remaining.map(|_| key.created_at),
                    key.pending_migration_id,
                    key.created_at,
                ])?;
            }
            // A server may have cached "no such key" for these hashes.
            let mut change = tx.prepare_cached(&self.change_insert)?;
            for (key, _) in batch {
                change.execute(params![ChangeKind::Key.as_str(), key.hash, key.created_at])?;
            }
            let events: Vec<&AuditEvent> = batch.iter().flat_map(|(_, a)| a.iter()).collect();
            let mut workspaces: Vec<&str> =
                events.iter().map(|e| e.workspace_id.as_str()).collect();
            workspaces.sort_unstable();
            workspaces.dedup();
            let mut advance = tx.prepare_cached(HEAD_ADVANCE)?;
            let mut set_hash = tx.prepare_cached(HEAD_SET_HASH)?;
            let mut log = tx.prepare_cached(&self.log_insert)?;
            let mut target = tx.prepare_cached(&self.target_insert)?;
            for workspace in workspaces {
                let mine: Vec<&AuditEvent> = events
                    .iter()
                    .copied()
                    .filter(|e| e.workspace_id == workspace)
                    .collect();
                let (seq, hash): (i64, String) = advance.query_row(
                    named_params! {"$1": workspace, "$2": mine.len() as i64},
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )?;
                let (records, last_hash) = chain_events(&mine, seq, hash)?;
                for (r, targets_text) in &records {
                    // In the order of LOG_INSERT's columns.
                    log.execute(params![
                        r.id,
                        r.workspace_id,
                        r.bucket,
                        r.event,
                        r.time_ms,
                        r.description,
                        r.actor_type,
                        r.actor_id,
                        r.actor_name,
                        r.remote_ip,
                        r.user_agent,
                        targets_text,
                        r.seq,
                        r.correlation_id,
                        r.prev_hash,
                        r.hash,
                        r.meta,
                    ])?;
                }
                for e in &mine {
                    for t in &e.targets {
                        target.execute(params![e.id, e.workspace_id, t.kind, t.id])?;
                    }
                }
                set_hash.execute(named_params! {"$1": workspace, "$2": last_hash})?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
