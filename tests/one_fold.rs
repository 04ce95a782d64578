//! The differential test of the one fold: drive an engine over a real redb
//! file through random operations (activities with and without externalIds,
//! decisions, expiries, governed and ungoverned policy changes, webhooks and
//! their deliveries), rebuild a second engine from the same file, and compare
//! every read: the state the live path applied equals the state recovery folds.

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use warden::*;

const APPROVERS: [&str; 4] = ["us-1", "us-2", "us-3", "us-bob"];

fn all<T>(mut page: impl FnMut(&PageRequest) -> Result<Page<T>, Error>) -> Vec<T> {
    let mut items = Vec::new();
    let mut request = PageRequest { limit: Some(7), pagination_token: None };
    loop {
        let next = page(&request).expect("a page reads");
        items.extend(next.items);
        match next.next_page_token {
            Some(token) => request.pagination_token = Some(token),
            None => return items,
        }
    }
}

/// Everything an engine answers to reads, as JSON.
async fn reads(engine: &Engine, windows: &BTreeSet<(String, String)>) -> Value {
    let policies = all(|p| engine.policies(None, p));
    let activities = all(|p| engine.activities(&ActivityFilter::default(), p));
    let approvals = all(|p| engine.approvals(&ApprovalFilter::default(), p));
    let webhooks = all(|p| engine.webhooks(p));
    let mut by_id = Vec::new();
    for p in &policies {
        by_id.push(json!(engine.policy(&p.policy.id).unwrap()));
        if let Some(cr) = &p.pending_change_request {
            by_id.push(json!(engine.change_request(&cr.id).unwrap()));
        }
    }
    for a in &activities {
        by_id.push(json!(engine.activity(&a.id).unwrap()));
    }
    let mut filtered = Vec::new();
    for a in &approvals {
        by_id.push(json!(engine.approval(&a.id).unwrap()));
        for who in APPROVERS {
            let filter = ApprovalFilter { approver_id: Some(who.into()), status: Some(a.status), ..Default::default() };
            filtered.push(json!(all(|p| engine.approvals(&filter, p)).len()));
        }
    }
    let events: Vec<Value> = webhooks.iter().map(|w| json!(all(|p| engine.webhook_events(&w.id, p)))).collect();
    let mut totals = Vec::new();
    for (policy, scope) in windows {
        totals.push(json!([policy, scope, engine.window_total(policy, scope).await]));
    }
    json!({"policies": policies, "activities": activities, "approvals": approvals, "webhooks": webhooks,
           "byId": by_id, "filtered": filtered, "events": events, "totals": totals})
}

fn wallet(rng: &mut StdRng) -> String {
    format!("wa-{}", rng.gen_range(1..=3))
}

fn activity(rng: &mut StdRng, external_ids: &mut Vec<String>) -> ActivityRequest {
    let usd = ["50", "400", "900", "5000", "150000"][rng.gen_range(0..5)];
    let mut patch = json!({"wallet": {"id": wallet(rng), "tags": ["treasury"]}});
    if rng.gen_bool(0.3) {
        let key = match external_ids.len() {
            n if n > 0 && rng.gen_bool(0.5) => external_ids[rng.gen_range(0..n)].clone(),
            n => format!("order-{n}"),
        };
        external_ids.push(key.clone());
        patch["externalId"] = json!(key);
    }
    transfer_with(usd, patch)
}

