//! One try of one event: POST it, then journal what came of it.

use std::sync::Weak;

use awc::http::header::{CONTENT_TYPE, USER_AGENT};
use chrono::{DateTime, Utc};

use crate::journal::facts::Fact;
use crate::model::webhook::{DeliveryStatus, WebhookEvent};

use super::backoff::{self, AfterFailure};
use super::signing::{self, DFNS_SIGNATURE_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::{DeliveryLog, CONNECT_TIMEOUT, REQUEST_TIMEOUT};

/// Value of the `User-Agent` header.
const AGENT: &str = concat!("warden-webhooks/", env!("CARGO_PKG_VERSION"));

/// Where an event goes, or why it goes nowhere.
pub(super) type Target = Result<Endpoint, &'static str>;

/// A webhook's address and key.
pub(super) struct Endpoint {
    pub(super) url: String,
    pub(super) secret: String,
    /// Whether private addresses may be reached.
    pub(super) allow_private: bool,
}

impl Endpoint {
    /// Why an IP literal host may not be reached (names are checked by the
    /// client's resolver, which the connector skips for literals).
    fn refused(&self) -> Option<String> {
        if self.allow_private {
            return None;
        }
        let uri: awc::http::Uri = self.url.parse().ok()?;
        let host = uri.host()?;
        super::address::refusal(host, &[super::address::literal(host)?])
    }
}

/// The HTTP client of the dispatcher: it connects only to the addresses its
/// guarded resolver allows (see [`super::address`]); no redirects (a 3xx is a failure: the
/// signed body goes only to the registered URL), bounded connect and answer
/// times, at most as many connections as deliveries in flight.
pub(super) fn client(max_connections: usize, allow_private: bool) -> awc::Client {
    let resolver = actix_tls::connect::Resolver::custom(super::address::GuardedResolver { allow_private });
    let connector = awc::Connector::new()
        .connector(actix_tls::connect::Connector::new(resolver).service())
        .timeout(CONNECT_TIMEOUT)
        .limit(max_connections);
    awc::Client::builder()
        .connector(connector)
        .timeout(REQUEST_TIMEOUT)
        .disable_redirects()
        .add_default_header((USER_AGENT, AGENT))
        .finish()
}

/// What came of one try.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tried {
    /// When the event is due again; `None` once settled (or the engine is gone).
    pub(super) next: Option<DateTime<Utc>>,
    /// Whether the receiver answered 2xx.
    pub(super) reached: bool,
}

/// Tries `event` once and journals the outcome. When the event is the probe
/// of a failing webhook and it has failed for [`backoff::RETRY_HORIZON`], the
/// webhook is disabled and all its undelivered events fail, in one record.
pub(super) async fn attempt(
    client: awc::Client,
    log: Weak<dyn DeliveryLog>,
    event: WebhookEvent,
    target: Target,
    probe: bool,
) -> Tried {
    let Some(tried) = try_and_record(client, log, event, target, probe).await else { return Tried::default() };
    tried
}

