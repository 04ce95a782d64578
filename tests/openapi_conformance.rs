//! The OpenAPI document served at `/openapi.json` against the server that
//! serves it: a day of real use (policies, activities allowed and held, an
//! approval decided, a webhook with its delivery log) and a few invalid
//! requests, each answer checked against the operation the document gives
//! for its path and method: its status is documented, and its body is valid
//! against the documented schema. (Every route pattern having an operation
//! is the unit test `every_route_is_documented`; Schemathesis fuzzes the same
//! document in `tests/schemathesis.rs`.)

mod http_support;

use actix_web::http::Method;
use http_support::*;
use serde_json::{json, Value};

/// A minimal JSON Schema checker for what the document uses: `$ref`, `type`
/// (one or several), `properties`, `required`, `items`, `enum`, `allOf`,
/// `oneOf`, `anyOf`, `minimum`, `maximum`, `maxLength`.
struct Checker<'a> {
    document: &'a Value,
}

impl Checker<'_> {
    fn resolve<'v>(&'v self, schema: &'v Value) -> &'v Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference.strip_prefix('#').expect("local reference");
                self.resolve(self.document.pointer(pointer).unwrap_or_else(|| panic!("`{reference}` resolves")))
            }
            None => schema,
        }
    }

    /// The first violation of `schema` by `value`, with its JSON path.
    fn check(&self, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
        let schema = self.resolve(schema);
        let fail = |what: String| Err(format!("{at}: {what} (value {value}, schema {schema})"));
        if let Some(types) = schema.get("type") {
            let types: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let fits = |t: &str| match t {
                "null" => value.is_null(),
                "boolean" => value.is_boolean(),
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                _ => true,
            };
            if !types.iter().any(|t| fits(t)) {
                return fail(format!("is not of type {types:?}"));
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                return fail("is not one of the enum".into());
            }
        }
        if let (Some(max), Some(text)) = (schema.get("maxLength").and_then(Value::as_u64), value.as_str()) {
            if text.chars().count() as u64 > max {
                return fail(format!("is longer than {max}"));
            }
        }
        if let Some(number) = value.as_f64() {
            if schema.get("minimum").and_then(Value::as_f64).is_some_and(|min| number < min) {
                return fail("is below the minimum".into());
            }
            if schema.get("maximum").and_then(Value::as_f64).is_some_and(|max| number > max) {
                return fail("is above the maximum".into());
            }
        }
        for part in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            self.check(part, value, at)?;
        }
        for keyword in ["oneOf", "anyOf"] {
            if let Some(options) = schema.get(keyword).and_then(Value::as_array) {
                let fitting = options.iter().filter(|option| self.check(option, value, at).is_ok()).count();
                let ok = if keyword == "oneOf" { fitting == 1 } else { fitting >= 1 };
                if !ok {
                    return fail(format!("fits {fitting} of the {keyword} options"));
                }
            }
        }
        if let Some(fields) = value.as_object() {
            for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                let name = required.as_str().unwrap();
                if !fields.contains_key(name) {
                    return fail(format!("lacks the required `{name}`"));
                }
            }
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (name, field) in fields {
                    if let Some(property) = properties.get(name) {
                        self.check(property, field, &format!("{at}.{name}"))?;
                    }
                }
            }
        }
        if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
            for (i, item) in values.iter().enumerate() {
                self.check(items, item, &format!("{at}[{i}]"))?;
            }
        }
        Ok(())
    }

    /// Checks an answer of `method` on the concrete `path` against the
    /// operation of the pattern it matches.
    #[track_caller]
    fn answer(&self, method: &str, path: &str, reply: &Reply) {
        let path = path.split('?').next().unwrap();
        let (pattern, item) = self.document["paths"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(pattern, _)| matches(pattern, path))
            .unwrap_or_else(|| panic!("no documented path matches `{path}`"));
        let operation = &item[method];
        assert!(operation.is_object(), "`{method} {pattern}` is not documented");
        let response = operation["responses"].get(reply.status.to_string()).unwrap_or_else(|| {
            panic!("`{method} {pattern}` answered {}, which is not documented: {}", reply.status, reply.body)
        });
        let response = self.resolve(response);
        let Some(content) = response.get("content").and_then(|c| c.get(&reply.content_type)) else {
            panic!("`{method} {pattern}` {}: content type `{}` is not documented", reply.status, reply.content_type);
        };
        if let Err(violation) = self.check(&content["schema"], &reply.body, "body") {
            panic!("`{method} {pattern}` {}: {violation}", reply.status);
        }
    }
}

/// Whether `path` is an instance of the OpenAPI path `pattern`.
fn matches(pattern: &str, path: &str) -> bool {
    let (pattern, path): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    pattern.len() == path.len() && pattern.iter().zip(&path).all(|(p, s)| p.starts_with('{') || p == s)
}

