//! `keys.*` management routes: create, read, update, credits, delete, reroll, migrate.

use serde_json::{json, Value};

use crate::helpers::{plain_new_key, spawn_app, TestApp};

/// Creates a key with `extra` fields merged into the body; returns `(keyId, key)`.
pub async fn create_key(app: &TestApp, api_id: &str, extra: Value) -> (String, String) {
    let mut body = json!({ "apiId": api_id });
    if let (Some(target), Some(source)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in source {
            target.insert(k.clone(), v.clone());
        }
    }
    let response = app.post("/v2/keys.createKey", body).await;
    response.assert_ok("/v2/keys.createKey");
    (
        response.body["data"]["keyId"].as_str().unwrap().to_string(),
        response.body["data"]["key"].as_str().unwrap().to_string(),
    )
}

pub async fn get_key(app: &TestApp, key_id: &str) -> Value {
    let response = app
        .post("/v2/keys.getKey", json!({ "keyId": key_id }))
        .await;
    response.assert_ok("/v2/keys.getKey");
    response.body["data"].clone()
}

#[tokio::test]
async fn a_created_key_carries_its_prefix_and_reads_back_without_its_secret() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (key_id, key) = create_key(
        &app,
        &api,
        json!({
            "prefix": "sk_live", "name": "acme prod", "meta": {"plan": "pro", "seats": 3},
            "expires": app.now() + 86_400_000, "externalId": "acme", "byteLength": 32,
            "credits": {"remaining": 100, "refill": {"interval": "monthly", "amount": 100, "refillDay": 31}}
        }),
    )
    .await;
    assert!(key_id.starts_with("key_"));
    assert!(key.starts_with("sk_live_"));
    // 32 random bytes in base58 are 43 or 44 characters.
    let random = &key["sk_live_".len()..];
    assert!((43..=44).contains(&random.len()), "{random}");

    let data = get_key(&app, &key_id).await;
    assert_eq!(data["keyId"], key_id.as_str());
    assert_eq!(data["start"], format!("sk_live_{}", &random[..4]));
    assert_eq!(data["name"], "acme prod");
    assert_eq!(data["meta"], json!({"plan": "pro", "seats": 3}));
    assert_eq!(data["enabled"], true);
    assert_eq!(
        data["credits"],
        json!({"remaining": 100, "refill": {"interval": "monthly", "amount": 100, "refillDay": 31}})
    );
    assert_eq!(data["identity"]["externalId"], "acme");
    assert!(data["identity"]["id"].as_str().unwrap().starts_with("id_"));
    assert!(
        !data.to_string().contains(&key),
        "the plaintext must never be shown again"
    );
    assert!(data.get("plaintext").is_none());
}

#[tokio::test]
async fn keys_are_stored_only_as_hashes() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (key_id, key) = create_key(&app, &api, json!({})).await;
    let row = app.store.find_key_by_id(&key_id).await.unwrap().unwrap();
    assert_eq!(row.hash, keyward::domain::keys::hash::hash_key(&key));
    assert_ne!(row.hash, key);
    assert_eq!(row.start, key[..4]);
}

