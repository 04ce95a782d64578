//! Velocity window accounting, without actors: the entries of one window, the
//! check-and-reserve step, and where a window starts.

use std::borrow::Cow;
use std::collections::hash_map::Entry as Held;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

use rustc_hash::{FxBuildHasher, FxHashMap};

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc};
use rust_decimal::Decimal;

use crate::model::amount::{usd_shown, TokenAmount};
use crate::model::policy::CalendarPeriod;

use super::compile::{Measure, Span, Velocity};
use super::evaluate::{describe_span, Quantity};

/// The earliest instant (inclusive) that still counts in a window at `now`.
pub fn window_start(span: Span, now: DateTime<Utc>) -> DateTime<Utc> {
    match span {
        // Rolling: the last `secs` seconds; an entry exactly `secs` old is out.
        Span::Rolling(secs) => now - Duration::seconds(secs as i64) + Duration::nanoseconds(1),
        Span::Calendar(period) => {
            let midnight = |d: chrono::NaiveDate| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN));
            let today = now.date_naive();
            match period {
                CalendarPeriod::Day => midnight(today),
                CalendarPeriod::Week => {
                    midnight(today - Duration::days(i64::from(today.weekday().num_days_from_monday())))
                }
                CalendarPeriod::Month => midnight(today.with_day(1).unwrap_or(today)),
            }
        }
    }
}

/// The sum of a window, by measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Total {
    Usd(Decimal),
    Units(TokenAmount),
    Count(u64),
}

/// The result of asking a window to reserve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveAnswer {
    /// Whether the rule triggered (then nothing was reserved).
    pub triggered: bool,
    /// Why, for a person (fixed text is not allocated).
    pub reason: Cow<'static, str>,
    /// The time the check was made at: the caller's time, or the window's
    /// latest if that is later (see [`Ledger`]).
    pub at: DateTime<Utc>,
}

/// The entries of one window: committed counts and pending reservations.
///
/// INVARIANT (no overshoot): a reservation is taken only if committed +
/// reserved + the new quantity stays within the limit, and check and take
/// happen in one call, so concurrent activities cannot pass the limit together.
///
/// INVARIANT (monotonic window time): checks are made at the later of the
/// caller's time and the latest time this window has seen. A caller that read
/// the clock before another but reaches the window after it is checked (and
/// counted) at the later time, so pruning by a later time never hides a count
/// from an earlier check.
///
/// INVARIANT (counted once): every count names its activity, and an activity
/// is counted at most once per window, so a count replayed from the journal
/// (an actor rebuilt while a commit was in flight) is not added twice. A
/// replayed count carries the time its commit carries (the journaled check
/// time), so only the entries of that same instant need comparing, and only
/// when an entry with the same id hash is held at all.
#[derive(Debug, Default)]
pub struct Ledger {
    committed: VecDeque<Entry>,
    /// The sums of `committed`, kept with every push and prune, so that a
    /// check costs the same however many counts the window holds.
    sums: Sums,
    /// How many entries hold each activity id hash: a count whose hash is
    /// absent is new at once, whatever number of entries share its instant.
    counted: FxHashMap<u64, u32>,
    reserved: HashMap<u64, (DateTime<Utc>, Quantity)>,
    latest: Option<DateTime<Utc>>,
}

/// Running sums of committed entries, one per measure; `None` once a sum
/// overflowed (then it is recomputed from the entries when asked for).
#[derive(Debug, Clone, Copy)]
struct Sums {
    usd: Option<Decimal>,
    units: Option<TokenAmount>,
}

impl Default for Sums {
    fn default() -> Self {
        Sums { usd: Some(Decimal::ZERO), units: Some(TokenAmount::default()) }
    }
}

impl Sums {
    fn add(&mut self, quantity: Quantity) {
        match quantity {
            Quantity::Usd(v) => self.usd = self.usd.and_then(|s| s.checked_add(v)),
            Quantity::Units(v) => self.units = self.units.and_then(|s| s.checked_add(v)),
            Quantity::One => {}
        }
    }

    fn remove(&mut self, quantity: Quantity) {
        match quantity {
            Quantity::Usd(v) => self.usd = self.usd.and_then(|s| s.checked_sub(v)),
            Quantity::Units(v) => self.units = self.units.and_then(|s| s.0.checked_sub(v.0).map(TokenAmount)),
            Quantity::One => {}
        }
    }
}

