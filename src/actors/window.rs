//! One velocity window (a policy and a scope key): its state behind one lock,
//! which makes check-and-reserve one atomic step, and its actor, which owns
//! the window's life.
//!
//! A check is taken on its caller's thread when the window is ready and its
//! lock free, and sent to the actor otherwise (see [`WindowShared`]). A
//! window that panics, wherever, is restarted by the actor's supervisor and
//! reads its counts back from the journal on a blocking thread (never on its
//! arbiter, which runs other actors); checks fail closed or wait in the
//! mailbox meanwhile. If the journal cannot be read, the window fails closed
//! (every check triggers) and tries again every [`REBUILD_RETRY`]. It never
//! answers from a partial ledger.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use warden_journal::Journal;

use crate::policy::compile::{Span, Velocity};
use crate::policy::window_math::{Ledger, ReserveAnswer};
use crate::policy::{Quantity, WindowKey};
use crate::state::CountIndex;

use super::guard::{caught, Crashed};

/// How long a window whose rebuild failed waits before reading again.
pub const REBUILD_RETRY: Duration = Duration::from_secs(2);

/// Check `quantity` against the limit and, if it fits, hold it as reserved.
#[derive(Message)]
#[rtype(result = "Checked")]
pub struct Reserve {
    /// The rule as currently compiled (a policy update changes it).
    pub velocity: Velocity,
    /// The caller's reservation id.
    pub reservation: u64,
    /// The activity's contribution; `None` when unpriced.
    pub quantity: Option<Quantity>,
    /// Now.
    pub now: DateTime<Utc>,
}

/// A check's answer and, when it fits, the hold on its reservation.
#[derive(Debug)]
pub struct Checked {
    /// The answer.
    pub answer: ReserveAnswer,
    /// Held until the caller has queued its count or sent its release.
    pub held: Option<Held>,
}

/// One reservation a window granted and its caller has not settled yet
/// (counted or released): dropping it settles it, on every path out of the
/// caller's evaluation, a panic's included.
///
/// INVARIANT (no overshoot across a restart): a restarted window reads its
/// counts back, but the reservations its ledger held are gone, while the
/// activities holding them may still be on their way to the journal. So each
/// generation of a window's actor (one more per restart) counts the holds it
/// handed out, and a restarted window fails closed while any earlier
/// generation's count is above zero. A caller queues its count before it
/// drops its hold (release, then acquire, on the counter), so a window that
/// sees every earlier hold dropped also sees those counts.
#[derive(Debug)]
pub struct Held(Arc<AtomicUsize>);

impl Held {
    fn new(holds: &Arc<AtomicUsize>) -> Self {
        holds.fetch_add(1, Ordering::Relaxed);
        Held(holds.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// Count a reservation (or, without one, `quantity`) from `at`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Commit {
    /// The reservation to count, if any was taken.
    pub reservation: u64,
    /// The activity counted.
    pub activity: String,
    /// What to count when no reservation was taken.
    pub quantity: Option<Quantity>,
    /// When the count starts.
    pub at: DateTime<Utc>,
}

/// Drop a reservation.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release {
    /// The reservation.
    pub reservation: u64,
}

/// The committed total at `now` (for inspection and tests).
#[derive(Message)]
#[rtype(result = "String")]
pub struct Total {
    /// The rule.
    pub velocity: Velocity,
    /// Now.
    pub now: DateTime<Utc>,
}

/// Forget counts outside the window at `now` (the idle sweep); `span` is the
/// rule's window now, `None` when the policy is no longer a velocity policy.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Prune {
    /// The rule's window.
    pub span: Option<Span>,
    /// Now.
    pub now: DateTime<Utc>,
}

/// A window's state, and what the address book, its actor and its callers
/// share: the ledger behind one lock, whether the window holds nothing (so
/// it may retire), when it was last looked up, and the counts waiting for the
/// ledger's next use.
///
/// INVARIANT (no overshoot): check and reserve are one step under the
/// window's lock. A caller takes that step on its own thread when the window
/// is ready and nobody else holds the lock ([`WindowShared::try_reserve`]):
/// most checks then cross no thread. Otherwise it sends [`Reserve`] to the
/// window's actor, which waits for the lock; the actor alone rebuilds,
/// retries, prunes and restarts the window.
///
/// INVARIANT (counted before read): a committed activity's count is queued
/// here instead of sent, so that counting wakes no arbiter (a hand-off per
/// allowed activity); every use of the ledger applies the queue first, and a
/// window with queued counts does not retire. A queued count of a
/// reservation turns an amount the window already holds into a count (the
/// sum stays); a count is applied once however often it arrives (a restart
/// reads it back from the journal too).
#[derive(Debug)]
pub struct WindowShared {
    /// `policy/scope`, for logs and injected faults.
    label: String,
    core: Mutex<WindowCore>,
    idle: AtomicBool,
    last_used: AtomicI64,
    counts: Mutex<Vec<Commit>>,
}

