//! A request answered before its body was read has its connection closed
//! right after the answer, whatever the body's framing.
//!
//! actix-http decides what to do with an unread request body when it sends
//! the response (`should_close_for_unread_payload` in its h1 dispatcher):
//! while the request's body is still held by someone, the response goes out
//! with `Connection: close` and the connection is closed (after lingering at
//! most `client_disconnect_timeout`); once the body has been dropped, a
//! chunked one is *drained* instead, to keep the connection alive, for as long
//! as the client keeps it unfinished -- for ever for a body that never ends.
//! The extractors drop the body when they refuse a request (401 without a
//! token, 408 after `body_timeout_seconds`), so an unauthenticated chunked
//! body that never ended held its socket and file descriptor indefinitely.
//!
//! [`hold_body`] keeps the request's body alive until its response has been
//! written: the handlers read it through a shared handle, and the response
//! body carries the other handle, so the dispatcher always sees a body that
//! was not read in full as unread, and closes.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::HttpMessage;
use futures_util::Stream;

/// The middleware (use with `actix_web::middleware::from_fn`, outermost).
pub async fn hold_body(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<HeldBody>, actix_web::Error> {
    let payload = request.take_payload();
    let held = if matches!(payload, Payload::None) {
        None
    } else {
        let shared = Rc::new(RefCell::new(payload));
        request.set_payload(Payload::Stream { payload: Box::pin(SharedPayload(shared.clone())) });
        Some(shared)
    };
    let response = next.call(request).await?;
    Ok(response.map_body(|_, body| HeldBody { body: body.boxed(), _request_body: held }))
}

/// The handlers' handle on the request body.
struct SharedPayload(Rc<RefCell<Payload>>);

impl Stream for SharedPayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Only the handler's task polls the body: the borrow never overlaps.
        Pin::new(&mut *self.0.borrow_mut()).poll_next(cx)
    }
}

/// A response body that keeps its request's body alive until the dispatcher
/// is done with it (see the module documentation).
pub struct HeldBody {
    body: BoxBody,
    _request_body: Option<Rc<RefCell<Payload>>>,
}

impl MessageBody for HeldBody {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}
