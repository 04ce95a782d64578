//! Policies as the contract writes them (`POST /v2/policies`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::amount::NumberText;

/// What kind of activity a policy governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ActivityKind {
    /// A signature the signer is about to produce.
    #[serde(rename = "Wallets:Sign")]
    WalletsSign,
    /// A create, update or archive of a policy.
    #[serde(rename = "Policies:Modify")]
    PoliciesModify,
}

impl ActivityKind {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::WalletsSign => "Wallets:Sign",
            ActivityKind::PoliciesModify => "Policies:Modify",
        }
    }
}

/// `Active` policies are evaluated; `Archived` ones never trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub enum PolicyStatus {
    /// Evaluated.
    #[default]
    Active,
    /// Kept for the record, never evaluated.
    Archived,
}

/// The request body of a policy create or update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "name": "Block large transfers", "activityKind": "Wallets:Sign",
    "rule": {"kind": "TransactionAmountLimit", "configuration": {"limit": "100000", "currency": "USD"}},
    "action": {"kind": "Block"}
}))]
pub struct PolicySpec {
    /// Human name.
    pub name: String,
    /// The kind of activity the policy governs.
    pub activity_kind: ActivityKind,
    /// The condition.
    pub rule: Rule,
    /// What happens when the rule triggers.
    pub action: Action,
    /// Which activities the policy applies to; absent filters match anything.
    #[serde(default)]
    pub filters: Filters,
    /// `first-match` order, ascending; absent sorts after every policy with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// `Active` unless given.
    #[serde(default)]
    pub status: PolicyStatus,
}

/// A stored policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// `pl-...`
    pub id: String,
    /// The policy's fields.
    #[serde(flatten)]
    pub spec: PolicySpec,
    /// When it was created.
    pub date_created: DateTime<Utc>,
    /// When it was last changed.
    pub date_updated: DateTime<Utc>,
}

/// The rule kinds of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum RuleKind {
    /// Triggers always.
    AlwaysTrigger,
    /// USD value above a limit.
    TransactionAmountLimit,
    /// An asset amount above its limit in smallest units.
    TransactionAmountLimitNominal,
    /// Amount summed over a time window above a limit.
    TransactionAmountVelocity,
    /// Number of activities in a time window above a limit.
    TransactionCountVelocity,
    /// Recipient absent or not listed.
    TransactionRecipientWhitelist,
}

/// A rule: its kind and its configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
pub struct Rule {
    /// Which rule.
    pub kind: RuleKind,
    /// Its parameters; which fields are required depends on `kind`.
    #[serde(default)]
    pub configuration: RuleConfiguration,
}

/// Written as derived, but for a count limit: the contract's
/// `TransactionCountVelocity` takes `limit` as an integer, and a Dfns client
/// reads it back as one (USD and smallest-unit limits stay decimal strings,
/// exact past 2^53). A limit that is no integer (refused when the policy is
/// checked) is written as given.
impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;

        /// The configuration with its limit as a number.
        #[derive(Serialize)]
        struct CountLimited<'a> {
            limit: u64,
            #[serde(flatten)]
            rest: &'a RuleConfiguration,
        }

        let mut rule = serializer.serialize_struct("Rule", 2)?;
        rule.serialize_field("kind", &self.kind)?;
        let count = match (self.kind, &self.configuration.limit) {
            (RuleKind::TransactionCountVelocity, Some(limit)) => limit.as_count(),
            _ => None,
        };
        match count {
            Some(limit) => {
                let rest = RuleConfiguration { limit: None, ..self.configuration.clone() };
                rule.serialize_field("configuration", &CountLimited { limit, rest: &rest })?;
            }
            None => rule.serialize_field("configuration", &self.configuration)?,
        }
        rule.end()
    }
}

