//! Fault injection under the engine: a journal that fails, and one that
//! crashes mid-commit and restarts from its durable image. No answered fact
//! is lost; no unanswered fact is half applied.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::*;
use futures_util::future::join_all;
use serde_json::json;
use warden::*;
use warden_journal::faulty::{CrashImage, FailAfter};

fn window_policy() -> PolicySpec {
    spec(json!({"name": "v", "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionAmountVelocity", "configuration": {"limit": "1000000", "currency": "USD", "timeWindow": 86400}},
        "action": {"kind": "Block"}}))
}

#[actix_rt::test]
async fn a_failed_commit_answers_an_error_and_changes_nothing() {
    let inner = Arc::new(MemoryJournal::new());
    // Two appends succeed: the two policies. Every later one fails.
    let journal = Arc::new(FailAfter::new(inner.clone(), 2));
    let engine = Engine::builder().clock(ManualClock::new(t0())).shared_journal(journal.clone()).build().await.unwrap();
    let window = match engine.create_policy(&admin(), window_policy()).await.unwrap() {
        PolicyChange::Applied(p) => p,
        PolicyChange::Pending(_) => unreachable!(),
    };
    engine.create_policy(&admin(), large_transaction_policy()).await.unwrap();

    for usd in ["100", "150000"] {
        match engine.evaluate(transfer_with(usd, json!({"externalId": format!("req-{usd}")}))).await {
            Err(Error::Journal(_)) => {}
            other => panic!("a failed commit must be an error, got {other:?}"),
        }
    }
    let signatures = ActivityFilter { wallet_id: Some("wa-1".into()), ..Default::default() };
    assert!(engine.activities(&signatures, &PageRequest::default()).unwrap().items.is_empty());
    assert_eq!(engine.window_total(&window.id, "wa-1").await.as_deref(), Some("0"), "the reservation was released");
    assert!(engine.approvals(&ApprovalFilter::default(), &PageRequest::default()).unwrap().items.is_empty());

    // Once storage is back, the same externalId is evaluated for real.
    journal.heal();
    let retried = engine.evaluate(transfer_with("100", json!({"externalId": "req-100"}))).await.unwrap();
    assert_eq!(retried.status, ActivityStatus::Allowed);
    assert_eq!(engine.window_total(&window.id, "wa-1").await.as_deref(), Some("100"));
    engine.shutdown();

    let restarted = Engine::builder().clock(ManualClock::new(t0())).shared_journal(inner).build().await.unwrap();
    let trail = restarted.activities(&signatures, &PageRequest::default()).unwrap().items;
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].id, retried.id);
}

