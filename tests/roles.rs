//! Leader and standby in the embedded engine, without a database: two
//! engines on one journal, the standby folding the leader's records as a
//! follower hands them over, then promoted; a leader whose lease ran out
//! refusing changes while still serving reads. (The same roles driven by a
//! real lease on a real PostgreSQL, with real processes: `tests/cluster.rs`.)

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use serde_json::json;
use warden::*;
use warden_journal::Seq;

/// Hands `standby` every record of `journal` from `from` on; answers the next seq.
fn follow(standby: &Engine, journal: &MemoryJournal, from: Seq) -> Seq {
    let mut next = from;
    journal
        .scan(from, &mut |record| {
            next = record.seq + 1;
            standby.follow(record).map_err(|e| JournalError::Storage(e.to_string()))
        })
        .unwrap();
    next
}

fn count_window(limit: u64) -> PolicySpec {
    spec(json!({
        "name": "Organization count", "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionCountVelocity",
                 "configuration": {"limit": limit, "timeWindow": 3600, "scope": "Organization"}},
        "action": {"kind": "Block"}
    }))
}

fn is_not_leader(error: &Error) -> bool {
    matches!(error, Error::Unavailable(Unavailable::NotLeader { .. }))
}

#[actix_rt::test]
async fn a_standby_folds_the_leaders_records_and_leads_from_them_when_promoted() {
    let clock = ManualClock::new(t0());
    let journal = Arc::new(MemoryJournal::new());
    let leader = Engine::builder().clock(clock.clone()).shared_journal(journal.clone()).build().await.unwrap();
    let standby =
        Engine::builder().clock(clock.clone()).shared_journal(journal.clone()).standby().build().await.unwrap();
    assert!(leader.is_leader() && !standby.is_leader());

    let window = match leader.create_policy(&admin(), count_window(3)).await.unwrap() {
        PolicyChange::Applied(policy) => policy,
        other => panic!("{other:?}"),
    };
    leader.create_policy(&admin(), seed_policy_spec()).await.unwrap();
    for _ in 0..2 {
        assert_eq!(leader.evaluate(transfer_with("10", json!({}))).await.unwrap().status, ActivityStatus::Allowed);
    }
    let held = leader.evaluate(transfer_with("150000", json!({}))).await.unwrap();
    assert_eq!(held.status, ActivityStatus::PendingApproval);
    let approval_id = held.approval_id.clone().unwrap();

    // A standby refuses changes before anything reserves, and reads what it folded.
    let refused = standby.evaluate(transfer_with("10", json!({}))).await.unwrap_err();
    assert!(is_not_leader(&refused), "{refused:?}");
    assert!(refused.is_retryable());
    let next = follow(&standby, &journal, 1);
    assert_eq!(standby.journal_seq(), leader.journal_seq());
    assert_eq!(standby.activity(&held.id).unwrap(), leader.activity(&held.id).unwrap());
    assert_eq!(standby.approval(&approval_id).unwrap(), leader.approval(&approval_id).unwrap());
    assert_eq!(standby.policy(&window.id).unwrap(), leader.policy(&window.id).unwrap());
    assert!(is_not_leader(
        &standby.decide(&user("us-1"), &approval_id, DecisionValue::Approved, "x").await.unwrap_err()
    ));

    // One more count on the leader, followed; then the leader goes away.
    assert_eq!(leader.evaluate(transfer_with("10", json!({}))).await.unwrap().status, ActivityStatus::Allowed);
    follow(&standby, &journal, next);
    leader.shutdown();

    // Promoted, it leads from what it folded: the window holds three counts
    // (the 150000 is held, not counted), and the approval can be decided.
    standby.promote(journal.clone()).await.unwrap();
    assert!(standby.is_leader());
    assert_eq!(standby.evaluate(transfer_with("10", json!({}))).await.unwrap().status, ActivityStatus::Blocked);
    let first = standby.decide(&user("us-1"), &approval_id, DecisionValue::Approved, "ok").await.unwrap();
    assert_eq!(first.status, ApprovalStatus::Pending);
    let second = standby.decide(&user("us-2"), &approval_id, DecisionValue::Approved, "ok").await.unwrap();
    assert_eq!(second.status, ApprovalStatus::Approved);
}

fn seed_policy_spec() -> PolicySpec {
    spec(seed::seed_policy())
}

#[actix_rt::test]
async fn a_leader_whose_lease_ran_out_refuses_changes_and_still_serves_reads() {
    let engine = Engine::builder().build().await.unwrap();
    let allowed = engine.evaluate(transfer_with("10", json!({}))).await.unwrap();
    engine.set_lease_end(Some(Instant::now()));
    assert!(!engine.is_leader());
    let refused = engine.evaluate(transfer_with("10", json!({}))).await.unwrap_err();
    assert!(is_not_leader(&refused), "{refused:?}");
    assert_eq!(engine.activity(&allowed.id).unwrap().status, ActivityStatus::Allowed);
    // Renewed: it leads again.
    engine.set_lease_end(Some(Instant::now() + std::time::Duration::from_secs(60)));
    assert!(engine.is_leader());
    assert_eq!(engine.evaluate(transfer_with("10", json!({}))).await.unwrap().status, ActivityStatus::Allowed);
}