/// Parameters of every rule kind; validation checks which apply. An unknown
/// key is refused: a misspelled `scope` ignored would sum a wider window's
/// spending under the default (per wallet), a misspelled `timeWindow` or
/// `limit` would be refused anyway, but naming the wrong key.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleConfiguration {
    /// USD limit, count limit, or smallest-unit limit with `asset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<NumberText>,
    /// `"USD"` for USD limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Asset symbol for single-asset velocity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// Rolling window length in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 31_536_000)]
    pub time_window: Option<u64>,
    /// Dfns' alias of `timeWindow`, in minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 525_600)]
    pub timeframe: Option<u64>,
    /// Fixed UTC calendar window instead of a rolling one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<CalendarPeriod>,
    /// Whose spending is summed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<VelocityScope>,
    /// Per-asset limits of `TransactionAmountLimitNominal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assets: Option<Vec<NominalLimit>>,
    /// Allowed recipients of `TransactionRecipientWhitelist`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<String>>,
}

/// One asset's limit in smallest units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NominalLimit {
    /// Asset symbol.
    pub symbol: String,
    /// Limit in the asset's smallest unit.
    pub limit: NumberText,
}

/// Fixed UTC calendar windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum CalendarPeriod {
    /// From 00:00 UTC.
    Day,
    /// From Monday 00:00 UTC (ISO 8601).
    Week,
    /// From the first of the month, 00:00 UTC.
    Month,
}

/// Whose spending a velocity window sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub enum VelocityScope {
    /// Per wallet (default).
    #[default]
    Wallet,
    /// Per initiator.
    Initiator,
    /// Per recipient address.
    Recipient,
    /// One window for everything.
    Organization,
}

/// The action kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ActionKind {
    /// Refuse the activity.
    Block,
    /// Hold it for approvers.
    RequestApproval,
    /// Allow (meaningful in `first-match`).
    NoAction,
}

/// What a triggered policy does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    /// Which action.
    pub kind: ActionKind,
    /// Groups of approvers, each with its quorum (`RequestApproval`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approval_groups: Vec<ApprovalGroupSpec>,
    /// Seconds after which a pending approval expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 31_536_000)]
    pub auto_reject_timeout: Option<u64>,
}

/// A group of approvers and how many of them must approve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalGroupSpec {
    /// Group name.
    #[serde(default)]
    pub name: String,
    /// Approvals needed, at least 1.
    #[schema(minimum = 1)]
    pub quorum: u32,
    /// Who may approve; `{}` means any User (and any ServiceAccount when
    /// `serviceAccountsCanApprove`).
    #[serde(default)]
    pub approvers: Approvers,
    /// Whether the initiator counts as an approver of its own activity.
    #[serde(default)]
    pub initiator_can_approve: bool,
    /// Whether service accounts may approve in this group.
    #[serde(default)]
    pub service_accounts_can_approve: bool,
}

/// Approver selection; `{}` lists everyone. An unknown key is refused, as in
/// the filters: a misspelled `userId` ignored would open the group to every
/// User.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Approvers {
    /// Explicit list; absent means everyone eligible by kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<InList>,
}

/// `{"in": [...]}`
///
/// The filter types refuse a key they do not know: a misspelled filter
/// ignored would widen its policy to every activity, and under `first-match`
/// a `NoAction` policy widened so allows what later policies would stop.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InList {
    /// The accepted values.
    #[serde(rename = "in")]
    pub values: Vec<String>,
}

/// `{"hasAny": [...], "hasAll": [...]}` (unknown keys refused, see [`InList`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TagFilter {
    /// At least one of these tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_any: Option<Vec<String>>,
    /// Every one of these tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_all: Option<Vec<String>>,
}

/// Which activities a policy applies to; each present filter must hold.
/// Unknown filters are refused (see [`InList`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Filters {
    /// Wallet ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_id: Option<InList>,
    /// Wallet tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_tags: Option<TagFilter>,
    /// Initiator ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator_id: Option<InList>,
    /// Transaction types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_type: Option<InList>,
    /// Every outgoing asset's symbol must be listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_symbol: Option<InList>,
    /// Recipient addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<InList>,
    /// For `Policies:Modify`: the policies the change touches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<InList>,
}
