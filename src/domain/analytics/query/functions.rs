//! The function allowlist (step 12) and how each allowed function is written per dialect.
//!
//! Times are unix ms integers, so the date functions are integer arithmetic where the unit has a
//! fixed length (minute, hour, day, week) and the store's calendar functions otherwise (month,
//! quarter, year). Arrays are JSON: json_each / json_group_array on SQLite, jsonb on PostgreSQL.
//! SQLite has no math functions here, so floor and ceil are written with CAST. `quantile` on
//! SQLite calls `kw_quantile`, an aggregate the executor registers with
//! `crate::store::sql::register_sqlite_functions`.

use sqlparser::ast::{
    DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments,
    OneOrManyWithParens,
};

use super::catalog::Ty;
use super::emit::{quote, Emitter, Ex, Lit};
use super::expr::{interval_unit_ms, number_sql};
use super::retention::{DAY_MS, HOUR_MS, MINUTE_MS};
use super::{Dialect, QueryError, Result};

/// Step 12's list, lowercased, plus keyward's `toUnixTimestamp`.
const ALLOWED: &[&str] = &[
    // aggregates
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "any",
    "grouparray",
    "groupuniqarray",
    "uniq",
    "uniqexact",
    "quantile",
    "countif",
    "sumif",
    // date and time
    "now",
    "now64",
    "today",
    "todate",
    "todatetime",
    "todatetime64",
    "tostartofday",
    "tostartofweek",
    "tostartofmonth",
    "tostartofquarter",
    "tostartofyear",
    "tostartofhour",
    "tostartofminute",
    "date_trunc",
    "formatdatetime",
    "fromunixtimestamp64milli",
    "tounixtimestamp64milli",
    "tointervalday",
    "tointervalweek",
    "tointervalmonth",
    "tointervalyear",
    "tointervalhour",
    "tointervalminute",
    "tointervalsecond",
    "tointervalmillisecond",
    "tointervalmicrosecond",
    "tointervalnanosecond",
    "tointervalquarter",
    // string
    "lower",
    "upper",
    "substring",
    "concat",
    "length",
    "trim",
    "startswith",
    "endswith",
    // JSON
    "jsonextractstring",
    // math
    "round",
    "floor",
    "ceil",
    "abs",
    // conditional
    "if",
    "case",
    "coalesce",
    // cast
    "tostring",
    "toint32",
    "toint64",
    "tofloat64",
    // array
    "has",
    "hasany",
    "hasall",
    "arrayjoin",
    "arrayfilter",
    // keyward's superset: what Unkey's docs teach
    "tounixtimestamp",
];

pub(crate) fn is_allowed(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ALLOWED.contains(&lower.as_str())
}

/// The arguments of a call, as the emitter accepts them.
struct Args<'q> {
    exprs: Vec<&'q Expr>,
    distinct: bool,
    star: bool,
    params: Vec<&'q Expr>,
}

fn plain_args<'q>(
    args: &'q FunctionArguments,
    out: &mut Vec<&'q Expr>,
    star: &mut bool,
) -> Result<bool> {
    match args {
        FunctionArguments::None => Ok(false),
        FunctionArguments::Subquery(_) => {
            Err(QueryError::unsupported("A subquery as function arguments"))
        }
        FunctionArguments::List(list) => {
            if !list.clauses.is_empty() {
                return Err(QueryError::unsupported("This function argument clause"));
            }
            for arg in &list.args {
                match arg {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => out.push(e),
                    FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => *star = true,
                    _ => return Err(QueryError::unsupported("This function argument")),
                }
            }
            Ok(matches!(
                list.duplicate_treatment,
                Some(DuplicateTreatment::Distinct)
            ))
        }
    }
}

fn args(f: &Function) -> Result<Args<'_>> {
    if f.over.is_some() {
        return Err(QueryError::unsupported("Window functions"));
    }
    if f.filter.is_some() || f.null_treatment.is_some() || !f.within_group.is_empty() {
        return Err(QueryError::unsupported(
            "FILTER, WITHIN GROUP and null treatment",
        ));
    }
    let mut exprs = Vec::new();
    let mut star = false;
    let distinct = plain_args(&f.args, &mut exprs, &mut star)?;
    let mut params = Vec::new();
    let mut pstar = false;
    plain_args(&f.parameters, &mut params, &mut pstar)?;
    Ok(Args {
        exprs,
        distinct,
        star,
        params,
    })
}

