//! Velocity windows under concurrency: any interleaving of concurrent
//! activities on one window admits exactly what the limit allows.
//!
//! Why "exactly" holds for a single velocity policy with action `Block`: an
//! activity is checked against committed + reserved at the moment it
//! holds the window's lock (on its own thread, or in the window's actor); every reservation it sees belongs to an
//! activity that passed the same check, and with one policy passing the check
//! means `Allowed`, so that reservation becomes a count and is never released.
//! Hence the total a blocked `v` was checked against is at most the final sum of
//! the allowed ones, and `sum(allowed) + v > limit` holds at the end for every
//! blocked `v`, whatever the interleaving. (With two velocity policies this
//! stops holding: a reservation taken in one window can be released because the
//! other window blocked; only the upper bounds are checked then.)
//!
//! The window `Ledger` itself is tested against a reference model in the
//! engine's unit tests (`src/policy/ledger_tests.rs`).

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{mpsc, Arc, Barrier, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures_util::future::join_all;
use proptest::prelude::*;
use serde_json::json;
use warden::{
    Activity, ActivityFilter, ActivityKind, ActivityRequest, ActivityStatus, Clock, Decimal, Engine, Error,
    ManualClock, MemoryJournal, PageRequest, PolicyChange, Principal, Role,
};

// ---------------------------------------------------------------------------
// Engine helpers

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
}

fn cents(c: u64) -> Decimal {
    Decimal::new(c as i64, 2)
}

fn amount_velocity(limit: Decimal, window_secs: u64) -> serde_json::Value {
    json!({
        "name": "USD velocity", "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionAmountVelocity",
                 "configuration": {"limit": limit.to_string(), "currency": "USD", "timeWindow": window_secs}},
        "action": {"kind": "Block"}
    })
}

fn count_velocity(limit: u64, window_secs: u64) -> serde_json::Value {
    json!({
        "name": "Count velocity", "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionCountVelocity", "configuration": {"limit": limit, "timeWindow": window_secs}},
        "action": {"kind": "Block"}
    })
}

fn request(wallet: &str, usd: Decimal, external_id: &str) -> ActivityRequest {
    serde_json::from_value(json!({
        "kind": "Wallets:Sign",
        "initiator": {"id": "us-bob", "kind": "User"},
        "wallet": {"id": wallet, "tags": []},
        "transaction": {"type": "Transfer", "network": "Ethereum",
            "recipient": "0x76d1b7f9b3F69C435eeF76a98A415332084A856F",
            "assets": [{"symbol": "ETH", "decimals": 18, "amount": "1000", "valueUsd": usd.to_string()}]},
        "externalId": external_id
    }))
    .unwrap()
}

/// An engine on a fixed manual clock with `policies`; returns their ids.
async fn engine_with(clock: impl Clock, arbiters: usize, policies: &[serde_json::Value]) -> (Engine, Vec<String>) {
    let engine = Engine::builder().clock(clock).journal(MemoryJournal::new()).arbiters(arbiters).build().await.unwrap();
    let admin = Principal::user("us-admin", &[Role::Admin]);
    let mut ids = Vec::new();
    for spec in policies {
        match engine.create_policy(&admin, serde_json::from_value(spec.clone()).unwrap()).await.unwrap() {
            PolicyChange::Applied(policy) => ids.push(policy.id),
            other => panic!("policy not applied: {other:?}"),
        }
    }
    (engine, ids)
}

/// How the activities of one case reach the engine.
#[derive(Debug, Clone, Copy)]
enum Submit {
    /// All futures joined in one task (window actors on other arbiters).
    JoinAll,
    /// Split over this many OS threads, each with its own actix system,
    /// released together by a barrier.
    Threads(usize),
}

fn submit_strategy() -> impl Strategy<Value = Submit> {
    prop_oneof![Just(Submit::JoinAll), (2usize..=4).prop_map(Submit::Threads)]
}

