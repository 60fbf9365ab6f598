//! The whitelist emitter: writes the store's SQL from the parsed query, node by node. Queries,
//! SELECTs and FROM clauses are here; expressions in `expr.rs`, function calls in
//! `functions.rs`.
//!
//! Every name the emitted SQL reads is one of: our CTEs (named after the public tables), the
//! user's CTEs renamed `u_<lowercased name>`, and generated aliases (`t1`, `j1`, `l1`, ...) of
//! the sources of each SELECT. Column references are always qualified by a generated alias.

use std::collections::HashMap;

use sqlparser::ast::{
    Distinct, Expr, GroupByExpr, Ident, JoinConstraint, JoinOperator, LimitClause, ObjectName,
    OrderBy, OrderByExpr, OrderByKind, OrderBySort, Query, Select, SelectFlavor, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, SetOperator, SetQuantifier, TableAlias, TableFactor,
    UnaryOperator, Value, WildcardAdditionalOptions,
};

use super::catalog::{self, Table, Ty};
use super::validate::{display_name, single_name, CteRegistry};
use super::walk::join_constraint;
use super::{retention, Compiled, Dialect, OutputColumn, Param, QueryContext, QueryError, Result};

/// An emitted expression: its SQL, its type, and the literal it came from (so comparisons with
/// times can read date strings at compile time).
#[derive(Debug, Clone)]
pub(crate) struct Ex {
    pub sql: String,
    pub ty: Ty,
    pub lit: Option<Lit>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Text(String),
    Int(i64),
    Float(f64),
}

impl Ex {
    pub(crate) fn new(sql: impl Into<String>, ty: Ty) -> Self {
        Self {
            sql: sql.into(),
            ty,
            lit: None,
        }
    }
}

pub(crate) type Columns = Vec<(String, Ty)>;

/// One source of a SELECT's FROM, as its expressions see it.
#[derive(Debug)]
pub(crate) struct Source {
    /// The names the user may qualify its columns with (its alias, else its table name).
    names: Vec<String>,
    /// The generated alias in the emitted SQL.
    sql: String,
    columns: Columns,
}

/// The state of one SELECT being emitted.
#[derive(Debug, Default)]
pub(crate) struct Scope<'q> {
    sources: Vec<Source>,
    /// The projection's aliases and their expressions (ClickHouse lets any clause use them).
    aliases: Vec<(String, &'q Expr)>,
    alias_sql: HashMap<usize, Ex>,
    expanding: Vec<usize>,
    /// Whether the expression being emitted is in this SELECT's WHERE (for step 13).
    pub in_where: bool,
    /// arrayJoin()s: (argument SQL, generated alias).
    array_joins: Vec<(String, String)>,
}

struct CteDef {
    lower: String,
    columns: Columns,
}

pub(crate) struct Emitter<'c, 'q> {
    pub ctx: &'c QueryContext<'c>,
    params: Vec<String>,
    interned: HashMap<String, usize>,
    used: Vec<&'static Table>,
    pub scopes: Vec<Scope<'q>>,
    ctes: Vec<Vec<CteDef>>,
    registry: CteRegistry,
    /// Lambda parameters in scope: (name, the SQL of the element).
    pub lambdas: Vec<(String, Ex)>,
    next_alias: usize,
    /// The types of the top-level output columns, once the first top-level SELECT has set them.
    top_types: Option<Vec<Ty>>,
}

/// Quotes an identifier for both dialects.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(crate) fn emit(top: &Query, ctx: &QueryContext<'_>, registry: CteRegistry) -> Result<Compiled> {
    // Shorten the context's lifetime to one the emitter can hold.
    let ctx: &QueryContext<'_> = ctx;
    let mut e = Emitter {
        ctx,
        params: Vec::new(),
        interned: HashMap::new(),
        used: Vec::new(),
        scopes: Vec::new(),
        ctes: Vec::new(),
        registry,
        lambdas: Vec::new(),
        next_alias: 0,
        top_types: None,
    };
    let out = e.query(top, true)?;
    let mut with = e.our_ctes();
    with.extend(out.ctes);
    let sql = format!("WITH {} {}", with.join(", "), out.body);
    let columns = out
        .columns
        .iter()
        .map(|(name, ty)| OutputColumn {
            name: name.clone(),
            kind: ty.kind(),
        })
        .collect();
    let (sql, params) = compact_params(&sql, &e.params, ctx.dialect);
    Ok(Compiled {
        sql,
        params,
        columns,
    })
}

