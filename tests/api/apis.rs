//! `apis.*`: create, read, delete (with protection), list keys; and their audit records.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn an_api_can_be_created_and_read_back() {
    let app = spawn_app().await;
    let response = app
        .post("/v2/apis.createApi", json!({"name": "payments (prod)"}))
        .await;
    response.assert_ok("/v2/apis.createApi");
    let api_id = response.body["data"]["apiId"].as_str().unwrap().to_string();
    assert!(api_id.starts_with("api_"));

    let response = app.post("/v2/apis.getApi", json!({"apiId": api_id})).await;
    response.assert_ok("/v2/apis.getApi");
    assert_eq!(
        response.body["data"],
        json!({"id": api_id, "name": "payments (prod)"})
    );
}

#[tokio::test]
async fn names_are_not_unique_and_unicode_counts_as_characters() {
    let app = spawn_app().await;
    let a = app.create_api("same").await;
    let b = app.create_api("same").await;
    assert_ne!(a, b);
    // Three characters of four bytes each satisfy minLength 3.
    app.post("/v2/apis.createApi", json!({"name": "🔑🔑🔑"}))
        .await
        .assert_ok("/v2/apis.createApi");
}

#[tokio::test]
async fn getting_an_unknown_api_is_a_404() {
    let app = spawn_app().await;
    let response = app
        .post("/v2/apis.getApi", json!({"apiId": "api_doesnotexist"}))
        .await;
    response.assert_error(404, "unkey/data/api_not_found", "Not Found");
    assert_eq!(
        response.detail(),
        "The requested API does not exist or has been deleted."
    );
}

#[tokio::test]
async fn a_deleted_api_is_gone_for_every_route() {
    let app = spawn_app().await;
    let api_id = app.create_api("payments").await;
    app.post("/v2/apis.deleteApi", json!({"apiId": api_id}))
        .await
        .assert_ok("/v2/apis.deleteApi");
    for path in ["/v2/apis.getApi", "/v2/apis.deleteApi", "/v2/apis.listKeys"] {
        app.post(path, json!({"apiId": api_id})).await.assert_error(
            404,
            "unkey/data/api_not_found",
            "Not Found",
        );
    }
}

#[tokio::test]
async fn delete_protection_answers_412_and_keeps_the_api() {
    let app = spawn_app().await;
    let api_id = app.create_api("payments").await;
    keyward::domain::admin::set_api_delete_protection(&app.store, app.now(), &api_id, true)
        .await
        .unwrap();
    let response = app
        .post("/v2/apis.deleteApi", json!({"apiId": api_id}))
        .await;
    response.assert_error(
        412,
        "unkey/application/protected_resource",
        "Resource is protected",
    );
    app.post("/v2/apis.getApi", json!({"apiId": api_id}))
        .await
        .assert_ok("/v2/apis.getApi");

    keyward::domain::admin::set_api_delete_protection(&app.store, app.now(), &api_id, false)
        .await
        .unwrap();
    app.post("/v2/apis.deleteApi", json!({"apiId": api_id}))
        .await
        .assert_ok("/v2/apis.deleteApi");
}

#[tokio::test]
async fn permission_is_checked_before_the_api_is_looked_up() {
    let app = spawn_app().await;
    let (_, key) = app.root_key_with(&["api.*.create_api"]).await;
    let response = app
        .post_with_key(
            "/v2/apis.getApi",
            &key,
            json!({"apiId": "api_doesnotexist"}),
        )
        .await;
    response.assert_error(
        403,
        "unkey/authorization/insufficient_permissions",
        "Insufficient Permissions",
    );
}

#[tokio::test]
async fn list_keys_of_a_new_api_is_an_empty_last_page() {
    let app = spawn_app().await;
    let api_id = app.create_api("payments").await;
    let response = app
        .post("/v2/apis.listKeys", json!({"apiId": api_id}))
        .await;
    response.assert_ok("/v2/apis.listKeys");
    assert_eq!(response.body["data"], json!([]));
    assert_eq!(response.body["pagination"], json!({"hasMore": false}));

    let response = app
        .post(
            "/v2/apis.listKeys",
            json!({"apiId": api_id, "limit": 1, "cursor": "key_zzz", "externalId": "nobody", "revalidateKeysCache": true}),
        )
        .await;
    response.assert_ok("/v2/apis.listKeys");
    assert_eq!(response.body["data"], json!([]));
}

