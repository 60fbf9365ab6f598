//! The dashboard's rate-limit pages over HTTP: the namespace list and its paging, a namespace's
//! chart, its overrides set and deleted through the API, the test box, errors shown in place,
//! and what a namespace-scoped root key is shown and refused. (The helpers are `dashboard.rs`'.)

use serde_json::json;

use crate::dashboard::Browser;
use crate::helpers::{spawn_app, TestApp};

/// One `ratelimit.limit` call with the app's root key; whether it passed.
async fn limit(app: &TestApp, namespace: &str, identifier: &str, limit: i64) -> bool {
    let answer = app
        .post(
            "/v2/ratelimit.limit",
            json!({ "namespace": namespace, "identifier": identifier, "limit": limit, "duration": 60_000 }),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["data"]["success"].as_bool().unwrap()
}

async fn namespace_id(app: &TestApp, name: &str) -> String {
    app.state
        .limits
        .namespace(&app.workspace_id, name)
        .await
        .unwrap()
        .expect("the namespace")
        .id
        .clone()
}

#[tokio::test]
async fn namespaces_are_listed_by_name_a_page_at_a_time() {
    let app = spawn_app().await;
    for name in ["gamma", "alpha", "beta"] {
        limit(&app, name, "someone", 10).await;
    }
    let service = &app.state.limits;
    let first = service
        .list_namespaces(&app.workspace_id, None, 2)
        .await
        .unwrap();
    let names: Vec<&str> = first.items.iter().map(|ns| ns.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert_eq!(first.next_cursor.as_deref(), Some("gamma"));
    let rest = service
        .list_namespaces(&app.workspace_id, first.next_cursor.as_deref(), 2)
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].name, "gamma");
    assert!(rest.next_cursor.is_none());
    // Another workspace's namespaces are not listed.
    let other = keyward::domain::admin::create_workspace(&app.store, app.now(), "other")
        .await
        .unwrap();
    let theirs = service.list_namespaces(&other.id, None, 10).await.unwrap();
    assert!(theirs.items.is_empty());
}

