//! Warden side by side with its peers, in one run (issue 13). Prints, on
//! standard output and nothing else:
//!
//! ```text
//! compare K=<k> warden_ns=<n> cedar_ns=<n> speedup=<x>               K = 1, 10, 100, 1000
//! durable callers=<n> warden_per_s=<n> postgres_per_s=<n> ratio=<x>  1, 16, 64, 256 callers
//! ```
//!
//! - `compare`: the time of one pure decision, `warden::PolicyEvaluator::evaluate`
//!   against Cedar's `Authorizer::is_authorized`, on the scenario of the
//!   library (K amount-limit `Block` policies filtered by wallet tag, one of
//!   which matches); `speedup` = cedar / warden. The request is built before
//!   timing on both sides. Before timing, both sides are checked to give the
//!   same decisions (allowed under the limit, blocked over it, policies of
//!   other tags never blocking).
//! - `durable`: durable velocity decisions per second with N concurrent
//!   callers, each sending its next activity when the previous one is
//!   answered, spread over one thread per core (at most one per caller) on
//!   both sides, as an HTTP server's workers would be: Warden's `Engine::evaluate` on a redb journal in a temp dir
//!   (an answer is committed before it is given) against PostgreSQL's
//!   `decide` function, one round trip per decision, on a throwaway server
//!   with `fsync` on (`warden_postgres::testing::TempPostgres`, from the
//!   machine's packages through `scripts/postgres.sh`). `ratio` = warden /
//!   postgres. When PostgreSQL cannot be started, one line says so instead.
//!
//! `WARDEN_COMPARE_CALLERS=1,16` limits the durable part to those caller
//! counts.
//!
//! `WARDEN_COMPARE_ONLY=engine` prints instead the cost of the whole
//! `Engine::evaluate` on a memory journal, `engine <case> in_flight=<n>
//! recorder=<r> journal=<j> cpu_ns=<n> wall_ns=<n> steal_pct=<n>` (CPU of every
//! thread, per activity, requests built before timing, a batch of 500 at a
//! time; `steal_pct`: the share of the machine's CPU time its hypervisor took
//! away during the runs). With the feature `cedar`, a `compare K=1` line
//! comes first, and each engine line ends with `at_budget_speed_cpu_ns=<n>`:
//! `cpu_ns` scaled by Cedar's decision then against its 2.5 us on the day the
//! budget's figures were taken (this VM's speed moves by up to 2.5x from day
//! to day, steal or not; Warden's pure evaluation moves with Cedar's). For
//! the scenario's amount limits (`K=1`, `K=100`), a velocity window (`velocity`), `K=1` with the memory
//! journal reached through the writer thread as a journal that syncs is
//! (`journal=memory-through-writer-thread`), and `K=1` with the Prometheus
//! recorder installed.
//!
//! Each figure is the median of [`RUNS`] timed runs after a warm-up. Progress
//! notes go to standard error. `WARDEN_COMPARE_USD` sets the timed transfer's
//! value (default 4500.00: under the limit, allowed; 150000.00 times the
//! blocked decision instead).
//!
//! Run with `cargo bench -p warden-compare --features cedar` (about 70 s;
//! the first build compiles Cedar). Without the feature the `compare` lines
//! are replaced by one line saying so: Cedar turns on serde_json's
//! `preserve_order`, and as a dependency of a workspace member it would do so
//! for Warden's own tests too (see `Cargo.toml`).
//!
//! `--features mimalloc` runs the whole process (both sides) on mimalloc,
//! the allocator of the `warden` binary, instead of glibc's malloc.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use warden::{ActivityRequest, ActivityStatus, Engine};
use warden_compare::{
    median, stream_wallet, transfer, velocity_policy, warden_policies, MATCHING_TAG, POSTGRES_SCHEMA, VELOCITY_LIMIT,
    WINDOW_SECONDS,
};
use warden_journal::{Record, Seq};
use warden_postgres::testing::TempPostgres;
use warden_redb::RedbJournal;

/// As the `warden` binary allocates (see `--features mimalloc` above).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: warden::allocator::Mimalloc = warden::allocator::Mimalloc;

/// Cedar's decision with one policy on the day the budget's figures were
/// taken (`design.md`: "about 2.5 us"; 2,413 to 2,579 ns in this bench's
/// runs of the time, BENCHMARKS.md section 12).
const BUDGET_CEDAR_K1_NS: f64 = 2500.0;