/// What the window's lock guards.
#[derive(Debug)]
struct WindowCore {
    ledger: Ledger,
    span: Option<Span>,
    health: Health,
    /// Holds this generation of the window handed out and not yet dropped.
    holds: Arc<AtomicUsize>,
    /// Those of earlier generations (before restarts) still held.
    earlier_holds: Vec<Arc<AtomicUsize>>,
    /// The buffer queued counts are swapped into (see
    /// [`WindowShared::take_counts`]); it and the queue keep the capacity of
    /// the largest burst the window has seen, for as long as it runs.
    spare: Vec<Commit>,
}

impl WindowCore {
    /// Whether every hold of an earlier generation has been dropped (see
    /// [`Held`]); forgets those that have.
    fn earlier_holds_settled(&mut self) -> bool {
        self.earlier_holds.retain(|holds| holds.load(Ordering::Acquire) > 0);
        self.earlier_holds.is_empty()
    }

    /// Whether a caller may use the ledger on its own thread: ready, and no
    /// earlier generation's reservation outstanding.
    fn open_to_callers(&mut self) -> bool {
        self.health == Health::Ready && self.earlier_holds_settled()
    }
}

impl WindowShared {
    /// The state of a window labelled `policy/scope`, starting from `ledger`.
    pub fn new(label: String, ledger: Ledger) -> Self {
        let core = WindowCore {
            ledger,
            span: None,
            health: Health::Ready,
            holds: Arc::default(),
            earlier_holds: Vec::new(),
            spare: Vec::new(),
        };
        WindowShared {
            label,
            core: Mutex::new(core),
            idle: AtomicBool::new(false),
            last_used: AtomicI64::new(0),
            counts: Mutex::default(),
        }
    }

    /// The window's lock. Nothing panics while holding it (every use of the
    /// ledger is caught), so a poisoned lock only means a bug elsewhere: its
    /// state is used as it is.
    fn core(&self) -> MutexGuard<'_, WindowCore> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lock if nobody holds it.
    fn try_core(&self) -> Option<MutexGuard<'_, WindowCore>> {
        match self.core.try_lock() {
            Ok(core) => Some(core),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Queues `count` for the ledger's next use.
    pub fn queue_count(&self, count: Commit) {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).push(count);
    }