/// Renumbers the placeholders in order of first appearance and drops unused parameters. The SQL
/// here is our own: user text appears only inside double-quoted identifiers.
fn compact_params(sql: &str, params: &[String], dialect: Dialect) -> (String, Vec<Param>) {
    let marker = match dialect {
        Dialect::Sqlite => '?',
        Dialect::Postgres => '$',
    };
    let mut out = String::with_capacity(sql.len());
    let mut map: HashMap<usize, usize> = HashMap::new();
    let mut new_params = Vec::new();
    let mut chars = sql.char_indices().peekable();
    let mut quote: Option<char> = None;
    while let Some((_, c)) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        if c == '"' || c == '\'' {
            quote = Some(c);
            out.push(c);
            continue;
        }
        if c == marker {
            let mut digits = String::new();
            while let Some(&(_, d)) = chars.peek() {
                if d.is_ascii_digit() {
                    digits.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            if let Some(old) = digits
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1 && *n <= params.len())
            {
                let new = *map.entry(old).or_insert_with(|| {
                    new_params.push(Param::Text(params[old - 1].clone()));
                    new_params.len()
                });
                out.push(marker);
                out.push_str(&new.to_string());
            } else {
                out.push(c);
                out.push_str(&digits);
            }
            continue;
        }
        out.push(c);
    }
    (out, new_params)
}

/// The emitted form of a query: its user CTEs (kept apart at the top level, to follow ours) and
/// the rest.
struct QueryOut {
    ctes: Vec<String>,
    body: String,
    columns: Columns,
}

