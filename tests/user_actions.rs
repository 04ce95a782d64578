//! Signed user actions (Dfns user action signing) over real HTTP: the
//! challenge, the signed assertion, the single-use token bound to
//! principal, method, path and body, who must sign, and every refusal as a
//! 401 naming the field that changes nothing.

mod http_support;

use actix_web::http::Method;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Duration};
use http_support::*;
use serde_json::{json, Value};
use std::sync::Arc;
use warden::config::PrincipalConfig;
use warden::credential::{PrivateKey, PublicKey};
use warden::http::Credentials;
use warden::{Journal, ManualClock, MemoryJournal, Principal, Role};

const ED: &str = "ed-token";
const P256: &str = "p256-token";
const K256: &str = "k256-token";
const RSA: &str = "rsa-token";
const PLAIN: &str = "plain-token";

fn key_file(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn private_key(name: &str) -> PrivateKey {
    PrivateKey::from_pem(&key_file(&format!("{name}.key"))).unwrap()
}

/// Admins, one per algorithm (`us-<name>` with credential `cr-<name>`), and
/// `us-plain`, an admin without credentials.
fn principals() -> Vec<(PrincipalConfig, &'static str)> {
    let signer = |name: &str, token: &'static str| {
        let principal = Principal::user(format!("us-{name}"), &[Role::Admin, Role::Signer]);
        let public_key = PublicKey::from_pem(&key_file(&format!("{name}.pub"))).unwrap();
        (PrincipalConfig::with_token(principal, token).with_credential(format!("cr-{name}"), public_key), token)
    };
    vec![
        signer("ed25519", ED),
        signer("p256", P256),
        signer("secp256k1", K256),
        signer("rsa", RSA),
        (PrincipalConfig::with_token(Principal::user("us-plain", &[Role::Admin, Role::Signer]), PLAIN), PLAIN),
    ]
}

async fn start(require_signed_actions: bool) -> (TestServer, ManualClock) {
    let (server, clock, _) = start_on(require_signed_actions, Arc::new(MemoryJournal::default())).await;
    (server, clock)
}

async fn start_on(
    require_signed_actions: bool,
    journal: Arc<dyn Journal>,
) -> (TestServer, ManualClock, Arc<dyn Journal>) {
    let clock = ManualClock::new(DateTime::from_timestamp(1_800_000_000, 0).unwrap());
    let entries = principals();
    let credentials = entries
        .iter()
        .fold(Credentials::default(), |c, (entry, _)| c.with_entry(entry.clone()))
        .require_signed_actions(require_signed_actions);
    let engine_principals = entries.into_iter().map(|(entry, _)| entry.principal).collect();
    let server =
        TestServer::start_with(engine_principals, credentials, Some(clock.clone()), Some(journal.clone()), None).await;
    (server, clock, journal)
}

/// `POST /auth/action/init` for a request.
async fn init(server: &TestServer, token: &str, method: &str, path: &str, body: &str) -> Value {
    let request = json!({
        "userActionPayload": body, "userActionHttpMethod": method,
        "userActionHttpPath": path, "userActionServerKind": "Api"
    });
    server.post("/auth/action/init", Some(token), &request).await.expect(200)
}

/// The assertion the Dfns key signer makes for a challenge.
fn assertion(challenge: &Value, credential: &str, key: &PrivateKey) -> Value {
    let client_data = json!({"type": "key.get", "challenge": challenge["challenge"]}).to_string();
    json!({
        "challengeIdentifier": challenge["challengeIdentifier"],
        "firstFactor": {"kind": "Key", "credentialAssertion": {
            "credId": credential,
            "clientData": URL_SAFE_NO_PAD.encode(&client_data),
            "signature": URL_SAFE_NO_PAD.encode(key.sign(client_data.as_bytes())),
        }}
    })
}

/// The whole flow: a user-action token for one request.
async fn user_action(server: &TestServer, token: &str, name: &str, method: &str, path: &str, body: &str) -> String {
    let challenge = init(server, token, method, path, body).await;
    let signed = assertion(&challenge, &format!("cr-{name}"), &private_key(name));
    let answer = server.post("/auth/action", Some(token), &signed).await.expect(200);
    answer["userAction"].as_str().unwrap().to_owned()
}