fn arity(name: &str, n: usize, min: usize, max: usize) -> Result<()> {
    if n < min || n > max {
        return Err(QueryError::query(format!(
            "Function '{name}' takes {} arguments, not {n}",
            if min == max {
                min.to_string()
            } else {
                format!("{min} to {max}")
            }
        )));
    }
    Ok(())
}

fn text_literal(ex: &Ex) -> Option<&str> {
    match &ex.lit {
        Some(Lit::Text(s)) => Some(s),
        _ => None,
    }
}

fn int_literal(ex: &Ex) -> Option<i64> {
    match &ex.lit {
        Some(Lit::Int(n)) => Some(*n),
        _ => None,
    }
}

impl<'c, 'q> Emitter<'c, 'q> {
    fn int_type(&self) -> &'static str {
        if self.pg() {
            "BIGINT"
        } else {
            "INTEGER"
        }
    }

    fn real_type(&self) -> &'static str {
        if self.pg() {
            "DOUBLE PRECISION"
        } else {
            "REAL"
        }
    }

    pub(crate) fn function(&mut self, f: &'q Function) -> Result<Ex> {
        let full = super::validate::display_name(&f.name);
        let name = full.to_ascii_lowercase();
        if !is_allowed(&name) {
            return Err(QueryError::function(&name));
        }
        let a = args(f)?;
        if !a.params.is_empty() && name != "quantile" {
            return Err(QueryError::unsupported(&format!("Parameters of '{name}'")));
        }
        if a.distinct
            && !matches!(
                name.as_str(),
                "count"
                    | "sum"
                    | "avg"
                    | "min"
                    | "max"
                    | "uniq"
                    | "uniqexact"
                    | "grouparray"
                    | "groupuniqarray"
            )
        {
            return Err(QueryError::unsupported(&format!("DISTINCT in '{name}'")));
        }
        if a.star && name != "count" {
            return Err(QueryError::unsupported(&format!("'*' in '{name}'")));
        }
        let n = a.exprs.len();
        // Lambdas: only arrayFilter takes one, and emits it itself.
        if name == "arrayfilter" {
            arity(&name, n, 2, 2)?;
            return self.array_filter(a.exprs[0], a.exprs[1]);
        }
        let mut x = Vec::with_capacity(n);
        for e in &a.exprs {
            x.push(self.expr(e)?);
        }
        let distinct = if a.distinct { "DISTINCT " } else { "" };
        match name.as_str() {
            // ---- aggregates ----
            "count" => {
                arity(&name, n, 0, 1)?;
                let sql = match x.first() {
                    None => "COUNT(*)".to_string(),
                    Some(e) => format!("COUNT({distinct}{})", e.sql),
                };
                Ok(Ex::new(sql, Ty::Int))
            }
            "uniq" | "uniqexact" => {
                arity(&name, n, 1, 1)?;
                Ok(Ex::new(format!("COUNT(DISTINCT {})", x[0].sql), Ty::Int))
            }
            "countif" => {
                arity(&name, n, 1, 1)?;
                Ok(Ex::new(
                    format!("COUNT(CASE WHEN {} THEN 1 END)", self.bool_sql(&x[0])),
                    Ty::Int,
                ))
            }
            "sumif" => {
                arity(&name, n, 2, 2)?;
                let ty = if x[0].ty == Ty::Float {
                    Ty::Float
                } else {
                    Ty::Int
                };
                Ok(Ex::new(
                    format!(
                        "COALESCE(SUM(CASE WHEN {} THEN {} END), 0)",
                        self.bool_sql(&x[1]),
                        self.num_sql(&x[0])
                    ),
                    ty,
                ))
            }
            "sum" => {
                arity(&name, n, 1, 1)?;
                let ty = if x[0].ty == Ty::Float {
                    Ty::Float
                } else {
                    Ty::Int
                };
                Ok(Ex::new(
                    format!("COALESCE(SUM({distinct}{}), 0)", self.num_sql(&x[0])),
                    ty,
                ))
            }
            "avg" => {
                arity(&name, n, 1, 1)?;
                Ok(Ex::new(
                    format!("AVG({distinct}{})", self.num_sql(&x[0])),
                    Ty::Float,
                ))
            }
            "min" | "max" | "any" => {
                arity(&name, n, 1, 1)?;
                let agg = if name == "max" { "MAX" } else { "MIN" };
                if x[0].ty == Ty::Array {
                    return Err(QueryError::unsupported(&format!("'{name}' of an array")));
                }
                let ty = if x[0].ty == Ty::Bool && self.pg() {
                    Ty::Int
                } else {
                    x[0].ty
                };
                Ok(Ex::new(
                    format!("{agg}({distinct}{})", self.num_sql(&x[0])),
                    ty,
                ))
            }
            "grouparray" | "groupuniqarray" => {
                arity(&name, n, 1, 1)?;
                let d = if name == "groupuniqarray" || a.distinct {
                    "DISTINCT "
                } else {
                    ""
                };
                let sql = match self.ctx.dialect {
                    Dialect::Sqlite => {
                        let v = if x[0].ty == Ty::Array {
                            format!("json({})", x[0].sql)
                        } else {
                            x[0].sql.clone()
                        };
                        format!("json_group_array({d}{v})")
                    }
                    Dialect::Postgres => {
                        format!("COALESCE(jsonb_agg({d}{}), CAST('[]' AS JSONB))", x[0].sql)
                    }
                };
                Ok(Ex::new(sql, Ty::Array))
            }
            "quantile" => {
                arity(&name, n, 1, 1)?;
                let level = match a.params.as_slice() {
                    [] => 0.5,
                    [p] => match self.expr(p)?.lit {
                        Some(Lit::Float(f)) => f,
                        Some(Lit::Int(i)) => i as f64,
                        _ => return Err(QueryError::query("quantile's level must be a number")),
                    },
                    _ => return Err(QueryError::query("quantile takes one level")),
                };
                if !(0.0..=1.0).contains(&level) {
                    return Err(QueryError::query(
                        "quantile's level must be between 0 and 1",
                    ));
                }
                let level = number_sql(level)?;
                let v = self.num_sql(&x[0]);
                let sql = match self.ctx.dialect {
                    Dialect::Sqlite => format!("kw_quantile({v}, {level})"),
                    Dialect::Postgres => format!(
                        "percentile_cont({level}) WITHIN GROUP (ORDER BY CAST({v} AS DOUBLE PRECISION))"
                    ),
                };
                Ok(Ex::new(sql, Ty::Float))
            }

            // ---- date and time ----
            "now" | "now64" => {
                arity(&name, n, 0, 2)?;
                Ok(Ex::new(self.ctx.now_ms.to_string(), Ty::DateTime))
            }
            "today" => {
                arity(&name, n, 0, 0)?;
                Ok(Ex::new(
                    super::retention::start_of_day(self.ctx.now_ms).to_string(),
                    Ty::Date,
                ))
            }
            "todate" => {
                arity(&name, n, 1, 2)?;
                let ms = self.time_int(&x[0])?;
                Ok(Ex::new(self.trunc_fixed(&ms, DAY_MS), Ty::Date))
            }
            "todatetime" => {
                arity(&name, n, 1, 2)?;
                let ms = self.time_int(&x[0])?;
                Ok(Ex::new(self.trunc_fixed(&ms, 1000), Ty::DateTime))
            }
            "todatetime64" => {
                arity(&name, n, 1, 3)?;
                Ok(Ex::new(self.time_int(&x[0])?, Ty::DateTime))
            }
            "tostartofminute" | "tostartofhour" | "tostartofday" => {
                arity(&name, n, 1, 2)?;
                let unit = match name.as_str() {
                    "tostartofminute" => MINUTE_MS,
                    "tostartofhour" => HOUR_MS,
                    _ => DAY_MS,
                };
                let ms = self.time_int(&x[0])?;
                Ok(Ex::new(self.trunc_fixed(&ms, unit), Ty::DateTime))
            }
            "tostartofweek" => {
                arity(&name, n, 1, 3)?;
                let monday = match x.get(1) {
                    None => false,
                    Some(m) => match int_literal(m) {
                        Some(mode) => mode % 2 == 1,
                        None => {
                            return Err(QueryError::query("toStartOfWeek's mode must be a number"))
                        }
                    },
                };
                let ms = self.time_int(&x[0])?;
                Ok(Ex::new(self.trunc_week(&ms, monday), Ty::Date))
            }
            "tostartofmonth" | "tostartofquarter" | "tostartofyear" => {
                arity(&name, n, 1, 2)?;
                let unit = &name["tostartof".len()..];
                let ms = self.time_int(&x[0])?;
                Ok(Ex::new(self.trunc_calendar(&ms, unit), Ty::Date))
            }
            "date_trunc" => {
                arity(&name, n, 2, 3)?;
                let Some(unit) = text_literal(&x[0]).map(str::to_ascii_lowercase) else {
                    return Err(QueryError::query(
                        "date_trunc's unit must be a string literal",
                    ));
                };
                let ms = self.time_int(&x[1])?;
                let sql = match unit.as_str() {
                    "second" => self.trunc_fixed(&ms, 1000),
                    "minute" => self.trunc_fixed(&ms, MINUTE_MS),
                    "hour" => self.trunc_fixed(&ms, HOUR_MS),
                    "day" => self.trunc_fixed(&ms, DAY_MS),
                    "week" => self.trunc_week(&ms, true),
                    "month" | "quarter" | "year" => self.trunc_calendar(&ms, &unit),
                    _ => {
                        return Err(QueryError::query(format!(
                            "date_trunc: unknown unit '{unit}'"
                        )))
                    }
                };
                Ok(Ex::new(sql, Ty::DateTime))
            }
            "formatdatetime" => {
                arity(&name, n, 2, 3)?;
                let Some(format) = text_literal(&x[1]).map(str::to_string) else {
                    return Err(QueryError::query(
                        "formatDateTime's format must be a string literal",
                    ));
                };
                let ms = self.time_int(&x[0])?;
                let sql = match self.ctx.dialect {
                    Dialect::Sqlite => {
                        let f = self.text_param(&strftime_format(&format)?);
                        format!("strftime({f}, {ms} / 1000, 'unixepoch')")
                    }
                    Dialect::Postgres => {
                        let f = self.text_param(&to_char_format(&format)?);
                        format!("to_char(to_timestamp({ms} / 1000.0) AT TIME ZONE 'UTC', {f})")
                    }
                };
                Ok(Ex::new(sql, Ty::Text))
            }
            "fromunixtimestamp64milli" => {
                arity(&name, n, 1, 2)?;
                Ok(Ex::new(self.num_sql(&x[0]), Ty::DateTime))
            }
            "tounixtimestamp64milli" => {
                arity(&name, n, 1, 1)?;
                Ok(Ex::new(self.time_int(&x[0])?, Ty::Int))
            }
            "tounixtimestamp" => {
                arity(&name, n, 1, 2)?;
                let ms = self.time_int(&x[0])?;
                Ok(Ex::new(self.div_floor(&ms, 1000), Ty::Int))
            }
            i if i.starts_with("tointerval") => {
                arity(&name, n, 1, 1)?;
                let unit = interval_unit_ms(&i["tointerval".len()..])
                    .ok_or_else(|| QueryError::function(&name))?;
                self.interval_of(x[0].clone(), unit)
            }

            // ---- strings ----
            "lower" | "upper" => {
                arity(&name, n, 1, 1)?;
                Ok(Ex::new(
                    format!("{}({})", name.to_uppercase(), self.text_sql(&x[0])),
                    Ty::Text,
                ))
            }
            "substring" => {
                arity(&name, n, 2, 3)?;
                let s = x[0].clone();
                self.substring(s, x.get(1).cloned(), x.get(2).cloned())
            }
            "concat" => {
                if n == 0 {
                    return Err(QueryError::query("concat needs arguments"));
                }
                let parts = x.iter().map(|e| self.text_sql(e)).collect::<Vec<_>>();
                Ok(Ex::new(format!("({})", parts.join(" || ")), Ty::Text))
            }
            "length" => {
                arity(&name, n, 1, 1)?;
                let sql = match (self.ctx.dialect, x[0].ty) {
                    (Dialect::Sqlite, Ty::Array) => format!("json_array_length({})", x[0].sql),
                    (Dialect::Postgres, Ty::Array) => format!("jsonb_array_length({})", x[0].sql),
                    (Dialect::Sqlite, _) => format!("length(CAST({} AS BLOB))", x[0].sql),
                    (Dialect::Postgres, _) => format!("octet_length({})", self.text_sql(&x[0])),
                };
                Ok(Ex::new(sql, Ty::Int))
            }
            "trim" => {
                arity(&name, n, 1, 1)?;
                Ok(Ex::new(format!("TRIM({})", self.text_sql(&x[0])), Ty::Text))
            }
            "startswith" => {
                arity(&name, n, 2, 2)?;
                let (s, p) = (self.text_sql(&x[0]), self.text_sql(&x[1]));
                Ok(Ex::new(
                    format!("(substr({s}, 1, length({p})) = {p})"),
                    Ty::Bool,
                ))
            }
            "endswith" => {
                arity(&name, n, 2, 2)?;
                let (s, p) = (self.text_sql(&x[0]), self.text_sql(&x[1]));
                let sql = match self.ctx.dialect {
                    Dialect::Sqlite => {
                        format!("(length({p}) = 0 OR substr({s}, -length({p})) = {p})")
                    }
                    Dialect::Postgres => format!("(right({s}, length({p})) = {p})"),
                };
                Ok(Ex::new(sql, Ty::Bool))
            }
            "jsonextractstring" => {
                arity(&name, n, 2, 16)?;
                let mut keys = Vec::new();
                for k in &x[1..] {
                    match text_literal(k) {
                        Some(s) if !s.contains('"') => keys.push(s.to_string()),
                        _ => {
                            return Err(QueryError::unsupported(
                                "A JSONExtractString key that is not a plain string literal",
                            ))
                        }
                    }
                }
                let j = self.text_sql(&x[0]);
                let sql = match self.ctx.dialect {
                    Dialect::Sqlite => {
                        let path = format!(
                            "${}",
                            keys.iter().map(|k| format!(".\"{k}\"")).collect::<String>()
                        );
                        let p = self.text_param(&path);
                        format!(
                            "(CASE WHEN json_valid({j}) THEN (CASE WHEN json_type({j}, {p}) = 'text' THEN json_extract({j}, {p}) ELSE '' END) ELSE '' END)"
                        )
                    }
                    Dialect::Postgres => {
                        let ks = keys
                            .iter()
                            .map(|k| self.text_param(k))
                            .collect::<Vec<_>>()
                            .join(", ");
                        format!(
                            "COALESCE(CASE WHEN jsonb_typeof(CAST({j} AS JSONB) #> ARRAY[{ks}]) = 'string' THEN CAST({j} AS JSONB) #>> ARRAY[{ks}] END, '')"
                        )
                    }
                };
                Ok(Ex::new(sql, Ty::Text))
            }

            // ---- math ----
            "round" => {
                arity(&name, n, 1, 2)?;
                let digits = match x.get(1) {
                    None => 0,
                    Some(d) => int_literal(d)
                        .filter(|d| (-20..=20).contains(d))
                        .ok_or_else(|| {
                            QueryError::query("round's precision must be a small integer")
                        })?,
                };
                let v = self.num_sql(&x[0]);
                let sql = match self.ctx.dialect {
                    Dialect::Sqlite => format!("ROUND({v}, {digits})"),
                    Dialect::Postgres => {
                        format!("CAST(ROUND(CAST({v} AS NUMERIC), {digits}) AS DOUBLE PRECISION)")
                    }
                };
                let ty = if x[0].ty == Ty::Int && digits >= 0 {
                    Ty::Int
                } else {
                    Ty::Float
                };
                let sql = if ty == Ty::Int {
                    format!("CAST({sql} AS {})", self.int_type())
                } else {
                    sql
                };
                Ok(Ex::new(sql, ty))
            }
            "floor" | "ceil" => {
                arity(&name, n, 1, 1)?;
                self.floor_ceil(x[0].clone(), name == "floor")
            }
            "abs" => {
                arity(&name, n, 1, 1)?;
                let ty = if x[0].ty == Ty::Float {
                    Ty::Float
                } else {
                    Ty::Int
                };
                Ok(Ex::new(format!("ABS({})", self.num_sql(&x[0])), ty))
            }

            // ---- conditional ----
            "if" => {
                arity(&name, n, 3, 3)?;
                let ty = if x[1].ty == Ty::Null {
                    x[2].ty
                } else {
                    x[1].ty
                };
                let (a, b) = self.coerce_branches(&x[1], &x[2])?;
                Ok(Ex::new(
                    format!("(CASE WHEN {} THEN {a} ELSE {b} END)", self.bool_sql(&x[0])),
                    ty,
                ))
            }
            "coalesce" => {
                if n == 0 {
                    return Err(QueryError::query("coalesce needs arguments"));
                }
                let ty = x
                    .iter()
                    .map(|e| e.ty)
                    .find(|t| *t != Ty::Null)
                    .unwrap_or(Ty::Null);
                let parts = x.iter().map(|e| e.sql.clone()).collect::<Vec<_>>();
                Ok(Ex::new(format!("COALESCE({})", parts.join(", ")), ty))
            }
            "case" => Err(QueryError::unsupported(
                "case() as a function (use CASE WHEN)",
            )),

            // ---- casts ----
            "tostring" | "toint32" | "toint64" | "tofloat64" => {
                arity(&name, n, 1, 1)?;
                let target = if name == "toint32" {
                    "toint64"
                } else {
                    name.as_str()
                };
                self.convert(target, x[0].clone())
            }

            // ---- arrays ----
            "has" => {
                arity(&name, n, 2, 2)?;
                let l = quote(&self.fresh("l"));
                let sql = match self.ctx.dialect {
                    Dialect::Sqlite => format!(
                        "EXISTS (SELECT 1 FROM json_each({}) AS {l} WHERE {l}.\"value\" = {})",
                        x[0].sql, x[1].sql
                    ),
                    Dialect::Postgres => format!(
                        "EXISTS (SELECT 1 FROM jsonb_array_elements({}) AS {l}(\"v\") WHERE {l}.\"v\" = to_jsonb({}))",
                        x[0].sql, x[1].sql
                    ),
                };
                Ok(Ex::new(format!("({sql})"), Ty::Bool))
            }
            "hasany" | "hasall" => {
                arity(&name, n, 2, 2)?;
                let (l1, l2) = (quote(&self.fresh("l")), quote(&self.fresh("l")));
                let (each, col) = match self.ctx.dialect {
                    Dialect::Sqlite => ("json_each", "\"value\""),
                    Dialect::Postgres => ("jsonb_array_elements", "\"v\""),
                };
                let def = |l: &str| match self.ctx.dialect {
                    Dialect::Sqlite => l.to_string(),
                    Dialect::Postgres => format!("{l}(\"v\")"),
                };
                let (d1, d2) = (def(&l1), def(&l2));
                let (a, b) = (&x[0].sql, &x[1].sql);
                let sql = if name == "hasany" {
                    format!(
                        "EXISTS (SELECT 1 FROM {each}({a}) AS {d1}, {each}({b}) AS {d2} WHERE {l1}.{col} = {l2}.{col})"
                    )
                } else {
                    format!(
                        "NOT EXISTS (SELECT 1 FROM {each}({b}) AS {d2} WHERE NOT EXISTS (SELECT 1 FROM {each}({a}) AS {d1} WHERE {l1}.{col} = {l2}.{col}))"
                    )
                };
                Ok(Ex::new(format!("({sql})"), Ty::Bool))
            }
            "arrayjoin" => {
                arity(&name, n, 1, 1)?;
                if x[0].ty != Ty::Array {
                    return Err(QueryError::query("arrayJoin expects an array"));
                }
                self.array_join(&x[0])
            }
            _ => Err(QueryError::unsupported(&format!("The function '{name}'"))),
        }
    }

    /// Both branches of an if(): a time and a string literal become times.
    fn coerce_branches(&self, a: &Ex, b: &Ex) -> Result<(String, String)> {
        if (a.ty.is_time() && b.ty == Ty::Text) || (b.ty.is_time() && a.ty == Ty::Text) {
            return self.coerce_pair(a, b);
        }
        Ok((a.sql.clone(), b.sql.clone()))
    }

    /// A time argument as an integer of ms.
    fn time_int(&self, ex: &Ex) -> Result<String> {
        let sql = self.time_arg(ex)?;
        Ok(
            if ex.ty == Ty::Float || (ex.ty == Ty::Text && ex.lit.is_none()) {
                format!("CAST({sql} AS {})", self.int_type())
            } else {
                sql
            },
        )
    }

    /// Floor division of a non-negative-or-not integer by a positive constant.
    fn div_floor(&self, ms: &str, unit: i64) -> String {
        // Integer division truncates toward zero in both stores; times before 1970 are not
        // stored, so truncation is the floor here.
        format!("({ms} / {unit})")
    }

    fn trunc_fixed(&self, ms: &str, unit: i64) -> String {
        format!("({ms} / {unit} * {unit})")
    }

    fn trunc_week(&self, ms: &str, monday: bool) -> String {
        // 1970-01-01 was a Thursday: days + 3 (Monday) or + 4 (Sunday) mod 7 is the weekday.
        let shift = if monday { 3 } else { 4 };
        format!("(({ms} / {DAY_MS} - ({ms} / {DAY_MS} + {shift}) % 7) * {DAY_MS})")
    }

    fn trunc_calendar(&self, ms: &str, unit: &str) -> String {
        match self.ctx.dialect {
            Dialect::Sqlite => {
                let secs = format!("{ms} / 1000, 'unixepoch'");
                let start = match unit {
                    "month" => format!("strftime('%s', {secs}, 'start of month')"),
                    "year" => format!("strftime('%s', {secs}, 'start of year')"),
                    _ => format!(
                        "strftime('%s', {secs}, 'start of month', '-' || ((CAST(strftime('%m', {secs}) AS INTEGER) - 1) % 3) || ' months')"
                    ),
                };
                format!("(CAST({start} AS INTEGER) * 1000)")
            }
            Dialect::Postgres => format!(
                "(CAST(EXTRACT(EPOCH FROM date_trunc('{unit}', to_timestamp({ms} / 1000.0) AT TIME ZONE 'UTC')) AS BIGINT) * 1000)"
            ),
        }
    }

    pub(crate) fn floor_ceil(&mut self, ex: Ex, floor: bool) -> Result<Ex> {
        if matches!(ex.ty, Ty::Int | Ty::Bool) || ex.ty.is_time() {
            return Ok(Ex::new(
                self.num_sql(&ex),
                if ex.ty == Ty::Bool { Ty::Int } else { ex.ty },
            ));
        }
        let v = self.num_sql(&ex);
        let sql = match self.ctx.dialect {
            Dialect::Postgres => format!("{}({v})", if floor { "FLOOR" } else { "CEIL" }),
            // No math functions in the bundled SQLite: truncate, then step toward -inf / +inf.
            Dialect::Sqlite => {
                if floor {
                    format!("(CAST({v} AS INTEGER) - ({v} < CAST({v} AS INTEGER)))")
                } else {
                    format!("(CAST({v} AS INTEGER) + ({v} > CAST({v} AS INTEGER)))")
                }
            }
        };
        Ok(Ex::new(sql, Ty::Float))
    }

    pub(crate) fn substring(&mut self, s: Ex, from: Option<Ex>, len: Option<Ex>) -> Result<Ex> {
        let text = self.text_sql(&s);
        let int = |e: &Ex, me: &Self| match me.ctx.dialect {
            Dialect::Sqlite => me.num_sql(e),
            Dialect::Postgres => format!("CAST({} AS INTEGER)", me.num_sql(e)),
        };
        let from = from.map(|f| int(&f, self)).unwrap_or_else(|| "1".into());
        let sql = match len {
            Some(l) => format!("substr({text}, {from}, {})", int(&l, self)),
            None => format!("substr({text}, {from})"),
        };
        Ok(Ex::new(sql, Ty::Text))
    }

    /// toString / toInt64 / toFloat64 / toDate / toDateTime by meaning.
    pub(crate) fn convert(&mut self, target: &str, ex: Ex) -> Result<Ex> {
        let pg = self.pg();
        match target {
            "tostring" => {
                let sql = match ex.ty {
                    Ty::Text => ex.sql.clone(),
                    Ty::DateTime | Ty::Date => {
                        let (sf, pf) = if ex.ty == Ty::Date {
                            ("%Y-%m-%d", "YYYY-MM-DD")
                        } else {
                            ("%Y-%m-%d %H:%M:%S", "YYYY-MM-DD HH24:MI:SS")
                        };
                        if pg {
                            format!(
                                "to_char(to_timestamp({} / 1000.0) AT TIME ZONE 'UTC', '{pf}')",
                                ex.sql
                            )
                        } else {
                            format!("strftime('{sf}', {} / 1000, 'unixepoch')", ex.sql)
                        }
                    }
                    Ty::Bool => format!(
                        "(CASE WHEN {} THEN 'true' ELSE 'false' END)",
                        self.bool_sql(&ex)
                    ),
                    _ => format!("CAST({} AS TEXT)", ex.sql),
                };
                Ok(Ex::new(sql, Ty::Text))
            }
            "toint64" => {
                let sql = match ex.ty {
                    Ty::DateTime => format!("({} / 1000)", ex.sql),
                    Ty::Date => format!("({} / {DAY_MS})", ex.sql),
                    Ty::Int | Ty::TimeMs | Ty::Interval | Ty::Null => ex.sql.clone(),
                    Ty::Bool => self.num_sql(&ex),
                    Ty::Float if pg => format!("CAST(TRUNC({}) AS BIGINT)", ex.sql),
                    _ => format!("CAST({} AS {})", ex.sql, self.int_type()),
                };
                Ok(Ex::new(sql, Ty::Int))
            }
            "tofloat64" => {
                let sql = match ex.ty {
                    Ty::DateTime => format!("({} / 1000.0)", ex.sql),
                    Ty::Date => format!("({} / {DAY_MS}.0)", ex.sql),
                    _ => format!("CAST({} AS {})", self.num_sql(&ex), self.real_type()),
                };
                Ok(Ex::new(sql, Ty::Float))
            }
            "todate" => {
                let ms = self.time_int(&ex)?;
                Ok(Ex::new(self.trunc_fixed(&ms, DAY_MS), Ty::Date))
            }
            "todatetime" => {
                let ms = self.time_int(&ex)?;
                Ok(Ex::new(self.trunc_fixed(&ms, 1000), Ty::DateTime))
            }
            _ => Err(QueryError::unsupported("This conversion")),
        }
    }

    /// arrayFilter(x -> cond, arr): the elements of `arr` for which `cond` holds, in order.
    fn array_filter(&mut self, lambda: &'q Expr, arr: &'q Expr) -> Result<Ex> {
        let Expr::Lambda(l) = lambda else {
            return Err(QueryError::query(
                "arrayFilter's first argument must be a lambda (x -> ...)",
            ));
        };
        let param = match &l.params {
            OneOrManyWithParens::One(p) => p.name.value.clone(),
            OneOrManyWithParens::Many(ps) if ps.len() == 1 => ps[0].name.value.clone(),
            _ => return Err(QueryError::unsupported("A lambda of several parameters")),
        };
        let array = self.expr(arr)?;
        let alias = quote(&self.fresh("l"));
        let element = match self.ctx.dialect {
            Dialect::Sqlite => format!("{alias}.\"value\""),
            Dialect::Postgres => format!("({alias}.\"v\" #>> '{{}}')"),
        };
        self.lambdas.push((param, Ex::new(element, Ty::Text)));
        let body = self.expr(&l.body);
        self.lambdas.pop();
        let cond = self.bool_sql(&body?);
        let sql = match self.ctx.dialect {
            Dialect::Sqlite => format!(
                "(SELECT json_group_array({alias}.\"value\") FROM json_each({}) AS {alias} WHERE {cond})",
                array.sql
            ),
            Dialect::Postgres => format!(
                "(SELECT COALESCE(jsonb_agg({alias}.\"v\" ORDER BY {alias}.\"o\"), CAST('[]' AS JSONB)) FROM jsonb_array_elements({}) WITH ORDINALITY AS {alias}(\"v\", \"o\") WHERE {cond})",
                array.sql
            ),
        };
        Ok(Ex::new(sql, Ty::Array))
    }
}

