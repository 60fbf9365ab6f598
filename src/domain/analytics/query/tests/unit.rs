//! §1's checks, one by one, and the shape of the emitted SQL.

use super::*;

use QueryErrorCode::*;

fn code(q: &str) -> QueryErrorCode {
    err(q, &ctx()).code
}

fn detail(q: &str) -> String {
    err(q, &ctx()).detail
}

#[test]
fn error_codes_as_in_section_1() {
    assert_eq!(
        InvalidQuery.as_str(),
        "err:user:bad_request:invalid_analytics_query"
    );
    assert_eq!(
        InvalidQueryType.as_str(),
        "err:user:bad_request:invalid_analytics_query_type"
    );
    assert_eq!(
        InvalidTable.as_str(),
        "err:user:bad_request:invalid_analytics_table"
    );
    assert_eq!(
        InvalidFunction.as_str(),
        "err:user:bad_request:invalid_analytics_function"
    );
    assert_eq!(
        RangeExceedsRetention.as_str(),
        "err:user:bad_request:query_range_exceeds_retention"
    );
}

#[test]
fn acceptance_table_of_400s() {
    let cases: &[(&str, QueryErrorCode)] = &[
        (
            "DELETE FROM key_verifications_v1 WHERE time < now()",
            InvalidQueryType,
        ),
        ("SELECT * FROM system.tables", InvalidTable),
        (
            "SELECT * FROM default.key_verifications_raw_v2",
            InvalidTable,
        ),
        (
            "WITH key_verifications_v1 AS (SELECT 1) SELECT * FROM key_verifications_v1",
            InvalidTable,
        ),
        (
            "SELECT file('/etc/passwd') FROM key_verifications_v1",
            InvalidFunction,
        ),
        (
            "SELECT 1 FROM key_verifications_v1; SELECT 2 FROM key_verifications_v1",
            InvalidQuery,
        ),
        (
            "SELECT * FROM key_verifications_v1 SETTINGS max_execution_time = 0",
            InvalidQuery,
        ),
        ("", InvalidQuery),
        (
            "SELECT nonexistent_column FROM key_verifications_v1",
            InvalidQuery,
        ),
    ];
    for (q, c) in cases {
        assert_eq!(code(q), *c, "{q}");
    }
    assert!(detail("SELECT nonexistent_column FROM key_verifications_v1").contains("Unknown"));
    let long = format!(
        "SELECT 1 FROM key_verifications_v1 WHERE outcome = '{}'",
        "x".repeat(16_400)
    );
    let e = err(&long, &ctx());
    assert_eq!(
        (e.code, e.detail.contains("maximum length")),
        (InvalidQuery, true)
    );
}

#[test]
fn length_is_checked_in_bytes_before_parsing() {
    // Garbage over the limit is a length error, not a syntax error.
    assert_eq!(
        detail(&"é".repeat(8193)),
        "Analytics query exceeds the maximum length"
    );
    let exact = format!(
        "SELECT 1 FROM key_verifications_v1 {}",
        " ".repeat(16384 - 35)
    );
    assert_eq!(exact.len(), 16384);
    ok(&exact, &ctx());
}

#[test]
fn parse_errors_and_statement_counts() {
    assert!(detail("SELEC 1").starts_with("Invalid SQL syntax: "));
    assert!(detail("SELECT FROM WHERE").starts_with("Invalid SQL syntax: "));
    assert_eq!(detail(""), "No SQL statements found");
    assert_eq!(detail("   -- only a comment"), "No SQL statements found");
    assert_eq!(
        detail("SELECT 1 FROM key_verifications_v1; SELECT 2 FROM key_verifications_v1"),
        "Analytics queries must contain exactly one statement"
    );
    ok("SELECT 1 FROM key_verifications_v1;", &ctx());
    assert!(
        detail("SELECT 1 FROM key_verifications_v1 AS \"a\0b\"").starts_with("Invalid SQL syntax")
    );
    ok(
        "SELECT 1 FROM key_verifications_v1 -- trailing comment",
        &ctx(),
    );
    ok(
        "/* leading */ SELECT /* inline */ 1 FROM key_verifications_v1",
        &ctx(),
    );
}

