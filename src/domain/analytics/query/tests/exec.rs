//! Compiled queries run on SQLite with keyward's real schema: isolation, scope, time semantics,
//! functions and the kinds of the answered values.

use super::*;

fn b() -> QueryContext<'static> {
    ctx_for(Family::Verifications, Dialect::Sqlite, "ws_b")
}

fn rl(ws: &'static str) -> QueryContext<'static> {
    ctx_for(Family::Ratelimits, Dialect::Sqlite, ws)
}

fn one(conn: &Connection, q: &str, c: &QueryContext<'_>) -> Value {
    let rows = run(conn, q, c);
    assert_eq!(rows.len(), 1, "{q}: {rows:?}");
    let Value::Object(o) = &rows[0] else { panic!() };
    o.values().next().cloned().unwrap()
}

#[test]
fn count_is_the_workspaces_own() {
    let conn = db();
    assert_eq!(
        run(
            &conn,
            "SELECT COUNT(*) as count FROM key_verifications_v1",
            &ctx()
        ),
        vec![json!({"count": 7})]
    );
    assert_eq!(
        run(
            &conn,
            "SELECT COUNT(*) as count FROM key_verifications_v1",
            &b()
        ),
        vec![json!({"count": 2})]
    );
    // Retention hides the 45-day-old event; without it, it is there.
    let all = QueryContext {
        retention_days: 0,
        ..ctx()
    };
    assert_eq!(
        one(&conn, "SELECT count() FROM key_verifications_v1", &all),
        json!(8)
    );
}

#[test]
fn workspace_b_never_sees_a() {
    let conn = db();
    let tricks = [
        "SELECT count() FROM key_verifications_v1 WHERE workspace_id = 'ws_a' OR 1=1",
        "SELECT count() FROM key_verifications_v1 WHERE 1=1) OR (1=1",
        "SELECT count() FROM (SELECT * FROM key_verifications_v1 WHERE workspace_id = 'ws_a' OR 1 = 1)",
        "SELECT count() FROM key_verifications_v1 AS a, key_verifications_per_day_v1 AS d WHERE a.workspace_id <> d.workspace_id OR 1 = 1",
        "WITH key_verifications AS (SELECT * FROM key_verifications_v1) SELECT count() FROM key_verifications",
        "WITH u_x AS (SELECT * FROM key_verifications_v1), x AS (SELECT * FROM u_x) SELECT count() FROM x",
        "SELECT count() FROM key_verifications_v1 WHERE key_id IN (SELECT key_id FROM key_verifications_v1 WHERE workspace_id = 'ws_a')",
        "SELECT count() AS \"x\"\" FROM key_verifications --\" FROM key_verifications_v1",
        "SELECT count() FROM key_verifications_v1 UNION ALL SELECT count() FROM key_verifications_per_day_v1 WHERE workspace_id = 'ws_a'",
    ];
    for q in tricks {
        match compile(q, &b()) {
            Err(e) => assert!(e.code != QueryErrorCode::InvalidQueryType, "{q}: {e}"),
            Ok(c) => {
                let rows = run_compiled(&conn, &c);
                let text = serde_json::to_string(&rows).unwrap();
                assert!(
                    !text.contains("ws_a") && !text.contains("key_1"),
                    "{q}: {text}"
                );
                for row in &rows {
                    let Value::Object(o) = row else { panic!() };
                    for v in o.values() {
                        // B has two events, so no count may exceed what B's rows can make.
                        if let Some(n) = v.as_i64() {
                            assert!(n <= 4, "{q}: {rows:?}");
                        }
                    }
                }
            }
        }
    }
    // Everything B can read with SELECT * is B's.
    for table in [
        "key_verifications_v1",
        "key_verifications_per_minute_v1",
        "key_verifications_per_hour_v1",
        "key_verifications_per_day_v1",
        "key_verifications_per_month_v1",
    ] {
        for row in run(&conn, &format!("SELECT * FROM {table}"), &b()) {
            assert_eq!(row["workspace_id"], json!("ws_b"), "{table}");
        }
    }
    let rows = run(
        &conn,
        "SELECT tag FROM (SELECT arrayJoin(tags) AS tag FROM key_verifications_v1) ORDER BY tag",
        &b(),
    );
    assert_eq!(rows, vec![json!({"tag": "a"}), json!({"tag": "secret_b"})]);
    // And A never sees B's tags.
    let rows = run(
        &conn,
        "SELECT count() FROM key_verifications_v1 WHERE has(tags, 'secret_b')",
        &ctx(),
    );
    assert_eq!(
        rows[0].as_object().unwrap().values().next().unwrap(),
        &json!(0)
    );
}

#[test]
fn rate_limit_isolation_and_columns() {
    let conn = db();
    assert_eq!(
        run(&conn, "SELECT namespace_id, count() AS n, countIf(passed) AS ok, sum(passed) AS s FROM ratelimits_v1 GROUP BY namespace_id ORDER BY namespace_id", &rl("ws_a")),
        vec![json!({"namespace_id": "ns_1", "n": 3, "ok": 2, "s": 2}), json!({"namespace_id": "ns_2", "n": 1, "ok": 1, "s": 1})]
    );
    assert_eq!(
        run(&conn, "SELECT passed, limit, remaining, tokens, latency, reset_at - time AS window FROM ratelimits_v1", &rl("ws_b")),
        vec![json!({"passed": false, "limit": 10, "remaining": 5, "tokens": 1, "latency": 0.25, "window": 60000})]
    );
    assert_eq!(
        run(&conn, "SELECT sum(total) AS t, sum(passed) AS p FROM ratelimits_per_hour_v1 WHERE namespace_id = 'ns_1'", &rl("ws_a")),
        vec![json!({"t": 3, "p": 2})]
    );
    let ns = vec!["ns_2".to_string()];
    let scoped = QueryContext {
        scope: Some(&ns),
        ..rl("ws_a")
    };
    assert_eq!(
        one(&conn, "SELECT count() FROM ratelimits_v1", &scoped),
        json!(1)
    );
}

#[test]
fn scope_filters_key_spaces() {
    let conn = db();
    let ids = vec!["ks_1".to_string()];
    let c = QueryContext {
        scope: Some(&ids),
        ..ctx()
    };
    assert_eq!(
        run(&conn, "SELECT key_space_id, COUNT(*) as count FROM key_verifications_v1 GROUP BY key_space_id", &c),
        vec![json!({"key_space_id": "ks_1", "count": 4})]
    );
    assert_eq!(
        run(
            &conn,
            "SELECT * FROM key_verifications_v1 WHERE key_space_id = 'ks_2'",
            &c
        ),
        Vec::<Value>::new()
    );
    let none: Vec<String> = Vec::new();
    let c = QueryContext {
        scope: Some(&none),
        ..ctx()
    };
    assert_eq!(
        run(&conn, "SELECT key_id FROM key_verifications_v1", &c),
        Vec::<Value>::new()
    );
    assert_eq!(
        run(
            &conn,
            "SELECT outcome, sum(count) FROM key_verifications_per_day_v1 GROUP BY outcome",
            &c
        ),
        Vec::<Value>::new()
    );
}

#[test]
fn time_semantics() {
    let conn = db();
    let c = ctx();
    let count = |q: &str| one(&conn, q, &c);
    // The raw table's ms compare with DateTime arithmetic by meaning.
    assert_eq!(
        count("SELECT count() FROM key_verifications_v1 WHERE time >= now() - INTERVAL 7 DAY"),
        json!(4)
    );
    assert_eq!(
        count("SELECT count() FROM key_verifications_v1 WHERE time >= now() - INTERVAL 1 DAY"),
        json!(3)
    );
    assert_eq!(
        count("SELECT count() FROM key_verifications_v1 WHERE time >= now() - toIntervalHour(2)"),
        json!(3)
    );
    assert_eq!(
        count("SELECT count() FROM key_verifications_v1 WHERE time >= '2025-06-14'"),
        json!(3)
    );
    assert_eq!(
        count("SELECT count() FROM key_verifications_v1 WHERE time >= '2025-06-13 11:00:00'"),
        json!(4)
    );
    assert_eq!(
        count("SELECT count() FROM key_verifications_v1 WHERE time >= '2025-06-15T10:00:00+00:00'"),
        json!(3)
    );
    assert_eq!(count("SELECT count() FROM key_verifications_v1 WHERE time BETWEEN '2025-06-01' AND '2025-06-14'"), json!(4));
    assert_eq!(count("SELECT count() FROM key_verifications_v1 WHERE time >= toUnixTimestamp(now() - INTERVAL 1 DAY) * 1000"), json!(3));
    assert_eq!(count("SELECT count() FROM key_verifications_v1 WHERE time >= toUnixTimestamp64Milli(now() - INTERVAL 1 DAY)"), json!(3));
    assert_eq!(
        count("SELECT count() FROM key_verifications_v1 WHERE toDate(time) = today()"),
        json!(3)
    );
    assert_eq!(
        count("SELECT count() FROM key_verifications_v1 WHERE toDate(time) = '2025-06-13'"),
        json!(1)
    );
    // Rollups: Date compares with dates and with a number of days, DateTime with seconds.
    assert_eq!(count("SELECT sum(count) FROM key_verifications_per_day_v1 WHERE time >= toDate('2025-06-13')"), json!(4));
    assert_eq!(
        count("SELECT sum(count) FROM key_verifications_per_day_v1 WHERE time >= today() - 2"),
        json!(4)
    );
    assert_eq!(
        count("SELECT sum(count) FROM key_verifications_per_day_v1 WHERE time = today()"),
        json!(3)
    );
    let r = rl("ws_a");
    assert_eq!(
        one(&conn, "SELECT sum(total) FROM ratelimits_per_hour_v1 WHERE time >= toUnixTimestamp(now() - INTERVAL 4 HOUR)", &r),
        json!(3)
    );
    assert_eq!(
        one(
            &conn,
            "SELECT sum(total) FROM ratelimits_per_hour_v1 WHERE time >= now() - INTERVAL 1 HOUR",
            &r
        ),
        json!(0)
    );
    // Truncations and formatting.
    let row = &run(
        &conn,
        "SELECT toStartOfHour(time) AS h, toStartOfDay(time) AS d, toStartOfWeek(time) AS w, toStartOfWeek(time, 1) AS wm, \
         toStartOfMonth(time) AS m, toStartOfQuarter(time) AS q, toStartOfYear(time) AS y, toStartOfMinute(time) AS mi, \
         date_trunc('week', time) AS dw, date_trunc('month', time) AS dm, toDateTime(time) AS dt, \
         formatDateTime(time, '%Y-%m-%d %H:%i:%S') AS f, toString(toDate(time)) AS s, toString(toStartOfHour(time)) AS sh, \
         toUnixTimestamp(time) AS u, fromUnixTimestamp64Milli(time) AS fu \
         FROM key_verifications_v1 WHERE outcome = 'RATE_LIMITED'",
        &c,
    )[0];
    // The event is at 2025-06-13T12:00:00Z, a Friday.
    assert_eq!(
        row,
        &json!({
            "h": "2025-06-13T12:00:00Z", "d": "2025-06-13T00:00:00Z", "w": "2025-06-08T00:00:00Z",
            "wm": "2025-06-09T00:00:00Z", "m": "2025-06-01T00:00:00Z", "q": "2025-04-01T00:00:00Z",
            "y": "2025-01-01T00:00:00Z", "mi": "2025-06-13T12:00:00Z", "dw": "2025-06-09T00:00:00Z",
            "dm": "2025-06-01T00:00:00Z", "dt": "2025-06-13T12:00:00Z", "f": "2025-06-13 12:00:00",
            "s": "2025-06-13", "sh": "2025-06-13 12:00:00", "u": 1_749_816_000, "fu": "2025-06-13T12:00:00Z"
        })
    );
}

#[test]
fn acceptance_7_functions_with_correct_values() {
    let conn = db();
    let c = ctx();
    assert_eq!(
        one(
            &conn,
            "SELECT count(DISTINCT key_id) FROM key_verifications_v1",
            &c
        ),
        json!(3)
    );
    assert_eq!(
        one(&conn, "SELECT uniq(key_id) FROM key_verifications_v1", &c),
        json!(3)
    );
    assert_eq!(
        one(
            &conn,
            "SELECT uniqExact(outcome) FROM key_verifications_v1",
            &c
        ),
        json!(3)
    );
    assert_eq!(
        one(
            &conn,
            "SELECT count() FROM key_verifications_v1 WHERE has(tags, 'a')",
            &c
        ),
        json!(4)
    );
    assert_eq!(
        one(
            &conn,
            "SELECT count() FROM key_verifications_v1 WHERE hasAny(tags, ['b', 'path=/x'])",
            &c
        ),
        json!(4)
    );
    assert_eq!(
        one(
            &conn,
            "SELECT count() FROM key_verifications_v1 WHERE hasAll(tags, ['a', 'b'])",
            &c
        ),
        json!(3)
    );
    assert_eq!(
        one(
            &conn,
            "SELECT count() FROM key_verifications_v1 WHERE NOT has(tags, 'a')",
            &c
        ),
        json!(3)
    );
    assert_eq!(
        one(
            &conn,
            "SELECT countIf(outcome = 'VALID') FROM key_verifications_v1",
            &c
        ),
        json!(5)
    );
    assert_eq!(
        one(
            &conn,
            "SELECT sumIf(spent_credits, outcome = 'VALID') FROM key_verifications_v1",
            &c
        ),
        json!(7)
    );
    assert_eq!(
        run(&conn, "SELECT arrayJoin(tags) AS tag, count() AS c FROM key_verifications_v1 GROUP BY tag ORDER BY c DESC, tag", &c),
        vec![json!({"tag": "a", "c": 4}), json!({"tag": "b", "c": 3}), json!({"tag": "path=/x", "c": 1})]
    );
    // An arrayJoin in WHERE and GROUP BY is the same join as in the projection.
    assert_eq!(
        run(&conn, "SELECT arrayJoin(tags) AS tag, count() AS c FROM key_verifications_v1 WHERE arrayJoin(tags) <> 'b' GROUP BY arrayJoin(tags) ORDER BY tag", &c),
        vec![json!({"tag": "a", "c": 4}), json!({"tag": "path=/x", "c": 1})]
    );
    assert_eq!(
        run(&conn, "SELECT arrayFilter(x -> startsWith(x, 'path='), tags) AS p FROM key_verifications_v1 WHERE length(tags) = 1 ORDER BY time", &c),
        vec![json!({"p": ["path=/x"]}), json!({"p": []})]
    );
    // Empty aggregates are 0 as in ClickHouse, not NULL.
    assert_eq!(
        run(&conn, "SELECT sum(spent_credits) AS s, countIf(outcome = 'x') AS n, sumIf(spent_credits, 1 = 0) AS si FROM key_verifications_v1 WHERE outcome = 'nope'", &c),
        vec![json!({"s": 0, "n": 0, "si": 0})]
    );
}

#[test]
fn acceptance_11_rollups_agree_with_raw() {
    let conn = db();
    for c in [
        ctx(),
        QueryContext {
            retention_days: 0,
            ..ctx()
        },
    ] {
        let day = run(&conn, "SELECT outcome, SUM(count) AS c FROM key_verifications_per_day_v1 GROUP BY outcome ORDER BY outcome", &c);
        let raw = run(&conn, "SELECT outcome, count() AS c FROM key_verifications_v1 GROUP BY outcome ORDER BY outcome", &c);
        assert_eq!(day, raw);
        assert!(!day.is_empty());
    }
}

#[test]
fn limit_caps_rows() {
    let conn = db();
    let c = QueryContext {
        max_rows: 2,
        ..ctx()
    };
    assert_eq!(
        run(
            &conn,
            "SELECT * FROM key_verifications_v1 LIMIT 999999999",
            &c
        )
        .len(),
        2
    );
    assert_eq!(
        run(&conn, "SELECT * FROM key_verifications_v1", &c).len(),
        2
    );
    assert_eq!(
        run(
            &conn,
            "SELECT key_id FROM key_verifications_v1 ORDER BY time LIMIT 1 OFFSET 1",
            &c
        )
        .len(),
        1
    );
}

#[test]
fn sql_features() {
    let conn = db();
    let c = ctx();
    let q = |sql: &str| run(&conn, sql, &c);
    // CTE with a column list, JOIN, derived table, IN / EXISTS / scalar subqueries.
    assert_eq!(
        q(
            "WITH k(id, n) AS (SELECT key_id, count() FROM key_verifications_v1 GROUP BY key_id) \
           SELECT v.key_id AS key, k.n FROM key_verifications_v1 AS v JOIN k ON k.id = v.key_id \
           WHERE v.outcome = 'RATE_LIMITED'"
        ),
        vec![json!({"key": "key_1", "n": 3})]
    );
    assert_eq!(
        q("SELECT count() AS c FROM key_verifications_v1 WHERE key_id IN (SELECT key_id FROM key_verifications_v1 WHERE outcome = 'RATE_LIMITED') \
           AND EXISTS (SELECT 1 FROM key_verifications_per_day_v1) AND spent_credits <= (SELECT max(spent_credits) FROM key_verifications_v1)"),
        vec![json!({"c": 3})]
    );
    assert_eq!(
        q("SELECT k, c FROM (SELECT key_id AS k, count() AS c FROM key_verifications_v1 GROUP BY k) AS t WHERE t.c > 1 ORDER BY k"),
        vec![json!({"k": "key_1", "c": 3}), json!({"k": "key_3", "c": 3})]
    );
    // Set operations, with ORDER BY on the output.
    assert_eq!(
        q("SELECT key_id FROM key_verifications_v1 WHERE outcome = 'VALID' UNION SELECT key_id FROM key_verifications_v1 ORDER BY key_id DESC"),
        vec![json!({"key_id": "key_3"}), json!({"key_id": "key_2"}), json!({"key_id": "key_1"})]
    );
    assert_eq!(
        q("SELECT key_id FROM key_verifications_v1 EXCEPT SELECT key_id FROM key_verifications_v1 WHERE outcome = 'RATE_LIMITED' ORDER BY 1"),
        vec![json!({"key_id": "key_2"}), json!({"key_id": "key_3"})]
    );
    assert_eq!(
        q("(SELECT 1 AS x FROM key_verifications_v1 LIMIT 1) UNION ALL (SELECT 2 AS x FROM key_verifications_v1 LIMIT 1)").len(),
        2
    );
    // CASE, if, coalesce, LIKE (case-sensitive) and ILIKE, BETWEEN, arithmetic, casts.
    assert_eq!(
        q("SELECT CASE WHEN outcome = 'VALID' THEN 'ok' ELSE 'no' END AS k, if(spent_credits > 1, 'big', 'small') AS s, count() AS c \
           FROM key_verifications_v1 GROUP BY k, s ORDER BY k, s"),
        vec![json!({"k": "no", "s": "small", "c": 2}), json!({"k": "ok", "s": "big", "c": 2}), json!({"k": "ok", "s": "small", "c": 3})]
    );
    assert_eq!(
        one(
            &conn,
            "SELECT count() FROM key_verifications_v1 WHERE outcome LIKE 'valid'",
            &c
        ),
        json!(0)
    );
    assert_eq!(
        one(
            &conn,
            "SELECT count() FROM key_verifications_v1 WHERE outcome LIKE 'VAL%'",
            &c
        ),
        json!(5)
    );
    assert_eq!(
        one(
            &conn,
            "SELECT count() FROM key_verifications_v1 WHERE outcome ILIKE 'val_d'",
            &c
        ),
        json!(5)
    );
    assert_eq!(
        one(
            &conn,
            "SELECT count() FROM key_verifications_v1 WHERE outcome NOT LIKE '%\\\\_%'",
            &c
        ),
        json!(5)
    );
    assert_eq!(
        one(
            &conn,
            "SELECT count() FROM key_verifications_v1 WHERE spent_credits BETWEEN 1 AND 2",
            &c
        ),
        json!(5)
    );
    assert_eq!(
        q("SELECT 7 / 2 AS d, 7 % 3 AS m, 1 / 0 AS z, -spent_credits AS neg, toString(spent_credits) || 'x' AS s, concat(key_id, '-', outcome) AS k, \
           toInt64('42') AS i, toFloat64(3) AS f, CAST(spent_credits AS String) AS cs, round(latency) AS r, round(1.2345, 2) AS r2, \
           floor(latency) AS fl, ceil(latency) AS ce, floor(-latency) AS nfl, abs(-3) AS a, lower(outcome) AS lo, upper('x') AS up, \
           substring(outcome, 2, 3) AS sub, length(outcome) AS len, trim('  x ') AS tr, endsWith(outcome, 'LIMITED') AS ew, \
           coalesce(NULL, identity_id) AS idn, JSONExtractString('{\"a\": \"b\"}', 'a') AS j, JSONExtractString('nope', 'a') AS jn \
           FROM key_verifications_v1 WHERE outcome = 'RATE_LIMITED'"),
        vec![json!({
            "d": 3.5, "m": 1, "z": null, "neg": 0, "s": "0x", "k": "key_1-RATE_LIMITED", "i": 42, "f": 3.0, "cs": "0",
            "r": 3.0, "r2": 1.23, "fl": 2, "ce": 3, "nfl": -3, "a": 3, "lo": "rate_limited", "up": "X",
            "sub": "ATE", "len": 12, "tr": "x", "ew": true, "idn": "", "j": "b", "jn": ""
        })]
    );
    // quantile, through the SQLite aggregate.
    assert_eq!(
        one(
            &conn,
            "SELECT quantile(0.5)(latency) FROM key_verifications_v1",
            &c
        ),
        json!(1.5)
    );
    assert_eq!(
        one(
            &conn,
            "SELECT quantile(1)(latency) FROM key_verifications_v1",
            &c
        ),
        json!(2.5)
    );
    // Aliases work in every clause, as in ClickHouse; ORDER BY an alias works with DISTINCT.
    assert_eq!(
        q("SELECT DISTINCT lower(outcome) AS o FROM key_verifications_v1 WHERE o <> 'expired' ORDER BY o"),
        vec![json!({"o": "rate_limited"}), json!({"o": "usage_exceeded"}), json!({"o": "valid"})]
    );
    assert_eq!(
        q("SELECT toStartOfDay(time) AS time, count() AS c FROM key_verifications_v1 GROUP BY time ORDER BY time DESC LIMIT 1"),
        vec![json!({"time": "2025-06-15T00:00:00Z", "c": 3})]
    );
    // Backquoted names and qualified wildcards.
    assert_eq!(
        q("SELECT `outcome` FROM key_verifications_v1 AS v WHERE v.`key_id` = 'key_2'"),
        vec![json!({"outcome": "VALID"})]
    );
    assert_eq!(q("SELECT v.* EXCEPT (tags, latency, request_id, time) FROM key_verifications_v1 AS v WHERE key_id = 'key_2'")[0]["key_id"], json!("key_2"));
}

#[test]
fn database_errors_are_sanitized() {
    let conn = db();
    // Compiles (the name is resolved) but the store refuses: the detail names nothing physical.
    let c = ok(
        "SELECT toInt64(outcome) + has(tags, 1) FROM key_verifications_v1",
        &ctx(),
    );
    let _ = run_compiled(&conn, &c);
    let c = ok(
        "SELECT count() FROM key_verifications_v1 WHERE JSONExtractString(outcome, 'x') = ''",
        &ctx(),
    );
    assert_eq!(run_compiled(&conn, &c).len(), 1);
    // Aggregates in WHERE: the store's error becomes a generic detail.
    let c = ok(
        "SELECT count() AS n FROM key_verifications_v1 WHERE n > 1",
        &ctx(),
    );
    let e = conn
        .prepare(&c.sql)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(
        sanitize_db_error(Dialect::Sqlite, &e, None),
        "Invalid analytics query"
    );
}

/// Queries checked on both stores (see `write_pg_script`).
const BOTH: &[&str] = &[
    "SELECT COUNT(*) as count FROM key_verifications_v1",
    "SELECT count() FROM key_verifications_v1 WHERE workspace_id = 'ws_b' OR 1=1",
    "SELECT count() FROM key_verifications_v1 WHERE time >= now() - INTERVAL 7 DAY",
    "SELECT count() FROM key_verifications_v1 WHERE time >= '2025-06-14'",
    "SELECT count() FROM key_verifications_v1 WHERE time >= toUnixTimestamp(now() - INTERVAL 1 DAY) * 1000",
    "SELECT count() FROM key_verifications_v1 WHERE toDate(time) = today()",
    "SELECT sum(count) FROM key_verifications_per_day_v1 WHERE time >= today() - 2",
    "SELECT count(DISTINCT key_id) AS a, uniq(key_id) AS b, countIf(outcome = 'VALID') AS c, sumIf(spent_credits, outcome = 'VALID') AS d FROM key_verifications_v1",
    "SELECT count() FROM key_verifications_v1 WHERE has(tags, 'a')",
    "SELECT count() FROM key_verifications_v1 WHERE hasAny(tags, ['b', 'path=/x'])",
    "SELECT count() FROM key_verifications_v1 WHERE hasAll(tags, ['a', 'b'])",
    "SELECT arrayJoin(tags) AS tag, count() AS c FROM key_verifications_v1 GROUP BY tag ORDER BY c DESC, tag",
    "SELECT arrayJoin(tags) AS tag, count() AS c FROM key_verifications_v1 WHERE arrayJoin(tags) <> 'b' GROUP BY arrayJoin(tags) ORDER BY tag",
    "SELECT arrayFilter(x -> startsWith(x, 'path='), tags) AS p FROM key_verifications_v1 WHERE length(tags) = 1 ORDER BY time",
    "SELECT sum(spent_credits) AS s, countIf(outcome = 'x') AS n, sumIf(spent_credits, 1 = 0) AS si FROM key_verifications_v1 WHERE outcome = 'nope'",
    "SELECT outcome, SUM(count) AS c FROM key_verifications_per_day_v1 GROUP BY outcome ORDER BY outcome",
    "SELECT toStartOfHour(time) AS h, toStartOfDay(time) AS d, toStartOfWeek(time) AS w, toStartOfWeek(time, 1) AS wm, toStartOfMonth(time) AS m, toStartOfQuarter(time) AS q, toStartOfYear(time) AS y, toStartOfMinute(time) AS mi, date_trunc('week', time) AS dw, date_trunc('month', time) AS dm, toDateTime(time) AS dt, formatDateTime(time, '%Y-%m-%d %H:%i:%S') AS f, toString(toDate(time)) AS s, toString(toStartOfHour(time)) AS sh, toUnixTimestamp(time) AS u, fromUnixTimestamp64Milli(time) AS fu FROM key_verifications_v1 WHERE outcome = 'RATE_LIMITED'",
    "WITH k(id, n) AS (SELECT key_id, count() FROM key_verifications_v1 GROUP BY key_id) SELECT v.key_id AS key, k.n FROM key_verifications_v1 AS v JOIN k ON k.id = v.key_id WHERE v.outcome = 'RATE_LIMITED'",
    "SELECT count() AS c FROM key_verifications_v1 WHERE key_id IN (SELECT key_id FROM key_verifications_v1 WHERE outcome = 'RATE_LIMITED') AND EXISTS (SELECT 1 FROM key_verifications_per_day_v1) AND spent_credits <= (SELECT max(spent_credits) FROM key_verifications_v1)",
    "SELECT k, c FROM (SELECT key_id AS k, count() AS c FROM key_verifications_v1 GROUP BY k) AS t WHERE t.c > 1 ORDER BY k",
    "SELECT a, b FROM (SELECT key_id, outcome FROM key_verifications_v1) AS t(a, b) WHERE b = 'RATE_LIMITED'",
    "SELECT key_id FROM key_verifications_v1 WHERE outcome = 'VALID' UNION SELECT key_id FROM key_verifications_v1 ORDER BY key_id DESC",
    "SELECT key_id FROM key_verifications_v1 EXCEPT SELECT key_id FROM key_verifications_v1 WHERE outcome = 'RATE_LIMITED' ORDER BY 1",
    "SELECT CASE WHEN outcome = 'VALID' THEN 'ok' ELSE 'no' END AS k, if(spent_credits > 1, 'big', 'small') AS s, count() AS c FROM key_verifications_v1 GROUP BY k, s ORDER BY k, s",
    "SELECT count() FROM key_verifications_v1 WHERE outcome LIKE 'valid'",
    "SELECT count() FROM key_verifications_v1 WHERE outcome ILIKE 'val_d'",
    "SELECT 7 / 2 AS d, 7 % 3 AS m, 1 / 0 AS z, -spent_credits AS neg, toString(spent_credits) || 'x' AS s, concat(key_id, '-', outcome) AS k, toInt64('42') AS i, toFloat64(3) AS f, CAST(spent_credits AS String) AS cs, round(latency) AS r, round(1.2345, 2) AS r2, floor(latency) AS fl, ceil(latency) AS ce, floor(-latency) AS nfl, abs(-3) AS a, lower(outcome) AS lo, upper('x') AS up, substring(outcome, 2, 3) AS sub, length(outcome) AS len, trim('  x ') AS tr, endsWith(outcome, 'LIMITED') AS ew, coalesce(NULL, identity_id) AS idn, JSONExtractString('{\"a\": \"b\"}', 'a') AS j FROM key_verifications_v1 WHERE outcome = 'RATE_LIMITED'",
    "SELECT quantile(0.5)(latency) AS q5, quantile(1)(latency) AS q1 FROM key_verifications_v1",
    "SELECT DISTINCT lower(outcome) AS o FROM key_verifications_v1 WHERE o <> 'expired' ORDER BY o",
    "SELECT toStartOfDay(time) AS time, count() AS c FROM key_verifications_v1 GROUP BY time ORDER BY time DESC LIMIT 1",
    "SELECT groupArray(key_id) AS g, groupUniqArray(outcome) AS u, any(outcome) AS a, min(time) AS mn, max(latency) AS mx, avg(spent_credits) AS av FROM key_verifications_v1 WHERE outcome = 'RATE_LIMITED'",
    "SELECT * FROM key_verifications_v1 WHERE outcome = 'RATE_LIMITED'",
    "SELECT * FROM key_verifications_per_day_v1 WHERE outcome = 'RATE_LIMITED'",
    "(SELECT 1 AS x, 'a' AS y FROM key_verifications_v1 LIMIT 1) UNION ALL (SELECT 2.5, 'b' FROM key_verifications_v1 LIMIT 1) ORDER BY x",
    "SELECT count() AS c FROM key_verifications_v1 AS a JOIN key_verifications_per_day_v1 AS d ON a.key_id = d.key_id AND toDate(a.time) = d.time",
];

const BOTH_RL: &[&str] = &[
    "SELECT namespace_id, count() AS n, countIf(passed) AS ok, sum(passed) AS s FROM ratelimits_v1 GROUP BY namespace_id ORDER BY namespace_id",
    "SELECT passed, limit, remaining, tokens, latency, reset_at - time AS window FROM ratelimits_v1 WHERE passed = 0",
    "SELECT * FROM ratelimits_v1 WHERE NOT passed",
    "SELECT sum(total) AS t, sum(passed) AS p FROM ratelimits_per_hour_v1 WHERE time >= toUnixTimestamp(now() - INTERVAL 4 HOUR)",
];

/// Writes a psql script that loads the SQLite test data into a throwaway PostgreSQL schema and
/// checks every query of `BOTH` against the SQLite answer. Runs only when
/// KEYWARD_QUERY_PG_SCRIPT names the file to write (then: psql -v ON_ERROR_STOP=1 -f FILE).
#[test]
fn write_pg_script() {
    let Ok(path) = std::env::var("KEYWARD_QUERY_PG_SCRIPT") else {
        return;
    };
    let conn = db();
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let mut out = String::from("DROP SCHEMA IF EXISTS kw_query_test CASCADE;\nCREATE SCHEMA kw_query_test;\nSET search_path TO kw_query_test;\n");
    for m in [
        "0001_init",
        "0002_keys",
        "0003_rbac",
        "0004_ratelimits",
        "0005_event_log_time_index",
        "0006_audit_chain",
        "0007_analytics",
    ] {
        out.push_str(&format!("\\i migrations/postgres/{m}.sql\n"));
    }
    for table in [
        "key_verifications",
        "key_verifications_per_day",
        "ratelimit_events",
        "ratelimits_per_hour",
    ] {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next().unwrap() {
            let values: Vec<String> = (0..names.len())
                .map(|i| match row.get_ref(i).unwrap() {
                    ValueRef::Null => "NULL".into(),
                    ValueRef::Integer(n) => n.to_string(),
                    ValueRef::Real(f) => f.to_string(),
                    ValueRef::Text(t) => quote(&String::from_utf8_lossy(t)),
                    ValueRef::Blob(_) => "NULL".into(),
                })
                .collect();
            out.push_str(&format!(
                "INSERT INTO {table} ({}) VALUES ({});\n",
                names.join(", "),
                values.join(", ")
            ));
        }
    }
    let mut n = 0;
    for (family, queries) in [(Family::Verifications, BOTH), (Family::Ratelimits, BOTH_RL)] {
        for q in queries {
            n += 1;
            let lite = run(&conn, q, &ctx_for(family, Dialect::Sqlite, "ws_a"));
            let pg = ok(q, &ctx_for(family, Dialect::Postgres, "ws_a"));
            let args = pg
                .params
                .iter()
                .map(|p| match p {
                    Param::Text(s) => quote(s),
                    Param::Int(i) => i.to_string(),
                    Param::Float(f) => f.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let kinds = pg
                .columns
                .iter()
                .map(|c| format!("{:?}", c.kind))
                .collect::<Vec<_>>()
                .join(",");
            out.push_str(&format!("\\echo ==== {n} {}\n", q.replace('\n', " ")));
            out.push_str(&format!(
                "\\echo expect {kinds} {}\n",
                serde_json::to_string(&lite).unwrap()
            ));
            out.push_str(&format!("PREPARE q{n} AS {};\n", pg.sql));
            out.push_str(&format!(
                "EXECUTE q{n}{};\n",
                if args.is_empty() {
                    String::new()
                } else {
                    format!("({args})")
                }
            ));
        }
    }
    out.push_str("DROP SCHEMA kw_query_test CASCADE;\n");
    std::fs::write(path, out).unwrap();
}
