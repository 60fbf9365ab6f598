//! Fault injection for the cluster tests: a TCP proxy between a node and PostgreSQL or Redis that
//! the test can cut (every open connection is closed and new ones are closed at once, as when the
//! service goes down), freeze (connections stay open and nothing moves, as when a network path
//! dies silently) and restore, without touching the service itself; and a `redis-server` of a
//! test's own, to stop, pause and restart.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use std::time::Duration;

use crate::helpers::eventually;

/// A cuttable TCP proxy on 127.0.0.1 to `upstream`.
pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    frozen: tokio::sync::watch::Sender<bool>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let (frozen, frozen_rx) = tokio::sync::watch::channel(false);
        let links = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (cut, links) = (cut.clone(), links.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    if cut.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let mut freeze = frozen_rx.clone();
                    let link = tokio::spawn(async move {
                        let frozen = async move {
                            let _ = freeze.wait_for(|frozen| *frozen).await;
                        };
                        tokio::select! {
                            biased;
                            // Frozen: keep both ends open and move nothing, for good.
                            _ = frozen => std::future::pending::<()>().await,
                            _ = async {
                                if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
                                        .await;
                                }
                            } => {}
                        }
                    });
                    links.lock().unwrap().push(link.abort_handle());
                }
            })
            .abort_handle()
        };
        Proxy {
            port,
            cut,
            frozen,
            links,
            accept,
        }
    }

    /// Closes every connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// Stops moving bytes on every connection, old and new, without closing any.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Ends a cut or a freeze (frozen connections are closed; new ones are forwarded).
    pub fn restore(&self) {
        if self.frozen.send_replace(false) {
            for link in self.links.lock().unwrap().drain(..) {
                link.abort();
            }
        }
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }
}

/// The `host:port` of a `scheme://[user@]host:port/...` URL.
pub fn address_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("a URL").1;
    let host_port = rest.split('/').next().expect("host");
    let host_port = host_port.rsplit('@').next().expect("host");
    host_port.parse().expect("an IP:port address")
}

/// `url` with its `host:port` replaced by the proxy's.
pub fn through(url: &str, proxy: &Proxy) -> String {
    let address = address_of(url).to_string();
    url.replacen(&address, &format!("127.0.0.1:{}", proxy.port), 1)
}

/// A `redis-server` of the test's own on a free port, without persistence; killed on drop.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    pub async fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        PrivateRedis::start_on(port).await
    }

    /// Starts it on `port` (again, after [`PrivateRedis::stop`]) and waits until it accepts
    /// connections.
    pub async fn start_on(port: u16) -> PrivateRedis {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start redis-server (scripts/ensure-services.sh installs it)");
        let redis = PrivateRedis {
            port,
            child: Some(child),
        };
        eventually(
            Duration::from_secs(5),
            "the private redis-server accepts connections",
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        )
        .await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a running redis-server").id()
    }

    /// Kills it and waits until it is gone (its port refuses connections from then on).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A frozen server must be thawed for SIGKILL's wait to be prompt on every kernel.
            let _ = std::process::Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