#[test]
fn only_selects() {
    for q in [
        "INSERT INTO key_verifications_v1 VALUES (1)",
        "DROP TABLE key_verifications_v1",
        "DESCRIBE key_verifications_v1",
        "EXPLAIN SELECT 1 FROM key_verifications_v1",
        "UPDATE key_verifications_v1 SET outcome = 'x'",
    ] {
        let e = err(q, &ctx());
        assert_eq!(
            (e.code, e.detail.as_str()),
            (InvalidQueryType, "Only SELECT queries are allowed"),
            "{q}"
        );
    }
}

#[test]
fn settings_anywhere() {
    for q in [
        "SELECT 1 FROM key_verifications_v1 SETTINGS max_threads = 1",
        "SELECT * FROM (SELECT 1 FROM key_verifications_v1 SETTINGS a = 1)",
        "WITH x AS (SELECT 1 FROM key_verifications_v1 SETTINGS a = 1) SELECT * FROM x",
        "SELECT 1 FROM key_verifications_v1 UNION ALL SELECT 2 FROM key_verifications_v1 SETTINGS a = 1",
        "SELECT 1 FROM key_verifications_v1 EXCEPT (SELECT 2 FROM key_verifications_v1 SETTINGS a = 1)",
        // Step 5 comes before the table allowlist.
        "SELECT * FROM system.tables SETTINGS a = 1",
    ] {
        assert_eq!(detail(q), "SETTINGS clauses are not allowed", "{q}");
    }
}

