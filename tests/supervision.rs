//! Window and approval actors that panic mid-message are restarted by their
//! supervisor with their state rebuilt from the journal.

mod common;

use common::*;
use serde_json::json;
use warden::*;

#[actix_rt::test]
async fn a_crashed_window_actor_restarts_with_its_counts() {
    let h = harness(|b| b).await;
    let policy = h
        .add_policy(spec(json!({"name": "v", "activityKind": "Wallets:Sign",
            "rule": {"kind": "TransactionAmountVelocity", "configuration": {"limit": "1000", "currency": "USD", "timeWindow": 3600}},
            "action": {"kind": "Block"}})))
        .await;
    assert_eq!(h.submit(transfer_with("700", json!({}))).await.status, ActivityStatus::Allowed);
    assert_eq!(h.engine.actor_restarts().0, 0);

    h.engine.crash_window_actor(&policy.id, "wa-1").await;

    assert_eq!(h.engine.window_total(&policy.id, "wa-1").await.as_deref(), Some("700"));
    assert_eq!(h.engine.actor_restarts().0, 1);
    assert_eq!(h.submit(transfer_with("400", json!({}))).await.status, ActivityStatus::Blocked);
    assert_eq!(h.submit(transfer_with("300", json!({}))).await.status, ActivityStatus::Allowed);
}

#[actix_rt::test]
async fn a_crashed_approval_actor_restarts_with_its_decisions() {
    let h = harness(|b| b).await;
    h.add_policy(large_transaction_policy()).await;
    let activity = h.submit(transfer_with("150000", json!({}))).await;
    let id = activity.approval_id.unwrap();
    h.approve(&user("us-1"), &id).await.unwrap();

    h.engine.crash_approval_actor(&id).await;

    // The decision survived the crash: a second one from us-1 is refused,
    // and one more approver completes the quorum.
    assert!(matches!(h.approve(&user("us-1"), &id).await, Err(Error::Conflict(_))));
    assert_eq!(h.engine.actor_restarts().1, 1);
    let approval = h.approve(&user("us-2"), &id).await.unwrap();
    assert_eq!(approval.status, ApprovalStatus::Approved);
    assert_eq!(approval.approval_groups[0].approved_by, ["us-1", "us-2"]);
}

#[actix_rt::test]
async fn resolved_approvals_are_not_restarted() {
    let h = harness(|b| b).await;
    h.add_policy(large_transaction_policy()).await;
    for _ in 0..20 {
        let id = h.submit(transfer_with("150000", json!({}))).await.approval_id.unwrap();
        h.approve(&user("us-1"), &id).await.unwrap();
        assert_eq!(h.approve(&user("us-2"), &id).await.unwrap().status, ApprovalStatus::Approved);
        assert!(matches!(h.approve(&user("us-3"), &id).await, Err(Error::Conflict(_))));
    }
    assert_eq!(h.engine.actor_restarts(), (0, 0), "only a crash restarts an actor");
}
