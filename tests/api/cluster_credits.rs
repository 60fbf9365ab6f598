//! Credits in cluster mode (PostgreSQL + Redis): spent in Redis by every node, exactly, moved
//! from the database in blocks; exact through management changes and refills; and, when Redis or
//! the database cannot be reached, refused rather than overspent (docs/cluster.md).
//!
//! These tests need PostgreSQL (`KEYWARD_TEST_POSTGRES`: the ledger of a single SQLite process is
//! its own) and Redis (`KEYWARD_TEST_REDIS`); without them they are skipped with a message.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::faults::{through, Proxy};
use crate::helpers::{eventually, spawn_cluster_app, TestApp, TestResponse};
use crate::keys::{create_key, get_key};

/// The shared Redis, when the tests run on PostgreSQL.
fn cluster_env() -> Option<String> {
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (set("KEYWARD_TEST_POSTGRES"), set("KEYWARD_TEST_REDIS")) {
        (Some(_), Some(redis)) => Some(redis),
        _ => {
            eprintln!("cluster credits need KEYWARD_TEST_POSTGRES and KEYWARD_TEST_REDIS: skipped");
            None
        }
    }
}

fn code(r: &TestResponse) -> &str {
    r.body["data"]["code"].as_str().unwrap_or("")
}

fn outcome(r: &TestResponse) -> (String, Value) {
    (code(r).to_string(), r.body["data"]["credits"].clone())
}

async fn two_nodes(redis: &str) -> (TestApp, TestApp) {
    let a = spawn_cluster_app(redis).await;
    let b = a.spawn_peer(Some(redis)).await;
    (a, b)
}

async fn update_credits(node: &TestApp, key_id: &str, mut body: Value) -> Value {
    body["keyId"] = json!(key_id);
    let r = node.post("/v2/keys.updateCredits", body).await;
    r.assert_ok("/v2/keys.updateCredits");
    r.body["data"]["remaining"].clone()
}

async fn remaining(app: &TestApp, key_id: &str) -> Value {
    get_key(app, key_id).await["credits"]["remaining"].clone()
}

#[tokio::test]
async fn two_nodes_spend_exactly_the_balance() {
    let Some(redis) = cluster_env() else { return };
    let (a, b) = two_nodes(&redis).await;
    let api = a.create_api("payments").await;
    let (key_id, key) = create_key(&a, &api, json!({"credits": {"remaining": 100}})).await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..150 {
        let node = if i % 2 == 0 { &a } else { &b };
        let (url, root, client) = (
            format!("{}/v2/keys.verifyKey", node.base_url),
            node.root_key.clone(),
            node.client.clone(),
        );
        let key = key.clone();
        calls.spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(root)
                .json(&json!({"key": key}))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.expect("json")["data"]["code"]
                .as_str()
                .unwrap_or("")
                .to_string()
        });
    }
    let mut codes = Vec::new();
    while let Some(code) = calls.join_next().await {
        codes.push(code.expect("task"));
    }
    let valid = codes.iter().filter(|c| *c == "VALID").count();
    let exceeded = codes.iter().filter(|c| *c == "USAGE_EXCEEDED").count();
    assert_eq!((valid, exceeded), (100, 50), "{codes:?}");
    assert_eq!(remaining(&a, &key_id).await, 0);
    assert_eq!(remaining(&b, &key_id).await, 0);
    for node in [&a, &b] {
        let link = node.workers.redis.as_ref().expect("cluster mode");
        assert_eq!(link.fallbacks(), 0, "every spend was decided in Redis");
    }
}

