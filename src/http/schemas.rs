//! OpenAPI schemas of the engine's model types. The model lives outside the
//! adapter and carries no OpenAPI derives, so each schema is written here as
//! JSON Schema beside a marker type that names it.

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

/// A caller's id, name, tag, symbol or address: the server refuses more than
/// `MAX_TEXT_BYTES` bytes of UTF-8 (400 naming the field).
fn text() -> Value {
    json!({ "type": "string", "maxLength": crate::policy::limits::MAX_TEXT_BYTES,
            "description": "at most 256 bytes of UTF-8" })
}

fn date() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

fn decimal(description: &str) -> Value {
    json!({ "type": "string", "description": description, "example": "100000" })
}

fn one_of(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

fn in_list() -> Value {
    json!({ "type": "object", "required": ["in"], "properties": { "in": array(string()) } })
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

/// An activity's fields, with these kinds.
fn activity_body(kinds: &[&str]) -> Value {
    object(
        &["kind"],
        json!({
            "kind": one_of(kinds),
            "initiator": r("Initiator"),
            "wallet": object(&["id"], json!({ "id": text(), "tags": array(text()) })),
            "transaction": object(&["type"], json!({
                "type": one_of(TRANSACTION_TYPES),
                "network": text(),
                "recipient": text(),
                "assets": array(r("Asset"))
            })),
            "externalId": { "type": "string", "maxLength": crate::policy::limits::MAX_TEXT_BYTES, "description": "idempotency key" },
            "policyId": string(),
            "operationKind": one_of(&["Create", "Update", "Delete"])
        }),
    )
}

const ACTIVITY_STATUSES: &[&str] = &["Allowed", "Blocked", "PendingApproval", "Approved", "Denied", "Expired"];
const TRANSACTION_TYPES: &[&str] = &["Transfer", "ContractCall", "Allowance", "MessageSignature", "BlackBoxSignature"];
const RULE_KINDS: &[&str] = &[
    "AlwaysTrigger",
    "TransactionAmountLimit",
    "TransactionAmountLimitNominal",
    "TransactionAmountVelocity",
    "TransactionCountVelocity",
    "TransactionRecipientWhitelist",
];

doc_schemas! {
    /// Who started an activity.
    InitiatorDoc = "Initiator" => object(&["id"], json!({
        "id": text(), "kind": one_of(&["User", "ServiceAccount"])
    }));
    /// One outgoing asset.
    AssetDoc = "Asset" => object(&["symbol", "decimals", "amount"], json!({
        "symbol": text(),
        "decimals": { "type": "integer", "minimum": 0, "maximum": 77 },
        "amount": { "type": "string", "description": "integer in the asset's smallest unit, up to 2^256 - 1" },
        "valueUsd": decimal("USD value of the amount")
    }));
    /// The body of `POST /v2/activities`: a signer asks about `Wallets:Sign`
    /// only (policy changes make their own `Policies:Modify` activities).
    ActivityRequestDoc = "ActivityRequest" => activity_body(&["Wallets:Sign"]);
    /// An activity as the server shows it: a submitted one, or the
    /// `Policies:Modify` activity of a governed policy change.
    ActivityBodyDoc = "ActivityBody" => activity_body(&["Wallets:Sign", "Policies:Modify"]);
    /// One policy's evaluation.
    PolicyEvaluationDoc = "PolicyEvaluation" => object(&["policyId", "triggered", "reason"], json!({
        "policyId": string(), "name": string(), "triggered": { "type": "boolean" }, "reason": string()
    }));
    /// An evaluated activity.
    ActivityDoc = "Activity" => object(&["id", "status", "policyEvaluations", "activity", "dateCreated"], json!({
        "id": string(),
        "status": one_of(ACTIVITY_STATUSES),
        "approvalId": string(),
        "policyEvaluations": array(r("PolicyEvaluation")),
        "activity": r("ActivityBody"),
        "dateCreated": date(),
        "dateUpdated": date()
    }));
    /// A page of activities.
    ActivityListDoc = "ActivityList" => list("Activity");
    /// A group of approvers.
    ApprovalGroupSpecDoc = "ApprovalGroupSpec" => object(&["quorum"], json!({
        "name": string(),
        "quorum": { "type": "integer", "minimum": 1 },
        "approvers": object(&[], json!({ "userId": in_list() })),
        "initiatorCanApprove": { "type": "boolean" },
        "serviceAccountsCanApprove": { "type": "boolean" }
    }));
    /// The body of a policy create or update.
    PolicySpecDoc = "PolicySpec" => object(&["name", "activityKind", "rule", "action"], json!({
        "name": string(),
        "activityKind": one_of(&["Wallets:Sign", "Policies:Modify"]),
        "rule": object(&["kind"], json!({
            "kind": one_of(RULE_KINDS),
            "configuration": object(&[], json!({
                "limit": decimal("USD, count, or smallest units with `asset`"),
                "currency": one_of(&["USD"]),
                "asset": string(),
                "timeWindow": { "type": "integer", "minimum": 1, "maximum": 31_536_000 },
                "timeframe": { "type": "integer", "description": "minutes (Dfns alias of timeWindow)" },
                "calendar": one_of(&["Day", "Week", "Month"]),
                "scope": one_of(&["Wallet", "Initiator", "Recipient", "Organization"]),
                "assets": array(object(&["symbol", "limit"], json!({ "symbol": string(), "limit": string() }))),
                "addresses": array(string())
            }))
        })),
        "action": object(&["kind"], json!({
            "kind": one_of(&["Block", "RequestApproval", "NoAction"]),
            "approvalGroups": array(r("ApprovalGroupSpec")),
            "autoRejectTimeout": { "type": "integer", "minimum": 1, "description": "seconds" }
        })),
        "filters": object(&[], json!({
            "walletId": in_list(),
            "walletTags": object(&[], json!({ "hasAny": array(string()), "hasAll": array(string()) })),
            "initiatorId": in_list(),
            "transactionType": in_list(),
            "assetSymbol": in_list(),
            "recipient": in_list(),
            "policyId": in_list()
        })),
        "priority": { "type": "integer" },
        "status": one_of(&["Active", "Archived"])
    }));
    /// A stored policy.
    PolicyDoc = "Policy" => json!({ "allOf": [r("PolicySpec"), object(&["id", "dateCreated", "dateUpdated"], json!({
        "id": string(),
        "dateCreated": date(),
        "dateUpdated": date(),
        "pendingChangeRequest": r("ChangeRequest")
    }))] });
    /// A page of policies.
    PolicyListDoc = "PolicyList" => list("Policy");
    /// A governed policy change waiting for its approval.
    ChangeRequestDoc = "ChangeRequest" => object(
        &["id", "kind", "operationKind", "status", "requester", "entityId", "approvalId", "dateCreated"],
        json!({
            "id": string(),
            "kind": one_of(&["Policy"]),
            "operationKind": one_of(&["Create", "Update", "Delete"]),
            "status": one_of(&["Pending", "Applied", "Rejected"]),
            "requester": object(&["userId"], json!({ "userId": string() })),
            "entityId": string(),
            "approvalId": string(),
            "body": r("PolicySpec"),
            "dateCreated": date(),
            "dateResolved": date()
        }),
    );
    /// One decision.
    DecisionDoc = "Decision" => object(&["userId", "value", "date"], json!({
        "userId": string(), "value": one_of(&["Approved", "Denied"]), "reason": string(), "date": date(),
        "credentialId": { "type": "string", "description": "the key that signed the decision (signed user action)" },
        "userAction": r("SignedAction")
    }));
    /// A signed user action as journaled: the assertion and the request it authorized.
    SignedActionDoc = "SignedAction" => object(
        &["principalId", "credentialId", "clientData", "signature", "method", "path", "body"],
        json!({
            "principalId": string(), "credentialId": string(),
            "clientData": { "type": "string", "description": "base64url" },
            "signature": { "type": "string", "description": "base64url" },
            "method": string(), "path": string(), "body": string()
        }),
    );
    /// An approval.
    ApprovalDoc = "Approval" => object(&["id", "status", "initiatorId", "activity", "approvalGroups", "decisions"], json!({
        "id": string(),
        "status": one_of(&["Pending", "Approved", "Denied", "Expired"]),
        "initiatorId": string(),
        "activity": { "allOf": [r("ActivityBody"), object(&["id"], json!({
            "id": string(),
            "changeRequest": r("ChangeRequest")
        }))] },
        "policyEvaluations": array(r("PolicyEvaluation")),
        "approvalGroups": array(json!({ "allOf": [r("ApprovalGroupSpec"), object(&["policyId", "approvedBy"], json!({
            "policyId": string(), "approvedBy": array(string())
        }))] })),
        "decisions": array(r("Decision")),
        "dateCreated": date(),
        "dateUpdated": date(),
        "dateResolved": date(),
        "expirationDate": date()
    }));
    /// A page of approvals.
    ApprovalListDoc = "ApprovalList" => list("Approval");
    /// The body of a decision.
    DecisionRequestDoc = "DecisionRequest" => object(&["value"], json!({
        "value": { "type": "string", "enum": ["Approved", "Denied", "Rejected"], "description": "`Rejected` means `Denied`" },
        "reason": string()
    }));
    /// The body of `POST /v2/webhooks`.
    WebhookSpecDoc = "WebhookSpec" => object(&["url", "events"], json!({
        "url": { "type": "string", "format": "uri" },
        "events": array(one_of(&["policy.approval.pending", "policy.approval.resolved", "policy.triggered", "*"])),
        "status": one_of(&["Enabled", "Disabled"]),
        "description": { "type": "string", "maxLength": 4096 }
    }));
    /// The body of `PUT /webhooks/{id}`: the fields given replace the stored ones.
    WebhookUpdateDoc = "WebhookUpdate" => object(&[], json!({
        "url": { "type": "string", "format": "uri" },
        "events": array(one_of(&["policy.approval.pending", "policy.approval.resolved", "policy.triggered", "*"])),
        "status": one_of(&["Enabled", "Disabled"]),
        "description": { "type": "string", "maxLength": 4096 }
    }));
    /// The answer of a webhook delete.
    WebhookDeletedDoc = "WebhookDeleted" => object(&["deleted"], json!({ "deleted": { "type": "boolean" } }));
    /// The answer of a ping.
    WebhookPingDoc = "WebhookPing" => object(&[], json!({
        "status": { "type": "string", "description": "the receiver's HTTP status, absent if it did not answer", "example": "200" },
        "error": { "type": "string", "description": "what went wrong, absent on a 2xx" }
    }));
    /// A registered webhook.
    WebhookDoc = "Webhook" => object(&["id", "url", "events", "status", "dateCreated"], json!({
        "id": string(),
        "url": string(),
        "events": array(string()),
        "status": one_of(&["Enabled", "Disabled"]),
        "secret": { "type": "string", "description": "HMAC key, only in the answer to the create" },
        "description": string(),
        "dateCreated": date(),
        "dateUpdated": date()
    }));
    /// A page of webhooks.
    WebhookListDoc = "WebhookList" => list("Webhook");
    /// One event's delivery log.
    WebhookEventDoc = "WebhookEvent" => object(&["id", "kind", "date", "status", "attempts"], json!({
        "id": string(),
        "kind": string(),
        "date": date(),
        "status": one_of(&["Pending", "Delivered", "Failed"]),
        "attempts": { "type": "integer", "minimum": 0 },
        "lastError": string(),
        "deliveryFailed": { "type": "boolean", "description": "the last try failed" },
        "data": { "type": "object", "description": "the event's data, as delivered" }
    }));
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