#[tokio::test]
async fn create_key_rejects_bad_bounds_and_inconsistent_credits() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let cases = [
        (json!({"byteLength": 15}), "/properties/byteLength/minimum"),
        (json!({"byteLength": 256}), "/properties/byteLength/maximum"),
        (json!({"prefix": "has-dash"}), "/properties/prefix/pattern"),
        (
            json!({"prefix": "x".repeat(17)}),
            "/properties/prefix/maxLength",
        ),
        (
            json!({"externalId": "a b"}),
            "/properties/externalId/pattern",
        ),
        (json!({"expires": -1}), "/properties/expires/minimum"),
        (
            json!({"expires": 4_102_444_800_001i64}),
            "/properties/expires/maximum",
        ),
        (
            json!({"credits": {"remaining": -1}}),
            "/properties/credits/properties/remaining/minimum",
        ),
        (json!({"credits": {}}), "/properties/credits/required"),
        (
            json!({"credits": {"remaining": 1, "refill": {"interval": "weekly", "amount": 1}}}),
            "/properties/credits/properties/refill/properties/interval/enum",
        ),
        (json!({"meta": "x"}), "/properties/meta/type"),
        (json!({"unknownField": 1}), "/additionalProperties"),
        (
            json!({"ratelimits": [{"name": "ab", "limit": 1, "duration": 1000}]}),
            "/properties/ratelimits/items/properties/name/minLength",
        ),
        (
            json!({"ratelimits": [{"name": "abc", "limit": 1, "duration": 999}]}),
            "/properties/ratelimits/items/properties/duration/minimum",
        ),
    ];
    for (extra, location) in cases {
        let mut body = json!({"apiId": api});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let response = app.post("/v2/keys.createKey", body).await;
        response.assert_error(400, "unkey/application/invalid_input", "Bad Request");
        assert_eq!(
            response.body["error"]["errors"][0]["location"], location,
            "{extra}"
        );
    }
    let too_many: serde_json::Map<String, Value> =
        (0..101).map(|i| (format!("k{i}"), json!(i))).collect();
    let response = app
        .post(
            "/v2/keys.createKey",
            json!({"apiId": api, "meta": too_many}),
        )
        .await;
    assert_eq!(
        response.body["error"]["errors"][0]["location"],
        "/properties/meta/maxProperties"
    );

    for (credits, message) in [
        (
            json!({"remaining": null, "refill": {"interval": "daily", "amount": 5}}),
            "`credits.remaining` must be provided when `credits.refill` is set.",
        ),
        (
            json!({"remaining": 5, "refill": {"interval": "monthly", "amount": 5}}),
            "`refillDay` must be provided when the refill interval is `monthly`.",
        ),
        (
            json!({"remaining": 5, "refill": {"interval": "daily", "amount": 5, "refillDay": 3}}),
            "`refillDay` must not be provided when the refill interval is `daily`.",
        ),
    ] {
        let response = app
            .post(
                "/v2/keys.createKey",
                json!({"apiId": api, "credits": credits}),
            )
            .await;
        response.assert_error(400, "unkey/application/invalid_input", "Bad Request");
        assert_eq!(response.detail(), message);
    }
    // Nothing was half-written: the API still has no keys.
    let list = app.post("/v2/apis.listKeys", json!({"apiId": api})).await;
    assert_eq!(list.body["data"], json!([]));
}

#[tokio::test]
async fn create_key_hides_apis_the_caller_may_not_use() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (_, reader) = app.root_key_with(&["api.*.read_key"]).await;
    let response = app
        .post_with_key("/v2/keys.createKey", &reader, json!({"apiId": api}))
        .await;
    response.assert_error(404, "unkey/data/api_not_found", "Not Found");
    let response = app
        .post("/v2/keys.createKey", json!({"apiId": "api_missing"}))
        .await;
    response.assert_error(404, "unkey/data/api_not_found", "Not Found");
    let grant = format!("api.{api}.create_key");
    let (_, scoped) = app.root_key_with(&[grant.as_str()]).await;
    app.post_with_key("/v2/keys.createKey", &scoped, json!({"apiId": api}))
        .await
        .assert_ok("/v2/keys.createKey");
    let response = app
        .post(
            "/v2/keys.createKey",
            json!({"apiId": api, "recoverable": true}),
        )
        .await;
    response.assert_error(
        412,
        "unkey/application/precondition_failed",
        "Precondition Failed",
    );
}

