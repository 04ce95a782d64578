//! The policy registry: the single writer of the policy snapshot, and the
//! supervisor of the window and approval actors. It runs policy changes one at
//! a time, applies approved change requests in the same commit as their
//! approval, and sweeps expired approvals on a timer. Its [`Supervision`]
//! starts every window and approval actor under an actix [`Supervisor`], on
//! one arbiter per core: a crashed actor is restarted and rebuilds its state
//! from the journal (see their `Supervised` impls).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix::prelude::*;

use crate::actors::approval::ApprovalActor;
use crate::actors::window::WindowActor;
use crate::policy::window_math::Ledger;
use crate::policy::WindowKey;

use crate::engine::core::Core;
use crate::engine::facts::Fact;
use crate::engine::{PolicyChange, PolicyOperation};
use crate::error::Error;
use crate::model::approval::Approval;
use crate::model::principal::Principal;

/// How often pending approvals are checked against their deadline. Expiry is
/// at most this late; it is also checked at start.
pub const EXPIRY_SWEEP: Duration = Duration::from_millis(500);

/// Apply or hold a policy change.
#[derive(Message)]
#[rtype(result = "Result<PolicyChange, Error>")]
pub struct Propose {
    /// Who asks.
    pub caller: Principal,
    /// What.
    pub operation: PolicyOperation,
}

/// Commit a governed change's approval resolution with the change.
#[derive(Message)]
#[rtype(result = "Result<(), Error>")]
pub struct ResolveChange {
    /// The approval's facts (decision, resolution, events).
    pub facts: Vec<Fact>,
    /// The resolved approval.
    pub approval: Approval,
}

/// Where window and approval actors run and who restarts them.
#[derive(Debug)]
pub struct Supervision {
    /// One arbiter (thread) per core; actors are spread round robin.
    arbiters: Vec<ArbiterHandle>,
    next: AtomicUsize,
    /// Window actor restarts so far.
    pub window_restarts: AtomicU64,
    /// Approval actor restarts so far.
    pub approval_restarts: AtomicU64,
}

impl Supervision {
    /// Supervision over `arbiters`.
    pub fn new(arbiters: Vec<ArbiterHandle>) -> Self {
        Supervision {
            arbiters,
            next: AtomicUsize::new(0),
            window_restarts: AtomicU64::new(0),
            approval_restarts: AtomicU64::new(0),
        }
    }

    fn next_arbiter(&self) -> ArbiterHandle {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        match self.arbiters.get(i % self.arbiters.len().max(1)) {
            Some(arbiter) => arbiter.clone(),
            None => Arbiter::current(),
        }
    }

    /// Starts a supervised window actor holding `ledger`.
    pub fn start_window(&self, core: Weak<Core>, key: WindowKey, ledger: Ledger) -> Addr<WindowActor> {
        Supervisor::start_in_arbiter(&self.next_arbiter(), move |_| WindowActor::new(key, ledger, core))
    }

    /// Starts a supervised approval actor.
    pub fn start_approval(&self, core: Weak<Core>, approval: Approval) -> Addr<ApprovalActor> {
        Supervisor::start_in_arbiter(&self.next_arbiter(), move |_| ApprovalActor::new(approval, core))
    }

    /// Stops every arbiter, and the actors on them.
    pub fn stop(&self) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

/// The registry actor.
pub struct Registry {
    core: Weak<Core>,
}

impl Registry {
    /// A registry over `core`.
    pub fn new(core: Weak<Core>) -> Self {
        Registry { core }
    }

    fn core(&self) -> Result<Arc<Core>, Error> {
        self.core.upgrade().ok_or_else(|| Error::Unavailable("engine stopped".into()))
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if super::system_is_gone() {
            return;
        }
        ctx.run_interval(EXPIRY_SWEEP, |registry, _| {
            if let Some(core) = registry.core.upgrade() {
                // Not awaited here: approval actors may be waiting on this
                // registry for a change request, so the sweep must not block it.
                actix::spawn(async move {
                    core.expire_due().await;
                });
            }
        });
    }
}

impl Handler<Propose> for Registry {
    type Result = AtomicResponse<Self, Result<PolicyChange, Error>>;

    /// INVARIANT (single writer): changes run one at a time, so the pending
    /// change check and the snapshot swap see every earlier change.
    fn handle(&mut self, msg: Propose, _: &mut Context<Self>) -> Self::Result {
        let core = self.core();
        AtomicResponse::new(Box::pin(async move { core?.propose(msg.caller, msg.operation).await }.into_actor(self)))
    }
}

impl Handler<ResolveChange> for Registry {
    type Result = AtomicResponse<Self, Result<(), Error>>;

    fn handle(&mut self, msg: ResolveChange, _: &mut Context<Self>) -> Self::Result {
        let core = self.core();
        AtomicResponse::new(Box::pin(
            async move { core?.resolve_change(msg.facts, &msg.approval).await }.into_actor(self),
        ))
    }
}
