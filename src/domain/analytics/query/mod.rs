//! The compiler of analytics queries: the ClickHouse-flavoured SQL of `analytics.getVerifications`
//! and `analytics.getRatelimits`, checked in the order Unkey checks it, then rewritten into the
//! store's own SQL (SQLite or PostgreSQL).
//!
//! Pure: no I/O and no async. [`compile`] turns the user's text into one statement and its
//! parameters; the caller runs it on a read-only connection and reads the rows with the kinds in
//! [`Compiled::columns`] (by position: the database's own column names may be truncated).
//!
//! Isolation is by construction. The emitted statement starts with one CTE per public table the
//! query names, each reading only the caller's workspace (and scope, and retention window) from
//! the physical table; the rest of the statement is emitted by this module from the parsed tree,
//! node by node, from a whitelist: it can name only those CTEs, the user's own CTEs (renamed
//! `u_<name>`) and derived tables. Every string of the user's query is a bound parameter.
//!
//! The steps and their errors follow `shared/reference/extended-surface.md` §1 (steps 2 to 13):
//! see [`compile`].
//!
//! Translated: SELECT [DISTINCT] with aliases (usable in every clause, as in ClickHouse), `*`,
//! `t.*` and `* EXCEPT (..)`; FROM with table aliases, comma joins, [INNER|LEFT|RIGHT|FULL|CROSS]
//! JOIN ... ON/USING, derived tables (with column aliases); WHERE, GROUP BY (expressions,
//! aliases, positions), HAVING, ORDER BY (ASC/DESC, NULLS FIRST/LAST, aliases, positions), LIMIT
//! / OFFSET / `LIMIT n, m`; WITH (with column lists, at any level); UNION [ALL], EXCEPT,
//! INTERSECT; subqueries in FROM, IN, EXISTS and scalar position; IN lists and arrays, BETWEEN,
//! [I]LIKE, IS [NOT] NULL, CASE, arithmetic, comparison, AND/OR/NOT, `||`, literals, INTERVAL,
//! CAST / `::` to String, Int*, UInt*, Float*, Date, DateTime, Bool; every function of step 12
//! and `toUnixTimestamp`; lambdas inside arrayFilter.
//!
//! Refused with invalid_analytics_query ("... is not supported in analytics queries"): WITH
//! RECURSIVE, window functions, ARRAY JOIN (use arrayJoin()), PREWHERE, LIMIT BY, FORMAT, GROUP
//! BY modifiers, DISTINCT ON, tuples, query parameters, NATURAL and parenthesized joins, and any
//! other construct the emitter does not know.
//!
//! [`Param`] has Int and Float variants for callers' convenience; the compiler binds text only
//! (numbers are re-printed after parsing).

mod catalog;
mod emit;
mod expr;
mod functions;
mod retention;
mod validate;
mod walk;

#[cfg(test)]
mod tests;

use sqlparser::ast::Statement;
use sqlparser::dialect::ClickHouseDialect;
use sqlparser::parser::Parser;

/// The longest query accepted, in bytes (checked before parsing).
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// The most AST nodes a query may have (counted over expressions, queries, SELECTs and tables).
pub const MAX_AST_NODES: usize = 2000;
/// The deepest nesting of AST nodes accepted (ClickHouse's `max_ast_depth` in Unkey's profile).
pub const MAX_AST_DEPTH: usize = 100;
/// The most projected columns, summed over every SELECT.
pub const MAX_PROJECTED_COLUMNS: usize = 64;

/// Which endpoint a query comes from, so which tables it may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Verifications,
    Ratelimits,
}

/// The SQL the compiled statement is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Everything the compiler needs to know about the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryContext<'a> {
    pub family: Family,
    pub dialect: Dialect,
    pub workspace_id: &'a str,
    /// None: the whole workspace. Some(ids): only these key_space_ids (Verifications) or
    /// namespace_ids (Ratelimits); Some(empty) => every table yields no rows (fail closed).
    pub scope: Option<&'a [String]>,
    pub now_ms: i64,
    /// The queryable range in days (step 13, and the rows the CTEs expose: time_m >= the start
    /// of the UTC day now - N days). 0 = no limit.
    pub retention_days: u32,
    /// The row cap (step 11): LIMIT added or clamped on every query level.
    pub max_rows: u64,
}

/// A compiled statement: run `sql` with `params` bound in order (`?1..` on SQLite, `$1..` on
/// PostgreSQL), and read its columns by position with the kinds of `columns`.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    pub sql: String,
    pub params: Vec<Param>,
    pub columns: Vec<OutputColumn>,
}

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Int(i64),
    Float(f64),
    Text(String),
}

/// One column of the result: the name the response object uses, and how to turn its value into
/// JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputColumn {
    pub name: String,
    pub kind: ValueKind,
}

/// How to turn a stored value of an output column into JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    Int,
    Float,
    Text,
    /// 0/1 on SQLite, a boolean on PostgreSQL; answered as true/false.
    Bool,
    /// The raw `time` of the event tables: a number of unix milliseconds, answered as a number.
    TimeMs,
    /// Unix milliseconds in the database, answered as RFC 3339 ("2025-01-01T00:00:00Z").
    DateTime,
    /// Unix milliseconds of a UTC midnight in the database, answered like DateTime.
    Date,
    /// JSON text in the database, answered as a JSON array.
    Array,
    /// Whatever the database holds (NULL literals and the like).
    Unknown,
}

/// A refused query: the error code of the response and its detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub code: QueryErrorCode,
    pub detail: String,
}

/// The 400 error codes of §1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryErrorCode {
    InvalidQuery,
    InvalidQueryType,
    InvalidTable,
    InvalidFunction,
    RangeExceedsRetention,
}

