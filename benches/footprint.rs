//! Bounded memory and idle CPU (issue 10), each case in a fresh process of
//! this bench (RSS is process-wide, and a process that already grew keeps
//! its allocator's arenas):
//!
//! - `windows/<journal>`: 100k activities to distinct recipients through a
//!   Recipient-scoped `TransactionCountVelocity` policy (60 s window, windows
//!   retire after 1 s idle, a manual clock): window actors, RSS and live heap
//!   right after; then the clock moves past the window, a few new recipients
//!   are counted, and the idle sweep (real time) retires the others: what is
//!   left, and how long it took; `trail/<journal>` is its control, the same
//!   activities without any policy (what the trail and the journal keep);
//! - `approvals/<journal>/<N>`: what N allowed activities keep (their trail
//!   index entries), then RSS and live heap before and after opening N
//!   pending approvals with the seed's large-transaction policy, per pending
//!   approval; then again after each is approved by two approvers (what a
//!   resolved approval keeps: an index entry);
//! - `idle/<journal>/<N>`: N pending approvals (half with the seed's one-day
//!   `autoRejectTimeout`, half without), then the process's CPU time
//!   (`getrusage`) over 15 s of idle wall time on the system clock.
//!
//! `<journal>` is `redb` (a real file in a tempdir) or `memory` (the
//! in-memory journal, whose records are themselves on the heap: its figures
//! include them).
//!
//! "Live heap" is counted by this bench's global allocator (bytes allocated
//! and not yet freed); RSS is `/proc/self/statm`. RSS after `malloc_trim(0)`
//! shows what glibc gives back once freed memory is returned to the system.
//!
//! Run with `cargo bench --bench footprint` (about 2 minutes); a word after
//! `--` runs only the cases whose name contains it, for instance
//! `cargo bench --bench footprint -- approvals/redb`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use futures_util::future::join_all;
use serde_json::json;
use warden::{
    ActivityRequest, ActivityStatus, DecisionValue, Engine, EngineBuilder, ManualClock, MemoryJournal, PolicySpec,
    Principal,
};
use warden_redb::RedbJournal;

use common::{add_policies, large_transaction_policy, spec, transfer};

/// Set in a child process: the case it runs.
const CASE_VAR: &str = "WARDEN_FOOTPRINT_CASE";
/// Activities in flight while filling.
const CALLERS: usize = 256;
/// Distinct recipients of the windows case.
const RECIPIENTS: u64 = 100_000;
/// Recipients counted after the clock moved: their windows must stay.
const STILL_COUNTED: u64 = 10;
/// Idle time of the windows case (`window_idle_seconds`).
const WINDOW_IDLE: Duration = Duration::from_secs(1);
/// Idle wall time over which the CPU is measured.
const IDLE_WALL: Duration = Duration::from_secs(15);

const CASES: [&str; 10] = [
    "windows/redb",
    "windows/memory",
    "trail/redb",
    "trail/memory",
    "approvals/redb/20000",
    "approvals/redb/100000",
    "approvals/memory/100000",
    "idle/redb/0",
    "idle/redb/100000",
    "idle/memory/100000",
];

// ----- measuring -----

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only a counter is
// updated beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Resident set size, bytes.
fn rss() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm is readable");
    let pages: i64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("statm has a resident field");
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) }
}

/// RSS after glibc returned its free memory to the system.
fn trimmed_rss() -> i64 {
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
    rss()
}

fn heap() -> i64 {
    LIVE.load(Ordering::Relaxed) as i64
}

/// User plus system CPU time of the whole process.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// A memory snapshot, to subtract.
#[derive(Clone, Copy)]
struct Memory {
    rss: i64,
    heap: i64,
}

impl Memory {
    fn now() -> Self {
        Memory { rss: rss(), heap: heap() }
    }

    fn show(&self) -> String {
        format!("RSS {}, live heap {}", mb(self.rss), mb(self.heap))
    }

    /// Bytes per item from `before` to `self`.
    fn per(&self, before: &Memory, items: u64) -> String {
        let items = items.max(1) as f64;
        format!(
            "RSS {:+.0} B, live heap {:+.0} B",
            (self.rss - before.rss) as f64 / items,
            (self.heap - before.heap) as f64 / items
        )
    }
}

fn mb(bytes: i64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

// ----- the engine and its load -----

/// A fixed start, so that runs compare.
fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).single().expect("valid start")
}

