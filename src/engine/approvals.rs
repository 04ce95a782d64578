//! Settling an approval's transition: journal the decision and, when it
//! resolves, the outcome with its consequences, in one commit.

use std::sync::Arc;

use serde_json::json;

use crate::actors::registry::ResolveChange;
use crate::error::Error;
use crate::model::activity::ActivityStatus;
use crate::model::approval::{Approval, ApprovalStatus, Decision};
use crate::model::policy::ActivityKind;

use super::core::Core;
use super::facts::{Fact, Json};
use super::notices::Notices;

impl Core {
    /// Journals the move of an approval to `next` (after `decision`, if any),
    /// then applies it. Called by the approval's actor, one at a time.
    ///
    /// INVARIANT (resolves once): the resolution, the activity's new status,
    /// its window counts, a governed policy change and the webhook events are
    /// one commit; the actor stops after it, so nothing changes it again.
    pub(crate) async fn settle_approval(
        self: &Arc<Self>,
        next: Approval,
        decision: Option<Decision>,
    ) -> Result<Approval, Error> {
        let now = next.date_updated;
        let mut facts = Vec::new();
        if let Some(decision) = decision {
            facts.push(Fact::DecisionRecorded { approval_id: next.id.clone(), decision: Json(decision) });
        }
        let resolved = next.status != ApprovalStatus::Pending;
        let request = &next.activity.request;
        let mut notices = Notices::default();
        let mut counts = Vec::new();
        if resolved {
            if next.status == ApprovalStatus::Approved && request.kind == ActivityKind::WalletsSign {
                counts = self.counts_when_approved(&next.activity.id, request, now);
            }
            facts.push(Fact::ApprovalResolved {
                approval_id: next.id.clone(),
                status: next.status,
                date: now,
                counts: counts.clone(),
            });
            notices.add(self, "policy.approval.resolved", json!({ "approval": next }), now);
        }
        facts.extend(notices.facts());

        if resolved && request.kind == ActivityKind::PoliciesModify {
            // The registry applies the change in the same commit.
            let registry = self.registry.get().ok_or_else(|| Error::Unavailable("registry not started".into()))?;
            registry
                .send(ResolveChange { facts, approval: next.clone() })
                .await
                .map_err(|e| Error::Unavailable(e.to_string()))??;
        } else {
            self.commit(&facts).await?;
        }

        self.approvals.put(next.clone());
        if resolved {
            let status = match next.status {
                ApprovalStatus::Approved => ActivityStatus::Approved,
                ApprovalStatus::Denied => ActivityStatus::Denied,
                _ => ActivityStatus::Expired,
            };
            self.activities.update(&next.activity.id, |a| a.set_status(status, now));
            self.apply_counts(&counts, 0);
            metrics::gauge!("warden_approvals_pending").decrement(1.0);
            metrics::counter!("warden_approvals_resolved_total", "status" => next.status.as_str()).increment(1);
            metrics::counter!("warden_activities_total", "status" => status.as_str()).increment(1);
            tracing::info!(approval = %next.id, activity = %next.activity.id, status = next.status.as_str(), "approval resolved");
        }
        self.publish(notices);
        Ok(next)
    }

    /// Sends `Expire` to every pending approval whose deadline has passed and
    /// waits for them; returns how many expired.
    pub(crate) async fn expire_due(self: &Arc<Self>) -> usize {
        let now = self.clock.now();
        let due: Vec<_> = self
            .approval_actors
            .iter()
            .filter(|entry| self.approvals.get(entry.key()).is_some_and(|a| crate::workflow::is_due(&a, now)))
            .map(|entry| entry.value().clone())
            .collect();
        let answers =
            futures_util::future::join_all(due.iter().map(|addr| addr.send(crate::actors::approval::Expire))).await;
        answers
            .into_iter()
            .filter(|a| matches!(a, Ok(Ok(approval)) if approval.status == ApprovalStatus::Expired))
            .count()
    }
}
