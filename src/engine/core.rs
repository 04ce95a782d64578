//! The engine's shared core: settings, the journal writer, the in-memory
//! tables derived from the journal, the policy snapshot, and the addresses of
//! the window and approval actors.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, OnceLock};

use actix::prelude::*;
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use tokio::sync::{broadcast, OnceCell};
use warden_journal::Journal;

use crate::actors::approval::ApprovalActor;
use crate::actors::journal_writer::JournalWriter;
use crate::actors::registry::{Registry, Supervision};
use crate::actors::webhook_dispatcher::Dispatcher;
use crate::actors::window::{self, WindowActor};
use crate::clock::Clock;
use crate::error::Error;
use crate::model::approval::Approval;
use crate::model::change_request::ChangeRequest;
use crate::model::ids::{new_id, IdKind};
use crate::model::policy::Policy;
use crate::model::principal::Principal;
use crate::model::webhook::{DeliveryStatus, Webhook, WebhookEvent};

use crate::policy::compile::{CompiledPolicy, CompiledRule, Velocity};
use crate::policy::window_math::{window_start, Ledger};
use crate::policy::{compile, DefaultAction, EvaluationMode, PolicySet, PriceTable, WindowKey};

use super::activity_log::ActivityEntry;
use super::facts::{Count, Fact, Json};
use super::store::Store;
use super::EngineEvent;

/// How the engine evaluates, from its builder.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `all-triggered` or `first-match`.
    pub mode: EvaluationMode,
    /// `first-match`'s answer when nothing triggers.
    pub default_action: DefaultAction,
    /// USD per whole unit.
    pub prices: PriceTable,
    /// Known principals, for the lockout check of governing policies.
    pub principals: Vec<Principal>,
}

/// The shared core of an engine.
pub struct Core {
    pub(crate) settings: Settings,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) writer: JournalWriter,
    pub(crate) journal: Arc<dyn Journal>,
    pub(crate) policies: Store<Policy>,
    pub(crate) snapshot: ArcSwap<PolicySet>,
    pub(crate) compiled: DashMap<String, Arc<CompiledPolicy>>,
    pub(crate) activities: Store<ActivityEntry>,
    pub(crate) approvals: Store<Approval>,
    pub(crate) change_requests: Store<ChangeRequest>,
    pub(crate) webhooks: Store<Webhook>,
    pub(crate) events: Store<WebhookEvent>,
    /// `externalId` to activity id; the cell is filled once the first
    /// evaluation is answered, and concurrent repeats wait for it. Keys are
    /// chosen by callers and live as long as the process: std's keyed hash.
    pub(crate) external_ids: DashMap<String, Arc<OnceCell<String>>>,
    /// Policy id to its pending change request id.
    pub(crate) pending_changes: DashMap<String, String>,
    pub(crate) windows: DashMap<WindowKey, Addr<WindowActor>>,
    pub(crate) approval_actors: DashMap<String, Addr<ApprovalActor>>,
    pub(crate) registry: OnceLock<Addr<Registry>>,
    pub(crate) dispatcher: OnceLock<Addr<Dispatcher>>,
    pub(crate) subscribers: broadcast::Sender<EngineEvent>,
    pub(crate) reservations: AtomicU64,
    pub(crate) ready: AtomicBool,
    pub(crate) supervision: Supervision,
}

impl Core {
    pub(crate) fn new(
        settings: Settings,
        clock: Arc<dyn Clock>,
        journal: Arc<dyn Journal>,
        arbiters: Vec<ArbiterHandle>,
    ) -> Self {
        let (subscribers, _) = broadcast::channel(1024);
        Core {
            settings,
            clock,
            writer: JournalWriter::start(journal.clone()),
            journal,
            policies: Store::default(),
            snapshot: ArcSwap::from_pointee(PolicySet::default()),
            compiled: DashMap::new(),
            activities: Store::default(),
            approvals: Store::default(),
            change_requests: Store::default(),
            webhooks: Store::default(),
            events: Store::default(),
            external_ids: DashMap::default(),
            pending_changes: DashMap::new(),
            windows: DashMap::new(),
            approval_actors: DashMap::new(),
            registry: OnceLock::new(),
            dispatcher: OnceLock::new(),
            subscribers,
            reservations: AtomicU64::new(1),
            ready: AtomicBool::new(false),
            supervision: Supervision::new(arbiters),
        }
    }

