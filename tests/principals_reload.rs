//! SIGHUP reloads `[[principals]]` from the config file of the real binary:
//! a principal added to the file can call without a restart, the engine
//! counts it (lockout check) and knows its kind (`approverId`); a config that
//! fails to load leaves the old principals in force.

#![cfg(unix)]

mod binary_support;

use std::time::Duration;

use binary_support::{principal_toml, write_config, Warden, PEOPLE};
use serde_json::{json, Value};
use warden::config::token_sha256_hex;

async fn call(base: &str, token: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
    let request = client.request(
        if body.is_some() { awc::http::Method::POST } else { awc::http::Method::GET },
        format!("{base}{path}"),
    );
    let mut answer = match body {
        Some(body) => request.bearer_auth(token).send_json(&body).await.unwrap(),
        None => request.bearer_auth(token).send().await.unwrap(),
    };
    let json = answer.json::<Value>().limit(1 << 20).await.unwrap_or(Value::Null);
    (answer.status().as_u16(), json)
}

/// A governing policy whose one group needs `quorum` of anyone.
fn governance(quorum: usize) -> Value {
    json!({"name": "Policy changes", "activityKind": "Policies:Modify", "rule": {"kind": "AlwaysTrigger"},
           "action": {"kind": "RequestApproval", "approvalGroups": [{"name": "Anyone", "quorum": quorum}]}})
}

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

#[actix_rt::test]
async fn principals_added_by_sighup_count_for_the_lockout_check_and_the_approver_filter() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    // An admin without a key: her changes need no signature.
    let text = std::fs::read_to_string(&config).unwrap() + &principal_toml("us-erin", "\"Admin\"", "erin-token");
    std::fs::write(&config, text).unwrap();
    let known = PEOPLE.len() + 1;
    let warden = Warden::start(&config, &dir.path().join("data"), &dir.path().join("warden.log")).await;
    let admin = "erin-token";
    let held = json!({"name": "Hold everything", "activityKind": "Wallets:Sign", "rule": {"kind": "AlwaysTrigger"},
                      "action": {"kind": "RequestApproval", "approvalGroups": [{"name": "Anyone", "quorum": 1}]}});
    assert_eq!(call(&warden.base, admin, "/v2/policies", Some(held)).await.0, 200);
    let transfer = json!({"kind": "Wallets:Sign", "wallet": {"id": "wa-1"},
                          "transaction": {"type": "Transfer", "network": "Ethereum", "recipient": "0xabc",
                                          "assets": [{"symbol": "ETH", "decimals": 18, "amount": "1"}]}});
    let (status, activity) = call(&warden.base, "bob-signer-token", "/v2/activities", Some(transfer)).await;
    assert_eq!((status, activity["status"].as_str()), (200, Some("PendingApproval")), "{activity}");

    // One more approver than the config has: locked out, so refused.
    let (status, refused) = call(&warden.base, admin, "/v2/policies", Some(governance(known + 1))).await;
    assert_eq!(status, 400, "{refused}");
    // Unknown, `sa-robot` is taken for a User, who may approve in `Anyone`.
    let robot = "/v2/policy-approvals?approverId=sa-robot";
    assert_eq!(call(&warden.base, admin, robot, None).await.1["items"].as_array().map(Vec::len), Some(1));

    let mut text = std::fs::read_to_string(&config).unwrap();
    for (id, kind, token) in [("us-dave", "User", "dave-token"), ("sa-robot", "ServiceAccount", "robot-token")] {
        text += &format!(
            "\n[[principals]]\nid = \"{id}\"\nkind = \"{kind}\"\nroles = []\ntoken_sha256 = \"{}\"\n",
            token_sha256_hex(token)
        );
    }
    std::fs::write(&config, &text).unwrap();
    warden.signal(libc::SIGHUP);
    until_status(&warden.base, "dave-token", 200).await;

    // A service account may not approve in `Anyone` (no
    // `serviceAccountsCanApprove`); the new user may.
    assert_eq!(call(&warden.base, admin, robot, None).await.1["items"].as_array().map(Vec::len), Some(0));
    let dave = "/v2/policy-approvals?approverId=us-dave";
    assert_eq!(call(&warden.base, admin, dave, None).await.1["items"].as_array().map(Vec::len), Some(1));
    // The new user is the approver that was missing.
    let (status, governing) = call(&warden.base, admin, "/v2/policies", Some(governance(known + 1))).await;
    assert_eq!(status, 200, "{governing}");
    warden.terminate();
}
