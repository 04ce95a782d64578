//! Every route of the contract over real HTTP: activities, policies and
//! governed changes, approvals and decisions, webhooks, pagination, and the
//! operational routes.

mod http_support;

use actix_web::http::Method;
use http_support::*;
use serde_json::json;

#[actix_rt::test]
async fn the_seed_scenario_runs_end_to_end() {
    let server = TestServer::start().await;

    let policy = server.post("/v2/policies", Some(ALICE), &seed_policy()).await.expect(200);
    let policy_id = policy["id"].as_str().unwrap().to_owned();
    assert!(policy_id.starts_with("pl-"));
    assert_eq!(policy["name"], "Large Transaction Approval");
    assert_eq!(policy["status"], "Active");
    assert!(policy["dateCreated"].is_string() && policy["dateUpdated"].is_string());

    let small = server.post("/v2/activities", Some(BOB), &activity("4500.00", None)).await.expect(200);
    assert_eq!(small["status"], "Allowed");
    assert_eq!(
        small["activity"]["initiator"],
        json!({"id": "us-bob", "kind": "User"}),
        "initiator defaults to the caller"
    );

    let large =
        server.post("/v2/activities", Some(BOB), &activity("150000.00", Some("signer-req-1"))).await.expect(200);
    assert_eq!(large["status"], "PendingApproval");
    let activity_id = large["id"].as_str().unwrap().to_owned();
    let approval_id = large["approvalId"].as_str().unwrap().to_owned();
    assert!(activity_id.starts_with("ac-") && approval_id.starts_with("ap-"));
    assert_eq!(large["policyEvaluations"][0]["policyId"], policy_id.as_str());
    assert_eq!(large["policyEvaluations"][0]["triggered"], true);

    // A repeated externalId answers with the first activity.
    let again =
        server.post("/v2/activities", Some(BOB), &activity("150000.00", Some("signer-req-1"))).await.expect(200);
    assert_eq!(again["id"], activity_id.as_str());

    let read = server.get(&format!("/v2/activities/{activity_id}"), Some(APPROVER_1)).await.expect(200);
    assert_eq!(read["status"], "PendingApproval");

    let pending = server.get("/v2/policy-approvals?status=Pending", Some(APPROVER_1)).await.expect(200);
    assert_eq!(pending["items"].as_array().unwrap().len(), 1);
    assert_eq!(pending["items"][0]["id"], approval_id.as_str());
    assert!(pending.get("nextPageToken").is_none());
    let mine = server.get("/v2/policy-approvals?approverId=us-1", Some(APPROVER_1)).await.expect(200);
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let not_mine = server.get("/v2/policy-approvals?approverId=us-alice", Some(APPROVER_1)).await.expect(200);
    assert_eq!(not_mine["items"].as_array().unwrap().len(), 0);
    let by_bob = server.get("/v2/policy-approvals?initiatorId=us-bob", Some(ALICE)).await.expect(200);
    assert_eq!(by_bob["items"].as_array().unwrap().len(), 1);

    let decisions = format!("/v2/policy-approvals/{approval_id}/decisions");
    let first = server.post(&decisions, Some(APPROVER_1), &json!({"value": "Approved", "reason": "checked"})).await;
    let first = first.expect(200);
    assert_eq!(first["status"], "Pending");
    assert_eq!(first["decisions"][0]["userId"], "us-1");
    assert_eq!(first["approvalGroups"][0]["approvedBy"], json!(["us-1"]));

    // A second decision by the same principal: 409.
    server
        .post(&decisions, Some(APPROVER_1), &json!({"value": "Approved", "reason": "again"}))
        .await
        .assert_problem(409, "");
    // Not eligible (not listed, and the initiator may not approve): 403.
    server.post(&decisions, Some(ALICE), &json!({"value": "Approved"})).await.assert_problem(403, "");
    server.post(&decisions, Some(BOB), &json!({"value": "Approved"})).await.assert_problem(403, "");

    // Without a reason: the field is omitted, never `""` or `null`.
    let second = server.post(&decisions, Some(APPROVER_2), &json!({"value": "Approved"})).await;
    let second = second.expect(200);
    assert_eq!(second["status"], "Approved");
    assert!(second["dateResolved"].is_string());
    assert_eq!(second["decisions"][0]["reason"], "checked");
    assert_eq!(second["decisions"][1]["userId"], "us-2");
    assert!(second["decisions"][1].get("reason").is_none(), "{}", second["decisions"][1]);

    let approved = server.get(&format!("/v2/activities/{activity_id}"), Some(BOB)).await.expect(200);
    assert_eq!(approved["status"], "Approved");
    let approval = server.get(&format!("/v2/policy-approvals/{approval_id}"), Some(BOB)).await.expect(200);
    assert_eq!(approval["decisions"].as_array().unwrap().len(), 2);

    // Order on a resolved approval: unknown 404, not eligible 403, eligible 409.
    server
        .post("/v2/policy-approvals/ap-unknown/decisions", Some(ALICE), &json!({"value": "Approved"}))
        .await
        .assert_problem(404, "ap-unknown");
    server.post(&decisions, Some(ALICE), &json!({"value": "Approved"})).await.assert_problem(403, "");
    server.post(&decisions, Some(APPROVER_3), &json!({"value": "Approved"})).await.assert_problem(409, "");

    let list = server.get("/v2/activities?walletId=wa-1", Some(BOB)).await.expect(200);
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let approved_list = server.get("/v2/activities?status=Approved", Some(BOB)).await.expect(200);
    assert_eq!(approved_list["items"].as_array().unwrap().len(), 1);
    let other_wallet = server.get("/v2/activities?walletId=wa-2", Some(BOB)).await.expect(200);
    assert_eq!(other_wallet["items"].as_array().unwrap().len(), 0);
    server.get("/v2/activities/ac-unknown", Some(BOB)).await.assert_problem(404, "ac-unknown");
    server.get("/v2/policy-approvals/ap-unknown", Some(BOB)).await.assert_problem(404, "ap-unknown");

    server.stop().await;
}