async fn send_signed(
    server: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    user_action: &str,
    body: &str,
) -> Reply {
    server
        .send_with_headers(method, path, Some(token), &[("X-DFNS-USERACTION", user_action)], body.as_bytes().to_vec())
        .await
}

async fn policy_count(server: &TestServer) -> usize {
    server.all_ids("/v2/policies", PLAIN).await.len()
}

#[track_caller]
fn assert_user_action_refused(reply: &Reply, field: &str) {
    reply.assert_problem(401, field);
    assert_eq!(reply.body["message"], reply.body["detail"], "Dfns clients read `message`");
}

#[actix_rt::test]
async fn every_algorithm_signs_a_change() {
    let (server, _clock) = start(false).await;
    let body = seed_policy().to_string();
    for (name, token) in [("ed25519", ED), ("p256", P256), ("secp256k1", K256), ("rsa", RSA)] {
        let challenge = init(&server, token, "POST", "/v2/policies", &body).await;
        assert_eq!(challenge["allowCredentials"]["key"], json!([{"type": "public-key", "id": format!("cr-{name}")}]));
        assert_eq!(challenge["supportedCredentialKinds"][0]["kind"], "Key");
        let raw = URL_SAFE_NO_PAD.decode(challenge["challenge"].as_str().unwrap()).unwrap();
        assert!(raw.len() >= 32, "at least 32 random bytes");

        let action = user_action(&server, token, name, "POST", "/v2/policies", &body).await;
        let created = send_signed(&server, token, Method::POST, "/v2/policies", &action, &body).await.expect(200);
        assert_eq!(created["name"], "Large Transaction Approval", "{name}");
    }
    assert_eq!(policy_count(&server).await, 4);
    server.stop().await;
}

#[actix_rt::test]
async fn a_principal_with_a_key_must_sign_every_change_and_may_read() {
    let (server, _clock) = start(false).await;
    let body = seed_policy().to_string();
    let reply = server.send(Method::POST, "/v2/policies", Some(ED), Some("application/json"), body.into_bytes()).await;
    assert_user_action_refused(&reply, "x-dfns-useraction");
    let reply = server.post("/v2/activities", Some(ED), &activity("10", None)).await;
    assert_user_action_refused(&reply, "x-dfns-useraction");
    let reply = server.delete("/v2/policies/pl-x", Some(ED)).await;
    assert_user_action_refused(&reply, "x-dfns-useraction");
    server.get("/v2/policies", Some(ED)).await.expect(200);
    // A principal without credentials keeps bearer-only access.
    server.post("/v2/policies", Some(PLAIN), &seed_policy()).await.expect(200);
    assert_eq!(policy_count(&server).await, 1);
    // But a user action it sends is mismatched (none can be its own): a
    // stray one, or another principal's, is refused, changes nothing, and
    // leaves the other's token unused.
    let body = seed_policy().to_string();
    let reply = send_signed(&server, PLAIN, Method::POST, "/v2/policies", "not-a-token", &body).await;
    assert_user_action_refused(&reply, "x-dfns-useraction");
    let action = user_action(&server, ED, "ed25519", "POST", "/v2/policies", &body).await;
    let reply = send_signed(&server, PLAIN, Method::POST, "/v2/policies", &action, &body).await;
    assert_user_action_refused(&reply, "x-dfns-useraction");
    assert_eq!(policy_count(&server).await, 1);
    send_signed(&server, ED, Method::POST, "/v2/policies", &action, &body).await.expect(200);
    assert_eq!(policy_count(&server).await, 2);
    server.stop().await;
}

