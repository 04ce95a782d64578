//! Recovery: fold the journal's facts, in order, back into the engine's
//! state, then restart what runs (windows, pending approvals) and expire the
//! approvals whose deadline passed while the engine was down.

use std::collections::HashMap;
use std::sync::Arc;

use warden_journal::{Journal, JournalError, Seq};

use crate::error::Error;
use crate::model::activity::ActivityStatus;
use crate::model::approval::ApprovalStatus;
use crate::model::change_request::ChangeRequestStatus;
use crate::model::webhook::DeliveryStatus;
use crate::policy::compile::CompiledRule;
use crate::policy::window_math::{window_start, Ledger};
use crate::policy::WindowKey;
use crate::workflow;

use super::activity_log::ActivityEntry;
use super::core::Core;
use super::facts::{Count, Fact, Json};

/// Calls `visit` with every fact of the journal, in order. A record that does
/// not decode is reported with its position, never skipped.
pub(crate) fn for_each_fact(journal: &dyn Journal, mut visit: impl FnMut(Fact)) -> Result<(), Error> {
    for_each_record(journal, |_, fact| visit(fact))
}

/// [`for_each_fact`], with each fact's seq.
pub(crate) fn for_each_record(journal: &dyn Journal, mut visit: impl FnMut(Seq, Fact)) -> Result<(), Error> {
    journal.scan(1, &mut |record| {
        let fact = Fact::decode(&record.payload)
            .map_err(|e| JournalError::Corrupt { seq: record.seq, reason: e.to_string() })?;
        visit(record.seq, fact);
        Ok(())
    })?;
    Ok(())
}

/// Records handed from the reading thread to the folding one at a time.
const RECOVERY_BATCH: usize = 1024;

/// [`for_each_record`] in two stages: one thread reads and decodes records
/// while the caller's thread folds them, so a restart uses two cores.
fn for_each_record_pipelined(journal: &dyn Journal, mut visit: impl FnMut(Seq, Fact)) -> Result<(), Error> {
    type Batch = Vec<(Seq, Result<Fact, JournalError>)>;
    let (batches, inbox) = std::sync::mpsc::sync_channel::<Batch>(8);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut batch: Batch = Vec::with_capacity(RECOVERY_BATCH);
            journal.scan(1, &mut |record| {
                let fact = Fact::decode(&record.payload)
                    .map_err(|e| JournalError::Corrupt { seq: record.seq, reason: e.to_string() });
                batch.push((record.seq, fact));
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
                for (seq, fact) in batch {
                    visit(seq, fact?);
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

/// Rebuilds `core` from its journal. Runs once, before the engine answers.
pub(crate) async fn recover(core: &Arc<Core>) -> Result<(), Error> {
    let mut counts: Vec<Count> = Vec::new();
    let mut records = 0u64;
    for_each_record_pipelined(core.journal.as_ref(), |seq, fact| {
        records += 1;
        apply(core, seq, fact, &mut counts);
    })?;
    core.load_policies();
    let retired = core.retire_activities(core.clock.now() - core.settings.hot_retention);
    restart_windows(core, counts);
    let pending: Vec<_> = core.approvals.all().into_iter().filter(|a| a.status == ApprovalStatus::Pending).collect();
    metrics::gauge!("warden_approvals_pending").set(pending.len() as f64);
    for approval in pending {
        core.spawn_approval(approval);
    }
    let expired = core.expire_due().await;
    tracing::info!(records, retired, expired, "recovery complete");
    Ok(())
}

fn apply(core: &Core, seq: Seq, fact: Fact, counts: &mut Vec<Count>) {
    match fact {
        Fact::PolicyPut(Json(policy)) => {
            // The latest version wins; creation order is kept by `put`.
            core.policies.put(policy);
        }
        Fact::ActivityEvaluated { mut activity, counts: c } => {
            if let Some(external_id) = activity.external_id.take() {
                let cell = tokio::sync::OnceCell::new_with(Some(activity.id.clone()));
                core.external_ids.insert(external_id, Arc::new(cell));
            }
            core.activities.put(ActivityEntry::new(activity, seq));
            counts.extend(c);
        }
        Fact::ApprovalOpened(Json(approval)) => core.approvals.put(approval),
        Fact::DecisionRecorded { approval_id, decision: Json(decision) } => {
            core.approvals.update(&approval_id, |a| workflow::apply_decision(a, decision));
        }
        Fact::ApprovalResolved { approval_id, status, date, counts: c } => {
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
            counts.extend(c);
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

/// Starts the actor of every window that still has counts inside its
/// horizon; counts outside every horizon are not kept in memory.
fn restart_windows(core: &Arc<Core>, counts: Vec<Count>) {
    let now = core.clock.now();
    let mut ledgers: HashMap<WindowKey, Ledger> = HashMap::new();
    for count in counts {
        let Some(quantity) = count.quantity else { continue };
        let Some(policy) = core.compiled.get(&count.window.policy_id) else { continue };
        let CompiledRule::Velocity(velocity) = &policy.rule else { continue };
        if count.at < window_start(velocity.span, now) {
            continue;
        }
        ledgers.entry(count.window).or_default().push(count.at, quantity, &count.activity_id);
    }
    for (key, ledger) in ledgers {
        let addr = core.start_window(key.clone(), ledger);
        core.windows.insert(key, addr);
    }
}