/// A ClickHouse formatDateTime format as SQLite strftime's.
fn strftime_format(f: &str) -> Result<String> {
    translate_format(
        f,
        |spec| {
            Some(match spec {
                'Y' => "%Y",
                'm' => "%m",
                'd' => "%d",
                'H' => "%H",
                'i' => "%M",
                'S' => "%S",
                's' => "%S",
                'F' => "%Y-%m-%d",
                'T' => "%H:%M:%S",
                'R' => "%H:%M",
                'j' => "%j",
                'u' => "%u",
                'w' => "%w",
                '%' => "%%",
                _ => return None,
            })
        },
        |lit, out| {
            for c in lit.chars() {
                if c == '%' {
                    out.push_str("%%");
                } else {
                    out.push(c);
                }
            }
        },
    )
}

/// A ClickHouse formatDateTime format as PostgreSQL to_char's.
fn to_char_format(f: &str) -> Result<String> {
    translate_format(
        f,
        |spec| {
            Some(match spec {
                'Y' => "YYYY",
                'm' => "MM",
                'd' => "DD",
                'H' => "HH24",
                'i' => "MI",
                'S' | 's' => "SS",
                'F' => "YYYY-MM-DD",
                'T' => "HH24:MI:SS",
                'R' => "HH24:MI",
                'j' => "DDD",
                'u' => "ID",
                'w' => "D",
                '%' => "\"%\"",
                _ => return None,
            })
        },
        |lit, out| {
            out.push('"');
            for c in lit.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        },
    )
}

fn translate_format(
    f: &str,
    spec: impl Fn(char) -> Option<&'static str>,
    literal: impl Fn(&str, &mut String),
) -> Result<String> {
    let mut out = String::new();
    let mut lit = String::new();
    let mut chars = f.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            lit.push(c);
            continue;
        }
        let Some(s) = chars.next() else {
            return Err(QueryError::query(
                "formatDateTime: the format ends with '%'",
            ));
        };
        let Some(t) = spec(s) else {
            return Err(QueryError::unsupported(&format!("formatDateTime's '%{s}'")));
        };
        if !lit.is_empty() {
            literal(&lit, &mut out);
            lit.clear();
        }
        out.push_str(t);
    }
    if !lit.is_empty() {
        literal(&lit, &mut out);
    }
    Ok(out)
}
