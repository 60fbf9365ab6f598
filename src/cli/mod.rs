//! The command line: `serve` and the operator's commands for workspaces, root keys and APIs
//! (the vault's are in [`vault`]).
//!
//! Configuration is layered defaults -> `KEYWARD_*` environment -> flags (clap does the layering and
//! prints it in `--help`). Operator commands talk to the database directly, so they work with or
//! without a running server; running servers pick their changes up through the change feed.

mod vault;

pub use vault::{MasterKeyArgs, VaultCommand};

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::clock::{SharedClock, SystemClock};
use crate::domain::admin;
use crate::domain::vault::Vault;
use crate::server::{self, ServerConfig};
use crate::store::{self, SharedStore, Topology};

/// The default database: a SQLite file under `./keyward-data/`.
pub const DEFAULT_DATABASE: &str = "sqlite://keyward-data/keyward.db";

#[derive(Parser, Debug)]
#[command(
    name = "keyward",
    version,
    about = "Self-hosted API-key management and rate limiting, speaking Unkey's /v2 API"
)]
pub struct Cli {
    /// Database URL: sqlite://PATH (embedded, the default) or postgres://USER@HOST:PORT/DB.
    #[arg(long, global = true, env = "KEYWARD_DATABASE", default_value = DEFAULT_DATABASE, hide_env_values = true)]
    pub database: String,

    /// Cluster mode: the Redis every node shares rate limits, credits and cache invalidation
    /// through (redis://[:PASSWORD@]HOST:PORT[/DB]). Operator commands given it tell the running
    /// nodes of their changes at once.
    #[arg(long, global = true, env = "KEYWARD_REDIS", hide_env_values = true)]
    pub redis: Option<String>,

    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `keyward=debug`; the access log
    /// is target `keyward::access` (`info,keyward::access=off` silences it).
    #[arg(long, global = true, env = "KEYWARD_LOG", default_value = "info")]
    pub log: String,

    /// Log format on stderr: `text` (colours only when stderr is a terminal and NO_COLOR is
    /// unset) or `json` (one object per line).
    #[arg(long, global = true, env = "KEYWARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// A feature turned on or off.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
}

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's fields.
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the API server (applies migrations first; bootstraps an empty database).
    Serve(Box<ServeArgs>),
    /// Manage workspaces (tenants).
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Manage root keys, the credentials of the management API.
    #[command(subcommand, name = "root-key")]
    RootKey(RootKeyCommand),
    /// Operator settings of APIs.
    #[command(subcommand)]
    Api(ApiCommand),
    /// Migrations: groups of keys imported from another system with keys.migrateKeys.
    #[command(subcommand)]
    Migration(MigrationCommand),
    /// Rate-limit namespaces.
    #[command(subcommand)]
    Namespace(NamespaceCommand),
    /// The audit log: check its hash chain, export it.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The vault of recoverable keys: master keys, data keys, rotation.
    #[command(subcommand)]
    Vault(VaultCommand),
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check a workspace's hash chain: exits 0 and says how many events it holds when every link
    /// holds, else names the first broken one and exits 1.
    Verify {
        #[arg(long)]
        workspace: String,
    },
    /// Write a workspace's audit events as NDJSON (one JSON object per line) to stdout, in log
    /// order, for a SIEM.
    Export {
        #[arg(long)]
        workspace: String,
        /// Only events at or after this time: RFC 3339 (2026-12-01T00:00:00Z) or an age (24h, 7d).
        #[arg(long, value_parser = parse_since)]
        since: Option<i64>,
    },
}

/// `--since`: an RFC 3339 instant, or an age before now; unix milliseconds.
fn parse_since(text: &str) -> Result<i64, String> {
    let at = match humantime::parse_rfc3339_weak(text) {
        Ok(at) => at,
        Err(_) => {
            let age = humantime::parse_duration(text).map_err(|_| {
                "expected RFC 3339 (2026-12-01T00:00:00Z) or an age (24h, 7d)".to_string()
            })?;
            std::time::SystemTime::now()
                .checked_sub(age)
                .ok_or("that age reaches before 1970")?
        }
    };
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| "before 1970".to_string())?
        .as_millis();
    i64::try_from(ms).map_err(|_| "too far in the future".to_string())
}

