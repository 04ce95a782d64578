//! Policy changes, pure: the operations, what an approved change request makes
//! of a policy, and the lockout check of governing policies.

use chrono::{DateTime, Utc};

use crate::error::ValidationError;
use crate::model::activity::OperationKind;
use crate::model::change_request::ChangeRequest;
use crate::model::policy::{ActionKind, ActivityKind, Policy, PolicySpec, PolicyStatus};
use crate::model::principal::{Principal, PrincipalKind};

/// A requested policy change.
#[derive(Debug, Clone)]
pub enum PolicyOperation {
    /// A new policy.
    Create(PolicySpec),
    /// A full replacement of policy `id`.
    Update(String, PolicySpec),
    /// The archive of policy `id`.
    Archive(String),
}

impl PolicyOperation {
    /// The contract's name of the operation.
    pub fn kind(&self) -> OperationKind {
        match self {
            PolicyOperation::Create(_) => OperationKind::Create,
            PolicyOperation::Update(..) => OperationKind::Update,
            PolicyOperation::Archive(_) => OperationKind::Delete,
        }
    }

    /// The policy as this operation makes it from `current` (absent for a
    /// create), with id `id`, at `now`.
    pub fn target(&self, id: &str, current: Option<&Policy>, now: DateTime<Utc>) -> Option<Policy> {
        match (self, current) {
            (PolicyOperation::Create(spec), _) => {
                Some(Policy { id: id.to_owned(), spec: spec.clone(), date_created: now, date_updated: now })
            }
            (PolicyOperation::Update(_, spec), Some(current)) => {
                Some(Policy { spec: spec.clone(), date_updated: now, ..current.clone() })
            }
            (PolicyOperation::Archive(_), Some(current)) => {
                let mut archived = current.clone();
                archived.spec.status = PolicyStatus::Archived;
                archived.date_updated = now;
                Some(archived)
            }
            _ => None,
        }
    }
}

/// The policy as an approved change request makes it from `current`.
pub(crate) fn changed_policy(change: &ChangeRequest, current: Option<&Policy>, now: DateTime<Utc>) -> Option<Policy> {
    let operation = match change.operation_kind {
        OperationKind::Create => PolicyOperation::Create(change.body.clone()?),
        OperationKind::Update => PolicyOperation::Update(change.entity_id.clone(), change.body.clone()?),
        OperationKind::Delete => PolicyOperation::Archive(change.entity_id.clone()),
    };
    operation.target(&change.entity_id, current, now)
}

/// Lockout protection: an active governing policy must leave every group
/// able to reach its quorum with the principals the engine knows of.
pub(crate) fn check_lockout(spec: &PolicySpec, known: &[Principal]) -> Result<(), ValidationError> {
    if spec.activity_kind != ActivityKind::PoliciesModify
        || spec.status != PolicyStatus::Active
        || spec.action.kind != ActionKind::RequestApproval
    {
        return Ok(());
    }
    for (i, group) in spec.action.approval_groups.iter().enumerate() {
        let able_by_kind = |id: &str, kind: PrincipalKind| {
            super::may_approve(&group.approvers, group.service_accounts_can_approve, true, "", id, kind)
        };
        let able = match &group.approvers.user_id {
            Some(list) => {
                let mut ids: Vec<&String> = list
                    .values
                    .iter()
                    .filter(|id| match known.iter().find(|p| &p.id == *id) {
                        Some(p) => able_by_kind(&p.id, p.kind),
                        // An id the engine does not know may be a principal added later.
                        None => true,
                    })
                    .collect();
                ids.sort();
                ids.dedup();
                ids.len()
            }
            None if known.is_empty() => usize::MAX,
            None => known.iter().filter(|p| able_by_kind(&p.id, p.kind)).count(),
        };
        if able < group.quorum as usize {
            return Err(ValidationError::new(
                format!("action.approvalGroups[{i}].quorum"),
                format!(
                    "`{}` cannot be reached: only {able} principal(s) can approve in group `{}`, so policy changes would be locked out",
                    group.quorum, group.name
                ),
            ));
        }
    }
    Ok(())
}
