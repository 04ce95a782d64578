//! [`Store`]: an open journal's files, the redb file and its commit log,
//! with the records the log holds that redb does not yet; how records are
//! written into redb, read back from both, and recovered after a restart.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use redb::backends::FileBackend;
use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, StorageBackend,
    TableDefinition, TableError, WriteTransaction,
};
use warden_journal::{JournalError, Record, Seq};

use crate::checkpointer::Checkpointer;
use crate::log::Log;
use crate::record;

/// The one table: the first seq of a run -> the stored run (see
/// [`crate::record`]).
pub(crate) const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("warden_journal");

/// An open journal: the database and, in the logged commit, the commit log
/// with the records it holds that redb does not yet.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) db: Database,
    /// Written only under `RedbJournal::append`.
    pub(crate) log: Mutex<Option<Log>>,
    tail: Mutex<Tail>,
    /// Held from the snapshot of the tail to its trim, and by any other
    /// write into redb, so that two writers never give the same seqs.
    redb_writes: Mutex<()>,
    /// In the logged commit, unless checkpoints are made inline.
    pub(crate) checkpointer: std::sync::OnceLock<Checkpointer>,
}

/// The records acknowledged in the log since the last checkpoint. They are
/// read from here; redb holds every record before `first`.
#[derive(Debug)]
struct Tail {
    first: Seq,
    records: VecDeque<Arc<[u8]>>,
}

impl Tail {
    fn get(&self, seq: Seq) -> Option<&Arc<[u8]>> {
        self.records.get(usize::try_from(seq.checked_sub(self.first)?).ok()?)
    }

    fn last(&self) -> Option<Seq> {
        (!self.records.is_empty()).then(|| self.first + self.records.len() as Seq - 1)
    }
}

