//! [`RedbJournal`]: the journal in one redb table, `u64 -> &[u8]`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableError,
    WriteTransaction,
};
use warden_journal::{Journal, JournalError, Record, Seq};

use crate::record;

/// The one table: seq -> stored record (see [`crate::record`]).
pub(crate) const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("warden_journal");

/// A durable [`Journal`] in a redb file. See the [crate docs](crate) for what
/// survives a crash and how corruption is reported.
#[derive(Debug)]
pub struct RedbJournal {
    path: PathBuf,
    commit: Commit,
    handle: Mutex<Handle>,
    /// Held by `append` from its write to its cleanup after a failure, so no
    /// other batch can commit before a failed one is scheduled for removal.
    append: Mutex<()>,
}

/// The open database, or what must happen before the next one is used.
#[derive(Debug)]
struct Handle {
    /// `None` after a failed write: the next call reopens the file.
    db: Option<Arc<Database>>,
    /// The first seq of a batch whose commit failed: on reopen, records from
    /// there on are removed, should the failed commit have reached the disk.
    unacknowledged_from: Option<Seq>,
}

impl RedbJournal {
    /// Opens the journal in the redb file at `path`, creating the file if it
    /// is missing. Every page of the file is verified first, and a file left
    /// by a crash is repaired (see the [crate docs](crate)).
    ///
    /// Fails with [`JournalError::Storage`] if the file cannot be opened, is
    /// not a redb database, is open in another process, or fails redb's
    /// integrity check.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, JournalError> {
        Self::open_with(path, Commit::default())
    }

    /// [`open`](Self::open), committing with `commit` instead of the default
    /// one-phase commit.
    pub fn open_with(path: impl AsRef<Path>, commit: Commit) -> Result<Self, JournalError> {
        let path = path.as_ref().to_path_buf();
        let db = open_database(&path, None, commit)?;
        Ok(Self::from_database(path, db, commit))
    }

    /// The path of the redb file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A journal on `db`, already open, whose file is at `path`.
    pub(crate) fn from_database(path: PathBuf, db: Database, commit: Commit) -> Self {
        Self {
            path,
            commit,
            handle: Mutex::new(Handle { db: Some(Arc::new(db)), unacknowledged_from: None }),
            append: Mutex::new(()),
        }
    }

    fn handle(&self) -> MutexGuard<'_, Handle> {
        // The handle is only ever replaced whole, so a panic elsewhere while
        // the lock was held cannot have left it half updated.
        self.handle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The open database, reopening the file if the last write failed.
    fn database(&self) -> Result<Arc<Database>, JournalError> {
        let mut handle = self.handle();
        if let Some(db) = &handle.db {
            return Ok(Arc::clone(db));
        }
        let db = Arc::new(open_database(&self.path, handle.unacknowledged_from, self.commit)?);
        handle.db = Some(Arc::clone(&db));
        handle.unacknowledged_from = None;
        Ok(db)
    }

    /// Drops `db` after a failed write, so the next call reopens the file,
    /// and remembers that records from `first` on, if a commit of them was
    /// attempted, were never acknowledged.
    fn discard(&self, db: &Arc<Database>, first: Option<Seq>) {
        let mut handle = self.handle();
        if let Some(first) = first {
            let earliest = handle.unacknowledged_from.map_or(first, |f| f.min(first));
            handle.unacknowledged_from = Some(earliest);
        }
        // Another caller may already have replaced it with a fresh one.
        if handle.db.as_ref().is_some_and(|current| Arc::ptr_eq(current, db)) {
            handle.db = None;
        }
    }

    /// Writes `payloads` in one transaction; returns the first seq given.
    /// `committing` is set to that seq just before the commit, which may
    /// reach the disk even if it fails.
    fn write_batch(
        db: &Database,
        commit: Commit,
        payloads: &[Vec<u8>],
        committing: &mut Option<Seq>,
    ) -> Result<Seq, JournalError> {
        let mut txn = db.begin_write().map_err(storage("begin write transaction"))?;
        configure_commit(&mut txn, commit)?;
        let next = {
            let mut table = txn.open_table(RECORDS).map_err(storage("open table"))?;
            let last = table.last().map_err(storage("read last record"))?;
            let next = next_seq(last.map(|(seq, _)| seq.value()))?;
            // `payloads` is not empty: `append` answers empty batches itself.
            if next.checked_add(payloads.len() as Seq - 1).is_none() {
                return Err(seq_exhausted());
            }
            let mut stored = Vec::new();
            for (payload, seq) in payloads.iter().zip(next..) {
                record::encode_into(seq, payload, &mut stored);
                table.insert(seq, stored.as_slice()).map_err(storage("insert record"))?;
            }
            next
        };
        // INVARIANT (answered means durable): `commit` returns only after
        // the fsync of an immediate-durability commit; only then is the
        // batch acknowledged.
        *committing = Some(next);
        txn.commit().map_err(storage("commit"))?;
        Ok(next)
    }
}

