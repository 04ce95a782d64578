use warden::*;

#[actix_rt::test]
async fn smoke() {
    let engine = Engine::builder().build().await.unwrap();
    let admin = Principal::user("us-alice", &[Role::Admin]);
    let spec: PolicySpec = serde_json::from_value(serde_json::json!({
        "name": "Large Transaction Approval",
        "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionAmountLimit", "configuration": {"limit": "100000", "currency": "USD"}},
        "action": {"kind": "RequestApproval", "approvalGroups": [{"name": "Treasury", "quorum": 2,
            "approvers": {"userId": {"in": ["us-1", "us-2", "us-3"]}}}], "autoRejectTimeout": 86400},
        "filters": {"walletTags": {"hasAny": ["treasury"]}}
    })).unwrap();
    let change = engine.create_policy(&admin, spec).await.unwrap();
    println!("{}", serde_json::to_string_pretty(&change).unwrap());
    let req: ActivityRequest = serde_json::from_value(serde_json::json!({
        "kind": "Wallets:Sign", "initiator": {"id": "us-bob", "kind": "User"},
        "wallet": {"id": "wa-1", "tags": ["treasury"]},
        "transaction": {"type": "Transfer", "network": "Ethereum", "recipient": "0xabc",
          "assets": [{"symbol": "ETH", "decimals": 18, "amount": "1500000000000000000", "valueUsd": "150000.00"}]},
        "externalId": "x1"
    })).unwrap();
    let a = engine.evaluate(req.clone()).await.unwrap();
    println!("{}", serde_json::to_string_pretty(&a).unwrap());
    assert_eq!(a.status, ActivityStatus::PendingApproval);
    let ap = a.approval_id.clone().unwrap();
    engine.decide(&Principal::user("us-1", &[]), &ap, DecisionValue::Approved, "ok").await.unwrap();
    let r = engine.decide(&Principal::user("us-2", &[]), &ap, DecisionValue::Approved, "ok").await.unwrap();
    println!("{}", serde_json::to_string_pretty(&r).unwrap());
    assert_eq!(r.status, ApprovalStatus::Approved);
    assert_eq!(engine.activity(&a.id).unwrap().status, ActivityStatus::Approved);
    let again = engine.evaluate(req).await.unwrap();
    assert_eq!(again.id, a.id);
}
