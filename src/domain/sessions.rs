//! Dashboard sessions: a browser signs in once with a root key and then acts as that key.
//!
//! The browser keeps only a random session id (256 bits). The store keeps its SHA-256 and the root
//! key's stored hash, never the root key itself. Every request re-authenticates that hash through
//! the [`Authenticator`] and its cache, so a root key that is disabled or deleted (or whose
//! workspace is) ends its sessions at the next request: at once on the node that made the change,
//! and within the change feed's poll interval on the others. A session unused for longer than
//! the idle timeout is gone too.
//!
//! Failed sign-ins are counted per client address: past [`SIGN_IN_FAILURES`] in a window of
//! [`SIGN_IN_WINDOW`], the address is refused until the window ends, even with a valid key.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest as _, Sha256};

use crate::clock::SharedClock;
use crate::domain::auth::{AuthFailure, Authenticator, Principal};
use crate::domain::keys::hash::{digest_key, hash_of_digest};
use crate::model::DashboardSession;
use crate::store::{SessionStore, StoreError};

/// Failed sign-ins an address may make per window.
pub const SIGN_IN_FAILURES: u32 = 10;
/// The window failed sign-ins are counted in.
pub const SIGN_IN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// A session's last use is written at most this often (a page view is not worth a write).
const TOUCH_EVERY_MS: i64 = 60_000;
/// Bound on the addresses tracked; past it the oldest windows are dropped.
const THROTTLE_CAPACITY: usize = 100_000;

/// The default idle timeout of a session.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(12 * 60 * 60);

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Too many failures from this address; try again after this many seconds.
    #[error("too many failed sign-ins; retry in {0} s")]
    Throttled(u64),
    /// The key is not a usable root key.
    #[error("the root key was refused: {0}")]
    Refused(AuthFailure),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new session: the id for the cookie (shown to nobody else) and who it acts as.
pub struct SignedIn {
    pub session_id: String,
    pub principal: Arc<Principal>,
}

/// A live session, resolved for one request.
pub struct ActiveSession {
    pub principal: Arc<Principal>,
    /// The token every form of this session must carry back (see [`csrf_token`]).
    pub csrf: String,
}

/// The anti-forgery token of a session: derived from its secret id, so it needs no storage and
/// a page from another site cannot know it.
pub fn csrf_token(session_id: &str) -> String {
    let digest = Sha256::digest(format!("keyward-dashboard-csrf|{session_id}").as_bytes());
    URL_SAFE_NO_PAD.encode(digest)
}

fn id_hash(session_id: &str) -> String {
    hash_of_digest(&Sha256::digest(session_id.as_bytes()).into())
}

/// Signs browsers in and out and resolves their sessions.
pub struct SessionService {
    store: Arc<dyn SessionStore>,
    auth: Arc<Authenticator>,
    clock: SharedClock,
    idle_ms: i64,
    throttle: Mutex<HashMap<IpAddr, Window>>,
}

/// Failures of one address in the current window.
#[derive(Clone, Copy)]
struct Window {
    started: i64,
    failures: u32,
}

impl SessionService {
    pub fn new(
        store: Arc<dyn SessionStore>,
        auth: Arc<Authenticator>,
        clock: SharedClock,
        idle: Duration,
    ) -> Self {
        SessionService {
            store,
            auth,
            clock,
            idle_ms: idle.as_millis().min(i64::MAX as u128) as i64,
            throttle: Mutex::new(HashMap::new()),
        }
    }

    /// The idle timeout, for the cookie's lifetime.
    pub fn idle(&self) -> Duration {
        Duration::from_millis(self.idle_ms as u64)
    }

    /// Checks `root_key` and, when it is a usable root key, opens a session for it.
    pub async fn sign_in(
        &self,
        root_key: &str,
        client: Option<IpAddr>,
    ) -> Result<SignedIn, SignInError> {
        let now = self.clock.now_ms();
        if let Some(wait) = client.and_then(|ip| self.throttled(ip, now)) {
            return Err(SignInError::Throttled(wait));
        }
        let principal = match self.auth.authenticate(root_key).await {
            Ok(principal) => principal,
            Err(AuthFailure::Store(err)) => return Err(err.into()),
            Err(refused) => {
                if let Some(ip) = client {
                    self.count_failure(ip, now);
                }
                return Err(SignInError::Refused(refused));
            }
        };
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let session_id = URL_SAFE_NO_PAD.encode(secret);
        self.store
            .insert_session(&DashboardSession {
                id_hash: id_hash(&session_id),
                workspace_id: principal.workspace_id.clone(),
                root_key_id: principal.root_key_id.clone(),
                root_key_hash: hash_of_digest(&digest_key(root_key)),
                created_at: now,
                last_seen: now,
            })
            .await?;
        Ok(SignedIn {
            session_id,
            principal,
        })
    }

    /// The session behind `session_id`, if it is live and its root key still authenticates.
    /// A session that is not is deleted.
    pub async fn resolve(&self, session_id: &str) -> Result<Option<ActiveSession>, StoreError> {
        let hash = id_hash(session_id);
        let Some(session) = self.store.find_session(&hash).await? else {
            return Ok(None);
        };
        let now = self.clock.now_ms();
        if now.saturating_sub(session.last_seen) > self.idle_ms {
            self.store.delete_session(&hash).await?;
            return Ok(None);
        }
        let principal = match self.auth.authenticate_hash(&session.root_key_hash).await {
            Ok(principal) if principal.root_key_id == session.root_key_id => principal,
            Ok(_) => {
                self.store.delete_session(&hash).await?;
                return Ok(None);
            }
            Err(AuthFailure::Store(err)) => return Err(err),
            Err(_) => {
                self.store.delete_session(&hash).await?;
                return Ok(None);
            }
        };
        if now.saturating_sub(session.last_seen) >= TOUCH_EVERY_MS {
            self.store.touch_session(&hash, now).await?;
        }
        Ok(Some(ActiveSession {
            principal,
            csrf: csrf_token(session_id),
        }))
    }

    /// Ends a session (signing out).
    pub async fn sign_out(&self, session_id: &str) -> Result<(), StoreError> {
        self.store.delete_session(&id_hash(session_id)).await
    }

    /// Deletes sessions idle past the timeout; returns how many.
    pub async fn prune(&self) -> Result<u64, StoreError> {
        let before = self.clock.now_ms().saturating_sub(self.idle_ms);
        self.store.prune_sessions(before).await
    }

    /// Seconds until `ip` may try again, if it has used up its failures.
    fn throttled(&self, ip: IpAddr, now: i64) -> Option<u64> {
        let windows = self.throttle.lock().ok()?;
        let window = windows.get(&ip)?;
        let ends = window.started + SIGN_IN_WINDOW.as_millis() as i64;
        (window.failures >= SIGN_IN_FAILURES && now < ends)
            .then(|| ((ends - now) as u64).div_ceil(1000))
    }

    fn count_failure(&self, ip: IpAddr, now: i64) {
        let Ok(mut windows) = self.throttle.lock() else {
            return;
        };
        let window_ms = SIGN_IN_WINDOW.as_millis() as i64;
        if windows.len() >= THROTTLE_CAPACITY {
            windows.retain(|_, w| now - w.started < window_ms);
        }
        let window = windows.entry(ip).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now - window.started >= window_ms {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_differ_per_session_and_hide_the_id() {
        let a = csrf_token("session-a");
        assert_eq!(a, csrf_token("session-a"));
        assert_ne!(a, csrf_token("session-b"));
        assert!(!a.contains("session-a"));
        assert_ne!(id_hash("session-a"), a);
    }
}
