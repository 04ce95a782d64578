//! The engine layer: the embedded API, [`Engine`] and its builder, one file
//! per use case. Calls become facts committed through the hub and messages
//! to actors; reads come from the state tables (and the journal, for the
//! audit trail and resolved approvals).

mod activities;
mod approvals;
mod detached;
mod followed_events;
mod governance;
mod recovery;
mod roles;
mod signed_calls;
mod webhook_admin;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::Serialize;
use tokio::sync::broadcast;
use warden_journal::{Journal, MemoryJournal};

use crate::actors::book::AddressBook;
use crate::actors::hub::Hub;
use crate::actors::registry::{self, Registry, Upkeep};
use crate::actors::webhook_dispatcher::{DeliveryLog, Dispatcher};
use crate::actors::window::Total;
use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::journal::JournalWriter;
use crate::model::activity::{Activity, ActivityRequest, ActivityStatus};
use crate::model::approval::{Approval, ApprovalStatus, DecisionValue};
use crate::model::change_request::ChangeRequest;
use crate::model::event::EngineEvent;
use crate::model::policy::{Policy, PolicySpec, PolicyStatus};
use crate::model::principal::Principal;
use crate::model::signed_action::SignedAction;
use crate::model::webhook::{Webhook, WebhookEvent, WebhookSpec};
use crate::policy::compile::CompiledRule;
use crate::policy::{validate, DefaultAction, EvaluationMode, PriceTable, Settings, WindowKey};
use crate::state::{ApprovalQuery, State};
use crate::workflow::PolicyOperation;

pub use approvals::MAX_REASON_CHARS;
pub use governance::PolicyChange;
pub use signed_calls::ActivityAsJson;
pub use webhook_admin::{last_try_failed, PingOutcome, WebhookEventFilter, PING_KIND};

/// Default of `window_idle_seconds`: a window holding nothing stops after
/// ten minutes unused (a busy window is never idle that long; a recipient
/// seen once should not keep an actor for ever).
pub const DEFAULT_WINDOW_IDLE: Duration = Duration::from_secs(600);
/// Default of `external_id_retention_days`: 30 days, longer than any
/// caller's retry horizon.
pub const DEFAULT_EXTERNAL_ID_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Default of `webhook_backlog`: a dead receiver holds at most this many
/// undelivered events (some megabytes), a day of a busy signer's events.
pub const DEFAULT_WEBHOOK_BACKLOG: usize = 10_000;

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
    principals: Vec<Principal>,
    arbiters: usize,
    upkeep: Upkeep,
    webhook_allow_private: bool,
    webhook_backlog: usize,
    standby: bool,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            journal: None,
            clock: Arc::new(SystemClock),
            settings: Settings::default(),
            principals: Vec::new(),
            arbiters: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            upkeep: Upkeep { window_idle: DEFAULT_WINDOW_IDLE, external_id_retention: DEFAULT_EXTERNAL_ID_RETENTION },
            webhook_allow_private: false,
            webhook_backlog: DEFAULT_WEBHOOK_BACKLOG,
            standby: false,
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

    /// The principals the engine knows of: the lockout check of governing
    /// policies counts their approvers, and the `approverId` filter takes
    /// their kinds (see [`Engine::set_principals`] for a reload).
    pub fn principals(mut self, principals: Vec<Principal>) -> Self {
        self.principals = principals;
        self
    }

    /// Number of arbiters (threads) for window and approval actors; default
    /// one per core.
    pub fn arbiters(mut self, n: usize) -> Self {
        self.arbiters = n.max(1);
        self
    }

    /// How long a window holding no count and no reservation keeps its
    /// actor unused (`window_idle_seconds`, default 600 s).
    pub fn window_idle(mut self, idle: Duration) -> Self {
        self.upkeep.window_idle = idle;
        self
    }

    /// How long an `externalId` is remembered (`external_id_retention_days`,
    /// default 30 days); after it, a repeat is a new activity.
    pub fn external_id_retention(mut self, retention: Duration) -> Self {
        self.upkeep.external_id_retention = retention;
        self
    }

    /// Lets webhooks reach loopback, link-local and private addresses
    /// (`webhook_allow_private`; for development and tests). Off by default:
    /// a receiver must be a public address.
    pub fn webhook_allow_private(mut self, allow: bool) -> Self {
        self.webhook_allow_private = allow;
        self
    }

    /// Most undelivered events one webhook holds (`webhook_backlog`, default
    /// 10 000); a new event beyond it makes the oldest `Failed`.
    pub fn webhook_backlog(mut self, events: usize) -> Self {
        self.webhook_backlog = events.max(1);
        self
    }

    /// Starts as a standby of a shared journal: the journal is folded, but
    /// nothing is committed until [`Engine::promote`]; the node follows the
    /// leader's records with [`Engine::follow`]. Default: a single node, the
    /// leader of its own journal.
    pub fn standby(mut self) -> Self {
        self.standby = true;
        self
    }

    /// Recovers the journal and starts the engine. Must run inside an actix
    /// system (`#[actix::main]`, `#[actix_web::main]`, `#[actix_rt::test]`).
    pub async fn build(self) -> Result<Engine, Error> {
        let journal = self.journal.unwrap_or_else(|| Arc::new(MemoryJournal::new()));
        let arbiters = (0..self.arbiters).map(|_| Arbiter::new().handle()).collect();
        let state = Arc::new(State::new(journal.clone(), self.webhook_backlog));
        let book = Arc::new(AddressBook::new(arbiters, journal.clone(), state.count_index().clone()));
        let allow_private = self.webhook_allow_private;
        let writer = (!self.standby).then(|| JournalWriter::start(journal));
        let hub = Hub::new(state, writer, book, self.clock, self.settings, self.principals, allow_private);
        let registry = Registry::new(&hub, self.upkeep).start();
        let log: std::sync::Weak<dyn DeliveryLog> = Arc::downgrade(&hub) as std::sync::Weak<dyn DeliveryLog>;
        hub.wire(Dispatcher::new(log, allow_private).start(), registry.clone().recipient());
        let standby: roles::StandbySlot = Default::default();
        if self.standby {
            let ledgers = recovery::fold_journal(&hub, self.upkeep.external_id_retention)?;
            *standby.lock().unwrap_or_else(|p| p.into_inner()) = Some(roles::Standby::new(ledgers));
        } else {
            recovery::recover(&hub, self.upkeep.external_id_retention).await?;
        }
        hub.set_ready(true);
        Ok(Engine { hub, registry, standby })
    }
}

