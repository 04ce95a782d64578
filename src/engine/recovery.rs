//! Recovery: fold the journal's facts, in order, back into the engine's
//! state, then restart what runs (windows, pending approvals) and expire the
//! approvals whose deadline passed while the engine was down.
//!
//! A restart uses two threads: one reads, decodes and sorts the window counts
//! by window; the other folds the facts into the tables. Neither keeps an
//! activity's text: the trail reads it from the journal when asked.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Duration;
use foldhash::fast::RandomState;

use warden_journal::{Journal, JournalError, Seq};

use crate::error::Error;
use crate::model::activity::ActivityStatus;
use crate::model::approval::ApprovalStatus;
use crate::model::change_request::ChangeRequestStatus;
use crate::model::webhook::DeliveryStatus;
use crate::policy::compile::{CompiledRule, MAX_TIME_WINDOW_SECS};
use crate::policy::window_math::Ledger;
use crate::policy::WindowKey;
use crate::workflow;

use super::activity_log::ActivityEntry;
use super::core::Core;
use super::facts::{Fact, Json};

/// Calls `visit` with every fact of the journal, in order. A record that does
/// not decode is reported with its position, never skipped.
pub(crate) fn for_each_fact(journal: &dyn Journal, mut visit: impl FnMut(Fact)) -> Result<(), Error> {
    journal.scan(1, &mut |record| {
        visit(decode(record.seq, &record.payload)?);
        Ok(())
    })?;
    Ok(())
}

fn decode(seq: Seq, payload: &[u8]) -> Result<Fact, JournalError> {
    Fact::decode(payload).map_err(|e| JournalError::Corrupt { seq, reason: e.to_string() })
}

/// Records handed from the reading thread to the folding one at a time.
const RECOVERY_BATCH: usize = 1024;

/// Every record of the journal in two stages: `prepare` runs on a reading
/// thread as records are read and decoded, `fold` on the caller's thread, in
/// journal order, so a restart uses two cores.
fn for_each_record_pipelined<P: Send>(
    journal: &dyn Journal,
    mut prepare: impl FnMut(Seq, Fact) -> P + Send,
    mut fold: impl FnMut(P),
) -> Result<(), Error> {
    type Batch<P> = Vec<Result<P, JournalError>>;
    let (batches, inbox) = std::sync::mpsc::sync_channel::<Batch<P>>(8);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut batch: Batch<P> = Vec::with_capacity(RECOVERY_BATCH);
            journal.scan(1, &mut |record| {
                batch.push(decode(record.seq, &record.payload).map(|fact| prepare(record.seq, fact)));
                if batch.len() == RECOVERY_BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(RECOVERY_BATCH));
                    // The folding side stopped at an error: stop reading.
                    batches.send(full).map_err(|_| JournalError::Storage("recovery stopped".into()))?;
                }
                Ok(())
            })?;
            let _ = batches.send(batch);
            Ok::<(), JournalError>(())
        });
        let folded = (|| {
            for batch in inbox {
                for prepared in batch {
                    fold(prepared?);
                }
            }
            Ok::<(), JournalError>(())
        })();
        let read = reader.join().unwrap_or_else(|_| Err(JournalError::Storage("recovery reader panicked".into())));
        // A corrupt record is reported by the folding side; a storage error
        // by the reader.
        folded.and(read).map_err(Error::from)
    })
}

/// The windows' counts as read from the journal, by policy, then by scope.
/// (Two levels: the few policies stay in cache, so a count costs one lookup of
/// its scope.) Scope keys are chosen by callers (wallet ids, addresses), so
/// they are hashed with a seeded hasher.
type LedgersByWindow = HashMap<String, HashMap<String, Ledger, RandomState>, RandomState>;

