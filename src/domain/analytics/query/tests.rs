#![allow(clippy::unwrap_used)]

use super::*;
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use serde_json::{json, Value};

mod exec;
mod fuzz;
mod unit;

/// 2025-06-15T12:00:00Z.
pub(super) const NOW: i64 = 1_749_988_800_000;
pub(super) const HOUR: i64 = 3_600_000;
pub(super) const DAY: i64 = 86_400_000;

pub(super) fn ctx_for(family: Family, dialect: Dialect, ws: &'static str) -> QueryContext<'static> {
    QueryContext {
        family,
        dialect,
        workspace_id: ws,
        scope: None,
        now_ms: NOW,
        retention_days: 30,
        max_rows: 1000,
    }
}

pub(super) fn ctx() -> QueryContext<'static> {
    ctx_for(Family::Verifications, Dialect::Sqlite, "ws_a")
}

pub(super) fn err(q: &str, c: &QueryContext<'_>) -> QueryError {
    match compile(q, c) {
        Ok(compiled) => panic!("expected an error for {q}, got {}", compiled.sql),
        Err(e) => e,
    }
}

pub(super) fn ok(q: &str, c: &QueryContext<'_>) -> Compiled {
    match compile(q, c) {
        Ok(compiled) => compiled,
        Err(e) => panic!("expected {q} to compile, got {e}"),
    }
}

/// An in-memory SQLite database with keyward's real schema and two workspaces' events.
pub(super) fn db() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    for sql in [
        include_str!("../../../../migrations/sqlite/0001_init.sql"),
        include_str!("../../../../migrations/sqlite/0002_keys.sql"),
        include_str!("../../../../migrations/sqlite/0003_rbac.sql"),
        include_str!("../../../../migrations/sqlite/0004_ratelimits.sql"),
        include_str!("../../../../migrations/sqlite/0005_event_log_time_index.sql"),
        include_str!("../../../../migrations/sqlite/0006_audit_chain.sql"),
        include_str!("../../../../migrations/sqlite/0007_analytics.sql"),
    ] {
        conn.execute_batch(sql).unwrap();
    }
    crate::store::sql::register_sqlite_functions(&conn).unwrap();
    seed(&conn);
    conn
}

#[allow(clippy::too_many_arguments)]
fn verification(
    conn: &Connection,
    ws: &str,
    ks: &str,
    key: &str,
    identity: Option<&str>,
    time: i64,
    outcome: &str,
    tags: &str,
    credits: i64,
    latency_us: i64,
) {
    conn.execute(
        "INSERT INTO key_verifications (request_id, time_m, workspace_id, api_id, key_space_id, key_id, identity_id, outcome, tags, spent_credits, latency_us, external_id, region, source)
         VALUES (?1, ?2, ?3, 'api_x', ?4, ?5, ?6, ?7, ?8, ?9, ?10, '', 'local', 'api')",
        rusqlite::params![format!("req_{ws}_{time}_{key}_{outcome}"), time, ws, ks, key, identity, outcome, tags, credits, latency_us],
    )
    .unwrap();
}

