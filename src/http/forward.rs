//! A change sent to a standby is forwarded to the leader and answered with
//! the leader's answer; reads are served by the node itself.
//!
//! The request goes on as it came (method, path and query, body, and the
//! headers that carry its meaning: the token, the user action, the content
//! type), marked with [`FORWARDED`] so that it is never
//! forwarded twice: a node that gets a forwarded change while not leading
//! (leadership moved meanwhile) answers 503, and the client retries. With no
//! leader known (a takeover under way) a standby answers 503 with
//! `Retry-After`. A change the leader accepted but could not commit, because
//! it lost its lease, is answered 503 by the engine itself, never forwarded.

use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::{HttpResponse, ResponseError};

use super::body::{read_limited, BodyLimit, BodyTimeout, DEFAULT_BODY_TIMEOUT};
use super::problem::Problem;
use crate::config::DEFAULT_BODY_LIMIT;
use crate::engine::Engine;

/// The header a forwarded change carries.
pub const FORWARDED: HeaderName = HeaderName::from_static("x-warden-forwarded");

/// How long the leader may take to answer a forwarded change.
const LEADER_TIMEOUT: Duration = Duration::from_secs(30);

thread_local! {
    /// One client per worker thread (an `awc` client is not `Send`), so its
    /// pool keeps connections to the leader open across forwarded changes
    /// instead of opening one per change.
    static LEADER_CLIENT: awc::Client =
        awc::Client::builder().timeout(LEADER_TIMEOUT).disable_redirects().finish();
}

/// Request headers sent on to the leader (the others are about the hop).
const KEPT: [&str; 4] = ["authorization", "content-type", "accept", "x-dfns-useraction"];

/// Response headers sent back from the leader.
const RETURNED: [&str; 4] = ["content-type", "location", "retry-after", "allow"];

/// The middleware: changes on a standby go to the leader.
pub async fn to_leader(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let engine = request.app_data::<Data<Engine>>().cloned();
    let is_change = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let standby = engine.as_ref().is_some_and(|e| e.is_ready() && !e.is_leader());
    if !is_change || !standby {
        return next.call(request).await.map(ServiceResponse::map_into_boxed_body);
    }
    let engine = engine.expect("checked above");
    if request.headers().contains_key(FORWARDED) {
        return Ok(request.into_response(not_leader("this node is not the leader either; retry")));
    }
    let Some(leader) = engine.leader_url() else {
        return Ok(request.into_response(not_leader("no node leads right now (a takeover is under way); retry")));
    };
    let limit = request.app_data::<BodyLimit>().map_or(DEFAULT_BODY_LIMIT, |l| l.0);
    let timeout = request.app_data::<BodyTimeout>().map_or(DEFAULT_BODY_TIMEOUT, |t| t.0);
    let (http_request, mut payload) = request.into_parts();
    if let Err(problem) = super::body::check_declared_length(&http_request, limit) {
        return Ok(ServiceResponse::new(http_request, problem.error_response()));
    }
    let body = match actix_rt::time::timeout(timeout, read_limited(&mut payload, limit)).await {
        Ok(Ok(body)) => body,
        Ok(Err(problem)) => return Ok(ServiceResponse::new(http_request, problem.error_response())),
        Err(_) => return Ok(ServiceResponse::new(http_request, Problem::request_timeout(timeout).error_response())),
    };
    let target = format!("{leader}{}", http_request.uri().path_and_query().map_or("/", |p| p.as_str()));
    let response = send(&http_request, &target, body).await;
    Ok(ServiceResponse::new(http_request, response))
}

/// Sends the change to the leader; its answer, or 503 if it gave none.
async fn send(request: &actix_web::HttpRequest, target: &str, body: actix_web::web::Bytes) -> HttpResponse {
    let client = LEADER_CLIENT.with(awc::Client::clone);
    let mut forwarded = client.request(request.method().clone(), target).insert_header((FORWARDED, "1"));
    for name in KEPT {
        for value in request.headers().get_all(name) {
            forwarded = forwarded.append_header((name, value.clone()));
        }
    }
    let mut answer = match forwarded.send_body(body).await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(%error, "the leader did not answer a forwarded change");
            return not_leader("the leader could not be reached; retry");
        }
    };
    let content = match answer.body().limit(super::MAX_FORWARDED_ANSWER).await {
        Ok(content) => content,
        Err(error) => {
            tracing::warn!(%error, "the leader's answer to a forwarded change could not be read");
            return not_leader("the leader's answer was lost; retry");
        }
    };
    let mut response = HttpResponse::build(answer.status());
    for name in RETURNED {
        if let Some(value) = answer.headers().get(name) {
            response.insert_header((name, value.clone()));
        }
    }
    response.body(content)
}

fn not_leader(detail: &str) -> HttpResponse {
    let mut response = Problem::unavailable(detail).error_response();
    response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}
