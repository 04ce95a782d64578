//! Webhook delivery against real HTTP receivers on 127.0.0.1: signatures and
//! headers, retries, redirects, deleted webhooks, and delivery across a
//! restart on a redb journal.

use std::collections::{BTreeSet, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{TimeZone, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use warden::*;

/// Longest wait for anything a test expects to happen.
const DEADLINE: Duration = Duration::from_secs(20);

// ----- a receiver -----

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str).unwrap_or_else(|| panic!("no {name} header"))
    }
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// 500 to the first `n` requests, then 200.
    FailFirst(usize),
    /// Always 500.
    AlwaysFail,
    /// 307 to `/moved` (which would answer 200).
    Redirect,
}

struct State {
    answer: Answer,
    seen: AtomicUsize,
    log: Arc<Mutex<Vec<Received>>>,
}

/// A running receiver; every request is logged.
struct Receiver {
    url: String,
    log: Arc<Mutex<Vec<Received>>>,
    handle: ServerHandle,
}

impl Receiver {
    fn start(answer: Answer) -> Receiver {
        Receiver::on(TcpListener::bind("127.0.0.1:0").unwrap(), answer)
    }

    fn on(listener: TcpListener, answer: Answer) -> Receiver {
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let state = web::Data::new(State { answer, seen: AtomicUsize::new(0), log: log.clone() });
        let server = HttpServer::new(move || App::new().app_data(state.clone()).default_service(web::to(hook)))
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Receiver { url, log, handle }
    }

    fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    async fn stop(self) {
        self.handle.stop(true).await;
    }
}

async fn hook(request: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let headers = request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let path = request.path().to_owned();
    state.log.lock().unwrap().push(Received { path: path.clone(), headers, body: body.to_vec() });
    let n = state.seen.fetch_add(1, Ordering::SeqCst);
    match state.answer {
        _ if path == "/moved" => HttpResponse::Ok().finish(),
        Answer::FailFirst(k) if n >= k => HttpResponse::Ok().finish(),
        Answer::Redirect => HttpResponse::TemporaryRedirect().insert_header(("Location", "/moved")).finish(),
        Answer::FailFirst(_) | Answer::AlwaysFail => HttpResponse::InternalServerError().body("try later"),
    }
}

/// An address on which nothing listens (yet): deliveries to it are refused.
fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

// ----- the engine side -----

async fn engine() -> Engine {
    Engine::builder().webhook_allow_private(true).arbiters(1).build().await.unwrap()
}

async fn webhook(engine: &Engine, url: &str, events: &[&str]) -> Webhook {
    let spec = WebhookSpec {
        url: url.to_owned(),
        events: events.iter().map(|e| e.to_string()).collect(),
        status: WebhookStatus::Enabled,
        description: None,
    };
    engine.create_webhook(spec).await.unwrap()
}

/// Every activity needs one approval by `us-1`.
async fn approval_policy(engine: &Engine) {
    let spec: PolicySpec = serde_json::from_value(json!({
        "name": "Approve everything",
        "activityKind": "Wallets:Sign",
        "rule": {"kind": "AlwaysTrigger", "configuration": {}},
        "action": {"kind": "RequestApproval",
                   "approvalGroups": [{"name": "Ops", "quorum": 1, "approvers": {"userId": {"in": ["us-1"]}}}]}
    }))
    .unwrap();
    engine.create_policy(&Principal::user("us-alice", &[Role::Admin]), spec).await.unwrap();
}

async fn transfer(engine: &Engine) -> Activity {
    let request: ActivityRequest = serde_json::from_value(json!({
        "kind": "Wallets:Sign",
        "initiator": {"id": "us-bob", "kind": "User"},
        "wallet": {"id": "wa-1", "tags": []},
        "transaction": {"type": "Transfer", "network": "Ethereum",
                        "recipient": "0x76d1b7f9b3F69C435eeF76a98A415332084A856F",
                        "assets": [{"symbol": "ETH", "decimals": 18, "amount": "1000", "valueUsd": "10"}]}
    }))
    .unwrap();
    engine.evaluate(request).await.unwrap()
}

fn log(engine: &Engine, webhook: &Webhook) -> Vec<WebhookEvent> {
    engine.webhook_events(&webhook.id, &PageRequest::default()).unwrap().items
}

/// Polls `check` until it gives a value, for at most [`DEADLINE`].
async fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

