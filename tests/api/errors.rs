//! The error contract: every malformed request gets the envelope, never a 500, and every error
//! `type` URL is a page this server serves.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn malformed_json_is_a_400_invalid_input() {
    let app = spawn_app().await;
    for body in ["{", "", "not json", "{\"name\": }", "[1,2"] {
        let request = app
            .client
            .post(format!("{}/v2/apis.createApi", app.base_url))
            .bearer_auth(&app.root_key)
            .header("content-type", "application/json")
            .body(body);
        let response = app.send(request).await;
        response.assert_error(400, "unkey/application/invalid_input", "Bad Request");
        assert_eq!(
            response.body["error"]["errors"][0]["location"], "body",
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_by_content_type_is_rejected() {
    let app = spawn_app().await;
    let request = app
        .client
        .post(format!("{}/v2/apis.createApi", app.base_url))
        .bearer_auth(&app.root_key)
        .header("content-type", "text/plain")
        .body(r#"{"name":"payments"}"#);
    let response = app.send(request).await;
    response.assert_error(400, "unkey/application/invalid_input", "Bad Request");
    assert_eq!(
        response.body["error"]["errors"][0]["location"],
        "header.Content-Type"
    );
}

#[tokio::test]
async fn unknown_fields_wrong_types_and_bounds_name_the_field() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"name": "payments", "extra": true}),
            "/additionalProperties",
            "extra",
        ),
        (json!({"name": 42}), "/properties/name/type", "name"),
        (json!({"name": "ab"}), "/properties/name/minLength", "name"),
        (
            json!({"name": "x".repeat(257)}),
            "/properties/name/maxLength",
            "name",
        ),
        (json!({}), "/required", "name"),
        (json!([]), "/type", "body"),
        (json!(null), "/type", "body"),
    ];
    for (body, location, field) in cases {
        let response = app.post("/v2/apis.createApi", body.clone()).await;
        response.assert_error(400, "unkey/application/invalid_input", "Bad Request");
        let first = &response.body["error"]["errors"][0];
        assert_eq!(first["location"], location, "{body}");
        let text = format!("{} {}", first["message"], first["fix"]);
        assert!(text.contains(field), "{body}: {text}");
    }
    let response = app
        .post("/v2/apis.getApi", json!({"apiId": "api_with-dash"}))
        .await;
    response.assert_error(400, "unkey/application/invalid_input", "Bad Request");
    assert_eq!(
        response.body["error"]["errors"][0]["location"],
        "/properties/apiId/pattern"
    );
    let response = app
        .post("/v2/apis.listKeys", json!({"apiId": "api_x", "limit": 101}))
        .await;
    assert_eq!(
        response.body["error"]["errors"][0]["location"],
        "/properties/limit/maximum"
    );
    let response = app
        .post("/v2/apis.listKeys", json!({"apiId": "api_x", "limit": 0}))
        .await;
    assert_eq!(
        response.body["error"]["errors"][0]["location"],
        "/properties/limit/minimum"
    );
}

