//! Durable decisions on a real redb file, side by side with what bounds them:
//!
//! - `floor`: one 8-byte write + `File::sync_all` (the fsync floor), and
//!   `RedbJournal::append` of 1000 records per commit (redb's batched rate),
//!   with 200-byte records and with the engine's own records;
//! - `durable/callers/N`: activities per second through `Engine::evaluate`
//!   with N concurrent callers, the seed's two policies (large transactions
//!   need approval; a daily per-wallet velocity limit), each answer durable.
//!   Criterion gives the throughput; the ack latency percentiles, which
//!   criterion does not compute, are printed after the group;
//! - `recovery`: a restart: `RedbJournal::open(..)` and
//!   `Engine::builder().journal(..).build()` over a journal of 1M records made
//!   by the engine, each in a fresh process (this bench, started again), as a
//!   real restart is: a process that already recovered once has its memory
//!   mapped and its allocator warm, and restarts faster than a new one.
//!
//! Run with `cargo bench --bench durability` (about 4.5 minutes on 2 cores).

mod common;

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::SystemRunner;
use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};
use futures_util::future::join_all;
use warden::{ApprovalFilter, ApprovalStatus, DecisionValue, Engine, Journal, MemoryJournal, PageRequest, Principal};
use warden_redb::RedbJournal;

use common::{add_policies, drive, percentile, seed_policies, show, Outcomes, Stream};

/// Activities per criterion iteration of `durable`.
const BATCH: u64 = 1024;
const CALLERS: [usize; 6] = [1, 4, 16, 64, 256, 1024];
/// Records per commit of the batched-rate figure.
const RECORDS_PER_COMMIT: usize = 1000;
/// Size of the journal recovered by `recovery`.
const RECOVERY_RECORDS: u64 = 1_000_000;
/// Approvals left pending in the recovered journal (the others are decided).
const LEFT_PENDING: usize = 100;
/// Names a file in which `recovery` keeps its journal between runs.
const KEEP_JOURNAL_VAR: &str = "WARDEN_BENCH_RECOVERY_JOURNAL";
/// Set in the child process of one `recovery` iteration: the journal to open.
const RESTART_CHILD_VAR: &str = "WARDEN_BENCH_RESTART_CHILD";
/// How the child reports its time on stdout.
const RESTART_REPORT: &str = "restart-nanos=";

fn redb_engine(sys: &SystemRunner, path: &Path) -> Engine {
    sys.block_on(async {
        let journal = RedbJournal::open(path).expect("redb journal opens");
        let engine = Engine::builder().journal(journal).build().await.expect("engine builds");
        add_policies(&engine, seed_policies()).await;
        engine
    })
}

/// The engine's own records: those of `count` activities of the stream.
fn engine_records(sys: &SystemRunner, count: u64) -> Vec<Vec<u8>> {
    let memory = Arc::new(MemoryJournal::new());
    sys.block_on(async {
        let engine = Engine::builder().shared_journal(memory.clone()).build().await.expect("engine builds");
        add_policies(&engine, seed_policies()).await;
        let first = memory.last_seq().expect("memory journal reads").unwrap_or(0) + 1;
        let (next, latencies, outcomes) = (Cell::new(0), RefCell::new(Vec::new()), Cell::new(Outcomes::default()));
        drive(&engine, &Stream::new("records"), &next, 64, count, &latencies, &outcomes).await;
        engine.shutdown();
        let mut records = Vec::new();
        memory
            .scan(first, &mut |r| {
                records.push(r.payload);
                Ok(())
            })
            .expect("memory journal scans");
        records
    })
}

