//! Callers' idempotency keys (`externalId`) and the activity each answered.
//!
//! A key's slot is made by the first evaluation that carries it (so that
//! concurrent repeats wait for that one instead of evaluating again) and is
//! filled when the evaluation is answered, or by the fold when replayed. Keys
//! older than the retention are forgotten: memory grows with the keys of the
//! retention period, not with every key ever sent. Keys are chosen by callers
//! and may be adversarial: std's keyed hash.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use foldhash::fast::RandomState;
use tokio::sync::OnceCell;

/// One key: the activity it answered (once answered) and when it was first seen.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The activity id, set once.
    pub(crate) activity: OnceCell<String>,
    /// Unix seconds of the first use.
    at: i64,
}

/// The keys.
#[derive(Debug, Default)]
pub(crate) struct ExternalIds {
    /// Caller-chosen keys: hashed with a seeded fast hasher.
    slots: DashMap<String, Arc<Slot>, RandomState>,
}

impl ExternalIds {
    /// The slot of `key`, and whether it was made now (the key is new).
    pub(crate) fn slot(&self, key: &str, now: DateTime<Utc>) -> (Arc<Slot>, bool) {
        // Most keys are new: one lookup that inserts, rather than a read
        // first (a repeat pays for the key's copy instead).
        match self.slots.entry(key.to_owned()) {
            dashmap::Entry::Occupied(slot) => (slot.get().clone(), false),
            dashmap::Entry::Vacant(slot) => {
                let fresh = Arc::new(Slot { activity: OnceCell::new(), at: now.timestamp() });
                (slot.insert(fresh).clone(), true)
            }
        }
    }

    /// Forgets the slot of `key` if no activity answered it and nobody holds
    /// it (an evaluation that failed, a validation error included): a
    /// refused request keeps no key. A slot someone holds is left to them:
    /// a concurrent use of the key is waiting to fill it (or fills it), and
    /// its holder clones it under the same shard lock this checks it under.
    pub(crate) fn forget_unanswered(&self, key: &str) {
        self.slots.remove_if(key, |_, slot| !slot.activity.initialized() && Arc::strong_count(slot) == 1);
    }

    /// Fold: `key` answered with `activity` at `at`. A slot being filled by
    /// the live evaluation that journaled this is left to it; a slot holding
    /// another activity was forgotten (past its retention) when this one was
    /// evaluated, so this one replaces it.
    pub(crate) fn record(&self, key: String, activity: &str, at: DateTime<Utc>) {
        let answered = || {
            let slot = Slot { activity: OnceCell::new_with(Some(activity.to_owned())), at: at.timestamp() };
            Arc::new(slot)
        };
        match self.slots.entry(key) {
            dashmap::Entry::Vacant(slot) => {
                slot.insert(answered());
            }
            dashmap::Entry::Occupied(mut slot) => match slot.get().activity.get() {
                Some(known) if known != activity => {
                    slot.insert(answered());
                }
                _ => {
                    let _ = slot.get().activity.set(activity.to_owned());
                }
            },
        }
    }

    /// Forgets the answered keys first seen before `cutoff`; answers how many.
    pub(crate) fn forget_before(&self, cutoff: DateTime<Utc>) -> usize {
        let before = self.slots.len();
        let cutoff = cutoff.timestamp();
        // A slot still being filled is kept: its evaluation is in flight (and
        // holds it). An empty one nobody holds is an evaluation that ended
        // without forgetting it (a panic): it goes with the answered ones.
        self.slots.retain(|_, slot| slot.at >= cutoff || (!slot.activity.initialized() && Arc::strong_count(slot) > 1));
        before - self.slots.len()
    }

    /// How many keys are kept.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_first_use_keeps_no_slot_unless_someone_holds_it() {
        let keys = ExternalIds::default();
        let now = Utc::now();
        let (slot, made) = keys.slot("k", now);
        assert!(made);
        let (again, made_again) = keys.slot("k", now);
        assert!(!made_again && Arc::ptr_eq(&slot, &again));
        // Held by a concurrent use: kept for it to fill.
        drop(slot);
        keys.forget_unanswered("k");
        assert_eq!(keys.len(), 1);
        // Held by nobody and unanswered: forgotten.
        drop(again);
        keys.forget_unanswered("k");
        assert_eq!(keys.len(), 0);
        // Answered: kept, held or not.
        let (slot, _) = keys.slot("k", now);
        slot.activity.set("ac-1".into()).unwrap();
        drop(slot);
        keys.forget_unanswered("k");
        assert_eq!(keys.len(), 1);
    }

    #[test]
    fn past_the_retention_only_a_slot_being_filled_is_kept() {
        let keys = ExternalIds::default();
        let then = Utc::now();
        let (answered, _) = keys.slot("answered", then);
        answered.activity.set("ac-1".into()).unwrap();
        let (being_filled, _) = keys.slot("being-filled", then);
        drop(keys.slot("left-empty", then)); // its evaluation panicked
        drop(answered);
        assert_eq!(keys.forget_before(then + chrono::Duration::seconds(1)), 2);
        assert_eq!(keys.len(), 1);
        assert!(keys.slot("being-filled", then).0.activity.get().is_none());
        drop(being_filled);
    }
}
