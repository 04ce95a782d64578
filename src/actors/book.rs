//! The address books of the window and approval actors, owned by the
//! registry: where callers find an actor, and where a supervised actor is
//! started (on one arbiter per core, round robin).
//!
//! A supervised actor keeps its address across restarts (its supervisor
//! keeps the mailbox), so a restart needs no change here. Actors start when
//! first needed: a window when an activity first counts in it, an approval's
//! when a decision or its deadline first reaches it. An actor leaves the book
//! when it has nothing left to do: an approval once resolved or left alone
//! for [`APPROVAL_IDLE`], a window once it held nothing for
//! `window_idle_seconds`. It ends when the last holder of its address lets go.
//!
//! INVARIANT (one actor per approval): an approval's actor leaves the book
//! only while no caller holds its [`ApprovalHandle`], so two actors of one
//! approval never take decisions at once.
//!
//! INVARIANT (windows forget nothing): a window leaves the book only while it
//! holds no count and no reservation and nobody looked it up for the idle
//! time; a lookup and the retirement exclude each other (one map entry), so a
//! caller never reserves in a retired window, and a window started afresh
//! holds, correctly, nothing.

use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use foldhash::fast::RandomState;
use futures_util::future::Either;
use warden_journal::Journal;

use crate::policy::compile::Span;
use crate::policy::window_math::Ledger;
use crate::policy::WindowKey;

use super::approval::{ApprovalActor, ApprovalPort};
use super::guard::Crashed;
use super::window::{crashed_check, Checked, Commit, Prune, Release, Reserve, Restart, WindowActor, WindowShared};
use crate::state::CountIndex;

struct WindowSlot {
    addr: Addr<WindowActor>,
    shared: Arc<WindowShared>,
}

/// How long an approval's actor stays without a decision or an expiry
/// reaching it: a pending approval waits for people, often for hours, and
/// needs no actor meanwhile (its state is in the tables).
pub(crate) const APPROVAL_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

struct ApprovalSlot {
    addr: Addr<ApprovalActor>,
    /// Engine time of the last lookup, in milliseconds.
    last_used: AtomicI64,
    /// One more count per [`ApprovalHandle`] out.
    holders: Arc<()>,
}

/// An approval actor's address, held while a message to it is under way.
pub(crate) struct ApprovalHandle {
    /// The actor.
    pub(crate) addr: Addr<ApprovalActor>,
    _holding: Arc<()>,
}

/// Restarts of supervised actors so far.
#[derive(Debug, Default)]
pub(crate) struct Restarts {
    /// Window actors.
    pub(crate) windows: Arc<AtomicU64>,
    /// Approval actors.
    pub(crate) approvals: AtomicU64,
}

/// The address books.
pub(crate) struct AddressBook {
    /// Keyed by caller-chosen scopes: hashed with a seeded fast hasher
    /// (SipHash, the default, was most of a lookup's cost).
    windows: DashMap<WindowKey, WindowSlot, RandomState>,
    approvals: DashMap<String, ApprovalSlot>,
    arbiters: Vec<ArbiterHandle>,
    next: AtomicUsize,
    journal: Arc<dyn Journal>,
    counts: Arc<CountIndex>,
    pub(crate) restarts: Restarts,
    /// Velocity checks sent to a window's actor so far (its lock was held,
    /// or it was restarting or failing); the others were taken on their
    /// callers' threads.
    pub(crate) checks_sent_to_actors: AtomicU64,
}

impl AddressBook {
    /// Empty books; actors run on `arbiters` and rebuild from `journal`
    /// (windows through the records `counts` names).
    pub(crate) fn new(arbiters: Vec<ArbiterHandle>, journal: Arc<dyn Journal>, counts: Arc<CountIndex>) -> Self {
        AddressBook {
            windows: DashMap::default(),
            approvals: DashMap::new(),
            arbiters,
            next: AtomicUsize::new(0),
            journal,
            counts,
            restarts: Restarts::default(),
            checks_sent_to_actors: AtomicU64::new(0),
        }
    }

