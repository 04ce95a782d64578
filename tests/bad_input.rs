//! Bad input: each gets its status and a problem document naming the field;
//! none gives a 5xx, changes state, or takes the server down.

mod http_support;

use actix_web::http::Method;
use http_support::*;
use serde_json::{json, Value};

/// Everything a client can list, to prove nothing changed.
async fn state(server: &TestServer) -> Vec<Vec<String>> {
    vec![
        server.all_ids("/v2/policies", ALICE).await,
        server.all_ids("/v2/activities", ALICE).await,
        server.all_ids("/v2/policy-approvals", ALICE).await,
        server.all_ids("/v2/webhooks", ALICE).await,
    ]
}

/// `base` with the value at the JSON pointer `pointer` replaced.
fn with(mut base: Value, pointer: &str, value: Value) -> Value {
    *base.pointer_mut(pointer).unwrap_or_else(|| panic!("no `{pointer}` in the base body")) = value;
    base
}

fn without(mut base: Value, field: &str) -> Value {
    base.as_object_mut().unwrap().remove(field);
    base
}

const U256_MAX_PLUS_ONE: &str = "115792089237316195423570985008687907853269984665640564039457584007913129639936";

#[actix_rt::test]
async fn bad_policies_are_400_naming_the_field_and_change_nothing() {
    let server = TestServer::start().await;
    let existing = server.post("/v2/policies", Some(ALICE), &seed_policy()).await.expect(200);
    let existing_path = format!("/v2/policies/{}", existing["id"].as_str().unwrap());
    let before = state(&server).await;

    let p = seed_policy;
    let cases: Vec<(Value, &str)> = vec![
        (with(p(), "/name", json!(5)), "name"),
        (without(p(), "name"), "name"),
        (without(p(), "rule"), "rule"),
        (with(p(), "/activityKind", json!("Wallets:Explode")), "activityKind"),
        (with(p(), "/rule", json!([])), "rule"),
        (with(p(), "/rule/kind", json!("TransactionMoodLimit")), "rule.kind"),
        (with(p(), "/rule/kind", json!(7)), "rule.kind"),
        (with(p(), "/rule/configuration/limit", json!("-5")), "rule.configuration.limit"),
        (with(p(), "/rule/configuration/limit", json!("0")), "rule.configuration.limit"),
        (with(p(), "/rule/configuration/limit", json!("lots")), "rule.configuration.limit"),
        (with(p(), "/rule/configuration/limit", json!(true)), "rule.configuration.limit"),
        (with(p(), "/rule/configuration/limit", json!([1])), "rule.configuration.limit"),
        (with(p(), "/rule/configuration/currency", json!(1)), "rule.configuration.currency"),
        // Money is exact or refused: past 28 significant digits a decimal
        // would round.
        (
            with(p(), "/rule/configuration/limit", json!("99.9999999999999999999999999999999")),
            "rule.configuration.limit",
        ),
        // A misspelled key is refused, not ignored (ignored, it would widen
        // the group to every User, or the window to its default scope).
        (with(p(), "/action/approvalGroups/0/approvers", json!({"userid": {"in": ["us-1"]}})), "userid"),
        (
            with(p(), "/rule/configuration", json!({"limit": "100000", "currency": "USD", "scop": "Organization"})),
            "scop",
        ),
        (with(p(), "/action/kind", json!("Explode")), "action.kind"),
        (with(p(), "/action/approvalGroups/0/quorum", json!("two")), "action.approvalGroups[0].quorum"),
        (with(p(), "/action/approvalGroups/0/quorum", json!(-1)), "action.approvalGroups[0].quorum"),
        (with(p(), "/action/approvalGroups/0/quorum", json!(1.5)), "action.approvalGroups[0].quorum"),
        (with(p(), "/action/approvalGroups/0/quorum", json!(0)), "quorum"),
        (with(p(), "/action/approvalGroups/0/quorum", json!(4)), "quorum"),
        (
            with(p(), "/action/approvalGroups/0/approvers/userId/in", json!("us-1")),
            "action.approvalGroups[0].approvers.userId.in",
        ),
        (with(p(), "/action/autoRejectTimeout", json!(-3)), "action.autoRejectTimeout"),
        (with(p(), "/filters/walletTags/hasAny", json!("treasury")), "filters.walletTags.hasAny"),
        // A misspelled filter or filter key is refused, not ignored (ignored,
        // it would widen the policy to every activity).
        (with(p(), "/filters", json!({"walletTag": {"hasAny": ["treasury"]}})), "walletTag"),
        (with(p(), "/filters/walletTags", json!({"hasAnny": ["treasury"]})), "hasAnny"),
        (with(p(), "/filters", json!({"walletId": {"in": ["wa-1"], "notIn": ["wa-2"]}})), "notIn"),
        (with(p(), "/priority", json!("high")), "priority"),
        (with(p(), "/status", json!("Paused")), "status"),
    ];
    for (body, field) in &cases {
        let reply = server.post("/v2/policies", Some(ALICE), body).await;
        reply.assert_problem(400, field);
        let reply = server.put(&existing_path, Some(ALICE), body).await;
        reply.assert_problem(400, field);
    }
    assert_eq!(state(&server).await, before, "bad policies changed nothing");
    let unchanged = server.get(&existing_path, Some(ALICE)).await.expect(200);
    assert_eq!(unchanged, existing);
    server.get("/healthz", None).await.expect(200);
    server.stop().await;
}

