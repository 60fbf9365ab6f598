//! Recoverable keys: `createKey {recoverable}`, `getKey`/`listKeys {decrypt}`, reroll, the
//! vault's CLI (opt-in, status, rotations), and what happens to a copy that was tampered with.

use std::sync::Arc;

use keyward::domain::vault::{Keyring, MasterKey};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with_vault, TestApp, TestResponse};

/// A fresh master key: its base64 (for the CLI) and a keyring holding it.
fn master_key() -> (String, Arc<Keyring>) {
    let text = MasterKey::generate().to_string();
    let key = MasterKey::from_base64(&text).unwrap();
    (text, Arc::new(Keyring::new(key, None)))
}

/// A server with a vault, and an API that allows recoverable keys.
async fn vault_app() -> (TestApp, String, String) {
    let (text, keyring) = master_key();
    let app = spawn_app_with_vault(keyring).await;
    let api = app.create_api("recoverable").await;
    set_recoverable(&app, &api, "on");
    (app, text, api)
}

fn set_recoverable(app: &TestApp, api: &str, state: &str) {
    let out = app.cli(&["api", "recoverable", api, state]);
    assert!(
        out.status.success(),
        "api recoverable failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn create(app: &TestApp, key: &str, body: Value) -> TestResponse {
    app.post_with_key("/v2/keys.createKey", key, body).await
}

/// Creates a key with the app's root key; returns `(keyId, key)`.
async fn create_key(app: &TestApp, api: &str, recoverable: bool) -> (String, String) {
    let r = app
        .post(
            "/v2/keys.createKey",
            json!({"apiId": api, "recoverable": recoverable, "prefix": "sk"}),
        )
        .await;
    r.assert_ok("/v2/keys.createKey");
    (
        r.body["data"]["keyId"].as_str().unwrap().to_string(),
        r.body["data"]["key"].as_str().unwrap().to_string(),
    )
}

async fn decrypt(app: &TestApp, key_id: &str) -> TestResponse {
    app.post("/v2/keys.getKey", json!({"keyId": key_id, "decrypt": true}))
        .await
}

fn assert_412(response: &TestResponse, detail: &str) {
    response.assert_error(
        412,
        "unkey/application/precondition_failed",
        "Precondition Failed",
    );
    assert_eq!(response.detail(), detail);
}

/// Runs one statement against the app's database (test-side tampering).
async fn execute(app: &TestApp, sql: &str, binds: &[&str]) {
    use sqlx::Connection;
    if app.database_url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(&app.database_url)
            .await
            .unwrap();
        let mut query = sqlx::query(sql);
        for b in binds {
            query = query.bind(*b);
        }
        query.execute(&mut conn).await.unwrap();
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&app.database_url)
            .await
            .unwrap();
        let mut sql = sql.to_string();
        for i in (1..=binds.len()).rev() {
            sql = sql.replace(&format!("${i}"), &format!("?{i}"));
        }
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = query.bind(*b);
        }
        query.execute(&mut conn).await.unwrap();
    }
}

#[tokio::test]
async fn a_recoverable_key_decrypts_to_exactly_the_key_create_returned_and_is_audited() {
    let (app, _, api) = vault_app().await;
    let (key_id, key) = create_key(&app, &api, true).await;

    let plain = app.post("/v2/keys.getKey", json!({"keyId": key_id})).await;
    plain.assert_ok("/v2/keys.getKey");
    assert!(plain.body["data"].get("plaintext").is_none());

    let r = decrypt(&app, &key_id).await;
    r.assert_ok("/v2/keys.getKey");
    assert_eq!(r.body["data"]["plaintext"], key);
    assert_eq!(r.body["data"]["keyId"], key_id);

    // The key still verifies: the copy changed nothing about it.
    let verified = app.verify(json!({"key": key})).await;
    assert_eq!(verified.body["data"]["valid"], true);

    let events = app
        .store
        .list_audit_events(&app.workspace_id, 20)
        .await
        .unwrap();
    let decrypted = events
        .iter()
        .find(|e| e.event == "key.decrypt")
        .expect("a key.decrypt event");
    assert_eq!(decrypted.actor_id, app.root_key_id);
    assert!(
        decrypted.targets.to_string().contains(&key_id),
        "{}",
        decrypted.targets
    );
    let created = events.iter().find(|e| e.event == "key.create").unwrap();
    assert!(created
        .meta
        .as_deref()
        .unwrap()
        .contains("\"recoverable\":true"));
}