async fn try_and_record(
    client: awc::Client,
    log: Weak<dyn DeliveryLog>,
    event: WebhookEvent,
    target: Target,
    probe: bool,
) -> Option<Tried> {
    let (status, attempts, last_error, next_attempt, sent_at) = match target {
        // Not a try: `attempts` stays, the event is dropped.
        Err(why) => (DeliveryStatus::Failed, event.attempts, Some(why.to_owned()), None, None),
        Ok(endpoint) => {
            let sent_at = log.upgrade()?.now();
            let attempts = event.attempts.saturating_add(1);
            let answer = post(&client, &endpoint, &event, sent_at, attempts).await;
            let now = log.upgrade()?.now();
            let (status, last_error, next_attempt) = match answer.map(|_| ()).map_err(|(_, error)| error) {
                Ok(()) => (DeliveryStatus::Delivered, event.last_error.clone(), None),
                Err(error) => match backoff::after_failure(event.date, attempts, now) {
                    AfterFailure::RetryAt(at) => (DeliveryStatus::Pending, Some(error), Some(at)),
                    AfterFailure::GiveUp => (DeliveryStatus::Failed, Some(error), None),
                },
            };
            (status, attempts, last_error, next_attempt, Some(sent_at))
        }
    };
    let log = log.upgrade()?;
    let gave_up_probing = probe && status == DeliveryStatus::Failed;
    let (event_id, recorded_error) = (event.id.clone(), last_error.clone());
    let outcome = match sent_at {
        Some(sent_at) => {
            Fact::DeliveryTried { event_id, status, attempts, last_error: recorded_error, next_attempt, sent_at }
        }
        None => Fact::DeliveryRecorded { event_id, status, attempts, last_error: recorded_error, next_attempt },
    };
    let mut facts = vec![outcome];
    if gave_up_probing {
        let reason =
            format!("every delivery failed for 24 hours; last error: {}", last_error.as_deref().unwrap_or("unknown"));
        metrics::counter!("warden_webhook_events_dropped_total", "reason" => "disabled").increment(1);
        tracing::warn!(webhook = %event.webhook_id, %reason, "webhook disabled");
        facts.push(Fact::WebhookDisabled { webhook_id: event.webhook_id.clone(), reason, date: log.now() });
    }
    // INVARIANT (journal first): the delivery log in memory shows only what is
    // journaled. If this commit is lost, the event is still Pending after a
    // restart and is sent again (at least once; receivers dedupe on its id).
    let now = log.now();
    if let Err(error) = log.record(facts).await {
        tracing::warn!(event = %event.id, %error, "delivery outcome not journaled; the event will be tried again");
        let delay = backoff::retry_delay(attempts.max(1));
        let next = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        return Some(Tried { next: Some(next), reached: false });
    }
    // The outcome of the attempt is the event's status after it: `Pending`
    // when it will be tried again.
    metrics::counter!("warden_webhook_deliveries_total", "outcome" => status.as_str()).increment(1);
    match status {
        DeliveryStatus::Failed => tracing::warn!(event = %event.id, attempts, "webhook delivery failed for good"),
        _ => tracing::debug!(event = %event.id, attempts, ?status, "webhook delivery tried"),
    }
    Some(Tried { next: next_attempt, reached: status == DeliveryStatus::Delivered })
}

/// Sends one `webhook.ping` event to `url` now, signed with `secret`, and
/// answers the receiver's HTTP status (if it answered) and the failure (if
/// any). A ping checks the endpoint; it is not an event of the engine: it is
/// neither journaled nor retried.
pub(crate) async fn ping(
    url: &str,
    secret: &str,
    allow_private: bool,
    event: &WebhookEvent,
    now: DateTime<Utc>,
) -> (Option<u16>, Option<String>) {
    let endpoint = Endpoint { url: url.to_owned(), secret: secret.to_owned(), allow_private };
    match post(&client(1, allow_private), &endpoint, event, now, 1).await {
        Ok(status) => (Some(status), None),
        Err((status, error)) => (status, Some(error)),
    }
}

/// POSTs try number `attempt` of the signed event; the status on any 2xx,
/// else the status (if the receiver answered) and what went wrong.
async fn post(
    client: &awc::Client,
    endpoint: &Endpoint,
    event: &WebhookEvent,
    now: DateTime<Utc>,
    attempt: u32,
) -> Result<u16, (Option<u16>, String)> {
    if let Some(why) = endpoint.refused() {
        return Err((None, why));
    }
    let body = signing::body(event, now, attempt);
    let signature = signing::signature(&endpoint.secret, body.as_bytes());
    let answer = client
        .post(endpoint.url.as_str())
        .insert_header((CONTENT_TYPE, "application/json"))
        .insert_header((EVENT_ID_HEADER, event.id.as_str()))
        .insert_header((TIMESTAMP_HEADER, now.timestamp().to_string()))
        .insert_header((SIGNATURE_HEADER, signature.clone()))
        .insert_header((DFNS_SIGNATURE_HEADER, signature))
        .send_body(body)
        .await;
    match answer {
        Ok(response) if response.status().is_success() => Ok(response.status().as_u16()),
        Ok(response) => {
            Err((Some(response.status().as_u16()), format!("receiver answered HTTP {}", response.status())))
        }
        Err(error) => Err((None, error.to_string())),
    }
}