fn all_delivered(events: &[WebhookEvent], n: usize) -> bool {
    events.len() == n && events.iter().all(|e| e.status == DeliveryStatus::Delivered)
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

// ----- the tests -----

#[actix_rt::test]
async fn every_kind_arrives_signed_with_its_headers() {
    let receiver = Receiver::start(Answer::FailFirst(0));
    let engine = engine().await;
    let hook = webhook(&engine, &receiver.url, &["*"]).await;
    let secret = hook.secret.clone().unwrap();
    approval_policy(&engine).await;

    let activity = transfer(&engine).await;
    let approval_id = activity.approval_id.clone().unwrap();
    until("triggered and pending to arrive", || (receiver.received().len() >= 2).then_some(())).await;
    engine.decide(&Principal::user("us-1", &[]), &approval_id, DecisionValue::Approved, "fine").await.unwrap();
    let received = until("all three kinds", || Some(receiver.received()).filter(|r| r.len() >= 3)).await;
    let events =
        until("the log to show three deliveries", || Some(log(&engine, &hook)).filter(|l| all_delivered(l, 3))).await;

    let started = Utc::now().timestamp();
    let mut kinds = BTreeSet::new();
    for request in &received {
        let body = request.json();
        let id = body["id"].as_str().unwrap();
        assert_eq!(request.path, "/hook");
        assert_eq!(request.header("Content-Type"), "application/json");
        assert_eq!(request.header("X-Warden-Event-Id"), id);
        let timestamp: i64 = request.header("X-Warden-Timestamp").parse().unwrap();
        assert!((started - 60..=started + 5).contains(&timestamp), "timestamp {timestamp}");
        let signature = request.header("X-Warden-Signature");
        assert_eq!(signature, format!("sha256={}", hmac_hex(&secret, &request.body)));
        assert_ne!(signature, format!("sha256={}", hmac_hex("another secret", &request.body)));
        assert_eq!(request.header("X-DFNS-WEBHOOK-SIGNATURE"), signature, "Dfns receivers read this one");

        let fields: BTreeSet<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(fields, BTreeSet::from(["data", "date", "deliveryAttempt", "id", "kind", "timestampSent"]));
        assert_eq!(body["deliveryAttempt"], 1);
        assert_eq!(body["timestampSent"], timestamp);
        let logged = events.iter().find(|e| e.id == id).expect("the event is in the log");
        assert_eq!(body["kind"], logged.kind.as_str());
        assert_eq!(body["date"], serde_json::to_value(logged.date).unwrap());
        assert_eq!(logged.attempts, 1);
        assert_eq!(logged.last_sent.map(|sent| sent.timestamp()), Some(timestamp), "the log's timestampSent");
        let data = &body["data"];
        match logged.kind.as_str() {
            "policy.triggered" => {
                assert_eq!(data["policyEvaluation"]["activityId"], activity.id.as_str());
                assert_eq!(data["policyEvaluation"]["triggered"], true);
            }
            "policy.approval.pending" => {
                assert_eq!(data["approval"]["id"], approval_id.as_str());
                assert_eq!(data["approval"]["status"], "Pending");
            }
            "policy.approval.resolved" => {
                assert_eq!(data["approval"]["id"], approval_id.as_str());
                assert_eq!(data["approval"]["status"], "Approved");
            }
            other => panic!("unexpected kind {other}"),
        }
        kinds.insert(logged.kind.clone());
    }
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    engine.shutdown();
    receiver.stop().await;
}

#[actix_rt::test]
async fn a_failed_answer_is_retried_with_the_same_event() {
    let receiver = Receiver::start(Answer::FailFirst(1));
    let engine = engine().await;
    let hook = webhook(&engine, &receiver.url, &["policy.approval.pending"]).await;
    approval_policy(&engine).await;
    transfer(&engine).await;

    let events = until("the retry to deliver", || Some(log(&engine, &hook)).filter(|l| all_delivered(l, 1))).await;
    let event = &events[0];
    assert_eq!(event.attempts, 2);
    assert!(event.last_error.as_deref().unwrap().contains("500"), "{:?}", event.last_error);

    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].header("X-Warden-Event-Id"), event.id);
    assert_eq!(received[1].header("X-Warden-Event-Id"), event.id);
    // A retry sends the same event; only the try's number and time differ.
    let (mut first, mut second) = (received[0].json(), received[1].json());
    assert_eq!(first["deliveryAttempt"], 1);
    assert_eq!(second["deliveryAttempt"], 2);
    for body in [&mut first, &mut second] {
        let object = body.as_object_mut().unwrap();
        object.remove("deliveryAttempt");
        object.remove("timestampSent");
    }
    assert_eq!(first, second, "a retry sends the same event");
    engine.shutdown();
    receiver.stop().await;
}

