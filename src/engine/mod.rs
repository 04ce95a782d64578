//! The embedded API: [`Engine`] and its builder. Calls become actor messages
//! and journal commits; reads come from in-memory tables derived from the
//! journal.

mod activities;
mod activity_log;
mod approvals;
pub(crate) mod core;
pub(crate) mod facts;
mod governance;
pub(crate) mod notices;
pub(crate) mod recovery;
pub(crate) mod store;
mod webhooks;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;
use warden_journal::{Journal, MemoryJournal};

use crate::actors::approval::Decide;
use crate::actors::registry::{Propose, Registry};
use crate::actors::webhook_dispatcher::Dispatcher;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, ValidationError};
use crate::model::activity::{Activity, ActivityRequest, ActivityStatus};
use crate::model::approval::{Approval, ApprovalStatus, DecisionValue};
use crate::model::change_request::ChangeRequest;
use crate::model::policy::{Policy, PolicySpec, PolicyStatus};
use crate::model::principal::Principal;
use crate::model::webhook::{Webhook, WebhookEvent, WebhookSpec};
use crate::policy::compile::CompiledRule;
use crate::policy::{validate, DefaultAction, EvaluationMode, PriceTable, WindowKey};
use crate::workflow;

pub use self::core::Settings;
pub use governance::{PolicyChange, PolicyOperation};
pub use store::{Page, PageRequest, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};

use self::core::Core;

/// Something that happened in the engine, for subscribers (webhooks use the
/// same kinds and data).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineEvent {
    /// `policy.triggered`, `policy.approval.pending`, `policy.approval.resolved`.
    pub kind: String,
    /// When.
    pub date: DateTime<Utc>,
    /// The event's data, as delivered to webhooks.
    pub data: serde_json::Value,
}

/// A policy with its pending change request, if any.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyView {
    /// The policy.
    #[serde(flatten)]
    pub policy: Policy,
    /// The change waiting for approval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_change_request: Option<ChangeRequest>,
}

/// Filters of the activity list.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    /// Only this wallet's activities.
    pub wallet_id: Option<String>,
    /// Only activities with this status.
    pub status: Option<ActivityStatus>,
}

/// Filters of the approval list.
#[derive(Debug, Clone, Default)]
pub struct ApprovalFilter {
    /// Only approvals with this status.
    pub status: Option<ApprovalStatus>,
    /// Only approvals of activities started by this principal.
    pub initiator_id: Option<String>,
    /// Only approvals this principal is eligible to approve in.
    pub approver_id: Option<String>,
}

/// Builds an [`Engine`].
pub struct EngineBuilder {
    journal: Option<Arc<dyn Journal>>,
    clock: Arc<dyn Clock>,
    settings: Settings,
    arbiters: usize,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            journal: None,
            clock: Arc::new(SystemClock),
            settings: Settings::default(),
            arbiters: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        }
    }
}

impl EngineBuilder {
    /// The journal (default: an in-memory one, for tests only).
    pub fn journal(mut self, journal: impl Journal) -> Self {
        self.journal = Some(Arc::new(journal));
        self
    }

    /// A shared journal.
    pub fn shared_journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// `all-triggered` (default) or `first-match`.
    pub fn evaluation_mode(mut self, mode: EvaluationMode) -> Self {
        self.settings.mode = mode;
        self
    }

    /// `first-match`'s answer when no policy triggers (default `NoAction`).
    pub fn default_action(mut self, action: DefaultAction) -> Self {
        self.settings.default_action = action;
        self
    }

    /// USD per whole unit of each symbol, for assets without `valueUsd`.
    pub fn prices(mut self, prices: PriceTable) -> Self {
        self.settings.prices = prices;
        self
    }

    /// The principals the engine knows of (for lockout protection).
    pub fn principals(mut self, principals: Vec<Principal>) -> Self {
        self.settings.principals = principals;
        self
    }

    /// Number of arbiters (threads) for window and approval actors; default
    /// one per core.
    pub fn arbiters(mut self, n: usize) -> Self {
        self.arbiters = n.max(1);
        self
    }

    /// Recovers the journal and starts the engine. Must run inside an actix
    /// system (`#[actix::main]`, `#[actix_web::main]`, `#[actix_rt::test]`).
    pub async fn build(self) -> Result<Engine, Error> {
        let journal = self.journal.unwrap_or_else(|| Arc::new(MemoryJournal::new()));
        let arbiters = (0..self.arbiters).map(|_| Arbiter::new().handle()).collect();
        let core = Arc::new(Core::new(self.settings, self.clock, journal, arbiters));
        let registry = Registry::new(Arc::downgrade(&core)).start();
        let _ = core.registry.set(registry);
        recovery::recover(&core).await?;
        let dispatcher = Dispatcher::new(Arc::downgrade(&core)).start();
        let _ = core.dispatcher.set(dispatcher);
        core.ready.store(true, Ordering::Release);
        Ok(Engine { core })
    }
}

