//! Several real `warden serve` processes sharing one real PostgreSQL journal
//! (started by the test from the machine's packages in a temp dir; the
//! project's `scripts/postgres.sh` installs them when missing), on loopback:
//! a change sent to a standby answered by the leader; the leader killed with
//! SIGKILL ten times under load, losing nothing and never overshooting an
//! organization-wide window; a leader paused with SIGSTOP past its lease
//! fenced off when it resumes.

#![cfg(unix)]
// Each test runs its own single-threaded actix system; the scenario lock is
// meant to be held across awaits (one scenario at a time), and the answer
// logs are only read once the load has stopped.
#![allow(clippy::await_holding_lock)]

mod binary_support;
mod http_support;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::Method;
use binary_support::{principal_toml, Warden};
use http_support::{seed_policy, send, Reply};
use serde_json::{json, Value};
use warden_postgres::testing::TempPostgres;

const ADMIN: &str = "cluster-admin-token";
const SIGNER: &str = "cluster-signer-token";
const APPROVER: &str = "cluster-approver-token";
/// The lease of every node: a dead leader's is taken over within it.
const LEASE_SECONDS: u64 = 3;
/// How long a test waits for a leader to emerge before failing.
const PATIENCE: Duration = Duration::from_secs(40);

/// The scenarios run one at a time: each runs several servers and a database
/// on a two-core machine, and leases are about time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A cluster under test: one database, nodes by name.
struct Cluster {
    _postgres: TempPostgres,
    url: String,
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

/// One node: its fixed port (its advertised URL) and the running process.
struct Node {
    name: String,
    port: u16,
    process: Option<Warden>,
}

impl Node {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Cluster {
    /// A fresh server and database (started off the async runtime: the
    /// PostgreSQL client blocks on a runtime of its own).
    fn new(database: &str) -> Cluster {
        let database = database.to_owned();
        let (postgres, url) = std::thread::spawn(move || {
            let postgres = TempPostgres::start()
                .expect("start a throwaway postgres (scripts/postgres.sh installs it when missing)");
            let url = postgres.create_database(&database).expect("create the test database");
            (postgres, url)
        })
        .join()
        .unwrap();
        Cluster { _postgres: postgres, url, dir: tempfile::tempdir().unwrap(), nodes: Vec::new() }
    }

