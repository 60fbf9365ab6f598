//! `identities.*`, and the limits of keys and identities inside `keys.verifyKey`.

use serde_json::{json, Value};

use crate::helpers::spawn_app;
use crate::keys::{create_key, get_key};

fn limit(name: &str, limit: i64, duration: i64, auto: bool) -> Value {
    json!({"name": name, "limit": limit, "duration": duration, "autoApply": auto})
}

#[tokio::test]
async fn identities_are_created_read_updated_and_deleted() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/v2/identities.createIdentity",
            json!({"externalId": "acme", "meta": {"plan": "pro"}, "ratelimits": [limit("requests", 10, 60_000, true)]}),
        )
        .await;
    r.assert_ok("/v2/identities.createIdentity");
    let id = r.body["data"]["identityId"].as_str().unwrap().to_string();
    assert!(id.starts_with("id_"));
    let dup = app
        .post(
            "/v2/identities.createIdentity",
            json!({"externalId": "acme"}),
        )
        .await;
    dup.assert_error(
        409,
        "unkey/data/identity_already_exists",
        "Conflicting Resource",
    );
    assert_eq!(
        dup.detail(),
        "Identity with externalId 'acme' already exists in this workspace."
    );

    for by in [id.as_str(), "acme"] {
        let r = app
            .post("/v2/identities.getIdentity", json!({"identity": by}))
            .await;
        r.assert_ok("/v2/identities.getIdentity");
        assert_eq!(r.body["data"]["id"], id.as_str());
        assert_eq!(r.body["data"]["externalId"], "acme");
        assert_eq!(r.body["data"]["meta"], json!({"plan": "pro"}));
        assert_eq!(r.body["data"]["ratelimits"][0]["name"], "requests");
    }
    let limit_id = app
        .post("/v2/identities.getIdentity", json!({"identity": id}))
        .await
        .body["data"]["ratelimits"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .post(
            "/v2/identities.updateIdentity",
            json!({"identity": "acme", "meta": {"plan": "enterprise"},
                   "ratelimits": [limit("requests", 99, 60_000, false), limit("tokens", 5, 1000, true)]}),
        )
        .await;
    r.assert_ok("/v2/identities.updateIdentity");
    assert_eq!(r.body["data"]["meta"], json!({"plan": "enterprise"}));
    let limits = r.body["data"]["ratelimits"].as_array().unwrap();
    assert_eq!(limits.len(), 2);
    let requests = limits.iter().find(|l| l["name"] == "requests").unwrap();
    assert_eq!(
        (requests["id"].as_str().unwrap(), requests["limit"].clone()),
        (limit_id.as_str(), json!(99))
    );
    let r = app
        .post(
            "/v2/identities.updateIdentity",
            json!({"identity": "acme", "ratelimits": [limit("x_1", 1, 1000, false), limit("x_1", 2, 1000, false)]}),
        )
        .await;
    r.assert_error(400, "unkey/application/invalid_input", "Bad Request");
    assert_eq!(
        r.detail(),
        "Ratelimit with name 'x_1' is already defined in the request"
    );

    let r = app
        .post("/v2/identities.deleteIdentity", json!({"identity": id}))
        .await;
    r.assert_ok("/v2/identities.deleteIdentity");
    app.post("/v2/identities.getIdentity", json!({"identity": "acme"}))
        .await
        .assert_error(404, "unkey/data/identity_not_found", "Not Found");
    app.post("/v2/identities.deleteIdentity", json!({"identity": id}))
        .await
        .assert_error(404, "unkey/data/identity_not_found", "Not Found");
    // The external id is free again.
    app.post(
        "/v2/identities.createIdentity",
        json!({"externalId": "acme"}),
    )
    .await
    .assert_ok("/v2/identities.createIdentity");
    let events = app
        .store
        .list_audit_events(&app.workspace_id, 50)
        .await
        .unwrap();
    for name in [
        "identity.create",
        "identity.update",
        "identity.delete",
        "ratelimit.create",
        "ratelimit.update",
    ] {
        assert!(events.iter().any(|e| e.event == name), "missing {name}");
    }
}