/// Concurrent callers of the durable comparison.
const CALLERS: [usize; 4] = [1, 16, 64, 256];
/// Timed runs per figure; the median is kept.
const RUNS: usize = 5;
/// Length of one timed durable run.
const DURABLE_RUN: Duration = Duration::from_millis(1200);
/// Warm-up before the durable runs of one side and caller count.
const DURABLE_WARM_UP: Duration = Duration::from_millis(600);
/// Connections PostgreSQL must accept: one per caller, and a few spare.
const POSTGRES_CONNECTIONS: usize = 300;

fn main() {
    // `cargo bench` passes `--bench`; this main takes no options.
    let usd = std::env::var("WARDEN_COMPARE_USD").unwrap_or_else(|_| "4500.00".to_owned());
    eprintln!("compare: timed transfer of {usd} USD tagged `{MATCHING_TAG}`; {RUNS} runs per figure, median kept");
    eprintln!("compare: load average at start {}", load_average());
    eprintln!("compare: allocator {}", if cfg!(feature = "mimalloc") { "mimalloc" } else { "the system's (glibc)" });
    // The first case is timed once untold: the first timings of a process
    // (page faults, cold caches, a vCPU still clocking up) are not its cost.
    let only = std::env::var("WARDEN_COMPARE_ONLY").unwrap_or_default();
    if only == "engine" {
        // The day's speed: this VM's figures move by up to 2.5x from day to
        // day, and the budget's were taken when this line gave about 2.5 us
        // for Cedar and 100 ns for Warden. Taken first, in a clean process
        // (after the engine's runs, whose journal holds 200k activities,
        // Cedar's figure rises by another 40%).
        #[cfg(feature = "cedar")]
        let cedar_k1 = {
            evaluation::compare(evaluation::KS[0], &usd, false);
            Some(evaluation::compare(evaluation::KS[0], &usd, true).1)
        };
        #[cfg(not(feature = "cedar"))]
        let cedar_k1 = None;
        for k in [1, 100] {
            let policies = warden_policies(k).into_iter().map(|p| p.spec).collect();
            engine_cost(&format!("K={k}"), policies, "none", Route::InPlace, cedar_k1);
        }
        // A window checked on every activity: a round trip to its actor.
        engine_cost("velocity", vec![velocity_policy()], "none", Route::InPlace, cedar_k1);
        // What a journal that syncs pays besides its fsync: the hand-off to
        // the writer thread and back (a memory journal that does not say
        // its appends never wait).
        let policies = warden_policies(1).into_iter().map(|p| p.spec).collect();
        engine_cost("K=1", policies, "none", Route::WriterThread, cedar_k1);
        // As the server runs it: metrics reach a Prometheus recorder (process
        // wide and for good, so last).
        warden::http::install_metrics();
        let policies = warden_policies(1).into_iter().map(|p| p.spec).collect();
        engine_cost("K=1", policies, "prometheus", Route::InPlace, cedar_k1);
        return;
    }
    if only != "durable" {
        #[cfg(feature = "cedar")]
        {
            evaluation::compare(evaluation::KS[0], &usd, false);
            for k in evaluation::KS {
                evaluation::compare(k, &usd, true);
            }
            eprintln!("compare: load average after the evaluation cases {}", load_average());
        }
        #[cfg(not(feature = "cedar"))]
        println!(
            "compare skipped: Cedar is built only with the feature `cedar`: cargo bench -p warden-compare --features cedar"
        );
    }
    if only != "evaluation" {
        durable();
    }
    eprintln!("compare: load average at the end {}", load_average());
}

/// The machine's load averages, for the notes on standard error.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(|_| "unknown".to_owned(), |l| l.trim().to_owned())
}