    fn next_arbiter(&self) -> ArbiterHandle {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        match self.arbiters.get(i % self.arbiters.len().max(1)) {
            Some(arbiter) => arbiter.clone(),
            None => Arbiter::current(),
        }
    }

    /// The window's actor, started empty on first use.
    pub(crate) fn window(&self, key: &WindowKey, now: DateTime<Utc>) -> Addr<WindowActor> {
        self.with_slot(key, now, |slot| slot.addr.clone())
    }

    /// What `reach` does with the window of `key` (started if it does not
    /// run), under its entry in the book, which a retirement excludes. A
    /// send borrows the address from the entry: each copy of an actix
    /// address allocates. (Once the window's mailbox holds 16 messages,
    /// actix parks the shared address and a send through it keeps its
    /// message, with a copy of the address, in the `Request` until that is
    /// first polled: `evaluate_once` polls at once, so each activity's
    /// reservations are still queued before it awaits their answers, in
    /// order.)
    fn with_slot<R>(&self, key: &WindowKey, now: DateTime<Utc>, reach: impl FnOnce(&WindowSlot) -> R) -> R {
        if let Some(slot) = self.windows.get(key) {
            slot.shared.touch(now);
            return reach(&slot);
        }
        let slot = self.windows.entry(key.clone()).or_insert_with(|| self.start_window(key.clone(), Ledger::default()));
        slot.shared.touch(now);
        reach(&slot)
    }

