//! `keys.verifyKey`: every outcome, the order of checks, credits under concurrency, refill,
//! revocation, durability and the event record.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app, spawn_app_with, TestApp, TestResponse};
use crate::keys::create_key;

fn code(response: &TestResponse) -> &str {
    response.body["data"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_valid_key_verifies_with_its_details() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let expires = app.now() + 60_000;
    let (key_id, key) = create_key(
        &app,
        &api,
        json!({"name": "acme", "meta": {"plan": "pro"}, "expires": expires, "externalId": "acme-co"}),
    )
    .await;
    let r = app
        .verify(json!({"key": key, "tags": ["path=/v1/x", "région=eu", "a b&c?d/e"]}))
        .await;
    let data = &r.body["data"];
    assert_eq!(data["valid"], true);
    assert_eq!(data["code"], "VALID");
    assert_eq!(data["keyId"], key_id.as_str());
    assert_eq!(data["name"], "acme");
    assert_eq!(data["meta"], json!({"plan": "pro"}));
    assert_eq!(data["expires"], expires);
    assert_eq!(data["enabled"], true);
    assert_eq!(data["identity"]["externalId"], "acme-co");
    assert!(
        data.get("credits").is_none(),
        "unlimited keys show no credits"
    );
}

#[tokio::test]
async fn unknown_foreign_and_deleted_keys_are_a_bare_not_found() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (_, key) = create_key(&app, &api, json!({"name": "n"})).await;
    let bare = json!({"valid": false, "code": "NOT_FOUND"});
    assert_eq!(
        app.verify(json!({"key": "sk_unknown"})).await.body["data"],
        bare
    );

    let other = keyward::domain::admin::create_workspace(&app.store, app.now(), "other")
        .await
        .unwrap();
    let (_, foreign) = app.root_key_in(&other.id, &[]).await;
    let r = app
        .post_with_key("/v2/keys.verifyKey", &foreign, json!({"key": key}))
        .await;
    assert_eq!(r.body["data"], bare);

    app.post("/v2/apis.deleteApi", json!({"apiId": api}))
        .await
        .assert_ok("/v2/apis.deleteApi");
    assert_eq!(app.verify(json!({"key": key})).await.body["data"], bare);
}

#[tokio::test]
async fn the_root_key_must_be_allowed_to_verify_this_apis_keys() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let other_api = app.create_api("other").await;
    let (_, key) = create_key(&app, &api, json!({})).await;

    let (_, none) = app.root_key_with(&["api.*.read_key"]).await;
    let r = app
        .post_with_key("/v2/keys.verifyKey", &none, json!({"key": key}))
        .await;
    r.assert_error(
        403,
        "unkey/authorization/insufficient_permissions",
        "Insufficient Permissions",
    );
    assert!(r.detail().contains("api.*.verify_key"));

    let elsewhere = format!("api.{other_api}.verify_key");
    let (_, other) = app.root_key_with(&[elsewhere.as_str()]).await;
    let r = app
        .post_with_key("/v2/keys.verifyKey", &other, json!({"key": key}))
        .await;
    assert_eq!(r.body["data"], json!({"valid": false, "code": "NOT_FOUND"}));

    let here = format!("api.{api}.verify_key");
    let (_, scoped) = app.root_key_with(&[here.as_str()]).await;
    let r = app
        .post_with_key("/v2/keys.verifyKey", &scoped, json!({"key": key}))
        .await;
    assert_eq!(code(&r), "VALID");
}

#[tokio::test]
async fn disabling_a_key_takes_effect_on_the_very_next_verification() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (key_id, key) = create_key(&app, &api, json!({"credits": {"remaining": 5}})).await;
    assert_eq!(code(&app.verify(json!({"key": key})).await), "VALID");
    app.post(
        "/v2/keys.updateKey",
        json!({"keyId": key_id, "enabled": false}),
    )
    .await
    .assert_ok("/v2/keys.updateKey");
    let r = app.verify(json!({"key": key})).await;
    assert_eq!(code(&r), "DISABLED");
    assert_eq!(r.body["data"]["valid"], false);
    assert_eq!(r.body["data"]["enabled"], false);
    // A refused verification spends nothing.
    assert_eq!(r.body["data"]["credits"], 4);
    app.post(
        "/v2/keys.updateKey",
        json!({"keyId": key_id, "enabled": true}),
    )
    .await
    .assert_ok("/v2/keys.updateKey");
    assert_eq!(
        app.verify(json!({"key": key})).await.body["data"]["credits"],
        3
    );
}

