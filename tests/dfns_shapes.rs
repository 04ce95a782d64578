//! The shapes Dfns clients expect, over real HTTP: no `null` anywhere, the
//! approval of a policy change carrying its change request, the webhook
//! routes at `/webhooks` with description, update, ping, one event, the
//! event filters and `{deleted: true}`, and deliveries a Dfns receiver
//! verifies (`X-DFNS-WEBHOOK-SIGNATURE`, `timestampSent`, `deliveryAttempt`).

mod http_support;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use hmac::{Hmac, Mac};
use http_support::*;
use serde_json::{json, Value};
use sha2::Sha256;

/// Every request a receiver got: its headers (lower-case names) and body.
type Log = Arc<Mutex<Vec<(Vec<(String, String)>, Vec<u8>)>>>;

/// A receiver on loopback answering `status` to everything.
fn receiver(status: u16) -> (String, Log, actix_web::dev::ServerHandle) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let log: Log = Arc::default();
    let shared = web::Data::new((log.clone(), status));
    let server = HttpServer::new(move || {
        App::new().app_data(shared.clone()).default_service(web::to(
            |request: HttpRequest, body: web::Bytes, shared: web::Data<(Log, u16)>| async move {
                let headers = request
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
                    .collect();
                shared.0.lock().unwrap().push((headers, body.to_vec()));
                HttpResponse::build(actix_web::http::StatusCode::from_u16(shared.1).unwrap()).finish()
            },
        ))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    (url, log, handle)
}

/// Paths of every `null` in `value`.
fn nulls(value: &Value, at: &str, found: &mut Vec<String>) {
    match value {
        Value::Null => found.push(at.to_owned()),
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| nulls(v, &format!("{at}[{i}]"), found)),
        Value::Object(map) => map.iter().for_each(|(k, v)| nulls(v, &format!("{at}.{k}"), found)),
        _ => {}
    }
}

#[track_caller]
fn assert_no_null(value: &Value, what: &str) {
    let mut found = Vec::new();
    nulls(value, "", &mut found);
    assert!(found.is_empty(), "{what}: null at {found:?} in {value}");
}

fn governance_policy() -> Value {
    json!({
        "name": "Policy changes need a second admin",
        "activityKind": "Policies:Modify",
        "rule": {"kind": "AlwaysTrigger", "configuration": {}},
        "action": {"kind": "RequestApproval", "approvalGroups": [{
            "name": "Admins", "quorum": 1, "approvers": {"userId": {"in": ["us-carol"]}}
        }]}
    })
}

