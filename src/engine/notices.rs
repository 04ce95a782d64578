//! What a state change announces: engine events for subscribers and, for each
//! webhook that wants them, queued deliveries journaled with the change.

use chrono::{DateTime, Utc};

use serde_json::json;

use crate::model::activity::Activity;
use crate::model::webhook::WebhookEvent;

use super::core::Core;
use super::facts::{Fact, Json};
use super::EngineEvent;

/// The announcements of one state change.
#[derive(Debug, Default)]
pub(crate) struct Notices {
    pub(crate) notices: Vec<EngineEvent>,
    pub(crate) events: Vec<WebhookEvent>,
}

impl Notices {
    /// Announces `kind` with `data`.
    pub(crate) fn add(&mut self, core: &Core, kind: &str, data: serde_json::Value, now: DateTime<Utc>) {
        self.events.extend(core.outbox(kind, &data, now));
        self.notices.push(EngineEvent { kind: kind.to_owned(), date: now, data });
    }

    /// Announces `policy.triggered` for each policy that triggered on `activity`.
    pub(crate) fn triggered(&mut self, core: &Core, activity: &Activity) {
        let now = activity.date_created;
        for evaluation in &activity.policy_evaluations {
            let data = json!({"policyEvaluation": {
                "policyId": evaluation.policy_id, "activityId": activity.id,
                "triggered": evaluation.triggered, "reason": evaluation.reason, "date": now,
            }});
            self.add(core, "policy.triggered", data, now);
        }
    }

    /// The facts that queue the webhook deliveries.
    pub(crate) fn facts(&self) -> impl Iterator<Item = Fact> + '_ {
        self.events.iter().map(|e| Fact::EventQueued(Json(e.clone())))
    }
}