#[tokio::test]
async fn list_keys_decrypt_shows_a_plaintext_only_for_recoverable_keys() {
    let (app, _, api) = vault_app().await;
    let (kept, kept_key) = create_key(&app, &api, true).await;
    let (plain, _) = create_key(&app, &api, false).await;

    let r = app
        .post("/v2/apis.listKeys", json!({"apiId": api, "decrypt": true}))
        .await;
    r.assert_ok("/v2/apis.listKeys");
    let items = r.body["data"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for item in items {
        if item["keyId"] == kept {
            assert_eq!(item["plaintext"], kept_key);
        } else {
            assert_eq!(item["keyId"], plain);
            assert!(item.get("plaintext").is_none(), "{item}");
        }
    }
    // Without decrypt, no plaintext at all.
    let r = app.post("/v2/apis.listKeys", json!({"apiId": api})).await;
    assert!(r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|item| item.get("plaintext").is_none()));
}

#[tokio::test]
async fn a_rerolled_recoverable_key_is_recoverable_and_reroll_needs_encrypt_key() {
    let (app, _, api) = vault_app().await;
    let (old, _) = create_key(&app, &api, true).await;

    let create_only = format!("api.{api}.create_key");
    let (_, weak) = app
        .root_key_with(&[create_only.as_str(), "api.*.read_key"])
        .await;
    let refused = app
        .post_with_key(
            "/v2/keys.rerollKey",
            &weak,
            json!({"keyId": old, "expiration": 0}),
        )
        .await;
    refused.assert_error(
        403,
        "unkey/authorization/insufficient_permissions",
        "Insufficient Permissions",
    );

    let r = app
        .post("/v2/keys.rerollKey", json!({"keyId": old, "expiration": 0}))
        .await;
    r.assert_ok("/v2/keys.rerollKey");
    let new_id = r.body["data"]["keyId"].as_str().unwrap();
    let new_key = r.body["data"]["key"].as_str().unwrap();
    let d = decrypt(&app, new_id).await;
    d.assert_ok("/v2/keys.getKey");
    assert_eq!(d.body["data"]["plaintext"], new_key);

    // An ordinary key rerolls with create_key alone, and stays unrecoverable.
    let (ordinary, _) = create_key(&app, &api, false).await;
    let r = app
        .post_with_key(
            "/v2/keys.rerollKey",
            &weak,
            json!({"keyId": ordinary, "expiration": 0}),
        )
        .await;
    r.assert_ok("/v2/keys.rerollKey");
    let d = decrypt(&app, r.body["data"]["keyId"].as_str().unwrap()).await;
    d.assert_ok("/v2/keys.getKey");
    assert!(d.body["data"].get("plaintext").is_none());
}

#[tokio::test]
async fn missing_encrypt_key_is_masked_as_404_and_missing_decrypt_key_is_403() {
    let (app, _, api) = vault_app().await;
    let (key_id, _) = create_key(&app, &api, true).await;

    let (_, creator) = app.root_key_with(&["api.*.create_key"]).await;
    let r = create(&app, &creator, json!({"apiId": api, "recoverable": true})).await;
    r.assert_error(404, "unkey/data/api_not_found", "Not Found");
    assert_eq!(r.detail(), "The specified API was not found.");
    let (_, encryptor) = app
        .root_key_with(&["api.*.create_key", "api.*.encrypt_key"])
        .await;
    create(&app, &encryptor, json!({"apiId": api, "recoverable": true}))
        .await
        .assert_ok("/v2/keys.createKey");

    let (_, reader) = app
        .root_key_with(&["api.*.read_key", "api.*.read_api"])
        .await;
    for (path, body) in [
        ("/v2/keys.getKey", json!({"keyId": key_id, "decrypt": true})),
        ("/v2/apis.listKeys", json!({"apiId": api, "decrypt": true})),
    ] {
        let r = app.post_with_key(path, &reader, body).await;
        r.assert_error(
            403,
            "unkey/authorization/insufficient_permissions",
            "Insufficient Permissions",
        );
    }
    let grant = format!("api.{api}.decrypt_key");
    let (_, decryptor) = app
        .root_key_with(&["api.*.read_key", "api.*.read_api", grant.as_str()])
        .await;
    let r = app
        .post_with_key(
            "/v2/keys.getKey",
            &decryptor,
            json!({"keyId": key_id, "decrypt": true}),
        )
        .await;
    r.assert_ok("/v2/keys.getKey");
    assert!(r.body["data"]["plaintext"].is_string());
}

