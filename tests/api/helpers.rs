//! `spawn_app()` and the typed helpers every test uses.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use keyward::clock::{ManualClock, SharedClock};
use keyward::domain::admin;
use keyward::domain::analytics::AnalyticsSettings;
use keyward::domain::vault::Keyring;
use keyward::http::AppState;
use keyward::server::ServerConfig;
use keyward::store::{self, SharedStore};
use rand::distributions::Alphanumeric;
use rand::Rng;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::sync::oneshot;

/// A running server with a workspace and an all-powerful root key.
pub struct TestApp {
    pub base_url: String,
    pub client: reqwest::Client,
    pub database_url: String,
    pub store: SharedStore,
    pub clock: ManualClock,
    pub workspace_id: String,
    pub root_key: String,
    pub root_key_id: String,
    /// The server's state, for tests that look inside (cache sizes, flushing).
    pub state: AppState,
    /// The server's background workers, for tests that run a round themselves.
    pub workers: keyward::server::Workers,
    /// The vault's master keys, when the server has a vault.
    pub master_keys: Option<Arc<Keyring>>,
    shutdown: Option<oneshot::Sender<()>>,
    stopped: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

fn random_suffix() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(12)
        .map(char::from)
        .collect::<String>()
        .to_lowercase()
}

/// A key that is its row alone (`NewKey::is_plain`) in `key_space_id` of `workspace_id`, made
/// now, to insert through the store directly.
pub fn plain_new_key(
    key_space_id: &str,
    workspace_id: &str,
    id: &str,
    hash: &str,
    now: i64,
) -> keyward::model::NewKey {
    keyward::model::NewKey {
        id: id.to_string(),
        key_space_id: key_space_id.to_string(),
        workspace_id: workspace_id.to_string(),
        hash: hash.to_string(),
        start: "sk_x".into(),
        name: None,
        meta: None,
        external_id: None,
        new_identity_id: format!("id_of_{id}"),
        expires: None,
        enabled: true,
        remaining: None,
        refill_day: None,
        refill_amount: None,
        pending_migration_id: None,
        created_at: now,
        rbac: Default::default(),
        ratelimits: Vec::new(),
        sealed: None,
    }
}

/// A fresh database URL: a new PostgreSQL database when `KEYWARD_TEST_POSTGRES` is set (an admin
/// URL such as `postgres://postgres@127.0.0.1:5432/postgres`), else a SQLite file in a temp dir.
pub async fn fresh_database() -> (String, Option<tempfile::TempDir>) {
    match std::env::var("KEYWARD_TEST_POSTGRES") {
        Ok(admin_url) if !admin_url.is_empty() => {
            use sqlx::Connection;
            let name = format!("kw_test_{}", random_suffix());
            let mut conn = sqlx::PgConnection::connect(&admin_url)
                .await
                .expect("connect to the PostgreSQL admin URL");
            sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
                .await
                .expect("create a test database");
            let base = admin_url
                .rsplit_once('/')
                .map(|(b, _)| b)
                .unwrap_or(&admin_url);
            (format!("{base}/{name}"), None)
        }
        _ => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("keyward.db").display());
            (url, Some(dir))
        }
    }
}

/// Starts a server on a fresh database, with a manual clock at the current time.
pub async fn spawn_app() -> TestApp {
    // Short, so tests see lastUsedAt without waiting the default minute.
    spawn_app_with(std::time::Duration::from_millis(100)).await
}

/// [`spawn_app`] with the given interval between `lastUsedAt` updates.
pub async fn spawn_app_with(last_used_interval: std::time::Duration) -> TestApp {
    spawn_app_options(last_used_interval, None, AnalyticsSettings::default(), None).await
}

/// [`spawn_app`] with the given analytics settings (retention, quota, caps).
pub async fn spawn_app_with_analytics(analytics: AnalyticsSettings) -> TestApp {
    spawn_app_options(Duration::from_millis(100), None, analytics, None).await
}

/// [`spawn_app`] with a vault holding these master keys (recoverable keys on).
pub async fn spawn_app_with_vault(master_keys: Arc<Keyring>) -> TestApp {
    spawn_app_options(
        Duration::from_millis(100),
        None,
        AnalyticsSettings::default(),
        Some(master_keys),
    )
    .await
}

/// [`spawn_app`] in cluster mode, sharing rate-limit counters through the Redis at `redis_url`.
pub async fn spawn_cluster_app(redis_url: &str) -> TestApp {
    spawn_app_options(
        Duration::from_millis(100),
        Some(redis_url.to_string()),
        AnalyticsSettings::default(),
        None,
    )
    .await
}

