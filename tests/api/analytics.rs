//! `analytics.getVerifications`, `analytics.getRatelimits` and `analytics.getUsage` over real
//! events: the acceptance checks of the reference (§1, §2), tenant isolation against attempts to
//! escape the sandbox, the rollups against the raw rows, retention, caps and the quota.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with_analytics, TestApp, TestResponse};
use keyward::domain::analytics::AnalyticsSettings;

const GET_VERIFICATIONS: &str = "/v2/analytics.getVerifications";
const GET_RATELIMITS: &str = "/v2/analytics.getRatelimits";
const GET_USAGE: &str = "/v2/analytics.getUsage";

/// Runs a verification query with `key`, asserting a 200; answers `data`.
async fn rows_as(app: &TestApp, key: &str, query: &str) -> Vec<Value> {
    let r = app
        .post_with_key(GET_VERIFICATIONS, key, json!({ "query": query }))
        .await;
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    r.assert_ok(GET_VERIFICATIONS);
    r.body["data"].as_array().unwrap().clone()
}

async fn rows(app: &TestApp, query: &str) -> Vec<Value> {
    rows_as(app, &app.root_key, query).await
}

async fn query_error(app: &TestApp, query: &str) -> TestResponse {
    app.post(GET_VERIFICATIONS, json!({ "query": query })).await
}

/// Creates a key in `api` and returns `(keyId, key)`.
async fn create_key(app: &TestApp, api: &str, extra: Value) -> (String, String) {
    let mut body = json!({ "apiId": api });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let r = app.post("/v2/keys.createKey", body).await;
    r.assert_ok("/v2/keys.createKey");
    (
        r.body["data"]["keyId"].as_str().unwrap().to_string(),
        r.body["data"]["key"].as_str().unwrap().to_string(),
    )
}

async fn verify_times(app: &TestApp, key: &str, times: usize, extra: Value) {
    for _ in 0..times {
        let mut body = json!({ "key": key });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        app.verify(body).await;
    }
}

fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[tokio::test]
async fn a_root_key_without_analytics_permission_is_refused() {
    let app = spawn_app().await;
    let (_, key) = app.root_key_with(&["api.*.read_api"]).await;
    let r = app
        .post_with_key(
            GET_VERIFICATIONS,
            &key,
            json!({"query": "SELECT COUNT(*) FROM key_verifications_v1"}),
        )
        .await;
    r.assert_error(
        403,
        "unkey/authorization/insufficient_permissions",
        "Insufficient Permissions",
    );
    assert!(r.detail().contains("api.*.read_analytics"), "{}", r.body);
    let r = app
        .post_with_key(
            GET_RATELIMITS,
            &key,
            json!({"query": "SELECT COUNT(*) FROM ratelimits_v1"}),
        )
        .await;
    r.assert_error(
        403,
        "unkey/authorization/insufficient_permissions",
        "Insufficient Permissions",
    );
    assert!(
        r.detail().contains("ratelimit.*.read_analytics"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn counts_are_numbers_and_each_workspace_reads_only_its_own_rows() {
    let app = spawn_app().await;
    let api = app.create_api("alpha").await;
    let (_, key) = create_key(&app, &api, json!({})).await;
    verify_times(&app, &key, 5, json!({})).await;

    // A second workspace with its own API, key and verifications.
    let other = keyward::domain::admin::create_workspace(&app.store, app.now(), "other")
        .await
        .unwrap();
    let (_, other_root) = app
        .root_key_in(
            &other.id,
            &[
                "api.*.read_analytics",
                "api.*.create_api",
                "api.*.create_key",
                "api.*.verify_key",
            ],
        )
        .await;
    let r = app
        .post_with_key("/v2/apis.createApi", &other_root, json!({"name": "beta"}))
        .await;
    let other_api = r.body["data"]["apiId"].as_str().unwrap().to_string();
    let r = app
        .post_with_key(
            "/v2/keys.createKey",
            &other_root,
            json!({"apiId": other_api}),
        )
        .await;
    let other_key = r.body["data"]["key"].as_str().unwrap().to_string();
    for _ in 0..2 {
        app.post_with_key("/v2/keys.verifyKey", &other_root, json!({"key": other_key}))
            .await
            .assert_ok("/v2/keys.verifyKey");
    }
    app.events_written().await;

    let data = rows(&app, "SELECT COUNT(*) as count FROM key_verifications_v1").await;
    assert_eq!(data.len(), 1);
    assert!(data[0]["count"].is_number(), "{data:?}");
    assert_eq!(number(&data[0]["count"]), 5.0);

    let data = rows_as(
        &app,
        &other_root,
        "SELECT COUNT(*) as count FROM key_verifications_v1",
    )
    .await;
    assert_eq!(number(&data[0]["count"]), 2.0);

    // Every trick reads the caller's rows only.
    let ws = &app.workspace_id;
    for query in [
        format!("SELECT COUNT(*) AS count FROM key_verifications_v1 WHERE workspace_id = '{ws}' OR 1=1"),
        format!("SELECT COUNT(*) AS count FROM key_verifications_v1 WHERE 1=1 OR workspace_id = '{ws}'"),
        "SELECT COUNT(*) AS count FROM (SELECT * FROM key_verifications_v1) AS t".to_string(),
        "SELECT COUNT(*) AS count FROM key_verifications_v1 /* comment */ WHERE 1=1 -- OR true".to_string(),
        "WITH k AS (SELECT * FROM key_verifications_v1) SELECT COUNT(*) AS count FROM k".to_string(),
        "WITH key_verifications AS (SELECT * FROM key_verifications_v1) SELECT COUNT(*) AS count FROM key_verifications".to_string(),
        "SELECT COUNT(*) AS count FROM key_verifications_v1 a JOIN key_verifications_v1 b ON a.request_id = b.request_id".to_string(),
        "SELECT COUNT(*) AS count FROM key_verifications_v1 WHERE key_id IN (SELECT key_id FROM key_verifications_v1)".to_string(),
    ] {
        let data = rows_as(&app, &other_root, &query).await;
        assert_eq!(number(&data[0]["count"]), 2.0, "{query}: {data:?}");
    }
    let data = rows_as(
        &app,
        &other_root,
        "SELECT workspace_id FROM key_verifications_v1 UNION ALL SELECT workspace_id FROM key_verifications_per_day_v1",
    )
    .await;
    assert!(!data.is_empty());
    assert!(
        data.iter()
            .all(|row| row["workspace_id"] == other.id.as_str()),
        "{data:?}"
    );
}

#[tokio::test]
async fn escapes_from_the_sandbox_are_refused_with_the_documented_codes() {
    let app = spawn_app().await;
    let long = format!(
        "SELECT COUNT(*) FROM key_verifications_v1 WHERE key_id = '{}'",
        "k".repeat(16_400)
    );
    let cases: Vec<(String, &str, Option<&str>)> = vec![
        (
            "DELETE FROM key_verifications_v1 WHERE time < now()".into(),
            "invalid_analytics_query_type",
            None,
        ),
        (
            "SELECT * FROM system.tables".into(),
            "invalid_analytics_table",
            None,
        ),
        (
            "SELECT * FROM default.key_verifications_raw_v2".into(),
            "invalid_analytics_table",
            None,
        ),
        (
            "SELECT * FROM key_verifications".into(),
            "invalid_analytics_table",
            None,
        ),
        ("SELECT * FROM keys".into(), "invalid_analytics_table", None),
        (
            "SELECT * FROM sqlite_master".into(),
            "invalid_analytics_table",
            None,
        ),
        (
            "SELECT * FROM pg_catalog.pg_tables".into(),
            "invalid_analytics_table",
            None,
        ),
        (
            "SELECT * FROM information_schema.tables".into(),
            "invalid_analytics_table",
            None,
        ),
        (
            "SELECT key_id FROM key_verifications_v1 UNION ALL SELECT hash FROM keys".into(),
            "invalid_analytics_table",
            None,
        ),
        (
            "SELECT (SELECT COUNT(*) FROM workspaces) FROM key_verifications_v1".into(),
            "invalid_analytics_table",
            None,
        ),
        (
            "SELECT * FROM ratelimits_v1".into(),
            "invalid_analytics_table",
            None,
        ),
        (
            "WITH key_verifications_v1 AS (SELECT 1) SELECT * FROM key_verifications_v1".into(),
            "invalid_analytics_table",
            None,
        ),
        (
            "WITH KEY_VERIFICATIONS_V1 AS (SELECT 1) SELECT * FROM key_verifications_v1".into(),
            "invalid_analytics_table",
            None,
        ),
        (
            "SELECT file('/etc/passwd') FROM key_verifications_v1".into(),
            "invalid_analytics_function",
            Some("file"),
        ),
        (
            "SELECT sleep(3) FROM key_verifications_v1".into(),
            "invalid_analytics_function",
            None,
        ),
        (
            "SELECT * FROM url('http://x', CSV)".into(),
            "invalid_analytics_function",
            None,
        ),
        (
            "SELECT 1 FROM key_verifications_v1; SELECT 2 FROM key_verifications_v1".into(),
            "invalid_analytics_query",
            None,
        ),
        (
            "SELECT * FROM key_verifications_v1 SETTINGS max_execution_time = 0".into(),
            "invalid_analytics_query",
            None,
        ),
        ("".into(), "invalid_analytics_query", None),
        (long, "invalid_analytics_query", Some("maximum length")),
        (
            "SELECT nonexistent_column FROM key_verifications_v1".into(),
            "invalid_analytics_query",
            Some("Unknown"),
        ),
        ("SELECT 1".into(), "invalid_analytics_query", None),
    ];
    let mut failures = Vec::new();
    for (query, code, detail) in &cases {
        let r = query_error(&app, query).await;
        let doc_path = format!("user/bad_request/{code}");
        if let Err(mismatch) = r.check_error(400, &doc_path, "Bad Request") {
            failures.push(format!("{}: {mismatch}", &query[..query.len().min(80)]));
            continue;
        }
        if let Some(detail) = detail {
            if !r.detail().contains(detail) {
                failures.push(format!("{query}: detail {:?} lacks {detail:?}", r.detail()));
            }
        }
        for leak in [
            "key_verifications_per_",
            "ratelimit_events",
            "latency_us",
            "time_m",
            "u_",
        ] {
            if r.detail().contains(leak) && !query.contains(leak) {
                failures.push(format!("{query}: detail leaks {leak:?}: {}", r.detail()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // A trailing semicolon is fine.
    rows(&app, "SELECT COUNT(*) AS n FROM key_verifications_v1;").await;
}

#[tokio::test]
async fn api_scoped_permissions_read_only_those_apis() {
    let app = spawn_app().await;
    let first = app.create_api("first").await;
    let second = app.create_api("second").await;
    let (first_key_id, first_key) = create_key(&app, &first, json!({})).await;
    let (_, second_key) = create_key(&app, &second, json!({})).await;
    verify_times(&app, &first_key, 2, json!({})).await;
    verify_times(&app, &second_key, 3, json!({})).await;
    app.events_written().await;
    let spaces = rows(
        &app,
        "SELECT DISTINCT key_id, key_space_id FROM key_verifications_v1",
    )
    .await;
    let space_of = |key_id: &str| {
        spaces
            .iter()
            .find(|r| r["key_id"] == key_id)
            .map(|r| r["key_space_id"].as_str().unwrap().to_string())
            .unwrap()
    };
    let first_space = space_of(&first_key_id);
    let second_space = spaces
        .iter()
        .map(|r| r["key_space_id"].as_str().unwrap().to_string())
        .find(|s| *s != first_space)
        .unwrap();

    let (_, scoped) = app
        .root_key_with(&[&format!("api.{first}.read_analytics")])
        .await;
    let data = rows_as(
        &app,
        &scoped,
        "SELECT key_space_id, COUNT(*) as count FROM key_verifications_v1 GROUP BY key_space_id",
    )
    .await;
    assert_eq!(data.len(), 1, "{data:?}");
    assert_eq!(data[0]["key_space_id"], first_space.as_str());
    assert_eq!(number(&data[0]["count"]), 2.0);
    let data = rows_as(
        &app,
        &scoped,
        &format!("SELECT * FROM key_verifications_v1 WHERE key_space_id = '{second_space}'"),
    )
    .await;
    assert!(data.is_empty(), "{data:?}");

    let (_, nowhere) = app
        .root_key_with(&["api.api_doesnotexist.read_analytics"])
        .await;
    let data = rows_as(
        &app,
        &nowhere,
        "SELECT COUNT(*) AS count FROM key_verifications_v1",
    )
    .await;
    assert!(
        data.is_empty() || number(&data[0]["count"]) == 0.0,
        "{data:?}"
    );
}

#[tokio::test]
async fn functions_of_the_reference_compute_correct_values() {
    let app = spawn_app().await;
    let api = app.create_api("functions").await;
    let (_, a) = create_key(&app, &api, json!({})).await;
    let (_, b) = create_key(&app, &api, json!({"enabled": false})).await;
    verify_times(&app, &a, 3, json!({"tags": ["a", "path=/x"]})).await;
    verify_times(&app, &a, 1, json!({"tags": ["b"]})).await;
    verify_times(&app, &b, 2, json!({"tags": ["a"]})).await;
    app.events_written().await;

    let data = rows(
        &app,
        "SELECT count(DISTINCT key_id) AS keys FROM key_verifications_v1",
    )
    .await;
    assert_eq!(number(&data[0]["keys"]), 2.0);
    let data = rows(
        &app,
        "SELECT count() AS n FROM key_verifications_v1 WHERE has(tags, 'a')",
    )
    .await;
    assert_eq!(number(&data[0]["n"]), 5.0);
    let data = rows(
        &app,
        "SELECT arrayJoin(tags) AS tag, count() AS n FROM key_verifications_v1 GROUP BY tag ORDER BY tag",
    )
    .await;
    let tags: Vec<(String, f64)> = data
        .iter()
        .map(|r| (r["tag"].as_str().unwrap().to_string(), number(&r["n"])))
        .collect();
    assert_eq!(
        tags,
        vec![
            ("a".into(), 5.0),
            ("b".into(), 1.0),
            ("path=/x".into(), 3.0)
        ]
    );
    let data = rows(
        &app,
        "SELECT countIf(outcome = 'VALID') AS valid, COUNTIF(outcome = 'DISABLED') AS disabled FROM key_verifications_v1",
    )
    .await;
    assert_eq!(number(&data[0]["valid"]), 4.0);
    assert_eq!(number(&data[0]["disabled"]), 2.0);
    let data = rows(
        &app,
        "SELECT arrayFilter(x -> startsWith(x, 'path='), tags) AS paths FROM key_verifications_v1 WHERE hasAny(tags, ['path=/x']) LIMIT 1",
    )
    .await;
    assert_eq!(data[0]["paths"], json!(["path=/x"]));
    // The raw table's columns, typed as the reference says.
    let data = rows(&app, "SELECT * FROM key_verifications_v1 LIMIT 1").await;
    let row = &data[0];
    assert!(row["time"].is_number(), "{row}");
    assert!(row["tags"].is_array(), "{row}");
    assert_eq!(row["region"], "test-region");
    assert_eq!(row["source"], "api");
    assert!(row["latency"].is_number(), "{row}");
    assert!(row["spent_credits"].is_number(), "{row}");
    assert_eq!(row["identity_id"], "");
}

#[tokio::test]
async fn time_is_compared_by_meaning_and_rollups_answer_dates() {
    let app = spawn_app().await;
    let api = app.create_api("times").await;
    let (_, key) = create_key(&app, &api, json!({})).await;
    let now = app.now();
    // Two verifications ten days ago, three now.
    app.clock.set_ms(now - 10 * 86_400_000);
    verify_times(&app, &key, 2, json!({})).await;
    app.clock.set_ms(now);
    verify_times(&app, &key, 3, json!({})).await;
    app.events_written().await;

    for (query, expected) in [
        ("SELECT count() AS n FROM key_verifications_v1 WHERE time >= now() - INTERVAL 7 DAY", 3.0),
        ("SELECT count() AS n FROM key_verifications_v1 WHERE time < now() - INTERVAL 7 DAY", 2.0),
        ("SELECT count() AS n FROM key_verifications_v1 WHERE time >= toUnixTimestamp(now() - INTERVAL 1 HOUR) * 1000", 3.0),
        ("SELECT count() AS n FROM key_verifications_v1 WHERE fromUnixTimestamp64Milli(time) >= now() - INTERVAL 7 DAY", 3.0),
        ("SELECT sum(count) AS n FROM key_verifications_per_day_v1 WHERE time >= now() - INTERVAL 7 DAY", 3.0),
        ("SELECT sum(count) AS n FROM key_verifications_per_hour_v1 WHERE time >= today() - INTERVAL 30 DAY", 5.0),
    ] {
        let data = rows(&app, query).await;
        assert_eq!(number(&data[0]["n"]), expected, "{query}: {data:?}");
    }
    let data = rows(
        &app,
        "SELECT time, sum(count) AS n FROM key_verifications_per_day_v1 GROUP BY time ORDER BY time",
    )
    .await;
    assert_eq!(data.len(), 2, "{data:?}");
    let day = data[1]["time"].as_str().unwrap();
    assert!(day.ends_with("T00:00:00Z") && day.len() == 20, "{day}");
    let data = rows(
        &app,
        "SELECT toStartOfDay(fromUnixTimestamp64Milli(time)) AS day, count() AS n FROM key_verifications_v1 GROUP BY day ORDER BY day",
    )
    .await;
    assert_eq!(data.len(), 2, "{data:?}");
    assert_eq!(data[1]["day"].as_str().unwrap(), day);
}

#[tokio::test]
async fn every_rollup_agrees_with_the_raw_rows() {
    let app = spawn_app().await;
    let api = app.create_api("rollups").await;
    let (_, plain) = create_key(&app, &api, json!({})).await;
    let (_, metered) = create_key(&app, &api, json!({"credits": {"remaining": 3}})).await;
    let (_, limited) = create_key(
        &app,
        &api,
        json!({"ratelimits": [{"name": "per-key", "limit": 1, "duration": 60000, "autoApply": true}]}),
    )
    .await;
    verify_times(&app, &plain, 4, json!({"tags": ["x"]})).await;
    verify_times(&app, &metered, 5, json!({})).await;
    verify_times(&app, &limited, 3, json!({})).await;
    app.events_written().await;

    let raw = rows(
        &app,
        "SELECT outcome, count() AS c, sum(spent_credits) AS s FROM key_verifications_v1 GROUP BY outcome ORDER BY outcome",
    )
    .await;
    let outcomes: Vec<&str> = raw.iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(
        outcomes,
        ["RATE_LIMITED", "USAGE_EXCEEDED", "VALID"],
        "{raw:?}"
    );
    for table in ["minute", "hour", "day", "month"] {
        let rolled = rows(
            &app,
            &format!(
                "SELECT outcome, SUM(count) AS c, sum(spent_credits) AS s FROM key_verifications_per_{table}_v1 GROUP BY outcome ORDER BY outcome"
            ),
        )
        .await;
        assert_eq!(rolled.len(), raw.len(), "{table}: {rolled:?}");
        for (r, w) in raw.iter().zip(&rolled) {
            assert_eq!(r["outcome"], w["outcome"], "{table}");
            assert_eq!(number(&r["c"]), number(&w["c"]), "{table}");
            assert_eq!(number(&r["s"]), number(&w["s"]), "{table}");
        }
    }
}

#[tokio::test]
async fn retention_limits_how_far_back_a_query_reaches() {
    let app = spawn_app_with_analytics(AnalyticsSettings {
        retention_days: 30,
        ..Default::default()
    })
    .await;
    let r = query_error(
        &app,
        "SELECT count() FROM key_verifications_v1 WHERE time >= now() - INTERVAL 60 DAY",
    )
    .await;
    r.assert_error(
        400,
        "user/bad_request/query_range_exceeds_retention",
        "Bad Request",
    );
    assert!(r.detail().contains("30 days"), "{}", r.body);
    rows(
        &app,
        "SELECT count() AS n FROM key_verifications_v1 WHERE time >= now() - INTERVAL 30 DAY",
    )
    .await;
}

#[tokio::test]
async fn the_row_cap_limits_and_the_size_cap_refuses() {
    let app = spawn_app_with_analytics(AnalyticsSettings {
        max_rows: 3,
        max_response_bytes: 2_000,
        ..Default::default()
    })
    .await;
    let api = app.create_api("caps").await;
    let (_, key) = create_key(&app, &api, json!({})).await;
    verify_times(&app, &key, 20, json!({})).await;
    app.events_written().await;
    let data = rows(
        &app,
        "SELECT key_id FROM key_verifications_v1 LIMIT 999999999",
    )
    .await;
    assert_eq!(data.len(), 3);
    let data = rows(&app, "SELECT key_id FROM key_verifications_v1").await;
    assert_eq!(data.len(), 3);
    let r = query_error(
        &app,
        "SELECT a.request_id, b.request_id AS other, a.key_id, a.key_space_id FROM key_verifications_v1 a JOIN key_verifications_v1 b ON a.key_id = b.key_id",
    )
    .await;
    // Three rows of about 170 bytes each stay under the cap; raise the row cap to break it.
    assert_eq!(r.status, 200, "{}", r.body);
    let app = spawn_app_with_analytics(AnalyticsSettings {
        max_response_bytes: 2_000,
        ..Default::default()
    })
    .await;
    let api = app.create_api("caps").await;
    let (_, key) = create_key(&app, &api, json!({})).await;
    verify_times(&app, &key, 20, json!({})).await;
    app.events_written().await;
    let r = query_error(
        &app,
        "SELECT request_id, key_id, key_space_id FROM key_verifications_v1",
    )
    .await;
    r.assert_error(
        422,
        "user/unprocessable_entity/query_memory_limit_exceeded",
        "Unprocessable Entity",
    );
    assert_eq!(
        r.detail(),
        "Query result exceeds the maximum response size."
    );
}

#[tokio::test]
async fn the_hourly_query_quota_answers_429() {
    let app = spawn_app_with_analytics(AnalyticsSettings {
        queries_per_hour: 1,
        ..Default::default()
    })
    .await;
    rows(&app, "SELECT count() AS n FROM key_verifications_v1").await;
    let r = query_error(&app, "SELECT count() AS n FROM key_verifications_v1").await;
    r.assert_error(
        429,
        "user/too_many_requests/query_quota_exceeded",
        "Too Many Requests",
    );
    assert_eq!(
        r.detail(),
        "Query quota exceeded for the current time window. Please try again later."
    );
    // A query refused before it runs does not count; an hour later the quota is back.
    app.clock.set_ms(app.now() + 2 * 3_600_000);
    rows(&app, "SELECT count() AS n FROM key_verifications_v1").await;
}

#[tokio::test]
async fn rate_limit_decisions_are_recorded_and_queryable() {
    let app = spawn_app().await;
    let body = |id: &str| json!({"namespace": "api-calls", "identifier": id, "limit": 2, "duration": 60000});
    for _ in 0..3 {
        app.post("/v2/ratelimit.limit", body("alice"))
            .await
            .assert_ok("/v2/ratelimit.limit");
    }
    app.post(
        "/v2/ratelimit.multiLimit",
        json!([body("bob"), {"namespace": "other", "identifier": "bob", "limit": 5, "duration": 1000, "cost": 2}]),
    )
    .await
    .assert_ok("/v2/ratelimit.multiLimit");
    app.events_written().await;

    let query = |q: &str| {
        let app = &app;
        let q = q.to_string();
        async move {
            let r = app.post(GET_RATELIMITS, json!({ "query": q })).await;
            r.assert_ok(GET_RATELIMITS);
            r.body["data"].as_array().unwrap().clone()
        }
    };
    let data = query(
        "SELECT identifier, passed, count() AS n FROM ratelimits_v1 GROUP BY identifier, passed ORDER BY identifier, passed",
    )
    .await;
    let seen: Vec<(String, bool, f64)> = data
        .iter()
        .map(|r| {
            (
                r["identifier"].as_str().unwrap().to_string(),
                r["passed"].as_bool().unwrap(),
                number(&r["n"]),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("alice".into(), false, 1.0),
            ("alice".into(), true, 2.0),
            ("bob".into(), true, 2.0)
        ]
    );
    let data = query("SELECT sum(total) AS t, sum(passed) AS p, sum(total_tokens) AS tokens FROM ratelimits_per_minute_v1").await;
    assert_eq!(number(&data[0]["t"]), 5.0);
    assert_eq!(number(&data[0]["p"]), 4.0);
    assert_eq!(number(&data[0]["tokens"]), 6.0);
    let data =
        query("SELECT * FROM ratelimits_v1 WHERE identifier = 'alice' ORDER BY time LIMIT 1").await;
    let row = &data[0];
    assert_eq!(row["limit"], 2);
    assert_eq!(row["remaining"], 1);
    assert!(
        row["reset_at"].is_number() && row["time"].is_number(),
        "{row}"
    );
    // Verification queries cannot read them.
    let r = query_error(&app, "SELECT * FROM ratelimits_v1").await;
    r.assert_error(
        400,
        "user/bad_request/invalid_analytics_table",
        "Bad Request",
    );

    // A namespace-scoped key reads only that namespace.
    let data = query(
        "SELECT DISTINCT namespace_id, identifier FROM ratelimits_v1 WHERE identifier = 'alice'",
    )
    .await;
    let namespace = data[0]["namespace_id"].as_str().unwrap().to_string();
    let (_, scoped) = app
        .root_key_with(&[&format!("ratelimit.{namespace}.read_analytics")])
        .await;
    let r = app
        .post_with_key(
            GET_RATELIMITS,
            &scoped,
            json!({"query": "SELECT DISTINCT namespace_id FROM ratelimits_v1"}),
        )
        .await;
    r.assert_ok(GET_RATELIMITS);
    assert_eq!(r.body["data"], json!([{ "namespace_id": namespace }]));
}

#[tokio::test]
async fn usage_is_a_zero_filled_series_by_outcome() {
    let app = spawn_app().await;
    let api = app.create_api("usage").await;
    let r = app
        .post(
            "/v2/identities.createIdentity",
            json!({"externalId": "cust_o.brien-1"}),
        )
        .await;
    r.assert_ok("/v2/identities.createIdentity");
    let (key_id, key) = create_key(
        &app,
        &api,
        json!({"credits": {"remaining": 2}, "externalId": "cust_o.brien-1"}),
    )
    .await;
    let (_, other) = create_key(&app, &api, json!({})).await;
    verify_times(&app, &key, 3, json!({})).await;
    verify_times(&app, &other, 1, json!({})).await;
    app.events_written().await;

    let usage = |body: Value| {
        let app = &app;
        async move {
            let r = app.post(GET_USAGE, body).await;
            r.assert_ok(GET_USAGE);
            r.body["data"].clone()
        }
    };
    let data = usage(json!({"keyId": key_id})).await;
    assert_eq!(data["granularity"], "day");
    let points = data["points"].as_array().unwrap();
    assert!(points.len() >= 30 && points.len() <= 32, "{}", points.len());
    assert_eq!(data["totals"]["total"], 3);
    assert_eq!(data["totals"]["valid"], 2);
    assert_eq!(data["totals"]["usageExceeded"], 1);
    assert_eq!(data["totals"]["spentCredits"], 2);
    assert_eq!(points.iter().filter(|p| p["total"] != 0).count(), 1);
    let data = usage(json!({"externalId": "cust_o.brien-1"})).await;
    assert_eq!(data["totals"]["total"], 3);
    // Any text is a literal, never SQL.
    let data = usage(json!({"externalId": "o'brien\\' OR 1=1 --"})).await;
    assert_eq!(data["totals"]["total"], 0);
    let data = usage(json!({"apiId": api})).await;
    assert_eq!(data["totals"]["total"], 4);
    let start = app.now() - 3_600_000;
    let data = usage(json!({"startTime": start, "endTime": app.now() + 1})).await;
    assert_eq!(data["granularity"], "minute");
    assert_eq!(data["totals"]["total"], 4);
    let data = usage(json!({"startTime": start, "granularity": "hour"})).await;
    assert_eq!(data["granularity"], "hour");

    let r = app
        .post(GET_USAGE, json!({"keyId": key_id, "apiId": api}))
        .await;
    r.assert_error(400, "unkey/application/invalid_input", "Bad Request");
    let r = app
        .post(GET_USAGE, json!({"startTime": 0, "granularity": "minute"}))
        .await;
    r.assert_error(400, "unkey/application/invalid_input", "Bad Request");
    let r = app
        .post(GET_USAGE, json!({"keyId": "key_doesnotexist"}))
        .await;
    r.assert_error(404, "unkey/data/key_not_found", "Not Found");
    let other_api = app.create_api("other").await;
    let (_, scoped) = app
        .root_key_with(&[&format!("api.{other_api}.read_analytics")])
        .await;
    let r = app
        .post_with_key(GET_USAGE, &scoped, json!({"keyId": key_id}))
        .await;
    r.assert_error(
        403,
        "unkey/authorization/insufficient_permissions",
        "Insufficient Permissions",
    );
}

#[tokio::test]
async fn a_query_past_its_deadline_answers_422() {
    let app = spawn_app_with_analytics(AnalyticsSettings {
        query_timeout: std::time::Duration::from_millis(1),
        ..Default::default()
    })
    .await;
    let api = app.create_api("deadline").await;
    let (_, key) = create_key(&app, &api, json!({})).await;
    verify_times(&app, &key, 25, json!({})).await;
    app.events_written().await;
    // 25^4 = 390,625 combinations: far more than a millisecond of work.
    let r = query_error(
        &app,
        "SELECT count() AS n FROM key_verifications_v1 a, key_verifications_v1 b, key_verifications_v1 c, key_verifications_v1 d WHERE a.latency + b.latency + c.latency + d.latency >= 0",
    )
    .await;
    r.assert_error(
        422,
        "user/unprocessable_entity/query_execution_timeout",
        "Unprocessable Entity",
    );
    assert_eq!(r.detail(), "Query execution was canceled or timed out.");
}

#[tokio::test]
async fn retention_prunes_many_old_events_in_chunks_and_keeps_the_recent_ones() {
    use keyward::model::{AnalyticsCutoffs, EventBatch, NewVerification};
    let app = spawn_app().await;
    let day = 86_400_000;
    let now = app.now();
    let request_ids: Vec<String> = (0..12_003).map(|i| format!("req_prune{i}")).collect();
    // 12,000 events 100 days old (more than two chunks of a prune), three of today.
    let verifications: Vec<NewVerification> = request_ids
        .iter()
        .enumerate()
        .map(|(i, request_id)| NewVerification {
            request_id,
            time_ms: if i < 12_000 { now - 100 * day } else { now },
            workspace_id: &app.workspace_id,
            api_id: "api_prune",
            key_space_id: "ks_prune",
            key_id: "key_prune",
            identity_id: None,
            outcome: "VALID",
            tags: "[]",
            spent_credits: 0,
            latency_us: 10,
            external_id: "",
            region: "test-region",
            source: "api",
        })
        .collect();
    let batch = EventBatch {
        verifications,
        ratelimits: Vec::new(),
        verification_counts: Vec::new(),
        ratelimit_counts: Vec::new(),
    };
    app.store.insert_events(&batch).await.unwrap();
    let stored = app
        .store
        .list_verifications("key_prune", 100_000)
        .await
        .unwrap();
    assert_eq!(stored.len(), 12_003);
    let cutoffs = AnalyticsCutoffs {
        raw_ms: now - 90 * day,
        day_ms: now - 365 * day,
        month_ms: now - 1095 * day,
    };
    // The server's own pruner runs once as it starts and may take part of them first.
    let removed = app.store.prune_analytics(&cutoffs).await.unwrap();
    assert!(removed <= 12_000, "removed {removed}");
    let left = app
        .store
        .list_verifications("key_prune", 100_000)
        .await
        .unwrap();
    assert_eq!(left.len(), 3, "today's events stay");
    assert!(left.iter().all(|e| e.time_ms == now));
    assert_eq!(app.store.prune_analytics(&cutoffs).await.unwrap(), 0);
}
