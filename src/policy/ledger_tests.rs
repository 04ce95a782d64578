//! The window [`Ledger`] against a reference model: random reserve, commit,
//! release and late counts with time moving within and past a window.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use proptest::sample::Index;
use rust_decimal::Decimal;

use super::compile::{Measure, Span, Velocity};
use super::evaluate::Quantity;
use super::window_math::Ledger;
use crate::model::amount::TokenAmount;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
}

fn cents(c: u64) -> Decimal {
    Decimal::new(c as i64, 2)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MeasureKind {
    Usd,
    Units,
    Count,
}

#[derive(Debug, Clone)]
enum LedgerOp {
    /// Move time forward by this many milliseconds.
    Advance(i64),
    /// Check and reserve a quantity (`None`: unpriced) under a fresh id.
    Reserve(Option<u64>),
    /// Count one of the open reservations, at its reservation time (an allowed activity).
    Commit(Index),
    /// Drop one of the open reservations (a blocked or held activity).
    Release(Index),
    /// Count a quantity without reservation `back` ms ago (an approval, or recovery).
    Push { quantity: u64, back: i64 },
}

fn ledger_op(window_ms: i64) -> impl Strategy<Value = LedgerOp> {
    let advance = prop_oneof![
        Just(0),
        Just(1),
        Just(window_ms - 1),
        Just(window_ms),
        Just(window_ms + 1),
        0..2 * window_ms,
        0..window_ms / 4 + 1,
    ];
    prop_oneof![
        2 => advance.prop_map(LedgerOp::Advance),
        4 => prop::option::weighted(0.95, 0u64..=400).prop_map(LedgerOp::Reserve),
        3 => any::<Index>().prop_map(LedgerOp::Commit),
        2 => any::<Index>().prop_map(LedgerOp::Release),
        1 => (0u64..=400, 0..window_ms).prop_map(|(quantity, back)| LedgerOp::Push { quantity, back }),
    ]
}

/// The reference: the rolling window at `now` is every count and open
/// reservation stamped after `now - window` (an entry exactly `window` old is out).
#[derive(Debug, Default)]
struct LedgerModel {
    committed: Vec<(DateTime<Utc>, u64)>,
    reserved: BTreeMap<u64, (DateTime<Utc>, u64)>,
}

impl LedgerModel {
    fn sum(&self, kind: MeasureKind, window: Duration, now: DateTime<Utc>, with_reserved: bool) -> u64 {
        let reserved = self.reserved.values().filter(|_| with_reserved);
        self.committed
            .iter()
            .chain(reserved)
            .filter(|(t, _)| *t > now - window)
            .map(|(_, q)| if kind == MeasureKind::Count { 1 } else { *q })
            .sum()
    }
}

fn quantity(kind: MeasureKind, q: u64) -> Quantity {
    match kind {
        MeasureKind::Usd => Quantity::Usd(cents(q)),
        MeasureKind::Units => Quantity::Units(TokenAmount::parse(&q.to_string()).unwrap()),
        MeasureKind::Count => Quantity::One,
    }
}

fn parse_total(kind: MeasureKind, text: &str) -> u64 {
    match kind {
        MeasureKind::Usd => {
            let d = Decimal::from_str(text).unwrap() * Decimal::from(100);
            assert!(d.fract().is_zero(), "USD total `{text}` has more than cents");
            rust_decimal::prelude::ToPrimitive::to_u64(&d).unwrap()
        }
        MeasureKind::Units | MeasureKind::Count => text.parse().unwrap(),
    }
}

fn run_ledger_model(kind: MeasureKind, limit: u64, window_secs: u64, ops: Vec<LedgerOp>) {
    let measure = match kind {
        MeasureKind::Usd => Measure::Usd(cents(limit)),
        MeasureKind::Units => {
            Measure::Asset { symbol: "ETH".into(), limit: TokenAmount::parse(&limit.to_string()).unwrap() }
        }
        MeasureKind::Count => Measure::Count(limit),
    };
    let velocity = Velocity { measure, span: Span::Rolling(window_secs), scope: Default::default() };
    let window = Duration::seconds(window_secs as i64);
    let mut now = t0();
    let mut ledger = Ledger::default();
    let mut model = LedgerModel::default();
    let mut next_id = 1u64;
    let mut pushed = false;
    let mut pushes = 0u64;
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            LedgerOp::Advance(ms) => now += Duration::milliseconds(ms),
            LedgerOp::Reserve(q) => {
                let id = next_id;
                next_id += 1;
                let answer = ledger.reserve(&velocity, id, q.map(|q| quantity(kind, q)), now);
                let expected_fit = q.is_some_and(|q| {
                    let q = if kind == MeasureKind::Count { 1 } else { q };
                    model.sum(kind, window, now, true) + q <= limit
                });
                assert_eq!(!answer.triggered, expected_fit, "step {step}: reserve {q:?} at {now}: {}", answer.reason);
                if expected_fit {
                    model.reserved.insert(id, (now, q.unwrap()));
                }
            }
            LedgerOp::Commit(pick) => {
                if model.reserved.is_empty() {
                    continue;
                }
                let id = *model.reserved.keys().nth(pick.index(model.reserved.len())).unwrap();
                let (at, q) = model.reserved.remove(&id).unwrap();
                // The engine counts a reservation at its evaluation time, and
                // passes the quantity too.
                ledger.commit(id, &format!("ac-{id}"), Some(quantity(kind, q)), at);
                model.committed.push((at, q));
            }
            LedgerOp::Release(pick) => {
                if model.reserved.is_empty() {
                    continue;
                }
                let id = *model.reserved.keys().nth(pick.index(model.reserved.len())).unwrap();
                model.reserved.remove(&id);
                ledger.release(id);
            }
            LedgerOp::Push { quantity: q, back } => {
                let at = now - Duration::milliseconds(back);
                // Reservation 0 is never taken: the approval path.
                pushes += 1;
                ledger.commit(0, &format!("approved-{pushes}"), Some(quantity(kind, q)), at);
                model.committed.push((at, q));
                pushed = true;
            }
        }
        let total = parse_total(kind, &ledger.committed_total(&velocity, now));
        assert_eq!(total, model.sum(kind, window, now, false), "step {step}: committed total at {now}");
        if !pushed {
            // INVARIANT (no overshoot): only checked counts, so within the limit.
            assert!(model.sum(kind, window, now, true) <= limit, "step {step}: window over its limit");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random reserve / commit / release / late counts with time moving
    /// forward within and past a rolling window: every check answers as the
    /// model does, and the committed total is the model's.
    #[test]
    fn ledger_matches_the_reference_model(
        kind in prop_oneof![Just(MeasureKind::Usd), Just(MeasureKind::Units), Just(MeasureKind::Count)],
        limit in 1u64..=1_500,
        (window_secs, ops) in prop_oneof![Just(1u64), Just(10), Just(3600)].prop_flat_map(|w| {
            (Just(w), prop::collection::vec(ledger_op(w as i64 * 1000), 1..80))
        }),
    ) {
        let limit = if kind == MeasureKind::Count { limit % 12 + 1 } else { limit };
        run_ledger_model(kind, limit, window_secs, ops);
    }
}

#[test]
fn ledger_fails_closed_on_overflow_and_unpriced() {
    let max = TokenAmount::parse(&ruint::aliases::U256::MAX.to_string()).unwrap();
    let velocity = Velocity {
        measure: Measure::Asset { symbol: "ETH".into(), limit: max },
        span: Span::Rolling(60),
        scope: Default::default(),
    };
    let mut ledger = Ledger::default();
    assert!(!ledger.reserve(&velocity, 1, Some(Quantity::Units(max)), t0()).triggered, "the limit itself fits");
    let one = TokenAmount::parse("1").unwrap();
    let answer = ledger.reserve(&velocity, 2, Some(Quantity::Units(one)), t0());
    assert!(answer.triggered, "2^256 - 1 + 1 must trigger, not wrap");
    assert!(ledger.reserve(&velocity, 3, None, t0()).triggered, "unpriced fails closed");
}

/// The pruning bug, on the Ledger alone: a check carrying an earlier `now`
/// arrives after one carrying a later `now`.
#[test]
fn ledger_check_with_an_earlier_now_is_made_at_the_window_time() {
    let velocity =
        Velocity { measure: Measure::Usd(Decimal::from(100)), span: Span::Rolling(10), scope: Default::default() };
    let mut ledger = Ledger::default();
    assert!(!ledger.reserve(&velocity, 1, Some(Quantity::Usd(Decimal::from(60))), t0()).triggered);
    ledger.commit(1, "ac-1", None, t0());
    // B, read at t = 10.5 s, is checked first: the count at t = 0 is out of its window (and pruned).
    let b_now = t0() + Duration::milliseconds(10_500);
    assert!(!ledger.reserve(&velocity, 2, Some(Quantity::Usd(Decimal::from(1))), b_now).triggered);
    // A, read at t = 5 s, is checked second: its window still holds the 60.
    // A, read at t = 5 s, is checked second: at the window's time, 10.5 s,
    // where the 60 is out; it is counted from 10.5 s, never from 5 s.
    let a_now = t0() + Duration::seconds(5);
    let a = ledger.reserve(&velocity, 3, Some(Quantity::Usd(Decimal::from(50))), a_now);
    assert!(!a.triggered, "{}", a.reason);
    assert_eq!(a.at, b_now);
    ledger.commit(3, "ac-3", None, a_now);
    assert_eq!(ledger.committed_total(&velocity, b_now), "50");
    // Counted from 10.5 s: still inside at 20.4 s, out at 20.5 s.
    assert_eq!(ledger.committed_total(&velocity, t0() + Duration::milliseconds(20_400)), "50");
    assert_eq!(ledger.committed_total(&velocity, t0() + Duration::milliseconds(20_500)), "0");
}

#[test]
fn an_activity_is_counted_once_per_window() {
    let velocity =
        Velocity { measure: Measure::Usd(Decimal::from(100)), span: Span::Rolling(10), scope: Default::default() };
    let mut ledger = Ledger::default();
    assert!(!ledger.reserve(&velocity, 1, Some(Quantity::Usd(Decimal::from(70))), t0()).triggered);
    // The count arrives from the journal (a rebuilt actor) before the commit.
    ledger.push(t0(), Quantity::Usd(Decimal::from(70)), "ac-1");
    ledger.commit(1, "ac-1", None, t0());
    ledger.commit(0, "ac-1", Some(Quantity::Usd(Decimal::from(70))), t0());
    assert_eq!(ledger.committed_total(&velocity, t0()), "70");
}

#[test]
fn replays_are_refused_among_many_counts_of_one_instant() {
    let velocity =
        Velocity { measure: Measure::Usd(Decimal::from(10_000)), span: Span::Rolling(60), scope: Default::default() };
    let usd = |v: i64| Quantity::Usd(Decimal::from(v));
    let mut ledger = Ledger::default();
    // A clock that stands still: fifty activities at one instant.
    for i in 0..50 {
        ledger.push(t0(), usd(10), format!("ac-{i}"));
    }
    // A late count, earlier than all of them, then one in between.
    ledger.push(t0() - Duration::seconds(5), usd(7), "ac-late");
    ledger.push(t0() - Duration::seconds(2), usd(3), "ac-between");
    assert_eq!(ledger.committed_total(&velocity, t0()), "510");

    // Replays of each, at their journaled instants, change nothing.
    ledger.push(t0(), usd(10), "ac-0");
    ledger.push(t0(), usd(10), "ac-25");
    ledger.push(t0(), usd(10), "ac-49");
    ledger.push(t0() - Duration::seconds(5), usd(7), "ac-late");
    ledger.push(t0() - Duration::seconds(2), usd(3), "ac-between");
    ledger.commit(0, "ac-31", Some(usd(10)), t0());
    assert_eq!(ledger.committed_total(&velocity, t0()), "510");

    // A new activity at the same instant still counts.
    ledger.push(t0(), usd(10), "ac-50");
    assert_eq!(ledger.committed_total(&velocity, t0()), "520");
}

#[test]
fn a_count_is_known_by_its_activity_and_instant() {
    let velocity = Velocity { measure: Measure::Count(100), span: Span::Rolling(10), scope: Default::default() };
    let mut ledger = Ledger::default();
    ledger.push(t0(), Quantity::One, "ac-1");
    ledger.push(t0() + Duration::seconds(1), Quantity::One, "ac-2");
    // At t0 + 10 s the first count leaves the window.
    let later = t0() + Duration::seconds(10);
    assert!(!ledger.reserve(&velocity, 1, Some(Quantity::One), later).triggered);
    ledger.release(1);
    assert_eq!(ledger.committed_total(&velocity, later), "1");
    // The journal never holds one activity's count at two instants in one
    // window; a count at another instant is not taken for a replay.
    ledger.push(later, Quantity::One, "ac-1");
    assert_eq!(ledger.committed_total(&velocity, later), "2");
}