#[derive(Subcommand, Debug)]
pub enum NamespaceCommand {
    /// Delete a rate-limit namespace: ratelimit.limit answers 410 for it from then on.
    Delete {
        #[arg(long)]
        workspace: String,
        /// The namespace's name or id.
        namespace: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum MigrationCommand {
    /// Register a migration; pass its id to keys.migrateKeys (and to verifyKey as migrationId).
    Create {
        #[arg(long)]
        workspace: String,
        /// How the imported hashes were made.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(crate::domain::keys::migrate::ALGORITHMS))]
        algorithm: String,
        /// Print `{"migrationId": ...}` instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// A positive duration such as `60s`, `500ms` or `2m`.
fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|err| err.to_string())?;
    if interval < std::time::Duration::from_millis(10) {
        return Err("must be at least 10ms".into());
    }
    Ok(interval)
}

/// `--redis-timeout`: an interval of 10ms to 5s.
fn parse_redis_timeout(text: &str) -> Result<std::time::Duration, String> {
    let timeout = parse_interval(text)?;
    if timeout > std::time::Duration::from_secs(5) {
        return Err("must be at most 5s".into());
    }
    Ok(timeout)
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KEYWARD_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: String,
    /// Public base URL of this server, used in error `type` links (default: http://<listen address>).
    #[arg(long, env = "KEYWARD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// How many keys the verification cache holds (about 0.3 KiB each).
    #[arg(long, env = "KEYWARD_KEY_CACHE_CAPACITY", default_value_t = crate::server::DEFAULT_KEY_CACHE_CAPACITY)]
    pub key_cache_capacity: usize,
    /// How often keys' `lastUsedAt` is written from recent verifications (e.g. 60s, 500ms).
    #[arg(long, env = "KEYWARD_LAST_USED_INTERVAL", default_value = "60s", value_parser = parse_interval)]
    pub last_used_interval: std::time::Duration,
    /// How many days audit events are kept (removed hourly past that).
    #[arg(long, env = "KEYWARD_AUDIT_RETENTION_DAYS", default_value_t = crate::domain::audit::DEFAULT_RETENTION_DAYS, value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub audit_retention_days: u32,
    /// The longest a request may take, from its headers to its answer: past it, 503 (a database
    /// that stopped answering), or 408 when the client had not sent its whole body yet.
    #[arg(long, env = "KEYWARD_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_interval)]
    pub request_timeout: std::time::Duration,
    /// Requests slower than this are logged as a warning (target `keyward::slow_request`).
    #[arg(long, env = "KEYWARD_SLOW_REQUEST_THRESHOLD", default_value = "1s", value_parser = parse_interval)]
    pub slow_request_threshold: std::time::Duration,
    /// The longest a client may take to send a request's headers (from connecting, or from the
    /// request's first byte on a kept-alive connection); past it the connection is closed.
    #[arg(long, env = "KEYWARD_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_interval)]
    pub header_read_timeout: std::time::Duration,
    /// How long a kept-alive connection may wait for its next request before it is closed.
    #[arg(long, env = "KEYWARD_IDLE_TIMEOUT", default_value = "75s", value_parser = parse_interval)]
    pub idle_timeout: std::time::Duration,
    /// Connections served at once; more wait in the listen backlog until one closes.
    #[arg(long, env = "KEYWARD_MAX_CONNECTIONS", default_value_t = crate::http::conn::DEFAULT_MAX_CONNECTIONS, value_parser = parse_max_connections)]
    pub max_connections: usize,
    /// Cluster mode: the longest a request waits on Redis before it is decided without it (local
    /// counters for rate limits, the database for credits), from 10ms to 5s. Raise it where Redis
    /// is far or the hosts are busy: each miss sends the node to its fallbacks for a second.
    #[arg(long, env = "KEYWARD_REDIS_TIMEOUT", default_value = "100ms", value_parser = parse_redis_timeout)]
    pub redis_timeout: std::time::Duration,
    /// This node's name in analytics (the `region` column); default: the host name.
    #[arg(long, env = "KEYWARD_REGION", value_parser = parse_region)]
    pub region: Option<String>,
    /// Days of analytics kept: raw events and minute and hour rollups (day rollups at least 365,
    /// month rollups at least 1095); also how far back a query may reach.
    #[arg(long, env = "KEYWARD_ANALYTICS_RETENTION_DAYS", default_value_t = crate::domain::analytics::DEFAULT_RETENTION_DAYS, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub analytics_retention_days: u32,
    /// Analytics queries each workspace may run per hour (0: no quota).
    #[arg(long, env = "KEYWARD_ANALYTICS_QUERY_QUOTA", default_value_t = crate::domain::analytics::DEFAULT_QUERIES_PER_HOUR)]
    pub analytics_query_quota: u32,
    /// How long rollup counts gather in memory before they are written: how far the rollup
    /// tables may lag the raw events, and how much a crash can lose of them (e.g. 30s, 5s).
    #[arg(long, env = "KEYWARD_ANALYTICS_ROLLUP_INTERVAL", default_value = "30s", value_parser = parse_interval)]
    pub analytics_rollup_interval: std::time::Duration,
    /// Serve `GET /metrics` on this address only (e.g. a private interface), not on `--listen`.
    #[arg(long, env = "KEYWARD_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Transparent huge pages for this process: `off` (the default) keeps its memory in 4 KiB
    /// pages, whatever the system's setting; `on` leaves it to the system. With a large key cache
    /// and `always` in /sys/kernel/mm/transparent_hugepage/enabled, huge pages cost tens of MiB
    /// of resident memory for no measurable speed.
    #[arg(long, env = "KEYWARD_HUGE_PAGES", default_value = "off")]
    pub huge_pages: Switch,
    /// The embedded web dashboard at `/` (sign in with a root key): `on` or `off`.
    #[arg(long, env = "KEYWARD_DASHBOARD", default_value = "on")]
    pub dashboard: Switch,
    /// A dashboard session unused for this long is signed out.
    #[arg(long, env = "KEYWARD_DASHBOARD_SESSION_IDLE", default_value = "12h", value_parser = parse_interval)]
    pub dashboard_session_idle: std::time::Duration,
    #[command(flatten)]
    pub vault: MasterKeyArgs,
}

/// A connection cap: at least one.
fn parse_max_connections(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(err) => Err(err.to_string()),
    }
}

/// A region name: 1 to 64 letters, digits, `-`, `_` or `.`.
fn parse_region(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(text.to_string())
    } else {
        Err("use 1 to 64 letters, digits, '-', '_' or '.'".into())
    }
}

