//! Opening an approval from a verdict, pure.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::model::activity::ActivityRequest;
use crate::model::approval::{Approval, ApprovalActivity, ApprovalGroup, ApprovalStatus};
use crate::model::ids::{new_id, IdKind};
use crate::policy::{CompiledPolicy, Subject, Verdict};

/// The approval of a held activity: every group of every `RequestApproval`
/// policy that triggered; it expires at the smallest `autoRejectTimeout`.
pub(crate) fn open_approval(
    activity_id: &str,
    request: &ActivityRequest,
    subject: &Subject,
    verdict: &Verdict,
    now: DateTime<Utc>,
) -> Approval {
    let groups = verdict
        .approvers_from
        .iter()
        .flat_map(|p: &Arc<CompiledPolicy>| {
            p.policy.spec.action.approval_groups.iter().map(|g| ApprovalGroup {
                policy_id: p.policy.id.clone(),
                name: g.name.clone(),
                quorum: g.quorum,
                approvers: g.approvers.clone(),
                initiator_can_approve: g.initiator_can_approve,
                service_accounts_can_approve: g.service_accounts_can_approve,
                approved_by: Vec::new(),
            })
        })
        .collect();
    let timeout = verdict.approvers_from.iter().filter_map(|p| p.policy.spec.action.auto_reject_timeout).min();
    Approval {
        id: new_id(IdKind::Approval),
        status: ApprovalStatus::Pending,
        initiator_id: subject.initiator_id.to_owned(),
        initiator_kind: subject.initiator_kind,
        activity: ApprovalActivity { id: activity_id.to_owned(), request: request.clone(), change_request: None },
        policy_evaluations: verdict.evaluations.clone(),
        approval_groups: groups,
        decisions: Vec::new(),
        date_created: now,
        date_updated: now,
        date_resolved: None,
        // Timeouts are validated to at most a year: no overflow here.
        expiration_date: timeout.map(|secs| now + Duration::seconds(secs.min(1 << 40) as i64)),
    }
}
