//! The real crash test: the engine runs in a child process on a redb file
//! under concurrent load (activities, decisions, policy changes) and is
//! killed with SIGKILL at random moments, at least 30 times. After each kill a
//! second child recovers the same file and prints the state it finds; every
//! answered activity, decision and policy change must be there with the same
//! outcome, every window must equal the sum of its counted activities, and no
//! approval may be half resolved.
//!
//! The test binary re-executes itself for both child roles (chosen by an
//! environment variable); the children print `ACK ...` after each answer and
//! `STATE ...` lines for the recovered state.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rust_decimal::Decimal;
use serde_json::json;
use warden::*;
use warden_redb::RedbJournal;

/// `load` or `check`, with the journal path; set only in children.
const ROLE_ENV: &str = "WARDEN_CRASH_ROLE";
const PATH_ENV: &str = "WARDEN_CRASH_PATH";
const ROUNDS: u32 = 30;
const FIRST_ACK_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_KILL_DELAY_MS: u64 = 300;
const WALLETS: [&str; 3] = ["wa-a", "wa-b", "wa-c"];
/// Per-wallet USD limit of the velocity policy: reached after a few rounds,
/// so that Blocked answers happen too.
const WINDOW_LIMIT: &str = "3000000";

#[test]
fn engine_crash_child() {
    let (Ok(role), Ok(path)) = (std::env::var(ROLE_ENV), std::env::var(PATH_ENV)) else { return };
    actix::System::new().block_on(async move {
        let journal = RedbJournal::open(&path).expect("child opens the journal");
        let engine = Engine::builder().journal(journal).build().await.expect("child recovers");
        match role.as_str() {
            "load" => load(engine).await,
            _ => print_state(&engine).await,
        }
    });
}

fn ack(line: String) {
    // Stdout is line buffered: one write per answer, after the answer.
    println!("ACK {line}");
}

