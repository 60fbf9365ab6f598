//! Permissions and roles: the `permissions.*` routes, the key RBAC routes, and permission queries
//! in `keys.verifyKey`.

use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app, TestResponse};
use crate::keys::{create_key, get_key};

fn slugs(data: &Value) -> Vec<String> {
    data.as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn permissions_are_created_read_listed_and_deleted() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/v2/permissions.createPermission",
            json!({"name": "Read documents", "slug": "documents.read", "description": "may read"}),
        )
        .await;
    r.assert_ok("/v2/permissions.createPermission");
    let id = r.body["data"]["permissionId"].as_str().unwrap().to_string();
    assert!(id.starts_with("perm_"));

    let dup = app
        .post(
            "/v2/permissions.createPermission",
            json!({"name": "x", "slug": "Documents.Read"}),
        )
        .await;
    dup.assert_error(
        409,
        "unkey/data/permission_already_exists",
        "Conflicting Resource",
    );
    assert_eq!(
        dup.detail(),
        "A permission with slug 'Documents.Read' already exists in this workspace"
    );

    for by in [id.as_str(), "documents.read"] {
        let r = app
            .post("/v2/permissions.getPermission", json!({"permission": by}))
            .await;
        r.assert_ok("/v2/permissions.getPermission");
        assert_eq!(
            r.body["data"],
            json!({"id": id, "name": "Read documents", "slug": "documents.read", "description": "may read"})
        );
    }
    for i in 0..4 {
        app.post(
            "/v2/permissions.createPermission",
            json!({"name": format!("p{i}"), "slug": format!("other.p{i}")}),
        )
        .await
        .assert_ok("/v2/permissions.createPermission");
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut body = json!({"limit": 2});
        if let Some(c) = &cursor {
            body["cursor"] = json!(c);
        }
        let r = app.post("/v2/permissions.listPermissions", body).await;
        r.assert_ok("/v2/permissions.listPermissions");
        seen.extend(slugs(&r.body["data"]));
        match r.body["pagination"]["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let r = app
        .post(
            "/v2/permissions.listPermissions",
            json!({"search": "DOCUMENT"}),
        )
        .await;
    assert_eq!(slugs(&r.body["data"]), ["documents.read"]);
    let r = app
        .post("/v2/permissions.listPermissions", json!({"search": "%"}))
        .await;
    assert_eq!(
        r.body["data"],
        json!([]),
        "search is literal, not a pattern"
    );

    app.post(
        "/v2/permissions.deletePermission",
        json!({"permission": "documents.read"}),
    )
    .await
    .assert_ok("/v2/permissions.deletePermission");
    app.post("/v2/permissions.getPermission", json!({"permission": id}))
        .await
        .assert_error(404, "unkey/data/permission_not_found", "Not Found");
    app.post(
        "/v2/permissions.deletePermission",
        json!({"permission": id}),
    )
    .await
    .assert_error(404, "unkey/data/permission_not_found", "Not Found");
}

#[tokio::test]
async fn permission_routes_check_rbac_permissions_before_looking_up() {
    let app = spawn_app().await;
    let (_, key) = app.root_key_with(&["api.*.read_api"]).await;
    let cases = [
        (
            "/v2/permissions.createPermission",
            json!({"name": "n", "slug": "a.b"}),
            "rbac.*.create_permission",
        ),
        (
            "/v2/permissions.getPermission",
            json!({"permission": "perm_nothere"}),
            "rbac.*.read_permission",
        ),
        (
            "/v2/permissions.listPermissions",
            json!({}),
            "rbac.*.read_permission",
        ),
        (
            "/v2/permissions.deletePermission",
            json!({"permission": "perm_nothere"}),
            "rbac.*.delete_permission",
        ),
        (
            "/v2/permissions.createRole",
            json!({"name": "r"}),
            "rbac.*.create_role",
        ),
        (
            "/v2/permissions.getRole",
            json!({"role": "nothere"}),
            "rbac.*.read_role",
        ),
        ("/v2/permissions.listRoles", json!({}), "rbac.*.read_role"),
        (
            "/v2/permissions.deleteRole",
            json!({"role": "nothere"}),
            "rbac.*.delete_role",
        ),
        (
            "/v2/permissions.setRolePermissions",
            json!({"roleId": "role_x", "permissions": []}),
            "rbac.*.add_permission_to_role",
        ),
    ];
    for (path, body, needed) in cases {
        let r = app.post_with_key(path, &key, body).await;
        r.assert_error(
            403,
            "unkey/authorization/insufficient_permissions",
            "Insufficient Permissions",
        );
        assert!(r.detail().contains(needed), "{path}: {}", r.detail());
    }
    let bad = app
        .post(
            "/v2/permissions.createPermission",
            json!({"name": "n", "slug": "has space"}),
        )
        .await;
    assert_eq!(
        bad.body["error"]["errors"][0]["location"],
        "/properties/slug/pattern"
    );
}

#[tokio::test]
async fn roles_hold_permissions_and_missing_ones_need_create_permission() {
    let app = spawn_app().await;
    let (_, limited) = app
        .root_key_with(&["rbac.*.create_role", "rbac.*.add_permission_to_role"])
        .await;
    let r = app
        .post_with_key(
            "/v2/permissions.createRole",
            &limited,
            json!({"name": "editor", "permissions": ["docs.write"]}),
        )
        .await;
    r.assert_error(
        403,
        "unkey/authorization/insufficient_permissions",
        "Insufficient Permissions",
    );
    assert!(r.detail().contains("rbac.*.create_permission"));
    let roles = app.post("/v2/permissions.listRoles", json!({})).await;
    assert_eq!(roles.body["data"], json!([]), "nothing half-written");

    let r = app
        .post(
            "/v2/permissions.createRole",
            json!({"name": "editor", "description": "edits", "permissions": ["docs.write", "docs.read", "DOCS.READ"]}),
        )
        .await;
    r.assert_ok("/v2/permissions.createRole");
    let role_id = r.body["data"]["roleId"].as_str().unwrap().to_string();
    let r = app
        .post("/v2/permissions.getRole", json!({"role": "editor"}))
        .await;
    r.assert_ok("/v2/permissions.getRole");
    assert_eq!(r.body["data"]["id"], role_id.as_str());
    assert_eq!(
        slugs(&r.body["data"]["permissions"]),
        ["docs.read", "docs.write"]
    );
    // The auto-created permissions exist on their own.
    app.post(
        "/v2/permissions.getPermission",
        json!({"permission": "docs.write"}),
    )
    .await
    .assert_ok("/v2/permissions.getPermission");

    let dup = app
        .post("/v2/permissions.createRole", json!({"name": "Editor"}))
        .await;
    dup.assert_error(
        409,
        "unkey/data/role_already_exists",
        "Conflicting Resource",
    );

    let r = app
        .post(
            "/v2/permissions.setRolePermissions",
            json!({"roleId": role_id, "permissions": ["docs.read", "docs.admin"]}),
        )
        .await;
    r.assert_ok("/v2/permissions.setRolePermissions");
    assert_eq!(slugs(&r.body["data"]), ["docs.admin", "docs.read"]);
    let r = app
        .post(
            "/v2/permissions.setRolePermissions",
            json!({"roleId": "role_missing", "permissions": []}),
        )
        .await;
    r.assert_error(404, "unkey/data/role_not_found", "Not Found");

    let r = app
        .post("/v2/permissions.listRoles", json!({"search": "edit"}))
        .await;
    r.assert_ok("/v2/permissions.listRoles");
    assert_eq!(r.body["data"][0]["name"], "editor");
    assert_eq!(
        slugs(&r.body["data"][0]["permissions"]),
        ["docs.admin", "docs.read"]
    );

    app.post("/v2/permissions.deleteRole", json!({"role": role_id}))
        .await
        .assert_ok("/v2/permissions.deleteRole");
    app.post("/v2/permissions.getRole", json!({"role": "editor"}))
        .await
        .assert_error(404, "unkey/data/role_not_found", "Not Found");
}

/// unkey.py 3.2 names the role of `setRolePermissions` as `role` (id or name); @unkey/api 2.5 and
/// Unkey's earlier spec as `roleId` (id only). Both work; exactly one must be sent.
#[tokio::test]
async fn set_role_permissions_takes_the_role_by_role_or_by_role_id() {
    let app = spawn_app().await;
    let r = app
        .post("/v2/permissions.createRole", json!({"name": "auditor"}))
        .await;
    r.assert_ok("/v2/permissions.createRole");
    let role_id = r.body["data"]["roleId"].as_str().unwrap().to_string();
    let set = |body: Value| app.post("/v2/permissions.setRolePermissions", body);

    let r = set(json!({"role": "auditor", "permissions": ["logs.read"]})).await;
    r.assert_ok("/v2/permissions.setRolePermissions");
    assert_eq!(slugs(&r.body["data"]), ["logs.read"]);
    let r = set(json!({"role": role_id, "permissions": ["logs.read", "logs.export"]})).await;
    r.assert_ok("/v2/permissions.setRolePermissions");
    assert_eq!(slugs(&r.body["data"]), ["logs.export", "logs.read"]);
    let r = set(json!({"roleId": role_id, "permissions": []})).await;
    r.assert_ok("/v2/permissions.setRolePermissions");
    assert_eq!(r.body["data"], json!([]));
    let r = app
        .post("/v2/permissions.getRole", json!({"role": "auditor"}))
        .await;
    assert_eq!(r.body["data"]["permissions"], json!([]));

    // `roleId` stays an id; `role` misses like any lookup.
    set(json!({"roleId": "auditor", "permissions": []}))
        .await
        .assert_error(404, "unkey/data/role_not_found", "Not Found");
    set(json!({"role": "nobody", "permissions": []}))
        .await
        .assert_error(404, "unkey/data/role_not_found", "Not Found");

    for body in [
        json!({"permissions": []}),
        json!({"role": "auditor", "roleId": role_id, "permissions": []}),
    ] {
        let r = set(body.clone()).await;
        r.assert_error(400, "unkey/application/invalid_input", "Bad Request");
        assert_eq!(
            r.body["error"]["errors"][0]["location"], "body.role",
            "{body}"
        );
    }
}

#[tokio::test]
async fn keys_get_permissions_and_roles_at_creation_and_show_their_union() {
    let app = spawn_app().await;
    let api = app.create_api("docs").await;
    app.post(
        "/v2/permissions.createRole",
        json!({"name": "viewer", "permissions": ["docs.read", "docs.list"]}),
    )
    .await
    .assert_ok("/v2/permissions.createRole");
    let (key_id, _) = create_key(
        &app,
        &api,
        json!({"permissions": ["docs.read", "billing.view"], "roles": ["viewer"]}),
    )
    .await;
    let data = get_key(&app, &key_id).await;
    assert_eq!(
        data["permissions"],
        json!(["billing.view", "docs.list", "docs.read"])
    );
    assert_eq!(data["roles"], json!(["viewer"]));

    let r = app
        .post(
            "/v2/keys.createKey",
            json!({"apiId": api, "roles": ["nope"]}),
        )
        .await;
    r.assert_error(404, "unkey/data/role_not_found", "Not Found");
    assert_eq!(r.detail(), "Role 'nope' was not found.");

    app.post(
        "/v2/keys.updateKey",
        json!({"keyId": key_id, "permissions": ["admin"], "roles": []}),
    )
    .await
    .assert_ok("/v2/keys.updateKey");
    let data = get_key(&app, &key_id).await;
    assert_eq!(data["permissions"], json!(["admin"]));
    assert!(data.get("roles").is_none());
}

#[tokio::test]
async fn key_permission_routes_add_remove_and_set_with_their_checks() {
    let app = spawn_app().await;
    let api = app.create_api("docs").await;
    let (key_id, _) = create_key(&app, &api, json!({})).await;

    let (_, only_update) = app.root_key_with(&["api.*.update_key"]).await;
    let r = app
        .post_with_key(
            "/v2/keys.addPermissions",
            &only_update,
            json!({"keyId": key_id, "permissions": ["a.b"]}),
        )
        .await;
    r.assert_error(
        403,
        "unkey/authorization/insufficient_permissions",
        "Insufficient Permissions",
    );
    let (_, no_create) = app
        .root_key_with(&["api.*.update_key", "rbac.*.add_permission_to_key"])
        .await;
    let r = app
        .post_with_key(
            "/v2/keys.addPermissions",
            &no_create,
            json!({"keyId": key_id, "permissions": ["a.b"]}),
        )
        .await;
    r.assert_error(
        403,
        "unkey/authorization/insufficient_permissions",
        "Insufficient Permissions",
    );
    assert!(r.detail().contains("rbac.*.create_permission"));

    let r = app
        .post(
            "/v2/keys.addPermissions",
            json!({"keyId": key_id, "permissions": ["a.b", "c.d"]}),
        )
        .await;
    r.assert_ok("/v2/keys.addPermissions");
    assert_eq!(slugs(&r.body["data"]), ["a.b", "c.d"]);
    // Existing permissions now: the scoped key may add them without create_permission.
    let r = app
        .post_with_key(
            "/v2/keys.addPermissions",
            &no_create,
            json!({"keyId": key_id, "permissions": ["a.b"]}),
        )
        .await;
    assert_eq!(slugs(&r.body["data"]), ["a.b", "c.d"]);

    let r = app
        .post(
            "/v2/keys.removePermissions",
            json!({"keyId": key_id, "permissions": ["a.b"]}),
        )
        .await;
    r.assert_ok("/v2/keys.removePermissions");
    assert_eq!(slugs(&r.body["data"]), ["c.d"]);
    let r = app
        .post(
            "/v2/keys.removePermissions",
            json!({"keyId": key_id, "permissions": ["zz.top"]}),
        )
        .await;
    r.assert_error(404, "unkey/data/permission_not_found", "Not Found");
    assert_eq!(r.detail(), "Permission 'zz.top' was not found.");

    let r = app
        .post(
            "/v2/keys.setPermissions",
            json!({"keyId": key_id, "permissions": ["e.f"]}),
        )
        .await;
    assert_eq!(slugs(&r.body["data"]), ["e.f"]);
    let r = app
        .post(
            "/v2/keys.setPermissions",
            json!({"keyId": key_id, "permissions": []}),
        )
        .await;
    r.assert_ok("/v2/keys.setPermissions");
    assert_eq!(r.body["data"], json!([]));
    let r = app
        .post(
            "/v2/keys.addPermissions",
            json!({"keyId": key_id, "permissions": []}),
        )
        .await;
    assert_eq!(
        r.body["error"]["errors"][0]["location"],
        "/properties/permissions/minItems"
    );

    let events = app
        .store
        .list_audit_events(&app.workspace_id, 50)
        .await
        .unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    for expected in [
        "permission.create",
        "authorization.connect_permission_and_key",
        "authorization.disconnect_permission_and_key",
    ] {
        assert!(names.contains(&expected), "missing {expected}");
    }
    assert!(events
        .iter()
        .any(|e| e.description == format!("Added permission a.b to key {key_id}")));
}

#[tokio::test]
async fn key_role_routes_add_remove_and_set() {
    let app = spawn_app().await;
    let api = app.create_api("docs").await;
    let (key_id, _) = create_key(&app, &api, json!({})).await;
    for (name, perms) in [
        ("reader", json!(["docs.read"])),
        ("writer", json!(["docs.write"])),
    ] {
        app.post(
            "/v2/permissions.createRole",
            json!({"name": name, "permissions": perms}),
        )
        .await
        .assert_ok("/v2/permissions.createRole");
    }
    let names = |r: &TestResponse| -> Vec<String> {
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect()
    };
    let r = app
        .post(
            "/v2/keys.addRoles",
            json!({"keyId": key_id, "roles": ["reader", "writer"]}),
        )
        .await;
    r.assert_ok("/v2/keys.addRoles");
    assert_eq!(names(&r), ["reader", "writer"]);
    assert_eq!(slugs(&r.body["data"][0]["permissions"]), ["docs.read"]);
    let r = app
        .post(
            "/v2/keys.removeRoles",
            json!({"keyId": key_id, "roles": ["reader"]}),
        )
        .await;
    assert_eq!(names(&r), ["writer"]);
    let r = app
        .post(
            "/v2/keys.setRoles",
            json!({"keyId": key_id, "roles": ["reader"]}),
        )
        .await;
    assert_eq!(names(&r), ["reader"]);
    let r = app
        .post(
            "/v2/keys.addRoles",
            json!({"keyId": key_id, "roles": ["ghost"]}),
        )
        .await;
    r.assert_error(404, "unkey/data/role_not_found", "Not Found");
    let (_, only_update) = app.root_key_with(&["api.*.update_key"]).await;
    app.post_with_key(
        "/v2/keys.addRoles",
        &only_update,
        json!({"keyId": key_id, "roles": ["writer"]}),
    )
    .await
    .assert_error(
        403,
        "unkey/authorization/insufficient_permissions",
        "Insufficient Permissions",
    );
    // Removing and setting roles need only update_key.
    app.post_with_key(
        "/v2/keys.setRoles",
        &only_update,
        json!({"keyId": key_id, "roles": []}),
    )
    .await
    .assert_ok("/v2/keys.setRoles");
    assert!(get_key(&app, &key_id).await.get("roles").is_none());
}

#[tokio::test]
async fn verify_evaluates_permission_queries_against_direct_and_role_permissions() {
    let app = spawn_app().await;
    let api = app.create_api("docs").await;
    app.post(
        "/v2/permissions.createRole",
        json!({"name": "admin", "permissions": ["system:admin:read", "system:admin:*"]}),
    )
    .await
    .assert_ok("/v2/permissions.createRole");
    let (_, key) = create_key(
        &app,
        &api,
        json!({"permissions": ["documents.read", "billing.view", "api.*", "api_v2-test:read"], "roles": ["admin"]}),
    )
    .await;
    let r = app.verify_permissions(&key, "documents.read").await;
    assert_eq!(r.body["data"]["code"], "VALID");
    assert_eq!(
        r.body["data"]["permissions"],
        json!([
            "api.*",
            "api_v2-test:read",
            "billing.view",
            "documents.read",
            "system:admin:*",
            "system:admin:read"
        ])
    );
    assert_eq!(r.body["data"]["roles"], json!(["admin"]));
    let expectations = [
        ("documents.read AND billing.view", "VALID"),
        (
            "documents.read and (billing.admin OR billing.view)",
            "VALID",
        ),
        ("documents.write OR documents.read", "VALID"),
        ("api.* OR api.edit", "VALID"),
        ("api.edit", "INSUFFICIENT_PERMISSIONS"),
        (
            "system:admin:read AND (documents.read OR documents.write)",
            "VALID",
        ),
        ("system:admin:* AND api_v2-test:read", "VALID"),
        ("docs/v1/read", "INSUFFICIENT_PERMISSIONS"),
        (
            "documents.read AND billing.admin",
            "INSUFFICIENT_PERMISSIONS",
        ),
        (
            "billing.admin OR documents.write",
            "INSUFFICIENT_PERMISSIONS",
        ),
    ];
    for (query, expected) in expectations {
        assert_eq!(
            app.verify_permissions(&key, query).await.body["data"]["code"],
            expected,
            "{query}"
        );
    }
    let long: Vec<String> = (0..24).map(|i| format!("p{i}.x")).collect();
    let query = format!("documents.read AND ({})", long.join(" OR "));
    assert_eq!(
        app.verify_permissions(&key, &query).await.body["data"]["code"],
        "INSUFFICIENT_PERMISSIONS"
    );
    let query = format!("({}) OR documents.read", long.join(" AND "));
    assert_eq!(
        app.verify_permissions(&key, &query).await.body["data"]["code"],
        "VALID"
    );
}

#[tokio::test]
async fn malformed_permission_queries_are_a_400_with_the_position() {
    let app = spawn_app().await;
    let api = app.create_api("docs").await;
    let (_, key) = create_key(&app, &api, json!({})).await;
    let cases = [
        ("permission_1 AND", "Unexpected end of query. Expected a permission identifier or opening parenthesis."),
        (
            "(permission_1 AND permission_2",
            "Missing closing parenthesis ')' at position 30. Every opening parenthesis must have a matching closing parenthesis.",
        ),
        (
            "permission_1 AND ()",
            "Empty parentheses found at position 18. Parentheses must contain at least one permission or expression.",
        ),
        ("AND permission_1", "Unexpected token 'AND' at position 0. Expected a permission identifier or opening parenthesis."),
    ];
    for (query, message) in cases {
        let r = app
            .post(
                "/v2/keys.verifyKey",
                json!({"key": key, "permissions": query}),
            )
            .await;
        r.assert_error(
            400,
            "user/bad_request/permissions_query_syntax_error",
            "Bad Request",
        );
        assert_eq!(r.detail(), message, "{query}");
    }
    // For a key the caller cannot see, the query is never looked at.
    let r = app
        .post(
            "/v2/keys.verifyKey",
            json!({"key": "sk_unknown", "permissions": "AND"}),
        )
        .await;
    assert_eq!(r.body["data"], json!({"valid": false, "code": "NOT_FOUND"}));
    let r = app
        .post(
            "/v2/keys.verifyKey",
            json!({"key": key, "permissions": "x".repeat(1001)}),
        )
        .await;
    assert_eq!(
        r.body["error"]["errors"][0]["location"],
        "/properties/permissions/maxLength"
    );
}

#[tokio::test]
async fn changing_a_roles_permissions_takes_effect_on_the_next_verification() {
    let app = spawn_app().await;
    let api = app.create_api("docs").await;
    let r = app
        .post(
            "/v2/permissions.createRole",
            json!({"name": "reader", "permissions": ["docs.read"]}),
        )
        .await;
    let role_id = r.body["data"]["roleId"].as_str().unwrap().to_string();
    let (key_id, key) = create_key(&app, &api, json!({"roles": ["reader"]})).await;
    assert_eq!(
        app.verify_permissions(&key, "docs.read").await.body["data"]["code"],
        "VALID"
    );
    app.post(
        "/v2/permissions.setRolePermissions",
        json!({"roleId": role_id, "permissions": []}),
    )
    .await
    .assert_ok("/v2/permissions.setRolePermissions");
    assert_eq!(
        app.verify_permissions(&key, "docs.read").await.body["data"]["code"],
        "INSUFFICIENT_PERMISSIONS"
    );
    app.post(
        "/v2/keys.addPermissions",
        json!({"keyId": key_id, "permissions": ["docs.read"]}),
    )
    .await
    .assert_ok("/v2/keys.addPermissions");
    assert_eq!(
        app.verify_permissions(&key, "docs.read").await.body["data"]["code"],
        "VALID"
    );
    app.post(
        "/v2/permissions.deletePermission",
        json!({"permission": "docs.read"}),
    )
    .await
    .assert_ok("/v2/permissions.deletePermission");
    assert_eq!(
        app.verify_permissions(&key, "docs.read").await.body["data"]["code"],
        "INSUFFICIENT_PERMISSIONS"
    );
    app.post(
        "/v2/keys.addPermissions",
        json!({"keyId": key_id, "permissions": ["docs.read"]}),
    )
    .await
    .assert_ok("/v2/keys.addPermissions");
    app.post("/v2/permissions.deleteRole", json!({"role": "reader"}))
        .await
        .assert_ok("/v2/permissions.deleteRole");
    let r = app.verify_permissions(&key, "docs.read").await;
    assert_eq!(r.body["data"]["code"], "VALID");
    assert!(r.body["data"].get("roles").is_none());
}

#[tokio::test]
async fn a_role_change_made_by_another_process_reaches_verification_within_a_second() {
    let app = spawn_app().await;
    let api = app.create_api("docs").await;
    let r = app
        .post(
            "/v2/permissions.createRole",
            json!({"name": "reader", "permissions": ["docs.read"]}),
        )
        .await;
    let role_id = r.body["data"]["roleId"].as_str().unwrap().to_string();
    let (_, key) = create_key(&app, &api, json!({"roles": ["reader"]})).await;
    assert_eq!(
        app.verify_permissions(&key, "docs.read").await.body["data"]["code"],
        "VALID"
    );
    // Straight to the store, as another node would.
    let change = keyward::model::RbacChange {
        permissions: Some(keyward::model::SetChange::Set(vec![])),
        ..Default::default()
    };
    app.store
        .set_role_permissions(&app.workspace_id, &role_id, &change, app.now(), &[])
        .await
        .unwrap()
        .unwrap();
    let (app, key) = (&app, key.as_str());
    eventually(
        std::time::Duration::from_secs(1),
        "the role change reached verification",
        || async move {
            let r = app.verify_permissions(key, "docs.read").await;
            if r.body["data"]["code"] == "INSUFFICIENT_PERMISSIONS" {
                Ok(())
            } else {
                Err(format!("still {}", r.body))
            }
        },
    )
    .await;
}
