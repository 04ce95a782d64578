//! Evaluation in process, against the number of active policies: the time of
//! `Engine::evaluate` end to end on an in-memory journal (no fsync). The pure
//! evaluation is private, so its cost is read as a difference:
//!
//! - `filtered/N`: N policies of which N - 1 cannot match the activity
//!   (`walletId` or wallet-tag filters for other wallets, every rule kind
//!   among them); `filtered/0` is the engine without policies, so what is
//!   above it is the cost of the policies;
//! - `seed/2`: the seed's large-transaction and daily velocity policies (the
//!   wallet's window reaches its limit during warm-up: blocked from then on);
//! - `unfiltered_stateless/N`: N policies without filters, all matching, none
//!   triggering, stateless kinds (amount limit, nominal limit, whitelist): the
//!   index cannot help, every policy is evaluated; the slope is the cost of
//!   one matching policy;
//! - `unfiltered_any_kind/N`: the same with velocity rules (2 in 5) and one
//!   `AlwaysTrigger` Block policy, so each activity also reserves in
//!   N * 2/5 window actors, and is blocked, so the windows stay empty;
//! - `replay/0`: a repeated `externalId`: validation and a lookup, no
//!   evaluation and no journal: the engine's edge alone;
//! - `hot_window/counts_in_window/K`: one organization-wide daily velocity
//!   policy whose window holds K counts (activities then blocked so K stays).
//!
//! `evaluate_sequential` sends one activity at a time (the latency an
//! embedded signer sees); `evaluate_pipelined` keeps 64 in flight, so the
//! journal writer's thread hop is shared and the per-activity CPU shows.
//!
//! Run with `cargo bench --bench evaluation` (about 4 minutes).

mod common;

use std::cell::Cell;
use std::time::{Duration, Instant};

use actix::SystemRunner;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::future::join_all;
use serde_json::json;
use warden::{ActivityRequest, Engine, MemoryJournal, PolicySpec};

use common::{add_policies, blocker, mostly_filtered_out, policy, seed_policies, transfer, unfiltered};

/// Activities in flight in the pipelined group.
const IN_FLIGHT: usize = 64;
/// Counts held by the hot window before it is measured. Filling costs
/// K^2/2 additions (each check sums the window), so K stays modest.
const HOT_COUNTS: [u64; 4] = [0, 1_000, 10_000, 30_000];

fn engine(sys: &SystemRunner, policies: Vec<PolicySpec>) -> Engine {
    sys.block_on(async {
        let engine = Engine::builder().journal(MemoryJournal::new()).build().await.expect("engine builds");
        add_policies(&engine, policies).await;
        engine
    })
}

/// `iters` activities one after the other.
fn sequential(sys: &SystemRunner, engine: &Engine, request: &ActivityRequest, iters: u64) -> Duration {
    sys.block_on(async {
        let started = Instant::now();
        for _ in 0..iters {
            let activity = engine.evaluate(request.clone()).await.expect("activity is evaluated");
            std::hint::black_box(activity);
        }
        started.elapsed()
    })
}

/// `iters` activities, [`IN_FLIGHT`] at a time.
fn pipelined(sys: &SystemRunner, engine: &Engine, request: &ActivityRequest, iters: u64) -> Duration {
    sys.block_on(async {
        let left = Cell::new(iters);
        let started = Instant::now();
        join_all((0..IN_FLIGHT).map(|_| async {
            while left.get() > 0 {
                left.set(left.get() - 1);
                let activity = engine.evaluate(request.clone()).await.expect("activity is evaluated");
                std::hint::black_box(activity);
            }
        }))
        .await;
        started.elapsed()
    })
}