async fn load(engine: Engine) {
    let admin = admin();
    if engine.policies(None, &PageRequest::default()).unwrap().items.is_empty() {
        let window = spec(json!({"name": "Wallet velocity", "activityKind": "Wallets:Sign",
            "rule": {"kind": "TransactionAmountVelocity", "configuration":
                {"limit": WINDOW_LIMIT, "currency": "USD", "timeWindow": 31_536_000}},
            "action": {"kind": "Block"}}));
        let PolicyChange::Applied(p) = engine.create_policy(&admin, window).await.unwrap() else { unreachable!() };
        ack(format!("policy {} 0", p.id));
        let PolicyChange::Applied(p) = engine.create_policy(&admin, large_policy(0)).await.unwrap() else {
            unreachable!()
        };
        ack(format!("policy {} 0", p.id));
    }
    let pid = std::process::id();
    let queue: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(
        engine
            .approvals(
                &ApprovalFilter { status: Some(ApprovalStatus::Pending), ..Default::default() },
                &PageRequest { limit: Some(1000), ..Default::default() },
            )
            .unwrap()
            .items
            .into_iter()
            .map(|a| a.id)
            .collect(),
    ));
    let mut tasks = Vec::new();
    for task in 0..6u64 {
        let (engine, queue) = (engine.clone(), queue.clone());
        tasks.push(actix::spawn(async move {
            for i in 0u64.. {
                let wallet = WALLETS[((i + task) % 3) as usize];
                let usd = ["1000", "25000", "150000", "300000"][((i * 7 + task) % 4) as usize];
                let request =
                    transfer_with(usd, json!({"wallet": {"id": wallet}, "externalId": format!("{pid}-{task}-{i}")}));
                if let Ok(a) = engine.evaluate(request).await {
                    ack(format!("activity {} {} {wallet} {usd}", a.id, a.status.as_str()));
                    if let Some(approval) = a.approval_id {
                        queue.lock().unwrap().push(approval);
                    }
                }
            }
        }));
    }
    {
        let (engine, queue) = (engine.clone(), queue.clone());
        tasks.push(actix::spawn(async move {
            for round in 0u64.. {
                let next = queue.lock().unwrap().pop();
                let Some(approval) = next else {
                    actix_rt::time::sleep(Duration::from_millis(2)).await;
                    continue;
                };
                let deciders: &[(&str, DecisionValue)] = if round % 5 == 0 {
                    &[("us-3", DecisionValue::Denied)]
                } else {
                    &[("us-1", DecisionValue::Approved), ("us-2", DecisionValue::Approved)]
                };
                for (who, value) in deciders {
                    if let Ok(a) = engine.decide(&user(who), &approval, *value, "load").await {
                        ack(format!("decision {approval} {who} {} {}", a.status.as_str(), a.activity.id));
                    }
                }
            }
        }));
    }
    {
        let engine = engine.clone();
        tasks.push(actix::spawn(async move {
            let large = engine.policies(None, &PageRequest::default()).unwrap().items[1].policy.id.clone();
            let start =
                engine.policy(&large).unwrap().policy.spec.name.rsplit(' ').next().unwrap().parse::<u64>().unwrap();
            for version in start + 1.. {
                if engine.update_policy(&admin, &large, large_policy(version)).await.is_ok() {
                    ack(format!("policy {large} {version}"));
                }
                actix_rt::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    futures_util::future::join_all(tasks).await;
}

fn large_policy(version: u64) -> PolicySpec {
    let mut spec = large_transaction_policy();
    spec.name = format!("Large Transaction Approval v {version}");
    spec.filters = Filters::default();
    spec
}

async fn print_state(engine: &Engine) {
    let all = PageRequest { limit: Some(1000), ..Default::default() };
    let mut page = all.clone();
    loop {
        let activities = engine.activities(&ActivityFilter::default(), &page).unwrap();
        for a in &activities.items {
            if let (Some(wallet), Some(tx)) = (&a.activity.wallet, &a.activity.transaction) {
                let usd = &tx.assets[0].value_usd.as_ref().unwrap().0;
                let approval = a.approval_id.clone().unwrap_or_else(|| "-".into());
                println!("STATE activity {} {} {} {usd} {approval}", a.id, a.status.as_str(), wallet.id);
            }
        }
        match activities.next_page_token {
            Some(token) => page.pagination_token = Some(token),
            None => break,
        }
    }
    let mut page = all.clone();
    loop {
        let approvals = engine.approvals(&ApprovalFilter::default(), &page).unwrap();
        for a in &approvals.items {
            let deciders: Vec<_> = a.decisions.iter().map(|d| d.user_id.clone()).collect();
            let approved_by = a.approval_groups.iter().map(|g| g.approved_by.len()).min().unwrap_or(0);
            println!("STATE approval {} {} {approved_by} {}", a.id, a.status.as_str(), deciders.join(",") + ",");
        }
        match approvals.next_page_token {
            Some(token) => page.pagination_token = Some(token),
            None => break,
        }
    }
    for p in engine.policies(None, &all).unwrap().items {
        println!("STATE policy {} {}", p.policy.id, p.policy.spec.name.rsplit(' ').next().unwrap());
        if p.policy.spec.name == "Wallet velocity" {
            for wallet in WALLETS {
                let total = engine.window_total(&p.policy.id, wallet).await.unwrap();
                println!("STATE window {wallet} {total}");
            }
        }
    }
    println!("STATE done");
}

/// Runs a child in `role` and returns its `ACK`/`STATE` lines; a `load`
/// child is killed with SIGKILL `delay` after its first ack.
fn run_child(path: &Path, role: &str, delay: Option<Duration>) -> Vec<String> {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args(["--exact", "engine_crash_child", "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .env(PATH_ENV, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("child stdout");
    let (first, first_seen) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            // A line cut by the kill is no answer.
            let Ok(line) = line else { break };
            // libtest prints `test engine_crash_child ... ` before the first line.
            let start = ["ACK ", "STATE "].iter().filter_map(|tag| line.find(tag)).min();
            if let Some(start) = start {
                if lines.is_empty() {
                    let _ = first.send(());
                }
                lines.push(line[start..].to_owned());
            }
        }
        lines
    });
    match delay {
        Some(delay) => {
            if first_seen.recv_timeout(FIRST_ACK_TIMEOUT).is_err() {
                let _ = child.kill();
                panic!("the load child answered nothing within {FIRST_ACK_TIMEOUT:?}");
            }
            std::thread::sleep(delay);
            // SIGKILL on unix: no destructor, no flush, no clean close.
            child.kill().expect("kill the load child");
            child.wait().expect("reap the load child");
        }
        None => {
            let status = child.wait().expect("wait for the check child");
            assert!(status.success(), "the recovering child failed: {status}");
        }
    }
    let lines = reader.join().expect("reader");
    if delay.is_none() {
        assert_eq!(lines.last().map(String::as_str), Some("STATE done"), "the recovered state was not printed whole");
    }
    lines
}

#[derive(Default)]
struct Answered {
    /// Activity id -> (status answered, wallet, usd).
    activities: HashMap<String, (String, String, String)>,
    /// (approval, decider) answered.
    decisions: HashSet<(String, String)>,
    /// Approval -> resolution answered.
    resolutions: HashMap<String, String>,
    /// Policy -> highest version answered.
    policies: HashMap<String, u64>,
}

impl Answered {
    fn record(&mut self, line: &str) {
        let words: Vec<&str> = line.split(' ').collect();
        match words[1] {
            "activity" => {
                self.activities.insert(words[2].into(), (words[3].into(), words[4].into(), words[5].into()));
            }
            "decision" => {
                self.decisions.insert((words[2].into(), words[3].into()));
                if words[4] != "Pending" {
                    self.resolutions.insert(words[2].into(), words[4].into());
                }
            }
            "policy" => {
                let version: u64 = words[3].parse().unwrap();
                let entry = self.policies.entry(words[2].into()).or_default();
                *entry = (*entry).max(version);
            }
            other => panic!("unknown ack {other}"),
        }
    }
}

fn verify(round: u32, answered: &Answered, state: &[String]) {
    let mut activities = HashMap::new();
    let mut approvals = HashMap::new();
    let mut policies = HashMap::new();
    let mut windows = HashMap::new();
    for line in state {
        let w: Vec<&str> = line.split(' ').collect();
        match w[1] {
            "activity" => {
                activities
                    .insert(w[2].to_owned(), (w[3].to_owned(), w[4].to_owned(), w[5].to_owned(), w[6].to_owned()));
            }
            "approval" => {
                approvals.insert(w[2].to_owned(), (w[3].to_owned(), w[4].parse::<usize>().unwrap(), w[5].to_owned()));
            }
            "policy" => {
                policies.insert(w[2].to_owned(), w[3].to_owned());
            }
            "window" => {
                windows.insert(w[2].to_owned(), w[3].parse::<Decimal>().unwrap());
            }
            _ => {}
        }
    }
    for (id, (status, wallet, usd)) in &answered.activities {
        let (found, found_wallet, found_usd, _) =
            activities.get(id).unwrap_or_else(|| panic!("round {round}: answered activity {id} is lost"));
        assert_eq!((found_wallet, found_usd), (wallet, usd), "round {round}: activity {id} changed");
        if status != "PendingApproval" {
            assert_eq!(found, status, "round {round}: activity {id} changed outcome");
        }
    }
    for (approval, who) in &answered.decisions {
        let (_, _, deciders) =
            approvals.get(approval).unwrap_or_else(|| panic!("round {round}: approval {approval} is lost"));
        assert!(deciders.contains(&format!("{who},")), "round {round}: decision of {who} on {approval} is lost");
    }
    for (approval, status) in &answered.resolutions {
        assert_eq!(&approvals[approval].0, status, "round {round}: approval {approval} changed outcome");
    }
    for (policy, version) in &answered.policies {
        let found: u64 = policies
            .get(policy)
            .unwrap_or_else(|| panic!("round {round}: policy {policy} is lost"))
            .parse()
            .unwrap_or(0);
        assert!(found >= *version, "round {round}: policy {policy} is at v{found}, v{version} was answered");
    }
    // No approval is half resolved, and every window is the sum of the
    // activities it counted.
    let mut sums: HashMap<String, Decimal> = WALLETS.iter().map(|w| (w.to_string(), Decimal::ZERO)).collect();
    for (id, (status, wallet, usd, approval)) in &activities {
        if approval != "-" {
            let (approval_status, approved_by, _) = &approvals[approval];
            let expected = match approval_status.as_str() {
                "Pending" => "PendingApproval",
                "Approved" => {
                    assert!(*approved_by >= 2, "round {round}: approval {approval} approved without quorum");
                    "Approved"
                }
                other => other,
            };
            assert_eq!(status, expected, "round {round}: activity {id} disagrees with approval {approval}");
        }
        if status == "Allowed" || status == "Approved" {
            *sums.get_mut(wallet).unwrap() += usd.parse::<Decimal>().unwrap();
        }
    }
    if !windows.is_empty() {
        for wallet in WALLETS {
            assert_eq!(windows[wallet], sums[wallet], "round {round}: window of {wallet} is not the sum of its counts");
        }
    }
}

#[test]
fn sigkill_at_random_moments_loses_no_answer() {
    if std::env::var(ROLE_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.redb");
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("crash test seed {seed}");
    let started = Instant::now();
    let mut answered = Answered::default();
    // The kills land at random: on a loaded machine a run of rounds may end
    // before any decision is answered, which proves nothing about decisions.
    // Rounds go on (up to three times as many) until the load answered
    // enough to check.
    let enough = |answered: &Answered| answered.activities.len() > ROUNDS as usize && !answered.decisions.is_empty();
    for round in 1..=3 * ROUNDS {
        if round > ROUNDS && enough(&answered) {
            break;
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(seed % MAX_KILL_DELAY_MS);
        for line in run_child(&path, "load", Some(delay)) {
            answered.record(&line);
        }
        let state = run_child(&path, "check", None);
        verify(round, &answered, &state);
    }
    let states: HashSet<_> = answered.activities.values().map(|(s, _, _)| s.clone()).collect();
    eprintln!(
        "{ROUNDS} kills in {:?}: {} activities ({states:?}), {} decisions answered",
        started.elapsed(),
        answered.activities.len(),
        answered.decisions.len()
    );
    assert!(answered.activities.len() > ROUNDS as usize, "the load answered too little to prove anything");
    assert!(!answered.decisions.is_empty());
}
