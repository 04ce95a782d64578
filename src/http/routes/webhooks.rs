//! `/v2/webhooks` and Dfns' unversioned `/webhooks`: registration, update,
//! ping and the delivery log (Admin only: a webhook decides where approval
//! data is sent). Both prefixes serve the same handlers.

use actix_web::web::{Data, Json, Path};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::engine::{last_try_failed, Engine, Page, PingOutcome, WebhookEventFilter, PING_KIND};
use crate::http::auth::{AdminRole, Authorized};
use crate::http::body::{JsonBody, UnreadBody};
use crate::http::problem::Problem;
use crate::http::query::ListQuery;
use crate::http::schemas::{WebhookDeletedDoc, WebhookEventListDoc, WebhookListDoc, WebhookPingDoc};
use crate::http::user_action::UserAction;
use crate::model::webhook::{DeliveryStatus, Webhook, WebhookEvent, WebhookSpec, WebhookUpdate, EVENT_KINDS};

/// Registers a webhook; the answer carries its secret, shown only here.
#[utoipa::path(
    post, path = "/v2/webhooks", operation_id = "createWebhook", tag = "webhooks",
    request_body = WebhookSpec,
    responses((status = 200, description = "registered; `secret` is shown only here", body = Webhook))
)]
pub async fn create(
    engine: Data<Engine>,
    _caller: Authorized<AdminRole>,
    signed: UserAction,
    JsonBody(spec): JsonBody<WebhookSpec>,
) -> Result<Json<Webhook>, Problem> {
    let webhook = engine.create_webhook_signed(spec, signed.0).await?;
    tracing::info!(webhook = %webhook.id, "webhook registered");
    Ok(Json(webhook))
}

/// Webhooks in creation order.
#[utoipa::path(
    get, path = "/v2/webhooks", operation_id = "listWebhooks", tag = "webhooks",
    params(
        ("limit" = Option<usize>, Query, description = "1 to 1000, default 100"),
        ("paginationToken" = Option<String>, Query, description = "the previous page's nextPageToken"),
    ),
    responses((status = 200, body = WebhookListDoc))
)]
pub async fn list(
    engine: Data<Engine>,
    _caller: Authorized<AdminRole>,
    query: ListQuery,
) -> Result<Json<Page<Webhook>>, Problem> {
    Ok(Json(engine.webhooks(&query.page()?)?))
}

/// One webhook.
#[utoipa::path(
    get, path = "/v2/webhooks/{id}", operation_id = "getWebhook", tag = "webhooks",
    params(("id" = String, Path, description = "`wh-...`")),
    responses((status = 200, body = Webhook))
)]
pub async fn get(
    engine: Data<Engine>,
    _caller: Authorized<AdminRole>,
    id: Path<String>,
) -> Result<Json<Webhook>, Problem> {
    Ok(Json(engine.webhook(&id)?))
}

/// Changes a webhook's url, events, status or description (those given).
#[utoipa::path(
    put, path = "/v2/webhooks/{id}", operation_id = "updateWebhook", tag = "webhooks",
    params(("id" = String, Path, description = "`wh-...`")),
    request_body = WebhookUpdate,
    responses((status = 200, description = "the updated webhook (without its secret)", body = Webhook))
)]
pub async fn update(
    engine: Data<Engine>,
    _caller: Authorized<AdminRole>,
    id: Path<String>,
    signed: UserAction,
    JsonBody(update): JsonBody<WebhookUpdate>,
) -> Result<Json<Webhook>, Problem> {
    let webhook = engine.update_webhook_signed(&id, update, signed.0).await?;
    tracing::info!(webhook = %webhook.id, "webhook updated");
    Ok(Json(webhook))
}

/// Deletes a webhook (Dfns' answer: `{"deleted": true}`).
#[utoipa::path(
    delete, path = "/v2/webhooks/{id}", operation_id = "deleteWebhook", tag = "webhooks",
    params(("id" = String, Path, description = "`wh-...`")),
    responses((status = 200, description = "deleted", body = WebhookDeletedDoc))
)]
pub async fn delete(
    engine: Data<Engine>,
    _caller: Authorized<AdminRole>,
    id: Path<String>,
    signed: UserAction,
) -> Result<Json<serde_json::Value>, Problem> {
    let webhook = engine.delete_webhook_signed(&id, signed.0).await?;
    tracing::info!(webhook = %webhook.id, "webhook deleted");
    Ok(Json(serde_json::json!({ "deleted": true })))
}

/// Sends one signed `webhook.ping` event now; answers the receiver's status.
#[utoipa::path(
    post, path = "/v2/webhooks/{id}/ping", operation_id = "pingWebhook", tag = "webhooks",
    params(("id" = String, Path, description = "`wh-...`")),
    responses((status = 200, description = "what the receiver answered", body = WebhookPingDoc))
)]
pub async fn ping(
    engine: Data<Engine>,
    _caller: Authorized<AdminRole>,
    id: Path<String>,
    _body: UnreadBody,
) -> Result<Json<PingAnswer>, Problem> {
    let PingOutcome { status, error } = engine.ping_webhook(&id).await?;
    Ok(Json(PingAnswer { status: status.unwrap_or_else(|| NO_ANSWER.to_owned()), error }))
}

/// The `status` of a ping that got no HTTP answer (the receiver could not be
/// reached, or timed out): `"0"`, as browsers report such a request.
const NO_ANSWER: &str = "0";

