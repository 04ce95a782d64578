//! The approvals table. A pending approval is kept hollow, in this one place
//! (its actor holds only its id): what decisions change and what deciding
//! reads (status, groups, decisions, dates, deadline), without the activity
//! request and the policy evaluations, which are in its `ApprovalOpened`
//! record and are read back when the whole approval is asked for (a read, a
//! resolution). Once resolved it shrinks further to an index entry (status,
//! initiator, groups for the eligibility filter, and the seqs of its records)
//! and is read back from the journal whole, as activities are. Deadlines of
//! pending approvals are kept in their own ordered index, so finding the due
//! ones costs nothing while none is due.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use warden_journal::{Journal, Seq};

use crate::error::Error;
use crate::journal::facts::{Fact, Json};
use crate::journal::replay::{read_fact, unexpected};
use crate::model::activity::ActivityRequest;
use crate::model::approval::{Approval, ApprovalGroup, ApprovalStatus, Decision, DecisionValue};
use crate::model::principal::PrincipalKind;
use crate::workflow;

use super::store::{Keyed, Page, PageRequest, Store};

/// One approval in the table.
#[derive(Debug, Clone)]
pub(crate) struct ApprovalEntry {
    id: String,
    status: ApprovalStatus,
    initiator_id: String,
    /// The records that make it, in order: opened, decisions, resolution.
    seqs: Vec<Seq>,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    /// The approval hollowed by [`hollow`], while decisions may still change it.
    Pending(Box<Approval>),
    /// Only what the approver filter needs; the rest is in the journal.
    Resolved { groups: Box<[ApprovalGroup]> },
}

impl Keyed for ApprovalEntry {
    fn key(&self) -> &str {
        &self.id
    }
}

impl ApprovalEntry {
    fn eligible(&self, who: &str, kind: PrincipalKind) -> bool {
        match &self.body {
            Body::Pending(approval) => workflow::is_eligible(approval, who, kind, DecisionValue::Approved),
            Body::Resolved { groups } => {
                groups.iter().any(|g| workflow::may_approve_in(g, &self.initiator_id, who, kind))
            }
        }
    }
}

/// Filters of an approval list, as the table sees them.
pub(crate) struct ApprovalQuery<'a> {
    pub(crate) status: Option<ApprovalStatus>,
    pub(crate) initiator_id: Option<&'a str>,
    /// The principal and its kind.
    pub(crate) approver: Option<(&'a str, PrincipalKind)>,
}

/// Pending approvals, the index of resolved ones, and the deadlines.
#[derive(Debug, Default)]
pub(crate) struct Approvals {
    entries: Store<ApprovalEntry>,
    deadlines: Mutex<BTreeSet<(DateTime<Utc>, String)>>,
    pending: AtomicUsize,
}

impl Approvals {
    /// Fold: an approval was opened (journaled at `seq`).
    pub(crate) fn open(&self, mut approval: Approval, seq: Seq) {
        hollow(&mut approval);
        if let (ApprovalStatus::Pending, Some(deadline)) = (approval.status, approval.expiration_date) {
            self.deadlines().insert((deadline, approval.id.clone()));
        }
        if approval.status == ApprovalStatus::Pending {
            self.pending.fetch_add(1, Ordering::Relaxed);
        }
        self.entries.put(ApprovalEntry {
            id: approval.id.clone(),
            status: approval.status,
            initiator_id: approval.initiator_id.clone(),
            seqs: vec![seq],
            body: Body::Pending(Box::new(approval)),
        });
    }

    /// Fold: a decision was recorded.
    pub(crate) fn decide(&self, id: &str, decision: Decision, seq: Seq) {
        self.entries.update(id, |entry| {
            entry.seqs.push(seq);
            if let Body::Pending(approval) = &mut entry.body {
                workflow::apply_decision(approval, decision);
            }
        });
    }

    /// Fold: the approval resolved; it leaves memory but for its index entry.
    /// Answers the resolved approval (for what follows from it), `None` when
    /// unknown or already resolved.
    pub(crate) fn resolve(&self, id: &str, status: ApprovalStatus, date: DateTime<Utc>, seq: Seq) -> Option<Approval> {
        let resolved = self.entries.update(id, |entry| {
            entry.seqs.push(seq);
            match std::mem::replace(&mut entry.body, Body::Resolved { groups: Box::default() }) {
                Body::Pending(mut approval) => {
                    workflow::resolve(&mut approval, status, date);
                    entry.status = status;
                    entry.body = Body::Resolved { groups: approval.approval_groups.clone().into_boxed_slice() };
                    Some(*approval)
                }
                // INVARIANT (resolves once): a second resolution changes nothing.
                resolved => {
                    entry.body = resolved;
                    None
                }
            }
        })??;
        self.pending.fetch_sub(1, Ordering::Relaxed);
        if let Some(deadline) = resolved.expiration_date {
            self.deadlines().remove(&(deadline, resolved.id.clone()));
        }
        Some(resolved)
    }

    /// A pending approval as it stands now, hollow: what deciding reads
    /// ([`Approvals::fill`] makes it whole).
    pub(crate) fn pending(&self, id: &str) -> Option<Approval> {
        self.entries.read(id, |entry| match &entry.body {
            Body::Pending(approval) => Some((**approval).clone()),
            Body::Resolved { .. } => None,
        })?
    }