#[tokio::test]
async fn keys_of_one_owner_share_an_identity_and_can_be_listed_by_it() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (a, _) = create_key(&app, &api, json!({"externalId": "user_1"})).await;
    let (b, _) = create_key(&app, &api, json!({"externalId": "user_1"})).await;
    let (_, _) = create_key(&app, &api, json!({"externalId": "user_2"})).await;
    let (_, _) = create_key(&app, &api, json!({})).await;
    assert_eq!(
        get_key(&app, &a).await["identity"]["id"],
        get_key(&app, &b).await["identity"]["id"]
    );
    let response = app
        .post(
            "/v2/apis.listKeys",
            json!({"apiId": api, "externalId": "user_1"}),
        )
        .await;
    response.assert_ok("/v2/apis.listKeys");
    let mut ids: Vec<&str> = response.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["keyId"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected = vec![a.as_str(), b.as_str()];
    expected.sort();
    assert_eq!(ids, expected);
    let all = app.post("/v2/apis.listKeys", json!({"apiId": api})).await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn update_key_distinguishes_absent_null_and_value() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (key_id, _) = create_key(
        &app,
        &api,
        json!({"name": "n", "meta": {"a": 1}, "expires": app.now() + 60_000, "externalId": "o",
               "credits": {"remaining": 5, "refill": {"interval": "daily", "amount": 5}}}),
    )
    .await;
    let update = |body: Value| {
        let mut b = body;
        b["keyId"] = json!(key_id);
        app.post("/v2/keys.updateKey", b)
    };
    // Absent: nothing changes.
    update(json!({})).await.assert_ok("/v2/keys.updateKey");
    let data = get_key(&app, &key_id).await;
    assert_eq!(data["name"], "n");
    assert!(data["updatedAt"].as_i64().is_some());

    // Values set.
    update(json!({"name": "m", "meta": {"b": 2}, "enabled": false}))
        .await
        .assert_ok("/v2/keys.updateKey");
    let data = get_key(&app, &key_id).await;
    assert_eq!(
        (
            data["name"].clone(),
            data["meta"].clone(),
            data["enabled"].clone()
        ),
        (json!("m"), json!({"b": 2}), json!(false))
    );
    assert_eq!(data["identity"]["externalId"], "o");

    // Null clears.
    update(json!({"name": null, "meta": null, "expires": null, "externalId": null}))
        .await
        .assert_ok("/v2/keys.updateKey");
    let data = get_key(&app, &key_id).await;
    for field in ["name", "meta", "expires", "identity"] {
        assert!(
            data.get(field).is_none(),
            "{field} should be cleared: {data}"
        );
    }
    assert!(data.get("credits").is_some());

    // credits.refill: null keeps the balance, drops the schedule; credits: null makes it unlimited.
    update(json!({"credits": {"refill": null}}))
        .await
        .assert_ok("/v2/keys.updateKey");
    assert_eq!(
        get_key(&app, &key_id).await["credits"],
        json!({"remaining": 5})
    );
    update(json!({"credits": {"remaining": 9}}))
        .await
        .assert_ok("/v2/keys.updateKey");
    assert_eq!(
        get_key(&app, &key_id).await["credits"],
        json!({"remaining": 9})
    );
    update(json!({"credits": null}))
        .await
        .assert_ok("/v2/keys.updateKey");
    assert!(get_key(&app, &key_id).await.get("credits").is_none());

    // A refill for an unlimited key is refused, and changes nothing.
    let response = update(json!({"credits": {"refill": {"interval": "daily", "amount": 3}}})).await;
    response.assert_error(400, "unkey/application/invalid_input", "Bad Request");
    assert!(get_key(&app, &key_id).await.get("credits").is_none());
    let response = update(json!({"name": ""})).await;
    assert_eq!(
        response.body["error"]["errors"][0]["location"],
        "/properties/name/minLength"
    );
}