#[tokio::test]
async fn an_api_that_has_not_opted_in_answers_the_three_412s() {
    let (app, _, api) = vault_app().await;
    let (recoverable, _) = create_key(&app, &api, true).await;
    let (_, _) = create_key(&app, &api, false).await;
    set_recoverable(&app, &api, "off");

    let r = app
        .post(
            "/v2/keys.createKey",
            json!({"apiId": api, "recoverable": true}),
        )
        .await;
    assert_412(&r, "This API does not support key encryption.");
    assert_412(
        &decrypt(&app, &recoverable).await,
        "The API for this key does not support key encryption.",
    );
    let r = app
        .post("/v2/apis.listKeys", json!({"apiId": api, "decrypt": true}))
        .await;
    assert_412(&r, "The requested API does not support key encryption.");
    let r = app
        .post(
            "/v2/keys.rerollKey",
            json!({"keyId": recoverable, "expiration": 0}),
        )
        .await;
    assert_412(&r, "This API does not support key encryption.");
    // Nothing was created by the refused calls.
    let listed = app.post("/v2/apis.listKeys", json!({"apiId": api})).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 2);

    // Turned back on, the key made earlier decrypts again.
    set_recoverable(&app, &api, "on");
    decrypt(&app, &recoverable)
        .await
        .assert_ok("/v2/keys.getKey");
}

#[tokio::test]
async fn without_a_master_key_every_vault_call_says_the_vault_is_not_set_up() {
    let app = spawn_app().await;
    let api = app.create_api("no vault").await;
    set_recoverable(&app, &api, "on");
    let (key_id, _) = create_key(&app, &api, false).await;
    let r = app
        .post(
            "/v2/keys.createKey",
            json!({"apiId": api, "recoverable": true}),
        )
        .await;
    assert_412(&r, "Vault hasn't been set up.");
    assert_412(&decrypt(&app, &key_id).await, "Vault hasn't been set up.");
    let r = app
        .post("/v2/apis.listKeys", json!({"apiId": api, "decrypt": true}))
        .await;
    assert_412(&r, "Vault hasn't been set up.");
}

#[tokio::test]
async fn a_tampered_or_moved_copy_gives_no_plaintext_and_no_error() {
    let (app, _, api) = vault_app().await;
    let (a, key_a) = create_key(&app, &api, true).await;
    let (b, _) = create_key(&app, &api, true).await;

    // B's row gets A's sealed copy: it was sealed for A, so it does not open as B.
    execute(
        &app,
        "UPDATE encrypted_keys SET sealed = (SELECT sealed FROM encrypted_keys WHERE key_id = $1) \
         WHERE key_id = $2",
        &[&a, &b],
    )
    .await;
    let r = decrypt(&app, &b).await;
    r.assert_ok("/v2/keys.getKey");
    assert!(r.body["data"].get("plaintext").is_none(), "{}", r.body);
    assert_eq!(decrypt(&app, &a).await.body["data"]["plaintext"], key_a);

    // One changed character of A's copy: it no longer authenticates.
    execute(
        &app,
        "UPDATE encrypted_keys SET sealed = CASE WHEN substr(sealed, 5, 1) = 'A' \
         THEN substr(sealed, 1, 4) || 'B' || substr(sealed, 6) \
         ELSE substr(sealed, 1, 4) || 'A' || substr(sealed, 6) END WHERE key_id = $1",
        &[&a],
    )
    .await;
    let r = decrypt(&app, &a).await;
    r.assert_ok("/v2/keys.getKey");
    assert!(r.body["data"].get("plaintext").is_none());

    // Garbage is no error either, and a listing still answers for the rest.
    execute(
        &app,
        "UPDATE encrypted_keys SET sealed = 'not a sealed value' WHERE key_id = $1",
        &[&b],
    )
    .await;
    let (c, key_c) = create_key(&app, &api, true).await;
    let r = app
        .post("/v2/apis.listKeys", json!({"apiId": api, "decrypt": true}))
        .await;
    r.assert_ok("/v2/apis.listKeys");
    for item in r.body["data"].as_array().unwrap() {
        if item["keyId"] == c {
            assert_eq!(item["plaintext"], key_c);
        } else {
            assert!(item.get("plaintext").is_none(), "{item}");
        }
    }
}

#[tokio::test]
async fn a_copy_moved_into_another_workspace_does_not_open_there() {
    let (app, _, api) = vault_app().await;
    let (a, _) = create_key(&app, &api, true).await;
    // A second workspace with its own recoverable key and data key.
    let out = app.cli(&["workspace", "create", "--name", "other", "--json"]);
    let other: Value = serde_json::from_slice(&out.stdout).unwrap();
    let other = other["workspaceId"].as_str().unwrap().to_string();
    let (_, other_root) = app.root_key_in(&other, &[]).await;
    let r = app
        .post_with_key("/v2/apis.createApi", &other_root, json!({"name": "theirs"}))
        .await;
    let other_api = r.body["data"]["apiId"].as_str().unwrap().to_string();
    set_recoverable(&app, &other_api, "on");
    let r = create(
        &app,
        &other_root,
        json!({"apiId": other_api, "recoverable": true}),
    )
    .await;
    let theirs = r.body["data"]["keyId"].as_str().unwrap().to_string();

    // Their key's row takes our sealed copy, data key and all.
    execute(
        &app,
        "UPDATE encrypted_keys SET sealed = (SELECT sealed FROM encrypted_keys WHERE key_id = $1), \
         data_key_id = (SELECT data_key_id FROM encrypted_keys WHERE key_id = $1) WHERE key_id = $2",
        &[&a, &theirs],
    )
    .await;
    let r = app
        .post_with_key(
            "/v2/keys.getKey",
            &other_root,
            json!({"keyId": theirs, "decrypt": true}),
        )
        .await;
    r.assert_ok("/v2/keys.getKey");
    assert!(r.body["data"].get("plaintext").is_none());
    // And our workspace cannot read theirs at all.
    let r = decrypt(&app, &theirs).await;
    r.assert_error(404, "unkey/data/key_not_found", "Not Found");
}

