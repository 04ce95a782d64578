//! Memory grows with limits, not with input: idle windows retire, old
//! `externalId`s are forgotten, resolved approvals keep no actor and no body
//! in memory (they are read back from the journal).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use warden::*;

fn to(recipient: &str) -> ActivityRequest {
    transfer_with("10", json!({"transaction": {"recipient": recipient}}))
}

fn one_per_recipient_per_minute() -> PolicySpec {
    spec(json!({"name": "one per recipient", "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionCountVelocity", "configuration": {"limit": 1, "timeWindow": 60, "scope": "Recipient"}},
        "action": {"kind": "Block"}}))
}

#[actix_rt::test]
async fn windows_of_recipients_seen_once_retire_once_idle_and_empty() {
    let h = harness(|b| b.window_idle(Duration::from_millis(300))).await;
    h.add_policy(one_per_recipient_per_minute()).await;
    for i in 0..200 {
        assert_eq!(h.submit(to(&format!("0x{i:040x}"))).await.status, ActivityStatus::Allowed);
    }
    assert_eq!(h.submit(to(&format!("0x{:040x}", 7))).await.status, ActivityStatus::Blocked, "one per minute");
    assert_eq!(h.engine.live_actors().0, 200);

    // Two minutes later one more recipient is counted; the others' counts
    // have left their window.
    h.clock.advance(chrono::Duration::seconds(120));
    assert_eq!(h.submit(to("0xfeed000000000000000000000000000000000001")).await.status, ActivityStatus::Allowed);
    eventually("the idle, empty windows to retire", || h.engine.live_actors().0 == 1).await;

    // A retired window starts afresh, rightly empty; a kept one still counts.
    assert_eq!(h.submit(to(&format!("0x{:040x}", 7))).await.status, ActivityStatus::Allowed);
    assert_eq!(h.submit(to("0xfeed000000000000000000000000000000000001")).await.status, ActivityStatus::Blocked);
}

#[actix_rt::test]
async fn a_window_with_counts_in_its_horizon_never_retires() {
    let h = harness(|b| b.window_idle(Duration::from_millis(200))).await;
    let policy = h.add_policy(one_per_recipient_per_minute()).await;
    assert_eq!(h.submit(to("0xaa00000000000000000000000000000000000001")).await.status, ActivityStatus::Allowed);
    h.clock.advance(chrono::Duration::seconds(30));
    actix_rt::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(h.engine.live_actors().0, 1, "still holds a count inside the minute");
    let scope = "0xaa00000000000000000000000000000000000001";
    assert_eq!(h.engine.window_total(&policy.id, scope).await.as_deref(), Some("1"));
    assert_eq!(h.submit(to(scope)).await.status, ActivityStatus::Blocked);
}

#[actix_rt::test]
async fn an_idle_window_given_an_approved_count_does_not_retire_before_counting_it() {
    let h = harness(|b| b.window_idle(Duration::from_millis(200))).await;
    h.add_policy(large_transaction_policy()).await;
    let policy = h.add_policy(one_per_recipient_per_minute()).await;
    let scope = "0xbb00000000000000000000000000000000000001";
    let held = h.submit(transfer_with("150000", json!({"transaction": {"recipient": scope}}))).await;
    // Held: its reservation was released, and the window holds nothing.
    assert_eq!(held.status, ActivityStatus::PendingApproval);
    let id = held.approval_id.unwrap();
    h.approve(&user("us-1"), &id).await.unwrap();
    assert_eq!(h.approve(&user("us-2"), &id).await.unwrap().status, ApprovalStatus::Approved);

    // The approval's count waits for the window's next use; past the
    // idle time the sweep must not retire the window with it.
    h.clock.advance(chrono::Duration::seconds(30));
    actix_rt::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(h.engine.live_actors().0, 1, "the window keeps the approved count inside the minute");
    assert_eq!(h.engine.window_total(&policy.id, scope).await.as_deref(), Some("1"));
    assert_eq!(h.submit(to(scope)).await.status, ActivityStatus::Blocked);
}

#[actix_rt::test]
async fn external_ids_are_forgotten_after_their_retention() {
    let h = harness(|b| b.external_id_retention(Duration::from_secs(2))).await;
    let first = h.submit(transfer_with("10", json!({"externalId": "order-1"}))).await;
    assert_eq!(h.submit(transfer_with("10", json!({"externalId": "order-1"}))).await.id, first.id, "a replay");
    assert_eq!(h.engine.remembered_external_ids(), 1);

    h.clock.advance(chrono::Duration::seconds(3));
    eventually("the key to be forgotten", || h.engine.remembered_external_ids() == 0).await;
    let again = h.submit(transfer_with("10", json!({"externalId": "order-1"}))).await;
    assert_ne!(again.id, first.id, "past its retention a repeated externalId is a new activity");

    // A restart forgets them too, and keeps the recent ones.
    let recent = h.submit(transfer_with("10", json!({"externalId": "order-2"}))).await;
    h.clock.advance(chrono::Duration::seconds(1));
    let engine = h.restart(|b| b.external_id_retention(Duration::from_secs(2))).await;
    assert_eq!(engine.remembered_external_ids(), 2, "order-1 (second use) and order-2 are inside their retention");
    assert_eq!(engine.evaluate(transfer_with("10", json!({"externalId": "order-2"}))).await.unwrap().id, recent.id);
}

