//! Two real `keyward serve` processes (the binary, not in-process servers) on one PostgreSQL
//! database and one Redis, on loopback: what cluster mode promises, seen from outside.
//!
//! - credits spent concurrently on both nodes are spent exactly;
//! - rate limits (`ratelimit.limit`, a `ratelimit.multiLimit` batch) admit exactly the limit;
//! - a key disabled, deleted or stripped of a permission through node A, and a root key disabled
//!   or deleted with the CLI given the cluster's `--redis`, is refused by node B within one second
//!   (measured from the moment the change was acknowledged, with B's caches warm); a CLI change
//!   made without `--redis` arrives at the nodes' next safety poll (500 ms);
//! - SIGKILL of one node leaves the other serving, without overspending credits;
//! - a Redis that stops (killed) or hangs (SIGSTOP) costs no request more than [`STALL_BOUND`]:
//!   rate limits fall back to each node's own counters, and when Redis is back both nodes return
//!   to shared counters by themselves.
//!
//! They need PostgreSQL (`KEYWARD_TEST_POSTGRES`, an admin URL: each test creates a fresh
//! database) and Redis (`KEYWARD_TEST_REDIS`, the shared one); without both they are skipped with
//! a message. The Redis-failure tests start a private `redis-server` on a free port and never
//! touch the shared one. Every child process is killed when its guard drops, panic or not.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::faults::PrivateRedis;
use crate::helpers::{eventually, send, TestResponse};

/// Revocation must reach every node within this (the promise): a change made through a
/// node, or with the CLI given the cluster's `--redis`, which tells the nodes at once.
const REVOCATION_BOUND: Duration = Duration::from_secs(1);
/// A CLI change made without `--redis` reaches the nodes at their next safety poll of the change
/// feed: every 500 ms (docs/cluster.md), so within the same second as every other revocation.
const SAFETY_POLL_BOUND: Duration = REVOCATION_BOUND;
/// The longest one request may take while Redis is down or hung. The server waits at most 100 ms
/// on Redis; the rest is slack for a debug build on a loaded 2-core machine (a request normally
/// takes a few milliseconds here), so this catches a request that waits on Redis's own connect or
/// response timeouts (seconds), not small jitter.
const STALL_BOUND: Duration = Duration::from_millis(500);
/// How long Redis's return may take to restore cluster mode: a node leaves Redis alone for a
/// second after a failure, then tries it again with the next request.
const RESTORE_BOUND: Duration = Duration::from_secs(5);
/// Start-up of one node (a debug build, migrations already applied).
const START_BOUND: Duration = Duration::from_secs(30);

