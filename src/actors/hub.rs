//! The hub: the one way state changes. It commits facts through the journal
//! writer, applies each with [`State::apply`] under its own seq, and carries
//! out what the fold asks of the actors (windows count, approval actors start
//! and leave, windows of a changed rule are rebuilt, the dispatcher wakes),
//! then tells subscribers. Approval actors and the webhook dispatcher reach it
//! through the narrow traits they define ([`ApprovalPort`], [`DeliveryLog`]).
//!
//! INVARIANT (answered means durable): nothing is applied before its commit
//! returned; a caller is answered after both.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::sync::{broadcast, oneshot};
use warden_journal::Seq;

use crate::clock::Clock;
use crate::error::{Error, Unavailable};
use crate::journal::facts::{Count, Fact, Json};
use crate::journal::JournalWriter;
use crate::model::activity::{ActivityRequest, ActivityStatus};
use crate::model::approval::{Approval, ApprovalStatus, Decision};
use crate::model::event::{approval_data, EngineEvent, Notice, APPROVAL_RESOLVED};
use crate::model::policy::ActivityKind;
use crate::model::principal::Principal;
use crate::model::webhook::{Webhook, WebhookEvent};
use crate::policy::compile::CompiledRule;
use crate::policy::subject::wallet_subject;
use crate::policy::window_math::window_start;
use crate::policy::{rule_outcome, RuleOutcome, Settings};
use crate::state::{Effect, Notices, State};
use crate::telemetry;
use crate::workflow;

use super::approval::ApprovalPort;
use super::book::AddressBook;
use super::leadership::Leadership;
use super::serial::Serialized;
use super::webhook_dispatcher::{DeliveryLog, Dispatcher, Wake};
use super::window::Commit;

/// The hub of one engine.
pub(crate) struct Hub {
    state: Arc<State>,
    leadership: Leadership,
    book: Arc<AddressBook>,
    clock: Arc<dyn Clock>,
    settings: Settings,
    /// The principals in force: replaced whole when the config is reloaded.
    principals: arc_swap::ArcSwap<Vec<Principal>>,
    subscribers: broadcast::Sender<EngineEvent>,
    dispatcher: OnceLock<Addr<Dispatcher>>,
    serial: OnceLock<Recipient<Serialized>>,
    ready: AtomicBool,
    webhook_allow_private: bool,
    me: Weak<Hub>,
}

impl Hub {
    /// A hub over `state`, committing through `writer` (`None`: a standby,
    /// which commits nothing until it is promoted).
    pub(crate) fn new(
        state: Arc<State>,
        writer: Option<JournalWriter>,
        book: Arc<AddressBook>,
        clock: Arc<dyn Clock>,
        settings: Settings,
        principals: Vec<Principal>,
        webhook_allow_private: bool,
    ) -> Arc<Self> {
        let (subscribers, _) = broadcast::channel(1024);
        let leadership = Leadership::default();
        if let Some(writer) = writer {
            leadership.install(writer);
            leadership.set_leading(true);
        }
        Arc::new_cyclic(|me| Hub {
            state,
            leadership,
            book,
            clock,
            settings,
            principals: arc_swap::ArcSwap::from_pointee(principals),
            subscribers,
            dispatcher: OnceLock::new(),
            serial: OnceLock::new(),
            ready: AtomicBool::new(false),
            webhook_allow_private,
            me: me.clone(),
        })
    }

    /// The tables.
    pub(crate) fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// The address books.
    pub(crate) fn book(&self) -> &Arc<AddressBook> {
        &self.book
    }

    /// The engine's clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The settings.
    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The principals in force.
    pub(crate) fn principals(&self) -> Arc<Vec<Principal>> {
        self.principals.load_full()
    }

    /// Puts `principals` in force (a reloaded config's).
    pub(crate) fn set_principals(&self, principals: Vec<Principal>) {
        self.principals.store(Arc::new(principals));
    }

    /// Whether webhooks may reach private addresses.
    pub(crate) fn webhook_allow_private(&self) -> bool {
        self.webhook_allow_private
    }