fn durable() {
    let mut server = match TempPostgres::start() {
        Ok(server) => server,
        Err(e) => {
            println!("durable skipped: PostgreSQL could not be started from the machine's packages ({e})");
            return;
        }
    };
    let url = match allow_connections(&mut server) {
        Ok(url) => url,
        Err(e) => {
            println!("durable skipped: PostgreSQL started but could not be prepared ({e})");
            return;
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for callers in callers() {
        let warden = warden_rate(&dir.path().join(format!("callers-{callers}.redb")), callers);
        let postgres = postgres_rate(&url, callers);
        println!(
            "durable callers={callers} warden_per_s={warden:.0} postgres_per_s={postgres:.0} ratio={:.2}",
            warden / postgres
        );
    }
}

/// The caller counts of the durable part: [`CALLERS`], or those listed in
/// `WARDEN_COMPARE_CALLERS` (comma-separated), for a quicker look at one.
fn callers() -> Vec<usize> {
    match std::env::var("WARDEN_COMPARE_CALLERS") {
        Ok(list) => list.split(',').map(|n| n.trim().parse().expect("WARDEN_COMPARE_CALLERS lists numbers")).collect(),
        Err(_) => CALLERS.to_vec(),
    }
}

/// Raises the server's connection limit to [`POSTGRES_CONNECTIONS`] (it is
/// read at start only: a restart applies it), creates the scenario's schema,
/// and returns the database's URL.
fn allow_connections(server: &mut TempPostgres) -> Result<String, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = connect(&server.url("postgres")).await?;
        client.batch_execute(&format!("ALTER SYSTEM SET max_connections = {POSTGRES_CONNECTIONS}")).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    server.crash_and_restart()?;
    let url = server.create_database("compare")?;
    runtime.block_on(async {
        let client = connect(&url).await?;
        client.batch_execute(POSTGRES_SCHEMA).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    Ok(url)
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The activity `i` of the durable stream: a small transfer from its wallet.
fn stream_activity(template: &ActivityRequest, i: u64) -> ActivityRequest {
    let mut request = template.clone();
    request.wallet.as_mut().expect("template has a wallet").id = stream_wallet(i);
    request
}

/// Threads the callers of one side run on: one per core, as an HTTP
/// server's workers would be, never more than there are callers.
fn caller_threads(callers: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    callers.clamp(1, cores)
}

/// Decisions per second with `callers` callers spread over
/// [`caller_threads`] threads: the median of [`RUNS`] runs of
/// [`DURABLE_RUN`] after [`DURABLE_WARM_UP`], each run's rate the sum of its
/// threads'. `thread(share, start)` runs on its own thread with `share`
/// callers and answers that thread's rate of each run, the warm-up first,
/// starting every run at `start` (so that the threads run together).
fn spread<T>(callers: usize, thread: T) -> f64
where
    T: Fn(usize, &Barrier) -> Vec<f64> + Sync,
{
    let threads = caller_threads(callers);
    let start = Barrier::new(threads);
    let per_thread: Vec<Vec<f64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                // Callers are dealt out as evenly as they go.
                let share = callers / threads + usize::from(t < callers % threads);
                let (thread, start) = (&thread, &start);
                scope.spawn(move || thread(share, start))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("caller thread")).collect()
    });
    // Run r's rate is the sum of every thread's run r; the warm-up is left out.
    let mut samples: Vec<f64> = (1..=RUNS).map(|r| per_thread.iter().map(|runs| runs[r]).sum()).collect();
    median(&mut samples)
}

/// One thread's part of [`spread`]: `callers` callers, each sending its next
/// activity when the previous one is answered. `decide(caller, i)` makes
/// decision `i` (numbered across every thread by `next`) for the thread's
/// caller `caller` and answers whether it was allowed; every one must be.
/// Answers the warm-up's rate, then each timed run's.
async fn rate<F, D>(callers: usize, start: &Barrier, next: &AtomicU64, decide: D) -> Vec<f64>
where
    D: Fn(usize, u64) -> F,
    F: std::future::Future<Output = bool>,
{
    let run = |length: Duration| {
        let decide = &decide;
        async move {
            // The thread has nothing else to run between runs: waiting here
            // blocks no one.
            start.wait();
            let started = Instant::now();
            let done = Cell::new(0u64);
            let counted = &done;
            join_all((0..callers).map(|caller| async move {
                while started.elapsed() < length {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    assert!(decide(caller, i).await, "decision {i} was blocked: the window limit is far above the run");
                    counted.set(counted.get() + 1);
                }
            }))
            .await;
            done.get() as f64 / started.elapsed().as_secs_f64()
        }
    };
    let mut rates = vec![run(DURABLE_WARM_UP).await];
    for _ in 0..RUNS {
        rates.push(run(DURABLE_RUN).await);
    }
    rates
}

fn warden_rate(path: &std::path::Path, callers: usize) -> f64 {
    let sys = actix::System::new();
    let engine = sys.block_on(async {
        let journal = RedbJournal::open(path).expect("redb journal opens");
        let engine = Engine::builder().journal(journal).build().await.expect("engine builds");
        let admin = warden::Principal::user("us-alice", &[warden::Role::Admin]);
        engine.create_policy(&admin, velocity_policy()).await.expect("velocity policy is created");
        engine
    });
    let template = transfer("wa-0", MATCHING_TAG, "4500.00");
    let next = AtomicU64::new(0);
    // Each caller thread runs its callers in a system of its own, as each
    // worker of Warden's HTTP server does; the engine's actors run on its
    // own arbiters.
    let per_s = spread(callers, |share, start| {
        actix::System::new().block_on(rate(share, start, &next, |_, i| {
            let (engine, request) = (engine.clone(), stream_activity(&template, i));
            async move {
                engine.evaluate(request).await.expect("activity is evaluated").status == ActivityStatus::Allowed
            }
        }))
    });
    engine.shutdown();
    drop(sys);
    per_s
}

fn postgres_rate(url: &str, callers: usize) -> f64 {
    let template = transfer("wa-0", MATCHING_TAG, "4500.00");
    let next = AtomicU64::new(0);
    spread(callers, |share, start| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let mut clients = Vec::with_capacity(share);
            for _ in 0..share {
                let client = connect(url).await.expect("postgres connection");
                let decide = client.prepare("SELECT decide($1, $2, $3, $4)").await.expect("decide prepares");
                clients.push((client, decide));
            }
            // Caller c has connection c: one session per caller, as a
            // signer's workers would each hold one.
            let clients = Rc::new(clients);
            rate(share, start, &next, |connection, i| {
                let clients = clients.clone();
                let request = stream_activity(&template, i);
                async move {
                    let (client, decide) = &clients[connection];
                    let wallet = request.wallet.as_ref().expect("wallet").id.clone();
                    let body = serde_json::to_string(&request).expect("request encodes");
                    let row = client
                        .query_one(decide, &[&wallet, &body, &(VELOCITY_LIMIT as i64), &(WINDOW_SECONDS as i64)])
                        .await
                        .expect("decide runs");
                    row.get::<_, bool>(0)
                }
            })
            .await
        })
    })
}

