//! Engine events: what subscribers are told after a change is durable.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use super::activity::{Activity, PolicyEvaluation};
use super::approval::Approval;

/// A policy matched an activity (triggered or not).
pub const POLICY_TRIGGERED: &str = "policy.triggered";
/// An approval opened.
pub const APPROVAL_PENDING: &str = "policy.approval.pending";
/// An approval resolved (approved, denied or expired).
pub const APPROVAL_RESOLVED: &str = "policy.approval.resolved";
/// An activity was evaluated (subscribers only: webhooks have no such kind).
pub const ACTIVITY_EVALUATED: &str = "activity.evaluated";

/// Something that happened in the engine, for subscribers (webhooks use the
/// same kinds and data).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineEvent {
    /// `ev-...`, drawn when the event is announced (and only if someone
    /// listens). A webhook's delivery of the same event has an id of its
    /// own: each webhook's delivery log is keyed by its events' ids.
    pub id: String,
    /// `policy.triggered`, `policy.approval.pending`, `policy.approval.resolved`.
    pub kind: String,
    /// When.
    pub date: DateTime<Utc>,
    /// The event's data, as delivered to webhooks.
    pub data: Value,
}

/// The data of `policy.triggered` for one of `activity`'s evaluations.
pub(crate) fn policy_triggered(activity: &Activity, evaluation: &PolicyEvaluation) -> Value {
    json!({"policyEvaluation": {
        "policyId": evaluation.policy_id, "activityId": activity.id,
        "triggered": evaluation.triggered, "reason": evaluation.reason, "date": activity.date_created,
    }})
}

/// The data of an approval's events (pending and resolved).
pub(crate) fn approval_data(approval: &Approval) -> Value {
    json!({ "approval": approval })
}

/// An event of a state change, announced once the change is committed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Notice {
    pub(crate) kind: String,
    pub(crate) date: DateTime<Utc>,
    pub(crate) data: Value,
}

impl Notice {
    /// `kind` at `date`, with `data`.
    pub(crate) fn new(kind: &str, date: DateTime<Utc>, data: Value) -> Notice {
        Notice { kind: kind.to_owned(), date, data }
    }

    /// [`ACTIVITY_EVALUATED`].
    pub(crate) fn activity_evaluated(activity: &Activity) -> Notice {
        Notice::new(ACTIVITY_EVALUATED, activity.date_created, json!({ "activity": activity }))
    }

    /// The event subscribers are told, with an id of its own.
    pub(crate) fn announced(self) -> EngineEvent {
        let id = crate::model::ids::new_id(crate::model::ids::IdKind::Event);
        EngineEvent { id, kind: self.kind, date: self.date, data: self.data }
    }
}