async fn run(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.redb");
    let clock = ManualClock::new(t0());
    let principals = APPROVERS.iter().map(|id| Principal::user(*id, &[])).chain([admin()]).collect::<Vec<_>>();
    let build = |journal| {
        Engine::builder()
            .clock(clock.clone())
            .journal(journal)
            .principals(principals.clone())
            .webhook_allow_private(true)
            .arbiters(2)
            .build()
    };
    let engine = build(warden_redb::RedbJournal::open(&path).unwrap()).await.unwrap();

    // A receiver that is never there: deliveries are tried and recorded.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let hook: WebhookSpec =
        serde_json::from_value(json!({"url": format!("http://{dead}/hook"), "events": ["*"]})).unwrap();
    engine.create_webhook(hook).await.unwrap();

    let add = |spec: PolicySpec| {
        let engine = engine.clone();
        async move { engine.create_policy(&admin(), spec).await.unwrap() }
    };
    let PolicyChange::Applied(velocity) = add(spec(json!({"name": "daily", "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionAmountVelocity", "configuration": {"limit": "6000", "currency": "USD", "timeWindow": 600}},
        "action": {"kind": "Block"}})))
    .await else { panic!("ungoverned") };
    let mut large = large_transaction_policy();
    large.action.auto_reject_timeout = Some(300);
    add(large).await;
    let mut windows = BTreeSet::new();
    let mut external_ids = Vec::new();
    let mut governed = false;

    for step in 0..150 {
        match rng.gen_range(0..100) {
            0..=49 => {
                let request = activity(&mut rng, &mut external_ids);
                windows.insert((velocity.id.clone(), request.wallet.as_ref().unwrap().id.clone()));
                engine.evaluate(request).await.unwrap();
            }
            50..=74 => {
                let pending = all(|p| {
                    engine.approvals(&ApprovalFilter { status: Some(ApprovalStatus::Pending), ..Default::default() }, p)
                });
                if let Some(approval) = pending.get(rng.gen_range(0..pending.len().max(1))) {
                    let who = user(APPROVERS[rng.gen_range(0..APPROVERS.len())]);
                    let value = if rng.gen_bool(0.8) { DecisionValue::Approved } else { DecisionValue::Denied };
                    // 403s and 409s are part of the run; they change nothing.
                    let _ = engine.decide(&who, &approval.id, value, format!("step {step}")).await;
                }
            }
            75..=84 => {
                clock.advance(chrono::Duration::seconds(rng.gen_range(1..200)));
                engine.expire_due().await;
            }
            85..=89 if !governed => {
                governed = true;
                add(spec(json!({"name": "govern", "activityKind": "Policies:Modify",
                    "rule": {"kind": "AlwaysTrigger", "configuration": {}},
                    "action": {"kind": "RequestApproval", "autoRejectTimeout": 600, "approvalGroups": [
                        {"name": "Admins", "quorum": 1, "approvers": {"userId": {"in": ["us-1", "us-2"]}}}]}})))
                .await;
            }
            85..=94 => {
                // A velocity change: a governed one waits for its approval.
                let limit = ["3000", "6000", "9000"][rng.gen_range(0..3)];
                let window = [300, 600, 1200][rng.gen_range(0..3)];
                let update = spec(json!({"name": "daily", "activityKind": "Wallets:Sign",
                    "rule": {"kind": "TransactionAmountVelocity", "configuration": {"limit": limit, "currency": "USD", "timeWindow": window}},
                    "action": {"kind": "Block"}}));
                match engine.update_policy(&admin(), &velocity.id, update).await {
                    Ok(_) | Err(Error::Conflict(Conflict::ChangePending { .. })) => {}
                    Err(other) => panic!("update failed: {other}"),
                }
            }
            _ => {
                let hook: WebhookSpec = serde_json::from_value(
                    json!({"url": format!("http://{dead}/other"), "events": ["policy.triggered"]}),
                )
                .unwrap();
                let created = engine.create_webhook(hook).await.unwrap();
                if rng.gen_bool(0.5) {
                    engine.delete_webhook(&created.id).await.unwrap();
                }
            }
        }
    }
    // Let some deliveries be tried and recorded.
    actix_rt::time::sleep(std::time::Duration::from_millis(300)).await;
    let totals_before: Vec<Value> = {
        let mut t = Vec::new();
        for (policy, scope) in &windows {
            t.push(json!([policy, scope, engine.window_total(policy, scope).await]));
        }
        t
    };
    engine.shutdown();
    // A delivery outcome committed just before the writer closed is applied
    // by its task once this one yields: let every such task finish.
    actix_rt::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut live = reads(&engine, &BTreeSet::new()).await;
    live["totals"] = json!(totals_before);
    drop(engine);

    let journal = loop {
        match warden_redb::RedbJournal::open(&path) {
            Ok(journal) => break journal,
            Err(_) => actix_rt::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
    let rebuilt = build(journal).await.unwrap();
    let replayed = reads(&rebuilt, &windows).await;
    rebuilt.shutdown();
    for key in ["policies", "activities", "approvals", "webhooks", "byId", "filtered", "events", "totals"] {
        assert_eq!(live[key], replayed[key], "seed {seed}: `{key}` differs between the live engine and its replay");
    }
    assert!(live["activities"].as_array().unwrap().len() > 20, "seed {seed}: the run did something");
}

#[actix_rt::test]
async fn the_live_state_equals_the_state_folded_from_its_journal() {
    for seed in [1, 2, 3] {
        run(seed).await;
    }
}
