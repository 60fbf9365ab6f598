//! Storage: the traits the domain talks to (one per resource, such as [`KeyStore`], and [`Store`],
//! all of them together) and the choice of backend. The records they speak are in [`crate::model`].
//!
//! Two backends share one SQL implementation ([`sql::SqlStore`], on sqlx's `Any` driver) and differ
//! only in their [`sql::Dialect`] and in how they connect, tune and migrate ([`sqlite`],
//! [`postgres`]). The backend is chosen once, from the database URL, in [`connect`]; nothing else
//! in the program knows which one runs.

use std::sync::Arc;

use crate::model::{EventBatch, LastUse};

mod ports;
pub mod postgres;
pub mod sql;
pub mod sqlite;
mod sqlite_keys;

pub use ports::{
    AdminStore, AnalyticsStore, ApiStore, AuditStore, ChangeStore, CreditStore, EventStore,
    IdentityStore, KeyStore, LimitStore, MigrationStore, RbacStore, SessionStore, VaultStore,
};
pub use sql::chain_hash;

/// A failure of the storage backend itself (not "row not found", which is a value).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://USER@HOST:PORT/DB")]
    UnsupportedUrl(String),
    #[error("could not prepare the database location: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Failed(String),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl StoreError {
    /// A short name of what failed, for metrics: `pool_timeout` (no connection free in time),
    /// `pool_closed`, `connection` (the database could not be reached or dropped the
    /// connection), `query` (the database refused or failed a statement), `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Database(sqlx::Error::PoolTimedOut) => "pool_timeout",
            StoreError::Database(sqlx::Error::PoolClosed) => "pool_closed",
            StoreError::Database(sqlx::Error::Io(_) | sqlx::Error::Tls(_)) => "connection",
            StoreError::Database(sqlx::Error::Database(_)) | StoreError::Sqlite(_) => "query",
            _ => "other",
        }
    }

    /// Whether the operation surely never reached the database (no connection could be had), so
    /// nothing of it can have been written.
    pub fn never_reached_database(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) => true,
            StoreError::Database(sqlx::Error::Io(io)) => {
                io.kind() == std::io::ErrorKind::ConnectionRefused
            }
            _ => false,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Why a query produced no rows.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsRunError {
    #[error("the query ran past its time limit")]
    Timeout,
    #[error("the result is larger than allowed")]
    TooLarge,
    /// The database refused the query (an unknown column, a type mismatch): the caller's fault.
    /// `message` is the database's own and may name internals; it is for logs only.
    #[error("the database refused the query: {message}")]
    Refused {
        message: String,
        /// PostgreSQL's SQLSTATE, when there is one.
        code: Option<String>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A synchronous writer of verification events with a connection of its own, for a dedicated
/// thread: it avoids the async driver's per-value overhead on the busiest write path.
pub trait EventLog: Send {
    /// Appends a batch's events and adds its increments to the rollups, in one transaction.
    fn append(&mut self, batch: &EventBatch<'_>) -> StoreResult<()>;
    /// Advances each key's `lastUsedAt` (table `key_last_used`) to the given time, never
    /// backwards, in one transaction.
    fn touch_last_used(&mut self, uses: &[LastUse<'_>]) -> StoreResult<()>;
}

/// Everything the domain needs from storage: every role trait ([`AdminStore`] to [`AuditStore`])
/// together. Every mutation takes the audit events to write in the same transaction. Lookups
/// return `None` for "not there"; `Err` means the backend failed.
///
/// Any type implementing all the roles is a `Store`; a `SharedStore` upcasts to any one role
/// (`Arc<dyn KeyStore>`), for callers that need only that.
pub trait Store:
    AdminStore
    + ApiStore
    + KeyStore
    + CreditStore
    + MigrationStore
    + RbacStore
    + IdentityStore
    + LimitStore
    + EventStore
    + ChangeStore
    + AuditStore
    + AnalyticsStore
    + VaultStore
    + SessionStore
{
}

impl<T> Store for T where
    T: AdminStore
        + ApiStore
        + KeyStore
        + CreditStore
        + MigrationStore
        + RbacStore
        + IdentityStore
        + LimitStore
        + EventStore
        + ChangeStore
        + AuditStore
        + AnalyticsStore
        + VaultStore
        + SessionStore
        + ?Sized
{
}

/// A store shared by the whole process.
pub type SharedStore = Arc<dyn Store>;

/// Opens (creating if needed) and migrates the database named by `url`.
pub async fn connect(url: &str) -> StoreResult<SharedStore> {
    connect_backend(url).await.map(|(store, _)| store)
}

/// Whether a store is the embedded, single-process kind (one server per database file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// SQLite: one server process owns the file, so in-memory state can be authoritative.
    SingleProcess,
    /// PostgreSQL: any number of nodes share the database.
    Shared,
}

/// Opens a store and says which topology it implies.
pub async fn connect_backend(url: &str) -> StoreResult<(SharedStore, Topology)> {
    sqlx::any::install_default_drivers();
    if let Some(path) = sqlite::path_from_url(url) {
        Ok((
            Arc::new(sqlite::connect(&path).await?),
            Topology::SingleProcess,
        ))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok((Arc::new(postgres::connect(url).await?), Topology::Shared))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shared store narrows to each role it is made of (trait upcasting, Rust 1.86).
    #[test]
    fn a_shared_store_upcasts_to_each_role() {
        #[allow(clippy::type_complexity)]
        fn roles(
            store: SharedStore,
        ) -> (
            Arc<dyn AdminStore>,
            Arc<dyn ApiStore>,
            Arc<dyn KeyStore>,
            Arc<dyn CreditStore>,
            Arc<dyn MigrationStore>,
            Arc<dyn RbacStore>,
            Arc<dyn IdentityStore>,
            Arc<dyn LimitStore>,
            Arc<dyn EventStore>,
            Arc<dyn ChangeStore>,
            Arc<dyn AuditStore>,
        ) {
            (
                store.clone(),
                store.clone(),
                store.clone(),
                store.clone(),
                store.clone(),
                store.clone(),
                store.clone(),
                store.clone(),
                store.clone(),
                store.clone(),
                store,
            )
        }
        let _ = roles;
    }
}
