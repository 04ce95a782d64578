//! `GET /v2/events`: Server-Sent Events of the engine's events, in order,
//! for authenticated callers only; a client that does not read loses events
//! and never holds the engine back.

mod http_support;

use std::time::Duration;

use http_support::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warden::*;

async fn open_stream(server: &TestServer, token: Option<&str>) -> TcpStream {
    let address = server.base.trim_start_matches("http://");
    // A small receive window: what the client does not read stays on the server's side.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut socket = socket.connect(address.parse().unwrap()).await.unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!("GET /v2/events HTTP/1.1\r\nHost: {address}\r\n{auth}Accept: text/event-stream\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    socket
}

/// Reads from `socket` until `done` holds for what was read (bounded wait).
async fn read_until(socket: &mut TcpStream, done: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if done(&text) {
            return text;
        }
        match tokio::time::timeout(Duration::from_millis(100), socket.read(&mut buffer)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => text.push_str(&String::from_utf8_lossy(&buffer[..n])),
            Ok(Err(e)) => panic!("read failed: {e}"),
            Err(_) => {}
        }
    }
    assert!(done(&text), "the stream did not deliver what was expected; read so far:\n{text}");
    text
}

/// Reads from `socket` until `needle` arrives (bounded wait), looking only at
/// what is new each time: the text here runs to megabytes.
async fn read_through(socket: &mut TcpStream, needle: &str) -> String {
    let needle = needle.as_bytes();
    let mut bytes = Vec::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut searched = 0usize;
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(100), socket.read(&mut buffer)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => bytes.extend_from_slice(&buffer[..n]),
            Ok(Err(e)) => panic!("read failed: {e}"),
            Err(_) => {}
        }
        let from = searched.saturating_sub(needle.len());
        if bytes[from..].windows(needle.len()).any(|window| window == needle) {
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        searched = bytes.len();
    }
    panic!("`{}` never arrived; read {} bytes", String::from_utf8_lossy(needle), bytes.len());
}

fn transfer(n: usize) -> ActivityRequest {
    serde_json::from_value(json!({
        "kind": "Wallets:Sign", "initiator": {"id": "us-bob", "kind": "User"},
        "wallet": {"id": "wa-1", "tags": ["treasury"]}, "externalId": format!("order-{n}"),
        "transaction": {"type": "Transfer", "network": "Ethereum", "recipient": "0x76d1b7f9b3F69C435eeF76a98A415332084A856F",
                        "assets": [{"symbol": "ETH", "decimals": 18, "amount": "1500000000000000000", "valueUsd": "10"}]}
    }))
    .unwrap()
}

#[actix_rt::test]
async fn events_stream_in_order_to_authenticated_callers() {
    let server = TestServer::start().await;
    let mut anonymous = open_stream(&server, None).await;
    let refused = read_until(&mut anonymous, |t| t.contains("\r\n\r\n")).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");

    let mut stream = open_stream(&server, Some(BOB)).await;
    let head = read_until(&mut stream, |t| t.contains("\r\n\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("text/event-stream"), "{head}");
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(server.engine.evaluate(transfer(n)).await.unwrap().id);
    }
    let text = read_until(&mut stream, |t| t.matches("event: activity.evaluated").count() == 3).await;
    let seen: Vec<usize> = ids.iter().map(|id| text.find(id.as_str()).expect("every activity is announced")).collect();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in the order they were answered: {text}");
    // Each `data` is a webhook body: `id`, `kind`, `date`, `data`; every
    // event has an id of its own.
    let bodies: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).expect("each data line is JSON"))
        .collect();
    assert_eq!(bodies.len(), 3, "{text}");
    for body in &bodies {
        assert_eq!(body["kind"], "activity.evaluated", "{body}");
        assert!(body["id"].as_str().is_some_and(|id| id.starts_with("ev-")), "{body}");
        assert!(body["date"].is_string() && body["data"]["activity"]["id"].is_string(), "{body}");
    }
    let distinct: std::collections::HashSet<&str> = bodies.iter().filter_map(|b| b["id"].as_str()).collect();
    assert_eq!(distinct.len(), 3, "{text}");
}

#[actix_rt::test]
async fn a_client_that_does_not_read_never_blocks_the_engine() {
    let server = TestServer::start().await;
    let mut slow = open_stream(&server, Some(BOB)).await;
    read_until(&mut slow, |t| t.contains("\r\n\r\n")).await;
    // Far more than the channel and the socket hold, while the slow client
    // reads nothing: every evaluation is still answered.
    for n in 0..2500 {
        server.engine.evaluate(transfer(n)).await.unwrap();
    }

    let mut fresh = open_stream(&server, Some(BOB)).await;
    read_until(&mut fresh, |t| t.contains("\r\n\r\n")).await;
    let last = server.engine.evaluate(transfer(9999)).await.unwrap();
    read_until(&mut fresh, |t| t.contains(last.id.as_str())).await;
}

/// A transfer whose event is large (16 tags of 250 bytes): a few thousand
/// of them are more than the channel and both sockets' buffers hold.
fn large_transfer(n: usize) -> ActivityRequest {
    let mut request = transfer(n);
    if let Some(wallet) = request.wallet.as_mut() {
        wallet.tags = (0..16).map(|t| format!("{t:02}{}", "x".repeat(248))).collect();
    }
    request
}

#[actix_rt::test]
async fn a_client_that_falls_behind_is_told_it_lost_events_and_keeps_streaming() {
    let server = TestServer::start().await;
    let mut slow = open_stream(&server, Some(BOB)).await;
    read_until(&mut slow, |t| t.contains("\r\n\r\n")).await;
    // The slow client reads nothing while far more than the channel (1024
    // events) and the sockets hold is announced; every evaluation answers.
    for n in 0..4000 {
        server.engine.evaluate(large_transfer(n)).await.unwrap();
    }
    let last = server.engine.evaluate(transfer(9999)).await.unwrap();

    // Then it reads: the server said how many it lost, and the stream goes on
    // to the newest events.
    let text = read_through(&mut slow, last.id.as_str()).await;
    let lost_at = text.find("events lost (the client fell behind)").expect("the client is told it lost events");
    let lost: usize = text[..lost_at].rsplit(": ").next().unwrap().trim().parse().expect("how many were lost");
    assert!(lost > 0, "{lost}");
    assert!(lost_at < text.find(last.id.as_str()).unwrap(), "the loss is reported before the later events");
    let delivered = text.matches("event: activity.evaluated").count();
    assert!(delivered + lost >= 4001, "every event is delivered or counted as lost: {delivered} + {lost}");
}
