//! Policy-change governance through the embedded engine.

mod common;

use common::*;
use serde_json::json;
use warden::*;

fn governing(approvers: serde_json::Value, quorum: u32, filters: serde_json::Value) -> PolicySpec {
    spec(json!({
        "name": "Policy changes need two admins", "activityKind": "Policies:Modify",
        "rule": {"kind": "AlwaysTrigger"},
        "action": {"kind": "RequestApproval", "approvalGroups": [
            {"name": "Admins", "quorum": quorum, "approvers": {"userId": {"in": approvers}}}]},
        "filters": filters
    }))
}

fn pending(change: PolicyChange) -> ChangeRequest {
    match change {
        PolicyChange::Pending(cr) => cr,
        PolicyChange::Applied(p) => panic!("expected a change request, got applied policy {}", p.id),
    }
}

#[actix_rt::test]
async fn governed_create_is_applied_on_approval_with_the_announced_id() {
    let h = harness(|b| b).await;
    h.add_policy(governing(json!(["us-alice", "us-carol", "us-dave"]), 2, json!({}))).await;

    let cr = pending(h.engine.create_policy(&admin(), large_transaction_policy()).await.unwrap());
    assert_eq!(cr.status, ChangeRequestStatus::Pending);
    assert_eq!(cr.operation_kind, OperationKind::Create);
    assert_eq!(cr.requester.user_id, "us-alice");
    assert!(matches!(h.engine.policy(&cr.entity_id), Err(Error::NotFound { .. })), "nothing changed yet");
    // The activity is in the audit trail.
    let modify = h.engine.activities(&ActivityFilter::default(), &PageRequest::default()).unwrap();
    assert!(modify
        .items
        .iter()
        .any(|a| a.activity.kind == ActivityKind::PoliciesModify && a.status == ActivityStatus::PendingApproval));

    // The requester may not approve its own change.
    assert!(matches!(h.approve(&user("us-alice"), &cr.approval_id).await, Err(Error::Forbidden(_))));
    h.approve(&user("us-carol"), &cr.approval_id).await.unwrap();
    h.approve(&user("us-dave"), &cr.approval_id).await.unwrap();

    let policy = h.engine.policy(&cr.entity_id).expect("applied with the announced id");
    assert_eq!(policy.policy.spec.name, "Large Transaction Approval");
    assert!(policy.pending_change_request.is_none());
    assert_eq!(h.engine.change_request(&cr.id).unwrap().status, ChangeRequestStatus::Applied);
    // It is enforced.
    assert_eq!(h.submit(transfer_with("150000", json!({}))).await.status, ActivityStatus::PendingApproval);
}

#[actix_rt::test]
async fn governed_update_and_archive_and_their_rejection() {
    let h = harness(|b| b).await;
    let target = h.add_policy(large_transaction_policy()).await;
    h.add_policy(governing(json!(["us-carol", "us-dave"]), 1, json!({"policyId": {"in": [target.id.clone()]}}))).await;

    let mut stricter = large_transaction_policy();
    stricter.name = "Stricter".into();
    let update = pending(h.engine.update_policy(&admin(), &target.id, stricter.clone()).await.unwrap());
    assert_eq!(
        h.engine.policy(&target.id).unwrap().pending_change_request.as_ref().map(|c| c.id.clone()),
        Some(update.id.clone())
    );
    // A second change to the same policy while one is pending: 409.
    assert!(matches!(h.engine.archive_policy(&admin(), &target.id).await, Err(Error::Conflict(_))));
    assert!(matches!(h.engine.update_policy(&admin(), &target.id, stricter.clone()).await, Err(Error::Conflict(_))));

    h.deny(&user("us-carol"), &update.approval_id).await.unwrap();
    assert_eq!(h.engine.change_request(&update.id).unwrap().status, ChangeRequestStatus::Rejected);
    assert_eq!(h.engine.policy(&target.id).unwrap().policy.spec.name, "Large Transaction Approval");

    let archive = pending(h.engine.archive_policy(&admin(), &target.id).await.unwrap());
    assert_eq!(archive.operation_kind, OperationKind::Delete);
    h.approve(&user("us-dave"), &archive.approval_id).await.unwrap();
    assert_eq!(h.engine.policy(&target.id).unwrap().policy.spec.status, PolicyStatus::Archived);
    assert_eq!(h.submit(transfer_with("150000", json!({}))).await.status, ActivityStatus::Allowed);

    // Policies outside the governing filter change at once.
    let other = h.add_policy(large_transaction_policy()).await;
    assert!(matches!(h.engine.archive_policy(&admin(), &other.id).await.unwrap(), PolicyChange::Applied(_)));
}

