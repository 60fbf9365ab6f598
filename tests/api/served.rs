//! One real `keyward serve` child process over a fresh database, for what only the binary shows:
//! its flags, its log on stderr, the files it creates, how it treats raw connections.
//!
//! It listens on port 0 and says where in its log (`keyward listening`, text or JSON), and it
//! bootstraps the empty database, printing the first workspace and root key on stdout. The child
//! is killed when the guard drops; on a panic the tail of its log is printed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Start-up of a debug build, migrations included, on a loaded 2-core machine.
const START_BOUND: Duration = Duration::from_secs(60);

/// A running `keyward serve`.
pub struct Served {
    pub addr: SocketAddr,
    pub base_url: String,
    pub workspace_id: String,
    pub root_key: String,
    child: Option<Child>,
    stderr: PathBuf,
    _logs: tempfile::TempDir,
}

/// How to start one.
pub struct ServeCommand {
    /// The database URL; `None`: a fresh one (SQLite, or PostgreSQL with `KEYWARD_TEST_POSTGRES`).
    pub database: Option<String>,
    /// Flags before `serve` (`--log-format json`, ...). `--log info` is always given first.
    pub global: Vec<String>,
    /// Flags after `serve`.
    pub serve: Vec<String>,
    /// Start the binary under this umask (through `sh`), to see what it creates whatever the
    /// operator's umask.
    pub umask: Option<&'static str>,
}

impl ServeCommand {
    pub fn new() -> Self {
        ServeCommand {
            database: None,
            global: Vec::new(),
            serve: Vec::new(),
            umask: None,
        }
    }

    pub fn database(mut self, url: &str) -> Self {
        self.database = Some(url.to_string());
        self
    }

    /// Runs the binary with this umask (`sh -c 'umask ...; exec keyward ...'`).
    pub fn umask(mut self, umask: &'static str) -> Self {
        self.umask = Some(umask);
        self
    }

    pub fn global(mut self, args: &[&str]) -> Self {
        self.global.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn serve(mut self, args: &[&str]) -> Self {
        self.serve.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub async fn start(self) -> Served {
        let (database, db_dir) = match self.database {
            Some(url) => (url, None),
            None => crate::helpers::fresh_database().await,
        };
        let logs =
            db_dir.unwrap_or_else(|| tempfile::tempdir().expect("temp dir for the child's output"));
        let stdout_path = logs.path().join("stdout.log");
        let stderr_path = logs.path().join("stderr.log");
        let mut args: Vec<String> =
            vec!["--database".into(), database, "--log".into(), "info".into()];
        args.extend(self.global);
        args.push("serve".into());
        args.extend(["--listen".into(), "127.0.0.1:0".into()]);
        args.extend(self.serve);
        let binary = env!("CARGO_BIN_EXE_keyward");
        let mut command = match self.umask {
            Some(umask) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
                    .arg(binary)
                    .args(&args);
                sh
            }
            None => {
                let mut direct = Command::new(binary);
                direct.args(&args);
                direct
            }
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                std::fs::File::create(&stdout_path).expect("stdout file"),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(&stderr_path).expect("stderr file"),
            ))
            .spawn()
            .expect("start keyward serve");
        let mut served = Served {
            addr: "0.0.0.0:0".parse().expect("placeholder address"),
            base_url: String::new(),
            workspace_id: String::new(),
            root_key: String::new(),
            child: Some(child),
            stderr: stderr_path,
            _logs: logs,
        };
        let deadline = Instant::now() + START_BOUND;
        let addr = loop {
            if let Some(addr) = served.stderr_text().lines().find_map(listening_address) {
                break addr;
            }
            let child = served.child.as_mut().expect("child");
            if let Some(status) = child.try_wait().expect("child status") {
                panic!(
                    "keyward serve exited during start-up ({status}); its log:\n{}",
                    served.stderr_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "keyward serve did not listen within {START_BOUND:?}; its log:\n{}",
                served.stderr_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The bootstrap lines are printed before the server listens.
        let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
        let field = |label: &str| {
            stdout
                .lines()
                .find_map(|line| {
                    line.trim()
                        .strip_prefix(label)
                        .map(|v| v.trim().to_string())
                })
                .unwrap_or_else(|| panic!("no `{label}` in keyward's output:\n{stdout}"))
        };
        served.workspace_id = field("workspace:");
        served.root_key = field("root key:");
        served.addr = addr;
        served.base_url = format!("http://{addr}");
        served
    }
}

/// The address of a `keyward listening` log line, text (`addr=...`) or JSON (`"addr":"..."`).
fn listening_address(line: &str) -> Option<SocketAddr> {
    if !line.contains("keyward listening") {
        return None;
    }
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(line) {
        return json["addr"].as_str()?.parse().ok();
    }
    line.split_whitespace()
        .find_map(|word| word.strip_prefix("addr="))?
        .trim_matches('"')
        .parse()
        .ok()
}

impl Served {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    /// Everything the server has logged so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let text = self.stderr_text();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            eprintln!("--- last lines of keyward serve's log ---\n{tail}");
        }
    }
}

/// A raw HTTP/1.1 connection, for what a client library hides: partial requests, slow bodies,
/// kept-alive connections and when the server closes them.
pub struct Raw {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
}

/// A response read off a [`Raw`] connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawResponse {
    /// A header's value (names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        Raw {
            stream: tokio::net::TcpStream::connect(addr)
                .await
                .expect("connect to keyward"),
            buffer: Vec::new(),
        }
    }

    /// Writes `bytes`; `Err` when the server has closed the connection.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt as _;
        self.stream.write_all(bytes).await
    }

    /// A complete `GET path` on this connection, kept alive.
    pub async fn get(&mut self, path: &str) -> RawResponse {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: keyward\r\n\r\n").as_bytes())
            .await
            .expect("send a request");
        self.response(Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// The next response, if complete within `within`: `Err` says whether nothing came in time
    /// or the connection closed.
    pub async fn response(&mut self, within: Duration) -> Result<RawResponse, String> {
        use tokio::io::AsyncReadExt as _;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(response) = self.parse() {
                return Ok(response);
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Err(format!("no complete response within {within:?}")),
                Ok(Ok(0)) => return Err("the server closed the connection".into()),
                Ok(Ok(n)) => self.buffer.extend_from_slice(&chunk[..n]),
                Ok(Err(err)) => return Err(format!("the connection failed: {err}")),
            }
        }
    }

    /// Takes one whole response off the buffer, if it holds one.
    fn parse(&mut self) -> Option<RawResponse> {
        let end = self.buffer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = String::from_utf8_lossy(&self.buffer[..end]).to_string();
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        let mut response = RawResponse {
            status,
            head,
            body: String::new(),
        };
        let length: usize = response
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if self.buffer.len() < end + length {
            return None;
        }
        response.body = String::from_utf8_lossy(&self.buffer[end..end + length]).to_string();
        self.buffer.drain(..end + length);
        Some(response)
    }

    /// How long until the server closes the connection (end of stream or reset), if within
    /// `within`. Bytes the server sends meanwhile are a failure.
    pub async fn closed_within(&mut self, within: Duration) -> Option<Duration> {
        use tokio::io::AsyncReadExt as _;
        let started = tokio::time::Instant::now();
        let mut chunk = [0u8; 1024];
        match tokio::time::timeout(within, self.stream.read(&mut chunk)).await {
            Err(_) => None,
            Ok(Ok(0)) | Ok(Err(_)) => Some(started.elapsed()),
            Ok(Ok(n)) => panic!(
                "expected the connection to close, got {:?}",
                String::from_utf8_lossy(&chunk[..n])
            ),
        }
    }
}
