//! What the derived schemas cannot say from the types alone, added to the
//! document in one place from the constants the server checks with:
//!
//! - every text of an activity or a policy body is at most
//!   [`MAX_TEXT_BYTES`] (`policy::limits` checks them all);
//! - a signer submits `Wallets:Sign` activities only (`Policies:Modify`
//!   ones are made by governed policy changes, and shown, never submitted);
//! - a webhook subscribes to the event kinds there are, or `*`.

use serde_json::{json, Value};
use utoipa::openapi::OpenApi;

use crate::model::webhook::EVENT_KINDS;
use crate::policy::limits::MAX_TEXT_BYTES;

/// The schema of the body of `POST /v2/activities`.
const SUBMITTED: &str = "WalletsSignRequest";

/// Applies the limits to `openapi` (left as it is if it cannot be read as JSON,
/// which a test rules out).
pub fn tighten(openapi: &mut OpenApi) {
    let Ok(mut document) = serde_json::to_value(&*openapi) else { return };
    tighten_json(&mut document);
    if let Ok(tightened) = serde_json::from_value(document) {
        *openapi = tightened;
    }
}

fn tighten_json(document: &mut Value) {
    let Some(schemas) = document.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else { return };
    let roots = ["ActivityRequest", "PolicySpec"];
    let mut bounded = std::collections::BTreeSet::new();
    for root in roots {
        reachable(schemas, root, &mut bounded);
    }
    for name in &bounded {
        if let Some(schema) = schemas.get_mut(name) {
            bound_texts(schema);
        }
    }
    for name in ["WebhookSpec", "WebhookUpdate"] {
        if let Some(items) = schemas.get_mut(name).and_then(|s| s.pointer_mut("/properties/events")) {
            let kinds: Vec<&str> = EVENT_KINDS.iter().copied().chain(["*"]).collect();
            let nullable = items["type"].as_array().is_some_and(|t| t.contains(&json!("null")));
            *items = json!({ "type": if nullable { json!(["array", "null"]) } else { json!("array") },
                             "items": { "type": "string", "enum": kinds } });
        }
    }
    if let Some(mut submitted) = schemas.get("ActivityRequest").cloned() {
        submitted["properties"]["kind"] = json!({ "type": "string", "enum": ["Wallets:Sign"] });
        submitted["description"] = json!("An activity a signer asks about: `Wallets:Sign` only.");
        schemas.insert(SUBMITTED.to_owned(), submitted);
        let body = "/paths/~1v2~1activities/post/requestBody/content/application~1json/schema";
        if let Some(schema) = document.pointer_mut(body) {
            *schema = json!({ "$ref": format!("#/components/schemas/{SUBMITTED}") });
        }
    }
}

/// Adds `name` and every component schema it refers to, to `found`.
fn reachable(schemas: &serde_json::Map<String, Value>, name: &str, found: &mut std::collections::BTreeSet<String>) {
    if !found.insert(name.to_owned()) {
        return;
    }
    let mut references = Vec::new();
    collect_refs(schemas.get(name).unwrap_or(&Value::Null), &mut references);
    for reference in references {
        reachable(schemas, &reference, found);
    }
}

fn collect_refs(value: &Value, references: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            if let Some(name) = fields.get("$ref").and_then(Value::as_str).and_then(|r| r.rsplit('/').next()) {
                references.push(name.to_owned());
            }
            fields.values().for_each(|v| collect_refs(v, references));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, references)),
        _ => {}
    }
}

/// Sets `maxLength` on every free text (a string without an enum) of `schema`.
fn bound_texts(schema: &mut Value) {
    match schema {
        Value::Object(fields) => {
            let is_string = match fields.get("type") {
                Some(Value::String(t)) => t == "string",
                Some(Value::Array(types)) => types.contains(&json!("string")),
                _ => false,
            };
            if is_string && !fields.contains_key("enum") && !fields.contains_key("maxLength") {
                fields.insert("maxLength".into(), json!(MAX_TEXT_BYTES));
            }
            fields.values_mut().for_each(bound_texts);
        }
        Value::Array(items) => items.iter_mut().for_each(bound_texts),
        _ => {}
    }
}
