//! SIGHUP reloads `[[principals]]` from the config file of the real binary:
//! a principal added to the file can call without a restart; a config that
//! fails to load leaves the old principals in force.

#![cfg(unix)]

mod binary_support;

use std::time::Duration;

use binary_support::{write_config, Warden};
use warden::config::token_sha256_hex;

async fn status(base: &str, token: &str) -> u16 {
    let client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
    let answer = client.get(format!("{base}/v2/policies")).bearer_auth(token).send().await.unwrap();
    answer.status().as_u16()
}

async fn until_status(base: &str, token: &str, expected: u16) {
    for _ in 0..200 {
        if status(base, token).await == expected {
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("`{token}` never got {expected}");
}

#[actix_rt::test]
async fn sighup_reloads_principals_and_a_broken_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let warden = Warden::start(&config, &dir.path().join("data"), &dir.path().join("warden.log")).await;
    assert_eq!(status(&warden.base, "dave-token").await, 401, "not a principal yet");

    let mut text = std::fs::read_to_string(&config).unwrap();
    text += &format!(
        "\n[[principals]]\nid = \"us-dave\"\nkind = \"User\"\nroles = []\ntoken_sha256 = \"{}\"\n",
        token_sha256_hex("dave-token")
    );
    std::fs::write(&config, &text).unwrap();
    warden.signal(libc::SIGHUP);
    until_status(&warden.base, "dave-token", 200).await;

    // A broken file: the reload is refused and every principal stays.
    std::fs::write(&config, "this is = not [valid toml").unwrap();
    warden.signal(libc::SIGHUP);
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status(&warden.base, "dave-token").await, 200);
    assert_eq!(status(&warden.base, "alice-admin-token").await, 200);

    // Removing a principal takes its access away.
    std::fs::write(
        &config,
        text.replace("us-dave", "us-dave-gone")
            .replace(&token_sha256_hex("dave-token"), &token_sha256_hex("other-token")),
    )
    .unwrap();
    warden.signal(libc::SIGHUP);
    until_status(&warden.base, "dave-token", 401).await;
    warden.terminate();
}
