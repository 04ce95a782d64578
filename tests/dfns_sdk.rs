//! The real Dfns SDK against the real server: `scripts/npm-install.sh`
//! installs `@dfns/sdk` and `@dfns/sdk-keysigner` (pinned by
//! `tests/dfns-sdk/package-lock.json`), this test starts `warden serve` on
//! loopback with a config holding the test keys, and `node` runs the seed
//! guide's flow in `tests/dfns-sdk/flow.test.js` through the SDK.

#![cfg(unix)]

mod binary_support;

use std::path::Path;
use std::process::Command;

use binary_support::*;

/// `scripts/npm-install.sh`'s status when node, npm or the registry is unavailable.
const UNAVAILABLE: i32 = 77;

#[actix_rt::test]
async fn the_dfns_sdk_drives_the_seed_flow() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let install = actix_web::web::block(move || Command::new("sh").arg(root.join("scripts/npm-install.sh")).output())
        .await
        .unwrap()
        .expect("sh runs");
    if install.status.code() == Some(UNAVAILABLE) {
        eprintln!(
            "\n!!!!!!!!!! SKIPPED the_dfns_sdk_drives_the_seed_flow: {}!!!!!!!!!!\n",
            String::from_utf8_lossy(&install.stderr)
        );
        return;
    }
    assert!(install.status.success(), "npm install failed: {}", String::from_utf8_lossy(&install.stderr));

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let log = dir.path().join("warden.log");
    let warden = Warden::start(&config, &dir.path().join("data"), &log).await;
    let base = warden.base.clone();
    let flow = actix_web::web::block(move || {
        Command::new("node")
            .arg(root.join("tests/dfns-sdk/flow.test.js"))
            .current_dir(root.join("tests/dfns-sdk"))
            .env("WARDEN_URL", &base)
            .env("KEYS_DIR", root.join("tests/fixtures/keys"))
            .output()
    })
    .await
    .unwrap()
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&flow.stdout);
    let stderr = String::from_utf8_lossy(&flow.stderr);
    if !flow.status.success() {
        let server_log = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = server_log.lines().rev().take(40).collect();
        panic!(
            "the SDK flow failed:\n{stdout}\n{stderr}\n--- server log (last lines) ---\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    assert!(stdout.contains("dfns sdk flow: ok"), "{stdout}");
    eprintln!("{stdout}");
    warden.terminate();
}