#[actix_rt::test]
async fn the_servers_answers_are_what_its_document_says() {
    let server = TestServer::start().await;
    let document = server.get("/openapi.json", None).await.expect(200);
    let checker = Checker { document: &document };
    // Every step: send, check the answer against the document, keep it.
    macro_rules! step {
        ($method:ident, $path:expr, $token:expr $(, $body:expr)?) => {{
            let path: String = $path;
            let reply = server.$method(&path, $token $(, $body)?).await;
            checker.answer(&stringify!($method).to_ascii_lowercase(), &path, &reply);
            reply
        }};
    }

    step!(get, "/healthz".into(), None);
    let policy = step!(post, "/v2/policies".into(), Some(ALICE), &seed_policy()).expect(200);
    let policy_id = policy["id"].as_str().unwrap().to_owned();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let webhook = step!(
        post,
        "/v2/webhooks".into(),
        Some(ALICE),
        &json!({
            "url": format!("http://127.0.0.1:{dead}/hook"), "events": ["*"], "description": "audit"
        })
    )
    .expect(200);
    let webhook_id = webhook["id"].as_str().unwrap().to_owned();

    let allowed = step!(post, "/v2/activities".into(), Some(BOB), &activity("4500.00", Some("c-1"))).expect(200);
    let held = step!(post, "/v2/activities".into(), Some(BOB), &activity("150000.00", Some("c-2"))).expect(200);
    assert_eq!(held["status"], "PendingApproval");
    let approval_id = held["approvalId"].as_str().unwrap().to_owned();
    step!(get, format!("/v2/activities/{}", allowed["id"].as_str().unwrap()), Some(BOB)).expect(200);
    step!(get, "/v2/activities?limit=1".into(), Some(BOB)).expect(200);
    step!(get, "/v2/policy-approvals".into(), Some(APPROVER_1)).expect(200);
    step!(get, format!("/v2/policy-approvals/{approval_id}"), Some(APPROVER_1)).expect(200);
    let decision = json!({"value": "Approved", "reason": "checked"});
    step!(post, format!("/v2/policy-approvals/{approval_id}/decisions"), Some(APPROVER_1), &decision).expect(200);
    step!(post, format!("/v2/policy-approvals/{approval_id}/decisions"), Some(APPROVER_2), &decision).expect(200);
    step!(get, "/v2/policies".into(), Some(ALICE)).expect(200);
    step!(get, format!("/v2/policies/{policy_id}"), Some(ALICE)).expect(200);
    let mut changed = seed_policy();
    changed["name"] = json!("Large Transaction Approval, renamed");
    step!(put, format!("/v2/policies/{policy_id}"), Some(ALICE), &changed).expect(200);

    step!(get, "/v2/webhooks".into(), Some(ALICE)).expect(200);
    step!(get, format!("/v2/webhooks/{webhook_id}"), Some(ALICE)).expect(200);
    step!(put, format!("/v2/webhooks/{webhook_id}"), Some(ALICE), &json!({"description": "audit trail"})).expect(200);
    let events = step!(get, format!("/v2/webhooks/{webhook_id}/events"), Some(ALICE)).expect(200);
    let event_id = events["items"][0]["id"].as_str().expect("the webhook has events").to_owned();
    step!(get, format!("/v2/webhooks/{webhook_id}/events/{event_id}"), Some(ALICE)).expect(200);
    step!(post, format!("/webhooks/{webhook_id}/ping"), Some(ALICE), &json!({})).expect(200);

    // Invalid requests get a documented status and a problem document.
    step!(get, "/v2/activities?limit=0".into(), Some(BOB)).assert_problem(400, "limit");
    step!(get, format!("/v2/webhooks/{webhook_id}/events?limit=5000"), Some(ALICE)).assert_problem(400, "limit");
    step!(get, "/v2/activities/ac-nope".into(), Some(BOB)).assert_problem(404, "ac-nope");
    step!(get, "/v2/policies".into(), None).assert_problem(401, "authorization");
    step!(post, "/v2/policies".into(), Some(BOB), &seed_policy()).assert_problem(403, "Admin");
    let mut bad = activity("1", None);
    bad["kind"] = json!("Policies:Modify");
    step!(post, "/v2/activities".into(), Some(BOB), &bad).assert_problem(400, "kind");
    bad["kind"] = json!("Wallets:Sign");
    bad["wallet"]["id"] = json!("w".repeat(300));
    step!(post, "/v2/activities".into(), Some(BOB), &bad).assert_problem(400, "wallet.id");
    step!(delete, format!("/v2/webhooks/{webhook_id}"), Some(ALICE)).expect(200);
    step!(delete, format!("/v2/policies/{policy_id}"), Some(ALICE)).expect(200);
    let reply = server.send(Method::POST, "/v2/webhooks", Some(ALICE), Some("text/plain"), b"x".to_vec()).await;
    checker.answer("post", "/v2/webhooks", &reply);
    reply.assert_problem(415, "content-type");
    server.stop().await;
}

#[test]
fn the_checker_catches_what_it_checks() {
    let document = json!({"components": {"schemas": {"A": {"type": "object", "required": ["n"], "properties": {
        "n": {"type": "integer", "minimum": 1, "maximum": 9},
        "s": {"type": ["string", "null"], "maxLength": 3},
        "e": {"type": "string", "enum": ["x"]}
    }}}}});
    let checker = Checker { document: &document };
    let schema = json!({"$ref": "#/components/schemas/A"});
    assert!(checker.check(&schema, &json!({"n": 5, "s": null, "e": "x"}), "body").is_ok());
    for bad in [json!({}), json!({"n": 0}), json!({"n": 10}), json!({"n": 1, "s": "long"}), json!({"n": 1, "e": "y"})] {
        assert!(checker.check(&schema, &bad, "body").is_err(), "{bad}");
    }
}