#[test]
fn complexity_limits() {
    let list = (0..2100)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        detail(&format!(
            "SELECT 1 FROM key_verifications_v1 WHERE spent_credits IN ({list})"
        )),
        "Analytics query is too complex"
    );
    let cols = (0..65)
        .map(|i| format!("{i} AS c{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    assert_eq!(
        detail(&format!("SELECT {cols} FROM key_verifications_v1")),
        "Analytics query projects too many columns"
    );
    // Summed over every SELECT, including the right side of EXCEPT.
    let half = (0..33)
        .map(|i| format!("{i} AS c{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    assert_eq!(
        detail(&format!(
            "SELECT {half} FROM key_verifications_v1 EXCEPT SELECT {half} FROM key_verifications_v1"
        )),
        "Analytics query projects too many columns"
    );
    // Left-deep chains the parser builds without recursion are refused by depth.
    let chain = vec!["1"; 500].join(" + ");
    assert_eq!(
        detail(&format!("SELECT {chain} FROM key_verifications_v1")),
        "Analytics query is too complex"
    );
    let cols64 = (0..64)
        .map(|i| format!("{i} AS c{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    ok(
        &format!("SELECT {cols64} FROM key_verifications_v1"),
        &ctx(),
    );
}

#[test]
fn cte_names_may_not_shadow_public_tables() {
    for q in [
        "WITH key_verifications_v1 AS (SELECT 1) SELECT * FROM key_verifications_v1",
        "WITH KEY_VERIFICATIONS_V1 AS (SELECT 1) SELECT * FROM key_verifications_v1",
        "SELECT * FROM (WITH key_verifications_per_day_v1 AS (SELECT 1) SELECT * FROM key_verifications_per_day_v1)",
        // Another family's public table too.
        "WITH ratelimits_v1 AS (SELECT 1) SELECT 1 FROM key_verifications_v1",
    ] {
        let e = err(q, &ctx());
        assert_eq!(e.code, InvalidTable, "{q}");
        assert!(e.detail.ends_with("conflicts with a public table name"), "{}", e.detail);
    }
    assert_eq!(
        detail("WITH Key_Verifications_V1 AS (SELECT 1) SELECT * FROM key_verifications_v1"),
        "CTE name 'Key_Verifications_V1' conflicts with a public table name"
    );
}

#[test]
fn table_backed_in() {
    let msg = "Table-backed IN expressions are not supported; use a literal list or a subquery";
    for q in [
        "SELECT 1 FROM key_verifications_v1 WHERE key_id IN default.t",
        "SELECT 1 FROM key_verifications_v1 WHERE key_id GLOBAL IN key_verifications_v1",
        "SELECT 1 FROM key_verifications_v1 WHERE key_id NOT IN numbers(10)",
        "SELECT 1 FROM key_verifications_v1 WHERE key_id IN {p:Array(String)}",
    ] {
        assert_eq!(detail(q), msg, "{q}");
    }
    ok(
        "SELECT 1 FROM key_verifications_v1 WHERE key_id IN ('a', 'b')",
        &ctx(),
    );
    ok(
        "SELECT 1 FROM key_verifications_v1 WHERE key_id IN ['a', 'b']",
        &ctx(),
    );
    ok("SELECT 1 FROM key_verifications_v1 WHERE key_id NOT IN (SELECT key_id FROM key_verifications_v1)", &ctx());
}

#[test]
fn from_is_required_at_the_top() {
    for q in [
        "SELECT 1",
        "SELECT now()",
        "SELECT (SELECT count() FROM key_verifications_v1)",
    ] {
        assert_eq!(detail(q), "Query must have a FROM clause", "{q}");
    }
    // Only the top SELECT needs one.
    ok("SELECT (SELECT 1) AS one FROM key_verifications_v1", &ctx());
}

#[test]
fn table_allowlist() {
    let cases = [
        ("SELECT * FROM system.tables", "system.tables"),
        (
            "SELECT * FROM information_schema.tables",
            "information_schema.tables",
        ),
        ("SELECT * FROM pg_catalog.pg_tables", "pg_catalog.pg_tables"),
        ("SELECT * FROM pg_tables", "pg_tables"),
        ("SELECT * FROM sqlite_master", "sqlite_master"),
        ("SELECT * FROM key_verifications", "key_verifications"),
        ("SELECT * FROM \"key_verifications\"", "key_verifications"),
        (
            "SELECT * FROM main.key_verifications",
            "main.key_verifications",
        ),
        (
            "SELECT * FROM default.key_verifications_v1",
            "default.key_verifications_v1",
        ),
        ("SELECT * FROM Key_Verifications_V1", "Key_Verifications_V1"),
        ("SELECT * FROM ratelimits_v1", "ratelimits_v1"),
        ("SELECT * FROM ratelimit_events", "ratelimit_events"),
        ("SELECT * FROM keys", "keys"),
        // Nested anywhere.
        (
            "WITH x AS (SELECT * FROM key_verifications) SELECT * FROM x",
            "key_verifications",
        ),
        ("SELECT * FROM (SELECT * FROM keys)", "keys"),
        (
            "SELECT 1 FROM key_verifications_v1 WHERE key_id IN (SELECT id FROM keys)",
            "keys",
        ),
        (
            "SELECT 1 FROM key_verifications_v1 WHERE EXISTS (SELECT 1 FROM root_keys)",
            "root_keys",
        ),
        (
            "SELECT (SELECT max(hash) FROM keys) FROM key_verifications_v1",
            "keys",
        ),
        (
            "SELECT key_id FROM key_verifications_v1 UNION ALL SELECT id FROM keys",
            "keys",
        ),
        (
            "SELECT 1 FROM key_verifications_v1 JOIN workspaces ON 1 = 1",
            "workspaces",
        ),
    ];
    for (q, name) in cases {
        let e = err(q, &ctx());
        assert_eq!(e.code, InvalidTable, "{q}");
        assert_eq!(
            e.detail,
            format!("Access to table '{name}' is not allowed"),
            "{q}"
        );
    }
    // Each family reads only its own tables.
    let rl = ctx_for(Family::Ratelimits, Dialect::Sqlite, "ws_a");
    assert_eq!(
        err("SELECT * FROM key_verifications_v1", &rl).code,
        InvalidTable
    );
    ok("SELECT * FROM ratelimits_per_day_v1", &rl);
}

#[test]
fn function_allowlist() {
    for (q, name) in [
        (
            "SELECT file('/etc/passwd') FROM key_verifications_v1",
            "file",
        ),
        (
            "SELECT FILE('/etc/passwd') FROM key_verifications_v1",
            "file",
        ),
        (
            "SELECT quantileTDigestMerge(0.5)(latency) FROM key_verifications_v1",
            "quantiletdigestmerge",
        ),
        ("SELECT count(sleep(1)) FROM key_verifications_v1", "sleep"),
        (
            "SELECT quantile(currentUser())(latency) FROM key_verifications_v1",
            "currentuser",
        ),
        (
            "SELECT 1 FROM key_verifications_v1 WHERE outcome = version()",
            "version",
        ),
        (
            "SELECT row_number() OVER () FROM key_verifications_v1",
            "row_number",
        ),
        (
            "SELECT sqlite_version() FROM key_verifications_v1",
            "sqlite_version",
        ),
        (
            "SELECT pg_read_file('x') FROM key_verifications_v1",
            "pg_read_file",
        ),
        (
            "SELECT load_extension('x') FROM key_verifications_v1",
            "load_extension",
        ),
        (
            "SELECT position(outcome IN 'x') FROM key_verifications_v1",
            "position",
        ),
    ] {
        let e = err(q, &ctx());
        assert_eq!(e.code, InvalidFunction, "{q}");
        assert_eq!(e.detail, format!("Function '{name}' is not allowed"), "{q}");
    }
    for (q, name) in [
        ("SELECT * FROM numbers(10)", "numbers"),
        ("SELECT * FROM url('http://x', CSV)", "url"),
        (
            "SELECT * FROM key_verifications_v1 JOIN file('x') AS f ON 1 = 1",
            "file",
        ),
    ] {
        let e = err(q, &ctx());
        assert_eq!(e.code, InvalidFunction, "{q}");
        assert_eq!(
            e.detail,
            format!("Table function '{name}' is not allowed for security reasons")
        );
    }
    // These pass.
    for q in [
        "SELECT count(DISTINCT key_id) FROM key_verifications_v1",
        "SELECT COUNTIF(outcome = 'VALID') FROM key_verifications_v1",
        "SELECT arrayFilter(x -> startsWith(x, 'path='), tags) FROM key_verifications_v1",
        "SELECT toUnixTimestamp(now()) FROM key_verifications_v1",
        "SELECT quantile(0.99)(latency) FROM key_verifications_v1",
    ] {
        ok(q, &ctx());
    }
}

#[test]
fn limit_is_added_and_clamped_on_every_level() {
    let c = QueryContext {
        max_rows: 100,
        ..ctx()
    };
    let sql = ok("SELECT key_id FROM key_verifications_v1", &c).sql;
    assert!(sql.ends_with(" LIMIT 100"), "{sql}");
    for q in [
        "SELECT key_id FROM key_verifications_v1 LIMIT 999999999",
        "SELECT key_id FROM key_verifications_v1 LIMIT ALL",
        "SELECT key_id FROM key_verifications_v1 LIMIT -1",
        "SELECT key_id FROM key_verifications_v1 LIMIT 'a'",
        "SELECT key_id FROM key_verifications_v1 LIMIT 1e9",
    ] {
        let sql = ok(q, &c).sql;
        assert!(sql.ends_with(" LIMIT 100"), "{q}: {sql}");
        assert!(!sql.contains("999999999"));
    }
    assert!(ok("SELECT key_id FROM key_verifications_v1 LIMIT 5", &c)
        .sql
        .ends_with(" LIMIT 5"));
    assert!(ok(
        "SELECT key_id FROM key_verifications_v1 LIMIT 5 OFFSET 10",
        &c
    )
    .sql
    .ends_with(" LIMIT 5 OFFSET 10"));
    assert!(
        ok("SELECT key_id FROM key_verifications_v1 LIMIT 10, 5", &c)
            .sql
            .ends_with(" LIMIT 5 OFFSET 10")
    );
    // Subqueries and CTEs too.
    let sql = ok(
        "WITH x AS (SELECT key_id FROM key_verifications_v1 LIMIT 500) SELECT * FROM (SELECT key_id FROM x) WHERE key_id IN (SELECT key_id FROM key_verifications_v1)",
        &c,
    )
    .sql;
    assert_eq!(sql.matches(" LIMIT 100").count(), 4, "{sql}");
    assert!(!sql.contains("LIMIT 500"));
}

#[test]
fn retention_check() {
    let c = ctx(); // 30 days
    let e = err(
        "SELECT count() FROM key_verifications_v1 WHERE time >= now() - INTERVAL 60 DAY",
        &c,
    );
    assert_eq!(e.code, RangeExceedsRetention);
    // now = 2025-06-15 12:00 UTC; 60 days back is 2025-04-16; 30 days back starts 2025-05-16.
    assert_eq!(
        e.detail,
        "Cannot query data older than 30 days. Your query attempts to access data from 2025-04-16, but only data from 2025-05-16 onwards is available."
    );
    ok(
        "SELECT count() FROM key_verifications_v1 WHERE time >= now() - INTERVAL 30 DAY",
        &c,
    );
    for q in [
        "SELECT 1 FROM key_verifications_v1 WHERE time > '2025-01-01'",
        "SELECT 1 FROM key_verifications_v1 WHERE time = '2025-01-01 00:00:00'",
        "SELECT 1 FROM key_verifications_v1 WHERE time >= '2025-01-01T00:00:00Z'",
        "SELECT 1 FROM key_verifications_v1 WHERE now() - INTERVAL 2 MONTH <= time",
        "SELECT 1 FROM key_verifications_v1 AS v WHERE v.time BETWEEN '2025-01-01' AND '2025-06-01'",
        "SELECT 1 FROM key_verifications_v1 WHERE time >= 1700000000000",
        "SELECT 1 FROM key_verifications_v1 WHERE time >= toUnixTimestamp(now() - INTERVAL 1 YEAR) * 1000",
        "SELECT 1 FROM key_verifications_v1 WHERE outcome = 'VALID' AND time >= toStartOfMonth(now() - toIntervalMonth(2))",
        "SELECT 1 FROM key_verifications_per_day_v1 WHERE time >= toDate('2025-01-01')",
        "SELECT 1 FROM key_verifications_per_hour_v1 WHERE time >= date_trunc('day', now() - INTERVAL 40 DAY)",
        "SELECT * FROM (SELECT 1 FROM key_verifications_v1 WHERE time >= today() - INTERVAL 31 DAY)",
        "SELECT 1 FROM key_verifications_v1 WHERE time >= fromUnixTimestamp64Milli(1700000000000)",
    ] {
        assert_eq!(err(q, &c).code, RangeExceedsRetention, "{q}");
    }
    for q in [
        // Upper bounds, unparseable bounds and no bound at all pass: the CTE filters.
        "SELECT 1 FROM key_verifications_v1 WHERE time < now() - INTERVAL 60 DAY",
        "SELECT 1 FROM key_verifications_v1 WHERE time >= spent_credits",
        "SELECT 1 FROM key_verifications_v1",
        "SELECT 1 FROM key_verifications_v1 WHERE time >= '2025-06-01'",
        "SELECT 1 FROM key_verifications_v1 WHERE time >= toUnixTimestamp(now() - INTERVAL 1 HOUR) * 1000",
    ] {
        ok(q, &c);
    }
    // No limit configured: nothing to check, and no time filter in the CTEs.
    let unlimited = QueryContext {
        retention_days: 0,
        ..ctx()
    };
    let sql = ok(
        "SELECT 1 FROM key_verifications_v1 WHERE time >= '2020-01-01'",
        &unlimited,
    )
    .sql;
    assert!(!sql.contains("time_m >="), "{sql}");
    // 60 days configured: 60 passes, 90 does not.
    let sixty = QueryContext {
        retention_days: 60,
        ..ctx()
    };
    ok(
        "SELECT 1 FROM key_verifications_v1 WHERE time >= now() - INTERVAL 60 DAY",
        &sixty,
    );
    assert!(err(
        "SELECT 1 FROM key_verifications_v1 WHERE time >= now() - INTERVAL 90 DAY",
        &sixty
    )
    .detail
    .contains("60 days"));
}

#[test]
fn strings_are_always_parameters() {
    let evil = "x'); DROP TABLE keys; --";
    let q = format!(
        "SELECT count() FROM key_verifications_v1 WHERE outcome = '{}'",
        evil.replace('\'', "''")
    );
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let c = ok(&q, &ctx_for(Family::Verifications, dialect, "ws_a"));
        assert!(!c.sql.contains("DROP"), "{}", c.sql);
        assert!(c.params.contains(&Param::Text(evil.into())));
        assert_eq!(c.params[0], Param::Text("ws_a".into()));
    }
    // The workspace id never appears in the SQL either.
    let c = ok(
        "SELECT 1 FROM key_verifications_v1",
        &ctx_for(Family::Verifications, Dialect::Sqlite, "ws_a"),
    );
    assert!(!c.sql.contains("ws_a"));
}

#[test]
fn placeholders_per_dialect_and_unused_params_dropped() {
    let q = "SELECT count() FROM key_verifications_v1 WHERE time >= '2025-06-14' AND outcome IN ('VALID', 'EXPIRED', 'VALID')";
    let s = ok(q, &ctx());
    assert!(
        s.sql.contains("?1") && s.sql.contains("?3") && !s.sql.contains('$'),
        "{}",
        s.sql
    );
    // The date literal became a number, so it is no parameter; 'VALID' is interned.
    assert_eq!(
        s.params,
        vec![
            Param::Text("ws_a".into()),
            Param::Text("VALID".into()),
            Param::Text("EXPIRED".into())
        ]
    );
    let p = ok(
        q,
        &ctx_for(Family::Verifications, Dialect::Postgres, "ws_a"),
    );
    assert!(
        p.sql.contains("$1") && p.sql.contains("$3") && !p.sql.contains('?'),
        "{}",
        p.sql
    );
    assert_eq!(p.params.len(), 3);
}

#[test]
fn scope_filters_in_every_cte() {
    let ids = vec!["ks_1".to_string(), "ks_2".to_string()];
    let c = QueryContext {
        scope: Some(&ids),
        ..ctx()
    };
    let s = ok(
        "SELECT 1 FROM key_verifications_v1, key_verifications_per_day_v1",
        &c,
    );
    assert_eq!(
        s.sql.matches("key_space_id IN (?2, ?3)").count(),
        2,
        "{}",
        s.sql
    );
    let empty: Vec<String> = Vec::new();
    let c = QueryContext {
        scope: Some(&empty),
        ..ctx()
    };
    assert!(ok("SELECT 1 FROM key_verifications_v1", &c)
        .sql
        .contains("AND 1 = 0"));
    let rl = QueryContext {
        scope: Some(&ids),
        ..ctx_for(Family::Ratelimits, Dialect::Postgres, "ws_a")
    };
    assert!(ok("SELECT 1 FROM ratelimits_v1", &rl)
        .sql
        .contains("namespace_id IN (CAST($2 AS TEXT), CAST($3 AS TEXT))"));
}

#[test]
fn user_ctes_are_renamed() {
    let s = ok(
        "WITH Recent AS (SELECT key_id FROM key_verifications_v1) SELECT * FROM recent",
        &ctx(),
    );
    assert!(s.sql.contains("\"u_recent\" AS (SELECT"), "{}", s.sql);
    assert!(s.sql.contains("FROM \"u_recent\" AS"), "{}", s.sql);
    // A CTE named like a physical table reads the CTE, never the table.
    let s = ok("WITH key_verifications AS (SELECT key_id FROM key_verifications_v1) SELECT * FROM key_verifications", &ctx());
    assert!(
        s.sql.contains("FROM \"u_key_verifications\" AS"),
        "{}",
        s.sql
    );
    // Only the public CTEs name physical tables.
    assert_eq!(
        s.sql.matches("FROM key_verifications ").count(),
        1,
        "{}",
        s.sql
    );
}

#[test]
fn output_kinds() {
    let s = ok(
        "SELECT time, toStartOfDay(time) AS d, toDate(time) AS dd, toStartOfMonth(time) AS m, count() AS c, \
         avg(latency) AS l, groupArray(outcome) AS o, tags, outcome, has(tags, 'a') AS h, \
         spent_credits / 2 AS half, toUnixTimestamp(time) AS ts, NULL AS n \
         FROM key_verifications_v1 GROUP BY time, tags, outcome, spent_credits",
        &ctx(),
    );
    let kinds: Vec<(&str, ValueKind)> = s
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.kind))
        .collect();
    use ValueKind as K;
    assert_eq!(
        kinds,
        vec![
            ("time", K::TimeMs),
            ("d", K::DateTime),
            ("dd", K::Date),
            ("m", K::Date),
            ("c", K::Int),
            ("l", K::Float),
            ("o", K::Array),
            ("tags", K::Array),
            ("outcome", K::Text),
            ("h", K::Bool),
            ("half", K::Float),
            ("ts", K::Int),
            ("n", K::Unknown),
        ]
    );
    let rl = ctx_for(Family::Ratelimits, Dialect::Sqlite, "ws_a");
    let s = ok("SELECT * FROM ratelimits_v1", &rl);
    let kinds: Vec<ValueKind> = s.columns.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        vec![
            K::Text,
            K::TimeMs,
            K::Text,
            K::Text,
            K::Text,
            K::Bool,
            K::Float,
            K::Text,
            K::Int,
            K::Int,
            K::TimeMs,
            K::Int
        ]
    );
    let s = ok("SELECT * FROM ratelimits_per_month_v1", &rl);
    assert_eq!(s.columns[0].kind, K::Date);
    assert_eq!(
        s.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        [
            "time",
            "workspace_id",
            "namespace_id",
            "identifier",
            "passed",
            "total",
            "passed_tokens",
            "total_tokens"
        ]
    );
}