    /// Whether `id` is pending.
    pub(crate) fn is_pending(&self, id: &str) -> bool {
        self.entries.read(id, |entry| matches!(entry.body, Body::Pending(_))).unwrap_or(false)
    }

    /// Whether `id` is known.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.entries.read(id, |_| ()).is_some()
    }

    /// How many are pending.
    pub(crate) fn pending_count(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Pending approvals whose deadline is at or before `now`, earliest first.
    pub(crate) fn due(&self, now: DateTime<Utc>) -> Vec<String> {
        self.deadlines().iter().take_while(|(at, _)| *at <= now).map(|(_, id)| id.clone()).collect()
    }

    /// One approval; a resolved one is read from the journal.
    pub(crate) fn get(&self, id: &str, journal: &dyn Journal) -> Result<Option<Approval>, Error> {
        let Some(entry) = self.entries.get(id) else { return Ok(None) };
        load(entry, journal).map(Some)
    }

    /// Makes a hollow approval whole again: its activity request and policy
    /// evaluations, read from its `ApprovalOpened` record (blocking).
    pub(crate) fn fill(&self, approval: &mut Approval, journal: &dyn Journal) -> Result<(), Error> {
        let Some(opened_at) = self.entries.read(&approval.id, |e| e.seqs.first().copied()).flatten() else {
            return Err(Error::not_found("approval", &approval.id));
        };
        fill_from(approval, opened_at, journal)
    }

    /// The approval as its records make it, read from the journal (a crashed
    /// actor's approval is put back this way).
    pub(crate) fn reload(&self, id: &str, journal: &dyn Journal) -> Result<(), Error> {
        let Some(seqs) = self.entries.read(id, |e| e.seqs.clone()) else { return Ok(()) };
        let mut approval = replay(id, &seqs, journal)?;
        hollow(&mut approval);
        self.entries.update(id, |entry| {
            if let Body::Pending(pending) = &mut entry.body {
                **pending = approval;
            }
        });
        Ok(())
    }

    /// A page of approvals in creation order.
    pub(crate) fn page(
        &self,
        query: &ApprovalQuery<'_>,
        request: &PageRequest,
        journal: &dyn Journal,
    ) -> Result<Page<Approval>, Error> {
        let scope = format!(
            "approvals|{:?}|{}|{}",
            query.status,
            query.initiator_id.unwrap_or_default(),
            query.approver.map(|(who, _)| who).unwrap_or_default()
        );
        self.entries.page(
            request,
            &scope,
            |e| {
                query.status.is_none_or(|s| e.status == s)
                    && query.initiator_id.is_none_or(|i| e.initiator_id == i)
                    && query.approver.is_none_or(|(who, kind)| e.eligible(who, kind))
            },
            |e| load(e, journal),
        )
    }

    fn deadlines(&self) -> std::sync::MutexGuard<'_, BTreeSet<(DateTime<Utc>, String)>> {
        self.deadlines.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn load(entry: ApprovalEntry, journal: &dyn Journal) -> Result<Approval, Error> {
    match entry.body {
        Body::Pending(mut approval) => {
            let opened_at = entry.seqs.first().copied().ok_or_else(|| Error::not_found("approval", &entry.id))?;
            fill_from(&mut approval, opened_at, journal)?;
            Ok(*approval)
        }
        Body::Resolved { .. } => replay(&entry.id, &entry.seqs, journal),
    }
}

/// Empties what a pending approval need not keep in memory: its activity
/// request (but for its kind) and its policy evaluations, both in its
/// `ApprovalOpened` record. Deciding reads neither; a read or a resolution
/// fills them back ([`fill_from`]).
fn hollow(approval: &mut Approval) {
    let kind = approval.activity.request.kind;
    approval.activity.request = ActivityRequest {
        kind,
        initiator: None,
        wallet: None,
        transaction: None,
        external_id: None,
        policy_id: None,
        operation_kind: None,
    };
    approval.policy_evaluations = Vec::new();
}

/// Puts back what [`hollow`] emptied, from the approval's opening record at `seq`.
fn fill_from(approval: &mut Approval, seq: Seq, journal: &dyn Journal) -> Result<(), Error> {
    match read_fact(journal, seq)? {
        Fact::ApprovalOpened(Json(opened)) if opened.id == approval.id => {
            approval.activity.request = opened.activity.request;
            approval.policy_evaluations = opened.policy_evaluations;
            Ok(())
        }
        _ => Err(unexpected(seq, format!("record is not the opening of approval `{}`", approval.id))),
    }
}

/// Folds an approval's own records, read one by one, with the same workflow
/// functions the table's fold uses.
fn replay(id: &str, seqs: &[Seq], journal: &dyn Journal) -> Result<Approval, Error> {
    let mut approval: Option<Approval> = None;
    for &seq in seqs {
        match (read_fact(journal, seq)?, approval.as_mut()) {
            (Fact::ApprovalOpened(Json(opened)), None) if opened.id == id => approval = Some(*opened),
            (Fact::DecisionRecorded { approval_id, decision: Json(decision) }, Some(a)) if approval_id == id => {
                workflow::apply_decision(a, decision);
            }
            (Fact::ApprovalResolved { approval_id, status, date, .. }, Some(a)) if approval_id == id => {
                workflow::resolve(a, status, date);
            }
            _ => return Err(unexpected(seq, format!("record is not one of approval `{id}`"))),
        }
    }
    approval.ok_or_else(|| Error::not_found("approval", id))
}
