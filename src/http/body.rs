//! JSON request bodies: 415 for a body that is not JSON, 413 over the limit,
//! 400 naming the JSON path of whatever does not fit the expected type.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{dev::Payload, FromRequest, HttpMessage, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::problem::{clip, Problem, MAX_QUOTED_CHARS};
use super::strict_json;
use crate::config::DEFAULT_BODY_LIMIT;

/// The body size limit in force (app data; the default applies without it).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// How long a body may take to arrive once its headers did (app data;
/// [`DEFAULT_BODY_TIMEOUT`] without it). A body not complete by then is 408
/// and its connection is closed: a client that never finishes a body cannot
/// hold a connection (and a file descriptor) for ever.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub std::time::Duration);

/// `body_timeout_seconds` by default: 10 s, far more than any honest client
/// needs for a body of at most a megabyte.
pub const DEFAULT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A JSON body deserialized into `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = request.app_data::<BodyLimit>().map_or(DEFAULT_BODY_LIMIT, |l| l.0);
        let timeout = request.app_data::<BodyTimeout>().map_or(DEFAULT_BODY_TIMEOUT, |t| t.0);
        let checked = check_content_type(request).and_then(|()| check_declared_length(request, limit));
        let mut payload = payload.take();
        Box::pin(async move {
            checked?;
            let bytes = actix_rt::time::timeout(timeout, read_limited(&mut payload, limit))
                .await
                .map_err(|_| Problem::request_timeout(timeout))??;
            parse(&bytes).map(JsonBody)
        })
    }
}

/// A route that reads no body still answers a body it would refuse as the
/// others do: 413 over the limit (as announced), 415 when not JSON. The body
/// itself is never read.
#[derive(Debug)]
pub struct UnreadBody;

impl FromRequest for UnreadBody {
    type Error = Problem;
    type Future = std::future::Ready<Result<Self, Problem>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let limit = request.app_data::<BodyLimit>().map_or(DEFAULT_BODY_LIMIT, |l| l.0);
        let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
        let has_body = request.headers().contains_key(header::TRANSFER_ENCODING) || declared.is_some_and(|v| v != "0");
        let checked = if has_body {
            check_content_type(request).and_then(|()| check_declared_length(request, limit))
        } else {
            Ok(())
        };
        std::future::ready(checked.map(|()| UnreadBody))
    }
}

/// JSON is `application/json` or any `application/*+json`. A request without
/// a Content-Type is read as JSON, as most JSON APIs do.
fn check_content_type(request: &HttpRequest) -> Result<(), Problem> {
    // What nearly every client sends, taken without parsing a media type.
    let content_type = request.headers().get(header::CONTENT_TYPE);
    if content_type.is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"application/json")) {
        return Ok(());
    }
    let mime =
        request.mime_type().map_err(|_| Problem::unsupported_media_type("content-type: is not a valid media type"))?;
    let Some(mime) = mime else { return Ok(()) };
    let is_json = mime.type_() == "application"
        && (mime.subtype() == "json" || mime.suffix().is_some_and(|suffix| suffix == "json"));
    if is_json {
        Ok(())
    } else {
        Err(Problem::unsupported_media_type(format!("content-type: `{mime}` is not JSON; send `application/json`")))
    }
}

/// Refuses a body announced larger than the limit before reading any of it.
pub(super) fn check_declared_length(request: &HttpRequest, limit: usize) -> Result<(), Problem> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => Err(Problem::payload_too_large(limit)),
        _ => Ok(()),
    }
}

pub(super) async fn read_limited(payload: &mut Payload, limit: usize) -> Result<Bytes, Problem> {
    // A small body usually comes in one chunk: kept as it came, not copied.
    let mut whole = Bytes::new(); // the body while it is one chunk
    let mut joined = BytesMut::new(); // the body once it is more
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| Problem::bad_request(format!("body could not be read: {e}")))?;
        if whole.len() + joined.len() + chunk.len() > limit {
            return Err(Problem::payload_too_large(limit));
        }
        if whole.is_empty() && joined.is_empty() {
            whole = chunk;
        } else {
            joined.extend_from_slice(&std::mem::take(&mut whole));
            joined.extend_from_slice(&chunk);
        }
    }
    Ok(if joined.is_empty() { whole } else { joined.freeze() })
}

/// Deserializes `bytes`, naming the JSON path of the first mismatch.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::bad_request("body: a JSON document is required"));
    }
    // Every body of the contract is an object; serde would also read a
    // struct from an array, which no client means.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => Problem::bad_request("body: must be a JSON object"),
            Err(e) => Problem::bad_request(format!("body: is not valid JSON: {e}")),
        });
    }
    // One pass over the text, read strictly (no struct from an array, no key
    // given twice: see `strict_json`). Paths are not followed on the way:
    // naming each key cost about as much as the reading, and only a refused
    // body needs them, so a refused body is read again, following them.
    // The text is checked as UTF-8 once, whole: read from bytes, serde_json
    // checks each string on its own, which cost more (an activity has ~15).
    if let Ok(text) = std::str::from_utf8(bytes) {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        if let Ok(value) = T::deserialize(strict_json::Strict(&mut deserializer)) {
            if deserializer.end().is_ok() {
                return Ok(value);
            }
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    match strict_json::deserialize(&mut deserializer) {
        Ok(value) => match deserializer.end() {
            Ok(()) => Ok(value),
            Err(e) => Err(Problem::bad_request(format!("body: is not valid JSON: {e}"))),
        },
        // A document that is not JSON is said to be so, where it breaks (see
        // `syntax_problem`), whatever the strict reading met first.
        Err(error)
            if error.inner().is_syntax()
                || error.inner().is_eof()
                || serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() =>
        {
            Err(syntax_problem::<T>(bytes))
        }
        Err(error) => Err(mismatch(&error)),
    }
}

/// The problem of a body that is not valid JSON, naming where it breaks.
fn syntax_problem<T: DeserializeOwned>(bytes: &[u8]) -> Problem {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let error = match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(_) => {
            return match deserializer.end() {
                Ok(()) => Problem::bad_request("body: is not valid JSON"),
                Err(e) => Problem::bad_request(format!("body: is not valid JSON: {e}")),
            }
        }
        Err(error) => error,
    };
    if !error.inner().is_syntax() && !error.inner().is_eof() {
        // A type mismatch before the syntax error: name the mismatch.
        return mismatch(&error);
    }
    let path = shown_path(&error);
    // `.` is the root; `?` marks a position serde could not name.
    let at = if path == "." || path.starts_with('?') { "body" } else { path.as_str() };
    Problem::bad_request(format!("{at}: is not valid JSON: {}", error.inner()))
}

/// Longest JSON path a problem names: past it, the path is cut. A path
/// holds the keys of unknown fields and maps, which are the caller's text,
/// and an answer never echoes a caller's input whole: each key is cut to
/// [`MAX_QUOTED_CHARS`] as a quoted piece is, and the path to
/// `MAX_PATH_CHARS`.
const MAX_PATH_CHARS: usize = 128;

/// The path of `error`, each key cut to [`MAX_QUOTED_CHARS`], the whole to
/// [`MAX_PATH_CHARS`].
fn shown_path(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    use serde_path_to_error::Segment;
    let mut path = String::new();
    for segment in error.path().iter() {
        match segment {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&clip(key, MAX_QUOTED_CHARS));
            }
            Segment::Unknown => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push('?');
            }
        }
    }
    if path.is_empty() {
        path.push('.');
    }
    clip(&path, MAX_PATH_CHARS).into_owned()
}

fn mismatch(error: &serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let path = shown_path(error);
    let message = error.inner().to_string();
    // serde_json appends the position; the path already says where.
    let message = message.rsplit_once(" at line ").map_or(message.as_str(), |(text, _)| text);
    if path == "." {
        Problem::bad_request(format!("body: {message}"))
    } else {
        Problem::bad_request(format!("{path}: {message}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::activity::ActivityRequest;

    #[test]
    fn type_errors_name_the_json_path() {
        let body = br#"{"kind": "Wallets:Sign", "transaction": {"type": "Transfer",
            "assets": [{"symbol": "ETH", "decimals": 18, "amount": true}]}}"#;
        let problem = parse::<ActivityRequest>(body).unwrap_err();
        assert_eq!(problem.status, 400);
        assert!(problem.detail.starts_with("transaction.assets[0].amount: invalid type"), "{}", problem.detail);
    }

    #[test]
    fn syntax_errors_say_so() {
        let problem = parse::<ActivityRequest>(b"{\"kind\": ").unwrap_err();
        assert!(problem.detail.starts_with("kind: is not valid JSON"), "{}", problem.detail);
        let body = br#"{"kind": "Wallets:Sign", "transaction": {"assets": [{"amount": 1.5e400}]}}"#;
        let problem = parse::<ActivityRequest>(body).unwrap_err();
        assert!(problem.detail.starts_with("transaction.assets[0].amount: is not valid JSON"), "{}", problem.detail);
        let problem = parse::<ActivityRequest>(b"[1, 2]").unwrap_err();
        assert_eq!(problem.detail, "body: must be a JSON object");
        let problem = parse::<ActivityRequest>(b"  ").unwrap_err();
        assert_eq!(problem.detail, "body: a JSON document is required");
        let problem = parse::<ActivityRequest>(b"{\"kind\": \"Wallets:Sign\"} x").unwrap_err();
        assert!(problem.detail.starts_with("body: is not valid JSON"), "{}", problem.detail);
    }

    /// An activity whose `externalId` is `id`, written as JSON text.
    fn activity_with_external_id(id: &str) -> Vec<u8> {
        format!(
            r#"{{"kind": "Wallets:Sign", "initiator": {{"id": "us-1", "kind": "User"}},
                "wallet": {{"id": "wa-1", "tags": []}}, "externalId": "{id}"}}"#
        )
        .into_bytes()
    }

    #[test]
    fn a_body_is_read_as_utf8_whole_or_refused_where_it_is_not() {
        // Multi-byte characters, written and escaped: read as they are.
        let body = activity_with_external_id("caf\u{e9} \\u00e9 \\n");
        let request = parse::<ActivityRequest>(&body).expect("valid UTF-8 is read");
        assert_eq!(request.external_id.as_deref(), Some("caf\u{e9} \u{e9} \n"));
        // A byte that is not UTF-8, inside a string: refused, naming where.
        let mut body = activity_with_external_id("ab");
        let at = body.windows(4).position(|w| w == b"\"ab\"").expect("the id is there") + 2;
        body[at] = 0xff;
        let problem = parse::<ActivityRequest>(&body).unwrap_err();
        assert_eq!(problem.status, 400);
        assert!(problem.detail.starts_with("externalId: is not valid JSON"), "{}", problem.detail);
    }

    #[test]
    fn a_number_where_a_name_belongs_is_a_type_error() {
        let body = br#"{"kind": 7}"#;
        let problem = parse::<ActivityRequest>(body).unwrap_err();
        assert!(problem.detail.starts_with("kind: invalid type: integer `7`"), "{}", problem.detail);
    }

    #[test]
    fn a_key_given_twice_is_named_with_its_object() {
        let body = br#"{"kind": "Wallets:Sign", "wallet": {"id": "wa-1", "extra": {"a": 1, "b": [], "a": 2}}}"#;
        let problem = parse::<ActivityRequest>(body).unwrap_err();
        assert_eq!(problem.detail, "wallet.extra: duplicate field `a`");
        // A well-formed document is not called malformed for what comes
        // before the key given twice.
        let problem = parse::<ActivityRequest>(br#"{"kind": 7, "kind": "Wallets:Sign"}"#).unwrap_err();
        assert!(problem.detail.starts_with("kind: invalid type: integer `7`"), "{}", problem.detail);
    }

    #[test]
    fn a_path_of_the_callers_keys_is_cut() {
        let key = "k".repeat(10_000);
        let body = format!(r#"{{"kind": "Wallets:Sign", "{key}": {{"a": 1, "a": 2}}}}"#);
        let problem = parse::<ActivityRequest>(body.as_bytes()).unwrap_err();
        assert!(problem.detail.len() < 400, "{} bytes", problem.detail.len());
        assert!(problem.detail.starts_with(&format!("{}…: duplicate field `a`", "k".repeat(MAX_QUOTED_CHARS - 1))));
        // Keys cut one by one, then the whole path.
        let deep = format!(r#"{{"kind": "Wallets:Sign", "{key}": {{"{key}": {{"{key}": {{"a": 1, "a": 2}}}}}}}}"#);
        let problem = parse::<ActivityRequest>(deep.as_bytes()).unwrap_err();
        let path = problem.detail.split(": ").next().unwrap();
        assert_eq!(path.chars().count(), MAX_PATH_CHARS, "{path}");
        assert!(path.starts_with(&format!("{}….k", "k".repeat(63))), "{path}");
    }

    #[test]
    fn the_first_reading_refuses_what_the_second_names() {
        // The reading without paths decides; only its refusals are read
        // again. Each of these must be refused by it alone.
        let refused: [&[u8]; 3] = [
            br#"{"kind": "Wallets:Sign", "wallet": ["wa-1", []]}"#,
            br#"{"kind": "Wallets:Sign", "kind": "Wallets:Sign"}"#,
            br#"{"kind": "Wallets:Sign", "extra": [{"a": 1, "a": 1}]}"#,
        ];
        for body in refused {
            let mut deserializer = serde_json::Deserializer::from_slice(body);
            let first: Result<ActivityRequest, _> =
                serde::Deserialize::deserialize(strict_json::Strict(&mut deserializer));
            assert!(first.is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn missing_fields_are_named() {
        let problem = parse::<ActivityRequest>(b"{}").unwrap_err();
        assert_eq!(problem.detail, "body: missing field `kind`");
    }
}