#[tokio::test]
async fn balances_larger_than_a_block_are_moved_in_blocks_and_stay_exact() {
    let Some(redis) = cluster_env() else { return };
    let (a, b) = two_nodes(&redis).await;
    let api = a.create_api("payments").await;
    // 2500 credits: three moves of at most 1000 each.
    let (key_id, key) = create_key(&a, &api, json!({"credits": {"remaining": 2500}})).await;
    let mut expected = 2500;
    for i in 0..8 {
        let node = if i % 2 == 0 { &a } else { &b };
        let r = node
            .verify(json!({"key": key, "credits": {"cost": 300}}))
            .await;
        expected -= 300;
        assert_eq!(outcome(&r), ("VALID".into(), json!(expected)), "spend {i}");
        assert_eq!(remaining(node, &key_id).await, expected);
    }
    let r = b
        .verify(json!({"key": key, "credits": {"cost": 300}}))
        .await;
    assert_eq!(outcome(&r), ("USAGE_EXCEEDED".into(), json!(100)));
    let r = a
        .verify(json!({"key": key, "credits": {"cost": 100}}))
        .await;
    assert_eq!(outcome(&r), ("VALID".into(), json!(0)));
    // A verification refused before the credit step still reports the balance.
    let r = b
        .verify(json!({"key": key, "permissions": "nothing.granted"}))
        .await;
    assert_eq!(outcome(&r), ("INSUFFICIENT_PERMISSIONS".into(), json!(0)));
}

#[tokio::test]
async fn management_changes_while_redis_holds_credits_are_exact() {
    let Some(redis) = cluster_env() else { return };
    let (a, b) = two_nodes(&redis).await;
    let api = a.create_api("payments").await;
    let (key_id, key) = create_key(&a, &api, json!({"credits": {"remaining": 100}})).await;
    // The first spend moves the whole balance into Redis; views still show all of it.
    assert_eq!(outcome(&a.verify(json!({"key": key})).await).1, json!(99));
    assert_eq!(remaining(&b, &key_id).await, 99);

    let update = |node, body| update_credits(node, &key_id, body);
    assert_eq!(
        update(&b, json!({"operation": "increment", "value": 5})).await,
        104
    );
    assert_eq!(outcome(&a.verify(json!({"key": key})).await).1, json!(103));
    assert_eq!(update(&a, json!({"operation": "set", "value": 3})).await, 3);
    let mut codes = Vec::new();
    for i in 0..5 {
        let node = if i % 2 == 0 { &b } else { &a };
        codes.push(outcome(&node.verify(json!({"key": key})).await));
    }
    assert_eq!(
        codes,
        vec![
            ("VALID".into(), json!(2)),
            ("VALID".into(), json!(1)),
            ("VALID".into(), json!(0)),
            ("USAGE_EXCEEDED".into(), json!(0)),
            ("USAGE_EXCEEDED".into(), json!(0)),
        ]
    );
    assert_eq!(
        update(&b, json!({"operation": "increment", "value": 2})).await,
        2
    );
    assert_eq!(outcome(&a.verify(json!({"key": key})).await).1, json!(1));
    assert_eq!(
        update(&a, json!({"operation": "decrement", "value": 5})).await,
        0
    );
    assert_eq!(code(&b.verify(json!({"key": key})).await), "USAGE_EXCEEDED");
    // Made unlimited, the key spends nothing any more, on either node.
    a.post(
        "/v2/keys.updateCredits",
        json!({"keyId": key_id, "operation": "set", "value": null}),
    )
    .await
    .assert_ok("/v2/keys.updateCredits");
    let key = &key;
    for node in [&a, &b] {
        eventually(
            Duration::from_secs(2),
            "unlimited everywhere",
            || async move {
                let r = node.verify(json!({"key": key})).await;
                match (code(&r), r.body["data"].get("credits")) {
                    ("VALID", None) => Ok(()),
                    _ => Err(r.body.to_string()),
                }
            },
        )
        .await;
    }
}

#[tokio::test]
async fn a_rerolled_key_carries_over_the_balance_redis_held() {
    let Some(redis) = cluster_env() else { return };
    let (a, b) = two_nodes(&redis).await;
    let api = a.create_api("payments").await;
    let (key_id, key) = create_key(&a, &api, json!({"credits": {"remaining": 10}})).await;
    for _ in 0..4 {
        b.verify(json!({"key": key})).await;
    }
    let r = a
        .post(
            "/v2/keys.rerollKey",
            json!({"keyId": key_id, "expiration": 0}),
        )
        .await;
    r.assert_ok("/v2/keys.rerollKey");
    let new_id = r.body["data"]["keyId"].as_str().unwrap().to_string();
    assert_eq!(remaining(&b, &new_id).await, 6);
}

