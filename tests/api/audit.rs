//! `audit.getLogs` (keyward's own route) and the audit log's hash chain: who did what, filtered,
//! paged in log order with every event exactly once while writes go on, isolated per workspace,
//! and `keyward audit verify` / `export` on the command line.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::helpers::{plain_new_key, spawn_app, TestApp};

async fn logs(app: &TestApp, key: &str, body: Value) -> Value {
    let r = app.post_with_key("/v2/audit.getLogs", key, body).await;
    r.assert_ok("/v2/audit.getLogs");
    r.body
}

fn events(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn mutations_through_the_api_are_logged_with_their_root_key_and_request() {
    let app = spawn_app().await;
    let api = app.create_api("payments").await;
    app.post("/v2/permissions.createRole", json!({"name": "reader"}))
        .await
        .assert_ok("/v2/permissions.createRole");
    let r = app
        .post(
            "/v2/keys.createKey",
            json!({"apiId": api, "permissions": ["documents.read"], "roles": ["reader"]}),
        )
        .await;
    r.assert_ok("/v2/keys.createKey");
    let request_id = r.body["meta"]["requestId"].as_str().unwrap().to_string();
    let key_id = r.body["data"]["keyId"].as_str().unwrap().to_string();

    let body = logs(&app, &app.root_key, json!({"correlationId": request_id})).await;
    let found = events(&body);
    assert!(found.contains(&"key.create".to_string()), "{found:?}");
    assert!(found.len() >= 3, "one request, several events: {found:?}");
    for event in body["data"].as_array().unwrap() {
        assert_eq!(event["actor"]["type"], "rootkey");
        assert_eq!(event["actor"]["id"], app.root_key_id.as_str());
        assert_eq!(event["correlationId"], request_id.as_str());
        assert_eq!(event["bucket"], "unkey_mutations");
        assert!(event["hash"].as_str().unwrap().len() == 64);
    }
    // Filters: by event, by target, by time.
    let body = logs(&app, &app.root_key, json!({"events": ["api.create"]})).await;
    assert_eq!(events(&body), vec!["api.create"]);
    let body = logs(&app, &app.root_key, json!({"targetIds": [key_id]})).await;
    assert!(events(&body)
        .iter()
        .all(|e| e.starts_with("key.") || e.contains("ermission") || e.contains("role")));
    assert!(!events(&body).is_empty());
    let body = logs(
        &app,
        &app.root_key,
        json!({"targetTypes": ["api"], "events": ["api.create"]}),
    )
    .await;
    assert_eq!(events(&body).len(), 1);
    let future = app.now() + 60_000;
    let body = logs(&app, &app.root_key, json!({"startTime": future})).await;
    assert!(events(&body).is_empty());
    let body = logs(&app, &app.root_key, json!({"actorTypes": ["system"]})).await;
    assert!(events(&body).iter().all(|e| e != "key.create"));
}

#[tokio::test]
async fn command_line_changes_are_logged_as_the_system() {
    let app = spawn_app().await;
    let (id, _) = app.root_key_with(&["api.*.read_api"]).await;
    let out = app.cli(&["root-key", "disable", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = logs(&app, &app.root_key, json!({"actorIds": ["cli"]})).await;
    let data = body["data"].as_array().unwrap();
    let disabled = data
        .iter()
        .find(|e| {
            e["targets"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["id"] == id.as_str())
        })
        .unwrap_or_else(|| panic!("no CLI event for {id}: {body}"));
    assert_eq!(disabled["actor"]["type"], "system");
    assert!(disabled["correlationId"]
        .as_str()
        .unwrap()
        .starts_with("req_"));
}

#[tokio::test]
async fn pages_in_log_order_see_every_event_exactly_once_while_writes_go_on() {
    let app = spawn_app().await;
    for i in 0..7 {
        app.create_api(&format!("before-{i}")).await;
    }
    let writer = {
        let (url, root, client) = (
            format!("{}/v2/apis.createApi", app.base_url),
            app.root_key.clone(),
            app.client.clone(),
        );
        tokio::spawn(async move {
            for i in 0..20 {
                let r = client
                    .post(&url)
                    .bearer_auth(&root)
                    .json(&json!({"name": format!("during-{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        })
    };
    // A poller: it keeps the last cursor it was given and asks again from there.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut quiet_rounds = 0;
    while quiet_rounds < 2 {
        let mut body = json!({"limit": 3, "events": ["api.create"]});
        if let Some(cursor) = &cursor {
            body["cursor"] = json!(cursor);
        }
        let page = logs(&app, &app.root_key, body).await;
        let items = page["data"].as_array().unwrap();
        seen.extend(items.iter().map(|e| e["id"].as_str().unwrap().to_string()));
        if let Some(next) = page["pagination"]["cursor"].as_str() {
            cursor = Some(next.to_string());
        }
        if items.is_empty() {
            if writer.is_finished() {
                quiet_rounds += 1;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    writer.await.unwrap();
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an event was read twice");
    assert_eq!(seen.len(), 27, "every api.create exactly once");
}

#[tokio::test]
async fn workspaces_see_only_their_own_log_and_need_the_permission() {
    let app = spawn_app().await;
    app.create_api("mine").await;
    let other = keyward::domain::admin::create_workspace(&app.store, app.now(), "other")
        .await
        .unwrap();
    let (_, theirs) = app
        .root_key_in(&other.id, &["audit.*.read_audit_log"])
        .await;
    let body = logs(&app, &theirs, json!({})).await;
    assert!(
        !events(&body).contains(&"api.create".to_string()),
        "another workspace's events leaked: {body}"
    );
    let (_, reader) = app.root_key_with(&["api.*.read_api"]).await;
    app.post_with_key("/v2/audit.getLogs", &reader, json!({}))
        .await
        .assert_error(
            403,
            "unkey/authorization/insufficient_permissions",
            "Insufficient Permissions",
        );
    let r = app
        .post("/v2/audit.getLogs", json!({"cursor": "not-a-position"}))
        .await;
    r.assert_error(400, "unkey/application/invalid_input", "Bad Request");
    assert_eq!(r.body["error"]["errors"][0]["location"], "body.cursor");
    let r = app
        .post("/v2/audit.getLogs", json!({"startTime": 10, "endTime": 5}))
        .await;
    r.assert_error(400, "unkey/application/invalid_input", "Bad Request");
}

#[tokio::test]
async fn the_chain_is_verified_and_a_changed_event_is_found() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.create_api(&format!("api-{i}")).await;
    }
    assert_chain_intact(&app);
    let lines = export_last_hour(&app);
    assert!(lines.iter().filter(|l| l["event"] == "api.create").count() == 5);
    let third = lines
        .iter()
        .filter(|l| l["event"] == "api.create")
        .nth(2)
        .unwrap()
        .clone();

    // Someone with database access rewrites history.
    tamper(&app, third["id"].as_str().unwrap()).await;
    let out = app.cli(&["audit", "verify", "--workspace", &app.workspace_id]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("position {}", third["position"])),
        "{text}"
    );
    assert!(text.contains("was changed"), "{text}");
}

#[tokio::test]
async fn keys_created_together_take_consecutive_positions_in_an_intact_chain() {
    let app = spawn_app().await;
    let api_id = app.create_api("together").await;
    // Concurrent creations share group commits, whose audit events are written together.
    let mut creations = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (url, root, client, api_id) = (
            format!("{}/v2/keys.createKey", app.base_url),
            app.root_key.clone(),
            app.client.clone(),
            api_id.clone(),
        );
        creations.spawn(async move {
            let r = client
                .post(&url)
                .bearer_auth(&root)
                .json(&json!({"apiId": api_id, "name": format!("k{i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let body: Value = r.json().await.unwrap();
            body["data"]["keyId"].as_str().unwrap().to_string()
        });
    }
    let key_ids: HashSet<String> = creations.join_all().await.into_iter().collect();
    assert_eq!(key_ids.len(), 40);

    assert_chain_intact(&app);
    let lines = export_last_hour(&app);
    let mut positions: Vec<i64> = lines
        .iter()
        .map(|l| l["position"].as_i64().unwrap())
        .collect();
    positions.sort_unstable();
    assert_eq!(
        positions,
        (positions[0]..positions[0] + positions.len() as i64).collect::<Vec<_>>(),
        "positions without gaps or repeats"
    );
    let created: HashSet<String> = lines
        .iter()
        .filter(|l| l["event"] == "key.create")
        .flat_map(|l| l["targets"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["type"] == "key")
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(created, key_ids, "one key.create, naming its key, per key");
}

#[tokio::test]
async fn a_key_that_fails_in_a_group_commit_leaves_no_event_and_the_rest_chain_intact() {
    use keyward::model::audit::{Actor, AuditEvent, Target};
    let app = spawn_app().await;
    let api_id = app.create_api("failing").await;
    let api = app.store.get_api(&api_id).await.unwrap().unwrap();
    let mut inserts = tokio::task::JoinSet::new();
    for i in 0..30 {
        // Key 7 reuses key 3's hash: the batch holding the later of the two cannot be written
        // whole, and is written again key by key.
        let key = plain_new_key(
            &api.key_space_id,
            &app.workspace_id,
            &format!("key_fails{i}"),
            &format!("hash_fails_{}", if i == 7 { 3 } else { i }),
            app.now(),
        );
        let event = AuditEvent::new(
            &app.workspace_id,
            "key.create",
            format!("Created key {}", key.id),
            &Actor::cli(),
            app.now(),
            vec![Target::new("key", &key.id, None)],
        );
        let store = app.store.clone();
        inserts.spawn(async move {
            let ok = store.insert_key(&key, &[event]).await.is_ok();
            (key.id, ok)
        });
    }
    let outcomes = inserts.join_all().await;
    let written: HashSet<String> = outcomes
        .into_iter()
        .filter(|(_, ok)| *ok)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(written.len(), 29, "all but one of keys 3 and 7");
    assert!(written.contains("key_fails3") != written.contains("key_fails7"));

    assert_chain_intact(&app);
    let logged: Vec<String> = export_last_hour(&app)
        .iter()
        .filter(|l| l["event"] == "key.create")
        .flat_map(|l| l["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(logged.len(), 29, "no event of the key that failed");
    assert_eq!(logged.into_iter().collect::<HashSet<_>>(), written);
}

/// `keyward audit verify` of the app's workspace succeeds and reports the chain intact.
fn assert_chain_intact(app: &TestApp) {
    let out = app.cli(&["audit", "verify", "--workspace", &app.workspace_id]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("intact"), "{text}");
}

/// The app's workspace's events of the last hour, as `keyward audit export` writes them.
fn export_last_hour(app: &TestApp) -> Vec<Value> {
    let out = app.cli(&[
        "audit",
        "export",
        "--workspace",
        &app.workspace_id,
        "--since",
        "1h",
    ]);
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

async fn tamper(app: &TestApp, event_id: &str) {
    let sql = "UPDATE audit_logs SET description = 'nothing happened' WHERE id = $1";
    if app.database_url.starts_with("postgres") {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&app.database_url)
            .await
            .unwrap();
        sqlx::query(sql)
            .bind(event_id)
            .execute(&mut conn)
            .await
            .unwrap();
    } else {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&app.database_url)
            .await
            .unwrap();
        sqlx::query(&sql.replace("$1", "?1"))
            .bind(event_id)
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn retention_removes_the_oldest_events_and_the_rest_still_verifies() {
    let app = spawn_app().await;
    for i in 0..3 {
        app.create_api(&format!("old-{i}")).await;
    }
    let day = 86_400_000;
    app.clock.advance_ms(400 * day);
    for i in 0..2 {
        app.create_api(&format!("new-{i}")).await;
    }
    let removed = app.state.audit.prune(app.now() - 365 * day).await.unwrap();
    assert!(removed >= 3, "removed {removed}");
    let body = logs(&app, &app.root_key, json!({"events": ["api.create"]})).await;
    let names: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["description"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let out = app.cli(&["audit", "verify", "--workspace", &app.workspace_id]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("removed by the retention period"), "{text}");
    // Nothing more to remove.
    assert_eq!(
        app.state.audit.prune(app.now() - 365 * day).await.unwrap(),
        0
    );
}

#[tokio::test]
async fn a_long_log_is_pruned_in_chunks_to_the_same_unbroken_end() {
    use keyward::model::audit::{Actor, AuditEvent, Target};
    let app = spawn_app().await;
    let day = 86_400_000;
    // More old events than one chunk of a prune removes (2,000), each with a target.
    let old: Vec<AuditEvent> = (0..4_500)
        .map(|i| {
            AuditEvent::new(
                &app.workspace_id,
                "key.create",
                format!("Created key key_old{i}"),
                &Actor::cli(),
                app.now(),
                vec![Target::new("key", format!("key_old{i}"), None)],
            )
        })
        .collect();
    app.store.append_audit(&old).await.unwrap();
    app.clock.advance_ms(400 * day);
    app.create_api("kept").await;
    let removed = app.state.audit.prune(app.now() - 365 * day).await.unwrap();
    assert!(removed >= 4_500, "removed {removed}");
    let lines = export_last_hour(&app);
    assert!(
        lines.iter().all(|l| l["event"] != "key.create"),
        "every old event is gone"
    );
    assert!(lines.iter().any(|l| l["event"] == "api.create"));
    assert_chain_intact(&app);
}

#[tokio::test]
async fn events_carry_meta_with_what_changed_and_the_chain_covers_it() {
    let app = spawn_app().await;
    let api = app.create_api("metadata").await;
    let r = app
        .post(
            "/v2/keys.createKey",
            json!({"apiId": api, "prefix": "acme", "credits": {"remaining": 10}}),
        )
        .await;
    r.assert_ok("/v2/keys.createKey");
    let key_id = r.body["data"]["keyId"].as_str().unwrap().to_string();
    let key = r.body["data"]["key"].as_str().unwrap().to_string();
    app.post(
        "/v2/keys.updateKey",
        json!({"keyId": key_id, "name": "renamed", "enabled": false}),
    )
    .await
    .assert_ok("/v2/keys.updateKey");
    app.post(
        "/v2/keys.updateCredits",
        json!({"keyId": key_id, "operation": "increment", "value": 5}),
    )
    .await
    .assert_ok("/v2/keys.updateCredits");

    let body = logs(&app, &app.root_key, json!({"targetIds": [key_id]})).await;
    let of = |event: &str, nth: usize| {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == event)
            .nth(nth)
            .unwrap_or_else(|| panic!("no {event} #{nth}: {body}"))
            .clone()
    };
    let created = of("key.create", 0);
    let start = created["meta"]["start"].as_str().unwrap();
    assert!(
        key.starts_with(start) && start.starts_with("acme_"),
        "{created}"
    );
    assert_eq!(created["meta"]["remaining"], 10);
    assert!(!body.to_string().contains(&key), "never the plaintext key");
    let updated = of("key.update", 0);
    assert_eq!(updated["meta"]["changed"], json!(["name", "enabled"]));
    let credited = of("key.update", 1);
    assert_eq!(
        credited["meta"],
        json!({"operation": "increment", "value": 5})
    );

    let out = app.cli(&["audit", "verify", "--workspace", &app.workspace_id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