#[actix_rt::test]
async fn rejected_is_read_as_denied() {
    let server = TestServer::start().await;
    server.post("/v2/policies", Some(ALICE), &seed_policy()).await.expect(200);
    let large = server.post("/v2/activities", Some(BOB), &activity("250000", None)).await.expect(200);
    let approval_id = large["approvalId"].as_str().unwrap();
    let denied = server
        .post(
            &format!("/v2/policy-approvals/{approval_id}/decisions"),
            Some(APPROVER_3),
            &json!({"value": "Rejected", "reason": "too much"}),
        )
        .await
        .expect(200);
    assert_eq!(denied["status"], "Denied");
    assert_eq!(denied["decisions"][0]["value"], "Denied");
    let activity = server.get(&format!("/v2/activities/{}", large["id"].as_str().unwrap()), Some(BOB)).await;
    assert_eq!(activity.expect(200)["status"], "Denied");
    server.stop().await;
}

#[actix_rt::test]
async fn policies_are_read_replaced_and_archived() {
    let server = TestServer::start().await;
    let policy = server.post("/v2/policies", Some(ALICE), &seed_policy()).await.expect(200);
    let id = policy["id"].as_str().unwrap();
    let path = format!("/v2/policies/{id}");

    let read = server.get(&path, Some(BOB)).await.expect(200);
    assert_eq!(read["id"], id);
    assert!(read.get("pendingChangeRequest").is_none());

    let mut replacement = seed_policy();
    replacement["name"] = json!("Renamed");
    let updated = server.put(&path, Some(ALICE), &replacement).await.expect(200);
    assert_eq!(updated["name"], "Renamed");
    assert_eq!(updated["id"], id);

    let archived = server.delete(&path, Some(ALICE)).await.expect(200);
    assert_eq!(archived["status"], "Archived");
    let active = server.get("/v2/policies?status=Active", Some(BOB)).await.expect(200);
    assert_eq!(active["items"].as_array().unwrap().len(), 0);
    let archived_list = server.get("/v2/policies?status=Archived", Some(BOB)).await.expect(200);
    assert_eq!(archived_list["items"][0]["id"], id);

    // An archived policy never triggers.
    let large = server.post("/v2/activities", Some(BOB), &activity("500000", None)).await.expect(200);
    assert_eq!(large["status"], "Allowed");

    server.get("/v2/policies/pl-unknown", Some(BOB)).await.assert_problem(404, "pl-unknown");
    server.put("/v2/policies/pl-unknown", Some(ALICE), &seed_policy()).await.assert_problem(404, "pl-unknown");
    server.delete("/v2/policies/pl-unknown", Some(ALICE)).await.assert_problem(404, "pl-unknown");
    server.stop().await;
}

