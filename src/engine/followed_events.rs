//! What a standby tells its own subscribers (`GET /v2/events` on that node):
//! the events of the records it folds, made from the records as the leader
//! made them from its changes. Only the kinds the leader announces from a
//! record's contents are told: an activity's `policy.triggered` and
//! `activity.evaluated`, an approval's `policy.approval.pending` and
//! `policy.approval.resolved`.
//!
//! Nothing is read or built while nobody listens. The order within a commit
//! is the records' (an activity is told before the approval it opened; the
//! leader tells the approval first). A subscriber of a standby hears the
//! records folded after it subscribed, a few milliseconds after the leader's.

use crate::journal::facts::Fact;
use crate::model::activity::Activity;
use crate::model::event::{
    approval_data, policy_triggered, Notice, APPROVAL_PENDING, APPROVAL_RESOLVED, POLICY_TRIGGERED,
};

use super::Engine;

/// What a record will be told as, taken before the fold consumes it.
pub(super) enum Heard {
    /// The JSON text of an evaluated activity.
    Evaluated(String),
    /// An approval opened: its event's data, as journaled, and date.
    Opened(serde_json::Value, chrono::DateTime<chrono::Utc>),
    /// An approval resolved: read back once folded.
    Resolved(String, chrono::DateTime<chrono::Utc>),
}

impl Heard {
    /// What `fact` will be told as, if anything.
    pub(super) fn of(fact: &Fact) -> Option<Heard> {
        match fact {
            Fact::ActivityEvaluated { activity, .. } => Some(Heard::Evaluated(activity.json.clone())),
            Fact::ApprovalOpened(approval) => Some(Heard::Opened(approval_data(&approval.0), approval.0.date_created)),
            Fact::ApprovalResolved { approval_id, date, .. } => Some(Heard::Resolved(approval_id.clone(), *date)),
            _ => None,
        }
    }
}

impl Engine {
    /// Tells this node's subscribers what a folded record was (see the module).
    pub(super) fn tell_followed(&self, heard: Heard) {
        let hub = &self.hub;
        match heard {
            Heard::Evaluated(text) => {
                let Ok(activity) = serde_json::from_str::<Activity>(&text) else {
                    tracing::warn!("a folded activity's text does not read back; its events are not told");
                    return;
                };
                for evaluation in &activity.policy_evaluations {
                    let data = policy_triggered(&activity, evaluation);
                    hub.tell(Notice::new(POLICY_TRIGGERED, activity.date_created, data));
                }
                // Every kind, as the leader tells it: a policy change is an
                // activity of the trail too.
                hub.tell(Notice::activity_evaluated(&activity));
            }
            Heard::Opened(data, date) => {
                hub.tell(Notice::new(APPROVAL_PENDING, date, data));
            }
            // As the leader tells it: with the change request as journaled
            // when the approval opened (`Engine::approval` would show it as
            // it stands now).
            Heard::Resolved(approval_id, date) => match hub.state().approval(&approval_id) {
                Ok(Some(approval)) => hub.tell(Notice::new(APPROVAL_RESOLVED, date, approval_data(&approval))),
                Ok(None) => tracing::warn!(approval = %approval_id, "a resolved approval is not in the state"),
                Err(error) => tracing::warn!(approval = %approval_id, %error, "a resolved approval does not read back"),
            },
        }
    }
}
