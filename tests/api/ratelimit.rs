//! `ratelimit.*`: windows and resets on a controlled clock, exactness under concurrency,
//! namespaces, overrides and multiLimit.

use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app, TestApp, TestResponse};

async fn limit(
    app: &TestApp,
    namespace: &str,
    identifier: &str,
    limit: i64,
    duration: i64,
    cost: i64,
) -> TestResponse {
    let r = app
        .post(
            "/v2/ratelimit.limit",
            json!({"namespace": namespace, "identifier": identifier, "limit": limit, "duration": duration, "cost": cost}),
        )
        .await;
    r.assert_ok("/v2/ratelimit.limit");
    r
}

#[tokio::test]
async fn a_limit_counts_down_and_resets_at_the_window_end() {
    let app = spawn_app().await;
    let start = app.align_clock(60_000);
    let r = limit(&app, "api", "user_1", 3, 60_000, 1).await;
    assert_eq!(
        r.body["data"],
        json!({"limit": 3, "remaining": 2, "reset": start + 60_000, "success": true})
    );
    assert_eq!(
        limit(&app, "api", "user_1", 3, 60_000, 2).await.body["data"]["remaining"],
        0
    );
    let denied = limit(&app, "api", "user_1", 3, 60_000, 1).await;
    assert_eq!(denied.body["data"]["success"], false);
    assert_eq!(denied.body["data"]["remaining"], 0);
    // Other identifiers are separate.
    assert_eq!(
        limit(&app, "api", "user_2", 3, 60_000, 1).await.body["data"]["success"],
        true
    );
    // Halfway into the next window, half of the previous one still counts (3 × 0.5 → 1).
    app.clock.set_ms(start + 90_000);
    let r = limit(&app, "api", "user_1", 3, 60_000, 1).await;
    assert_eq!(r.body["data"]["remaining"], 1);
    assert_eq!(r.body["data"]["reset"], start + 120_000);
    // Two windows later the slate is clean.
    app.clock.set_ms(start + 180_000);
    assert_eq!(
        limit(&app, "api", "user_1", 3, 60_000, 1).await.body["data"]["remaining"],
        2
    );
}

#[tokio::test]
async fn cost_zero_peeks_without_counting() {
    let app = spawn_app().await;
    app.align_clock(60_000);
    limit(&app, "api", "u", 10, 60_000, 4).await;
    let peek = limit(&app, "api", "u", 10, 60_000, 0).await;
    assert_eq!(
        (
            peek.body["data"]["success"].clone(),
            peek.body["data"]["remaining"].clone()
        ),
        (json!(true), json!(6))
    );
    assert_eq!(
        limit(&app, "api", "u", 10, 60_000, 0).await.body["data"]["remaining"],
        6
    );
}

