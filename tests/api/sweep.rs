//! The refusal sweep: every authenticated operation the server documents in `/openapi.json`,
//! called without a key, with a root key that holds no permission, and with malformed bodies.
//!
//! The table below is checked against the server's own OpenAPI document (generated from its
//! operation table), so a route added without a row here fails this test.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, TestResponse};

/// Operations that need no root key; every other documented operation must have a row.
const PUBLIC: &[&str] = &["GET /v2/liveness", "GET /ready"];

/// What a root key without any permission gets from a route, given a valid body that names
/// resources which exist.
enum NoPermission {
    /// 403 `insufficient_permissions`, its detail naming the permission(s) that would suffice.
    Forbidden,
    /// The reference hides the resource from a caller that may not see it: 404 with this error
    /// page, with the very error the all-powerful key gets for the body `absent`, which names a
    /// resource that does not exist (no existence leak).
    Hidden {
        doc_path: &'static str,
        absent: Value,
    },
}

/// One operation of the sweep.
struct Row {
    /// `"POST /v2/apis.createApi"`, as the OpenAPI document names it.
    operation: &'static str,
    /// A minimal valid body: it passes validation, so only the key decides the answer.
    body: Value,
    no_permission: NoPermission,
    /// A JSON pointer into `body` to a field that is then sent with the wrong JSON type.
    retype: &'static str,
}

/// Resources that exist, so that routes which look a resource up before checking permissions
/// reach their permission check.
struct Fixture {
    api_id: String,
    key_id: String,
    key: String,
    identity_id: String,
    permission_id: String,
    role_id: String,
}

async fn fixture(app: &TestApp) -> Fixture {
    let api_id = app.create_api("sweep").await;
    let (key_id, key) = crate::keys::create_key(app, &api_id, json!({})).await;
    let created = |path: &'static str, body: Value, field: &'static str| async move {
        let r = app.post(path, body).await;
        r.assert_ok(path);
        r.body["data"][field].as_str().unwrap().to_string()
    };
    let identity_id = created(
        "/v2/identities.createIdentity",
        json!({"externalId": "sweep-identity"}),
        "identityId",
    )
    .await;
    let permission_id = created(
        "/v2/permissions.createPermission",
        json!({"name": "sweep read", "slug": "sweep.read"}),
        "permissionId",
    )
    .await;
    let role_id = created(
        "/v2/permissions.createRole",
        json!({"name": "sweep-role", "permissions": ["sweep.read"]}),
        "roleId",
    )
    .await;
    app.post(
        "/v2/ratelimit.limit",
        json!({"namespace": "sweep", "identifier": "u", "limit": 10, "duration": 60_000}),
    )
    .await
    .assert_ok("/v2/ratelimit.limit");
    app.post(
        "/v2/ratelimit.setOverride",
        json!({"namespace": "sweep", "identifier": "u", "limit": 5, "duration": 60_000}),
    )
    .await
    .assert_ok("/v2/ratelimit.setOverride");
    Fixture {
        api_id,
        key_id,
        key,
        identity_id,
        permission_id,
        role_id,
    }
}