impl Store {
    /// The store over `db` after a restart: the batches of `log` that redb
    /// does not hold (and that come before `unacknowledged_from`) are
    /// written into redb, then the log is emptied. Under a commit without a
    /// log, a log left from an earlier run is recovered the same way, then
    /// removed.
    pub(crate) fn recover(
        db: Database,
        log: Option<Log>,
        unacknowledged_from: Option<Seq>,
        commit: Commit,
    ) -> Result<Store, JournalError> {
        let redb_last = last_in(&db)?;
        let first = next_seq(redb_last)?;
        let mut log = log;
        if let Some(log) = log.as_mut() {
            let mut pending: Vec<Vec<u8>> = Vec::new();
            'batches: for batch in log.read().map_err(io_storage("read the commit log"))? {
                for (seq, payload) in (batch.first..).zip(batch.payloads) {
                    if unacknowledged_from.is_some_and(|u| seq >= u) {
                        break 'batches;
                    }
                    if redb_last.is_some_and(|last| seq <= last) {
                        continue;
                    }
                    let expected = first + pending.len() as Seq;
                    if seq != expected {
                        return Err(JournalError::Corrupt {
                            seq: expected,
                            reason: format!("record is missing: the commit log continues at seq `{seq}`"),
                        });
                    }
                    pending.push(payload);
                }
            }
            if !pending.is_empty() {
                write_batch(&db, Commit::TwoPhase, &pending, &mut None)?;
            }
            if commit == Commit::Logged {
                log.reset().map_err(io_storage("empty the commit log"))?;
            }
        }
        let first = next_seq(last_in(&db)?)?;
        Ok(Store {
            db,
            log: Mutex::new(if commit == Commit::Logged { log } else { None }),
            tail: Mutex::new(Tail { first, records: VecDeque::new() }),
            redb_writes: Mutex::new(()),
            checkpointer: std::sync::OnceLock::new(),
        })
    }

    /// The seq the next record gets.
    pub(crate) fn next_seq(&self) -> Result<Seq, JournalError> {
        let tail = lock(&self.tail);
        tail.first.checked_add(tail.records.len() as Seq).ok_or_else(seq_exhausted)
    }

    /// Writes the log's records into redb in one two-phase commit, then
    /// empties the log. On error the log still holds every record.
    pub(crate) fn checkpoint(&self, log: &mut Log) -> Result<(), JournalError> {
        self.move_tail_into_redb()?;
        // INVARIANT (answered means durable): the log is emptied only after
        // its records were committed, durably, into redb.
        log.reset().map_err(io_storage("empty the commit log"))
    }

    /// Writes the records held in memory into redb in one two-phase commit,
    /// and stops holding them; the log keeps their frames, which a recovery
    /// skips (redb holds their seqs). On error nothing changes.
    pub(crate) fn move_tail_into_redb(&self) -> Result<(), JournalError> {
        let _redb_writes = lock(&self.redb_writes);
        let (first, records): (Seq, Vec<Arc<[u8]>>) = {
            let tail = lock(&self.tail);
            (tail.first, tail.records.iter().cloned().collect())
        };
        if records.is_empty() {
            return Ok(());
        }
        write_batch_at(&self.db, Commit::TwoPhase, Some(first), &records, &mut None)?;
        let mut tail = lock(&self.tail);
        tail.records.drain(..records.len());
        tail.first += records.len() as Seq;
        Ok(())
    }

    pub(crate) fn held_records(&self) -> usize {
        lock(&self.tail).records.len()
    }

    /// Holds `payloads`, just acknowledged in the log; answers how many
    /// records are held now.
    pub(crate) fn hold(&self, payloads: &[Vec<u8>]) -> usize {
        let mut tail = lock(&self.tail);
        tail.records.extend(payloads.iter().map(|p| Arc::from(p.as_slice())));
        tail.records.len()
    }

    /// Commits `payloads`, a batch larger than the whole log, straight into
    /// redb in two phases, as the records from `first` on (the log must hold
    /// no record before them). `committing` is set as `write_batch` does.
    pub(crate) fn write_past_the_log(
        &self,
        first: Seq,
        payloads: &[Vec<u8>],
        committing: &mut Option<Seq>,
    ) -> Result<Seq, JournalError> {
        let _redb_writes = lock(&self.redb_writes);
        let written = write_batch_at(&self.db, Commit::TwoPhase, Some(first), payloads, committing)?;
        lock(&self.tail).first = written + payloads.len() as Seq;
        Ok(written)
    }

    /// Every record from `from` on, in order (see [`Journal::scan`]).
    pub(crate) fn scan(
        &self,
        from: Seq,
        visit: &mut dyn FnMut(Record) -> Result<(), JournalError>,
    ) -> Result<(), JournalError> {
        // The log's records and redb's snapshot are taken together: a
        // checkpoint commits to redb before it drops records from the tail,
        // so every record is in one of the two (or in both, seen once).
        let (tail_first, tail, txn) = {
            let tail = lock(&self.tail);
            let skip = from.saturating_sub(tail.first).min(tail.records.len() as Seq) as usize;
            let records: Vec<Arc<[u8]>> = tail.records.iter().skip(skip).cloned().collect();
            let txn = self.db.begin_read().map_err(storage("begin read transaction"))?;
            (tail.first + skip as Seq, records, txn)
        };
        let start = from.max(1);
        // The seq the next record must have; `None` until the first one is
        // seen when the scan starts after 1 (nothing may come before it then).
        let mut expected = (start == 1).then_some(1);
        let check = |seq: Seq, expected: &mut Option<Seq>| {
            if let Some(expected) = expected.filter(|&e| e != seq) {
                return Err(JournalError::Corrupt {
                    seq: expected,
                    reason: format!("record is missing: the next stored record is seq `{seq}`"),
                });
            }
            *expected = seq.checked_add(1);
            Ok(())
        };
        if let Some(table) = records(&txn)? {
            // From the run that holds `start`, if one does.
            let from = with_run_holding(&table, start, |key, _| Ok(key))?.unwrap_or(start);
            for entry in table.range(from..).map_err(storage("scan"))? {
                let (key, value) = entry.map_err(storage("scan"))?;
                for stored in record::records_from(key.value(), value.value(), start) {
                    let (seq, payload) = stored?;
                    if seq < start {
                        continue; // a value of one record, before `start`
                    }
                    check(seq, &mut expected)?;
                    visit(Record { seq, payload: payload.to_vec() })?;
                }
            }
        }
        for (seq, payload) in (tail_first..).zip(tail) {
            if seq < start || expected.is_some_and(|e| seq < e) {
                continue; // already read from redb
            }
            check(seq, &mut expected)?;
            visit(Record { seq, payload: payload.to_vec() })?;
        }
        Ok(())
    }

    /// The record at `seq` (see [`Journal::read`]).
    pub(crate) fn read(&self, seq: Seq) -> Result<Option<Record>, JournalError> {
        if let Some(payload) = lock(&self.tail).get(seq) {
            return Ok(Some(Record { seq, payload: payload.to_vec() }));
        }
        // Not in the tail: redb holds it if anything does (a checkpoint
        // commits to redb before it drops records from the tail).
        let txn = self.db.begin_read().map_err(storage("begin read transaction"))?;
        let Some(table) = records(&txn)? else {
            return Ok(None);
        };
        let payload = with_run_holding(&table, seq, |key, value| record::find(key, value, seq))?.flatten();
        Ok(payload.map(|payload| Record { seq, payload }))
    }

    /// The last seq given (see [`Journal::last_seq`]).
    pub(crate) fn last_seq(&self) -> Result<Option<Seq>, JournalError> {
        if let Some(last) = lock(&self.tail).last() {
            return Ok(Some(last));
        }
        last_in(&self.db)
    }
}

