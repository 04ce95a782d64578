//! Webhooks and their events.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::event::{APPROVAL_PENDING, APPROVAL_RESOLVED, POLICY_TRIGGERED};

/// The event kinds a webhook can subscribe to.
pub const EVENT_KINDS: [&str; 3] = [POLICY_TRIGGERED, APPROVAL_PENDING, APPROVAL_RESOLVED];

/// Whether a webhook receives events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub enum WebhookStatus {
    /// Receives events.
    #[default]
    Enabled,
    /// Receives nothing.
    Disabled,
}

/// The body of `POST /v2/webhooks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "url": "https://receiver.example.invalid/warden", "events": ["*"], "description": "audit trail"
}))]
pub struct WebhookSpec {
    /// Where events are POSTed.
    pub url: String,
    /// Event kinds, or `["*"]` for all.
    pub events: Vec<String>,
    /// Enabled unless given.
    #[serde(default)]
    pub status: WebhookStatus,
    /// What the webhook is for (Dfns' field); at most 4096 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub description: Option<String>,
}

/// The body of `PUT /webhooks/{id}`: each field given replaces the stored
/// one, each absent keeps it (Dfns' `UpdateWebhookBody`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookUpdate {
    /// Where events are POSTed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Event kinds, or `["*"]` for all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// Enabled or disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<WebhookStatus>,
    /// What the webhook is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub description: Option<String>,
}

/// A registered webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// `wh-...`
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// Subscribed kinds.
    pub events: Vec<String>,
    /// Enabled or disabled.
    pub status: WebhookStatus,
    /// HMAC key; shown only in the answer to the create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// What the webhook is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it was registered.
    pub date_created: DateTime<Utc>,
    /// Why Warden disabled it (every delivery failed for 24 hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// When it last changed (absent only in records written before updates existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_updated: Option<DateTime<Utc>>,
}

impl Webhook {
    /// Whether the webhook wants events of `kind`.
    pub fn wants(&self, kind: &str) -> bool {
        self.status == WebhookStatus::Enabled && self.events.iter().any(|e| e == "*" || e == kind)
    }
}

/// Delivery state of one event to one webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum DeliveryStatus {
    /// Not delivered yet; will be tried (again).
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Retries were exhausted.
    Failed,
}

impl DeliveryStatus {
    /// Every status, in the order an event may go through them.
    pub const ALL: [DeliveryStatus; 3] = [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Failed];

    /// The contract's name (a metric's label value).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "Pending",
            DeliveryStatus::Delivered => "Delivered",
            DeliveryStatus::Failed => "Failed",
        }
    }
}

/// One event for one webhook, with its delivery log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    /// `ev-...`
    pub id: String,
    /// The webhook it goes to.
    pub webhook_id: String,
    /// Event kind.
    pub kind: String,
    /// When it happened.
    pub date: DateTime<Utc>,
    /// Delivery state.
    pub status: DeliveryStatus,
    /// Tries so far, the first included.
    pub attempts: u32,
    /// The last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The event's `data`, as JSON text (kept verbatim so the signature is stable).
    #[serde(default)]
    pub data: String,
    /// When the next try is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<DateTime<Utc>>,
    /// When the last try was sent (the delivery's `timestampSent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sent: Option<DateTime<Utc>>,
}
