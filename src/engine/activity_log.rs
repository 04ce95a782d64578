//! The activity audit trail with retention. Every activity keeps in memory
//! what lists filter on (status, wallet, dates) and the journal position of
//! its record; recent and unresolved ones also keep the activity's JSON text,
//! older resolved ones are read back from the journal when asked for. Either
//! way an activity is parsed only when someone reads it, so a restart does not
//! parse the whole trail.

use chrono::{DateTime, Utc};
use warden_journal::Seq;

use crate::error::Error;
use crate::model::activity::{Activity, ActivityStatus};

use super::core::Core;
use super::facts::{EvaluatedActivity, Fact};
use super::store::Keyed;

/// An activity in the trail.
#[derive(Debug, Clone)]
pub(crate) struct ActivityEntry {
    id: String,
    /// The seq of its `ActivityEvaluated` record.
    seq: Seq,
    status: ActivityStatus,
    wallet_id: Option<String>,
    date_updated: DateTime<Utc>,
    /// The activity as evaluated, as JSON text; `None` once retired.
    /// `status` and `date_updated` above supersede the text's.
    json: Option<Box<str>>,
}

impl Keyed for ActivityEntry {
    fn key(&self) -> &str {
        &self.id
    }
}

impl ActivityEntry {
    /// An activity journaled at `seq`, kept whole.
    pub(crate) fn new(evaluated: EvaluatedActivity, seq: Seq) -> Self {
        ActivityEntry {
            id: evaluated.id,
            seq,
            status: evaluated.status,
            wallet_id: evaluated.wallet_id,
            date_updated: evaluated.date,
            json: Some(evaluated.json.into_boxed_str()),
        }
    }

    pub(crate) fn status(&self) -> ActivityStatus {
        self.status
    }

    pub(crate) fn wallet_id(&self) -> Option<&str> {
        self.wallet_id.as_deref()
    }

    /// Records a status change (an approval resolved).
    pub(crate) fn set_status(&mut self, status: ActivityStatus, date: DateTime<Utc>) {
        self.status = status;
        self.date_updated = date;
    }

    /// Retires a resolved activity last changed before `horizon`; returns
    /// whether it did.
    pub(crate) fn retire_if_older(&mut self, horizon: DateTime<Utc>) -> bool {
        if self.json.is_none() || self.status == ActivityStatus::PendingApproval || self.date_updated >= horizon {
            return false;
        }
        self.json = None;
        true
    }
}

impl Core {
    /// The whole activity of an entry, read from the journal when retired.
    pub(crate) fn load_activity(&self, entry: ActivityEntry) -> Result<Activity, Error> {
        let corrupt = |reason: String| Error::Journal(warden_journal::JournalError::Corrupt { seq: entry.seq, reason });
        let json = match entry.json {
            Some(json) => json,
            None => {
                let record = self.journal.read(entry.seq)?.ok_or_else(|| corrupt("record is missing".into()))?;
                match Fact::decode(&record.payload).map_err(|e| corrupt(e.to_string()))? {
                    Fact::ActivityEvaluated { activity, .. } if activity.id == entry.id => activity.json.into(),
                    _ => return Err(corrupt(format!("record is not the evaluation of activity `{}`", entry.id))),
                }
            }
        };
        let mut activity: Activity =
            serde_json::from_str(&json).map_err(|e| corrupt(format!("activity `{}` does not parse: {e}", entry.id)))?;
        activity.status = entry.status;
        activity.date_updated = entry.date_updated;
        Ok(activity)
    }

    /// Retires every resolved activity last changed before `horizon`.
    pub(crate) fn retire_activities(&self, horizon: DateTime<Utc>) -> usize {
        self.activities.update_all(|entry| entry.retire_if_older(horizon))
    }
}
