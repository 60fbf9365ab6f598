//! Expressions: literals, names, operators, predicates, CASE, subqueries, with a type for each
//! so that times compare by meaning:
//!
//! * every time is unix ms in the database; a raw `time` (TimeMs), a DateTime and a Date compare
//!   with each other directly;
//! * a string compared with a time is read as a date at compile time ('YYYY-MM-DD',
//!   'YYYY-MM-DD hh:mm:ss', RFC 3339), or at run time when it is not a literal;
//! * a number compared with a DateTime is unix seconds, with a Date days, with a raw `time` ms
//!   (as ClickHouse reads each), so `time >= toUnixTimestamp(now() - INTERVAL 1 HOUR) * 1000`
//!   works on the raw table and `time >= toUnixTimestamp(...)` on the rollups;
//! * `DateTime ± n` adds seconds, `Date ± n` days, `x ± INTERVAL` the interval;
//! * `/` is float division (as in ClickHouse), by zero NULL.

use sqlparser::ast::{
    BinaryOperator, CastKind, CeilFloorKind, DataType, DateTimeField, Expr, InTarget, Interval,
    UnaryOperator, Value,
};

use super::catalog::Ty;
use super::emit::{Emitter, Ex, Lit};
use super::retention::{self, DAY_MS, HOUR_MS, MINUTE_MS};
use super::{Dialect, QueryError, Result};

/// The ms of one unit of an INTERVAL. MONTH is 30 days and YEAR 365 days, as Unkey's retention
/// check counts them (ClickHouse itself uses the calendar).
pub(crate) fn interval_unit_ms(unit: &str) -> Option<f64> {
    Some(match unit.to_ascii_lowercase().trim_end_matches('s') {
        "nanosecond" => 1e-6,
        "microsecond" => 1e-3,
        "millisecond" => 1.0,
        "second" => 1000.0,
        "minute" => MINUTE_MS as f64,
        "hour" => HOUR_MS as f64,
        "day" => DAY_MS as f64,
        "week" => (7 * DAY_MS) as f64,
        "month" => (30 * DAY_MS) as f64,
        "quarter" => (90 * DAY_MS) as f64,
        "year" => (365 * DAY_MS) as f64,
        _ => return None,
    })
}

pub(crate) fn datetime_field_name(f: &DateTimeField) -> Option<&'static str> {
    Some(match f {
        DateTimeField::Nanosecond | DateTimeField::Nanoseconds => "nanosecond",
        DateTimeField::Microsecond | DateTimeField::Microseconds => "microsecond",
        DateTimeField::Millisecond | DateTimeField::Milliseconds => "millisecond",
        DateTimeField::Second | DateTimeField::Seconds => "second",
        DateTimeField::Minute | DateTimeField::Minutes => "minute",
        DateTimeField::Hour | DateTimeField::Hours => "hour",
        DateTimeField::Day | DateTimeField::Days => "day",
        DateTimeField::Week(None) | DateTimeField::Weeks => "week",
        DateTimeField::Month | DateTimeField::Months => "month",
        DateTimeField::Quarter => "quarter",
        DateTimeField::Year | DateTimeField::Years => "year",
        _ => return None,
    })
}

/// Whether an expression is a column named `time`, qualified or not (step 13).
fn is_time_column(e: &Expr) -> bool {
    match e {
        Expr::Identifier(i) => i.value == "time",
        Expr::CompoundIdentifier(parts) => parts.last().is_some_and(|p| p.value == "time"),
        Expr::Nested(x) => is_time_column(x),
        _ => false,
    }
}

/// Prints a number so both dialects read it back (no NaN or infinity).
pub(crate) fn number_sql(f: f64) -> Result<String> {
    if !f.is_finite() {
        return Err(QueryError::query("Number out of range"));
    }
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        return Ok(format!("{:.1}", f));
    }
    Ok(format!("{f:e}"))
}

fn parse_number(text: &str) -> Result<Ex> {
    let clean = text.replace('_', "");
    if let Ok(n) = clean.parse::<i64>() {
        return Ok(Ex {
            sql: n.to_string(),
            ty: Ty::Int,
            lit: Some(Lit::Int(n)),
        });
    }
    match clean.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(Ex {
            sql: number_sql(f)?,
            ty: Ty::Float,
            lit: Some(Lit::Float(f)),
        }),
        _ => Err(QueryError::query(format!("Invalid number '{text}'"))),
    }
}