async fn spawn_app_options(
    last_used_interval: std::time::Duration,
    redis_url: Option<String>,
    analytics: AnalyticsSettings,
    master_keys: Option<Arc<Keyring>>,
) -> TestApp {
    let (database_url, dir) = fresh_database().await;
    let (store, topology) = store::connect_backend(&database_url)
        .await
        .expect("open store");
    let clock = ManualClock::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_millis() as i64,
    );
    let now = clock_now(&clock);
    let workspace = admin::create_workspace(&store, now, "test")
        .await
        .expect("workspace");
    let key = admin::create_root_key(&store, now, &workspace.id, Some("test"), &[], None)
        .await
        .expect("root key");
    start_server(
        ServerParts {
            database_url,
            store,
            topology,
            clock,
            workspace_id: workspace.id,
            root_key: key.plaintext,
            root_key_id: key.record.id,
            dir,
            master_keys,
        },
        last_used_interval,
        redis_url,
        analytics,
    )
    .await
}

/// What a server under test is started over.
struct ServerParts {
    database_url: String,
    store: SharedStore,
    topology: store::Topology,
    clock: ManualClock,
    workspace_id: String,
    root_key: String,
    root_key_id: String,
    dir: Option<tempfile::TempDir>,
    master_keys: Option<Arc<Keyring>>,
}

async fn start_server(
    parts: ServerParts,
    last_used_interval: std::time::Duration,
    redis_url: Option<String>,
    analytics: AnalyticsSettings,
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let base_url = format!("http://{addr}");
    let shared_clock: SharedClock = Arc::new(parts.clock.clone());
    let config = ServerConfig {
        public_url: base_url.clone(),
        key_cache_capacity: 10_000,
        last_used_interval,
        redis_url,
        redis_timeout: keyward::cluster::link::DEFAULT_REDIS_TIMEOUT,
        request_timeout: Duration::from_secs(3),
        slow_request_threshold: keyward::server::DEFAULT_SLOW_REQUEST_THRESHOLD,
        connections: Default::default(),
        audit_retention: Duration::from_secs(365 * 86_400),
        region: "test-region".into(),
        analytics,
        master_keys: parts.master_keys.clone(),
        dashboard: Some(Default::default()),
    };
    let server = keyward::server::build(parts.store.clone(), parts.topology, shared_clock, &config)
        .expect("build the server");
    let state = server.state().clone();
    let workers = server.workers();
    let (tx, rx) = oneshot::channel::<()>();
    let stopped = tokio::spawn(server.serve(listener, async move {
        let _ = rx.await;
    }));
    TestApp {
        base_url,
        client: reqwest::Client::new(),
        database_url: parts.database_url,
        store: parts.store,
        clock: parts.clock,
        workspace_id: parts.workspace_id,
        root_key: parts.root_key,
        root_key_id: parts.root_key_id,
        state,
        workers,
        master_keys: parts.master_keys,
        shutdown: Some(tx),
        stopped: Some(stopped),
        _dir: parts.dir,
    }
}

/// The statuses the server's own OpenAPI document declares for each operation, by path.
fn documented_statuses() -> &'static HashMap<String, HashSet<u16>> {
    static STATUSES: OnceLock<HashMap<String, HashSet<u16>>> = OnceLock::new();
    STATUSES.get_or_init(|| {
        let doc = keyward::http::routes::openapi::document("http://127.0.0.1");
        let mut statuses = HashMap::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let set: &mut HashSet<u16> = statuses.entry(path.clone()).or_default();
            for operation in item.as_object().expect("path item").values() {
                for status in operation["responses"]
                    .as_object()
                    .expect("responses")
                    .keys()
                {
                    set.insert(status.parse().expect("a status"));
                }
            }
        }
        statuses
    })
}

/// Sends a request and checks what every response holds (JSON, a `req_` id in the body and in
/// `X-Request-Id`, and a status `/openapi.json` declares for the operation).
pub async fn send(request: reqwest::RequestBuilder) -> TestResponse {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let path = response.url().path().to_string();
    // A wrong method (405) is not the operation's answer.
    if let (Some(documented), false) = (documented_statuses().get(&path), status == 405) {
        assert!(
            documented.contains(&status),
            "{path} answered {status}, which /openapi.json does not declare for it"
        );
    }
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("response is not JSON ({e}): {text}"));
    let request_id = body["meta"]["requestId"].as_str().expect("meta.requestId");
    assert!(request_id.starts_with("req_"), "{request_id}");
    assert_eq!(
        headers.get("x-request-id").and_then(|v| v.to_str().ok()),
        Some(request_id),
        "X-Request-Id must repeat meta.requestId"
    );
    TestResponse {
        status,
        headers,
        body,
    }
}