/// A running policy engine. Cheap to clone; every clone is the same engine.
#[derive(Clone)]
pub struct Engine {
    hub: Arc<Hub>,
    registry: Addr<Registry>,
    /// What a standby keeps to lead later; `None` while leading.
    standby: roles::StandbySlot,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("policies", &self.hub.state().policy_count()).finish_non_exhaustive()
    }
}

impl Engine {
    /// A builder with the defaults.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// Runs a state change (see [`detached::detached`]) if this node leads; a standby
    /// refuses it at once, before any window reserves or actor starts.
    async fn change<T: Send + 'static>(&self, change: BoxFuture<'static, Result<T, Error>>) -> Result<T, Error> {
        if !self.hub.leadership().is_leading() {
            return Err(self.hub.leadership().not_leader());
        }
        detached::detached(change).await
    }

    /// Puts `principals` in force in place of the builder's (a server's
    /// SIGHUP does this with its reloaded `[[principals]]`): the next lockout
    /// check and `approverId` filter use them.
    pub fn set_principals(&self, principals: Vec<Principal>) {
        self.hub.set_principals(principals);
    }

    /// Whether recovery is complete.
    pub fn is_ready(&self) -> bool {
        self.hub.is_ready()
    }

    /// The seq of the last journal record this engine has applied (`journalSeq`).
    pub fn journal_seq(&self) -> u64 {
        self.hub.state().applied_seq()
    }

    /// Whether this engine writes the journal and answers changes: always,
    /// for a single node; on a node sharing its journal, while it holds the
    /// lease and runs its actors.
    pub fn is_leader(&self) -> bool {
        self.is_ready() && self.hub.leadership().is_leading()
    }

    /// The engine's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.hub.now()
    }

    // ----- activities -----

    /// Evaluates a `Wallets:Sign` activity and answers once the answer is
    /// durable: `Allowed`, `Blocked` or `PendingApproval`.
    pub async fn evaluate(&self, request: ActivityRequest) -> Result<Activity, Error> {
        let evaluation = activities::evaluate(self.hub.clone(), request, None, activities::Text::Without);
        self.change(evaluation).await.map(|(activity, _)| activity)
    }

    /// One activity (read from the journal).
    pub fn activity(&self, id: &str) -> Result<Activity, Error> {
        self.hub.state().activity(id)?.ok_or_else(|| Error::not_found("activity", id))
    }

    /// The audit trail, oldest first.
    pub fn activities(&self, filter: &ActivityFilter, page: &PageRequest) -> Result<Page<Activity>, Error> {
        self.hub.state().activities(page, filter.wallet_id.as_deref(), filter.status)
    }

    // ----- policies -----

    /// Creates a policy: applied now, or held when governed.
    pub async fn create_policy(&self, caller: &Principal, spec: PolicySpec) -> Result<PolicyChange, Error> {
        validate(&spec)?;
        self.propose(caller, PolicyOperation::Create(spec), None).await
    }

    /// Replaces a policy: applied now, or held when governed.
    pub async fn update_policy(&self, caller: &Principal, id: &str, spec: PolicySpec) -> Result<PolicyChange, Error> {
        validate(&spec)?;
        self.propose(caller, PolicyOperation::Update(id.to_owned(), spec), None).await
    }

    /// Archives a policy: applied now, or held when governed.
    pub async fn archive_policy(&self, caller: &Principal, id: &str) -> Result<PolicyChange, Error> {
        self.propose(caller, PolicyOperation::Archive(id.to_owned()), None).await
    }

    async fn propose(
        &self,
        caller: &Principal,
        operation: PolicyOperation,
        user_action: Option<SignedAction>,
    ) -> Result<PolicyChange, Error> {
        let (hub, caller) = (self.hub.clone(), caller.clone());
        let lane = self.hub.clone();
        self.change(Box::pin(async move {
            lane.serialized(async move { governance::propose(&hub, caller, operation, user_action).await }).await
        }))
        .await
    }

    /// One policy, with its pending change request.
    pub fn policy(&self, id: &str) -> Result<PolicyView, Error> {
        let policy = self.hub.state().policy(id).ok_or_else(|| Error::not_found("policy", id))?;
        Ok(self.policy_view(policy))
    }

    fn policy_view(&self, policy: Policy) -> PolicyView {
        let pending_change_request = self.hub.state().pending_change(&policy.id);
        PolicyView { policy, pending_change_request }
    }

    /// Policies in creation order, optionally by status.
    pub fn policies(&self, status: Option<PolicyStatus>, page: &PageRequest) -> Result<Page<PolicyView>, Error> {
        let scope = format!("policies|{status:?}");
        let keep = |p: &Policy| status.is_none_or(|s| p.spec.status == s);
        self.hub.state().policies(page, &scope, keep, |p| Ok(self.policy_view(p)))
    }

    /// One change request.
    pub fn change_request(&self, id: &str) -> Result<ChangeRequest, Error> {
        self.hub.state().change_request(id).ok_or_else(|| Error::not_found("change request", id))
    }

    // ----- approvals -----

    /// One approval (a resolved one is read from the journal).
    pub fn approval(&self, id: &str) -> Result<Approval, Error> {
        let approval = self.hub.state().approval(id)?.ok_or_else(|| Error::not_found("approval", id))?;
        Ok(self.with_current_change(approval))
    }

    /// The approval with its change request as it stands now (the copy
    /// journaled with the approval is the change as it was opened).
    fn with_current_change(&self, mut approval: Approval) -> Approval {
        if let Some(change) = approval.activity.change_request.as_mut() {
            if let Some(current) = self.hub.state().change_request(&change.id) {
                **change = current;
            }
        }
        approval
    }

    /// Approvals in creation order.
    pub fn approvals(&self, filter: &ApprovalFilter, page: &PageRequest) -> Result<Page<Approval>, Error> {
        let kinds = self.hub.principals();
        let approver = filter.approver_id.as_deref().map(|who| {
            let kind = kinds.iter().find(|p| p.id == who).map(|p| p.kind).unwrap_or_default();
            (who, kind)
        });
        let query = ApprovalQuery { status: filter.status, initiator_id: filter.initiator_id.as_deref(), approver };
        let page = self.hub.state().approvals(&query, page)?;
        let items = page.items.into_iter().map(|a| self.with_current_change(a)).collect();
        Ok(Page { items, next_page_token: page.next_page_token })
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
        self.decide_signed(caller, approval_id, value, reason, None).await
    }

    /// [`Engine::decide`], with the caller's signed user action journaled in
    /// the decision (and shown as its `credentialId`).
    pub async fn decide_signed(
        &self,
        caller: &Principal,
        approval_id: &str,
        value: DecisionValue,
        reason: impl Into<String>,
        user_action: Option<SignedAction>,
    ) -> Result<Approval, Error> {
        let (hub, caller, id, reason) = (self.hub.clone(), caller.clone(), approval_id.to_owned(), reason.into());
        let approval = self
            .change(Box::pin(async move { approvals::decide(&hub, &caller, &id, value, reason, user_action).await }))
            .await?;
        Ok(self.with_current_change(approval))
    }

    /// Expires, now, every pending approval whose deadline has passed (the
    /// registry also does this on a timer); returns how many expired.
    pub async fn expire_due(&self) -> usize {
        registry::expire_due(&self.hub).await
    }

    // ----- webhooks -----

    /// Registers a webhook; the answer carries the secret, shown only here.
    pub async fn create_webhook(&self, spec: WebhookSpec) -> Result<Webhook, Error> {
        let hub = self.hub.clone();
        self.change(Box::pin(async move { webhooks::create_webhook(&hub, spec, None).await })).await
    }

    /// One webhook (without its secret).
    pub fn webhook(&self, id: &str) -> Result<Webhook, Error> {
        let webhook = self.hub.state().webhook(id).ok_or_else(|| Error::not_found("webhook", id))?;
        Ok(Webhook { secret: None, ..webhook })
    }

    /// Webhooks in creation order (without secrets).
    pub fn webhooks(&self, page: &PageRequest) -> Result<Page<Webhook>, Error> {
        self.hub.state().webhooks(page, |w| Ok(Webhook { secret: None, ..w }))
    }

    /// Deletes a webhook.
    pub async fn delete_webhook(&self, id: &str) -> Result<Webhook, Error> {
        let (hub, id) = (self.hub.clone(), id.to_owned());
        self.change(Box::pin(async move { webhooks::delete_webhook(&hub, &id, None).await })).await
    }

    /// A webhook's delivery log.
    pub fn webhook_events(&self, id: &str, page: &PageRequest) -> Result<Page<WebhookEvent>, Error> {
        self.webhook(id)?;
        self.hub.state().events(id, page)
    }

    /// Engine events as they happen (after they are durable).
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.hub.subscribe()
    }

    // ----- inspection -----

    /// The committed total of a velocity window at the engine's now, as text
    /// (`"1500.5"` USD, `"3"` activities, smallest units); `None` when the
    /// policy is not a velocity policy.
    pub async fn window_total(&self, policy_id: &str, scope_key: &str) -> Option<String> {
        let compiled = self.hub.state().compiled(policy_id)?;
        let CompiledRule::Velocity(velocity) = &compiled.rule else { return None };
        let key = WindowKey { policy_id: policy_id.into(), scope_key: scope_key.into() };
        let now = self.hub.now();
        self.hub.book().window(&key, now).send(Total { velocity: velocity.clone(), now }).await.ok()
    }

    /// Restarts of supervised actors so far: (windows, approvals).
    pub fn actor_restarts(&self) -> (u64, u64) {
        let restarts = &self.hub.book().restarts;
        (
            restarts.windows.load(std::sync::atomic::Ordering::Relaxed),
            restarts.approvals.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Velocity checks sent to a window's actor so far, because its lock was
    /// held by another check or it was restarting or failing; every other
    /// check was taken on its caller's thread.
    pub fn window_checks_sent_to_actors(&self) -> u64 {
        self.hub.book().checks_sent_to_actors.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Live actors: (windows, approvals), as the gauges
    /// `warden_window_actors` and `warden_approval_actors` show.
    pub fn live_actors(&self) -> (usize, usize) {
        (self.hub.book().window_count(), self.hub.book().approval_count())
    }

    /// How many `externalId`s are remembered.
    pub fn remembered_external_ids(&self) -> usize {
        self.hub.state().external_id_count()
    }

    /// Stops taking work and flushes the journal; answered work stays durable.
    pub fn shutdown(&self) {
        self.hub.set_ready(false);
        self.hub.close();
        self.hub.book().stop();
        let _ = &self.registry;
    }
}

pub use crate::state::store::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};
pub use crate::state::{Page, PageRequest};