/// Runs `count` activities made by `request(i)` with [`CALLERS`] callers;
/// answers how many ended in each status (allowed, pending, blocked) and
/// the ids of the approvals opened.
async fn drive(
    engine: &Engine,
    count: u64,
    request: impl Fn(u64) -> ActivityRequest,
) -> ((u64, u64, u64), Vec<String>) {
    let next = Cell::new(0);
    let tally = Cell::new((0, 0, 0));
    let approvals = std::cell::RefCell::new(Vec::new());
    join_all((0..CALLERS).map(|_| async {
        loop {
            let i = next.get();
            if i >= count {
                break;
            }
            next.set(i + 1);
            let activity = engine.evaluate(request(i)).await.expect("activity is evaluated");
            let (mut a, mut p, mut b) = tally.get();
            match activity.status {
                ActivityStatus::Allowed => a += 1,
                ActivityStatus::Blocked => b += 1,
                _ => p += 1,
            }
            tally.set((a, p, b));
            if let Some(id) = activity.approval_id {
                approvals.borrow_mut().push(id);
            }
        }
    }))
    .await;
    (tally.get(), approvals.into_inner())
}

fn to_recipient(i: u64) -> ActivityRequest {
    let mut request = transfer("10");
    if let Some(tx) = request.transaction.as_mut() {
        tx.recipient = Some(format!("0x{i:040x}"));
    }
    request
}

fn one_per_recipient_per_minute() -> PolicySpec {
    spec(json!({"name": "One per recipient per minute", "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionCountVelocity",
                 "configuration": {"limit": 1, "timeWindow": 60, "scope": "Recipient"}},
        "action": {"kind": "Block"}}))
}

/// The seed's large-transaction policy for another desk, without a deadline.
fn large_transaction_policy_without_deadline() -> PolicySpec {
    let mut value = common::seed::seed_policy();
    value["name"] = json!("Large Transaction Approval (ops, no deadline)");
    value["filters"] = json!({"walletTags": {"hasAny": ["ops"]}});
    if let Some(action) = value["action"].as_object_mut() {
        action.remove("autoRejectTimeout");
    }
    spec(value)
}

/// A large transfer (held for approval); odd ones from an `ops` wallet.
fn large(i: u64, mixed: bool) -> ActivityRequest {
    let mut request = transfer("150000.00");
    if mixed && i % 2 == 1 {
        request.wallet = Some(warden::Wallet { id: "wa-ops".to_owned(), tags: vec!["ops".to_owned()] });
    }
    request
}

// ----- the cases -----

