//! The health checks: `GET /ready` answers 200 while the node's database answers and 503 when it
//! does not; Redis's state is reported in cluster mode but never makes a node unready.

use std::time::{Duration, Instant};

use crate::helpers::{eventually, spawn_app, spawn_cluster_app, TestApp, TestResponse};

async fn ready(app: &TestApp) -> TestResponse {
    app.send(app.client.get(format!("{}/ready", app.base_url)))
        .await
}

#[tokio::test]
async fn a_node_whose_database_answers_is_ready_and_needs_no_key() {
    let app = spawn_app().await;
    let r = ready(&app).await;
    r.assert_ok("/ready");
    assert_eq!(r.body["data"]["status"], "ready");
    assert_eq!(r.body["data"]["database"], "up");
    assert!(
        r.body["data"].get("redis").is_none(),
        "no Redis outside cluster mode"
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_reported_but_leaves_the_node_ready() {
    let app = spawn_cluster_app("redis://127.0.0.1:1").await;
    let r = ready(&app).await;
    r.assert_ok("/ready");
    assert_eq!(r.body["data"]["redis"], "down");
    assert_eq!(r.body["data"]["database"], "up");
}

#[tokio::test]
async fn a_reachable_redis_is_reported_up() {
    let Ok(redis) = std::env::var("KEYWARD_TEST_REDIS") else {
        eprintln!("KEYWARD_TEST_REDIS is not set: test skipped");
        return;
    };
    let app = spawn_cluster_app(&redis).await;
    let r = ready(&app).await;
    r.assert_ok("/ready");
    assert_eq!(r.body["data"]["redis"], "up");
}

#[tokio::test]
async fn a_node_whose_database_is_gone_is_not_ready_and_says_so_quickly() {
    // Only PostgreSQL's database can be taken away from under a running node here.
    let Ok(admin_url) = std::env::var("KEYWARD_TEST_POSTGRES") else {
        eprintln!("KEYWARD_TEST_POSTGRES is not set: test skipped");
        return;
    };
    let app = spawn_app().await;
    ready(&app).await.assert_ok("/ready");
    let name = app
        .database_url
        .rsplit('/')
        .next()
        .expect("database name")
        .to_string();
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect as admin");
    sqlx::Executor::execute(
        &mut admin,
        format!("DROP DATABASE \"{name}\" WITH (FORCE)").as_str(),
    )
    .await
    .expect("drop the node's database");
    let errors_before = db_errors(&app).await;
    let app = &app;
    eventually(
        Duration::from_secs(5),
        "the node reports itself unready",
        || async move {
            let started = Instant::now();
            let r = ready(app).await;
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "a readiness check took {:?}",
                started.elapsed()
            );
            if r.status == 503 {
                r.assert_error(
                    503,
                    "unkey/application/service_unavailable",
                    "Service Unavailable",
                );
                Ok(())
            } else {
                Err(r.body.to_string())
            }
        },
    )
    .await;
    // A route that needs the database answers 503, and the failure is counted by kind.
    let read = app
        .post(
            "/v2/apis.getApi",
            serde_json::json!({"apiId": "api_1234567890"}),
        )
        .await;
    assert_eq!(read.status, 503, "{:?}", read.body);
    assert!(db_errors(app).await > errors_before);
}

#[tokio::test]
async fn metrics_show_the_cache_the_event_queue_and_the_database_pools() {
    let app = spawn_app().await;
    let api = app.create_api("metrics").await;
    let created = app
        .post("/v2/keys.createKey", serde_json::json!({"apiId": api}))
        .await;
    let key = created.body["data"]["key"].as_str().unwrap().to_string();
    app.verify(serde_json::json!({"key": key})).await;
    app.post(
        "/v2/ratelimit.limit",
        serde_json::json!({"namespace": "metrics", "identifier": "a", "limit": 1, "duration": 60000}),
    )
    .await;
    let text = app
        .client
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Every line is a comment or `name{labels} value`, and the value parses.
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix} missing from /metrics:\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    // The recorder is shared by every test of the process: only presence and sanity are certain.
    assert!(value("keyward_key_cache_entries ") >= 0.0);
    assert!(value("keyward_events_dropped_total ") >= 0.0);
    assert!(value("keyward_events_queued ") >= 0.0);
    // Once the writer has had its round, nothing of this node's waits in its queue.
    app.events_written().await;
    assert_eq!(app.state.keys.events.queued(), 0);
    assert!(value("keyward_db_connections{pool=\"writer\",state=\"idle\"}") >= 0.0);
    assert!(value("keyward_db_connections{pool=\"reader\",state=\"busy\"}") >= 0.0);
    // Per request: by route and status, latency buckets, verification codes, limit decisions
    // and cache lookups.
    assert!(
        value("keyward_http_requests_total{route=\"/v2/keys.verifyKey\",status=\"200\"}") >= 1.0
    );
    assert!(
        value("keyward_http_request_duration_seconds_bucket{route=\"/v2/keys.verifyKey\",le=\"+Inf\"}")
            >= 1.0
    );
    assert!(value("keyward_verifications_total{code=\"VALID\"}") >= 1.0);
    assert!(value("keyward_ratelimit_decisions_total{outcome=\"passed\"}") >= 1.0);
    assert!(
        value("keyward_key_cache_lookups_total{result=\"hit\"}")
            + value("keyward_key_cache_lookups_total{result=\"miss\"}")
            >= 1.0
    );
}

#[tokio::test]
async fn metrics_listen_moves_metrics_off_the_main_listener() {
    use crate::served::{Raw, ServeCommand};
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let metrics_addr = format!("127.0.0.1:{port}");
    let served = ServeCommand::new()
        .serve(&["--metrics-listen", &metrics_addr])
        .start()
        .await;
    let mut main = Raw::connect(served.addr).await;
    assert_eq!(main.get("/metrics").await.status, 404);
    assert_eq!(main.get("/v2/liveness").await.status, 200);
    let mut private = Raw::connect(metrics_addr.parse().unwrap()).await;
    let scraped = private.get("/metrics").await;
    assert_eq!(scraped.status, 200);
    assert!(
        scraped.body.contains("keyward_http_requests_total"),
        "{}",
        scraped.body
    );
}

/// The sum of `keyward_db_errors_total` over its kinds, as `/metrics` shows it now.
async fn db_errors(app: &TestApp) -> f64 {
    let text = app
        .client
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("keyward_db_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