/// CPU time of this process so far (user and system, every thread).
fn process_cpu() -> Duration {
    // SAFETY: `getrusage` writes only into the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The machine's CPU time so far, in ticks of `/proc/stat` (all zero where
/// it cannot be read).
#[derive(Clone, Copy)]
struct MachineTicks {
    all: u64,
    stolen: u64,
}

fn machine_ticks() -> MachineTicks {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"
    let figures: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    MachineTicks { all: figures.iter().sum(), stolen: figures.get(7).copied().unwrap_or(0) }
}

impl MachineTicks {
    /// Percent of the machine's CPU time stolen between `before` and now.
    fn steal_pct_since(self, before: MachineTicks) -> f64 {
        let all = self.all.saturating_sub(before.all);
        if all == 0 {
            return 0.0;
        }
        100.0 * self.stolen.saturating_sub(before.stolen) as f64 / all as f64
    }
}

/// How the engine's commits reach the memory journal of [`engine_cost`].
#[derive(Clone, Copy)]
enum Route {
    /// Appended on the caller's thread (the memory journal's own route).
    InPlace,
    /// Through the writer thread, as every journal that syncs is.
    WriterThread,
}

/// A memory journal that keeps the trait's default answer to
/// `appends_without_waiting` (`false`), so the engine hands its commits to
/// the writer thread.
struct ThroughTheWriter(warden::MemoryJournal);

impl warden::Journal for ThroughTheWriter {
    fn append(&self, payloads: &[Vec<u8>]) -> Result<Seq, warden::JournalError> {
        self.0.append(payloads)
    }

    fn scan(
        &self,
        from: Seq,
        visit: &mut dyn FnMut(Record) -> Result<(), warden::JournalError>,
    ) -> Result<(), warden::JournalError> {
        self.0.scan(from, visit)
    }

    fn read(&self, seq: Seq) -> Result<Option<Record>, warden::JournalError> {
        self.0.read(seq)
    }

    fn last_seq(&self) -> Result<Option<Seq>, warden::JournalError> {
        self.0.last_seq()
    }
}

/// CPU and wall time per `Engine::evaluate` on a memory journal reached by
/// `route`, with `policies` (the case is named `case`) and the metrics
/// `recorder` the process has, one at a time and [`ENGINE_IN_FLIGHT`] in
/// flight.
fn engine_cost(case: &str, policies: Vec<warden::PolicySpec>, recorder: &str, route: Route, cedar_k1: Option<f64>) {
    const ENGINE_IN_FLIGHT: usize = 64;
    const ACTIVITIES: u64 = 20_000;
    // Requests made at a time (a few hundred KB: they stay in the cache).
    const ENGINE_BATCH: usize = 500;
    let sys = actix::System::new();
    let engine = sys.block_on(async {
        let builder = match route {
            Route::InPlace => Engine::builder().journal(warden::MemoryJournal::new()),
            Route::WriterThread => Engine::builder().journal(ThroughTheWriter(warden::MemoryJournal::new())),
        };
        let engine = builder.build().await.expect("engine builds");
        let admin = warden::Principal::user("us-alice", &[warden::Role::Admin]);
        for policy in policies {
            engine.create_policy(&admin, policy).await.expect("policy is created");
        }
        engine
    });
    let request = transfer("wa-1", MATCHING_TAG, "4500.00");
    // Every move of a future copies all of it: into its task, into each
    // caller's own future.
    eprintln!(
        "engine: the future of Engine::evaluate is {} bytes",
        std::mem::size_of_val(&engine.evaluate(request.clone()))
    );
    for in_flight in [1, ENGINE_IN_FLIGHT] {
        let run = |activities: u64| {
            let (mut cpu, mut wall) = (Duration::ZERO, Duration::ZERO);
            let machine_before = machine_ticks();
            let batches = activities.div_ceil(ENGINE_BATCH as u64);
            for _ in 0..batches {
                // Built just before their batch and outside the timed part,
                // as the pure comparison's requests are: a caller's copy of
                // its request is not the engine's cost, and the engine gets
                // it as a caller hands over a request it has just made (in
                // the cache; 20,000 made ahead of time are not).
                let requests = RefCell::new(vec![request.clone(); ENGINE_BATCH]);
                sys.block_on(async {
                    let (cpu_before, started) = (process_cpu(), Instant::now());
                    join_all((0..in_flight).map(|_| async {
                        loop {
                            let Some(request) = requests.borrow_mut().pop() else { break };
                            let activity = engine.evaluate(request).await.expect("activity is evaluated");
                            assert_eq!(activity.status, ActivityStatus::Allowed);
                        }
                    }))
                    .await;
                    cpu += process_cpu() - cpu_before;
                    wall += started.elapsed();
                });
            }
            let per = |d: Duration| d.as_nanos() as f64 / (batches * ENGINE_BATCH as u64) as f64;
            (per(cpu), per(wall), machine_ticks().steal_pct_since(machine_before))
        };
        run(ACTIVITIES / 4);
        let (mut cpu, mut wall, mut steal) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let (c, w, s) = run(ACTIVITIES);
            cpu.push(c);
            wall.push(w);
            steal.push(s);
        }
        let cpu = median(&mut cpu);
        // The CPU at the speed of the day the budget's figures were taken.
        let at_budget_speed =
            cedar_k1.map(|cedar| format!(" at_budget_speed_cpu_ns={:.0}", cpu * BUDGET_CEDAR_K1_NS / cedar));
        println!(
            "engine {case} in_flight={in_flight} recorder={recorder} journal={} cpu_ns={cpu:.0} wall_ns={:.0} steal_pct={:.0}{}",
            match route {
                Route::InPlace => "memory",
                Route::WriterThread => "memory-through-writer-thread",
            },
            median(&mut wall),
            median(&mut steal),
            at_budget_speed.unwrap_or_default()
        );
    }
    engine.shutdown();
}

