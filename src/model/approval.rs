//! Approvals: the groups, the decisions and the outcome of a held activity.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::activity::{ActivityRequest, PolicyEvaluation};
use super::change_request::ChangeRequest;
use super::policy::Approvers;
use super::principal::PrincipalKind;
use super::signed_action::SignedAction;

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ApprovalStatus {
    /// Waiting for decisions.
    Pending,
    /// Every group reached its quorum.
    Approved,
    /// An eligible approver denied it.
    Denied,
    /// It timed out.
    Expired,
}

impl ApprovalStatus {
    /// The contract's name (also the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "Pending",
            ApprovalStatus::Approved => "Approved",
            ApprovalStatus::Denied => "Denied",
            ApprovalStatus::Expired => "Expired",
        }
    }
}

/// A decision's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum DecisionValue {
    /// Approve.
    Approved,
    /// Deny (`"Rejected"` is read as `"Denied"`).
    #[serde(alias = "Rejected")]
    Denied,
}

/// One principal's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Who decided.
    pub user_id: String,
    /// The decider's kind (needed to replay eligibility).
    #[serde(default)]
    pub user_kind: PrincipalKind,
    /// What.
    pub value: DecisionValue,
    /// Why; omitted when none was given (the contract omits a field without
    /// a value, never `null` or `""`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// When.
    pub date: DateTime<Utc>,
    /// The credential that signed the decision (a signed user action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    /// The signed assertion itself, journaled with the decision: anyone
    /// holding the approver's public key can check it without trusting
    /// the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_action: Option<SignedAction>,
}

/// A group of an approval, with who approved in it so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalGroup {
    /// The policy the group comes from.
    pub policy_id: String,
    /// Group name.
    pub name: String,
    /// Approvals needed.
    pub quorum: u32,
    /// Who may approve.
    pub approvers: Approvers,
    /// Whether the initiator may approve in this group.
    pub initiator_can_approve: bool,
    /// Whether service accounts may approve in this group.
    pub service_accounts_can_approve: bool,
    /// Who approved in this group.
    pub approved_by: Vec<String>,
}

/// The activity an approval holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalActivity {
    /// `ac-...`
    pub id: String,
    /// The activity request (its `kind` included).
    #[serde(flatten)]
    pub request: ActivityRequest,
    /// The change request a `Policies:Modify` approval decides (Dfns'
    /// shape), as it stands when read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_request: Option<Box<ChangeRequest>>,
}

/// An approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// `ap-...`
    pub id: String,
    /// Where it stands.
    pub status: ApprovalStatus,
    /// Who started the activity.
    pub initiator_id: String,
    /// The initiator's kind.
    #[serde(default)]
    pub initiator_kind: PrincipalKind,
    /// The held activity.
    pub activity: ApprovalActivity,
    /// The policies that asked for approval.
    pub policy_evaluations: Vec<PolicyEvaluation>,
    /// Every group that must reach its quorum.
    pub approval_groups: Vec<ApprovalGroup>,
    /// Every decision, in order.
    pub decisions: Vec<Decision>,
    /// When it was created.
    pub date_created: DateTime<Utc>,
    /// When it last changed.
    pub date_updated: DateTime<Utc>,
    /// When it resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_resolved: Option<DateTime<Utc>>,
    /// When it expires, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<DateTime<Utc>>,
}