/// Disables a key by writing straight to the store, as another node would: the server only
/// learns of it through the change feed.
async fn disable_behind_the_servers_back(app: &TestApp, key_id: &str) {
    let patch = keyward::model::KeyPatch {
        enabled: Some(false),
        ..Default::default()
    };
    assert!(app
        .store
        .update_key(key_id, &patch, app.now(), &[])
        .await
        .unwrap());
}

#[tokio::test]
async fn a_change_made_by_another_process_reaches_the_cache_within_a_second() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (key_id, key) = create_key(&app, &api, json!({})).await;
    assert_eq!(code(&app.verify(json!({"key": key})).await), "VALID");
    // Write straight to the store, as another node would: this server only learns of it
    // through the change feed.
    disable_behind_the_servers_back(&app, &key_id).await;
    let (app, key) = (&app, key.as_str());
    eventually(
        Duration::from_secs(1),
        "the change made by another process reached the cache",
        || async move {
            let r = app.verify(json!({"key": key})).await;
            if code(&r) == "DISABLED" {
                Ok(())
            } else {
                Err(format!("still {}", r.body))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn one_round_of_the_change_feed_is_enough_to_drop_a_changed_key() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (key_id, key) = create_key(&app, &api, json!({})).await;
    assert_eq!(code(&app.verify(json!({"key": key})).await), "VALID");
    disable_behind_the_servers_back(&app, &key_id).await;
    // No waiting: the feed's round reads the change and the invalidator drops the cached key.
    app.sync_changes().await;
    assert_eq!(code(&app.verify(json!({"key": key})).await), "DISABLED");
}

#[tokio::test]
async fn keys_expire_strictly_after_their_expiry() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let expires = app.now() + 1_000;
    let (_, key) = create_key(&app, &api, json!({"expires": expires})).await;
    assert_eq!(code(&app.verify(json!({"key": key})).await), "VALID");
    app.clock.set_ms(expires);
    assert_eq!(code(&app.verify(json!({"key": key})).await), "VALID");
    app.clock.set_ms(expires + 1);
    let r = app.verify(json!({"key": key})).await;
    assert_eq!(code(&r), "EXPIRED");
    assert_eq!(r.body["data"]["valid"], false);
}

#[tokio::test]
async fn the_ip_whitelist_forbids_other_clients() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (_, key) = create_key(&app, &api, json!({"credits": {"remaining": 10}})).await;
    keyward::domain::admin::set_api_ip_whitelist(
        &app.store,
        app.now(),
        &api,
        &["198.51.100.7".into()],
    )
    .await
    .unwrap();
    app.state.keys.cache.clear();
    let from = |ip: &'static str| {
        app.client
            .post(format!("{}/v2/keys.verifyKey", app.base_url))
            .bearer_auth(&app.root_key)
            .header("x-forwarded-for", ip)
            .json(&json!({"key": key}))
    };
    let r = app.send(from("198.51.100.7")).await;
    assert_eq!(code(&r), "VALID");
    let r = app.send(from("203.0.113.1")).await;
    assert_eq!(code(&r), "FORBIDDEN");
    assert_eq!(
        r.body["data"]["credits"], 9,
        "a forbidden request spends nothing"
    );
    assert_eq!(code(&app.verify(json!({"key": key})).await), "FORBIDDEN");
}

#[tokio::test]
async fn credits_are_spent_by_cost_and_refused_when_short() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (_, key) = create_key(&app, &api, json!({"credits": {"remaining": 5}})).await;
    let r = app.verify(json!({"key": key})).await;
    assert_eq!(
        (code(&r), r.body["data"]["credits"].clone()),
        ("VALID", json!(4))
    );
    let r = app
        .verify(json!({"key": key, "credits": {"cost": 15}}))
        .await;
    assert_eq!(
        (code(&r), r.body["data"]["credits"].clone()),
        ("USAGE_EXCEEDED", json!(4))
    );
    assert_eq!(r.body["data"]["valid"], false);
    let r = app
        .verify(json!({"key": key, "credits": {"cost": 4}}))
        .await;
    assert_eq!(
        (code(&r), r.body["data"]["credits"].clone()),
        ("VALID", json!(0))
    );
    let r = app.verify(json!({"key": key})).await;
    assert_eq!(
        (code(&r), r.body["data"]["credits"].clone()),
        ("USAGE_EXCEEDED", json!(0))
    );
    // A cost of 0 always passes.
    let r = app
        .verify(json!({"key": key, "credits": {"cost": 0}}))
        .await;
    assert_eq!(
        (code(&r), r.body["data"]["credits"].clone()),
        ("VALID", json!(0))
    );
    // Unlimited keys ignore costs.
    let (_, free) = create_key(&app, &api, json!({})).await;
    let r = app
        .verify(json!({"key": free, "credits": {"cost": 1000}}))
        .await;
    assert_eq!(code(&r), "VALID");
    assert!(r.body["data"].get("credits").is_none());
}

