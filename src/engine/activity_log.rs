//! The activity audit trail with retention: recent and unresolved activities
//! are kept whole in memory; older resolved ones keep only what lists filter
//! on (status, wallet, dates) and the journal position of their record, and
//! are read back from the journal when asked for.

use chrono::{DateTime, Utc};
use warden_journal::Seq;

use crate::error::Error;
use crate::model::activity::{Activity, ActivityStatus};

use super::core::Core;
use super::facts::{Fact, Json};
use super::store::Keyed;

/// An activity in the trail.
#[derive(Debug, Clone)]
pub(crate) enum ActivityEntry {
    /// Kept whole.
    Hot {
        /// The activity.
        activity: Box<Activity>,
        /// The seq of its `ActivityEvaluated` record.
        seq: Seq,
    },
    /// Kept as a reference into the journal.
    Cold(ColdActivity),
}

/// What stays in memory of a retired activity.
#[derive(Debug, Clone)]
pub(crate) struct ColdActivity {
    id: String,
    seq: Seq,
    status: ActivityStatus,
    wallet_id: Option<String>,
    date_updated: DateTime<Utc>,
}

impl Keyed for ActivityEntry {
    fn key(&self) -> &str {
        match self {
            ActivityEntry::Hot { activity, .. } => &activity.id,
            ActivityEntry::Cold(cold) => &cold.id,
        }
    }
}

impl ActivityEntry {
    /// A whole activity journaled at `seq`.
    pub(crate) fn hot(activity: Activity, seq: Seq) -> Self {
        ActivityEntry::Hot { activity: Box::new(activity), seq }
    }

    pub(crate) fn status(&self) -> ActivityStatus {
        match self {
            ActivityEntry::Hot { activity, .. } => activity.status,
            ActivityEntry::Cold(cold) => cold.status,
        }
    }

    pub(crate) fn wallet_id(&self) -> Option<&str> {
        match self {
            ActivityEntry::Hot { activity, .. } => activity.activity.wallet.as_ref().map(|w| w.id.as_str()),
            ActivityEntry::Cold(cold) => cold.wallet_id.as_deref(),
        }
    }

    /// Records a status change (an approval resolved).
    pub(crate) fn set_status(&mut self, status: ActivityStatus, date: DateTime<Utc>) {
        match self {
            ActivityEntry::Hot { activity, .. } => {
                activity.status = status;
                activity.date_updated = date;
            }
            ActivityEntry::Cold(cold) => {
                cold.status = status;
                cold.date_updated = date;
            }
        }
    }

    /// Retires a resolved activity last changed before `horizon`; returns
    /// whether it did.
    pub(crate) fn retire_if_older(&mut self, horizon: DateTime<Utc>) -> bool {
        let ActivityEntry::Hot { activity, seq } = self else { return false };
        if activity.status == ActivityStatus::PendingApproval || activity.date_updated >= horizon {
            return false;
        }
        *self = ActivityEntry::Cold(ColdActivity {
            id: activity.id.clone(),
            seq: *seq,
            status: activity.status,
            wallet_id: activity.activity.wallet.as_ref().map(|w| w.id.clone()),
            date_updated: activity.date_updated,
        });
        true
    }
}

impl Core {
    /// The whole activity of an entry, read from the journal when retired.
    pub(crate) fn load_activity(&self, entry: ActivityEntry) -> Result<Activity, Error> {
        let cold = match entry {
            ActivityEntry::Hot { activity, .. } => return Ok(*activity),
            ActivityEntry::Cold(cold) => cold,
        };
        let corrupt = |reason: String| Error::Journal(warden_journal::JournalError::Corrupt { seq: cold.seq, reason });
        let record = self.journal.read(cold.seq)?.ok_or_else(|| corrupt("record is missing".into()))?;
        match Fact::decode(&record.payload).map_err(|e| corrupt(e.to_string()))? {
            Fact::ActivityEvaluated { activity: Json(mut activity), .. } if activity.id == cold.id => {
                activity.status = cold.status;
                activity.date_updated = cold.date_updated;
                Ok(activity)
            }
            _ => Err(corrupt(format!("record is not the evaluation of activity `{}`", cold.id))),
        }
    }

    /// Retires every resolved activity last changed before `horizon`.
    pub(crate) fn retire_activities(&self, horizon: DateTime<Utc>) -> usize {
        self.activities.update_all(|entry| entry.retire_if_older(horizon))
    }
}
