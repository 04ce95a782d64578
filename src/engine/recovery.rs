//! Recovery: fold the journal into the state with the same `apply` the live
//! path uses, then set up what runs (windows with counts in their horizon;
//! approval actors start as decisions and deadlines reach them) and expire
//! the approvals whose deadline passed while the engine was down.
//!
//! A restart uses two threads: one reads, decodes and sorts the window counts
//! by window; the other folds the facts into the tables. Neither keeps an
//! activity's text: the trail reads it from the journal when asked.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use foldhash::fast::RandomState;

use crate::actors::hub::Hub;
use crate::actors::registry::expire_due;
use crate::error::Error;
use crate::journal::facts::Fact;
use crate::journal::replay::for_each_fact_pipelined;
use crate::policy::compile::CompiledRule;
use crate::policy::limits::MAX_TIME_WINDOW_SECS;
use crate::policy::window_math::Ledger;
use crate::policy::WindowKey;
use crate::state::CountIndex;
use crate::telemetry;
use warden_journal::Seq;

/// The windows' counts as read from the journal, by policy, then by scope.
/// (Two levels: the few policies stay in cache, so a count costs one lookup of
/// its scope.) Scope keys are chosen by callers (wallet ids, addresses), so
/// they are hashed with a seeded hasher.
pub(super) type LedgersByWindow = HashMap<Arc<str>, HashMap<Arc<str>, Ledger, RandomState>, RandomState>;

/// Rebuilds the state of `hub` from its journal and starts leading from it.
/// Runs once, before a single node answers.
pub(super) async fn recover(hub: &Arc<Hub>, external_id_retention: Duration) -> Result<(), Error> {
    let ledgers = fold_journal(hub, external_id_retention)?;
    start_leading(hub, ledgers).await;
    Ok(())
}

/// Folds the whole journal into the state with the one fold, and answers the
/// windows' counts inside the widest horizon, by window. Runs the actors of
/// nothing: a standby keeps the counts until it leads.
pub(super) fn fold_journal(hub: &Arc<Hub>, external_id_retention: Duration) -> Result<LedgersByWindow, Error> {
    let started = std::time::Instant::now();
    let state = hub.state().clone();
    let oldest = horizon(hub);
    let index = state.count_index().as_ref();
    let mut ledgers = LedgersByWindow::default();
    let mut records = 0u64;
    let mut effects = Vec::new();
    for_each_fact_pipelined(
        state.journal().as_ref(),
        |seq, mut fact| {
            // Counts go to their windows on this thread: on the folding one,
            // among the tables, the same work measured slower.
            collect_counts(&mut ledgers, index, seq, &mut fact, oldest);
            if let Fact::ActivityEvaluated { activity, .. } = &mut fact {
                // Not kept: dropped here, on the thread that made it.
                activity.json = String::new();
            }
            (seq, fact)
        },
        |(seq, fact)| {
            records += 1;
            // The one fold. What it asks of actors is set up from the final
            // state instead, once, when the node leads.
            state.apply(seq, fact, &mut effects);
            effects.clear();
        },
    )?;
    state.publish_snapshot();
    let now = hub.now();
    let retention = chrono::Duration::from_std(external_id_retention).unwrap_or(chrono::Duration::MAX);
    state.forget_external_ids(now.checked_sub_signed(retention).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC));
    let millis = started.elapsed().as_millis() as u64;
    tracing::info!(records, millis, "journal folded");
    Ok(ledgers)
}

/// Counts older than this are outside the widest window any rule may have:
/// never seen again.
pub(super) fn horizon(hub: &Hub) -> chrono::DateTime<chrono::Utc> {
    hub.now() - chrono::Duration::seconds(MAX_TIME_WINDOW_SECS as i64)
}

/// Moves the counts of `fact`, journaled at `seq`, inside the horizon into
/// `ledgers`, and indexes them (the fold no longer sees them).
pub(super) fn collect_counts(
    ledgers: &mut LedgersByWindow,
    index: &CountIndex,
    seq: Seq,
    fact: &mut Fact,
    oldest: chrono::DateTime<chrono::Utc>,
) {
    let mut counts = fact.take_counts();
    counts.retain(|count| count.at >= oldest);
    index.record(seq, &counts);
    for count in counts {
        if let (Some(quantity), true) = (count.quantity, count.at >= oldest) {
            let WindowKey { policy_id, scope_key } = count.window;
            let by_scope = match ledgers.get_mut(&policy_id) {
                Some(by_scope) => by_scope,
                None => ledgers.entry(policy_id).or_default(),
            };
            by_scope.entry(scope_key).or_default().push(count.at, quantity, count.activity_id);
        }
    }
}

/// Sets up what runs on a leader from the state: the windows with their
/// counts; then expires the approvals whose deadline passed while nobody led
/// (approval actors start when a decision or a deadline reaches them).
pub(super) async fn start_leading(hub: &Arc<Hub>, ledgers: LedgersByWindow) {
    let state = hub.state().clone();
    let windows = restore_windows(hub, ledgers);
    telemetry::approvals_pending(state.pending_approval_count());
    let expired = expire_due(hub).await;
    tracing::info!(windows, expired, pending = state.pending_approval_count(), "leading from the state");
}

/// Starts the actor of every window of a velocity policy that still has
/// counts inside its horizon; counts outside every horizon are not kept in
/// memory. Returns how many it started.
fn restore_windows(hub: &Hub, ledgers: LedgersByWindow) -> usize {
    let now = hub.now();
    let mut started = 0;
    for (policy_id, by_scope) in ledgers {
        let Some(policy) = hub.state().compiled(&policy_id) else { continue };
        let CompiledRule::Velocity(velocity) = &policy.rule else { continue };
        for (scope_key, mut ledger) in by_scope {
            ledger.prune(velocity.span, now);
            if !ledger.is_empty() {
                hub.book().restore_window(WindowKey { policy_id: policy_id.clone(), scope_key }, ledger, now);
                started += 1;
            }
        }
    }
    started
}