/// Evaluates every request concurrently; answers in the order of `requests`.
fn submit(
    system: &actix_rt::SystemRunner,
    engine: &Engine,
    requests: &[ActivityRequest],
    how: Submit,
) -> Vec<Activity> {
    let answers: Vec<Result<Activity, Error>> = match how {
        Submit::JoinAll => system.block_on(join_all(requests.iter().cloned().map(|r| engine.evaluate(r)))),
        Submit::Threads(threads) => {
            let barrier = Arc::new(Barrier::new(threads));
            let mut slots: Vec<Option<Result<Activity, Error>>> = (0..requests.len()).map(|_| None).collect();
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|k| {
                        let mine: Vec<(usize, ActivityRequest)> =
                            requests.iter().cloned().enumerate().filter(|(i, _)| i % threads == k).collect();
                        let engine = engine.clone();
                        let barrier = barrier.clone();
                        scope.spawn(move || {
                            actix_rt::System::new().block_on(async move {
                                barrier.wait();
                                let (positions, requests): (Vec<usize>, Vec<ActivityRequest>) =
                                    mine.into_iter().unzip();
                                let answers = join_all(requests.into_iter().map(|r| engine.evaluate(r))).await;
                                positions.into_iter().zip(answers).collect::<Vec<_>>()
                            })
                        })
                    })
                    .collect();
                for handle in handles {
                    for (i, answer) in handle.join().expect("submitting thread panicked") {
                        slots[i] = Some(answer);
                    }
                }
            });
            slots.into_iter().map(|s| s.expect("every request answered")).collect()
        }
    };
    answers.into_iter().map(|a| a.expect("evaluation succeeds")).collect()
}

fn all_activities(engine: &Engine) -> Vec<Activity> {
    let page = PageRequest { limit: Some(1000), pagination_token: None };
    // Policy changes are activities too (`Policies:Modify`): keep the signer's.
    let items = engine.activities(&ActivityFilter::default(), &page).unwrap().items;
    items.into_iter().filter(|a| a.activity.kind == ActivityKind::WalletsSign).collect()
}

fn usd_of(activity: &Activity) -> Decimal {
    let tx = activity.activity.transaction.as_ref().unwrap();
    Decimal::from_str(&tx.assets[0].value_usd.as_ref().unwrap().to_string()).unwrap()
}

fn wallet_of(activity: &Activity) -> String {
    activity.activity.wallet.as_ref().unwrap().id.clone()
}

fn window_total(system: &actix_rt::SystemRunner, engine: &Engine, policy: &str, scope: &str) -> Decimal {
    let total = system.block_on(engine.window_total(policy, scope)).expect("a velocity policy");
    Decimal::from_str(&total).unwrap_or_else(|_| panic!("window total `{total}` is a number"))
}

/// Answers of replays (same `externalId`) are the same activity; returns the
/// distinct activities as stored, and checks the store holds nothing else.
fn distinct_activities(engine: &Engine, requests: &[ActivityRequest], answers: &[Activity]) -> Vec<Activity> {
    let mut by_external: HashMap<String, &Activity> = HashMap::new();
    for (request, answer) in requests.iter().zip(answers) {
        let key = request.external_id.clone().unwrap();
        if let Some(first) = by_external.insert(key.clone(), answer) {
            assert_eq!(first.id, answer.id, "replays of `{key}` answered with different activities");
            assert_eq!(first.status, answer.status, "replays of `{key}` answered with different statuses");
        }
    }
    let stored = all_activities(engine);
    assert_eq!(stored.len(), by_external.len(), "one stored activity per externalId, replays evaluate nothing");
    for activity in &stored {
        let answered = by_external[activity.activity.external_id.as_ref().unwrap()];
        assert_eq!(answered.id, activity.id);
        assert_eq!(answered.status, activity.status, "stored status equals the answer");
    }
    stored
}

