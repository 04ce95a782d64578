//! The bytes a receiver gets and how they are signed.
//!
//! Body: `{"id": "ev-...", "kind": "...", "date": "...", "data": ...}` with
//! `data` copied verbatim from the journaled event, so every retry of an event
//! sends the same bytes. Signature: `sha256=` and the lower-case hex
//! HMAC-SHA256 of the raw body, keyed with the UTF-8 bytes of the webhook's
//! secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::model::webhook::WebhookEvent;

/// Header naming the event (stable across retries: receivers dedupe on it).
pub const EVENT_ID_HEADER: &str = "X-Warden-Event-Id";
/// Header with the time of this try, in unix seconds.
pub const TIMESTAMP_HEADER: &str = "X-Warden-Timestamp";
/// Header with `sha256=<hex HMAC-SHA256(secret, raw body)>`.
pub const SIGNATURE_HEADER: &str = "X-Warden-Signature";

/// The request body of `event`.
pub(crate) fn body(event: &WebhookEvent) -> String {
    let data = if event.data.trim().is_empty() { "null" } else { event.data.as_str() };
    format!(r#"{{"id":{},"kind":{},"date":{},"data":{}}}"#, json(&event.id), json(&event.kind), json(&event.date), data)
}

/// `sha256=<lower-case hex HMAC-SHA256(secret, body)>`.
pub(crate) fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A string or a date as JSON text; these always serialize.
fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::model::webhook::DeliveryStatus;

    fn event(data: &str) -> WebhookEvent {
        WebhookEvent {
            id: "ev-1".into(),
            webhook_id: "wh-1".into(),
            kind: "policy.triggered".into(),
            date: chrono::Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_error: None,
            data: data.into(),
            next_attempt: None,
        }
    }

    #[test]
    fn body_keeps_data_verbatim() {
        let body = body(&event(r#"{"b":1,"a":"x"}"#));
        assert_eq!(
            body,
            r#"{"id":"ev-1","kind":"policy.triggered","date":"2026-11-22T10:00:00Z","data":{"b":1,"a":"x"}}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["data"]["a"], "x");
    }

    #[test]
    fn signature_is_the_rfc_4231_hmac() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
