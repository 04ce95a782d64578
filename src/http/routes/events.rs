//! `GET /v2/events`: the engine's events as Server-Sent Events, as they
//! become durable.
//!
//! Each client reads its own receiver of the engine's broadcast channel
//! (bounded): a client that falls behind loses the events it did not read
//! (it is told how many, in a comment), and never slows the engine, which
//! only ever writes into the channel. A `: keep-alive` comment every
//! [`KEEP_ALIVE`] keeps proxies from closing an idle stream.

use std::time::Duration;

use actix_web::web::{Bytes, Data};
use actix_web::HttpResponse;
use futures_util::stream;
use tokio::sync::broadcast::error::RecvError;

use crate::engine::Engine;
use crate::http::auth::Caller;
use crate::model::event::EngineEvent;

/// How often an idle stream carries a comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The stream of engine events.
#[utoipa::path(
    get, path = "/v2/events", operation_id = "streamEvents", tag = "operations",
    responses((status = 200, description = "Server-Sent Events: `event: <kind>` and `data: <the webhook body's JSON>` \
        per event (`policy.triggered`, `policy.approval.pending`, `policy.approval.resolved`, `activity.evaluated`); \
        `: keep-alive` every 15 s", content_type = "text/event-stream", body = String))
)]
pub async fn stream(engine: Data<Engine>, _caller: Caller) -> HttpResponse {
    let events = engine.subscribe();
    let mut keep_alive = actix_rt::time::interval(KEEP_ALIVE);
    keep_alive.reset();
    let frames = stream::unfold((events, keep_alive), |(mut events, mut keep_alive)| async move {
        let frame = tokio::select! {
            received = events.recv() => match received {
                Ok(event) => frame(&event),
                Err(RecvError::Lagged(lost)) => format!(": {lost} events lost (the client fell behind)\n\n"),
                Err(RecvError::Closed) => return None,
            },
            _ = keep_alive.tick() => ": keep-alive\n\n".to_owned(),
        };
        Some((Ok::<_, actix_web::Error>(Bytes::from(frame)), (events, keep_alive)))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(frames)
}

/// One event as an SSE frame; its data is the body a webhook receives.
fn frame(event: &EngineEvent) -> String {
    let data = serde_json::json!({"id": event.id, "kind": event.kind, "date": event.date, "data": event.data});
    format!("event: {}\ndata: {data}\n\n", event.kind)
}