#[tokio::test]
async fn an_oversized_body_is_a_413() {
    let app = spawn_app().await;
    let body = format!(r#"{{"name":"{}"}}"#, "x".repeat(11 * 1024 * 1024));
    let request = app
        .client
        .post(format!("{}/v2/apis.createApi", app.base_url))
        .bearer_auth(&app.root_key)
        .header("content-type", "application/json")
        .body(body);
    let response = app.send(request).await;
    response.assert_error(
        413,
        "user/bad_request/request_body_too_large",
        "Request Entity Too Large",
    );
    assert_eq!(
        response.detail(),
        "The request body exceeds the maximum allowed size of 10485760 bytes."
    );
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_get_the_envelope() {
    let app = spawn_app().await;
    let response = app
        .send(
            app.client
                .post(format!("{}/v2/apis.nope", app.base_url))
                .json(&json!({})),
        )
        .await;
    response.assert_error(404, "user/not_found/route_not_found", "Not Found");
    let response = app
        .send(
            app.client
                .get(format!("{}/v2/apis.createApi", app.base_url)),
        )
        .await;
    response.assert_error(
        405,
        "user/method_not_allowed/method_not_allowed",
        "Method Not Allowed",
    );
    let response = app
        .send(app.client.post(format!("{}/v2/liveness", app.base_url)))
        .await;
    assert_eq!(response.status, 405);
}

#[tokio::test]
async fn error_bodies_are_problem_json_only_when_the_client_accepts_it() {
    let app = spawn_app().await;
    let request = |accept: &'static str| {
        app.client
            .post(format!("{}/v2/apis.getApi", app.base_url))
            .bearer_auth(&app.root_key)
            .header("accept", accept)
            .json(&json!({"apiId": "api_missing1"}))
    };
    let plain = app.send(request("application/json")).await;
    assert_eq!(plain.status, 404);
    assert_eq!(plain.headers["content-type"], "application/json");
    let problem = app.send(request("application/problem+json")).await;
    assert_eq!(problem.headers["content-type"], "application/problem+json");
}

#[tokio::test]
async fn every_error_code_has_a_documentation_page_at_its_type_url() {
    let app = spawn_app().await;
    for code in keyward::http::error::ErrorCode::ALL {
        let url = format!("{}/docs/errors/{}", app.base_url, code.doc_path());
        let response = app.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let html = response.text().await.unwrap();
        assert!(html.contains(code.urn()), "{url}");
        assert!(html.contains("How to fix it"), "{url}");
        assert!(html.contains("Related errors"), "{url}");
    }
    let missing = app
        .client
        .get(format!("{}/docs/errors/unkey/data/nope", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn the_key_disabled_page_tells_an_operator_how_to_recover_with_the_cli() {
    let app = spawn_app().await;
    let html = app
        .client
        .get(format!(
            "{}/docs/errors/unkey/authorization/key_disabled",
            app.base_url
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for command in [
        "keyward root-key list",
        "keyward root-key enable",
        "keyward root-key create",
    ] {
        assert!(html.contains(command), "page lacks {command}");
    }
    // The example envelope is the one the seed's page shows, word for word.
    for shown in [
        "&quot;title&quot;: &quot;Forbidden&quot;",
        "&quot;detail&quot;: &quot;The API key used for authentication has been disabled&quot;",
        "&quot;status&quot;: 403",
    ] {
        assert!(html.contains(shown), "page lacks {shown}: {html}");
    }
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_served_operations() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app
        .client
        .get(format!("{}/openapi.json", app.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["servers"][0]["url"], app.base_url.as_str());
    let documented: std::collections::BTreeSet<String> =
        doc["paths"].as_object().unwrap().keys().cloned().collect();
    let operations: std::collections::BTreeSet<String> = keyward::http::routes::all()
        .into_iter()
        .map(|(op, _)| op.path.to_string())
        .collect();
    assert_eq!(documented, operations);
    for (op, _) in keyward::http::routes::all() {
        let method = match op.method {
            keyward::http::routes::Method::Get => reqwest::Method::GET,
            keyward::http::routes::Method::Post => reqwest::Method::POST,
        };
        // Every documented operation is routed: an empty body is a 400 or a 200, never a 404/405.
        let response = app
            .client
            .request(method, format!("{}{}", app.base_url, op.path))
            .bearer_auth(&app.root_key)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert!(
            matches!(response.status().as_u16(), 200 | 400),
            "{} answered {}",
            op.path,
            response.status()
        );
        let documented = &doc["paths"][op.path];
        assert!(documented.get("post").is_some() || documented.get("get").is_some());
    }
    assert_eq!(
        doc["paths"]["/v2/apis.createApi"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["properties"]["name"]["minLength"],
        3
    );
}

#[tokio::test]
async fn liveness_needs_no_key() {
    let app = spawn_app().await;
    let response = app
        .send(app.client.get(format!("{}/v2/liveness", app.base_url)))
        .await;
    response.assert_ok("/v2/liveness");
}

#[tokio::test]
async fn routes_whose_errors_the_spec_declares_as_problem_json_always_send_it() {
    let app = spawn_app().await;
    let request = app
        .client
        .post(format!("{}/v2/identities.deleteIdentity", app.base_url))
        .bearer_auth(&app.root_key)
        .header("accept", "application/json")
        .json(&json!({"identity": "nobody"}));
    let response = app.send(request).await;
    response.assert_error(404, "unkey/data/identity_not_found", "Not Found");
    assert_eq!(response.headers["content-type"], "application/problem+json");
}

/// No route panics today, but the context layer must still turn a panic into the 500 envelope
/// (with the request's id, in the body and the header) instead of dropping the connection, and
/// the server must keep serving. A router with a panicking route, behind the server's own layer.
#[tokio::test]
async fn a_panicking_handler_is_answered_with_the_500_envelope() {
    use http_body_util::BodyExt;
    use tower_service::Service;

    let app = spawn_app().await;
    let mut router = axum::Router::new()
        .route(
            "/v2/boom",
            axum::routing::get(|| async {
                if std::hint::black_box(true) {
                    panic!("boom");
                }
                "not reached"
            }),
        )
        .layer(keyward::http::context::RequestContextLayer::new(
            app.state.clone(),
        ));
    for _ in 0..2 {
        let request = axum::http::Request::get("/v2/boom")
            .body(axum::body::Body::empty())
            .expect("a request");
        let response = router.call(request).await.expect("infallible");
        assert_eq!(response.status(), 500);
        let header_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .expect("x-request-id");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(body["meta"]["requestId"], json!(header_id), "{body}");
        assert_eq!(body["error"]["status"], json!(500), "{body}");
        assert!(
            body["error"]["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("/unkey/application/unexpected_error")),
            "{body}"
        );
    }
    // The server itself still answers.
    let live = app
        .send(app.client.get(format!("{}/v2/liveness", app.base_url)))
        .await;
    assert_eq!(live.status, 200);
}
