//! The seed's scenarios, end to end through the embedded engine.

mod common;

use chrono::Duration;
use common::*;
use serde_json::json;
use warden::*;

#[actix_rt::test]
async fn large_transaction_needs_two_treasury_approvals() {
    let h = harness(|b| b).await;
    h.add_policy(large_transaction_policy()).await;

    let small = h.submit(transfer_with("99999.99", json!({}))).await;
    assert_eq!(small.status, ActivityStatus::Allowed);
    assert!(small.policy_evaluations.is_empty());

    let large = h.submit(transfer_with("150000.00", json!({}))).await;
    assert_eq!(large.status, ActivityStatus::PendingApproval);
    assert_eq!(large.policy_evaluations.len(), 1);
    assert_eq!(large.policy_evaluations[0].reason, "value 150000.00 USD exceeds limit 100000 USD");
    let approval_id = large.approval_id.clone().expect("an approval is opened");
    let approval = h.engine.approval(&approval_id).unwrap();
    assert_eq!(approval.expiration_date, Some(t0() + Duration::seconds(86400)));
    assert_eq!(approval.initiator_id, "us-bob");

    // The initiator may not approve; an outsider may not either.
    assert!(matches!(h.approve(&user("us-bob"), &approval_id).await, Err(Error::Forbidden(_))));
    assert!(matches!(h.approve(&user("us-9"), &approval_id).await, Err(Error::Forbidden(_))));

    let after_one = h.approve(&user("us-1"), &approval_id).await.unwrap();
    assert_eq!(after_one.status, ApprovalStatus::Pending);
    assert_eq!(after_one.approval_groups[0].approved_by, ["us-1"]);
    assert!(matches!(h.approve(&user("us-1"), &approval_id).await, Err(Error::Conflict(_))));

    let done = h.approve(&user("us-2"), &approval_id).await.unwrap();
    assert_eq!(done.status, ApprovalStatus::Approved);
    assert!(done.date_resolved.is_some());
    assert_eq!(done.decisions.len(), 2);
    assert_eq!(h.engine.activity(&large.id).unwrap().status, ActivityStatus::Approved);
    // Resolved: a third approver gets 409, an outsider still 403.
    assert!(matches!(h.approve(&user("us-3"), &approval_id).await, Err(Error::Conflict(_))));
    assert!(matches!(h.approve(&user("us-9"), &approval_id).await, Err(Error::Forbidden(_))));

    // Another wallet without the tag is not governed.
    let untagged = h.submit(transfer_with("150000", json!({"wallet": {"id": "wa-2", "tags": ["ops"]}}))).await;
    assert_eq!(untagged.status, ActivityStatus::Allowed);
}

#[actix_rt::test]
async fn multi_tier_operations_and_finance_approval() {
    let h = harness(|b| b).await;
    let tier = |name: &str, limit: &str, group: &str, approvers: serde_json::Value| {
        spec(json!({
            "name": name, "activityKind": "Wallets:Sign",
            "rule": {"kind": "TransactionAmountLimit", "configuration": {"limit": limit, "currency": "USD"}},
            "action": {"kind": "RequestApproval", "approvalGroups": [
                {"name": group, "quorum": 1, "approvers": {"userId": {"in": approvers}}}]}
        }))
    };
    h.add_policy(tier("Operations over 10k", "10000", "Operations", json!(["us-ops1", "us-ops2", "us-cfo"]))).await;
    h.add_policy(tier("Finance over 50k", "50000", "Finance", json!(["us-fin1", "us-cfo"]))).await;

    // 20k: operations only.
    let mid = h.submit(transfer_with("20000", json!({}))).await;
    let mid_approval = h.engine.approval(mid.approval_id.as_deref().unwrap()).unwrap();
    assert_eq!(mid_approval.approval_groups.len(), 1);
    assert_eq!(h.approve(&user("us-ops1"), &mid_approval.id).await.unwrap().status, ApprovalStatus::Approved);

    // 80k: both groups must reach quorum.
    let big = h.submit(transfer_with("80000", json!({}))).await;
    let id = big.approval_id.clone().unwrap();
    assert_eq!(h.engine.approval(&id).unwrap().approval_groups.len(), 2);
    assert_eq!(h.approve(&user("us-ops2"), &id).await.unwrap().status, ApprovalStatus::Pending);
    assert!(matches!(h.approve(&user("us-ops1"), &id).await, Ok(a) if a.status == ApprovalStatus::Pending));
    assert_eq!(h.approve(&user("us-fin1"), &id).await.unwrap().status, ApprovalStatus::Approved);

    // The CFO is in both groups: one decision counts in each.
    let other = h.submit(transfer_with("80000", json!({}))).await;
    let resolved = h.approve(&user("us-cfo"), other.approval_id.as_deref().unwrap()).await.unwrap();
    assert_eq!(resolved.status, ApprovalStatus::Approved);
    assert!(resolved.approval_groups.iter().all(|g| g.approved_by == ["us-cfo"]));
}