type Case = (&'static str, usize, fn(usize) -> Vec<PolicySpec>);

fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = vec![("replay", 0, |_| Vec::new())];
    for n in [0, 1, 10, 100, 1000] {
        cases.push(("filtered", n, mostly_filtered_out));
    }
    // The seed's two policies: the per-wallet velocity window fills to its
    // limit (222 transfers) during warm-up, then activities are blocked.
    cases.push(("seed", 2, |_| seed_policies()));
    for n in [10, 100, 1000] {
        cases.push(("unfiltered_stateless", n, |n| unfiltered(n, false)));
    }
    for n in [10, 100, 1000] {
        cases.push(("unfiltered_any_kind", n, |n| unfiltered(n, true)));
    }
    cases
}

fn policies(c: &mut Criterion) {
    let sys = actix::System::new();
    let plain = transfer("4500.00");
    let mut replayed = plain.clone();
    replayed.external_id = Some("signer-req-1".to_owned());
    for (mode, in_flight) in [("sequential", 1), ("pipelined", IN_FLIGHT)] {
        let mut group = c.benchmark_group(format!("evaluate_{mode}"));
        group.sample_size(30);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(3));
        group.throughput(Throughput::Elements(1));
        for (name, n, make) in cases() {
            // A fresh engine per case: no case inherits another's activities.
            let engine = engine(&sys, make(n));
            let request = if name == "replay" {
                sys.block_on(engine.evaluate(replayed.clone())).expect("first evaluation");
                &replayed
            } else {
                &plain
            };
            group.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter_custom(|iters| {
                    if in_flight == 1 {
                        sequential(&sys, &engine, request, iters)
                    } else {
                        pipelined(&sys, &engine, request, iters)
                    }
                });
            });
            engine.shutdown();
        }
        group.finish();
    }
}

/// One organization-wide daily velocity policy whose window holds `k`
/// counts: every check sums the whole window, so its cost follows `k`. Once
/// filled, a blocking policy keeps the measured activities from counting.
fn hot_window(c: &mut Criterion) {
    let sys = actix::System::new();
    let request = transfer("1.00");
    let mut group = c.benchmark_group("hot_window");
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(1));
    for k in HOT_COUNTS {
        let org_velocity = policy(
            "Organization Daily Velocity".to_owned(),
            json!({"kind": "TransactionAmountVelocity",
                   "configuration": {"limit": "1000000000000", "currency": "USD", "timeWindow": 86400,
                                     "scope": "Organization"}}),
            json!({}),
        );
        let engine = engine(&sys, vec![org_velocity]);
        let filling = Instant::now();
        sys.block_on(async {
            let mut filled = 0;
            while filled < k {
                let batch = (k - filled).min(IN_FLIGHT as u64);
                join_all((0..batch).map(|_| engine.evaluate(request.clone()))).await;
                filled += batch;
            }
            add_policies(&engine, vec![blocker()]).await;
        });
        println!("hot_window: {k} counts in the window, filled in {:.1} s", filling.elapsed().as_secs_f64());
        group.bench_function(BenchmarkId::new("counts_in_window", k), |b| {
            b.iter_custom(|iters| sequential(&sys, &engine, &request, iters));
        });
        engine.shutdown();
    }
    group.finish();
}

/// The floor under a sequential `evaluate`: the journal writer's shape with
/// nothing to write. A job goes to a thread over a std channel and the answer
/// comes back over a tokio oneshot, awaited on the actix system thread. Two
/// thread wake-ups; on this VM an idle vCPU takes tens of microseconds to wake.
fn thread_round_trip(c: &mut Criterion) {
    let sys = actix::System::new();
    let (jobs, inbox) = std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<u64>>();
    let worker = std::thread::spawn(move || {
        while let Ok(done) = inbox.recv() {
            let _ = done.send(1);
        }
    });
    let mut group = c.benchmark_group("floor");
    group.sample_size(30);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.bench_function("thread_round_trip", |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let (done, answer) = tokio::sync::oneshot::channel();
                    jobs.send(done).expect("worker runs");
                    std::hint::black_box(answer.await.expect("worker answers"));
                }
                started.elapsed()
            })
        });
    });
    group.finish();
    drop(jobs);
    worker.join().expect("worker stops");
}

criterion_group!(benches, thread_round_trip, policies, hot_window);
criterion_main!(benches);
