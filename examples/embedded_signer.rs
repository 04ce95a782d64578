//! A signer embedding Warden, read top to bottom: build an engine on a redb
//! journal, add the seed's large-transaction policy, ask about two transfers,
//! and approve the large one with two treasury approvers. The signer signs
//! only on `Allowed` or `Approved`.
//!
//! Run with `cargo run --example embedded_signer`.

use serde_json::json;
use warden::{ActivityRequest, ActivityStatus, DecisionValue, Engine, PolicyChange, PolicySpec, Principal, Role};
use warden_redb::RedbJournal;

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. An engine whose every answer is durable in a redb file.
    let data = tempfile::tempdir()?;
    let journal = RedbJournal::open(data.path().join("warden.redb"))?;
    let engine = Engine::builder().journal(journal).build().await?;

    // 2. The seed's policy: transfers over 100k USD from treasury wallets
    //    need two of three treasury approvers.
    let admin = Principal::user("us-alice", &[Role::Admin]);
    let policy: PolicySpec = serde_json::from_value(json!({
        "name": "Large Transaction Approval",
        "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionAmountLimit", "configuration": {"limit": "100000", "currency": "USD"}},
        "action": {
            "kind": "RequestApproval",
            "approvalGroups": [{"name": "Treasury", "quorum": 2,
                                "approvers": {"userId": {"in": ["us-1", "us-2", "us-3"]}}}],
            "autoRejectTimeout": 86400
        },
        "filters": {"walletTags": {"hasAny": ["treasury"]}}
    }))?;
    let PolicyChange::Applied(policy) = engine.create_policy(&admin, policy).await? else {
        return Err("no governing policy exists yet, so the change applies at once".into());
    };
    println!("policy {} is active", policy.id);

    // 3. What the signer asks before signing.
    let transfer = |usd: &str, external_id: &str| -> Result<ActivityRequest, serde_json::Error> {
        serde_json::from_value(json!({
            "kind": "Wallets:Sign",
            "initiator": {"id": "us-bob", "kind": "User"},
            "wallet": {"id": "wa-1", "tags": ["treasury"]},
            "transaction": {"type": "Transfer", "network": "Ethereum",
                "recipient": "0x76d1b7f9b3F69C435eeF76a98A415332084A856F",
                "assets": [{"symbol": "ETH", "decimals": 18, "amount": "1500000000000000000", "valueUsd": usd}]},
            "externalId": external_id
        }))
    };
    let small = engine.evaluate(transfer("4500.00", "signer-req-1")?).await?;
    println!("4 500 USD: {:?} -> sign now", small.status);
    assert_eq!(small.status, ActivityStatus::Allowed);

    let large = engine.evaluate(transfer("150000.00", "signer-req-2")?).await?;
    println!("150 000 USD: {:?} ({})", large.status, large.policy_evaluations[0].reason);
    let approval_id = large.approval_id.clone().ok_or("a held activity has an approval")?;

    // 4. Two treasury approvers decide; the second completes the quorum.
    for approver in ["us-1", "us-2"] {
        let who = Principal::user(approver, &[]);
        let approval = engine.decide(&who, &approval_id, DecisionValue::Approved, "invoice checked").await?;
        println!("{approver} approved: approval is {:?}", approval.status);
    }

    // 5. The signer looks again (or listens to `engine.subscribe()`).
    let now = engine.activity(&large.id)?;
    println!("150 000 USD: {:?} -> sign now", now.status);
    assert_eq!(now.status, ActivityStatus::Approved);

    engine.shutdown();
    Ok(())
}