/// Runs a state change to its end even if the caller stops waiting (a
/// dropped HTTP connection, a timeout): once its facts may be committed, the
/// in-memory state, the windows and the idempotency keys must follow them.
async fn detached<T: Send + 'static>(
    change: impl std::future::Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    tokio::spawn(change).await.map_err(|e| Error::Unavailable(format!("engine task failed: {e}")))?
}

/// A running policy engine. Cheap to clone; every clone is the same engine.
#[derive(Clone)]
pub struct Engine {
    core: Arc<Core>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("policies", &self.core.policies.len()).finish_non_exhaustive()
    }
}

impl Engine {
    /// A builder with the defaults.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// Whether recovery is complete.
    pub fn is_ready(&self) -> bool {
        self.core.ready.load(Ordering::Acquire)
    }

    /// The engine's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.core.clock.now()
    }

    // ----- activities -----

    /// Evaluates a `Wallets:Sign` activity and answers once the answer is
    /// durable: `Allowed`, `Blocked` or `PendingApproval`.
    pub async fn evaluate(&self, request: ActivityRequest) -> Result<Activity, Error> {
        let core = self.core.clone();
        detached(async move { core.evaluate(request).await }).await
    }

    /// One activity.
    pub fn activity(&self, id: &str) -> Result<Activity, Error> {
        let entry = self.core.activities.get(id).ok_or_else(|| Error::not_found("activity", id))?;
        self.core.load_activity(entry)
    }

    /// The audit trail, oldest first.
    pub fn activities(&self, filter: &ActivityFilter, page: &PageRequest) -> Result<Page<Activity>, Error> {
        self.core.activities.page(
            page,
            |a| {
                filter.status.is_none_or(|s| a.status() == s)
                    && filter.wallet_id.as_deref().is_none_or(|w| a.wallet_id() == Some(w))
            },
            |a| self.core.load_activity(a),
        )
    }

    // ----- policies -----

    /// Creates a policy: applied now, or held when governed.
    pub async fn create_policy(&self, caller: &Principal, spec: PolicySpec) -> Result<PolicyChange, Error> {
        validate(&spec)?;
        self.propose(caller, PolicyOperation::Create(spec)).await
    }

    /// Replaces a policy: applied now, or held when governed.
    pub async fn update_policy(&self, caller: &Principal, id: &str, spec: PolicySpec) -> Result<PolicyChange, Error> {
        validate(&spec)?;
        self.propose(caller, PolicyOperation::Update(id.to_owned(), spec)).await
    }

    /// Archives a policy: applied now, or held when governed.
    pub async fn archive_policy(&self, caller: &Principal, id: &str) -> Result<PolicyChange, Error> {
        self.propose(caller, PolicyOperation::Archive(id.to_owned())).await
    }

    async fn propose(&self, caller: &Principal, operation: PolicyOperation) -> Result<PolicyChange, Error> {
        let registry = self.core.registry.get().ok_or_else(|| Error::Unavailable("registry not started".into()))?;
        registry
            .send(Propose { caller: caller.clone(), operation })
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?
    }

    /// One policy, with its pending change request.
    pub fn policy(&self, id: &str) -> Result<PolicyView, Error> {
        let policy = self.core.policies.get(id).ok_or_else(|| Error::not_found("policy", id))?;
        Ok(self.policy_view(policy))
    }

    fn policy_view(&self, policy: Policy) -> PolicyView {
        let pending_change_request =
            self.core.pending_changes.get(&policy.id).and_then(|cr| self.core.change_requests.get(cr.value()));
        PolicyView { policy, pending_change_request }
    }

    /// Policies in creation order, optionally by status.
    pub fn policies(&self, status: Option<PolicyStatus>, page: &PageRequest) -> Result<Page<PolicyView>, Error> {
        self.core.policies.page(page, |p| status.is_none_or(|s| p.spec.status == s), |p| Ok(self.policy_view(p)))
    }

    /// One change request.
    pub fn change_request(&self, id: &str) -> Result<ChangeRequest, Error> {
        self.core.change_requests.get(id).ok_or_else(|| Error::not_found("change request", id))
    }

    // ----- approvals -----

    /// One approval.
    pub fn approval(&self, id: &str) -> Result<Approval, Error> {
        self.core.approvals.get(id).ok_or_else(|| Error::not_found("approval", id))
    }

    /// Approvals in creation order.
    pub fn approvals(&self, filter: &ApprovalFilter, page: &PageRequest) -> Result<Page<Approval>, Error> {
        let kinds = &self.core.settings.principals;
        self.core.approvals.page(
            page,
            |a| {
                filter.status.is_none_or(|s| a.status == s)
                    && filter.initiator_id.as_ref().is_none_or(|i| &a.initiator_id == i)
                    && filter.approver_id.as_ref().is_none_or(|who| {
                        let kind = kinds.iter().find(|p| &p.id == who).map(|p| p.kind).unwrap_or_default();
                        workflow::is_eligible(a, who, kind, DecisionValue::Approved)
                    })
            },
            Ok,
        )
    }

    /// `caller` approves or denies; answers with the updated approval once
    /// the decision is durable. 404 unknown, 403 not eligible, 409 already
    /// decided or no longer pending.
    pub async fn decide(
        &self,
        caller: &Principal,
        approval_id: &str,
        value: DecisionValue,
        reason: impl Into<String>,
    ) -> Result<Approval, Error> {
        let approval = self.approval(approval_id)?;
        let reason = reason.into();
        if reason.len() > 4096 {
            return Err(ValidationError::new("reason", "must be at most 4096 characters").into());
        }
        let actor = self.core.approval_actors.get(approval_id).map(|a| a.clone());
        let Some(actor) = actor else {
            // Resolved approvals have no actor: the same checks, then 409.
            workflow::check_decision(&approval, &caller.id, caller.kind, value)?;
            return Err(Error::Conflict(format!("approval `{approval_id}` is no longer pending")));
        };
        let decided = actor
            .send(Decide { who: caller.id.clone(), kind: caller.kind, value, reason })
            .await
            .map_err(|e| Error::Unavailable(e.to_string()));
        match decided {
            Ok(result) => result,
            // The actor stopped between lookup and send: it resolved.
            Err(_) => {
                let approval = self.approval(approval_id)?;
                workflow::check_decision(&approval, &caller.id, caller.kind, value)?;
                Err(Error::Conflict(format!("approval `{approval_id}` is no longer pending")))
            }
        }
    }

    /// Expires, now, every pending approval whose deadline has passed (the
    /// registry also does this on a timer); returns how many expired.
    pub async fn expire_due(&self) -> usize {
        self.core.expire_due().await
    }

    // ----- webhooks -----

    /// Registers a webhook; the answer carries the secret, shown only here.
    pub async fn create_webhook(&self, spec: WebhookSpec) -> Result<Webhook, Error> {
        let core = self.core.clone();
        detached(async move { core.create_webhook(spec).await }).await
    }

    /// One webhook (without its secret).
    pub fn webhook(&self, id: &str) -> Result<Webhook, Error> {
        let webhook = self.core.webhooks.get(id).ok_or_else(|| Error::not_found("webhook", id))?;
        Ok(Webhook { secret: None, ..webhook })
    }

    /// Webhooks in creation order (without secrets).
    pub fn webhooks(&self, page: &PageRequest) -> Result<Page<Webhook>, Error> {
        self.core.webhooks.page(page, |_| true, |w| Ok(Webhook { secret: None, ..w }))
    }

    /// Deletes a webhook.
    pub async fn delete_webhook(&self, id: &str) -> Result<Webhook, Error> {
        let (core, id) = (self.core.clone(), id.to_owned());
        detached(async move { core.delete_webhook(&id).await }).await
    }

    /// A webhook's delivery log.
    pub fn webhook_events(&self, id: &str, page: &PageRequest) -> Result<Page<WebhookEvent>, Error> {
        self.webhook(id)?;
        self.core.events.page(page, |e| e.webhook_id == id, Ok)
    }

    /// Engine events as they happen (after they are durable).
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.core.subscribers.subscribe()
    }

    // ----- inspection -----

    /// The committed total of a velocity window at the engine's now, as text
    /// (`"1500.5"` USD, `"3"` activities, smallest units); `None` when the
    /// policy is not a velocity policy.
    pub async fn window_total(&self, policy_id: &str, scope_key: &str) -> Option<String> {
        let compiled = self.core.compiled.get(policy_id)?.clone();
        let CompiledRule::Velocity(velocity) = &compiled.rule else { return None };
        let key = WindowKey { policy_id: policy_id.to_owned(), scope_key: scope_key.to_owned() };
        let now = self.core.clock.now();
        self.core.window(&key).send(crate::actors::window::Total { velocity: velocity.clone(), now }).await.ok()
    }

    /// Restarts of supervised actors so far: (windows, approvals).
    pub fn actor_restarts(&self) -> (u64, u64) {
        let s = &self.core.supervision;
        (s.window_restarts.load(Ordering::Relaxed), s.approval_restarts.load(Ordering::Relaxed))
    }

    /// Makes a window's actor panic mid-message (supervision tests).
    #[doc(hidden)]
    pub async fn crash_window_actor(&self, policy_id: &str, scope_key: &str) {
        let key = WindowKey { policy_id: policy_id.to_owned(), scope_key: scope_key.to_owned() };
        let _ = self.core.window(&key).send(crate::actors::window::Crash).await;
    }

    /// Makes an approval's actor panic mid-message (supervision tests).
    #[doc(hidden)]
    pub async fn crash_approval_actor(&self, approval_id: &str) {
        let actor = self.core.approval_actors.get(approval_id).map(|a| a.clone());
        if let Some(actor) = actor {
            let _ = actor.send(crate::actors::approval::Crash).await;
        }
    }

    /// Stops taking work and flushes the journal; answered work stays durable.
    pub fn shutdown(&self) {
        self.core.ready.store(false, Ordering::Release);
        self.core.writer.close();
        self.core.supervision.stop();
    }
}
