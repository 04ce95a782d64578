//! RFC 9457 problem documents: every error answer of the server is one, and
//! this is the one place where engine errors become status codes.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::error::Error;

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document, and the error type of every route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong, naming the offending field.
    pub detail: String,
    /// The same text as `detail`: Dfns clients (the `@dfns/sdk` `DfnsError`) read `message`.
    pub message: String,
}

impl Problem {
    /// A problem with `status`; its type and title follow from the status.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        let detail = clip(&clip_quotes(&detail.into()), MAX_DETAIL_CHARS).into_owned();
        let slug = match status.as_u16() {
            400 => "invalid-request",
            401 => "unauthenticated",
            403 => "forbidden",
            404 => "not-found",
            405 => "method-not-allowed",
            408 => "request-timeout",
            409 => "conflict",
            413 => "body-too-large",
            415 => "unsupported-media-type",
            429 => "too-many-requests",
            503 => "unavailable",
            s if s >= 500 => "internal",
            _ => "client-error",
        };
        Problem {
            // A URN: it names the kind of problem without pointing at a
            // page that the deployment may not serve.
            kind: format!("urn:warden:problem:{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            message: detail.clone(),
            detail,
        }
    }

    /// `400`: malformed input; `detail` names the field.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, detail)
    }

    /// `401`: missing or unknown bearer token.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// `403`: authenticated but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, detail)
    }

    /// `404`: unknown route or id.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, detail)
    }

    /// `408`: the body did not arrive in time (its connection is closed).
    pub fn request_timeout(waited: std::time::Duration) -> Self {
        Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("body not complete within {} s (body_timeout_seconds)", waited.as_secs()),
        )
    }

    /// `413`: body over the limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Problem::new(StatusCode::PAYLOAD_TOO_LARGE, format!("body exceeds the limit of {limit} bytes"))
    }

    /// `415`: a body that is not JSON.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, detail)
    }

    /// `503`: not ready, or stopping.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, detail)
    }
}

/// Longest piece of a caller's input a problem document quotes.
pub const MAX_QUOTED_CHARS: usize = 64;

/// Longest `detail`: a bound on the whole answer, for the input a quote
/// cannot catch (a caller's own backtick closes a quote early, so what
/// follows it is no longer quoted). The longest of the engine's own messages
/// (a path, a quote and the list of allowed names) is well under it.
pub const MAX_DETAIL_CHARS: usize = 1024;

/// `detail` with every quoted piece (between backticks or double quotes) cut
/// to [`MAX_QUOTED_CHARS`], the ellipsis that marks the cut included: an
/// answer never echoes a caller's input whole (a 30 KB token must not make a
/// 30 KB answer).
fn clip_quotes(detail: &str) -> String {
    let mut out = String::with_capacity(detail.len().min(1024));
    let mut rest = detail;
    while let Some(open_at) = rest.find(['`', '"']) {
        let open = rest[open_at..].chars().next().unwrap_or('`');
        out.push_str(&rest[..=open_at]);
        let inside = &rest[open_at + 1..];
        let (quoted, after) = match inside.find(open) {
            Some(close) => (&inside[..close], &inside[close..]),
            None => (inside, ""),
        };
        out.push_str(&clip(quoted, MAX_QUOTED_CHARS));
        // The closing quote, if any, opens nothing: it is written here.
        let mut after_chars = after.chars();
        if let Some(close) = after_chars.next() {
            out.push(close);
        }
        rest = after_chars.as_str();
    }
    out.push_str(rest);
    out
}

/// `text` if it has at most `max` characters; else its first `max - 1` and
/// an ellipsis, `max` in all.
pub(crate) fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => text.into(),
        Some(_) => {
            let cut = text.char_indices().nth(max.saturating_sub(1)).map_or(text.len(), |(at, _)| at);
            format!("{}…", &text[..cut]).into()
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.title, self.detail)
    }
}