impl<'c, 'q> Emitter<'c, 'q> {
    /// A text parameter's placeholder, interned so equal strings share one parameter (and equal
    /// expressions stay textually equal, which PostgreSQL's GROUP BY matching needs).
    pub(crate) fn text_param(&mut self, s: &str) -> String {
        let n = match self.interned.get(s) {
            Some(n) => *n,
            None => {
                self.params.push(s.to_string());
                let n = self.params.len();
                self.interned.insert(s.to_string(), n);
                n
            }
        };
        match self.ctx.dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("CAST(${n} AS TEXT)"),
        }
    }

    pub(crate) fn fresh(&mut self, prefix: &str) -> String {
        self.next_alias += 1;
        format!("{prefix}{}", self.next_alias)
    }

    pub(crate) fn pg(&self) -> bool {
        self.ctx.dialect == Dialect::Postgres
    }

    fn use_table(&mut self, t: &'static Table) {
        if !self.used.iter().any(|u| std::ptr::eq(*u, t)) {
            self.used.push(t);
        }
    }

    fn our_ctes(&mut self) -> Vec<String> {
        let retention = retention::retention_start(self.ctx);
        let used = self.used.clone();
        let mut out = Vec::new();
        for t in used {
            let cols = t
                .columns
                .iter()
                .map(|c| {
                    format!(
                        "{} AS {}",
                        Table::column_sql(c, self.ctx.dialect),
                        quote(c.name)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let mut filter = format!("workspace_id = {}", self.text_param(self.ctx.workspace_id));
            if let Some(scope) = self.ctx.scope {
                if scope.is_empty() {
                    filter.push_str(" AND 1 = 0");
                } else {
                    let ids = scope
                        .iter()
                        .map(|id| self.text_param(id))
                        .collect::<Vec<_>>()
                        .join(", ");
                    filter.push_str(&format!(" AND {} IN ({ids})", t.scope_column));
                }
            }
            if let Some(start) = retention {
                // On SQLite the unary plus keeps this bound out of the index range, so a query
                // with a tighter bound of its own scans only its window (SQLite uses one lower
                // bound per column, and may otherwise pick this one). PostgreSQL keeps the
                // tighter of the two by itself.
                let column = match self.ctx.dialect {
                    Dialect::Sqlite => "+time_m",
                    Dialect::Postgres => "time_m",
                };
                filter.push_str(&format!(" AND {column} >= {start}"));
            }
            out.push(format!(
                "{} AS (SELECT {cols} FROM {} WHERE {filter})",
                quote(t.alias),
                t.physical
            ));
        }
        out
    }

    // ---- queries ----

    /// A query below the top: a CTE, a derived table or a subquery.
    pub(crate) fn nested_query(&mut self, q: &'q Query) -> Result<(String, Columns)> {
        let out = self.query(q, false)?;
        Ok((out.body, out.columns))
    }

    fn query(&mut self, q: &'q Query, top: bool) -> Result<QueryOut> {
        if q.fetch.is_some() || !q.locks.is_empty() || q.for_clause.is_some() {
            return Err(QueryError::unsupported("FETCH, FOR and locking clauses"));
        }
        if q.format_clause.is_some() {
            return Err(QueryError::unsupported("A FORMAT clause"));
        }
        if !q.pipe_operators.is_empty() {
            return Err(QueryError::unsupported("A pipe operator"));
        }
        let mut ctes = Vec::new();
        self.ctes.push(Vec::new());
        let result = self.query_inner(q, top, &mut ctes);
        self.ctes.pop();
        let (body, columns) = result?;
        if top {
            Ok(QueryOut {
                ctes,
                body,
                columns,
            })
        } else if ctes.is_empty() {
            Ok(QueryOut {
                ctes: Vec::new(),
                body,
                columns,
            })
        } else {
            Ok(QueryOut {
                ctes: Vec::new(),
                body: format!("WITH {} {body}", ctes.join(", ")),
                columns,
            })
        }
    }

    fn query_inner(
        &mut self,
        q: &'q Query,
        top: bool,
        ctes: &mut Vec<String>,
    ) -> Result<(String, Columns)> {
        if let Some(with) = &q.with {
            if with.recursive {
                return Err(QueryError::unsupported("WITH RECURSIVE"));
            }
            for cte in &with.cte_tables {
                if cte.from.is_some() {
                    return Err(QueryError::unsupported("CTE ... FROM"));
                }
                let inner = self.query(&cte.query, false)?;
                let columns = rename_columns(inner.columns, &cte.alias)?;
                let lower = cte.alias.name.value.to_lowercase();
                ctes.push(format!(
                    "{}{} AS ({})",
                    quote(&format!("u_{lower}")),
                    column_list(&cte.alias, &columns),
                    inner.body
                ));
                if let Some(frame) = self.ctes.last_mut() {
                    frame.push(CteDef { lower, columns });
                }
            }
        }
        let (mut sql, columns) = match q.body.as_ref() {
            SetExpr::Select(s) => self.select(s, q.order_by.as_ref(), top)?,
            body => {
                let (sql, columns) = self.set_expr(body, top)?;
                let order = match &q.order_by {
                    Some(o) => self.set_order_by(o, &columns)?,
                    None => String::new(),
                };
                (format!("{sql}{order}"), columns)
            }
        };
        sql.push_str(&self.limit(q.limit_clause.as_ref())?);
        Ok((sql, columns))
    }

    /// Step 11: every query level gets a LIMIT no larger than the cap.
    fn limit(&mut self, clause: Option<&'q LimitClause>) -> Result<String> {
        let cap = self.ctx.max_rows.min(i64::MAX as u64);
        let (limit, offset) = match clause {
            None => (None, None),
            Some(LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                if !limit_by.is_empty() {
                    return Err(QueryError::unsupported("LIMIT BY"));
                }
                (limit.as_ref(), offset.as_ref().map(|o| &o.value))
            }
            Some(LimitClause::OffsetCommaLimit { offset, limit }) => (Some(limit), Some(offset)),
        };
        let n = match limit.and_then(literal_u64) {
            Some(Some(n)) if n <= cap => n,
            _ => cap,
        };
        let mut sql = format!(" LIMIT {n}");
        if let Some(offset) = offset {
            match literal_u64(offset) {
                Some(Some(m)) => sql.push_str(&format!(" OFFSET {}", m.min(i64::MAX as u64))),
                _ => return Err(QueryError::query("OFFSET must be a non-negative integer")),
            }
        }
        Ok(sql)
    }

    fn set_expr(&mut self, body: &'q SetExpr, top: bool) -> Result<(String, Columns)> {
        match body {
            SetExpr::Select(s) => self.select(s, None, top),
            SetExpr::Query(q) => {
                // SQLite takes no parenthesized operands: read the query as a derived table.
                let inner = self.query(q, false)?;
                if top && self.top_types.is_none() {
                    self.top_types = Some(inner.columns.iter().map(|(_, t)| *t).collect());
                }
                let alias = self.fresh("t");
                let items = inner
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, (name, ty))| {
                        let col = Ex::new(format!("{}.{}", quote(&alias), quote(name)), *ty);
                        let sql = if top { self.top_cast(i, col) } else { col.sql };
                        format!("{sql} AS {}", quote(name))
                    })
                    .collect::<Vec<_>>();
                if items.is_empty() {
                    return Err(QueryError::query("A subquery has no columns"));
                }
                Ok((
                    format!(
                        "SELECT {} FROM ({}) AS {}",
                        items.join(", "),
                        inner.body,
                        quote(&alias)
                    ),
                    inner.columns,
                ))
            }
            SetExpr::SetOperation {
                left,
                op,
                set_quantifier,
                right,
            } => {
                let (l, lcols) = self.set_expr(left, top)?;
                let (r, rcols) = self.set_expr(right, top)?;
                if lcols.len() != rcols.len() {
                    return Err(QueryError::query(
                        "Each side of a set operation must have the same number of columns",
                    ));
                }
                let op = match op {
                    SetOperator::Union => "UNION",
                    SetOperator::Except | SetOperator::Minus => "EXCEPT",
                    SetOperator::Intersect => "INTERSECT",
                };
                let q = match set_quantifier {
                    SetQuantifier::All => " ALL",
                    SetQuantifier::Distinct | SetQuantifier::None => "",
                    _ => return Err(QueryError::unsupported("BY NAME set operations")),
                };
                if !q.is_empty() && op != "UNION" && !self.pg() {
                    return Err(QueryError::unsupported(&format!("{op} ALL")));
                }
                let columns = lcols
                    .into_iter()
                    .zip(rcols)
                    .map(|((n, lt), (_, rt))| (n, if lt == Ty::Null { rt } else { lt }))
                    .collect();
                Ok((format!("{l} {op}{q} {r}"), columns))
            }
            _ => Err(QueryError::unsupported("This kind of query")),
        }
    }

    /// ORDER BY of a set operation: output columns by name or position.
    fn set_order_by(&mut self, order: &'q OrderBy, columns: &Columns) -> Result<String> {
        let OrderByKind::Expressions(items) = &order.kind else {
            return Err(QueryError::unsupported("ORDER BY ALL"));
        };
        if order.interpolate.is_some() {
            return Err(QueryError::unsupported("INTERPOLATE"));
        }
        let mut out = Vec::new();
        for item in items {
            let key = match &item.expr {
                Expr::Identifier(i) if columns.iter().any(|(n, _)| *n == i.value) => {
                    quote(&i.value)
                }
                Expr::Value(v) => match &v.value {
                    Value::Number(n, _) => match n.parse::<usize>() {
                        Ok(p) if p >= 1 && p <= columns.len() => p.to_string(),
                        _ => return Err(QueryError::query("ORDER BY position out of range")),
                    },
                    _ => return Err(QueryError::unsupported("This ORDER BY of a set operation")),
                },
                _ => {
                    return Err(QueryError::query(
                        "ORDER BY of a set operation must name an output column",
                    ))
                }
            };
            out.push(format!("{key}{}", order_options(item)?));
        }
        Ok(format!(" ORDER BY {}", out.join(", ")))
    }

    // ---- SELECT ----

    fn select(
        &mut self,
        s: &'q Select,
        order_by: Option<&'q OrderBy>,
        top: bool,
    ) -> Result<(String, Columns)> {
        reject_select_extras(s)?;
        self.scopes.push(Scope::default());
        let result = self.select_inner(s, order_by, top);
        self.scopes.pop();
        result
    }

    fn scope(&mut self) -> &mut Scope<'q> {
        // A scope is always pushed while a SELECT is emitted.
        if self.scopes.is_empty() {
            self.scopes.push(Scope::default());
        }
        let last = self.scopes.len() - 1;
        &mut self.scopes[last]
    }

    fn select_inner(
        &mut self,
        s: &'q Select,
        order_by: Option<&'q OrderBy>,
        top: bool,
    ) -> Result<(String, Columns)> {
        // FROM.
        let mut from = Vec::new();
        for twj in &s.from {
            let mut item = self.table_factor(&twj.relation)?;
            for join in &twj.joins {
                // GLOBAL only matters to distributed ClickHouse: ignored.
                let kind = match &join.join_operator {
                    JoinOperator::Join(_) | JoinOperator::Inner(_) => "JOIN",
                    JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => "LEFT JOIN",
                    JoinOperator::Right(_) | JoinOperator::RightOuter(_) => "RIGHT JOIN",
                    JoinOperator::FullOuter(_) => "FULL JOIN",
                    JoinOperator::CrossJoin(_) => "CROSS JOIN",
                    JoinOperator::ArrayJoin
                    | JoinOperator::LeftArrayJoin
                    | JoinOperator::InnerArrayJoin => {
                        return Err(QueryError::unsupported("ARRAY JOIN (use arrayJoin())"))
                    }
                    _ => return Err(QueryError::unsupported("This kind of JOIN")),
                };
                let relation = self.table_factor(&join.relation)?;
                let constraint = match join_constraint(&join.join_operator) {
                    Some(JoinConstraint::On(e)) => {
                        let on = self.expr(e)?;
                        format!(" ON {}", self.bool_sql(&on))
                    }
                    Some(JoinConstraint::Using(cols)) => {
                        let names = cols
                            .iter()
                            .map(|c| {
                                single_name(c)
                                    .map(quote)
                                    .ok_or_else(|| QueryError::query("Invalid USING column"))
                            })
                            .collect::<Result<Vec<_>>>()?;
                        format!(" USING ({})", names.join(", "))
                    }
                    Some(JoinConstraint::None) | None => {
                        if kind == "CROSS JOIN" {
                            String::new()
                        } else {
                            return Err(QueryError::query("A JOIN needs ON or USING"));
                        }
                    }
                    Some(JoinConstraint::Natural) => {
                        return Err(QueryError::unsupported("NATURAL JOIN"))
                    }
                    Some(JoinConstraint::UsingAlias(..)) => {
                        return Err(QueryError::unsupported("USING ... AS"))
                    }
                };
                item.push_str(&format!(" {kind} {relation}{constraint}"));
            }
            from.push(item);
        }

        // The projection: wildcards expanded, aliases registered for every clause.
        let mut items: Vec<(String, Option<&'q Expr>, Option<Ex>)> = Vec::new();
        for item in &s.projection {
            match item {
                SelectItem::UnnamedExpr(e) => items.push((output_name(e), Some(e), None)),
                SelectItem::ExprWithAlias { expr, alias } => {
                    self.scope().aliases.push((alias.value.clone(), expr));
                    items.push((alias.value.clone(), Some(expr), None));
                }
                SelectItem::ExprWithAliases { .. } => {
                    return Err(QueryError::unsupported("Multiple aliases"))
                }
                SelectItem::Wildcard(opts) => {
                    for (name, ex) in self.wildcard(None, opts)? {
                        items.push((name, None, Some(ex)));
                    }
                }
                SelectItem::QualifiedWildcard(kind, opts) => {
                    let SelectItemQualifiedWildcardKind::ObjectName(name) = kind else {
                        return Err(QueryError::unsupported("This wildcard"));
                    };
                    for (n, ex) in self.wildcard(Some(name), opts)? {
                        items.push((n, None, Some(ex)));
                    }
                }
            }
        }
        let mut projection = Vec::new();
        let mut columns = Vec::new();
        for (i, (name, expr, ready)) in items.into_iter().enumerate() {
            let ex = match (ready, expr) {
                (Some(ex), _) => ex,
                (None, Some(e)) => match self.alias_index(&name, e) {
                    Some(idx) => self.alias_value(idx)?,
                    None => self.expr(e)?,
                },
                (None, None) => return Err(QueryError::query("Empty projection item")),
            };
            let sql = if top {
                self.top_cast(i, ex.clone())
            } else {
                ex.sql.clone()
            };
            projection.push(format!("{sql} AS {}", quote(&name)));
            columns.push((name, ex.ty));
        }
        if projection.is_empty() {
            return Err(QueryError::query(
                "A SELECT must project at least one column",
            ));
        }
        if top && self.top_types.is_none() {
            self.top_types = Some(columns.iter().map(|(_, t)| *t).collect());
        }

        let mut sql = String::from("SELECT ");
        match &s.distinct {
            None | Some(Distinct::All) => {}
            Some(Distinct::Distinct) => sql.push_str("DISTINCT "),
            Some(Distinct::On(_)) => return Err(QueryError::unsupported("DISTINCT ON")),
        }
        sql.push_str(&projection.join(", "));

        let mut clauses = String::new();
        if let Some(w) = &s.selection {
            self.scope().in_where = true;
            let cond = self.expr(w);
            self.scope().in_where = false;
            let cond = cond?;
            clauses.push_str(&format!(" WHERE {}", self.bool_sql(&cond)));
        }
        match &s.group_by {
            GroupByExpr::All(_) => return Err(QueryError::unsupported("GROUP BY ALL")),
            GroupByExpr::Expressions(exprs, modifiers) => {
                if !modifiers.is_empty() {
                    return Err(QueryError::unsupported(
                        "GROUP BY modifiers (ROLLUP, CUBE, TOTALS)",
                    ));
                }
                if !exprs.is_empty() {
                    let keys = exprs
                        .iter()
                        .map(|e| self.group_key(e))
                        .collect::<Result<Vec<_>>>()?;
                    clauses.push_str(&format!(" GROUP BY {}", keys.join(", ")));
                }
            }
        }
        if let Some(h) = &s.having {
            let cond = self.expr(h)?;
            clauses.push_str(&format!(" HAVING {}", self.bool_sql(&cond)));
        }
        if let Some(order) = order_by {
            clauses.push_str(&self.select_order_by(order, &columns)?);
        }

        // FROM, with the arrayJoin()s found in any clause as lateral sources at its end.
        let joins = std::mem::take(&mut self.scope().array_joins);
        for (arg, alias) in joins {
            from.push(match self.ctx.dialect {
                Dialect::Sqlite => format!("json_each({arg}) AS {}", quote(&alias)),
                Dialect::Postgres => format!(
                    "LATERAL jsonb_array_elements_text({arg}) AS {}(\"value\")",
                    quote(&alias)
                ),
            });
        }
        if !from.is_empty() {
            sql.push_str(&format!(" FROM {}", from.join(", ")));
        }
        sql.push_str(&clauses);
        Ok((sql, columns))
    }

    /// On PostgreSQL, a top-level output column gets a definite type a generic reader can decode.
    fn top_cast(&mut self, i: usize, ex: Ex) -> String {
        if !self.pg() {
            return ex.sql;
        }
        let ty = self
            .top_types
            .as_ref()
            .and_then(|t| t.get(i).copied())
            .unwrap_or(ex.ty);
        match ty {
            Ty::Int | Ty::TimeMs | Ty::DateTime | Ty::Date | Ty::Interval => {
                if ex.ty == Ty::Bool {
                    format!("CAST(CAST({} AS INTEGER) AS BIGINT)", ex.sql)
                } else {
                    format!("CAST({} AS BIGINT)", ex.sql)
                }
            }
            Ty::Float => format!("CAST({} AS DOUBLE PRECISION)", self.num_sql(&ex)),
            Ty::Bool => format!("CAST({} AS BOOLEAN)", self.bool_sql(&ex)),
            Ty::Text | Ty::Array | Ty::Null | Ty::Unknown => format!("CAST({} AS TEXT)", ex.sql),
        }
    }

    fn group_key(&mut self, e: &'q Expr) -> Result<String> {
        if let Expr::Value(v) = e {
            if let Value::Number(n, _) = &v.value {
                if n.parse::<usize>().is_ok() {
                    // Positional, as ClickHouse reads it by default.
                    return Ok(n.clone());
                }
            }
        }
        Ok(self.expr(e)?.sql)
    }

    fn select_order_by(&mut self, order: &'q OrderBy, columns: &Columns) -> Result<String> {
        let OrderByKind::Expressions(items) = &order.kind else {
            return Err(QueryError::unsupported("ORDER BY ALL"));
        };
        if order.interpolate.is_some() {
            return Err(QueryError::unsupported("INTERPOLATE"));
        }
        let mut out = Vec::new();
        for item in items {
            let key = match &item.expr {
                Expr::Value(v) if position(&v.value).is_some() => match position(&v.value) {
                    Some(p) if p >= 1 && p <= columns.len() => p.to_string(),
                    _ => return Err(QueryError::query("ORDER BY position out of range")),
                },
                // An output alias: by position, which also works with DISTINCT and the casts.
                Expr::Identifier(i) if self.scope().aliases.iter().any(|(a, _)| *a == i.value) => {
                    match columns.iter().position(|(n, _)| *n == i.value) {
                        Some(p) => (p + 1).to_string(),
                        None => self.expr(&item.expr)?.sql,
                    }
                }
                e => self.expr(e)?.sql,
            };
            out.push(format!("{key}{}", order_options(item)?));
        }
        Ok(format!(" ORDER BY {}", out.join(", ")))
    }

    fn wildcard(
        &mut self,
        qualifier: Option<&ObjectName>,
        opts: &WildcardAdditionalOptions,
    ) -> Result<Vec<(String, Ex)>> {
        if opts.opt_ilike.is_some()
            || opts.opt_exclude.is_some()
            || opts.opt_replace.is_some()
            || opts.opt_rename.is_some()
            || opts.opt_alias.is_some()
        {
            return Err(QueryError::unsupported("This wildcard modifier"));
        }
        let except: Vec<String> = match &opts.opt_except {
            Some(e) => std::iter::once(&e.first_element)
                .chain(e.additional_elements.iter())
                .map(|i| i.value.clone())
                .collect(),
            None => Vec::new(),
        };
        let wanted = match qualifier {
            Some(name) => Some(
                single_name(name)
                    .ok_or_else(|| QueryError::query("Invalid wildcard qualifier"))?
                    .to_string(),
            ),
            None => None,
        };
        let scope = self.scope();
        let mut out = Vec::new();
        let mut matched = false;
        for source in &scope.sources {
            if let Some(w) = &wanted {
                if !source.names.iter().any(|n| n == w) {
                    continue;
                }
            }
            matched = true;
            for (name, ty) in &source.columns {
                if except.contains(name) {
                    continue;
                }
                out.push((
                    name.clone(),
                    Ex::new(format!("{}.{}", quote(&source.sql), quote(name)), *ty),
                ));
            }
        }
        if !matched {
            return Err(match wanted {
                Some(w) => QueryError::query(format!("Unknown table '{w}' in wildcard")),
                None => QueryError::query("SELECT * needs a FROM clause"),
            });
        }
        Ok(out)
    }

    // ---- FROM ----

    fn table_factor(&mut self, t: &'q TableFactor) -> Result<String> {
        match t {
            TableFactor::Table {
                name,
                alias,
                args,
                with_hints,
                version,
                with_ordinality,
                partitions,
                json_path,
                sample,
                index_directives,
                inheritance,
            } => {
                if args.is_some() {
                    return Err(QueryError::new(
                        super::QueryErrorCode::InvalidFunction,
                        format!(
                            "Table function '{}' is not allowed for security reasons",
                            display_name(name)
                        ),
                    ));
                }
                if !with_hints.is_empty()
                    || version.is_some()
                    || *with_ordinality
                    || !partitions.is_empty()
                    || json_path.is_some()
                    || sample.is_some()
                    || !index_directives.is_empty()
                    || inheritance.is_some()
                {
                    return Err(QueryError::unsupported("This table modifier"));
                }
                let Some(table_name) = single_name(name) else {
                    return Err(QueryError::table(&display_name(name)));
                };
                let (target, columns) = if let Some(cte) = self.find_cte(table_name) {
                    cte
                } else if let Some(t) = catalog::public_table(self.ctx.family, table_name) {
                    self.use_table(t);
                    (
                        quote(t.alias),
                        t.columns
                            .iter()
                            .map(|c| (c.name.to_string(), c.ty))
                            .collect(),
                    )
                } else {
                    return Err(QueryError::table(&display_name(name)));
                };
                let columns = match alias {
                    Some(a) => rename_columns(columns, a)?,
                    None => columns,
                };
                let names = match alias {
                    Some(a) => vec![a.name.value.clone(), table_name.to_string()],
                    None => vec![table_name.to_string()],
                };
                Ok(self.add_source(target, names, columns))
            }
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
                sample,
            } => {
                if *lateral || sample.is_some() {
                    return Err(QueryError::unsupported("LATERAL and SAMPLE"));
                }
                let inner = self.query(subquery, false)?;
                let (columns, names) = match alias {
                    Some(a) => (
                        rename_columns(inner.columns, a)?,
                        vec![a.name.value.clone()],
                    ),
                    None => (inner.columns, Vec::new()),
                };
                // SQLite takes no column list on a derived table: rename through a CTE.
                let body = match alias {
                    Some(a) if !a.columns.is_empty() => {
                        let w = quote(&self.fresh("w"));
                        format!(
                            "WITH {w}{} AS ({}) SELECT * FROM {w}",
                            column_list(a, &columns),
                            inner.body
                        )
                    }
                    _ => inner.body,
                };
                Ok(self.add_source(format!("({body})"), names, columns))
            }
            TableFactor::NestedJoin { .. } => Err(QueryError::unsupported("A parenthesized JOIN")),
            TableFactor::Function { name, .. } => Err(QueryError::new(
                super::QueryErrorCode::InvalidFunction,
                format!(
                    "Table function '{}' is not allowed for security reasons",
                    display_name(name)
                ),
            )),
            _ => Err(QueryError::unsupported("This kind of FROM item")),
        }
    }

    fn add_source(&mut self, target: String, names: Vec<String>, columns: Columns) -> String {
        let alias = self.fresh("t");
        let sql = format!("{target} AS {}", quote(&alias));
        self.scope().sources.push(Source {
            names,
            sql: alias,
            columns,
        });
        sql
    }

    fn find_cte(&self, name: &str) -> Option<(String, Columns)> {
        let lower = name.to_lowercase();
        if !self.registry.contains(&lower) {
            return None;
        }
        self.ctes
            .iter()
            .rev()
            .flat_map(|frame| frame.iter().rev())
            .find(|c| c.lower == lower)
            .map(|c| (quote(&format!("u_{lower}")), c.columns.clone()))
    }

    // ---- names ----

    fn alias_index(&self, name: &str, e: &Expr) -> Option<usize> {
        let scope = self.scopes.last()?;
        scope
            .aliases
            .iter()
            .position(|(a, x)| a == name && std::ptr::eq(*x, e))
    }

    /// The emitted SQL of projection alias `idx`, emitted once and reused.
    fn alias_value(&mut self, idx: usize) -> Result<Ex> {
        if let Some(ex) = self.scope().alias_sql.get(&idx) {
            return Ok(ex.clone());
        }
        let Some((_, e)) = self.scope().aliases.get(idx).cloned() else {
            return Err(QueryError::query("Unknown alias"));
        };
        self.scope().expanding.push(idx);
        let ex = self.expr(e);
        self.scope().expanding.pop();
        let mut ex = ex?;
        if !ex.sql.starts_with('(') || !ex.sql.ends_with(')') {
            ex.sql = format!("({})", ex.sql);
        }
        self.scope().alias_sql.insert(idx, ex.clone());
        Ok(ex)
    }

    /// Resolves an unqualified name: lambda parameters, then the SELECT's aliases (ClickHouse
    /// prefers them to columns), then the columns of its sources, then of enclosing SELECTs.
    pub(crate) fn resolve(&mut self, name: &str) -> Result<Ex> {
        if let Some((_, ex)) = self.lambdas.iter().rev().find(|(n, _)| n == name) {
            return Ok(ex.clone());
        }
        if let Some(scope) = self.scopes.last() {
            if let Some(idx) = scope
                .aliases
                .iter()
                .position(|(a, _)| a == name)
                .filter(|i| !scope.expanding.contains(i))
            {
                return self.alias_value(idx);
            }
        }
        for scope in self.scopes.iter().rev() {
            for source in &scope.sources {
                if let Some((n, ty)) = source.columns.iter().find(|(n, _)| n == name) {
                    return Ok(Ex::new(format!("{}.{}", quote(&source.sql), quote(n)), *ty));
                }
            }
        }
        Err(QueryError::query(format!(
            "Unknown identifier in analytics query: '{name}'"
        )))
    }

    pub(crate) fn resolve_qualified(&mut self, parts: &[Ident]) -> Result<Ex> {
        let [qualifier, column] = parts else {
            let name = parts
                .iter()
                .map(|p| p.value.as_str())
                .collect::<Vec<_>>()
                .join(".");
            return Err(QueryError::query(format!(
                "Unknown identifier in analytics query: '{name}'"
            )));
        };
        for scope in self.scopes.iter().rev() {
            for source in &scope.sources {
                if source.names.contains(&qualifier.value) {
                    if let Some((n, ty)) = source.columns.iter().find(|(n, _)| *n == column.value) {
                        return Ok(Ex::new(format!("{}.{}", quote(&source.sql), quote(n)), *ty));
                    }
                }
            }
        }
        Err(QueryError::query(format!(
            "Unknown identifier in analytics query: '{}.{}'",
            qualifier.value, column.value
        )))
    }

    /// Registers `arrayJoin(<arg>)` on the current SELECT and answers its element column.
    pub(crate) fn array_join(&mut self, arg: &Ex) -> Result<Ex> {
        if self.scopes.is_empty() {
            return Err(QueryError::query("arrayJoin needs a FROM clause"));
        }
        let existing = self
            .scope()
            .array_joins
            .iter()
            .find(|(a, _)| *a == arg.sql)
            .map(|(_, n)| n.clone());
        let alias = match existing {
            Some(a) => a,
            None => {
                let a = self.fresh("j");
                self.scope().array_joins.push((arg.sql.clone(), a.clone()));
                a
            }
        };
        Ok(Ex::new(format!("{}.\"value\"", quote(&alias)), Ty::Text))
    }

    pub(crate) fn in_where(&self) -> bool {
        self.scopes.last().is_some_and(|s| s.in_where) && self.lambdas.is_empty()
    }
}