#[tokio::test]
async fn list_keys_pages_through_keys_in_id_order() {
    let app = spawn_app().await;
    let api_id = app.create_api("payments").await;
    let api = app.store.get_api(&api_id).await.unwrap().unwrap();
    // Keys are created by the keys routes later; insert rows directly to exercise pagination.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
    for i in 0..5 {
        sqlx::query(
            "INSERT INTO keys (id, key_space_id, workspace_id, hash, start, created_at_m) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(format!("key_{i}"))
        .bind(&api.key_space_id)
        .bind(&app.workspace_id)
        .bind(format!("hash{i}"))
        .bind("sk_abcd")
        .bind(app.now())
        .execute(&pool)
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut body = json!({"apiId": api_id, "limit": 2});
        if let Some(c) = &cursor {
            body["cursor"] = json!(c);
        }
        let response = app.post("/v2/apis.listKeys", body).await;
        response.assert_ok("/v2/apis.listKeys");
        for key in response.body["data"].as_array().unwrap() {
            seen.push(key["keyId"].as_str().unwrap().to_string());
        }
        if response.body["pagination"]["hasMore"] == json!(true) {
            cursor = Some(
                response.body["pagination"]["cursor"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        } else {
            assert!(response.body["pagination"].get("cursor").is_none());
            break;
        }
    }
    assert_eq!(seen, ["key_0", "key_1", "key_2", "key_3", "key_4"]);
}

#[tokio::test]
async fn list_keys_without_read_permission_reads_as_not_found() {
    let app = spawn_app().await;
    let api_id = app.create_api("payments").await;
    let (_, key) = app.root_key_with(&["api.*.read_api"]).await;
    let response = app
        .post_with_key("/v2/apis.listKeys", &key, json!({"apiId": api_id}))
        .await;
    response.assert_error(404, "unkey/data/api_not_found", "Not Found");
}

#[tokio::test]
async fn list_keys_with_decrypt_needs_a_vault() {
    let app = spawn_app().await;
    let api_id = app.create_api("payments").await;
    let response = app
        .post(
            "/v2/apis.listKeys",
            json!({"apiId": api_id, "decrypt": true}),
        )
        .await;
    response.assert_error(
        412,
        "unkey/application/precondition_failed",
        "Precondition Failed",
    );
}

#[tokio::test]
async fn mutations_write_audit_events_with_actor_targets_and_origin() {
    let app = spawn_app().await;
    let request = app
        .client
        .post(format!("{}/v2/apis.createApi", app.base_url))
        .bearer_auth(&app.root_key)
        .header("user-agent", "audit-test/1.0")
        .header("x-forwarded-for", "203.0.113.7, 10.0.0.1")
        .json(&json!({"name": "payments"}));
    let response = app.send(request).await;
    let api_id = response.body["data"]["apiId"].as_str().unwrap().to_string();
    app.post("/v2/apis.deleteApi", json!({"apiId": api_id}))
        .await
        .assert_ok("/v2/apis.deleteApi");

    let events = app
        .store
        .list_audit_events(&app.workspace_id, 10)
        .await
        .unwrap();
    let create = events
        .iter()
        .find(|e| e.event == "api.create")
        .expect("api.create");
    assert_eq!(create.actor_type, "rootkey");
    assert_eq!(create.actor_id, app.root_key_id);
    assert_eq!(create.remote_ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(create.user_agent.as_deref(), Some("audit-test/1.0"));
    assert_eq!(create.description, format!("Created API {api_id}"));
    assert_eq!(create.targets[0]["type"], "api");
    assert_eq!(create.targets[0]["id"], api_id.as_str());
    let delete = events
        .iter()
        .find(|e| e.event == "api.delete")
        .expect("api.delete");
    assert_eq!(delete.remote_ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn a_refused_request_writes_nothing() {
    let app = spawn_app().await;
    let before = app
        .store
        .list_audit_events(&app.workspace_id, 100)
        .await
        .unwrap()
        .len();
    app.post("/v2/apis.createApi", json!({"name": "x"})).await;
    let (_, key) = app.root_key_with(&["api.*.read_api"]).await;
    app.post_with_key("/v2/apis.createApi", &key, json!({"name": "payments"}))
        .await;
    let after = app
        .store
        .list_audit_events(&app.workspace_id, 100)
        .await
        .unwrap();
    // Only the root key creation above was recorded.
    assert_eq!(after.len(), before + 1);
    assert!(after.iter().all(|e| e.event != "api.create"));
}
