//! The policy registry: the supervisor of the window and approval actors and
//! the single writer of the policy snapshot.
//!
//! - It owns the address books ([`AddressBook`]), where every window and
//!   approval actor is started under an actix `Supervisor` and found again.
//! - Its mailbox is the one-at-a-time lane ([`Serialized`]) of policy changes
//!   and governed-change resolutions, so the pending-change check and the
//!   snapshot swap always see every earlier change.
//! - Its timers expire due approvals from the deadline index (nothing is
//!   scanned while nothing is due), retire idle windows, and forget old
//!   `externalId`s.

use std::sync::{Arc, Weak};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use crate::policy::compile::CompiledRule;

use super::approval::Expire;
use super::book::APPROVAL_IDLE;
use super::hub::Hub;
use super::serial::Serialized;

/// How often the deadline index is looked at: expiry is at most this late
/// (it is also checked at start).
pub const EXPIRY_TICK: Duration = Duration::from_millis(250);

/// How often `externalId`s past their retention are forgotten.
pub const RETENTION_SWEEP: Duration = Duration::from_secs(3600);

/// The limits the registry's timers keep.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Upkeep {
    /// A window holding nothing retires after this long unused.
    pub(crate) window_idle: Duration,
    /// `externalId`s are forgotten after this long.
    pub(crate) external_id_retention: Duration,
}

/// The registry actor.
///
/// It holds its engine weakly: once the embedder drops the engine, the
/// registry stops, and with it every timer.
pub(crate) struct Registry {
    hub: Weak<Hub>,
    upkeep: Upkeep,
}

impl Registry {
    /// The registry of `hub`'s actors.
    pub(crate) fn new(hub: &Arc<Hub>, upkeep: Upkeep) -> Self {
        Registry { hub: Arc::downgrade(hub), upkeep }
    }

    /// The engine's hub; stops the registry when the engine is gone.
    fn hub(&self, ctx: &mut Context<Self>) -> Option<Arc<Hub>> {
        let hub = self.hub.upgrade();
        if hub.is_none() {
            ctx.stop();
        }
        hub
    }

    fn sweep_windows(&self, hub: &Hub) {
        let now = hub.now();
        let cutoff = now - chrono::Duration::from_std(self.upkeep.window_idle).unwrap_or(chrono::Duration::MAX);
        let state = hub.state().clone();
        let retired = hub.book().sweep_windows(now, cutoff, |policy_id| match state.compiled(policy_id) {
            Some(policy) => match &policy.rule {
                CompiledRule::Velocity(velocity) => Some(velocity.span),
                _ => None,
            },
            None => None,
        });
        if retired > 0 {
            tracing::debug!(retired, "idle windows retired");
        }
        let approval_cutoff = now - chrono::Duration::from_std(APPROVAL_IDLE).unwrap_or(chrono::Duration::MAX);
        let retired = hub.book().sweep_approvals(approval_cutoff);
        if retired > 0 {
            tracing::debug!(retired, "idle approval actors retired");
        }
        // Counts older than the widest window are seen by no rule again.
        let widest = chrono::Duration::seconds(crate::policy::limits::MAX_TIME_WINDOW_SECS as i64);
        if let Some(horizon) = now.checked_sub_signed(widest) {
            hub.state().count_index().forget_before(horizon);
        }
    }

    fn forget_external_ids(&self, hub: &Hub) {
        let retention = chrono::Duration::from_std(self.upkeep.external_id_retention).unwrap_or(chrono::Duration::MAX);
        let cutoff = hub.now().checked_sub_signed(retention).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let forgotten = hub.state().forget_external_ids(cutoff);
        if forgotten > 0 {
            tracing::info!(forgotten, "externalIds past their retention forgotten");
        }
    }
}

/// Expires every pending approval past its deadline; answers how many expired.
pub(crate) async fn expire_due(hub: &Hub) -> usize {
    if !hub.leadership().is_leading() {
        // A standby expires nothing: the leader does, and it follows.
        return 0;
    }
    let now = hub.now();
    let due = hub.state().due_approvals(now);
    let port = hub.approval_port();
    let actors: Vec<_> = due.iter().map(|id| hub.book().approval(id, now, &port)).collect();
    let answers = futures_util::future::join_all(actors.iter().map(|actor| actor.addr.send(Expire))).await;
    answers.into_iter().filter(|a| matches!(a, Ok(Ok(true)))).count()
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if super::system_is_gone() {
            return;
        }
        ctx.run_interval(EXPIRY_TICK, |registry, ctx| {
            let Some(hub) = registry.hub(ctx) else { return };
            if hub.state().due_approvals(hub.now()).is_empty() {
                return;
            }
            // Not awaited here: approval actors may be waiting on this
            // registry's lane for a governed change, so it must not block.
            actix::spawn(async move {
                expire_due(&hub).await;
            });
        });
        // Windows go idle after `window_idle`; sweeping four times per idle
        // period retires them at most 1.25 idle periods after their last use.
        let sweep = (self.upkeep.window_idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
        ctx.run_interval(sweep, |registry, ctx| {
            if let Some(hub) = registry.hub(ctx) {
                registry.sweep_windows(&hub);
            }
        });
        let retention = RETENTION_SWEEP.min(self.upkeep.external_id_retention.max(Duration::from_secs(1)));
        ctx.run_interval(retention, |registry, ctx| {
            if let Some(hub) = registry.hub(ctx) {
                registry.forget_external_ids(&hub);
            }
        });
    }
}

impl Handler<Serialized> for Registry {
    type Result = AtomicResponse<Self, ()>;

    /// INVARIANT (single writer): the futures sent here run one at a time.
    fn handle(&mut self, msg: Serialized, _: &mut Context<Self>) -> Self::Result {
        AtomicResponse::new(Box::pin(msg.0.into_actor(self)))
    }
}
