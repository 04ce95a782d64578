//! The path of one activity: validate, evaluate against the snapshot, reserve
//! in every matching window, decide, journal, answer.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures_util::future::{join_all, BoxFuture};
use smallvec::SmallVec;

use crate::actors::hub::Hub;
use crate::actors::window::{Checked, Held, Reserve};
use crate::error::{Error, ValidationError};
use crate::journal::facts::{activity_json, Count, EvaluatedActivity, Fact, Json};
use crate::model::activity::{Activity, ActivityRequest, ActivityStatus};
use crate::model::event::{approval_data, APPROVAL_PENDING};
use crate::model::ids::{new_id, IdKind};
use crate::model::policy::ActivityKind;
use crate::model::signed_action::SignedAction;
use crate::policy::subject::wallet_subject;
use crate::policy::window_math::ReserveAnswer;
use crate::policy::{decide, rule_outcome, Judged, RuleOutcome, WindowCheck};
use crate::state::Notices;
use crate::telemetry;
use crate::workflow::open_approval;

/// Reservation ids: unique per process (a restarted window knows none).
static RESERVATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Whether the caller also wants the activity's JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Text {
    /// The activity alone (an embedder).
    Without,
    /// The activity and its text: a new activity's record's text (an
    /// adapter that answers in JSON sends these bytes instead of encoding
    /// them again); a repeat's, encoded from the activity as it stands.
    With,
}

/// An evaluated activity and, when asked for, its JSON text.
pub(super) type Evaluated = (Activity, Option<String>);

/// Evaluates a `Wallets:Sign` activity; a repeated `externalId` answers with
/// the stored activity and evaluates nothing again.
///
/// The evaluation is boxed once, here: unboxed, its few kilobytes would be
/// copied on every move (into its task, into each caller's own future).
pub(super) fn evaluate(
    hub: Arc<Hub>,
    request: ActivityRequest,
    user_action: Option<SignedAction>,
    text: Text,
) -> BoxFuture<'static, Result<Evaluated, Error>> {
    if request.kind != ActivityKind::WalletsSign {
        let refused = ValidationError::new(
            "kind",
            "must be `Wallets:Sign`; policy changes make their own `Policies:Modify` activities",
        );
        return Box::pin(std::future::ready(Err(refused.into())));
    }
    match request.external_id.clone() {
        None => Box::pin(evaluate_once(hub, request, user_action, text)),
        Some(external_id) => Box::pin(evaluate_repeatable(hub, request, user_action, external_id, text)),
    }
}

/// [`evaluate`] for a request with an `externalId`.
async fn evaluate_repeatable(
    hub: Arc<Hub>,
    request: ActivityRequest,
    user_action: Option<SignedAction>,
    external_id: String,
    text: Text,
) -> Result<Evaluated, Error> {
    let (slot, new_key) = hub.state().external_id(&external_id, hub.now());
    // A repeat is validated before it waits or reads: an invalid request is
    // refused whatever its key answered. (A new key's request is validated
    // by its evaluation, once.)
    let validated =
        if new_key { Ok(()) } else { wallet_subject(&request, &hub.settings().prices).map(drop).map_err(Error::from) };
    // INVARIANT (idempotency): the slot is filled only by a journaled
    // evaluation; concurrent repeats wait for it instead of evaluating.
    let mut evaluated = None;
    let filled = match validated {
        Ok(()) => {
            slot.activity
                .get_or_try_init(|| async {
                    let answer = Box::pin(evaluate_once(hub.clone(), request, user_action, text)).await?;
                    Ok::<_, Error>(evaluated.insert(answer).0.id.clone())
                })
                .await
        }
        Err(refused) => Err(refused),
    };
    let id = match filled {
        Ok(id) => id,
        Err(refused) => {
            // A refused request keeps no key (unless a concurrent use of it
            // holds the slot, to fill it; the last one out forgets it).
            drop(slot);
            hub.state().forget_unanswered_external_id(&external_id);
            return Err(refused);
        }
    };
    if let Some(answer) = evaluated {
        return Ok(answer);
    }
    let (state, id) = (hub.state().clone(), id.clone());
    let read = move || {
        let activity = state.activity(&id)?.ok_or_else(|| Error::not_found("activity", &id))?;
        // A repeat is rare: its text is encoded again, from the activity as
        // it stands now (an approval may have changed its status).
        let json = (text == Text::With).then(|| activity_json(&activity));
        Ok((activity, json))
    };
    if !hub.state().journal().reads_wait_on_network() {
        // A local read (redb's cache, memory) costs microseconds: cheaper
        // here than the ~70 us of a hand-off to the blocking pool.
        return read();
    }
    // A database read is a round trip: not on this task's thread.
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| crate::error::Unavailable::TaskFailed { reason: e.to_string() })?
}

