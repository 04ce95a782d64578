//! The state layer: the in-memory tables derived from the journal, and
//! [`State::apply`], the one fold that changes them (see `apply.rs`).
//!
//! The journal is the truth and these tables are a cache of it. Every field is
//! private: code above reads through the methods here and changes state only by
//! committing facts and applying them.

mod activities;
mod apply;
mod approvals;
mod count_index;
mod external_ids;
mod outbox;
mod policies;
pub(crate) mod store;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use dashmap::DashMap;
use warden_journal::Journal;

use crate::error::Error;
use crate::model::activity::{Activity, ActivityStatus};
use crate::model::approval::Approval;
use crate::model::change_request::ChangeRequest;
use crate::model::policy::Policy;
use crate::model::webhook::{DeliveryStatus, Webhook, WebhookEvent};
use crate::policy::{CompiledPolicy, PolicySet};

pub(crate) use activities::ActivityEntry;
pub(crate) use apply::Effect;
pub(crate) use approvals::ApprovalQuery;
pub(crate) use external_ids::Slot;
pub(crate) use outbox::Notices;
pub use store::{Page, PageRequest};

use approvals::Approvals;
pub(crate) use count_index::CountIndex;
use external_ids::ExternalIds;
use policies::Policies;
use store::Store;

/// The engine's tables.
pub(crate) struct State {
    journal: Arc<dyn Journal>,
    policies: Policies,
    activities: Store<ActivityEntry>,
    external_ids: ExternalIds,
    approvals: Approvals,
    change_requests: Store<ChangeRequest>,
    /// Policy id to its pending change request id.
    pending_changes: DashMap<String, String>,
    /// Approval id to the change request it decides.
    change_of_approval: DashMap<String, String>,
    webhooks: Store<Webhook>,
    events: Store<WebhookEvent>,
    /// Each webhook's pending events, oldest first: its backlog.
    backlogs: DashMap<String, BTreeSet<(DateTime<Utc>, String)>>,
    /// Most pending events one webhook may hold.
    backlog_limit: usize,
    /// The seq of the last fact applied.
    applied: std::sync::atomic::AtomicU64,
    /// Where each velocity policy's counts are journaled.
    counts: Arc<CountIndex>,
}

impl State {
    /// Empty tables over `journal` (read back for activities and resolved
    /// approvals); a webhook's backlog holds at most `backlog_limit` events.
    pub(crate) fn new(journal: Arc<dyn Journal>, backlog_limit: usize) -> Self {
        State {
            journal,
            policies: Policies::default(),
            activities: Store::default(),
            external_ids: ExternalIds::default(),
            approvals: Approvals::default(),
            change_requests: Store::default(),
            pending_changes: DashMap::new(),
            change_of_approval: DashMap::new(),
            webhooks: Store::default(),
            events: Store::default(),
            backlogs: DashMap::new(),
            backlog_limit: backlog_limit.max(1),
            applied: std::sync::atomic::AtomicU64::new(0),
            counts: Arc::default(),
        }
    }