/// One run: a workload of concurrent activities and decisions over a journal
/// that crashes at its `crash_at`-th append, then a restart from the durable
/// image, checked against what was answered.
async fn crash_run(crash_at: u64) {
    let journal = Arc::new(CrashImage::new());
    let clock = ManualClock::new(t0());
    let engine = Engine::builder().clock(clock.clone()).shared_journal(journal.clone()).build().await.unwrap();
    let window = match engine.create_policy(&admin(), window_policy()).await.unwrap() {
        PolicyChange::Applied(p) => p,
        PolicyChange::Pending(_) => unreachable!(),
    };
    engine.create_policy(&admin(), large_transaction_policy()).await.unwrap();
    journal.crash_at(journal.appends() + crash_at);

    let mut answered: HashMap<String, ActivityStatus> = HashMap::new();
    let mut approvals = Vec::new();
    for round in 0..6 {
        let batch = (0..8).map(|i| {
            let usd = if i % 3 == 0 { "150000" } else { "1000" };
            engine.evaluate(transfer_with(usd, json!({"externalId": format!("r{round}-{i}")})))
        });
        for activity in join_all(batch).await.into_iter().flatten() {
            if let Some(approval) = &activity.approval_id {
                approvals.push((approval.clone(), activity.id.clone()));
            }
            answered.insert(activity.id.clone(), activity.status);
        }
        let (first, second) = (user("us-1"), user("us-2"));
        let decisions =
            approvals.iter().map(|(approval, _)| engine.decide(&first, approval, DecisionValue::Approved, "ok"));
        let _ = join_all(decisions).await;
        let decisions =
            approvals.iter().map(|(approval, _)| engine.decide(&second, approval, DecisionValue::Approved, "ok"));
        for (result, (_, activity)) in join_all(decisions).await.into_iter().zip(&approvals) {
            if let Ok(approval) = result {
                if approval.status == ApprovalStatus::Approved {
                    answered.insert(activity.clone(), ActivityStatus::Approved);
                }
            }
        }
    }
    engine.shutdown();

    let restarted = Engine::builder().clock(clock).shared_journal(Arc::new(journal.crash())).build().await.unwrap();
    let signatures = ActivityFilter { wallet_id: Some("wa-1".into()), ..Default::default() };
    let trail =
        restarted.activities(&signatures, &PageRequest { limit: Some(1000), ..Default::default() }).unwrap().items;
    for (id, status) in &answered {
        let found =
            restarted.activity(id).unwrap_or_else(|_| panic!("answered activity {id} lost (crash at {crash_at})"));
        // An answer is never taken back; a pending one may have resolved after.
        match status {
            ActivityStatus::PendingApproval => {}
            s => assert_eq!(found.status, *s, "activity {id} changed outcome (crash at {crash_at})"),
        }
    }
    // Every approval is whole: approved ones have the quorum; pending ones no more than one decision.
    let mut counted = rust_decimal::Decimal::ZERO;
    for activity in &trail {
        assert!(
            answered.contains_key(&activity.id),
            "unanswered activity {} is there (crash at {crash_at})",
            activity.id
        );
        if let Some(approval_id) = &activity.approval_id {
            let approval = restarted.approval(approval_id).unwrap();
            match approval.status {
                ApprovalStatus::Approved => {
                    assert_eq!(activity.status, ActivityStatus::Approved);
                    assert!(approval.approval_groups[0].approved_by.len() >= 2);
                }
                ApprovalStatus::Pending => assert_eq!(activity.status, ActivityStatus::PendingApproval),
                other => panic!("unexpected approval status {other:?}"),
            }
        }
        if matches!(activity.status, ActivityStatus::Allowed | ActivityStatus::Approved) {
            let usd = &activity.activity.transaction.as_ref().unwrap().assets[0].value_usd.as_ref().unwrap().0;
            counted += usd.parse::<rust_decimal::Decimal>().unwrap();
        }
    }
    // The window equals the sum of the counted activities.
    let total = restarted.window_total(&window.id, "wa-1").await.unwrap();
    assert_eq!(total.parse::<rust_decimal::Decimal>().unwrap(), counted, "window after crash at {crash_at}");
    restarted.shutdown();
}

#[actix_rt::test]
async fn a_crash_in_any_commit_keeps_exactly_what_was_answered() {
    for crash_at in 1..=24 {
        crash_run(crash_at).await;
    }
}

#[actix_rt::test]
async fn a_record_that_does_not_decode_stops_recovery_with_its_position() {
    let journal = Arc::new(MemoryJournal::new());
    let engine = Engine::builder().clock(ManualClock::new(t0())).shared_journal(journal.clone()).build().await.unwrap();
    engine.create_policy(&admin(), window_policy()).await.unwrap();
    engine.shutdown();
    let good = warden_journal::Journal::last_seq(journal.as_ref()).unwrap().unwrap();
    warden_journal::Journal::append(journal.as_ref(), &[vec![1, 0xff, 0xfe, 0xfd]]).unwrap();
    match Engine::builder().clock(ManualClock::new(t0())).shared_journal(journal).build().await {
        Err(Error::Journal(warden_journal::JournalError::Corrupt { seq, .. })) => assert_eq!(seq, good + 1),
        other => panic!("expected a corrupt record error, got {:?}", other.map(|_| ())),
    }
}
