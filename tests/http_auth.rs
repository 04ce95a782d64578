//! Authentication and roles: 401 without a known bearer token (with
//! `WWW-Authenticate: Bearer`), 403 for a known principal without the role,
//! and the role checks come before the body is looked at.

mod http_support;

use actix_web::http::Method;
use http_support::*;
use serde_json::json;

#[actix_rt::test]
async fn missing_unknown_and_malformed_tokens_are_401() {
    let server = TestServer::start().await;
    let routes: &[(Method, &str)] = &[
        (Method::GET, "/v2/activities"),
        (Method::POST, "/v2/activities"),
        (Method::GET, "/v2/activities/ac-x"),
        (Method::GET, "/v2/policies"),
        (Method::POST, "/v2/policies"),
        (Method::GET, "/v2/policies/pl-x"),
        (Method::PUT, "/v2/policies/pl-x"),
        (Method::DELETE, "/v2/policies/pl-x"),
        (Method::GET, "/v2/policy-approvals"),
        (Method::GET, "/v2/policy-approvals/ap-x"),
        (Method::POST, "/v2/policy-approvals/ap-x/decisions"),
        (Method::GET, "/v2/change-requests/cr-x"),
        (Method::GET, "/v2/webhooks"),
        (Method::POST, "/v2/webhooks"),
        (Method::GET, "/v2/webhooks/wh-x"),
        (Method::DELETE, "/v2/webhooks/wh-x"),
        (Method::GET, "/v2/webhooks/wh-x/events"),
    ];
    for (method, path) in routes {
        for token in [None, Some("not-a-known-token")] {
            let reply = server.send(method.clone(), path, token, Some("application/json"), b"{}".to_vec()).await;
            reply.assert_problem(401, "authorization");
            assert_eq!(reply.headers.get("www-authenticate").unwrap(), "Bearer", "{method} {path}");
        }
    }

    // Not a bearer scheme, or an empty token.
    let client = awc::Client::default();
    for header in ["Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer ", ALICE] {
        let mut response = client
            .get(format!("{}/v2/policies", server.base))
            .insert_header(("Authorization", header))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "header `{header}`");
        let body: serde_json::Value = serde_json::from_slice(&response.body().await.unwrap()).unwrap();
        assert!(body["detail"].as_str().unwrap().contains("authorization"));
    }
    // The scheme is case-insensitive.
    let response = client
        .get(format!("{}/v2/policies", server.base))
        .insert_header(("Authorization", format!("bearer {ALICE}")))
        .send()
        .await;
    assert_eq!(response.unwrap().status(), 200);
    // Two `Authorization` headers are refused in either order, even with
    // one of them valid: which one would count is no choice to make.
    for pair in
        [[format!("Bearer {ALICE}"), "Bearer wrong".to_owned()], ["Bearer wrong".to_owned(), format!("Bearer {ALICE}")]]
    {
        let mut request = client.get(format!("{}/v2/policies", server.base));
        for header in &pair {
            request = request.append_header(("Authorization", header.as_str()));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{pair:?}");
    }
    server.stop().await;
}

#[actix_rt::test]
async fn a_known_principal_without_the_role_is_403() {
    let server = TestServer::start().await;
    // Signer only: no policies, no webhooks.
    server.post("/v2/policies", Some(BOB), &seed_policy()).await.assert_problem(403, "Admin");
    server.put("/v2/policies/pl-x", Some(BOB), &seed_policy()).await.assert_problem(403, "Admin");
    server.delete("/v2/policies/pl-x", Some(BOB)).await.assert_problem(403, "Admin");
    let webhook = json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]});
    server.post("/v2/webhooks", Some(BOB), &webhook).await.assert_problem(403, "Admin");
    server.get("/v2/webhooks", Some(BOB)).await.assert_problem(403, "Admin");
    server.get("/v2/webhooks/wh-x", Some(APPROVER_1)).await.assert_problem(403, "Admin");
    server.delete("/v2/webhooks/wh-x", Some(APPROVER_1)).await.assert_problem(403, "Admin");
    server.get("/v2/webhooks/wh-x/events", Some(APPROVER_1)).await.assert_problem(403, "Admin");
    // Admin only: no activities.
    server.post("/v2/activities", Some(ALICE), &activity("10", None)).await.assert_problem(403, "Signer");
    // No role at all: reads are fine, writes are not.
    server.post("/v2/activities", Some(APPROVER_1), &activity("10", None)).await.assert_problem(403, "Signer");
    for path in ["/v2/policies", "/v2/activities", "/v2/policy-approvals"] {
        server.get(path, Some(APPROVER_1)).await.expect(200);
    }
    server.stop().await;
}

#[actix_rt::test]
async fn authorization_is_checked_before_the_body() {
    let server = TestServer::start().await;
    let garbage = b"{not json".to_vec();
    let reply = server.send(Method::POST, "/v2/policies", None, Some("application/json"), garbage.clone()).await;
    reply.assert_problem(401, "authorization");
    let reply = server.send(Method::POST, "/v2/policies", Some(BOB), Some("application/json"), garbage.clone()).await;
    reply.assert_problem(403, "Admin");
    let reply = server.send(Method::POST, "/v2/policies", Some(BOB), Some("text/plain"), garbage).await;
    reply.assert_problem(403, "Admin");
    server.stop().await;
}

#[actix_rt::test]
async fn the_initiator_given_in_the_body_is_kept() {
    let server = TestServer::start().await;
    let mut body = activity("10", None);
    body["initiator"] = json!({"id": "sa-payments", "kind": "ServiceAccount"});
    let answer = server.post("/v2/activities", Some(BOB), &body).await.expect(200);
    assert_eq!(answer["activity"]["initiator"], json!({"id": "sa-payments", "kind": "ServiceAccount"}));
    server.stop().await;
}
