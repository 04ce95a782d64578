//! Problem documents for the answers actix-http gives on its own, below the
//! application: a request line or header it cannot parse, a bad chunked
//! body or a Content-Length mismatch (400), a request head too large (431),
//! a head that did not arrive in time (408). actix-http writes those with an
//! empty body and offers no hook to change them, so every connection's byte
//! stream goes through [`ProblemFraming`], which follows the responses'
//! framing as they are written and gives such an answer the problem
//! document of its status.
//!
//! Only an error status with `content-length: 0` is rewritten: every error
//! the application itself answers is already a problem document, so an
//! empty one can only come from actix-http. The stream is followed only as
//! long as its framing is certain; at the first doubt (a response whose
//! body runs to the close, a head it cannot read, a `HEAD` request, whose
//! answer announces a length it does not send) the connection's bytes pass
//! untouched from then on.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_web::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::problem::{Problem, PROBLEM_JSON};

/// A response head longer than this is not followed (Warden's are a few hundred bytes).
const MAX_HEAD: usize = 16 * 1024;

/// A connection's byte stream, with actix-http's own empty error answers
/// made problem documents.
#[derive(Debug)]
pub struct ProblemFraming<T> {
    inner: T,
    /// Bytes accepted from the dispatcher and not yet written to `inner`.
    out: Vec<u8>,
    written: usize,
    responses: Responses,
    requests: HeadRequests,
}

