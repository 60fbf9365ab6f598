//! Step 13 and the calendar arithmetic it needs: the start of the queryable range, date literals
//! parsed to unix ms, and the retention error.

use super::{QueryContext, QueryError, QueryErrorCode};

pub(crate) const MINUTE_MS: i64 = 60_000;
pub(crate) const HOUR_MS: i64 = 3_600_000;
pub(crate) const DAY_MS: i64 = 86_400_000;

/// The first ms a query may read, if the context has a retention: the start of the UTC day
/// `retention_days` before now.
pub(crate) fn retention_start(ctx: &QueryContext<'_>) -> Option<i64> {
    (ctx.retention_days > 0).then(|| {
        let then = ctx
            .now_ms
            .saturating_sub(i64::from(ctx.retention_days).saturating_mul(DAY_MS));
        start_of_day(then)
    })
}

/// The retention error for a lower bound at `bound_ms`, if it is older than the start.
pub(crate) fn check_lower_bound(ctx: &QueryContext<'_>, bound_ms: i64) -> Result<(), QueryError> {
    match retention_start(ctx) {
        Some(start) if bound_ms < start => Err(QueryError::new(
            QueryErrorCode::RangeExceedsRetention,
            format!(
                "Cannot query data older than {} days. Your query attempts to access data from {}, but only data from {} onwards is available.",
                ctx.retention_days,
                format_date(bound_ms),
                format_date(start)
            ),
        )),
        _ => Ok(()),
    }
}