fn windows(journal: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sys = actix::System::new();
    let clock = ManualClock::new(t0());
    sys.block_on(async {
        let builder = Engine::builder().clock(clock.clone()).window_idle(WINDOW_IDLE);
        let engine = build_in(builder, journal, dir.path()).await;
        add_policies(&engine, vec![one_per_recipient_per_minute()]).await;
        let before = Memory::now();
        let started = Instant::now();
        let ((allowed, _, blocked), _) = drive(&engine, RECIPIENTS, to_recipient).await;
        let took = started.elapsed();
        let after = Memory::now();
        println!(
            "windows/{journal}: {RECIPIENTS} activities to distinct recipients in {:.1} s ({allowed} allowed, \
             {blocked} blocked): {} window actors; {} ({} before); per window {}",
            took.as_secs_f64(),
            engine.live_actors().0,
            after.show(),
            before.show(),
            after.per(&before, RECIPIENTS)
        );

        // Past the window: the counts are old; a few new recipients count now.
        clock.advance(chrono::Duration::seconds(61));
        let (_, _) = drive(&engine, STILL_COUNTED, |i| to_recipient(RECIPIENTS + i)).await;
        let waiting = Instant::now();
        while engine.live_actors().0 > STILL_COUNTED as usize && waiting.elapsed() < Duration::from_secs(30) {
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        let retired_in = waiting.elapsed();
        let left = engine.live_actors().0;
        // A retired actor ends on its arbiter once its last address is
        // dropped; give the arbiters a moment to get there.
        actix_rt::time::sleep(Duration::from_secs(2)).await;
        let idle = Memory::now();
        let trimmed = trimmed_rss();
        println!(
            "windows/{journal}: clock +61 s, {STILL_COUNTED} new recipients counted; {left} window actors left after \
             {:.2} s of real time (idle {} s, sweep every {} ms); {}; RSS after malloc_trim {}",
            retired_in.as_secs_f64(),
            WINDOW_IDLE.as_secs(),
            (WINDOW_IDLE / 4).as_millis(),
            idle.show(),
            mb(trimmed)
        );
        let kept = engine.live_actors().0;
        assert_eq!(kept, STILL_COUNTED as usize, "only the windows with counts are left");
        engine.shutdown();
    });
}

/// The control of `windows`: the same activities without any policy, so no
/// window; what is left is what the trail and the journal keep.
fn trail(journal: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sys = actix::System::new();
    sys.block_on(async {
        let engine = build_in(Engine::builder().clock(ManualClock::new(t0())), journal, dir.path()).await;
        let before = Memory::now();
        drive(&engine, RECIPIENTS, to_recipient).await;
        let after = Memory::now();
        println!(
            "trail/{journal}: {RECIPIENTS} activities to distinct recipients, no policy: {}; per activity {}",
            after.show(),
            after.per(&before, RECIPIENTS)
        );
        engine.shutdown();
    });
}

fn approvals(journal: &str, n: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sys = actix::System::new();
    let clock = ManualClock::new(t0());
    sys.block_on(async {
        let engine = build_in(Engine::builder().clock(clock.clone()), journal, dir.path()).await;
        add_policies(&engine, vec![large_transaction_policy()]).await;
        // Warm-up: the actors, arbiters, journal and tables in use once.
        drive(&engine, 2_000, |_| transfer("10")).await;
        // What any activity keeps (its trail index entry), to tell apart
        // from what its approval keeps.
        let start = Memory::now();
        drive(&engine, n, |_| transfer("10")).await;
        let before = Memory::now();
        println!("approvals/{journal}/{n}: {n} allowed activities first: per activity {}", before.per(&start, n));
        let started = Instant::now();
        let ((_, pending, _), ids) = drive(&engine, n, |i| large(i, false)).await;
        let took = started.elapsed();
        let opened = Memory::now();
        assert_eq!(pending, n, "every large transfer is held");
        println!(
            "approvals/{journal}/{n}: {n} pending approvals opened in {:.1} s, {} approval actors; {} ({} before); \
             per pending approval {}",
            took.as_secs_f64(),
            engine.live_actors().1,
            opened.show(),
            before.show(),
            opened.per(&before, n)
        );

        let started = Instant::now();
        for chunk in ids.chunks(CALLERS) {
            for approver in ["us-1", "us-2"] {
                let who = Principal::user(approver, &[]);
                let answers = join_all(chunk.iter().map(|id| engine.decide(&who, id, DecisionValue::Approved, "ok")));
                for answer in answers.await {
                    answer.expect("decision is recorded");
                }
            }
        }
        let took = started.elapsed();
        let resolved = Memory::now();
        let trimmed = trimmed_rss();
        println!(
            "approvals/{journal}/{n}: all approved by two approvers in {:.1} s, {} approval actors left; {}; per \
             resolved approval (against before opening) {}; RSS after malloc_trim {} ({:+.0} B per approval)",
            took.as_secs_f64(),
            engine.live_actors().1,
            resolved.show(),
            resolved.per(&before, n),
            mb(trimmed),
            (trimmed - before.rss) as f64 / n as f64
        );
        engine.shutdown();
    });
}

fn idle(journal: &str, n: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sys = actix::System::new();
    sys.block_on(async {
        let engine = build_in(Engine::builder(), journal, dir.path()).await;
        add_policies(&engine, vec![large_transaction_policy(), large_transaction_policy_without_deadline()]).await;
        let ((_, pending, _), _) = drive(&engine, n, |i| large(i, true)).await;
        assert_eq!(pending, n, "every large transfer is held");
        // Let the fill's stragglers (journal flushes, broadcasts) settle.
        actix_rt::time::sleep(Duration::from_secs(1)).await;
        let (cpu, wall) = (cpu_time(), Instant::now());
        actix_rt::time::sleep(IDLE_WALL).await;
        let (cpu, wall) = (cpu_time() - cpu, wall.elapsed());
        println!(
            "idle/{journal}/{n}: {n} pending approvals ({} actors; half with a deadline a day away), idle for {:.1} s: \
             CPU {:.1} ms = {:.3}% of one core; {}",
            engine.live_actors().1,
            wall.as_secs_f64(),
            cpu.as_secs_f64() * 1e3,
            100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
            Memory::now().show()
        );
        engine.shutdown();
    });
}

async fn build_in(builder: EngineBuilder, journal: &str, dir: &Path) -> Engine {
    let builder = match journal {
        "redb" => builder.journal(RedbJournal::open(dir.join("warden.redb")).expect("redb journal opens")),
        "memory" => builder.journal(MemoryJournal::new()),
        other => panic!("unknown journal `{other}` (redb or memory)"),
    };
    builder.build().await.expect("engine builds")
}

fn run_case(case: &str) {
    let parts: Vec<&str> = case.split('/').collect();
    let n = |i: usize| parts.get(i).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("`{case}` needs a count"));
    match parts.as_slice() {
        ["windows", journal] => windows(journal),
        ["trail", journal] => trail(journal),
        ["approvals", journal, _] => approvals(journal, n(2)),
        ["idle", journal, _] => idle(journal, n(2)),
        _ => panic!("unknown case `{case}`"),
    }
}

fn main() {
    if let Ok(case) = std::env::var(CASE_VAR) {
        run_case(&case);
        return;
    }
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let exe = std::env::current_exe().expect("bench knows its executable");
    for case in CASES.iter().filter(|c| filters.is_empty() || filters.iter().any(|f| c.contains(f.as_str()))) {
        let status = std::process::Command::new(&exe).env(CASE_VAR, case).status().expect("case process runs");
        assert!(status.success(), "case `{case}` failed: {status}");
    }
}
