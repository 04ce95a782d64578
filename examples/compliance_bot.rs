//! A compliance bot: an automated approver that runs beside Warden.
//!
//! It shows the webhook side of Warden from a receiver's point of view: a
//! service account listens for `policy.approval.pending`, checks the
//! `X-Warden-Signature` of each delivery against the webhook's secret, reads
//! the approval back over Warden's HTTP API with its own bearer token, and
//! approves what passes its checks (a Transfer to an allow-listed recipient,
//! priced, at or under a USD threshold). Everything else is left to the human
//! approvers: the bot never denies.
//!
//! Setup on the Warden side: a principal `kind = "ServiceAccount"` whose token
//! the bot holds; approval groups that list it with
//! `"serviceAccountsCanApprove": true`; and a webhook
//! (`POST /v2/webhooks {"url": "http://127.0.0.1:9000/hook", "events": ["policy.approval.pending"]}`)
//! whose `secret` the bot is given. Then:
//!
//! ```text
//! WARDEN_BOT_TOKEN=... WARDEN_WEBHOOK_SECRET=whsec_... \
//!   cargo run --example compliance_bot -- --warden-url http://127.0.0.1:8080 \
//!   --listen 127.0.0.1:9000 --allow 0x76d1b7f9b3F69C435eeF76a98A415332084A856F --max-usd 1000
//! ```
//!
//! Every flag can also come from the environment (`WARDEN_URL`,
//! `WARDEN_BOT_TOKEN`, `WARDEN_WEBHOOK_SECRET`, `BOT_LISTEN`,
//! `BOT_ALLOWED_RECIPIENTS` comma-separated, `BOT_MAX_USD`); prefer it for the
//! token and the secret, which other users can read on a command line.

use std::collections::HashSet;
use std::error::Error;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use warden::Decimal;

/// Longest wait for Warden's API: the delivery that asked is itself waiting
/// for our answer (Warden gives up on it after 10 s and retries).
const API_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest delivery accepted: an approval with its activity is a few KiB.
const MAX_BODY: usize = 1 << 20;

/// Event ids remembered for deduplication before the memory is reset.
const MAX_REMEMBERED: usize = 100_000;

/// What the bot was told at start.
struct Config {
    warden_url: String,
    token: String,
    secret: String,
    listen: String,
    allowed: HashSet<String>,
    max_usd: Decimal,
}

impl Config {
    /// `--flag value` from the command line, else the environment.
    fn load() -> Result<Config, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let get = |flag: &str, var: &str| -> Option<String> {
            let from_args = args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
            from_args.or_else(|| std::env::var(var).ok()).filter(|v| !v.is_empty())
        };
        let need = |flag: &str, var: &str| get(flag, var).ok_or_else(|| format!("give `{flag}` or set {var}"));
        let max_usd = get("--max-usd", "BOT_MAX_USD").unwrap_or_else(|| "1000".into());
        Ok(Config {
            warden_url: get("--warden-url", "WARDEN_URL")
                .unwrap_or_else(|| "http://127.0.0.1:8080".into())
                .trim_end_matches('/')
                .to_owned(),
            token: need("--token", "WARDEN_BOT_TOKEN")?,
            secret: need("--secret", "WARDEN_WEBHOOK_SECRET")?,
            listen: get("--listen", "BOT_LISTEN").unwrap_or_else(|| "127.0.0.1:9000".into()),
            allowed: get("--allow", "BOT_ALLOWED_RECIPIENTS")
                .unwrap_or_default()
                .split(',')
                .map(|a| a.trim().to_lowercase())
                .filter(|a| !a.is_empty())
                .collect(),
            max_usd: Decimal::from_str_exact(&max_usd).map_err(|e| format!("`{max_usd}` is not a USD amount: {e}"))?,
        })
    }
}

/// State shared by the server's workers.
struct Bot {
    config: Config,
    /// Ids of the events already handled (deliveries are at least once).
    handled: Mutex<HashSet<String>>,
}

/// What the bot made of an approval.
enum Verdict {
    Approved(String),
    LeftToHumans(String),
    AlreadySettled,
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let config = Config::load()?;
    let listen = config.listen.clone();
    println!(
        "compliance bot on http://{listen}/hook for {}: approves transfers to {} allow-listed recipients up to {} USD",
        config.warden_url,
        config.allowed.len(),
        config.max_usd
    );
    let bot = web::Data::new(Bot { config, handled: Mutex::new(HashSet::new()) });
    HttpServer::new(move || {
        // The HTTP client is per worker thread (it is not `Send`).
        let client = awc::Client::builder().timeout(API_TIMEOUT).disable_redirects().finish();
        App::new()
            .app_data(bot.clone())
            .app_data(web::Data::new(client))
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .route("/hook", web::post().to(on_delivery))
    })
    .bind(&listen)?
    .run()
    .await?;
    Ok(())
}