#[tokio::test]
async fn key_routes_answer_404_for_unknown_deleted_and_foreign_keys() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (key_id, _) = create_key(&app, &api, json!({})).await;
    let other = keyward::domain::admin::create_workspace(&app.store, app.now(), "other")
        .await
        .unwrap();
    let (_, foreign) = app.root_key_in(&other.id, &[]).await;
    let routes = [
        ("/v2/keys.getKey", json!({"keyId": key_id})),
        ("/v2/keys.updateKey", json!({"keyId": key_id, "name": "x"})),
        ("/v2/keys.deleteKey", json!({"keyId": key_id})),
        (
            "/v2/keys.updateCredits",
            json!({"keyId": key_id, "operation": "set", "value": 1}),
        ),
        (
            "/v2/keys.rerollKey",
            json!({"keyId": key_id, "expiration": 0}),
        ),
    ];
    for (path, body) in &routes {
        let response = app.post_with_key(path, &foreign, body.clone()).await;
        response.assert_error(404, "unkey/data/key_not_found", "Not Found");
        let mut unknown = body.clone();
        unknown["keyId"] = json!("key_doesnotexist");
        app.post(path, unknown)
            .await
            .assert_error(404, "unkey/data/key_not_found", "Not Found");
    }
    // Existence first, then permission: a known key without the permission is a 403.
    let (_, reader) = app.root_key_with(&["api.*.read_api"]).await;
    app.post_with_key("/v2/keys.getKey", &reader, json!({"keyId": key_id}))
        .await
        .assert_error(
            403,
            "unkey/authorization/insufficient_permissions",
            "Insufficient Permissions",
        );
    // The foreign calls changed nothing.
    assert!(get_key(&app, &key_id).await.get("name").is_none());
}

#[tokio::test]
async fn deleted_keys_are_gone_and_permanent_deletion_erases_the_row() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (soft, soft_key) = create_key(&app, &api, json!({})).await;
    let (hard, _) = create_key(&app, &api, json!({})).await;
    app.post("/v2/keys.deleteKey", json!({"keyId": soft}))
        .await
        .assert_ok("/v2/keys.deleteKey");
    app.post(
        "/v2/keys.deleteKey",
        json!({"keyId": hard, "permanent": true}),
    )
    .await
    .assert_ok("/v2/keys.deleteKey");
    for id in [&soft, &hard] {
        app.post("/v2/keys.getKey", json!({"keyId": id}))
            .await
            .assert_error(404, "unkey/data/key_not_found", "Not Found");
    }
    let verify = app
        .post("/v2/keys.verifyKey", json!({"key": soft_key}))
        .await;
    assert_eq!(
        verify.body["data"],
        json!({"valid": false, "code": "NOT_FOUND"})
    );
    let list = app.post("/v2/apis.listKeys", json!({"apiId": api})).await;
    assert_eq!(list.body["data"], json!([]));
    let events = app
        .store
        .list_audit_events(&app.workspace_id, 20)
        .await
        .unwrap();
    assert!(events
        .iter()
        .any(|e| e.description == format!("Permanently deleted {hard}")));
    assert!(events
        .iter()
        .any(|e| e.description == format!("Deleted {soft}")));
}

#[tokio::test]
async fn update_credits_sets_increments_and_decrements() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (key_id, _) = create_key(&app, &api, json!({"credits": {"remaining": 10}})).await;
    let op = |operation: &str, value: Value| {
        let mut body = json!({"keyId": key_id, "operation": operation});
        if !value.is_null() || operation == "set" {
            body["value"] = value;
        }
        app.post("/v2/keys.updateCredits", body)
    };
    let r = op("increment", json!(5)).await;
    r.assert_ok("/v2/keys.updateCredits");
    assert_eq!(r.body["data"], json!({"remaining": 15}));
    assert_eq!(
        op("decrement", json!(20)).await.body["data"],
        json!({"remaining": 0})
    );
    assert_eq!(
        op("set", json!(7)).await.body["data"],
        json!({"remaining": 7})
    );
    let r = op("increment", Value::Null).await;
    r.assert_error(400, "unkey/application/invalid_input", "Bad Request");
    assert_eq!(
        r.detail(),
        "When specifying an increment or decrement operation, a value must be provided."
    );
    let r = op("set", Value::Null).await;
    r.assert_ok("/v2/keys.updateCredits");
    assert_eq!(r.body["data"], json!({"remaining": null}));
    assert!(get_key(&app, &key_id).await.get("credits").is_none());
    let r = op("decrement", json!(1)).await;
    r.assert_error(400, "unkey/application/invalid_input", "Bad Request");
    assert_eq!(
        r.detail(),
        "You cannot increment or decrement a key with unlimited credits."
    );
    let r = op("double", json!(1)).await;
    assert_eq!(
        r.body["error"]["errors"][0]["location"],
        "/properties/operation/enum"
    );
}