    /// Swaps the queued counts into `batch` (empty), whose buffer becomes
    /// the queue's: once both have grown to a burst, queuing allocates
    /// nothing.
    fn take_counts(&self, batch: &mut Vec<Commit>) {
        std::mem::swap(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()), batch);
    }

    fn has_counts(&self) -> bool {
        !self.counts.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// Marks a lookup at `now`.
    pub fn touch(&self, now: DateTime<Utc>) {
        self.last_used.store(now.timestamp(), Ordering::Relaxed);
    }

    /// Whether the window held nothing at its last use, has no count
    /// waiting, and was not looked up since `cutoff`.
    pub fn retirable(&self, cutoff: DateTime<Utc>) -> bool {
        self.idle.load(Ordering::Acquire)
            && self.last_used.load(Ordering::Relaxed) < cutoff.timestamp()
            && !self.has_counts()
    }

    /// Whether it was not looked up since `cutoff`.
    pub fn unused_since(&self, cutoff: DateTime<Utc>) -> bool {
        self.last_used.load(Ordering::Relaxed) < cutoff.timestamp()
    }

    /// Checks and reserves on the caller's thread, if the window is ready and
    /// its lock free; `None` sends the caller to the actor. `Err`: the check
    /// panicked, the window is down until its actor restarts it (the caller
    /// sends [`Restart`]), and the check fails closed.
    pub fn try_reserve(&self, msg: &Reserve) -> Option<Result<Checked, Crashed>> {
        let mut core = self.try_core()?;
        core.open_to_callers().then(|| self.reserve(&mut core, msg))
    }

    /// Drops a reservation on the caller's thread, if the window is ready
    /// (waiting for its lock: a release sent to the actor could be overtaken
    /// by a later check, which would still see the amount); `None` sends the
    /// caller to the actor.
    pub fn try_release(&self, reservation: u64) -> Option<Result<(), Crashed>> {
        let mut core = self.core();
        core.open_to_callers().then(|| self.release(&mut core, reservation))
    }

    /// Runs `body` on the ledger as `site`; a panic leaves the window down
    /// ([`Health::Crashed`]) until its actor restarts.
    fn use_ledger<R>(
        &self,
        core: &mut WindowCore,
        site: &'static str,
        body: impl FnOnce(&mut WindowCore) -> R,
    ) -> Result<R, Crashed> {
        if core.health == Health::Crashed {
            return Err(Crashed);
        }
        let used = caught(site, &self.label, || body(&mut *core));
        if used.is_err() {
            core.health = Health::Crashed;
            self.publish_idle(core);
        }
        used
    }

    /// Applies the counts queued since the ledger's last use, each as
    /// [`Commit`] would be.
    fn count_queued(&self, core: &mut WindowCore) -> Result<(), Crashed> {
        if core.health == Health::Crashed {
            return Err(Crashed);
        }
        let mut batch = std::mem::take(&mut core.spare);
        self.take_counts(&mut batch);
        for msg in batch.drain(..) {
            self.use_ledger(core, "window.commit", |core| {
                core.ledger.commit(msg.reservation, &msg.activity, msg.quantity, msg.at)
            })?;
        }
        core.spare = batch;
        Ok(())
    }

    fn publish_idle(&self, core: &mut WindowCore) {
        let idle = core.health == Health::Ready && core.ledger.is_idle() && core.earlier_holds_settled();
        self.idle.store(idle, Ordering::Release);
    }

    /// INVARIANT (no overshoot): check and reserve in one step; after a
    /// restart, not before the holds of earlier generations are dropped
    /// (read before the queued counts are taken: see [`Held`]).
    fn reserve(&self, core: &mut WindowCore, msg: &Reserve) -> Result<Checked, Crashed> {
        let checked = |answer| Ok(Checked { answer, held: None });
        let settled = core.earlier_holds_settled();
        self.count_queued(core)?;
        if let Health::Failed(_) | Health::Rebuilding = core.health {
            return checked(closed(msg.now, "its journal could not be read"));
        }
        if !settled {
            return checked(closed(msg.now, "it restarted while activities it had reserved for were being journaled"));
        }
        core.span = Some(msg.velocity.span);
        let answer = self.use_ledger(core, "window.reserve", |core| {
            core.ledger.reserve(&msg.velocity, msg.reservation, msg.quantity, msg.now)
        })?;
        self.publish_idle(core);
        let held = (!answer.triggered).then(|| Held::new(&core.holds));
        Ok(Checked { answer, held })
    }

    /// Adds the counts of `ledger` (read again from the journal) that the
    /// window does not hold yet, under its lock: the next check, on whatever
    /// thread, sees them (a message to the actor could be overtaken by a
    /// check taken on a caller's thread). `Err`: the window is down, and its
    /// actor must be sent [`Restart`] (its rebuild reads the counts back).
    pub fn merge(&self, ledger: Ledger) -> Result<(), Crashed> {
        let mut core = self.core();
        let merged = self
            .count_queued(&mut core)
            .and_then(|()| self.use_ledger(&mut core, "window.merge", |core| core.ledger.merge(ledger)));
        self.publish_idle(&mut core);
        merged
    }

    fn release(&self, core: &mut WindowCore, reservation: u64) -> Result<(), Crashed> {
        self.count_queued(core)?;
        self.use_ledger(core, "window.release", |core| core.ledger.release(reservation))?;
        self.publish_idle(core);
        Ok(())
    }
}

/// A check that panicked: it fails closed, and the window restarts.
pub fn crashed_check(now: DateTime<Utc>) -> Checked {
    Checked { answer: closed(now, "it crashed and restarts"), held: None }
}

#[derive(Debug, Clone, PartialEq)]
enum Health {
    Ready,
    /// A use of the ledger panicked; the actor restarts the window.
    Crashed,
    /// Reading its counts back after a restart.
    Rebuilding,
    /// The journal could not be read: fails closed until a retry succeeds.
    Failed(String),
}

/// The actor of one window: it serves the checks its callers could not take
/// on their own threads, and owns the window's life (rebuilds from the
/// journal, retries, pruning, restarts after a panic).
pub struct WindowActor {
    key: WindowKey,
    journal: Arc<dyn Journal>,
    counts: Arc<CountIndex>,
    shared: Arc<WindowShared>,
    restarts: Arc<AtomicU64>,
}

impl WindowActor {
    /// The actor of the window whose state is `shared` (its ledger rebuilt
    /// by recovery, or empty).
    pub fn new(
        key: WindowKey,
        journal: Arc<dyn Journal>,
        counts: Arc<CountIndex>,
        shared: Arc<WindowShared>,
        restarts: Arc<AtomicU64>,
    ) -> Self {
        WindowActor { key, journal, counts, shared, restarts }
    }

