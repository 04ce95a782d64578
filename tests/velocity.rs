//! Velocity windows through the embedded engine: rolling and calendar spans,
//! scopes, USD, asset and count measures, what counts and when.

mod common;

use chrono::{Duration, TimeZone, Utc};
use common::*;
use serde_json::{json, Value};
use std::sync::Arc;
use warden::*;
use warden_journal::{Record, Seq};

fn velocity(kind: &str, configuration: Value, action: Value) -> PolicySpec {
    spec(json!({"name": "velocity", "activityKind": "Wallets:Sign",
        "rule": {"kind": kind, "configuration": configuration}, "action": action}))
}

fn usd_velocity(limit: &str, extra: Value) -> PolicySpec {
    let mut configuration = json!({"limit": limit, "currency": "USD", "timeWindow": 3600});
    merge(&mut configuration, extra);
    velocity("TransactionAmountVelocity", configuration, json!({"kind": "Block"}))
}

async fn statuses(h: &Harness, values: &[&str]) -> Vec<ActivityStatus> {
    let mut out = Vec::new();
    for v in values {
        out.push(h.submit(transfer_with(v, json!({}))).await.status);
    }
    out
}

use ActivityStatus::{Allowed, Blocked};

#[actix_rt::test]
async fn rolling_usd_window_admits_up_to_the_limit_and_forgets_old_counts() {
    let h = harness(|b| b).await;
    let policy = h.add_policy(usd_velocity("1000", json!({}))).await;
    assert_eq!(statuses(&h, &["600", "300", "200", "100"]).await, [Allowed, Allowed, Blocked, Allowed]);
    assert_eq!(h.engine.window_total(&policy.id, "wa-1").await.as_deref(), Some("1000"));
    h.clock.advance(Duration::seconds(1800));
    assert_eq!(statuses(&h, &["0.01"]).await, [Blocked]);
    h.clock.advance(Duration::seconds(1800));
    assert_eq!(statuses(&h, &["1000"]).await, [Allowed], "the first counts left the window");
    // Another wallet has its own window.
    let other = h.submit(transfer_with("1000", json!({"wallet": {"id": "wa-2"}}))).await;
    assert_eq!(other.status, Allowed);
}

/// A ready window whose lock nobody else holds is checked on its caller's
/// thread: no check crosses to the window's actor, and every one counts.
#[actix_rt::test]
async fn checks_of_a_ready_window_are_taken_on_the_callers_thread() {
    let h = harness(|b| b).await;
    let policy = h.add_policy(usd_velocity("1000", json!({}))).await;
    // The first check starts the window, whose actor starts on its own
    // arbiter meanwhile (and may hold the lock for a moment, which sends
    // that check to it); a read through the actor waits for it to be up.
    assert_eq!(statuses(&h, &["600"]).await, [Allowed]);
    assert_eq!(h.engine.window_total(&policy.id, "wa-1").await.as_deref(), Some("600"));
    let before = h.engine.window_checks_sent_to_actors();
    assert_eq!(statuses(&h, &["300", "200", "100"]).await, [Allowed, Blocked, Allowed]);
    assert_eq!(h.engine.window_total(&policy.id, "wa-1").await.as_deref(), Some("1000"));
    assert_eq!(h.engine.window_checks_sent_to_actors(), before, "no check of the ready window went to its actor");
}

#[actix_rt::test]
async fn the_reason_says_what_the_window_holds() {
    let h = harness(|b| b).await;
    h.add_policy(usd_velocity("1000", json!({}))).await;
    h.submit(transfer_with("900", json!({}))).await;
    let blocked = h.submit(transfer_with("200", json!({}))).await;
    assert_eq!(blocked.status, Blocked);
    assert!(blocked.policy_evaluations[0].reason.contains("900 USD"), "{}", blocked.policy_evaluations[0].reason);
    assert!(blocked.policy_evaluations[0].reason.contains("exceeds limit 1000 USD"));
}

