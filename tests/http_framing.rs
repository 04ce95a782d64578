//! Requests that are not valid HTTP/1.1 get a problem document too, over raw
//! TCP: a malformed request line or header, bad chunked encoding, a
//! Content-Length that lies or cannot be read, a head too large, a head
//! that never ends; and valid requests around them are answered as before.

mod http_support;

use std::time::Duration;

use http_support::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One response read off a raw connection.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Asserts a problem document of `status` and returns it.
    #[track_caller]
    fn problem(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "{self:?}");
        let problem: Value = serde_json::from_slice(&self.body).expect("a JSON problem document");
        assert_eq!(problem["status"], status, "{problem}");
        assert!(problem["type"].as_str().unwrap().starts_with("urn:warden:problem:"), "{problem}");
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{problem}");
        problem
    }
}

/// Sends `bytes` on a new connection, and reads every response until the
/// server closes it (answers to pipelined requests included).
async fn exchange(base: &str, bytes: &[u8]) -> Vec<Raw> {
    let mut socket = TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
    socket.write_all(bytes).await.unwrap();
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), socket.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the server closed the connection: {}", String::from_utf8_lossy(&received));
    parse_responses(&received)
}

fn parse_responses(mut bytes: &[u8]) -> Vec<Raw> {
    let mut responses = Vec::new();
    while !bytes.is_empty() {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head") + 4;
        let head = std::str::from_utf8(&bytes[..end]).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        responses.push(Raw { status, headers, body: bytes[end..end + length].to_vec() });
        bytes = &bytes[end + length..];
    }
    responses
}

#[actix_rt::test]
async fn malformed_request_lines_and_headers_get_a_problem_document() {
    let server = TestServer::start().await;
    for request in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n",
        b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /hea lthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad\x01: y\r\n\r\n",
    ] {
        let responses = exchange(&server.base, request).await;
        assert_eq!(responses.len(), 1, "{:?}: {responses:?}", String::from_utf8_lossy(request));
        responses[0].problem(400);
    }
    server.stop().await;
}

/// A body in several chunks is read whole (a one-chunk body is kept as it
/// came; more are joined).
#[actix_rt::test]
async fn a_body_in_several_chunks_is_read_whole() {
    let server = TestServer::start().await;
    let body = activity("150", Some("chunked-1")).to_string();
    let (a, rest) = body.split_at(7);
    let (b, c) = rest.split_at(rest.len() / 2);
    let chunks: String = [a, b, c].iter().map(|chunk| format!("{:x}\r\n{chunk}\r\n", chunk.len())).collect();
    let request = format!(
        "POST /v2/activities HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {BOB}\r\nContent-Type: application/json\r\n\
         Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}0\r\n\r\n"
    );
    let responses = exchange(&server.base, request.as_bytes()).await;
    assert_eq!(responses.len(), 1, "{responses:?}");
    assert_eq!(responses[0].status, 200, "{:?}", String::from_utf8_lossy(&responses[0].body));
    let activity: Value = serde_json::from_slice(&responses[0].body).expect("an activity");
    assert_eq!(activity["activity"]["externalId"], "chunked-1", "{activity}");
    server.stop().await;
}

#[actix_rt::test]
async fn bad_body_framing_gets_a_problem_document() {
    let server = TestServer::start().await;
    let post = format!(
        "POST /v2/activities HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {BOB}\r\nContent-Type: application/json\r\n"
    );
    // Chunk sizes that are not hexadecimal.
    let responses =
        exchange(&server.base, format!("{post}Transfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n").as_bytes())
            .await;
    assert!(!responses.is_empty());
    for response in &responses {
        response.problem(400);
    }
    // A Content-Length that is not a number, or given twice differently.
    for framing in ["Content-Length: abc\r\n", "Content-Length: 2\r\nContent-Length: 3\r\n"] {
        let responses = exchange(&server.base, format!("{post}{framing}\r\n{{}}").as_bytes()).await;
        assert_eq!(responses.len(), 1, "{framing}: {responses:?}");
        responses[0].problem(400);
    }
    // A body longer than its Content-Length: the rest is read as the next
    // request, which is not HTTP. The first request is answered as usual.
    let responses =
        exchange(&server.base, format!("{post}Content-Length: 2\r\n\r\n{{}}\"kind\": 1}}\r\n\r\n").as_bytes()).await;
    assert_eq!(responses.len(), 2, "{responses:?}");
    assert!(responses[0].problem(400)["detail"].as_str().unwrap().contains("kind"));
    responses[1].problem(400);
    server.stop().await;
}

#[actix_rt::test]
async fn a_head_too_large_gets_a_problem_document() {
    let server = TestServer::start().await;
    let huge = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(200_000));
    let responses = exchange(&server.base, huge.as_bytes()).await;
    assert_eq!(responses.len(), 1, "{responses:?}");
    responses[0].problem(431);
    server.stop().await;
}

#[actix_rt::test]
async fn a_head_that_never_ends_gets_a_problem_document() {
    let server = TestServer::start().await;
    let responses = exchange(&server.base, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    assert_eq!(responses.len(), 1, "{responses:?}");
    responses[0].problem(408);
    server.stop().await;
}

#[actix_rt::test]
async fn valid_requests_around_them_are_answered_as_before() {
    let server = TestServer::start().await;
    // Pipelined: an answer, a problem document, an answer and the close.
    let pipelined = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let responses = exchange(&server.base, pipelined.as_bytes()).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 404, 200]);
    responses[1].problem(404);
    let health: Value = serde_json::from_slice(&responses[2].body).unwrap();
    assert_eq!(health["status"], "ok");
    // The usual client still works.
    server.get("/healthz", None).await.expect(200);
    server.stop().await;
}
