//! The bare server: what `keys.verifyKey` would cost with nothing but the HTTP stack, the JSON
//! parser and a hash-map lookup. bench/run.sh drives it beside keyward, so every keyward figure
//! can be read as a fraction of this ceiling.
//!
//! - `GET /v2/liveness` answers `{"meta":{"requestId":…},"data":{"message":"OK"}}`.
//! - `POST /v2/keys.verifyKey` parses `{"key":…}`, hashes the key with SHA-256, looks the digest
//!   up in a map of `--fill` entries and answers a verification-shaped body (`valid` true or
//!   false). It checks no root key, no limits and records nothing.
//!
//! The map holds every line of `--keys FILE` (bench/load_keys.py's key file, so scenario e's
//! random keys are found), then synthetic keys `bare_<i as 32 hex digits>` up to `--fill` entries
//! in all; `bare_00000000000000000000000000000000` is the hot key of the verify scenario.
//!
//! Usage: `keyward-bench-bare --listen 127.0.0.1:PORT [--keys FILE] [--fill N]`

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    keys: HashMap<[u8; 32], String>,
    requests: AtomicU64,
}

#[derive(Deserialize)]
struct VerifyRequest {
    key: String,
}

#[derive(Serialize)]
struct Meta {
    #[serde(rename = "requestId")]
    request_id: String,
}

#[derive(Serialize)]
struct Envelope<T> {
    meta: Meta,
    data: T,
}

#[derive(Serialize)]
struct Liveness {
    message: &'static str,
}

#[derive(Serialize)]
struct Verification<'a> {
    #[serde(rename = "keyId", skip_serializing_if = "Option::is_none")]
    key_id: Option<&'a str>,
    valid: bool,
    code: &'static str,
}

impl Bare {
    fn meta(&self) -> Meta {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        Meta {
            request_id: format!("req_{n:016x}"),
        }
    }
}

async fn liveness(State(bare): State<Arc<Bare>>) -> Json<Envelope<Liveness>> {
    Json(Envelope {
        meta: bare.meta(),
        data: Liveness { message: "OK" },
    })
}

async fn verify(
    State(bare): State<Arc<Bare>>,
    Json(request): Json<VerifyRequest>,
) -> (StatusCode, Vec<u8>) {
    let digest: [u8; 32] = Sha256::digest(request.key.as_bytes()).into();
    let key_id = bare.keys.get(&digest).map(String::as_str);
    let body = Envelope {
        meta: bare.meta(),
        data: Verification {
            key_id,
            valid: key_id.is_some(),
            code: if key_id.is_some() { "VALID" } else { "NOT_FOUND" },
        },
    };
    match serde_json::to_vec(&body) {
        Ok(bytes) => (StatusCode::OK, bytes),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, Vec::new()),
    }
}

fn load(keys_file: Option<&str>, fill: usize) -> std::io::Result<HashMap<[u8; 32], String>> {
    let mut keys = HashMap::with_capacity(fill);
    let mut insert = |plaintext: &str| {
        let id = format!("key_{:016x}", keys.len());
        keys.insert(Sha256::digest(plaintext.as_bytes()).into(), id);
    };
    if let Some(path) = keys_file {
        for line in std::fs::read_to_string(path)?.lines() {
            if !line.is_empty() {
                insert(line);
            }
        }
    }
    let mut i = 0u128;
    while keys.len() < fill {
        let id = format!("key_{:016x}", keys.len());
        keys.insert(Sha256::digest(format!("bare_{i:032x}").as_bytes()).into(), id);
        i += 1;
    }
    Ok(keys)
}

fn usage() -> ! {
    eprintln!("usage: keyward-bench-bare --listen ADDR [--keys FILE] [--fill N]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut listen = None;
    let mut keys_file = None;
    let mut fill = 1_000_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--listen" => listen = Some(value),
            "--keys" => keys_file = Some(value),
            "--fill" => fill = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let listen = listen.unwrap_or_else(|| usage());
    let keys = load(keys_file.as_deref(), fill)?;
    eprintln!("bare: {} keys, listening on {listen}", keys.len());
    let state = Arc::new(Bare {
        keys,
        requests: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/v2/liveness", get(liveness))
        .route("/v2/keys.verifyKey", post(verify))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    axum::serve(listener, app).await
}
