//! Regressions found by the schemathesis run of `scripts/fuzz.sh` against `/openapi.json`: each
//! test is one failure it reported, kept here so it cannot come back.

use serde_json::{json, Value};

use crate::helpers::spawn_app;

async fn openapi(app: &crate::helpers::TestApp) -> Value {
    app.client
        .get(format!("{}/openapi.json", app.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Errors are sent as `application/problem+json` to a client that accepts it (`Accept: */*`, as
/// most HTTP libraries send by default), and the document declared only `application/json`.
#[tokio::test]
async fn error_responses_are_documented_under_both_json_content_types() {
    let app = spawn_app().await;
    let request = app
        .client
        .post(format!("{}/v2/apis.getApi", app.base_url))
        .bearer_auth(&app.root_key)
        .header("accept", "*/*")
        .json(&json!({"apiId": "api_missing1"}));
    let response = app.send(request).await;
    response.assert_error(404, "unkey/data/api_not_found", "Not Found");
    assert_eq!(response.headers["content-type"], "application/problem+json");

    let doc = openapi(&app).await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.starts_with('2') {
                    continue;
                }
                let content = response["content"].as_object().unwrap();
                assert!(
                    content.contains_key("application/json")
                        && content.contains_key("application/problem+json"),
                    "{method} {path} {status}: {content:?}"
                );
            }
        }
    }
}

/// JSON Schema counts a number without a fraction (`60000.0`) as an integer, so the fuzzer sent
/// such numbers as valid input; the server refused them with a 400.
#[tokio::test]
async fn integers_written_with_a_zero_fraction_are_integers() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/v2/ratelimit.limit",
            json!({"namespace": "floats", "identifier": "u1", "limit": 3.0, "duration": 60000.0, "cost": 1.0}),
        )
        .await;
    r.assert_ok("/v2/ratelimit.limit");
    assert_eq!(r.body["data"]["limit"], 3);
    assert_eq!(r.body["data"]["remaining"], 2);

    // A fraction is still not an integer, and the bounds still hold.
    let r = app
        .post(
            "/v2/ratelimit.limit",
            json!({"namespace": "floats", "identifier": "u1", "limit": 3.5, "duration": 60000}),
        )
        .await;
    r.assert_error(400, "unkey/application/invalid_input", "Bad Request");
    assert_eq!(
        r.body["error"]["errors"][0]["location"],
        "/properties/limit/type"
    );
    let r = app
        .post(
            "/v2/ratelimit.limit",
            json!({"namespace": "floats", "identifier": "u1", "limit": 3, "duration": 1e300}),
        )
        .await;
    r.assert_error(400, "unkey/application/invalid_input", "Bad Request");
    assert_eq!(
        r.body["error"]["errors"][0]["location"],
        "/properties/duration/maximum"
    );
}

/// An integer beyond i64 passed validation where no maximum was declared, and was then refused
/// as undecodable; now i64's bounds are declared in the document and named by the validator.
#[tokio::test]
async fn integers_are_bounded_by_i64_in_the_document_and_the_validator() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    let start_time = &doc["paths"]["/v2/audit.getLogs"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"]["properties"]["startTime"];
    assert_eq!(start_time["maximum"], json!(i64::MAX), "{start_time}");
    let r = app
        .post(
            "/v2/audit.getLogs",
            json!({"startTime": 9_223_372_036_854_775_808u64}),
        )
        .await;
    r.assert_error(400, "unkey/application/invalid_input", "Bad Request");
    assert_eq!(
        r.body["error"]["errors"][0]["location"],
        "/properties/startTime/maximum"
    );
}

/// `keys.verifyKey` answers 412 for a requested rate limit that neither the key nor its identity
/// has, and the document did not declare it. (Every response of the suite is now checked against
/// the document's statuses in `helpers::send`, which also found the undeclared 412 of
/// `keys.rerollKey` and the 429 of the workspace rate limit.)
#[tokio::test]
async fn verify_key_declares_the_412_of_an_unknown_rate_limit() {
    let app = spawn_app().await;
    let api_id = app.create_api("fuzzed").await;
    let created = app
        .post("/v2/keys.createKey", json!({"apiId": api_id}))
        .await;
    created.assert_ok("/v2/keys.createKey");
    let key = created.body["data"]["key"].as_str().unwrap().to_string();
    let r = app
        .post(
            "/v2/keys.verifyKey",
            json!({"key": key, "ratelimits": [{"name": "nowhere"}]}),
        )
        .await;
    r.assert_error(
        412,
        "unkey/application/precondition_failed",
        "Precondition Failed",
    );
    let doc = openapi(&app).await;
    for (path, status) in [
        ("/v2/keys.verifyKey", "412"),
        ("/v2/keys.rerollKey", "412"),
        ("/v2/apis.getApi", "429"),
        ("/v2/apis.getApi", "408"),
    ] {
        assert!(
            doc["paths"][path]["post"]["responses"]
                .get(status)
                .is_some(),
            "{path} does not declare {status}"
        );
    }
}