/// Rebuilds `core` from its journal. Runs once, before the engine answers.
pub(crate) async fn recover(core: &Arc<Core>) -> Result<(), Error> {
    let started = std::time::Instant::now();
    // Counts older than the widest window any rule may have are never seen
    // again; the others are kept until the policies are known.
    let oldest = core.clock.now() - Duration::seconds(MAX_TIME_WINDOW_SECS as i64);
    let mut ledgers = LedgersByWindow::default();
    let mut records = 0u64;
    for_each_record_pipelined(
        core.journal.as_ref(),
        |seq, mut fact| {
            // Counts go to their windows on this thread: on the folding one,
            // among the tables, the same work measured slower.
            for count in fact.take_counts() {
                if let (Some(quantity), true) = (count.quantity, count.at >= oldest) {
                    let WindowKey { policy_id, scope_key } = count.window;
                    let by_scope = match ledgers.get_mut(&policy_id) {
                        Some(by_scope) => by_scope,
                        None => ledgers.entry(policy_id).or_default(),
                    };
                    by_scope.entry(scope_key).or_default().push(count.at, quantity, count.activity_id);
                }
            }
            if let Fact::ActivityEvaluated { activity, .. } = &mut fact {
                // Not kept: dropped here, on the thread that made it.
                activity.json = String::new();
            }
            (seq, fact)
        },
        |(seq, fact)| {
            records += 1;
            apply(core, seq, fact);
        },
    )?;
    core.load_policies();
    let windows = restart_windows(core, ledgers);
    let pending = core.approvals.pick(|a| (a.status == ApprovalStatus::Pending).then(|| a.clone()));
    metrics::gauge!("warden_approvals_pending").set(pending.len() as f64);
    for approval in pending {
        core.spawn_approval(approval);
    }
    let expired = core.expire_due().await;
    let millis = started.elapsed().as_millis() as u64;
    tracing::info!(records, windows, expired, millis, "recovery complete");
    Ok(())
}

/// Folds one fact into the tables; window counts were taken out before.
fn apply(core: &Core, seq: Seq, fact: Fact) {
    match fact {
        Fact::PolicyPut(Json(policy)) => {
            // The latest version wins; creation order is kept by `put`.
            core.policies.put(policy);
        }
        Fact::ActivityEvaluated { mut activity, .. } => {
            if let Some(external_id) = activity.external_id.take() {
                let cell = tokio::sync::OnceCell::new_with(Some(activity.id.clone()));
                core.external_ids.insert(external_id, Arc::new(cell));
            }
            core.activities.put(ActivityEntry::new(activity, seq));
        }
        Fact::ApprovalOpened(Json(approval)) => core.approvals.put(approval),
        Fact::DecisionRecorded { approval_id, decision: Json(decision) } => {
            core.approvals.update(&approval_id, |a| workflow::apply_decision(a, decision));
        }
        Fact::ApprovalResolved { approval_id, status, date, .. } => {
            let Some(approval) = core.approvals.update(&approval_id, |a| {
                workflow::resolve(a, status, date);
                a.clone()
            }) else {
                return;
            };
            let activity_status = match status {
                ApprovalStatus::Approved => ActivityStatus::Approved,
                ApprovalStatus::Denied => ActivityStatus::Denied,
                _ => ActivityStatus::Expired,
            };
            core.activities.update(&approval.activity.id, |a| a.set_status(activity_status, date));
            if let Some(change) = core.change_requests.all().into_iter().find(|c| c.approval_id == approval_id) {
                core.change_requests.update(&change.id, |c| {
                    c.status = if status == ApprovalStatus::Approved {
                        ChangeRequestStatus::Applied
                    } else {
                        ChangeRequestStatus::Rejected
                    };
                    c.date_resolved = Some(date);
                });
                core.pending_changes.remove(&change.entity_id);
            }
        }
        Fact::ChangeRequestOpened(Json(change)) => {
            core.pending_changes.insert(change.entity_id.clone(), change.id.clone());
            core.change_requests.put(change);
        }
        Fact::WebhookPut(Json(webhook)) => core.webhooks.put(webhook),
        Fact::WebhookDeleted { webhook_id } => {
            core.webhooks.remove(&webhook_id);
        }
        Fact::EventQueued(Json(event)) => core.events.put(event),
        Fact::DeliveryRecorded { event_id, status, attempts, last_error, next_attempt } => {
            core.events.update(&event_id, |e| {
                e.status = status;
                e.attempts = attempts;
                e.last_error = last_error;
                e.next_attempt = if status == DeliveryStatus::Pending { next_attempt } else { None };
            });
        }
    }
}

/// Starts the actor of every window of a velocity policy that still has
/// counts inside its horizon; counts outside every horizon are not kept in
/// memory. Returns how many it started.
fn restart_windows(core: &Arc<Core>, ledgers: LedgersByWindow) -> usize {
    let now = core.clock.now();
    let mut started = 0;
    for (policy_id, by_scope) in ledgers {
        let Some(policy) = core.compiled.get(&policy_id).map(|p| p.clone()) else { continue };
        let CompiledRule::Velocity(velocity) = &policy.rule else { continue };
        for (scope_key, mut ledger) in by_scope {
            ledger.prune(velocity.span, now);
            if !ledger.is_empty() {
                let key = WindowKey { policy_id: policy_id.clone(), scope_key };
                let addr = core.start_window(key.clone(), ledger);
                core.windows.insert(key, addr);
                started += 1;
            }
        }
    }
    started
}
