//! Engine events: what subscribers are told after a change is durable.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Something that happened in the engine, for subscribers (webhooks use the
/// same kinds and data).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineEvent {
    /// `policy.triggered`, `policy.approval.pending`, `policy.approval.resolved`.
    pub kind: String,
    /// When.
    pub date: DateTime<Utc>,
    /// The event's data, as delivered to webhooks.
    pub data: serde_json::Value,
}