/// The one mapping of engine errors to status codes.
impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        // Exhaustive: a new variant must be given its status here.
        let status = match &error {
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Journal(_) | Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        if status.is_server_error() {
            tracing::error!(error = %error, "engine error");
        }
        Problem::new(status, error.to_string())
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        let mut response = HttpResponse::build(self.status_code());
        response.content_type(PROBLEM_JSON);
        if self.status == StatusCode::UNAUTHORIZED.as_u16() {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        // An unauthenticated request's connection, or one whose body did not
        // arrive in time, is closed after the answer: its unread body must
        // not keep it open.
        if self.status == StatusCode::UNAUTHORIZED.as_u16() || self.status == StatusCode::REQUEST_TIMEOUT.as_u16() {
            response.force_close();
        }
        // Serializing four plain fields cannot fail; the fallback keeps the type anyway.
        response.body(serde_json::to_string(self).unwrap_or_else(|_| String::from("{}")))
    }
}

/// Error-handler middleware hook: an error answer that actix produced on its
/// own (no route, wrong method, bad path) becomes a problem document, keeping
/// its status and headers (`Allow` on 405).
pub fn rewrite_bare_error<B: MessageBody>(response: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return Ok(ErrorHandlerResponse::Response(response.map_into_left_body()));
    }
    let status = response.status();
    let (request, original) = response.into_parts();
    let detail = match status {
        StatusCode::NOT_FOUND => format!("no route for `{}`", request.path()),
        StatusCode::METHOD_NOT_ALLOWED => {
            format!("method `{}` is not allowed on `{}`", request.method(), request.path())
        }
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let mut rewritten = Problem::new(status, detail).error_response();
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(request, rewritten).map_into_right_body()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ValidationError;

    #[test]
    fn quoted_input_is_cut_to_64_characters() {
        let long = "a".repeat(30_000);
        let clipped = clip_quotes(&format!("token `{long}` is unknown; \"{long}\" too"));
        assert!(clipped.len() < 200, "{}", clipped.len());
        assert!(clipped.starts_with(&format!("token `{}…`", "a".repeat(63))), "{clipped}");
        assert!(clipped.ends_with(&format!("\"{}…\" too", "a".repeat(63))), "{clipped}");
        assert_eq!(clip_quotes("`short` stays"), "`short` stays");
        // Exactly 64 characters stay whole; an unclosed quote is cut too.
        let exact = "é".repeat(64);
        assert_eq!(clip_quotes(&format!("`{exact}` and \"{long}")), format!("`{exact}` and \"{}…", "a".repeat(63)));
        // A caller's backtick closes the quote early: the whole is bounded.
        let tricked = Problem::bad_request(format!("unknown variant `x`{long}`, expected `y`"));
        assert_eq!(tricked.detail.chars().count(), MAX_DETAIL_CHARS, "{}", tricked.detail.len());
    }

    #[test]
    fn each_engine_error_has_one_status() {
        let cases: Vec<(Error, u16)> = vec![
            (ValidationError::new("limit", "must be positive").into(), 400),
            (Error::NotFound { kind: "policy", id: "pl-x".into() }, 404),
            (Error::from(crate::error::Forbidden::NotEligible { approval_id: "ap-1".into(), who: "us-x".into() }), 403),
            (Error::from(crate::error::Conflict::Expired { approval_id: "ap-1".into() }), 409),
            (Error::from(crate::error::Unavailable::ShuttingDown), 503),
        ];
        for (error, status) in cases {
            assert_eq!(Problem::from(error).status, status);
        }
    }

    #[test]
    fn invalid_input_names_the_field() {
        let problem = Problem::from(Error::from(ValidationError::new("rule.configuration.limit", "must be positive")));
        assert_eq!(problem.detail, "rule.configuration.limit must be positive");
        assert_eq!(problem.title, "Bad Request");
        assert_eq!(problem.message, problem.detail, "Dfns clients read `message`");
    }
}
