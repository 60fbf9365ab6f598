//! Root-key authentication: every way a caller can be refused, and tenant isolation.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{eventually, spawn_app};

#[tokio::test]
async fn a_missing_authorization_header_is_a_400_authentication_missing() {
    let app = spawn_app().await;
    let request = app
        .client
        .post(format!("{}/v2/apis.createApi", app.base_url))
        .json(&json!({"name": "payments"}));
    let response = app.send(request).await;
    response.assert_error(400, "unkey/authentication/missing", "Bad Request");
    assert_eq!(response.body["error"]["errors"][0]["location"], "security");
}

#[tokio::test]
async fn a_header_without_the_bearer_prefix_is_a_400_malformed() {
    let app = spawn_app().await;
    for header in [
        "Basic abc",
        "bearer abc",
        "Bearer",
        "Bearer    ",
        "unkey_abc",
    ] {
        let request = app
            .client
            .post(format!("{}/v2/apis.createApi", app.base_url))
            .header("authorization", header)
            .json(&json!({"name": "payments"}));
        let response = app.send(request).await;
        response.assert_error(400, "unkey/authentication/malformed", "Bad Request");
        assert!(
            response.detail().contains("'Bearer '"),
            "{header}: {}",
            response.detail()
        );
    }
}

#[tokio::test]
async fn an_unknown_root_key_is_a_401_key_not_found() {
    let app = spawn_app().await;
    let response = app
        .post_with_key(
            "/v2/apis.createApi",
            "unkey_notakey",
            json!({"name": "payments"}),
        )
        .await;
    response.assert_error(401, "unkey/authentication/key_not_found", "Unauthorized");
    assert_eq!(
        response.detail(),
        "The provided root key is invalid. We could not find the requested key."
    );
}

#[tokio::test]
async fn a_deleted_root_key_is_a_401_key_not_found() {
    let app = spawn_app().await;
    let (id, key) = app.root_key_with(&["api.*.create_api"]).await;
    keyward::domain::admin::delete_root_key(&app.store, app.now(), &id)
        .await
        .unwrap();
    let response = app
        .post_with_key("/v2/apis.createApi", &key, json!({"name": "payments"}))
        .await;
    response.assert_error(401, "unkey/authentication/key_not_found", "Unauthorized");
}

#[tokio::test]
async fn a_disabled_root_key_is_a_403_key_disabled() {
    let app = spawn_app().await;
    let (id, key) = app.root_key_with(&["api.*.create_api"]).await;
    keyward::domain::admin::set_root_key_enabled(&app.store, app.now(), &id, false)
        .await
        .unwrap();
    // The change reaches the server through the change feed, as it would from another process.
    let (app, key) = (&app, key.as_str());
    let response = eventually(
        Duration::from_secs(1),
        "the disabled key refused",
        || async move {
            let response = app
                .post_with_key("/v2/apis.createApi", key, json!({"name": "payments"}))
                .await;
            match response.status {
                403 => Ok(response),
                _ => Err(response.body.to_string()),
            }
        },
    )
    .await;
    // Word for word the envelope of the page that defines the code (the seed's contract), not
    // Unkey's server's "Key is disabled".
    response.assert_error(403, "unkey/authorization/key_disabled", "Forbidden");
    assert_eq!(
        response.detail(),
        "The API key used for authentication has been disabled"
    );
}

#[tokio::test]
async fn an_expired_root_key_is_a_403_forbidden_naming_the_expiry() {
    let app = spawn_app().await;
    let created = keyward::domain::admin::create_root_key(
        &app.store,
        app.now(),
        &app.workspace_id,
        None,
        &[],
        Some(app.now() + 60_000),
    )
    .await
    .unwrap();
    let key = created.plaintext;
    app.post_with_key("/v2/apis.createApi", &key, json!({"name": "payments"}))
        .await
        .assert_ok("/v2/apis.createApi");

    app.clock.advance_ms(60_001);
    let response = app
        .post_with_key("/v2/apis.createApi", &key, json!({"name": "payments"}))
        .await;
    response.assert_error(403, "unkey/authorization/forbidden", "Forbidden");
    assert!(
        response
            .detail()
            .starts_with("The provided root key is invalid. the key has expired on "),
        "{}",
        response.detail()
    );
}

