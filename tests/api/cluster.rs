//! Cluster mode (`serve --redis URL`): two nodes over one database share rate-limit counters
//! through Redis and admit exactly the limit together; a node whose Redis is unreachable keeps
//! answering from its own counters without stalling, and goes back to Redis when it returns.
//!
//! These tests need Redis: `KEYWARD_TEST_REDIS` names the shared one (scripts/test sets it after
//! starting Redis), and the failure test starts a private `redis-server` on a free port (it never
//! stops the shared one). Without `KEYWARD_TEST_REDIS` they are skipped with a message.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::faults::PrivateRedis;
use crate::helpers::{eventually, spawn_cluster_app, TestApp};

fn shared_redis() -> Option<String> {
    match std::env::var("KEYWARD_TEST_REDIS") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("KEYWARD_TEST_REDIS is not set: cluster-mode test skipped");
            None
        }
    }
}

/// A name no earlier run has used, since the shared Redis keeps its counters between runs.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        keyward::ids::new_id(keyward::ids::Prefix::Request)
    )
}

fn passed(body: &Value) -> bool {
    body["data"]["success"] == true || body["data"]["passed"] == true
}

/// Sends every body to `path` at once, alternating between the nodes; returns the response
/// bodies (each a 200).
async fn race(nodes: [&TestApp; 2], path: &str, bodies: Vec<Value>) -> Vec<Value> {
    let mut calls = tokio::task::JoinSet::new();
    for (i, body) in bodies.into_iter().enumerate() {
        let node = nodes[i % 2];
        let request = node
            .client
            .post(format!("{}{path}", node.base_url))
            .bearer_auth(&node.root_key)
            .json(&body);
        calls.spawn(async move {
            let response = request.send().await.expect("send");
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.expect("JSON body")
        });
    }
    let mut out = Vec::new();
    while let Some(body) = calls.join_next().await {
        out.push(body.expect("call"));
    }
    out
}

#[tokio::test]
async fn two_nodes_sharing_redis_admit_exactly_the_limit() {
    let Some(redis) = shared_redis() else { return };
    let a = spawn_cluster_app(&redis).await;
    let b = a.spawn_peer(Some(&redis)).await;
    let identifier = unique("user");
    let body =
        json!({"namespace": "api", "identifier": identifier, "limit": 50, "duration": 600_000});
    let responses = race([&a, &b], "/v2/ratelimit.limit", vec![body; 100]).await;
    let admitted = responses.iter().filter(|r| passed(r)).count();
    assert_eq!(admitted, 50, "two nodes together admit exactly the limit");
    for node in [&a, &b] {
        let counters = node.workers.redis.as_ref().expect("cluster mode");
        assert_eq!(counters.fallbacks(), 0, "every decision was made in Redis");
    }
}

#[tokio::test]
async fn a_multi_limit_batch_is_exact_and_all_or_nothing_across_nodes() {
    let Some(redis) = shared_redis() else { return };
    let a = spawn_cluster_app(&redis).await;
    let b = a.spawn_peer(Some(&redis)).await;
    let identifier = unique("user");
    let batch = json!([
        {"namespace": "tight", "identifier": identifier, "limit": 30, "duration": 600_000},
        {"namespace": "loose", "identifier": identifier, "limit": 1000, "duration": 600_000}
    ]);
    let responses = race([&a, &b], "/v2/ratelimit.multiLimit", vec![batch; 60]).await;
    assert_eq!(responses.iter().filter(|r| passed(r)).count(), 30);
    // Refused batches counted nothing: the loose limit saw exactly the 30 admitted ones.
    let peek = a
        .post(
            "/v2/ratelimit.limit",
            json!({"namespace": "loose", "identifier": identifier, "limit": 1000, "duration": 600_000, "cost": 0}),
        )
        .await;
    peek.assert_ok("/v2/ratelimit.limit");
    assert_eq!(peek.body["data"]["remaining"], 970);
}