#[actix_rt::test]
async fn governed_policy_changes_answer_202_and_apply_when_approved() {
    let server = TestServer::start().await;
    let governance = json!({
        "name": "Policy changes need a second pair of eyes",
        "activityKind": "Policies:Modify",
        "rule": {"kind": "AlwaysTrigger", "configuration": {}},
        "action": {"kind": "RequestApproval", "approvalGroups": [{
            "name": "Admins", "quorum": 1, "approvers": {"userId": {"in": ["us-alice", "us-carol"]}}
        }]}
    });
    let governing = server.post("/v2/policies", Some(ALICE), &governance).await.expect(200);

    let held = server.post("/v2/policies", Some(ALICE), &seed_policy()).await.expect(202);
    assert!(held["id"].as_str().unwrap().starts_with("cr-"));
    assert_eq!(held["kind"], "Policy");
    assert_eq!(held["operationKind"], "Create");
    assert_eq!(held["status"], "Pending");
    assert_eq!(held["requester"], json!({"userId": "us-alice"}));
    let entity_id = held["entityId"].as_str().unwrap().to_owned();
    let change_path = format!("/v2/change-requests/{}", held["id"].as_str().unwrap());
    assert_eq!(server.get(&change_path, Some(BOB)).await.expect(200)["status"], "Pending");
    server.get(&format!("/v2/policies/{entity_id}"), Some(BOB)).await.assert_problem(404, &entity_id);

    // A change of a policy that already has one pending: 409.
    let governing_path = format!("/v2/policies/{}", governing["id"].as_str().unwrap());
    let first_update = server.put(&governing_path, Some(ALICE), &governance).await.expect(202);
    assert_eq!(first_update["operationKind"], "Update");
    let with_pending = server.get(&governing_path, Some(BOB)).await.expect(200);
    assert_eq!(with_pending["pendingChangeRequest"]["id"], first_update["id"]);
    server.put(&governing_path, Some(ALICE), &governance).await.assert_problem(409, "pending");
    let archive = server.delete(&governing_path, Some(ALICE)).await;
    archive.assert_problem(409, "pending");

    let approval_id = held["approvalId"].as_str().unwrap();
    server
        .post(&format!("/v2/policy-approvals/{approval_id}/decisions"), Some(CAROL), &json!({"value": "Approved"}))
        .await
        .expect(200);
    assert_eq!(server.get(&change_path, Some(BOB)).await.expect(200)["status"], "Applied");
    let created = server.get(&format!("/v2/policies/{entity_id}"), Some(BOB)).await.expect(200);
    assert_eq!(created["name"], "Large Transaction Approval");
    server.get("/v2/change-requests/cr-unknown", Some(BOB)).await.assert_problem(404, "cr-unknown");
    server.stop().await;
}

#[actix_rt::test]
async fn webhooks_are_registered_listed_and_deleted() {
    let server = TestServer::start().await;
    let spec = json!({"url": "http://127.0.0.1:9/hook", "events": ["*"], "status": "Disabled"});
    let created = server.post("/v2/webhooks", Some(ALICE), &spec).await.expect(200);
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("wh-"));
    assert!(created["secret"].as_str().is_some_and(|s| !s.is_empty()), "the secret is shown on create");
    assert_eq!(created["events"], json!(["*"]));

    let read = server.get(&format!("/v2/webhooks/{id}"), Some(ALICE)).await.expect(200);
    assert!(read.get("secret").is_none(), "the secret is shown only on create");
    let list = server.get("/v2/webhooks", Some(ALICE)).await.expect(200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(list["items"][0].get("secret").is_none());
    let events = server.get(&format!("/v2/webhooks/{id}/events"), Some(ALICE)).await.expect(200);
    assert!(events["items"].is_array());

    let deleted = server.delete(&format!("/v2/webhooks/{id}"), Some(ALICE)).await.expect(200);
    assert_eq!(deleted, json!({"deleted": true}), "Dfns' answer to a delete");
    server.get(&format!("/v2/webhooks/{id}"), Some(ALICE)).await.assert_problem(404, &id);
    server.get(&format!("/v2/webhooks/{id}/events"), Some(ALICE)).await.assert_problem(404, &id);
    server.delete(&format!("/v2/webhooks/{id}"), Some(ALICE)).await.assert_problem(404, &id);
    server.stop().await;
}