#[actix_rt::test]
async fn automated_compliance_service_account_approves_where_allowed() {
    let h = harness(|b| b).await;
    h.add_policy(spec(json!({
        "name": "Compliance screening", "activityKind": "Wallets:Sign",
        "rule": {"kind": "AlwaysTrigger"},
        "action": {"kind": "RequestApproval", "approvalGroups": [
            {"name": "Compliance bot", "quorum": 1,
             "approvers": {"userId": {"in": ["sa-compliance"]}}, "serviceAccountsCanApprove": true},
            {"name": "Humans", "quorum": 1, "approvers": {}}
        ]}
    })))
    .await;
    let activity = h.submit(transfer_with("10", json!({}))).await;
    let id = activity.approval_id.unwrap();

    let after_bot = h.approve(&service("sa-compliance"), &id).await.unwrap();
    assert_eq!(after_bot.approval_groups[0].approved_by, ["sa-compliance"]);
    // `approvers: {}` means any User: not another service account.
    assert!(matches!(h.approve(&service("sa-other"), &id).await, Err(Error::Forbidden(_))));
    // ... and not the initiator, who is a user but may not approve its own.
    assert!(matches!(h.approve(&user("us-bob"), &id).await, Err(Error::Forbidden(_))));
    assert_eq!(h.approve(&user("us-anyone"), &id).await.unwrap().status, ApprovalStatus::Approved);
}

#[actix_rt::test]
async fn a_service_account_needs_the_flag() {
    let h = harness(|b| b).await;
    h.add_policy(spec(json!({
        "name": "No bots", "activityKind": "Wallets:Sign", "rule": {"kind": "AlwaysTrigger"},
        "action": {"kind": "RequestApproval", "approvalGroups": [
            {"name": "g", "quorum": 1, "approvers": {"userId": {"in": ["sa-compliance", "us-1"]}}}]}
    })))
    .await;
    let id = h.submit(transfer_with("10", json!({}))).await.approval_id.unwrap();
    assert!(matches!(h.approve(&service("sa-compliance"), &id).await, Err(Error::Forbidden(_))));
    assert_eq!(h.approve(&user("us-1"), &id).await.unwrap().status, ApprovalStatus::Approved);
}

#[actix_rt::test]
async fn one_rejection_denies_at_once() {
    let h = harness(|b| b).await;
    h.add_policy(large_transaction_policy()).await;
    let activity = h.submit(transfer_with("150000", json!({}))).await;
    let id = activity.approval_id.unwrap();
    h.approve(&user("us-1"), &id).await.unwrap();
    let denied = h.deny(&user("us-3"), &id).await.unwrap();
    assert_eq!(denied.status, ApprovalStatus::Denied);
    assert_eq!(denied.decisions.last().unwrap().value, DecisionValue::Denied);
    assert_eq!(h.engine.activity(&activity.id).unwrap().status, ActivityStatus::Denied);
    assert!(matches!(h.approve(&user("us-2"), &id).await, Err(Error::Conflict(_))));
}

#[actix_rt::test]
async fn the_initiator_may_always_cancel_its_own_activity() {
    let h = harness(|b| b).await;
    h.add_policy(large_transaction_policy()).await;
    let activity = h.submit(transfer_with("150000", json!({}))).await;
    let id = activity.approval_id.unwrap();
    let denied = h.deny(&user("us-bob"), &id).await.unwrap();
    assert_eq!(denied.status, ApprovalStatus::Denied);
    // "Rejected" is read as "Denied".
    let value: DecisionValue = serde_json::from_value(json!("Rejected")).unwrap();
    assert_eq!(value, DecisionValue::Denied);
}

