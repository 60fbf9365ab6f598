//! The public tables of each family, their columns and types, and how each column is read from
//! the physical tables of `migrations/*/0002_keys.sql` and `0007_analytics.sql`.

use super::{Dialect, Family, ValueKind};

/// The type of an expression, by meaning. Every time is an integer of unix milliseconds in the
/// database, whatever its type here; the type says how to compare and answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Ty {
    /// The raw tables' `time` (ClickHouse Int64 of ms).
    TimeMs,
    /// A ClickHouse DateTime (ms here, seconds in ClickHouse arithmetic).
    DateTime,
    /// A ClickHouse Date (ms of a UTC midnight here, days in ClickHouse arithmetic).
    Date,
    Int,
    Float,
    Text,
    Bool,
    /// JSON text on SQLite, jsonb on PostgreSQL.
    Array,
    /// A duration in ms.
    Interval,
    Null,
    Unknown,
}

impl Ty {
    pub(crate) fn is_time(self) -> bool {
        matches!(self, Ty::TimeMs | Ty::DateTime | Ty::Date)
    }
    pub(crate) fn kind(self) -> ValueKind {
        match self {
            Ty::TimeMs => ValueKind::TimeMs,
            Ty::DateTime => ValueKind::DateTime,
            Ty::Date => ValueKind::Date,
            Ty::Int | Ty::Interval => ValueKind::Int,
            Ty::Float => ValueKind::Float,
            Ty::Text => ValueKind::Text,
            Ty::Bool => ValueKind::Bool,
            Ty::Array => ValueKind::Array,
            Ty::Null | Ty::Unknown => ValueKind::Unknown,
        }
    }
}

/// How a public column is read from its physical table.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    /// The physical column of this name.
    Column(&'static str),
    /// An expression, per dialect.
    Expr {
        sqlite: &'static str,
        postgres: &'static str,
    },
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub name: &'static str,
    pub ty: Ty,
    pub source: Source,
}

#[derive(Debug)]
pub(crate) struct Table {
    pub alias: &'static str,
    pub family: Family,
    pub physical: &'static str,
    /// The column the caller's scope filters on (key_space_id or namespace_id).
    pub scope_column: &'static str,
    pub columns: &'static [Column],
}

impl Table {
    /// The SQL of one column inside this table's CTE.
    pub(crate) fn column_sql(column: &Column, dialect: Dialect) -> &'static str {
        match (column.source, dialect) {
            (Source::Column(c), _) => c,
            (Source::Expr { sqlite, .. }, Dialect::Sqlite) => sqlite,
            (Source::Expr { postgres, .. }, Dialect::Postgres) => postgres,
        }
    }
}

const fn col(name: &'static str, ty: Ty) -> Column {
    Column {
        name,
        ty,
        source: Source::Column(name),
    }
}
const fn renamed(name: &'static str, ty: Ty, physical: &'static str) -> Column {
    Column {
        name,
        ty,
        source: Source::Column(physical),
    }
}
const fn expr(name: &'static str, ty: Ty, sqlite: &'static str, postgres: &'static str) -> Column {
    Column {
        name,
        ty,
        source: Source::Expr { sqlite, postgres },
    }
}

const EMPTY_TEXT: (&str, &str) = ("''", "CAST('' AS TEXT)");
const TAGS: Column = expr("tags", Ty::Array, "tags", "CAST(tags AS JSONB)");
const LATENCY: Column = expr(
    "latency",
    Ty::Float,
    "(latency_us / 1000.0)",
    "(latency_us / 1000.0)",
);

const VERIFICATIONS_RAW: &[Column] = &[
    col("request_id", Ty::Text),
    renamed("time", Ty::TimeMs, "time_m"),
    col("workspace_id", Ty::Text),
    col("key_space_id", Ty::Text),
    expr(
        "identity_id",
        Ty::Text,
        "COALESCE(identity_id, '')",
        "COALESCE(identity_id, '')",
    ),
    col("external_id", Ty::Text),
    col("key_id", Ty::Text),
    col("region", Ty::Text),
    col("source", Ty::Text),
    expr("app_id", Ty::Text, EMPTY_TEXT.0, EMPTY_TEXT.1),
    col("outcome", Ty::Text),
    TAGS,
    col("spent_credits", Ty::Int),
    LATENCY,
];

