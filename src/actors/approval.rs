//! One pending approval as an actor: its mailbox orders the decisions, so an
//! approval resolves exactly once. The approval itself lives in the state
//! tables, in one place; the actor holds its id and a narrow handle
//! ([`ApprovalPort`]) to read it, to settle a transition (commit, then apply)
//! and to read it back from the journal after a crash. Once the approval
//! resolves, the address book drops the actor's address and it ends.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Weak};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use crate::error::{Conflict, Error, Unavailable};
use crate::model::approval::{Approval, ApprovalStatus, Decision, DecisionValue};
use crate::model::principal::PrincipalKind;
use crate::model::signed_action::SignedAction;
use crate::workflow;

use super::guard::{crashed, guarded};

/// What an approval actor may do beyond itself: given when it starts.
pub(crate) trait ApprovalPort: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
    /// The approval while pending, hollow: what deciding reads (groups,
    /// decisions, status, deadline), not its activity request.
    fn pending(&self, id: &str) -> Option<Approval>;
    /// Commits the move to `next` (after `decision`), then applies it.
    fn settle(
        self: Arc<Self>,
        next: Approval,
        decision: Option<Decision>,
    ) -> BoxFuture<'static, Result<Approval, Error>>;
    /// Reads the approval back from the journal, off the actor's thread.
    fn reload(self: Arc<Self>, id: String) -> BoxFuture<'static, Result<(), Error>>;
    /// Counts a restart.
    fn restarts(&self) -> &AtomicU64;
}

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
    /// The decider's signed assertion, journaled with the decision.
    pub user_action: Option<SignedAction>,
}

/// The deadline passed: expire if still pending; answers whether it expired.
#[derive(Message)]
#[rtype(result = "Result<bool, Error>")]
pub struct Expire;

/// The actor of one approval.
pub struct ApprovalActor {
    id: String,
    port: Weak<dyn ApprovalPort>,
    restarted: bool,
}

type Answer = AtomicResponse<ApprovalActor, Result<Approval, Error>>;

fn answer(result: Result<Approval, Error>) -> Answer {
    AtomicResponse::new(Box::pin(fut::ready(result)))
}

impl ApprovalActor {
    /// The actor of approval `id`.
    pub(crate) fn new(id: String, port: Weak<dyn ApprovalPort>) -> Self {
        ApprovalActor { id, port, restarted: false }
    }

    fn port(&self) -> Result<Arc<dyn ApprovalPort>, Error> {
        self.port.upgrade().ok_or_else(|| Unavailable::ShuttingDown.into())
    }

    /// Settles `next`, then answers what `finish` makes of the outcome; a
    /// panic on the way restarts the actor and answers an error.
    fn transition<R: 'static>(
        &mut self,
        port: Arc<dyn ApprovalPort>,
        next: Approval,
        decision: Option<Decision>,
        finish: impl FnOnce(Result<Approval, Error>) -> Result<R, Error> + 'static,
    ) -> AtomicResponse<Self, Result<R, Error>> {
        let id = self.id.clone();
        let settle = AssertUnwindSafe(port.settle(next, decision)).catch_unwind();
        AtomicResponse::new(Box::pin(settle.into_actor(self).map(move |settled, _, ctx| match settled {
            Ok(result) => finish(result),
            Err(payload) => {
                crashed("approval.settle", &id, payload.as_ref());
                ctx.stop();
                Err(Unavailable::Restarting { what: format!("approval `{id}`") }.into())
            }
        })))
    }
}

impl Actor for ApprovalActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if !self.restarted || super::system_is_gone() {
            return;
        }
        let Ok(port) = self.port() else { return };
        ctx.wait(port.reload(self.id.clone()).into_actor(self).map(|reloaded, actor, _| {
            if let Err(error) = reloaded {
                tracing::error!(approval = %actor.id, %error, "approval could not be read back from the journal");
            }
        }));
    }
}

/// Restarted by its supervisor after a panic: the approval is read back from
/// the journal, so a half-applied change in memory is thrown away.
impl Supervised for ApprovalActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.restarted = true;
        if let Some(port) = self.port.upgrade() {
            port.restarts().fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl Handler<Decide> for ApprovalActor {
    type Result = Answer;

    /// Checks the decision (403 then 409), records it, and resolves the
    /// approval when every group has its quorum or on an eligible denial. A
    /// decision arriving after the deadline (before the timer got to it)
    /// expires the approval and is refused with 409.
    fn handle(&mut self, msg: Decide, ctx: &mut Context<Self>) -> Self::Result {
        let port = match self.port() {
            Ok(port) => port,
            Err(e) => return answer(Err(e)),
        };
        let id = self.id.clone();
        let step = guarded(ctx, "approval.decide", &id, || {
            // Resolved since the caller looked: it reads the approval again.
            let Some(approval) = port.pending(&id) else {
                return Err(Conflict::NotPending { approval_id: id.clone(), status: ApprovalStatus::Pending }.into());
            };
            let now = port.now();
            workflow::check_decision(&approval, &msg.who, msg.kind, msg.value)?;
            let mut next = approval;
            if workflow::is_due(&next, now) {
                let deadline = next.expiration_date.unwrap_or(now);
                workflow::resolve(&mut next, ApprovalStatus::Expired, deadline);
                return Ok((next, None));
            }
            let decision = Decision {
                user_id: msg.who,
                user_kind: msg.kind,
                value: msg.value,
                reason: msg.reason,
                date: now,
                credential_id: msg.user_action.as_ref().map(|signed| signed.credential_id.clone()),
                user_action: msg.user_action,
            };
            if let Some(status) = workflow::apply_decision(&mut next, decision.clone()) {
                workflow::resolve(&mut next, status, now);
            }
            Ok((next, Some(decision)))
        });
        match step {
            Err(_) => answer(Err(Unavailable::Restarting { what: format!("approval `{id}`") }.into())),
            Ok(Err(refused)) => answer(Err(refused)),
            Ok(Ok((next, None))) => self.transition(port, next, None, move |expired| {
                expired.and_then(|_| Err(Conflict::Expired { approval_id: id }.into()))
            }),
            Ok(Ok((next, decision))) => self.transition(port, next, decision, |settled| settled),
        }
    }
}

impl Handler<Expire> for ApprovalActor {
    type Result = AtomicResponse<Self, Result<bool, Error>>;

    /// Expires the approval if it is still pending and its deadline passed.
    fn handle(&mut self, _: Expire, ctx: &mut Context<Self>) -> Self::Result {
        let port = match self.port() {
            Ok(port) => port,
            Err(e) => return AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        };
        let id = self.id.clone();
        let step = guarded(ctx, "approval.expire", &id, || {
            let approval = port.pending(&id)?;
            let now = port.now();
            workflow::is_due(&approval, now).then(|| {
                let mut next = approval;
                // It expired at its deadline, also when noticed later.
                let deadline = next.expiration_date.unwrap_or(now);
                workflow::resolve(&mut next, ApprovalStatus::Expired, deadline);
                next
            })
        });
        match step {
            Err(_) => AtomicResponse::new(Box::pin(fut::ready(Err(Unavailable::Restarting {
                what: format!("approval `{id}`"),
            }
            .into())))),
            Ok(Some(next)) => self.transition(port, next, None, |settled| settled.map(|_| true)),
            Ok(None) => AtomicResponse::new(Box::pin(fut::ready(Ok(false)))),
        }
    }
}