#[tokio::test]
async fn identities_are_listed_searched_and_guarded() {
    let app = spawn_app().await;
    for ext in ["alpha", "beta", "gamma", "alphabet"] {
        app.post("/v2/identities.createIdentity", json!({"externalId": ext}))
            .await
            .assert_ok("/v2/identities.createIdentity");
    }
    let mut seen = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut body = json!({"limit": 3});
        if let Some(c) = &cursor {
            body["cursor"] = json!(c);
        }
        let r = app.post("/v2/identities.listIdentities", body).await;
        r.assert_ok("/v2/identities.listIdentities");
        seen += r.body["data"].as_array().unwrap().len();
        match r.body["pagination"]["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, 4);
    let r = app
        .post("/v2/identities.listIdentities", json!({"search": "ALPHA"}))
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 2);
    let (_, reader) = app.root_key_with(&["api.*.read_api"]).await;
    for (path, body) in [
        ("/v2/identities.createIdentity", json!({"externalId": "x"})),
        ("/v2/identities.listIdentities", json!({})),
        (
            "/v2/identities.updateIdentity",
            json!({"identity": "alpha", "meta": {}}),
        ),
        (
            "/v2/identities.deleteIdentity",
            json!({"identity": "alpha"}),
        ),
        ("/v2/identities.getIdentity", json!({"identity": "alpha"})),
    ] {
        app.post_with_key(path, &reader, body).await.assert_error(
            403,
            "unkey/authorization/insufficient_permissions",
            "Insufficient Permissions",
        );
    }
    let r = app
        .post(
            "/v2/identities.createIdentity",
            json!({"externalId": "has space"}),
        )
        .await;
    assert_eq!(
        r.body["error"]["errors"][0]["location"],
        "/properties/externalId/pattern"
    );
}

#[tokio::test]
async fn identity_meta_is_capped_at_one_mebibyte() {
    let app = spawn_app().await;
    let big = "x".repeat(1_048_600);
    let r = app
        .post(
            "/v2/identities.createIdentity",
            json!({"externalId": "big", "meta": {"blob": big}}),
        )
        .await;
    r.assert_error(400, "unkey/application/invalid_input", "Bad Request");
    assert!(
        r.detail()
            .starts_with("Metadata is too large: it must be at most 1.0 MB, but is 1.0 MB"),
        "{}",
        r.detail()
    );
    app.post("/v2/identities.getIdentity", json!({"identity": "big"}))
        .await
        .assert_error(404, "unkey/data/identity_not_found", "Not Found");
}

#[tokio::test]
async fn deleting_an_identity_leaves_its_keys_working_without_it() {
    let app = spawn_app().await;
    let api = app.create_api("docs").await;
    let (key_id, key) = create_key(&app, &api, json!({"externalId": "owner"})).await;
    assert_eq!(
        app.verify(json!({"key": key})).await.body["data"]["identity"]["externalId"],
        "owner"
    );
    app.post(
        "/v2/identities.deleteIdentity",
        json!({"identity": "owner"}),
    )
    .await
    .assert_ok("/v2/identities.deleteIdentity");
    let r = app.verify(json!({"key": key})).await;
    assert_eq!(r.body["data"]["code"], "VALID");
    assert!(r.body["data"].get("identity").is_none());
    assert!(get_key(&app, &key_id).await.get("identity").is_none());
}

#[tokio::test]
async fn an_auto_applied_key_limit_rate_limits_verifications() {
    let app = spawn_app().await;
    app.align_clock(60_000);
    let api = app.create_api("docs").await;
    let (key_id, key) = create_key(
        &app,
        &api,
        json!({"ratelimits": [limit("requests", 2, 60_000, true)], "credits": {"remaining": 10}}),
    )
    .await;
    let data = get_key(&app, &key_id).await;
    assert_eq!(data["ratelimits"][0]["name"], "requests");
    assert!(data["ratelimits"][0]["id"]
        .as_str()
        .unwrap()
        .starts_with("rl_"));
    let r = app.verify(json!({"key": key})).await;
    assert_eq!(r.body["data"]["code"], "VALID");
    let entry = &r.body["data"]["ratelimits"][0];
    assert_eq!(
        (
            entry["name"].clone(),
            entry["remaining"].clone(),
            entry["exceeded"].clone(),
            entry["autoApply"].clone(),
            entry["limit"].clone(),
            entry["duration"].clone()
        ),
        (
            json!("requests"),
            json!(1),
            json!(false),
            json!(true),
            json!(2),
            json!(60_000)
        )
    );
    assert!(entry["reset"].as_i64().unwrap() > app.now());
    app.verify(json!({"key": key})).await;
    let r = app.verify(json!({"key": key})).await;
    assert_eq!(r.body["data"]["code"], "RATE_LIMITED");
    assert_eq!(r.body["data"]["valid"], false);
    assert_eq!(r.body["data"]["ratelimits"][0]["exceeded"], true);
    assert_eq!(
        r.body["data"]["credits"], 8,
        "a rate-limited verification spends no credits"
    );
    app.clock.advance_ms(120_000);
    assert_eq!(
        app.verify(json!({"key": key})).await.body["data"]["code"],
        "VALID"
    );
}

