//! Durable activities through the engine on the PostgreSQL journal, beside
//! redb in the same run: `durable_journal/{postgres,redb}/N` runs
//! `Engine::evaluate` with N concurrent callers, the seed's two policies,
//! every answer committed before it is sent (the engine's journal writer
//! groups the waiting callers' records into one append). Criterion gives the
//! throughput; the ack latency percentiles are printed after the group.
//!
//! PostgreSQL is a throwaway local server (`TempPostgres`, loopback TCP,
//! `fsync` on). Run with `cargo bench --bench durability_postgres` (about two
//! minutes on 2 cores).

mod common;

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use warden::{Engine, Journal};
use warden_postgres::testing::TempPostgres;
use warden_postgres::PostgresJournal;
use warden_redb::RedbJournal;

use common::{add_policies, drive, percentile, seed_policies, show, Outcomes, Stream};

/// Activities per criterion iteration.
const BATCH: u64 = 256;
const CALLERS: [usize; 4] = [1, 16, 64, 256];

fn durable(c: &mut Criterion) {
    let sys = actix::System::new();
    let server = TempPostgres::start().expect("start postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("durable_journal");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(BATCH));
    let mut rows = Vec::new();
    for callers in CALLERS {
        for backend in ["postgres", "redb"] {
            let journal: Arc<dyn Journal> = match backend {
                "postgres" => {
                    let url = server.create_database(&format!("callers_{callers}")).expect("database");
                    Arc::new(PostgresJournal::open(&url).expect("postgres journal opens"))
                }
                _ => Arc::new(RedbJournal::open(dir.path().join(format!("{callers}.redb"))).expect("redb opens")),
            };
            let engine = sys.block_on(async {
                let engine = Engine::builder().shared_journal(journal).build().await.expect("engine builds");
                add_policies(&engine, seed_policies()).await;
                engine
            });
            let stream = Stream::new(&format!("{backend}-{callers}"));
            let (next, latencies, outcomes) = (Cell::new(0), RefCell::new(Vec::new()), Cell::new(Outcomes::default()));
            let busy = Cell::new(Duration::ZERO);
            group.bench_function(BenchmarkId::new(backend, callers), |b| {
                b.iter_custom(|iters| {
                    let took =
                        sys.block_on(drive(&engine, &stream, &next, callers, iters * BATCH, &latencies, &outcomes));
                    busy.set(busy.get() + took);
                    took
                });
            });
            engine.shutdown();
            let mut latencies = latencies.into_inner();
            latencies.sort_unstable();
            rows.push(format!(
                "| {backend} | {callers} | {:.0} | {} | {} | {} | {} |",
                latencies.len() as f64 / busy.get().as_secs_f64(),
                show(percentile(&latencies, 50.0)),
                show(percentile(&latencies, 99.0)),
                show(percentile(&latencies, 100.0)),
                latencies.len(),
            ));
        }
    }
    group.finish();
    println!("\ndurable activities, every activity of the run (warm-up included):");
    println!("| journal | callers | activities/s | ack p50 | ack p99 | max | activities |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        println!("{row}");
    }
    println!();
}

criterion_group!(benches, durable);
criterion_main!(benches);