/// Polls `probe` until it answers `Ok`, sleeping briefly between attempts, and returns that value;
/// panics naming `what` and the last `Err` once `timeout` has passed. For effects that arrive from
/// another process or a background task (the change feed, the event writer), never for a route's
/// own synchronous answer.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) => {
                assert!(
                    Instant::now() < deadline,
                    "{what}: not within {timeout:?}; last seen: {last}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn clock_now(clock: &ManualClock) -> i64 {
    use keyward::clock::Clock;
    clock.now_ms()
}

impl TestApp {
    /// Applies what other processes changed now, as the change feed's next round would.
    pub async fn sync_changes(&self) {
        self.workers
            .feed
            .run_once()
            .await
            .expect("read the change feed");
    }

    /// Waits until every verification event recorded so far is written.
    pub async fn events_written(&self) {
        self.state.keys.events.written().await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl TestApp {
    /// A second node: another server over the same database (its own connections, caches and
    /// counters), with the same workspace and root key, in cluster mode when `redis_url` is set.
    pub async fn spawn_peer(&self, redis_url: Option<&str>) -> TestApp {
        self.spawn_peer_at(&self.database_url, redis_url).await
    }

    /// [`TestApp::spawn_peer`] reaching the same database through another URL (a proxy's).
    pub async fn spawn_peer_at(&self, database_url: &str, redis_url: Option<&str>) -> TestApp {
        self.peer(database_url, redis_url, self.master_keys.clone())
            .await
    }

    /// A second node over the same database whose vault holds these master keys.
    pub async fn spawn_peer_with_vault(&self, master_keys: Option<Arc<Keyring>>) -> TestApp {
        self.peer(&self.database_url.clone(), None, master_keys)
            .await
    }

    async fn peer(
        &self,
        database_url: &str,
        redis_url: Option<&str>,
        master_keys: Option<Arc<Keyring>>,
    ) -> TestApp {
        let (store, topology) = store::connect_backend(database_url)
            .await
            .expect("open store");
        start_server(
            ServerParts {
                database_url: database_url.to_string(),
                store,
                topology,
                clock: self.clock.clone(),
                workspace_id: self.workspace_id.clone(),
                root_key: self.root_key.clone(),
                root_key_id: self.root_key_id.clone(),
                dir: None,
                master_keys,
            },
            Duration::from_millis(100),
            redis_url.map(str::to_string),
            AnalyticsSettings::default(),
        )
        .await
    }

    /// Stops the server the way SIGTERM does and waits until it has flushed everything; the
    /// database (and its temp dir) stays, for the test to inspect through `store`.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(stopped) = self.stopped.take() {
            stopped.await.expect("server task").expect("server result");
        }
    }

    pub fn now(&self) -> i64 {
        clock_now(&self.clock)
    }

    /// Puts the clock at the start of the next window of `duration_ms` (fixed windows are aligned
    /// to the epoch) and returns that instant.
    pub fn align_clock(&self, duration_ms: i64) -> i64 {
        let start = (self.now() / duration_ms + 1) * duration_ms;
        self.clock.set_ms(start);
        start
    }

    /// Verifies a key with the app's root key (`keys.verifyKey`), asserting a schema-valid 200.
    pub async fn verify(&self, body: Value) -> TestResponse {
        let response = self.post("/v2/keys.verifyKey", body).await;
        response.assert_ok("/v2/keys.verifyKey");
        response
    }

    /// [`TestApp::verify`] of `key` against the permission query `query`.
    pub async fn verify_permissions(&self, key: &str, query: &str) -> TestResponse {
        self.verify(serde_json::json!({"key": key, "permissions": query}))
            .await
    }

    /// POSTs JSON with the app's root key.
    pub async fn post(&self, path: &str, body: Value) -> TestResponse {
        self.post_with_key(path, &self.root_key.clone(), body).await
    }

    /// POSTs JSON with the given root key.
    pub async fn post_with_key(&self, path: &str, key: &str, body: Value) -> TestResponse {
        let request = self
            .client
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(key)
            .json(&body);
        self.send(request).await
    }

