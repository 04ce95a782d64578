//! The path of one activity: validate, evaluate against the snapshot, reserve
//! in every matching window, decide, journal, answer.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;
use serde_json::json;

use crate::actors::window::{Release, Reserve};
use crate::error::{Error, ValidationError};
use crate::model::activity::{Activity, ActivityRequest, ActivityStatus};
use crate::model::approval::{Approval, ApprovalActivity, ApprovalGroup, ApprovalStatus};
use crate::model::ids::{new_id, IdKind};
use crate::model::policy::ActivityKind;
use crate::policy::subject::wallet_subject;
use crate::policy::window_math::ReserveAnswer;
use crate::policy::{decide, rule_outcome, CompiledPolicy, Judged, RuleOutcome, Subject, Verdict, WindowCheck};

use super::activity_log::ActivityEntry;
use super::core::Core;
use super::facts::{Count, EvaluatedActivity, Fact, Json};
use super::notices::Notices;

impl Core {
    /// Evaluates a `Wallets:Sign` activity; a repeated `externalId` answers
    /// with the stored activity and evaluates nothing again.
    pub(crate) async fn evaluate(self: &Arc<Self>, request: ActivityRequest) -> Result<Activity, Error> {
        if request.kind != ActivityKind::WalletsSign {
            return Err(ValidationError::new(
                "kind",
                "must be `Wallets:Sign`; policy changes make their own `Policies:Modify` activities",
            )
            .into());
        }
        let subject = wallet_subject(&request, &self.settings.prices)?;
        let Some(external_id) = request.external_id.clone() else {
            return self.evaluate_once(request, subject).await;
        };
        let cell = self.external_ids.entry(external_id).or_default().clone();
        // INVARIANT (idempotency): the cell is filled only by a journaled
        // evaluation; concurrent repeats wait for it instead of evaluating.
        let mut evaluated = None;
        let id = cell
            .get_or_try_init(|| async {
                let activity = self.evaluate_once(request, subject).await?;
                Ok::<_, Error>(evaluated.insert(activity).id.clone())
            })
            .await?;
        if let Some(activity) = evaluated {
            return Ok(activity);
        }
        let entry = self.activities.get(id).ok_or_else(|| Error::not_found("activity", id))?;
        self.load_activity(entry)
    }

    async fn evaluate_once(self: &Arc<Self>, request: ActivityRequest, subject: Subject) -> Result<Activity, Error> {
        let started = Instant::now();
        let asked_at = self.clock.now();
        let snapshot = self.snapshot.load_full();
        let matching = snapshot.matching(&subject);
        let reservation = self.reservations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);

        let mut judged: Vec<Option<Judged>> = Vec::with_capacity(matching.len());
        let mut checks: Vec<(usize, WindowCheck)> = Vec::new();
        for (i, policy) in matching.iter().enumerate() {
            match rule_outcome(policy, &subject) {
                RuleOutcome::Decided { triggered, reason } => {
                    judged.push(Some(Judged { policy: policy.clone(), triggered, reason }))
                }
                RuleOutcome::Window(check) => {
                    judged.push(None);
                    checks.push((i, check));
                }
            }
        }
        let answers = join_all(checks.iter().map(|(_, check)| {
            self.window(&check.key).send(Reserve {
                velocity: check.velocity.clone(),
                reservation,
                quantity: check.quantity,
                now: asked_at,
            })
        }))
        .await;
        // The activity happens at the latest time its windows checked it at
        // (never earlier than asked): its counts and its dates agree.
        let mut now = asked_at;
        let mut checked_at = Vec::with_capacity(checks.len());
        for ((i, _), answer) in checks.iter().zip(answers) {
            let answer = answer.unwrap_or_else(|_| ReserveAnswer {
                triggered: true,
                reason: "velocity window unavailable; fails closed".to_owned(),
                at: asked_at,
            });
            now = now.max(answer.at);
            checked_at.push(answer.at);
            judged[*i] =
                Some(Judged { policy: matching[*i].clone(), triggered: answer.triggered, reason: answer.reason });
        }
        let judged: Vec<Judged> = judged.into_iter().flatten().collect();
        let verdict = decide(self.settings.mode, self.settings.default_action, &subject, &judged);

        let activity_id = new_id(IdKind::Activity);
        let counts: Vec<Count> = if verdict.status == ActivityStatus::Allowed {
            // Each window counts the activity from the time it checked it.
            checks
                .iter()
                .zip(&checked_at)
                .map(|((_, c), at)| Count {
                    activity_id: activity_id.clone(),
                    window: c.key.clone(),
                    quantity: c.quantity,
                    at: *at,
                })
                .collect()
        } else {
            Vec::new()
        };
        let approval = (verdict.status == ActivityStatus::PendingApproval)
            .then(|| open_approval(&activity_id, &request, &subject, &verdict, now));
        let activity = Activity {
            id: activity_id,
            status: verdict.status,
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
        let mut facts = vec![Fact::ActivityEvaluated { activity: evaluated, counts: counts.clone() }];
        if let Some(approval) = &approval {
            facts.push(Fact::ApprovalOpened(Json(approval.clone())));
            notices.add(self, "policy.approval.pending", json!({ "approval": approval }), now);
        }
        facts.extend(notices.facts());

        let seq = match self.commit(&facts).await {
            Ok(seq) => seq,
            Err(error) => {
                self.release(&checks, reservation);
                return Err(error);
            }
        };
        // Committed: the reservations become counts, or are given back.
        if counts.is_empty() {
            self.release(&checks, reservation);
        } else {
            self.apply_counts(&counts, reservation);
        }
        self.activities.put(ActivityEntry::new(indexed, seq));
        if let Some(approval) = approval {
            // The actor first: a listed approval can always be decided.
            self.spawn_approval(approval.clone());
            self.approvals.put(approval);
            metrics::gauge!("warden_approvals_pending").increment(1.0);
        }
        self.publish(notices);
        metrics::counter!("warden_activities_total", "status" => activity.status.as_str()).increment(1);
        metrics::histogram!("warden_evaluation_duration_seconds").record(started.elapsed().as_secs_f64());
        tracing::debug!(activity = %activity.id, status = activity.status.as_str(), "activity evaluated");
        Ok(activity)
    }

    fn release(self: &Arc<Self>, checks: &[(usize, WindowCheck)], reservation: u64) {
        for (_, check) in checks {
            self.window(&check.key).do_send(Release { reservation });
        }
    }

    /// The window counts an activity adds when it is approved: every
    /// velocity policy that matches it now.
    pub(crate) fn counts_when_approved(
        &self,
        activity_id: &str,
        request: &ActivityRequest,
        at: DateTime<Utc>,
    ) -> Vec<Count> {
        let Ok(subject) = wallet_subject(request, &self.settings.prices) else { return Vec::new() };
        self.snapshot
            .load()
            .matching(&subject)
            .iter()
            .filter_map(|p| match rule_outcome(p, &subject) {
                RuleOutcome::Window(c) => {
                    Some(Count { activity_id: activity_id.to_owned(), window: c.key, quantity: c.quantity, at })
                }
                RuleOutcome::Decided { .. } => None,
            })
            .collect()
    }
}

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
        initiator_id: subject.initiator_id.clone(),
        initiator_kind: subject.initiator_kind,
        activity: ApprovalActivity { id: activity_id.to_owned(), request: request.clone() },
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