/// A positional ORDER BY / GROUP BY key.
fn position(v: &Value) -> Option<usize> {
    match v {
        Value::Number(n, _) => n.parse().ok(),
        _ => None,
    }
}

fn order_options(item: &OrderByExpr) -> Result<String> {
    if item.with_fill.is_some() {
        return Err(QueryError::unsupported("WITH FILL"));
    }
    let mut s = String::new();
    match item.options.sort {
        Some(OrderBySort::Asc) => s.push_str(" ASC"),
        Some(OrderBySort::Desc) => s.push_str(" DESC"),
        Some(_) => return Err(QueryError::unsupported("ORDER BY ... USING")),
        None => {}
    }
    match item.options.nulls_first {
        Some(true) => s.push_str(" NULLS FIRST"),
        Some(false) => s.push_str(" NULLS LAST"),
        None => {}
    }
    Ok(s)
}

/// `("a", "b")` when the alias renames the columns, else nothing.
fn column_list(alias: &TableAlias, columns: &Columns) -> String {
    if alias.columns.is_empty() {
        return String::new();
    }
    let names = columns.iter().map(|(n, _)| quote(n)).collect::<Vec<_>>();
    format!("({})", names.join(", "))
}

fn rename_columns(columns: Columns, alias: &TableAlias) -> Result<Columns> {
    if alias.columns.is_empty() {
        return Ok(columns);
    }
    if alias.columns.len() != columns.len() {
        return Err(QueryError::query(format!(
            "'{}' names {} columns but its query has {}",
            alias.name.value,
            alias.columns.len(),
            columns.len()
        )));
    }
    Ok(alias
        .columns
        .iter()
        .zip(columns)
        .map(|(c, (_, ty))| (c.name.value.clone(), ty))
        .collect())
}

