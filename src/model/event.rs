//! Engine events: what subscribers are told after a change is durable.

use chrono::{DateTime, Utc};
use serde::Serialize;

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
    pub data: serde_json::Value,
}

/// An event of a state change, announced once the change is committed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Notice {
    pub(crate) kind: String,
    pub(crate) date: DateTime<Utc>,
    pub(crate) data: serde_json::Value,
}

impl Notice {
    /// `activity.evaluated` (subscribers only: webhooks have no such kind).
    pub(crate) fn activity_evaluated(activity: &crate::model::activity::Activity) -> Notice {
        let data = serde_json::json!({ "activity": activity });
        Notice { kind: "activity.evaluated".to_owned(), date: activity.date_created, data }
    }

    /// The event subscribers are told, with an id of its own.
    pub(crate) fn announced(self) -> EngineEvent {
        let id = crate::model::ids::new_id(crate::model::ids::IdKind::Event);
        EngineEvent { id, kind: self.kind, date: self.date, data: self.data }
    }
}