impl<T> ProblemFraming<T> {
    /// Wraps a connection's stream.
    pub fn new(inner: T) -> Self {
        ProblemFraming {
            inner,
            out: Vec::new(),
            written: 0,
            responses: Responses::Head(Vec::new()),
            requests: HeadRequests::default(),
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncWrite + Unpin> ProblemFraming<T> {
    /// Writes what is pending; ready once all of it is written.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.out.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ProblemFraming<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if !this.requests.seen {
            this.requests.scan(&buf.filled()[before..]);
            if this.requests.seen {
                this.responses = Responses::Passthrough;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ProblemFraming<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        // What was accepted before goes out first: at most one write is held.
        ready!(this.poll_drain(cx))?;
        if let Responses::Passthrough = this.responses {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        this.responses.follow(buf, &mut this.out);
        if let Poll::Ready(Err(error)) = this.poll_drain(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Whether a request line starting with `HEAD ` was read: its answer has a
/// Content-Length and no body, which the written stream alone cannot tell.
#[derive(Debug)]
struct HeadRequests {
    /// Bytes of `HEAD ` matched at the start of the current line.
    matched: Option<usize>,
    seen: bool,
}

impl Default for HeadRequests {
    fn default() -> Self {
        HeadRequests { matched: Some(0), seen: false }
    }
}

impl HeadRequests {
    const METHOD: &'static [u8] = b"HEAD ";

    fn scan(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.matched.is_none() {
                // Only what follows a line feed can start a request line
                // (memchr: a body has no line feeds, and is read at SIMD speed).
                let Some(at) = memchr::memchr(b'\n', bytes) else { return };
                bytes = &bytes[at + 1..];
                self.matched = Some(0);
                continue;
            }
            let b = bytes[0];
            bytes = &bytes[1..];
            self.matched = match self.matched {
                _ if b == b'\n' => Some(0),
                Some(k) if Self::METHOD[k] == b => Some(k + 1),
                _ => None,
            };
            if self.matched == Some(Self::METHOD.len()) {
                self.seen = true;
                return;
            }
        }
    }
}

/// Where the written stream is in its responses' framing.
#[derive(Debug)]
enum Responses {
    /// Reading a response head, held until complete.
    Head(Vec<u8>),
    /// Inside a body of known length: this many bytes left.
    Body(u64),
    /// Inside a chunked body.
    Chunked(Chunk),
    /// Not followed any more: bytes pass as they are.
    Passthrough,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy)]
enum Chunk {
    /// Reading a chunk-size line; the size so far, and whether an extension began.
    Size(u64, bool),
    /// Inside a chunk's data: this many bytes left, then its CRLF.
    Data(u64),
    /// The CRLF after a chunk's data: this many bytes left.
    DataEnd(u8),
    /// The trailer after the last chunk; whether the current line has content.
    Trailer(bool),
}

impl Responses {
    /// Follows `bytes`, appending what is to be written to `out`.
    fn follow(&mut self, mut bytes: &[u8], out: &mut Vec<u8>) {
        while !bytes.is_empty() {
            match self {
                Responses::Passthrough => {
                    out.extend_from_slice(bytes);
                    return;
                }
                Responses::Head(head) => {
                    let (taken, complete) = take_head(head, bytes);
                    bytes = &bytes[taken..];
                    if complete {
                        let head = std::mem::take(head);
                        *self = answer(&head, out);
                    } else if head.len() > MAX_HEAD {
                        out.extend_from_slice(head);
                        *self = Responses::Passthrough;
                    }
                }
                Responses::Body(left) => {
                    let n = (*left).min(bytes.len() as u64) as usize;
                    out.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    *left -= n as u64;
                    if *left == 0 {
                        *self = Responses::Head(Vec::new());
                    }
                }
                Responses::Chunked(chunk) => {
                    let (n, next) = follow_chunked(*chunk, bytes);
                    out.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    *self = next;
                }
            }
        }
    }
}

/// Appends bytes of `bytes` to `head` up to the end of the head (CRLF CRLF);
/// returns how many were taken and whether the head is complete. (A search
/// of the bytes taken, not a check after each byte: every response of the
/// server passes here.)
fn take_head(head: &mut Vec<u8>, bytes: &[u8]) -> (usize, bool) {
    const END: &[u8] = b"\r\n\r\n";
    let held = head.len();
    // Never more than a head may be (the caller gives up past MAX_HEAD), and
    // at least one byte, so that every call moves on.
    let taken = bytes.len().min((MAX_HEAD + END.len()).saturating_sub(held).max(1));
    head.extend_from_slice(&bytes[..taken]);
    // The end may begin in the last three bytes held before this call.
    let from = held.saturating_sub(END.len() - 1);
    match head[from..].windows(END.len()).position(|w| w == END) {
        Some(at) => {
            let end = from + at + END.len();
            head.truncate(end);
            (end - held, true)
        }
        None => (taken, false),
    }
}

/// Writes the response head `head` to `out` (a problem document in place of
/// an empty error), and says what follows it.
fn answer(head: &[u8], out: &mut Vec<u8>) -> Responses {
    let Some(parsed) = ResponseHead::parse(head) else {
        out.extend_from_slice(head);
        return Responses::Passthrough;
    };
    let next_head = Responses::Head(Vec::new());
    if parsed.status < 200 || parsed.status == 204 || parsed.status == 304 {
        out.extend_from_slice(head);
        return next_head;
    }
    if parsed.chunked {
        out.extend_from_slice(head);
        return Responses::Chunked(Chunk::Size(0, false));
    }
    match parsed.content_length {
        Some(0) if parsed.status >= 400 => {
            write_problem(head, parsed.status, out);
            next_head
        }
        Some(0) => {
            out.extend_from_slice(head);
            next_head
        }
        Some(length) => {
            out.extend_from_slice(head);
            Responses::Body(length)
        }
        // A body that runs to the close: nothing more to follow.
        None => {
            out.extend_from_slice(head);
            Responses::Passthrough
        }
    }
}

/// The parts of a response head that say how its body is framed.
struct ResponseHead {
    status: u16,
    content_length: Option<u64>,
    chunked: bool,
}

impl ResponseHead {
    fn parse(head: &[u8]) -> Option<ResponseHead> {
        let text = std::str::from_utf8(head).ok()?;
        let mut lines = text.split("\r\n");
        let status_line = lines.next()?;
        let rest = status_line.strip_prefix("HTTP/1.")?;
        let status = rest.get(2..5)?.parse::<u16>().ok()?;
        let mut parsed = ResponseHead { status, content_length: None, chunked: false };
        for line in lines.filter(|line| !line.is_empty()) {
            let (name, value) = line.split_once(':')?;
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                parsed.content_length = Some(value.parse().ok()?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                parsed.chunked = value.to_ascii_lowercase().ends_with("chunked");
            }
        }
        Some(parsed)
    }
}

/// `head` (an empty error answer of `status`) with a problem document as its body.
fn write_problem(head: &[u8], status: u16, out: &mut Vec<u8>) {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let detail = match status {
        StatusCode::BAD_REQUEST => {
            "request: not valid HTTP/1.1 (request line, headers, chunked encoding or Content-Length)"
        }
        StatusCode::REQUEST_TIMEOUT => "request: the request head did not arrive in time",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "request: the request head is larger than the server accepts",
        _ => status.canonical_reason().unwrap_or("error"),
    };
    let body = serde_json::to_string(&Problem::new(status, detail)).unwrap_or_else(|_| String::from("{}"));
    let text = String::from_utf8_lossy(&head[..head.len() - 2]);
    for line in text.split_inclusive("\r\n") {
        let name = line.split_once(':').map(|(name, _)| name.trim());
        let framing =
            name.is_some_and(|n| n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("content-type"));
        if !framing {
            out.extend_from_slice(line.as_bytes());
        }
    }
    out.extend_from_slice(format!("content-type: {PROBLEM_JSON}\r\ncontent-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body.as_bytes());
}

/// Follows a chunked body through `bytes`: how many bytes belong to it, and
/// where the stream is after them.
fn follow_chunked(mut chunk: Chunk, bytes: &[u8]) -> (usize, Responses) {
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        chunk = match chunk {
            Chunk::Data(left) => {
                let n = left.min((bytes.len() - i) as u64);
                i += n as usize;
                if n == left {
                    Chunk::DataEnd(2)
                } else {
                    Chunk::Data(left - n)
                }
            }
            Chunk::DataEnd(left) => {
                i += 1;
                if left == 1 {
                    Chunk::Size(0, false)
                } else {
                    Chunk::DataEnd(left - 1)
                }
            }
            Chunk::Size(size, extension) => {
                i += 1;
                match b {
                    b'\r' => Chunk::Size(size, extension),
                    b'\n' if size == 0 => Chunk::Trailer(false),
                    b'\n' => Chunk::Data(size),
                    _ if extension => Chunk::Size(size, true),
                    b';' | b' ' | b'\t' => Chunk::Size(size, true),
                    _ => match (b as char).to_digit(16).and_then(|d| size.checked_mul(16)?.checked_add(d.into())) {
                        Some(size) => Chunk::Size(size, false),
                        None => return (i, Responses::Passthrough),
                    },
                }
            }
            Chunk::Trailer(content) => {
                i += 1;
                match b {
                    b'\r' => Chunk::Trailer(content),
                    b'\n' if !content => return (i, Responses::Head(Vec::new())),
                    b'\n' => Chunk::Trailer(false),
                    _ => Chunk::Trailer(true),
                }
            }
        };
    }
    (i, Responses::Chunked(chunk))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn follow_all(pieces: &[&[u8]]) -> (Vec<u8>, Responses) {
        let mut responses = Responses::Head(Vec::new());
        let mut out = Vec::new();
        for piece in pieces {
            responses.follow(piece, &mut out);
        }
        (out, responses)
    }

    #[test]
    fn an_empty_error_answer_becomes_a_problem_document() {
        let (out, _) = follow_all(&[b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"]);
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(
            head.contains("connection: close") && head.contains("content-type: application/problem+json"),
            "{head}"
        );
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"], 400);
        assert_eq!(problem["type"], "urn:warden:problem:invalid-request");
    }

    #[test]
    fn responses_with_bodies_pass_untouched_whatever_the_split() {
        let stream: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=y\r\nHTTP/\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\nHTTP/1.1 404 Not Found\r\ncontent-type: application/problem+json\r\ncontent-length: 2\r\n\r\n{}";
        for split in 0..stream.len() {
            let (out, responses) = follow_all(&[&stream[..split], &stream[split..]]);
            assert_eq!(out, stream, "split at {split}");
            assert!(matches!(responses, Responses::Head(ref h) if h.is_empty()), "split at {split}: {responses:?}");
        }
        // Byte by byte: every head's end is found across the calls.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        let (out, responses) = follow_all(&bytes);
        assert_eq!(out, stream, "one byte at a time");
        assert!(matches!(responses, Responses::Head(ref h) if h.is_empty()), "{responses:?}");
        // An empty error after them is still recognised.
        let (out, _) =
            follow_all(&[stream, b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n"]);
        assert!(String::from_utf8(out).unwrap().ends_with("\"status\":431,\"detail\":\"request: the request head is larger than the server accepts\",\"message\":\"request: the request head is larger than the server accepts\"}"));
    }

    #[test]
    fn a_response_head_too_long_to_follow_passes_untouched() {
        let mut stream = b"HTTP/1.1 200 OK\r\nx-long: ".to_vec();
        stream.extend(std::iter::repeat_n(b'a', MAX_HEAD + 100));
        stream.extend_from_slice(b"\r\ncontent-length: 0\r\n\r\nHTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        for split in [0, 10, MAX_HEAD - 1, MAX_HEAD + 3, stream.len() - 5] {
            let (out, responses) = follow_all(&[&stream[..split], &stream[split..]]);
            assert_eq!(out, stream, "split at {split}: given up on, nothing rewritten");
            assert!(matches!(responses, Responses::Passthrough), "split at {split}");
        }
    }

    #[test]
    fn doubt_stops_the_rewriting() {
        // A body up to the close: what follows is body, not a head.
        let stream: &[u8] = b"HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(follow_all(&[stream]).0, stream);
        let mut requests = HeadRequests::default();
        requests.scan(b"GET / HTTP/1.1\r\n\r\nHE");
        assert!(!requests.seen);
        requests.scan(b"AD / HTTP/1.1\r\n");
        assert!(requests.seen);
        let mut requests = HeadRequests::default();
        requests.scan(b"POST / HTTP/1.1\r\nX-HEAD : 1\r\n\r\n");
        assert!(!requests.seen);
    }
}