    /// Stops the actor (its supervisor restarts it) if the window is down.
    fn restart_if_crashed(&self, crashed: bool, ctx: &mut Context<Self>) {
        if crashed {
            ctx.stop();
        }
    }

    /// Reads this window's counts from the journal on a blocking thread; the
    /// mailbox waits meanwhile.
    ///
    /// A merge may use the ledger meanwhile (it runs on its caller's thread
    /// in any state); if it panicked, the window is restarted instead of
    /// being declared ready or failed over the half-changed ledger.
    fn rebuild(&mut self, ctx: &mut Context<Self>) {
        {
            let mut core = self.shared.core();
            if core.health == Health::Crashed {
                return self.restart_if_crashed(true, ctx);
            }
            core.health = Health::Rebuilding;
        }
        let (journal, index, key) = (self.journal.clone(), self.counts.clone(), self.key.clone());
        let read = tokio::task::spawn_blocking(move || counts_of(journal.as_ref(), &index, &key));
        ctx.wait(read.into_actor(self).map(|read, window, ctx| {
            let shared = window.shared.clone();
            let mut core = shared.core();
            if core.health == Health::Crashed {
                return window.restart_if_crashed(true, ctx);
            }
            let failure = match read {
                Ok(Ok(ledger)) => {
                    core.ledger.merge(ledger);
                    core.health = Health::Ready;
                    shared.publish_idle(&mut core);
                    return;
                }
                Ok(Err(error)) => error.to_string(),
                Err(join) => format!("the rebuild task failed: {join}"),
            };
            tracing::error!(window = %shared.label, error = %failure, "window could not be rebuilt from the journal; it fails closed");
            core.health = Health::Failed(failure);
            shared.publish_idle(&mut core);
            ctx.run_later(REBUILD_RETRY, |window, ctx| window.rebuild(ctx));
        }));
    }
}

/// Every journaled count of `key` the count index still holds (the registry
/// drops what no window can see), read from the records it names only.
fn counts_of(journal: &dyn Journal, index: &CountIndex, key: &WindowKey) -> Result<Ledger, crate::error::Error> {
    let all = chrono::DateTime::<chrono::Utc>::MIN_UTC;
    let mut read = index.read(journal, &key.policy_id, all, warden_journal::Seq::MAX, |window| window == key)?;
    Ok(read.remove(key).unwrap_or_default())
}

impl Actor for WindowActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let rebuilding = self.shared.core().health == Health::Rebuilding;
        if rebuilding && !super::system_is_gone() {
            self.rebuild(ctx);
        }
    }
}

/// Restarted by its supervisor after a panic: the ledger may be half-changed,
/// so it is dropped and read back from the journal when the actor starts
/// again. Checks until then fail closed or wait in the mailbox; reservations
/// already granted are gone from the ledger while their activities may still
/// commit, so the new generation fails closed until their holds are dropped
/// (see [`Held`]), then sees their counts.
impl Supervised for WindowActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
        let mut core = self.shared.core();
        let holds = std::mem::take(&mut core.holds);
        core.earlier_holds.push(holds);
        core.ledger = Ledger::default();
        core.health = Health::Rebuilding;
        self.shared.publish_idle(&mut core);
    }
}

fn closed(now: DateTime<Utc>, why: &str) -> ReserveAnswer {
    let reason = format!("velocity window unavailable ({why}); fails closed").into();
    ReserveAnswer { triggered: true, reason, at: now }
}

impl Handler<Reserve> for WindowActor {
    type Result = MessageResult<Reserve>;

    fn handle(&mut self, msg: Reserve, ctx: &mut Context<Self>) -> Self::Result {
        let reserved = self.shared.reserve(&mut self.shared.core(), &msg);
        self.restart_if_crashed(reserved.is_err(), ctx);
        MessageResult(reserved.unwrap_or_else(|Crashed| crashed_check(msg.now)))
    }
}

/// A check or release on a caller's thread panicked: the window restarts.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Restart;

impl Handler<Restart> for WindowActor {
    type Result = ();

    fn handle(&mut self, _: Restart, ctx: &mut Context<Self>) {
        // Another message may have restarted it since.
        let crashed = self.shared.core().health == Health::Crashed;
        self.restart_if_crashed(crashed, ctx);
    }
}

impl Handler<Commit> for WindowActor {
    type Result = ();

