//! What the benches share: the seed's policies, a stream of realistic
//! activities, N callers driving an engine, and percentiles.
#![allow(dead_code)]

#[path = "../../tests/common/seed.rs"]
pub mod seed;

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{json, Value};
use warden::{ActivityRequest, ActivityStatus, Engine, PolicyChange, PolicySpec, Principal, Role, Wallet};

/// Wallets the activity stream spreads over: one velocity window each, as a
/// signer holding many customer wallets would have.
pub const WALLETS: u64 = 10_000;
/// One activity in this many is over the large-transaction limit (held for
/// approval); the others are allowed and counted in their wallet's window.
pub const LARGE_EVERY: u64 = 20;
/// The recipient of every transfer (the whitelists below list it).
pub const RECIPIENT: &str = "0x76d1b7f9b3F69C435eeF76a98A415332084A856F";

pub fn admin() -> Principal {
    Principal::user("us-alice", &[Role::Admin])
}

pub fn spec(value: Value) -> PolicySpec {
    serde_json::from_value(value).expect("bench policy parses")
}

/// The seed's large-transaction policy: over 100k USD from a treasury wallet
/// needs two of three treasury approvers.
pub fn large_transaction_policy() -> PolicySpec {
    spec(seed::seed_policy())
}

/// A daily per-wallet velocity limit of 1M USD (blocks beyond it).
pub fn velocity_policy() -> PolicySpec {
    spec(json!({
        "name": "Daily Wallet Velocity",
        "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionAmountVelocity",
                 "configuration": {"limit": "1000000", "currency": "USD", "timeWindow": 86400, "scope": "Wallet"}},
        "action": {"kind": "Block"},
        "filters": {"walletTags": {"hasAny": ["treasury"]}},
        "status": "Active"
    }))
}

/// The seed's two policies.
pub fn seed_policies() -> Vec<PolicySpec> {
    vec![large_transaction_policy(), velocity_policy()]
}

/// A rule of each stateless kind, configured so that the bench transfer
/// (4 500 USD of ETH to [`RECIPIENT`]) does not trigger it.
pub fn quiet_stateless_rule(i: usize) -> Value {
    match i % 3 {
        0 => json!({"kind": "TransactionAmountLimit",
                    "configuration": {"limit": (100_000 + i).to_string(), "currency": "USD"}}),
        1 => json!({"kind": "TransactionAmountLimitNominal",
                    "configuration": {"assets": [{"symbol": "ETH", "limit": format!("{}000000000000000000000", 1 + i)}]}}),
        _ => json!({"kind": "TransactionRecipientWhitelist",
                    "configuration": {"addresses": [RECIPIENT, format!("0x{:040x}", i)]}}),
    }
}

/// A rule of each kind, velocity included, that the bench transfer does not
/// trigger (velocity limits far above what a bench can count).
pub fn quiet_rule_any_kind(i: usize) -> Value {
    match i % 5 {
        3 => json!({"kind": "TransactionAmountVelocity",
                    "configuration": {"limit": "1000000000000", "currency": "USD", "timeWindow": 86400}}),
        4 => json!({"kind": "TransactionCountVelocity",
                    "configuration": {"limit": 1_000_000_000u64, "timeWindow": 86400}}),
        k => quiet_stateless_rule(k),
    }
}

/// `rule` as an active `Block` policy with `filters`.
pub fn policy(name: String, rule: Value, filters: Value) -> PolicySpec {
    spec(json!({
        "name": name,
        "activityKind": "Wallets:Sign",
        "rule": rule,
        "action": {"kind": "Block"},
        "filters": filters,
        "status": "Active"
    }))
}

/// `n` policies of which only the first (the seed's large-transaction
/// policy) can match the bench transfer: the others are filtered to other
/// wallets (by `walletId`) or other desks (by wallet tag), with every rule
/// kind among them.
pub fn mostly_filtered_out(n: usize) -> Vec<PolicySpec> {
    let mut specs = Vec::with_capacity(n);
    if n > 0 {
        specs.push(large_transaction_policy());
    }
    for i in 1..n {
        let filters = if i % 2 == 0 {
            json!({"walletId": {"in": [format!("wa-other-{i}")]}})
        } else {
            json!({"walletTags": {"hasAny": [format!("desk-{i}")]}})
        };
        specs.push(policy(format!("Filtered {i}"), quiet_rule_any_kind(i), filters));
    }
    specs
}

