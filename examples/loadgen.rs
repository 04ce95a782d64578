//! A load generator for operators: how many activities per second a running
//! `warden serve` answers, and how long each answer takes, every answer
//! durable. It sends `POST /v2/activities` with a bounded number of requests
//! in flight, stops by itself (after `--duration` or `--requests`, whichever
//! comes first), then prints requests/s, HTTP and activity status counts, and
//! latency p50/p90/p99/max. It only talks to loopback addresses.
//!
//! ```text
//! cargo run --release -- serve                 # dev mode prints WARDEN_TOKEN=...
//! cargo run --release --example loadgen -- --token "$WARDEN_TOKEN" \
//!     --seed-policies --concurrency 64 --duration 20
//! ```
//!
//! With `--healthz` it sends `GET /healthz` instead (no token needed): the
//! same server's rate with nothing evaluated, to compare activities with.
//!
//! The token needs the Signer role (and Admin for `--seed-policies`, which
//! first creates the seed's large-transaction and daily-velocity policies so
//! the activities really evaluate and count).
//!
//! Over HTTPS (`--url https://...`), `--ca` names the CA to verify the server
//! with, and `--cert`/`--key` a client certificate (mutual TLS; its principal
//! needs no token). `--new-connections` opens a connection per request, so
//! that over HTTPS each request pays a full handshake (sessions are never
//! resumed):
//!
//! ```text
//! cargo run --release --example loadgen -- --url https://127.0.0.1:8443 --ca ca.pem \
//!     --cert signer.pem --key signer.key --concurrency 64 --duration 10
//! ```

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use awc::http::StatusCode;
use awc::{Client, Connector};
use clap::Parser;
use futures_util::future::join_all;
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;

/// Longest run allowed: a load generator left running is a denial of service.
const MAX_DURATION_SECS: u64 = 3600;
/// Most requests in flight: one connection each.
const MAX_CONCURRENCY: usize = 4096;
/// Most requests in one run.
const MAX_REQUESTS: u64 = 10_000_000;
/// The seed's recipient.
const RECIPIENT: &str = "0x76d1b7f9b3F69C435eeF76a98A415332084A856F";

#[derive(Debug, Parser)]
#[command(name = "loadgen", about = "Sends activities to a local warden server and reports throughput and latency")]
struct Args {
    /// Base URL of the server, http:// or https://; loopback addresses only.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Bearer token of a principal with the Signer role (default: $WARDEN_TOKEN);
    /// not needed with `--cert` of a principal's `cert_sha256`.
    #[arg(long)]
    token: Option<String>,
    /// For https: the CA certificate (PEM) the server's certificate is verified with.
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
    /// For mutual TLS: the client certificate (PEM); needs `--key`.
    #[arg(long, value_name = "PEM", requires = "key")]
    cert: Option<PathBuf>,
    /// For mutual TLS: the client certificate's private key (PEM).
    #[arg(long, value_name = "PEM", requires = "cert")]
    key: Option<PathBuf>,
    /// A new connection for every request (over https: a full handshake each)
    /// instead of keeping connections alive.
    #[arg(long)]
    new_connections: bool,
    /// Requests in flight at once (1 to 4096).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Stop sending after this many seconds (1 to 3600).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Stop sending after this many requests.
    #[arg(long, default_value_t = 1_000_000)]
    requests: u64,
    /// Activity mix as `kind=weight,...`; kinds: `small` (4 500 USD
    /// transfer), `large` (150 000 USD, over the seed's approval limit),
    /// `unpriced` (a token without a USD value: rules fail closed), `message`
    /// (a message signature, no recipient).
    #[arg(long, default_value = "small=90,large=5,unpriced=3,message=2")]
    mix: String,
    /// Number of wallets the activities spread over (one velocity window each).
    #[arg(long, default_value_t = 1000)]
    wallets: u64,
    /// First create the seed's two policies (needs the Admin role).
    #[arg(long)]
    seed_policies: bool,
    /// Per-request timeout, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Send `GET /healthz` instead of activities: the server's rate with
    /// nothing evaluated nor journaled, the yardstick of the activities' rate.
    #[arg(long, conflicts_with = "seed_policies")]
    healthz: bool,
}

/// The kinds of activity the generator sends.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Small,
    Large,
    Unpriced,
    Message,
}

impl Kind {
    fn parse(name: &str) -> Result<Kind, String> {
        match name {
            "small" => Ok(Kind::Small),
            "large" => Ok(Kind::Large),
            "unpriced" => Ok(Kind::Unpriced),
            "message" => Ok(Kind::Message),
            other => Err(format!("unknown activity kind `{other}` in --mix (small, large, unpriced, message)")),
        }
    }