    fn handle(&mut self, msg: Commit, ctx: &mut Context<Self>) {
        let shared = self.shared.clone();
        let mut core = shared.core();
        let used = shared.count_queued(&mut core).and_then(|()| {
            shared.use_ledger(&mut core, "window.commit", |core| {
                core.ledger.commit(msg.reservation, &msg.activity, msg.quantity, msg.at)
            })
        });
        shared.publish_idle(&mut core);
        self.restart_if_crashed(used.is_err(), ctx);
    }
}

impl Handler<Release> for WindowActor {
    type Result = ();

    fn handle(&mut self, msg: Release, ctx: &mut Context<Self>) {
        let shared = self.shared.clone();
        let mut core = shared.core();
        let used = shared.release(&mut core, msg.reservation);
        shared.publish_idle(&mut core);
        self.restart_if_crashed(used.is_err(), ctx);
    }
}

impl Handler<Total> for WindowActor {
    type Result = String;

    fn handle(&mut self, msg: Total, ctx: &mut Context<Self>) -> String {
        let shared = self.shared.clone();
        let mut core = shared.core();
        if shared.count_queued(&mut core).is_err() {
            self.restart_if_crashed(true, ctx);
            return "unavailable: restarting".to_owned();
        }
        if let Health::Failed(why) = &core.health {
            return format!("unavailable: {why}");
        }
        let total =
            shared.use_ledger(&mut core, "window.total", |core| core.ledger.committed_total(&msg.velocity, msg.now));
        self.restart_if_crashed(total.is_err(), ctx);
        total.unwrap_or_else(|Crashed| "unavailable: restarting".to_owned())
    }
}

impl Handler<Prune> for WindowActor {
    type Result = ();

    fn handle(&mut self, msg: Prune, ctx: &mut Context<Self>) {
        let shared = self.shared.clone();
        let mut core = shared.core();
        let used = shared.count_queued(&mut core).and_then(|()| {
            shared.use_ledger(&mut core, "window.prune", |core| match msg.span {
                Some(span) => {
                    core.span = Some(span);
                    core.ledger.prune(span, msg.now)
                }
                None => core.ledger.clear_counts(),
            })
        });
        shared.publish_idle(&mut core);
        self.restart_if_crashed(used.is_err(), ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::compile::Measure;
    use rust_decimal::Decimal;

    fn check(reservation: u64, usd: u64) -> Reserve {
        let velocity = Velocity {
            measure: Measure::Usd(Decimal::from(1000)),
            span: Span::Rolling(3600),
            scope: Default::default(),
        };
        let now = DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        Reserve { velocity, reservation, quantity: Some(Quantity::Usd(Decimal::from(usd))), now }
    }

    fn window() -> (Arc<WindowShared>, Addr<WindowActor>) {
        let key = WindowKey { policy_id: "po-1".into(), scope_key: "wa-1".into() };
        let shared = Arc::new(WindowShared::new("po-1/wa-1".to_owned(), Ledger::default()));
        let journal: Arc<dyn Journal> = Arc::new(warden_journal::MemoryJournal::new());
        let (mine, restarts) = (shared.clone(), Arc::new(AtomicU64::new(0)));
        // On an arbiter of its own, as the engine starts windows: this test's
        // thread holds the lock the actor waits for.
        let arbiter = Arbiter::new().handle();
        let addr = Supervisor::start_in_arbiter(&arbiter, move |_| {
            WindowActor::new(key, journal, Arc::default(), mine, restarts)
        });
        (shared, addr)
    }

    /// A caller finding the lock held goes to the actor, which takes the
    /// check once the lock is free: the same single step, so both
    /// reservations are seen and the third does not fit.
    #[actix_rt::test]
    #[allow(clippy::await_holding_lock, reason = "the held lock is the scene: the actor must wait for it")]
    async fn a_check_that_finds_the_lock_held_is_taken_by_the_actor_once_it_is_free() {
        let (shared, addr) = window();
        let first = shared.try_reserve(&check(1, 600)).expect("the lock is free").expect("no panic");
        assert!(!first.answer.triggered);

        let busy = shared.core();
        assert!(shared.try_reserve(&check(2, 300)).is_none(), "a held lock sends the caller to the actor");
        let sent = actix_rt::spawn(addr.send(check(2, 300)));
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        assert!(!sent.is_finished(), "the actor waits for the lock");
        drop(busy);
        let second = sent.await.unwrap().unwrap();
        assert!(!second.answer.triggered, "{:?}", second.answer);

        let third = shared.try_reserve(&check(3, 200)).unwrap().unwrap();
        assert!(third.answer.triggered, "600 + 300 held, 200 more is over 1000: {:?}", third.answer);
        drop((first, second));
    }
}