/// Writes `payloads` into redb in one transaction committed with `commit`
/// (a log's checkpoint commits in two phases); returns the first seq given.
/// `committing` is set to that seq just before the commit, which may reach
/// the disk even if it fails.
pub(crate) fn write_batch(
    db: &Database,
    commit: Commit,
    payloads: &[impl AsRef<[u8]>],
    committing: &mut Option<Seq>,
) -> Result<Seq, JournalError> {
    write_batch_at(db, commit, None, payloads, committing)
}

/// [`write_batch`], refusing (before anything is committed) unless the
/// first seq given would be `expected_first`, when one is named.
fn write_batch_at(
    db: &Database,
    commit: Commit,
    expected_first: Option<Seq>,
    payloads: &[impl AsRef<[u8]>],
    committing: &mut Option<Seq>,
) -> Result<Seq, JournalError> {
    let mut txn = db.begin_write().map_err(storage("begin write transaction"))?;
    configure_commit(&mut txn, commit)?;
    let next = {
        let mut table = txn.open_table(RECORDS).map_err(storage("open table"))?;
        let next = next_seq(last_of(&table)?)?;
        if let Some(expected) = expected_first.filter(|&e| e != next) {
            return Err(JournalError::Corrupt {
                seq: expected,
                reason: format!("the redb file continues at seq `{next}`, not where the commit log begins"),
            });
        }
        // `payloads` is not empty: `append` answers empty batches itself.
        if next.checked_add(payloads.len() as Seq - 1).is_none() {
            return Err(seq_exhausted());
        }
        insert_runs(&mut table, next, payloads)?;
        next
    };
    // INVARIANT (answered means durable): `commit` returns only after
    // the fsync of an immediate-durability commit; only then is the
    // batch acknowledged.
    *committing = Some(next);
    txn.commit().map_err(storage("commit"))?;
    Ok(next)
}

/// How a batch reaches the disk; the crate docs weigh the three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Commit {
    /// One frame appended to the commit log, then one fdatasync (the
    /// default); the records are checkpointed into redb in two phases every
    /// 2048 records, on a thread, and when the log is full.
    #[default]
    Logged,
    /// A redb commit per batch: pages, the switch to the new root, then one
    /// fsync.
    OnePhase,
    /// Pages and the new root's slot, an fsync, the switch, a second fsync:
    /// redb's advice for input that may be malicious.
    TwoPhase,
}

/// The commit settings of every write; the crate docs say why.
fn configure_commit(txn: &mut WriteTransaction, commit: Commit) -> Result<(), JournalError> {
    txn.set_durability(Durability::Immediate).map_err(storage("set durability"))?;
    // A logged journal writes redb only at checkpoints, in two phases.
    txn.set_two_phase_commit(commit != Commit::OnePhase);
    txn.set_quick_repair(false);
    Ok(())
}

/// redb's page cache. A journal is written at its end and read through once
/// at start, then only record by record, so a large cache buys little; redb's
/// default (1 GiB) would make the first scan of a large journal copy the whole
/// file into fresh memory, which costs a restart more than reading it.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Opens (or creates) the file, makes sure the table exists, and removes the
/// records from `unacknowledged_from` on, left by a failed commit.
pub(crate) fn open_database(
    path: &Path,
    unacknowledged_from: Option<Seq>,
    commit: Commit,
) -> Result<Database, JournalError> {
    let db = Database::builder()
        .set_check_integrity_on_open(true)
        .set_cache_size(CACHE_BYTES)
        .create(path)
        .map_err(storage(&format!("open `{}`", path.display())))?;
    if unacknowledged_from.is_none() {
        let txn = db.begin_read().map_err(storage("begin read transaction"))?;
        if records(&txn)?.is_some() {
            return Ok(db);
        }
    }
    let mut txn = db.begin_write().map_err(storage("begin write transaction"))?;
    configure_commit(&mut txn, commit)?;
    {
        let mut table = txn.open_table(RECORDS).map_err(storage("open table"))?;
        if let Some(first) = unacknowledged_from {
            // INVARIANT (failed batch invisible): a batch whose commit
            // returned an error may still have reached the disk; it was never
            // acknowledged, so it is removed before anyone reads it. Nothing
            // after it can have committed: `append` held its lock until the
            // old handle was dropped, and every later call comes here first.
            remove_records_from(&mut table, first)?;
        }
    }
    txn.commit().map_err(storage("commit"))?;
    Ok(db)
}