#[tokio::test]
async fn key_rate_limits_in_verification_are_shared_by_the_nodes() {
    let Some(redis) = shared_redis() else { return };
    let a = spawn_cluster_app(&redis).await;
    let b = a.spawn_peer(Some(&redis)).await;
    let api = a.create_api("payments").await;
    let created = a
        .post(
            "/v2/keys.createKey",
            json!({"apiId": api, "ratelimits": [{"name": "requests", "limit": 20, "duration": 600_000, "autoApply": true}]}),
        )
        .await;
    created.assert_ok("/v2/keys.createKey");
    let key = created.body["data"]["key"]
        .as_str()
        .expect("key")
        .to_string();
    let responses = race(
        [&a, &b],
        "/v2/keys.verifyKey",
        vec![json!({"key": key}); 40],
    )
    .await;
    let valid = responses
        .iter()
        .filter(|r| r["data"]["valid"] == true)
        .count();
    assert_eq!(valid, 20);
    assert!(responses
        .iter()
        .filter(|r| r["data"]["valid"] != true)
        .all(|r| r["data"]["code"] == "RATE_LIMITED"));
}

#[tokio::test]
async fn an_unreachable_redis_falls_back_to_local_counters_without_stalling() {
    if shared_redis().is_none() {
        return;
    }
    // Nothing listens on port 1: every connection attempt is refused at once.
    let app = spawn_cluster_app("redis://127.0.0.1:1").await;
    let identifier = unique("user");
    let mut admitted = 0;
    for _ in 0..10 {
        let started = Instant::now();
        let r = app
            .post(
                "/v2/ratelimit.limit",
                json!({"namespace": "api", "identifier": identifier, "limit": 5, "duration": 600_000}),
            )
            .await;
        r.assert_ok("/v2/ratelimit.limit");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "a request waited {:?} on an unreachable Redis",
            started.elapsed()
        );
        admitted += usize::from(passed(&r.body));
    }
    assert_eq!(
        admitted, 5,
        "the node's own counters still enforce the limit"
    );
    let counters = app.workers.redis.as_ref().expect("cluster mode");
    assert!(counters.fallbacks() >= 10);
    assert!(!counters.using_redis());
    // The same count, for Prometheus (the process's total: other tests' nodes add to it).
    let r = app
        .client
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.expect("body");
    let total: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("keyward_redis_fallbacks_total "))
        .unwrap_or_else(|| panic!("no fallback counter in:\n{text}"))
        .trim()
        .parse()
        .expect("a number");
    assert!(total >= 10.0, "{total}");
    assert!(text.contains("# TYPE keyward_redis_fallbacks_total counter"));
}