/// Every authenticated operation. Deletions come last, so that a route that wrongly served a
/// key without permissions cannot take a resource away from the rows after it.
fn rows(f: &Fixture) -> Vec<Row> {
    use NoPermission::{Forbidden, Hidden};
    let row = |operation, body, no_permission, retype| Row {
        operation,
        body,
        no_permission,
        retype,
    };
    let (api, key_id, key) = (&f.api_id, &f.key_id, &f.key);
    let limit = json!({"namespace": "sweep", "identifier": "u", "limit": 10, "duration": 60_000});
    let override_ref = json!({"namespace": "sweep", "identifier": "u"});
    vec![
        // apis.*
        row(
            "POST /v2/apis.createApi",
            json!({"name": "sweep two"}),
            Forbidden,
            "/name",
        ),
        row(
            "POST /v2/apis.getApi",
            json!({"apiId": api}),
            Forbidden,
            "/apiId",
        ),
        // api-surface.md §5.1: listKeys looks the API up first and masks a failed permission
        // check as the same 404 `api_not_found`.
        row(
            "POST /v2/apis.listKeys",
            json!({"apiId": api, "limit": 10}),
            Hidden {
                doc_path: "unkey/data/api_not_found",
                absent: json!({"apiId": "api_absent0000000", "limit": 10}),
            },
            "/limit",
        ),
        // keys.*
        // api-surface.md §5.2: createKey masks a failed permission check as 404 `api_not_found`.
        row(
            "POST /v2/keys.createKey",
            json!({"apiId": api}),
            Hidden {
                doc_path: "unkey/data/api_not_found",
                absent: json!({"apiId": "api_absent0000000"}),
            },
            "/apiId",
        ),
        row(
            "POST /v2/keys.getKey",
            json!({"keyId": key_id}),
            Forbidden,
            "/keyId",
        ),
        row(
            "POST /v2/keys.whoami",
            json!({"key": key}),
            Forbidden,
            "/key",
        ),
        row(
            "POST /v2/keys.updateKey",
            json!({"keyId": key_id, "name": "renamed"}),
            Forbidden,
            "/name",
        ),
        row(
            "POST /v2/keys.updateCredits",
            json!({"keyId": key_id, "operation": "set", "value": 10}),
            Forbidden,
            "/value",
        ),
        row(
            "POST /v2/keys.rerollKey",
            json!({"keyId": key_id, "expiration": 60_000}),
            Forbidden,
            "/expiration",
        ),
        row(
            "POST /v2/keys.migrateKeys",
            json!({"migrationId": "mig_sweep", "apiId": api,
                "keys": [{"hash": "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="}]}),
            Forbidden,
            "/keys/0/hash",
        ),
        row(
            "POST /v2/keys.addPermissions",
            json!({"keyId": key_id, "permissions": ["sweep.read"]}),
            Forbidden,
            "/permissions",
        ),
        row(
            "POST /v2/keys.removePermissions",
            json!({"keyId": key_id, "permissions": ["sweep.read"]}),
            Forbidden,
            "/permissions/0",
        ),
        row(
            "POST /v2/keys.setPermissions",
            json!({"keyId": key_id, "permissions": ["sweep.read"]}),
            Forbidden,
            "/permissions",
        ),
        row(
            "POST /v2/keys.addRoles",
            json!({"keyId": key_id, "roles": ["sweep-role"]}),
            Forbidden,
            "/roles",
        ),
        row(
            "POST /v2/keys.removeRoles",
            json!({"keyId": key_id, "roles": ["sweep-role"]}),
            Forbidden,
            "/roles/0",
        ),
        row(
            "POST /v2/keys.setRoles",
            json!({"keyId": key_id, "roles": ["sweep-role"]}),
            Forbidden,
            "/roles",
        ),
        // DECISIONS.md item 6: a root key with no verify permission at all gets 403 naming
        // `api.*.verify_key` (only one that may verify other APIs' keys gets 200 NOT_FOUND).
        row(
            "POST /v2/keys.verifyKey",
            json!({"key": key}),
            Forbidden,
            "/key",
        ),
        // identities.*
        row(
            "POST /v2/identities.createIdentity",
            json!({"externalId": "sweep-new"}),
            Forbidden,
            "/externalId",
        ),
        row(
            "POST /v2/identities.getIdentity",
            json!({"identity": f.identity_id}),
            Forbidden,
            "/identity",
        ),
        row(
            "POST /v2/identities.listIdentities",
            json!({"limit": 10}),
            Forbidden,
            "/limit",
        ),
        row(
            "POST /v2/identities.updateIdentity",
            json!({"identity": f.identity_id, "meta": {"plan": "pro"}}),
            Forbidden,
            "/meta",
        ),
        // permissions.*
        row(
            "POST /v2/permissions.createPermission",
            json!({"name": "sweep new", "slug": "sweep.new"}),
            Forbidden,
            "/slug",
        ),
        row(
            "POST /v2/permissions.getPermission",
            json!({"permission": f.permission_id}),
            Forbidden,
            "/permission",
        ),
        row(
            "POST /v2/permissions.listPermissions",
            json!({"limit": 10}),
            Forbidden,
            "/limit",
        ),
        row(
            "POST /v2/permissions.createRole",
            json!({"name": "sweep-new-role"}),
            Forbidden,
            "/name",
        ),
        row(
            "POST /v2/permissions.getRole",
            json!({"role": f.role_id}),
            Forbidden,
            "/role",
        ),
        row(
            "POST /v2/permissions.listRoles",
            json!({"limit": 10}),
            Forbidden,
            "/limit",
        ),
        row(
            "POST /v2/permissions.setRolePermissions",
            json!({"roleId": f.role_id, "permissions": ["sweep.read"]}),
            Forbidden,
            "/roleId",
        ),
        // ratelimit.*
        row(
            "POST /v2/ratelimit.limit",
            limit.clone(),
            Forbidden,
            "/duration",
        ),
        row(
            "POST /v2/ratelimit.multiLimit",
            json!([limit]),
            Forbidden,
            "/0/identifier",
        ),
        row(
            "POST /v2/ratelimit.setOverride",
            json!({"namespace": "sweep", "identifier": "v", "limit": 5, "duration": 60_000}),
            Forbidden,
            "/limit",
        ),
        // api-surface.md §5.5: getOverride masks a failed permission check as the override's
        // 404 `ratelimit_override_not_found`.
        row(
            "POST /v2/ratelimit.getOverride",
            override_ref.clone(),
            Hidden {
                doc_path: "unkey/data/ratelimit_override_not_found",
                absent: json!({"namespace": "sweep", "identifier": "nobody"}),
            },
            "/identifier",
        ),
        row(
            "POST /v2/ratelimit.listOverrides",
            json!({"namespace": "sweep", "limit": 10}),
            Forbidden,
            "/namespace",
        ),
        row(
            "POST /v2/audit.getLogs",
            json!({"limit": 10}),
            Forbidden,
            "/limit",
        ),
        row(
            "POST /v2/analytics.getVerifications",
            json!({"query": "SELECT count() AS n FROM key_verifications_v1"}),
            Forbidden,
            "/query",
        ),
        row(
            "POST /v2/analytics.getRatelimits",
            json!({"query": "SELECT count() AS n FROM ratelimits_v1"}),
            Forbidden,
            "/query",
        ),
        row(
            "POST /v2/analytics.getUsage",
            json!({"granularity": "day"}),
            Forbidden,
            "/granularity",
        ),
        // Deletions last.
        row(
            "POST /v2/ratelimit.deleteOverride",
            override_ref,
            Forbidden,
            "/namespace",
        ),
        row(
            "POST /v2/identities.deleteIdentity",
            json!({"identity": f.identity_id}),
            Forbidden,
            "/identity",
        ),
        row(
            "POST /v2/permissions.deleteRole",
            json!({"role": f.role_id}),
            Forbidden,
            "/role",
        ),
        row(
            "POST /v2/permissions.deletePermission",
            json!({"permission": f.permission_id}),
            Forbidden,
            "/permission",
        ),
        row(
            "POST /v2/keys.deleteKey",
            json!({"keyId": key_id, "permanent": false}),
            Forbidden,
            "/permanent",
        ),
        row(
            "POST /v2/apis.deleteApi",
            json!({"apiId": api}),
            Forbidden,
            "/apiId",
        ),
    ]
}

