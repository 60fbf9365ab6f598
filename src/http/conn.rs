//! Serving connections: the accept loop, with the limits that keep slow or idle clients from
//! holding the server.
//!
//! - At most [`ConnectionLimits::max_connections`] connections are served at once. The loop takes
//!   a slot before it accepts, so a connection past the cap is not accepted: it waits in the
//!   operating system's listen backlog until a served one closes (and is refused by the OS only
//!   when that backlog is full).
//! - A request's headers must arrive within [`ConnectionLimits::header_read_timeout`], counted
//!   from the moment the connection was accepted or, on a kept-alive connection, from the first
//!   byte of the request. A client that dribbles its headers (slowloris) is disconnected then.
//! - A kept-alive connection with no request in progress is closed after
//!   [`ConnectionLimits::idle_timeout`].
//! - Both are checked every eighth of the shorter one, and a phase is timed from the first check
//!   that sees it, so a connection is closed up to a quarter of the shorter limit after its
//!   deadline. Serving a request costs the watch no lock and no clock read.
//! - A request being served has no limit here: `--request-timeout` bounds it (see
//!   [`super::context`]).
//!
//! axum's own `serve` offers none of these, so this module drives hyper's HTTP/1 connections
//! itself, as `axum::serve` does, and hands every request to the same router with the peer's
//! address (`ConnectInfo`). On shutdown it stops accepting, lets each connection finish the
//! request it is serving, and returns once every connection has closed.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower_service::Service;

/// The limits of [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections served at once; past it, new ones wait to be accepted.
    pub max_connections: usize,
    /// The longest a request's headers may take to arrive.
    pub header_read_timeout: Duration,
    /// The longest a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
}

/// Default of [`ConnectionLimits::max_connections`]: far above what the load balancers and
/// clients of one node keep open, below the file descriptors a raised `ulimit -n` allows.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default of [`ConnectionLimits::header_read_timeout`]: a client on a bad mobile link sends a
/// few hundred bytes of headers in well under this.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`ConnectionLimits::idle_timeout`]: longer than the 60 s idle timeout of common load
/// balancers, so the balancer, not keyward, closes an idle kept-alive connection (a server
/// closing it first races the balancer's next request on it).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves, then drains: no new
/// connections, in-flight requests finish, idle connections close. Returns when all are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // A slot first: past the cap, the next connection stays in the listen backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // never closed
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = &mut shutdown => break,
        };
        connections.spawn(serve_connection(
            stream,
            peer,
            router.clone(),
            limits,
            closing_rx.clone(),
            slot,
        ));
    }
    drop(listener);
    let _ = closing_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// What to do when `accept` fails: nothing for the client's own failures; for the server's
/// (out of file descriptors, above all) log and pause, as hyper's server used to, so a full
/// process table is not a busy loop.
async fn accept_failed(err: io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "could not accept a connection (is `ulimit -n` below --max-connections?); retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serves one connection until it closes, its client is too slow or idle, or the server drains.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut closing: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        // The connection's own handle on the router: calling it takes `&mut`, and a clone per
        // request would bump the one reference count that every worker thread shares.
        let router = RefCell::new(router);
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let busy = Busy::start(activity.clone());
            request.extensions_mut().insert(ConnectInfo(peer));
            let routed = router.borrow_mut().call(request.map(axum::body::Body::new));
            async move {
                let response = routed.await;
                drop(busy);
                response
            }
        })
    };
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(connection);
    // The limits are checked on a tick rather than by a timer re-armed at every change of phase:
    // a request then costs the watcher nothing, and a deadline is enforced at most a quarter of
    // the shorter limit late.
    let mut watch = Watch::new(&activity);
    let mut ticks = tokio::time::interval(check_interval(&limits));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
                return;
            }
            _ = closing.changed(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = ticks.tick() => {
                if let Some(reason) = watch.expired(&activity, &limits) {
                    // Dropping the connection closes the socket; no request is in progress.
                    tracing::debug!(%peer, reason, "closing a connection");
                    return;
                }
            }
        }
    }
}

/// How often a connection's limits are checked: an eighth of the shorter one. A phase is timed
/// from the first tick that sees it, so a deadline is enforced at most two ticks (a quarter of
/// the shorter limit) late.
fn check_interval(limits: &ConnectionLimits) -> Duration {
    (limits.header_read_timeout.min(limits.idle_timeout) / 8).max(Duration::from_millis(5))
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A request's headers are due: since the connection was accepted, or since the first byte
    /// of a request on a kept-alive connection.
    Head = 0,
    /// Between requests on a kept-alive connection.
    Idle = 1,
    /// A request is being served.
    Busy = 2,
}

/// A connection's phase, shared by its socket (which sees bytes arrive), its service (which
/// sees requests start and end) and its watcher (which enforces the limits). The request path
/// only swaps a word: no lock and no clock. The word holds the phase in its low two bits and,
/// above them, how many times the phase changed, so the watcher's tick knows when a new phase
/// began even if it flipped and back in between. All three run in the connection's one task.
struct Activity {
    state: AtomicU32,
}

impl Activity {
    fn new() -> Self {
        Activity {
            state: AtomicU32::new(Phase::Head as u32),
        }
    }

    /// The phase and its change count.
    fn load(&self) -> (Phase, u32) {
        let state = self.state.load(Ordering::Relaxed);
        let phase = match state & 3 {
            0 => Phase::Head,
            1 => Phase::Idle,
            _ => Phase::Busy,
        };
        (phase, state >> 2)
    }

    fn set(&self, phase: Phase) {
        let state = self.state.load(Ordering::Relaxed);
        let changes = (state >> 2).wrapping_add(1);
        self.state
            .store((changes << 2) | phase as u32, Ordering::Relaxed);
    }

    /// Bytes arrived: on an idle connection, a request has begun and its headers are now due.
    fn received(&self) {
        if self.load().0 == Phase::Idle {
            self.set(Phase::Head);
        }
    }
}

/// The watcher's view of an [`Activity`]: when it first saw the current phase.
struct Watch {
    seen: (Phase, u32),
    since: Instant,
}

impl Watch {
    fn new(activity: &Activity) -> Self {
        Watch {
            seen: activity.load(),
            since: Instant::now(),
        }
    }

    /// Why the connection is to be closed now, if its phase has outlived its limit.
    fn expired(&mut self, activity: &Activity, limits: &ConnectionLimits) -> Option<&'static str> {
        let now = Instant::now();
        let current = activity.load();
        if current != self.seen {
            self.seen = current;
            self.since = now;
            return None;
        }
        let (limit, reason) = match current.0 {
            Phase::Head => (
                limits.header_read_timeout,
                "request headers not received within --header-read-timeout",
            ),
            Phase::Idle => (limits.idle_timeout, "idle for --idle-timeout"),
            Phase::Busy => return None,
        };
        (now.duration_since(self.since) >= limit).then_some(reason)
    }
}

/// A request being served: the connection is busy until it is dropped, then idle.
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: Arc<Activity>) -> Self {
        activity.set(Phase::Busy);
        Busy(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.set(Phase::Idle);
    }
}

/// The socket, telling the connection's [`Activity`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.received();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