/// A policy that blocks every activity: with it, velocity windows are asked
/// (and reserve) but never count, so they stay as they are while measured.
pub fn blocker() -> PolicySpec {
    policy("Block Everything".to_owned(), json!({"kind": "AlwaysTrigger", "configuration": {}}), json!({}))
}

/// `n` policies without filters, all matching the bench transfer: stateless
/// kinds only, none triggering; or every kind (velocity included), the first
/// being [`blocker`] so that the windows stay empty.
pub fn unfiltered(n: usize, velocity: bool) -> Vec<PolicySpec> {
    (0..n)
        .map(|i| match (velocity, i) {
            (true, 0) => blocker(),
            (true, _) => policy(format!("Unfiltered {i}"), quiet_rule_any_kind(i), json!({})),
            (false, _) => policy(format!("Unfiltered {i}"), quiet_stateless_rule(i), json!({})),
        })
        .collect()
}

/// Creates every policy (none is governed, so each applies at once).
pub async fn add_policies(engine: &Engine, specs: Vec<PolicySpec>) {
    let admin = admin();
    for spec in specs {
        match engine.create_policy(&admin, spec).await.expect("bench policy is created") {
            PolicyChange::Applied(_) => {}
            PolicyChange::Pending(_) => panic!("bench policy unexpectedly governed"),
        }
    }
}

/// The seed's transfer: `usd` USD of ETH from wallet `wa-1` (tag `treasury`).
pub fn transfer(usd: &str) -> ActivityRequest {
    serde_json::from_value(json!({
        "kind": "Wallets:Sign",
        "initiator": {"id": "us-bob", "kind": "User"},
        "wallet": {"id": "wa-1", "tags": ["treasury"]},
        "transaction": {"type": "Transfer", "network": "Ethereum",
            "recipient": RECIPIENT,
            "assets": [{"symbol": "ETH", "decimals": 18, "amount": "1500000000000000000", "valueUsd": usd}]}
    }))
    .expect("bench activity parses")
}

/// The activity stream of the durability benches: activity `i` is from
/// wallet `wa-{i % WALLETS}`, carries a unique `externalId` (as a signer
/// sends), and is large (held for approval) one time in [`LARGE_EVERY`].
pub struct Stream {
    small: ActivityRequest,
    large: ActivityRequest,
    run: String,
}

impl Stream {
    /// `run` keeps external ids unique across streams on one engine.
    pub fn new(run: &str) -> Self {
        Stream { small: transfer("4500.00"), large: transfer("150000.00"), run: run.to_owned() }
    }

    pub fn activity(&self, i: u64) -> ActivityRequest {
        // A multiplicative hash, so that large transfers are spread over
        // every wallet rather than tied to `i % WALLETS`.
        let large = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % LARGE_EVERY == 0;
        let mut request = if large { self.large.clone() } else { self.small.clone() };
        request.wallet = Some(Wallet { id: format!("wa-{}", i % WALLETS), tags: vec!["treasury".to_owned()] });
        request.external_id = Some(format!("{}-{i}", self.run));
        request
    }
}

/// Outcome counts of a drive.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcomes {
    pub allowed: u64,
    pub blocked: u64,
    pub pending: u64,
}

/// Runs `total` activities of `stream` (from index `*next` on) through
/// `engine` with `callers` concurrent callers, each sending its next activity
/// when the previous one is answered. Pushes each activity's ack latency into
/// `latencies`; returns the wall time of the whole drive.
pub async fn drive(
    engine: &Engine,
    stream: &Stream,
    next: &Cell<u64>,
    callers: usize,
    total: u64,
    latencies: &RefCell<Vec<Duration>>,
    outcomes: &Cell<Outcomes>,
) -> Duration {
    let end = next.get() + total;
    let started = Instant::now();
    join_all((0..callers).map(|_| async {
        loop {
            let i = next.get();
            if i >= end {
                break;
            }
            next.set(i + 1);
            let request = stream.activity(i);
            let sent = Instant::now();
            let activity = engine.evaluate(request).await.expect("activity is evaluated");
            latencies.borrow_mut().push(sent.elapsed());
            let mut o = outcomes.get();
            match activity.status {
                ActivityStatus::Allowed => o.allowed += 1,
                ActivityStatus::Blocked => o.blocked += 1,
                _ => o.pending += 1,
            }
            outcomes.set(o);
        }
    }))
    .await;
    started.elapsed()
}

/// The `p`-th percentile (0..=100) of sorted samples, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A duration for tables: us below a millisecond, ms above.
pub fn show(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} us")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}