/// One count of one activity.
#[derive(Debug)]
struct Entry {
    at: DateTime<Utc>,
    quantity: Quantity,
    activity: Box<str>,
    activity_hash: u64,
}

impl Ledger {
    /// Checks whether `quantity` fits under `velocity`'s limit at `now` and,
    /// if so, reserves it under `reservation`.
    pub fn reserve(
        &mut self,
        velocity: &Velocity,
        reservation: u64,
        quantity: Option<Quantity>,
        now: DateTime<Utc>,
    ) -> ReserveAnswer {
        let now = self.latest.map_or(now, |latest| latest.max(now));
        self.latest = Some(now);
        self.prune(velocity.span, now);
        // Described only when it triggers: the reason is shown only then.
        let span = || describe_span(velocity.span);
        let Some(quantity) = quantity else {
            return ReserveAnswer {
                triggered: true,
                reason: format!("value is unpriced; velocity limit fails closed {}", span()).into(),
                at: now,
            };
        };
        let current = self.total(velocity, now);
        let verdict = match (current, quantity, &velocity.measure) {
            (Some(Total::Usd(sum)), Quantity::Usd(q), Measure::Usd(limit)) => match sum.checked_add(q) {
                Some(next) if next <= *limit => None,
                Some(next) => Some(format!(
                    "{} USD {} + {} USD = {} USD exceeds limit {limit} USD",
                    usd_shown(sum),
                    span(),
                    usd_shown(q),
                    usd_shown(next)
                )),
                None => Some("window total overflows; fails closed".to_owned()),
            },
            (Some(Total::Units(sum)), Quantity::Units(q), Measure::Asset { symbol, limit }) => {
                match sum.checked_add(q) {
                    Some(next) if next <= *limit => None,
                    Some(next) => Some(format!(
                        "{sum} {symbol} {} + {q} {symbol} = {next} {symbol} exceeds limit {limit} {symbol}",
                        span()
                    )),
                    None => Some("window total overflows; fails closed".to_owned()),
                }
            }
            (Some(Total::Count(n)), Quantity::One, Measure::Count(limit)) => {
                if n < *limit {
                    None
                } else {
                    Some(format!("{n} activities {} + 1 exceeds limit {limit}", span()))
                }
            }
            (None, _, _) => Some("window total overflows; fails closed".to_owned()),
            _ => Some("activity does not fit this window's measure; fails closed".to_owned()),
        };
        match verdict {
            Some(reason) => ReserveAnswer { triggered: true, reason: reason.into(), at: now },
            None => {
                self.reserved.insert(reservation, (now, quantity));
                ReserveAnswer { triggered: false, reason: Cow::Borrowed("within the velocity limit"), at: now }
            }
        }
    }

    /// Turns a reservation into a count of `activity` at the time it was
    /// checked; without one (the activity was not checked here, or was
    /// approved later), counts `quantity` from `at`.
    pub fn commit(&mut self, reservation: u64, activity: &str, quantity: Option<Quantity>, at: DateTime<Utc>) {
        match self.reserved.remove(&reservation) {
            Some((checked_at, q)) => self.push(checked_at, q, activity),
            None => {
                if let Some(q) = quantity {
                    self.push(at, q, activity);
                }
            }
        }
    }

    /// Adds a count of `activity` at `at` as journaled (recovery, approvals),
    /// unless this count of that activity is already here.
    pub fn push(&mut self, at: DateTime<Utc>, quantity: Quantity, activity: impl AsRef<str> + Into<Box<str>>) {
        // Activity ids are made by the engine, so a fast unkeyed hash is safe.
        let activity_hash = FxBuildHasher.hash_one(activity.as_ref());
        // Entries stay sorted by time; most arrive in order (appended at the
        // back), recovery and approvals may arrive late.
        let end = if self.committed.back().is_none_or(|last| last.at <= at) {
            self.committed.len()
        } else {
            self.committed.partition_point(|e| e.at <= at)
        };
        if self.counted.contains_key(&activity_hash) {
            let mut same_instant = self.committed.range(..end).rev().take_while(|e| e.at == at);
            if same_instant.any(|e| *e.activity == *activity.as_ref()) {
                return;
            }
        }
        self.committed.insert(end, Entry { at, quantity, activity: activity.into(), activity_hash });
        *self.counted.entry(activity_hash).or_default() += 1;
        self.sums.add(quantity);
    }