impl Journal for RedbJournal {
    fn append(&self, payloads: &[Vec<u8>]) -> Result<Seq, JournalError> {
        if payloads.is_empty() {
            return next_seq(self.last_seq()?);
        }
        // Poisoning cannot leave anything half done: the lock guards no data.
        let _serial = self.append.lock().unwrap_or_else(PoisonError::into_inner);
        let db = self.database()?;
        let mut committing = None;
        let result = Self::write_batch(&db, self.commit, payloads, &mut committing);
        if result.is_err() {
            // After a failed write redb refuses further use of this handle
            // (`PreviousIo`) until the file is reopened; see the crate docs.
            self.discard(&db, committing);
        }
        result
    }

    fn scan(&self, from: Seq, visit: &mut dyn FnMut(Record) -> Result<(), JournalError>) -> Result<(), JournalError> {
        let db = self.database()?;
        let txn = db.begin_read().map_err(storage("begin read transaction"))?;
        let Some(table) = records(&txn)? else {
            return Ok(());
        };
        let start = from.max(1);
        // The seq the next record must have; `None` until the first one is
        // seen when the scan starts at 1 (nothing may come before it then).
        let mut expected = (start == 1).then_some(1);
        for entry in table.range(start..).map_err(storage("scan"))? {
            let (key, value) = entry.map_err(storage("scan"))?;
            let seq = key.value();
            if let Some(expected) = expected.filter(|&e| e != seq) {
                return Err(JournalError::Corrupt {
                    seq: expected,
                    reason: format!("record is missing: the next stored record is seq `{seq}`"),
                });
            }
            let payload = record::decode(seq, value.value())?;
            visit(Record { seq, payload })?;
            expected = seq.checked_add(1);
        }
        Ok(())
    }

    fn read(&self, seq: Seq) -> Result<Option<Record>, JournalError> {
        let db = self.database()?;
        let txn = db.begin_read().map_err(storage("begin read transaction"))?;
        let Some(table) = records(&txn)? else {
            return Ok(None);
        };
        let Some(value) = table.get(seq).map_err(storage("read record"))? else {
            return Ok(None);
        };
        let payload = record::decode(seq, value.value())?;
        Ok(Some(Record { seq, payload }))
    }

    fn last_seq(&self) -> Result<Option<Seq>, JournalError> {
        let db = self.database()?;
        let txn = db.begin_read().map_err(storage("begin read transaction"))?;
        let Some(table) = records(&txn)? else {
            return Ok(None);
        };
        let last = table.last().map_err(storage("read last record"))?;
        Ok(last.map(|(seq, _)| seq.value()))
    }
}

/// How a commit reaches the disk; the crate docs weigh the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Commit {
    /// Pages, the switch to the new root, then one fsync (the default).
    #[default]
    OnePhase,
    /// Pages and the new root's slot, an fsync, the switch, a second fsync:
    /// redb's advice for input that may be malicious.
    TwoPhase,
}

/// The commit settings of every write; the crate docs say why.
fn configure_commit(txn: &mut WriteTransaction, commit: Commit) -> Result<(), JournalError> {
    txn.set_durability(Durability::Immediate).map_err(storage("set durability"))?;
    txn.set_two_phase_commit(commit == Commit::TwoPhase);
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
fn open_database(path: &Path, unacknowledged_from: Option<Seq>, commit: Commit) -> Result<Database, JournalError> {
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
            table.retain_in(first.., |_, _| false).map_err(storage("remove unacknowledged records"))?;
        }
    }
    txn.commit().map_err(storage("commit"))?;
    Ok(db)
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
fn next_seq(last: Option<Seq>) -> Result<Seq, JournalError> {
    match last {
        None => Ok(1),
        Some(last) => last.checked_add(1).ok_or_else(seq_exhausted),
    }
}

fn seq_exhausted() -> JournalError {
    JournalError::Storage("journal is full: no seq is left after `u64::MAX`".into())
}

/// Maps a redb error to [`JournalError::Storage`], saying what was being done.
fn storage<E: Into<redb::Error>>(what: &str) -> impl Fn(E) -> JournalError + '_ {
    move |e| JournalError::Storage(format!("redb could not {what}: {}", e.into()))
}