    /// Sends any request and checks the invariants every response must hold.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> TestResponse {
        send(request).await
    }

    /// Creates a root key in the app's workspace with exactly these permissions.
    pub async fn root_key_with(&self, permissions: &[&str]) -> (String, String) {
        self.root_key_in(&self.workspace_id.clone(), permissions)
            .await
    }

    /// Creates a root key in `workspace_id`.
    pub async fn root_key_in(&self, workspace_id: &str, permissions: &[&str]) -> (String, String) {
        let permissions: Vec<String> = permissions.iter().map(|p| p.to_string()).collect();
        let key = admin::create_root_key(
            &self.store,
            self.now(),
            workspace_id,
            None,
            &permissions,
            None,
        )
        .await
        .expect("root key");
        (key.record.id, key.plaintext)
    }

    /// Creates a root key in the app's workspace that holds no permission at all; returns its
    /// plaintext. Neither the CLI nor `admin::create_root_key` can make one (an empty list there
    /// means "every permission"), so it goes straight to the store.
    pub async fn root_key_without_permissions(&self) -> String {
        let generated = keyward::domain::keys::hash::generate_root_key();
        let record = keyward::model::RootKey {
            id: keyward::ids::new_id(keyward::ids::Prefix::Key),
            workspace_id: self.workspace_id.clone(),
            name: Some("no permissions".into()),
            hash: generated.hash.clone(),
            start: generated.start.clone(),
            permissions: Vec::new(),
            enabled: true,
            expires: None,
            created_at: self.now(),
        };
        self.store
            .insert_root_key(&record, &[])
            .await
            .expect("root key without permissions");
        generated.plaintext
    }

    /// Creates an API and returns its id.
    pub async fn create_api(&self, name: &str) -> String {
        let response = self
            .post("/v2/apis.createApi", serde_json::json!({ "name": name }))
            .await;
        response.assert_ok("/v2/apis.createApi");
        response.body["data"]["apiId"]
            .as_str()
            .expect("apiId")
            .to_string()
    }

    /// Runs the real `keyward` binary against this app's database.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
            .arg("--database")
            .arg(&self.database_url)
            .arg("--log")
            .arg("warn")
            .args(args)
            .output()
            .expect("run keyward")
    }
}

impl TestResponse {
    /// Asserts a 200 whose `data` conforms to the route's declared response schema.
    pub fn assert_ok(&self, path: &str) {
        assert_eq!(
            self.status, 200,
            "expected 200 from {path}, got {}",
            self.body
        );
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        let (operation, _) = keyward::http::routes::all()
            .into_iter()
            .find(|(op, _)| op.path == path)
            .unwrap_or_else(|| panic!("no operation {path}"));
        if keyward::http::routes::META_ONLY.contains(&path) {
            assert!(
                self.body.get("data").is_none(),
                "{path} answers without data"
            );
            return;
        }
        let errors = operation.response.validate(&self.body["data"]);
        assert!(
            errors.is_empty(),
            "{path} data breaks its schema: {errors:?}\n{}",
            self.body
        );
        if operation.paginated {
            assert!(
                self.body["pagination"]["hasMore"].is_boolean(),
                "{}",
                self.body
            );
        }
    }

    /// Asserts an error envelope: status, `type` path, title and a non-empty detail.
    pub fn assert_error(&self, status: u16, doc_path: &str, title: &str) {
        if let Err(mismatch) = self.check_error(status, doc_path, title) {
            panic!("{mismatch}");
        }
    }

    /// What [`TestResponse::assert_error`] asserts, as a result: `Err` says what differs, for
    /// tests that collect every mismatch before failing.
    pub fn check_error(&self, status: u16, doc_path: &str, title: &str) -> Result<(), String> {
        let body = &self.body;
        if self.status != status {
            return Err(format!(
                "status {} (expected {status}): {body}",
                self.status
            ));
        }
        let error = &body["error"];
        if error["status"] != status {
            return Err(format!("error.status is not {status}: {body}"));
        }
        let Some(kind) = error["type"].as_str() else {
            return Err(format!("no error.type: {body}"));
        };
        if !kind.ends_with(&format!("/docs/errors/{doc_path}")) {
            return Err(format!("type {kind} should end with {doc_path}: {body}"));
        }
        if error["title"] != title {
            return Err(format!("title is not {title:?}: {body}"));
        }
        if error["detail"].as_str().unwrap_or("").is_empty() {
            return Err(format!("empty detail: {body}"));
        }
        let has_errors = matches!(status, 400 | 408 | 413);
        if error.get("errors").is_some() != has_errors {
            return Err(format!(
                "error.errors should be {}: {body}",
                if has_errors { "present" } else { "absent" }
            ));
        }
        Ok(())
    }

    pub fn detail(&self) -> &str {
        self.body["error"]["detail"].as_str().unwrap_or("")
    }
}
