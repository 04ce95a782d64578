//! Change requests: a governed policy change waiting for its approval.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::activity::OperationKind;
use super::policy::PolicySpec;

/// Where a change request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ChangeRequestStatus {
    /// Waiting for its approval.
    Pending,
    /// Approved and applied.
    Applied,
    /// Denied or expired; nothing changed.
    Rejected,
}

/// Who asked for a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Requester {
    /// Principal id.
    pub user_id: String,
}

/// A held policy change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRequest {
    /// `cr-...`
    pub id: String,
    /// Always `Policy`.
    pub kind: String,
    /// Create, update or archive.
    pub operation_kind: OperationKind,
    /// Where it stands.
    pub status: ChangeRequestStatus,
    /// Who asked.
    pub requester: Requester,
    /// The policy (for a create, the id the policy will have).
    pub entity_id: String,
    /// The approval deciding it.
    pub approval_id: String,
    /// The policy body (create and update).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<PolicySpec>,
    /// When it was made.
    pub date_created: DateTime<Utc>,
    /// When it was applied or rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_resolved: Option<DateTime<Utc>>,
}