    /// Starts node `name` on a free port (or its old one, when restarted).
    async fn start(&mut self, name: &str) -> usize {
        let index = match self.nodes.iter().position(|n| n.name == name) {
            Some(index) => index,
            None => {
                self.nodes.push(Node { name: name.to_owned(), port: free_port(), process: None });
                self.nodes.len() - 1
            }
        };
        let node = &self.nodes[index];
        let config = write_config(self.dir.path(), &self.url, name, node.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_warden"));
        command
            .args(["serve", "--config"])
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{}", node.port), "--data-dir"])
            .arg(self.dir.path().join(format!("{name}-data")))
            .env("RUST_LOG", "warden=info")
            .stderr(Stdio::from(log));
        let (process, _) = Warden::spawn(command).await;
        self.nodes[index].process = Some(process);
        index
    }

    /// The node that answers `/healthz/leader` with 200, once one does.
    async fn leader(&self) -> usize {
        let deadline = Instant::now() + PATIENCE;
        loop {
            for (i, node) in self.nodes.iter().enumerate() {
                if node.process.is_some() && health(&node.base(), "/healthz/leader").await.0 == 200 {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no node leads; logs in {}", self.dir.path().display());
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn write_config(dir: &Path, url: &str, node: &str, port: u16) -> PathBuf {
    let mut text = String::from(
        "listen = \"127.0.0.1:1\"   # overridden by --listen\n\
         webhook_allow_private = true   # the test's receiver is on loopback\n\n",
    );
    text += &principal_toml("us-alice", "\"Admin\"", ADMIN);
    text += &principal_toml("us-bob", "\"Signer\"", SIGNER);
    text += &principal_toml("us-1", "", APPROVER);
    text += "[prices]\nETH = \"3000\"\n\n";
    text += &format!("[journal]\nkind = \"postgres\"\nurl = \"{url}\"\n\n");
    text += &format!(
        "[cluster]\nnode_id = \"{node}\"\nadvertise_url = \"http://127.0.0.1:{port}\"\nlease_seconds = {LEASE_SECONDS}\n"
    );
    let path = dir.join(format!("{node}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

async fn call(base: &str, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Option<Reply> {
    let (content_type, bytes) = match body {
        Some(body) => (Some("application/json"), body.to_string().into_bytes()),
        None => (None, Vec::new()),
    };
    let client = awc::Client::builder().timeout(Duration::from_secs(20)).finish();
    send(&client, base, method, path, token, content_type, bytes).await.ok()
}

/// `/healthz` or `/healthz/leader`: status and body (0 when unreachable).
async fn health(base: &str, path: &str) -> (u16, Value) {
    match call(base, Method::GET, path, None, None).await {
        Some(reply) => (reply.status, reply.body),
        None => (0, Value::Null),
    }
}

/// Every activity of the trail, by externalId, as `base` serves it.
async fn trail(base: &str) -> HashMap<String, Value> {
    let mut all = HashMap::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(token) => format!("/v2/activities?limit=1000&paginationToken={token}"),
            None => "/v2/activities?limit=1000".to_owned(),
        };
        let page = call(base, Method::GET, &path, Some(SIGNER), None).await.expect("the trail answers").expect(200);
        for item in page["items"].as_array().unwrap() {
            if let Some(key) = item["activity"]["externalId"].as_str() {
                all.insert(key.to_owned(), item.clone());
            }
        }
        match page["nextPageToken"].as_str() {
            Some(next) => token = Some(next.to_owned()),
            None => return all,
        }
    }
}

/// A small transfer from a wallet without tags: counted by the
/// organization-wide window only.
fn small_transfer(external_id: &str) -> Value {
    json!({
        "kind": "Wallets:Sign",
        "wallet": {"id": "wa-ops", "tags": []},
        "transaction": {"type": "Transfer", "network": "Ethereum",
            "recipient": "0x76d1b7f9b3F69C435eeF76a98A415332084A856F",
            "assets": [{"symbol": "ETH", "decimals": 18, "amount": "1000000000000000"}]},
        "externalId": external_id
    })
}

/// A large treasury transfer: needs an approval (the seed policy; one
/// approver of the three is the quorum here).
fn large_transfer(external_id: &str) -> Value {
    json!({
        "kind": "Wallets:Sign",
        "wallet": {"id": "wa-treasury", "tags": ["treasury"]},
        "transaction": {"type": "Transfer", "network": "Ethereum",
            "recipient": "0x76d1b7f9b3F69C435eeF76a98A415332084A856F",
            "assets": [{"symbol": "ETH", "decimals": 18, "amount": "50000000000000000000"}]},
        "externalId": external_id
    })
}

fn count_window(limit: u64) -> Value {
    json!({
        "name": "Organization count", "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionCountVelocity",
                 "configuration": {"limit": limit, "timeWindow": 86400, "scope": "Organization"}},
        "action": {"kind": "Block"},
        "filters": {"walletId": {"in": ["wa-ops"]}}
    })
}

fn one_approver_policy() -> Value {
    let mut policy = seed_policy();
    policy["action"]["approvalGroups"][0]["quorum"] = json!(1);
    policy
}

#[actix_rt::test]
async fn a_change_sent_to_a_standby_is_answered_by_the_leader() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut cluster = Cluster::new("forwarding");
    cluster.start("node-a").await;
    let leader = cluster.leader().await;
    cluster.start("node-b").await;
    let standby = 1 - leader;
    let (leader_base, standby_base) = (cluster.nodes[leader].base(), cluster.nodes[standby].base());

    // The standby says what it is and where the leader is.
    let deadline = Instant::now() + PATIENCE;
    let said = loop {
        let (status, body) = health(&standby_base, "/healthz").await;
        if status == 200 && body["leader"] == leader_base.as_str() {
            break body;
        }
        assert!(Instant::now() < deadline, "the standby never named the leader: {body}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(said["role"], "standby", "{said}");
    assert_eq!(health(&standby_base, "/healthz/leader").await.0, 503);
    assert_eq!(health(&leader_base, "/healthz").await.1["role"], "leader");

    // A policy created through the standby is the leader's answer...
    let created = call(&standby_base, Method::POST, "/v2/policies", Some(ADMIN), Some(&one_approver_policy()))
        .await
        .unwrap()
        .expect(200);
    let policy_id = created["id"].as_str().unwrap().to_owned();
    let on_leader = call(&leader_base, Method::GET, &format!("/v2/policies/{policy_id}"), Some(SIGNER), None).await;
    assert_eq!(on_leader.unwrap().expect(200)["name"], "Large Transaction Approval");

    // ... and so are an activity and a decision; the standby's own reads
    // follow the journal.
    let activity = call(&standby_base, Method::POST, "/v2/activities", Some(SIGNER), Some(&large_transfer("fw-1")))
        .await
        .unwrap()
        .expect(200);
    assert_eq!(activity["status"], "PendingApproval", "{activity}");
    let approval_id = activity["approvalId"].as_str().unwrap().to_owned();
    let decisions = format!("/v2/policy-approvals/{approval_id}/decisions");
    let body = json!({"value": "Approved", "reason": "checked on a standby"});
    let decided = call(&standby_base, Method::POST, &decisions, Some(APPROVER), Some(&body)).await.unwrap();
    assert_eq!(decided.expect(200)["status"], "Approved");
    let activity_path = format!("/v2/activities/{}", activity["id"].as_str().unwrap());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let seen = call(&standby_base, Method::GET, &activity_path, Some(SIGNER), None).await.unwrap();
        if seen.status == 200 && seen.body["status"] == "Approved" {
            break;
        }
        assert!(Instant::now() < deadline, "the standby never applied the decision: {:?}", seen.body);
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }

    // Bad input forwarded is still the leader's 400, naming the field.
    let bad = call(&standby_base, Method::POST, "/v2/activities", Some(SIGNER), Some(&json!({"kind": 7}))).await;
    bad.unwrap().assert_problem(400, "kind");
    for node in &mut cluster.nodes {
        node.process.take().unwrap().terminate();
    }
}

/// What the load saw answered, to hold the journal to.
#[derive(Default)]
struct Answered {
    /// externalId -> status answered.
    activities: HashMap<String, String>,
    /// approval ids whose decision was answered 200.
    decided: Vec<String>,
}

/// Submits activities (small ones counted by the organization window, large
/// ones needing approval) and decides pending approvals, at whichever node is
/// up, until `stop`.
async fn load(
    bases: Vec<String>,
    worker: usize,
    answered: Arc<Mutex<Answered>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        n += 1;
        let base = &bases[(n as usize + worker) % bases.len()];
        let key = format!("w{worker}-{n}");
        let body = if n % 4 == 0 { large_transfer(&key) } else { small_transfer(&key) };
        if let Some(reply) = call(base, Method::POST, "/v2/activities", Some(SIGNER), Some(&body)).await {
            if reply.status == 200 {
                let status = reply.body["status"].as_str().unwrap().to_owned();
                if let (true, Some(approval)) = (status == "PendingApproval", reply.body["approvalId"].as_str()) {
                    let decisions = format!("/v2/policy-approvals/{approval}/decisions");
                    let decision = json!({"value": "Approved", "reason": "load"});
                    let decided = call(base, Method::POST, &decisions, Some(APPROVER), Some(&decision)).await;
                    if decided.is_some_and(|d| d.status == 200) {
                        answered.lock().unwrap().decided.push(approval.to_owned());
                    }
                }
                answered.lock().unwrap().activities.insert(key, status);
            } else {
                assert!(
                    reply.status == 503 || reply.status == 504,
                    "unexpected answer {}: {}",
                    reply.status,
                    reply.body
                );
            }
        }
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
}

#[actix_rt::test]
async fn the_leader_killed_ten_times_under_load_loses_nothing_and_never_overshoots() {
    const LIMIT: u64 = 60;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut cluster = Cluster::new("failover");
    for name in ["node-a", "node-b", "node-c"] {
        cluster.start(name).await;
    }
    let first = cluster.leader().await;
    let base = cluster.nodes[first].base();
    call(&base, Method::POST, "/v2/policies", Some(ADMIN), Some(&count_window(LIMIT))).await.unwrap().expect(200);
    call(&base, Method::POST, "/v2/policies", Some(ADMIN), Some(&one_approver_policy())).await.unwrap().expect(200);

    let answered = Arc::new(Mutex::new(Answered::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bases: Vec<String> = cluster.nodes.iter().map(Node::base).collect();
    let workers: Vec<_> =
        (0..3).map(|w| actix_rt::spawn(load(bases.clone(), w, answered.clone(), stop.clone()))).collect();

    let mut failovers = Vec::new();
    for round in 0..10 {
        let leader = cluster.leader().await;
        // Let some load land on this leader first.
        actix_rt::time::sleep(Duration::from_millis(400)).await;
        let killed = cluster.nodes[leader].name.clone();
        let process = cluster.nodes[leader].process.take().unwrap();
        process.signal(libc::SIGKILL);
        drop(process);
        let killed_at = Instant::now();
        let next = cluster.leader().await;
        failovers.push(killed_at.elapsed());
        assert_ne!(cluster.nodes[next].name, killed, "round {round}: the killed node cannot lead");
        cluster.start(&killed).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    for worker in workers {
        worker.await.unwrap();
    }
    let millis: Vec<u128> = failovers.iter().map(Duration::as_millis).collect();
    println!("failover times (ms), lease {LEASE_SECONDS} s: {millis:?}");

    // Every answered activity is in the journal with the answered outcome
    // (an approval may have moved on since), every answered decision too.
    let leader = cluster.leader().await;
    let base = cluster.nodes[leader].base();
    let journal = trail(&base).await;
    let answered = answered.lock().unwrap();
    assert!(answered.activities.len() > LIMIT as usize, "the load must reach the window's limit");
    for (key, status) in &answered.activities {
        let found = journal.get(key).unwrap_or_else(|| panic!("answered activity `{key}` ({status}) is lost"));
        let now = found["status"].as_str().unwrap();
        match status.as_str() {
            "PendingApproval" => assert!(
                ["PendingApproval", "Approved", "Denied", "Expired"].contains(&now),
                "`{key}` answered {status}, now {now}"
            ),
            _ => assert_eq!(now, status, "`{key}` answered {status}, now {now}"),
        }
    }
    for approval in &answered.decided {
        let found = call(&base, Method::GET, &format!("/v2/policy-approvals/{approval}"), Some(SIGNER), None).await;
        let found = found.unwrap().expect(200);
        assert_eq!(found["status"], "Approved", "{found}");
    }
    // The organization window never admitted more than its limit, whichever
    // node answered.
    let admitted =
        journal.values().filter(|a| a["activity"]["wallet"]["id"] == "wa-ops" && a["status"] == "Allowed").count();
    assert!(admitted as u64 <= LIMIT, "the window admitted {admitted} > {LIMIT}");
    assert_eq!(admitted as u64, LIMIT, "the load fills the window exactly");
    drop(answered);
    for node in &mut cluster.nodes {
        if let Some(process) = node.process.take() {
            process.terminate();
        }
    }
}

#[actix_rt::test]
async fn a_leader_paused_past_its_lease_is_fenced_off_and_becomes_a_standby() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut cluster = Cluster::new("fencing");
    cluster.start("node-a").await;
    let old = cluster.leader().await;
    cluster.start("node-b").await;
    let new = 1 - old;
    let (old_base, new_base) = (cluster.nodes[old].base(), cluster.nodes[new].base());

    // Requests in flight at the old leader when it pauses, and more sent
    // while it is paused: every answer it gives after it resumes is either
    // an error or a success that the journal holds.
    let answers: Arc<Mutex<Vec<(String, u16, Value)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (answers, stop, base) = (answers.clone(), stop.clone(), old_base.clone());
        actix_rt::spawn(async move {
            let mut n = 0;
            let mut pending = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                n += 1;
                let (answers, base) = (answers.clone(), base.clone());
                pending.push(actix_rt::spawn(async move {
                    let key = format!("paused-{n}");
                    if let Some(reply) =
                        call(&base, Method::POST, "/v2/activities", Some(SIGNER), Some(&small_transfer(&key))).await
                    {
                        answers.lock().unwrap().push((key, reply.status, reply.body));
                    }
                }));
                actix_rt::time::sleep(Duration::from_millis(20)).await;
            }
            for request in pending {
                let _ = request.await;
            }
        })
    };
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let paused = cluster.nodes[old].process.as_ref().unwrap();
    paused.signal(libc::SIGSTOP);
    // The other node takes over once the lease runs out.
    let deadline = Instant::now() + PATIENCE;
    while health(&new_base, "/healthz/leader").await.0 != 200 {
        assert!(Instant::now() < deadline, "the standby never took over:\n{}", cluster.log("node-b"));
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let during = call(&new_base, Method::POST, "/v2/activities", Some(SIGNER), Some(&small_transfer("new-leader-1")))
        .await
        .unwrap()
        .expect(200);
    assert_eq!(during["status"], "Allowed");
    paused.signal(libc::SIGCONT);
    // The old leader becomes a standby that names the new leader.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = health(&old_base, "/healthz").await;
        if status == 200 && body["role"] == "standby" && body["leader"] == new_base.as_str() {
            break;
        }
        assert!(Instant::now() < deadline, "the old leader never became a standby: {body}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    sender.await.unwrap();

    let journal = trail(&new_base).await;
    assert!(journal.contains_key("new-leader-1"));
    let answers = answers.lock().unwrap();
    let mut refused = 0;
    for (key, status, body) in answers.iter() {
        match status {
            200 => {
                let found = journal.get(key).unwrap_or_else(|| panic!("`{key}` was answered 200 but is not journaled"));
                assert_eq!(found["id"], body["id"], "`{key}`");
                assert_eq!(found["status"], body["status"], "`{key}`");
            }
            503 => {
                refused += 1;
                // Either refused before it was journaled, or (a retry-safe
                // case) forwarded after the move: never a success unjournaled.
            }
            other => panic!("`{key}`: unexpected answer {other}: {body}"),
        }
    }
    println!("the paused leader's clients: {} answers, {refused} refused with 503", answers.len());
    // The old leader, now a standby, forwards changes to the new one.
    let forwarded =
        call(&old_base, Method::POST, "/v2/activities", Some(SIGNER), Some(&small_transfer("after-resume"))).await;
    assert_eq!(forwarded.unwrap().expect(200)["status"], "Allowed");
    assert!(trail(&new_base).await.contains_key("after-resume"));
    drop(answers);
    for node in &mut cluster.nodes {
        node.process.take().unwrap().terminate();
    }
}

/// A webhook receiver on a port chosen before it listens: every body it
/// gets is kept.
struct Receiver {
    bodies: Arc<Mutex<Vec<String>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    fn start(port: u16) -> Receiver {
        use actix_web::{web, App, HttpResponse, HttpServer};
        let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
        let kept = web::Data::new(bodies.clone());
        let server = HttpServer::new(move || {
            App::new().app_data(kept.clone()).default_service(web::to(
                |body: web::Bytes, kept: web::Data<Arc<Mutex<Vec<String>>>>| async move {
                    kept.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
                    HttpResponse::Ok().finish()
                },
            ))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", port))
        .unwrap()
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Receiver { bodies, handle }
    }
}

#[actix_rt::test]
async fn webhook_deliveries_resume_on_the_new_leader_after_a_failover() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut cluster = Cluster::new("webhooks");
    cluster.start("node-a").await;
    let old = cluster.leader().await;
    cluster.start("node-b").await;
    let base = cluster.nodes[old].base();
    call(&base, Method::POST, "/v2/policies", Some(ADMIN), Some(&one_approver_policy())).await.unwrap().expect(200);
    // Nothing listens at the receiver's port yet: every delivery fails and
    // waits for its retry.
    let port = free_port();
    let spec = json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["*"]});
    call(&base, Method::POST, "/v2/webhooks", Some(ADMIN), Some(&spec)).await.unwrap().expect(200);
    let mut activities = Vec::new();
    for n in 0..5 {
        let reply =
            call(&base, Method::POST, "/v2/activities", Some(SIGNER), Some(&large_transfer(&format!("wh-{n}"))))
                .await
                .unwrap()
                .expect(200);
        activities.push(reply["id"].as_str().unwrap().to_owned());
    }
    cluster.nodes[old].process.take().unwrap().signal(libc::SIGKILL);
    let receiver = Receiver::start(port);
    let new = cluster.leader().await;
    assert_ne!(new, old);
    // The new leader delivers the dead leader's backlog (at least once).
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let bodies = receiver.bodies.lock().unwrap().clone();
        let missing: Vec<&String> =
            activities.iter().filter(|id| !bodies.iter().any(|b| b.contains(id.as_str()))).collect();
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "events of {missing:?} never delivered:\n{}", cluster.log("node-b"));
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    receiver.handle.stop(true).await;
    for node in &mut cluster.nodes {
        if let Some(process) = node.process.take() {
            process.terminate();
        }
    }
}