#[actix_rt::test]
async fn a_wrong_signature_or_an_unknown_credential_gets_no_token() {
    let (server, _clock) = start(false).await;
    let body = seed_policy().to_string();

    // Signed by another Ed25519 key than the registered one.
    let challenge = init(&server, ED, "POST", "/v2/policies", &body).await;
    let forged = assertion(&challenge, "cr-ed25519", &private_key("ed25519-b"));
    assert_user_action_refused(&server.post("/auth/action", Some(ED), &forged).await, "signature");

    // A credential of another principal, or none at all.
    for credential in ["cr-p256", "cr-nobody"] {
        let challenge = init(&server, ED, "POST", "/v2/policies", &body).await;
        let signed = assertion(&challenge, credential, &private_key("p256"));
        assert_user_action_refused(&server.post("/auth/action", Some(ED), &signed).await, "credId");
    }

    // clientData holding another challenge than the identifier's.
    let first = init(&server, ED, "POST", "/v2/policies", &body).await;
    let second = init(&server, ED, "POST", "/v2/policies", &body).await;
    let mut crossed = assertion(&second, "cr-ed25519", &private_key("ed25519"));
    crossed["challengeIdentifier"] = first["challengeIdentifier"].clone();
    assert_user_action_refused(&server.post("/auth/action", Some(ED), &crossed).await, "clientData");

    // A challenge is single use too: the refused one cannot be retried.
    let good = assertion(&first, "cr-ed25519", &private_key("ed25519"));
    assert_user_action_refused(&server.post("/auth/action", Some(ED), &good).await, "challengeIdentifier");
    assert_eq!(policy_count(&server).await, 0);
    server.stop().await;
}

#[actix_rt::test]
async fn a_challenge_of_another_principal_is_refused() {
    let (server, _clock) = start(false).await;
    let body = seed_policy().to_string();
    let challenge = init(&server, ED, "POST", "/v2/policies", &body).await;
    // us-p256 answers us-ed25519's challenge with its own valid key.
    let signed = assertion(&challenge, "cr-p256", &private_key("p256"));
    assert_user_action_refused(&server.post("/auth/action", Some(P256), &signed).await, "challengeIdentifier");
    // The owner's challenge was not cancelled by the attempt.
    let signed = assertion(&challenge, "cr-ed25519", &private_key("ed25519"));
    server.post("/auth/action", Some(ED), &signed).await.expect(200);
    server.stop().await;
}

#[actix_rt::test]
async fn a_token_is_single_use_and_bound_to_its_request() {
    let (server, _clock) = start(false).await;
    let body = seed_policy().to_string();
    let action = user_action(&server, ED, "ed25519", "POST", "/v2/policies", &body).await;
    let created = send_signed(&server, ED, Method::POST, "/v2/policies", &action, &body).await.expect(200);
    let id = created["id"].as_str().unwrap().to_owned();
    // Reused.
    let reply = send_signed(&server, ED, Method::POST, "/v2/policies", &action, &body).await;
    assert_user_action_refused(&reply, "x-dfns-useraction");
    assert_eq!(policy_count(&server).await, 1);

    let path = format!("/v2/policies/{id}");
    let mut other = seed_policy();
    other["name"] = json!("Another name");
    let other = other.to_string();
    // Signed for one thing, used for another: path, method, body, principal.
    let cases: Vec<(&str, Method, &str, &str)> = vec![
        (ED, Method::PUT, "/v2/policies/pl-elsewhere", &other),
        (ED, Method::DELETE, &path, &other),
        (ED, Method::PUT, &path, &body),
        (P256, Method::PUT, &path, &other),
    ];
    for (token, method, used_path, used_body) in cases {
        let action = user_action(&server, ED, "ed25519", "PUT", &path, &other).await;
        let reply = send_signed(&server, token, method.clone(), used_path, &action, used_body).await;
        assert_user_action_refused(&reply, "x-dfns-useraction");
        let stored = server.get(&path, Some(PLAIN)).await.expect(200);
        assert_eq!(stored["name"], "Large Transaction Approval", "{method} {used_path}: nothing changed");
        assert_eq!(stored["status"], "Active");
    }
    // A query string is not part of the path a token binds.
    let action = user_action(&server, ED, "ed25519", "PUT", &path, &other).await;
    let updated = send_signed(&server, ED, Method::PUT, &format!("{path}?x=1"), &action, &other).await.expect(200);
    assert_eq!(updated["name"], "Another name");
    server.stop().await;
}

