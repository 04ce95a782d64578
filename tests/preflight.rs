//! The public pure evaluation: policies compiled once, activities judged
//! without windows, journal or actors.

mod common;

use common::*;
use serde_json::json;
use warden::*;

fn stored(spec: PolicySpec, id: &str) -> Policy {
    Policy { id: id.into(), spec, date_created: t0(), date_updated: t0() }
}

#[test]
fn preflight_judges_like_the_engine_without_windows() {
    let velocity = spec(json!({"name": "v", "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionAmountVelocity", "configuration": {"limit": "1000", "currency": "USD", "timeWindow": 60}},
        "action": {"kind": "Block"}}));
    let evaluator = PolicyEvaluator::new(
        [stored(large_transaction_policy(), "pl-large"), stored(velocity, "pl-velocity")],
        Settings::default(),
    )
    .unwrap();

    let small = evaluator.evaluate(&transfer_with("50", json!({}))).unwrap();
    assert_eq!((small.status, small.evaluations.len()), (ActivityStatus::Allowed, 0));

    let held = evaluator.evaluate(&transfer_with("500", json!({"wallet": {"tags": ["treasury"]}}))).unwrap();
    assert_eq!(held.status, ActivityStatus::Allowed, "the velocity window is judged empty");

    let over = evaluator.evaluate(&transfer_with("1500", json!({}))).unwrap();
    assert_eq!(over.status, ActivityStatus::Blocked, "1500 alone exceeds the 1000 window");
    assert_eq!(over.evaluations[0].policy_id, "pl-velocity");

    let large = evaluator.evaluate(&transfer_with("150000", json!({}))).unwrap();
    assert_eq!(large.status, ActivityStatus::Blocked, "Block wins over RequestApproval");
    assert_eq!(large.evaluations.len(), 2);
}

#[test]
fn preflight_refuses_invalid_input_naming_the_field() {
    let evaluator =
        PolicyEvaluator::new([stored(large_transaction_policy(), "pl-large")], Settings::default()).unwrap();
    let mut bad = transfer_with("50", json!({}));
    bad.transaction.as_mut().unwrap().assets[0].decimals = 200;
    let error = evaluator.evaluate(&bad).unwrap_err();
    assert!(error.field.contains("decimals"), "{error}");

    let mut broken = large_transaction_policy();
    broken.action.approval_groups[0].quorum = 0;
    let error = PolicyEvaluator::new([stored(broken, "pl-bad")], Settings::default()).unwrap_err();
    assert!(error.field.starts_with("policies[`pl-bad`]"), "{error}");
}
