//! Policy-change governance over HTTP: governed update and archive, approval
//! applies, denial rejects, lockout refused.

mod http_support;

use http_support::*;
use serde_json::{json, Value};

fn governance(approvers: Value, quorum: u32) -> Value {
    json!({
        "name": "Two admins", "activityKind": "Policies:Modify",
        "rule": {"kind": "AlwaysTrigger"},
        "action": {"kind": "RequestApproval", "approvalGroups": [{
            "name": "Admins", "quorum": quorum, "approvers": {"userId": {"in": approvers}}}]}
    })
}

async fn decide(server: &TestServer, approval: &Value, token: &str, value: &str) -> Value {
    let path = format!("/v2/policy-approvals/{}/decisions", approval.as_str().unwrap());
    server.post(&path, Some(token), &json!({"value": value, "reason": "reviewed"})).await.expect(200)
}

#[actix_rt::test]
async fn governed_update_and_archive_apply_on_approval_and_drop_on_denial() {
    let server = TestServer::start().await;
    let target = server.post("/v2/policies", Some(ALICE), &seed_policy()).await.expect(200);
    let path = format!("/v2/policies/{}", target["id"].as_str().unwrap());
    server.post("/v2/policies", Some(ALICE), &governance(json!(["us-carol", "us-1"]), 1)).await.expect(200);

    // Update: held, then denied by an approver: nothing changes.
    let mut renamed = seed_policy();
    renamed["name"] = json!("Renamed");
    let update = server.put(&path, Some(ALICE), &renamed).await.expect(202);
    assert_eq!(update["operationKind"], "Update");
    assert_eq!(update["entityId"], target["id"]);
    assert_eq!(update["body"]["name"], "Renamed");
    let denied = decide(&server, &update["approvalId"], APPROVER_1, "Rejected").await;
    assert_eq!(denied["status"], "Denied");
    let change = server.get(&format!("/v2/change-requests/{}", update["id"].as_str().unwrap()), Some(BOB)).await;
    assert_eq!(change.expect(200)["status"], "Rejected");
    let unchanged = server.get(&path, Some(BOB)).await.expect(200);
    assert_eq!(unchanged["name"], "Large Transaction Approval");
    assert!(unchanged.get("pendingChangeRequest").is_none());

    // Update again: approved, applied.
    let update = server.put(&path, Some(ALICE), &renamed).await.expect(202);
    decide(&server, &update["approvalId"], CAROL, "Approved").await;
    assert_eq!(server.get(&path, Some(BOB)).await.expect(200)["name"], "Renamed");

    // Archive: held (202 with Delete), approved, archived.
    let archive = server.delete(&path, Some(ALICE)).await.expect(202);
    assert_eq!(archive["operationKind"], "Delete");
    decide(&server, &archive["approvalId"], CAROL, "Approved").await;
    assert_eq!(server.get(&path, Some(BOB)).await.expect(200)["status"], "Archived");
    let archived = server.get("/v2/policies?status=Archived", Some(BOB)).await.expect(200);
    assert_eq!(archived["items"].as_array().unwrap().len(), 1);

    // The policy changes are activities in the audit trail.
    let trail = server.get("/v2/activities?limit=1000", Some(BOB)).await.expect(200);
    let modify =
        trail["items"].as_array().unwrap().iter().filter(|a| a["activity"]["kind"] == "Policies:Modify").count();
    assert_eq!(modify, 5, "the two creates, two updates and the archive");
    server.stop().await;
}

#[actix_rt::test]
async fn a_governing_policy_no_one_could_satisfy_is_refused() {
    let server = TestServer::start().await;
    // Quorum above the approvers listed.
    let refused = server.post("/v2/policies", Some(ALICE), &governance(json!(["us-carol"]), 2)).await;
    refused.assert_problem(400, "action.approvalGroups[0].quorum");
    // A Policies:Modify policy may only request approval.
    let mut blocking = governance(json!(["us-carol"]), 1);
    blocking["action"] = json!({"kind": "Block"});
    server.post("/v2/policies", Some(ALICE), &blocking).await.assert_problem(400, "action.kind");
    assert!(server.get("/v2/policies", Some(BOB)).await.expect(200)["items"].as_array().unwrap().is_empty());
    server.stop().await;
}
