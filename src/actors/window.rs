//! One velocity window (a policy and a scope key) as an actor: its mailbox is
//! what makes check-and-reserve one atomic step per window.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Weak;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::engine::core::Core;
use crate::policy::compile::Velocity;
use crate::policy::window_math::{Ledger, ReserveAnswer};
use crate::policy::{Quantity, WindowKey};

/// Check `quantity` against the limit and, if it fits, hold it as reserved.
#[derive(Message)]
#[rtype(result = "ReserveAnswer")]
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

/// Count a reservation (or, without one, `quantity`) from `at`.
#[derive(Message)]
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

/// Take the counts of a ledger rebuilt from the journal (the rule changed),
/// keeping the reservations in flight.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReplaceCounts(pub Ledger);

/// The committed total at `now` (for inspection and tests).
#[derive(Message)]
#[rtype(result = "String")]
pub struct Total {
    /// The rule.
    pub velocity: Velocity,
    /// Now.
    pub now: DateTime<Utc>,
}

/// Makes the actor panic mid-message: the test hook of supervision.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Crash;

/// The actor of one window.
pub struct WindowActor {
    key: WindowKey,
    ledger: Ledger,
    core: Weak<Core>,
}

impl WindowActor {
    /// A window starting from `ledger` (rebuilt by recovery, or empty).
    pub fn new(key: WindowKey, ledger: Ledger, core: Weak<Core>) -> Self {
        WindowActor { key, ledger, core }
    }
}

impl Actor for WindowActor {
    type Context = Context<Self>;
}

/// Restarted by its [`Supervisor`] after a panic: the ledger is rebuilt from
/// the journal's counts (reservations in flight are lost; their callers get
/// an error and fail closed).
impl Supervised for WindowActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        if let Some(core) = self.core.upgrade() {
            core.supervision.window_restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.ledger = core.rebuild_ledger(&self.key);
        }
    }
}

impl Handler<Reserve> for WindowActor {
    type Result = MessageResult<Reserve>;

    /// INVARIANT (no overshoot): check and reserve in one message.
    fn handle(&mut self, msg: Reserve, ctx: &mut Context<Self>) -> Self::Result {
        let answer = catch_unwind(AssertUnwindSafe(|| {
            self.ledger.reserve(&msg.velocity, msg.reservation, msg.quantity, msg.now)
        }));
        match answer {
            Ok(answer) => MessageResult(answer),
            Err(_) => {
                ctx.stop();
                MessageResult(ReserveAnswer {
                    triggered: true,
                    reason: "velocity window failed; fails closed".into(),
                    at: msg.now,
                })
            }
        }
    }
}

impl Handler<Commit> for WindowActor {
    type Result = ();

    fn handle(&mut self, msg: Commit, _: &mut Context<Self>) {
        self.ledger.commit(msg.reservation, &msg.activity, msg.quantity, msg.at);
    }
}

impl Handler<Release> for WindowActor {
    type Result = ();

    fn handle(&mut self, msg: Release, _: &mut Context<Self>) {
        self.ledger.release(msg.reservation);
    }
}

impl Handler<ReplaceCounts> for WindowActor {
    type Result = ();

    fn handle(&mut self, msg: ReplaceCounts, _: &mut Context<Self>) {
        self.ledger.replace_counts(msg.0);
    }
}

impl Handler<Total> for WindowActor {
    type Result = String;

    fn handle(&mut self, msg: Total, _: &mut Context<Self>) -> String {
        self.ledger.committed_total(&msg.velocity, msg.now)
    }
}

impl Handler<Crash> for WindowActor {
    type Result = ();

    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        let outcome = catch_unwind(|| panic!("window actor crash requested"));
        if outcome.is_err() {
            // The ledger may be half-changed after a panic: drop it and let
            // the supervisor rebuild it.
            self.ledger = Ledger::default();
            ctx.stop();
        }
    }
}