/// The PostgreSQL admin URL and the shared Redis URL, or `None` (and a message) without them.
fn services() -> Option<(String, String)> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (var("KEYWARD_TEST_POSTGRES"), var("KEYWARD_TEST_REDIS")) {
        (Some(postgres), Some(redis)) => Some((postgres, redis)),
        _ => {
            eprintln!(
                "KEYWARD_TEST_POSTGRES and KEYWARD_TEST_REDIS are not both set: two-process test skipped"
            );
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

/// A new, empty PostgreSQL database; returns its URL. `scripts/test` drops every `kw_test_*`
/// database after the run.
async fn fresh_postgres(admin_url: &str) -> String {
    use sqlx::Connection;
    let name = unique("kw_test_nodes").to_lowercase();
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to the PostgreSQL admin URL");
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create a test database");
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(admin_url);
    format!("{base}/{name}")
}

/// A port nothing listens on right now (bound, read and released; the child binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Runs the `keyward` binary's operator commands against `database_url`; asserts success.
fn cli(database_url: &str, args: &[&str]) -> std::process::Output {
    let output = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .arg("--database")
        .arg(database_url)
        .arg("--log")
        .arg("warn")
        .args(args)
        .output()
        .expect("run keyward");
    assert!(
        output.status.success(),
        "keyward {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn cli_json(database_url: &str, args: &[&str]) -> Value {
    let output = cli(database_url, args);
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "keyward {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Sends `kill -SIGNAL pid` (no libc in the test dependencies).
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// One `keyward serve` child process; killed (SIGKILL) when dropped. Its stdout and stderr go to
/// a log file whose tail is printed if the test panics.
struct Node {
    name: &'static str,
    base_url: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Node {
    /// Starts `keyward serve` on a free port and waits until `GET /ready` answers 200. A port
    /// taken in the moment between choosing and binding it is retried with another.
    async fn start(
        name: &'static str,
        database_url: &str,
        redis_url: Option<&str>,
        dir: &Path,
        client: &reqwest::Client,
        extra_args: &[&str],
    ) -> Node {
        for attempt in 1..=3 {
            let port = free_port();
            let log = dir.join(format!("{name}-{attempt}.log"));
            let out = File::create(&log).expect("node log file");
            let err = out.try_clone().expect("node log file");
            let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
            command
                .arg("--database")
                .arg(database_url)
                .arg("--log")
                .arg("info")
                .arg("serve")
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--last-used-interval")
                .arg("100ms");
            if let Some(redis) = redis_url {
                command.arg("--redis").arg(redis);
            }
            command.args(extra_args);
            let child = command
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err))
                .spawn()
                .expect("start keyward serve");
            let mut node = Node {
                name,
                base_url: format!("http://127.0.0.1:{port}"),
                child: Some(child),
                log,
            };
            if node.wait_ready(client).await {
                return node;
            }
            // The child exited: retry only when another process took the port.
            if !node.log_text().contains("could not listen") {
                panic!(
                    "node {name} exited during start-up; its log:\n{}",
                    node.log_text()
                );
            }
        }
        panic!("node {name}: no free port in three attempts");
    }

    /// Polls `GET /ready` until it answers 200 (true) or the child exits (false).
    async fn wait_ready(&mut self, client: &reqwest::Client) -> bool {
        let deadline = Instant::now() + START_BOUND;
        loop {
            if let Ok(response) = client.get(format!("{}/ready", self.base_url)).send().await {
                if response.status() == 200 {
                    return true;
                }
            }
            let child = self.child.as_mut().expect("a running child");
            if child.try_wait().expect("child status").is_some() {
                self.child = None;
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "node {} was not ready within {START_BOUND:?}; its log:\n{}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, as a crash: no graceful shutdown, nothing flushed.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let text = self.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            eprintln!("--- last lines of node {}'s log ---\n{tail}", self.name);
        }
    }
}

/// Two nodes (`a` = 0, `b` = 1) on one fresh database and one Redis, with a workspace and an
/// all-powerful root key made by the CLI before either starts.
struct Cluster {
    client: reqwest::Client,
    database_url: String,
    redis_url: String,
    workspace_id: String,
    root_key: String,
    nodes: [Node; 2],
    _dir: tempfile::TempDir,
}

const A: usize = 0;
const B: usize = 1;

impl Cluster {
    async fn start(admin_url: &str, redis_url: &str) -> Cluster {
        Cluster::start_with(admin_url, redis_url, &[]).await
    }

    /// [`Cluster::start`], with more arguments to each node's `serve`.
    async fn start_with(admin_url: &str, redis_url: &str, extra_args: &[&str]) -> Cluster {
        let database_url = fresh_postgres(admin_url).await;
        // The CLI migrates the empty database, so the two nodes never race to do it, and the
        // workspace keeps `serve` from bootstrapping one of its own.
        let workspace = cli_json(
            &database_url,
            &["workspace", "create", "--name", "nodes", "--json"],
        );
        let workspace_id = workspace["workspaceId"]
            .as_str()
            .expect("workspaceId")
            .to_string();
        let root = cli_json(
            &database_url,
            &["root-key", "create", "--workspace", &workspace_id, "--json"],
        );
        let root_key = root["key"].as_str().expect("key").to_string();
        let dir = tempfile::tempdir().expect("temp dir");
        // A generous timeout so a hung server fails the test instead of hanging it.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        let (a, b) = tokio::join!(
            Node::start(
                "a",
                &database_url,
                Some(redis_url),
                dir.path(),
                &client,
                extra_args
            ),
            Node::start(
                "b",
                &database_url,
                Some(redis_url),
                dir.path(),
                &client,
                extra_args
            ),
        );
        Cluster {
            client,
            database_url,
            redis_url: redis_url.to_string(),
            workspace_id,
            root_key,
            nodes: [a, b],
            _dir: dir,
        }
    }

    fn url(&self, node: usize, path: &str) -> String {
        format!("{}{path}", self.nodes[node].base_url)
    }

    async fn post(&self, node: usize, path: &str, body: Value) -> TestResponse {
        self.post_with_key(node, path, &self.root_key, body).await
    }

    async fn post_with_key(&self, node: usize, path: &str, key: &str, body: Value) -> TestResponse {
        let request = self
            .client
            .post(self.url(node, path))
            .bearer_auth(key)
            .json(&body);
        send(request).await
    }

    async fn ready(&self, node: usize) -> TestResponse {
        send(self.client.get(self.url(node, "/ready"))).await
    }

    async fn verify(&self, node: usize, body: Value) -> Value {
        let r = self.post(node, "/v2/keys.verifyKey", body).await;
        r.assert_ok("/v2/keys.verifyKey");
        r.body["data"].clone()
    }

    async fn create_api(&self) -> String {
        let r = self
            .post(A, "/v2/apis.createApi", json!({"name": "nodes"}))
            .await;
        r.assert_ok("/v2/apis.createApi");
        r.body["data"]["apiId"].as_str().expect("apiId").to_string()
    }

    /// Creates a key through node A; returns `(keyId, key)`.
    async fn create_key(&self, api: &str, extra: Value) -> (String, String) {
        let mut body = json!({"apiId": api});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let r = self.post(A, "/v2/keys.createKey", body).await;
        r.assert_ok("/v2/keys.createKey");
        (
            r.body["data"]["keyId"].as_str().expect("keyId").to_string(),
            r.body["data"]["key"].as_str().expect("key").to_string(),
        )
    }

    /// Sends every body to `path` at once, alternating between the nodes; returns the response
    /// bodies, each a 200.
    async fn race(&self, path: &str, bodies: Vec<Value>) -> Vec<Value> {
        let mut calls = tokio::task::JoinSet::new();
        for (i, body) in bodies.into_iter().enumerate() {
            let request = self
                .client
                .post(self.url(i % 2, path))
                .bearer_auth(&self.root_key)
                .json(&body);
            calls.spawn(async move {
                let response = request.send().await.expect("send");
                let status = response.status();
                let body = response.json::<Value>().await.expect("JSON body");
                assert_eq!(status, 200, "{body}");
                body
            });
        }
        let mut out = Vec::new();
        while let Some(body) = calls.join_next().await {
            out.push(body.expect("call"));
        }
        out
    }

    /// How many of `calls` `ratelimit.limit` calls of a fresh identifier with `limit`, split
    /// across both nodes at once, were admitted.
    async fn admitted_together(&self, limit: i64, calls: usize) -> usize {
        let body = json!({"namespace": "nodes", "identifier": unique("user"), "limit": limit, "duration": 600_000});
        let responses = self.race("/v2/ratelimit.limit", vec![body; calls]).await;
        responses.iter().filter(|r| passed(r)).count()
    }
}

fn passed(body: &Value) -> bool {
    body["data"]["success"] == true || body["data"]["passed"] == true
}

/// Polls `probe` every 25 ms until it sees the refusal (`Ok`), and returns the time from `since`
/// to that answer; fails once `bound` has passed since `since`.
async fn refused_within<F, Fut>(
    since: Instant,
    bound: Duration,
    what: &str,
    mut probe: F,
) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    loop {
        let outcome = probe().await;
        let elapsed = since.elapsed();
        match outcome {
            Ok(()) => {
                assert!(elapsed < bound, "{what}: refused only after {elapsed:?}");
                return elapsed;
            }
            Err(last) => assert!(
                elapsed < bound,
                "{what}: still accepted after {elapsed:?}: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---- exactness across processes ---------------------------------------------------------------

#[tokio::test]
async fn credits_verified_on_two_processes_at_once_are_spent_exactly() {
    let Some((postgres, redis)) = services() else {
        return;
    };
    // Exactness is what this test is about, not the fallback: on a busy test machine a Redis call
    // can take longer than the default 100 ms, and a node that falls back to the database refuses
    // the credits Redis holds for a second.
    let cluster = Cluster::start_with(&postgres, &redis, &["--redis-timeout", "1s"]).await;
    let api = cluster.create_api().await;
    let (key_id, key) = cluster
        .create_key(&api, json!({"credits": {"remaining": 100}}))
        .await;
    let responses = cluster
        .race("/v2/keys.verifyKey", vec![json!({"key": key}); 150])
        .await;
    let count = |code: &str| {
        responses
            .iter()
            .filter(|r| r["data"]["code"] == code)
            .count()
    };
    assert_eq!(
        (count("VALID"), count("USAGE_EXCEEDED")),
        (100, 50),
        "exactly the balance is spent, whichever node answers"
    );
    // Both nodes' view of the balance agrees once any write-behind has landed.
    let cluster = &cluster;
    for node in [A, B] {
        let key_id = key_id.as_str();
        eventually(
            Duration::from_secs(5),
            "keys.getKey shows the balance spent",
            || async move {
                let r = cluster
                    .post(node, "/v2/keys.getKey", json!({"keyId": key_id}))
                    .await;
                r.assert_ok("/v2/keys.getKey");
                if r.body["data"]["credits"]["remaining"] == 0 {
                    Ok(())
                } else {
                    Err(r.body["data"]["credits"].to_string())
                }
            },
        )
        .await;
    }
    let last = cluster.verify(B, json!({"key": key})).await;
    assert_eq!(last["code"], "USAGE_EXCEEDED");
}

#[tokio::test]
async fn rate_limits_called_on_two_processes_at_once_admit_exactly_the_limit() {
    let Some((postgres, redis)) = services() else {
        return;
    };
    let cluster = Cluster::start(&postgres, &redis).await;
    assert_eq!(
        cluster.admitted_together(50, 100).await,
        50,
        "ratelimit.limit: both nodes together admit exactly the limit"
    );

    let identifier = unique("user");
    let batch = json!([
        {"namespace": "tight", "identifier": identifier, "limit": 30, "duration": 600_000},
        {"namespace": "loose", "identifier": identifier, "limit": 1000, "duration": 600_000}
    ]);
    let responses = cluster
        .race("/v2/ratelimit.multiLimit", vec![batch; 60])
        .await;
    assert_eq!(
        responses.iter().filter(|r| passed(r)).count(),
        30,
        "ratelimit.multiLimit: exactly the tight limit's batches pass"
    );
    // Refused batches counted nothing: the loose limit saw exactly the 30 admitted ones, as
    // either node reads it.
    for node in [A, B] {
        let peek = cluster
            .post(
                node,
                "/v2/ratelimit.limit",
                json!({"namespace": "loose", "identifier": identifier, "limit": 1000, "duration": 600_000, "cost": 0}),
            )
            .await;
        peek.assert_ok("/v2/ratelimit.limit");
        assert_eq!(peek.body["data"]["remaining"], 970, "node {node}");
    }
}

// ---- revocation across processes --------------------------------------------------------------

/// Warms node B's cache with a successful verification of `key` (optionally with a permission
/// query), applies `change` through node A, and returns how long B then took to answer `code`.
async fn key_change_reaches_b(
    cluster: &Cluster,
    key: &str,
    query: Option<&str>,
    path: &str,
    change: Value,
    code: &str,
) -> Duration {
    let mut body = json!({"key": key});
    if let Some(query) = query {
        body["permissions"] = json!(query);
    }
    for node in [B, A] {
        let warm = cluster.verify(node, body.clone()).await;
        assert_eq!(warm["code"], "VALID", "before the change, node {node}");
    }
    let r = cluster.post(A, path, change).await;
    r.assert_ok(path);
    let since = Instant::now();
    // Node A's own change is honoured at once.
    assert_eq!(cluster.verify(A, body.clone()).await["code"], code);
    let body = &body;
    refused_within(
        since,
        REVOCATION_BOUND,
        &format!("{path} through node A, seen by node B"),
        || async move {
            let seen = cluster.verify(B, body.clone()).await;
            if seen["code"] == code {
                Ok(())
            } else {
                Err(seen.to_string())
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_key_disabled_through_one_node_is_refused_by_the_other_within_a_second() {
    let Some((postgres, redis)) = services() else {
        return;
    };
    let cluster = Cluster::start(&postgres, &redis).await;
    let api = cluster.create_api().await;
    let (key_id, key) = cluster.create_key(&api, json!({})).await;
    let took = key_change_reaches_b(
        &cluster,
        &key,
        None,
        "/v2/keys.updateKey",
        json!({"keyId": key_id, "enabled": false}),
        "DISABLED",
    )
    .await;
    eprintln!("disabled key refused by node B after {took:?}");
}

#[tokio::test]
async fn a_key_deleted_through_one_node_is_refused_by_the_other_within_a_second() {
    let Some((postgres, redis)) = services() else {
        return;
    };
    let cluster = Cluster::start(&postgres, &redis).await;
    let api = cluster.create_api().await;
    let (key_id, key) = cluster.create_key(&api, json!({})).await;
    let took = key_change_reaches_b(
        &cluster,
        &key,
        None,
        "/v2/keys.deleteKey",
        json!({"keyId": key_id}),
        "NOT_FOUND",
    )
    .await;
    eprintln!("deleted key refused by node B after {took:?}");
}

#[tokio::test]
async fn a_permission_removed_through_one_node_is_missing_on_the_other_within_a_second() {
    let Some((postgres, redis)) = services() else {
        return;
    };
    let cluster = Cluster::start(&postgres, &redis).await;
    let api = cluster.create_api().await;
    let (key_id, key) = cluster
        .create_key(&api, json!({"permissions": ["docs.read", "docs.list"]}))
        .await;
    let took = key_change_reaches_b(
        &cluster,
        &key,
        Some("docs.read"),
        "/v2/keys.removePermissions",
        json!({"keyId": key_id, "permissions": ["docs.read"]}),
        "INSUFFICIENT_PERMISSIONS",
    )
    .await;
    eprintln!("removed permission refused by node B after {took:?}");
    // Only that permission went.
    let kept = cluster
        .verify(B, json!({"key": key, "permissions": "docs.list"}))
        .await;
    assert_eq!(kept["code"], "VALID");
}

/// Two nodes, and a root key the CLI made after they started, which both have cached; returns
/// `(keyId, key, apiId)`.
async fn cached_cli_root_key(cluster: &Cluster) -> (String, String, String) {
    let api = cluster.create_api().await;
    let created = cli_json(
        &cluster.database_url,
        &[
            "root-key",
            "create",
            "--workspace",
            &cluster.workspace_id,
            "--json",
        ],
    );
    let id = created["keyId"].as_str().expect("keyId").to_string();
    let key = created["key"].as_str().expect("key").to_string();
    for node in [A, B] {
        let r = get_api(cluster, node, &key, &api).await;
        r.assert_ok("/v2/apis.getApi");
    }
    (id, key, api)
}

async fn get_api(cluster: &Cluster, node: usize, key: &str, api: &str) -> TestResponse {
    cluster
        .post_with_key(node, "/v2/apis.getApi", key, json!({"apiId": api}))
        .await
}

/// Runs `keyward [--redis URL] root-key COMMAND ID` and measures, from the moment it exits, how
/// long node B and then node A take to answer the root key with the error `(status, doc, title)`;
/// each must within `bound`.
async fn cli_root_key_change_reaches_the_nodes(
    cluster: &Cluster,
    tell_nodes: bool,
    command: &str,
    (id, key, api): (&str, &str, &str),
    bound: Duration,
    (status, doc, title): (u16, &str, &str),
) {
    let mut args = Vec::new();
    if tell_nodes {
        args.extend(["--redis", cluster.redis_url.as_str()]);
    }
    args.extend(["root-key", command, id]);
    cli(&cluster.database_url, &args);
    let since = Instant::now();
    for node in [B, A] {
        let took = refused_within(
            since,
            bound,
            &format!("keyward {args:?}, seen by node {node}"),
            || async move {
                let r = get_api(cluster, node, key, api).await;
                if r.status == status {
                    r.assert_error(status, doc, title);
                    Ok(())
                } else {
                    Err(format!("{} {}", r.status, r.body))
                }
            },
        )
        .await;
        eprintln!("keyward {args:?}: node {node} refused the root key after {took:?}");
    }
}

#[tokio::test]
async fn a_root_key_disabled_with_the_cli_is_refused_by_both_nodes_within_a_second() {
    let Some((postgres, redis)) = services() else {
        return;
    };
    let cluster = Cluster::start(&postgres, &redis).await;
    let (id, key, api) = cached_cli_root_key(&cluster).await;
    cli_root_key_change_reaches_the_nodes(
        &cluster,
        true,
        "disable",
        (&id, &key, &api),
        REVOCATION_BOUND,
        (403, "unkey/authorization/key_disabled", "Forbidden"),
    )
    .await;
    // The root key the nodes started with is untouched.
    cluster
        .post(B, "/v2/apis.getApi", json!({"apiId": api}))
        .await
        .assert_ok("/v2/apis.getApi");
}

#[tokio::test]
async fn a_root_key_deleted_with_the_cli_is_refused_by_both_nodes_within_a_second() {
    let Some((postgres, redis)) = services() else {
        return;
    };
    let cluster = Cluster::start(&postgres, &redis).await;
    let (id, key, api) = cached_cli_root_key(&cluster).await;
    cli_root_key_change_reaches_the_nodes(
        &cluster,
        true,
        "delete",
        (&id, &key, &api),
        REVOCATION_BOUND,
        (401, "unkey/authentication/key_not_found", "Unauthorized"),
    )
    .await;
}

#[tokio::test]
async fn a_cli_change_made_without_redis_reaches_the_nodes_at_their_safety_poll() {
    let Some((postgres, redis)) = services() else {
        return;
    };
    let cluster = Cluster::start(&postgres, &redis).await;
    let (id, key, api) = cached_cli_root_key(&cluster).await;
    cli_root_key_change_reaches_the_nodes(
        &cluster,
        false,
        "delete",
        (&id, &key, &api),
        SAFETY_POLL_BOUND,
        (401, "unkey/authentication/key_not_found", "Unauthorized"),
    )
    .await;
}

// ---- a node dies ---------------------------------------------------------------------------

#[tokio::test]
async fn killing_one_node_mid_traffic_leaves_the_other_serving_without_overspending() {
    let Some((postgres, redis)) = services() else {
        return;
    };
    let mut cluster = Cluster::start(&postgres, &redis).await;
    let api = cluster.create_api().await;
    let (_, plain) = cluster.create_key(&api, json!({})).await;
    const CREDITS: usize = 100_000;
    let (metered_id, metered) = cluster
        .create_key(&api, json!({"credits": {"remaining": CREDITS}}))
        .await;
    for node in [A, B] {
        assert_eq!(
            cluster.verify(node, json!({"key": plain})).await["code"],
            "VALID"
        );
    }

    // Four workers verify the metered key, alternating between the nodes, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..4usize {
        let (client, stop) = (cluster.client.clone(), stop.clone());
        let urls = [A, B].map(|node| cluster.url(node, "/v2/keys.verifyKey"));
        let (root, key) = (cluster.root_key.clone(), metered.clone());
        workers.spawn(async move {
            // (valid, answers from A, answers from B, failed calls to A)
            let mut tally = (0usize, 0usize, 0usize, 0usize);
            let mut i = worker;
            while !stop.load(Ordering::Relaxed) {
                let node = i % 2;
                i += 1;
                let sent = client
                    .post(&urls[node])
                    .bearer_auth(&root)
                    .json(&json!({"key": key}))
                    .send()
                    .await;
                let body = match sent {
                    Ok(response) if response.status() == 200 => response.json::<Value>().await.ok(),
                    Ok(response) => panic!("node {node} answered {}", response.status()),
                    Err(_) => None,
                };
                match body {
                    Some(body) => {
                        assert_eq!(body["data"]["code"], "VALID", "{body}");
                        tally.0 += 1;
                        if node == A {
                            tally.1 += 1;
                        } else {
                            tally.2 += 1;
                        }
                    }
                    None => {
                        assert_eq!(node, A, "a call to the surviving node failed");
                        tally.3 += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            tally
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.nodes[A].kill();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut valid, mut from_a, mut from_b, mut lost_calls) = (0, 0, 0, 0);
    while let Some(tally) = workers.join_next().await {
        let (v, a, b, lost) = tally.expect("worker");
        valid += v;
        from_a += a;
        from_b += b;
        lost_calls += lost;
    }
    eprintln!("answers: {from_a} from A (killed after 300 ms), {from_b} from B; {lost_calls} calls to A failed");
    assert!(from_a > 0, "node A answered before it was killed");
    assert!(from_b > 0, "node B answered during the run");
    assert!(
        lost_calls > 0,
        "calls to node A failed once it was killed {:?} ago",
        killed.elapsed()
    );

    // Node B answers verifications and management calls as before.
    assert_eq!(
        cluster.verify(B, json!({"key": plain})).await["code"],
        "VALID"
    );
    let ready = cluster.ready(B).await;
    ready.assert_ok("/ready");
    let r = cluster
        .post(B, "/v2/keys.createKey", json!({"apiId": api}))
        .await;
    r.assert_ok("/v2/keys.createKey");
    let (new_id, new_key) = (
        r.body["data"]["keyId"].as_str().expect("keyId").to_string(),
        r.body["data"]["key"].as_str().expect("key").to_string(),
    );
    assert_eq!(
        cluster.verify(B, json!({"key": new_key})).await["code"],
        "VALID"
    );
    cluster
        .post(
            B,
            "/v2/keys.updateKey",
            json!({"keyId": new_id, "enabled": false}),
        )
        .await
        .assert_ok("/v2/keys.updateKey");
    assert_eq!(
        cluster.verify(B, json!({"key": new_key})).await["code"],
        "DISABLED"
    );

    // No credit was overspent across the crash, and none went missing beyond what the kill may
    // cost (docs/cluster.md): the balance B reports plus the spends answered VALID make the
    // initial balance, less at most one credit for each call to A that got no answer (cut off by
    // the kill, or refused after it) and one block of credits A may have been moving.
    let lost_at_most = lost_calls + keyward::cluster::credits::MOVE_BLOCK as usize;
    let cluster = &cluster;
    let metered_id = metered_id.as_str();
    eventually(
        Duration::from_secs(5),
        "node B's balance accounts for every spend",
        || async move {
            let r = cluster
                .post(B, "/v2/keys.getKey", json!({"keyId": metered_id}))
                .await;
            r.assert_ok("/v2/keys.getKey");
            let remaining = r.body["data"]["credits"]["remaining"]
                .as_u64()
                .expect("credits.remaining") as usize;
            if valid + remaining <= CREDITS && valid + remaining + lost_at_most >= CREDITS {
                Ok(())
            } else {
                Err(format!(
                    "{valid} answered VALID, {remaining} remaining, {lost_calls} calls to A failed, of {CREDITS}"
                ))
            }
        },
    )
    .await;
    assert_eq!(
        cluster.verify(B, json!({"key": metered})).await["code"],
        "VALID"
    );
}

// ---- Redis goes away --------------------------------------------------------------------------

/// Two keys of 1000 credits: `fresh`, never verified, so its credits are all in its database row,
/// and `held`, verified once on each node, so Redis holds (some of) its credits.
struct CreditKeys {
    fresh: String,
    held: String,
}

impl CreditKeys {
    async fn create(cluster: &Cluster) -> CreditKeys {
        let api = cluster.create_api().await;
        let credits = json!({"credits": {"remaining": 1000}});
        let (_, fresh) = cluster.create_key(&api, credits.clone()).await;
        let (_, held) = cluster.create_key(&api, credits).await;
        for node in [A, B] {
            let verdict = cluster.verify(node, json!({"key": held})).await;
            assert_eq!(verdict["code"], "VALID", "node {node}");
        }
        CreditKeys { fresh, held }
    }
}

/// While Redis is unavailable: on each node, one call at a time, `ratelimit.limit` and
/// verifications of both credit keys; every call answers 200 within [`STALL_BOUND`]. Each node
/// admits exactly the limit on its own (its local counters), so both together admit twice it,
/// and each logs the switch. The fresh key's credits are spent on its row (VALID); the credits
/// Redis holds of the other may be refused meanwhile, but not slowly.
async fn serves_without_redis(cluster: &Cluster, keys: &CreditKeys) {
    let identifier = unique("user");
    let mut slowest = Duration::ZERO;
    for node in [A, B] {
        let mut admitted = 0;
        for _ in 0..8 {
            let started = Instant::now();
            let r = cluster
                .post(
                    node,
                    "/v2/ratelimit.limit",
                    json!({"namespace": "nodes", "identifier": identifier, "limit": 5, "duration": 600_000}),
                )
                .await;
            let took = started.elapsed();
            slowest = slowest.max(took);
            r.assert_ok("/v2/ratelimit.limit");
            assert!(
                took < STALL_BOUND,
                "node {node}: ratelimit.limit took {took:?} without Redis"
            );
            admitted += usize::from(passed(&r.body));

            for (key, codes) in [
                (&keys.fresh, &["VALID"][..]),
                (&keys.held, &["VALID", "USAGE_EXCEEDED"][..]),
            ] {
                let started = Instant::now();
                let verdict = cluster.verify(node, json!({"key": key})).await;
                let took = started.elapsed();
                slowest = slowest.max(took);
                let code = verdict["code"].as_str().unwrap_or("");
                assert!(codes.contains(&code), "node {node}: {verdict}");
                assert!(
                    took < STALL_BOUND,
                    "node {node}: keys.verifyKey took {took:?} without Redis"
                );
            }
        }
        assert_eq!(
            admitted, 5,
            "node {node} falls back to its own counters, which still enforce the limit"
        );
    }
    eprintln!("without Redis, the slowest of 48 calls took {slowest:?}");
    for node in [A, B] {
        let log = cluster.nodes[node].log_text();
        assert!(
            log.contains("Redis unavailable"),
            "node {node} logs the fallback (docs/cluster.md):\n{log}"
        );
    }
}

/// Waits until Redis is back in use on both nodes: `/ready` says `"redis":"up"` and a fresh
/// limit called on both at once admits exactly the limit (with either node still deciding
/// locally, more would pass); then checks once more, and that each node logged its return.
/// Returns how long it took.
async fn cluster_mode_returns(cluster: &Cluster) -> Duration {
    let since = Instant::now();
    eventually(
        RESTORE_BOUND,
        "both nodes went back to Redis by themselves",
        || async move {
            for node in [A, B] {
                let r = cluster.ready(node).await;
                r.assert_ok("/ready");
                if r.body["data"]["redis"] != "up" {
                    return Err(format!("node {node}: {}", r.body));
                }
            }
            match cluster.admitted_together(10, 30).await {
                10 => Ok(()),
                n => Err(format!("{n} of 30 admitted with a limit of 10")),
            }
        },
    )
    .await;
    let took = since.elapsed();
    assert_eq!(cluster.admitted_together(10, 30).await, 10, "shared again");
    for node in [A, B] {
        let log = cluster.nodes[node].log_text();
        assert!(
            log.contains("Redis answers again"),
            "node {node} logs its return to cluster mode (docs/cluster.md):\n{log}"
        );
    }
    took
}

/// Both nodes are ready and report Redis `state`. A readiness check waits on Redis no longer than
/// a request does (100 ms), so it is held to [`STALL_BOUND`] too; the time is printed.
async fn redis_reported(cluster: &Cluster, state: &str) {
    for node in [A, B] {
        let started = Instant::now();
        let r = cluster.ready(node).await;
        let took = started.elapsed();
        eprintln!("GET /ready on node {node} with Redis {state}: {took:?}");
        assert!(took < STALL_BOUND, "node {node}: GET /ready took {took:?}");
        r.assert_ok("/ready");
        assert_eq!(r.body["data"]["status"], "ready", "node {node}");
        assert_eq!(r.body["data"]["database"], "up", "node {node}");
        assert_eq!(r.body["data"]["redis"], state, "node {node}");
    }
}

#[tokio::test]
async fn a_stopped_redis_falls_back_to_local_counters_and_its_restart_restores_cluster_mode() {
    let Some((postgres, _)) = services() else {
        return;
    };
    let mut redis = PrivateRedis::start().await;
    let cluster = Cluster::start(&postgres, &redis.url()).await;
    let keys = CreditKeys::create(&cluster).await;
    redis_reported(&cluster, "up").await;
    // Cluster mode before Redis stops. On a loaded host a node's first Redis calls can outlast
    // the link's timeout and send it to its own counters for a second (the designed fallback),
    // so this waits for the counters to be shared instead of taking the first race as final.
    let shared = &cluster;
    eventually(RESTORE_BOUND, "both nodes share counters", || async move {
        match shared.admitted_together(10, 30).await {
            10 => Ok(()),
            n => Err(format!("{n} of 30 admitted with a limit of 10")),
        }
    })
    .await;

    redis.stop();
    serves_without_redis(&cluster, &keys).await;
    redis_reported(&cluster, "down").await;

    let _back = PrivateRedis::start_on(redis.port).await;
    let took = cluster_mode_returns(&cluster).await;
    eprintln!("cluster mode back {took:?} after redis-server restarted");
}

#[tokio::test]
async fn a_hung_redis_costs_no_request_more_than_the_bound_and_cluster_mode_returns_with_it() {
    let Some((postgres, _)) = services() else {
        return;
    };
    let redis = PrivateRedis::start().await;
    let cluster = Cluster::start(&postgres, &redis.url()).await;
    let keys = CreditKeys::create(&cluster).await;
    assert_eq!(cluster.admitted_together(10, 30).await, 10, "cluster mode");

    // SIGSTOP: connections are still accepted by the kernel, but nothing answers; only the
    // server's own timeout protects the request.
    signal(redis.pid(), "STOP");
    serves_without_redis(&cluster, &keys).await;
    // The readiness probe waits up to its own one-second timeout for PING.
    redis_reported(&cluster, "down").await;

    signal(redis.pid(), "CONT");
    let took = cluster_mode_returns(&cluster).await;
    eprintln!("cluster mode back {took:?} after redis-server resumed");
    // Redis kept what it held (it was only paused): the held key's credits are spendable again
    // once any move lock taken during the pause has expired.
    let (cluster, held) = (&cluster, keys.held.as_str());
    for node in [A, B] {
        eventually(
            RESTORE_BOUND,
            "the credits Redis holds are spendable again",
            || async move {
                let verdict = cluster.verify(node, json!({"key": held})).await;
                if verdict["code"] == "VALID" {
                    Ok(())
                } else {
                    Err(format!("node {node}: {verdict}"))
                }
            },
        )
        .await;
    }
}
