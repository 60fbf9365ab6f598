//! Fault injection for the cluster tests: a TCP proxy between a node and PostgreSQL or Redis that
//! the test can cut (every open connection is closed and new ones are closed at once, as when the
//! service goes down), freeze (connections stay open and nothing moves, as when a network path
//! dies silently) and restore, without touching the service itself.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

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
