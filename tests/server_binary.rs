//! The real `warden` binary: started with a config file on a free port and a
//! fresh data directory, driven through the seed scenario, stopped with
//! SIGTERM, restarted on the same data directory, and found as it was left.

#![cfg(unix)]

mod binary_support;
mod http_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use actix_web::http::Method;
use binary_support::{principal_toml, Warden};
use http_support::{seed_policy, send, Reply};
use serde_json::{json, Value};

const ADMIN: &str = "binary-admin-token";
const SIGNER: &str = "binary-signer-token";
const APPROVERS: [&str; 3] = ["binary-approver-1", "binary-approver-2", "binary-approver-3"];

fn write_config(dir: &Path) -> std::path::PathBuf {
    let mut text = String::from(
        "listen = \"127.0.0.1:1\"   # overridden by --listen\n\
         evaluation = \"all-triggered\"\n\
         default_action = \"NoAction\"\n\n",
    );
    text += &principal_toml("us-alice", "\"Admin\"", ADMIN);
    text += &principal_toml("us-bob", "\"Signer\"", SIGNER);
    for (i, token) in APPROVERS.iter().enumerate() {
        text += &principal_toml(&format!("us-{}", i + 1), "", token);
    }
    text += "[prices]\nETH = \"3000\"\n";
    let path = dir.join("warden.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Calls the running binary.
async fn call(warden: &Warden, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Reply {
    let (content_type, bytes) = match body {
        Some(body) => (Some("application/json"), body.to_string().into_bytes()),
        None => (None, Vec::new()),
    };
    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    send(&client, &warden.base, method, path, token, content_type, bytes).await.expect("warden answers")
}

#[actix_rt::test]
async fn the_binary_serves_the_seed_scenario_and_keeps_it_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let data_dir = dir.path().join("data");
    let log = dir.path().join("warden.log");

    let warden = Warden::start(&config, &data_dir, &log).await;
    // A single node leads, and names itself as the leader.
    let health = call(&warden, Method::GET, "/healthz", None, None).await.expect(200);
    assert_eq!(health["role"], "leader", "{health}");
    assert_eq!(health["leader"], warden.base.as_str(), "{health}");
    let policy = call(&warden, Method::POST, "/v2/policies", Some(ADMIN), Some(&seed_policy())).await.expect(200);
    let policy_id = policy["id"].as_str().unwrap().to_owned();

    let submitted = json!({
        "kind": "Wallets:Sign",
        "wallet": {"id": "wa-1", "tags": ["treasury"]},
        "transaction": {"type": "Transfer", "network": "Ethereum",
            "recipient": "0x76d1b7f9b3F69C435eeF76a98A415332084A856F",
            // 50 ETH at the configured 3000 USD: 150000 USD.
            "assets": [{"symbol": "ETH", "decimals": 18, "amount": "50000000000000000000"}]},
        "externalId": "signer-req-8812"
    });
    let activity = call(&warden, Method::POST, "/v2/activities", Some(SIGNER), Some(&submitted)).await.expect(200);
    assert_eq!(activity["status"], "PendingApproval", "{activity}");
    let activity_id = activity["id"].as_str().unwrap().to_owned();
    let approval_id = activity["approvalId"].as_str().unwrap().to_owned();

    let decisions = format!("/v2/policy-approvals/{approval_id}/decisions");
    let body = json!({"value": "Approved", "reason": "checked"});
    let first = call(&warden, Method::POST, &decisions, Some(APPROVERS[0]), Some(&body)).await.expect(200);
    assert_eq!(first["status"], "Pending");
    let second = call(&warden, Method::POST, &decisions, Some(APPROVERS[1]), Some(&body)).await.expect(200);
    assert_eq!(second["status"], "Approved");
    let approved = call(&warden, Method::GET, &format!("/v2/activities/{activity_id}"), Some(SIGNER), None).await;
    assert_eq!(approved.expect(200)["status"], "Approved");
    warden.terminate();

    let warden = Warden::start(&config, &data_dir, &log).await;
    let policy_again =
        call(&warden, Method::GET, &format!("/v2/policies/{policy_id}"), Some(SIGNER), None).await.expect(200);
    assert_eq!(policy_again["name"], "Large Transaction Approval");
    let activity_again =
        call(&warden, Method::GET, &format!("/v2/activities/{activity_id}"), Some(SIGNER), None).await.expect(200);
    assert_eq!(activity_again["status"], "Approved");
    let approval_again = call(&warden, Method::GET, &format!("/v2/policy-approvals/{approval_id}"), Some(SIGNER), None)
        .await
        .expect(200);
    assert_eq!(approval_again["status"], "Approved");
    assert_eq!(approval_again["decisions"].as_array().unwrap().len(), 2);
    let replay = call(&warden, Method::POST, "/v2/activities", Some(SIGNER), Some(&submitted)).await.expect(200);
    assert_eq!(replay["id"], activity_id.as_str(), "the externalId survives the restart");
    call(&warden, Method::GET, "/v2/policies", None, None).await.assert_problem(401, "authorization");
    warden.terminate();
}

/// Whether the last commit of the redb file at `path` was a two-phase one:
/// redb's god byte (byte 9, after its magic number) carries the flag (4).
fn last_commit_was_two_phase(path: &Path) -> bool {
    std::fs::read(path).unwrap()[9] & 4 != 0
}

#[actix_rt::test]
async fn the_binary_commits_through_the_log_unless_told_two_phase() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let log = dir.path().join("warden.log");
    let text = std::fs::read_to_string(&config).unwrap();
    for two_phase in [false, true] {
        let data_dir = dir.path().join(format!("data-{two_phase}"));
        if two_phase {
            std::fs::write(&config, format!("{text}[journal]\ntwo_phase_commit = true\n")).unwrap();
        }
        let warden = Warden::start(&config, &data_dir, &log).await;
        call(&warden, Method::POST, "/v2/policies", Some(ADMIN), Some(&seed_policy())).await.expect(200);
        // Killed (SIGKILL on drop), not stopped: a clean close moves the
        // log's records into redb, which would hide where they were.
        drop(warden);
        let (journal, commit_log) = (data_dir.join("warden.redb"), data_dir.join("warden.redb.log"));
        let policy_name = b"Large Transaction Approval";
        let holds_the_policy = |path: &Path| {
            std::fs::read(path).is_ok_and(|bytes| bytes.windows(policy_name.len()).any(|w| w == policy_name))
        };
        if two_phase {
            assert!(!commit_log.exists(), "two_phase_commit = true commits every batch into redb, without a log");
            assert!(last_commit_was_two_phase(&journal), "two_phase_commit = true");
            assert!(holds_the_policy(&journal), "the answered policy is in redb");
        } else {
            assert!(holds_the_policy(&commit_log), "the answered policy is in the commit log");
            assert!(!holds_the_policy(&journal), "and not yet checkpointed into redb");
        }
    }
}

#[actix_rt::test]
async fn the_binary_journals_in_postgres_and_keeps_every_answer_across_a_kill() {
    use warden::Journal;

    // The PostgreSQL client must not run inside this async test's runtime.
    let (_server, url) = off_runtime(|| {
        let server = warden_postgres::testing::TempPostgres::start()
            .expect("start a throwaway postgres (scripts/postgres.sh installs it when missing)");
        let url = server.create_database("binary").expect("create the database");
        (server, url)
    });
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += &format!("\n[journal]\nkind = \"postgres\"\nurl = \"{url}\"\n");
    std::fs::write(&config, text).unwrap();
    let data_dir = dir.path().join("data");
    let log = dir.path().join("warden.log");

    let warden = Warden::start(&config, &data_dir, &log).await;
    call(&warden, Method::POST, "/v2/policies", Some(ADMIN), Some(&seed_policy())).await.expect(200);
    let submitted = json!({
        "kind": "Wallets:Sign",
        "wallet": {"id": "wa-1", "tags": ["treasury"]},
        "transaction": {"type": "Transfer", "network": "Ethereum",
            "recipient": "0x76d1b7f9b3F69C435eeF76a98A415332084A856F",
            "assets": [{"symbol": "ETH", "decimals": 18, "amount": "50000000000000000000"}]},
        "externalId": "postgres-req-1"
    });
    let activity = call(&warden, Method::POST, "/v2/activities", Some(SIGNER), Some(&submitted)).await.expect(200);
    assert_eq!(activity["status"], "PendingApproval", "{activity}");
    let activity_id = activity["id"].as_str().unwrap().to_owned();
    drop(warden); // SIGKILL: no clean shutdown

    let last = off_runtime(|| warden_postgres::PostgresJournal::open(&url).and_then(|j| j.last_seq()));
    assert!(last.expect("read the journal").is_some_and(|last| last >= 2), "the answers are in postgres");
    assert!(!data_dir.join("warden.redb").exists(), "no redb file is made with a postgres journal");

    let warden = Warden::start(&config, &data_dir, &log).await;
    let again = call(&warden, Method::GET, &format!("/v2/activities/{activity_id}"), Some(SIGNER), None).await;
    assert_eq!(again.expect(200)["status"], "PendingApproval");
    let replay = call(&warden, Method::POST, "/v2/activities", Some(SIGNER), Some(&submitted)).await.expect(200);
    assert_eq!(replay["id"], activity_id.as_str(), "the externalId survives the kill");
    warden.terminate();
}

/// Runs `f` on a thread of its own, outside the test's async runtime.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(f).join().expect("the blocking work panicked"))
}

#[test]
fn a_bad_config_is_refused_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nlisten_port = 8080\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listen_port"), "{stderr}");
}

#[actix_rt::test]
async fn development_mode_prints_a_working_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_warden"));
    command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path().join("data"));
    command.stderr(Stdio::null());
    let (warden, printed) = Warden::spawn(command).await;
    let mut tokens = printed.iter().filter_map(|line| line.strip_prefix("WARDEN_TOKEN="));
    let token = tokens.next().map(str::to_owned);
    assert!(tokens.next().is_none(), "the token is printed once");
    let token = token.expect("development mode prints a token");
    let spec = seed_policy();
    call(&warden, Method::POST, "/v2/policies", Some(&token), Some(&spec)).await.expect(200);
    let listed = call(&warden, Method::GET, "/v2/policies", Some(&token), None).await.expect(200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    warden.terminate();
}
