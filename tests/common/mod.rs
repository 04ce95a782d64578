//! Builders shared by the engine's integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[path = "seed.rs"]
pub mod seed;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use warden::*;
use warden_journal::{Record, Seq};

/// Waits (polling every 10 ms, at most 6 s) until `done` holds.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// 2026-11-22 10:00 UTC, a Sunday.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
}

pub fn admin() -> Principal {
    Principal::user("us-alice", &[Role::Admin])
}

pub fn user(id: &str) -> Principal {
    Principal::user(id, &[])
}

pub fn service(id: &str) -> Principal {
    Principal::service_account(id, &[])
}

pub fn spec(value: Value) -> PolicySpec {
    serde_json::from_value(value).expect("test policy parses")
}

/// Merges `patch` into `base` (objects key by key, anything else replaced).
pub fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// A transfer of `usd` USD from wallet `wa-1` (tag `treasury`) by `us-bob`.
pub fn transfer(usd: &str) -> Value {
    json!({
        "kind": "Wallets:Sign",
        "initiator": {"id": "us-bob", "kind": "User"},
        "wallet": {"id": "wa-1", "tags": ["treasury"]},
        "transaction": {"type": "Transfer", "network": "Ethereum",
            "recipient": "0x76d1b7f9b3F69C435eeF76a98A415332084A856F",
            "assets": [{"symbol": "ETH", "decimals": 18, "amount": "1500000000000000000", "valueUsd": usd}]}
    })
}

pub fn request(value: Value) -> ActivityRequest {
    serde_json::from_value(value).expect("test activity parses")
}

/// `transfer(usd)` with `patch` merged in.
pub fn transfer_with(usd: &str, patch: Value) -> ActivityRequest {
    let mut base = transfer(usd);
    merge(&mut base, patch);
    request(base)
}

/// The seed's large-transaction approval policy.
pub fn large_transaction_policy() -> PolicySpec {
    spec(seed::seed_policy())
}

pub struct Harness {
    pub engine: Engine,
    pub clock: ManualClock,
    pub journal: Arc<MemoryJournal>,
}

/// An engine on a manual clock and a shared in-memory journal.
pub async fn harness(configure: impl FnOnce(EngineBuilder) -> EngineBuilder) -> Harness {
    let clock = ManualClock::new(t0());
    let journal = Arc::new(MemoryJournal::new());
    let builder = Engine::builder().clock(clock.clone()).shared_journal(journal.clone()).arbiters(2);
    let engine = configure(builder).build().await.expect("engine builds");
    Harness { engine, clock, journal }
}

impl Harness {
    /// A second engine on the same journal and clock, as after a restart.
    pub async fn restart(&self, configure: impl FnOnce(EngineBuilder) -> EngineBuilder) -> Engine {
        self.engine.shutdown();
        let builder = Engine::builder().clock(self.clock.clone()).shared_journal(self.journal.clone()).arbiters(2);
        configure(builder).build().await.expect("engine rebuilds")
    }

    pub async fn add_policy(&self, policy: PolicySpec) -> Policy {
        match self.engine.create_policy(&admin(), policy).await.expect("policy is created") {
            PolicyChange::Applied(p) => p,
            PolicyChange::Pending(cr) => panic!("policy change unexpectedly governed: {cr:?}"),
        }
    }

    pub async fn submit(&self, request: ActivityRequest) -> Activity {
        self.engine.evaluate(request).await.expect("activity is evaluated")
    }

    pub async fn approve(&self, who: &Principal, approval_id: &str) -> Result<Approval, Error> {
        self.engine.decide(who, approval_id, DecisionValue::Approved, "checked").await
    }

    pub async fn deny(&self, who: &Principal, approval_id: &str) -> Result<Approval, Error> {
        self.engine.decide(who, approval_id, DecisionValue::Denied, "not ok").await
    }
}

/// A memory journal that counts point reads.
#[derive(Default)]
pub struct CountingReads {
    inner: MemoryJournal,
    reads: AtomicU64,
}

impl CountingReads {
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }
}

impl Journal for CountingReads {
    fn append(&self, payloads: &[Vec<u8>]) -> Result<Seq, JournalError> {
        self.inner.append(payloads)
    }
    fn scan(&self, from: Seq, visit: &mut dyn FnMut(Record) -> Result<(), JournalError>) -> Result<(), JournalError> {
        self.inner.scan(from, visit)
    }
    fn read(&self, seq: Seq) -> Result<Option<Record>, JournalError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read(seq)
    }
    fn last_seq(&self) -> Result<Option<Seq>, JournalError> {
        self.inner.last_seq()
    }
}