#[actix_rt::test]
async fn bad_activities_are_400_naming_the_field_and_change_nothing() {
    let server = TestServer::start().await;
    server.post("/v2/policies", Some(ALICE), &seed_policy()).await.expect(200);
    let before = state(&server).await;

    let a = || activity("100", None);
    let amount = "/transaction/assets/0/amount";
    let cases: Vec<(Value, &str)> = vec![
        (without(a(), "kind"), "kind"),
        (with(a(), "/kind", json!("Wallets:Destroy")), "kind"),
        (with(a(), "/kind", json!("Policies:Modify")), "kind"),
        (without(a(), "wallet"), "wallet"),
        (without(a(), "transaction"), "transaction"),
        (with(a(), "/wallet", json!("wa-1")), "wallet"),
        (with(a(), "/wallet/id", json!(1)), "wallet.id"),
        (with(a(), "/wallet/id", json!("")), "wallet.id"),
        (with(a(), "/wallet/tags", json!([1, 2])), "wallet.tags[0]"),
        (with(a(), "/transaction/type", json!("Teleport")), "transaction.type"),
        (with(a(), "/transaction/recipient", json!(42)), "transaction.recipient"),
        (with(a(), "/transaction/assets", json!({})), "transaction.assets"),
        (with(a(), amount, json!(U256_MAX_PLUS_ONE)), "transaction.assets[0].amount"),
        (with(a(), amount, json!("-1")), "transaction.assets[0].amount"),
        (with(a(), amount, json!(-1)), "transaction.assets[0].amount"),
        (with(a(), amount, json!("1.5")), "transaction.assets[0].amount"),
        (with(a(), amount, json!(1.5)), "transaction.assets[0].amount"),
        (with(a(), amount, json!("1e18")), "transaction.assets[0].amount"),
        (with(a(), amount, json!("")), "transaction.assets[0].amount"),
        (with(a(), amount, json!(true)), "transaction.assets[0].amount"),
        (with(a(), amount, json!(null)), "transaction.assets[0].amount"),
        (with(a(), amount, json!(1e300)), "transaction.assets[0].amount"),
        (with(a(), "/transaction/assets/0/decimals", json!(300)), "transaction.assets[0].decimals"),
        (with(a(), "/transaction/assets/0/decimals", json!(-1)), "transaction.assets[0].decimals"),
        (with(a(), "/transaction/assets/0/decimals", json!(78)), "transaction.assets[0].decimals"),
        (with(a(), "/transaction/assets/0/valueUsd", json!("abc")), "transaction.assets[0].valueUsd"),
        (with(a(), "/transaction/assets/0/valueUsd", json!("-10")), "transaction.assets[0].valueUsd"),
        (
            with(a(), "/transaction/assets/0/valueUsd", json!("100.000000000000000000000000001")),
            "transaction.assets[0].valueUsd",
        ),
        (with(a(), "/transaction/assets/0/symbol", json!("")), "transaction.assets[0].symbol"),
        (with(a(), "/transaction/assets/0/symbol", json!(["ETH"])), "transaction.assets[0].symbol"),
        (
            json!({"kind": "Wallets:Sign", "initiator": {"id": ""}, "wallet": {"id": "wa-1"},
                "transaction": {"type": "Transfer"}}),
            "initiator.id",
        ),
        (json!({"kind": "Wallets:Sign", "initiator": "us-bob"}), "initiator"),
        (json!([1, 2, 3]), "body"),
        (json!("a string"), "body"),
    ];
    for (body, field) in &cases {
        server.post("/v2/activities", Some(BOB), body).await.assert_problem(400, field);
    }
    assert_eq!(state(&server).await, before, "bad activities changed nothing");
    server.get("/healthz", None).await.expect(200);
    server.stop().await;
}

