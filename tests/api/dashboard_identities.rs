//! The dashboard's identity pages over HTTP: creating, finding, editing and deleting an
//! identity through the API, its keys and usage, and what a read-only root key is shown and
//! refused. (The helpers are `dashboard.rs`'.)

use serde_json::json;

use crate::dashboard::{create_api, urlencode, Browser};
use crate::helpers::spawn_app;

#[tokio::test]
async fn an_identity_is_created_found_edited_and_deleted() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app.base_url);
    let token = browser.sign_in(&app.root_key).await;
    let empty = browser.get("/identities").await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert!(empty.body.contains("No identities yet"), "{}", empty.body);

    let created = browser
        .post(
            "/identities",
            &[
                ("_csrf", &token),
                ("externalId", "customer_7"),
                ("meta", "{\"plan\": \"pro\"}"),
                ("rl0-name", "requests"),
                ("rl0-limit", "10"),
                ("rl0-duration", "60000"),
                ("rl0-auto", "on"),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let location = created.location().to_string();
    assert!(location.ends_with("?done=identity-created"), "{location}");
    let id = location
        .trim_start_matches("/identities/")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let read = app
        .post("/v2/identities.getIdentity", json!({ "identity": id }))
        .await;
    assert_eq!(read.status, 200, "{:?}", read.body);
    assert_eq!(read.body["data"]["externalId"], "customer_7");
    assert_eq!(read.body["data"]["meta"]["plan"], "pro");
    assert_eq!(read.body["data"]["ratelimits"][0]["limit"], 10);
    assert_eq!(read.body["data"]["ratelimits"][0]["autoApply"], true);

    // The same external id again is the API's conflict, in place, the form kept.
    let again = browser
        .post(
            "/identities",
            &[("_csrf", &token), ("externalId", "customer_7")],
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(again.body.contains("already exists"), "{}", again.body);
    assert_eq!(again.input("externalId").as_deref(), Some("customer_7"));
    let bad = browser
        .post(
            "/identities",
            &[
                ("_csrf", &token),
                ("externalId", "customer_8"),
                ("meta", "[1]"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(
        bad.body.contains("meta: must be a JSON object"),
        "{}",
        bad.body
    );

    // Its keys are found in each API; its page shows them and its usage.
    let api_id = create_api(&app, "billing").await;
    let key = app
        .post(
            "/v2/keys.createKey",
            json!({ "apiId": api_id, "externalId": "customer_7", "name": "seven's key" }),
        )
        .await;
    assert_eq!(key.status, 200, "{:?}", key.body);
    let key_id = key.body["data"]["keyId"].as_str().unwrap().to_string();
    let page = browser
        .get(&format!("/identities/{id}?done=identity-created"))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Identity created."), "{}", page.body);
    assert!(
        page.body.contains(&format!("/keys/{key_id}")),
        "{}",
        page.body
    );
    assert!(page.body.contains("billing"), "{}", page.body);
    assert!(page.body.contains("Verifications"), "{}", page.body);
    assert!(
        page.body.contains("&quot;plan&quot;: &quot;pro&quot;"),
        "{}",
        page.body
    );

    // The list and its search: part of the external id, the whole one, and nothing.
    for term in ["customer", "customer_7", &id] {
        let found = browser
            .get(&format!("/identities?q={}", urlencode(term)))
            .await;
        assert_eq!(found.status, 200, "{}", found.body);
        assert!(
            found.body.contains(&format!("/identities/{id}")),
            "'{term}': {}",
            found.body
        );
    }
    let none = browser.get("/identities?q=zzz").await;
    assert!(none.body.contains("No identity matches"), "{}", none.body);

    // Edit: meta and the shared limits are replaced.
    let updated = browser
        .post(
            &format!("/identities/{id}/update"),
            &[
                ("_csrf", &token),
                ("rows", "3"),
                ("meta", "{\"plan\": \"team\"}"),
                ("rl0-name", "requests"),
                ("rl0-limit", "20"),
                ("rl0-duration", "60000"),
                ("rl1-name", "tokens"),
                ("rl1-limit", "1000"),
                ("rl1-duration", "3600000"),
            ],
        )
        .await;
    assert_eq!(updated.status, 303, "{}", updated.body);
    let read = app
        .post("/v2/identities.getIdentity", json!({ "identity": id }))
        .await;
    assert_eq!(read.body["data"]["meta"], json!({ "plan": "team" }));
    let limits = read.body["data"]["ratelimits"].as_array().unwrap();
    assert_eq!(limits.len(), 2, "{limits:?}");
    assert!(limits
        .iter()
        .any(|l| l["name"] == "requests" && l["limit"] == 20 && l["autoApply"] == false));
    let refused = browser
        .post(
            &format!("/identities/{id}/update"),
            &[
                ("_csrf", &token),
                ("rl0-name", "requests"),
                ("rl0-limit", "x"),
            ],
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("is not a whole number"),
        "{}",
        refused.body
    );

    // A delete without the form's token is refused and changes nothing.
    let forged = browser.post(&format!("/identities/{id}/delete"), &[]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let still = app
        .post("/v2/identities.getIdentity", json!({ "identity": id }))
        .await;
    assert_eq!(still.status, 200);

    let deleted = browser
        .post(&format!("/identities/{id}/delete"), &[("_csrf", &token)])
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    assert_eq!(deleted.location(), "/identities?done=identity-deleted");
    let gone = app
        .post("/v2/identities.getIdentity", json!({ "identity": id }))
        .await;
    assert_eq!(gone.status, 404);
    assert_eq!(browser.get(&format!("/identities/{id}")).await.status, 404);
    // Its key stays, without an owner.
    let key = app
        .post("/v2/keys.getKey", json!({ "keyId": key_id }))
        .await;
    assert_eq!(key.status, 200);
}

#[tokio::test]
async fn a_read_only_key_sees_identities_but_may_not_change_them() {
    let app = spawn_app().await;
    let made = app
        .post(
            "/v2/identities.createIdentity",
            json!({ "externalId": "reader_visible" }),
        )
        .await;
    assert_eq!(made.status, 200, "{:?}", made.body);
    let id = made.body["data"]["identityId"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, key) = app.root_key_with(&["identity.*.read_identity"]).await;
    let mut browser = Browser::new(&app.base_url);
    let token = browser.sign_in(&key).await;
    let list = browser.get("/identities").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("reader_visible"), "{}", list.body);
    assert!(!list.body.contains("Create identity"), "{}", list.body);
    assert!(
        list.body.contains("href=\"/identities\""),
        "the section is in the navigation"
    );
    let page = browser.get(&format!("/identities/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("Save changes"), "{}", page.body);
    assert!(!page.body.contains("Delete identity"), "{}", page.body);
    assert!(page.body.contains("Usage needs"), "{}", page.body);

    let refused = browser
        .post("/identities", &[("_csrf", &token), ("externalId", "nope")])
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let refused = browser
        .post(&format!("/identities/{id}/delete"), &[("_csrf", &token)])
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let still = app
        .post("/v2/identities.getIdentity", json!({ "identity": id }))
        .await;
    assert_eq!(still.status, 200);
}