/// A case: distinct activities (wallet, cents) plus replays of some of them,
/// all submitted concurrently in a shuffled order.
fn activities_strategy(max_cents: u64, wallets: u8) -> impl Strategy<Value = (Vec<(u8, u64)>, Vec<usize>)> {
    // Round values often, so that totals land exactly on round limits.
    let value = prop_oneof![3 => 0..=max_cents, 1 => prop::sample::select(vec![500u64, 1_000, 2_500])];
    prop::collection::vec((0..wallets, value), 0..40).prop_flat_map(|activities| {
        let n = activities.len();
        let replays =
            if n == 0 { Just(Vec::<usize>::new()).boxed() } else { prop::collection::vec(0..n, 0..8).boxed() };
        (Just(activities), replays).prop_flat_map(|(activities, replays)| {
            let order: Vec<usize> = (0..activities.len()).chain(replays).collect();
            (Just(activities), Just(order).prop_shuffle())
        })
    })
}

/// USD limits in cents: any, or a round multiple of 5 USD.
fn limit_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![1u64..=300_000, (1u64..=60).prop_map(|k| k * 500)]
}

fn requests_of(activities: &[(u8, u64)], order: &[usize]) -> Vec<ActivityRequest> {
    order
        .iter()
        .map(|&i| request(&format!("wa-{}", activities[i].0), cents(activities[i].1), &format!("x-{i}")))
        .collect()
}

// ---------------------------------------------------------------------------
// Amount and count windows in the engine

fn check_amount_case(limit_cents: u64, activities: Vec<(u8, u64)>, order: Vec<usize>, how: Submit) {
    let limit = cents(limit_cents);
    let system = actix_rt::System::new();
    let (engine, ids) = system.block_on(engine_with(ManualClock::new(t0()), 2, &[amount_velocity(limit, 3600)]));
    let policy = &ids[0];
    let requests = requests_of(&activities, &order);
    let answers = submit(&system, &engine, &requests, how);
    let stored = distinct_activities(&engine, &requests, &answers);

    let mut wallets: BTreeMap<String, (Vec<Decimal>, Vec<Decimal>)> = BTreeMap::new();
    for activity in &stored {
        let (allowed, blocked) = wallets.entry(wallet_of(activity)).or_default();
        let triggered: Vec<_> = activity.policy_evaluations.iter().filter(|e| e.triggered).collect();
        match activity.status {
            ActivityStatus::Allowed => {
                assert!(triggered.is_empty(), "allowed but a policy triggered: {triggered:?}");
                allowed.push(usd_of(activity));
            }
            ActivityStatus::Blocked => {
                assert_eq!(triggered.len(), 1, "blocked by exactly the velocity policy");
                assert_eq!(&triggered[0].policy_id, policy);
                blocked.push(usd_of(activity));
            }
            other => panic!("unexpected status {other:?}"),
        }
    }
    for (wallet, (allowed, blocked)) in &wallets {
        let sum: Decimal = allowed.iter().sum();
        assert!(sum <= limit, "window {wallet}: allowed {sum} exceeds limit {limit}");
        for v in blocked {
            assert!(sum + v > limit, "window {wallet}: blocked {v} but allowed total {sum} + {v} fits limit {limit}");
        }
        // Blocked activities are not counted; allowed ones are, exactly.
        assert_eq!(window_total(&system, &engine, policy, wallet), sum, "window {wallet} total");
    }
    engine.shutdown();
}

