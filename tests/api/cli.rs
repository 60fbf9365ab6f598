//! The operator's CLI, run as the real binary against the database of a running server.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app, TestApp, TestResponse};

fn stdout_json(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "keyward failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// Calls `apis.createApi` with `key` until `accept` holds, for at most one second (the promise
/// for cross-process changes), and returns that response.
async fn within_a_second(
    app: &TestApp,
    key: &str,
    accept: impl Fn(&TestResponse) -> bool,
) -> TestResponse {
    let accept = &accept;
    eventually(
        Duration::from_secs(1),
        "the CLI's change reached the server",
        || async move {
            let response = app
                .post_with_key("/v2/apis.createApi", key, json!({"name": "payments"}))
                .await;
            if accept(&response) {
                Ok(response)
            } else {
                Err(format!("{} {}", response.status, response.body))
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_root_key_disabled_with_the_cli_is_refused_within_a_second_and_restored_by_enable() {
    let app = spawn_app().await;
    let created = stdout_json(&app.cli(&[
        "root-key",
        "create",
        "--workspace",
        &app.workspace_id,
        "--json",
    ]));
    let key_id = created["keyId"].as_str().unwrap().to_string();
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("unkey_"));
    // Warm the server's cache so the test proves invalidation, not a cold lookup.
    within_a_second(&app, &key, |r| r.status == 200)
        .await
        .assert_ok("/v2/apis.createApi");

    assert!(app.cli(&["root-key", "disable", &key_id]).status.success());
    let refused = within_a_second(&app, &key, |r| r.status == 403).await;
    refused.assert_error(403, "unkey/authorization/key_disabled", "Forbidden");

    assert!(app.cli(&["root-key", "enable", &key_id]).status.success());
    within_a_second(&app, &key, |r| r.status == 200)
        .await
        .assert_ok("/v2/apis.createApi");

    assert!(app.cli(&["root-key", "delete", &key_id]).status.success());
    within_a_second(&app, &key, |r| r.status == 401)
        .await
        .assert_error(401, "unkey/authentication/key_not_found", "Unauthorized");
}

#[tokio::test]
async fn workspaces_and_scoped_root_keys_can_be_made_and_listed_from_the_cli() {
    let app = spawn_app().await;
    let ws = stdout_json(&app.cli(&["workspace", "create", "--name", "acme", "--json"]));
    let ws_id = ws["workspaceId"].as_str().unwrap();
    assert!(ws_id.starts_with("ws_"));
    let created = stdout_json(&app.cli(&[
        "root-key",
        "create",
        "--workspace",
        ws_id,
        "--name",
        "ci",
        "--permission",
        "api.*.read_api",
        "--permission",
        "api.*.create_api",
        "--json",
    ]));
    let listed = stdout_json(&app.cli(&["root-key", "list", "--workspace", ws_id, "--json"]));
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["keyId"], created["keyId"]);
    assert_eq!(listed[0]["name"], "ci");
    assert_eq!(
        listed[0]["permissions"],
        json!(["api.*.create_api", "api.*.read_api"])
    );
    // The listing never shows the key itself.
    let text = serde_json::to_string(&listed).unwrap();
    assert!(!text.contains(created["key"].as_str().unwrap()));

    // The new key works, in its own workspace only.
    let key = created["key"].as_str().unwrap();
    let response = within_a_second(&app, key, |r| r.status == 200).await;
    response.assert_ok("/v2/apis.createApi");
}

#[tokio::test]
async fn cli_mistakes_fail_with_a_clear_message_and_change_nothing() {
    let app = spawn_app().await;
    let cases: [(&[&str], &str); 10] = [
        (&["root-key", "disable", "key_nope"], "does not exist"),
        (
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--last-used-interval",
                "5ms",
            ],
            "must be at least 10ms",
        ),
        (
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--last-used-interval",
                "often",
            ],
            "--last-used-interval",
        ),
        (
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--redis",
                "http://not-redis",
            ],
            "invalid Redis URL",
        ),
        (
            &["serve", "--listen", "127.0.0.1:0", "--redis-timeout", "6s"],
            "must be at most 5s",
        ),
        (
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--redis",
                "redis://127.0.0.1:6379",
                "--redis-timeout",
                "2s",
                "--request-timeout",
                "2s",
            ],
            "must be shorter than --request-timeout",
        ),
        (&["workspace", "enable", "ws_nope"], "does not exist"),
        (
            &["root-key", "create", "--workspace", "ws_nope"],
            "does not exist",
        ),
        (
            &[
                "root-key",
                "create",
                "--workspace",
                &app.workspace_id,
                "--permission",
                "api.*.fly",
            ],
            "not a root-key permission",
        ),
        (&["api", "protect", "api_nope"], "does not exist"),
    ];
    for (args, message) in cases {
        let output = app.cli(args);
        assert!(!output.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let keys = app.store.list_root_keys(&app.workspace_id).await.unwrap();
    assert_eq!(keys.len(), 1, "no key was created by the failed commands");
}

#[tokio::test]
async fn an_unsupported_database_url_is_refused() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args([
            "--database",
            "mysql://x",
            "workspace",
            "create",
            "--name",
            "x",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unsupported database URL"));
}
