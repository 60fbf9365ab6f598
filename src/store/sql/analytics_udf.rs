//! The SQLite functions compiled queries may call that SQLite does not have: `kw_quantile(x,
//! level)`, the aggregate behind ClickHouse's `quantile(level)(x)` (linear interpolation between
//! the closest ranks, as PostgreSQL's percentile_cont, which the PostgreSQL output uses).

use rusqlite::functions::{Aggregate, Context, FunctionFlags};
use rusqlite::Connection;

struct Quantile;

impl Aggregate<(Vec<f64>, f64), Option<f64>> for Quantile {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<(Vec<f64>, f64)> {
        Ok((Vec::new(), 0.5))
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut (Vec<f64>, f64)) -> rusqlite::Result<()> {
        if let Some(v) = ctx.get::<Option<f64>>(0)? {
            if v.is_finite() {
                acc.0.push(v);
            }
        }
        if let Some(level) = ctx.get::<Option<f64>>(1)? {
            acc.1 = level.clamp(0.0, 1.0);
        }
        Ok(())
    }

    fn finalize(
        &self,
        _: &mut Context<'_>,
        acc: Option<(Vec<f64>, f64)>,
    ) -> rusqlite::Result<Option<f64>> {
        let Some((mut values, level)) = acc else {
            return Ok(None);
        };
        if values.is_empty() {
            return Ok(None);
        }
        values.sort_by(f64::total_cmp);
        let pos = level * (values.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        let (a, b) = (values[lo], values[hi.min(values.len() - 1)]);
        Ok(Some(a + (b - a) * (pos - lo as f64)))
    }
}

/// Registers the functions compiled queries may call on a SQLite connection. Call it once per
/// connection that runs compiled analytics statements.
pub fn register_sqlite_functions(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_aggregate_function(
        "kw_quantile",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        Quantile,
    )
}
