//! The audit trail: the journal holds every activity; memory keeps only an
//! index (status, wallet, last change, record position), and an activity is
//! read from its journal record when asked for, before and after a restart.

mod common;

use std::sync::Arc;

use chrono::Duration;
use common::*;
use serde_json::json;
use warden::*;

async fn engine_on(journal: &Arc<CountingReads>, clock: &ManualClock) -> Engine {
    let builder = Engine::builder().clock(clock.clone()).shared_journal(journal.clone()).arbiters(2);
    builder.build().await.expect("engine builds")
}

fn everything(engine: &Engine) -> Vec<Activity> {
    engine.activities(&ActivityFilter::default(), &PageRequest::default()).expect("activities list").items
}

/// An engine on a fresh counting journal, with the large-transaction policy.
async fn engine_with_policy() -> (Arc<CountingReads>, ManualClock, Engine) {
    let journal = Arc::new(CountingReads::default());
    let clock = ManualClock::new(t0());
    let engine = engine_on(&journal, &clock).await;
    let Ok(PolicyChange::Applied(_)) = engine.create_policy(&admin(), large_transaction_policy()).await else {
        panic!("the policy applies at once");
    };
    (journal, clock, engine)
}

#[actix_rt::test]
async fn activities_are_read_from_their_journal_record() {
    let (journal, clock, engine) = engine_with_policy().await;
    let evaluate = |usd: &str, patch| engine.evaluate(transfer_with(usd, patch));
    let allowed = evaluate("10", json!({"externalId": "order-1"})).await.unwrap();
    let held = evaluate("150000", json!({})).await.unwrap();
    let denied = evaluate("200000", json!({})).await.unwrap();
    assert_eq!(journal.reads(), 0, "answering reads nothing back");

    // One read per activity asked for, and the answer is the one given.
    assert_eq!(engine.activity(&allowed.id).unwrap(), allowed);
    assert_eq!(journal.reads(), 1);

    // A resolution changes status and date; the rest is the record's.
    clock.advance(Duration::minutes(5));
    engine.decide(&user("us-1"), denied.approval_id.as_deref().unwrap(), DecisionValue::Denied, "no").await.unwrap();
    let denied_now = engine.activity(&denied.id).unwrap();
    assert_eq!(denied_now.status, ActivityStatus::Denied);
    assert_eq!(denied_now.date_updated, t0() + Duration::minutes(5));
    assert_eq!(denied_now.date_created, denied.date_created);
    assert_eq!(denied_now.policy_evaluations, denied.policy_evaluations);
    assert_eq!(denied_now.activity, denied.activity);

    // Filters run on the index: only the listed activities are read.
    let before = journal.reads();
    let by_status = ActivityFilter { status: Some(ActivityStatus::PendingApproval), wallet_id: Some("wa-1".into()) };
    let page = engine.activities(&by_status, &PageRequest::default()).unwrap();
    assert_eq!(page.items, std::slice::from_ref(&held));
    assert_eq!(journal.reads() - before, 1);

    // A replayed externalId answers the stored activity, evaluating nothing.
    assert_eq!(evaluate("10", json!({"externalId": "order-1"})).await.unwrap(), allowed);
    let trail = everything(&engine);
    assert_eq!(trail.len(), 4, "the policy change and three transfers");
    assert_eq!(trail[1..], [allowed.clone(), held, denied_now]);

    // After a restart, the same trail, read from the same records.
    engine.shutdown();
    let engine = engine_on(&journal, &clock).await;
    assert_eq!(everything(&engine), trail);
    assert_eq!(evaluate_on(&engine, "10", json!({"externalId": "order-1"})).await, allowed);
}

async fn evaluate_on(engine: &Engine, usd: &str, patch: serde_json::Value) -> Activity {
    engine.evaluate(transfer_with(usd, patch)).await.expect("activity is evaluated")
}

/// What the HTTP adapter answers with: the text of the activity answered
/// (the record's text and a second encoding are the same bytes by design,
/// so this checks what the text says, and that a repeat says it as the
/// activity stands now), without reading the journal back.
#[actix_rt::test]
async fn the_text_answered_is_the_activity_answered_and_a_repeat_is_current() {
    let (journal, clock, engine) = engine_with_policy().await;
    let as_json = |usd: &str, patch| engine.evaluate_signed_as_json(transfer_with(usd, patch), None);
    for (usd, patch) in [("10", json!({})), ("150000", json!({"externalId": "order-2"}))] {
        let answer = as_json(usd, patch).await.unwrap();
        assert_eq!(answer.json, serde_json::to_string(&answer.activity).unwrap());
        assert_eq!(engine.activity(&answer.activity.id).unwrap(), answer.activity, "it is the journaled activity");
    }
    assert_eq!(journal.reads(), 2, "only the two reads asked for above");

    // A repeat is answered from the record, as it stands now.
    let first = as_json("150000", json!({"externalId": "order-2"})).await.unwrap();
    clock.advance(Duration::minutes(5));
    let approval = first.activity.approval_id.as_deref().unwrap();
    engine.decide(&user("us-1"), approval, DecisionValue::Denied, "no").await.unwrap();
    let repeat = as_json("150000", json!({"externalId": "order-2"})).await.unwrap();
    assert_eq!(repeat.activity.id, first.activity.id);
    assert_eq!(repeat.activity.status, ActivityStatus::Denied);
    assert_eq!(repeat.json, serde_json::to_string(&repeat.activity).unwrap());
}
