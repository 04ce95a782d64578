//! What a state change announces: engine events for subscribers and, for each
//! webhook that wants them, queued deliveries journaled with the change (the
//! outbox: at least once, since they commit with their cause).

use chrono::{DateTime, Utc};

use crate::journal::facts::{Fact, Json};
use crate::model::activity::Activity;
use crate::model::event::{policy_triggered, Notice, POLICY_TRIGGERED};
use crate::model::ids::{new_id, IdKind};
use crate::model::webhook::{DeliveryStatus, WebhookEvent};

use super::State;

/// The announcements of one state change.
#[derive(Debug, Default)]
pub(crate) struct Notices {
    /// For subscribers, once committed.
    pub(crate) notices: Vec<Notice>,
    events: Vec<WebhookEvent>,
    /// Oldest events dropped from full backlogs, and their facts.
    dropped: Vec<String>,
    settled: Vec<Fact>,
}

impl Notices {
    /// Announces `kind` with `data`: one queued event per webhook that wants it.
    ///
    /// A webhook whose backlog is full loses its oldest pending event (it
    /// becomes `Failed`, in the same commit), so what one dead receiver holds
    /// stays bounded.
    pub(crate) fn add(&mut self, state: &State, kind: &str, data: serde_json::Value, now: DateTime<Utc>) {
        let wanting = state.webhooks_wanting(kind);
        // The text is for webhooks' deliveries only: none wanting, none made.
        let text = if wanting.is_empty() { String::new() } else { data.to_string() };
        for webhook_id in &wanting {
            if let Some(oldest) = state.backlog_overflow(webhook_id) {
                if self.dropped.iter().all(|d| *d != oldest.id) {
                    metrics::counter!("warden_webhook_events_dropped_total", "reason" => "backlog").increment(1);
                    self.dropped.push(oldest.id.clone());
                    self.settled.push(Fact::DeliveryRecorded {
                        event_id: oldest.id,
                        status: DeliveryStatus::Failed,
                        attempts: oldest.attempts,
                        last_error: Some("dropped: the webhook's backlog is full".to_owned()),
                        next_attempt: None,
                    });
                }
            }
        }
        self.events.extend(wanting.into_iter().map(|webhook_id| WebhookEvent {
            id: new_id(IdKind::Event),
            webhook_id,
            kind: kind.to_owned(),
            date: now,
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_error: None,
            data: text.clone(),
            next_attempt: Some(now),
            last_sent: None,
        }));
        self.notices.push(Notice::new(kind, now, data));
    }

    /// Announces `policy.triggered` for each policy that triggered on `activity`.
    pub(crate) fn triggered(&mut self, state: &State, activity: &Activity) {
        for evaluation in &activity.policy_evaluations {
            self.add(state, POLICY_TRIGGERED, policy_triggered(activity, evaluation), activity.date_created);
        }
    }

    /// The facts that queue the webhook deliveries, taken out.
    pub(crate) fn take_facts(&mut self) -> impl Iterator<Item = Fact> {
        let queued = std::mem::take(&mut self.events).into_iter().map(|e| Fact::EventQueued(Json(e)));
        std::mem::take(&mut self.settled).into_iter().chain(queued)
    }
}