#[actix_rt::test]
async fn approvals_expire_with_the_manual_clock() {
    let h = harness(|b| b).await;
    let mut short = large_transaction_policy();
    short.action.auto_reject_timeout = Some(3600);
    short.name = "Short".into();
    h.add_policy(large_transaction_policy()).await;
    h.add_policy(short).await;
    let activity = h.submit(transfer_with("150000", json!({}))).await;
    let id = activity.approval_id.unwrap();
    // The smallest timeout among the policies wins.
    assert_eq!(h.engine.approval(&id).unwrap().expiration_date, Some(t0() + Duration::seconds(3600)));

    h.clock.advance(Duration::seconds(3599));
    assert_eq!(h.engine.expire_due().await, 0);
    assert_eq!(h.engine.approval(&id).unwrap().status, ApprovalStatus::Pending);
    h.clock.advance(Duration::seconds(1));
    assert_eq!(h.engine.expire_due().await, 1);
    let expired = h.engine.approval(&id).unwrap();
    assert_eq!(expired.status, ApprovalStatus::Expired);
    assert_eq!(expired.date_resolved, expired.expiration_date, "it expired at its deadline");
    assert_eq!(h.engine.activity(&activity.id).unwrap().status, ActivityStatus::Expired);
    assert!(matches!(h.approve(&user("us-1"), &id).await, Err(Error::Conflict(_))));
}

#[actix_rt::test]
async fn an_approval_due_while_the_engine_was_down_expires_at_start() {
    let h = harness(|b| b).await;
    h.add_policy(large_transaction_policy()).await;
    let activity = h.submit(transfer_with("150000", json!({}))).await;
    let id = activity.approval_id.unwrap();
    h.approve(&user("us-1"), &id).await.unwrap();
    h.clock.advance(Duration::days(2));
    let engine = h.restart(|b| b).await;
    let approval = engine.approval(&id).unwrap();
    assert_eq!(approval.status, ApprovalStatus::Expired);
    assert_eq!(
        approval.date_resolved,
        Some(t0() + Duration::seconds(86400)),
        "dated at its deadline, not at the restart"
    );
    assert_eq!(approval.decisions.len(), 1, "the decision taken before the restart is kept");
    assert_eq!(engine.activity(&activity.id).unwrap().status, ActivityStatus::Expired);
}

#[actix_rt::test]
async fn whitelist_compares_hex_addresses_case_insensitively() {
    let h = harness(|b| b).await;
    h.add_policy(spec(json!({
        "name": "Known recipients", "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionRecipientWhitelist",
                 "configuration": {"addresses": ["0x76D1B7F9B3F69C435EEF76A98A415332084A856F"]}},
        "action": {"kind": "Block"}
    })))
    .await;
    let listed = h.submit(transfer_with("10", json!({}))).await;
    assert_eq!(listed.status, ActivityStatus::Allowed);
    let lower = h
        .submit(transfer_with(
            "10",
            json!({"transaction": {"recipient": "0x76d1b7f9b3f69c435eef76a98a415332084a856f"}}),
        ))
        .await;
    assert_eq!(lower.status, ActivityStatus::Allowed);
    let other = h
        .submit(transfer_with(
            "10",
            json!({"transaction": {"recipient": "0x0000000000000000000000000000000000000bad"}}),
        ))
        .await;
    assert_eq!(other.status, ActivityStatus::Blocked);
    let mut message = transfer("0");
    message["transaction"] = json!({"type": "MessageSignature", "assets": []});
    let absent = h.submit(request(message)).await;
    assert_eq!(absent.status, ActivityStatus::Blocked, "an absent recipient fails closed");
}

#[actix_rt::test]
async fn tag_filters_choose_the_wallets() {
    let h = harness(|b| b).await;
    h.add_policy(spec(json!({
        "name": "Cold wallets are blocked", "activityKind": "Wallets:Sign",
        "rule": {"kind": "AlwaysTrigger"}, "action": {"kind": "Block"},
        "filters": {"walletTags": {"hasAll": ["cold", "treasury"]}}
    })))
    .await;
    let hot = h.submit(transfer_with("1", json!({}))).await;
    assert_eq!(hot.status, ActivityStatus::Allowed);
    let cold = h.submit(transfer_with("1", json!({"wallet": {"tags": ["treasury", "cold"]}}))).await;
    assert_eq!(cold.status, ActivityStatus::Blocked);
}

fn tier(name: &str, priority: i64, rule: serde_json::Value, action: serde_json::Value) -> PolicySpec {
    spec(json!({"name": name, "activityKind": "Wallets:Sign", "rule": rule, "action": action, "priority": priority}))
}