    /// Whether recovery is complete and the engine not stopping.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Marks the engine ready (or stopping).
    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Wires the dispatcher and the registry's serial lane (once, at build).
    pub(crate) fn wire(&self, dispatcher: Addr<Dispatcher>, serial: Recipient<Serialized>) {
        let _ = self.dispatcher.set(dispatcher);
        let _ = self.serial.set(serial);
    }

    /// Whether this node writes, and for how long.
    pub(crate) fn leadership(&self) -> &Leadership {
        &self.leadership
    }

    /// What an approval actor started now is given.
    pub(crate) fn approval_port(&self) -> Weak<dyn ApprovalPort> {
        self.me.clone()
    }

    /// The webhook dispatcher.
    pub(crate) fn dispatcher(&self) -> Option<&Addr<Dispatcher>> {
        self.dispatcher.get()
    }

    /// Stops the journal writer once what is queued is committed.
    pub(crate) fn close(&self) {
        if let Some(writer) = self.leadership.uninstall() {
            writer.close();
        }
    }

    /// Subscribes to engine events.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.subscribers.subscribe()
    }

    /// Commits `facts` as one unit, then applies each under its seq and
    /// carries out what they ask. Counts of an activity that reserved under
    /// `reservation` turn that reservation into the count. Answers the seq of
    /// the first fact.
    pub(crate) async fn commit(&self, facts: Vec<Fact>, reservation: u64) -> Result<Seq, Error> {
        // Counted until the facts are applied: a demotion waits for it.
        let (writer, _in_flight) = self.leadership.writer()?;
        let first = writer.commit(&facts).await?;
        let policies_changed = facts.iter().any(|fact| matches!(fact, Fact::PolicyPut(_)));
        let mut effects = Vec::new();
        for (seq, fact) in (first..).zip(facts) {
            self.state.apply(seq, fact, &mut effects);
        }
        let changed_rules = self.react(effects, reservation);
        for policy_id in changed_rules {
            self.rebuild_windows(policy_id).await;
        }
        // INVARIANT (windows never overshoot): a changed velocity rule is
        // seen by evaluation only once its windows hold every count it sees
        // (policy changes commit one at a time, in the registry's lane, so
        // no other commit publishes it earlier).
        if policies_changed {
            self.state.publish_snapshot();
        }
        Ok(first)
    }

    /// Tells subscribers (after the commit that made the notices true).
    /// Nothing is built when nobody listens.
    pub(crate) fn announce(&self, notices: Notices) {
        if !self.is_heard() {
            return;
        }
        for notice in notices.notices {
            self.tell(notice);
        }
    }

    /// Whether anyone subscribes to the engine's events.
    pub(crate) fn is_heard(&self) -> bool {
        self.subscribers.receiver_count() > 0
    }

    /// Tells subscribers `notice`, with an id of its own.
    pub(crate) fn tell(&self, notice: Notice) {
        let _ = self.subscribers.send(notice.announced());
    }

    /// Tells subscribers (only: webhooks have no such kind) that an activity
    /// was evaluated; nothing is built when nobody listens.
    pub(crate) fn announce_evaluated(&self, activity: &crate::model::activity::Activity) {
        if self.is_heard() {
            self.tell(Notice::activity_evaluated(activity));
        }
    }

    /// Carries out the effects; answers the policies whose windows must be
    /// rebuilt (awaited by `commit`, so a changed rule is answered only once
    /// its windows hold what the journal says).
    fn react(&self, effects: Vec<Effect>, reservation: u64) -> Vec<String> {
        // Read once, and only for counts: most activities count in no window.
        let mut now = None;
        let mut queued = Vec::new();
        let mut changed_rules = Vec::new();
        for effect in effects {
            match effect {
                Effect::Count(count) => self.book.count(
                    &count.window,
                    *now.get_or_insert_with(|| self.clock.now()),
                    Commit { reservation, activity: count.activity_id, quantity: count.quantity, at: count.at },
                ),
                Effect::ApprovalResolved { id, status } => {
                    self.book.forget_approval(&id);
                    metrics::counter!("warden_approvals_resolved_total", "status" => status.as_str()).increment(1);
                    let activity = match status {
                        ApprovalStatus::Approved => ActivityStatus::Approved,
                        ApprovalStatus::Denied => ActivityStatus::Denied,
                        _ => ActivityStatus::Expired,
                    };
                    telemetry::activity_reached(activity);
                }
                Effect::RuleChanged(policy_id) => changed_rules.push(policy_id),
                Effect::EventQueued(id) => queued.push(id),
            }
        }
        telemetry::approvals_pending(self.state.pending_approval_count());
        if !queued.is_empty() {
            if let Some(dispatcher) = self.dispatcher.get() {
                dispatcher.do_send(Wake { events: queued });
            }
        }
        changed_rules
    }

    /// Reads the counts of a changed velocity rule's windows from the journal
    /// on a blocking thread, then adds them to the windows (starting those
    /// that had none): a wider window sees counts a narrower one forgot.
    async fn rebuild_windows(&self, policy_id: String) {
        let state = self.state.clone();
        let now = self.clock.now();
        let read = tokio::task::spawn_blocking(move || {
            let Some(policy) = state.compiled(&policy_id) else { return Ok(HashMap::new()) };
            let CompiledRule::Velocity(velocity) = &policy.rule else { return Ok(HashMap::new()) };
            let start = window_start(velocity.span, now);
            // The records holding this policy's counts, not the whole journal.
            state.count_index().read(state.journal().as_ref(), &policy_id, start, Seq::MAX, |_| true)
        })
        .await;
        let ledgers = match read {
            Ok(Ok(ledgers)) => ledgers,
            Ok(Err(error)) => {
                tracing::error!(%error, "windows could not be rebuilt after a rule change");
                return;
            }
            Err(error) => {
                tracing::error!(%error, "the rebuild of windows after a rule change failed");
                return;
            }
        };
        for (key, ledger) in ledgers {
            self.book.merge(&key, now, ledger);
        }
    }

    /// Runs `work` in the registry's one-at-a-time lane and answers its result.
    pub(crate) async fn serialized<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        let lane = self.serial.get().ok_or(Unavailable::ShuttingDown)?;
        let (done, answer) = oneshot::channel();
        let job = async move {
            let _ = done.send(work.await);
        };
        lane.send(Serialized(Box::pin(job)))
            .await
            .map_err(|_| Unavailable::Restarting { what: "policy registry".to_owned() })?;
        answer.await.map_err(|_| Unavailable::TaskFailed { reason: "a policy change was dropped".to_owned() })?
    }

    /// The window counts an activity adds when it is approved: every
    /// velocity policy that matches it now.
    fn counts_when_approved(&self, activity_id: &str, request: &ActivityRequest, at: DateTime<Utc>) -> Vec<Count> {
        let Ok(subject) = wallet_subject(request, &self.settings.prices) else { return Vec::new() };
        self.state
            .snapshot()
            .matching(&subject)
            .iter()
            .filter_map(|p| match rule_outcome(p, &subject) {
                RuleOutcome::Window(c) => {
                    Some(Count { activity_id: activity_id.to_owned(), window: c.key, quantity: c.quantity, at })
                }
                RuleOutcome::Decided { .. } => None,
            })
            .collect()
    }

    /// Journals the move of an approval to `next` (after `decision`, if any).
    ///
    /// INVARIANT (resolves once): the resolution, the activity's new status,
    /// its window counts, a governed policy change and the webhook events are
    /// one commit; the approval's actor leaves the book with it.
    async fn settle_approval(self: Arc<Self>, next: Approval, decision: Option<Decision>) -> Result<Approval, Error> {
        crate::faults::trip("approval.settle", &next.id);
        // The table keeps pending approvals hollow; the resolution's counts,
        // the events and the answer need the whole approval.
        let state = self.state.clone();
        let next = tokio::task::spawn_blocking(move || {
            let mut next = next;
            state.fill_approval(&mut next).map(|()| next)
        })
        .await
        .map_err(|e| Unavailable::TaskFailed { reason: e.to_string() })??;
        let now = next.date_updated;
        let mut facts = Vec::new();
        if let Some(decision) = decision {
            facts.push(Fact::DecisionRecorded { approval_id: next.id.clone(), decision: Json(decision) });
        }
        let resolved = next.status != ApprovalStatus::Pending;
        let request = &next.activity.request;
        let mut notices = Notices::default();
        if resolved {
            let counts = if next.status == ApprovalStatus::Approved && request.kind == ActivityKind::WalletsSign {
                self.counts_when_approved(&next.activity.id, request, now)
            } else {
                Vec::new()
            };
            facts.push(Fact::ApprovalResolved { approval_id: next.id.clone(), status: next.status, date: now, counts });
            notices.add(&self.state, APPROVAL_RESOLVED, approval_data(&next), now);
            tracing::info!(approval = %next.id, activity = %next.activity.id, status = next.status.as_str(), "approval resolved");
        }
        facts.extend(notices.take_facts());
        if resolved && request.kind == ActivityKind::PoliciesModify {
            // The change is applied in the same commit, in the registry's
            // lane, so it sees every earlier policy change.
            let hub = self.clone();
            let approval = next.clone();
            self.serialized(async move { hub.resolve_change(facts, &approval).await }).await?;
        } else {
            self.commit(facts, 0).await?;
        }
        self.announce(notices);
        Ok(next)
    }

    /// Commits the resolution of a governed change's approval with the change
    /// itself (applied when approved, dropped otherwise).
    async fn resolve_change(&self, mut facts: Vec<Fact>, approval: &Approval) -> Result<(), Error> {
        let now = approval.date_resolved.unwrap_or(approval.date_updated);
        if approval.status == ApprovalStatus::Approved {
            let change = self.state.change_of_approval(&approval.id);
            let applied =
                change.and_then(|c| workflow::changed_policy(&c, self.state.policy(&c.entity_id).as_ref(), now));
            if let Some(policy) = applied {
                tracing::info!(policy = %policy.id, "governed policy change applied");
                facts.push(Fact::PolicyPut(Json(Box::new(policy))));
            }
        }
        self.commit(facts, 0).await?;
        Ok(())
    }
}