    /// The body of activity number `i` of this kind, written as text: the
    /// generator shares the server's cores, so it builds no JSON tree.
    fn body(self, i: u64, wallets: u64, run: &str) -> String {
        let eth = |usd: &str| {
            format!(r#"{{"symbol":"ETH","decimals":18,"amount":"1500000000000000000","valueUsd":"{usd}"}}"#)
        };
        let transfer = |asset: &str| {
            format!(r#"{{"type":"Transfer","network":"Ethereum","recipient":"{RECIPIENT}","assets":[{asset}]}}"#)
        };
        let transaction = match self {
            Kind::Small => transfer(&eth("4500.00")),
            Kind::Large => transfer(&eth("150000.00")),
            Kind::Unpriced => transfer(r#"{"symbol":"LGT","decimals":18,"amount":"1000000000000000000"}"#),
            Kind::Message => r#"{"type":"MessageSignature","network":"Ethereum","assets":[]}"#.to_owned(),
        };
        let wallet = i % wallets.max(1);
        format!(
            r#"{{"kind":"Wallets:Sign","initiator":{{"id":"us-loadgen","kind":"User"}},"wallet":{{"id":"wa-lg-{wallet}","tags":["treasury"]}},"transaction":{transaction},"externalId":"{run}-{i}"}}"#
        )
    }
}

/// What the generator reads of an answered activity: its status only,
/// borrowed (the rest of the document is skipped, not built).
#[derive(serde::Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    status: Option<std::borrow::Cow<'a, str>>,
}

/// Kinds repeated by weight: request `i` is of kind `mix[i % len]`.
fn parse_mix(mix: &str) -> Result<Vec<Kind>, String> {
    let mut kinds = Vec::new();
    for part in mix.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part.split_once('=').ok_or_else(|| format!("`{part}` in --mix is not `kind=weight`"))?;
        let kind = Kind::parse(name.trim())?;
        let weight: usize =
            weight.trim().parse().map_err(|_| format!("weight `{weight}` of `{name}` is not an integer"))?;
        kinds.extend(std::iter::repeat_n(kind, weight.min(1000)));
    }
    if kinds.is_empty() {
        return Err("--mix has no activity with a positive weight".into());
    }
    Ok(kinds)
}

/// Refuses anything but a loopback `http://` or `https://` target: this
/// tool is for measuring one's own server, not anybody else's.
fn loopback_base(url: &str) -> Result<String, String> {
    let (scheme, rest) = url
        .split_once("://")
        .filter(|(scheme, _)| matches!(*scheme, "http" | "https"))
        .ok_or_else(|| format!("--url `{url}` must start with http:// or https:// (loopback targets only)"))?;
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(format!("--url host `{host}` is not a loopback address (127.0.0.0/8, ::1, localhost)"));
    }
    Ok(format!("{scheme}://{authority}"))
}