    /// Checks and reserves in the window of `key` (started if it does not
    /// run): on this thread when the window's lock is free (the answer is
    /// ready at once), through its actor otherwise. A window that cannot
    /// answer (its actor gone) is an error, and the check fails closed.
    pub(crate) fn reserve(
        &self,
        key: &WindowKey,
        now: DateTime<Utc>,
        reserve: Reserve,
    ) -> impl Future<Output = Result<Checked, MailboxError>> + 'static {
        self.with_slot(key, now, |slot| match slot.shared.try_reserve(&reserve) {
            Some(checked) => Either::Left(std::future::ready(Ok(checked.unwrap_or_else(|Crashed| {
                // The check fails closed, so its activity's release would
                // reach the actor too; the restart does not wait on that.
                slot.addr.do_send(Restart);
                crashed_check(reserve.now)
            })))),
            // Sent from the book's entry, without a copy of the address (see
            // `with_slot`).
            None => {
                self.checks_sent_to_actors.fetch_add(1, Ordering::Relaxed);
                Either::Right(slot.addr.send(reserve))
            }
        })
    }

    /// Drops `reservation` in the window of `key`: on this thread (waiting
    /// for the window's lock) when the window is ready, through its actor
    /// otherwise.
    pub(crate) fn release(&self, key: &WindowKey, now: DateTime<Utc>, reservation: u64) {
        self.with_slot(key, now, |slot| match slot.shared.try_release(reservation) {
            Some(Ok(())) => {}
            Some(Err(Crashed)) => slot.addr.do_send(Restart),
            None => slot.addr.do_send(Release { reservation }),
        })
    }

    /// Counts a committed activity in the window of `key` (started if it
    /// does not run): queued for the ledger's next use, which applies it
    /// before anything else (no hand-off to its arbiter; see
    /// [`WindowShared`]).
    pub(crate) fn count(&self, key: &WindowKey, now: DateTime<Utc>, count: Commit) {
        // Queued under the map entry, which the idle sweep's retirement
        // excludes: a window never retires with a count queued. Queued also
        // in a window started now: a message to its actor could be overtaken
        // by a check taken on a caller's thread, which would not see it.
        self.with_slot(key, now, |slot| slot.shared.queue_count(count));
    }

    /// Adds the counts of `ledger` (read again from the journal after a rule
    /// changed) to the window of `key`, started if it does not run.
    pub(crate) fn merge(&self, key: &WindowKey, now: DateTime<Utc>, ledger: Ledger) {
        self.with_slot(key, now, |slot| merge_into(slot, ledger));
    }

    /// Starts a window holding `ledger` (recovery), or adds its counts to
    /// the window if it runs already.
    pub(crate) fn restore_window(&self, key: WindowKey, ledger: Ledger, now: DateTime<Utc>) {
        match self.windows.entry(key) {
            dashmap::Entry::Occupied(slot) => merge_into(slot.get(), ledger),
            dashmap::Entry::Vacant(slot) => {
                let started = self.start_window(slot.key().clone(), ledger);
                started.shared.touch(now);
                slot.insert(started);
            }
        }
    }

    fn start_window(&self, key: WindowKey, ledger: Ledger) -> WindowSlot {
        let label = format!("{}/{}", key.policy_id, key.scope_key);
        let shared = Arc::new(WindowShared::new(label, ledger));
        let (journal, counts) = (self.journal.clone(), self.counts.clone());
        let (restarts, mine) = (self.restarts.windows.clone(), shared.clone());
        let addr = Supervisor::start_in_arbiter(&self.next_arbiter(), move |_| {
            WindowActor::new(key, journal, counts, mine, restarts)
        });
        metrics::gauge!("warden_window_actors").increment(1.0);
        WindowSlot { addr, shared }
    }

    /// The idle sweep: windows not looked up since `cutoff` are asked to drop
    /// the counts outside their window (`span_of` gives each policy's window
    /// now); those that held nothing at their last message leave the book.
    /// Answers how many left.
    pub(crate) fn sweep_windows(
        &self,
        now: DateTime<Utc>,
        cutoff: DateTime<Utc>,
        span_of: impl Fn(&str) -> Option<Span>,
    ) -> usize {
        let before = self.windows.len();
        self.windows.retain(|key, slot| {
            if slot.shared.retirable(cutoff) {
                return false;
            }
            if slot.shared.unused_since(cutoff) {
                slot.addr.do_send(Prune { span: span_of(&key.policy_id), now });
            }
            true
        });
        let retired = before - self.windows.len();
        metrics::gauge!("warden_window_actors").set(self.windows.len() as f64);
        retired
    }

    /// How many window actors are in the book.
    pub(crate) fn window_count(&self) -> usize {
        self.windows.len()
    }

    /// The actor of a pending approval, started if it has none (the caller
    /// checked that it is pending); `port` is what a new actor gets.
    pub(crate) fn approval(&self, id: &str, now: DateTime<Utc>, port: &Weak<dyn ApprovalPort>) -> ApprovalHandle {
        let slot = match self.approvals.get(id) {
            Some(slot) => slot,
            None => self
                .approvals
                .entry(id.to_owned())
                .or_insert_with(|| {
                    let (key, port) = (id.to_owned(), port.clone());
                    let addr =
                        Supervisor::start_in_arbiter(&self.next_arbiter(), move |_| ApprovalActor::new(key, port));
                    metrics::gauge!("warden_approval_actors").increment(1.0);
                    ApprovalSlot { addr, last_used: AtomicI64::new(0), holders: Arc::new(()) }
                })
                .downgrade(),
        };
        slot.last_used.fetch_max(now.timestamp_millis(), Ordering::Relaxed);
        ApprovalHandle { addr: slot.addr.clone(), _holding: slot.holders.clone() }
    }

    /// A resolved approval's actor leaves the book.
    pub(crate) fn forget_approval(&self, id: &str) {
        if self.approvals.remove(id).is_some() {
            metrics::gauge!("warden_approval_actors").set(self.approvals.len() as f64);
        }
    }

    /// The idle sweep of approvals: actors nobody looked up since `cutoff`
    /// and nobody holds leave the book. Answers how many left.
    pub(crate) fn sweep_approvals(&self, cutoff: DateTime<Utc>) -> usize {
        let before = self.approvals.len();
        let cutoff = cutoff.timestamp_millis();
        self.approvals
            .retain(|_, slot| Arc::strong_count(&slot.holders) > 1 || slot.last_used.load(Ordering::Relaxed) >= cutoff);
        metrics::gauge!("warden_approval_actors").set(self.approvals.len() as f64);
        before - self.approvals.len()
    }

    /// How many approval actors are in the book.
    pub(crate) fn approval_count(&self) -> usize {
        self.approvals.len()
    }

    /// Drops every window and approval actor (a leader becoming a standby):
    /// each stops once the calls holding its address are answered.
    pub(crate) fn clear(&self) {
        self.windows.clear();
        self.approvals.clear();
        metrics::gauge!("warden_window_actors").set(0.0);
        metrics::gauge!("warden_approval_actors").set(0.0);
    }

    /// Stops every arbiter, and the actors on them.
    pub(crate) fn stop(&self) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