#[actix_rt::test]
async fn retries_stop_a_day_after_the_event() {
    let receiver = Receiver::start(Answer::AlwaysFail);
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap());
    let engine = Engine::builder().webhook_allow_private(true).arbiters(1).clock(clock.clone()).build().await.unwrap();
    let hook = webhook(&engine, &receiver.url, &["policy.approval.pending"]).await;
    approval_policy(&engine).await;
    transfer(&engine).await;

    let first = until("the first try", || log(&engine, &hook).pop().filter(|e| e.attempts == 1)).await;
    assert_eq!(first.status, DeliveryStatus::Pending);
    let retry_at = first.next_attempt.expect("a retry is scheduled");
    assert!(retry_at > first.date && retry_at <= first.date + chrono::Duration::seconds(5), "{retry_at}");

    clock.advance(chrono::Duration::hours(25));
    let last =
        until("the event to fail", || log(&engine, &hook).pop().filter(|e| e.status == DeliveryStatus::Failed)).await;
    assert_eq!(last.attempts, 2);
    assert!(last.last_error.unwrap().contains("500"));
    assert_eq!(receiver.received().len(), 2);
    engine.shutdown();
    receiver.stop().await;
}

#[actix_rt::test]
async fn a_redirect_is_a_failure_and_is_not_followed() {
    let receiver = Receiver::start(Answer::Redirect);
    let engine = engine().await;
    let hook = webhook(&engine, &receiver.url, &["policy.approval.pending"]).await;
    approval_policy(&engine).await;
    transfer(&engine).await;

    let event = until("the first try", || log(&engine, &hook).pop().filter(|e| e.attempts >= 1)).await;
    assert_eq!(event.status, DeliveryStatus::Pending);
    assert!(event.last_error.unwrap().contains("307"));
    assert!(receiver.received().iter().all(|r| r.path == "/hook"), "the redirect was followed");
    engine.shutdown();
    receiver.stop().await;
}

#[actix_rt::test]
async fn https_urls_are_sent_over_tls() {
    // A bare socket that records what the client sends first: a TLS record,
    // not an HTTP request line. (No certificate a public root signs can be
    // had offline, so the handshake is not completed here.)
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (first_bytes, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        let (mut socket, _) = listener.accept().unwrap();
        let mut head = [0u8; 3];
        socket.read_exact(&mut head).unwrap();
        first_bytes.send(head).unwrap();
    });
    let engine = engine().await;
    let url = format!("https://{address}/hook");
    let hook = webhook(&engine, &url, &["policy.approval.pending"]).await;
    approval_policy(&engine).await;
    transfer(&engine).await;

    let head = until("a connection", || seen.try_recv().ok()).await;
    assert_eq!(head[0], 0x16, "not a TLS handshake record: {head:?}");
    assert_eq!(head[1], 0x03);
    let event = until("the failed try", || log(&engine, &hook).pop().filter(|e| e.attempts >= 1)).await;
    assert_eq!(event.status, DeliveryStatus::Pending);
    engine.shutdown();
}

#[actix_rt::test]
async fn events_of_a_deleted_webhook_are_dropped() {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap());
    let engine = Engine::builder().webhook_allow_private(true).arbiters(1).clock(clock.clone()).build().await.unwrap();
    let gone_address = closed_port();
    let kept = Receiver::start(Answer::FailFirst(0));
    let gone = webhook(&engine, &format!("http://{gone_address}/hook"), &["policy.approval.pending"]).await;
    let stays = webhook(&engine, &kept.url, &["policy.approval.pending"]).await;
    approval_policy(&engine).await;

    transfer(&engine).await;
    until("the kept webhook's delivery", || Some(log(&engine, &stays)).filter(|l| all_delivered(l, 1))).await;
    engine.delete_webhook(&gone.id).await.unwrap();
    let revived = Receiver::on(TcpListener::bind(gone_address).unwrap(), Answer::FailFirst(0));

    // Past any retry of the deleted webhook's event, then one more event.
    clock.advance(chrono::Duration::minutes(5));
    transfer(&engine).await;
    until("the kept webhook's second delivery", || Some(log(&engine, &stays)).filter(|l| all_delivered(l, 2))).await;
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    assert!(revived.received().is_empty(), "an event of a deleted webhook was delivered");
    engine.shutdown();
    kept.stop().await;
    revived.stop().await;
}