    /// Commits facts through the group-committing writer; returns the seq
    /// of the first of them.
    pub(crate) async fn commit(&self, facts: &[Fact]) -> Result<warden_journal::Seq, Error> {
        self.writer.commit(facts).await
    }

    /// Compiles `policy` into the snapshot and swaps it in. Only the registry
    /// calls this, one change at a time. When a velocity rule changed, its
    /// windows are rebuilt from the journal: a wider window must see counts a
    /// narrower one had already forgotten.
    pub(crate) fn install_policy(self: &Arc<Self>, policy: Policy) {
        let id = policy.id.clone();
        let before = self.compiled.get(&id).map(|c| c.rule.clone());
        self.policies.put(policy.clone());
        self.compile_one(policy);
        self.swap_snapshot();
        let after = self.compiled.get(&id).map(|c| c.rule.clone());
        if let (Some(before), Some(CompiledRule::Velocity(velocity))) = (before, after.as_ref()) {
            if Some(&before) != after.as_ref() {
                self.rebuild_windows(&id, velocity);
            }
        }
    }

    /// Rebuilds every window of a velocity policy from the journal's counts
    /// inside the rule's current horizon.
    fn rebuild_windows(self: &Arc<Self>, policy_id: &str, velocity: &Velocity) {
        let start = window_start(velocity.span, self.clock.now());
        let mut ledgers: HashMap<WindowKey, Ledger> = HashMap::new();
        let scanned = super::recovery::for_each_fact(self.journal.as_ref(), |mut fact| {
            for count in fact.take_counts().into_iter().filter(|c| c.window.policy_id == policy_id && c.at >= start) {
                if let Some(q) = count.quantity {
                    ledgers.entry(count.window).or_default().push(count.at, q, count.activity_id);
                }
            }
        });
        if let Err(error) = scanned {
            tracing::error!(policy = policy_id, %error, "windows could not be rebuilt after a rule change");
            return;
        }
        let existing: Vec<WindowKey> =
            self.windows.iter().filter(|e| e.key().policy_id == policy_id).map(|e| e.key().clone()).collect();
        for key in existing {
            ledgers.entry(key).or_default();
        }
        for (key, ledger) in ledgers {
            match self.windows.entry(key.clone()) {
                dashmap::Entry::Occupied(actor) => actor.get().do_send(window::ReplaceCounts(ledger)),
                dashmap::Entry::Vacant(slot) => {
                    slot.insert(self.start_window(key, ledger));
                }
            }
        }
    }

    /// Compiles every stored policy and swaps the snapshot once (recovery).
    pub(crate) fn load_policies(&self) {
        for policy in self.policies.all() {
            self.compile_one(policy);
        }
        self.swap_snapshot();
    }

    fn compile_one(&self, policy: Policy) {
        let ordinal = self.policies.ordinal(&policy.id).unwrap_or(u64::MAX);
        let id = policy.id.clone();
        match compile(Arc::new(policy), ordinal) {
            Ok(compiled) => {
                self.compiled.insert(id, Arc::new(compiled));
            }
            Err(error) => {
                // Only validated policies are journaled; one that no longer
                // compiles (rules of another build) is left out, loudly.
                tracing::error!(policy = %id, %error, "stored policy does not compile; it is not evaluated");
                self.compiled.remove(&id);
            }
        }
    }

    /// Rebuilds the snapshot from the compiled policies.
    pub(crate) fn swap_snapshot(&self) {
        let set = PolicySet::new(self.compiled.iter().map(|e| e.value().clone()));
        self.snapshot.store(Arc::new(set));
    }