/// A ping's answer: `status` always, as the Dfns SDK types it.
#[derive(Debug, Serialize)]
pub struct PingAnswer {
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// A webhook's delivery log, newest last.
#[utoipa::path(
    get, path = "/v2/webhooks/{id}/events", operation_id = "listWebhookEvents", tag = "webhooks",
    params(
        ("id" = String, Path, description = "`wh-...`"),
        ("kind" = Option<String>, Query, description = "only events of this kind"),
        ("deliveryFailed" = Option<bool>, Query, description = "`true`: only events whose last try failed; `false`: the others"),
        ("limit" = Option<usize>, Query, description = "1 to 1000, default 100"),
        ("paginationToken" = Option<String>, Query, description = "the previous page's nextPageToken"),
    ),
    responses((status = 200, body = WebhookEventListDoc))
)]
pub async fn events(
    engine: Data<Engine>,
    _caller: Authorized<AdminRole>,
    id: Path<String>,
    query: ListQuery,
) -> Result<Json<Page<DeliveryLogEntry>>, Problem> {
    let delivery_failed = match query.text("deliveryFailed").as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            let shown: String = other.chars().take(64).collect();
            return Err(Problem::bad_request(format!("deliveryFailed: `{shown}` is not `true` or `false`")));
        }
    };
    // A kind no event can have is refused, as the other lists' filters are.
    let kind = query.text("kind");
    if let Some(kind) = kind.as_deref().filter(|k| !EVENT_KINDS.contains(k) && *k != PING_KIND) {
        let shown: String = kind.chars().take(64).collect();
        return Err(Problem::bad_request(format!(
            "kind: `{shown}` is not one of {}, {PING_KIND}",
            EVENT_KINDS.join(", ")
        )));
    }
    let filter = WebhookEventFilter { kind, delivery_failed };
    let page = engine.webhook_events_matching(&id, &filter, &query.page()?)?;
    let items = page.items.into_iter().map(DeliveryLogEntry::from).collect();
    Ok(Json(Page { items, next_page_token: page.next_page_token }))
}

/// One event of a webhook's delivery log.
#[utoipa::path(
    get, path = "/v2/webhooks/{id}/events/{eventId}", operation_id = "getWebhookEvent", tag = "webhooks",
    params(
        ("id" = String, Path, description = "`wh-...`"),
        ("eventId" = String, Path, description = "`ev-...`"),
    ),
    responses((status = 200, body = DeliveryLogEntry))
)]
pub async fn event(
    engine: Data<Engine>,
    _caller: Authorized<AdminRole>,
    path: Path<(String, String)>,
) -> Result<Json<DeliveryLogEntry>, Problem> {
    let (id, event_id) = path.into_inner();
    Ok(Json(DeliveryLogEntry::from(engine.webhook_event(&id, &event_id)?)))
}

/// One event of a webhook's delivery log: its kind, data and delivery
/// status. (The retry schedule is the engine's own business, not shown.)
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = WebhookEvent)]
pub struct DeliveryLogEntry {
    id: String,
    kind: String,
    date: DateTime<Utc>,
    status: DeliveryStatus,
    attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    /// `lastError` under the Dfns SDK's name for it, so that its clients
    /// read it unchanged (as problems carry `message` beside `detail`).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// When the last try was sent, in unix seconds (the Dfns SDK's
    /// `timestampSent`, as the delivery's body carries it); absent before
    /// the first try.
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp_sent: Option<i64>,
    /// The last try failed.
    delivery_failed: bool,
    /// The event's data, as delivered (null when the event has none).
    data: serde_json::Value,
}

impl From<WebhookEvent> for DeliveryLogEntry {
    fn from(event: WebhookEvent) -> Self {
        let delivery_failed = last_try_failed(&event);
        // The journaled text is the engine's own JSON; an empty one is no data.
        let data = serde_json::from_str(&event.data).unwrap_or(serde_json::Value::Null);
        let WebhookEvent { id, kind, date, status, attempts, last_error, last_sent, .. } = event;
        let error = last_error.clone();
        let timestamp_sent = last_sent.map(|sent| sent.timestamp());
        DeliveryLogEntry { id, kind, date, status, attempts, last_error, error, timestamp_sent, delivery_failed, data }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delivery_log_shows_the_contract_fields_and_data() {
        let event = WebhookEvent {
            id: "ev-1".into(),
            webhook_id: "wh-1".into(),
            kind: "policy.triggered".into(),
            date: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
            status: DeliveryStatus::Pending,
            attempts: 2,
            last_error: Some("connection refused".into()),
            data: r#"{"secret":"payload"}"#.into(),
            next_attempt: DateTime::from_timestamp(1_790_000_004, 0),
            last_sent: DateTime::from_timestamp(1_790_000_002, 0),
        };
        let shown = serde_json::to_value(DeliveryLogEntry::from(event)).unwrap();
        assert_eq!(
            shown,
            serde_json::json!({
                "id": "ev-1",
                "kind": "policy.triggered",
                "date": "2026-09-21T14:13:20Z",
                "status": "Pending",
                "attempts": 2,
                "lastError": "connection refused",
                "error": "connection refused",
                "timestampSent": 1_790_000_002,
                "deliveryFailed": true,
                "data": {"secret": "payload"}
            })
        );
    }
}
