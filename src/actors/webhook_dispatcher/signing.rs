//! The bytes a receiver gets and how they are signed.
//!
//! Body: `{"id": "ev-...", "kind": "...", "date": "...", "data": ...,
//! "timestampSent": 1764000000, "deliveryAttempt": 1}` with `data` copied
//! verbatim from the journaled event; only the last two fields change from
//! one try to the next (Dfns receivers check `timestampSent` against replays).
//! Signature: `sha256=` and the lower-case hex HMAC-SHA256 of the raw body,
//! keyed with the UTF-8 bytes of the webhook's secret, in both
//! `X-Warden-Signature` and Dfns' `X-DFNS-WEBHOOK-SIGNATURE`.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::model::webhook::WebhookEvent;

/// Header naming the event (stable across retries: receivers dedupe on it).
pub const EVENT_ID_HEADER: &str = "X-Warden-Event-Id";
/// Header with the time of this try, in unix seconds.
pub const TIMESTAMP_HEADER: &str = "X-Warden-Timestamp";
/// Header with `sha256=<hex HMAC-SHA256(secret, raw body)>`.
pub const SIGNATURE_HEADER: &str = "X-Warden-Signature";
/// The same signature under the name Dfns receivers read.
pub const DFNS_SIGNATURE_HEADER: &str = "X-DFNS-WEBHOOK-SIGNATURE";

/// The request body of try number `attempt` (1 for the first) of `event`,
/// sent at `sent_at`.
pub(crate) fn body(event: &WebhookEvent, sent_at: DateTime<Utc>, attempt: u32) -> String {
    let data = if event.data.trim().is_empty() { "null" } else { event.data.as_str() };
    format!(
        r#"{{"id":{},"kind":{},"date":{},"data":{},"timestampSent":{},"deliveryAttempt":{attempt}}}"#,
        json(&event.id),
        json(&event.kind),
        json(&event.date),
        data,
        sent_at.timestamp()
    )
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
            last_sent: None,
        }
    }

    #[test]
    fn body_keeps_data_verbatim() {
        let sent = chrono::Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 5).unwrap();
        let body = body(&event(r#"{"b":1,"a":"x"}"#), sent, 2);
        assert_eq!(
            body,
            r#"{"id":"ev-1","kind":"policy.triggered","date":"2026-11-22T10:00:00Z","data":{"b":1,"a":"x"},"timestampSent":1795341605,"deliveryAttempt":2}"#
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
