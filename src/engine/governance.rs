//! Policy changes: applied at once, or held as a change request when an
//! active `Policies:Modify` policy triggers. They run in the registry's
//! one-at-a-time lane, so the snapshot has a single writer.

use serde::Serialize;

use crate::actors::hub::Hub;
use crate::error::{Conflict, Error};
use crate::journal::facts::{EvaluatedActivity, Fact, Json};
use crate::model::activity::{Activity, ActivityRequest, ActivityStatus, Initiator};
use crate::model::change_request::{ChangeRequest, ChangeRequestStatus, Requester};
use crate::model::event::{approval_data, APPROVAL_PENDING};
use crate::model::ids::{new_id, IdKind};
use crate::model::policy::{ActivityKind, Policy};
use crate::model::principal::Principal;
use crate::model::signed_action::SignedAction;
use crate::policy::subject::policy_change_subject;
use crate::policy::{decide, rule_outcome, Judged, RuleOutcome};
use crate::state::Notices;
use crate::telemetry;
use crate::workflow::{check_lockout, open_approval, PolicyOperation};

/// What became of a policy change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PolicyChange {
    /// Applied now (`200`).
    Applied(Policy),
    /// Held for approval (`202`).
    Pending(ChangeRequest),
}

/// Applies or holds a policy change by `caller`. Runs in the registry's lane.
pub(super) async fn propose(
    hub: &Hub,
    caller: Principal,
    operation: PolicyOperation,
    user_action: Option<SignedAction>,
) -> Result<PolicyChange, Error> {
    let state = hub.state();
    let now = hub.now();
    let (policy_id, current) = match &operation {
        PolicyOperation::Create(_) => (new_id(IdKind::Policy), None),
        PolicyOperation::Update(id, _) | PolicyOperation::Archive(id) => {
            let current = state.policy(id).ok_or_else(|| Error::not_found("policy", id))?;
            (id.clone(), Some(current))
        }
    };
    if let Some(change) = state.pending_change(&policy_id) {
        return Err(Conflict::ChangePending { policy_id, change_request_id: change.id }.into());
    }
    let target =
        operation.target(&policy_id, current.as_ref(), now).ok_or_else(|| Error::not_found("policy", &policy_id))?;
    check_lockout(&target.spec, &hub.principals())?;

    let subject = policy_change_subject(&caller.id, caller.kind, &policy_id, operation.kind());
    let snapshot = state.snapshot();
    let judged: Vec<Judged> = snapshot
        .matching(&subject)
        .into_iter()
        .filter_map(|p| match rule_outcome(p, &subject) {
            RuleOutcome::Decided { triggered, reason } => Some(Judged { policy: p, triggered, reason }),
            RuleOutcome::Window(_) => None,
        })
        .collect();
    let settings = hub.settings();
    let verdict = decide(settings.mode, settings.default_action, &subject, &judged);
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
    drop(subject); // it borrows `policy_id`, which the change request takes
    let activity = Activity {
        id: activity_id,
        status: if held { ActivityStatus::PendingApproval } else { ActivityStatus::Allowed },
        approval_id: approval.as_ref().map(|a| a.id.clone()),
        policy_evaluations: verdict.evaluations,
        activity: request,
        date_created: now,
        date_updated: now,
    };

    let mut notices = Notices::default();
    notices.triggered(state, &activity);
    let mut facts: Vec<Fact> = user_action.map(|signed| Fact::UserActionSigned(Json(signed))).into_iter().collect();
    facts.push(Fact::ActivityEvaluated { activity: EvaluatedActivity::of(&activity), counts: Vec::new() });

    let Some(mut approval) = approval else {
        facts.push(Fact::PolicyPut(Json(Box::new(target.clone()))));
        facts.extend(notices.take_facts());
        hub.commit(facts, 0).await?;
        hub.announce(notices);
        hub.announce_evaluated(&activity);
        telemetry::activity_reached(ActivityStatus::Allowed);
        tracing::info!(policy = %target.id, operation = ?operation.kind(), "policy change applied");
        return Ok(PolicyChange::Applied(target));
    };

    let change = ChangeRequest {
        id: new_id(IdKind::ChangeRequest),
        kind: "Policy".to_owned(),
        operation_kind: operation.kind(),
        status: ChangeRequestStatus::Pending,
        requester: Requester { user_id: caller.id.clone() },
        entity_id: policy_id,
        approval_id: approval.id.clone(),
        body: match &operation {
            PolicyOperation::Create(spec) | PolicyOperation::Update(_, spec) => Some(spec.clone()),
            PolicyOperation::Archive(_) => None,
        },
        date_created: now,
        date_resolved: None,
    };
    // Dfns' shape: the approval shows the change it decides.
    approval.activity.change_request = Some(Box::new(change.clone()));
    notices.add(state, APPROVAL_PENDING, approval_data(&approval), now);
    facts.push(Fact::ApprovalOpened(Json(Box::new(approval))));
    facts.push(Fact::ChangeRequestOpened(Json(Box::new(change.clone()))));
    facts.extend(notices.take_facts());
    hub.commit(facts, 0).await?;
    hub.announce(notices);
    hub.announce_evaluated(&activity);
    telemetry::activity_reached(ActivityStatus::PendingApproval);
    tracing::info!(change_request = %change.id, policy = %change.entity_id, "policy change held for approval");
    Ok(PolicyChange::Pending(change))
}
