//! Per-request observation: a request id (taken from `X-Request-Id` when it
//! is sane, else drawn), a tracing span carrying it, one log line per
//! request, and the HTTP metrics labelled by route *pattern*.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use rand::Rng;
use tracing::Instrument;

use super::metrics::{HTTP_DURATION, HTTP_REQUESTS};

/// The request id header, read and echoed.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest accepted caller-supplied request id.
const MAX_REQUEST_ID_LEN: usize = 64;

/// The route label of requests that matched no route: one label value, not
/// the raw path, so that scanners cannot grow the metric without bound.
const UNMATCHED: &str = "unmatched";

/// The middleware (use with `actix_web::middleware::from_fn`).
pub async fn observe(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| is_sane(id))
        .map_or_else(new_request_id, str::to_owned);
    let span =
        tracing::info_span!("request", request_id = %request_id, method = %request.method(), path = %request.path());
    let mut response = next.call(request).instrument(span.clone()).await?;

    let route = response.request().match_pattern().unwrap_or_else(|| UNMATCHED.to_owned());
    let status = response.status();
    let elapsed = started.elapsed();
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "status" => status.as_str().to_owned()).increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route.clone()).record(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(route = %route, status = status.as_u16(), micros = elapsed.as_micros() as u64, "served");
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}

fn is_sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn new_request_id() -> String {
    format!("rq-{:016x}", rand::thread_rng().gen::<u64>())
}