#[tokio::test]
async fn refills_happen_once_across_nodes() {
    let Some(redis) = cluster_env() else { return };
    let (a, b) = two_nodes(&redis).await;
    let day = 86_400_000;
    a.clock.set_ms((a.now() / day) * day + 10 * 3_600_000);
    let api = a.create_api("payments").await;
    let (key_id, key) = create_key(
        &a,
        &api,
        json!({"credits": {"remaining": 2, "refill": {"interval": "daily", "amount": 3}}}),
    )
    .await;
    a.verify(json!({"key": key})).await;
    b.verify(json!({"key": key})).await;
    assert_eq!(code(&a.verify(json!({"key": key})).await), "USAGE_EXCEEDED");
    // After midnight: refilled to 3 once, whichever node sees the day first.
    a.clock.advance_ms(15 * 3_600_000);
    let mut codes = Vec::new();
    for i in 0..5 {
        let node = if i % 2 == 0 { &b } else { &a };
        codes.push(outcome(&node.verify(json!({"key": key})).await));
    }
    assert_eq!(
        codes,
        vec![
            ("VALID".into(), json!(2)),
            ("VALID".into(), json!(1)),
            ("VALID".into(), json!(0)),
            ("USAGE_EXCEEDED".into(), json!(0)),
            ("USAGE_EXCEEDED".into(), json!(0)),
        ]
    );
    assert_eq!(remaining(&a, &key_id).await, 0);
}

/// A node (the second one; the first is returned to keep it alive) whose database is reached
/// through a proxy the test can cut or freeze.
async fn node_behind_database_proxy(redis: &str) -> (TestApp, TestApp, Proxy) {
    let first = spawn_cluster_app(redis).await;
    let proxy = Proxy::start(crate::faults::address_of(&first.database_url)).await;
    let node = first
        .spawn_peer_at(&through(&first.database_url, &proxy), Some(redis))
        .await;
    (first, node, proxy)
}

/// Management works again (after the database came back), with no restart.
async fn management_recovers(node: &TestApp) {
    eventually(
        Duration::from_secs(10),
        "management works again",
        || async move {
            let r = node
                .post("/v2/apis.createApi", json!({"name": "after-outage"}))
                .await;
            if r.status == 200 {
                Ok(())
            } else {
                Err(r.body.to_string())
            }
        },
    )
    .await;
}

/// A node whose Redis is reached through a proxy the test can cut.
async fn node_behind_redis_proxy(redis: &str) -> (TestApp, Proxy) {
    let proxy = Proxy::start(crate::faults::address_of(redis)).await;
    let app = spawn_cluster_app(&through(redis, &proxy)).await;
    (app, proxy)
}