#[tokio::test]
async fn a_root_key_of_a_disabled_workspace_is_a_403_workspace_disabled() {
    let app = spawn_app().await;
    keyward::domain::admin::set_workspace_enabled(&app.store, app.now(), &app.workspace_id, false)
        .await
        .unwrap();
    let app = &app;
    let create = || async move {
        app.post("/v2/apis.createApi", json!({"name": "payments"}))
            .await
    };
    let response = eventually(
        Duration::from_secs(1),
        "the disabled workspace refused",
        || async move {
            let response = create().await;
            match response.status {
                403 => Ok(response),
                _ => Err(response.body.to_string()),
            }
        },
    )
    .await;
    response.assert_error(
        403,
        "unkey/authorization/workspace_disabled",
        "Workspace is disabled",
    );

    keyward::domain::admin::set_workspace_enabled(&app.store, app.now(), &app.workspace_id, true)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(1),
        "the re-enabled workspace served",
        || async move {
            let response = create().await;
            match response.status {
                200 => Ok(()),
                _ => Err(format!("still refused: {}", response.body)),
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_missing_permission_is_a_403_naming_what_would_suffice() {
    let app = spawn_app().await;
    let (_, key) = app.root_key_with(&["api.*.read_api"]).await;
    let response = app
        .post_with_key("/v2/apis.createApi", &key, json!({"name": "payments"}))
        .await;
    response.assert_error(
        403,
        "unkey/authorization/insufficient_permissions",
        "Insufficient Permissions",
    );
    assert_eq!(response.detail(), "Missing permission: 'api.*.create_api'");

    let api_id = app.create_api("payments").await;
    let response = app
        .post_with_key("/v2/apis.deleteApi", &key, json!({"apiId": api_id}))
        .await;
    response.assert_error(
        403,
        "unkey/authorization/insufficient_permissions",
        "Insufficient Permissions",
    );
    assert_eq!(
        response.detail(),
        format!(
            "Missing one of these permissions: 'api.*.delete_api' or 'api.{api_id}.delete_api'"
        )
    );
}

#[tokio::test]
async fn a_per_api_grant_allows_that_api_only() {
    let app = spawn_app().await;
    let mine = app.create_api("mine").await;
    let other = app.create_api("other").await;
    let grant = format!("api.{mine}.read_api");
    let (_, key) = app.root_key_with(&[grant.as_str()]).await;
    app.post_with_key("/v2/apis.getApi", &key, json!({"apiId": mine}))
        .await
        .assert_ok("/v2/apis.getApi");
    app.post_with_key("/v2/apis.getApi", &key, json!({"apiId": other}))
        .await
        .assert_error(
            403,
            "unkey/authorization/insufficient_permissions",
            "Insufficient Permissions",
        );
}

#[tokio::test]
async fn schema_errors_are_reported_before_the_key_is_looked_up() {
    let app = spawn_app().await;
    let response = app
        .post_with_key("/v2/apis.createApi", "unkey_notakey", json!({"name": "x"}))
        .await;
    response.assert_error(400, "unkey/application/invalid_input", "Bad Request");
}

#[tokio::test]
async fn a_root_key_of_another_workspace_cannot_see_this_workspaces_api() {
    let app = spawn_app().await;
    let api_id = app.create_api("payments").await;
    let other = keyward::domain::admin::create_workspace(&app.store, app.now(), "other")
        .await
        .unwrap();
    let (_, key) = app.root_key_in(&other.id, &[]).await;

    for path in ["/v2/apis.getApi", "/v2/apis.deleteApi", "/v2/apis.listKeys"] {
        let response = app
            .post_with_key(path, &key, json!({"apiId": api_id}))
            .await;
        response.assert_error(404, "unkey/data/api_not_found", "Not Found");
    }
    // And the API is untouched.
    app.post("/v2/apis.getApi", json!({"apiId": api_id}))
        .await
        .assert_ok("/v2/apis.getApi");
}

#[tokio::test]
async fn an_ordinary_key_is_not_a_root_key() {
    let app = spawn_app().await;
    // Insert an ordinary key row directly: the keys routes that create them come later.
    let api_id = app.create_api("payments").await;
    let api = app.store.get_api(&api_id).await.unwrap().unwrap();
    let plaintext = "sk_ordinarykey123";
    let hash = keyward::domain::keys::hash::hash_key(plaintext);
    let pool_url = app.database_url.clone();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&pool_url).await.unwrap();
    sqlx::query(
        "INSERT INTO keys (id, key_space_id, workspace_id, hash, start, created_at_m) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind("key_ordinary1")
    .bind(&api.key_space_id)
    .bind(&app.workspace_id)
    .bind(&hash)
    .bind("sk_ordi")
    .bind(app.now())
    .execute(&pool)
    .await
    .unwrap();
    let response = app
        .post_with_key("/v2/apis.createApi", plaintext, json!({"name": "payments"}))
        .await;
    response.assert_error(401, "unkey/authentication/key_not_found", "Unauthorized");
    assert_eq!(response.detail(), "The provided root key is invalid.");
}