async fn evaluate_once(
    hub: Arc<Hub>,
    request: ActivityRequest,
    user_action: Option<SignedAction>,
    text: Text,
) -> Result<Evaluated, Error> {
    let hub = hub.as_ref();
    let subject = wallet_subject(&request, &hub.settings().prices)?;
    let started = Instant::now();
    let asked_at = hub.now();
    let snapshot = hub.state().snapshot();
    let matching = snapshot.matching(&subject);
    let reservation = RESERVATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);

    // Most activities meet a few policies and fewer windows: the per-activity
    // lists live inline in this (boxed) future, not in allocations of their own.
    let mut judged: SmallVec<[Option<Judged>; 4]> = SmallVec::with_capacity(matching.len());
    let mut checks: SmallVec<[(usize, WindowCheck); 2]> = SmallVec::new();
    for (i, policy) in matching.iter().enumerate() {
        match rule_outcome(policy, &subject) {
            RuleOutcome::Decided { triggered, reason } => judged.push(Some(Judged { policy, triggered, reason })),
            RuleOutcome::Window(check) => {
                judged.push(None);
                checks.push((i, check));
            }
        }
    }
    let reserve = |check: &WindowCheck| {
        let reserve =
            Reserve { velocity: check.velocity.clone(), reservation, quantity: check.quantity, now: asked_at };
        hub.book().reserve(&check.key, asked_at, reserve)
    };
    // One window (the usual case) is awaited as it is: `join_all` would
    // allocate twice for it.
    let answers: SmallVec<[_; 2]> = match checks.as_slice() {
        [] => SmallVec::new(),
        [(_, only)] => smallvec::smallvec![reserve(only).await],
        several => join_all(several.iter().map(|(_, check)| reserve(check))).await.into(),
    };
    // The activity happens at the latest time its windows checked it at
    // (never earlier than asked): its counts and its dates agree.
    let mut now = asked_at;
    let mut checked_at: SmallVec<[DateTime<Utc>; 2]> = SmallVec::with_capacity(checks.len());
    // The holds on this activity's reservations: dropped (settled) once its
    // counts are queued or its releases sent, or on any way out before.
    let mut held: SmallVec<[Held; 2]> = SmallVec::with_capacity(checks.len());
    for ((i, _), answer) in checks.iter().zip(answers) {
        // A window that cannot answer fails closed.
        let answer = match answer {
            Ok(Checked { answer, held: hold }) => {
                held.extend(hold);
                answer
            }
            Err(_) => ReserveAnswer {
                triggered: true,
                reason: "velocity window unavailable; fails closed".into(),
                at: asked_at,
            },
        };
        now = now.max(answer.at);
        checked_at.push(answer.at);
        judged[*i] = Some(Judged { policy: matching[*i], triggered: answer.triggered, reason: answer.reason });
    }
    let judged: SmallVec<[Judged; 4]> = judged.into_iter().flatten().collect();
    let settings = hub.settings();
    let verdict = decide(settings.mode, settings.default_action, &subject, &judged);

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
    drop(subject); // it borrows the request, which the activity takes
    let activity = Activity {
        id: activity_id,
        status: verdict.status,
        approval_id: approval.as_ref().map(|a| a.id.clone()),
        policy_evaluations: verdict.evaluations,
        activity: request,
        date_created: now,
        date_updated: now,
    };

    let mut notices = Notices::default();
    notices.triggered(hub.state(), &activity);
    let counted = !counts.is_empty();
    let mut facts = Vec::with_capacity(4);
    facts.extend(user_action.map(|signed| Fact::UserActionSigned(Json(signed))));
    let record = EvaluatedActivity::of(&activity);
    let json = (text == Text::With).then(|| record.json.clone());
    facts.push(Fact::ActivityEvaluated { activity: record, counts });
    if let Some(approval) = approval {
        notices.add(hub.state(), APPROVAL_PENDING, approval_data(&approval), now);
        facts.push(Fact::ApprovalOpened(Json(Box::new(approval))));
    }
    facts.extend(notices.take_facts());

    // Committed and applied: the reservations became counts (the fold's
    // counts carry this reservation), or are given back here.
    let committed = hub.commit(facts, reservation).await;
    if committed.is_err() || !counted {
        for (_, check) in &checks {
            hub.book().release(&check.key, now, reservation);
        }
    }
    drop(held);
    committed?;
    hub.announce(notices);
    hub.announce_evaluated(&activity);
    telemetry::activity_reached(activity.status);
    telemetry::evaluation_took(started.elapsed().as_secs_f64());
    tracing::debug!(activity = %activity.id, status = activity.status.as_str(), "activity evaluated");
    Ok((activity, json))
}
