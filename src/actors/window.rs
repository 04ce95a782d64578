//! One velocity window (a policy and a scope key) as an actor: its mailbox is
//! what makes check-and-reserve one atomic step per window.
//!
//! A window that panics is restarted by its supervisor and reads its counts
//! back from the journal on a blocking thread (never on its arbiter, which
//! runs other actors); messages wait in its mailbox meanwhile. If the journal
//! cannot be read, the window fails closed (every check triggers) and tries
//! again every [`REBUILD_RETRY`]. It never answers from a partial ledger.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use warden_journal::Journal;

use crate::policy::compile::{Span, Velocity};
use crate::policy::window_math::{Ledger, ReserveAnswer};
use crate::policy::{Quantity, WindowKey};
use crate::state::CountIndex;

use super::guard::{guarded, Crashed};

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

/// Add the counts of a ledger read again from the journal (the rule changed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct MergeCounts(pub Ledger);

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

/// What the address book and the window share: whether the window holds
/// nothing (so it may retire), when it was last looked up, and the counts
/// waiting for its next message.
///
/// INVARIANT (counted before read): a committed activity's count is queued
/// here instead of sent, so that counting wakes no arbiter (a hand-off per
/// allowed activity); every handler applies the queue before it reads or
/// changes the ledger, and a window with queued counts does not retire. A
/// queued count of a reservation turns an amount the window already holds
/// into a count (the sum stays); a count is applied once however often it
/// arrives (a restart reads it back from the journal too).
#[derive(Debug, Default)]
pub struct WindowShared {
    idle: AtomicBool,
    last_used: AtomicI64,
    counts: Mutex<Vec<Commit>>,
}

impl WindowShared {
    /// Queues `count` for the window's next message.
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

    /// Whether the window held nothing at its last message, has no count
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
}

#[derive(Debug, Clone, PartialEq)]
enum Health {
    Ready,
    /// Reading its counts back after a restart.
    Rebuilding,
    /// The journal could not be read: fails closed until a retry succeeds.
    Failed(String),
}

/// The actor of one window.
pub struct WindowActor {
    key: WindowKey,
    label: String,
    ledger: Ledger,
    span: Option<Span>,
    health: Health,
    journal: Arc<dyn Journal>,
    counts: Arc<CountIndex>,
    shared: Arc<WindowShared>,
    restarts: Arc<AtomicU64>,
    /// Holds this generation of the actor handed out and not yet dropped.
    holds: Arc<AtomicUsize>,
    /// Those of earlier generations (before restarts) still held.
    earlier_holds: Vec<Arc<AtomicUsize>>,
    /// The buffer queued counts are swapped into (see
    /// [`WindowShared::take_counts`]); it and the queue keep the capacity of
    /// the largest burst the window has seen, for as long as it runs.
    spare: Vec<Commit>,
}