#[actix_rt::test]
async fn timeframe_minutes_is_an_alias() {
    let h = harness(|b| b).await;
    let spec = velocity(
        "TransactionAmountVelocity",
        json!({"limit": "100", "currency": "USD", "timeframe": 10}),
        json!({"kind": "Block"}),
    );
    h.add_policy(spec).await;
    assert_eq!(statuses(&h, &["100", "1"]).await, [Allowed, Blocked]);
    h.clock.advance(Duration::minutes(10));
    assert_eq!(statuses(&h, &["1"]).await, [Allowed]);
}

#[actix_rt::test]
async fn calendar_day_resets_at_utc_midnight() {
    let h = harness(|b| b).await;
    h.add_policy(usd_velocity("100", json!({"timeWindow": null, "calendar": "Day"}))).await;
    h.clock.set(Utc.with_ymd_and_hms(2026, 11, 22, 23, 59, 0).unwrap());
    assert_eq!(statuses(&h, &["100", "1"]).await, [Allowed, Blocked]);
    h.clock.set(Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap());
    assert_eq!(statuses(&h, &["100"]).await, [Allowed]);
}

#[actix_rt::test]
async fn calendar_week_starts_on_monday() {
    let h = harness(|b| b).await;
    h.add_policy(usd_velocity("100", json!({"timeWindow": null, "calendar": "Week"}))).await;
    // Sunday 22 Nov, then Monday 23 Nov: a new ISO week.
    assert_eq!(statuses(&h, &["100", "1"]).await, [Allowed, Blocked]);
    h.clock.set(Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 1).unwrap());
    assert_eq!(statuses(&h, &["100", "1"]).await, [Allowed, Blocked]);
}

#[actix_rt::test]
async fn count_velocity_per_initiator() {
    let h = harness(|b| b).await;
    h.add_policy(velocity(
        "TransactionCountVelocity",
        json!({"limit": 2, "timeWindow": 60, "scope": "Initiator"}),
        json!({"kind": "Block"}),
    ))
    .await;
    assert_eq!(statuses(&h, &["1", "1", "1"]).await, [Allowed, Allowed, Blocked]);
    // Another initiator on the same wallet has its own count.
    let carol = h.submit(transfer_with("1", json!({"initiator": {"id": "us-carol"}}))).await;
    assert_eq!(carol.status, Allowed);
}

#[actix_rt::test]
async fn organization_and_recipient_scopes() {
    let h = harness(|b| b).await;
    let org = h.add_policy(usd_velocity("100", json!({"scope": "Organization"}))).await;
    assert_eq!(h.submit(transfer_with("60", json!({"wallet": {"id": "wa-a"}}))).await.status, Allowed);
    assert_eq!(h.submit(transfer_with("60", json!({"wallet": {"id": "wa-b"}}))).await.status, Blocked);
    assert_eq!(h.engine.window_total(&org.id, "*").await.as_deref(), Some("60"));

    let h = harness(|b| b).await;
    h.add_policy(usd_velocity("100", json!({"scope": "Recipient"}))).await;
    // The same recipient written in two cases shares a window.
    let to = |r: &str| json!({"transaction": {"recipient": r}, "wallet": {"id": format!("w-{r}")}});
    assert_eq!(h.submit(transfer_with("60", to("0xABCDEF0000000000000000000000000000000001"))).await.status, Allowed);
    assert_eq!(h.submit(transfer_with("60", to("0xabcdef0000000000000000000000000000000001"))).await.status, Blocked);
    assert_eq!(h.submit(transfer_with("60", to("0x0000000000000000000000000000000000000002"))).await.status, Allowed);
}

#[actix_rt::test]
async fn asset_velocity_counts_only_that_asset_in_smallest_units() {
    let h = harness(|b| b).await;
    h.add_policy(velocity(
        "TransactionAmountVelocity",
        json!({"limit": "2000000000000000000", "asset": "ETH", "timeWindow": 3600}),
        json!({"kind": "Block"}),
    ))
    .await;
    // Each transfer moves 1.5 ETH.
    assert_eq!(statuses(&h, &["1", "1"]).await, [Allowed, Blocked]);
    let usdc = json!({"transaction": {"assets": [{"symbol": "USDC", "decimals": 6, "amount": "999999999999", "valueUsd": "999999"}]}});
    assert_eq!(h.submit(transfer_with("1", usdc)).await.status, Allowed, "the rule applies only to ETH activities");
}