fn floor(c: &mut Criterion) {
    let sys = actix::System::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("floor");
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(4));

    group.throughput(Throughput::Elements(1));
    group.bench_function("file_write_sync_all", |b| {
        let mut file = File::create(dir.path().join("floor")).expect("create file");
        b.iter(|| {
            file.seek(SeekFrom::Start(0)).expect("seek");
            file.write_all(b"12345678").expect("write");
            file.sync_all().expect("sync_all");
        });
    });

    let small: Vec<Vec<u8>> = (0..RECORDS_PER_COMMIT).map(|i| format!("{i:0>200}").into_bytes()).collect();
    let real = engine_records(&sys, RECORDS_PER_COMMIT as u64);
    let real = real[..RECORDS_PER_COMMIT.min(real.len())].to_vec();
    let mean = real.iter().map(Vec::len).sum::<usize>() / real.len().max(1);
    println!("floor: the engine's records average {mean} bytes ({} records of the stream)", real.len());
    group.throughput(Throughput::Elements(RECORDS_PER_COMMIT as u64));
    for (name, batch) in [("redb_append_1000_x_200B", &small), ("redb_append_1000_engine_records", &real)] {
        let journal = RedbJournal::open(dir.path().join(format!("{name}.redb"))).expect("redb journal opens");
        group.bench_function(name, |b| b.iter(|| journal.append(batch).expect("append")));
    }
    group.finish();
}

fn durable(c: &mut Criterion) {
    let sys = actix::System::new();
    let mut group = c.benchmark_group("durable");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(BATCH));
    let mut rows = Vec::new();
    for callers in CALLERS {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = redb_engine(&sys, &dir.path().join("warden.redb"));
        let stream = Stream::new(&format!("callers-{callers}"));
        let (next, latencies, outcomes) = (Cell::new(0), RefCell::new(Vec::new()), Cell::new(Outcomes::default()));
        let busy = Cell::new(Duration::ZERO);
        group.bench_function(BenchmarkId::new("callers", callers), |b| {
            b.iter_custom(|iters| {
                let took = sys.block_on(drive(&engine, &stream, &next, callers, iters * BATCH, &latencies, &outcomes));
                busy.set(busy.get() + took);
                took
            });
        });
        engine.shutdown();
        let mut latencies = latencies.into_inner();
        latencies.sort_unstable();
        let o = outcomes.get();
        rows.push(format!(
            "| {callers} | {:.0} | {} | {} | {} | {} | {} / {} / {} |",
            latencies.len() as f64 / busy.get().as_secs_f64(),
            show(percentile(&latencies, 50.0)),
            show(percentile(&latencies, 99.0)),
            show(percentile(&latencies, 100.0)),
            latencies.len(),
            o.allowed,
            o.pending,
            o.blocked,
        ));
    }
    group.finish();
    println!("\ndurable activities on redb, every activity of the run (warm-up included):");
    println!("| callers | activities/s | ack p50 | ack p99 | max | activities | allowed / pending / blocked |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for row in rows {
        println!("{row}");
    }
    println!();
}

/// Fills `path` with about [`RECOVERY_RECORDS`] records made by the engine:
/// the seed's stream through an engine on a memory journal (so the fill does
/// not wait for 800k fsyncs), most approvals decided by two approvers, then
/// the records copied unchanged into redb, 10 000 per commit.
fn fill(sys: &SystemRunner, path: &Path) -> (u64, Outcomes) {
    let memory = Arc::new(MemoryJournal::new());
    let outcomes = Cell::new(Outcomes::default());
    sys.block_on(async {
        let engine = Engine::builder().shared_journal(memory.clone()).build().await.expect("engine builds");
        add_policies(&engine, seed_policies()).await;
        let stream = Stream::new("recovery");
        let (next, latencies) = (Cell::new(0), RefCell::new(Vec::new()));
        let records = || memory.last_seq().expect("memory journal reads").unwrap_or(0);
        // A held activity ends up with 5 records (activity, approval, two
        // decisions, resolution): aim below the target, then top up.
        while records() < RECOVERY_RECORDS {
            let left = RECOVERY_RECORDS - records();
            let chunk = (left * 20 / 24).clamp(1, 50_000);
            drive(&engine, &stream, &next, 256, chunk, &latencies, &outcomes).await;
            latencies.borrow_mut().clear();
            decide_pending(&engine, LEFT_PENDING).await;
        }
        engine.shutdown();
    });
    let journal = RedbJournal::open(path).expect("redb journal opens");
    let mut batch = Vec::with_capacity(10_000);
    memory
        .scan(1, &mut |record| {
            batch.push(record.payload);
            if batch.len() == 10_000 {
                journal.append(&batch)?;
                batch.clear();
            }
            Ok(())
        })
        .expect("records copy");
    journal.append(&batch).expect("records copy");
    (journal.last_seq().expect("redb journal reads").unwrap_or(0), outcomes.get())
}

