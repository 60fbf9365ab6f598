//! The workspace's limit on calls to the API itself (`keyward workspace limit`): Unkey's 429
//! `workspace_rate_limited` with `RateLimit-*` headers, counted after validation and
//! authentication, on every authenticated route and never on liveness.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{eventually, spawn_app, TestApp, TestResponse};

fn set_limit(app: &TestApp, value: &str) {
    let out = app.cli(&[
        "workspace",
        "limit",
        &app.workspace_id,
        "--requests-per-minute",
        value,
    ]);
    assert!(
        out.status.success(),
        "workspace limit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn header(r: &TestResponse, name: &str) -> Option<i64> {
    r.headers
        .get(name)
        .map(|v| v.to_str().unwrap().parse().unwrap())
}

/// Moves the clock to the start of a one-minute window two windows on, so nothing counted before
/// weighs on it (the window slides over the previous one).
fn fresh_window(app: &TestApp) {
    app.align_clock(60_000);
    app.clock.advance_ms(60_000);
}

async fn get_api(app: &TestApp, api: &str) -> TestResponse {
    app.post("/v2/apis.getApi", json!({"apiId": api})).await
}

#[tokio::test]
async fn a_limit_of_three_answers_three_then_429_with_the_headers() {
    let app = spawn_app().await;
    let api = app.create_api("limited").await;
    set_limit(&app, "3");
    // The change reaches the running server through the change feed within a second.
    eventually(Duration::from_secs(1), "the limit applies", || async {
        let r = get_api(&app, &api).await;
        match header(&r, "ratelimit-limit") {
            Some(3) => Ok(()),
            other => Err(format!("RateLimit-Limit {other:?}")),
        }
    })
    .await;
    // That probe took one of the three: start from a window with nothing before it.
    fresh_window(&app);
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = get_api(&app, &api).await;
        r.assert_ok("/v2/apis.getApi");
        assert_eq!(header(&r, "ratelimit-limit"), Some(3));
        let reset = header(&r, "ratelimit-reset").unwrap();
        assert!((0..=60).contains(&reset), "{reset}");
        assert!(r.headers.get("retry-after").is_none());
        remaining.push(header(&r, "ratelimit-remaining").unwrap());
    }
    assert_eq!(remaining, [2, 1, 0]);
    let r = get_api(&app, &api).await;
    r.assert_error(
        429,
        "user/too_many_requests/workspace_rate_limited",
        "Too Many Requests",
    );
    assert_eq!(
        r.detail(),
        "This workspace has exceeded its API rate limit of 3/1m0s. Please try again later."
    );
    assert_eq!(header(&r, "ratelimit-remaining"), Some(0));
    assert_eq!(header(&r, "retry-after"), header(&r, "ratelimit-reset"));

    // Windows slide: once the last minute's calls are behind, the API admits again. `none`
    // lifts the limit and its headers.
    fresh_window(&app);
    get_api(&app, &api).await.assert_ok("/v2/apis.getApi");
    set_limit(&app, "none");
    app.sync_changes().await;
    let r = get_api(&app, &api).await;
    r.assert_ok("/v2/apis.getApi");
    assert!(r.headers.get("ratelimit-limit").is_none());
}

#[tokio::test]
async fn without_a_limit_there_are_no_headers_and_zero_refuses_everything() {
    let app = spawn_app().await;
    let api = app.create_api("open").await;
    let r = get_api(&app, &api).await;
    r.assert_ok("/v2/apis.getApi");
    assert!(r
        .headers
        .keys()
        .all(|k| !k.as_str().starts_with("ratelimit-")));

    set_limit(&app, "0");
    app.sync_changes().await;
    let r = get_api(&app, &api).await;
    r.assert_error(
        429,
        "user/too_many_requests/workspace_rate_limited",
        "Too Many Requests",
    );
    assert!(r.headers.get("ratelimit-limit").is_none());
    assert_eq!(
        r.detail(),
        "This workspace has exceeded its API rate limit of 0/1m0s. Please try again later."
    );
    // Liveness is never limited.
    let live = app
        .send(app.client.get(format!("{}/v2/liveness", app.base_url)))
        .await;
    assert_eq!(live.status, 200);
}

#[tokio::test]
async fn verify_and_ratelimit_count_while_invalid_requests_and_liveness_do_not() {
    let app = spawn_app().await;
    let api = app.create_api("counted").await;
    let created = app.post("/v2/keys.createKey", json!({"apiId": api})).await;
    let key = created.body["data"]["key"].as_str().unwrap().to_string();
    set_limit(&app, "4");
    app.sync_changes().await;
    fresh_window(&app);

    // Not counted: a body that fails validation (400), a wrong root key (401), liveness.
    let bad = app.post("/v2/apis.getApi", json!({"apiId": 7})).await;
    assert_eq!(bad.status, 400);
    assert!(bad.headers.get("ratelimit-remaining").is_none());
    let unknown = app
        .post_with_key("/v2/apis.getApi", "unkey_nope", json!({"apiId": api}))
        .await;
    assert_eq!(unknown.status, 401);
    for _ in 0..3 {
        let live = app
            .send(app.client.get(format!("{}/v2/liveness", app.base_url)))
            .await;
        assert!(live.headers.get("ratelimit-remaining").is_none());
    }

    // Counted: verifyKey and ratelimit.limit like any other route.
    let v = app.post("/v2/keys.verifyKey", json!({"key": key})).await;
    assert_eq!(header(&v, "ratelimit-remaining"), Some(3));
    let l = app
        .post(
            "/v2/ratelimit.limit",
            json!({"namespace": "calls", "identifier": "x", "limit": 10, "duration": 60000}),
        )
        .await;
    assert_eq!(header(&l, "ratelimit-remaining"), Some(2));
    get_api(&app, &api).await.assert_ok("/v2/apis.getApi");
    get_api(&app, &api).await.assert_ok("/v2/apis.getApi");
    let v = app.post("/v2/keys.verifyKey", json!({"key": key})).await;
    assert_eq!(v.status, 429);
}

#[tokio::test]
async fn the_cli_refuses_bad_values_and_unknown_workspaces() {
    let app = spawn_app().await;
    for bad in ["-1", "many", "1.5"] {
        let out = app.cli(&[
            "workspace",
            "limit",
            &app.workspace_id,
            "--requests-per-minute",
            bad,
        ]);
        assert!(!out.status.success(), "{bad} was accepted");
    }
    let out = app.cli(&[
        "workspace",
        "limit",
        "ws_nope",
        "--requests-per-minute",
        "5",
    ]);
    assert!(!out.status.success());
}
