//! The one fold: [`State::apply`] is the only code that turns a fact into
//! in-memory state. Recovery runs it over the journal, the engine runs it
//! after every commit of its own, and a standby would run it over a journal
//! it follows: all three reach the same state from the same records.
//!
//! What a fact means beyond the tables (a window counts, an approval's actor
//! starts or stops, the dispatcher has an event to send) comes back as
//! [`Effect`]s for the layer that runs actors; recovery sets its actors up from
//! the final state instead.

use chrono::{DateTime, Utc};
use warden_journal::Seq;

use crate::journal::facts::{Count, Fact, Json};
use crate::model::activity::ActivityStatus;
use crate::model::approval::ApprovalStatus;
use crate::model::change_request::ChangeRequestStatus;
use crate::model::webhook::DeliveryStatus;

use super::{ActivityEntry, State};

/// What an applied fact asks of the actors.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// A window counts an activity.
    Count(Count),
    /// An approval resolved: its actor has nothing left to do.
    ApprovalResolved {
        /// The approval.
        id: String,
        /// What it resolved to.
        status: ApprovalStatus,
    },
    /// A policy's velocity rule changed: its windows must be rebuilt.
    RuleChanged(String),
    /// An event waits for delivery.
    EventQueued(String),
}

impl State {
    /// Folds one fact, journaled at `seq`, into the tables; pushes onto
    /// `effects` what the actors must do about it.
    pub(crate) fn apply(&self, seq: Seq, fact: Fact, effects: &mut Vec<Effect>) {
        self.applied.fetch_max(seq, std::sync::atomic::Ordering::AcqRel);
        match fact {
            Fact::PolicyPut(Json(policy)) => {
                let id = policy.id.clone();
                if self.policies.put(*policy) {
                    effects.push(Effect::RuleChanged(id));
                }
            }
            Fact::ActivityEvaluated { mut activity, counts } => {
                self.counts.record(seq, &counts);
                if let Some(key) = activity.external_id.take() {
                    self.external_ids.record(key, &activity.id, activity.date);
                }
                // Its id was just drawn (or is new to this fold): no lookup
                // for an entry to replace first.
                self.activities.put_new(ActivityEntry::new(activity, seq));
                effects.extend(counts.into_iter().map(Effect::Count));
            }
            // Its actor starts when a decision or its deadline reaches it.
            Fact::ApprovalOpened(Json(approval)) => self.approvals.open(*approval, seq),
            Fact::DecisionRecorded { approval_id, decision: Json(decision) } => {
                self.approvals.decide(&approval_id, decision, seq);
            }
            Fact::ApprovalResolved { approval_id, status, date, counts } => {
                self.counts.record(seq, &counts);
                let Some(approval) = self.approvals.resolve(&approval_id, status, date, seq) else { return };
                let activity_status = match status {
                    ApprovalStatus::Approved => ActivityStatus::Approved,
                    ApprovalStatus::Denied => ActivityStatus::Denied,
                    _ => ActivityStatus::Expired,
                };
                self.activities.update(&approval.activity.id, |a| a.set_status(activity_status, date));
                if let Some((_, change_id)) = self.change_of_approval.remove(&approval_id) {
                    let resolved = self.change_requests.update(&change_id, |c| {
                        c.status = if status == ApprovalStatus::Approved {
                            ChangeRequestStatus::Applied
                        } else {
                            ChangeRequestStatus::Rejected
                        };
                        c.date_resolved = Some(date);
                        c.entity_id.clone()
                    });
                    if let Some(policy_id) = resolved {
                        self.pending_changes.remove_if(&policy_id, |_, pending| *pending == change_id);
                    }
                }
                effects.extend(counts.into_iter().map(Effect::Count));
                effects.push(Effect::ApprovalResolved { id: approval_id, status });
            }
            Fact::ChangeRequestOpened(Json(change)) => {
                if change.status == ChangeRequestStatus::Pending {
                    self.pending_changes.insert(change.entity_id.clone(), change.id.clone());
                    self.change_of_approval.insert(change.approval_id.clone(), change.id.clone());
                }
                self.change_requests.put(*change);
            }
            Fact::WebhookPut(Json(webhook)) => self.webhooks.put(webhook),
            Fact::WebhookDeleted { webhook_id } => {
                self.webhooks.remove(&webhook_id);
            }
            Fact::EventQueued(Json(event)) => {
                let id = event.id.clone();
                let pending = event.status == DeliveryStatus::Pending;
                if pending {
                    self.backlogs.entry(event.webhook_id.clone()).or_default().insert((event.date, id.clone()));
                }
                self.events.put(event);
                if pending {
                    effects.push(Effect::EventQueued(id));
                }
            }
            Fact::DeliveryRecorded { event_id, status, attempts, last_error, next_attempt } => {
                self.record_delivery(event_id, status, attempts, last_error, next_attempt, None);
            }
            Fact::DeliveryTried { event_id, status, attempts, last_error, next_attempt, sent_at } => {
                self.record_delivery(event_id, status, attempts, last_error, next_attempt, Some(sent_at));
            }
            Fact::WebhookDisabled { webhook_id, reason, date: _ } => {
                self.webhooks.update(&webhook_id, |w| {
                    w.status = crate::model::webhook::WebhookStatus::Disabled;
                    w.disabled_reason = Some(reason.clone());
                });
                let backlog = self.backlogs.remove(&webhook_id).map(|(_, b)| b).unwrap_or_default();
                for (_, event_id) in backlog {
                    self.events.update(&event_id, |e| {
                        e.status = DeliveryStatus::Failed;
                        e.last_error = Some(reason.clone());
                        e.next_attempt = None;
                    });
                }
            }
            // Evidence only (`warden audit verify`): the change it authorized
            // is in the facts beside it.
            Fact::UserActionSigned(_) => {}
        }
    }

    /// A delivery's outcome (and when its try was sent, if it was one).
    fn record_delivery(
        &self,
        event_id: String,
        status: DeliveryStatus,
        attempts: u32,
        last_error: Option<String>,
        next_attempt: Option<DateTime<Utc>>,
        sent_at: Option<DateTime<Utc>>,
    ) {
        // INVARIANT (settled once): a delivered or failed event never
        // changes again (a try finishing after its event was dropped).
        let settled = self.events.update(&event_id, |e| {
            if e.status != DeliveryStatus::Pending {
                return None;
            }
            e.status = status;
            e.attempts = attempts;
            e.last_error = last_error;
            e.next_attempt = if status == DeliveryStatus::Pending { next_attempt } else { None };
            e.last_sent = sent_at.or(e.last_sent);
            (status != DeliveryStatus::Pending).then(|| (e.webhook_id.clone(), e.date))
        });
        if let Some(Some((webhook_id, date))) = settled {
            if let Some(mut backlog) = self.backlogs.get_mut(&webhook_id) {
                backlog.remove(&(date, event_id));
            }
        }
    }
}