#[actix_rt::test]
async fn a_demoted_leader_follows_again_from_where_it_stopped() {
    let clock = ManualClock::new(t0());
    let journal = Arc::new(MemoryJournal::new());
    let first = Engine::builder().clock(clock.clone()).shared_journal(journal.clone()).build().await.unwrap();
    let window = match first.create_policy(&admin(), count_window(2)).await.unwrap() {
        PolicyChange::Applied(policy) => policy,
        other => panic!("{other:?}"),
    };
    assert_eq!(first.evaluate(transfer_with("10", json!({}))).await.unwrap().status, ActivityStatus::Allowed);
    let next = first.demote().await.unwrap();
    assert_eq!(next, first.journal_seq() + 1);
    assert!(!first.is_leader());
    assert!(is_not_leader(&first.evaluate(transfer_with("10", json!({}))).await.unwrap_err()));

    // Another engine leads meanwhile and counts the second activity.
    let second = Engine::builder().clock(clock.clone()).shared_journal(journal.clone()).build().await.unwrap();
    assert_eq!(second.evaluate(transfer_with("10", json!({}))).await.unwrap().status, ActivityStatus::Allowed);
    second.shutdown();

    // The demoted one follows from its next seq, leads again, and its window
    // holds both counts: the third is over the limit of two.
    follow(&first, &journal, next);
    first.promote(journal.clone()).await.unwrap();
    assert_eq!(first.evaluate(transfer_with("10", json!({}))).await.unwrap().status, ActivityStatus::Blocked);
    assert!(first.policy(&window.id).is_ok());
}

/// The events a subscriber hears, kind and data.
fn heard(events: &mut tokio::sync::broadcast::Receiver<EngineEvent>) -> Vec<(String, serde_json::Value)> {
    std::iter::from_fn(|| events.try_recv().ok()).map(|event| (event.kind, event.data)).collect()
}

/// A subscriber of a standby hears the leader's events as the standby folds
/// their records: the same kinds and data, but for the order within a commit
/// (the activity before the approval it opened); nothing before it subscribed.
#[actix_rt::test]
async fn a_standby_tells_its_subscribers_the_events_of_the_records_it_folds() {
    let journal = Arc::new(MemoryJournal::new());
    let leader = Engine::builder().shared_journal(journal.clone()).build().await.unwrap();
    let standby = Engine::builder().shared_journal(journal.clone()).standby().build().await.unwrap();
    leader.create_policy(&admin(), seed_policy_spec()).await.unwrap();
    leader.evaluate(transfer_with("10", json!({}))).await.unwrap();
    let next = follow(&standby, &journal, 1);

    let mut on_leader = leader.subscribe();
    let mut on_standby = standby.subscribe();
    let held = leader.evaluate(transfer_with("150000", json!({}))).await.unwrap();
    let approval_id = held.approval_id.clone().unwrap();
    leader.decide(&user("us-1"), &approval_id, DecisionValue::Denied, "no").await.unwrap();
    follow(&standby, &journal, next);

    let told = heard(&mut on_standby);
    let kinds: Vec<&str> = told.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["policy.triggered", "activity.evaluated", "policy.approval.pending", "policy.approval.resolved"],
        "nothing of the records folded before it subscribed"
    );
    let mut by_leader = heard(&mut on_leader);
    by_leader.sort_by(|a, b| a.0.cmp(&b.0));
    let mut by_standby = told.clone();
    by_standby.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(by_standby, by_leader, "the leader's events, data and all");
    assert_eq!(told[1].1["activity"]["id"], held.id.as_str());
    assert_eq!(told[3].1["approval"]["status"], "Denied");
}

/// A governed policy change's approval, told by a standby as the leader tells
/// it: its `policy.approval.resolved` shows the change request as journaled
/// with the approval (`Pending`), not as it stands after (`Applied`).
#[actix_rt::test]
async fn a_standby_tells_a_resolved_policy_change_as_the_leader_does() {
    let journal = Arc::new(MemoryJournal::new());
    let leader = Engine::builder().shared_journal(journal.clone()).build().await.unwrap();
    let standby = Engine::builder().shared_journal(journal.clone()).standby().build().await.unwrap();
    let governing = spec(json!({
        "name": "Policy changes", "activityKind": "Policies:Modify", "rule": {"kind": "AlwaysTrigger"},
        "action": {"kind": "RequestApproval", "approvalGroups": [
            {"name": "Admins", "quorum": 1, "approvers": {"userId": {"in": ["us-carol"]}}}]}
    }));
    leader.create_policy(&admin(), governing).await.unwrap();
    let next = follow(&standby, &journal, 1);

    let mut on_leader = leader.subscribe();
    let mut on_standby = standby.subscribe();
    let PolicyChange::Pending(change) = leader.create_policy(&admin(), large_transaction_policy()).await.unwrap()
    else {
        panic!("the change waits for its approval");
    };
    leader.decide(&user("us-carol"), &change.approval_id, DecisionValue::Approved, "ok").await.unwrap();
    follow(&standby, &journal, next);

    let (told_by_leader, told_by_standby) = (heard(&mut on_leader), heard(&mut on_standby));
    let told = |events: &[(String, serde_json::Value)], kind: &str| {
        events.iter().find(|(told, _)| told == kind).unwrap_or_else(|| panic!("{kind} is told: {events:?}")).1.clone()
    };
    let by_leader = told(&told_by_leader, "policy.approval.resolved");
    let by_standby = told(&told_by_standby, "policy.approval.resolved");
    assert_eq!(by_standby, by_leader);
    assert_eq!(by_standby["approval"]["activity"]["changeRequest"]["status"], "Pending", "{by_standby}");
    // The change's own activity, held for approval, is told as any activity is.
    let evaluated = told(&told_by_leader, "activity.evaluated");
    assert_eq!(evaluated["activity"]["activity"]["kind"], "Policies:Modify", "{evaluated}");
    assert_eq!(evaluated["activity"]["status"], "PendingApproval", "{evaluated}");
    assert_eq!(told(&told_by_standby, "activity.evaluated"), evaluated);
}