/// The pure evaluation, Warden against Cedar (feature `cedar`).
#[cfg(feature = "cedar")]
mod evaluation {
    use std::hint::black_box;
    use std::str::FromStr;
    use std::time::{Duration, Instant};

    use cedar_policy::{Authorizer, Context, Decision, Entities, EntityUid, PolicySet, Request, RestrictedExpression};
    use warden::{ActivityStatus, PolicyEvaluator, Settings};
    use warden_compare::{cedar_policies, median, other_tag, transfer, warden_policies, MATCHING_TAG};

    use super::RUNS;

    /// Policy counts of the evaluation comparison.
    pub const KS: [usize; 4] = [1, 10, 100, 1000];
    /// Length of one timed evaluation run, and of the warm-up before them.
    const EVALUATION_RUN: Duration = Duration::from_millis(150);

    /// Mean nanoseconds per call of `a` and of `b`: the median of [`RUNS`]
    /// runs of about [`EVALUATION_RUN`] each, the runs of the two interleaved so
    /// that a change in the machine's load touches both alike, after a warm-up
    /// of each that also sizes its runs.
    fn time_per_call(mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
        fn calls_in_a_run(call: &mut impl FnMut()) -> u64 {
            let started = Instant::now();
            let mut calls = 0u64;
            while started.elapsed() < EVALUATION_RUN {
                call();
                calls += 1;
            }
            calls.max(10)
        }
        fn run(call: &mut impl FnMut(), calls: u64) -> f64 {
            let started = Instant::now();
            for _ in 0..calls {
                call();
            }
            started.elapsed().as_nanos() as f64 / calls as f64
        }
        let (a_calls, b_calls) = (calls_in_a_run(&mut a), calls_in_a_run(&mut b));
        let (mut a_samples, mut b_samples) = (Vec::with_capacity(RUNS), Vec::with_capacity(RUNS));
        for _ in 0..RUNS {
            a_samples.push(run(&mut a, a_calls));
            b_samples.push(run(&mut b, b_calls));
        }
        (median(&mut a_samples), median(&mut b_samples))
    }