/// Opens the commit log beside the redb file: created if the journal
/// commits through it, else only if one was left (to be recovered and
/// removed by `open_store`).
pub(crate) fn open_log_file(path: &Path, commit: Commit) -> Result<Option<Box<dyn StorageBackend>>, JournalError> {
    let fail = |e| io_storage(&format!("open the commit log `{}`", path.display()))(e);
    if commit != Commit::Logged && !path.exists() {
        return Ok(None);
    }
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(fail)?;
    // The log's name must survive a power cut as well as its frames: the
    // directory is synced at every open (an earlier open may have made the
    // file and died before syncing it).
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(fail)?;
    let backend = FileBackend::new(file).map_err(|e| JournalError::Storage(format!("open the commit log: {e}")))?;
    Ok(Some(Box::new(backend)))
}

/// The seq of the last record redb holds.
pub(crate) fn last_in(db: &Database) -> Result<Option<Seq>, JournalError> {
    let txn = db.begin_read().map_err(storage("begin read transaction"))?;
    let Some(table) = records(&txn)? else {
        return Ok(None);
    };
    last_of(&table)
}

/// The seq of the last record `table` holds.
fn last_of(table: &impl ReadableTable<u64, &'static [u8]>) -> Result<Option<Seq>, JournalError> {
    let Some((key, value)) = table.last().map_err(storage("read last record"))? else {
        return Ok(None);
    };
    record::checked_last(key.value(), value.value()).map(Some)
}

/// `read` of the run whose key is the last at or before `seq` (the one that
/// holds `seq`, if any does), given its key and stored form.
fn with_run_holding<T>(
    table: &impl ReadableTable<u64, &'static [u8]>,
    seq: Seq,
    read: impl FnOnce(Seq, &[u8]) -> Result<T, JournalError>,
) -> Result<Option<T>, JournalError> {
    let Some(entry) = table.range(..=seq).map_err(storage("read record"))?.next_back() else {
        return Ok(None);
    };
    let (key, value) = entry.map_err(storage("read record"))?;
    read(key.value(), value.value()).map(Some)
}

/// Inserts the records from `first` on as runs.
fn insert_runs(
    table: &mut redb::Table<'_, u64, &'static [u8]>,
    first: Seq,
    payloads: &[impl AsRef<[u8]>],
) -> Result<(), JournalError> {
    let mut stored = Vec::new();
    record::for_each_run(first, payloads, &mut stored, |key, run| {
        table.insert(key, run).map(|_| ()).map_err(storage("insert record"))
    })
}

/// Removes every record from `first` on: the runs that begin there or after,
/// and the end of a run that begins before it and reaches it (batches start
/// runs, so none should; the removal stays exact whatever the file holds).
fn remove_records_from(table: &mut redb::Table<'_, u64, &'static [u8]>, first: Seq) -> Result<(), JournalError> {
    table.retain_in(first.., |_, _| false).map_err(storage("remove unacknowledged records"))?;
    let reaching = with_run_holding(table, first, |key, value| {
        if record::last(key, value)? < first {
            return Ok(None);
        }
        let mut kept = Vec::new();
        for stored in record::records(key, value) {
            match stored {
                Ok((seq, payload)) if seq < first => kept.push(payload.to_vec()),
                // What comes from `first` on is removed, whatever it holds.
                Ok(_) => break,
                Err(JournalError::Corrupt { seq, .. }) if seq >= first => break,
                Err(e) => return Err(e),
            }
        }
        Ok(Some((key, kept)))
    })?;
    let Some((key, kept)) = reaching.flatten() else {
        return Ok(());
    };
    table.remove(key).map_err(storage("remove unacknowledged records"))?;
    insert_runs(table, key, &kept)
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every value under these locks is replaced or extended whole, so a
    // panic elsewhere while one was held cannot have left it half updated.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The records table as of `txn`, `None` in a file where it was never made.
fn records(txn: &ReadTransaction) -> Result<Option<ReadOnlyTable<u64, &'static [u8]>>, JournalError> {
    match txn.open_table(RECORDS) {
        Ok(table) => Ok(Some(table)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(storage("open table")(e)),
    }
}

/// The seq after `last`.
pub(crate) fn next_seq(last: Option<Seq>) -> Result<Seq, JournalError> {
    match last {
        None => Ok(1),
        Some(last) => last.checked_add(1).ok_or_else(seq_exhausted),
    }
}

pub(crate) fn seq_exhausted() -> JournalError {
    JournalError::Storage("journal is full: no seq is left after `u64::MAX`".into())
}

/// Maps an I/O error of the commit log to [`JournalError::Storage`].
pub(crate) fn io_storage(what: &str) -> impl Fn(std::io::Error) -> JournalError + '_ {
    move |e| JournalError::Storage(format!("could not {what}: {e}"))
}

/// Maps a redb error to [`JournalError::Storage`], saying what was being done.
pub(crate) fn storage<E: Into<redb::Error>>(what: &str) -> impl Fn(E) -> JournalError + '_ {
    move |e| JournalError::Storage(format!("redb could not {what}: {}", e.into()))
}