#[actix_rt::test]
async fn malformed_json_is_400() {
    let server = TestServer::start().await;
    let before = state(&server).await;
    let bodies: &[&[u8]] = &[
        b"",
        b"   ",
        b"{",
        b"{\"name\": ",
        b"{\"name\": \"x\",}",
        b"{'name': 'x'}",
        b"nul",
        b"{} {}",
        b"\xff\xfe\x00garbage",
        b"{\"kind\": \"Wallets:Sign\", \"kind\": \"Wallets:Sign\"}",
    ];
    for (path, token) in [("/v2/policies", ALICE), ("/v2/activities", BOB), ("/v2/webhooks", ALICE)] {
        for body in bodies {
            let reply = server.send(Method::POST, path, Some(token), Some("application/json"), body.to_vec()).await;
            reply.assert_problem(400, "");
            let detail = reply.body["detail"].as_str().unwrap();
            assert!(detail.starts_with("body:") || detail.contains("JSON"), "`{detail}` says nothing of the JSON");
        }
    }
    // A key given twice is refused wherever it is, named with the object
    // that has it: in an unknown field too, which serde alone would skip.
    let twice: &[(&[u8], &str)] = &[
        (br#"{"kind": "Wallets:Sign", "kind": "Wallets:Sign"}"#, "body: duplicate field `kind`"),
        (br#"{"kind": "Wallets:Sign", "wallet": {"id": "wa-1", "id": "wa-2"}}"#, "wallet: duplicate field `id`"),
        (br#"{"kind": "Wallets:Sign", "note": [{"a": 1, "a": 2}]}"#, "note[0]: duplicate field `a`"),
    ];
    for (body, detail) in twice {
        let reply =
            server.send(Method::POST, "/v2/activities", Some(BOB), Some("application/json"), body.to_vec()).await;
        reply.assert_problem(400, "");
        assert_eq!(reply.body["detail"], *detail);
    }
    // Deeply nested JSON is refused by the parser's depth limit, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let reply =
        server.send(Method::POST, "/v2/activities", Some(BOB), Some("application/json"), deep.into_bytes()).await;
    reply.assert_problem(400, "body");
    assert_eq!(state(&server).await, before);
    server.get("/healthz", None).await.expect(200);
    server.stop().await;
}

#[actix_rt::test]
async fn bad_decisions_webhooks_and_queries_are_400() {
    let server = TestServer::start().await;
    server.post("/v2/policies", Some(ALICE), &seed_policy()).await.expect(200);
    let pending = server.post("/v2/activities", Some(BOB), &activity("150000", None)).await.expect(200);
    let decisions = format!("/v2/policy-approvals/{}/decisions", pending["approvalId"].as_str().unwrap());
    let before = state(&server).await;

    for (body, field) in [
        (json!({"value": "Maybe"}), "value"),
        (json!({"value": 1}), "value"),
        (json!({"value": {"Approved": null}}), "value"),
        (json!({"reason": "no value"}), "value"),
        (json!({"value": "Approved", "reason": 5}), "reason"),
        (json!({"value": "Approved", "reason": "x".repeat(5000)}), "reason"),
    ] {
        server.post(&decisions, Some(APPROVER_1), &body).await.assert_problem(400, field);
    }
    let approval = server.get(&decisions.replace("/decisions", ""), Some(APPROVER_1)).await.expect(200);
    assert_eq!(approval["decisions"], json!([]), "no decision was recorded");

    for (body, field) in [
        (json!({"url": "not a url", "events": ["*"]}), "url"),
        (json!({"url": "ftp://127.0.0.1/x", "events": ["*"]}), "url"),
        (json!({"url": 5, "events": ["*"]}), "url"),
        (json!({"url": "http://example.com:99999/x", "events": ["*"]}), "port must be 1 to 65535"),
        (json!({"url": "http://example.com:0/x", "events": ["*"]}), "port must be 1 to 65535"),
        (json!({"url": format!("http://example.com/{}", "a".repeat(2040)), "events": ["*"]}), "at most 2048 bytes"),
        (json!({"events": ["*"]}), "url"),
        (json!({"url": "http://127.0.0.1:9/x", "events": ["policy.exploded"]}), "events[0]"),
        (json!({"url": "http://127.0.0.1:9/x", "events": "*"}), "events"),
        (json!({"url": "http://127.0.0.1:9/x", "events": []}), "events"),
        (json!({"url": "http://127.0.0.1:9/x", "events": ["*"], "status": "Paused"}), "status"),
    ] {
        server.post("/v2/webhooks", Some(ALICE), &body).await.assert_problem(400, field);
    }

    for (path, field) in [
        ("/v2/activities?status=Exploded", "status"),
        ("/v2/policies?status=Paused", "status"),
        ("/v2/policy-approvals?status=Maybe", "status"),
        ("/v2/activities?limit=%FF", "limit"),
        ("/v2/activities?limit=99999999999999999999999", "limit"),
        ("/v2/activities?paginationToken=18446744073709551615", "paginationToken"),
        ("/v2/policies?paginationToken=-1", "paginationToken"),
        // Given twice: which one would count is no choice to make.
        ("/v2/activities?limit=2000&limit=1", "limit: given more than once"),
        ("/v2/policy-approvals?status=Pending&status=Approved", "status: given more than once"),
    ] {
        server.get(path, Some(ALICE)).await.assert_problem(400, field);
    }
    // A webhook's events by a kind no event has.
    let webhook = json!({"url": "http://127.0.0.1:9/x", "events": ["*"]});
    let webhook = server.post("/v2/webhooks", Some(ALICE), &webhook).await.expect(200);
    let events = format!("/v2/webhooks/{}/events", webhook["id"].as_str().unwrap());
    server.get(&format!("{events}?kind=bogus"), Some(ALICE)).await.assert_problem(400, "kind");
    server.get(&format!("{events}?kind=webhook.ping"), Some(ALICE)).await.expect(200);
    server.delete(&format!("/v2/webhooks/{}", webhook["id"].as_str().unwrap()), Some(ALICE)).await.expect(200);
    assert_eq!(state(&server).await, before);
    server.get("/healthz", None).await.expect(200);
    server.stop().await;
}

#[actix_rt::test]
async fn oversized_bodies_are_413_and_non_json_bodies_415() {
    let server = TestServer::start().await;
    let before = state(&server).await;

    // Just over the default 1 MiB, as valid JSON.
    let mut big = seed_policy();
    big["name"] = json!("x".repeat(1024 * 1024));
    let reply = server.post("/v2/policies", Some(ALICE), &big).await;
    reply.assert_problem(413, "limit");
    let mut big_activity = activity("1", None);
    big_activity["externalId"] = json!("y".repeat(1024 * 1024 + 1));
    server.post("/v2/activities", Some(BOB), &big_activity).await.assert_problem(413, "limit");

    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        "multipart/form-data; boundary=x",
        "not a media type",
        // Not the usual header, though it starts as it does.
        "application/jsonx",
    ] {
        let body = seed_policy().to_string().into_bytes();
        let reply = server.send(Method::POST, "/v2/policies", Some(ALICE), Some(content_type), body).await;
        reply.assert_problem(415, "content-type");
    }
    // A route that reads no body (a webhook's ping) answers one as the
    // others do, and without one goes on to its own answer.
    let ping = "/v2/webhooks/wh-none/ping";
    let text = b"ping".to_vec();
    server.send(Method::POST, ping, Some(ALICE), Some("text/plain"), text).await.assert_problem(415, "content-type");
    let big = vec![b' '; 1024 * 1024 + 1];
    server.send(Method::POST, ping, Some(ALICE), Some("application/json"), big).await.assert_problem(413, "limit");
    server.send(Method::POST, ping, Some(ALICE), None, Vec::new()).await.assert_problem(404, "wh-none");
    assert_eq!(state(&server).await, before);
    server.get("/healthz", None).await.expect(200);

    // JSON with a charset, and structured `+json` types, are JSON; media
    // types are case-insensitive.
    for content_type in ["application/json; charset=utf-8", "application/merge-patch+json", "Application/JSON"] {
        let body = seed_policy().to_string().into_bytes();
        let reply = server.send(Method::POST, "/v2/policies", Some(ALICE), Some(content_type), body).await;
        reply.expect(200);
    }
    server.stop().await;
}

#[actix_rt::test]
async fn the_body_limit_is_configurable() {
    let server = TestServer::start_with_limit(Some(512)).await;
    let mut body = activity("1", None);
    body["externalId"] = json!("z".repeat(600));
    server.post("/v2/activities", Some(BOB), &body).await.assert_problem(413, "512");
    server.post("/v2/activities", Some(BOB), &activity("1", None)).await.expect(200);
    server.stop().await;
}

#[actix_rt::test]
async fn unknown_ids_are_404_and_odd_paths_do_not_break_anything() {
    let server = TestServer::start().await;
    for path in [
        "/v2/activities/ac-nope",
        "/v2/policies/pl-nope",
        "/v2/policy-approvals/ap-nope",
        "/v2/change-requests/cr-nope",
        "/v2/activities/%00%ff",
        "/v2/policies/..%2F..%2Fetc%2Fpasswd",
    ] {
        server.get(path, Some(ALICE)).await.assert_problem(404, "not found");
    }
    let long = format!("/v2/policies/pl-{}", "a".repeat(4000));
    server.get(&long, Some(ALICE)).await.assert_problem(404, "not found");
    server.get("/healthz", None).await.expect(200);
    server.stop().await;
}

#[actix_rt::test]
async fn oversized_texts_are_refused_naming_the_field_without_echoing_them() {
    let server = TestServer::start().await;
    let huge = "w".repeat(1_000_000);
    let mut activity = serde_json::json!({
        "kind": "Wallets:Sign", "wallet": {"id": huge, "tags": []},
        "transaction": {"type": "Transfer", "network": "Ethereum", "recipient": "0x76d1b7f9b3F69C435eeF76a98A415332084A856F",
                        "assets": [{"symbol": "ETH", "decimals": 18, "amount": "1", "valueUsd": "1"}]}
    });
    let reply = server.post("/v2/activities", Some(BOB), &activity).await;
    let body = reply.expect(400);
    assert!(body["detail"].as_str().unwrap().contains("wallet.id"), "{body}");
    assert!(body.to_string().len() < 1000, "the answer does not echo the input");

    activity["wallet"]["id"] = serde_json::json!("wa-1");
    activity["wallet"]["tags"] = serde_json::json!(["t".repeat(257)]);
    let body = server.post("/v2/activities", Some(BOB), &activity).await.expect(400);
    assert!(body["detail"].as_str().unwrap().contains("wallet.tags[0]"), "{body}");
    let trail = server.get("/v2/activities", Some(BOB)).await.expect(200);
    assert_eq!(trail["items"].as_array().unwrap().len(), 0, "nothing was evaluated");
}