/// The machine's host name, for the default region.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .and_then(|name| parse_region(name.trim()).ok())
        .unwrap_or_else(|| "keyward".to_string())
}

#[derive(Subcommand, Debug)]
pub enum WorkspaceCommand {
    /// Create a workspace.
    Create {
        #[arg(long)]
        name: String,
        /// Print `{"workspaceId": ...}` instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Disable a workspace: every call with its root keys is refused.
    Disable { id: String },
    /// Enable a disabled workspace.
    Enable { id: String },
    /// Limit the workspace's calls to the API (every authenticated route, verifyKey and
    /// ratelimit.limit included) per minute, or lift the limit with `none` (the default). Past
    /// it: 429 workspace_rate_limited. Running servers apply a change within a second.
    Limit {
        id: String,
        #[arg(long, value_parser = parse_requests_per_minute)]
        requests_per_minute: RequestsPerMinute,
    },
}

/// `--requests-per-minute`: a count, or `none`.
#[derive(Debug, Clone, Copy)]
pub struct RequestsPerMinute(pub Option<i64>);

fn parse_requests_per_minute(text: &str) -> Result<RequestsPerMinute, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(RequestsPerMinute(None));
    }
    match text.parse::<i64>() {
        Ok(n) if (0..=1_000_000_000).contains(&n) => Ok(RequestsPerMinute(Some(n))),
        _ => Err("use a whole number from 0 to 1000000000, or `none`".into()),
    }
}