impl QueryErrorCode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::InvalidQuery => "err:user:bad_request:invalid_analytics_query",
            Self::InvalidQueryType => "err:user:bad_request:invalid_analytics_query_type",
            Self::InvalidTable => "err:user:bad_request:invalid_analytics_table",
            Self::InvalidFunction => "err:user:bad_request:invalid_analytics_function",
            Self::RangeExceedsRetention => "err:user:bad_request:query_range_exceeds_retention",
        }
    }
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl std::error::Error for QueryError {}

impl QueryError {
    pub(crate) fn new(code: QueryErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
    pub(crate) fn query(detail: impl Into<String>) -> Self {
        Self::new(QueryErrorCode::InvalidQuery, detail)
    }
    pub(crate) fn table(name: &str) -> Self {
        Self::new(
            QueryErrorCode::InvalidTable,
            format!("Access to table '{name}' is not allowed"),
        )
    }
    pub(crate) fn function(name: &str) -> Self {
        Self::new(
            QueryErrorCode::InvalidFunction,
            format!("Function '{}' is not allowed", name.to_lowercase()),
        )
    }
    /// A construct keyward's compiler does not translate.
    pub(crate) fn unsupported(what: &str) -> Self {
        Self::query(format!("{what} is not supported in analytics queries"))
    }
}

pub(crate) type Result<T, E = QueryError> = std::result::Result<T, E>;

/// Compiles one analytics query.
///
/// The checks run in §1's order, each with its code:
/// 2. longer than [`MAX_QUERY_BYTES`] → invalid_analytics_query;
/// 3. syntax errors, no statement, several statements → invalid_analytics_query;
/// 4. not a SELECT → invalid_analytics_query_type;
/// 5. a SETTINGS clause anywhere → invalid_analytics_query;
/// 6. too many nodes, too deep, too many projected columns → invalid_analytics_query;
/// 7. a CTE named like a public table → invalid_analytics_table;
/// 8. an IN over a table, table function or parameter → invalid_analytics_query;
/// 9. no FROM on the top SELECT → invalid_analytics_query; a table that is neither a public
///    table of this family nor a CTE → invalid_analytics_table;
/// 11. (while emitting) LIMIT added or clamped to `max_rows` on every query level;
/// 12. a function (or table function) off the allowlist → invalid_analytics_function;
/// 13. a lower bound on `time` in a WHERE older than the retention → query_range_exceeds_retention.
///
/// Constructs that pass those checks but that keyward does not translate answer
/// invalid_analytics_query with a message naming the construct.
pub fn compile(query: &str, ctx: &QueryContext<'_>) -> Result<Compiled> {
    // Step 2.
    if query.len() > MAX_QUERY_BYTES {
        return Err(QueryError::query(
            "Analytics query exceeds the maximum length",
        ));
    }
    // Step 3. A NUL byte would end the statement early in SQLite's C API: refuse it outright.
    if query.contains('\0') {
        return Err(QueryError::query(
            "Invalid SQL syntax: NUL character in query",
        ));
    }
    let statements = Parser::parse_sql(&ClickHouseDialect {}, query)
        .map_err(|e| QueryError::query(format!("Invalid SQL syntax: {}", parser_message(&e))))?;
    let statement = match statements.as_slice() {
        [] => return Err(QueryError::query("No SQL statements found")),
        [one] => one,
        _ => {
            return Err(QueryError::query(
                "Analytics queries must contain exactly one statement",
            ))
        }
    };
    // Step 4.
    let Statement::Query(top) = statement else {
        return Err(QueryError::new(
            QueryErrorCode::InvalidQueryType,
            "Only SELECT queries are allowed",
        ));
    };
    if !validate::is_select(top) {
        return Err(QueryError::new(
            QueryErrorCode::InvalidQueryType,
            "Only SELECT queries are allowed",
        ));
    }
    // Steps 5 to 12 (except 11, which the emitter applies).
    let ctes = validate::validate(query, top, ctx.family)?;
    // Steps 11 and 13, and the translation.
    emit::emit(top, ctx, ctes)
}

fn parser_message(e: &sqlparser::parser::ParserError) -> String {
    use sqlparser::parser::ParserError;
    match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m.clone(),
        ParserError::RecursionLimitExceeded => "query nested too deeply".to_string(),
    }
}

/// Maps the error message of running a [`Compiled`] statement to §1's sanitized 400 detail. It
/// never echoes SQL, parameters or physical names.
pub fn sanitize_db_error(dialect: Dialect, message: &str, pg_code: Option<&str>) -> String {
    const IDENT: &str = "Unknown identifier in analytics query";
    const FUNCTION: &str = "Unknown function in analytics query";
    const SYNTAX: &str = "Invalid SQL syntax";
    const OTHER: &str = "Invalid analytics query";
    let m = message.to_ascii_lowercase();
    match dialect {
        Dialect::Postgres => match pg_code {
            Some("42703") => IDENT,
            Some("42883") => FUNCTION,
            Some("42601") => SYNTAX,
            Some(_) => OTHER,
            None if m.contains("column") && m.contains("does not exist") => IDENT,
            None if m.contains("function") && m.contains("does not exist") => FUNCTION,
            None if m.contains("syntax error") => SYNTAX,
            None => OTHER,
        },
        Dialect::Sqlite => {
            if m.contains("no such column") {
                IDENT
            } else if m.contains("no such function")
                || m.contains("wrong number of arguments to function")
            {
                FUNCTION
            } else if m.contains("syntax error") || m.contains("unrecognized token") {
                SYNTAX
            } else {
                OTHER
            }
        }
    }
    .to_string()
}