    /// The seq of the last fact applied (0 before any).
    pub(crate) fn applied_seq(&self) -> u64 {
        self.applied.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Where each velocity policy's counts are journaled.
    pub(crate) fn count_index(&self) -> &Arc<CountIndex> {
        &self.counts
    }

    /// The journal the tables derive from.
    pub(crate) fn journal(&self) -> &Arc<dyn Journal> {
        &self.journal
    }

    // ----- policies -----

    /// Swaps in the policy snapshot if a fold changed a policy.
    pub(crate) fn publish_snapshot(&self) {
        self.policies.publish();
    }

    /// The snapshot evaluation reads.
    pub(crate) fn snapshot(&self) -> Arc<PolicySet> {
        self.policies.snapshot()
    }

    /// A policy as compiled now.
    pub(crate) fn compiled(&self, id: &str) -> Option<Arc<CompiledPolicy>> {
        self.policies.compiled(id)
    }

    /// A stored policy.
    pub(crate) fn policy(&self, id: &str) -> Option<Policy> {
        self.policies.get(id)
    }

    /// How many policies are stored.
    pub(crate) fn policy_count(&self) -> usize {
        self.policies.len()
    }

    /// A page of policies.
    pub(crate) fn policies<V>(
        &self,
        request: &PageRequest,
        scope: &str,
        keep: impl Fn(&Policy) -> bool,
        view: impl Fn(Policy) -> Result<V, Error>,
    ) -> Result<Page<V>, Error> {
        self.policies.page(request, scope, keep, view)
    }

    /// The change waiting for approval on a policy.
    pub(crate) fn pending_change(&self, policy_id: &str) -> Option<ChangeRequest> {
        let id = self.pending_changes.get(policy_id)?.clone();
        self.change_requests.get(&id)
    }

    /// A change request.
    pub(crate) fn change_request(&self, id: &str) -> Option<ChangeRequest> {
        self.change_requests.get(id)
    }

    /// The change request an approval decides, if any.
    pub(crate) fn change_of_approval(&self, approval_id: &str) -> Option<ChangeRequest> {
        let id = self.change_of_approval.get(approval_id)?.clone();
        self.change_requests.get(&id)
    }

    // ----- activities -----

    /// The slot of an `externalId`, and whether it was made now.
    pub(crate) fn external_id(&self, key: &str, now: chrono::DateTime<chrono::Utc>) -> (Arc<Slot>, bool) {
        self.external_ids.slot(key, now)
    }

    /// Forgets an `externalId` no activity answered, unless its slot is held.
    pub(crate) fn forget_unanswered_external_id(&self, key: &str) {
        self.external_ids.forget_unanswered(key);
    }

    /// Forgets `externalId`s first seen before `cutoff`.
    pub(crate) fn forget_external_ids(&self, cutoff: chrono::DateTime<chrono::Utc>) -> usize {
        self.external_ids.forget_before(cutoff)
    }

    /// How many `externalId`s are kept.
    pub(crate) fn external_id_count(&self) -> usize {
        self.external_ids.len()
    }

    /// One activity, read from the journal.
    pub(crate) fn activity(&self, id: &str) -> Result<Option<Activity>, Error> {
        match self.activities.get(id) {
            Some(entry) => entry.load(self.journal.as_ref()).map(Some),
            None => Ok(None),
        }
    }

    /// A page of the trail.
    pub(crate) fn activities(
        &self,
        request: &PageRequest,
        wallet_id: Option<&str>,
        status: Option<ActivityStatus>,
    ) -> Result<Page<Activity>, Error> {
        let scope = format!("activities|{}|{status:?}", wallet_id.unwrap_or_default());
        self.activities.page(
            request,
            &scope,
            |a| status.is_none_or(|s| a.status() == s) && wallet_id.is_none_or(|w| a.wallet_id() == Some(w)),
            |a| a.load(self.journal.as_ref()),
        )
    }

    // ----- approvals -----

    /// A pending approval as it stands, hollow (without its activity request
    /// and policy evaluations: [`State::fill_approval`] puts them back).
    pub(crate) fn pending_approval(&self, id: &str) -> Option<Approval> {
        self.approvals.pending(id)
    }

    /// One approval (a resolved one is read from the journal).
    pub(crate) fn approval(&self, id: &str) -> Result<Option<Approval>, Error> {
        self.approvals.get(id, self.journal.as_ref())
    }

    /// Whether the approval is known.
    pub(crate) fn has_approval(&self, id: &str) -> bool {
        self.approvals.contains(id)
    }

    /// A page of approvals.
    pub(crate) fn approvals(&self, query: &ApprovalQuery<'_>, request: &PageRequest) -> Result<Page<Approval>, Error> {
        self.approvals.page(query, request, self.journal.as_ref())
    }

    /// Whether approval `id` is pending.
    pub(crate) fn is_pending_approval(&self, id: &str) -> bool {
        self.approvals.is_pending(id)
    }

    /// How many approvals are pending.
    pub(crate) fn pending_approval_count(&self) -> usize {
        self.approvals.pending_count()
    }

    /// Pending approvals past their deadline at `now`.
    pub(crate) fn due_approvals(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<String> {
        self.approvals.due(now)
    }

    /// Makes a pending approval (kept hollow) whole: its activity request and
    /// policy evaluations, read from its opening record (blocking).
    pub(crate) fn fill_approval(&self, approval: &mut Approval) -> Result<(), Error> {
        self.approvals.fill(approval, self.journal.as_ref())
    }

    /// Puts a pending approval back as its journal records make it.
    pub(crate) fn reload_approval(&self, id: &str) -> Result<(), Error> {
        self.approvals.reload(id, self.journal.as_ref())
    }

    // ----- webhooks -----

    /// A webhook, with its secret.
    pub(crate) fn webhook(&self, id: &str) -> Option<Webhook> {
        self.webhooks.get(id)
    }

    /// A page of webhooks.
    pub(crate) fn webhooks(
        &self,
        request: &PageRequest,
        view: impl Fn(Webhook) -> Result<Webhook, Error>,
    ) -> Result<Page<Webhook>, Error> {
        self.webhooks.page(request, "webhooks", |_| true, view)
    }

    /// The webhooks that want events of `kind`.
    pub(crate) fn webhooks_wanting(&self, kind: &str) -> Vec<String> {
        self.webhooks.pick(|w| w.wants(kind).then(|| w.id.clone()))
    }

    /// The oldest pending event of a webhook whose backlog is full, if it is.
    pub(crate) fn backlog_overflow(&self, webhook_id: &str) -> Option<WebhookEvent> {
        let backlog = self.backlogs.get(webhook_id)?;
        if backlog.len() < self.backlog_limit {
            return None;
        }
        let (_, oldest) = backlog.first()?;
        self.events.get(oldest)
    }

    /// One queued event.
    pub(crate) fn event(&self, id: &str) -> Option<WebhookEvent> {
        self.events.get(id)
    }

    /// A page of a webhook's delivery log.
    pub(crate) fn events(&self, webhook_id: &str, request: &PageRequest) -> Result<Page<WebhookEvent>, Error> {
        self.events.page(request, &format!("events|{webhook_id}"), |e| e.webhook_id == webhook_id, Ok)
    }

    /// A page of the events of a webhook's delivery log that `keep` keeps;
    /// `filters` names them, so a page token serves only the same filters.
    pub(crate) fn events_where(
        &self,
        webhook_id: &str,
        filters: &str,
        keep: impl Fn(&WebhookEvent) -> bool,
        request: &PageRequest,
    ) -> Result<Page<WebhookEvent>, Error> {
        let scope = format!("events|{webhook_id}|{filters}");
        self.events.page(request, &scope, |e| e.webhook_id == webhook_id && keep(e), Ok)
    }

    /// Every pending event: (id, webhook, when due).
    pub(crate) fn pending_events(&self) -> Vec<(String, String, chrono::DateTime<chrono::Utc>)> {
        self.events.pick(|e| {
            (e.status == DeliveryStatus::Pending)
                .then(|| (e.id.clone(), e.webhook_id.clone(), e.next_attempt.unwrap_or(e.date)))
        })
    }
}