#[tokio::test]
async fn concurrent_callers_get_exactly_the_limit() {
    let app = spawn_app().await;
    app.align_clock(60_000);
    limit(&app, "hot", "warm-up", 1, 60_000, 1).await;
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let client = app.client.clone();
        let url = format!("{}/v2/ratelimit.limit", app.base_url);
        let root = app.root_key.clone();
        tasks.push(tokio::spawn(async move {
            let r: Value = client
                .post(url)
                .bearer_auth(root)
                .json(&json!({"namespace": "hot", "identifier": "shared", "limit": 50, "duration": 60_000}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["data"]["success"].as_bool().unwrap()
        }));
    }
    let mut passed = 0;
    for t in tasks {
        if t.await.unwrap() {
            passed += 1;
        }
    }
    assert_eq!(passed, 50);
}

#[tokio::test]
async fn namespaces_are_created_on_first_use_only_with_permission() {
    let app = spawn_app().await;
    let (_, limiter) = app.root_key_with(&["ratelimit.*.limit"]).await;
    let body = json!({"namespace": "fresh", "identifier": "x", "limit": 5, "duration": 1000});
    let r = app
        .post_with_key("/v2/ratelimit.limit", &limiter, body.clone())
        .await;
    r.assert_error(
        403,
        "unkey/authorization/insufficient_permissions",
        "Insufficient Permissions",
    );
    assert!(r.detail().contains("ratelimit.*.create_namespace"));
    app.post("/v2/ratelimit.limit", body.clone())
        .await
        .assert_ok("/v2/ratelimit.limit");
    // Now it exists: the limit permission alone is enough, by name or by id.
    app.post_with_key("/v2/ratelimit.limit", &limiter, body.clone())
        .await
        .assert_ok("/v2/ratelimit.limit");
    let ns = app
        .store
        .find_namespace(&app.workspace_id, "fresh")
        .await
        .unwrap()
        .unwrap();
    assert!(ns.id.starts_with("rlns_"));
    let mut by_id = body.clone();
    by_id["namespace"] = json!(ns.id);
    app.post_with_key("/v2/ratelimit.limit", &limiter, by_id)
        .await
        .assert_ok("/v2/ratelimit.limit");
    // A grant for another namespace is not enough.
    let (_, other) = app.root_key_with(&["ratelimit.rlns_other.limit"]).await;
    app.post_with_key("/v2/ratelimit.limit", &other, body)
        .await
        .assert_error(
            403,
            "unkey/authorization/insufficient_permissions",
            "Insufficient Permissions",
        );
    let events = app
        .store
        .list_audit_events(&app.workspace_id, 20)
        .await
        .unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event == "ratelimitNamespace.create")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_deleted_namespace_answers_410() {
    let app = spawn_app().await;
    limit(&app, "old", "x", 5, 1000, 1).await;
    let out = app.cli(&[
        "namespace",
        "delete",
        "--workspace",
        &app.workspace_id,
        "old",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let app = &app;
    let r = eventually(
        std::time::Duration::from_secs(1),
        "the CLI's namespace deletion reached the server",
        || async move {
            let r = app
                .post(
                    "/v2/ratelimit.limit",
                    json!({"namespace": "old", "identifier": "x", "limit": 5, "duration": 1000}),
                )
                .await;
            match r.status {
                410 => Ok(r),
                _ => Err(format!("still {}", r.body)),
            }
        },
    )
    .await;
    r.assert_error(410, "unkey/data/ratelimit_namespace_gone", "Resource Gone");
    let r = app
        .post(
            "/v2/ratelimit.setOverride",
            json!({"namespace": "old", "identifier": "x", "limit": 1, "duration": 1000}),
        )
        .await;
    r.assert_error(404, "unkey/data/ratelimit_namespace_not_found", "Not Found");
}

#[tokio::test]
async fn bad_limit_requests_are_refused() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"namespace": "n", "identifier": "i", "limit": 0, "duration": 1000}),
            "/properties/limit/minimum",
        ),
        (
            json!({"namespace": "n", "identifier": "i", "limit": 1, "duration": 999}),
            "/properties/duration/minimum",
        ),
        (
            json!({"namespace": "n", "identifier": "i", "limit": 1, "duration": 2_592_000_001i64}),
            "/properties/duration/maximum",
        ),
        (
            json!({"namespace": "n", "identifier": "i", "limit": 1, "duration": 1000, "cost": -1}),
            "/properties/cost/minimum",
        ),
        (
            json!({"namespace": "", "identifier": "i", "limit": 1, "duration": 1000}),
            "/properties/namespace/minLength",
        ),
        (
            json!({"identifier": "i", "limit": 1, "duration": 1000}),
            "/required",
        ),
        (
            json!({"namespace": "n", "identifier": "i", "limit": 1, "duration": 1000, "async": true}),
            "/additionalProperties",
        ),
    ];
    for (body, location) in cases {
        let r = app.post("/v2/ratelimit.limit", body.clone()).await;
        r.assert_error(400, "unkey/application/invalid_input", "Bad Request");
        assert_eq!(r.body["error"]["errors"][0]["location"], location, "{body}");
    }
    let r = app.post("/v2/ratelimit.multiLimit", json!([])).await;
    assert_eq!(r.body["error"]["errors"][0]["location"], "/minItems");
}