fn check_count_case(limit: u64, activities: Vec<(u8, u64)>, order: Vec<usize>, how: Submit) {
    let system = actix_rt::System::new();
    let (engine, ids) = system.block_on(engine_with(ManualClock::new(t0()), 2, &[count_velocity(limit, 3600)]));
    let policy = &ids[0];
    let requests = requests_of(&activities, &order);
    let answers = submit(&system, &engine, &requests, how);
    let stored = distinct_activities(&engine, &requests, &answers);

    let mut per_wallet: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for activity in &stored {
        let (allowed, total) = per_wallet.entry(wallet_of(activity)).or_default();
        *total += 1;
        match activity.status {
            ActivityStatus::Allowed => *allowed += 1,
            ActivityStatus::Blocked => {}
            other => panic!("unexpected status {other:?}"),
        }
    }
    for (wallet, (allowed, total)) in &per_wallet {
        assert_eq!(*allowed, (*total).min(limit), "window {wallet}: {total} activities, limit {limit}");
        assert_eq!(window_total(&system, &engine, policy, wallet), Decimal::from(*allowed), "window {wallet} count");
    }
    engine.shutdown();
}

fn check_amount_and_count_case(
    limit_cents: u64,
    count_limit: u64,
    activities: Vec<(u8, u64)>,
    order: Vec<usize>,
    how: Submit,
) {
    let limit = cents(limit_cents);
    let system = actix_rt::System::new();
    let (engine, ids) = system.block_on(engine_with(
        ManualClock::new(t0()),
        2,
        &[amount_velocity(limit, 3600), count_velocity(count_limit, 600)],
    ));
    let requests = requests_of(&activities, &order);
    let answers = submit(&system, &engine, &requests, how);
    let stored = distinct_activities(&engine, &requests, &answers);

    let mut per_wallet: BTreeMap<String, (Decimal, u64)> = BTreeMap::new();
    for activity in &stored {
        let entry = per_wallet.entry(wallet_of(activity)).or_default();
        let triggered = activity.policy_evaluations.iter().filter(|e| e.triggered).count();
        match activity.status {
            ActivityStatus::Allowed => {
                assert_eq!(triggered, 0);
                entry.0 += usd_of(activity);
                entry.1 += 1;
            }
            ActivityStatus::Blocked => assert!(triggered >= 1, "blocked without a triggered policy"),
            other => panic!("unexpected status {other:?}"),
        }
    }
    for (wallet, (sum, count)) in &per_wallet {
        assert!(*sum <= limit, "window {wallet}: allowed {sum} exceeds limit {limit}");
        assert!(*count <= count_limit, "window {wallet}: {count} allowed exceeds count limit {count_limit}");
        assert_eq!(window_total(&system, &engine, &ids[0], wallet), *sum);
        assert_eq!(window_total(&system, &engine, &ids[1], wallet), Decimal::from(*count));
    }
    engine.shutdown();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// One USD window per wallet: sum(allowed) <= L, every blocked v has
    /// sum(allowed) + v > L, the window counts exactly the allowed ones, and
    /// replays of an externalId count once.
    #[test]
    fn amount_window_admits_exactly_what_the_limit_allows(
        limit_cents in limit_strategy(),
        (activities, order) in activities_strategy(60_000, 2),
        how in submit_strategy(),
    ) {
        check_amount_case(limit_cents, activities, order, how);
    }

    /// A count window admits exactly min(n, limit) of n concurrent activities.
    #[test]
    fn count_window_admits_min_of_n_and_limit(
        limit in 1u64..=15,
        (activities, order) in activities_strategy(1_000, 2),
        how in submit_strategy(),
    ) {
        check_count_case(limit, activities, order, how);
    }

    /// Two windows per activity: neither limit is ever passed, and each
    /// window counts exactly the allowed activities.
    #[test]
    fn amount_and_count_windows_together_never_overshoot(
        limit_cents in limit_strategy(),
        count_limit in 1u64..=15,
        (activities, order) in activities_strategy(60_000, 2),
        how in submit_strategy(),
    ) {
        check_amount_and_count_case(limit_cents, count_limit, activities, order, how);
    }
}

