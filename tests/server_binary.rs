//! The real `warden` binary: started with a config file on a free port and a
//! fresh data directory, driven through the seed scenario, stopped with
//! SIGTERM, restarted on the same data directory, and found as it was left.

#![cfg(unix)]

mod http_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use actix_web::http::Method;
use http_support::{seed_policy, send, Reply};
use serde_json::{json, Value};
use warden::config::token_sha256_hex;

const ADMIN: &str = "binary-admin-token";
const SIGNER: &str = "binary-signer-token";
const APPROVERS: [&str; 3] = ["binary-approver-1", "binary-approver-2", "binary-approver-3"];

/// How long the binary may take to start or to stop.
const PATIENCE: Duration = Duration::from_secs(60);

fn write_config(dir: &Path) -> std::path::PathBuf {
    let principal = |id: &str, roles: &str, token: &str| {
        format!(
            "[[principals]]\nid = \"{id}\"\nkind = \"User\"\nroles = [{roles}]\ntoken_sha256 = \"{}\"\n\n",
            token_sha256_hex(token)
        )
    };
    let mut text = String::from(
        "listen = \"127.0.0.1:1\"   # overridden by --listen\n\
         evaluation = \"all-triggered\"\n\
         default_action = \"NoAction\"\n\n",
    );
    text += &principal("us-alice", "\"Admin\"", ADMIN);
    text += &principal("us-bob", "\"Signer\"", SIGNER);
    for (i, token) in APPROVERS.iter().enumerate() {
        text += &principal(&format!("us-{}", i + 1), "", token);
    }
    text += "[prices]\nETH = \"3000\"\n";
    let path = dir.join("warden.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `warden serve`; killed if the test ends without stopping it.
struct Warden {
    child: Child,
    base: String,
    client: awc::Client,
}

impl Warden {
    fn start(config: &Path, data_dir: &Path, log: &Path) -> Warden {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("warden starts");
        let stdout = child.stdout.take().unwrap();
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + PATIENCE;
        let base = loop {
            let line = received
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("warden prints where it listens");
            if let Some(address) = line.strip_prefix("warden listening on ") {
                break address.trim().to_owned();
            }
        };
        let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
        Warden { child, base, client }
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Reply {
        let (content_type, bytes) = match body {
            Some(body) => (Some("application/json"), body.to_string().into_bytes()),
            None => (None, Vec::new()),
        };
        send(&self.client, &self.base, method, path, token, content_type, bytes).await.expect("warden answers")
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            let health = send(&self.client, &self.base, Method::GET, "/healthz", None, None, Vec::new()).await;
            if health.is_ok_and(|reply| reply.status == 200) {
                return;
            }
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("warden did not become healthy");
    }

    /// SIGTERM, then waits for a clean exit.
    fn terminate(mut self) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "warden exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "warden did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Warden {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[actix_rt::test]
async fn the_binary_serves_the_seed_scenario_and_keeps_it_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let data_dir = dir.path().join("data");
    let log = dir.path().join("warden.log");

    let warden = Warden::start(&config, &data_dir, &log);
    warden.wait_healthy().await;
    let policy = warden.call(Method::POST, "/v2/policies", Some(ADMIN), Some(&seed_policy())).await.expect(200);
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
    let activity = warden.call(Method::POST, "/v2/activities", Some(SIGNER), Some(&submitted)).await.expect(200);
    assert_eq!(activity["status"], "PendingApproval", "{activity}");
    let activity_id = activity["id"].as_str().unwrap().to_owned();
    let approval_id = activity["approvalId"].as_str().unwrap().to_owned();

    let decisions = format!("/v2/policy-approvals/{approval_id}/decisions");
    let body = json!({"value": "Approved", "reason": "checked"});
    let first = warden.call(Method::POST, &decisions, Some(APPROVERS[0]), Some(&body)).await.expect(200);
    assert_eq!(first["status"], "Pending");
    let second = warden.call(Method::POST, &decisions, Some(APPROVERS[1]), Some(&body)).await.expect(200);
    assert_eq!(second["status"], "Approved");
    let approved = warden.call(Method::GET, &format!("/v2/activities/{activity_id}"), Some(SIGNER), None).await;
    assert_eq!(approved.expect(200)["status"], "Approved");
    warden.terminate();

    let warden = Warden::start(&config, &data_dir, &log);
    warden.wait_healthy().await;
    let policy_again =
        warden.call(Method::GET, &format!("/v2/policies/{policy_id}"), Some(SIGNER), None).await.expect(200);
    assert_eq!(policy_again["name"], "Large Transaction Approval");
    let activity_again =
        warden.call(Method::GET, &format!("/v2/activities/{activity_id}"), Some(SIGNER), None).await.expect(200);
    assert_eq!(activity_again["status"], "Approved");
    let approval_again =
        warden.call(Method::GET, &format!("/v2/policy-approvals/{approval_id}"), Some(SIGNER), None).await.expect(200);
    assert_eq!(approval_again["status"], "Approved");
    assert_eq!(approval_again["decisions"].as_array().unwrap().len(), 2);
    let replay = warden.call(Method::POST, "/v2/activities", Some(SIGNER), Some(&submitted)).await.expect(200);
    assert_eq!(replay["id"], activity_id.as_str(), "the externalId survives the restart");
    warden.call(Method::GET, "/v2/policies", None, None).await.assert_problem(401, "authorization");
    warden.terminate();
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

    let warden = Warden::start(&config, &data_dir, &log);
    warden.wait_healthy().await;
    warden.call(Method::POST, "/v2/policies", Some(ADMIN), Some(&seed_policy())).await.expect(200);
    let submitted = json!({
        "kind": "Wallets:Sign",
        "wallet": {"id": "wa-1", "tags": ["treasury"]},
        "transaction": {"type": "Transfer", "network": "Ethereum",
            "recipient": "0x76d1b7f9b3F69C435eeF76a98A415332084A856F",
            "assets": [{"symbol": "ETH", "decimals": 18, "amount": "50000000000000000000"}]},
        "externalId": "postgres-req-1"
    });
    let activity = warden.call(Method::POST, "/v2/activities", Some(SIGNER), Some(&submitted)).await.expect(200);
    assert_eq!(activity["status"], "PendingApproval", "{activity}");
    let activity_id = activity["id"].as_str().unwrap().to_owned();
    drop(warden); // SIGKILL: no clean shutdown

    let last = off_runtime(|| warden_postgres::PostgresJournal::open(&url).and_then(|j| j.last_seq()));
    assert!(last.expect("read the journal").is_some_and(|last| last >= 2), "the answers are in postgres");
    assert!(!data_dir.join("warden.redb").exists(), "no redb file is made with a postgres journal");

    let warden = Warden::start(&config, &data_dir, &log);
    warden.wait_healthy().await;
    let again = warden.call(Method::GET, &format!("/v2/activities/{activity_id}"), Some(SIGNER), None).await;
    assert_eq!(again.expect(200)["status"], "PendingApproval");
    let replay = warden.call(Method::POST, "/v2/activities", Some(SIGNER), Some(&submitted)).await.expect(200);
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut token = None;
    let base = loop {
        let line = received.recv_timeout(PATIENCE).expect("output");
        if let Some(t) = line.strip_prefix("WARDEN_TOKEN=") {
            token = Some(t.to_owned());
        }
        if let Some(address) = line.strip_prefix("warden listening on ") {
            break address.trim().to_owned();
        }
    };
    let warden = Warden { child, base, client: awc::Client::default() };
    warden.wait_healthy().await;
    let token = token.expect("development mode prints a token");
    let spec = seed_policy();
    warden.call(Method::POST, "/v2/policies", Some(&token), Some(&spec)).await.expect(200);
    let listed = warden.call(Method::GET, "/v2/policies", Some(&token), None).await.expect(200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    warden.terminate();
}