    /// The address of a window's actor, started (supervised, on the next
    /// arbiter) on first use. A window first used after recovery holds no
    /// counts: recovery started every window that had counts in its horizon.
    pub(crate) fn window(self: &Arc<Self>, key: &WindowKey) -> Addr<WindowActor> {
        if let Some(addr) = self.windows.get(key) {
            return addr.clone();
        }
        self.windows.entry(key.clone()).or_insert_with(|| self.start_window(key.clone(), Ledger::default())).clone()
    }

    /// Starts a window's actor holding `ledger`.
    pub(crate) fn start_window(self: &Arc<Self>, key: WindowKey, ledger: Ledger) -> Addr<WindowActor> {
        self.supervision.start_window(Arc::downgrade(self), key, ledger)
    }

    /// Starts the actor of a pending approval.
    pub(crate) fn spawn_approval(self: &Arc<Self>, approval: Approval) -> Addr<ApprovalActor> {
        let id = approval.id.clone();
        let addr = self.supervision.start_approval(Arc::downgrade(self), approval);
        self.approval_actors.insert(id, addr.clone());
        addr
    }

    /// Pushes journaled counts into their windows.
    pub(crate) fn apply_counts(self: &Arc<Self>, counts: &[Count], reservation: u64) {
        for count in counts {
            self.window(&count.window).do_send(window::Commit {
                reservation,
                activity: count.activity_id.clone(),
                quantity: count.quantity,
                at: count.at,
            });
        }
    }

    /// The outbox: one queued event per webhook that wants `kind`, as facts for
    /// the commit of the state change that causes it.
    pub(crate) fn outbox(&self, kind: &str, data: &serde_json::Value, now: DateTime<Utc>) -> Vec<WebhookEvent> {
        let data = data.to_string();
        self.webhooks
            .all()
            .into_iter()
            .filter(|w| w.wants(kind))
            .map(|w| WebhookEvent {
                id: new_id(IdKind::Event),
                webhook_id: w.id,
                kind: kind.to_owned(),
                date: now,
                status: DeliveryStatus::Pending,
                attempts: 0,
                last_error: None,
                data: data.clone(),
                next_attempt: Some(now),
            })
            .collect()
    }

    /// After the commit that queued them: keep the deliveries, tell
    /// subscribers and wake the dispatcher.
    pub(crate) fn publish(&self, notices: super::notices::Notices) {
        let queued: Vec<String> = notices.events.iter().map(|e| e.id.clone()).collect();
        for event in notices.events {
            self.events.put(event);
        }
        for notice in notices.notices {
            let _ = self.subscribers.send(notice);
        }
        if !queued.is_empty() {
            if let Some(dispatcher) = self.dispatcher.get() {
                dispatcher.do_send(crate::actors::webhook_dispatcher::Wake { events: queued });
            }
        }
    }

    /// Rebuilds a window's counts from the journal: every count of `key`.
    pub(crate) fn rebuild_ledger(&self, key: &WindowKey) -> Ledger {
        let mut ledger = Ledger::default();
        let _ = super::recovery::for_each_fact(self.journal.as_ref(), |mut fact| {
            for count in fact.take_counts() {
                if &count.window == key {
                    if let Some(q) = count.quantity {
                        ledger.push(count.at, q, count.activity_id);
                    }
                }
            }
        });
        ledger
    }

    /// Reads an approval back from the journal.
    pub(crate) fn replay_approval(&self, id: &str) -> Option<Approval> {
        let mut approval: Option<Approval> = None;
        let _ = super::recovery::for_each_fact(self.journal.as_ref(), |fact| match fact {
            Fact::ApprovalOpened(Json(a)) if a.id == id => approval = Some(a),
            Fact::DecisionRecorded { approval_id, decision } if approval_id == id => {
                if let Some(a) = approval.as_mut() {
                    crate::workflow::apply_decision(a, decision.0);
                }
            }
            Fact::ApprovalResolved { approval_id, status, date, .. } if approval_id == id => {
                if let Some(a) = approval.as_mut() {
                    crate::workflow::resolve(a, status, date);
                }
            }
            _ => {}
        });
        approval
    }
}
