//! How the server holds its memory: `--huge-pages` (Linux only).

use crate::served::ServeCommand;

/// The `THP_enabled` line of a process's `/proc/<pid>/status` (`None` where the kernel has none).
fn thp_enabled(pid: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .map(|value| value.trim().to_string())
}

#[tokio::test]
async fn the_server_keeps_small_pages_unless_huge_pages_are_turned_on() {
    let Some(own) = thp_enabled("self") else {
        eprintln!("skipped: this kernel reports no THP_enabled in /proc/<pid>/status");
        return;
    };
    let default = ServeCommand::new().start().await;
    assert_eq!(
        thp_enabled(&default.pid().to_string()).as_deref(),
        Some("0"),
        "by default the server turns transparent huge pages off for itself"
    );
    drop(default);

    // With `on` the server leaves the setting as it found it: inherited from this test process.
    let on = ServeCommand::new()
        .serve(&["--huge-pages", "on"])
        .start()
        .await;
    assert_eq!(thp_enabled(&on.pid().to_string()), Some(own));
}
