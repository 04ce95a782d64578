//! The contract's seed material as JSON, shared by the engine tests, the HTTP
//! tests and the benches (each includes this file).
#![allow(dead_code)]

use serde_json::{json, Value};

/// The seed's large-transaction policy: over 100k USD from a treasury wallet
/// needs two of three treasury approvers.
pub fn seed_policy() -> Value {
    json!({
        "name": "Large Transaction Approval",
        "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionAmountLimit", "configuration": {"limit": "100000", "currency": "USD"}},
        "action": {
            "kind": "RequestApproval",
            "approvalGroups": [{
                "name": "Treasury", "quorum": 2,
                "approvers": {"userId": {"in": ["us-1", "us-2", "us-3"]}},
                "initiatorCanApprove": false, "serviceAccountsCanApprove": false
            }],
            "autoRejectTimeout": 86400
        },
        "filters": {"walletTags": {"hasAny": ["treasury"]}},
        "priority": 10,
        "status": "Active"
    })
}
