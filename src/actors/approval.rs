//! One pending approval as an actor: its mailbox orders the decisions, so an
//! approval resolves exactly once. It stops when the approval resolves.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Weak};

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::engine::core::Core;
use crate::error::Error;
use crate::model::approval::{Approval, ApprovalStatus, Decision, DecisionValue};
use crate::model::principal::PrincipalKind;
use crate::workflow;

/// A principal decides.
#[derive(Message)]
#[rtype(result = "Result<Approval, Error>")]
pub struct Decide {
    /// Who.
    pub who: String,
    /// User or service account.
    pub kind: PrincipalKind,
    /// Approve or deny.
    pub value: DecisionValue,
    /// Why.
    pub reason: String,
}

/// The deadline passed: expire if still pending.
#[derive(Message)]
#[rtype(result = "Result<Approval, Error>")]
pub struct Expire;

/// Makes the actor panic mid-message: the test hook of supervision.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Crash;

/// The actor of one approval.
pub struct ApprovalActor {
    approval: Approval,
    core: Weak<Core>,
}

impl ApprovalActor {
    /// The actor of `approval`.
    pub fn new(approval: Approval, core: Weak<Core>) -> Self {
        ApprovalActor { approval, core }
    }

    fn core(&self) -> Result<Arc<Core>, Error> {
        self.core.upgrade().ok_or_else(|| Error::Unavailable("engine stopped".into()))
    }

    /// Journals `next` (the approval after `decision`, possibly resolved), then
    /// adopts it; stops the actor once resolved.
    fn transition(
        &mut self,
        next: Approval,
        decision: Option<Decision>,
        answer: impl FnOnce(Result<Approval, Error>) -> Result<Approval, Error> + 'static,
    ) -> AtomicResponse<Self, Result<Approval, Error>> {
        let core = match self.core() {
            Ok(core) => core,
            Err(e) => return AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        };
        AtomicResponse::new(Box::pin(async move { core.settle_approval(next, decision).await }.into_actor(self).map(
            |result, actor, _| {
                if let Ok(approval) = &result {
                    actor.approval = approval.clone();
                    if approval.status != ApprovalStatus::Pending {
                        // Unlisted, the actor stops once the last caller
                        // holding its address is answered; stopping it here
                        // would make its supervisor restart it.
                        if let Some(core) = actor.core.upgrade() {
                            core.approval_actors.remove(&approval.id);
                        }
                    }
                }
                answer(result)
            },
        )))
    }
}

impl Actor for ApprovalActor {
    type Context = Context<Self>;
}

/// Restarted by its [`Supervisor`] after a panic: the approval is read back
/// from the journal, so a half-applied change in memory is thrown away.
impl Supervised for ApprovalActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        if let Some(core) = self.core.upgrade() {
            core.supervision.approval_restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(approval) = core.replay_approval(&self.approval.id) {
                self.approval = approval;
            }
        }
    }
}

impl Handler<Decide> for ApprovalActor {
    type Result = AtomicResponse<Self, Result<Approval, Error>>;

    /// Checks the decision (403 then 409), records it, and resolves the
    /// approval when every group has its quorum or on an eligible denial. A
    /// decision arriving after the deadline (before the sweep got to it)
    /// expires the approval and is refused with 409.
    fn handle(&mut self, msg: Decide, _: &mut Context<Self>) -> Self::Result {
        let now = match self.core() {
            Ok(core) => core.clock.now(),
            Err(e) => return AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        };
        let checked = workflow::check_decision(&self.approval, &msg.who, msg.kind, msg.value);
        if checked.is_ok() && workflow::is_due(&self.approval, now) {
            let mut next = self.approval.clone();
            let deadline = next.expiration_date.unwrap_or(now);
            workflow::resolve(&mut next, ApprovalStatus::Expired, deadline);
            let id = next.id.clone();
            return self.transition(next, None, move |expired| {
                expired.and_then(|_| Err(Error::Conflict(format!("approval `{id}` expired before the decision"))))
            });
        }
        if let Err(e) = checked {
            return AtomicResponse::new(Box::pin(fut::ready(Err(e))));
        }
        let decision =
            Decision { user_id: msg.who, user_kind: msg.kind, value: msg.value, reason: msg.reason, date: now };
        let mut next = self.approval.clone();
        if let Some(status) = workflow::apply_decision(&mut next, decision.clone()) {
            workflow::resolve(&mut next, status, now);
        }
        self.transition(next, Some(decision), |settled| settled)
    }
}

impl Handler<Expire> for ApprovalActor {
    type Result = AtomicResponse<Self, Result<Approval, Error>>;

    /// Expires the approval if it is still pending and its deadline passed.
    fn handle(&mut self, _: Expire, _: &mut Context<Self>) -> Self::Result {
        let now: Option<DateTime<Utc>> = self.core.upgrade().map(|c| c.clock.now());
        match now {
            Some(now) if workflow::is_due(&self.approval, now) => {
                let mut next = self.approval.clone();
                // It expired at its deadline, also when noticed later.
                let deadline = next.expiration_date.unwrap_or(now);
                workflow::resolve(&mut next, ApprovalStatus::Expired, deadline);
                self.transition(next, None, |settled| settled)
            }
            _ => AtomicResponse::new(Box::pin(fut::ready(Ok(self.approval.clone())))),
        }
    }
}

impl Handler<Crash> for ApprovalActor {
    type Result = ();

    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            // Simulates a bug that corrupts the in-memory copy mid-message.
            self.approval.decisions.clear();
            panic!("approval actor crash requested")
        }));
        if outcome.is_err() {
            ctx.stop();
        }
    }
}
