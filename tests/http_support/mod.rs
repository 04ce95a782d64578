//! Shared by the HTTP tests: a real server on 127.0.0.1:0 over a fresh
//! in-memory engine, a handful of principals, and a small client.

#![allow(dead_code, unused_imports)]

use std::net::TcpListener;
use std::time::Duration;

use actix_web::http::Method;
#[path = "../common/seed.rs"]
mod seed;
pub use seed::seed_policy;

use serde_json::{json, Value};
use tokio::sync::oneshot;
use warden::http::{Credentials, Server};
use warden::{Engine, Principal, Role};

/// Admin: policies and webhooks.
pub const ALICE: &str = "alice-token";
/// Signer: submits activities.
pub const BOB: &str = "bob-token";
/// Approvers without roles.
pub const APPROVER_1: &str = "approver-1-token";
pub const APPROVER_2: &str = "approver-2-token";
pub const APPROVER_3: &str = "approver-3-token";
/// A second admin (approver of governed policy changes).
pub const CAROL: &str = "carol-token";

fn principals() -> Vec<(Principal, &'static str)> {
    vec![
        (Principal::user("us-alice", &[Role::Admin]), ALICE),
        (Principal::user("us-bob", &[Role::Signer]), BOB),
        (Principal::user("us-1", &[]), APPROVER_1),
        (Principal::user("us-2", &[]), APPROVER_2),
        (Principal::user("us-3", &[]), APPROVER_3),
        (Principal::user("us-carol", &[Role::Admin]), CAROL),
    ]
}

/// An answer: status, content type, headers and the body as JSON (or as a
/// JSON string when it is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Asserts an RFC 9457 problem with `status` whose detail contains `field`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, field: &str) {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        assert_eq!(self.content_type, "application/problem+json", "body: {}", self.body);
        assert_eq!(self.body["status"], status, "body: {}", self.body);
        assert!(self.body["type"].is_string() && self.body["title"].is_string(), "body: {}", self.body);
        let detail = self.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(field), "detail `{detail}` does not name `{field}`");
    }

    /// Asserts `status` and returns the body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        self.body
    }
}

/// A server under test.
pub struct TestServer {
    pub base: String,
    pub engine: Engine,
    client: awc::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<actix_rt::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// A server with the default body limit.
    pub async fn start() -> TestServer {
        TestServer::start_with_limit(None).await
    }

    /// A server with the given body limit.
    pub async fn start_with_limit(body_limit: Option<usize>) -> TestServer {
        let credentials = principals()
            .into_iter()
            .fold(Credentials::default(), |c, (principal, token)| c.with_token(principal, token));
        let principals = principals().into_iter().map(|(p, _)| p).collect();
        TestServer::start_with(principals, credentials, None, None, body_limit).await
    }

    /// A server with these principals (the engine's) and credentials (the
    /// server's), on `clock` and `journal` when given.
    pub async fn start_with(
        principals: Vec<Principal>,
        credentials: Credentials,
        clock: Option<warden::ManualClock>,
        journal: Option<std::sync::Arc<dyn warden::Journal>>,
        body_limit: Option<usize>,
    ) -> TestServer {
        let mut builder = Engine::builder().principals(principals).webhook_allow_private(true).arbiters(1);
        if let Some(clock) = clock {
            builder = builder.clock(clock);
        }
        if let Some(journal) = journal {
            builder = builder.shared_journal(journal);
        }
        let engine = builder.build().await.expect("engine starts");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut server = Server::new(engine.clone()).credentials(credentials).workers(1);
        if let Some(limit) = body_limit {
            server = server.body_limit(limit);
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let task = actix_rt::spawn(server.serve(listener, async move {
            let _ = stopped.await;
        }));
        let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
        let server = TestServer { base, engine, client, stop: Some(stop), task: Some(task) };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&self) {
        for _ in 0..200 {
            let health = send(&self.client, &self.base, Method::GET, "/healthz", None, None, Vec::new()).await;
            if let Ok(reply) = health {
                if reply.status == 200 {
                    return;
                }
            }
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("server did not become healthy");
    }

    /// Stops the server and waits for it (and the engine) to shut down.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server stops cleanly");
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::GET, path, token, None, Vec::new()).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::DELETE, path, token, None, Vec::new()).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.send(Method::POST, path, token, Some("application/json"), body.to_string().into_bytes()).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.send(Method::PUT, path, token, Some("application/json"), body.to_string().into_bytes()).await
    }

    /// Sends raw bytes with the given content type.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        send(&self.client, &self.base, method, path, token, content_type, body)
            .await
            .expect("request succeeds at the HTTP level")
    }

    /// Sends raw bytes with extra headers (a user action, for one).
    pub async fn send_with_headers(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request = request.insert_header(("Content-Type", "application/json"));
        for (name, value) in headers {
            request = request.insert_header((*name, *value));
        }
        let response = request.send_body(body).await.expect("request succeeds at the HTTP level");
        reply(response).await.expect("answer is read")
    }

    /// The ids of every item of a list, walking all its pages.
    pub async fn all_ids(&self, path: &str, token: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut token_param = String::new();
        loop {
            let separator = if path.contains('?') { '&' } else { '?' };
            let page = self.get(&format!("{path}{separator}limit=1000{token_param}"), Some(token)).await.expect(200);
            for item in page["items"].as_array().unwrap() {
                ids.push(item["id"].as_str().unwrap().to_owned());
            }
            match page["nextPageToken"].as_str() {
                Some(next) => token_param = format!("&paginationToken={next}"),
                None => return ids,
            }
        }
    }
}

/// One request with awc.
pub async fn send(
    client: &awc::Client,
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<Reply, String> {
    let mut request = client.request(method, format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(content_type) = content_type {
        request = request.insert_header(("Content-Type", content_type));
    }
    let response = request.send_body(body).await.map_err(|e| e.to_string())?;
    reply(response).await
}

async fn reply(
    mut response: awc::ClientResponse<
        impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
    >,
) -> Result<Reply, String> {
    let bytes = response.body().limit(16 * 1024 * 1024).await.map_err(|e| e.to_string())?;
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Ok(Reply { status: response.status().as_u16(), content_type, headers: response.headers().clone(), body })
}

/// A `Wallets:Sign` activity worth `usd` dollars, without initiator.
pub fn activity(usd: &str, external_id: Option<&str>) -> Value {
    let mut body = json!({
        "kind": "Wallets:Sign",
        "wallet": {"id": "wa-1", "tags": ["treasury"]},
        "transaction": {
            "type": "Transfer",
            "network": "Ethereum",
            "recipient": "0x76d1b7f9b3F69C435eeF76a98A415332084A856F",
            "assets": [{"symbol": "ETH", "decimals": 18, "amount": "1500000000000000000", "valueUsd": usd}]
        }
    });
    if let Some(external_id) = external_id {
        body["externalId"] = json!(external_id);
    }
    body
}