#[actix_rt::test]
async fn pending_events_are_delivered_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.redb");
    let address = closed_port();

    // Engine 1 queues events while the receiver is down.
    let engine = Engine::builder()
        .webhook_allow_private(true)
        .arbiters(1)
        .journal(warden_redb::RedbJournal::open(&path).unwrap())
        .build()
        .await
        .unwrap();
    let hook = webhook(&engine, &format!("http://{address}/hook"), &["*"]).await;
    approval_policy(&engine).await;
    let first = transfer(&engine).await;
    transfer(&engine).await;
    engine
        .decide(&Principal::user("us-1", &[]), first.approval_id.as_deref().unwrap(), DecisionValue::Approved, "ok")
        .await
        .unwrap();
    // Two triggered, two pending, one resolved; tried and refused (once the
    // receiver is failing, only one probe event is tried).
    let queued = until("a refused try", || {
        Some(log(&engine, &hook)).filter(|l| l.len() == 5 && l.iter().any(|e| e.attempts >= 1))
    })
    .await;
    assert!(queued.iter().all(|e| e.status == DeliveryStatus::Pending));
    // Only a tried event has been sent.
    assert!(queued.iter().all(|e| e.last_sent.is_some() == (e.attempts >= 1)), "{queued:?}");
    engine.shutdown();
    drop(engine);

    // The receiver comes up; engine 2 opens the same file and delivers.
    let receiver = Receiver::on(TcpListener::bind(address).unwrap(), Answer::FailFirst(0));
    let journal = until("the journal file to be released", || warden_redb::RedbJournal::open(&path).ok()).await;
    let engine = Engine::builder().webhook_allow_private(true).arbiters(1).journal(journal).build().await.unwrap();
    let delivered =
        until("every event after the restart", || Some(log(&engine, &hook)).filter(|l| all_delivered(l, 5))).await;
    assert!(delivered.iter().all(|e| e.attempts >= 1), "{delivered:?}");
    assert!(delivered.iter().any(|e| e.attempts >= 2), "the refused ones were tried again: {delivered:?}");

    let ids: BTreeSet<String> = queued.iter().map(|e| e.id.clone()).collect();
    let arrived: BTreeSet<String> =
        receiver.received().iter().map(|r| r.header("X-Warden-Event-Id").to_owned()).collect();
    assert_eq!(arrived, ids);
    assert_eq!(receiver.received().len(), 5, "each event arrived once");
    assert!(delivered.iter().all(|e| e.last_sent.is_some()), "{delivered:?}");
    engine.shutdown();
    drop(engine);

    // When each was sent is journaled: a third engine reads the same log.
    let journal = until("the journal file to be released", || warden_redb::RedbJournal::open(&path).ok()).await;
    let engine = Engine::builder().webhook_allow_private(true).arbiters(1).journal(journal).build().await.unwrap();
    assert_eq!(log(&engine, &hook), delivered, "the delivery log, sending times included, after a restart");
    engine.shutdown();
    receiver.stop().await;
}

#[actix_rt::test]
async fn receivers_at_private_addresses_or_with_user_info_are_refused() {
    let engine = Engine::builder().arbiters(1).build().await.unwrap();
    for url in [
        "http://127.0.0.1:9000/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.8/hook",
        "http://localhost:8080/hook",
        "https://user:pass@example.com/hook",
    ] {
        let spec: WebhookSpec = serde_json::from_value(json!({"url": url, "events": ["*"]})).unwrap();
        match engine.create_webhook(spec).await {
            Err(Error::Invalid(e)) => assert_eq!(e.field, "url", "{url}: {e}"),
            other => panic!("{url} was not refused: {other:?}"),
        }
    }
    assert!(engine.webhooks(&PageRequest::default()).unwrap().items.is_empty(), "nothing was registered");
}

#[actix_rt::test]
async fn a_delivery_to_a_private_address_fails_when_not_allowed() {
    // Registered while allowed (as development mode does), delivered by an
    // engine that does not allow it: the delivery's own resolver refuses.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.redb");
    let receiver = Receiver::start(Answer::FailFirst(0));
    let url = receiver.url.clone();
    {
        let engine = Engine::builder()
            .webhook_allow_private(true)
            .arbiters(1)
            .journal(warden_redb::RedbJournal::open(&path).unwrap())
            .build()
            .await
            .unwrap();
        webhook(&engine, &url, &["*"]).await;
        engine.shutdown();
    }
    let journal = until("the journal file to be released", || warden_redb::RedbJournal::open(&path).ok()).await;
    let engine = Engine::builder().arbiters(1).journal(journal).build().await.unwrap();
    let hook = engine.webhooks(&PageRequest::default()).unwrap().items.remove(0);
    approval_policy(&engine).await;
    transfer(&engine).await;
    let tried =
        until("a refused try", || Some(log(&engine, &hook)).filter(|l| l.iter().any(|e| e.attempts >= 1))).await;
    let error = tried.iter().find_map(|e| e.last_error.clone()).unwrap_or_else(|| panic!("{tried:?}"));
    assert!(error.contains("resolves to"), "{error}");
    assert!(receiver.received().is_empty(), "nothing reached the private receiver");
    engine.shutdown();
    receiver.stop().await;
}

