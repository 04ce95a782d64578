//! Policy changes: applied at once, or held as a change request when an
//! active `Policies:Modify` policy triggers. The registry actor runs these
//! one at a time, so the snapshot has a single writer.

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use crate::error::{Error, ValidationError};
use crate::model::activity::{Activity, ActivityRequest, ActivityStatus, Initiator, OperationKind};
use crate::model::approval::{Approval, ApprovalStatus};
use crate::model::change_request::{ChangeRequest, ChangeRequestStatus, Requester};
use crate::model::ids::{new_id, IdKind};
use crate::model::policy::{ActionKind, ActivityKind, Policy, PolicySpec, PolicyStatus};
use crate::model::principal::{Principal, PrincipalKind};
use crate::policy::subject::policy_change_subject;
use crate::policy::{decide, rule_outcome, Judged, RuleOutcome};
use crate::workflow;

use super::activities::open_approval;
use super::activity_log::ActivityEntry;
use super::core::Core;
use super::facts::{EvaluatedActivity, Fact, Json};
use super::notices::Notices;

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

/// What became of a policy change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PolicyChange {
    /// Applied now (`200`).
    Applied(Policy),
    /// Held for approval (`202`).
    Pending(ChangeRequest),
}

impl PolicyOperation {
    fn kind(&self) -> OperationKind {
        match self {
            PolicyOperation::Create(_) => OperationKind::Create,
            PolicyOperation::Update(..) => OperationKind::Update,
            PolicyOperation::Archive(_) => OperationKind::Delete,
        }
    }
}

impl Core {
    /// Applies or holds a policy change by `caller`.
    pub(crate) async fn propose(
        self: &Arc<Self>,
        caller: Principal,
        operation: PolicyOperation,
    ) -> Result<PolicyChange, Error> {
        let now = self.clock.now();
        let (policy_id, current) = match &operation {
            PolicyOperation::Create(_) => (new_id(IdKind::Policy), None),
            PolicyOperation::Update(id, _) | PolicyOperation::Archive(id) => {
                let current = self.policies.get(id).ok_or_else(|| Error::not_found("policy", id))?;
                (id.clone(), Some(current))
            }
        };
        if let Some(cr) = self.pending_changes.get(&policy_id) {
            return Err(Error::Conflict(format!(
                "policy `{policy_id}` already has a pending change request `{}`",
                *cr
            )));
        }
        let target = match &operation {
            PolicyOperation::Create(spec) => {
                Policy { id: policy_id.clone(), spec: spec.clone(), date_created: now, date_updated: now }
            }
            PolicyOperation::Update(_, spec) => {
                let current = current.clone().expect("update has a current policy");
                Policy { spec: spec.clone(), date_updated: now, ..current }
            }
            PolicyOperation::Archive(_) => {
                let mut archived = current.clone().expect("archive has a current policy");
                archived.spec.status = PolicyStatus::Archived;
                archived.date_updated = now;
                archived
            }
        };
        self.check_lockout(&target.spec)?;

        let subject = policy_change_subject(&caller.id, caller.kind, &policy_id, operation.kind());
        let judged: Vec<Judged> = self
            .snapshot
            .load()
            .matching(&subject)
            .into_iter()
            .filter_map(|p| match rule_outcome(&p, &subject) {
                RuleOutcome::Decided { triggered, reason } => Some(Judged { policy: p, triggered, reason }),
                RuleOutcome::Window(_) => None,
            })
            .collect();
        let verdict = decide(self.settings.mode, self.settings.default_action, &subject, &judged);
        let request = ActivityRequest {
            kind: ActivityKind::PoliciesModify,
            initiator: Some(Initiator { id: caller.id.clone(), kind: caller.kind }),
            wallet: None,
            transaction: None,
            external_id: None,
            policy_id: Some(policy_id.clone()),
            operation_kind: Some(operation.kind()),
        };
        let activity_id = new_id(IdKind::Activity);
        let held = verdict.status == ActivityStatus::PendingApproval;
        let approval = held.then(|| open_approval(&activity_id, &request, &subject, &verdict, now));
        let activity = Activity {
            id: activity_id,
            status: if held { ActivityStatus::PendingApproval } else { ActivityStatus::Allowed },
            approval_id: approval.as_ref().map(|a| a.id.clone()),
            policy_evaluations: verdict.evaluations.clone(),
            activity: request,
            date_created: now,
            date_updated: now,
        };

        let mut notices = Notices::default();
        notices.triggered(self, &activity);
        let evaluated = EvaluatedActivity::of(&activity);
        let indexed = evaluated.without_text();
        let mut facts = vec![Fact::ActivityEvaluated { activity: evaluated, counts: Vec::new() }];

        let Some(approval) = approval else {
            facts.push(Fact::PolicyPut(Json(target.clone())));
            facts.extend(notices.facts());
            let seq = self.commit(&facts).await?;
            self.activities.put(ActivityEntry::new(indexed, seq));
            self.install_policy(target.clone());
            self.publish(notices);
            metrics::counter!("warden_activities_total", "status" => "Allowed").increment(1);
            tracing::info!(policy = %target.id, operation = ?operation.kind(), "policy change applied");
            return Ok(PolicyChange::Applied(target));
        };

        let change = ChangeRequest {
            id: new_id(IdKind::ChangeRequest),
            kind: "Policy".to_owned(),
            operation_kind: operation.kind(),
            status: ChangeRequestStatus::Pending,
            requester: Requester { user_id: caller.id.clone() },
            entity_id: policy_id.clone(),
            approval_id: approval.id.clone(),
            body: match &operation {
                PolicyOperation::Create(spec) | PolicyOperation::Update(_, spec) => Some(spec.clone()),
                PolicyOperation::Archive(_) => None,
            },
            date_created: now,
            date_resolved: None,
        };
        facts.push(Fact::ApprovalOpened(Json(approval.clone())));
        facts.push(Fact::ChangeRequestOpened(Json(change.clone())));
        notices.add(self, "policy.approval.pending", json!({ "approval": approval }), now);
        facts.extend(notices.facts());
        let seq = self.commit(&facts).await?;

        self.activities.put(ActivityEntry::new(indexed, seq));
        self.change_requests.put(change.clone());
        self.pending_changes.insert(policy_id, change.id.clone());
        self.spawn_approval(approval.clone());
        self.approvals.put(approval);
        self.publish(notices);
        metrics::gauge!("warden_approvals_pending").increment(1.0);
        metrics::counter!("warden_activities_total", "status" => "PendingApproval").increment(1);
        tracing::info!(change_request = %change.id, policy = %change.entity_id, "policy change held for approval");
        Ok(PolicyChange::Pending(change))
    }

