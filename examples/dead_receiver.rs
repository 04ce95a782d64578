//! What a dead receiver's backlog costs: an engine on a real redb journal,
//! one webhook whose receiver refuses every connection (a loopback port
//! nobody listens on), and a policy that triggers on every activity, so that
//! each activity leaves one `policy.triggered` event pending for that
//! webhook. Once `--events` activities are in, the process's CPU time (all
//! threads: dispatcher, journal, actors) is read over `--seconds` of
//! retrying, and printed as a share of one core.
//!
//! ```text
//! cargo run --release --example dead_receiver -- --events 100000 --seconds 30
//! ```
//!
//! It only connects to 127.0.0.1.

use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use serde_json::json;
use warden::{Engine, Principal, Role};

#[derive(Debug, Parser)]
struct Args {
    /// Pending events the dead webhook is given (one per activity).
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Seconds of retrying measured.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Seconds waited after the last activity before measuring.
    #[arg(long, default_value_t = 5)]
    settle: u64,
}

/// CPU time of this process so far (user and system, every thread).
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn main() {
    let args = Args::parse();
    actix_rt::System::new().block_on(run(args));
}

async fn run(args: Args) {
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = warden_redb::RedbJournal::open(dir.path().join("warden.redb")).expect("journal opens");
    let admin = Principal::user("us-admin", &[Role::Admin]);
    let engine = Engine::builder()
        .journal(journal)
        .principals(vec![admin.clone()])
        .webhook_allow_private(true)
        .webhook_backlog(args.events)
        .build()
        .await
        .expect("engine starts");

    // A port that refuses: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let spec =
        serde_json::from_value(json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["policy.triggered"]}))
            .unwrap();
    let webhook = engine.create_webhook(spec).await.expect("webhook registered");
    let policy = serde_json::from_value(json!({
        "name": "Every activity", "activityKind": "Wallets:Sign",
        "rule": {"kind": "AlwaysTrigger", "configuration": {}}, "action": {"kind": "NoAction"}
    }))
    .unwrap();
    engine.create_policy(&admin, policy).await.expect("policy created");

    let started = Instant::now();
    let activity: warden::ActivityRequest = serde_json::from_value(json!({
        "kind": "Wallets:Sign",
        "initiator": {"id": "us-signer", "kind": "User"},
        "wallet": {"id": "wa-1"},
        "transaction": {"type": "Transfer", "recipient": "0xabc",
            "assets": [{"symbol": "ETH", "decimals": 18, "amount": "1000"}]}
    }))
    .unwrap();
    futures_util::stream::iter(0..args.events)
        .map(|_| engine.evaluate(activity.clone()))
        .buffer_unordered(64)
        .for_each(|evaluated| {
            evaluated.expect("activity evaluated");
            std::future::ready(())
        })
        .await;
    println!("{} activities in {:.1} s", args.events, started.elapsed().as_secs_f64());
    actix_rt::time::sleep(Duration::from_secs(args.settle)).await;

    let (cpu, wall) = (cpu_time(), Instant::now());
    actix_rt::time::sleep(Duration::from_secs(args.seconds)).await;
    let (cpu, wall) = (cpu_time() - cpu, wall.elapsed());

    let page = warden::PageRequest { limit: Some(1), pagination_token: None };
    let first = engine.webhook_events(&webhook.id, &page).expect("events listed");
    println!(
        "dead receiver, {} pending events: {:.2}% of a core over {:.0} s (first event: {:?}, {} attempts)",
        args.events,
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
        wall.as_secs_f64(),
        first.items.first().map(|e| e.status),
        first.items.first().map_or(0, |e| e.attempts),
    );
    engine.shutdown();
}