impl ApprovalPort for Hub {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn pending(&self, id: &str) -> Option<Approval> {
        self.state.pending_approval(id)
    }

    fn settle(
        self: Arc<Self>,
        next: Approval,
        decision: Option<Decision>,
    ) -> BoxFuture<'static, Result<Approval, Error>> {
        self.settle_approval(next, decision).boxed()
    }

    fn reload(self: Arc<Self>, id: String) -> BoxFuture<'static, Result<(), Error>> {
        async move {
            let state = self.state.clone();
            tokio::task::spawn_blocking(move || state.reload_approval(&id))
                .await
                .map_err(|e| Unavailable::TaskFailed { reason: e.to_string() })?
        }
        .boxed()
    }

    fn restarts(&self) -> &AtomicU64 {
        &self.book.restarts.approvals
    }
}

impl DeliveryLog for Hub {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Only the leader delivers: a standby's tries could not be journaled.
    fn is_ready(&self) -> bool {
        Hub::is_ready(self) && self.leadership.is_leading()
    }

    fn pending_events(&self) -> Vec<(String, String, DateTime<Utc>)> {
        self.state.pending_events()
    }

    fn event(&self, id: &str) -> Option<WebhookEvent> {
        self.state.event(id)
    }

    fn webhook(&self, id: &str) -> Option<Webhook> {
        self.state.webhook(id)
    }

    fn record(self: Arc<Self>, facts: Vec<Fact>) -> BoxFuture<'static, Result<(), Error>> {
        async move { self.commit(facts, 0).await.map(|_| ()) }.boxed()
    }
}