#[derive(Subcommand, Debug)]
pub enum RootKeyCommand {
    /// Create a root key and print it once.
    Create {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        name: Option<String>,
        /// A permission such as `api.*.create_key`; repeat for more. None: every permission.
        #[arg(long = "permission")]
        permissions: Vec<String>,
        /// Expire the key after this long, e.g. `90d` or `12h` (default: never).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<std::time::Duration>,
        /// Print `{"keyId": ..., "key": ...}` instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Disable a root key; calls with it get 403 key_disabled.
    Disable { id: String },
    /// Enable a disabled root key.
    Enable { id: String },
    /// Delete a root key for good.
    Delete { id: String },
    /// List a workspace's root keys (never the keys themselves).
    List {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ApiCommand {
    /// Turn on delete protection: apis.deleteApi answers 412 until it is turned off.
    Protect { id: String },
    /// Turn off delete protection.
    Unprotect { id: String },
    /// Accept verifications of this API's keys only from these client IPs (none: from anywhere).
    Whitelist { id: String, ips: Vec<String> },
    /// Allow (`on`) or refuse (`off`) recoverable keys in this API. Not retroactive: keys made
    /// before stay unrecoverable; with `off`, their copies stay but are not shown.
    Recoverable {
        id: String,
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(["on", "off"]))]
        state: String,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log, cli.log_format);
    if let Command::Serve(args) = &cli.command {
        if args.huge_pages == Switch::Off {
            opt_out_of_huge_pages();
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: could not start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Keeps the process's memory in small pages. The allocator reserves memory in large aligned
/// regions; where the system turns every such region into 2 MiB pages, a sparsely used region
/// stays resident whole (with 1,000,000 cached keys under load: 405 MiB at peak instead of 382).
/// The flag holds for the whole process, threads started later included, so it is set before the
/// runtime starts. Failing to set it costs memory, not correctness: a warning, then on.
fn opt_out_of_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(err) = nix::sys::prctl::set_thp_disable(true) {
        tracing::warn!(error = %err, "could not turn transparent huge pages off for this process");
    }
}

/// Logs to stderr in `format`. Colours only for a person at a terminal: a log redirected to a
/// file or collected by a supervisor gets no escape codes, and neither does anyone who set
/// `NO_COLOR` (no-color.org).
fn init_tracing(filter: &str, format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal() && !no_color)
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let (store, topology) = store::connect_backend(&cli.database)
        .await
        .context("could not open the database")?;
    let clock: SharedClock = Arc::new(SystemClock);
    let now = clock.now_ms();
    match cli.command {
        Command::Serve(args) => return serve(store, topology, clock, *args, cli.redis).await,
        Command::Workspace(cmd) => workspace(store, now, cmd).await?,
        Command::RootKey(cmd) => root_key(store, now, cmd).await?,
        Command::Api(cmd) => api(store, now, cmd).await?,
        Command::Migration(cmd) => migration(store, now, cmd).await?,
        Command::Namespace(cmd) => namespace(store, now, cmd).await?,
        // Reads only: nothing to tell the nodes.
        Command::Audit(cmd) => return audit(store, cmd).await,
        // The vault's tables are read by servers as they go: nothing to tell them.
        Command::Vault(cmd) => return vault::run(store, now, cmd).await,
    }
    if let Some(url) = &cli.redis {
        tell_nodes(url).await;
    }
    Ok(())
}

/// After an operator command: asks every running node to read the change feed now, so the
/// change reaches them at once rather than at their next safety poll.
async fn tell_nodes(url: &str) {
    let told = match crate::cluster::link::RedisLink::new(
        url,
        crate::cluster::link::DEFAULT_REDIS_TIMEOUT,
    ) {
        Ok(link) => crate::cluster::changes::announce_poll(&link).await,
        Err(err) => Err(err),
    };
    if let Err(err) = told {
        tracing::warn!(error = %err, "could not tell the running nodes through Redis; they will see the change at their next poll");
    }
}

async fn serve(
    store: SharedStore,
    topology: Topology,
    clock: SharedClock,
    args: ServeArgs,
    redis: Option<String>,
) -> anyhow::Result<()> {
    if redis.is_some() && args.redis_timeout >= args.request_timeout {
        anyhow::bail!(
            "--redis-timeout ({}) must be shorter than --request-timeout ({})",
            humantime::format_duration(args.redis_timeout),
            humantime::format_duration(args.request_timeout)
        );
    }
    if let Some((workspace, key)) = admin::bootstrap(&store, clock.now_ms()).await? {
        println!("keyward: this database was empty, so it now has a first workspace and root key.");
        println!("  workspace: {}", workspace.id);
        println!("  root key:  {}", key.plaintext);
        println!("The root key holds every permission and is shown only this once: store it now.");
    }
    let master_keys = args.vault.keyring()?;
    if let Some(keyring) = &master_keys {
        let vault = Vault::new(keyring.clone(), store.clone());
        let unopenable = vault.unopenable_data_keys().await?;
        if let Some(first) = unopenable.first() {
            tracing::error!(
                count = unopenable.len(),
                example = %first.id,
                sealed_under = %first.master_key_id,
                master_key = keyring.current_id(),
                "vault: some data keys are sealed under a master key this server was not given; their recoverable keys will not decrypt (pass it as --previous-master-key)"
            );
        }
        tracing::info!(
            master_key = keyring.current_id(),
            "vault: recoverable keys on"
        );
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("could not listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let public_url = args.public_url.unwrap_or_else(|| format!("http://{addr}"));
    let cluster = redis.is_some();
    tracing::info!(%addr, backend = store.backend(), %public_url, cluster, "keyward listening");
    let config = ServerConfig {
        public_url,
        key_cache_capacity: args.key_cache_capacity,
        last_used_interval: args.last_used_interval,
        redis_url: redis,
        redis_timeout: args.redis_timeout,
        request_timeout: args.request_timeout,
        slow_request_threshold: args.slow_request_threshold,
        connections: crate::http::conn::ConnectionLimits {
            max_connections: args.max_connections,
            header_read_timeout: args.header_read_timeout,
            idle_timeout: args.idle_timeout,
        },
        audit_retention: std::time::Duration::from_secs(
            u64::from(args.audit_retention_days) * 86_400,
        ),
        region: args.region.unwrap_or_else(host_name),
        analytics: crate::domain::analytics::AnalyticsSettings {
            retention_days: args.analytics_retention_days,
            queries_per_hour: args.analytics_query_quota,
            rollup_interval: args.analytics_rollup_interval,
            ..Default::default()
        },
        master_keys,
        dashboard: (args.dashboard == Switch::On).then_some(server::DashboardConfig {
            session_idle: args.dashboard_session_idle,
        }),
    };
    let mut server = server::build(store, topology, clock, &config)?;
    if let Some(addr) = &args.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("could not listen for metrics on {addr}"))?;
        tracing::info!(addr = %metrics.local_addr()?, "metrics served here only");
        server = server.with_metrics_listener(metrics);
    }
    server.serve(listener, server::shutdown_signal()).await?;
    tracing::info!("keyward stopped");
    Ok(())
}

async fn workspace(store: SharedStore, now: i64, cmd: WorkspaceCommand) -> anyhow::Result<()> {
    match cmd {
        WorkspaceCommand::Create { name, json } => {
            let ws = admin::create_workspace(&store, now, &name).await?;
            if json {
                println!("{}", json!({"workspaceId": ws.id}));
            } else {
                println!("created workspace {} ({})", ws.id, ws.name);
            }
        }
        WorkspaceCommand::Disable { id } => {
            admin::set_workspace_enabled(&store, now, &id, false).await?;
            println!("disabled workspace {id}");
        }
        WorkspaceCommand::Enable { id } => {
            admin::set_workspace_enabled(&store, now, &id, true).await?;
            println!("enabled workspace {id}");
        }
        WorkspaceCommand::Limit {
            id,
            requests_per_minute: RequestsPerMinute(limit),
        } => {
            admin::set_workspace_rate_limit(&store, now, &id, limit).await?;
            match limit {
                Some(n) => println!("workspace {id}: at most {n} API requests per minute"),
                None => println!("workspace {id}: no API rate limit"),
            }
        }
    }
    Ok(())
}

async fn root_key(store: SharedStore, now: i64, cmd: RootKeyCommand) -> anyhow::Result<()> {
    match cmd {
        RootKeyCommand::Create {
            workspace,
            name,
            permissions,
            expires_in,
            json,
        } => {
            let expires = expires_in
                .map(|d| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
            let key = admin::create_root_key(
                &store,
                now,
                &workspace,
                name.as_deref(),
                &permissions,
                expires,
            )
            .await?;
            if json {
                println!("{}", json!({"keyId": key.record.id, "key": key.plaintext}));
            } else {
                println!("created root key {} in {}", key.record.id, workspace);
                println!("  key: {}", key.plaintext);
                println!("  permissions: {}", key.record.permissions.join(", "));
                println!("The key is shown only this once: store it now.");
            }
        }
        RootKeyCommand::Disable { id } => {
            admin::set_root_key_enabled(&store, now, &id, false).await?;
            println!("disabled root key {id}");
        }
        RootKeyCommand::Enable { id } => {
            admin::set_root_key_enabled(&store, now, &id, true).await?;
            println!("enabled root key {id}");
        }
        RootKeyCommand::Delete { id } => {
            admin::delete_root_key(&store, now, &id).await?;
            println!("deleted root key {id}");
        }
        RootKeyCommand::List { workspace, json } => {
            let keys = admin::list_root_keys(&store, &workspace).await?;
            if json {
                let rows: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        json!({"keyId": k.id, "name": k.name, "start": k.start, "enabled": k.enabled,
                               "expires": k.expires, "createdAt": k.created_at, "permissions": k.permissions})
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else if keys.is_empty() {
                println!("no root keys in {workspace}");
            } else {
                println!(
                    "{:<22} {:<12} {:<8} {:<20} PERMISSIONS",
                    "ID", "START", "ENABLED", "NAME"
                );
                for k in keys {
                    println!(
                        "{:<22} {:<12} {:<8} {:<20} {}",
                        k.id,
                        k.start,
                        if k.enabled { "yes" } else { "no" },
                        k.name.as_deref().unwrap_or("-"),
                        k.permissions.len()
                    );
                }
            }
        }
    }
    Ok(())
}

async fn api(store: SharedStore, now: i64, cmd: ApiCommand) -> anyhow::Result<()> {
    match cmd {
        ApiCommand::Protect { id } => {
            admin::set_api_delete_protection(&store, now, &id, true).await?;
            println!("delete protection on for {id}");
        }
        ApiCommand::Unprotect { id } => {
            admin::set_api_delete_protection(&store, now, &id, false).await?;
            println!("delete protection off for {id}");
        }
        ApiCommand::Whitelist { id, ips } => {
            admin::set_api_ip_whitelist(&store, now, &id, &ips).await?;
            if ips.is_empty() {
                println!("{id} accepts verifications from any client IP");
            } else {
                println!("{id} accepts verifications only from {}", ips.join(", "));
            }
        }
        ApiCommand::Recoverable { id, state } => {
            let on = state == "on";
            admin::set_api_recoverable(&store, now, &id, on).await?;
            if on {
                println!("{id}: recoverable keys on (the server needs a master key for them)");
            } else {
                println!("{id}: recoverable keys off");
            }
        }
    }
    Ok(())
}

async fn audit(store: SharedStore, cmd: AuditCommand) -> anyhow::Result<()> {
    use crate::domain::audit::{AuditService, ChainReport};
    use std::io::Write as _;
    let service = AuditService::new(store);
    match cmd {
        AuditCommand::Verify { workspace } => match service.verify(&workspace).await? {
            ChainReport::Intact {
                chained,
                unchained,
                pruned,
            } => {
                println!("audit log of {workspace}: intact, {chained} chained events");
                if unchained > 0 {
                    println!("  ({unchained} earlier events predate the chain and carry no hash)");
                }
                if pruned > 0 {
                    println!("  (the first {pruned} events were removed by the retention period)");
                }
            }
            ChainReport::Broken { seq, id, reason } => {
                println!(
                    "audit log of {workspace}: BROKEN at position {seq} (event {id}): {reason}"
                );
                std::process::exit(1);
            }
        },
        AuditCommand::Export { workspace, since } => {
            let mut out = std::io::BufWriter::new(std::io::stdout());
            let mut write = |e: &crate::model::StoredAuditEvent| -> Result<(), std::io::Error> {
                let line = json!({
                    "id": e.id,
                    "position": e.seq,
                    "time": e.time_ms,
                    "workspaceId": e.workspace_id,
                    "bucket": e.bucket,
                    "event": e.event,
                    "description": e.description,
                    "actor": {"type": e.actor_type, "id": e.actor_id, "name": e.actor_name},
                    "remoteIp": e.remote_ip,
                    "userAgent": e.user_agent,
                    "correlationId": e.correlation_id,
                    "meta": e.meta.as_deref().and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok()),
                    "targets": e.targets,
                    "hash": e.hash,
                    "previousHash": e.prev_hash,
                });
                writeln!(out, "{line}")
            };
            service.for_each(&workspace, since, &mut write).await??;
            out.flush()?;
        }
    }
    Ok(())
}

async fn namespace(store: SharedStore, now: i64, cmd: NamespaceCommand) -> anyhow::Result<()> {
    match cmd {
        NamespaceCommand::Delete {
            workspace,
            namespace,
        } => {
            admin::delete_namespace(&store, now, &workspace, &namespace).await?;
            println!("deleted rate-limit namespace {namespace} in {workspace}");
        }
    }
    Ok(())
}

async fn migration(store: SharedStore, now: i64, cmd: MigrationCommand) -> anyhow::Result<()> {
    match cmd {
        MigrationCommand::Create {
            workspace,
            algorithm,
            json,
        } => {
            if store.get_workspace(&workspace).await?.is_none() {
                anyhow::bail!("workspace '{workspace}' does not exist");
            }
            let migration =
                crate::domain::keys::migrate::create_migration(&store, now, &workspace, &algorithm)
                    .await?;
            if json {
                println!("{}", json!({"migrationId": migration.id}));
            } else {
                println!(
                    "created migration {} ({algorithm}) in {workspace}",
                    migration.id
                );
            }
        }
    }
    Ok(())
}