/// `analytics.getUsage` listed every bucket of the window before checking there were at most
/// 1,500: a window from 1970 to the far future at minute granularity (or in months past year
/// 9999, where the calendar wrapped around) took the server's memory. The buckets are now
/// counted first, and a window ends by the year 9999.
#[tokio::test]
async fn a_usage_window_of_any_length_is_refused_at_once() {
    let app = spawn_app().await;
    let started = std::time::Instant::now();
    for granularity in ["minute", "hour", "day", "month"] {
        let r = app
            .post(
                "/v2/analytics.getUsage",
                json!({"startTime": 0, "endTime": 253_402_300_799_999i64, "granularity": granularity}),
            )
            .await;
        r.assert_error(400, "unkey/application/invalid_input", "Bad Request");
        assert!(r.detail().contains("buckets"), "{}", r.body);
    }
    // Without a granularity the window picks months: 8,030 years of them is still too many.
    let r = app
        .post(
            "/v2/analytics.getUsage",
            json!({"startTime": 0, "endTime": 253_402_300_799_999i64}),
        )
        .await;
    r.assert_error(400, "unkey/application/invalid_input", "Bad Request");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // Past the year 9999 is outside the schema.
    let r = app
        .post(
            "/v2/analytics.getUsage",
            json!({"endTime": i64::MAX, "granularity": "month"}),
        )
        .await;
    r.assert_error(400, "unkey/application/invalid_input", "Bad Request");
    assert_eq!(
        r.body["error"]["errors"][0]["location"],
        "/properties/endTime/maximum"
    );
    // The last month of the year 9999 is a window like any other.
    let r = app
        .post(
            "/v2/analytics.getUsage",
            json!({"startTime": 253_400_000_000_000i64, "endTime": 253_402_300_799_999i64, "granularity": "month"}),
        )
        .await;
    r.assert_ok("/v2/analytics.getUsage");
}

/// A rate-limit `cost` may be any non-negative int64 (as in Unkey's spec), and the analytics
/// writer added two such costs of one bucket with `+`: the sum overflowed, the writer's task
/// panicked, and every later analytics event of the node was dropped. Sums now stop at i64::MAX,
/// in memory and in the rollup tables.
#[tokio::test]
async fn costs_up_to_i64_max_do_not_overflow_the_analytics_rollups() {
    let app = spawn_app().await;
    for _ in 0..2 {
        let r = app
            .post(
                "/v2/ratelimit.limit",
                json!({"namespace": "huge", "identifier": "u1", "limit": 10, "duration": 60000, "cost": i64::MAX}),
            )
            .await;
        r.assert_ok("/v2/ratelimit.limit");
        assert_eq!(r.body["data"]["success"], false);
        // In two writer rounds, so that the second is added to the first's rollup rows.
        tokio::time::timeout(std::time::Duration::from_secs(10), app.events_written())
            .await
            .expect("the analytics writer is alive");
    }
    let r = app
        .post(
            "/v2/analytics.getRatelimits",
            json!({"query": "SELECT sum(total) AS n, max(total_tokens) AS tokens FROM ratelimits_per_minute_v1"}),
        )
        .await;
    r.assert_ok("/v2/analytics.getRatelimits");
    assert_eq!(
        r.body["data"],
        json!([{"n": 2, "tokens": i64::MAX}]),
        "{}",
        r.body
    );
    // The writer goes on recording.
    let r = app
        .post(
            "/v2/ratelimit.limit",
            json!({"namespace": "huge", "identifier": "u2", "limit": 10, "duration": 60000}),
        )
        .await;
    r.assert_ok("/v2/ratelimit.limit");
    tokio::time::timeout(std::time::Duration::from_secs(10), app.events_written())
        .await
        .expect("the analytics writer is alive");
    let r = app
        .post(
            "/v2/analytics.getRatelimits",
            json!({"query": "SELECT count() AS n FROM ratelimits_v1"}),
        )
        .await;
    r.assert_ok("/v2/analytics.getRatelimits");
    assert_eq!(r.body["data"], json!([{"n": 3}]), "{}", r.body);
}