/// Many more activities than the limit, all at once from four threads: the
/// stress case the random ones rarely reach.
#[test]
fn hundreds_of_concurrent_activities_fill_the_window_exactly() {
    let activities: Vec<(u8, u64)> = (0..400).map(|i| (0, 100 + (i * 7919) % 900)).collect();
    let order: Vec<usize> = (0..activities.len()).collect();
    check_amount_case(500_000, activities.clone(), order.clone(), Submit::Threads(4));
    check_count_case(37, activities, order, Submit::Threads(4));
}

// ---------------------------------------------------------------------------
// A velocity check must see every count inside the window at its own `now`,
// even when a later `now` reached the window first (regression for pruning).

/// A manual clock that, once armed, blocks the first reader on a thread
/// named `gated` right after it read the time, until released.
#[derive(Clone)]
struct GateClock {
    now: Arc<Mutex<DateTime<Utc>>>,
    gate: Arc<Mutex<Option<Gate>>>,
}

/// Tells the test the reader arrived; then waits to be released.
type Gate = (mpsc::Sender<()>, mpsc::Receiver<()>);

impl Clock for GateClock {
    fn now(&self) -> DateTime<Utc> {
        let now = *self.now.lock().unwrap();
        if std::thread::current().name() == Some("gated") {
            if let Some((reached, release)) = self.gate.lock().unwrap().take() {
                reached.send(()).unwrap();
                release.recv().unwrap();
            }
        }
        now
    }
}

#[test]
fn a_check_with_an_earlier_now_still_sees_counts_a_later_check_pruned() {
    let system = actix_rt::System::new();
    let clock = GateClock { now: Arc::new(Mutex::new(t0())), gate: Arc::new(Mutex::new(None)) };
    let set = |at: DateTime<Utc>| *clock.now.lock().unwrap() = at;
    // Limit 100 USD over the last 10 s.
    let (engine, ids) = system.block_on(engine_with(clock.clone(), 1, &[amount_velocity(Decimal::from(100), 10)]));

    // t = 0: 60 USD is allowed.
    let first = system.block_on(engine.evaluate(request("wa-1", Decimal::from(60), "e"))).unwrap();
    assert_eq!(first.status, ActivityStatus::Allowed);

    // t = 5: activity A (50 USD) reads the clock, then is delayed before its check.
    set(t0() + Duration::seconds(5));
    let (reached_tx, reached_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    *clock.gate.lock().unwrap() = Some((reached_tx, release_rx));
    let late = {
        let engine = engine.clone();
        std::thread::Builder::new()
            .name("gated".into())
            .spawn(move || actix_rt::System::new().block_on(engine.evaluate(request("wa-1", Decimal::from(50), "a"))))
            .unwrap()
    };
    reached_rx.recv().unwrap();

    // t = 10.5: activity B (1 USD) is checked first; the 60 USD count is out of its window.
    set(t0() + Duration::milliseconds(10_500));
    let b = system.block_on(engine.evaluate(request("wa-1", Decimal::from(1), "b"))).unwrap();
    assert_eq!(b.status, ActivityStatus::Allowed);

    // A's check runs at the window's latest time (t = 10.5), where the 60 is out.
    release_tx.send(()).unwrap();
    let a = late.join().unwrap().unwrap();
    let allowed: Vec<(DateTime<Utc>, Decimal)> = all_activities(&engine)
        .iter()
        .filter(|x| x.status == ActivityStatus::Allowed)
        .map(|x| (x.date_created, usd_of(x)))
        .collect();
    engine.shutdown();
    // No 10-second window of allowed activities may hold more than 100 USD.
    for (end, _) in &allowed {
        let inside: Decimal =
            allowed.iter().filter(|(t, _)| *t <= *end && *t > *end - Duration::seconds(10)).map(|(_, v)| *v).sum();
        assert!(inside <= Decimal::from(100), "window ending {end} holds {inside} USD > 100 (policy {})", ids[0]);
    }
    // A was checked at the window's later time, and is dated so.
    assert!(a.date_created >= b.date_created, "A is dated at the window time it was checked at");
}