/// One webhook delivery. 2xx tells Warden it is handled; a 5xx makes Warden
/// try again later (used when Warden's API could not be reached).
async fn on_delivery(
    request: HttpRequest,
    body: web::Bytes,
    bot: web::Data<Bot>,
    client: web::Data<awc::Client>,
) -> HttpResponse {
    let signature = request.headers().get("X-Warden-Signature").and_then(|v| v.to_str().ok());
    if !signature.is_some_and(|s| verify(&bot.config.secret, &body, s)) {
        println!("rejected a delivery with a missing or wrong signature");
        return HttpResponse::Unauthorized().finish();
    }
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    let event_id = event["id"].as_str().unwrap_or_default().to_owned();
    let approval_id = event["data"]["approval"]["id"].as_str().unwrap_or_default().to_owned();
    if event["kind"] != "policy.approval.pending" || approval_id.is_empty() {
        return HttpResponse::NoContent().finish();
    }
    if bot.handled.lock().unwrap_or_else(|p| p.into_inner()).contains(&event_id) {
        return HttpResponse::NoContent().finish();
    }
    match review(&client, &bot.config, &approval_id).await {
        Ok(verdict) => {
            match verdict {
                Verdict::Approved(why) => println!("{approval_id}: approved ({why})"),
                Verdict::LeftToHumans(why) => println!("{approval_id}: left to the human approvers ({why})"),
                Verdict::AlreadySettled => println!("{approval_id}: no longer pending"),
            }
            let mut handled = bot.handled.lock().unwrap_or_else(|p| p.into_inner());
            if handled.len() >= MAX_REMEMBERED {
                handled.clear();
            }
            handled.insert(event_id);
            HttpResponse::NoContent().finish()
        }
        Err(error) => {
            println!("{approval_id}: not reviewed, Warden will deliver it again ({error})");
            HttpResponse::ServiceUnavailable().finish()
        }
    }
}

/// Checks `sha256=<hex HMAC-SHA256(secret, body)>` in constant time.
fn verify(secret: &str, body: &[u8], signature: &str) -> bool {
    let Some(Ok(expected)) = signature.strip_prefix("sha256=").map(hex::decode) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Reads the approval from Warden (the source of truth: the webhook only says
/// where to look) and approves it when it passes the checks.
async fn review(client: &awc::Client, config: &Config, approval_id: &str) -> Result<Verdict, String> {
    if !approval_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Ok(Verdict::LeftToHumans(format!("unexpected approval id `{approval_id}`")));
    }
    let url = format!("{}/v2/policy-approvals/{approval_id}", config.warden_url);
    let bearer = format!("Bearer {}", config.token);
    let mut answer =
        client.get(&url).insert_header((AUTHORIZATION, bearer.as_str())).send().await.map_err(|e| e.to_string())?;
    if !answer.status().is_success() {
        return Err(format!("GET {url} answered {}", answer.status()));
    }
    let approval: Value = answer.json().limit(MAX_BODY).await.map_err(|e| e.to_string())?;
    if approval["status"] != "Pending" {
        return Ok(Verdict::AlreadySettled);
    }
    let reason = match check(config, &approval["activity"]) {
        Ok(reason) => reason,
        Err(why) => return Ok(Verdict::LeftToHumans(why)),
    };
    let decision = json!({"value": "Approved", "reason": format!("compliance bot: {reason}")});
    let answer = client
        .post(format!("{url}/decisions"))
        .insert_header((AUTHORIZATION, bearer.as_str()))
        .send_json(&decision)
        .await
        .map_err(|e| e.to_string())?;
    match answer.status().as_u16() {
        200..=299 => Ok(Verdict::Approved(reason)),
        409 => Ok(Verdict::AlreadySettled),
        403 => Ok(Verdict::LeftToHumans("the bot is not an eligible approver here".into())),
        status => Err(format!("POST {url}/decisions answered {status}")),
    }
}

/// The bot's rules: `Ok(why)` to approve, `Err(why)` to leave it to people.
fn check(config: &Config, activity: &Value) -> Result<String, String> {
    if activity["kind"] != "Wallets:Sign" || activity["transaction"]["type"] != "Transfer" {
        return Err("not a transfer".into());
    }
    let recipient = activity["transaction"]["recipient"].as_str().ok_or("no recipient")?;
    if !config.allowed.contains(&recipient.to_lowercase()) {
        return Err(format!("recipient {recipient} is not on the allow-list"));
    }
    let assets = activity["transaction"]["assets"].as_array().ok_or("no assets")?;
    let mut total = Decimal::ZERO;
    for asset in assets {
        let value = match &asset["valueUsd"] {
            Value::String(s) => Decimal::from_str_exact(s).ok(),
            Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
            _ => None,
        };
        let symbol = asset["symbol"].as_str().unwrap_or("?");
        let value = value.ok_or_else(|| format!("{symbol} carries no USD value"))?;
        total = total.checked_add(value).ok_or("the value overflows")?;
    }
    if total > config.max_usd {
        return Err(format!("value {total} USD is over {} USD", config.max_usd));
    }
    Ok(format!("recipient {recipient} is allow-listed and value {total} USD is within {} USD", config.max_usd))
}