#[actix_rt::test]
async fn tokens_and_challenges_expire_after_five_minutes() {
    let (server, clock) = start(false).await;
    let body = seed_policy().to_string();
    let action = user_action(&server, ED, "ed25519", "POST", "/v2/policies", &body).await;
    clock.advance(Duration::minutes(5) + Duration::seconds(1));
    let reply = send_signed(&server, ED, Method::POST, "/v2/policies", &action, &body).await;
    assert_user_action_refused(&reply, "x-dfns-useraction");
    assert!(reply.body["detail"].as_str().unwrap().contains("expired"), "{}", reply.body);

    let challenge = init(&server, ED, "POST", "/v2/policies", &body).await;
    clock.advance(Duration::minutes(5) + Duration::seconds(1));
    let signed = assertion(&challenge, "cr-ed25519", &private_key("ed25519"));
    assert_user_action_refused(&server.post("/auth/action", Some(ED), &signed).await, "challengeIdentifier");

    // Within five minutes, it works.
    let action = user_action(&server, ED, "ed25519", "POST", "/v2/policies", &body).await;
    clock.advance(Duration::minutes(4));
    send_signed(&server, ED, Method::POST, "/v2/policies", &action, &body).await.expect(200);
    assert_eq!(policy_count(&server).await, 1);
    server.stop().await;
}

#[actix_rt::test]
async fn required_signing_leaves_principals_without_keys_read_only() {
    let (server, _clock) = start(true).await;
    // Its user action is missing (401 naming the header), and it has no key to make one.
    let reply = server.post("/v2/policies", Some(PLAIN), &seed_policy()).await;
    reply.assert_problem(401, "x-dfns-useraction");
    reply.assert_problem(401, "us-plain");
    let reply = server.post("/v2/activities", Some(PLAIN), &activity("10", None)).await;
    reply.assert_problem(401, "x-dfns-useraction");
    server.get("/v2/policies", Some(PLAIN)).await.expect(200);
    server.get("/v2/activities", Some(PLAIN)).await.expect(200);
    let reply = server
        .post(
            "/auth/action/init",
            Some(PLAIN),
            &json!({
                "userActionPayload": "{}", "userActionHttpMethod": "POST", "userActionHttpPath": "/v2/policies"
            }),
        )
        .await;
    reply.assert_problem(403, "credential");
    // Principals with keys sign as before.
    let body = seed_policy().to_string();
    let action = user_action(&server, P256, "p256", "POST", "/v2/policies", &body).await;
    send_signed(&server, P256, Method::POST, "/v2/policies", &action, &body).await.expect(200);
    assert_eq!(policy_count(&server).await, 1);
    server.stop().await;
}

#[actix_rt::test]
async fn bad_flow_input_is_a_400_naming_the_field() {
    let (server, _clock) = start(false).await;
    let cases = [
        (
            json!({"userActionPayload": "", "userActionHttpMethod": "GET", "userActionHttpPath": "/v2/policies"}),
            "userActionHttpMethod",
        ),
        (
            json!({"userActionPayload": "", "userActionHttpMethod": "PATCH", "userActionHttpPath": "/v2/policies"}),
            "userActionHttpMethod",
        ),
        (
            json!({"userActionPayload": "", "userActionHttpMethod": "POST", "userActionHttpPath": "v2"}),
            "userActionHttpPath",
        ),
        (
            json!({"userActionPayload": "", "userActionHttpMethod": "POST", "userActionHttpPath": "/a?b"}),
            "userActionHttpPath",
        ),
        (
            json!({"userActionPayload": "", "userActionHttpMethod": "POST", "userActionHttpPath": "/a", "userActionServerKind": "Staff"}),
            "userActionServerKind",
        ),
        (json!({"userActionHttpMethod": "POST", "userActionHttpPath": "/a"}), "userActionPayload"),
    ];
    for (body, field) in cases {
        server.post("/auth/action/init", Some(ED), &body).await.assert_problem(400, field);
    }
    let challenge = init(&server, ED, "POST", "/v2/policies", "{}").await;
    let mut webauthn = assertion(&challenge, "cr-ed25519", &private_key("ed25519"));
    webauthn["firstFactor"]["kind"] = json!("Fido2");
    server.post("/auth/action", Some(ED), &webauthn).await.assert_problem(400, "firstFactor.kind");
    server
        .post("/auth/action", Some(ED), &json!({"challengeIdentifier": "x"}))
        .await
        .assert_problem(400, "firstFactor");
    // Without a bearer token, neither route answers.
    server.post("/auth/action/init", None, &json!({})).await.assert_problem(401, "authorization");
    server.post("/auth/action", None, &json!({})).await.assert_problem(401, "authorization");
    server.stop().await;
}