#[test]
fn postgres_output_columns_have_definite_types() {
    let c = ctx_for(Family::Verifications, Dialect::Postgres, "ws_a");
    let s = ok("SELECT outcome, sum(spent_credits) AS s, avg(latency) AS a, has(tags, 'a') AS h, groupArray(key_id) AS g FROM key_verifications_v1 GROUP BY outcome, tags", &c);
    assert!(
        s.sql
            .contains("CAST(\"t1\".\"outcome\" AS TEXT) AS \"outcome\""),
        "{}",
        s.sql
    );
    assert!(s.sql.contains("AS BIGINT) AS \"s\""), "{}", s.sql);
    assert!(s.sql.contains("AS DOUBLE PRECISION) AS \"a\""), "{}", s.sql);
    assert!(s.sql.contains("AS BOOLEAN) AS \"h\""), "{}", s.sql);
    assert!(s.sql.contains("AS TEXT) AS \"g\""), "{}", s.sql);
}

#[test]
fn refused_constructs_are_400s_not_panics() {
    for q in [
        "WITH RECURSIVE r AS (SELECT 1) SELECT * FROM r",
        "SELECT 1 FROM key_verifications_v1 ARRAY JOIN tags AS t",
        "SELECT 1 FROM key_verifications_v1 FORMAT JSON",
        "SELECT 1 FROM key_verifications_v1 LIMIT 5 BY key_id",
        "SELECT 1 FROM key_verifications_v1 WHERE key_id = $1",
        "SELECT count() OVER () FROM key_verifications_v1",
        "SELECT (1, 2) FROM key_verifications_v1",
        "SELECT DISTINCT ON (key_id) key_id FROM key_verifications_v1",
        "SELECT 1 FROM key_verifications_v1 GROUP BY key_id WITH TOTALS",
        "SELECT 1 FROM key_verifications_v1 PREWHERE outcome = 'VALID'",
        "SELECT formatDateTime(time, '%Q') FROM key_verifications_v1",
        "SELECT quantile(2)(latency) FROM key_verifications_v1",
        "SELECT 1 FROM key_verifications_v1 ORDER BY 5",
    ] {
        let e = err(q, &ctx());
        assert_eq!(e.code, InvalidQuery, "{q}: {e}");
    }
}