#[tokio::test]
async fn exactly_the_balance_passes_under_hundreds_of_parallel_verifications() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (key_id, key) = create_key(&app, &api, json!({"credits": {"remaining": 37}})).await;
    let mut tasks = Vec::new();
    for _ in 0..300 {
        let client = app.client.clone();
        let url = format!("{}/v2/keys.verifyKey", app.base_url);
        let root = app.root_key.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let r: Value = client
                .post(url)
                .bearer_auth(root)
                .json(&json!({"key": key}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["data"]["code"].as_str().unwrap().to_string()
        }));
    }
    let mut valid = 0;
    let mut exceeded = 0;
    for task in tasks {
        match task.await.unwrap().as_str() {
            "VALID" => valid += 1,
            "USAGE_EXCEEDED" => exceeded += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((valid, exceeded), (37, 263));
    assert_eq!(
        crate::keys::get_key(&app, &key_id).await["credits"]["remaining"],
        0
    );
}

#[tokio::test]
async fn every_acknowledged_spend_is_on_disk_after_a_clean_shutdown() {
    let mut app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (key_id, key) = create_key(&app, &api, json!({"credits": {"remaining": 100}})).await;
    for _ in 0..25 {
        assert_eq!(code(&app.verify(json!({"key": key})).await), "VALID");
    }
    app.stop().await;
    let store = app.store.clone();
    let row = store.load_credits(&key_id).await.unwrap().unwrap();
    assert_eq!(row.remaining, Some(75));
    let events = store.list_verifications(&key_id, 100).await.unwrap();
    assert_eq!(
        events.len(),
        25,
        "every verification was recorded before exit"
    );
}

#[tokio::test]
async fn daily_refill_raises_the_balance_at_the_first_use_after_midnight() {
    let app = spawn_app().await;
    // Start at 10:00 UTC on some day.
    let day = 86_400_000;
    app.clock.set_ms((app.now() / day) * day + 10 * 3_600_000);
    let api = app.create_api("payments").await;
    let (key_id, key) = create_key(
        &app,
        &api,
        json!({"credits": {"remaining": 2, "refill": {"interval": "daily", "amount": 3}}}),
    )
    .await;
    app.verify(json!({"key": key})).await;
    app.verify(json!({"key": key})).await;
    assert_eq!(
        code(&app.verify(json!({"key": key})).await),
        "USAGE_EXCEEDED"
    );
    // Later the same day: still empty.
    app.clock.advance_ms(13 * 3_600_000);
    assert_eq!(
        code(&app.verify(json!({"key": key})).await),
        "USAGE_EXCEEDED"
    );
    // After midnight: refilled to 3, and this verification spends one.
    app.clock.advance_ms(2 * 3_600_000);
    let r = app.verify(json!({"key": key})).await;
    assert_eq!(
        (code(&r), r.body["data"]["credits"].clone()),
        ("VALID", json!(2))
    );
    // A top-up above the amount is never lowered by the next refill.
    app.post(
        "/v2/keys.updateCredits",
        json!({"keyId": key_id, "operation": "set", "value": 50}),
    )
    .await
    .assert_ok("/v2/keys.updateCredits");
    app.clock.advance_ms(day);
    let r = app.verify(json!({"key": key})).await;
    assert_eq!(r.body["data"]["credits"], 49);
    assert_eq!(
        crate::keys::get_key(&app, &key_id).await["credits"]["remaining"],
        49
    );
}

#[tokio::test]
async fn monthly_refill_happens_on_the_refill_day_or_the_months_last_day() {
    let app = spawn_app().await;
    // 2026-02-20 12:00 UTC; refill day 31 falls on 2026-02-28.
    app.clock.set_ms(1_771_588_800_000);
    let api = app.create_api("payments").await;
    let (_, key) = create_key(
        &app,
        &api,
        json!({"credits": {"remaining": 0, "refill": {"interval": "monthly", "amount": 10, "refillDay": 31}}}),
    )
    .await;
    assert_eq!(
        code(&app.verify(json!({"key": key})).await),
        "USAGE_EXCEEDED"
    );
    app.clock.set_ms(1_772_193_600_000); // 2026-02-27 12:00
    assert_eq!(
        code(&app.verify(json!({"key": key})).await),
        "USAGE_EXCEEDED"
    );
    app.clock.set_ms(1_772_280_000_000); // 2026-02-28 12:00
    let r = app.verify(json!({"key": key})).await;
    assert_eq!(
        (code(&r), r.body["data"]["credits"].clone()),
        ("VALID", json!(9))
    );
}

#[tokio::test]
async fn verifications_are_recorded_with_outcome_tags_and_spend() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (key_id, key) = create_key(
        &app,
        &api,
        json!({"credits": {"remaining": 1}, "externalId": "o"}),
    )
    .await;
    app.verify(json!({"key": key, "tags": ["a=1"]})).await;
    app.verify(json!({"key": key, "credits": {"cost": 5}}))
        .await;
    // Not recorded: unknown keys reveal nothing, not even to the event log.
    app.verify(json!({"key": "sk_unknown"})).await;
    let (app, key_id) = (&app, key_id.as_str());
    app.events_written().await;
    let events = app.store.list_verifications(key_id, 10).await.unwrap();
    assert_eq!(events.len(), 2);
    let valid = events
        .iter()
        .find(|e| e.outcome == "VALID")
        .expect("VALID event");
    assert_eq!(valid.tags, r#"["a=1"]"#);
    assert_eq!(valid.spent_credits, 1);
    assert_eq!(valid.api_id, api);
    assert!(valid.identity_id.is_some());
    assert!(valid.request_id.starts_with("req_"));
    let exceeded = events
        .iter()
        .find(|e| e.outcome == "USAGE_EXCEEDED")
        .expect("exceeded");
    assert_eq!(exceeded.spent_credits, 0);
    // lastUsedAt follows within the writer's interval (100 ms in tests).
    let last_used = eventually(
        Duration::from_secs(3),
        "lastUsedAt was written",
        || async move {
            let key = crate::keys::get_key(app, key_id).await;
            key["lastUsedAt"]
                .as_i64()
                .ok_or_else(|| format!("no lastUsedAt: {key}"))
        },
    )
    .await;
    assert_eq!(last_used, exceeded.time_ms.max(valid.time_ms));
}

#[tokio::test]
async fn last_used_at_is_written_late_in_batches_and_at_a_clean_shutdown() {
    // An interval far longer than the test: only the shutdown can write it.
    let mut app = spawn_app_with(Duration::from_secs(3600)).await;
    let api = app.create_api("payments").await;
    let (key_id, key) = create_key(&app, &api, json!({})).await;
    let (other_id, _) = create_key(&app, &api, json!({})).await;
    assert_eq!(
        code(&app.verify(json!({"key": "sk_unknown"})).await),
        "NOT_FOUND"
    );
    for _ in 0..3 {
        assert_eq!(code(&app.verify(json!({"key": key})).await), "VALID");
        app.clock.advance_ms(1_000);
    }
    let (store, events_of) = (&app.store, key_id.as_str());
    eventually(
        Duration::from_secs(3),
        "events were not written",
        || async move {
            let written = store.list_verifications(events_of, 10).await.unwrap().len();
            if written >= 3 {
                Ok(())
            } else {
                Err(format!("{written} of 3 events"))
            }
        },
    )
    .await;
    assert!(
        crate::keys::get_key(&app, &key_id).await["lastUsedAt"].is_null(),
        "lastUsedAt waits for the interval"
    );
    assert!(crate::keys::get_key(&app, &other_id).await["lastUsedAt"].is_null());
    let newest = app.store.list_verifications(&key_id, 1).await.unwrap()[0].time_ms;
    app.stop().await;
    let row = app.store.find_key_by_id(&key_id).await.unwrap().unwrap();
    assert_eq!(row.last_used_at, newest, "the newest verification's time");
    let other = app.store.find_key_by_id(&other_id).await.unwrap().unwrap();
    assert_eq!(other.last_used_at, 0, "a key never verified has none");
}

#[tokio::test]
async fn verify_rejects_malformed_requests() {
    let app = spawn_app().await;
    let cases = [
        (json!({}), "/required"),
        (json!({"key": ""}), "/properties/key/minLength"),
        (
            json!({"key": "k", "tags": vec!["t"; 21]}),
            "/properties/tags/maxItems",
        ),
        (
            json!({"key": "k", "tags": [""]}),
            "/properties/tags/items/minLength",
        ),
        (
            json!({"key": "k", "tags": ["x".repeat(513)]}),
            "/properties/tags/items/maxLength",
        ),
        (
            json!({"key": "k", "credits": {"cost": -1}}),
            "/properties/credits/properties/cost/minimum",
        ),
        (
            json!({"key": "k", "credits": {}}),
            "/properties/credits/required",
        ),
        (
            json!({"key": "k", "apiId": "api_123"}),
            "/additionalProperties",
        ),
    ];
    for (body, location) in cases {
        let r = app.post("/v2/keys.verifyKey", body.clone()).await;
        r.assert_error(400, "unkey/application/invalid_input", "Bad Request");
        assert_eq!(r.body["error"]["errors"][0]["location"], location, "{body}");
    }
}