#[tokio::test]
async fn without_redis_credits_are_spent_in_the_database_and_never_twice() {
    let Some(redis) = cluster_env() else { return };
    let (app, proxy) = node_behind_redis_proxy(&redis).await;
    let api = app.create_api("payments").await;
    let (held_id, held) = create_key(&app, &api, json!({"credits": {"remaining": 10}})).await;
    let (_, fresh) = create_key(&app, &api, json!({"credits": {"remaining": 3}})).await;
    for _ in 0..3 {
        app.verify(json!({"key": held})).await;
    }
    // Redis now holds the first key's 7 credits; its row holds none.
    proxy.cut();
    for _ in 0..3 {
        let started = Instant::now();
        let r = app.verify(json!({"key": held})).await;
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "a verification waited {:?} on an unreachable Redis",
            started.elapsed()
        );
        assert_eq!(
            code(&r),
            "USAGE_EXCEEDED",
            "what Redis holds waits for Redis"
        );
    }
    // A key whose credits are all in its row is spent there, exactly.
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(outcome(&app.verify(json!({"key": fresh})).await));
    }
    assert_eq!(
        codes,
        vec![
            ("VALID".into(), json!(2)),
            ("VALID".into(), json!(1)),
            ("VALID".into(), json!(0)),
            ("USAGE_EXCEEDED".into(), json!(0)),
        ]
    );
    // Changing credits needs Redis's part: refused, with the envelope.
    let r = app
        .post(
            "/v2/keys.updateCredits",
            json!({"keyId": held_id, "operation": "increment", "value": 1}),
        )
        .await;
    r.assert_error(
        503,
        "unkey/application/service_unavailable",
        "Service Unavailable",
    );
    // Back: the held credits are spendable again, and no more than them.
    proxy.restore();
    let app = &app;
    let held = &held;
    eventually(
        Duration::from_secs(5),
        "Redis is used again",
        || async move {
            let r = app.verify(json!({"key": held})).await;
            match outcome(&r) {
                (c, n) if c == "VALID" && n == json!(6) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let mut valid = 1;
    for _ in 0..10 {
        valid += usize::from(code(&app.verify(json!({"key": held})).await) == "VALID");
    }
    assert_eq!(valid, 7, "exactly the 7 credits Redis held");
}

#[tokio::test]
async fn a_key_is_deleted_even_while_redis_is_unreachable() {
    let Some(redis) = cluster_env() else { return };
    let (app, proxy) = node_behind_redis_proxy(&redis).await;
    let api = app.create_api("payments").await;
    let (key_id, key) = create_key(&app, &api, json!({"credits": {"remaining": 10}})).await;
    app.verify(json!({"key": key})).await;
    proxy.cut();
    app.post("/v2/keys.deleteKey", json!({"keyId": key_id}))
        .await
        .assert_ok("/v2/keys.deleteKey");
    assert_eq!(code(&app.verify(json!({"key": key})).await), "NOT_FOUND");
}

#[tokio::test]
async fn while_the_database_is_unreachable_cached_verifications_go_on() {
    let Some(redis) = cluster_env() else { return };
    let (_first, node, proxy) = node_behind_database_proxy(&redis).await;
    let api = node.create_api("payments").await;
    let (_, plain) = create_key(&node, &api, json!({})).await;
    let (_, paid) = create_key(&node, &api, json!({"credits": {"remaining": 5}})).await;
    let (_, unmoved) = create_key(&node, &api, json!({"credits": {"remaining": 5}})).await;
    // Each creation also reaches the node as a change, which drops what the node cached of that
    // key if it arrives after the verification below (under a loaded test run it can). Wait out
    // two safety polls first, so that what is cached next stays cached.
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Cache both keys (and the root key) on the node; the paid key's credits move to Redis.
    node.verify(json!({"key": plain})).await;
    node.verify(json!({"key": paid})).await;
    // Cached too, but refused before its credits: none of them moved to Redis.
    node.verify(json!({"key": unmoved, "permissions": "not.granted"}))
        .await;

    proxy.cut();
    for _ in 0..3 {
        let r = node.verify(json!({"key": plain})).await;
        assert_eq!(code(&r), "VALID");
    }
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(outcome(&node.verify(json!({"key": paid})).await));
    }
    assert_eq!(
        codes,
        vec![
            ("VALID".into(), json!(3)),
            ("VALID".into(), json!(2)),
            ("VALID".into(), json!(1)),
            ("VALID".into(), json!(0)),
        ],
        "credits Redis holds need no database"
    );
    // A spend that needs the database (nothing of this key's balance is in Redis yet): 503.
    let r = node
        .post("/v2/keys.verifyKey", json!({"key": unmoved}))
        .await;
    r.assert_error(
        503,
        "unkey/application/service_unavailable",
        "Service Unavailable",
    );
    // Management needs the database: 503, within a bound.
    let started = Instant::now();
    let r = node
        .post("/v2/apis.createApi", json!({"name": "during-outage"}))
        .await;
    r.assert_error(
        503,
        "unkey/application/service_unavailable",
        "Service Unavailable",
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a management call took {:?} with the database down",
        started.elapsed()
    );
    // Recovery needs no restart.
    proxy.restore();
    management_recovers(&node).await;
    assert_eq!(
        code(&node.verify(json!({"key": paid})).await),
        "USAGE_EXCEEDED"
    );
}

#[tokio::test]
async fn a_database_that_hangs_holds_no_request_past_the_bound() {
    let Some(redis) = cluster_env() else { return };
    let (_first, node, proxy) = node_behind_database_proxy(&redis).await;
    let api = node.create_api("payments").await;
    let (_, key) = create_key(&node, &api, json!({})).await;
    node.verify(json!({"key": key})).await;

    // Packets stop, connections stay open: nothing fails fast any more.
    proxy.freeze();
    let started = Instant::now();
    assert_eq!(code(&node.verify(json!({"key": key})).await), "VALID");
    assert!(started.elapsed() < Duration::from_secs(1));
    let started = Instant::now();
    let r = node
        .post("/v2/apis.createApi", json!({"name": "during-partition"}))
        .await;
    let took = started.elapsed();
    r.assert_error(
        503,
        "unkey/application/service_unavailable",
        "Service Unavailable",
    );
    // The test servers' request timeout is 3 s.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    proxy.restore();
    management_recovers(&node).await;
}

#[tokio::test]
async fn the_redis_ledger_spends_as_the_credit_rule_says() {
    use keyward::cluster::credits::RedisLedger;
    use keyward::cluster::link::RedisLink;
    use keyward::domain::credits::{spend, Balance, KeyCredits, Ledger, Refill};
    use std::sync::Arc;
    let Some(redis) = cluster_env() else { return };
    let app = spawn_cluster_app(&redis).await;
    let api = app.create_api("payments").await;
    let (key_id, _) = create_key(
        &app,
        &api,
        json!({"credits": {"remaining": 2500, "refill": {"interval": "daily", "amount": 1200}}}),
    )
    .await;
    let created_at = get_key(&app, &key_id).await["createdAt"].as_i64().unwrap();
    // Two ledgers with links of their own: two nodes, as far as Redis can tell.
    let links = [
        Arc::new(
            RedisLink::new(&redis, keyward::cluster::link::DEFAULT_REDIS_TIMEOUT)
                .expect("Redis URL"),
        ),
        Arc::new(
            RedisLink::new(&redis, keyward::cluster::link::DEFAULT_REDIS_TIMEOUT)
                .expect("Redis URL"),
        ),
    ];
    let nodes = links
        .clone()
        .map(|link| RedisLedger::new(link, app.store.clone(), Duration::from_secs(3)));
    let refill = Some(Refill {
        amount: 1200,
        day: None,
    });
    let terms = KeyCredits {
        key_id: &key_id,
        refill,
        created_at,
    };
    let mut model = Balance {
        remaining: 2500,
        refilled_at: created_at,
    };
    let costs = [1, 7, 300, 0, 999, 1001, 50, 2, 640, 1200, 3, 1];
    let mut now = created_at;
    for step in 0..120 {
        let cost = costs[step % costs.len()];
        if step % 9 == 8 {
            now += 7 * 3_600_000; // crosses a midnight every three or four jumps
        }
        let expected;
        (model, expected) = spend(model, refill, cost, now);
        let got = nodes[step % 2]
            .spend(&terms, cost, now)
            .await
            .expect("spend");
        assert_eq!(
            got,
            expected,
            "step {step}: cost {cost} at {now} ({} calls Redis did not answer)",
            links[step % 2].fallbacks()
        );
        let current = nodes[(step + 1) % 2]
            .current(&terms, now)
            .await
            .expect("current");
        assert_eq!(current, Some(model.remaining), "step {step}: balance");
    }
    for link in &links {
        assert_eq!(link.fallbacks(), 0, "every call was answered by Redis");
    }
}

#[tokio::test]
async fn holdings_nobody_uses_go_back_to_the_database() {
    use keyward::cluster::credits::RedisLedger;
    use keyward::cluster::link::RedisLink;
    if cluster_env().is_none() {
        return;
    }
    // A Redis of this test's own: the sweep looks at every holding in it.
    let redis = crate::faults::PrivateRedis::start().await;
    let app = spawn_cluster_app(&redis.url()).await;
    let api = app.create_api("payments").await;
    let (key_id, key) = create_key(&app, &api, json!({"credits": {"remaining": 100}})).await;
    assert_eq!(outcome(&app.verify(json!({"key": key})).await).1, json!(99));
    let row = |app: &TestApp| {
        let (store, key_id) = (app.store.clone(), key_id.clone());
        async move {
            store
                .load_credits(&key_id)
                .await
                .unwrap()
                .unwrap()
                .remaining
        }
    };
    assert_eq!(row(&app).await, Some(0), "Redis holds the 99");

    let sweeper = RedisLedger::new(
        std::sync::Arc::new(
            RedisLink::new(&redis.url(), keyward::cluster::link::DEFAULT_REDIS_TIMEOUT).unwrap(),
        ),
        app.store.clone(),
        Duration::from_secs(3),
    );
    assert_eq!(
        sweeper.return_idle(Duration::from_secs(600)).await.unwrap(),
        0
    );
    assert_eq!(row(&app).await, Some(0), "in use: left alone");
    assert_eq!(sweeper.return_idle(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(row(&app).await, Some(99), "back in the row");
    assert_eq!(remaining(&app, &key_id).await, 99);
    // And spent from again as before.
    assert_eq!(outcome(&app.verify(json!({"key": key})).await).1, json!(98));
}

#[tokio::test]
async fn without_redis_no_refill_is_made_on_the_row_alone() {
    let Some(redis) = cluster_env() else { return };
    let (app, proxy) = node_behind_redis_proxy(&redis).await;
    let day = 86_400_000;
    app.clock.set_ms((app.now() / day) * day + 10 * 3_600_000);
    let api = app.create_api("payments").await;
    let (_, key) = create_key(
        &app,
        &api,
        json!({"credits": {"remaining": 2, "refill": {"interval": "daily", "amount": 10}}}),
    )
    .await;
    // Redis holds 1, the row 0.
    assert_eq!(outcome(&app.verify(json!({"key": key})).await).1, json!(1));
    proxy.cut();
    app.clock.advance_ms(day);
    // A refill is due, but the row alone cannot decide it: Redis holds part of the balance.
    assert_eq!(
        code(&app.verify(json!({"key": key})).await),
        "USAGE_EXCEEDED"
    );
    proxy.restore();
    let app = &app;
    let key = &key;
    eventually(Duration::from_secs(5), "the refill, once", || async move {
        match outcome(&app.verify(json!({"key": key})).await) {
            (c, n) if c == "VALID" && n == json!(9) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let mut valid = 1;
    for _ in 0..12 {
        valid += usize::from(code(&app.verify(json!({"key": key})).await) == "VALID");
    }
    assert_eq!(
        valid, 10,
        "max(held + row, amount) = 10, not 10 + what Redis held"
    );
}

#[tokio::test]
async fn a_spend_waits_out_a_slow_move_instead_of_refusing_credits_in_flight() {
    use keyward::cluster::credits::RedisLedger;
    use keyward::cluster::link::RedisLink;
    use keyward::domain::credits::{KeyCredits, Ledger, Spend};
    use std::sync::Arc;
    let Some(redis) = cluster_env() else { return };
    let app = spawn_cluster_app(&redis).await;
    let api = app.create_api("payments").await;
    let (key_id, _) = create_key(&app, &api, json!({"credits": {"remaining": 100}})).await;
    let created_at = get_key(&app, &key_id).await["createdAt"].as_i64().unwrap();
    let ledger = RedisLedger::new(
        Arc::new(
            RedisLink::new(&redis, keyward::cluster::link::DEFAULT_REDIS_TIMEOUT)
                .expect("Redis URL"),
        ),
        app.store.clone(),
        Duration::from_secs(3),
    );
    let terms = KeyCredits {
        key_id: &key_id,
        refill: None,
        created_at,
    };
    // The first spend moves every credit out of the row into Redis.
    let now = created_at + 1;
    assert_eq!(
        ledger.spend(&terms, 1, now).await.unwrap(),
        Spend::Spent(99)
    );
    // Another node holds the move lock for 600 ms, as a move on a slow database would: longer
    // than a spend waits before it tries the row, which holds nothing now.
    let client = redis::Client::open(redis.as_str()).expect("Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis");
    let _: () = redis::cmd("SET")
        .arg(format!("keyward:cr:v1:{key_id}:lock"))
        .arg("another-node")
        .arg("PX")
        .arg(600)
        .query_async(&mut conn)
        .await
        .expect("SET");
    let started = Instant::now();
    let spent = ledger.spend(&terms, 1, now).await.unwrap();
    assert_eq!(
        spent,
        Spend::Spent(98),
        "the credits were in Redis all along: waited {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() >= Duration::from_millis(500));
    // Half the request timeout at most: the request still gets its answer.
    assert!(started.elapsed() < Duration::from_millis(1500 + 500));
}
