//! `/v2/webhooks`: registration and the delivery log (Admin only: a webhook
//! decides where approval data is sent).

use actix_web::web::{Data, Json, Path};

use crate::engine::{Engine, Page};
use crate::http::auth::{AdminRole, Authorized};
use crate::http::body::JsonBody;
use crate::http::problem::Problem;
use crate::http::query::ListQuery;
use crate::http::schemas::{WebhookDoc, WebhookEventListDoc, WebhookListDoc, WebhookSpecDoc};
use crate::model::webhook::{Webhook, WebhookEvent, WebhookSpec};

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
) -> Result<Json<Page<WebhookEvent>>, Problem> {
    Ok(Json(engine.webhook_events(&id, &query.page()?)?))
}