/// Every operation the server documents, as `"METHOD path"`, with whether it needs a root key.
async fn documented_operations(app: &TestApp) -> Vec<(String, bool)> {
    let doc: Value = app
        .client
        .get(format!("{}/openapi.json", app.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let security = operation["security"].as_array().expect("security");
            operations.push((
                format!("{} {path}", method.to_uppercase()),
                !security.is_empty(),
            ));
        }
    }
    operations
}

/// `body` with `"unexpectedField": 1` added (to its first item when it is an array), and the
/// keyword location the refusal must name.
fn with_unknown_field(body: &Value) -> (Value, &'static str) {
    let mut body = body.clone();
    match &mut body {
        Value::Array(items) => {
            items[0]["unexpectedField"] = json!(1);
            (body, "/items/additionalProperties")
        }
        _ => {
            body["unexpectedField"] = json!(1);
            (body, "/additionalProperties")
        }
    }
}

/// `body` with the field at `pointer` replaced by a value of another JSON type, the keyword
/// location the refusal must name, and the field's name.
fn with_wrong_type(body: &Value, pointer: &str) -> (Value, String, String) {
    let original = body;
    let mut body = body.clone();
    let field = body
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer} is not in {original}"));
    *field = match field {
        Value::String(_) => json!(42),
        _ => json!("not the right type"),
    };
    let mut location = String::new();
    let mut name = String::new();
    for segment in pointer.split('/').skip(1) {
        if segment.parse::<usize>().is_ok() {
            location.push_str("/items");
        } else {
            location.push_str("/properties/");
            location.push_str(segment);
            name = segment.to_string();
        }
    }
    location.push_str("/type");
    (body, location, name)
}

/// Checks a 400 `invalid_input` whose `errors[]` has an entry at `location` naming `field`.
fn check_invalid_input(response: &TestResponse, location: &str, field: &str) -> Result<(), String> {
    response.check_error(400, "unkey/application/invalid_input", "Bad Request")?;
    let errors = response.body["error"]["errors"]
        .as_array()
        .ok_or_else(|| format!("no errors[]: {}", response.body))?;
    let named = errors.iter().any(|e| {
        e["location"] == location && format!("{} {}", e["message"], e["fix"]).contains(field)
    });
    if named {
        Ok(())
    } else {
        Err(format!(
            "no errors[] entry at {location} naming '{field}': {}",
            response.body
        ))
    }
}