#[actix_rt::test]
async fn a_principal_cannot_hoard_challenges() {
    let (server, _clock) = start(false).await;
    let mut refused = None;
    for i in 0..100 {
        let request =
            json!({"userActionPayload": "", "userActionHttpMethod": "POST", "userActionHttpPath": "/v2/policies"});
        let reply = server.post("/auth/action/init", Some(ED), &request).await;
        if reply.status != 200 {
            refused = Some((i, reply));
            break;
        }
    }
    let (count, reply) = refused.expect("the challenges of one principal are bounded");
    assert!(count >= 8, "a principal may hold several challenges ({count})");
    reply.assert_problem(429, "us-ed25519");
    // Another principal still gets one.
    init(&server, P256, "POST", "/v2/policies", "").await;
    server.stop().await;
}

#[actix_rt::test]
async fn every_signed_change_is_journaled_with_its_assertion() {
    let (server, _clock, journal) = start_on(false, Arc::new(MemoryJournal::default())).await;
    let mut policy = seed_policy();
    policy["action"]["approvalGroups"][0]["approvers"] = json!({"userId": {"in": ["us-p256", "us-rsa"]}});
    let body = policy.to_string();
    let action = user_action(&server, ED, "ed25519", "POST", "/v2/policies", &body).await;
    let policy_id = send_signed(&server, ED, Method::POST, "/v2/policies", &action, &body).await.expect(200)["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let transfer = activity("150000", None).to_string();
    let action = user_action(&server, K256, "secp256k1", "POST", "/v2/activities", &transfer).await;
    let held = send_signed(&server, K256, Method::POST, "/v2/activities", &action, &transfer).await.expect(200);
    let path = format!("/v2/policy-approvals/{}/decisions", held["approvalId"].as_str().unwrap());
    let decision = json!({"value": "Approved", "reason": "known counterparty"}).to_string();
    let action = user_action(&server, P256, "p256", "POST", &path, &decision).await;
    let approval = send_signed(&server, P256, Method::POST, &path, &action, &decision).await.expect(200);
    assert_eq!(approval["decisions"][0]["credentialId"], "cr-p256");
    assert_eq!(approval["decisions"][0]["userAction"]["body"], decision.as_str());

    let webhook = json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}).to_string();
    let action = user_action(&server, RSA, "rsa", "POST", "/webhooks", &webhook).await;
    let id = send_signed(&server, RSA, Method::POST, "/webhooks", &action, &webhook).await.expect(200)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let webhook_path = format!("/webhooks/{id}");
    let update = json!({"description": "signed"}).to_string();
    let action = user_action(&server, RSA, "rsa", "PUT", &webhook_path, &update).await;
    send_signed(&server, RSA, Method::PUT, &webhook_path, &action, &update).await.expect(200);
    let action = user_action(&server, RSA, "rsa", "DELETE", &webhook_path, "{}").await;
    send_signed(&server, RSA, Method::DELETE, &webhook_path, &action, "{}").await.expect(200);
    let archive_path = format!("/v2/policies/{policy_id}");
    let action = user_action(&server, ED, "ed25519", "DELETE", &archive_path, "").await;
    send_signed(&server, ED, Method::DELETE, &archive_path, &action, "").await.expect(200);
    // An unsigned change of a principal without keys journals no assertion.
    server.post("/v2/activities", Some(PLAIN), &activity("10", None)).await.expect(200);
    server.stop().await;

    let entries: Vec<PrincipalConfig> = principals().into_iter().map(|(entry, _)| entry).collect();
    let report = warden::audit::verify_journal(journal.as_ref(), &entries).unwrap();
    assert_eq!(report.failures, vec![], "every journaled assertion verifies");
    assert_eq!(report.checked, 7, "policy create and archive, activity, decision, webhook create, update, delete");

    // Checked against other keys (a credential re-registered to another
    // principal), they fail, one line each.
    let mut swapped = entries.clone();
    let (a, b) = (swapped[0].credentials[0].public_key.clone(), swapped[1].credentials[0].public_key.clone());
    swapped[0].credentials[0].public_key = b;
    swapped[1].credentials[0].public_key = a;
    let report = warden::audit::verify_journal(journal.as_ref(), &swapped).unwrap();
    assert_eq!(report.failures.len(), 3, "{:?}", report.failures);
    assert!(report.failures.iter().all(|f| f.reason.contains("does not verify")), "{:?}", report.failures);
}