#[tokio::test]
async fn losing_redis_falls_back_and_its_return_restores_cluster_mode() {
    if shared_redis().is_none() {
        return;
    }
    let mut redis = PrivateRedis::start().await;
    let app = spawn_cluster_app(&redis.url()).await;
    let counters = app.workers.redis.clone().expect("cluster mode");
    let identifier = unique("user");
    let call = || {
        app.post(
            "/v2/ratelimit.limit",
            json!({"namespace": "api", "identifier": identifier, "limit": 1000, "duration": 600_000}),
        )
    };
    assert!(passed(&call().await.body));
    assert_eq!(counters.fallbacks(), 0);

    redis.stop();
    for _ in 0..5 {
        let started = Instant::now();
        let r = call().await;
        r.assert_ok("/v2/ratelimit.limit");
        assert!(passed(&r.body));
        assert!(started.elapsed() < Duration::from_millis(500));
    }
    assert!(
        counters.fallbacks() >= 5,
        "decided locally while Redis was down"
    );
    assert!(!counters.using_redis());

    let _back = PrivateRedis::start_on(redis.port).await;
    let counters = &counters;
    eventually(
        Duration::from_secs(5),
        "the node went back to Redis by itself",
        || async move {
            let r = call().await;
            if counters.using_redis() && passed(&r.body) {
                Ok(())
            } else {
                Err(format!("still local ({} fallbacks)", counters.fallbacks()))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn the_redis_window_answers_as_the_local_one_does() {
    use keyward::cluster::counters::RedisCounters;
    use keyward::domain::ratelimit::{LimitCheck, LocalCounters};
    let Some(redis) = shared_redis() else { return };
    let redis = RedisCounters::new(std::sync::Arc::new(
        keyward::cluster::link::RedisLink::new(
            &redis,
            keyward::cluster::link::DEFAULT_REDIS_TIMEOUT,
        )
        .expect("Redis URL"),
    ));
    let local = LocalCounters::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_millis() as i64;
    let (a, b) = (unique("a"), unique("b"));
    let check = |key: &str, limit: i64, cost: i64| LimitCheck {
        key: key.to_string(),
        limit,
        duration_ms: 86_400_000,
        cost,
    };
    // Single checks, costs, a peek, a limit of zero, a batch that fails (and counts nothing), the
    // same counter twice in one batch, and a batch that passes.
    let script: Vec<Vec<LimitCheck>> = vec![
        vec![check(&a, 5, 1)],
        vec![check(&a, 5, 3)],
        vec![check(&a, 5, 0)],
        vec![check(&a, 5, 2)],
        vec![check(&a, 0, 1)],
        vec![check(&b, 10, 4), check(&a, 5, 1)],
        vec![check(&b, 10, 4), check(&b, 10, 4)],
        vec![check(&b, 10, 1), check(&a, 6, 1)],
        vec![check(&b, 10, 0)],
    ];
    for (step, checks) in script.iter().enumerate() {
        let shared = redis.decide(checks).await.expect("Redis decides");
        let own = local.decide_now(checks, now);
        let summary = |o: &[keyward::domain::ratelimit::LimitOutcome]| {
            o.iter()
                .map(|o| (o.passed, o.remaining))
                .collect::<Vec<_>>()
        };
        assert_eq!(summary(&shared), summary(&own), "step {step}: {checks:?}");
        for outcome in &shared {
            assert_eq!(outcome.reset % 86_400_000, 0, "reset is a cell boundary");
        }
    }
}

/// The code of a verification with `root`, or the HTTP status when it is not a 200.
async fn verify_code(node: &TestApp, root: &str, key: &str) -> String {
    let r = node
        .post_with_key("/v2/keys.verifyKey", root, json!({"key": key}))
        .await;
    if r.status == 200 {
        r.body["data"]["code"].as_str().unwrap_or("").to_string()
    } else {
        r.status.to_string()
    }
}

/// Polls `probe` every 20 ms until it holds; returns how long that took (at most `within`).
async fn time_until<F, Fut>(within: Duration, what: &str, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < within {
        if probe().await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not within {within:?}");
}

#[tokio::test]
async fn changes_reach_the_other_node_through_redis_within_a_second() {
    let Some(redis) = shared_redis() else { return };
    let a = spawn_cluster_app(&redis).await;
    let b = a.spawn_peer(Some(&redis)).await;
    let api = a.create_api("payments").await;
    let (key_id, key) = crate::keys::create_key(&a, &api, json!({})).await;
    let (root_id, root) = a.root_key_with(&["api.*.verify_key"]).await;
    // B has the key and the root key cached.
    assert_eq!(verify_code(&b, &root, &key).await, "VALID");
    assert_eq!(verify_code(&b, &root, &key).await, "VALID");

    // Announced through Redis (the nodes also poll every 500 ms; see the next test for a proof
    // that the announcement alone suffices).
    let mut took = Vec::new();
    a.post(
        "/v2/keys.updateKey",
        json!({"keyId": key_id, "enabled": false}),
    )
    .await
    .assert_ok("/v2/keys.updateKey");
    took.push(
        time_until(Duration::from_secs(1), "disabled on B", || async {
            verify_code(&b, &root, &key).await == "DISABLED"
        })
        .await,
    );
    a.post(
        "/v2/keys.updateKey",
        json!({"keyId": key_id, "enabled": true}),
    )
    .await
    .assert_ok("/v2/keys.updateKey");
    took.push(
        time_until(Duration::from_secs(1), "enabled again on B", || async {
            verify_code(&b, &root, &key).await == "VALID"
        })
        .await,
    );
    a.post("/v2/keys.deleteKey", json!({"keyId": key_id}))
        .await
        .assert_ok("/v2/keys.deleteKey");
    took.push(
        time_until(Duration::from_secs(1), "deleted on B", || async {
            verify_code(&b, &root, &key).await == "NOT_FOUND"
        })
        .await,
    );
    // A root key deleted from the command line, which tells the nodes through Redis.
    let (_, other) = crate::keys::create_key(&a, &api, json!({})).await;
    assert_eq!(verify_code(&b, &root, &other).await, "VALID");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args([
            "--database",
            &a.database_url,
            "--redis",
            &redis,
            "--log",
            "warn",
        ])
        .args(["root-key", "delete", &root_id])
        .output()
        .expect("run keyward");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    took.push(
        time_until(Duration::from_secs(1), "root key refused on B", || async {
            verify_code(&b, &root, &other).await == "401"
        })
        .await,
    );
    eprintln!("changes reached node B after {took:?}");
}

#[tokio::test]
async fn an_announcement_alone_revokes_a_key_on_a_node_that_cannot_poll() {
    let Some(redis) = shared_redis() else { return };
    let a = spawn_cluster_app(&redis).await;
    // SQLite has no server to cut; PostgreSQL only.
    if !a.database_url.starts_with("postgres") {
        eprintln!("needs PostgreSQL: skipped");
        return;
    }
    let proxy = crate::faults::Proxy::start(crate::faults::address_of(&a.database_url)).await;
    let b = a
        .spawn_peer_at(
            &crate::faults::through(&a.database_url, &proxy),
            Some(&redis),
        )
        .await;
    let api = a.create_api("payments").await;
    let (key_id, key) = crate::keys::create_key(&a, &api, json!({})).await;
    assert_eq!(verify_code(&b, &b.root_key, &key).await, "VALID");
    // The key's creation reaches B as a change too, and drops what B cached of the key if it
    // arrives after that first verification (under a loaded test run it can). Wait out two safety
    // polls and verify again, so that B holds the key when the database goes away.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(verify_code(&b, &b.root_key, &key).await, "VALID");
    // B can no longer read the change feed: only Redis can tell it.
    proxy.cut();
    assert_eq!(verify_code(&b, &b.root_key, &key).await, "VALID", "cached");
    a.post(
        "/v2/keys.updateKey",
        json!({"keyId": key_id, "enabled": false}),
    )
    .await
    .assert_ok("/v2/keys.updateKey");
    // Dropped from B's cache, the key needs the database B cannot reach: refused with 503,
    // never accepted.
    let took = time_until(Duration::from_secs(1), "revoked on B", || async {
        verify_code(&b, &b.root_key, &key).await != "VALID"
    })
    .await;
    eprintln!("the announcement reached node B after {took:?}");
}

#[tokio::test]
async fn the_workspace_limit_is_shared_by_the_nodes() {
    let Some(redis) = shared_redis() else { return };
    let a = spawn_cluster_app(&redis).await;
    let b = a.spawn_peer(Some(&redis)).await;
    let api = a.create_api("shared").await;
    let out = a.cli(&[
        "workspace",
        "limit",
        &a.workspace_id,
        "--requests-per-minute",
        "4",
    ]);
    assert!(out.status.success());
    a.sync_changes().await;
    b.sync_changes().await;
    let mut statuses = Vec::new();
    for node in [&a, &b, &a, &b, &a, &b] {
        let r = node.post("/v2/apis.getApi", json!({"apiId": api})).await;
        statuses.push(r.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
}