pub(crate) fn start_of_day(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a number of days since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub(crate) fn format_date(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The start of the month (months = 1), quarter (3) or year (12) holding `ms`.
pub(crate) fn start_of_months(ms: i64, months: i64) -> i64 {
    let (y, m, _) = civil_from_days(ms.div_euclid(DAY_MS));
    let m = (m - 1) / months * months + 1;
    days_from_civil(y, m, 1) * DAY_MS
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Parses 'YYYY-MM-DD', 'YYYY-MM-DD hh:mm:ss[.fff]' and RFC 3339 ('YYYY-MM-DDThh:mm:ss[.fff]'
/// with 'Z' or '±hh:mm') to unix ms, UTC unless an offset is given.
pub(crate) fn parse_time_literal(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(y, m, d) * DAY_MS;
    let rest = &b[10..];
    if rest.is_empty() {
        return Some(ms);
    }
    if rest.len() < 9 || !(rest[0] == b' ' || rest[0] == b'T' || rest[0] == b't') {
        return None;
    }
    if rest[3] != b':' || rest[6] != b':' {
        return None;
    }
    let (h, mi, sec) = (
        digits(&rest[1..3])?,
        digits(&rest[4..6])?,
        digits(&rest[7..9])?,
    );
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    ms += h * HOUR_MS + mi * MINUTE_MS + sec * 1000;
    let mut rest = &rest[9..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let mut millis = 0;
        for (i, c) in frac[..n].iter().take(3).enumerate() {
            millis += i64::from(c - b'0') * [100, 10, 1][i];
        }
        ms += millis;
        rest = &frac[n..];
    }
    match rest {
        [] | [b'Z'] | [b'z'] => Some(ms),
        [sign @ (b'+' | b'-'), oh1, oh2, b':', om1, om2] => {
            let offset = digits(&[*oh1, *oh2])? * HOUR_MS + digits(&[*om1, *om2])? * MINUTE_MS;
            Some(if *sign == b'+' {
                ms - offset
            } else {
                ms + offset
            })
        }
        _ => None,
    }
}

/// Truncates unix ms to the start of a unit: second, minute, hour, day, week (Monday), sunday
/// (a week from Sunday), month, quarter, year.
pub(crate) fn trunc(unit: &str, ms: i64) -> Option<i64> {
    let floor = |n: i64| ms.div_euclid(n) * n;
    Some(match unit {
        "second" => floor(1000),
        "minute" => floor(MINUTE_MS),
        "hour" => floor(HOUR_MS),
        "day" => floor(DAY_MS),
        "week" | "sunday" => {
            let days = ms.div_euclid(DAY_MS);
            // 1970-01-01 was a Thursday.
            let back = if unit == "week" {
                (days + 3).rem_euclid(7)
            } else {
                (days + 4).rem_euclid(7)
            };
            (days - back) * DAY_MS
        }
        "month" => start_of_months(ms, 1),
        "quarter" => start_of_months(ms, 3),
        "year" => start_of_months(ms, 12),
        _ => return None,
    })
}

/// A constant of the retention check.
#[derive(Debug, Clone, PartialEq)]
enum C {
    /// Unix ms.
    Time(i64),
    Num(f64),
    Text(String),
    /// ms.
    Interval(f64),
}

fn c_ms(c: C) -> Option<i64> {
    match c {
        C::Time(ms) => Some(ms),
        // A number given for a DateTime is unix seconds.
        C::Num(n) => Some((n * 1000.0) as i64),
        C::Text(s) => parse_time_literal(&s),
        C::Interval(_) => None,
    }
}

/// The value of a constant lower bound, as unix ms compared with a column of type `column`; None
/// when the expression is not a constant the check can read (then the CTE's own retention filter
/// is what holds).
pub(crate) fn const_ms(
    e: &sqlparser::ast::Expr,
    column: super::catalog::Ty,
    now: i64,
) -> Option<i64> {
    use super::catalog::Ty;
    match eval(e, now, 0)? {
        C::Time(ms) => Some(ms),
        C::Num(n) => Some(match column {
            Ty::DateTime => (n * 1000.0) as i64,
            Ty::Date => (n * DAY_MS as f64) as i64,
            _ => n as i64,
        }),
        C::Text(s) => parse_time_literal(&s),
        C::Interval(_) => None,
    }
}

fn eval(e: &sqlparser::ast::Expr, now: i64, depth: usize) -> Option<C> {
    use sqlparser::ast::{
        BinaryOperator as B, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, UnaryOperator,
        Value,
    };
    if depth > 32 {
        return None;
    }
    let ev = |x: &Expr| eval(x, now, depth + 1);
    match e {
        Expr::Nested(x) => ev(x),
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.replace('_', "").parse().ok().map(C::Num),
            Value::SingleQuotedString(s) => Some(C::Text(s.clone())),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match ev(expr)? {
            C::Num(n) => Some(C::Num(-n)),
            _ => None,
        },
        Expr::Interval(i) => {
            let unit = super::expr::datetime_field_name(i.leading_field.as_ref()?)?;
            let n = match ev(&i.value)? {
                C::Num(n) => n,
                C::Text(s) => s.trim().parse().ok()?,
                _ => return None,
            };
            Some(C::Interval(n * super::expr::interval_unit_ms(unit)?))
        }
        Expr::BinaryOp { left, op, right } => {
            let (a, b) = (ev(left)?, ev(right)?);
            match (op, a, b) {
                (B::Plus, C::Time(t), C::Interval(i)) | (B::Plus, C::Interval(i), C::Time(t)) => {
                    Some(C::Time(t + i as i64))
                }
                (B::Minus, C::Time(t), C::Interval(i)) => Some(C::Time(t - i as i64)),
                (B::Plus, C::Text(s), C::Interval(i)) => {
                    Some(C::Time(parse_time_literal(&s)? + i as i64))
                }
                (B::Minus, C::Text(s), C::Interval(i)) => {
                    Some(C::Time(parse_time_literal(&s)? - i as i64))
                }
                (B::Plus, C::Time(t), C::Num(n)) => Some(C::Time(t + (n * 1000.0) as i64)),
                (B::Minus, C::Time(t), C::Num(n)) => Some(C::Time(t - (n * 1000.0) as i64)),
                (B::Plus, C::Num(x), C::Num(y)) => Some(C::Num(x + y)),
                (B::Minus, C::Num(x), C::Num(y)) => Some(C::Num(x - y)),
                (B::Multiply, C::Num(x), C::Num(y)) => Some(C::Num(x * y)),
                (B::Divide, C::Num(x), C::Num(y)) if y != 0.0 => Some(C::Num(x / y)),
                (B::Multiply, C::Interval(i), C::Num(n))
                | (B::Multiply, C::Num(n), C::Interval(i)) => Some(C::Interval(i * n)),
                _ => None,
            }
        }
        Expr::Function(f) => {
            let name = super::validate::display_name(&f.name).to_ascii_lowercase();
            let args: Vec<&Expr> = match &f.args {
                FunctionArguments::List(l) => l
                    .args
                    .iter()
                    .filter_map(|a| match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                        _ => None,
                    })
                    .collect(),
                FunctionArguments::None => Vec::new(),
                FunctionArguments::Subquery(_) => return None,
            };
            let first_ms = || args.first().and_then(|a| ev(a)).and_then(c_ms);
            match name.as_str() {
                "now" | "now64" => Some(C::Time(now)),
                "today" => Some(C::Time(start_of_day(now))),
                "tostartofminute" => Some(C::Time(trunc("minute", first_ms()?)?)),
                "tostartofhour" => Some(C::Time(trunc("hour", first_ms()?)?)),
                "tostartofday" | "todate" => Some(C::Time(trunc("day", first_ms()?)?)),
                "tostartofweek" => Some(C::Time(trunc("sunday", first_ms()?)?)),
                "tostartofmonth" => Some(C::Time(trunc("month", first_ms()?)?)),
                "tostartofquarter" => Some(C::Time(trunc("quarter", first_ms()?)?)),
                "tostartofyear" => Some(C::Time(trunc("year", first_ms()?)?)),
                "todatetime" => Some(C::Time(trunc("second", first_ms()?)?)),
                "todatetime64" | "formatdatetime" => Some(C::Time(first_ms()?)),
                "date_trunc" => {
                    let C::Text(unit) = ev(args.first()?)? else {
                        return None;
                    };
                    let ms = c_ms(ev(args.get(1)?)?)?;
                    let unit = unit.to_ascii_lowercase();
                    Some(C::Time(trunc(&unit, ms)?))
                }
                "fromunixtimestamp64milli" => match ev(args.first()?)? {
                    C::Num(n) => Some(C::Time(n as i64)),
                    _ => None,
                },
                "tounixtimestamp64milli" => Some(C::Num(first_ms()? as f64)),
                "tounixtimestamp" => Some(C::Num(first_ms()?.div_euclid(1000) as f64)),
                n if n.starts_with("tointerval") => {
                    let unit = super::expr::interval_unit_ms(&n["tointerval".len()..])?;
                    match ev(args.first()?)? {
                        C::Num(v) => Some(C::Interval(v * unit)),
                        _ => None,
                    }
                }
                _ => None,
            }
        }
        _ => None,
    }
}