#[actix_rt::test]
async fn a_governing_policy_that_would_lock_changes_out_is_refused() {
    let principals = vec![
        Principal::user("us-alice", &[Role::Admin]),
        Principal::service_account("sa-bot1", &[]),
        Principal::service_account("sa-bot2", &[]),
    ];
    let h = harness(|b| b.principals(principals)).await;
    let lockout = governing(json!(["sa-bot1", "sa-bot2"]), 1, json!({}));
    match h.engine.create_policy(&admin(), lockout).await {
        Err(Error::Invalid(e)) => {
            assert_eq!(e.field, "action.approvalGroups[0].quorum");
            assert!(e.message.contains("locked out"), "{e}");
        }
        other => panic!("expected a lockout refusal, got {other:?}"),
    }
    assert!(h.engine.policies(None, &PageRequest::default()).unwrap().items.is_empty());
    // With the flag, the service accounts can approve: accepted.
    let mut with_flag = governing(json!(["sa-bot1", "sa-bot2"]), 1, json!({}));
    with_flag.action.approval_groups[0].service_accounts_can_approve = true;
    assert!(h.engine.create_policy(&admin(), with_flag).await.is_ok());
}

#[actix_rt::test]
async fn pending_changes_survive_a_restart_and_apply_after_it() {
    let h = harness(|b| b).await;
    h.add_policy(governing(json!(["us-carol", "us-dave"]), 1, json!({}))).await;
    let cr = pending(h.engine.create_policy(&admin(), large_transaction_policy()).await.unwrap());
    let engine = h.restart(|b| b).await;
    assert_eq!(engine.change_request(&cr.id).unwrap().status, ChangeRequestStatus::Pending);
    engine.decide(&user("us-carol"), &cr.approval_id, DecisionValue::Approved, "ok").await.unwrap();
    assert_eq!(engine.policy(&cr.entity_id).unwrap().policy.spec.name, "Large Transaction Approval");
    engine.shutdown();
    let again = Engine::builder().clock(h.clock.clone()).shared_journal(h.journal.clone()).build().await.unwrap();
    assert_eq!(again.change_request(&cr.id).unwrap().status, ChangeRequestStatus::Applied);
    assert!(again.policy(&cr.entity_id).is_ok());
}

#[actix_rt::test]
async fn a_crash_between_approval_and_application_loses_nothing() {
    use warden_journal::faulty::CrashImage;
    // Crash exactly at the commit that resolves the approval and applies the
    // change, then at the commit after it: either way the restarted engine
    // holds a whole state, never an approved change that was not applied.
    for crash_offset in [1u64, 2] {
        let journal = std::sync::Arc::new(CrashImage::new());
        let clock = ManualClock::new(t0());
        let engine = Engine::builder().clock(clock.clone()).shared_journal(journal.clone()).build().await.unwrap();
        engine.create_policy(&admin(), governing(json!(["us-carol", "us-dave"]), 1, json!({}))).await.unwrap();
        let cr = pending(engine.create_policy(&admin(), large_transaction_policy()).await.unwrap());
        journal.crash_at(journal.appends() + crash_offset);
        let decided = engine.decide(&user("us-carol"), &cr.approval_id, DecisionValue::Approved, "ok").await;
        if crash_offset == 2 {
            // A later commit crashes; this one was answered.
            assert!(decided.is_ok());
            let _ = engine.evaluate(transfer_with("1", json!({}))).await;
        } else {
            assert!(matches!(decided, Err(Error::Journal(_))), "the crashed commit is not answered as done");
        }
        engine.shutdown();

        let restarted =
            Engine::builder().clock(clock).shared_journal(std::sync::Arc::new(journal.crash())).build().await.unwrap();
        let change = restarted.change_request(&cr.id).unwrap();
        let approval = restarted.approval(&cr.approval_id).unwrap();
        match (decided.is_ok(), change.status) {
            (true, ChangeRequestStatus::Applied) => {
                assert_eq!(approval.status, ApprovalStatus::Approved);
                assert!(restarted.policy(&cr.entity_id).is_ok());
            }
            (false, ChangeRequestStatus::Pending) => {
                assert_eq!(approval.status, ApprovalStatus::Pending);
                assert!(approval.decisions.is_empty(), "the unanswered decision is not half there");
                assert!(restarted.policy(&cr.entity_id).is_err());
                // And the change can still be approved after the restart.
                restarted.decide(&user("us-dave"), &cr.approval_id, DecisionValue::Approved, "ok").await.unwrap();
                assert!(restarted.policy(&cr.entity_id).is_ok());
            }
            (answered, status) => panic!("answered={answered} but change request is {status:?}"),
        }
        restarted.shutdown();
    }
}

#[actix_rt::test]
async fn everyone_groups_count_service_accounts_only_with_the_flag() {
    let principals = vec![Principal::user("us-alice", &[Role::Admin]), Principal::service_account("sa-1", &[])];
    let h = harness(|b| b.principals(principals)).await;
    let mut everyone = governing(json!([]), 2, json!({}));
    everyone.action.approval_groups[0].approvers = Approvers::default();
    // One user can never make a quorum of two.
    assert!(matches!(h.engine.create_policy(&admin(), everyone.clone()).await, Err(Error::Invalid(_))));
    // With service accounts allowed, alice and sa-1 can.
    everyone.action.approval_groups[0].service_accounts_can_approve = true;
    assert!(h.engine.create_policy(&admin(), everyone).await.is_ok());
    let cr = pending(h.engine.create_policy(&admin(), large_transaction_policy()).await.unwrap());
    h.engine.decide(&service("sa-1"), &cr.approval_id, DecisionValue::Approved, "bot").await.unwrap();
}
