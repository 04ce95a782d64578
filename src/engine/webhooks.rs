//! Webhook registration and the delivery log (delivery itself is the
//! dispatcher actor's).

use rand::RngCore;

use crate::actors::hub::Hub;
use crate::actors::webhook_dispatcher::address;
use crate::error::{Error, ValidationError};
use crate::journal::facts::{Fact, Json};
use crate::model::ids::{new_id, IdKind};
use crate::model::signed_action::SignedAction;
use crate::model::webhook::{Webhook, WebhookSpec, WebhookStatus, WebhookUpdate, EVENT_KINDS};

/// Longest accepted webhook URL.
const MAX_URL_LEN: usize = 2048;
/// Longest accepted description, in characters (like a decision's reason).
const MAX_DESCRIPTION_CHARS: usize = 4096;

/// Validates a webhook body; answers the URL's host and port.
fn validate_webhook(spec: &WebhookSpec) -> Result<(String, u16), ValidationError> {
    let url = spec.url.trim();
    let shown: String = url.chars().take(64).collect();
    if url.len() > MAX_URL_LEN {
        return Err(ValidationError::new("url", format!("must be at most {MAX_URL_LEN} bytes")));
    }
    let uri: Result<actix_web::http::Uri, _> = url.parse();
    let parsed = match &uri {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) => u.host().map(|host| (u, host)),
        _ => None,
    };
    let Some((uri, host)) = parsed else {
        return Err(ValidationError::new("url", format!("`{shown}` is not an absolute http(s) URL")));
    };
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(ValidationError::new("url", "must not carry user info (`user:password@`)"));
    }
    // A port that is written must be one (1 to 65535): `Uri::port` reads
    // none from `:99999`, and the scheme's default was then the one checked.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let after_host = match authority.strip_prefix('[') {
        Some(rest) => rest.find(']').map_or("", |end| &rest[end + 1..]),
        None => authority.rfind(':').map_or("", |at| &authority[at..]),
    };
    let port = match after_host.strip_prefix(':').filter(|text| !text.is_empty()) {
        None if uri.scheme_str() == Some("https") => 443,
        None => 80,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(ValidationError::new("url", format!("`{shown}`: the port must be 1 to 65535"))),
        },
    };
    if spec.events.is_empty() {
        return Err(ValidationError::new("events", "must list at least one event kind, or `*`"));
    }
    for (i, kind) in spec.events.iter().enumerate() {
        if kind != "*" && !EVENT_KINDS.contains(&kind.as_str()) {
            let shown: String = kind.chars().take(64).collect();
            return Err(ValidationError::new(
                format!("events[{i}]"),
                format!("`{shown}` is not an event kind (one of {}, or `*`)", EVENT_KINDS.join(", ")),
            ));
        }
    }
    if spec.description.as_ref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS) {
        return Err(ValidationError::new("description", format!("must be at most {MAX_DESCRIPTION_CHARS} characters")));
    }
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port))
}

/// Refuses a receiver at a loopback, link-local, private or unspecified
/// address (unless the engine allows them): the host as written, or what it
/// resolves to now. Deliveries check again.
async fn check_address(host: &str, port: u16) -> Result<(), ValidationError> {
    let addresses = match address::literal(host) {
        Some(ip) => vec![ip],
        None => address::resolve(host, port).await,
    };
    match address::refusal(host, &addresses) {
        Some(why) => Err(ValidationError::new("url", format!("{why}; webhooks must reach public addresses"))),
        None => Ok(()),
    }
}

/// Registers a webhook; the answer is the only place its secret is shown.
pub(super) async fn create_webhook(
    hub: &Hub,
    spec: WebhookSpec,
    user_action: Option<SignedAction>,
) -> Result<Webhook, Error> {
    let (host, port) = validate_webhook(&spec)?;
    if !hub.webhook_allow_private() {
        check_address(&host, port).await?;
    }
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    let now = hub.now();
    let webhook = Webhook {
        id: new_id(IdKind::Webhook),
        url: spec.url.trim().to_owned(),
        events: spec.events,
        status: spec.status,
        secret: Some(format!("whsec_{}", hex::encode(key))),
        description: spec.description,
        date_created: now,
        date_updated: Some(now),
        disabled_reason: None,
    };
    hub.commit(signed(user_action, Fact::WebhookPut(Json(webhook.clone()))), 0).await?;
    Ok(webhook)
}

/// Changes a webhook's url, events, status or description (the fields
/// given); its secret and delivery log stay.
pub(super) async fn update_webhook(
    hub: &Hub,
    id: &str,
    update: WebhookUpdate,
    user_action: Option<SignedAction>,
) -> Result<Webhook, Error> {
    let current = hub.state().webhook(id).ok_or_else(|| Error::not_found("webhook", id))?;
    let spec = WebhookSpec {
        url: update.url.unwrap_or_else(|| current.url.clone()),
        events: update.events.unwrap_or_else(|| current.events.clone()),
        status: update.status.unwrap_or(current.status),
        description: update.description.or_else(|| current.description.clone()),
    };
    let (host, port) = validate_webhook(&spec)?;
    if !hub.webhook_allow_private() {
        check_address(&host, port).await?;
    }
    // Enabling a webhook again clears why it was disabled.
    let disabled_reason = if spec.status == WebhookStatus::Enabled { None } else { current.disabled_reason.clone() };
    let webhook = Webhook {
        url: spec.url.trim().to_owned(),
        events: spec.events,
        status: spec.status,
        description: spec.description,
        date_updated: Some(hub.now()),
        disabled_reason,
        ..current
    };
    hub.commit(signed(user_action, Fact::WebhookPut(Json(webhook.clone()))), 0).await?;
    Ok(Webhook { secret: None, ..webhook })
}

/// Deletes a webhook; its pending deliveries are dropped with it.
pub(super) async fn delete_webhook(hub: &Hub, id: &str, user_action: Option<SignedAction>) -> Result<Webhook, Error> {
    let webhook = hub.state().webhook(id).ok_or_else(|| Error::not_found("webhook", id))?;
    hub.commit(signed(user_action, Fact::WebhookDeleted { webhook_id: id.to_owned() }), 0).await?;
    Ok(Webhook { secret: None, ..webhook })
}

/// The facts of one change: the signed user action that authorized it (if
/// any), then the change, to be committed together.
fn signed(user_action: Option<SignedAction>, change: Fact) -> Vec<Fact> {
    user_action.map(|signed| Fact::UserActionSigned(Json(signed))).into_iter().chain([change]).collect()
}
