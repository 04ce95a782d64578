//! OpenAPI schemas of the answers that have no Rust type of their own: the
//! pages of lists, a policy with its pending change, the user-action flow
//! and health. Each is written as JSON Schema beside a marker type that
//! names it. The model's own types derive theirs (`utoipa::ToSchema` in
//! `src/model`), so their schemas cannot drift from what is serialized.

use std::borrow::Cow;

use serde_json::{json, Value};
use utoipa::openapi::{RefOr, Schema};

/// A reference to the named component schema.
fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn one_of(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

fn object(required: &[&str], properties: Value) -> Value {
    if required.is_empty() {
        json!({ "type": "object", "properties": properties })
    } else {
        json!({ "type": "object", "required": required, "properties": properties })
    }
}

fn list(item: &str) -> Value {
    object(
        &["items"],
        json!({
            "items": array(r(item)),
            "nextPageToken": { "type": "string", "description": "absent on the last page" }
        }),
    )
}

/// Converts a JSON Schema value; a test checks that every schema converts.
fn convert(value: Value) -> RefOr<Schema> {
    serde_json::from_value(value).unwrap_or_else(|_| RefOr::T(Schema::default()))
}

macro_rules! doc_schemas {
    ($($(#[$doc:meta])* $marker:ident = $name:literal => $schema:expr;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $marker;

            impl utoipa::PartialSchema for $marker {
                fn schema() -> RefOr<Schema> {
                    convert($schema)
                }
            }

            impl utoipa::ToSchema for $marker {
                fn name() -> Cow<'static, str> {
                    Cow::Borrowed($name)
                }
            }
        )*

        /// Every schema as JSON, by name (for tests).
        #[cfg(test)]
        pub(crate) fn all_json() -> Vec<(&'static str, Value)> {
            vec![$(($name, $schema)),*]
        }
    };
}

doc_schemas! {
    /// A stored policy, with the change waiting for its approval.
    PolicyViewDoc = "PolicyView" => json!({ "allOf": [r("Policy"), object(&[], json!({
        "pendingChangeRequest": r("ChangeRequest")
    }))] });
    /// A page of activities.
    ActivityListDoc = "ActivityList" => list("Activity");
    /// A page of policies.
    PolicyListDoc = "PolicyList" => list("PolicyView");
    /// A page of approvals.
    ApprovalListDoc = "ApprovalList" => list("Approval");
    /// The answer of a webhook delete.
    WebhookDeletedDoc = "WebhookDeleted" => object(&["deleted"], json!({ "deleted": { "type": "boolean" } }));
    /// The answer of a ping.
    WebhookPingDoc = "WebhookPing" => object(&["status"], json!({
        "status": { "type": "string", "description": "the receiver's HTTP status; \"0\" if it gave none (unreachable, timed out)", "example": "200" },
        "error": { "type": "string", "description": "what went wrong, absent on a 2xx" }
    }));
    /// A page of webhooks.
    WebhookListDoc = "WebhookList" => list("Webhook");
    /// A page of webhook events.
    WebhookEventListDoc = "WebhookEventList" => list("WebhookEvent");
    /// The body of `POST /auth/action/init`.
    UserActionInitDoc = "UserActionInit" => object(&["userActionPayload", "userActionHttpMethod", "userActionHttpPath"], json!({
        "userActionPayload": { "type": "string", "description": "the exact body text of the change (empty for none)" },
        "userActionHttpMethod": one_of(&["POST", "PUT", "DELETE"]),
        "userActionHttpPath": { "type": "string", "description": "percent-encoded path, no query", "example": "/v2/policies" },
        "userActionServerKind": one_of(&["Api"])
    }));
    /// The answer of `POST /auth/action/init`.
    UserActionChallengeDoc = "UserActionChallenge" => object(
        &["challenge", "challengeIdentifier", "allowCredentials", "supportedCredentialKinds"],
        json!({
            "challenge": { "type": "string", "description": "base64url: 32 random bytes, then the sha256 binding of principal, method, path and body" },
            "challengeIdentifier": string(),
            "allowCredentials": object(&["key"], json!({
                "key": array(object(&["type", "id"], json!({ "type": one_of(&["public-key"]), "id": string() }))),
                "webauthn": array(object(&["id"], json!({ "id": string() }))),
                "passwordProtectedKey": array(object(&["id"], json!({ "id": string() })))
            })),
            "supportedCredentialKinds": array(object(&["kind", "factor"], json!({
                "kind": one_of(&["Key"]), "factor": one_of(&["first"]), "requiresSecondFactor": { "type": "boolean" }
            }))),
            "userVerification": string(),
            "attestation": string(),
            "externalAuthenticationUrl": string()
        }),
    );
    /// The body of `POST /auth/action`.
    UserActionSignDoc = "UserActionSign" => object(&["challengeIdentifier", "firstFactor"], json!({
        "challengeIdentifier": string(),
        "firstFactor": object(&["kind", "credentialAssertion"], json!({
            "kind": one_of(&["Key"]),
            "credentialAssertion": object(&["credId", "clientData", "signature"], json!({
                "credId": string(),
                "clientData": { "type": "string", "description": "base64url of {\"type\":\"key.get\",\"challenge\":\"...\"}" },
                "signature": { "type": "string", "description": "base64url: Ed25519 raw, ECDSA DER over SHA-256, RSA PKCS#1 v1.5 SHA-256" }
            }))
        }))
    }));
    /// The answer of `POST /auth/action`.
    UserActionTokenDoc = "UserActionToken" => object(&["userAction"], json!({
        "userAction": { "type": "string", "description": "send as `X-DFNS-USERACTION` with the change: single use, 5 minutes" }
    }));
    /// The answer of `GET /healthz`.
    HealthDoc = "Health" => object(&["status", "role", "journalSeq"], json!({
        "status": one_of(&["ok"]), "role": one_of(&["leader", "standby"]),
        "leader": string(), "journalSeq": {"type": "integer", "minimum": 0},
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_converts_without_loss() {
        for (name, value) in all_json() {
            let schema: RefOr<Schema> = serde_json::from_value(value.clone())
                .unwrap_or_else(|e| panic!("schema `{name}` does not convert: {e}"));
            assert_eq!(serde_json::to_value(&schema).unwrap(), value, "schema `{name}` changed in conversion");
        }
    }
}
