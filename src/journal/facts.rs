//! The records Warden journals: facts, never derived state. Recovery folds
//! them, in order, back into the engine's state.
//!
//! Encoding: one version byte, then the fact in bincode 2 (standard config).
//! The contract's own shapes (policies, activities, approvals, ...) accept
//! "string or number" money and optional fields, which a non-self-describing
//! format cannot read back, so they travel inside the fact as their canonical
//! JSON text ([`Json`]); the small, frequent facts are plain bincode.
//!
//! Activities are most of a journal, so their fact is laid out for recovery:
//! what the engine's tables need (ids, status, wallet, date) is plain bincode,
//! and the whole activity is JSON text that recovery keeps as it is and parses
//! only when someone reads the activity ([`EvaluatedActivity`]). Times in
//! frequent facts are integers ([`compact_time`]), not RFC 3339 text.
//!
//! Version 1 (the first build's format, with the activity parsed on every
//! restart) was never released; this build reads version 2 only.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize, Serializer};

use crate::model::activity::{Activity, ActivityStatus};
use crate::model::approval::{Approval, ApprovalStatus, Decision};
use crate::model::change_request::ChangeRequest;
use crate::model::policy::Policy;
use crate::model::signed_action::SignedAction;
use crate::model::webhook::{DeliveryStatus, Webhook, WebhookEvent};
use crate::policy::{Quantity, WindowKey};

/// Format version of every record written by this build.
pub const RECORD_VERSION: u8 = 2;

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
    #[serde(with = "compact_time")]
    pub at: DateTime<Utc>,
}

/// An activity as the engine answered it: the fields the engine's tables
/// index, and the whole activity as JSON text.
///
/// INVARIANT (one source): made only by [`EvaluatedActivity::of`], so the
/// indexed fields always agree with the text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluatedActivity {
    /// Activity id (shared: the activity table keeps it as its key).
    pub id: Arc<str>,
    /// The caller's idempotency key.
    pub external_id: Option<String>,
    /// The wallet, for lists filtered by wallet.
    pub wallet_id: Option<String>,
    /// The status it was answered with.
    pub status: ActivityStatus,
    /// When it was answered (its `dateCreated` and first `dateUpdated`).
    #[serde(with = "compact_time")]
    pub date: DateTime<Utc>,
    /// The activity, as JSON text.
    pub json: String,
}

impl EvaluatedActivity {
    /// The record of `activity`.
    pub fn of(activity: &Activity) -> Self {
        EvaluatedActivity {
            id: Arc::from(activity.id.as_str()),
            external_id: activity.activity.external_id.clone(),
            wallet_id: activity.activity.wallet.as_ref().map(|w| w.id.clone()),
            status: activity.status,
            date: activity.date_updated,
            json: activity_json(activity),
        }
    }
}

/// The JSON text of `activity`, as its record holds it.
pub(crate) fn activity_json(activity: &Activity) -> String {
    // Sized from the activity: a fixed guess either copied large texts as
    // they grew or, at 1 KB, made every activity a large allocation (glibc's
    // malloc then merges its free lists: a measurable part of `evaluate`).
    let mut text = String::with_capacity(crate::model::activity_json::capacity_for(activity));
    crate::model::activity_json::write(activity, &mut text);
    text
}

/// Times as whole seconds and nanoseconds since the epoch: every
/// `DateTime<Utc>` fits, and reading one back parses no text.
pub mod compact_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes `time`.
    pub fn serialize<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        (time.timestamp(), time.timestamp_subsec_nanos()).serialize(serializer)
    }

    /// Reads a time; one outside chrono's range is an error, not a panic.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
        let (secs, nanos) = <(i64, u32)>::deserialize(deserializer)?;
        DateTime::from_timestamp(secs, nanos)
            .ok_or_else(|| serde::de::Error::custom(format!("time {secs}.{nanos:09} is out of range")))
    }
}

