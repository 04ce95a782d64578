//! `/v2/webhooks`: registration and the delivery log (Admin only: a webhook
//! decides where approval data is sent).

use actix_web::web::{Data, Json, Path};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::engine::{Engine, Page};
use crate::http::auth::{AdminRole, Authorized};
use crate::http::body::JsonBody;
use crate::http::problem::Problem;
use crate::http::query::ListQuery;
use crate::http::schemas::{WebhookDoc, WebhookEventListDoc, WebhookListDoc, WebhookSpecDoc};
use crate::model::webhook::{DeliveryStatus, Webhook, WebhookEvent, WebhookSpec};

/// Registers a webhook; the answer carries its secret, shown only here.
#[utoipa::path(
    post, path = "/v2/webhooks", operation_id = "createWebhook", tag = "webhooks",
    request_body = WebhookSpecDoc,
    responses((status = 200, description = "registered; `secret` is shown only here", body = WebhookDoc))
)]
pub async fn create(
    engine: Data<Engine>,
    _caller: Authorized<AdminRole>,
    JsonBody(spec): JsonBody<WebhookSpec>,
) -> Result<Json<Webhook>, Problem> {
    let webhook = engine.create_webhook(spec).await?;
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
    responses((status = 200, body = WebhookDoc))
)]
pub async fn get(
    engine: Data<Engine>,
    _caller: Authorized<AdminRole>,
    id: Path<String>,
) -> Result<Json<Webhook>, Problem> {
    Ok(Json(engine.webhook(&id)?))
}

/// Deletes a webhook; answers with it as it was.
#[utoipa::path(
    delete, path = "/v2/webhooks/{id}", operation_id = "deleteWebhook", tag = "webhooks",
    params(("id" = String, Path, description = "`wh-...`")),
    responses((status = 200, description = "deleted", body = WebhookDoc))
)]
pub async fn delete(
    engine: Data<Engine>,
    _caller: Authorized<AdminRole>,
    id: Path<String>,
) -> Result<Json<Webhook>, Problem> {
    let webhook = engine.delete_webhook(&id).await?;
    tracing::info!(webhook = %webhook.id, "webhook deleted");
    // The secret is shown only in the answer to the create.
    Ok(Json(Webhook { secret: None, ..webhook }))
}

/// A webhook's delivery log.
#[utoipa::path(
    get, path = "/v2/webhooks/{id}/events", operation_id = "listWebhookEvents", tag = "webhooks",
    params(
        ("id" = String, Path, description = "`wh-...`"),
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
    let page = engine.webhook_events(&id, &query.page()?)?;
    let items = page.items.into_iter().map(DeliveryLogEntry::from).collect();
    Ok(Json(Page { items, next_page_token: page.next_page_token }))
}

/// One line of the delivery log as the contract shows it. The engine's
/// event also holds the payload and the retry schedule, which are its own
/// business, not the log's.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryLogEntry {
    id: String,
    kind: String,
    date: DateTime<Utc>,
    status: DeliveryStatus,
    attempts: u32,
    last_error: Option<String>,
}

impl From<WebhookEvent> for DeliveryLogEntry {
    fn from(event: WebhookEvent) -> Self {
        let WebhookEvent { id, kind, date, status, attempts, last_error, .. } = event;
        DeliveryLogEntry { id, kind, date, status, attempts, last_error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delivery_log_shows_the_contract_fields_only() {
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
                "lastError": "connection refused"
            })
        );
    }
}