    /// Commits the resolution of a governed change's approval with the change
    /// itself (applied when approved, dropped otherwise).
    pub(crate) async fn resolve_change(
        self: &Arc<Self>,
        mut facts: Vec<Fact>,
        approval: &Approval,
    ) -> Result<(), Error> {
        let now = approval.date_resolved.unwrap_or(approval.date_updated);
        let change = self
            .change_requests
            .all()
            .into_iter()
            .find(|c| c.approval_id == approval.id && c.status == ChangeRequestStatus::Pending);
        let applied = match (&change, approval.status) {
            (Some(change), ApprovalStatus::Approved) => self.changed_policy(change, now),
            _ => None,
        };
        if let Some(policy) = &applied {
            facts.push(Fact::PolicyPut(Json(policy.clone())));
        }
        self.commit(&facts).await?;
        if let Some(policy) = applied {
            self.install_policy(policy);
        }
        if let Some(change) = change {
            let status = if approval.status == ApprovalStatus::Approved {
                ChangeRequestStatus::Applied
            } else {
                ChangeRequestStatus::Rejected
            };
            self.change_requests.update(&change.id, |c| {
                c.status = status;
                c.date_resolved = Some(now);
            });
            self.pending_changes.remove(&change.entity_id);
        }
        Ok(())
    }

    /// The policy as an approved change request makes it.
    pub(crate) fn changed_policy(&self, change: &ChangeRequest, now: chrono::DateTime<chrono::Utc>) -> Option<Policy> {
        match change.operation_kind {
            OperationKind::Create => Some(Policy {
                id: change.entity_id.clone(),
                spec: change.body.clone()?,
                date_created: now,
                date_updated: now,
            }),
            OperationKind::Update => {
                let current = self.policies.get(&change.entity_id)?;
                Some(Policy { spec: change.body.clone()?, date_updated: now, ..current })
            }
            OperationKind::Delete => {
                let mut archived = self.policies.get(&change.entity_id)?;
                archived.spec.status = PolicyStatus::Archived;
                archived.date_updated = now;
                Some(archived)
            }
        }
    }

    /// Lockout protection: an active governing policy must leave every group
    /// able to reach its quorum with the principals the engine knows of.
    fn check_lockout(&self, spec: &PolicySpec) -> Result<(), ValidationError> {
        if spec.activity_kind != ActivityKind::PoliciesModify
            || spec.status != PolicyStatus::Active
            || spec.action.kind != ActionKind::RequestApproval
        {
            return Ok(());
        }
        let known = &self.settings.principals;
        for (i, group) in spec.action.approval_groups.iter().enumerate() {
            let able_by_kind = |id: &str, kind: PrincipalKind| {
                workflow::may_approve(&group.approvers, group.service_accounts_can_approve, true, "", id, kind)
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
}
