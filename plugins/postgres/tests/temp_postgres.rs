//! The test helper itself: a start that fails midway cleans up after itself.
//! Alone in its binary, so no other test's server is starting meanwhile.

use warden_postgres::testing::TempPostgres;

#[test]
fn a_start_that_panics_leaves_no_server_and_no_directory_behind() {
    // Inside an async runtime the client's connect panics, midway through
    // the start: the half-started server and its directory must go.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async { TempPostgres::start().map(|server| server.port()) })
    }));
    assert!(started.is_err(), "the client is expected to panic inside a runtime");
    let prefix = format!("warden-pg-{}-", std::process::id());
    let mut left = Vec::new();
    for entry in std::fs::read_dir(std::env::temp_dir()).expect("temp dir") {
        let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) {
            left.push(name);
        }
    }
    assert!(left.is_empty(), "left behind: {left:?}");
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let cmdline = std::fs::read(entry.expect("entry").path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        assert!(!cmdline.contains(&prefix), "a server was left running: {cmdline}");
    }
}