#[tokio::test]
async fn master_key_rotation_keeps_every_key_decryptable() {
    let (app, old_text, api) = vault_app().await;
    let (a, key_a) = create_key(&app, &api, true).await;
    let (new_text, new_ring) = master_key();

    // With only the new key, the vault's data key does not open, and status says so.
    let out = app.cli(&["vault", "status", "--master-key", &new_text]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("WARNING"));

    let out = app.cli(&[
        "vault",
        "rotate-master",
        "--master-key",
        &new_text,
        "--previous-master-key",
        &old_text,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("resealed 1 data key"));

    // A server holding only the new master key reads the old key and makes new ones.
    let peer = app.spawn_peer_with_vault(Some(new_ring)).await;
    let r = decrypt(&peer, &a).await;
    assert_eq!(r.body["data"]["plaintext"], key_a);
    let (b, key_b) = create_key(&peer, &api, true).await;
    assert_eq!(decrypt(&peer, &b).await.body["data"]["plaintext"], key_b);

    let out = app.cli(&["vault", "status", "--master-key", &new_text, "--json"]);
    assert!(out.status.success());
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["workspaces"][0]["encryptedKeys"], 2);
    assert_eq!(status["workspaces"][0]["dataKeys"], 1);
    assert_eq!(status["unopenableDataKeys"], json!([]));
}

#[tokio::test]
async fn data_key_rotation_with_reencrypt_reseals_keys_and_retires_the_old_data_key() {
    let (app, text, api) = vault_app().await;
    let (a, key_a) = create_key(&app, &api, true).await;
    let (b, key_b) = create_key(&app, &api, true).await;
    let out = app.cli(&[
        "vault",
        "rotate-data-key",
        "--master-key",
        &text,
        "--workspace",
        &app.workspace_id,
        "--reencrypt",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("resealed 2 key(s), retired 1 data key(s)"),
        "{said}"
    );
    // A fresh server (no opened data keys in memory) reads both under the new data key.
    let peer = app.spawn_peer_with_vault(app.master_keys.clone()).await;
    assert_eq!(decrypt(&peer, &a).await.body["data"]["plaintext"], key_a);
    assert_eq!(decrypt(&peer, &b).await.body["data"]["plaintext"], key_b);
    let out = app.cli(&["vault", "status", "--master-key", &text, "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["workspaces"][0]["dataKeys"], 1);
}

#[tokio::test]
async fn a_permanent_delete_erases_the_copy_and_the_plaintext_is_never_stored() {
    let (app, _, api) = vault_app().await;
    let (a, key_a) = create_key(&app, &api, true).await;
    let (_, key_b) = create_key(&app, &api, true).await;
    decrypt(&app, &a).await.assert_ok("/v2/keys.getKey");

    if let Some(path) = app.database_url.strip_prefix("sqlite://") {
        let dir = std::path::Path::new(path).parent().unwrap();
        for entry in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            for secret in [&key_a, &key_b] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "a plaintext key is in the database files"
                );
            }
        }
    }

    app.post("/v2/keys.deleteKey", json!({"keyId": a, "permanent": true}))
        .await
        .assert_ok("/v2/keys.deleteKey");
    let left = app.store.encrypted_keys(&[a.as_str()]).await.unwrap();
    assert!(left.is_empty());
}

#[tokio::test]
async fn the_cli_makes_master_keys_and_refuses_bad_ones() {
    let app = spawn_app().await;
    let out = app.cli(&["vault", "generate-master-key"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(MasterKey::from_base64(&text).is_ok());

    let out = app.cli(&["vault", "status", "--master-key", "c2hvcnQ="]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid master key") && err.contains("32 bytes"),
        "{err}"
    );
    let out = app.cli(&["vault", "status"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs the master key"));

    let out = app.cli(&["api", "recoverable", "api_missing", "on"]);
    assert!(!out.status.success());
    let out = app.cli(&["api", "recoverable", "api_x", "maybe"]);
    assert!(!out.status.success());
}
