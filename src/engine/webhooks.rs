//! Webhook registration and the delivery log (delivery itself is the
//! dispatcher actor's).

use rand::RngCore;

use crate::actors::hub::Hub;
use crate::error::{Error, ValidationError};
use crate::journal::facts::{Fact, Json};
use crate::model::ids::{new_id, IdKind};
use crate::model::webhook::{Webhook, WebhookSpec, EVENT_KINDS};

/// Longest accepted webhook URL.
const MAX_URL_LEN: usize = 2048;

/// Validates a webhook body.
pub(crate) fn validate_webhook(spec: &WebhookSpec) -> Result<(), ValidationError> {
    let url = spec.url.trim();
    let uri: Result<actix_web::http::Uri, _> = url.parse();
    let valid = url.len() <= MAX_URL_LEN
        && matches!(&uri, Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
    if !valid {
        return Err(ValidationError::new("url", format!("`{url}` is not an absolute http(s) URL")));
    }
    if spec.events.is_empty() {
        return Err(ValidationError::new("events", "must list at least one event kind, or `*`"));
    }
    for (i, kind) in spec.events.iter().enumerate() {
        if kind != "*" && !EVENT_KINDS.contains(&kind.as_str()) {
            return Err(ValidationError::new(
                format!("events[{i}]"),
                format!("`{kind}` is not an event kind (one of {}, or `*`)", EVENT_KINDS.join(", ")),
            ));
        }
    }
    Ok(())
}

/// Registers a webhook; the answer is the only place its secret is shown.
pub(super) async fn create_webhook(hub: &Hub, spec: WebhookSpec) -> Result<Webhook, Error> {
    validate_webhook(&spec)?;
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    let webhook = Webhook {
        id: new_id(IdKind::Webhook),
        url: spec.url.trim().to_owned(),
        events: spec.events,
        status: spec.status,
        secret: Some(format!("whsec_{}", hex::encode(key))),
        date_created: hub.now(),
    };
    hub.commit(vec![Fact::WebhookPut(Json(webhook.clone()))], 0).await?;
    Ok(webhook)
}

/// Deletes a webhook; its pending deliveries are dropped with it.
pub(super) async fn delete_webhook(hub: &Hub, id: &str) -> Result<Webhook, Error> {
    let webhook = hub.state().webhook(id).ok_or_else(|| Error::not_found("webhook", id))?;
    hub.commit(vec![Fact::WebhookDeleted { webhook_id: id.to_owned() }], 0).await?;
    Ok(Webhook { secret: None, ..webhook })
}