/// The TLS client of an https run: trusts `--ca` only, presents `--cert` if
/// given, and never resumes a session, so that a new connection costs a full
/// handshake.
fn tls_config(args: &Args) -> Result<Arc<rustls::ClientConfig>, String> {
    let read = |path: &Path| std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()));
    let ca = args.ca.as_deref().ok_or("an https --url needs --ca, the CA certificate of the server")?;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&read(ca)?) {
        let certificate = certificate.map_err(|e| format!("--ca `{}`: {e}", ca.display()))?;
        roots.add(certificate).map_err(|e| format!("--ca `{}`: {e}", ca.display()))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut config = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(&read(cert)?)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("--cert `{}`: {e}", cert.display()))?;
            let key =
                PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| format!("--key `{}`: {e}", key.display()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("--cert/--key: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// What the run saw.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    http: BTreeMap<u16, u64>,
    activity: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
}

async fn create_seed_policies(client: &Client, base: &str, token: &str) -> Result<(), String> {
    let approvers = json!([{"name": "Treasury", "quorum": 2, "approvers": {"userId": {"in": ["us-1", "us-2", "us-3"]}},
                            "initiatorCanApprove": false, "serviceAccountsCanApprove": false}]);
    let policies = [
        json!({"name": "Large Transaction Approval", "activityKind": "Wallets:Sign",
               "rule": {"kind": "TransactionAmountLimit", "configuration": {"limit": "100000", "currency": "USD"}},
               "action": {"kind": "RequestApproval", "approvalGroups": approvers, "autoRejectTimeout": 86400},
               "filters": {"walletTags": {"hasAny": ["treasury"]}}, "priority": 10, "status": "Active"}),
        json!({"name": "Daily Wallet Velocity", "activityKind": "Wallets:Sign",
               "rule": {"kind": "TransactionAmountVelocity",
                        "configuration": {"limit": "1000000", "currency": "USD", "timeWindow": 86400, "scope": "Wallet"}},
               "action": {"kind": "Block"}, "filters": {"walletTags": {"hasAny": ["treasury"]}}, "status": "Active"}),
    ];
    for policy in policies {
        let mut response = client
            .post(format!("{base}/v2/policies"))
            .bearer_auth(token)
            .send_json(&policy)
            .await
            .map_err(|e| format!("cannot create the seed policies: {e}"))?;
        if !response.status().is_success() {
            let body = response.body().await.unwrap_or_default();
            return Err(format!(
                "creating policy `{}` answered {}: {}",
                policy["name"].as_str().unwrap_or(""),
                response.status(),
                String::from_utf8_lossy(&body)
            ));
        }
    }
    Ok(())
}

/// One caller: sends its next activity as soon as the previous one is
/// answered, until the deadline or the request budget is reached.
#[allow(clippy::too_many_arguments)]
async fn caller(
    client: &Client,
    url: &str,
    token: Option<&str>,
    args: &Args,
    mix: &[Kind],
    run: &str,
    deadline: Instant,
    next: &Cell<u64>,
    tally: &RefCell<Tally>,
) {
    while Instant::now() < deadline && next.get() < args.requests {
        let i = next.get();
        next.set(i + 1);
        let sent = Instant::now();
        let result = if args.healthz {
            client.get(url).send().await
        } else {
            let body = mix[(i % mix.len() as u64) as usize].body(i, args.wallets, run);
            let mut request = client.post(url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.insert_header((awc::http::header::CONTENT_TYPE, "application/json")).send_body(body).await
        };
        let mut response = match result {
            Ok(response) => response,
            Err(error) => {
                let kind = format!("{error:?}").split(['(', ' ']).next().unwrap_or("Error").to_owned();
                *tally.borrow_mut().errors.entry(kind).or_default() += 1;
                continue;
            }
        };
        let status = response.status();
        let body = response.body().limit(1 << 20).await;
        let latency = sent.elapsed();
        let mut tally = tally.borrow_mut();
        tally.latencies.push(latency);
        *tally.http.entry(status.as_u16()).or_default() += 1;
        if status == StatusCode::OK && !args.healthz {
            let outcome = body
                .ok()
                .and_then(|b| serde_json::from_slice::<Answer>(&b).ok().and_then(|a| a.status.map(|s| s.into_owned())))
                .unwrap_or_else(|| "unreadable".to_owned());
            *tally.activity.entry(outcome).or_default() += 1;
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn report(tally: Tally, elapsed: Duration) {
    let Tally { mut latencies, http, activity, errors } = tally;
    latencies.sort_unstable();
    let answered = latencies.len() as u64;
    let failed: u64 = errors.values().sum();
    println!(
        "requests: {} answered, {failed} failed, in {:.2} s: {:.0} requests/s",
        answered,
        elapsed.as_secs_f64(),
        answered as f64 / elapsed.as_secs_f64()
    );
    let join = |m: &BTreeMap<String, u64>| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
    println!("http status: {}", http.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "));
    println!("activity status: {}", join(&activity));
    if !errors.is_empty() {
        println!("errors: {}", join(&errors));
    }
    println!(
        "latency: p50 {}  p90 {}  p99 {}  max {}",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 90.0)),
        ms(percentile(&latencies, 99.0)),
        ms(percentile(&latencies, 100.0))
    );
}

#[actix_rt::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let base = loopback_base(&args.url)?;
    let token = args.token.clone().or_else(|| std::env::var("WARDEN_TOKEN").ok());
    if token.is_none() && args.cert.is_none() && !args.healthz {
        return Err("no token: pass --token, set WARDEN_TOKEN, or present a client certificate with --cert".into());
    }
    if !(1..=MAX_CONCURRENCY).contains(&args.concurrency) {
        return Err(format!("--concurrency must be 1 to {MAX_CONCURRENCY}").into());
    }
    if !(1..=MAX_DURATION_SECS).contains(&args.duration) {
        return Err(format!("--duration must be 1 to {MAX_DURATION_SECS} seconds").into());
    }
    if !(1..=MAX_REQUESTS).contains(&args.requests) {
        return Err(format!("--requests must be 1 to {MAX_REQUESTS}").into());
    }
    let mix = parse_mix(&args.mix)?;

    let mut connector = Connector::new().limit(args.concurrency);
    if base.starts_with("https://") {
        connector = connector.rustls_0_23(tls_config(&args)?);
    }
    if args.new_connections {
        // A pooled connection older than its lifetime is closed instead of
        // reused: with a lifetime of zero, every request connects anew.
        connector = connector.conn_lifetime(Duration::ZERO);
    }
    let client = Client::builder().connector(connector).timeout(Duration::from_secs(args.timeout.max(1))).finish();
    if args.seed_policies {
        let token = token.as_deref().ok_or("--seed-policies needs the --token of an Admin")?;
        create_seed_policies(&client, &base, token).await?;
        println!("created the seed's two policies");
    }

    // External ids unique to this run: a repeated id would be a replay.
    let run = format!("lg-{}", SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis());
    let url = format!("{base}{}", if args.healthz { "/healthz" } else { "/v2/activities" });
    println!(
        "{} callers for at most {} s / {} requests against {url} (mix {})",
        args.concurrency, args.duration, args.requests, args.mix
    );
    let (next, tally) = (Cell::new(0), RefCell::new(Tally::default()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    join_all(
        (0..args.concurrency)
            .map(|_| caller(&client, &url, token.as_deref(), &args, &mix, &run, deadline, &next, &tally)),
    )
    .await;
    report(tally.into_inner(), started.elapsed());
    Ok(())
}