    /// Whether no count is kept.
    pub fn is_empty(&self) -> bool {
        self.committed.is_empty()
    }

    /// Adds the counts of `rebuilt` (read again from the journal) that this
    /// ledger does not hold yet; keeps its own counts, reservations and time.
    /// A union, so a count committed while the journal was being read is
    /// neither lost nor doubled.
    pub fn merge(&mut self, rebuilt: Ledger) {
        for entry in rebuilt.committed {
            self.push(entry.at, entry.quantity, entry.activity);
        }
    }

    /// Whether the ledger holds neither a count nor a reservation.
    pub fn is_idle(&self) -> bool {
        self.committed.is_empty() && self.reserved.is_empty()
    }

    /// Forgets every count (the window's policy is no longer a velocity
    /// policy); reservations stay until their callers settle them.
    pub fn clear_counts(&mut self) {
        self.committed.clear();
        self.counted.clear();
        self.sums = Sums::default();
    }

    /// Drops a reservation (the activity was blocked or held).
    pub fn release(&mut self, reservation: u64) {
        self.reserved.remove(&reservation);
    }

    /// Committed total (without reservations) at `now`, as text, for tests and views.
    pub fn committed_total(&self, velocity: &Velocity, now: DateTime<Utc>) -> String {
        let start = window_start(velocity.span, now);
        let inside = self.committed.iter().filter(|e| e.at >= start).map(|e| e.quantity);
        sum(velocity, inside)
            .map(|t| match t {
                Total::Usd(d) => d.normalize().to_string(),
                Total::Units(u) => u.to_string(),
                Total::Count(n) => n.to_string(),
            })
            .unwrap_or_else(|| "overflow".to_owned())
    }

    /// Forgets entries that no window starting at or after `now` can see.
    pub fn prune(&mut self, span: Span, now: DateTime<Utc>) {
        let start = window_start(span, now);
        while self.committed.front().is_some_and(|e| e.at < start) {
            if let Some(entry) = self.committed.pop_front() {
                self.sums.remove(entry.quantity);
                if let Held::Occupied(mut held) = self.counted.entry(entry.activity_hash) {
                    *held.get_mut() -= 1;
                    if *held.get() == 0 {
                        held.remove();
                    }
                }
            }
        }
    }

    /// Committed + reserved inside the window at `now`; call after `prune`
    /// with the same span, so every committed entry is inside.
    fn total(&self, velocity: &Velocity, now: DateTime<Utc>) -> Option<Total> {
        let committed = match velocity.measure {
            Measure::Usd(_) => self.sums.usd.map(Total::Usd),
            Measure::Asset { .. } => self.sums.units.map(Total::Units),
            Measure::Count(_) => Some(Total::Count(self.committed.len() as u64)),
        };
        // A sum that overflowed once is recomputed from the entries.
        let committed = match committed {
            Some(total) => total,
            None => sum(velocity, self.committed.iter().map(|e| e.quantity))?,
        };
        let start = window_start(velocity.span, now);
        let mut reserved = self.reserved.values().filter(|(t, _)| *t >= start).map(|(_, q)| *q);
        reserved.try_fold(committed, add)
    }
}

fn add(total: Total, q: Quantity) -> Option<Total> {
    Some(match (total, q) {
        (Total::Usd(s), Quantity::Usd(v)) => Total::Usd(s.checked_add(v)?),
        (Total::Units(s), Quantity::Units(v)) => Total::Units(s.checked_add(v)?),
        (Total::Count(n), _) => Total::Count(n + 1),
        (t, _) => t,
    })
}

fn sum(velocity: &Velocity, quantities: impl Iterator<Item = Quantity>) -> Option<Total> {
    let mut total = match velocity.measure {
        Measure::Usd(_) => Total::Usd(Decimal::ZERO),
        Measure::Asset { .. } => Total::Units(TokenAmount::default()),
        Measure::Count(_) => Total::Count(0),
    };
    for q in quantities {
        total = add(total, q)?;
    }
    Some(total)
}