#[test]
fn sanitized_database_errors() {
    let s = |m: &str| sanitize_db_error(Dialect::Sqlite, m, None);
    assert_eq!(
        s("no such column: t1.secret"),
        "Unknown identifier in analytics query"
    );
    assert_eq!(
        s("no such function: kw_quantile"),
        "Unknown function in analytics query"
    );
    assert_eq!(
        s("wrong number of arguments to function substr()"),
        "Unknown function in analytics query"
    );
    assert_eq!(s("near \"FROM\": syntax error"), "Invalid SQL syntax");
    assert_eq!(
        s("no such table: key_verifications"),
        "Invalid analytics query"
    );
    assert_eq!(s("malformed JSON"), "Invalid analytics query");
    let p = |m: &str, c: Option<&str>| sanitize_db_error(Dialect::Postgres, m, c);
    assert_eq!(
        p("column \"x\" does not exist", Some("42703")),
        "Unknown identifier in analytics query"
    );
    assert_eq!(
        p("function foo(bigint) does not exist", Some("42883")),
        "Unknown function in analytics query"
    );
    assert_eq!(
        p("syntax error at or near \"x\"", Some("42601")),
        "Invalid SQL syntax"
    );
    assert_eq!(
        p("relation \"keys\" does not exist", Some("42P01")),
        "Invalid analytics query"
    );
    assert_eq!(
        p("column \"x\" does not exist", None),
        "Unknown identifier in analytics query"
    );
    assert_eq!(
        p("division by zero", Some("22012")),
        "Invalid analytics query"
    );
}