#[actix_rt::test]
async fn unpriced_activities_trigger_usd_windows_and_count_in_count_windows() {
    let h = harness(|b| b).await;
    let count = h
        .add_policy(velocity(
            "TransactionCountVelocity",
            json!({"limit": 10, "timeWindow": 60}),
            json!({"kind": "NoAction"}),
        ))
        .await;
    let usd_spec = velocity(
        "TransactionAmountVelocity",
        json!({"limit": "100", "currency": "USD", "timeWindow": 60}),
        json!({"kind": "NoAction"}),
    );
    let usd = h.add_policy(usd_spec).await;
    let unpriced = json!({"transaction": {"assets": [{"symbol": "DOGE", "decimals": 8, "amount": "100"}]}});
    let activity = h.submit(transfer_with("1", unpriced)).await;
    // NoAction: triggered, but allowed.
    assert_eq!(activity.status, Allowed);
    assert!(activity.policy_evaluations.iter().any(|e| e.policy_id == usd.id && e.reason.contains("unpriced")));
    assert_eq!(h.engine.window_total(&usd.id, "wa-1").await.as_deref(), Some("0"));
    assert_eq!(h.engine.window_total(&count.id, "wa-1").await.as_deref(), Some("1"));
}

#[actix_rt::test]
async fn held_activities_count_only_when_approved() {
    let h = harness(|b| b).await;
    let window = h.add_policy(usd_velocity("1000000", json!({}))).await;
    h.add_policy(large_transaction_policy()).await;
    let denied = h.submit(transfer_with("150000", json!({}))).await;
    let approved = h.submit(transfer_with("200000", json!({}))).await;
    assert_eq!(h.engine.window_total(&window.id, "wa-1").await.as_deref(), Some("0"), "pending counts nothing");
    h.deny(&user("us-1"), denied.approval_id.as_deref().unwrap()).await.unwrap();
    h.approve(&user("us-1"), approved.approval_id.as_deref().unwrap()).await.unwrap();
    h.approve(&user("us-2"), approved.approval_id.as_deref().unwrap()).await.unwrap();
    // Decisions are answered after the counts are sent to the window.
    assert_eq!(h.engine.window_total(&window.id, "wa-1").await.as_deref(), Some("200000"));
    // Blocked activities never count.
    let blocked = h.submit(transfer_with("900000", json!({}))).await;
    assert_eq!(blocked.status, Blocked);
    assert_eq!(h.engine.window_total(&window.id, "wa-1").await.as_deref(), Some("200000"));
}

#[actix_rt::test]
async fn windows_are_rebuilt_after_a_restart() {
    let h = harness(|b| b).await;
    let policy = h.add_policy(usd_velocity("1000", json!({}))).await;
    assert_eq!(statuses(&h, &["400", "500"]).await, [Allowed, Allowed]);
    h.clock.advance(Duration::seconds(10));
    let engine = h.restart(|b| b).await;
    assert_eq!(engine.window_total(&policy.id, "wa-1").await.as_deref(), Some("900"));
    let next = engine.evaluate(transfer_with("200", json!({}))).await.unwrap();
    assert_eq!(next.status, Blocked);
}

