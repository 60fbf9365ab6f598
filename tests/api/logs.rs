//! The operator's log, read off a real `keyward serve`'s stderr: `--log-format json` lines, one
//! access line per request with its fields, no colour codes in a log that is not a terminal, the
//! slow-request warning, and never a key, an `Authorization` header or a body.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::send;
use crate::served::{Raw, ServeCommand, Served};

/// Every line of the server's stderr, each parsed as JSON (a line that is not JSON fails).
fn json_lines(served: &Served) -> Vec<Value> {
    served
        .stderr_text()
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}"))
        })
        .collect()
}

/// The access lines of one request.
fn access_lines<'a>(lines: &'a [Value], request_id: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["target"] == "keyward::access" && l["request_id"] == request_id)
        .collect()
}

fn request_id(response: &crate::helpers::TestResponse) -> String {
    response.body["meta"]["requestId"]
        .as_str()
        .expect("requestId")
        .to_string()
}

#[tokio::test]
async fn json_logs_carry_one_access_line_per_request_and_never_a_key_or_a_body() {
    let served = ServeCommand::new()
        .global(&["--log-format", "json"])
        .start()
        .await;
    let client = reqwest::Client::new();
    let post = |path: &str, key: &str, body: Value| {
        client
            .post(format!("{}{path}", served.base_url))
            .bearer_auth(key)
            .json(&body)
    };
    // A body value that must stay out of the log.
    let api_name = "quarterly-invoices-3f9a";
    let created = send(post(
        "/v2/apis.createApi",
        &served.root_key,
        json!({"name": api_name}),
    ))
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let api_id = created.body["data"]["apiId"].as_str().unwrap().to_string();
    let key = send(post(
        "/v2/keys.createKey",
        &served.root_key,
        json!({"apiId": api_id}),
    ))
    .await;
    assert_eq!(key.status, 200, "{}", key.body);
    let plaintext = key.body["data"]["key"].as_str().unwrap().to_string();
    let verified = send(post(
        "/v2/keys.verifyKey",
        &served.root_key,
        json!({"key": plaintext}),
    ))
    .await;
    assert_eq!(verified.body["data"]["valid"], true, "{}", verified.body);
    // Refused before anyone is known: a root key that does not exist.
    let stranger = "unkey_3ZzNotARealRootKeyButShapedLikeOne";
    let refused = send(post("/v2/apis.getApi", stranger, json!({"apiId": api_id}))).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let unrouted = send(client.get(format!("{}/v2/no.suchRoute", served.base_url))).await;
    assert_eq!(unrouted.status, 404, "{}", unrouted.body);

    let lines = json_lines(&served);
    let expected = [
        (&created, "/v2/apis.createApi", 200, true),
        (&key, "/v2/keys.createKey", 200, true),
        (&verified, "/v2/keys.verifyKey", 200, true),
        (&refused, "/v2/apis.getApi", 401, false),
        (&unrouted, "(no route)", 404, false),
    ];
    for (response, route, status, authenticated) in expected {
        let id = request_id(response);
        let found = access_lines(&lines, &id);
        assert_eq!(found.len(), 1, "one access line for {route}: {found:?}");
        let line = found[0];
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["route"], route, "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
        let latency = line["latency_ms"].as_f64().expect("latency_ms is a number");
        assert!((0.0..10_000.0).contains(&latency), "{line}");
        if authenticated {
            assert_eq!(line["workspace_id"], served.workspace_id.as_str(), "{line}");
            assert_eq!(line["method"], "POST", "{line}");
        } else {
            assert!(line.get("workspace_id").is_none(), "{line}");
        }
    }

    let text = served.stderr_text();
    for secret in [
        served.root_key.as_str(),
        plaintext.as_str(),
        stranger,
        api_name,
        "Bearer",
    ] {
        assert!(
            !text.to_lowercase().contains(&secret.to_lowercase()),
            "the log holds {secret:?}:\n{text}"
        );
    }
}

#[tokio::test]
async fn a_text_log_that_is_not_a_terminal_has_no_colour_codes_and_warns_of_slow_requests() {
    let threshold_ms = 150;
    let served = ServeCommand::new()
        .serve(&["--slow-request-threshold", &format!("{threshold_ms}ms")])
        .start()
        .await;
    // A fast request, then one whose body the client holds back for twice the threshold: the
    // server's clock runs from the request's headers, so it is slow by construction.
    let fast = send(reqwest::Client::new().get(format!("{}/v2/liveness", served.base_url))).await;
    let fast_id = request_id(&fast);
    let body = br#"{"name":"held-back"}"#;
    let mut raw = Raw::connect(served.addr).await;
    raw.send(
        format!(
            "POST /v2/apis.createApi HTTP/1.1\r\nHost: keyward\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            served.root_key,
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2 * threshold_ms)).await;
    raw.send(body).await.unwrap();
    let slow = raw.response(Duration::from_secs(10)).await.unwrap();
    assert_eq!(slow.status, 200, "{}", slow.body);
    let slow_id = slow.header("x-request-id").unwrap().to_string();

    let text = served.stderr_text();
    assert!(!text.contains('\u{1b}'), "escape codes in a file:\n{text}");
    let lines_of = |id: &str, target: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains(target) && l.contains(id))
            .map(str::to_string)
            .collect()
    };
    // The slow one: its access line, and one warning naming the threshold.
    let warned = lines_of(&slow_id, "keyward::slow_request");
    assert_eq!(warned.len(), 1, "one slow-request warning: {text}");
    assert!(warned[0].contains("WARN"), "{}", warned[0]);
    assert!(
        warned[0].contains(&format!("threshold_ms={threshold_ms}")),
        "{}",
        warned[0]
    );
    assert!(
        warned[0].contains("route=\"/v2/apis.createApi\""),
        "{}",
        warned[0]
    );
    assert_eq!(lines_of(&slow_id, "keyward::access").len(), 1, "{text}");
    // The fast one is warned of exactly when its own access line says it took too long.
    let access = lines_of(&fast_id, "keyward::access");
    assert_eq!(access.len(), 1, "{text}");
    let latency: f64 = access[0]
        .split_whitespace()
        .find_map(|w| w.strip_prefix("latency_ms="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no latency_ms in {}", access[0]));
    let fast_warned = !lines_of(&fast_id, "keyward::slow_request").is_empty();
    assert_eq!(fast_warned, latency > threshold_ms as f64, "{text}");
    assert!(
        !text.contains(&served.root_key),
        "the log holds the root key"
    );
}