fn paren(s: &str) -> String {
    format!("({s})")
}

impl<'c, 'q> Emitter<'c, 'q> {
    pub(crate) fn expr(&mut self, e: &'q Expr) -> Result<Ex> {
        match e {
            Expr::Identifier(i) => self.resolve(&i.value),
            Expr::CompoundIdentifier(parts) => self.resolve_qualified(parts),
            Expr::Value(v) => self.value(&v.value),
            Expr::Nested(x) => {
                let mut ex = self.expr(x)?;
                ex.sql = paren(&ex.sql);
                Ok(ex)
            }
            Expr::IsNull(x) => {
                let ex = self.expr(x)?;
                Ok(Ex::new(format!("({} IS NULL)", ex.sql), Ty::Bool))
            }
            Expr::IsNotNull(x) => {
                let ex = self.expr(x)?;
                Ok(Ex::new(format!("({} IS NOT NULL)", ex.sql), Ty::Bool))
            }
            Expr::UnaryOp { op, expr } => {
                let ex = self.expr(expr)?;
                match op {
                    UnaryOperator::Not => {
                        Ok(Ex::new(format!("(NOT {})", self.bool_sql(&ex)), Ty::Bool))
                    }
                    UnaryOperator::Minus => {
                        let ty = if ex.ty == Ty::Bool { Ty::Int } else { ex.ty };
                        let lit = match ex.lit {
                            Some(Lit::Int(n)) => n.checked_neg().map(Lit::Int),
                            Some(Lit::Float(f)) => Some(Lit::Float(-f)),
                            _ => None,
                        };
                        Ok(Ex {
                            sql: format!("(-{})", self.num_sql(&ex)),
                            ty,
                            lit,
                        })
                    }
                    UnaryOperator::Plus => Ok(ex),
                    _ => Err(QueryError::unsupported("This unary operator")),
                }
            }
            Expr::BinaryOp { left, op, right } => self.binary(left, op, right),
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let x = self.expr(expr)?;
                let lo = self.expr(low)?;
                let hi = self.expr(high)?;
                if !negated && self.in_where() && x.ty.is_time() && is_time_column(expr) {
                    self.check_retention(low, x.ty)?;
                }
                let (xs, los) = self.coerce_pair(&x, &lo)?;
                let (_, his) = self.coerce_pair(&x, &hi)?;
                let not = if *negated { "NOT " } else { "" };
                Ok(Ex::new(
                    format!("({xs} {not}BETWEEN {los} AND {his})"),
                    Ty::Bool,
                ))
            }
            Expr::In {
                expr,
                target,
                negated,
                global: _,
            } => self.in_expr(expr, target, *negated),
            Expr::Like {
                negated,
                any,
                expr,
                pattern,
                escape_char,
            } => {
                if *any || escape_char.is_some() {
                    return Err(QueryError::unsupported("LIKE ANY and LIKE ... ESCAPE"));
                }
                self.like(expr, pattern, *negated, false)
            }
            Expr::ILike {
                negated,
                any,
                expr,
                pattern,
                escape_char,
            } => {
                if *any || escape_char.is_some() {
                    return Err(QueryError::unsupported("ILIKE ANY and ILIKE ... ESCAPE"));
                }
                self.like(expr, pattern, *negated, true)
            }
            Expr::Cast {
                kind,
                expr,
                data_type,
                format,
            } => {
                if format.is_some() || matches!(kind, CastKind::SafeCast) {
                    return Err(QueryError::unsupported("This CAST"));
                }
                let ex = self.expr(expr)?;
                self.cast(ex, data_type)
            }
            Expr::Floor { expr, field } | Expr::Ceil { expr, field } => {
                if !matches!(
                    field,
                    CeilFloorKind::DateTimeField(DateTimeField::NoDateTime)
                ) {
                    return Err(QueryError::unsupported("FLOOR/CEIL with a unit or scale"));
                }
                let ex = self.expr(expr)?;
                self.floor_ceil(ex, matches!(e, Expr::Floor { .. }))
            }
            Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let s = self.expr(expr)?;
                let from = match substring_from {
                    Some(f) => Some(self.expr(f)?),
                    None => None,
                };
                let len = match substring_for {
                    Some(f) => Some(self.expr(f)?),
                    None => None,
                };
                self.substring(s, from, len)
            }
            Expr::Trim {
                expr,
                trim_where,
                trim_what,
                trim_characters,
            } => {
                if trim_where.is_some() || trim_what.is_some() || trim_characters.is_some() {
                    return Err(QueryError::unsupported("TRIM with options"));
                }
                let s = self.expr(expr)?;
                Ok(Ex::new(format!("TRIM({})", self.text_sql(&s)), Ty::Text))
            }
            Expr::Function(f) => self.function(f),
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let mut sql = String::from("CASE");
                let op = match operand {
                    Some(o) => Some(self.expr(o)?),
                    None => None,
                };
                if let Some(o) = &op {
                    sql.push(' ');
                    sql.push_str(&o.sql);
                }
                let mut ty = Ty::Null;
                for c in conditions {
                    let cond = self.expr(&c.condition)?;
                    let cond_sql = match &op {
                        Some(o) => self.coerce_pair(o, &cond)?.1,
                        None => self.bool_sql(&cond),
                    };
                    let result = self.expr(&c.result)?;
                    if ty == Ty::Null {
                        ty = result.ty;
                    }
                    sql.push_str(&format!(" WHEN {cond_sql} THEN {}", result.sql));
                }
                if let Some(e) = else_result {
                    let result = self.expr(e)?;
                    if ty == Ty::Null {
                        ty = result.ty;
                    }
                    sql.push_str(&format!(" ELSE {}", result.sql));
                }
                sql.push_str(" END");
                Ok(Ex::new(paren(&sql), ty))
            }
            Expr::Exists { subquery, negated } => {
                let (body, _) = self.subquery(subquery)?;
                let not = if *negated { "NOT " } else { "" };
                Ok(Ex::new(format!("({not}EXISTS ({body}))"), Ty::Bool))
            }
            Expr::Subquery(q) => {
                let (body, columns) = self.subquery(q)?;
                let ty = match columns.as_slice() {
                    [(_, ty)] => *ty,
                    _ => {
                        return Err(QueryError::query(
                            "A scalar subquery must return one column",
                        ))
                    }
                };
                Ok(Ex::new(format!("({body})"), ty))
            }
            Expr::Array(a) => {
                let items = a
                    .elem
                    .iter()
                    .map(|x| self.expr(x))
                    .collect::<Result<Vec<_>>>()?;
                Ok(self.array_literal(&items))
            }
            Expr::Interval(i) => self.interval(i),
            Expr::Lambda(_) => Err(QueryError::query(
                "A lambda is only allowed as a function argument",
            )),
            Expr::Tuple(_) => Err(QueryError::unsupported("A tuple")),
            Expr::Wildcard(_) | Expr::QualifiedWildcard(..) => {
                Err(QueryError::unsupported("A wildcard here"))
            }
            _ => Err(QueryError::unsupported("This expression")),
        }
    }

    fn value(&mut self, v: &Value) -> Result<Ex> {
        match v {
            Value::Number(n, _) => parse_number(n),
            Value::SingleQuotedString(s)
            | Value::TripleSingleQuotedString(s)
            | Value::TripleDoubleQuotedString(s) => Ok(Ex {
                sql: self.text_param(s),
                ty: Ty::Text,
                lit: Some(Lit::Text(s.clone())),
            }),
            Value::HexStringLiteral(h) => match i64::from_str_radix(h, 16) {
                Ok(n) => Ok(Ex {
                    sql: n.to_string(),
                    ty: Ty::Int,
                    lit: Some(Lit::Int(n)),
                }),
                Err(_) => Err(QueryError::query("Invalid hexadecimal number")),
            },
            Value::Boolean(b) => Ok(Ex::new(
                match (self.ctx.dialect, b) {
                    (Dialect::Sqlite, true) => "1",
                    (Dialect::Sqlite, false) => "0",
                    (Dialect::Postgres, true) => "TRUE",
                    (Dialect::Postgres, false) => "FALSE",
                },
                Ty::Bool,
            )),
            Value::Null => Ok(Ex::new("NULL", Ty::Null)),
            Value::Placeholder(_) => Err(QueryError::unsupported("A query parameter")),
            _ => Err(QueryError::unsupported("This kind of literal")),
        }
    }

    /// A subquery in expression position: its own scope, LIMIT and all.
    pub(crate) fn subquery(
        &mut self,
        q: &'q sqlparser::ast::Query,
    ) -> Result<(String, super::emit::Columns)> {
        // Lambda parameters do not reach into subqueries.
        let lambdas = std::mem::take(&mut self.lambdas);
        let out = self.nested_query(q);
        self.lambdas = lambdas;
        out
    }

    // ---- coercions ----

    /// The SQL of an expression where a boolean is expected.
    pub(crate) fn bool_sql(&self, ex: &Ex) -> String {
        match (self.ctx.dialect, ex.ty) {
            (Dialect::Sqlite, _) | (Dialect::Postgres, Ty::Bool) => ex.sql.clone(),
            (Dialect::Postgres, Ty::Null) => "CAST(NULL AS BOOLEAN)".into(),
            (Dialect::Postgres, Ty::Text) => format!("CAST({} AS BOOLEAN)", ex.sql),
            (Dialect::Postgres, _) => format!("({} <> 0)", ex.sql),
        }
    }

    /// The SQL of an expression where a number is expected.
    pub(crate) fn num_sql(&self, ex: &Ex) -> String {
        match (self.ctx.dialect, ex.ty) {
            (Dialect::Postgres, Ty::Bool) => format!("CAST({} AS INTEGER)", ex.sql),
            _ => ex.sql.clone(),
        }
    }

    /// The SQL of an expression where text is expected.
    pub(crate) fn text_sql(&self, ex: &Ex) -> String {
        match (self.ctx.dialect, ex.ty) {
            (Dialect::Postgres, Ty::Text) | (Dialect::Sqlite, _) => ex.sql.clone(),
            (Dialect::Postgres, _) => format!("CAST({} AS TEXT)", ex.sql),
        }
    }

    /// The SQL of `ex` as unix ms, for comparing with a time of type `target`.
    pub(crate) fn as_time(&self, ex: &Ex, target: Ty) -> Result<String> {
        match ex.ty {
            t if t.is_time() => Ok(ex.sql.clone()),
            Ty::Text => match &ex.lit {
                Some(Lit::Text(s)) => retention::parse_time_literal(s)
                    .map(|ms| ms.to_string())
                    .ok_or_else(|| {
                        QueryError::query(format!("Cannot read '{s}' as a date or time"))
                    }),
                _ => Ok(self.runtime_time(&ex.sql)),
            },
            Ty::Int | Ty::Float => Ok(match target {
                Ty::DateTime => format!("({} * 1000)", ex.sql),
                Ty::Date => format!("({} * {DAY_MS})", ex.sql),
                _ => ex.sql.clone(),
            }),
            _ => Ok(ex.sql.clone()),
        }
    }

    /// A date-time string read at run time, as unix ms.
    fn runtime_time(&self, sql: &str) -> String {
        match self.ctx.dialect {
            Dialect::Sqlite => {
                format!("CAST(ROUND((julianday({sql}) - 2440587.5) * {DAY_MS}.0) AS INTEGER)")
            }
            Dialect::Postgres => {
                format!("CAST(EXTRACT(EPOCH FROM CAST({sql} AS TIMESTAMP)) * 1000 AS BIGINT)")
            }
        }
    }

    /// A value as unix ms when a function expects a time: numbers are unix seconds (as
    /// ClickHouse reads a number given for a DateTime).
    pub(crate) fn time_arg(&self, ex: &Ex) -> Result<String> {
        match ex.ty {
            t if t.is_time() => Ok(ex.sql.clone()),
            Ty::Int | Ty::Float => Ok(format!("({} * 1000)", ex.sql)),
            Ty::Text => self.as_time(ex, Ty::DateTime),
            Ty::Null => Ok("NULL".into()),
            _ => Err(QueryError::query("This function expects a date or time")),
        }
    }

    /// Both sides of a comparison, made comparable.
    pub(crate) fn coerce_pair(&self, a: &Ex, b: &Ex) -> Result<(String, String)> {
        if a.ty.is_time() && !b.ty.is_time() {
            return Ok((a.sql.clone(), self.as_time(b, a.ty)?));
        }
        if b.ty.is_time() && !a.ty.is_time() {
            return Ok((self.as_time(a, b.ty)?, b.sql.clone()));
        }
        if self.pg() && (a.ty == Ty::Bool) != (b.ty == Ty::Bool) {
            return Ok((self.num_sql(a), self.num_sql(b)));
        }
        Ok((a.sql.clone(), b.sql.clone()))
    }

    // ---- operators ----

    fn binary(&mut self, left: &'q Expr, op: &BinaryOperator, right: &'q Expr) -> Result<Ex> {
        use BinaryOperator as B;
        let a = self.expr(left)?;
        let b = self.expr(right)?;
        match op {
            B::And | B::Or => {
                let word = if matches!(op, B::And) { "AND" } else { "OR" };
                Ok(Ex::new(
                    format!("({} {word} {})", self.bool_sql(&a), self.bool_sql(&b)),
                    Ty::Bool,
                ))
            }
            B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq => {
                if self.in_where() {
                    if a.ty.is_time()
                        && is_time_column(left)
                        && matches!(op, B::GtEq | B::Gt | B::Eq)
                    {
                        self.check_retention(right, a.ty)?;
                    }
                    if b.ty.is_time()
                        && is_time_column(right)
                        && matches!(op, B::LtEq | B::Lt | B::Eq)
                    {
                        self.check_retention(left, b.ty)?;
                    }
                }
                let (l, r) = self.coerce_pair(&a, &b)?;
                let sym = match op {
                    B::Eq => "=",
                    B::NotEq => "<>",
                    B::Lt => "<",
                    B::LtEq => "<=",
                    B::Gt => ">",
                    _ => ">=",
                };
                Ok(Ex::new(format!("({l} {sym} {r})"), Ty::Bool))
            }
            B::StringConcat => Ok(Ex::new(
                format!("({} || {})", self.text_sql(&a), self.text_sql(&b)),
                Ty::Text,
            )),
            B::Plus | B::Minus => self.add_sub(a, b, matches!(op, B::Plus)),
            B::Multiply => {
                let ty = match (a.ty, b.ty) {
                    (Ty::Interval, _) | (_, Ty::Interval) => Ty::Interval,
                    (Ty::Float, _) | (_, Ty::Float) => Ty::Float,
                    _ => Ty::Int,
                };
                Ok(Ex::new(
                    format!("({} * {})", self.num_sql(&a), self.num_sql(&b)),
                    ty,
                ))
            }
            B::Divide => {
                let real = if self.pg() {
                    "DOUBLE PRECISION"
                } else {
                    "REAL"
                };
                Ok(Ex::new(
                    format!(
                        "(CAST({} AS {real}) / NULLIF({}, 0))",
                        self.num_sql(&a),
                        self.num_sql(&b)
                    ),
                    Ty::Float,
                ))
            }
            B::Modulo => {
                let ty = if a.ty == Ty::Float || b.ty == Ty::Float {
                    Ty::Float
                } else {
                    Ty::Int
                };
                Ok(Ex::new(
                    format!("({} % NULLIF({}, 0))", self.num_sql(&a), self.num_sql(&b)),
                    ty,
                ))
            }
            _ => Err(QueryError::unsupported(&format!("The operator {op}"))),
        }
    }

    fn add_sub(&mut self, a: Ex, b: Ex, plus: bool) -> Result<Ex> {
        let sign = if plus { "+" } else { "-" };
        let (x, y) = (self.num_sql(&a), self.num_sql(&b));
        let (sql, ty) = match (a.ty, b.ty) {
            (t, Ty::Interval) if t.is_time() => (format!("({x} {sign} {y})"), t),
            (Ty::Interval, t) if t.is_time() && plus => (format!("({x} + {y})"), t),
            (Ty::DateTime, Ty::Int | Ty::Float) => {
                (format!("({x} {sign} {y} * 1000)"), Ty::DateTime)
            }
            (Ty::Date, Ty::Int | Ty::Float) => (format!("({x} {sign} {y} * {DAY_MS})"), Ty::Date),
            (Ty::Int, Ty::DateTime) if plus => (format!("({x} * 1000 + {y})"), Ty::DateTime),
            (Ty::Int, Ty::Date) if plus => (format!("({x} * {DAY_MS} + {y})"), Ty::Date),
            (Ty::TimeMs, Ty::Int | Ty::Float) => (format!("({x} {sign} {y})"), Ty::TimeMs),
            (Ty::DateTime, Ty::DateTime) if !plus => (format!("(({x} - {y}) / 1000)"), Ty::Int),
            (Ty::Date, Ty::Date) if !plus => (format!("(({x} - {y}) / {DAY_MS})"), Ty::Int),
            (s, t) if s.is_time() && t.is_time() => (format!("({x} {sign} {y})"), Ty::Int),
            (Ty::Interval, Ty::Interval) => (format!("({x} {sign} {y})"), Ty::Interval),
            (Ty::Float, _) | (_, Ty::Float) => (format!("({x} {sign} {y})"), Ty::Float),
            (Ty::Text, _) | (_, Ty::Text) => (format!("({x} {sign} {y})"), Ty::Unknown),
            _ => (format!("({x} {sign} {y})"), Ty::Int),
        };
        Ok(Ex::new(sql, ty))
    }

    fn in_expr(&mut self, expr: &'q Expr, target: &'q InTarget, negated: bool) -> Result<Ex> {
        let x = self.expr(expr)?;
        let not = if negated { "NOT " } else { "" };
        match target {
            InTarget::Subquery(q) => {
                let (body, columns) = self.subquery(q)?;
                if columns.len() != 1 {
                    return Err(QueryError::query("An IN subquery must return one column"));
                }
                Ok(Ex::new(format!("({} {not}IN ({body}))", x.sql), Ty::Bool))
            }
            InTarget::List(list) => {
                // `x IN ['a', 'b']` is a list too.
                let elems: Vec<&'q Expr> = match list.as_slice() {
                    [Expr::Array(a)] => a.elem.iter().collect(),
                    _ => list.iter().collect(),
                };
                if elems.is_empty() {
                    return Ok(Ex::new(
                        if negated { "(1 = 1)" } else { "(1 = 0)" },
                        Ty::Bool,
                    ));
                }
                let mut items = Vec::new();
                let mut lhs = x.sql.clone();
                for e in elems {
                    let item = self.expr(e)?;
                    let (l, r) = self.coerce_pair(&x, &item)?;
                    lhs = l;
                    items.push(r);
                }
                Ok(Ex::new(
                    format!("({lhs} {not}IN ({}))", items.join(", ")),
                    Ty::Bool,
                ))
            }
            _ => Err(QueryError::query(
                "Table-backed IN expressions are not supported; use a literal list or a subquery",
            )),
        }
    }

    fn like(
        &mut self,
        expr: &'q Expr,
        pattern: &'q Expr,
        negated: bool,
        ilike: bool,
    ) -> Result<Ex> {
        let x = self.expr(expr)?;
        let p = self.expr(pattern)?;
        let xs = self.text_sql(&x);
        let not = if negated { "NOT " } else { "" };
        let sql = match (self.ctx.dialect, ilike) {
            (Dialect::Postgres, _) => {
                let op = if ilike { "ILIKE" } else { "LIKE" };
                format!("({xs} {not}{op} {})", self.text_sql(&p))
            }
            // SQLite's LIKE ignores ASCII case, as ILIKE does.
            (Dialect::Sqlite, true) => format!("({xs} {not}LIKE {} ESCAPE '\\')", p.sql),
            // ClickHouse's LIKE is case-sensitive: a literal pattern becomes a GLOB.
            (Dialect::Sqlite, false) => match &p.lit {
                Some(Lit::Text(s)) => {
                    let glob = like_to_glob(s);
                    format!("({xs} {not}GLOB {})", self.text_param(&glob))
                }
                _ => format!("({xs} {not}LIKE {} ESCAPE '\\')", p.sql),
            },
        };
        Ok(Ex::new(sql, Ty::Bool))
    }

    fn interval(&mut self, i: &'q Interval) -> Result<Ex> {
        if i.last_field.is_some()
            || i.leading_precision.is_some()
            || i.fractional_seconds_precision.is_some()
        {
            return Err(QueryError::unsupported("This INTERVAL"));
        }
        let unit = i
            .leading_field
            .as_ref()
            .and_then(datetime_field_name)
            .ok_or_else(|| QueryError::unsupported("This INTERVAL unit"))?;
        let ms = interval_unit_ms(unit).unwrap_or(1.0);
        let n = self.expr(&i.value)?;
        self.interval_of(n, ms)
    }

    /// `n` units of `unit_ms` as an Interval (ms).
    pub(crate) fn interval_of(&mut self, n: Ex, unit_ms: f64) -> Result<Ex> {
        let n = match (&n.ty, &n.lit) {
            (Ty::Text, Some(Lit::Text(s))) => parse_number(s.trim())?,
            _ => n,
        };
        let sql = match &n.lit {
            Some(Lit::Int(v)) => {
                let ms = *v as f64 * unit_ms;
                if !ms.is_finite() || ms.abs() > 9.0e18 {
                    return Err(QueryError::query("INTERVAL out of range"));
                }
                (ms.round() as i64).to_string()
            }
            Some(Lit::Float(v)) => ((v * unit_ms).round() as i64).to_string(),
            _ if unit_ms >= 1.0 => format!("({} * {})", self.num_sql(&n), unit_ms as i64),
            _ => format!(
                "CAST({} * {} AS INTEGER)",
                self.num_sql(&n),
                number_sql(unit_ms)?
            ),
        };
        Ok(Ex::new(sql, Ty::Interval))
    }

    /// Step 13 for one lower bound of `time`.
    fn check_retention(&self, bound: &Expr, column_ty: Ty) -> Result<()> {
        if let Some(ms) = retention::const_ms(bound, column_ty, self.ctx.now_ms) {
            retention::check_lower_bound(self.ctx, ms)?;
        }
        Ok(())
    }

    pub(crate) fn array_literal(&mut self, items: &[Ex]) -> Ex {
        let sqls = items
            .iter()
            .map(|i| i.sql.clone())
            .collect::<Vec<_>>()
            .join(", ");
        let sql = match (self.ctx.dialect, items.is_empty()) {
            (Dialect::Sqlite, _) => format!("json_array({sqls})"),
            (Dialect::Postgres, true) => "CAST('[]' AS JSONB)".to_string(),
            (Dialect::Postgres, false) => format!("jsonb_build_array({sqls})"),
        };
        Ex::new(sql, Ty::Array)
    }

    /// CAST(x AS T) and x::T, by the ClickHouse type's meaning.
    fn cast(&mut self, ex: Ex, t: &DataType) -> Result<Ex> {
        let name = t.to_string().to_ascii_lowercase();
        let mut inner = name.as_str();
        for wrapper in ["nullable(", "lowcardinality("] {
            if let Some(rest) = inner.strip_prefix(wrapper) {
                inner = rest.strip_suffix(')').unwrap_or(rest);
            }
        }
        let base = inner.split('(').next().unwrap_or(inner).trim();
        let target = match base {
            "string" | "text" | "varchar" | "char" | "fixedstring" => "tostring",
            "int8" | "int16" | "int32" | "int64" | "int128" | "int256" | "uint8" | "uint16"
            | "uint32" | "uint64" | "uint128" | "uint256" | "int" | "integer" | "bigint"
            | "smallint" | "tinyint" => "toint64",
            "float32" | "float64" | "float" | "double" | "real" | "decimal" | "numeric" => {
                "tofloat64"
            }
            "date" | "date32" => "todate",
            "datetime" | "datetime64" | "timestamp" => "todatetime",
            "bool" | "boolean" => {
                return Ok(Ex::new(
                    if self.pg() {
                        self.bool_sql(&ex)
                    } else {
                        format!("(({}) <> 0)", ex.sql)
                    },
                    Ty::Bool,
                ))
            }
            _ => return Err(QueryError::unsupported(&format!("CAST to {name}"))),
        };
        self.convert(target, ex)
    }
}

/// A ClickHouse LIKE pattern (`%`, `_`, backslash escapes) as a case-sensitive SQLite GLOB.
pub(crate) fn like_to_glob(p: &str) -> String {
    let mut out = String::new();
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '\\' => match chars.next() {
                Some(n) => push_glob_literal(&mut out, n),
                None => push_glob_literal(&mut out, '\\'),
            },
            c => push_glob_literal(&mut out, c),
        }
    }
    out
}

fn push_glob_literal(out: &mut String, c: char) {
    match c {
        '*' | '?' | '[' => {
            out.push('[');
            out.push(c);
            out.push(']');
        }
        c => out.push(c),
    }
}