macro_rules! verification_rollup {
    ($time:expr) => {
        &[
            renamed("time", $time, "time_m"),
            col("workspace_id", Ty::Text),
            col("key_space_id", Ty::Text),
            col("identity_id", Ty::Text),
            col("external_id", Ty::Text),
            col("key_id", Ty::Text),
            col("outcome", Ty::Text),
            col("source", Ty::Text),
            expr("app_id", Ty::Text, EMPTY_TEXT.0, EMPTY_TEXT.1),
            TAGS,
            renamed("count", Ty::Int, "total"),
            col("spent_credits", Ty::Int),
        ]
    };
}

const RATELIMITS_RAW: &[Column] = &[
    col("request_id", Ty::Text),
    renamed("time", Ty::TimeMs, "time_m"),
    col("workspace_id", Ty::Text),
    col("namespace_id", Ty::Text),
    col("identifier", Ty::Text),
    expr("passed", Ty::Bool, "(passed <> 0)", "(passed <> 0)"),
    LATENCY,
    col("override_id", Ty::Text),
    renamed("limit", Ty::Int, "limit_value"),
    col("remaining", Ty::Int),
    renamed("reset_at", Ty::TimeMs, "reset_at_m"),
    col("tokens", Ty::Int),
];

macro_rules! ratelimit_rollup {
    ($time:expr) => {
        &[
            renamed("time", $time, "time_m"),
            col("workspace_id", Ty::Text),
            col("namespace_id", Ty::Text),
            col("identifier", Ty::Text),
            col("passed", Ty::Int),
            col("total", Ty::Int),
            col("passed_tokens", Ty::Int),
            col("total_tokens", Ty::Int),
        ]
    };
}

const fn table(
    alias: &'static str,
    family: Family,
    physical: &'static str,
    columns: &'static [Column],
) -> Table {
    let scope_column = match family {
        Family::Verifications => "key_space_id",
        Family::Ratelimits => "namespace_id",
    };
    Table {
        alias,
        family,
        physical,
        scope_column,
        columns,
    }
}

pub(crate) static TABLES: &[Table] = &[
    table(
        "key_verifications_v1",
        Family::Verifications,
        "key_verifications",
        VERIFICATIONS_RAW,
    ),
    table(
        "key_verifications_per_minute_v1",
        Family::Verifications,
        "key_verifications_per_minute",
        verification_rollup!(Ty::DateTime),
    ),
    table(
        "key_verifications_per_hour_v1",
        Family::Verifications,
        "key_verifications_per_hour",
        verification_rollup!(Ty::DateTime),
    ),
    table(
        "key_verifications_per_day_v1",
        Family::Verifications,
        "key_verifications_per_day",
        verification_rollup!(Ty::Date),
    ),
    table(
        "key_verifications_per_month_v1",
        Family::Verifications,
        "key_verifications_per_month",
        verification_rollup!(Ty::Date),
    ),
    table(
        "ratelimits_v1",
        Family::Ratelimits,
        "ratelimit_events",
        RATELIMITS_RAW,
    ),
    table(
        "ratelimits_per_minute_v1",
        Family::Ratelimits,
        "ratelimits_per_minute",
        ratelimit_rollup!(Ty::DateTime),
    ),
    table(
        "ratelimits_per_hour_v1",
        Family::Ratelimits,
        "ratelimits_per_hour",
        ratelimit_rollup!(Ty::DateTime),
    ),
    table(
        "ratelimits_per_day_v1",
        Family::Ratelimits,
        "ratelimits_per_day",
        ratelimit_rollup!(Ty::Date),
    ),
    table(
        "ratelimits_per_month_v1",
        Family::Ratelimits,
        "ratelimits_per_month",
        ratelimit_rollup!(Ty::Date),
    ),
];

/// The public table of this family with exactly this name (case-sensitive, as Unkey matches).
pub(crate) fn public_table(family: Family, name: &str) -> Option<&'static Table> {
    TABLES
        .iter()
        .find(|t| t.family == family && t.alias == name)
}

/// Whether a CTE name conflicts with a public table of either family (case-insensitive).
pub(crate) fn conflicts_with_public(name: &str) -> Option<&'static str> {
    TABLES
        .iter()
        .find(|t| t.alias.eq_ignore_ascii_case(name))
        .map(|t| t.alias)
}
