//! The in-memory journal: the reference behaviour of the trait, for tests.

use std::sync::{Mutex, MutexGuard};

use crate::{Journal, JournalError, Record, Seq};

/// A [`Journal`] kept in memory: nothing survives the process.
///
/// The record with seq `n` is `records[n - 1]`; one mutex orders every call,
/// so a batch is appended atomically and readers never see half of one.
#[derive(Debug, Default)]
pub struct MemoryJournal {
    records: Mutex<Vec<Vec<u8>>>,
}

impl MemoryJournal {
    /// An empty journal; its first record will get seq 1.
    pub fn new() -> Self {
        Self::default()
    }

    fn records(&self) -> Result<MutexGuard<'_, Vec<Vec<u8>>>, JournalError> {
        self.records.lock().map_err(|_| JournalError::Storage("memory journal lock poisoned".into()))
    }
}

/// Seq of the record at `index` (0-based) in the vector.
fn seq_of(index: usize) -> Seq {
    index as Seq + 1
}

impl Journal for MemoryJournal {
    fn append(&self, payloads: &[Vec<u8>]) -> Result<Seq, JournalError> {
        let mut records = self.records()?;
        let first = seq_of(records.len());
        records.extend_from_slice(payloads);
        Ok(first)
    }

    fn scan(&self, from: Seq, visit: &mut dyn FnMut(Record) -> Result<(), JournalError>) -> Result<(), JournalError> {
        // Copy the tail out first, so `visit` may call back into the journal.
        let tail: Vec<Vec<u8>> = {
            let records = self.records()?;
            let start = usize::try_from(from.saturating_sub(1)).unwrap_or(usize::MAX);
            records.get(start..).map(<[_]>::to_vec).unwrap_or_default()
        };
        let first = from.max(1);
        for (payload, seq) in tail.into_iter().zip(first..) {
            visit(Record { seq, payload })?;
        }
        Ok(())
    }

    fn read(&self, seq: Seq) -> Result<Option<Record>, JournalError> {
        let records = self.records()?;
        let Some(index) = seq.checked_sub(1).and_then(|i| usize::try_from(i).ok()) else {
            return Ok(None);
        };
        Ok(records.get(index).map(|payload| Record { seq, payload: payload.clone() }))
    }

    fn last_seq(&self) -> Result<Option<Seq>, JournalError> {
        let len = self.records()?.len() as Seq;
        Ok((len > 0).then_some(len))
    }

    /// An append extends a vector under the journal's mutex, which other
    /// calls hold only to copy records in or out (a whole scan's tail at
    /// most: an append may wait that long, never on a disk).
    fn appends_without_waiting(&self) -> bool {
        true
    }
}