#[tokio::test]
async fn reroll_issues_a_copy_and_retires_the_old_key_after_its_grace_period() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (old_id, old_key) = create_key(
        &app,
        &api,
        json!({"prefix": "acme", "name": "n", "meta": {"m": 1}, "externalId": "owner",
               "credits": {"remaining": 50}}),
    )
    .await;
    // Spend some first: the copy takes the balance as it is now.
    for _ in 0..3 {
        app.post("/v2/keys.verifyKey", json!({"key": old_key}))
            .await;
    }
    let r = app
        .post(
            "/v2/keys.rerollKey",
            json!({"keyId": old_id, "expiration": 90_000}),
        )
        .await;
    r.assert_ok("/v2/keys.rerollKey");
    let new_id = r.body["data"]["keyId"].as_str().unwrap().to_string();
    let new_key = r.body["data"]["key"].as_str().unwrap().to_string();
    assert!(new_key.starts_with("acme_"));
    let copy = get_key(&app, &new_id).await;
    assert_eq!(copy["name"], "n");
    assert_eq!(copy["meta"], json!({"m": 1}));
    assert_eq!(copy["identity"]["externalId"], "owner");
    assert_eq!(copy["credits"]["remaining"], 47);

    let old = get_key(&app, &old_id).await;
    let expires = old["expires"].as_i64().unwrap();
    assert_eq!(expires % 60_000, 0, "rounded up to a whole minute");
    assert!(expires >= app.now() + 90_000 && expires < app.now() + 150_000);
    let verify = |key: String| app.post("/v2/keys.verifyKey", json!({"key": key}));
    assert_eq!(verify(old_key.clone()).await.body["data"]["code"], "VALID");
    assert_eq!(verify(new_key.clone()).await.body["data"]["code"], "VALID");
    app.clock.advance_ms(150_001);
    assert_eq!(verify(old_key).await.body["data"]["code"], "EXPIRED");
    assert_eq!(verify(new_key).await.body["data"]["code"], "VALID");

    let events = app
        .store
        .list_audit_events(&app.workspace_id, 20)
        .await
        .unwrap();
    assert!(events.iter().any(|e| e.event == "key.reroll"
        && e.description == format!("Rerolled key ({old_id}) to ({new_id})")));
}

#[tokio::test]
async fn reroll_with_zero_expiration_stops_the_old_key_at_once() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (old_id, old_key) = create_key(&app, &api, json!({})).await;
    app.post(
        "/v2/keys.rerollKey",
        json!({"keyId": old_id, "expiration": 0}),
    )
    .await
    .assert_ok("/v2/keys.rerollKey");
    app.clock.advance_ms(1);
    let r = app
        .post("/v2/keys.verifyKey", json!({"key": old_key}))
        .await;
    assert_eq!(r.body["data"]["code"], "EXPIRED");
}