#[tokio::test]
async fn identity_limits_are_shared_and_key_limits_win_on_a_name() {
    let app = spawn_app().await;
    app.align_clock(60_000);
    let api = app.create_api("docs").await;
    app.post(
        "/v2/identities.createIdentity",
        json!({"externalId": "team", "ratelimits": [limit("shared", 3, 60_000, true), limit("named", 1, 60_000, false)]}),
    )
    .await
    .assert_ok("/v2/identities.createIdentity");
    let (_, a) = create_key(&app, &api, json!({"externalId": "team"})).await;
    let (_, b) = create_key(&app, &api, json!({"externalId": "team"})).await;
    let codes: Vec<String> = {
        let mut codes = Vec::new();
        for key in [&a, &b, &a, &b] {
            codes.push(
                app.verify(json!({"key": key})).await.body["data"]["code"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        codes
    };
    assert_eq!(codes, ["VALID", "VALID", "VALID", "RATE_LIMITED"]);

    // A key limit of the same name replaces the identity's for that key.
    let (_, own) = create_key(
        &app,
        &api,
        json!({"externalId": "team", "ratelimits": [limit("shared", 100, 60_000, true)]}),
    )
    .await;
    let r = app.verify(json!({"key": own})).await;
    assert_eq!(r.body["data"]["code"], "VALID");
    assert_eq!(r.body["data"]["ratelimits"][0]["limit"], 100);
    // The identity's shadowed limit is not listed under the identity.
    let names: Vec<&str> = r.body["data"]["identity"]["ratelimits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["named"]);
}

#[tokio::test]
async fn requested_limits_are_named_or_ad_hoc_and_decided_together() {
    let app = spawn_app().await;
    app.align_clock(60_000);
    let api = app.create_api("docs").await;
    let (key_id, key) = create_key(
        &app,
        &api,
        json!({"ratelimits": [limit("zeta", 10, 60_000, true), limit("alpha", 10, 60_000, true), limit("named", 1, 60_000, false)]}),
    )
    .await;
    // Response order: auto-applied by name, then the request's order.
    let r = app.verify(
        json!({"key": key, "ratelimits": [{"name": "adhoc", "limit": 5, "duration": 60_000, "cost": 2}, {"name": "named"}]}),
    )
    .await;
    let names: Vec<&str> = r.body["data"]["ratelimits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "zeta", "adhoc", "named"]);
    let adhoc = &r.body["data"]["ratelimits"][2];
    assert_eq!(
        (
            adhoc["id"].clone(),
            adhoc["remaining"].clone(),
            adhoc["autoApply"].clone()
        ),
        (json!(""), json!(3), json!(false))
    );

    // "named" (1/min) is now spent: the whole batch fails and nothing else is counted.
    let r = app
        .verify(json!({"key": key, "ratelimits": [{"name": "named"}]}))
        .await;
    assert_eq!(r.body["data"]["code"], "RATE_LIMITED");
    let alpha = &r.body["data"]["ratelimits"][0];
    assert_eq!(
        (
            alpha["name"].clone(),
            alpha["remaining"].clone(),
            alpha["exceeded"].clone()
        ),
        (json!("alpha"), json!(9), json!(false))
    );
    let r = app.verify(json!({"key": key})).await;
    assert_eq!(
        r.body["data"]["ratelimits"][0]["remaining"], 8,
        "the failed batch did not count"
    );

    let r = app
        .post(
            "/v2/keys.verifyKey",
            json!({"key": key, "ratelimits": [{"name": "ghost"}]}),
        )
        .await;
    r.assert_error(
        412,
        "unkey/application/precondition_failed",
        "Precondition Failed",
    );
    assert_eq!(
        r.detail(),
        format!("ratelimit 'ghost' was requested but does not exist for key '{key_id}' and there is no identity connected.")
    );
    let r = app
        .post(
            "/v2/keys.verifyKey",
            json!({"key": key, "ratelimits": [{"name": "tiny", "limit": 1, "duration": 10}]}),
        )
        .await;
    r.assert_error(400, "unkey/application/invalid_input", "Bad Request");
    // An ad-hoc limit of 0 denies.
    let r = app
        .verify(
            json!({"key": key, "ratelimits": [{"name": "zero", "limit": 0, "duration": 60_000}]}),
        )
        .await;
    assert_eq!(r.body["data"]["code"], "RATE_LIMITED");
}

#[tokio::test]
async fn update_key_replaces_limits_by_name_keeping_ids() {
    let app = spawn_app().await;
    let api = app.create_api("docs").await;
    let (key_id, _) = create_key(
        &app,
        &api,
        json!({"ratelimits": [limit("a_1", 1, 1000, false), limit("b_1", 1, 1000, false)]}),
    )
    .await;
    let before = get_key(&app, &key_id).await;
    let a_id = before["ratelimits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "a_1")
        .unwrap()["id"]
        .clone();
    app.post(
        "/v2/keys.updateKey",
        json!({"keyId": key_id, "ratelimits": [limit("a_1", 7, 2000, true)]}),
    )
    .await
    .assert_ok("/v2/keys.updateKey");
    let after = get_key(&app, &key_id).await;
    assert_eq!(
        after["ratelimits"],
        json!([{"id": a_id, "name": "a_1", "limit": 7, "duration": 2000, "autoApply": true}])
    );
    app.post(
        "/v2/keys.updateKey",
        json!({"keyId": key_id, "ratelimits": []}),
    )
    .await
    .assert_ok("/v2/keys.updateKey");
    assert!(get_key(&app, &key_id).await.get("ratelimits").is_none());
    let r = app
        .post("/v2/keys.createKey", json!({"apiId": api, "ratelimits": [limit("dup", 1, 1000, false), limit("dup", 2, 1000, false)]}))
        .await;
    r.assert_error(400, "unkey/application/invalid_input", "Bad Request");
}

#[tokio::test]
async fn keys_created_together_for_the_same_external_ids_share_one_identity_each() {
    let app = spawn_app().await;
    let api_id = app.create_api("owners").await;
    // Concurrent creations share group commits: within one batch, the first key of an external id
    // creates its identity and the others link it.
    let mut creations = tokio::task::JoinSet::new();
    for i in 0..30 {
        let (url, root, client, api_id) = (
            format!("{}/v2/keys.createKey", app.base_url),
            app.root_key.clone(),
            app.client.clone(),
            api_id.clone(),
        );
        let external_id = ["acme", "globex", "initech"][i % 3];
        creations.spawn(async move {
            let r = client
                .post(&url)
                .bearer_auth(&root)
                .json(&json!({"apiId": api_id, "externalId": external_id}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let body: Value = r.json().await.unwrap();
            let key_id = body["data"]["keyId"].as_str().unwrap().to_string();
            (key_id, external_id)
        });
    }
    let created = creations.join_all().await;
    let mut identity_of = std::collections::HashMap::new();
    for (key_id, external_id) in &created {
        let data = get_key(&app, key_id).await;
        assert_eq!(data["identity"]["externalId"], *external_id);
        let id = data["identity"]["id"].as_str().unwrap().to_string();
        assert_eq!(
            identity_of
                .entry(*external_id)
                .or_insert_with(|| id.clone()),
            &id,
            "every key of {external_id} links the same identity"
        );
    }
    let r = app.post("/v2/identities.listIdentities", json!({})).await;
    r.assert_ok("/v2/identities.listIdentities");
    assert_eq!(r.body["data"].as_array().unwrap().len(), 3);
}