impl WindowActor {
    /// A window starting from `ledger` (rebuilt by recovery, or empty).
    pub fn new(
        key: WindowKey,
        ledger: Ledger,
        journal: Arc<dyn Journal>,
        counts: Arc<CountIndex>,
        shared: Arc<WindowShared>,
        restarts: Arc<AtomicU64>,
    ) -> Self {
        let label = format!("{}/{}", key.policy_id, key.scope_key);
        WindowActor {
            key,
            label,
            ledger,
            span: None,
            health: Health::Ready,
            journal,
            counts,
            shared,
            restarts,
            holds: Arc::default(),
            earlier_holds: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// Applies the counts queued since the last message, each as the handler
    /// of [`Commit`] would (a panic in one restarts the window: `Err`).
    fn count_queued(&mut self, ctx: &mut Context<Self>) -> Result<(), Crashed> {
        let mut batch = std::mem::take(&mut self.spare);
        self.shared.take_counts(&mut batch);
        for commit in batch.drain(..) {
            self.count(commit, ctx)?;
        }
        self.spare = batch;
        Ok(())
    }

    fn count(&mut self, msg: Commit, ctx: &mut Context<Self>) -> Result<(), Crashed> {
        guarded(ctx, "window.commit", &self.label, || {
            self.ledger.commit(msg.reservation, &msg.activity, msg.quantity, msg.at)
        })
    }

    fn release(&mut self, reservation: u64, ctx: &mut Context<Self>) -> Result<(), Crashed> {
        guarded(ctx, "window.release", &self.label, || self.ledger.release(reservation))
    }

    /// Whether every hold of an earlier generation has been dropped (see
    /// [`Held`]); forgets those that have.
    fn earlier_holds_settled(&mut self) -> bool {
        self.earlier_holds.retain(|holds| holds.load(Ordering::Acquire) > 0);
        self.earlier_holds.is_empty()
    }

    fn publish_idle(&mut self) {
        let idle = self.health == Health::Ready && self.ledger.is_idle() && self.earlier_holds_settled();
        self.shared.idle.store(idle, Ordering::Release);
    }

    /// Reads this window's counts from the journal on a blocking thread; the
    /// mailbox waits meanwhile.
    fn rebuild(&mut self, ctx: &mut Context<Self>) {
        self.health = Health::Rebuilding;
        let (journal, index, key) = (self.journal.clone(), self.counts.clone(), self.key.clone());
        let read = tokio::task::spawn_blocking(move || counts_of(journal.as_ref(), &index, &key));
        ctx.wait(read.into_actor(self).map(|read, window, ctx| {
            let failure = match read {
                Ok(Ok(ledger)) => {
                    window.ledger.merge(ledger);
                    window.health = Health::Ready;
                    window.publish_idle();
                    return;
                }
                Ok(Err(error)) => error.to_string(),
                Err(join) => format!("the rebuild task failed: {join}"),
            };
            tracing::error!(window = %window.label, error = %failure, "window could not be rebuilt from the journal; it fails closed");
            window.health = Health::Failed(failure);
            window.publish_idle();
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
        if self.health == Health::Rebuilding && !super::system_is_gone() {
            self.rebuild(ctx);
        }
    }
}

/// Restarted by its supervisor after a panic: the ledger may be half-changed,
/// so it is dropped and read back from the journal when the actor starts
/// again. Checks still in the mailbox fail closed; reservations already
/// granted are gone from the ledger while their activities may still commit,
/// so the new generation fails closed until their holds are dropped (see
/// [`Held`]), then sees their counts.
impl Supervised for WindowActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
        self.earlier_holds.push(std::mem::take(&mut self.holds));
        self.ledger = Ledger::default();
        self.health = Health::Rebuilding;
        self.publish_idle();
    }
}

fn closed(now: DateTime<Utc>, why: &str) -> ReserveAnswer {
    let reason = format!("velocity window unavailable ({why}); fails closed").into();
    ReserveAnswer { triggered: true, reason, at: now }
}

impl Handler<Reserve> for WindowActor {
    type Result = MessageResult<Reserve>;

    /// INVARIANT (no overshoot): check and reserve in one message; after a
    /// restart, not before the holds of earlier generations are dropped
    /// (read before the queued counts are taken: see [`Held`]).
    fn handle(&mut self, msg: Reserve, ctx: &mut Context<Self>) -> Self::Result {
        let checked = |answer| MessageResult(Checked { answer, held: None });
        let settled = self.earlier_holds_settled();
        if self.count_queued(ctx).is_err() {
            return checked(closed(msg.now, "it crashed and restarts"));
        }
        if let Health::Failed(_) | Health::Rebuilding = self.health {
            return checked(closed(msg.now, "its journal could not be read"));
        }
        if !settled {
            return checked(closed(msg.now, "it restarted while activities it had reserved for were being journaled"));
        }
        self.span = Some(msg.velocity.span);
        let answer = guarded(ctx, "window.reserve", &self.label, || {
            self.ledger.reserve(&msg.velocity, msg.reservation, msg.quantity, msg.now)
        });
        self.publish_idle();
        match answer {
            Ok(answer) => {
                let held = (!answer.triggered).then(|| Held::new(&self.holds));
                MessageResult(Checked { answer, held })
            }
            Err(_) => checked(closed(msg.now, "it crashed and restarts")),
        }
    }
}

impl Handler<Commit> for WindowActor {
    type Result = ();

    fn handle(&mut self, msg: Commit, ctx: &mut Context<Self>) {
        let _ = self.count_queued(ctx).and_then(|()| self.count(msg, ctx));
        self.publish_idle();
    }
}

impl Handler<Release> for WindowActor {
    type Result = ();

    fn handle(&mut self, msg: Release, ctx: &mut Context<Self>) {
        let _ = self.count_queued(ctx).and_then(|()| self.release(msg.reservation, ctx));
        self.publish_idle();
    }
}

impl Handler<MergeCounts> for WindowActor {
    type Result = ();

    fn handle(&mut self, msg: MergeCounts, ctx: &mut Context<Self>) {
        if self.count_queued(ctx).is_ok() {
            let _ = guarded(ctx, "window.merge", &self.label, || self.ledger.merge(msg.0));
        }
        self.publish_idle();
    }
}

impl Handler<Total> for WindowActor {
    type Result = String;

    fn handle(&mut self, msg: Total, ctx: &mut Context<Self>) -> String {
        if self.count_queued(ctx).is_err() {
            return "unavailable: restarting".to_owned();
        }
        if let Health::Failed(why) = &self.health {
            return format!("unavailable: {why}");
        }
        guarded(ctx, "window.total", &self.label, || self.ledger.committed_total(&msg.velocity, msg.now))
            .unwrap_or_else(|_| "unavailable: restarting".to_owned())
    }
}

impl Handler<Prune> for WindowActor {
    type Result = ();

    fn handle(&mut self, msg: Prune, ctx: &mut Context<Self>) {
        if self.count_queued(ctx).is_err() {
            self.publish_idle();
            return;
        }
        let _ = guarded(ctx, "window.prune", &self.label, || match msg.span {
            Some(span) => {
                self.span = Some(span);
                self.ledger.prune(span, msg.now)
            }
            None => self.ledger.clear_counts(),
        });
        self.publish_idle();
    }
}