#[actix_rt::test]
async fn lists_walk_pages_with_next_page_tokens() {
    let server = TestServer::start().await;
    let mut created = Vec::new();
    for i in 0..7 {
        let mut spec = seed_policy();
        spec["name"] = json!(format!("policy {i}"));
        created
            .push(server.post("/v2/policies", Some(ALICE), &spec).await.expect(200)["id"].as_str().unwrap().to_owned());
    }
    let mut walked = Vec::new();
    let mut path = "/v2/policies?limit=3".to_owned();
    let mut sizes = Vec::new();
    loop {
        let page = server.get(&path, Some(BOB)).await.expect(200);
        let items = page["items"].as_array().unwrap();
        sizes.push(items.len());
        walked.extend(items.iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        match page["nextPageToken"].as_str() {
            Some(token) => path = format!("/v2/policies?limit=3&paginationToken={token}"),
            None => break,
        }
    }
    assert_eq!(sizes, vec![3, 3, 1]);
    assert_eq!(walked, created, "every policy once, in creation order");
    assert_eq!(server.all_ids("/v2/policies", BOB).await, created);
    let everything = server.get("/v2/policies", Some(BOB)).await.expect(200);
    assert_eq!(everything["items"].as_array().unwrap().len(), 7);
    assert!(everything.get("nextPageToken").is_none());

    for bad in ["0", "1001", "abc", "-1", "2.5"] {
        server.get(&format!("/v2/policies?limit={bad}"), Some(BOB)).await.assert_problem(400, "limit");
        server.get(&format!("/v2/activities?limit={bad}"), Some(BOB)).await.assert_problem(400, "limit");
        server.get(&format!("/v2/policy-approvals?limit={bad}"), Some(BOB)).await.assert_problem(400, "limit");
        server.get(&format!("/v2/webhooks?limit={bad}"), Some(ALICE)).await.assert_problem(400, "limit");
    }
    server.get("/v2/policies?limit=1000", Some(BOB)).await.expect(200);
    server.get("/v2/policies?paginationToken=nonsense", Some(BOB)).await.assert_problem(400, "paginationToken");
    server.stop().await;
}

#[actix_rt::test]
async fn operational_routes_answer_without_a_token() {
    let server = TestServer::start().await;
    let health = server.get("/healthz", None).await.expect(200);
    assert_eq!(health["status"], "ok");
    // A single node leads, and names itself.
    assert_eq!(health["role"], "leader", "{health}");
    assert_eq!(health["leader"], server.base.as_str(), "{health}");
    let metrics = server.get("/metrics", None).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.content_type.starts_with("text/plain"));

    let document = server.get("/openapi.json", None).await.expect(200);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/v2/activities", &["get", "post"][..]),
        ("/v2/activities/{id}", &["get"]),
        ("/v2/policies", &["get", "post"]),
        ("/v2/policies/{id}", &["get", "put", "delete"]),
        ("/v2/policy-approvals", &["get"]),
        ("/v2/policy-approvals/{id}", &["get"]),
        ("/v2/policy-approvals/{id}/decisions", &["post"]),
        ("/v2/change-requests/{id}", &["get"]),
        ("/v2/webhooks", &["get", "post"]),
        ("/v2/webhooks/{id}", &["get", "delete"]),
        ("/v2/webhooks/{id}/events", &["get"]),
        ("/healthz", &["get"]),
        ("/metrics", &["get"]),
        ("/openapi.json", &["get"]),
    ] {
        for method in methods {
            assert!(paths[path].get(*method).is_some(), "{method} {path} is not documented");
        }
    }

    let unknown = server.get("/v2/nothing-here", Some(ALICE)).await;
    unknown.assert_problem(404, "/v2/nothing-here");
    let wrong_method = server.send(Method::PATCH, "/v2/policies", Some(ALICE), None, Vec::new()).await;
    wrong_method.assert_problem(405, "PATCH");
    assert!(wrong_method.headers.get("allow").is_some());
    server.delete("/v2/activities", Some(ALICE)).await.assert_problem(405, "DELETE");

    let traced = server.get("/healthz", None).await;
    assert!(traced.headers.get("x-request-id").is_some());
    server.stop().await;
}

#[actix_rt::test]
async fn healthz_is_503_once_the_engine_stops() {
    let server = TestServer::start().await;
    server.engine.shutdown();
    server.get("/healthz", None).await.assert_problem(503, "not ready");
    server.stop().await;
}

#[actix_rt::test]
async fn health_names_the_role_and_the_journal_position() {
    let server = TestServer::start().await;
    let before = server.get("/healthz", None).await.expect(200);
    assert_eq!((before["status"].as_str(), before["role"].as_str()), (Some("ok"), Some("leader")));
    let seq = before["journalSeq"].as_u64().unwrap();
    let hook = json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]});
    server.post("/v2/webhooks", Some(ALICE), &hook).await.expect(200);
    let after = server.get("/healthz/leader", None).await.expect(200);
    assert_eq!(after["journalSeq"].as_u64().unwrap(), seq + 1, "one record journaled and applied");
}
