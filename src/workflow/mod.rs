//! The workflow layer, pure (no actix, no tokio, no I/O): the approval state
//! machine (who may decide, what a decision does), how an approval is opened
//! from a verdict, and what a policy change becomes. The approval actor
//! decides with it and the state fold replays with it, so a replayed journal
//! ends in exactly the state the live engine answered.

mod governance;
mod open;

pub use governance::PolicyOperation;
pub(crate) use governance::{changed_policy, check_lockout};
pub(crate) use open::open_approval;

use chrono::{DateTime, Utc};

use crate::error::{Conflict, Error, Forbidden};
use crate::model::approval::{Approval, ApprovalGroup, ApprovalStatus, Decision, DecisionValue};
use crate::model::policy::Approvers;
use crate::model::principal::PrincipalKind;

/// Whether `who` may approve in `group` of an approval started by `initiator`.
pub fn may_approve_in(group: &ApprovalGroup, initiator: &str, who: &str, kind: PrincipalKind) -> bool {
    may_approve(&group.approvers, group.service_accounts_can_approve, group.initiator_can_approve, initiator, who, kind)
}

/// The eligibility rule itself: listed (`approvers: {}` lists any User, and
/// any ServiceAccount where service accounts may approve); a ServiceAccount
/// only with `serviceAccountsCanApprove`; the initiator only with
/// `initiatorCanApprove`.
pub fn may_approve(
    approvers: &Approvers,
    service_accounts_can_approve: bool,
    initiator_can_approve: bool,
    initiator: &str,
    who: &str,
    kind: PrincipalKind,
) -> bool {
    let listed = match &approvers.user_id {
        Some(list) => list.values.iter().any(|id| id == who),
        None => true,
    };
    let kind_ok = kind == PrincipalKind::User || service_accounts_can_approve;
    let initiator_ok = who != initiator || initiator_can_approve;
    listed && kind_ok && initiator_ok
}

/// Whether `who` may decide `value` on `approval` (status aside).
pub fn is_eligible(approval: &Approval, who: &str, kind: PrincipalKind, value: DecisionValue) -> bool {
    // The initiator may always deny (cancel) its own activity.
    if value == DecisionValue::Denied && who == approval.initiator_id {
        return true;
    }
    approval.approval_groups.iter().any(|g| may_approve_in(g, &approval.initiator_id, who, kind))
}

/// Checks a decision in the contract's order: not eligible 403, then already
/// decided or no longer pending 409. (Unknown approval 404 is the caller's.)
pub fn check_decision(approval: &Approval, who: &str, kind: PrincipalKind, value: DecisionValue) -> Result<(), Error> {
    if !is_eligible(approval, who, kind, value) {
        return Err(Forbidden::NotEligible { approval_id: approval.id.clone(), who: who.to_owned() }.into());
    }
    if approval.status != ApprovalStatus::Pending {
        return Err(Conflict::NotPending { approval_id: approval.id.clone(), status: approval.status }.into());
    }
    if approval.decisions.iter().any(|d| d.user_id == who) {
        return Err(Conflict::AlreadyDecided { approval_id: approval.id.clone(), who: who.to_owned() }.into());
    }
    Ok(())
}

/// Records a checked decision and returns the status it resolves the approval
/// to, if any. An approval counts once in every group that lists the decider.
pub fn apply_decision(approval: &mut Approval, decision: Decision) -> Option<ApprovalStatus> {
    approval.date_updated = decision.date;
    let resolved = match decision.value {
        DecisionValue::Denied => Some(ApprovalStatus::Denied),
        DecisionValue::Approved => {
            for group in &mut approval.approval_groups {
                if may_approve_in(group, &approval.initiator_id, &decision.user_id, decision.user_kind)
                    && !group.approved_by.contains(&decision.user_id)
                {
                    group.approved_by.push(decision.user_id.clone());
                }
            }
            let all_met = approval.approval_groups.iter().all(|g| g.approved_by.len() >= g.quorum as usize);
            all_met.then_some(ApprovalStatus::Approved)
        }
    };
    approval.decisions.push(decision);
    resolved
}

/// Marks the approval resolved.
pub fn resolve(approval: &mut Approval, status: ApprovalStatus, date: DateTime<Utc>) {
    approval.status = status;
    approval.date_resolved = Some(date);
    approval.date_updated = date;
}

/// Whether the approval is pending and its deadline has passed at `now`.
pub fn is_due(approval: &Approval, now: DateTime<Utc>) -> bool {
    approval.status == ApprovalStatus::Pending && approval.expiration_date.is_some_and(|d| d <= now)
}
