//! Where each velocity policy's counts are journaled: per policy, the seqs of
//! the records that hold its counts, with the time they count from. A window
//! read back from the journal (a rule changed, its actor restarted after a
//! panic, a leader became a standby) reads those records only, instead of
//! scanning the whole journal.
//!
//! Filled by [`State::apply`](super::State::apply) with every fact that
//! carries counts, and by the stages that take the counts out of a fact
//! before folding it (recovery's reader, a standby's follower), through
//! [`CountIndex::record`]. Entries older than the widest window any rule may
//! have are dropped by the registry's sweep: memory follows the counts a
//! window can still see, as the windows' own ledgers do.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use foldhash::fast::RandomState;
use warden_journal::{Journal, Seq};

use crate::error::Error;
use crate::journal::facts::{Count, Fact};
use crate::journal::replay::read_fact;
use crate::policy::window_math::Ledger;
use crate::policy::WindowKey;

/// Per policy, `(counts from, seq)` of each record holding its counts.
#[derive(Default)]
pub(crate) struct CountIndex {
    /// Seeded fast hashing: every counted activity looks its policies up.
    by_policy: DashMap<String, Vec<(DateTime<Utc>, Seq)>, RandomState>,
}

impl CountIndex {
    /// The record at `seq` holds `counts`.
    pub(crate) fn record(&self, seq: Seq, counts: &[Count]) {
        for (i, count) in counts.iter().enumerate() {
            // One entry per policy per record, however many of its windows count.
            if counts[..i].iter().any(|earlier| earlier.window.policy_id == count.window.policy_id) {
                continue;
            }
            match self.by_policy.get_mut(&*count.window.policy_id) {
                Some(mut seqs) => seqs.push((count.at, seq)),
                None => {
                    self.by_policy.entry(count.window.policy_id.to_string()).or_default().push((count.at, seq));
                }
            }
        }
    }

    /// The seqs of the records holding counts of `policy_id` from `since`
    /// on, at or below `upto`, in journal order.
    pub(crate) fn seqs(&self, policy_id: &str, since: DateTime<Utc>, upto: Seq) -> Vec<Seq> {
        let Some(entries) = self.by_policy.get(policy_id) else { return Vec::new() };
        let mut seqs: Vec<Seq> =
            entries.iter().filter(|(at, seq)| *at >= since && *seq <= upto).map(|(_, seq)| *seq).collect();
        // Commits apply concurrently, so entries are only nearly in order.
        seqs.sort_unstable();
        seqs.dedup();
        seqs
    }

    /// The policies with indexed counts.
    pub(crate) fn policies(&self) -> Vec<String> {
        self.by_policy.iter().map(|e| e.key().clone()).collect()
    }

    /// Drops the entries of counts from before `cutoff`; answers how many.
    pub(crate) fn forget_before(&self, cutoff: DateTime<Utc>) -> usize {
        let mut forgotten = 0;
        self.by_policy.retain(|_, entries| {
            let before = entries.len();
            entries.retain(|(at, _)| *at >= cutoff);
            forgotten += before - entries.len();
            !entries.is_empty()
        });
        forgotten
    }

    /// The counts of `policy_id` from `since` on, journaled at or below
    /// `upto`, by window, read from the journal (blocking); `keep` chooses
    /// the windows. A record the index names that cannot be read is an
    /// error, never skipped: a partial ledger would admit past the limit.
    pub(crate) fn read(
        &self,
        journal: &dyn Journal,
        policy_id: &str,
        since: DateTime<Utc>,
        upto: Seq,
        keep: impl Fn(&WindowKey) -> bool,
    ) -> Result<HashMap<WindowKey, Ledger>, Error> {
        let mut ledgers: HashMap<WindowKey, Ledger> = HashMap::new();
        for seq in self.seqs(policy_id, since, upto) {
            let mut fact: Fact = read_fact(journal, seq)?;
            for count in fact.take_counts() {
                if *count.window.policy_id != *policy_id || count.at < since || !keep(&count.window) {
                    continue;
                }
                if let Some(quantity) = count.quantity {
                    ledgers.entry(count.window).or_default().push(count.at, quantity, count.activity_id);
                }
            }
        }
        Ok(ledgers)
    }
}
