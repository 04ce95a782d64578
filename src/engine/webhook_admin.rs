//! The webhook calls Dfns clients make beyond register, list and delete:
//! update, ping, one event, and the filtered delivery log.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::actors::webhook_dispatcher::ping;
use crate::error::Error;
use crate::model::ids::{new_id, IdKind};
use crate::model::webhook::{DeliveryStatus, Webhook, WebhookEvent, WebhookUpdate};

use super::{webhooks, Engine, Page, PageRequest};

/// The kind of a ping's event.
pub const PING_KIND: &str = "webhook.ping";

/// Filters of a webhook's delivery log.
#[derive(Debug, Clone, Default)]
pub struct WebhookEventFilter {
    /// Only events of this kind.
    pub kind: Option<String>,
    /// `true`: only events whose last try failed (given up, or waiting for a
    /// retry); `false`: only the others.
    pub delivery_failed: Option<bool>,
}

impl WebhookEventFilter {
    fn keeps(&self, event: &WebhookEvent) -> bool {
        self.kind.as_ref().is_none_or(|kind| &event.kind == kind)
            && self.delivery_failed.is_none_or(|failed| failed == last_try_failed(event))
    }
}

/// Whether the last try of `event` failed: it is `Failed`, or `Pending`
/// after at least one try.
pub fn last_try_failed(event: &WebhookEvent) -> bool {
    match event.status {
        DeliveryStatus::Failed => true,
        DeliveryStatus::Pending => event.attempts > 0,
        DeliveryStatus::Delivered => false,
    }
}

/// What came of a ping (Dfns' shape: the receiver's HTTP status as text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PingOutcome {
    /// The receiver's HTTP status, absent when it did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// What went wrong, absent on a 2xx.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Engine {
    /// Changes a webhook (the fields given); answers it without its secret.
    pub async fn update_webhook(&self, id: &str, update: WebhookUpdate) -> Result<Webhook, Error> {
        let (hub, id) = (self.hub.clone(), id.to_owned());
        self.change(Box::pin(async move { webhooks::update_webhook(&hub, &id, update, None).await })).await
    }

    /// Sends one signed `webhook.ping` event to the webhook now (whatever its
    /// status and events) and answers what the receiver said.
    pub async fn ping_webhook(&self, id: &str) -> Result<PingOutcome, Error> {
        let webhook = self.hub.state().webhook(id).ok_or_else(|| Error::not_found("webhook", id))?;
        let now = self.hub.now();
        let event = ping_event(&webhook, now);
        let secret = webhook.secret.unwrap_or_default();
        let (status, error) = ping(&webhook.url, &secret, self.hub.webhook_allow_private(), &event, now).await;
        Ok(PingOutcome { status: status.map(|s| s.to_string()), error })
    }

    /// One event of a webhook's delivery log.
    pub fn webhook_event(&self, id: &str, event_id: &str) -> Result<WebhookEvent, Error> {
        self.webhook(id)?;
        self.hub
            .state()
            .event(event_id)
            .filter(|e| e.webhook_id == id)
            .ok_or_else(|| Error::not_found("event", event_id))
    }

    /// A webhook's delivery log, filtered.
    pub fn webhook_events_matching(
        &self,
        id: &str,
        filter: &WebhookEventFilter,
        page: &PageRequest,
    ) -> Result<Page<WebhookEvent>, Error> {
        self.webhook(id)?;
        let filters = format!("{:?}|{:?}", filter.kind, filter.delivery_failed);
        self.hub.state().events_where(id, &filters, |e| filter.keeps(e), page)
    }
}

fn ping_event(webhook: &Webhook, now: DateTime<Utc>) -> WebhookEvent {
    WebhookEvent {
        id: new_id(IdKind::Event),
        webhook_id: webhook.id.clone(),
        kind: PING_KIND.to_owned(),
        date: now,
        status: DeliveryStatus::Pending,
        attempts: 0,
        last_error: None,
        data: serde_json::json!({ "webhookId": webhook.id }).to_string(),
        next_attempt: None,
        last_sent: None,
    }
}