#[test]
fn deep_queries_fit_a_small_stack() {
    // Tokio's worker threads have 2 MiB; the parser stops at depth 50, the compiler at 100.
    let queries = [
        format!(
            "SELECT {}1{} FROM key_verifications_v1",
            "(".repeat(45),
            ")".repeat(45)
        ),
        format!(
            "SELECT {}1{} AS x FROM key_verifications_v1",
            "abs(".repeat(45),
            ")".repeat(45)
        ),
        format!("SELECT {} 1 FROM key_verifications_v1", "NOT ".repeat(45)),
        format!(
            "SELECT 1 FROM key_verifications_v1 WHERE {}",
            vec!["outcome = 'a'"; 95].join(" OR ")
        ),
        format!("SELECT {}1 FROM key_verifications_v1", "1 + ".repeat(90)),
        format!(
            "SELECT 1 FROM {}key_verifications_v1{}",
            "(SELECT * FROM ".repeat(20),
            ")".repeat(20)
        ),
        format!(
            "SELECT {}1{} FROM key_verifications_v1",
            "[".repeat(45),
            "]".repeat(45)
        ),
        format!(
            "SELECT 1 FROM key_verifications_v1 WHERE time >= {}now(){}",
            "toStartOfDay(".repeat(40),
            ")".repeat(40)
        ),
    ];
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            for q in &queries {
                let _ = compile(q, &ctx());
                let _ = compile(
                    q,
                    &ctx_for(Family::Verifications, Dialect::Postgres, "ws_a"),
                );
            }
        })
        .unwrap();
    handle.join().unwrap();
}
