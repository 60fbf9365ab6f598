//! Analytics: the caller's SQL over its own verifications and rate-limit decisions
//! (`analytics.getVerifications`, `analytics.getRatelimits`), and a ready-made usage series
//! (`analytics.getUsage`).
//!
//! A query goes: scope (what the caller's `read_analytics` permissions cover) → compile
//! ([`query::compile`]: validation with Unkey's error codes, then a rewrite whose only sources are
//! CTEs pre-filtered to the caller's workspace and scope) → quota (per workspace, through the
//! shared rate-limit counters; a query refused before it runs does not count) → run (the store,
//! read-only, with a deadline) → rows turned into JSON by the column kinds the compiler
//! inferred, within the response cap.

pub mod query;
pub mod usage;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use self::query::{Compiled, Dialect, Family, QueryContext, QueryError, ValueKind};
use crate::domain::apis::ApiService;
use crate::domain::ratelimit::{CounterError, Counters, LimitCheck};
use crate::model::{AnalyticsQuery, AnalyticsValue};
use crate::store::{AnalyticsRunError, AnalyticsStore, StoreError};

/// What an operator can tune about analytics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsSettings {
    /// Days of raw events (and minute and hour rollups) kept, and the range a query may reach
    /// back (`--analytics-retention-days`).
    pub retention_days: u32,
    /// Queries per workspace per hour; 0 for no quota (`--analytics-query-quota`).
    pub queries_per_hour: u32,
    /// The longest a query may run.
    pub query_timeout: Duration,
    /// The most rows a query may return.
    pub max_rows: u64,
    /// The largest encoded response.
    pub max_response_bytes: usize,
    /// How long the rollups' counts gather in memory before they are written
    /// (`--analytics-rollup-interval`).
    pub rollup_interval: Duration,
}

/// Kept 90 days by default (Unkey keeps 3 to 14, by plan).
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// Queries per workspace and hour, as Unkey's quota.
pub const DEFAULT_QUERIES_PER_HOUR: u32 = 1000;
/// A query's deadline, as Unkey's client deadline.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The row cap, as Unkey's default.
pub const MAX_ROWS: u64 = 10_000_000;
/// The response cap: 4 MiB, as Unkey's.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

impl Default for AnalyticsSettings {
    fn default() -> Self {
        AnalyticsSettings {
            retention_days: DEFAULT_RETENTION_DAYS,
            queries_per_hour: DEFAULT_QUERIES_PER_HOUR,
            query_timeout: QUERY_TIMEOUT,
            max_rows: MAX_ROWS,
            max_response_bytes: MAX_RESPONSE_BYTES,
            rollup_interval: crate::domain::events::ROLLUP_INTERVAL,
        }
    }
}

/// Queries one node runs at once; more wait their turn (within the request's own deadline), so
/// analytics can never take every database connection from verifications.
const CONCURRENT_QUERIES: usize = 4;

/// What a caller may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything of its workspace.
    Workspace,
    /// Only these key spaces (verifications) or namespaces (rate limits); none at all when empty.
    Only(Vec<String>),
}

impl Scope {
    fn ids(&self) -> Option<&[String]> {
        match self {
            Scope::Workspace => None,
            Scope::Only(ids) => Some(ids),
        }
    }
}

