//! The dashboard's authorization page over HTTP: permissions and roles created, assigned and
//! deleted through the API, and what a root key that may only read is shown and refused. (The
//! helpers are `dashboard.rs`'.)

use serde_json::json;

use crate::dashboard::Browser;
use crate::helpers::spawn_app;

#[tokio::test]
async fn permissions_and_roles_are_created_assigned_and_deleted() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app.base_url);
    let token = browser.sign_in(&app.root_key).await;
    let page = browser.get("/authorization").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("No permissions yet"), "{}", page.body);
    assert!(page.body.contains("No roles yet"), "{}", page.body);
    assert!(!page.body.contains("style="), "{}", page.body);
    let forged = browser
        .post("/authorization/permissions", &[("slug", "forged.thing")])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let page = browser.get("/authorization").await;
    assert!(!page.body.contains("forged.thing"), "{}", page.body);

    let created = browser
        .post(
            "/authorization/permissions",
            &[
                ("_csrf", &token),
                ("slug", "documents.read"),
                ("name", "Read documents"),
                ("description", "Open any document"),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    assert_eq!(created.location(), "/authorization?done=permission-created");
    let again = browser
        .post(
            "/authorization/permissions",
            &[("_csrf", &token), ("slug", "documents.read")],
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(again.body.contains("already exists"), "{}", again.body);
    assert_eq!(again.input("slug").as_deref(), Some("documents.read"));
    let bad = browser
        .post(
            "/authorization/permissions",
            &[("_csrf", &token), ("slug", "no spaces allowed")],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);

    // A role with two permissions, one created on the fly.
    let role = browser
        .post(
            "/authorization/roles",
            &[
                ("_csrf", &token),
                ("name", "editor"),
                ("description", "Edits documents"),
                ("permissions", "documents.read, documents.write"),
            ],
        )
        .await;
    assert_eq!(role.status, 303, "{}", role.body);
    let read = app
        .post("/v2/permissions.getRole", json!({ "role": "editor" }))
        .await;
    assert_eq!(read.status, 200, "{:?}", read.body);
    assert_eq!(read.body["data"]["description"], "Edits documents");
    assert_eq!(
        read.body["data"]["permissions"].as_array().unwrap().len(),
        2
    );
    let role_id = read.body["data"]["id"].as_str().unwrap().to_string();
    let page = browser.get("/authorization?done=role-created").await;
    assert!(page.body.contains("Role created."), "{}", page.body);
    assert!(
        page.body.contains("documents.read, documents.write"),
        "{}",
        page.body
    );

    // Membership: exactly the ticked permissions, plus one named.
    let set = browser
        .post(
            "/authorization/roles/permissions",
            &[
                ("_csrf", &token),
                ("role", &role_id),
                ("permission", "documents.read"),
                ("more", "documents.share"),
            ],
        )
        .await;
    assert_eq!(set.status, 303, "{}", set.body);
    let read = app
        .post("/v2/permissions.getRole", json!({ "role": role_id }))
        .await;
    let mut held: Vec<&str> = read.body["data"]["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].as_str().unwrap())
        .collect();
    held.sort();
    assert_eq!(held, ["documents.read", "documents.share"]);

    let deleted = browser
        .post(
            "/authorization/roles/delete",
            &[("_csrf", &token), ("role", &role_id)],
        )
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    let gone = app
        .post("/v2/permissions.getRole", json!({ "role": role_id }))
        .await;
    assert_eq!(gone.status, 404);
    let permission = app
        .post(
            "/v2/permissions.getPermission",
            json!({ "permission": "documents.read" }),
        )
        .await;
    let permission_id = permission.body["data"]["id"].as_str().unwrap().to_string();
    let deleted = browser
        .post(
            "/authorization/permissions/delete",
            &[("_csrf", &token), ("permission", &permission_id)],
        )
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    let gone = app
        .post(
            "/v2/permissions.getPermission",
            json!({ "permission": "documents.read" }),
        )
        .await;
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn a_key_that_may_only_read_permissions_is_shown_them_and_refused_changes() {
    let app = spawn_app().await;
    let made = app
        .post(
            "/v2/permissions.createPermission",
            json!({ "name": "visible", "slug": "visible.thing" }),
        )
        .await;
    assert_eq!(made.status, 200, "{:?}", made.body);
    let (_, key) = app.root_key_with(&["rbac.*.read_permission"]).await;
    let mut browser = Browser::new(&app.base_url);
    let token = browser.sign_in(&key).await;
    let page = browser.get("/authorization").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("visible.thing"), "{}", page.body);
    assert!(page.body.contains("Listing roles needs"), "{}", page.body);
    assert!(!page.body.contains("Create permission"), "{}", page.body);
    assert!(!page.body.contains("Create role"), "{}", page.body);
    assert!(!page.body.contains(">Delete<"), "{}", page.body);
    assert!(page.body.contains("href=\"/authorization\""));
    let refused = browser
        .post(
            "/authorization/permissions",
            &[("_csrf", &token), ("slug", "sneaky")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("rbac.*.create_permission"),
        "{}",
        refused.body
    );

    // A key without rbac permissions does not get the section.
    let (_, apis_only) = app.root_key_with(&["api.*.read_api"]).await;
    let mut other = Browser::new(&app.base_url);
    other.sign_in(&apis_only).await;
    let page = other.get("/authorization").await;
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains("href=\"/authorization\""),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("Listing permissions needs"),
        "{}",
        page.body
    );
}