#[tokio::test]
async fn overrides_replace_the_limit_exactly_then_by_wildcard() {
    let app = spawn_app().await;
    app.align_clock(60_000);
    limit(&app, "api", "seed", 10, 60_000, 1).await;
    let set = |identifier: &str, limit: i64| {
        app.post(
            "/v2/ratelimit.setOverride",
            json!({"namespace": "api", "identifier": identifier, "limit": limit, "duration": 60_000}),
        )
    };
    let exact = set("user_vip", 200).await;
    exact.assert_ok("/v2/ratelimit.setOverride");
    let exact_id = exact.body["data"]["overrideId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(exact_id.starts_with("rlor_"));
    let wild_id = set("user_*", 2).await.body["data"]["overrideId"]
        .as_str()
        .unwrap()
        .to_string();
    set("blocked", 0)
        .await
        .assert_ok("/v2/ratelimit.setOverride");

    let r = limit(&app, "api", "user_vip", 10, 60_000, 1).await;
    assert_eq!(
        (
            r.body["data"]["limit"].clone(),
            r.body["data"]["remaining"].clone(),
            r.body["data"]["overrideId"].clone()
        ),
        (json!(200), json!(199), json!(exact_id))
    );
    let r = limit(&app, "api", "user_42", 10, 60_000, 1).await;
    assert_eq!(
        (
            r.body["data"]["limit"].clone(),
            r.body["data"]["overrideId"].clone()
        ),
        (json!(2), json!(wild_id))
    );
    let r = limit(&app, "api", "other", 10, 60_000, 1).await;
    assert!(r.body["data"].get("overrideId").is_none());
    let r = limit(&app, "api", "blocked", 10, 60_000, 1).await;
    assert_eq!(r.body["data"]["success"], false, "a limit of 0 blocks");

    let got = app
        .post(
            "/v2/ratelimit.getOverride",
            json!({"namespace": "api", "identifier": "user_7"}),
        )
        .await;
    got.assert_ok("/v2/ratelimit.getOverride");
    assert_eq!(
        got.body["data"],
        json!({"overrideId": wild_id, "duration": 60_000, "identifier": "user_*", "limit": 2})
    );
    // Re-setting keeps the id and changes the limit.
    let again = set("user_vip", 300).await;
    assert_eq!(again.body["data"]["overrideId"], exact_id.as_str());
    assert_eq!(
        limit(&app, "api", "user_vip", 10, 60_000, 1).await.body["data"]["limit"],
        300
    );

    app.post(
        "/v2/ratelimit.deleteOverride",
        json!({"namespace": "api", "identifier": "user_vip"}),
    )
    .await
    .assert_ok("/v2/ratelimit.deleteOverride");
    // The wildcard now applies to the VIP too.
    assert_eq!(
        limit(&app, "api", "user_vip", 10, 60_000, 1).await.body["data"]["limit"],
        2
    );
    app.post(
        "/v2/ratelimit.deleteOverride",
        json!({"namespace": "api", "identifier": "user_vip"}),
    )
    .await
    .assert_error(404, "unkey/data/ratelimit_override_not_found", "Not Found");
    // Re-setting a deleted override brings it back.
    let revived = set("user_vip", 50).await;
    assert_eq!(revived.body["data"]["overrideId"], exact_id.as_str());
    assert_eq!(
        limit(&app, "api", "user_vip", 10, 60_000, 1).await.body["data"]["limit"],
        50
    );

    let events = app
        .store
        .list_audit_events(&app.workspace_id, 50)
        .await
        .unwrap();
    assert!(events.iter().any(|e| e.event == "ratelimit.set_override"));
    assert!(events
        .iter()
        .any(|e| e.event == "ratelimit.delete_override"));
}

#[tokio::test]
async fn overrides_are_listed_a_page_at_a_time_and_guarded_by_permissions() {
    let app = spawn_app().await;
    limit(&app, "api", "seed", 10, 60_000, 1).await;
    for i in 0..5 {
        app.post(
            "/v2/ratelimit.setOverride",
            json!({"namespace": "api", "identifier": format!("id_{i}"), "limit": i, "duration": 1000}),
        )
        .await
        .assert_ok("/v2/ratelimit.setOverride");
    }
    let mut seen = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut body = json!({"namespace": "api", "limit": 2});
        if let Some(c) = &cursor {
            body["cursor"] = json!(c);
        }
        let r = app.post("/v2/ratelimit.listOverrides", body).await;
        r.assert_ok("/v2/ratelimit.listOverrides");
        seen += r.body["data"].as_array().unwrap().len();
        match r.body["pagination"]["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, 5);
    let (_, limiter) = app.root_key_with(&["ratelimit.*.limit"]).await;
    // Reading is masked as "no such override"; changing is a plain 403.
    app.post_with_key(
        "/v2/ratelimit.getOverride",
        &limiter,
        json!({"namespace": "api", "identifier": "id_1"}),
    )
    .await
    .assert_error(404, "unkey/data/ratelimit_override_not_found", "Not Found");
    app.post_with_key(
        "/v2/ratelimit.setOverride",
        &limiter,
        json!({"namespace": "api", "identifier": "x", "limit": 1, "duration": 1000}),
    )
    .await
    .assert_error(
        403,
        "unkey/authorization/insufficient_permissions",
        "Insufficient Permissions",
    );
    app.post_with_key(
        "/v2/ratelimit.listOverrides",
        &limiter,
        json!({"namespace": "api"}),
    )
    .await
    .assert_error(
        403,
        "unkey/authorization/insufficient_permissions",
        "Insufficient Permissions",
    );
    app.post(
        "/v2/ratelimit.getOverride",
        json!({"namespace": "nope", "identifier": "x"}),
    )
    .await
    .assert_error(404, "unkey/data/ratelimit_namespace_not_found", "Not Found");
}

#[tokio::test]
async fn an_override_set_by_another_process_applies_within_a_second() {
    let app = spawn_app().await;
    app.align_clock(60_000);
    limit(&app, "api", "u", 10, 60_000, 1).await;
    let ns = app
        .store
        .find_namespace(&app.workspace_id, "api")
        .await
        .unwrap()
        .unwrap();
    app.store
        .set_override(
            &app.workspace_id,
            &keyward::model::Override {
                id: "rlor_external1".into(),
                namespace_id: ns.id.clone(),
                identifier: "u".into(),
                limit: 77,
                duration_ms: 60_000,
            },
            app.now(),
            &[],
        )
        .await
        .unwrap();
    let app = &app;
    eventually(
        std::time::Duration::from_secs(1),
        "the override written by another node applied",
        || async move {
            let r = limit(app, "api", "u", 10, 60_000, 0).await;
            if r.body["data"]["limit"] == 77 {
                Ok(())
            } else {
                Err(r.body.to_string())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn multi_limit_is_all_or_nothing() {
    let app = spawn_app().await;
    app.align_clock(60_000);
    let batch = |fast_cost: i64| {
        json!([
            {"namespace": "a", "identifier": "u", "limit": 2, "duration": 60_000, "cost": fast_cost},
            {"namespace": "b", "identifier": "u", "limit": 10, "duration": 60_000}
        ])
    };
    let r = app.post("/v2/ratelimit.multiLimit", batch(1)).await;
    r.assert_ok("/v2/ratelimit.multiLimit");
    assert_eq!(r.body["data"]["passed"], true);
    assert_eq!(r.body["data"]["limits"][0]["namespace"], "a");
    assert_eq!(r.body["data"]["limits"][1]["remaining"], 9);
    let r = app.post("/v2/ratelimit.multiLimit", batch(5)).await;
    assert_eq!(r.body["data"]["passed"], false);
    assert_eq!(r.body["data"]["limits"][0]["passed"], false);
    assert_eq!(r.body["data"]["limits"][1]["passed"], true);
    assert_eq!(
        r.body["data"]["limits"][1]["remaining"], 9,
        "as if not consumed"
    );
    // Nothing was consumed by the failed batch.
    assert_eq!(
        limit(&app, "b", "u", 10, 60_000, 0).await.body["data"]["remaining"],
        9
    );
    assert_eq!(
        limit(&app, "a", "u", 2, 60_000, 0).await.body["data"]["remaining"],
        1
    );

    let ns_a = app
        .store
        .find_namespace(&app.workspace_id, "a")
        .await
        .unwrap()
        .unwrap();
    let ns_b = app
        .store
        .find_namespace(&app.workspace_id, "b")
        .await
        .unwrap()
        .unwrap();
    let grant_a = format!("ratelimit.{}.limit", ns_a.id);
    let grant_b = format!("ratelimit.{}.limit", ns_b.id);
    let (_, only_a) = app.root_key_with(&[grant_a.as_str()]).await;
    app.post_with_key("/v2/ratelimit.multiLimit", &only_a, batch(1))
        .await
        .assert_error(
            403,
            "unkey/authorization/insufficient_permissions",
            "Insufficient Permissions",
        );
    let (_, both) = app
        .root_key_with(&[grant_a.as_str(), grant_b.as_str()])
        .await;
    app.post_with_key("/v2/ratelimit.multiLimit", &both, batch(1))
        .await
        .assert_ok("/v2/ratelimit.multiLimit");
}