/// Why a query has no answer.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// The caller holds no permission that reads this family; names the wildcard one.
    #[error("Missing permission: '{0}'")]
    Forbidden(&'static str),
    /// The query broke a rule (400; the code and detail say which).
    #[error("{}", .0.detail)]
    Query(QueryError),
    /// The database refused the query; the detail is sanitized.
    #[error("{0}")]
    Refused(String),
    #[error("Query execution was canceled or timed out.")]
    Timeout,
    #[error("Query result exceeds the maximum response size.")]
    TooLarge,
    #[error("Query quota exceeded for the current time window. Please try again later.")]
    QuotaExceeded,
    #[error(transparent)]
    Counters(#[from] CounterError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs callers' analytics queries.
pub struct AnalyticsService {
    store: Arc<dyn AnalyticsStore>,
    apis: Arc<ApiService>,
    counters: Arc<dyn Counters>,
    dialect: Dialect,
    settings: AnalyticsSettings,
    running: Semaphore,
}

/// The permission that reads a family's whole workspace, and the resource its scoped ones name.
fn permission_of(family: Family) -> (&'static str, &'static str) {
    match family {
        Family::Verifications => ("api.*.read_analytics", "api"),
        Family::Ratelimits => ("ratelimit.*.read_analytics", "ratelimit"),
    }
}

impl AnalyticsService {
    pub fn new(
        store: Arc<dyn AnalyticsStore>,
        backend: &str,
        apis: Arc<ApiService>,
        counters: Arc<dyn Counters>,
        settings: AnalyticsSettings,
    ) -> Self {
        AnalyticsService {
            store,
            apis,
            counters,
            dialect: if backend == "postgres" {
                Dialect::Postgres
            } else {
                Dialect::Sqlite
            },
            settings,
            running: Semaphore::new(CONCURRENT_QUERIES),
        }
    }

    pub fn settings(&self) -> &AnalyticsSettings {
        &self.settings
    }

    /// What a root key holding `permissions` may read of `family`: the whole workspace with the
    /// wildcard permission; else the key spaces of the APIs (or the namespaces) its scoped
    /// permissions name, which may be none at all (APIs that do not exist resolve to nothing,
    /// so such a caller reads no rows); else 403.
    pub async fn scope(
        &self,
        workspace_id: &str,
        family: Family,
        permissions: &HashSet<String>,
    ) -> Result<Scope, AnalyticsError> {
        let (wildcard, resource) = permission_of(family);
        if permissions.contains(wildcard) {
            return Ok(Scope::Workspace);
        }
        let mut named: Vec<&str> = permissions
            .iter()
            .filter_map(|p| {
                p.strip_prefix(resource)?
                    .strip_prefix('.')?
                    .strip_suffix(".read_analytics")
            })
            .filter(|id| !id.is_empty() && !id.contains('.'))
            .collect();
        if named.is_empty() {
            return Err(AnalyticsError::Forbidden(wildcard));
        }
        named.sort_unstable();
        let ids = match family {
            Family::Ratelimits => named.into_iter().map(str::to_string).collect(),
            Family::Verifications => {
                let mut key_spaces = Vec::with_capacity(named.len());
                for api_id in named {
                    if let Some(api) = self.apis.live(workspace_id, api_id).await? {
                        key_spaces.push(api.key_space_id);
                    }
                }
                key_spaces
            }
        };
        Ok(Scope::Only(ids))
    }

    /// Compiles and runs `sql` for a caller of `workspace_id` who may read `scope`; answers the
    /// rows as JSON objects keyed by column name.
    pub async fn query(
        &self,
        workspace_id: &str,
        family: Family,
        scope: &Scope,
        sql: &str,
        now_ms: i64,
    ) -> Result<Vec<Value>, AnalyticsError> {
        let compiled = self
            .prepare(workspace_id, family, scope, sql, now_ms)
            .await?;
        self.run(&compiled).await
    }

    /// Compiles a query for a caller and, once it is known to be valid, counts it against the
    /// workspace's quota.
    async fn prepare(
        &self,
        workspace_id: &str,
        family: Family,
        scope: &Scope,
        sql: &str,
        now_ms: i64,
    ) -> Result<Compiled, AnalyticsError> {
        let compiled = query::compile(
            sql,
            &QueryContext {
                family,
                dialect: self.dialect,
                workspace_id,
                scope: scope.ids(),
                now_ms,
                retention_days: self.settings.retention_days,
                max_rows: self.settings.max_rows,
            },
        )
        .map_err(AnalyticsError::Query)?;
        self.spend_quota(workspace_id, now_ms).await?;
        Ok(compiled)
    }

    /// Counts a query against its workspace's hourly quota.
    async fn spend_quota(&self, workspace_id: &str, now_ms: i64) -> Result<(), AnalyticsError> {
        if self.settings.queries_per_hour == 0 {
            return Ok(());
        }
        let check = LimitCheck {
            key: format!("analytics:{workspace_id}"),
            limit: i64::from(self.settings.queries_per_hour),
            duration_ms: 3_600_000,
            cost: 1,
        };
        let outcome = self.counters.decide(&[check], now_ms).await?;
        if outcome.first().is_some_and(|o| o.passed) {
            Ok(())
        } else {
            Err(AnalyticsError::QuotaExceeded)
        }
    }

    /// Runs a compiled query and encodes its rows, within the response cap.
    async fn run(&self, compiled: &Compiled) -> Result<Vec<Value>, AnalyticsError> {
        let rows = self.run_rows(compiled).await?;
        let mut size = 2;
        let mut data = Vec::with_capacity(rows.len());
        for row in rows {
            let mut object = Map::new();
            for (column, value) in compiled.columns.iter().zip(row) {
                object.insert(column.name.clone(), encode(column.kind, value));
            }
            let object = Value::Object(object);
            size += encoded_len(&object) + 1;
            if size > self.settings.max_response_bytes {
                return Err(AnalyticsError::TooLarge);
            }
            data.push(object);
        }
        Ok(data)
    }

    /// Runs a compiled query: its rows as stored.
    async fn run_rows(
        &self,
        compiled: &Compiled,
    ) -> Result<Vec<Vec<AnalyticsValue>>, AnalyticsError> {
        let query = AnalyticsQuery {
            sql: compiled.sql.clone(),
            params: compiled.params.iter().map(param_value).collect(),
            timeout: self.settings.query_timeout,
            max_bytes: self.settings.max_response_bytes,
        };
        let rows = {
            let _turn = self
                .running
                .acquire()
                .await
                .map_err(|_| StoreError::Failed("analytics is shutting down".into()))?;
            self.store.run_analytics(&query).await
        };
        let rows = match rows {
            Ok(rows) => rows,
            Err(AnalyticsRunError::Timeout) => return Err(AnalyticsError::Timeout),
            Err(AnalyticsRunError::TooLarge) => return Err(AnalyticsError::TooLarge),
            Err(AnalyticsRunError::Refused { message, code }) => {
                tracing::debug!(%message, ?code, "the database refused an analytics query");
                return Err(AnalyticsError::Refused(query::sanitize_db_error(
                    self.dialect,
                    &message,
                    code.as_deref(),
                )));
            }
            Err(AnalyticsRunError::Store(err)) => return Err(AnalyticsError::Store(err)),
        };
        Ok(rows.rows)
    }
}

fn param_value(param: &query::Param) -> AnalyticsValue {
    match param {
        query::Param::Int(v) => AnalyticsValue::Int(*v),
        query::Param::Float(v) => AnalyticsValue::Float(*v),
        query::Param::Text(v) => AnalyticsValue::Text(v.clone()),
    }
}

/// The length of a value's JSON encoding.
fn encoded_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

/// A stored value as the column's kind is answered: times of the rollups as RFC 3339 strings,
/// the raw tables' millisecond times as numbers, tag arrays as arrays, flags as booleans, and
/// NaN or infinity as `null`.
pub fn encode(kind: ValueKind, value: AnalyticsValue) -> Value {
    match (kind, value) {
        (_, AnalyticsValue::Null) => Value::Null,
        (ValueKind::DateTime | ValueKind::Date, AnalyticsValue::Int(ms)) => {
            Value::String(rfc3339_seconds(ms))
        }
        (ValueKind::DateTime | ValueKind::Date, AnalyticsValue::Float(ms)) if ms.is_finite() => {
            Value::String(rfc3339_seconds(ms as i64))
        }
        (ValueKind::Bool, AnalyticsValue::Int(v)) => Value::Bool(v != 0),
        (ValueKind::Array, AnalyticsValue::Text(text)) => {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
        (ValueKind::Float, AnalyticsValue::Int(v)) => float(v as f64),
        (_, AnalyticsValue::Int(v)) => Value::from(v),
        (_, AnalyticsValue::Float(v)) => float(v),
        (_, AnalyticsValue::Bool(v)) => Value::Bool(v),
        (_, AnalyticsValue::Text(v)) => Value::String(v),
    }
}

fn float(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// `2025-01-01T00:00:00Z`: whole seconds, as Go marshals a ClickHouse DateTime.
pub fn rfc3339_seconds(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    match time::OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(at) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        ),
        Err(_) => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_encoded_by_their_column_kind() {
        let at = 1_735_689_600_000; // 2025-01-01T00:00:00Z
        assert_eq!(
            encode(ValueKind::DateTime, AnalyticsValue::Int(at)),
            Value::String("2025-01-01T00:00:00Z".into())
        );
        assert_eq!(
            encode(ValueKind::Date, AnalyticsValue::Int(at + 86_400_000 + 1)),
            Value::String("2025-01-02T00:00:00Z".into())
        );
        assert_eq!(
            encode(ValueKind::TimeMs, AnalyticsValue::Int(at)),
            Value::from(at)
        );
        assert_eq!(
            encode(ValueKind::Bool, AnalyticsValue::Int(1)),
            Value::Bool(true)
        );
        assert_eq!(
            encode(
                ValueKind::Array,
                AnalyticsValue::Text(r#"["a","b"]"#.into())
            ),
            serde_json::json!(["a", "b"])
        );
        assert_eq!(
            encode(ValueKind::Float, AnalyticsValue::Float(f64::NAN)),
            Value::Null
        );
        assert_eq!(
            encode(ValueKind::Int, AnalyticsValue::Int(3)),
            Value::from(3)
        );
        assert_eq!(encode(ValueKind::Text, AnalyticsValue::Null), Value::Null);
    }

    #[test]
    fn encoded_length_is_the_length_of_the_json() {
        let value = serde_json::json!({"a": [1, "x\"y"], "b": null});
        assert_eq!(encoded_len(&value), value.to_string().len());
    }
}
