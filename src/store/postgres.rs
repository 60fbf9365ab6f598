//! The shared backend: PostgreSQL, for several keyward nodes over one database. Reads and writes
//! share one pool; PostgreSQL's own row locks and transactions do the rest.

use std::time::Duration;

use sqlx::any::AnyPoolOptions;

use super::sql::{Dialect, SqlStore};
use super::StoreResult;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connects to `url` and migrates the database.
pub async fn connect(url: &str) -> StoreResult<SqlStore> {
    let pool = AnyPoolOptions::new()
        .max_connections(16)
        // A database that cannot be reached fails requests in seconds, well inside the request
        // timeout; the pool reconnects by itself when it is back.
        .acquire_timeout(Duration::from_secs(3))
        .connect(url)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(SqlStore::new(Dialect::postgres(), pool.clone(), pool, None))
}
