//! Activities: what a signer (or a policy change) asks about, and how it ended.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::amount::NumberText;
use super::policy::ActivityKind;
use super::principal::PrincipalKind;

/// Who started an activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Initiator {
    /// Principal id.
    pub id: String,
    /// `User` or `ServiceAccount`.
    #[serde(default)]
    pub kind: PrincipalKind,
}

/// The wallet the signature is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Wallet {
    /// Wallet id.
    pub id: String,
    /// Wallet tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// The transaction types of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum TransactionType {
    /// A transfer of assets.
    Transfer,
    /// A smart contract call.
    ContractCall,
    /// A token allowance.
    Allowance,
    /// A message signature.
    MessageSignature,
    /// An opaque signature.
    BlackBoxSignature,
}

impl TransactionType {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionType::Transfer => "Transfer",
            TransactionType::ContractCall => "ContractCall",
            TransactionType::Allowance => "Allowance",
            TransactionType::MessageSignature => "MessageSignature",
            TransactionType::BlackBoxSignature => "BlackBoxSignature",
        }
    }
}

/// One outgoing asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Asset {
    /// Asset symbol, e.g. `ETH`.
    pub symbol: String,
    /// Decimals of the smallest unit.
    #[schema(maximum = 77)]
    pub decimals: u8,
    /// Amount in the smallest unit, as an integer string.
    pub amount: NumberText,
    /// USD value of the amount, when the caller knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_usd: Option<NumberText>,
}

/// The transaction to be signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    /// Transaction type.
    #[serde(rename = "type")]
    pub kind: TransactionType,
    /// Network name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Recipient address; absent for messages and black-box signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// Outgoing assets.
    #[serde(default)]
    pub assets: Vec<Asset>,
}

/// How a policy change touches its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum OperationKind {
    /// A new policy.
    Create,
    /// A full replacement.
    Update,
    /// An archive.
    Delete,
}

impl OperationKind {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Create => "Create",
            OperationKind::Update => "Update",
            OperationKind::Delete => "Delete",
        }
    }
}

/// The body of an activity, as submitted and as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "kind": "Wallets:Sign",
    "initiator": {"id": "us-bob", "kind": "User"},
    "wallet": {"id": "wa-1", "tags": ["treasury"]},
    "transaction": {"type": "Transfer", "network": "Ethereum", "recipient": "0x76d1b7f9b3F69C435eeF76a98A415332084A856F",
        "assets": [{"symbol": "ETH", "decimals": 18, "amount": "1500000000000000000", "valueUsd": "4500.00"}]}
}))]
pub struct ActivityRequest {
    /// `Wallets:Sign` (policy changes make their own `Policies:Modify`).
    pub kind: ActivityKind,
    /// Who started it; defaults to the caller over HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator: Option<Initiator>,
    /// The wallet (`Wallets:Sign`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet: Option<Wallet>,
    /// The transaction (`Wallets:Sign`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<Transaction>,
    /// The caller's idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The policy a `Policies:Modify` activity touches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
    /// What a `Policies:Modify` activity does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_kind: Option<OperationKind>,
}

/// Where an activity stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ActivityStatus {
    /// No policy stands in the way: the signer may sign.
    Allowed,
    /// A policy blocks it.
    Blocked,
    /// Waiting for approvers.
    PendingApproval,
    /// Approvers approved it: the signer may sign.
    Approved,
    /// An approver denied it.
    Denied,
    /// Nobody decided in time.
    Expired,
}

impl ActivityStatus {
    /// The contract's name (also the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityStatus::Allowed => "Allowed",
            ActivityStatus::Blocked => "Blocked",
            ActivityStatus::PendingApproval => "PendingApproval",
            ActivityStatus::Approved => "Approved",
            ActivityStatus::Denied => "Denied",
            ActivityStatus::Expired => "Expired",
        }
    }

    /// Every status, for metrics exported from start.
    pub const ALL: [ActivityStatus; 6] = [
        ActivityStatus::Allowed,
        ActivityStatus::Blocked,
        ActivityStatus::PendingApproval,
        ActivityStatus::Approved,
        ActivityStatus::Denied,
        ActivityStatus::Expired,
    ];
}

/// The result of one policy's evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyEvaluation {
    /// The policy.
    pub policy_id: String,
    /// Its name.
    pub name: String,
    /// Whether its rule triggered.
    pub triggered: bool,
    /// Why, for a person.
    pub reason: String,
}

/// A stored activity: the answer to the signer and the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    /// `ac-...`
    pub id: String,
    /// Current status.
    pub status: ActivityStatus,
    /// The approval, when one was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// The policies that triggered, with their reasons.
    pub policy_evaluations: Vec<PolicyEvaluation>,
    /// The request as stored.
    pub activity: ActivityRequest,
    /// When it was evaluated.
    #[serde(serialize_with = "super::rfc3339::serialize")]
    pub date_created: DateTime<Utc>,
    /// When its status last changed.
    #[serde(serialize_with = "super::rfc3339::serialize")]
    pub date_updated: DateTime<Utc>,
}
