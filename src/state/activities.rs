//! The activity audit trail. The journal holds every activity; memory keeps,
//! per activity, only what lists filter on (status, wallet), its last change,
//! and the position of its record. An activity is read from its record when
//! someone asks for it, so the trail can grow for years, and a restart neither
//! parses nor keeps the activities it folds.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use warden_journal::Seq;

use crate::error::Error;
use crate::journal::facts::{EvaluatedActivity, Fact};
use crate::journal::replay::{read_fact, unexpected};
use crate::model::activity::{Activity, ActivityStatus};

use super::store::Keyed;

/// An activity in the trail.
#[derive(Debug, Clone)]
pub(crate) struct ActivityEntry {
    /// Shared with the table's key: millions of entries keep each id once.
    id: Arc<str>,
    /// The seq of its `ActivityEvaluated` record.
    seq: Seq,
    /// Supersedes the record's (an approval resolved since).
    status: ActivityStatus,
    wallet_id: Option<String>,
    /// Supersedes the record's, with `status`.
    date_updated: DateTime<Utc>,
}

impl Keyed for ActivityEntry {
    fn key(&self) -> &str {
        &self.id
    }

    fn shared_key(&self) -> Arc<str> {
        self.id.clone()
    }
}

impl ActivityEntry {
    /// The entry of an activity journaled at `seq`.
    pub(crate) fn new(evaluated: EvaluatedActivity, seq: Seq) -> Self {
        ActivityEntry {
            id: evaluated.id,
            seq,
            status: evaluated.status,
            wallet_id: evaluated.wallet_id,
            date_updated: evaluated.date,
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
}

impl ActivityEntry {
    /// The whole activity, read from its journal record.
    pub(crate) fn load(self, journal: &dyn warden_journal::Journal) -> Result<Activity, Error> {
        let json = match read_fact(journal, self.seq)? {
            Fact::ActivityEvaluated { activity, .. } if activity.id == self.id => activity.json,
            _ => return Err(unexpected(self.seq, format!("record is not the evaluation of activity `{}`", self.id))),
        };
        let mut activity: Activity = serde_json::from_str(&json)
            .map_err(|e| unexpected(self.seq, format!("activity `{}` does not parse: {e}", self.id)))?;
        activity.status = self.status;
        activity.date_updated = self.date_updated;
        Ok(activity)
    }
}
