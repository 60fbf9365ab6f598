//! Running compiled analytics queries: read-only, bounded in time and size.
//!
//! The domain compiles a caller's query into SQL that can only read its own workspace's rows (see
//! `domain::analytics`). This is the second fence: on SQLite the query runs on a connection
//! opened read-only, whose authorizer lets a statement read the analytics tables and nothing else,
//! and whose progress handler interrupts it at its deadline; on PostgreSQL it runs in a `READ ONLY`
//! transaction with a `statement_timeout`.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use sqlx::any::AnyTypeInfoKind;
use sqlx::{Column, Executor, Row};

use super::SqlStore;
use crate::model::{AnalyticsQuery, AnalyticsRows, AnalyticsValue};
use crate::store::{AnalyticsRunError, AnalyticsStore, StoreError};

/// The tables an analytics query may read.
pub(in crate::store) fn is_analytics_table(name: &str) -> bool {
    matches!(name, "key_verifications" | "ratelimit_events")
        || ["minute", "hour", "day", "month"].iter().any(|g| {
            name.strip_suffix(g)
                .is_some_and(|head| head == "key_verifications_per_" || head == "ratelimits_per_")
        })
}

/// Read-only connections to the SQLite file, kept between queries.
pub(in crate::store) struct SqliteAnalytics {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
}

/// Idle connections kept.
const IDLE_CONNECTIONS: usize = 4;

impl SqliteAnalytics {
    pub(in crate::store) fn new(path: PathBuf) -> Self {
        SqliteAnalytics {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        use rusqlite::hooks::{AuthAction, Authorization};
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch("PRAGMA query_only = 1; PRAGMA busy_timeout = 5000;")?;
        super::analytics_udf::register_sqlite_functions(&conn)?;
        // Only reads of the analytics tables are allowed (and of the query's own CTEs and
        // subqueries, which SQLite reports without a database name); everything else fails when
        // the statement is prepared.
        conn.authorizer(Some(|ctx: rusqlite::hooks::AuthContext<'_>| {
            match ctx.action {
                AuthAction::Select | AuthAction::Function { .. } | AuthAction::Recursive => {
                    Authorization::Allow
                }
                AuthAction::Read { table_name, .. }
                    if ctx.database_name.is_none()
                        || is_analytics_table(table_name)
                        || table_name == "json_each" =>
                {
                    Authorization::Allow
                }
                _ => Authorization::Deny,
            }
        }));
        Ok(conn)
    }

    fn take(&self) -> rusqlite::Result<rusqlite::Connection> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match idle {
            Some(conn) => Ok(conn),
            None => self.open(),
        }
    }

    fn give_back(&self, conn: rusqlite::Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < IDLE_CONNECTIONS {
                idle.push(conn);
            }
        }
    }

    fn run(&self, query: &AnalyticsQuery) -> Result<AnalyticsRows, AnalyticsRunError> {
        let conn = self.take().map_err(StoreError::from)?;
        let deadline = Instant::now() + query.timeout;
        conn.progress_handler(10_000, Some(move || Instant::now() >= deadline));
        let result = read_sqlite(&conn, query, deadline);
        conn.progress_handler(0, None::<fn() -> bool>);
        self.give_back(conn);
        result
    }
}

fn read_sqlite(
    conn: &rusqlite::Connection,
    query: &AnalyticsQuery,
    deadline: Instant,
) -> Result<AnalyticsRows, AnalyticsRunError> {
    let refused = |err: rusqlite::Error| {
        if Instant::now() >= deadline {
            return AnalyticsRunError::Timeout;
        }
        match err {
            rusqlite::Error::SqliteFailure(e, _)
                if e.code == rusqlite::ErrorCode::OperationInterrupted =>
            {
                AnalyticsRunError::Timeout
            }
            other => AnalyticsRunError::Refused {
                message: other.to_string(),
                code: None,
            },
        }
    };
    let mut statement = conn.prepare(&query.sql).map_err(refused)?;
    for (i, param) in query.params.iter().enumerate() {
        let index = i + 1;
        match param {
            AnalyticsValue::Null => statement.raw_bind_parameter(index, rusqlite::types::Null),
            AnalyticsValue::Int(v) => statement.raw_bind_parameter(index, v),
            AnalyticsValue::Float(v) => statement.raw_bind_parameter(index, v),
            AnalyticsValue::Text(v) => statement.raw_bind_parameter(index, v),
            AnalyticsValue::Bool(v) => statement.raw_bind_parameter(index, v),
        }
        .map_err(refused)?;
    }
    let columns = statement.column_count();
    let mut rows = statement.raw_query();
    let mut out = AnalyticsRows::default();
    let mut bytes = 0;
    while let Some(row) = rows.next().map_err(refused)? {
        let mut values = Vec::with_capacity(columns);
        for i in 0..columns {
            use rusqlite::types::ValueRef;
            let value = match row.get_ref(i).map_err(refused)? {
                ValueRef::Null => AnalyticsValue::Null,
                ValueRef::Integer(v) => AnalyticsValue::Int(v),
                ValueRef::Real(v) => AnalyticsValue::Float(v),
                ValueRef::Text(v) | ValueRef::Blob(v) => {
                    AnalyticsValue::Text(String::from_utf8_lossy(v).into_owned())
                }
            };
            bytes += value.size();
            values.push(value);
        }
        out.rows.push(values);
        if bytes > query.max_bytes {
            return Err(AnalyticsRunError::TooLarge);
        }
    }
    Ok(out)
}