fn seed(conn: &Connection) {
    // Workspace A: 8 events in the last 30 days, one older.
    for i in 0..3 {
        let key = if i < 2 { "key_1" } else { "key_2" };
        verification(
            conn,
            "ws_a",
            "ks_1",
            key,
            Some("id_1"),
            NOW - HOUR - i,
            "VALID",
            r#"["a","b"]"#,
            1,
            1500,
        );
    }
    verification(
        conn,
        "ws_a",
        "ks_1",
        "key_1",
        None,
        NOW - 2 * DAY,
        "RATE_LIMITED",
        r#"["a"]"#,
        0,
        2500,
    );
    verification(
        conn,
        "ws_a",
        "ks_2",
        "key_3",
        None,
        NOW - 10 * DAY,
        "VALID",
        "[]",
        2,
        500,
    );
    verification(
        conn,
        "ws_a",
        "ks_2",
        "key_3",
        None,
        NOW - 10 * DAY - 1,
        "VALID",
        "[]",
        2,
        500,
    );
    verification(
        conn,
        "ws_a",
        "ks_2",
        "key_3",
        None,
        NOW - 10 * DAY - 2,
        "USAGE_EXCEEDED",
        r#"["path=/x"]"#,
        0,
        500,
    );
    verification(
        conn,
        "ws_a",
        "ks_1",
        "key_1",
        None,
        NOW - 45 * DAY,
        "VALID",
        r#"["a"]"#,
        1,
        500,
    );
    // Workspace B: 2 events.
    verification(
        conn,
        "ws_b",
        "ks_9",
        "key_b",
        None,
        NOW - HOUR,
        "VALID",
        r#"["a","secret_b"]"#,
        5,
        1000,
    );
    verification(
        conn,
        "ws_b",
        "ks_9",
        "key_b",
        None,
        NOW - HOUR - 1,
        "EXPIRED",
        "[]",
        0,
        1000,
    );

    // Daily rollups that agree with the raw events.
    let rows = conn
        .prepare(
            "SELECT workspace_id, time_m / 86400000 * 86400000, key_space_id, key_id, COALESCE(identity_id, ''), external_id, outcome, source, tags, COUNT(*), SUM(spent_credits)
             FROM key_verifications GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, i64>(9)?,
                r.get::<_, i64>(10)?,
            ))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    for r in rows {
        conn.execute(
            "INSERT INTO key_verifications_per_day (workspace_id, time_m, key_space_id, key_id, identity_id, external_id, outcome, source, tags, total, spent_credits)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            rusqlite::params![r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10],
        )
        .unwrap();
    }

    // Rate-limit events: A has 3 in ns_1 (2 passed) and 1 in ns_2; B has 1.
    let mut n = 0;
    for (ws, ns, passed, time) in [
        ("ws_a", "ns_1", 1, NOW - HOUR),
        ("ws_a", "ns_1", 1, NOW - 2 * HOUR),
        ("ws_a", "ns_1", 0, NOW - 3 * HOUR),
        ("ws_a", "ns_2", 1, NOW - DAY),
        ("ws_b", "ns_9", 0, NOW - HOUR),
    ] {
        n += 1;
        conn.execute(
            "INSERT INTO ratelimit_events (request_id, time_m, workspace_id, namespace_id, identifier, passed, latency_us, override_id, limit_value, remaining, reset_at_m, tokens)
             VALUES (?1, ?2, ?3, ?4, 'user_1', ?5, 250, '', 10, 5, ?6, 1)",
            rusqlite::params![format!("rl_{n}"), time, ws, ns, passed, time + 60_000],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO ratelimits_per_hour (workspace_id, time_m, namespace_id, identifier, passed, total, passed_tokens, total_tokens)
         VALUES ('ws_a', ?1, 'ns_1', 'user_1', 2, 3, 2, 3), ('ws_b', ?1, 'ns_9', 'user_1', 0, 1, 0, 1)",
        rusqlite::params![(NOW - 3 * HOUR) / HOUR * HOUR],
    )
    .unwrap();
}

fn rfc3339(ms: i64) -> String {
    let (y, m, d) = retention::civil_from_days(ms.div_euclid(DAY));
    let rem = ms.rem_euclid(DAY) / 1000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Runs a compiled query and reads its rows as the HTTP layer would answer them.
pub(super) fn run_compiled(conn: &Connection, c: &Compiled) -> Vec<Value> {
    let mut stmt = conn
        .prepare(&c.sql)
        .unwrap_or_else(|e| panic!("{e}\n{}", c.sql));
    for (i, p) in c.params.iter().enumerate() {
        match p {
            Param::Int(n) => stmt.raw_bind_parameter(i + 1, n).unwrap(),
            Param::Float(f) => stmt.raw_bind_parameter(i + 1, f).unwrap(),
            Param::Text(s) => stmt.raw_bind_parameter(i + 1, s).unwrap(),
        }
    }
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap_or_else(|e| panic!("{e}\n{}", c.sql)) {
        let mut obj = serde_json::Map::new();
        for (i, col) in c.columns.iter().enumerate() {
            let v = match (row.get_ref(i).unwrap(), col.kind) {
                (ValueRef::Null, _) => Value::Null,
                (ValueRef::Integer(n), ValueKind::Bool) => json!(n != 0),
                (ValueRef::Integer(n), ValueKind::DateTime | ValueKind::Date) => json!(rfc3339(n)),
                (ValueRef::Integer(n), _) => json!(n),
                (ValueRef::Real(f), _) => json!(f),
                (ValueRef::Text(t), ValueKind::Array) => {
                    serde_json::from_slice(t).unwrap_or_else(|_| json!(String::from_utf8_lossy(t)))
                }
                (ValueRef::Text(t), _) => json!(String::from_utf8_lossy(t)),
                (ValueRef::Blob(_), _) => json!("<blob>"),
            };
            obj.insert(col.name.clone(), v);
        }
        out.push(Value::Object(obj));
    }
    out
}

pub(super) fn run(conn: &Connection, q: &str, c: &QueryContext<'_>) -> Vec<Value> {
    run_compiled(conn, &ok(q, c))
}