#[actix_rt::test]
async fn a_restart_keeps_only_the_counts_inside_each_window() {
    let h = harness(|b| b).await;
    let minute = h.add_policy(usd_velocity("1000", json!({"timeWindow": 60}))).await;
    let year = h.add_policy(usd_velocity("1000000", json!({"timeWindow": 31_536_000}))).await;
    assert_eq!(statuses(&h, &["700"]).await, [Allowed]);
    h.clock.advance(Duration::seconds(30));
    assert_eq!(statuses(&h, &["200"]).await, [Allowed]);
    // At 70 s the 700 has left the minute's window, not the year's.
    h.clock.advance(Duration::seconds(40));
    let engine = h.restart(|b| b).await;
    assert_eq!(engine.window_total(&minute.id, "wa-1").await.as_deref(), Some("200"));
    assert_eq!(engine.window_total(&year.id, "wa-1").await.as_deref(), Some("900"));
    // A year and a day later nothing is left in either.
    engine.shutdown();
    h.clock.advance(Duration::days(366));
    let engine = h.restart(|b| b).await;
    assert_eq!(engine.window_total(&minute.id, "wa-1").await.as_deref(), Some("0"));
    assert_eq!(engine.window_total(&year.id, "wa-1").await.as_deref(), Some("0"));
}

#[actix_rt::test]
async fn widening_a_window_brings_back_the_counts_it_now_covers() {
    let h = harness(|b| b).await;
    let narrow = usd_velocity("1000", json!({"timeWindow": 60}));
    let policy = h.add_policy(narrow).await;
    assert_eq!(statuses(&h, &["700"]).await, [Allowed]);
    h.clock.advance(Duration::seconds(120));
    assert_eq!(statuses(&h, &["100"]).await, [Allowed], "the 700 left the 60 s window");
    let wide = usd_velocity("1000", json!({"timeWindow": 3600}));
    h.engine.update_policy(&admin(), &policy.id, wide).await.unwrap();
    assert_eq!(h.engine.window_total(&policy.id, "wa-1").await.as_deref(), Some("800"));
    assert_eq!(statuses(&h, &["300"]).await, [Blocked], "700 + 100 + 300 exceed 1000 in the last hour");
    assert_eq!(statuses(&h, &["200"]).await, [Allowed]);
}

/// A journal whose single-record reads are slow: a window read back after a
/// rule change takes long enough for activities to arrive meanwhile.
struct SlowReads(MemoryJournal);

impl Journal for SlowReads {
    fn append(&self, payloads: &[Vec<u8>]) -> Result<Seq, JournalError> {
        self.0.append(payloads)
    }
    fn scan(&self, from: Seq, visit: &mut dyn FnMut(Record) -> Result<(), JournalError>) -> Result<(), JournalError> {
        self.0.scan(from, visit)
    }
    fn read(&self, seq: Seq) -> Result<Option<Record>, JournalError> {
        std::thread::sleep(std::time::Duration::from_millis(300));
        self.0.read(seq)
    }
    fn last_seq(&self) -> Result<Option<Seq>, JournalError> {
        self.0.last_seq()
    }
}

#[actix_rt::test]
async fn a_changed_rule_is_not_used_before_its_windows_hold_what_it_sees() {
    let h = harness(|b| b.shared_journal(Arc::new(SlowReads(MemoryJournal::new())))).await;
    // Narrow and tight: 350 USD a minute.
    let policy = h.add_policy(usd_velocity("350", json!({"timeWindow": 60}))).await;
    assert_eq!(statuses(&h, &["300"]).await, [Allowed]);
    h.clock.advance(Duration::seconds(120));
    assert_eq!(statuses(&h, &["100"]).await, [Allowed], "the 300 left the minute");
    // Wide and loose: 500 USD an hour, which sees the 300 again once its
    // window is read back (slowly).
    let engine = h.engine.clone();
    let id = policy.id.clone();
    let update = actix_rt::spawn(async move {
        engine.update_policy(&admin(), &id, usd_velocity("500", json!({"timeWindow": 3600}))).await.unwrap()
    });
    actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    // Meanwhile: the old rule blocks 100 + 300 > 350, and the new rule, with
    // its window read back, blocks 300 + 100 + 300 > 500. Only the new rule
    // on a window not yet read back would allow it (100 + 300 <= 500).
    assert_eq!(statuses(&h, &["300"]).await, [Blocked]);
    update.await.unwrap();
    assert_eq!(h.engine.window_total(&policy.id, "wa-1").await.as_deref(), Some("400"));
    assert_eq!(statuses(&h, &["100"]).await, [Allowed], "300 + 100 + 100 <= 500 in the last hour");
}