impl SqlStore {
    async fn run_postgres(
        &self,
        query: &AnalyticsQuery,
    ) -> Result<AnalyticsRows, AnalyticsRunError> {
        let mut tx = self
            .reader
            .begin_with("BEGIN TRANSACTION READ ONLY")
            .await
            .map_err(StoreError::from)?;
        let timeout_ms = query.timeout.as_millis().max(1);
        tx.execute(format!("SET LOCAL statement_timeout = {timeout_ms}").as_str())
            .await
            .map_err(StoreError::from)?;
        let mut statement = sqlx::query(&query.sql);
        for param in &query.params {
            statement = match param {
                AnalyticsValue::Null => statement.bind(None::<String>),
                AnalyticsValue::Int(v) => statement.bind(*v),
                AnalyticsValue::Float(v) => statement.bind(*v),
                AnalyticsValue::Text(v) => statement.bind(v.as_str()),
                AnalyticsValue::Bool(v) => statement.bind(*v),
            };
        }
        let mut out = AnalyticsRows::default();
        let mut bytes = 0;
        let mut stream = statement.fetch(&mut *tx);
        loop {
            let row = match stream.try_next().await {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(err) => return Err(postgres_failure(err)),
            };
            let mut values = Vec::with_capacity(row.len());
            for (i, column) in row.columns().iter().enumerate() {
                let value =
                    decode_any(&row, i, column.type_info().kind()).map_err(postgres_failure)?;
                bytes += value.size();
                values.push(value);
            }
            out.rows.push(values);
            if bytes > query.max_bytes {
                return Err(AnalyticsRunError::TooLarge);
            }
        }
        drop(stream);
        // Nothing to keep: a read-only transaction.
        let _ = tx.rollback().await;
        Ok(out)
    }
}

fn decode_any(
    row: &sqlx::any::AnyRow,
    i: usize,
    kind: AnyTypeInfoKind,
) -> Result<AnalyticsValue, sqlx::Error> {
    Ok(match kind {
        AnyTypeInfoKind::Null => AnalyticsValue::Null,
        AnyTypeInfoKind::Bool => row
            .try_get::<Option<bool>, _>(i)?
            .map_or(AnalyticsValue::Null, AnalyticsValue::Bool),
        AnyTypeInfoKind::SmallInt | AnyTypeInfoKind::Integer | AnyTypeInfoKind::BigInt => row
            .try_get::<Option<i64>, _>(i)?
            .map_or(AnalyticsValue::Null, AnalyticsValue::Int),
        AnyTypeInfoKind::Real | AnyTypeInfoKind::Double => row
            .try_get::<Option<f64>, _>(i)?
            .map_or(AnalyticsValue::Null, AnalyticsValue::Float),
        AnyTypeInfoKind::Text | AnyTypeInfoKind::Blob => row
            .try_get::<Option<String>, _>(i)?
            .map_or(AnalyticsValue::Null, AnalyticsValue::Text),
    })
}

/// A PostgreSQL failure: a cancelled statement is the time limit; an error the server reported
/// is the query's fault; anything else is the store's.
fn postgres_failure(err: sqlx::Error) -> AnalyticsRunError {
    match &err {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned());
            if code.as_deref() == Some("57014") {
                return AnalyticsRunError::Timeout;
            }
            AnalyticsRunError::Refused {
                message: db.message().to_string(),
                code,
            }
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => AnalyticsRunError::Refused {
            message: err.to_string(),
            code: None,
        },
        _ => AnalyticsRunError::Store(StoreError::from(err)),
    }
}

#[async_trait]
impl AnalyticsStore for SqlStore {
    async fn run_analytics(
        &self,
        query: &AnalyticsQuery,
    ) -> Result<AnalyticsRows, AnalyticsRunError> {
        match &self.analytics {
            Some(sqlite) => {
                let sqlite = sqlite.clone();
                let query = query.clone();
                tokio::task::spawn_blocking(move || sqlite.run(&query))
                    .await
                    .map_err(|err| {
                        AnalyticsRunError::Store(StoreError::Failed(format!(
                            "analytics query task failed: {err}"
                        )))
                    })?
            }
            None => self.run_postgres(query).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_analytics_tables_are_readable() {
        for table in [
            "key_verifications",
            "key_verifications_per_minute",
            "key_verifications_per_month",
            "ratelimit_events",
            "ratelimits_per_day",
        ] {
            assert!(is_analytics_table(table), "{table}");
        }
        for table in [
            "keys",
            "workspaces",
            "root_keys",
            "key_verifications_per_",
            "key_verifications_per_week",
            "sqlite_master",
            "ratelimits",
        ] {
            assert!(!is_analytics_table(table), "{table}");
        }
    }
}