#[tokio::test]
async fn whoami_finds_a_key_by_its_plaintext() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (key_id, key) = create_key(&app, &api, json!({"name": "me"})).await;
    let r = app.post("/v2/keys.whoami", json!({"key": key})).await;
    r.assert_ok("/v2/keys.whoami");
    assert_eq!(r.body["data"]["keyId"], key_id.as_str());
    assert_eq!(r.body["data"]["name"], "me");
    let r = app
        .post("/v2/keys.whoami", json!({"key": "nope_123"}))
        .await;
    r.assert_error(404, "unkey/data/key_not_found", "Not Found");
    assert_eq!(r.detail(), "We could not find the requested key.");
}

#[tokio::test]
async fn mutations_of_keys_are_audited() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let (key_id, _) = create_key(&app, &api, json!({})).await;
    app.post("/v2/keys.updateKey", json!({"keyId": key_id, "name": "x"}))
        .await
        .assert_ok("/v2/keys.updateKey");
    app.post(
        "/v2/keys.updateCredits",
        json!({"keyId": key_id, "operation": "set", "value": 3}),
    )
    .await
    .assert_ok("/v2/keys.updateCredits");
    let events = app
        .store
        .list_audit_events(&app.workspace_id, 20)
        .await
        .unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert!(names.contains(&"key.create"));
    assert_eq!(names.iter().filter(|n| **n == "key.update").count(), 2);
    let credits = events
        .iter()
        .find(|e| e.description.contains("set remaining to 3"))
        .expect("credits event");
    assert_eq!(credits.targets[0]["type"], "keySpace");
}