#[tokio::test]
async fn every_authenticated_route_refuses_no_key_no_permission_and_malformed_bodies() {
    let app = spawn_app().await;
    let fixture = fixture(&app).await;
    let rows = rows(&fixture);

    // The table covers exactly what the server documents.
    let documented = documented_operations(&app).await;
    for (operation, authenticated) in &documented {
        assert_eq!(
            *authenticated,
            !PUBLIC.contains(&operation.as_str()),
            "{operation}: its security in /openapi.json disagrees with PUBLIC"
        );
    }
    let documented: BTreeSet<&str> = documented
        .iter()
        .map(|(op, _)| op.as_str())
        .filter(|op| !PUBLIC.contains(op))
        .collect();
    let swept: BTreeSet<&str> = rows.iter().map(|r| r.operation).collect();
    assert_eq!(swept.len(), rows.len(), "an operation has two rows");
    let unswept: Vec<_> = documented.difference(&swept).collect();
    let undocumented: Vec<_> = swept.difference(&documented).collect();
    assert!(
        unswept.is_empty() && undocumented.is_empty(),
        "documented without a sweep row: {unswept:?}; swept but not documented: {undocumented:?}"
    );

    let no_permission = app.root_key_without_permissions().await;
    let request = |row: &Row, key: Option<&str>, body: &Value| {
        let (method, path) = row.operation.split_once(' ').unwrap();
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = app
            .client
            .request(method, format!("{}{path}", app.base_url))
            .json(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request
    };
    // Every mismatch is collected, so that one run reports them all.
    let mut failures: Vec<String> = Vec::new();
    let mut record = |operation: &str, case: &str, result: Result<(), String>| {
        if let Err(why) = result {
            failures.push(format!("{operation} [{case}]: {why}"));
        }
    };

    // a. No Authorization header: 400 `authentication:missing`, before anything else.
    for row in &rows {
        let response = app.send(request(row, None, &row.body)).await;
        let result = response
            .check_error(400, "unkey/authentication/missing", "Bad Request")
            .and_then(|()| {
                if response.body["error"]["errors"][0]["location"] == "security" {
                    Ok(())
                } else {
                    Err(format!("errors[0] is not at 'security': {}", response.body))
                }
            });
        record(row.operation, "no key", result);
    }

    // b. A root key that holds no permission, with a valid body.
    for row in &rows {
        let response = app
            .send(request(row, Some(&no_permission), &row.body))
            .await;
        let result = match &row.no_permission {
            NoPermission::Forbidden => response
                .check_error(
                    403,
                    "unkey/authorization/insufficient_permissions",
                    "Insufficient Permissions",
                )
                .and_then(|()| {
                    let detail = response.detail();
                    if detail.starts_with("Missing permission: '")
                        || detail.starts_with("Missing one of these permissions: '")
                    {
                        Ok(())
                    } else {
                        Err(format!("detail names no permission: {detail}"))
                    }
                }),
            NoPermission::Hidden { doc_path, absent } => {
                let truly_absent = app.send(request(row, Some(&app.root_key), absent)).await;
                response
                    .check_error(404, doc_path, "Not Found")
                    .and_then(|()| {
                        if response.body["error"] == truly_absent.body["error"] {
                            Ok(())
                        } else {
                            Err(format!(
                                "differs from the answer for a resource that does not exist, {}: {}",
                                truly_absent.body, response.body
                            ))
                        }
                    })
            }
        };
        record(row.operation, "no permission", result);
    }

    // c. Malformed bodies with the all-powerful root key: 400 `invalid_input` naming the field.
    for row in &rows {
        let (body, location, field) = with_wrong_type(&row.body, row.retype);
        let response = app.send(request(row, Some(&app.root_key), &body)).await;
        record(
            row.operation,
            "wrong type",
            check_invalid_input(&response, &location, &field),
        );
        let (body, location) = with_unknown_field(&row.body);
        let response = app.send(request(row, Some(&app.root_key), &body)).await;
        record(
            row.operation,
            "unknown field",
            check_invalid_input(&response, location, "unexpectedField"),
        );
    }

    assert!(
        failures.is_empty(),
        "{} of {} checks failed:\n{}",
        failures.len(),
        rows.len() * 4,
        failures.join("\n")
    );
}