/// Approves every pending approval but the `keep` newest, two approvers each.
async fn decide_pending(engine: &Engine, keep: usize) {
    let filter = ApprovalFilter { status: Some(ApprovalStatus::Pending), ..ApprovalFilter::default() };
    let mut ids = Vec::new();
    let mut page = PageRequest { limit: Some(1000), pagination_token: None };
    loop {
        let found = engine.approvals(&filter, &page).expect("approvals list");
        ids.extend(found.items.into_iter().map(|a| a.id));
        match found.next_page_token {
            Some(token) => page.pagination_token = Some(token),
            None => break,
        }
    }
    ids.truncate(ids.len().saturating_sub(keep));
    for chunk in ids.chunks(256) {
        for approver in ["us-1", "us-2"] {
            let who = Principal::user(approver, &[]);
            join_all(chunk.iter().map(|id| engine.decide(&who, id, DecisionValue::Approved, "bench"))).await;
        }
    }
}

fn recovery(c: &mut Criterion) {
    let sys = actix::System::new();
    let dir = tempfile::tempdir().expect("tempdir");
    // A journal kept between runs (made on the first) saves the ~40 s fill
    // while working on recovery; it must be made anew when the record format
    // changes.
    let kept = std::env::var_os(KEEP_JOURNAL_VAR).map(std::path::PathBuf::from);
    let path = kept.clone().unwrap_or_else(|| dir.path().join("recovery.redb"));
    let records = if path.exists() {
        let journal = RedbJournal::open(&path).expect("kept journal opens");
        let records = journal.last_seq().expect("redb journal reads").unwrap_or(0);
        println!("recovery: {records} records, reused from {}", path.display());
        records
    } else {
        let filling = Instant::now();
        let (records, o) = fill(&sys, &path);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        println!(
            "recovery: {records} records ({} allowed / {} held / {} blocked activities, all but {LEFT_PENDING} held \
             ones approved), {:.0} MB file, made in {:.1} s",
            o.allowed,
            o.pending,
            o.blocked,
            size as f64 / 1e6,
            filling.elapsed().as_secs_f64()
        );
        records
    };

    // The parts, once: redb's open (integrity check) and a bare scan.
    let opened = Instant::now();
    let journal = RedbJournal::open(&path).expect("redb journal opens");
    let open_time = opened.elapsed();
    let scanned = Instant::now();
    let mut bytes = 0usize;
    journal
        .scan(1, &mut |r| {
            bytes += r.payload.len();
            Ok(())
        })
        .expect("scan");
    println!(
        "recovery parts: RedbJournal::open {}, scan of every record {} ({bytes} payload bytes)",
        show(open_time),
        show(scanned.elapsed())
    );
    drop(journal);

    let mut group = c.benchmark_group("recovery");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_secs(20));
    group.bench_function(BenchmarkId::new("restart", records), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| restart_in_child(&path)).sum());
    });
    group.finish();
}

/// One restart in a new process of this bench: its own measure of open and
/// build, without the process start.
fn restart_in_child(path: &Path) -> Duration {
    let exe = std::env::current_exe().expect("bench knows its executable");
    let output = std::process::Command::new(exe)
        .env(RESTART_CHILD_VAR, path)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("restart child runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let nanos = stdout.lines().find_map(|l| l.strip_prefix(RESTART_REPORT)).and_then(|n| n.trim().parse().ok());
    match nanos {
        Some(nanos) if output.status.success() => Duration::from_nanos(nanos),
        _ => panic!("restart child failed ({}): {stdout}", output.status),
    }
}

/// The child's side: open the journal, recover, report, and leave at once
/// (a restarted server goes on running; its teardown is not a restart's cost).
fn restart_child(path: &Path) -> ! {
    let sys = actix::System::new();
    let started = Instant::now();
    let journal = RedbJournal::open(path).expect("redb journal opens");
    let _engine = sys.block_on(Engine::builder().journal(journal).build()).expect("engine recovers");
    println!("{RESTART_REPORT}{}", started.elapsed().as_nanos());
    std::process::exit(0)
}

criterion_group!(benches, floor, durable, recovery);

fn main() {
    if let Some(path) = std::env::var_os(RESTART_CHILD_VAR) {
        restart_child(Path::new(&path));
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