/// Registers a migration of the app's workspace through the CLI; returns its id.
fn create_migration(app: &TestApp, algorithm: &str) -> String {
    let out = app.cli(&[
        "migration",
        "create",
        "--workspace",
        &app.workspace_id,
        "--algorithm",
        algorithm,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let migration: Value = serde_json::from_slice(&out.stdout).unwrap();
    migration["migrationId"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn sha256_migrations_import_hashes_that_then_verify() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let migration_id = &create_migration(&app, "sha256");
    let hash = keyward::domain::keys::hash::hash_key("legacy_key_abc123");
    let body = json!({"migrationId": migration_id, "apiId": api, "keys": [
        {"hash": hash, "name": "imported", "externalId": "legacy-user", "credits": {"remaining": 3}}
    ]});
    let r = app.post("/v2/keys.migrateKeys", body.clone()).await;
    r.assert_ok("/v2/keys.migrateKeys");
    assert_eq!(r.body["data"]["failed"], json!([]));
    assert_eq!(r.body["data"]["migrated"][0]["hash"], hash.as_str());
    let v = app
        .post("/v2/keys.verifyKey", json!({"key": "legacy_key_abc123"}))
        .await;
    assert_eq!(v.body["data"]["code"], "VALID");
    assert_eq!(v.body["data"]["credits"], 2);
    assert_eq!(v.body["data"]["identity"]["externalId"], "legacy-user");

    let again = app.post("/v2/keys.migrateKeys", body).await;
    again.assert_ok("/v2/keys.migrateKeys");
    assert_eq!(again.body["data"]["failed"], json!([hash]));
    assert_eq!(again.body["data"]["migrated"], json!([]));

    let r = app
        .post(
            "/v2/keys.migrateKeys",
            json!({"migrationId": "mig_nope", "apiId": api, "keys": [{"hash": "abc"}]}),
        )
        .await;
    r.assert_error(404, "unkey/data/migration_not_found", "Not Found");
    let r = app
        .post(
            "/v2/keys.migrateKeys",
            json!({"migrationId": migration_id, "apiId": api, "keys": []}),
        )
        .await;
    assert_eq!(
        r.body["error"]["errors"][0]["location"],
        "/properties/keys/minItems"
    );
}

#[tokio::test]
async fn an_unkey_export_with_roles_permissions_and_limits_imports_and_then_verifies() {
    let app = spawn_app().await;
    let api = app.create_api("imported").await;
    let migration_id = &create_migration(&app, "sha256");
    // One role exists already (with a permission); the other role and both new permissions do not.
    app.post(
        "/v2/permissions.createPermission",
        json!({"name": "billing.read", "slug": "billing.read"}),
    )
    .await
    .assert_ok("/v2/permissions.createPermission");
    app.post(
        "/v2/permissions.createRole",
        json!({"name": "viewer", "permissions": ["billing.read"]}),
    )
    .await
    .assert_ok("/v2/permissions.createRole");

    let hash_a = keyward::domain::keys::hash::hash_key("export_key_a");
    let hash_b = keyward::domain::keys::hash::hash_key("export_key_b");
    // A caller with create_key alone may import roles and permissions (no rbac.* needed).
    let (_, importer) = app.root_key_with(&["api.*.create_key"]).await;
    let r = app
        .post_with_key(
            "/v2/keys.migrateKeys",
            &importer,
            json!({"migrationId": migration_id, "apiId": api, "keys": [
                {"hash": hash_a, "permissions": ["documents.write", "Documents.Write"],
                 "roles": ["viewer", "editor"],
                 "ratelimits": [{"name": "requests", "limit": 2, "duration": 60000, "autoApply": true}]},
                {"hash": hash_b, "roles": ["editor"], "permissions": ["documents.write"]}
            ]}),
        )
        .await;
    r.assert_ok("/v2/keys.migrateKeys");
    assert_eq!(r.body["data"]["failed"], json!([]));
    let key_a = r.body["data"]["migrated"][0]["keyId"]
        .as_str()
        .unwrap()
        .to_string();

    // The missing permission and role now exist, once each.
    let roles = app.post("/v2/permissions.listRoles", json!({})).await;
    let names: Vec<&str> = roles.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.iter().filter(|n| **n == "editor").count(),
        1,
        "{names:?}"
    );
    let perms = app.post("/v2/permissions.listPermissions", json!({})).await;
    let slugs: Vec<&str> = perms.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].as_str().unwrap())
        .collect();
    assert_eq!(
        slugs
            .iter()
            .filter(|s| s.eq_ignore_ascii_case("documents.write"))
            .count(),
        1,
        "{slugs:?}"
    );

    // The imported key verifies with a permission query over its direct and role permissions,
    // and its auto-applied limit holds.
    let v = app
        .verify_permissions("export_key_a", "documents.write AND billing.read")
        .await;
    assert_eq!(v.body["data"]["code"], "VALID", "{}", v.body);
    let v = app.verify_permissions("export_key_b", "billing.read").await;
    assert_eq!(v.body["data"]["code"], "INSUFFICIENT_PERMISSIONS");
    // Its limit is 2: the permission check above was the first use.
    let v = app.verify(json!({"key": "export_key_a"})).await;
    assert_eq!(v.body["data"]["code"], "VALID", "{}", v.body);
    let v = app.verify(json!({"key": "export_key_a"})).await;
    assert_eq!(v.body["data"]["code"], "RATE_LIMITED", "{}", v.body);

    let got = app.post("/v2/keys.getKey", json!({"keyId": key_a})).await;
    let mut roles: Vec<&str> = got.body["data"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    roles.sort();
    assert_eq!(roles, ["editor", "viewer"]);
    assert_eq!(got.body["data"]["ratelimits"][0]["name"], "requests");

    let events = app
        .store
        .list_audit_events(&app.workspace_id, 50)
        .await
        .unwrap();
    let has = |event: &str, text: &str| {
        events
            .iter()
            .any(|e| e.event == event && e.description.contains(text))
    };
    assert!(has(
        "authorization.connect_permission_and_key",
        &format!("Added permission documents.write to key {key_a}")
    ));
    assert!(has(
        "authorization.connect_role_and_key",
        &format!("Connected role editor to key {key_a}")
    ));
    assert!(events.iter().any(|e| e.event == "role.create"));

    // A duplicate limit name in one key is refused, naming the key, and nothing is written.
    let r = app
        .post(
            "/v2/keys.migrateKeys",
            json!({"migrationId": migration_id, "apiId": api, "keys": [
                {"hash": keyward::domain::keys::hash::hash_key("export_key_c"), "ratelimits": [
                    {"name": "burst", "limit": 1, "duration": 1000},
                    {"name": "burst", "limit": 2, "duration": 1000}]}
            ]}),
        )
        .await;
    r.assert_error(400, "unkey/application/invalid_input", "Bad Request");
    assert_eq!(
        r.body["error"]["errors"][0]["location"],
        "body.keys[0].ratelimits"
    );
    let v = app.verify(json!({"key": "export_key_c"})).await;
    assert_eq!(v.body["data"]["code"], "NOT_FOUND");
}

#[tokio::test]
async fn prefixed_api_key_migrations_upgrade_keys_on_first_verification() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    let migration = keyward::domain::keys::migrate::create_migration(
        &app.store,
        app.now(),
        &app.workspace_id,
        keyward::domain::keys::migrate::PREFIXED_API_KEY,
    )
    .await
    .unwrap();
    use sha2::Digest;
    let long = "BRTRKFsL51DJfj6dVNkA9Gn7xRLcDqLa";
    let legacy: String = sha2::Sha256::digest(long.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let r = app
        .post(
            "/v2/keys.migrateKeys",
            json!({"migrationId": migration.id, "apiId": api, "keys": [{"hash": legacy}]}),
        )
        .await;
    r.assert_ok("/v2/keys.migrateKeys");
    let key_id = r.body["data"]["migrated"][0]["keyId"]
        .as_str()
        .unwrap()
        .to_string();
    let presented = format!("mycompany_short12_{long}");

    let v = app
        .post("/v2/keys.verifyKey", json!({"key": presented}))
        .await;
    assert_eq!(v.body["data"]["code"], "NOT_FOUND");
    let v = app
        .post(
            "/v2/keys.verifyKey",
            json!({"key": presented, "migrationId": migration.id}),
        )
        .await;
    assert_eq!(v.body["data"]["code"], "VALID", "{}", v.body);
    assert_eq!(v.body["data"]["keyId"], key_id.as_str());
    // From now on the key is keyward's own.
    let v = app
        .post("/v2/keys.verifyKey", json!({"key": presented}))
        .await;
    assert_eq!(v.body["data"]["code"], "VALID");
    assert_eq!(get_key(&app, &key_id).await["start"], "mycompany_shor");
    let row = app.store.find_key_by_id(&key_id).await.unwrap().unwrap();
    assert_eq!(row.hash, keyward::domain::keys::hash::hash_key(&presented));
    assert!(row.pending_migration_id.is_none());

    let r = app
        .post(
            "/v2/keys.verifyKey",
            json!({"key": "nounderscores", "migrationId": migration.id}),
        )
        .await;
    r.assert_error(400, "unkey/authentication/malformed", "Bad Request");
}

#[tokio::test]
async fn concurrent_key_inserts_commit_together_and_a_failing_one_fails_alone() {
    let app = spawn_app().await;
    let api_id = app.create_api("payments").await;
    let api = app.store.get_api(&api_id).await.unwrap().unwrap();
    let new_key = |i: usize, hash: String| {
        plain_new_key(
            &api.key_space_id,
            &app.workspace_id,
            &format!("key_group{i}"),
            &hash,
            app.now(),
        )
    };
    let mut tasks = Vec::new();
    for i in 0..30 {
        // Key 7 reuses key 3's hash: only one of the two can exist.
        let hash = format!("hash_group_{}", if i == 7 { 3 } else { i });
        let store = app.store.clone();
        let key = new_key(i, hash);
        tasks.push(tokio::spawn(async move {
            store.insert_key(&key, &[]).await.is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() {
            ok += 1;
        }
    }
    assert_eq!(ok, 29);
    let list = app
        .post("/v2/apis.listKeys", json!({"apiId": api_id}))
        .await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 29);
}
