//! The metrics every activity moves, kept as handles once Warden's own
//! recorder is the process's.
//!
//! A `metrics::counter!` call looks its series up in the recorder each time:
//! with the Prometheus recorder, a hash of the name and labels and a read of
//! a sharded map, a few hundred nanoseconds, several times per activity.
//! The global recorder can be set only once per process, so once
//! `http::metrics::install` has made Warden's the global one, the series of
//! the hot path are looked up once and kept here for good (a thread-local
//! recorder set later, `metrics::with_local_recorder`, no longer sees them).
//! Until then, and in a process whose global recorder is someone else's,
//! each call goes through the facade as before, to whatever recorder is
//! current.
//!
//! The names are written out in each macro call: the macros make their key
//! a `static` only from literals (a name in a `const` is hashed anew at
//! every call).

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram};

use crate::model::activity::ActivityStatus;

/// The hot path's series in one recorder.
pub(crate) struct Handles {
    /// By status, in the order of [`ActivityStatus::ALL`].
    activities: [Counter; ActivityStatus::ALL.len()],
    evaluation: Histogram,
    approvals_pending: Gauge,
    commit: Histogram,
    records: Counter,
}

static HANDLES: OnceLock<Handles> = OnceLock::new();

/// The hot path's series, looked up in `recorder` (whatever recorder the
/// calling thread has otherwise).
pub(crate) fn handles_in(recorder: &dyn metrics::Recorder) -> Handles {
    metrics::with_local_recorder(recorder, || Handles {
        activities: ActivityStatus::ALL
            .map(|status| metrics::counter!("warden_activities_total", "status" => status.as_str())),
        evaluation: metrics::histogram!("warden_evaluation_duration_seconds"),
        approvals_pending: metrics::gauge!("warden_approvals_pending"),
        commit: metrics::histogram!("warden_journal_commit_duration_seconds"),
        records: metrics::counter!("warden_journal_records_total"),
    })
}

/// Keeps `handles` for the rest of the process: their recorder has just
/// become the global one, which it stays.
pub(crate) fn keep(handles: Handles) {
    let _ = HANDLES.set(handles);
}

/// Counts one activity that reached `status`.
pub(crate) fn activity_reached(status: ActivityStatus) {
    match HANDLES.get() {
        Some(handles) => handles.activities[status_index(status)].increment(1),
        None => metrics::counter!("warden_activities_total", "status" => status.as_str()).increment(1),
    }
}

/// Records the seconds one evaluation took.
pub(crate) fn evaluation_took(seconds: f64) {
    match HANDLES.get() {
        Some(handles) => handles.evaluation.record(seconds),
        None => metrics::histogram!("warden_evaluation_duration_seconds").record(seconds),
    }
}

/// Sets the number of approvals waiting for decisions.
pub(crate) fn approvals_pending(count: usize) {
    match HANDLES.get() {
        Some(handles) => handles.approvals_pending.set(count as f64),
        None => metrics::gauge!("warden_approvals_pending").set(count as f64),
    }
}

/// Records the seconds one journal commit took, and its records if it
/// succeeded (`None`: it failed).
pub(crate) fn journal_commit_took(seconds: f64, records: Option<u64>) {
    match HANDLES.get() {
        Some(handles) => {
            handles.commit.record(seconds);
            if let Some(records) = records {
                handles.records.increment(records);
            }
        }
        None => {
            metrics::histogram!("warden_journal_commit_duration_seconds").record(seconds);
            if let Some(records) = records {
                metrics::counter!("warden_journal_records_total").increment(records);
            }
        }
    }
}

fn status_index(status: ActivityStatus) -> usize {
    // The declaration order, which `ALL` follows (tested below).
    status as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_has_its_own_series() {
        for (i, status) in ActivityStatus::ALL.into_iter().enumerate() {
            assert_eq!(status_index(status), i, "{status:?}");
        }
    }
}