/// Merges `ledger` into the window of `slot` on this thread; a window that
/// crashed doing so restarts, and its rebuild reads the counts back.
fn merge_into(slot: &WindowSlot, ledger: Ledger) {
    if slot.shared.merge(ledger).is_err() {
        slot.addr.do_send(Restart);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::compile::{Measure, Velocity};
    use crate::policy::Quantity;
    use rust_decimal::Decimal;

    /// A book over a memory journal whose windows run on `arbiter`.
    fn memory_book(arbiter: ArbiterHandle) -> AddressBook {
        AddressBook::new(vec![arbiter], Arc::new(warden_journal::MemoryJournal::new()), Arc::default())
    }

    /// The tests' time.
    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).expect("a valid time")
    }

    /// A count that starts its window (the window retired while an approval
    /// waited) must be seen by the next check, whoever takes it.
    #[actix_rt::test]
    async fn a_count_that_starts_a_window_is_seen_by_the_next_check() {
        let arbiter = Arbiter::new();
        let handle = arbiter.handle();
        // The window's arbiter is busy (other actors' work) for a moment.
        let (go, wait) = std::sync::mpsc::channel::<()>();
        handle.spawn_fn(move || {
            let _ = wait.recv();
        });
        let book = memory_book(handle);
        let key = WindowKey { policy_id: "po-1".into(), scope_key: "wa-1".into() };
        let now = t0();
        let usd = |n: u64| Some(Quantity::Usd(Decimal::from(n)));
        book.count(&key, now, Commit { reservation: 7, activity: "ac-approved".into(), quantity: usd(900), at: now });
        let velocity = Velocity {
            measure: Measure::Usd(Decimal::from(1000)),
            span: Span::Rolling(3600),
            scope: Default::default(),
        };
        let checked = book.reserve(&key, now, Reserve { velocity, reservation: 8, quantity: usd(200), now });
        let _ = go.send(());
        let checked = checked.await.unwrap();
        assert!(checked.answer.triggered, "900 counted + 200 is over 1000: {:?}", checked.answer);
    }

    /// Counts read back from the journal into a running window (a rule
    /// changed; recovery over a window already started) must be seen by the
    /// next check, even one taken on a caller's thread while the window's
    /// arbiter is busy.
    #[actix_rt::test]
    async fn counts_merged_into_a_running_window_are_seen_by_the_next_check() {
        let arbiter = Arbiter::new();
        let handle = arbiter.handle();
        let book = memory_book(handle.clone());
        let key = WindowKey { policy_id: "po-1".into(), scope_key: "wa-1".into() };
        let now = t0();
        let usd = |n: u64| Quantity::Usd(Decimal::from(n));
        let velocity = Velocity {
            measure: Measure::Usd(Decimal::from(1000)),
            span: Span::Rolling(3600),
            scope: Default::default(),
        };
        let reserve = |reservation| Reserve { velocity: velocity.clone(), reservation, quantity: Some(usd(200)), now };
        let first = book.reserve(&key, now, reserve(1)).await.unwrap();
        assert!(!first.answer.triggered, "the window runs, empty: {:?}", first.answer);
        book.release(&key, now, 1);
        // The window's arbiter is busy (other actors' work) from here on.
        let (go, wait) = std::sync::mpsc::channel::<()>();
        handle.spawn_fn(move || {
            let _ = wait.recv();
        });
        let mut ledger = Ledger::default();
        ledger.push(now, usd(900), "ac-journaled");
        book.merge(&key, now, ledger);
        let checked = book.reserve(&key, now, reserve(2));
        let _ = go.send(());
        let checked = checked.await.unwrap();
        assert!(checked.answer.triggered, "900 merged + 200 is over 1000: {:?}", checked.answer);
    }

    fn usd_limit(limit: u64) -> Velocity {
        Velocity { measure: Measure::Usd(Decimal::from(limit)), span: Span::Rolling(3600), scope: Default::default() }
    }

    fn check_of(reservation: u64, amount: u64, now: DateTime<Utc>) -> Reserve {
        Reserve { velocity: usd_limit(1000), reservation, quantity: Some(Quantity::Usd(Decimal::from(amount))), now }
    }

    /// A check that panics on a caller's thread fails closed and restarts
    /// its window by itself: no release has to reach the actor for it.
    #[actix_rt::test]
    async fn a_check_that_panics_on_a_callers_thread_restarts_its_window() {
        let arbiter = Arbiter::new();
        let book = memory_book(arbiter.handle());
        let key = WindowKey { policy_id: "po-panics-inline".into(), scope_key: "wa-1".into() };
        let now = t0();
        crate::faults::inject("window.reserve", "po-panics-inline/wa-1");
        let checked = book.reserve(&key, now, check_of(1, 10, now)).await.unwrap();
        assert!(checked.answer.triggered, "a check that panicked fails closed: {:?}", checked.answer);
        assert_eq!(book.checks_sent_to_actors.load(Ordering::Relaxed), 0, "the check ran on this thread");
        // No release follows: the restart must come from the check alone.
        let restarted = async {
            while book.restarts.windows.load(Ordering::Relaxed) == 0 {
                actix_rt::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        actix_rt::time::timeout(std::time::Duration::from_secs(10), restarted)
            .await
            .expect("the window's actor restarts after the check's panic");
        let next = book.reserve(&key, now, check_of(2, 10, now)).await.unwrap();
        assert!(!next.answer.triggered, "the restarted window answers again: {:?}", next.answer);
    }

    /// A memory journal whose reads wait until the gate opens: a window's
    /// rebuild stays under way meanwhile.
    struct GatedReads {
        journal: warden_journal::MemoryJournal,
        open: std::sync::Mutex<bool>,
        opened: std::sync::Condvar,
    }

    impl GatedReads {
        fn wait(&self) {
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.opened.wait(open).unwrap();
            }
        }

        fn open(&self) {
            *self.open.lock().unwrap() = true;
            self.opened.notify_all();
        }
    }

    impl Journal for GatedReads {
        fn append(&self, payloads: &[Vec<u8>]) -> Result<warden_journal::Seq, warden_journal::JournalError> {
            self.journal.append(payloads)
        }

        fn scan(
            &self,
            from: warden_journal::Seq,
            visit: &mut dyn FnMut(warden_journal::Record) -> Result<(), warden_journal::JournalError>,
        ) -> Result<(), warden_journal::JournalError> {
            self.wait();
            self.journal.scan(from, visit)
        }

        fn read(
            &self,
            seq: warden_journal::Seq,
        ) -> Result<Option<warden_journal::Record>, warden_journal::JournalError> {
            self.wait();
            self.journal.read(seq)
        }

        fn last_seq(&self) -> Result<Option<warden_journal::Seq>, warden_journal::JournalError> {
            self.journal.last_seq()
        }
    }

    /// A merge that panics while its window rebuilds (merges run on their
    /// caller's thread in any state) restarts the window: the rebuild under
    /// way does not declare the half-changed ledger ready.
    #[actix_rt::test]
    async fn a_merge_that_panics_during_a_rebuild_restarts_the_window() {
        use crate::journal::facts::{Count, Fact};
        let arbiter = Arbiter::new();
        let gated = Arc::new(GatedReads {
            journal: warden_journal::MemoryJournal::new(),
            open: std::sync::Mutex::new(false),
            opened: std::sync::Condvar::new(),
        });
        let journal: Arc<dyn Journal> = gated.clone();
        let index = Arc::new(CountIndex::default());
        let book = AddressBook::new(vec![arbiter.handle()], journal.clone(), index.clone());
        let key = WindowKey { policy_id: "po-merge-panics".into(), scope_key: "wa-1".into() };
        let now = t0();
        // One count journaled and indexed, so that a rebuild reads the journal.
        let counts = vec![Count {
            activity_id: "ac-journaled".into(),
            window: key.clone(),
            quantity: Some(Quantity::Usd(Decimal::from(100))),
            at: now,
        }];
        let fact = Fact::ApprovalResolved {
            approval_id: "ap-1".into(),
            status: crate::model::approval::ApprovalStatus::Approved,
            date: now,
            counts: counts.clone(),
        };
        let seq = journal.append(&[fact.encode()]).unwrap();
        index.record(seq, &counts);
        // A check that panics restarts the window; its rebuild waits at the gate.
        crate::faults::inject("window.reserve", "po-merge-panics/wa-1");
        let failed = book.reserve(&key, now, check_of(1, 10, now)).await.unwrap();
        assert!(failed.answer.triggered);
        let restarted = |at_least: u64| {
            let restarts = book.restarts.windows.clone();
            async move {
                while restarts.load(Ordering::Relaxed) < at_least {
                    actix_rt::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            }
        };
        let limit = std::time::Duration::from_secs(10);
        actix_rt::time::timeout(limit, restarted(1)).await.expect("the first restart");
        // A merge that panics during the rebuild.
        crate::faults::inject("window.merge", "po-merge-panics/wa-1");
        book.merge(&key, now, Ledger::default());
        gated.open();
        actix_rt::time::timeout(limit, restarted(2)).await.expect("the window restarts after the merge's panic");
        // Once rebuilt again, it holds the journaled count.
        let rebuilt = async {
            loop {
                let checked = book.reserve(&key, now, check_of(2, 950, now)).await.unwrap();
                if !checked.answer.reason.contains("unavailable") {
                    break checked.answer;
                }
                actix_rt::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        let answer = actix_rt::time::timeout(limit, rebuilt).await.expect("the window is rebuilt");
        assert!(answer.triggered, "100 journaled + 950 is over 1000: {answer:?}");
    }

    /// A window holding a reservation is never retired by the idle sweep,
    /// even when its last use before the check left it idle.
    #[actix_rt::test]
    async fn a_window_holding_a_reservation_is_not_retired() {
        let arbiter = Arbiter::new();
        let book = memory_book(arbiter.handle());
        let key = WindowKey { policy_id: "po-1".into(), scope_key: "wa-1".into() };
        let now = t0();
        let later = now + chrono::Duration::seconds(1);
        let _ = book.reserve(&key, now, check_of(1, 10, now)).await.unwrap();
        book.release(&key, now, 1);
        // Idle now (nothing held): the sweep would retire it.
        let held = book.reserve(&key, now, check_of(2, 900, now)).await.unwrap();
        assert!(!held.answer.triggered);
        assert_eq!(book.sweep_windows(later, later, |_| Some(Span::Rolling(3600))), 0, "it holds 900");
        book.release(&key, now, 2);
        assert_eq!(book.sweep_windows(later, later, |_| Some(Span::Rolling(3600))), 1, "idle again: it retires");
    }
}