#[actix_rt::test]
async fn first_match_tiers_decide_in_priority_order() {
    let h = harness(|b| b.evaluation_mode(EvaluationMode::FirstMatch).default_action(DefaultAction::Block)).await;
    let over =
        |limit: &str| json!({"kind": "TransactionAmountLimit", "configuration": {"limit": limit, "currency": "USD"}});
    let approval = json!({"kind": "RequestApproval", "approvalGroups": [{"name": "g", "quorum": 1, "approvers": {}}]});
    // Created out of order: priority, not creation, decides.
    h.add_policy(tier("Small transfers", 3, over("0.01"), json!({"kind": "NoAction"}))).await;
    h.add_policy(tier("Huge transfers", 1, over("1000000"), json!({"kind": "Block"}))).await;
    h.add_policy(tier("Large transfers", 2, over("10000"), approval)).await;

    assert_eq!(h.submit(transfer_with("5000", json!({}))).await.status, ActivityStatus::Allowed);
    let large = h.submit(transfer_with("50000", json!({}))).await;
    assert_eq!(large.status, ActivityStatus::PendingApproval);
    assert_eq!(large.policy_evaluations.len(), 1);
    assert_eq!(large.policy_evaluations[0].name, "Large transfers");
    assert_eq!(h.submit(transfer_with("2000000", json!({}))).await.status, ActivityStatus::Blocked);
    // Nothing triggers for a zero-value transfer: the default action blocks.
    assert_eq!(h.submit(transfer_with("0", json!({}))).await.status, ActivityStatus::Blocked);
}

#[actix_rt::test]
async fn a_repeated_external_id_answers_the_first_answer() {
    let h = harness(|b| b).await;
    h.add_policy(large_transaction_policy()).await;
    let first = h.submit(transfer_with("150000", json!({"externalId": "signer-req-8812"}))).await;
    let again = h.submit(transfer_with("1", json!({"externalId": "signer-req-8812"}))).await;
    assert_eq!(again.id, first.id);
    assert_eq!(again.status, ActivityStatus::PendingApproval);
    let signatures = ActivityFilter { wallet_id: Some("wa-1".into()), ..Default::default() };
    let page = h.engine.activities(&signatures, &PageRequest::default()).unwrap();
    assert_eq!(page.items.len(), 1, "the repeat evaluated nothing");

    // Concurrent repeats evaluate once, too.
    let requests = (0..20).map(|_| h.engine.evaluate(transfer_with("5", json!({"externalId": "burst"}))));
    let answers = futures_util::future::join_all(requests).await;
    let ids: std::collections::HashSet<_> = answers.into_iter().map(|a| a.unwrap().id).collect();
    assert_eq!(ids.len(), 1);

    // And after a restart.
    let engine = h.restart(|b| b).await;
    let replay = engine.evaluate(transfer_with("1", json!({"externalId": "signer-req-8812"}))).await.unwrap();
    assert_eq!(replay.id, first.id);
}

#[actix_rt::test]
async fn invalid_activities_are_refused_and_change_nothing() {
    let h = harness(|b| b).await;
    let cases = [
        (
            json!({"transaction": {"assets": [{"symbol": "ETH", "decimals": 18, "amount": "-1"}]}}),
            "transaction.assets[0].amount",
        ),
        (
            json!({"transaction": {"assets": [{"symbol": "ETH", "decimals": 18, "amount": "1.5"}]}}),
            "transaction.assets[0].amount",
        ),
        (
            json!({"transaction": {"assets": [{"symbol": "ETH", "decimals": 18,
            "amount": "115792089237316195423570985008687907853269984665640564039457584007913129639936"}]}}),
            "transaction.assets[0].amount",
        ),
        (
            json!({"transaction": {"assets": [{"symbol": "ETH", "decimals": 18, "amount": "1", "valueUsd": "abc"}]}}),
            "transaction.assets[0].valueUsd",
        ),
        (json!({"wallet": {"id": ""}}), "wallet.id"),
    ];
    for (patch, field) in cases {
        match h.engine.evaluate(transfer_with("1", patch)).await {
            Err(Error::Invalid(e)) => assert_eq!(e.field, field, "{e}"),
            other => panic!("expected a validation error on {field}, got {other:?}"),
        }
    }
    let page = h.engine.activities(&ActivityFilter::default(), &PageRequest::default()).unwrap();
    assert!(page.items.is_empty());
}