/// Every activity is blocked: one `policy.triggered` event each.
async fn block_everything(engine: &Engine) {
    let spec: PolicySpec = serde_json::from_value(json!({"name": "Block", "activityKind": "Wallets:Sign",
        "rule": {"kind": "AlwaysTrigger", "configuration": {}}, "action": {"kind": "Block"}}))
    .unwrap();
    engine.create_policy(&Principal::user("us-alice", &[Role::Admin]), spec).await.unwrap();
}

#[actix_rt::test]
async fn a_dead_receivers_backlog_is_probed_by_one_event_then_the_webhook_is_disabled() {
    let clock = ManualClock::new(Utc::now());
    let engine = Engine::builder().webhook_allow_private(true).arbiters(1).clock(clock.clone()).build().await.unwrap();
    let hook = webhook(&engine, &format!("http://{}/hook", closed_port()), &["policy.triggered"]).await;
    block_everything(&engine).await;
    for _ in 0..40 {
        transfer(&engine).await;
    }
    until("the first tries to fail", || Some(()).filter(|_| log(&engine, &hook).iter().any(|e| e.attempts >= 1))).await;
    let tried = |events: &[WebhookEvent]| events.iter().filter(|e| e.attempts > 0).count();
    // Time passes: only the probe is tried again; the others wait for the receiver.
    for _ in 0..6 {
        clock.advance(chrono::Duration::seconds(120));
        actix_rt::time::sleep(Duration::from_millis(400)).await;
    }
    let events = log(&engine, &hook);
    assert!(tried(&events) <= 4, "at most the first tries in flight and the probe were tried: {}", tried(&events));
    let probe = events.iter().max_by_key(|e| e.attempts).unwrap();
    assert!(probe.attempts >= 3, "the probe is retried on its backoff: {}", probe.attempts);
    let attempts: u32 = events.iter().map(|e| e.attempts).sum();
    assert!(attempts < 40, "a dead receiver costs tries per backoff step, not per event: {attempts}");

    // A day later the probe gives up: the webhook is disabled and its backlog fails, in one record.
    clock.advance(chrono::Duration::hours(25));
    let disabled = until("the webhook to be disabled", || {
        engine.webhook(&hook.id).ok().filter(|w| w.status == WebhookStatus::Disabled)
    })
    .await;
    assert!(disabled.disabled_reason.as_deref().unwrap().contains("24 hours"), "{disabled:?}");
    let events = log(&engine, &hook);
    assert!(events.iter().all(|e| e.status == DeliveryStatus::Failed), "{events:?}");
    transfer(&engine).await;
    assert_eq!(log(&engine, &hook).len(), 40, "a disabled webhook queues nothing");
    engine.shutdown();
}

#[actix_rt::test]
async fn a_full_backlog_drops_its_oldest_events() {
    let clock = ManualClock::new(Utc::now());
    let engine = Engine::builder()
        .webhook_allow_private(true)
        .webhook_backlog(5)
        .arbiters(1)
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let hook = webhook(&engine, &format!("http://{}/hook", closed_port()), &["policy.triggered"]).await;
    block_everything(&engine).await;
    for _ in 0..8 {
        transfer(&engine).await;
        clock.advance(chrono::Duration::seconds(1));
    }
    let events = log(&engine, &hook);
    assert_eq!(events.len(), 8);
    let dropped: Vec<&WebhookEvent> =
        events.iter().filter(|e| e.last_error.as_deref() == Some("dropped: the webhook's backlog is full")).collect();
    assert_eq!(dropped.len(), 3, "{events:?}");
    assert!(dropped.iter().all(|e| e.status == DeliveryStatus::Failed));
    let oldest: Vec<&str> = events[..3].iter().map(|e| e.id.as_str()).collect();
    assert!(dropped.iter().all(|e| oldest.contains(&e.id.as_str())), "the oldest go first");
    engine.shutdown();
}