#[tokio::test]
async fn a_namespace_shows_its_decisions_and_its_overrides_are_set_tested_and_deleted() {
    let app = spawn_app().await;
    assert!(limit(&app, "checkout", "alice", 1).await);
    assert!(!limit(&app, "checkout", "alice", 1).await);
    assert!(limit(&app, "checkout", "bob", 1).await);
    app.events_written().await;
    let ns = namespace_id(&app, "checkout").await;

    let mut browser = Browser::new(&app.base_url);
    let token = browser.sign_in(&app.root_key).await;
    let list = browser.get("/ratelimits").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        list.body.contains(&format!("href=\"/ratelimits/{ns}\"")),
        "{}",
        list.body
    );
    // Two passed and one blocked in the last 24 hours.
    assert!(
        list.body
            .contains("<td class=\"num\">2</td><td class=\"num\">1</td>"),
        "{}",
        list.body
    );

    let page = browser.get(&format!("/ratelimits/{ns}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    // No inline script or style: the chart's colours come from the stylesheet.
    assert!(!page.body.contains("style="), "{}", page.body);
    assert!(!page.body.contains("<script>"), "{}", page.body);
    assert!(page.body.contains("Decisions: 3 in all"), "{}", page.body);
    assert!(page.body.contains("Passed: 2"), "{}", page.body);
    assert!(page.body.contains("Blocked: 1"), "{}", page.body);
    assert!(page.body.contains("No overrides"), "{}", page.body);
    for window in ["hour", "month"] {
        let other = browser
            .get(&format!("/ratelimits/{ns}?window={window}"))
            .await;
        assert!(
            other.body.contains("Decisions: 3 in all"),
            "{window}: {}",
            other.body
        );
    }

    // An override, set in the dashboard, applies to the API's next decision.
    let set = browser
        .post(
            &format!("/ratelimits/{ns}/overrides"),
            &[
                ("_csrf", &token),
                ("identifier", "alice"),
                ("limit", "100"),
                ("duration", "60000"),
            ],
        )
        .await;
    assert_eq!(set.status, 303, "{}", set.body);
    assert_eq!(
        set.location(),
        format!("/ratelimits/{ns}?done=override-set#overrides")
    );
    let read = app
        .post(
            "/v2/ratelimit.getOverride",
            json!({ "namespace": "checkout", "identifier": "alice" }),
        )
        .await;
    assert_eq!(read.status, 200, "{:?}", read.body);
    assert_eq!(read.body["data"]["limit"], 100);
    let override_id = read.body["data"]["overrideId"]
        .as_str()
        .unwrap()
        .to_string();
    let page = browser
        .get(&format!("/ratelimits/{ns}?done=override-set"))
        .await;
    assert!(page.body.contains("Override saved."), "{}", page.body);
    assert!(page.body.contains(&override_id), "{}", page.body);

    // Bad input is explained in place and changes nothing.
    let bad = browser
        .post(
            &format!("/ratelimits/{ns}/overrides"),
            &[
                ("_csrf", &token),
                ("identifier", "bob"),
                ("limit", "lots"),
                ("duration", "60000"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(
        bad.body.contains("'lots' is not a whole number"),
        "{}",
        bad.body
    );
    // The form keeps what was typed.
    assert!(bad.body.contains("value=\"bob\""), "{}", bad.body);
    let short = browser
        .post(
            &format!("/ratelimits/{ns}/overrides"),
            &[
                ("_csrf", &token),
                ("identifier", "bob"),
                ("limit", "5"),
                ("duration", "10"),
            ],
        )
        .await;
    assert_eq!(short.status, 400, "{}", short.body);
    assert!(short.body.contains("role=\"alert\""), "{}", short.body);

    // The test box asks ratelimit.limit and shows its answer: the override applies.
    let tested = browser
        .post(
            &format!("/ratelimits/{ns}/test"),
            &[
                ("_csrf", &token),
                ("identifier", "alice"),
                ("limit", "1"),
                ("duration", "60000"),
            ],
        )
        .await;
    assert_eq!(tested.status, 200, "{}", tested.body);
    assert!(
        tested.body.contains("id=\"test-answer\""),
        "{}",
        tested.body
    );
    assert!(tested.body.contains(">passed<"), "{}", tested.body);
    assert!(tested.body.contains(&override_id), "{}", tested.body);
    assert!(
        tested.body.contains(">100<"),
        "the override's limit: {}",
        tested.body
    );
    // Without an override, bob (already at his limit of 1) is blocked.
    let tested = browser
        .post(
            &format!("/ratelimits/{ns}/test"),
            &[
                ("_csrf", &token),
                ("identifier", "bob"),
                ("limit", "1"),
                ("duration", "60000"),
            ],
        )
        .await;
    assert_eq!(tested.status, 200, "{}", tested.body);
    assert!(tested.body.contains(">blocked<"), "{}", tested.body);

    let deleted = browser
        .post(
            &format!("/ratelimits/{ns}/overrides/delete"),
            &[("_csrf", &token), ("identifier", "alice")],
        )
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    let listed = app
        .post(
            "/v2/ratelimit.listOverrides",
            json!({ "namespace": "checkout" }),
        )
        .await;
    assert_eq!(listed.body["data"], json!([]));
    // Deleting it again is the API's 404, shown in place.
    let again = browser
        .post(
            &format!("/ratelimits/{ns}/overrides/delete"),
            &[("_csrf", &token), ("identifier", "alice")],
        )
        .await;
    assert_eq!(again.status, 404, "{}", again.body);
    assert!(again.body.contains("role=\"alert\""), "{}", again.body);

    // The audit log names the signed-in root key for the dashboard's changes.
    let logs = app
        .post(
            "/v2/audit.getLogs",
            json!({ "events": ["ratelimit.set_override"] }),
        )
        .await;
    assert_eq!(
        logs.body["data"][0]["actor"]["id"],
        app.root_key_id.as_str()
    );
}

#[tokio::test]
async fn a_namespace_scoped_key_sees_only_its_namespace_and_may_not_change_it() {
    let app = spawn_app().await;
    limit(&app, "mine", "x", 5).await;
    limit(&app, "theirs", "x", 5).await;
    let mine = namespace_id(&app, "mine").await;
    let theirs = namespace_id(&app, "theirs").await;
    let (_, key) = app
        .root_key_with(&[&format!("ratelimit.{mine}.read_namespace")])
        .await;
    let mut browser = Browser::new(&app.base_url);
    let token = browser.sign_in(&key).await;
    let list = browser.get("/ratelimits").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains(&mine), "{}", list.body);
    assert!(!list.body.contains(&theirs), "{}", list.body);
    assert!(list.body.contains("Needs ratelimit.*.read_analytics"));
    assert!(
        list.body.contains("href=\"/ratelimits\""),
        "the section is in the navigation"
    );
    assert!(!list.body.contains("href=\"/identities\""));
    assert!(!list.body.contains("href=\"/authorization\""));

    let page = browser.get(&format!("/ratelimits/{mine}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("Save override"), "{}", page.body);
    assert!(!page.body.contains("Test an identifier"), "{}", page.body);
    assert!(
        page.body.contains("needs <code>ratelimit.*.read_override"),
        "{}",
        page.body
    );
    assert_eq!(
        browser.get(&format!("/ratelimits/{theirs}")).await.status,
        404
    );
    assert_eq!(browser.get("/ratelimits/rlns_nothing").await.status, 404);

    // The server refuses what the page hides.
    let refused = browser
        .post(
            &format!("/ratelimits/{mine}/overrides"),
            &[
                ("_csrf", &token),
                ("identifier", "x"),
                ("limit", "1"),
                ("duration", "60000"),
            ],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let tested = browser
        .post(
            &format!("/ratelimits/{mine}/test"),
            &[
                ("_csrf", &token),
                ("identifier", "x"),
                ("limit", "1"),
                ("duration", "60000"),
            ],
        )
        .await;
    assert_eq!(tested.status, 403, "{}", tested.body);
    let forged = browser
        .post(
            &format!("/ratelimits/{mine}/overrides/delete"),
            &[("identifier", "x")],
        )
        .await;
    assert_eq!(forged.status, 403);

    // A key without any namespace permission has no section and an empty list.
    let (_, apis_only) = app.root_key_with(&["api.*.read_api"]).await;
    let mut other = Browser::new(&app.base_url);
    other.sign_in(&apis_only).await;
    let list = other.get("/ratelimits").await;
    assert!(!list.body.contains("href=\"/ratelimits\""), "{}", list.body);
    assert!(list.body.contains("No namespaces yet"), "{}", list.body);
    assert!(!list.body.contains(&mine));
}