async fn wait_for(log: &Log, count: usize) {
    for _ in 0..400 {
        if log.lock().unwrap().len() >= count {
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the receiver did not get {count} requests");
}

#[actix_rt::test]
async fn no_answer_holds_a_null_and_a_policy_change_approval_shows_its_change_request() {
    let server = TestServer::start().await;
    let (url, _log, hook_receiver) = receiver(200);
    let webhook = server.post("/webhooks", Some(ALICE), &json!({"url": url, "events": ["*"]})).await.expect(200);
    server.post("/v2/policies", Some(ALICE), &seed_policy()).await.expect(200);
    server.post("/v2/policies", Some(ALICE), &governance_policy()).await.expect(200);

    // A governed change: its approval shows the change request, and reads
    // show it as it stands.
    let mut spec = seed_policy();
    spec["name"] = json!("Governed");
    let change = server.post("/v2/policies", Some(ALICE), &spec).await.expect(202);
    let approval_id = change["approvalId"].as_str().unwrap();
    let approval = server.get(&format!("/v2/policy-approvals/{approval_id}"), Some(BOB)).await.expect(200);
    assert_eq!(approval["activity"]["changeRequest"], change, "the whole change request");
    assert_no_null(&approval, "pending approval");
    assert!(approval.get("dateResolved").is_none());

    let decided = server
        .post(&format!("/v2/policy-approvals/{approval_id}/decisions"), Some(CAROL), &json!({"value": "Approved"}))
        .await
        .expect(200);
    assert_eq!(decided["activity"]["changeRequest"]["status"], "Applied");
    let listed = server.get("/v2/policy-approvals?status=Approved", Some(BOB)).await.expect(200);
    assert_eq!(listed["items"][0]["activity"]["changeRequest"]["status"], "Applied");

    // An activity held for approval, with no expiry on its approval's twin.
    let held = server.post("/v2/activities", Some(BOB), &activity("150000", None)).await.expect(200);
    assert_no_null(&held, "activity");

    let webhook_id = webhook["id"].as_str().unwrap();
    for path in [
        "/v2/policies".to_owned(),
        "/v2/activities".to_owned(),
        "/v2/policy-approvals".to_owned(),
        format!("/v2/change-requests/{}", change["id"].as_str().unwrap()),
        "/webhooks".to_owned(),
        format!("/webhooks/{webhook_id}"),
        format!("/webhooks/{webhook_id}/events"),
    ] {
        let read = server.get(&path, Some(ALICE)).await.expect(200);
        assert_no_null(&read, &path);
    }
    let problem = server.get("/v2/policies/pl-nothing", Some(ALICE)).await;
    assert_eq!(problem.body["message"], problem.body["detail"]);
    hook_receiver.stop(true).await;
    server.stop().await;
}

#[actix_rt::test]
async fn webhooks_at_the_unversioned_paths_are_updated_pinged_and_read() {
    let server = TestServer::start().await;
    let (url, log, hook_receiver) = receiver(200);
    let spec = json!({"url": url, "events": ["policy.triggered"], "description": "treasury desk"});
    let created = server.post("/webhooks", Some(ALICE), &spec).await.expect(200);
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert_eq!(created["description"], "treasury desk");
    assert!(created["dateUpdated"].is_string());
    assert_eq!(server.get("/v2/webhooks", Some(ALICE)).await.expect(200)["items"][0]["id"], id.as_str());

    // Update: the fields given change, the others and the secret stay.
    let updated = server
        .put(&format!("/webhooks/{id}"), Some(ALICE), &json!({"events": ["*"], "description": "all events"}))
        .await
        .expect(200);
    assert_eq!(updated["events"], json!(["*"]));
    assert_eq!(updated["description"], "all events");
    assert_eq!(updated["url"], url.as_str());
    assert!(updated.get("secret").is_none());
    server.put(&format!("/webhooks/{id}"), Some(ALICE), &json!({"url": "ftp://x"})).await.assert_problem(400, "url");
    server.put("/webhooks/wh-none", Some(ALICE), &json!({})).await.assert_problem(404, "wh-none");
    let long = "x".repeat(4097);
    server
        .put(&format!("/webhooks/{id}"), Some(ALICE), &json!({"description": long}))
        .await
        .assert_problem(400, "description");
    server.put(&format!("/webhooks/{id}"), Some(ALICE), &json!({"secret": "mine"})).await.assert_problem(400, "secret");
    let unchanged = server.get(&format!("/webhooks/{id}"), Some(ALICE)).await.expect(200);
    assert_eq!(unchanged["description"], "all events", "refused updates change nothing");
    server.put(&format!("/webhooks/{id}"), Some(BOB), &json!({})).await.assert_problem(403, "Admin");

    // Ping: one signed delivery of `webhook.ping`, answered with the status.
    let pinged = server.post(&format!("/webhooks/{id}/ping"), Some(ALICE), &json!({})).await.expect(200);
    assert_eq!(pinged, json!({"status": "200"}));
    wait_for(&log, 1).await;
    let (headers, body) = log.lock().unwrap()[0].clone();
    let sent: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sent["kind"], "webhook.ping");
    assert_eq!(sent["deliveryAttempt"], 1);
    assert!(sent["timestampSent"].as_i64().is_some());
    let signature = headers.iter().find(|(k, _)| k == "x-dfns-webhook-signature").map(|(_, v)| v.clone()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&body);
    assert_eq!(signature, format!("sha256={}", hex::encode(mac.finalize().into_bytes())), "the secret was kept");

    // A ping to a receiver that fails says so.
    let (failing, _, failing_receiver) = receiver(503);
    let other = server.post("/webhooks", Some(ALICE), &json!({"url": failing, "events": ["*"]})).await.expect(200);
    let other_id = other["id"].as_str().unwrap();
    let pinged = server.post(&format!("/webhooks/{other_id}/ping"), Some(ALICE), &json!({})).await.expect(200);
    assert_eq!(pinged["status"], "503");
    assert!(pinged["error"].as_str().unwrap().contains("503"));
    // And one to a receiver that does not answer at all has a status too
    // (the SDK's type requires it): "0", as browsers report no answer.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let dead = server
        .post("/webhooks", Some(ALICE), &json!({"url": format!("http://{closed}/hook"), "events": ["*"]}))
        .await
        .expect(200);
    let pinged =
        server.post(&format!("/webhooks/{}/ping", dead["id"].as_str().unwrap()), Some(ALICE), &json!({})).await;
    let pinged = pinged.expect(200);
    assert_eq!(pinged["status"], "0", "{pinged}");
    assert!(pinged["error"].as_str().is_some_and(|e| !e.is_empty()), "{pinged}");

    // An event is delivered to both; the filters and the one-event read.
    server.post("/v2/policies", Some(ALICE), &seed_policy()).await.expect(200);
    server.post("/v2/activities", Some(BOB), &activity("150000", None)).await.expect(200);
    wait_for(&log, 3).await; // the ping, then policy.triggered and policy.approval.pending
                             // The receiver has them; the log shows them once their outcome is journaled.
    let mut events = Value::Null;
    for _ in 0..400 {
        events = server.get(&format!("/webhooks/{id}/events"), Some(ALICE)).await.expect(200);
        if events["items"].as_array().unwrap().iter().all(|e| e["status"] == "Delivered") {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(25)).await;
    }
    let items = events["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{events}");
    assert!(items.iter().all(|e| e["status"] == "Delivered" && e["attempts"] == 1), "{events}");
    let triggered = server.get(&format!("/webhooks/{id}/events?kind=policy.triggered"), Some(ALICE)).await.expect(200);
    let triggered = triggered["items"].as_array().unwrap();
    assert_eq!(triggered.len(), 1);
    assert_eq!(triggered[0]["data"]["policyEvaluation"]["triggered"], true, "items carry data");
    let event_id = triggered[0]["id"].as_str().unwrap();
    let one = server.get(&format!("/webhooks/{id}/events/{event_id}"), Some(ALICE)).await.expect(200);
    assert_eq!(&one, &triggered[0]);
    server.get(&format!("/webhooks/{other_id}/events/{event_id}"), Some(ALICE)).await.assert_problem(404, event_id);
    server
        .get(&format!("/webhooks/{id}/events?deliveryFailed=maybe"), Some(ALICE))
        .await
        .assert_problem(400, "deliveryFailed");

    // The failing receiver's events end up failed-so-far.
    for _ in 0..400 {
        let failed =
            server.get(&format!("/webhooks/{other_id}/events?deliveryFailed=true"), Some(ALICE)).await.expect(200);
        if failed["items"].as_array().unwrap().len() == 2 {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(25)).await;
    }
    let failed = server.get(&format!("/webhooks/{other_id}/events?deliveryFailed=true"), Some(ALICE)).await.expect(200);
    assert_eq!(failed["items"].as_array().unwrap().len(), 2, "{failed}");
    assert!(failed["items"].as_array().unwrap().iter().all(|e| e["deliveryFailed"] == true));
    let delivered = server.get(&format!("/webhooks/{id}/events?deliveryFailed=false"), Some(ALICE)).await.expect(200);
    assert!(delivered["items"].as_array().unwrap().iter().all(|e| e["deliveryFailed"] == false));

    // Deliveries are signed for Dfns receivers too.
    for (headers, body) in log.lock().unwrap().iter().skip(1) {
        let sent: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(sent["deliveryAttempt"], 1);
        assert!(sent["timestampSent"].is_i64());
        let warden = headers.iter().find(|(k, _)| k == "x-warden-signature").unwrap();
        let dfns = headers.iter().find(|(k, _)| k == "x-dfns-webhook-signature").unwrap();
        assert_eq!(warden.1, dfns.1);
    }

    let deleted = server.delete(&format!("/webhooks/{id}"), Some(ALICE)).await.expect(200);
    assert_eq!(deleted, json!({"deleted": true}));
    server.get(&format!("/webhooks/{id}"), Some(ALICE)).await.assert_problem(404, &id);
    hook_receiver.stop(true).await;
    failing_receiver.stop(true).await;
    server.stop().await;
}

/// A count limit is answered as the integer the contract says it is, however
/// it was given; USD limits stay decimal strings.
#[actix_rt::test]
async fn a_count_limit_is_answered_as_an_integer_and_a_usd_limit_as_a_decimal_string() {
    let server = TestServer::start().await;
    let count = |limit: Value| {
        json!({"name": "Count", "activityKind": "Wallets:Sign",
               "rule": {"kind": "TransactionCountVelocity", "configuration": {"limit": limit, "timeWindow": 3600}},
               "action": {"kind": "Block"}})
    };
    for given in [json!(3), json!("3")] {
        let created = server.post("/v2/policies", Some(ALICE), &count(given.clone())).await.expect(200);
        assert_eq!(created["rule"]["configuration"]["limit"], json!(3), "given as {given}");
        assert_eq!(created["rule"]["configuration"]["timeWindow"], json!(3600));
        let read = server.get(&format!("/v2/policies/{}", created["id"].as_str().unwrap()), Some(ALICE)).await;
        assert_eq!(read.expect(200)["rule"], created["rule"], "read back as answered");
    }
    let usd = json!({"name": "Amount", "activityKind": "Wallets:Sign",
                     "rule": {"kind": "TransactionAmountVelocity",
                              "configuration": {"limit": 100000, "currency": "USD", "timeWindow": 3600}},
                     "action": {"kind": "Block"}});
    let created = server.post("/v2/policies", Some(ALICE), &usd).await.expect(200);
    assert_eq!(created["rule"]["configuration"]["limit"], json!("100000"));
    server.stop().await;
}