/// A journaled fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Fact {
    /// A policy now reads so (create, update, archive).
    PolicyPut(Json<Box<Policy>>),
    /// An activity was evaluated (or a policy change recorded as one); when it
    /// was allowed, `counts` are what it added to windows.
    ActivityEvaluated {
        /// The activity as answered.
        activity: EvaluatedActivity,
        /// Its window counts.
        counts: Vec<Count>,
    },
    /// An approval was opened.
    ApprovalOpened(Json<Box<Approval>>),
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
        #[serde(with = "compact_time")]
        date: DateTime<Utc>,
        /// Window counts of an approved activity.
        counts: Vec<Count>,
    },
    /// A governed policy change is waiting for its approval.
    ChangeRequestOpened(Json<Box<ChangeRequest>>),
    /// A webhook was registered (its secret included: deliveries need it).
    WebhookPut(Json<Webhook>),
    /// A webhook was deleted.
    WebhookDeleted {
        /// The webhook.
        webhook_id: String,
    },
    /// An event was queued for a webhook (same commit as its cause).
    EventQueued(Json<WebhookEvent>),
    /// A delivery ended without a try (the event was dropped); in journals
    /// written before [`Fact::DeliveryTried`], also a try's outcome.
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
    /// Every delivery to a webhook failed for 24 hours: it is disabled, and
    /// its undelivered events are `Failed` (one record, whatever the backlog).
    WebhookDisabled {
        /// The webhook.
        webhook_id: String,
        /// Why, for a person.
        reason: String,
        /// When.
        #[serde(with = "compact_time")]
        date: DateTime<Utc>,
    },
    /// A person's signed user action: it authorized the change whose facts
    /// follow it in the same commit. Nothing in memory derives from it; it
    /// is the evidence `warden audit verify` checks. (A signed decision
    /// carries its assertion inside `DecisionRecorded` instead.)
    UserActionSigned(Json<SignedAction>),
    /// A try of an event ended: `DeliveryRecorded` and when the try was sent
    /// (its `timestampSent`). The last variant, so that journals written
    /// before it still read.
    DeliveryTried {
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
        /// When this try's request was sent.
        #[serde(with = "compact_time")]
        sent_at: DateTime<Utc>,
    },
}

impl Fact {
    /// Takes out the window counts the fact carries (none for most facts).
    pub fn take_counts(&mut self) -> Vec<Count> {
        match self {
            Fact::ActivityEvaluated { counts, .. } | Fact::ApprovalResolved { counts, .. } => std::mem::take(counts),
            _ => Vec::new(),
        }
    }
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
        let mut bytes = Vec::with_capacity(self.encoded_size_hint());
        bytes.push(RECORD_VERSION);
        // INVARIANT (encodable facts): every fact is plain data and strings;
        // serialization into a Vec cannot fail.
        bincode::serde::encode_into_std_write(self, &mut bytes, config()).expect("facts always encode");
        bytes
    }

    /// About the size of the record: the text it carries and room for the
    /// rest, so that encoding does not copy the record as it grows.
    fn encoded_size_hint(&self) -> usize {
        const FIELDS: usize = 256;
        FIELDS
            + match self {
                Fact::ActivityEvaluated { activity, counts } => activity.json.len() + counts.len() * 128,
                _ => 0,
            }
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::model::activity::{ActivityRequest, Initiator, Wallet};
    use crate::model::policy::ActivityKind;

    fn activity() -> Activity {
        let at = Utc.timestamp_opt(1_790_000_000, 123_456_789).unwrap();
        Activity {
            id: "ac-1".into(),
            status: ActivityStatus::Allowed,
            approval_id: None,
            policy_evaluations: Vec::new(),
            activity: ActivityRequest {
                kind: ActivityKind::WalletsSign,
                initiator: Some(Initiator { id: "us-1".into(), kind: Default::default() }),
                wallet: Some(Wallet { id: "wa-1".into(), tags: vec!["hot".into()] }),
                transaction: None,
                external_id: Some("order-7".into()),
                policy_id: None,
                operation_kind: None,
            },
            date_created: at,
            date_updated: at,
        }
    }

    #[test]
    fn an_evaluated_activity_reads_back_as_written() {
        let original = activity();
        let fact = Fact::ActivityEvaluated { activity: EvaluatedActivity::of(&original), counts: Vec::new() };
        let Fact::ActivityEvaluated { activity: read, .. } = Fact::decode(&fact.encode()).unwrap() else {
            panic!("another fact came back");
        };
        assert_eq!(&*read.id, "ac-1");
        assert_eq!(read.external_id.as_deref(), Some("order-7"));
        assert_eq!(read.wallet_id.as_deref(), Some("wa-1"));
        assert_eq!(read.date, original.date_updated);
        assert_eq!(serde_json::from_str::<Activity>(&read.json).unwrap(), original);
    }

    #[test]
    fn a_record_of_another_version_is_refused() {
        let mut bytes = Fact::WebhookDeleted { webhook_id: "wh-1".into() }.encode();
        bytes[0] = 1;
        assert!(matches!(Fact::decode(&bytes), Err(DecodeError::Version(1))));
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Stamp(#[serde(with = "compact_time")] DateTime<Utc>);

    #[test]
    fn compact_times_keep_nanoseconds_and_refuse_impossible_ones() {
        let at = Utc.timestamp_opt(-5, 999_999_999).unwrap();
        let bytes = bincode::serde::encode_to_vec(Stamp(at), config()).unwrap();
        let (Stamp(read), _) = bincode::serde::decode_from_slice::<Stamp, _>(&bytes, config()).unwrap();
        assert_eq!(read, at);

        let impossible = bincode::serde::encode_to_vec((i64::MAX, 0u32), config()).unwrap();
        let error = bincode::serde::decode_from_slice::<Stamp, _>(&impossible, config()).unwrap_err();
        assert!(error.to_string().contains("out of range"), "{error}");
    }
}