#[actix_rt::test]
async fn a_refused_request_keeps_no_external_id_and_an_invalid_repeat_is_refused() {
    let h = harness(|b| b).await;
    for i in 0..50 {
        let invalid = transfer_with("10", json!({"externalId": format!("bad-{i}"), "initiator": {"id": " "}}));
        let refused = h.engine.evaluate(invalid).await.expect_err("an empty initiator id is refused");
        assert!(refused.to_string().contains("initiator.id"), "{refused}");
    }
    assert_eq!(h.engine.remembered_external_ids(), 0, "a refused request keeps no key");

    let first = h.submit(transfer_with("10", json!({"externalId": "order-1"}))).await;
    let invalid_repeat = transfer_with("10", json!({"externalId": "order-1", "initiator": {"id": " "}}));
    let refused = h.engine.evaluate(invalid_repeat).await.expect_err("refused whatever its key answered");
    assert!(refused.to_string().contains("initiator.id"), "{refused}");
    assert_eq!(h.submit(transfer_with("10", json!({"externalId": "order-1"}))).await.id, first.id, "a replay");
    assert_eq!(h.engine.remembered_external_ids(), 1);
}

#[actix_rt::test]
async fn a_resolved_approval_keeps_no_actor_and_reads_back_from_the_journal() {
    let journal = std::sync::Arc::new(CountingReads::default());
    let engine = Engine::builder().shared_journal(journal.clone()).build().await.unwrap();
    let h = Harness { engine, clock: ManualClock::new(t0()), journal: std::sync::Arc::new(MemoryJournal::new()) };
    h.add_policy(large_transaction_policy()).await;
    let id = h.submit(transfer_with("150000", json!({}))).await.approval_id.unwrap();
    assert_eq!(h.engine.live_actors().1, 0, "an approval's actor starts when a decision reaches it");
    h.approve(&user("us-1"), &id).await.unwrap();
    assert_eq!(h.engine.live_actors().1, 1);
    let answered = h.approve(&user("us-2"), &id).await.unwrap();
    assert_eq!(answered.status, ApprovalStatus::Approved);
    assert_eq!(h.engine.live_actors().1, 0);

    let reads_before = journal.reads();
    assert_eq!(h.engine.approval(&id).unwrap(), answered, "read back as it was answered");
    assert!(journal.reads() > reads_before, "a resolved approval is read from the journal");
    let listed = h
        .engine
        .approvals(&ApprovalFilter { approver_id: Some("us-3".into()), ..Default::default() }, &PageRequest::default())
        .unwrap();
    assert_eq!(listed.items, [answered], "the approver filter still sees a resolved approval's groups");
}

#[actix_rt::test]
async fn an_approval_left_alone_keeps_no_actor_and_takes_decisions_again() {
    let h = harness(|b| b.window_idle(Duration::from_secs(1))).await;
    h.add_policy(large_transaction_policy()).await;
    let id = h.submit(transfer_with("150000", json!({}))).await.approval_id.unwrap();
    assert_eq!(h.approve(&user("us-1"), &id).await.unwrap().status, ApprovalStatus::Pending);
    assert_eq!(h.engine.live_actors().1, 1);
    // Nobody decides for longer than an approval actor's idle time.
    h.clock.advance(chrono::Duration::seconds(61));
    eventually("the idle approval actor to retire", || h.engine.live_actors().1 == 0).await;
    assert_eq!(h.engine.approval(&id).unwrap().decisions.len(), 1, "its state stays in the tables");
    // A decision starts a new actor, which sees the earlier decision.
    assert!(matches!(h.approve(&user("us-1"), &id).await, Err(Error::Conflict(_))), "us-1 decided already");
    assert_eq!(h.approve(&user("us-2"), &id).await.unwrap().status, ApprovalStatus::Approved);
    assert_eq!(h.engine.live_actors().1, 0);
}

#[actix_rt::test]
async fn an_approved_count_that_restarts_a_retired_window_is_seen_by_the_next_check() {
    let h = harness(|b| b.window_idle(Duration::from_millis(200))).await;
    h.add_policy(large_transaction_policy()).await;
    h.add_policy(one_per_recipient_per_minute()).await;
    let scope = "0xcc00000000000000000000000000000000000001";
    let held = h.submit(transfer_with("150000", json!({"transaction": {"recipient": scope}}))).await;
    assert_eq!(held.status, ActivityStatus::PendingApproval);
    // The approval waits; the window, holding nothing, retires.
    h.clock.advance(chrono::Duration::seconds(5));
    eventually("the idle window to retire", || h.engine.live_actors().0 == 0).await;
    let id = held.approval_id.unwrap();
    h.approve(&user("us-1"), &id).await.unwrap();
    assert_eq!(h.approve(&user("us-2"), &id).await.unwrap().status, ApprovalStatus::Approved);
    // One per minute: the approved activity is that one.
    assert_eq!(h.submit(to(scope)).await.status, ActivityStatus::Blocked);
}
