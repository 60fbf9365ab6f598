//! What protects a real `keyward serve` from slow and idle clients, seen from raw TCP: the
//! header-read timeout (slowloris), the idle timeout of kept-alive connections, the connection
//! cap, and the modes of the files a first start creates.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use crate::served::{Raw, ServeCommand};

/// Slack for a debug build on a loaded 2-core machine: how late a timeout may fire.
const LATE: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_client_that_dribbles_its_headers_is_disconnected_at_the_header_read_timeout() {
    let timeout = Duration::from_millis(600);
    let served = ServeCommand::new()
        .serve(&["--header-read-timeout", "600ms", "--idle-timeout", "60s"])
        .start()
        .await;
    // Slowloris: a request line, then one more header every 100 ms, never the blank line.
    let mut slow = Raw::connect(served.addr).await;
    let started = tokio::time::Instant::now();
    slow.send(b"POST /v2/liveness HTTP/1.1\r\nHost: keyward\r\n")
        .await
        .unwrap();
    let mut closed = None;
    while started.elapsed() < timeout + LATE {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if slow.send(b"X-Drip: 1\r\n").await.is_err() {
            closed = Some(started.elapsed());
            break;
        }
        if let Some(_after) = slow.closed_within(Duration::from_millis(1)).await {
            closed = Some(started.elapsed());
            break;
        }
    }
    let closed = closed.expect("the server kept a dribbling client past the timeout");
    assert!(
        closed >= timeout - Duration::from_millis(50),
        "closed after {closed:?}, before the {timeout:?} timeout"
    );
    // A client that connects and sends nothing is held no longer.
    let mut silent = Raw::connect(served.addr).await;
    let after = silent
        .closed_within(timeout + LATE)
        .await
        .expect("a silent connection stays open past the header-read timeout");
    assert!(after >= timeout - Duration::from_millis(50), "{after:?}");
    // Meanwhile a client that sends its request in time is served.
    let mut prompt = Raw::connect(served.addr).await;
    assert_eq!(prompt.get("/v2/liveness").await.status, 200);
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_after_the_idle_timeout_and_not_at_the_header_timeout() {
    let idle = Duration::from_millis(1500);
    let served = ServeCommand::new()
        .serve(&["--header-read-timeout", "300ms", "--idle-timeout", "1500ms"])
        .start()
        .await;
    let mut raw = Raw::connect(served.addr).await;
    assert_eq!(raw.get("/v2/liveness").await.status, 200);
    // Idle for longer than the header-read timeout: still open, and serves the next request.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(raw.get("/v2/liveness").await.status, 200);
    let after = raw
        .closed_within(idle + LATE)
        .await
        .expect("an idle connection stays open past the idle timeout");
    assert!(
        after >= idle - Duration::from_millis(50),
        "closed after {after:?} of idleness, before the {idle:?} idle timeout"
    );
}

#[tokio::test]
async fn a_connection_past_max_connections_waits_until_a_served_one_closes() {
    let served = ServeCommand::new()
        .serve(&["--max-connections", "2", "--idle-timeout", "60s"])
        .start()
        .await;
    let mut first = Raw::connect(served.addr).await;
    let mut second = Raw::connect(served.addr).await;
    assert_eq!(first.get("/v2/liveness").await.status, 200);
    assert_eq!(second.get("/v2/liveness").await.status, 200);
    // The third connects (the OS's backlog accepts it) but is not served while both are open.
    let mut third = Raw::connect(served.addr).await;
    third
        .send(b"GET /v2/liveness HTTP/1.1\r\nHost: keyward\r\n\r\n")
        .await
        .unwrap();
    let waiting = third.response(Duration::from_millis(800)).await;
    assert!(
        waiting
            .as_ref()
            .is_err_and(|e| e.starts_with("no complete response")),
        "connection 3 of 2 was answered (or refused): {waiting:?}"
    );
    // The two served ones still are.
    assert_eq!(second.get("/v2/liveness").await.status, 200);
    drop(first);
    let answered = third
        .response(Duration::from_secs(5))
        .await
        .expect("connection 3 is served once connection 1 closed");
    assert_eq!(answered.status, 200);
}

#[tokio::test]
async fn a_body_still_arriving_at_the_request_timeout_is_answered_408_request_timeout() {
    let served = ServeCommand::new()
        .serve(&["--request-timeout", "500ms"])
        .start()
        .await;
    let mut raw = Raw::connect(served.addr).await;
    let started = tokio::time::Instant::now();
    // Headers promising 20 bytes, then 5 of them.
    raw.send(
        format!(
            "POST /v2/apis.createApi HTTP/1.1\r\nHost: keyward\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 20\r\n\r\n{{\"nam",
            served.root_key
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let response = raw
        .response(Duration::from_millis(500) + LATE)
        .await
        .expect("an answer at the request timeout");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450),
        "answered after {took:?}"
    );
    assert_eq!(response.status, 408, "{}", response.body);
    let body: serde_json::Value = serde_json::from_str(&response.body).unwrap();
    let error = &body["error"];
    assert_eq!(error["title"], "Request Timeout", "{body}");
    assert_eq!(error["status"], 408, "{body}");
    assert!(
        error["type"]
            .as_str()
            .unwrap()
            .ends_with("/docs/errors/user/bad_request/request_timeout"),
        "{body}"
    );
    assert_eq!(
        error["detail"], "The request body did not arrive within the request timeout of 500 ms.",
        "{body}"
    );
    assert_eq!(error["errors"][0]["location"], "body", "{body}");
}

#[tokio::test]
async fn a_first_start_creates_the_data_directory_0700_and_the_database_files_0600() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = data.join("nested").join("keyward.db");
    // Under umask 000 too: the modes must not depend on the operator's umask.
    let served = ServeCommand::new()
        .database(&format!("sqlite://{}", db.display()))
        .umask("000")
        .start()
        .await;
    let mut raw = Raw::connect(served.addr).await;
    assert_eq!(raw.get("/v2/liveness").await.status, 200);
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&data), 0o700, "{}", data.display());
    assert_eq!(mode(&data.join("nested")), 0o700);
    let mut files = 0;
    for entry in std::fs::read_dir(data.join("nested")).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files += 1;
    }
    // The database, its write-ahead log and its shared-memory index.
    for suffix in ["", "-wal", "-shm"] {
        let path = data.join("nested").join(format!("keyward.db{suffix}"));
        assert!(path.exists(), "{} was not created", path.display());
    }
    assert!(files >= 3);
}
