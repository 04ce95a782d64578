//! Retention: resolved activities past the hot retention leave memory but
//! stay in the audit trail, read back from the journal.

mod common;

use std::time::Duration as StdDuration;

use chrono::Duration;
use common::*;
use serde_json::json;
use warden::*;

#[actix_rt::test]
async fn retired_activities_stay_queryable_from_the_journal() {
    let hour = StdDuration::from_secs(3600);
    let h = harness(|b| b.hot_retention(hour)).await;
    h.add_policy(large_transaction_policy()).await;
    let allowed = h.submit(transfer_with("10", json!({"externalId": "old-1"}))).await;
    let held = h.submit(transfer_with("150000", json!({}))).await;
    let denied = h.submit(transfer_with("200000", json!({}))).await;
    h.deny(&user("us-1"), denied.approval_id.as_deref().unwrap()).await.unwrap();

    assert_eq!(h.engine.retire_activities(), 0, "nothing is old yet");
    h.clock.advance(Duration::hours(2));
    // The policy change activity, the allowed and the denied one retire; the
    // pending one stays whole.
    assert_eq!(h.engine.retire_activities(), 3);

    let read_back = h.engine.activity(&allowed.id).unwrap();
    assert_eq!(read_back, allowed);
    let denied_now = h.engine.activity(&denied.id).unwrap();
    assert_eq!(denied_now.status, ActivityStatus::Denied);
    assert_eq!(denied_now.policy_evaluations, denied.policy_evaluations);

    let by_status = ActivityFilter { status: Some(ActivityStatus::Denied), wallet_id: Some("wa-1".into()) };
    let page = h.engine.activities(&by_status, &PageRequest::default()).unwrap();
    let ids: Vec<&str> = page.items.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, [denied.id.as_str()]);
    // A replayed externalId still answers the retired activity.
    assert_eq!(h.submit(transfer_with("10", json!({"externalId": "old-1"}))).await.id, allowed.id);

    // The held one resolves as usual, and retires later.
    let approval = held.approval_id.as_deref().unwrap();
    h.approve(&user("us-1"), approval).await.unwrap();
    h.approve(&user("us-2"), approval).await.unwrap();
    h.clock.advance(Duration::hours(2));
    assert_eq!(h.engine.retire_activities(), 1);
    assert_eq!(h.engine.activity(&held.id).unwrap().status, ActivityStatus::Approved);

    // After a restart, old activities come back retired and readable.
    let engine = h.restart(|b| b.hot_retention(hour)).await;
    assert_eq!(engine.retire_activities(), 0, "recovery retired them already");
    assert_eq!(engine.activity(&allowed.id).unwrap(), allowed);
    let all = engine.activities(&ActivityFilter::default(), &PageRequest::default()).unwrap();
    assert_eq!(all.items.len(), 4);
}
