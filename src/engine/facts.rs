//! The records Warden journals: facts, never derived state. Recovery folds
//! them, in order, back into the engine's state.
//!
//! Encoding: one version byte, then the fact in bincode 2 (standard config).
//! The contract's own shapes (policies, activities, approvals, ...) accept
//! "string or number" money and optional fields, which a non-self-describing
//! format cannot read back, so they travel inside the fact as their canonical
//! JSON text ([`Json`]); the small, frequent facts are plain bincode.

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize, Serializer};

use crate::model::activity::Activity;
use crate::model::approval::{Approval, ApprovalStatus, Decision};
use crate::model::change_request::ChangeRequest;
use crate::model::policy::Policy;
use crate::model::webhook::{DeliveryStatus, Webhook, WebhookEvent};
use crate::policy::{Quantity, WindowKey};

/// Format version of every record written by this build.
pub const RECORD_VERSION: u8 = 1;

/// A contract type carried as its JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct Json<T>(pub T);

impl<T: Serialize> Serialize for Json<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(&self.0).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Json<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        serde_json::from_str(&text).map(Json).map_err(serde::de::Error::custom)
    }
}

/// One count of an activity into one velocity window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Count {
    /// The activity counted.
    pub activity_id: String,
    /// The window.
    pub window: WindowKey,
    /// What was added; `None` for an unpriced activity in a USD window.
    pub quantity: Option<Quantity>,
    /// When it counts from.
    pub at: DateTime<Utc>,
}

/// A journaled fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Fact {
    /// A policy now reads so (create, update, archive).
    PolicyPut(Json<Policy>),
    /// An activity was evaluated (or a policy change recorded as one); when it
    /// was allowed, `counts` are what it added to windows.
    ActivityEvaluated {
        /// The activity as answered.
        activity: Json<Activity>,
        /// Its window counts.
        counts: Vec<Count>,
    },
    /// An approval was opened.
    ApprovalOpened(Json<Approval>),
    /// A decision was taken on an approval.
    DecisionRecorded {
        /// The approval.
        approval_id: String,
        /// The decision.
        decision: Json<Decision>,
    },
    /// An approval resolved; its activity takes the matching status, its
    /// change request is applied or rejected, and `counts` are what an approved
    /// activity added to windows.
    ApprovalResolved {
        /// The approval.
        approval_id: String,
        /// `Approved`, `Denied` or `Expired`.
        status: ApprovalStatus,
        /// When.
        date: DateTime<Utc>,
        /// Window counts of an approved activity.
        counts: Vec<Count>,
    },
    /// A governed policy change is waiting for its approval.
    ChangeRequestOpened(Json<ChangeRequest>),
    /// A webhook was registered (its secret included: deliveries need it).
    WebhookPut(Json<Webhook>),
    /// A webhook was deleted.
    WebhookDeleted {
        /// The webhook.
        webhook_id: String,
    },
    /// An event was queued for a webhook (same commit as its cause).
    EventQueued(Json<WebhookEvent>),
    /// A delivery attempt ended.
    DeliveryRecorded {
        /// The event.
        event_id: String,
        /// Its new status.
        status: DeliveryStatus,
        /// Tries so far.
        attempts: u32,
        /// The last error.
        last_error: Option<String>,
        /// When to try again.
        next_attempt: Option<DateTime<Utc>>,
    },
}

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Written by an unknown format version.
    #[error("record version {0} is not supported by this build (expected {RECORD_VERSION})")]
    Version(u8),
    /// Empty record.
    #[error("record is empty")]
    Empty,
    /// Not a fact.
    #[error("record does not decode: {0}")]
    Format(String),
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

impl Fact {
    /// The record bytes of this fact.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = vec![RECORD_VERSION];
        // INVARIANT (encodable facts): every fact is plain data and strings;
        // serialization into a Vec cannot fail.
        bincode::serde::encode_into_std_write(self, &mut bytes, config()).expect("facts always encode");
        bytes
    }

    /// Reads a fact from record bytes.
    pub fn decode(bytes: &[u8]) -> Result<Fact, DecodeError> {
        let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
        if version != RECORD_VERSION {
            return Err(DecodeError::Version(version));
        }
        let (fact, read) =
            bincode::serde::decode_from_slice(body, config()).map_err(|e| DecodeError::Format(e.to_string()))?;
        if read != body.len() {
            return Err(DecodeError::Format(format!("{} trailing bytes", body.len() - read)));
        }
        Ok(fact)
    }
}