fn reject_select_extras(s: &Select) -> Result<()> {
    if s.top.is_some() || s.into.is_some() {
        return Err(QueryError::unsupported("TOP and INTO"));
    }
    if s.prewhere.is_some() {
        return Err(QueryError::unsupported("PREWHERE (use WHERE)"));
    }
    if s.qualify.is_some() || !s.named_window.is_empty() {
        return Err(QueryError::unsupported("Window functions"));
    }
    if !s.lateral_views.is_empty()
        || !s.connect_by.is_empty()
        || !s.cluster_by.is_empty()
        || !s.distribute_by.is_empty()
        || !s.sort_by.is_empty()
        || s.value_table_mode.is_some()
        || s.exclude.is_some()
        || s.select_modifiers.is_some()
        || !s.optimizer_hints.is_empty()
        || s.flavor != SelectFlavor::Standard
    {
        return Err(QueryError::unsupported("This SELECT clause"));
    }
    Ok(())
}

/// A non-negative integer literal: Some(Some(n)); another literal or expression: Some(None)
/// (clamped to the cap for LIMIT); None never.
fn literal_u64(e: &Expr) -> Option<Option<u64>> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(n.replace('_', "").parse::<u64>().ok()),
            _ => Some(None),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            ..
        } => Some(None),
        _ => Some(None),
    }
}

/// The name of an unaliased output column: the column's name for a column, the expression's text
/// otherwise (as ClickHouse names it, roughly).
fn output_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => i.value.clone(),
        Expr::CompoundIdentifier(parts) => {
            parts.last().map(|p| p.value.clone()).unwrap_or_default()
        }
        other => other.to_string(),
    }
}