    /// The Cedar request of a transfer of `usd` USD from a wallet tagged `tag`.
    fn cedar_request(tag: &str, usd: &str) -> Request {
        let uid = |text: &str| EntityUid::from_str(text).expect("entity uid parses");
        let context = Context::from_pairs([
            (
                "walletTags".to_owned(),
                RestrictedExpression::new_set([RestrictedExpression::new_string(tag.to_owned())]),
            ),
            ("valueUsd".to_owned(), RestrictedExpression::new_decimal(usd)),
        ])
        .expect("context is valid");
        Request::new(uid("User::\"us-bob\""), uid("Action::\"Wallets:Sign\""), uid("Wallet::\"wa-1\""), context, None)
            .expect("request is valid")
    }

    /// Both sides give the same decision on `tag` and `usd`, or the bench stops.
    fn check_same_decision(
        evaluator: &PolicyEvaluator,
        cedar: &PolicySet,
        tag: &str,
        usd: &str,
        expected_blocked: bool,
    ) {
        let warden = evaluator.evaluate(&transfer("wa-1", tag, usd)).expect("warden evaluates");
        let cedar = Authorizer::new().is_authorized(&cedar_request(tag, usd), cedar, &Entities::empty());
        assert!(cedar.diagnostics().errors().next().is_none(), "cedar evaluation errors for {tag} {usd}");
        let warden_blocked = warden.status == ActivityStatus::Blocked;
        let cedar_blocked = cedar.decision() == Decision::Deny;
        assert_eq!(
            (warden_blocked, cedar_blocked),
            (expected_blocked, expected_blocked),
            "warden and cedar disagree on a transfer of {usd} USD tagged {tag}"
        );
    }

    /// Nanoseconds per decision, Warden's and Cedar's.
    pub fn compare(k: usize, usd: &str, print: bool) -> (f64, f64) {
        let evaluator = PolicyEvaluator::new(warden_policies(k), Settings::default()).expect("warden policies compile");
        let cedar: PolicySet = cedar_policies(k).parse().expect("cedar policies parse");
        for (tag, usd, blocked) in [
            (MATCHING_TAG.to_owned(), "4500.00", false),
            (MATCHING_TAG.to_owned(), "150000.00", true),
            (other_tag(k.max(2) - 1), "150000.00", k > 1),
            ("unrelated".to_owned(), "150000.00", false),
        ] {
            check_same_decision(&evaluator, &cedar, &tag, usd, blocked);
        }

        let request = transfer("wa-1", MATCHING_TAG, usd);
        let cedar_request = cedar_request(MATCHING_TAG, usd);
        let (authorizer, entities) = (Authorizer::new(), Entities::empty());
        let (warden_ns, cedar_ns) = time_per_call(
            || {
                black_box(evaluator.evaluate(black_box(&request)).expect("warden evaluates"));
            },
            || {
                black_box(authorizer.is_authorized(black_box(&cedar_request), &cedar, &entities));
            },
        );
        if print {
            println!(
                "compare K={k} warden_ns={warden_ns:.0} cedar_ns={cedar_ns:.0} speedup={:.1}",
                cedar_ns / warden_ns
            );
        }
        (warden_ns, cedar_ns)
    }
}
