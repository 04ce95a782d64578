//! [`RedbJournal`]: the journal in one redb table, `u64 -> &[u8]`, and, with
//! the default [`Commit::Logged`], a commit log in front of it.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use redb::backends::FileBackend;
use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, StorageBackend,
    TableDefinition, TableError, WriteTransaction,
};
use warden_journal::{Journal, JournalError, Record, Seq};

use crate::checkpointer::Checkpointer;
use crate::log::{self, Log};
use crate::record;

/// The one table: seq -> stored record (see [`crate::record`]).
pub(crate) const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("warden_journal");

/// Records held in memory after which the checkpoint thread is asked to
/// write them into redb (one two-phase commit; the log keeps their frames):
/// this keeps the memory held and each checkpoint small, where one of a
/// full 16 MiB log of 300-byte records took 89 ms.
const CHECKPOINT_RECORDS: usize = 2048;

/// A durable [`Journal`] in a redb file. See the [crate docs](crate) for what
/// survives a crash and how corruption is reported.
#[derive(Debug)]
pub struct RedbJournal {
    path: PathBuf,
    commit: Commit,
    log_capacity: u64,
    /// Records held in memory (acknowledged in the log, not yet in redb)
    /// beyond which they are moved into redb.
    checkpoint_records: usize,
    /// Whether a thread of the store's moves them (the default), or the
    /// next append before its frame.
    checkpoint_in_background: bool,
    /// Shared with the checkpointer, which drops a store it failed on.
    handle: Arc<Mutex<Handle>>,
    /// Whether a dropped store may be replaced by opening the files at
    /// `path` (tests on a model disk have none to open).
    reopens: bool,
    /// Held by `append` (and `checkpoint`) from its write to its cleanup
    /// after a failure, so no other batch can commit before a failed one is
    /// scheduled for removal.
    append: Mutex<()>,
}

/// The open store, or what must happen before the next one is used.
#[derive(Debug)]
pub(crate) struct Handle {
    /// `None` after a failed write: the next call reopens the files.
    pub(crate) store: Option<Arc<Store>>,
    /// The first seq of a batch whose commit failed: on reopen, records from
    /// there on are removed, should the failed commit have reached the disk.
    unacknowledged_from: Option<Seq>,
}

/// An open journal: the database and, in the logged commit, the commit log
/// with the records it holds that redb does not yet.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) db: Database,
    /// Written only under `RedbJournal::append`.
    log: Mutex<Option<Log>>,
    tail: Mutex<Tail>,
    /// Held from the snapshot of the tail to its trim, and by any other
    /// write into redb, so that two writers never give the same seqs.
    redb_writes: Mutex<()>,
    /// In the logged commit, unless checkpoints are made inline.
    checkpointer: std::sync::OnceLock<Checkpointer>,
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

impl RedbJournal {
    /// Opens the journal in the redb file at `path` (with its commit log
    /// beside it, [`log_path`](Self::log_path)), creating the files if they
    /// are missing. Every page of the file is verified first, a file left by
    /// a crash is repaired, and the records of the log are checkpointed into
    /// the file (see the [crate docs](crate)).
    ///
    /// Fails with [`JournalError::Storage`] if a file cannot be opened, is
    /// not a redb database, is open in another process, or fails redb's
    /// integrity check, and with [`JournalError::Corrupt`] if the log does not
    /// continue the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, JournalError> {
        Self::open_with(path, Commit::default())
    }

    /// [`open`](Self::open), committing with `commit` instead of the default
    /// logged commit.
    pub fn open_with(path: impl AsRef<Path>, commit: Commit) -> Result<Self, JournalError> {
        let path = path.as_ref().to_path_buf();
        let journal = Self::unopened(path, commit, log::CAPACITY);
        let store = journal.open_store(None)?;
        journal.install(store)?;
        Ok(journal)
    }

    /// The path of the redb file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of the commit log beside the redb file at `path`: the same
    /// name with `.log` added.
    pub fn log_path(path: impl AsRef<Path>) -> PathBuf {
        let mut name = path.as_ref().as_os_str().to_owned();
        name.push(".log");
        PathBuf::from(name)
    }

    /// Moves the records of the commit log into the redb file, in one
    /// two-phase commit, and empties the log. The journal does it by itself
    /// when the log is full and when it is dropped; nothing is lost without
    /// it. Does nothing when the journal does not commit through a log.
    pub fn checkpoint(&self) -> Result<(), JournalError> {
        let store = self.store()?;
        self.checkpoint_store(&store)
    }

    fn checkpoint_store(&self, store: &Arc<Store>) -> Result<(), JournalError> {
        let _serial = self.append.lock().unwrap_or_else(PoisonError::into_inner);
        let mut log = lock(&store.log);
        let Some(log) = log.as_mut() else { return Ok(()) };
        store.checkpoint(log).inspect_err(|_| self.discard(store, None))
    }

    /// A journal on `db`, already open, whose file is at `path`, with its
    /// commit log (in the logged commit) on `log_storage` of `log_capacity`
    /// bytes. A reopen after a failure opens the files at `path` instead.
    #[cfg(test)]
    pub(crate) fn from_storage(
        path: PathBuf,
        db: Database,
        commit: Commit,
        log_storage: Option<Box<dyn StorageBackend>>,
        log_capacity: u64,
    ) -> Result<Self, JournalError> {
        let mut journal = Self::unopened(path, commit, log_capacity);
        journal.checkpoint_in_background = false;
        let log = log_storage.map(|storage| Log::new(storage, log_capacity));
        let store = Store::recover(db, log, None, commit)?;
        journal.install(store)?;
        Ok(journal)
    }

    /// Checkpoints inline, by the append after `records` held records (the
    /// default of [`from_storage`](Self::from_storage), whose runs must do
    /// the same disk operations every time).
    #[cfg(test)]
    pub(crate) fn checkpointing_every(mut self, records: usize) -> Self {
        self.checkpoint_records = records;
        self
    }

    /// Never reopens the files at its path after a failure: its storage is
    /// a model the test gave it.
    #[cfg(test)]
    pub(crate) fn without_reopening(mut self) -> Self {
        self.reopens = false;
        self
    }

    /// Checkpoints on the store's thread after `records` held records, as
    /// [`open`](Self::open) does after [`CHECKPOINT_RECORDS`].
    #[cfg(test)]
    pub(crate) fn checkpointing_in_background_every(mut self, records: usize) -> Self {
        self.checkpoint_records = records;
        self.checkpoint_in_background = true;
        let store = self.handle().store.clone();
        if let Some(store) = store.filter(|s| lock(&s.log).is_some()) {
            self.start_checkpointer_of(&store).expect("checkpoint thread");
        }
        self
    }

    fn unopened(path: PathBuf, commit: Commit, log_capacity: u64) -> Self {
        Self {
            path,
            commit,
            log_capacity,
            checkpoint_records: CHECKPOINT_RECORDS,
            checkpoint_in_background: true,
            reopens: true,
            handle: Arc::new(Mutex::new(Handle { store: None, unacknowledged_from: None })),
            append: Mutex::new(()),
        }
    }

    pub(crate) fn handle(&self) -> MutexGuard<'_, Handle> {
        // The handle is only ever replaced whole, so a panic elsewhere while
        // the lock was held cannot have left it half updated.
        lock(&self.handle)
    }

    /// Opens the files and recovers the log into the database.
    fn open_store(&self, unacknowledged_from: Option<Seq>) -> Result<Store, JournalError> {
        let db = open_database(&self.path, unacknowledged_from, self.commit)?;
        let log_path = Self::log_path(&self.path);
        let log = open_log_file(&log_path, self.commit)?.map(|storage| Log::new(storage, self.log_capacity));
        let left_by_another_commit = log.is_some() && self.commit != Commit::Logged;
        let store = Store::recover(db, log, unacknowledged_from, self.commit)?;
        if left_by_another_commit {
            // Its records are in redb now.
            std::fs::remove_file(&log_path).map_err(io_storage("remove the recovered commit log"))?;
        }
        Ok(store)
    }

    /// The open store, reopening the files if the last write failed.
    pub(crate) fn store(&self) -> Result<Arc<Store>, JournalError> {
        let mut handle = self.handle();
        if let Some(store) = &handle.store {
            return Ok(Arc::clone(store));
        }
        if !self.reopens {
            return Err(JournalError::Storage("the storage failed and this journal does not reopen it".into()));
        }
        let store = self.share(self.open_store(handle.unacknowledged_from)?)?;
        handle.store = Some(Arc::clone(&store));
        handle.unacknowledged_from = None;
        Ok(store)
    }

    /// Makes `store` the journal's open store.
    fn install(&self, store: Store) -> Result<(), JournalError> {
        let store = self.share(store)?;
        self.handle().store = Some(store);
        Ok(())
    }

    /// `store`, shared, with its checkpoint thread started if it has a log.
    fn share(&self, store: Store) -> Result<Arc<Store>, JournalError> {
        let store = Arc::new(store);
        if self.checkpoint_in_background && lock(&store.log).is_some() {
            self.start_checkpointer_of(&store).map_err(io_storage("start the checkpoint thread"))?;
        }
        Ok(store)
    }

    /// Starts the thread that checkpoints `store` when asked. It holds weak
    /// references only (the handle holds the store, which holds the
    /// thread), and the store itself only during a checkpoint.
    fn start_checkpointer_of(&self, store: &Arc<Store>) -> std::io::Result<()> {
        let (weak_store, weak_handle) = (Arc::downgrade(store), Arc::downgrade(&self.handle));
        let checkpointer = Checkpointer::start(move || {
            let Some(store) = weak_store.upgrade() else { return false };
            if store.move_tail_into_redb().is_ok() {
                return true;
            }
            // The records are still held and in the log; the next call
            // reopens the files and recovers them into redb. The thread lets
            // its reference go first, so that the store, if no call holds
            // it, closes under the handle's lock, before any reopen.
            let failed = Arc::as_ptr(&store);
            drop(store);
            if let Some(handle) = weak_handle.upgrade() {
                discard_by_address(&handle, failed);
            }
            false
        })?;
        let _ = store.checkpointer.set(checkpointer);
        Ok(())
    }

    /// Drops `store` after a failed write, so the next call reopens the
    /// files, and remembers that records from `first` on, if a commit of them
    /// was attempted, were never acknowledged.
    fn discard(&self, store: &Arc<Store>, first: Option<Seq>) {
        discard(&self.handle, store, first);
    }

    /// Appends through the log: the frame's fdatasync is the commit.
    fn append_logged(&self, store: &Arc<Store>, log: &mut Log, payloads: &[Vec<u8>]) -> Result<Seq, JournalError> {
        if !log.has_room_for(payloads) {
            // Waits for a checkpoint under way on the thread, if any.
            store.checkpoint(log).inspect_err(|_| self.discard(store, None))?;
        } else if store.checkpointer.get().is_none() && store.held_records() >= self.checkpoint_records {
            store.move_tail_into_redb().inspect_err(|_| self.discard(store, None))?;
        }
        let first = store.next_seq()?;
        if first.checked_add(payloads.len() as Seq - 1).is_none() {
            return Err(seq_exhausted());
        }
        if !log.could_hold(payloads) {
            // A batch larger than the whole log goes straight into redb; the
            // checkpoint above left nothing in the log before it.
            let mut committing = None;
            let _redb_writes = lock(&store.redb_writes);
            let written = write_batch_at(&store.db, Commit::TwoPhase, Some(first), payloads, &mut committing)
                .inspect_err(|_| self.discard(store, committing))?;
            lock(&store.tail).first = written + payloads.len() as Seq;
            return Ok(written);
        }
        if let Err(e) = log.append(first, payloads) {
            // INVARIANT (failed batch invisible): the frame may be on disk,
            // whole. Its first page is zeroed now, so that no later open
            // finds it even if this process never reopens the log; and the
            // reopen reads the log only up to it anyway.
            let _ = log.erase_failed();
            self.discard(store, Some(first));
            return Err(io_storage("append to the commit log")(e));
        }
        let held = {
            let mut tail = lock(&store.tail);
            tail.records.extend(payloads.iter().map(|p| Arc::from(p.as_slice())));
            tail.records.len()
        };
        if let Some(checkpointer) = store.checkpointer.get().filter(|_| held >= self.checkpoint_records) {
            checkpointer.ask();
        }
        Ok(first)
    }
}

impl Drop for RedbJournal {
    /// A journal closed cleanly leaves its records in the redb file and its
    /// log empty. A failure here loses nothing: the next open recovers.
    fn drop(&mut self) {
        // Only a store still open: after a failure the files are left for
        // the next open to recover, not reopened here.
        let Some(store) = self.handle().store.clone() else { return };
        let _ = self.checkpoint_store(&store);
        self.handle().store = None;
        // The thread may hold the store for a moment: once it is joined,
        // this is the last reference, and the files close here, before
        // `drop` returns (an open right after must find them closed).
        if let Some(checkpointer) = store.checkpointer.get() {
            checkpointer.stop();
        }
        drop(store);
    }
}

impl Store {
    /// The store over `db` after a restart: the batches of `log` that redb
    /// does not hold (and that come before `unacknowledged_from`) are
    /// written into redb, then the log is emptied. Under a commit without a
    /// log, a log left from an earlier run is recovered the same way, then
    /// removed.
    fn recover(
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
    fn next_seq(&self) -> Result<Seq, JournalError> {
        let tail = lock(&self.tail);
        tail.first.checked_add(tail.records.len() as Seq).ok_or_else(seq_exhausted)
    }

    /// Writes the log's records into redb in one two-phase commit, then
    /// empties the log. On error the log still holds every record.
    fn checkpoint(&self, log: &mut Log) -> Result<(), JournalError> {
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

    fn held_records(&self) -> usize {
        lock(&self.tail).records.len()
    }
}

impl Journal for RedbJournal {
    fn append(&self, payloads: &[Vec<u8>]) -> Result<Seq, JournalError> {
        if payloads.is_empty() {
            return next_seq(self.last_seq()?);
        }
        // Poisoning cannot leave anything half done: the lock guards no data.
        let _serial = self.append.lock().unwrap_or_else(PoisonError::into_inner);
        let store = self.store()?;
        let mut log = lock(&store.log);
        if let Some(log) = log.as_mut() {
            return self.append_logged(&store, log, payloads);
        }
        let mut committing = None;
        let result = write_batch(&store.db, self.commit, payloads, &mut committing);
        if result.is_err() {
            // After a failed write redb refuses further use of this handle
            // (`PreviousIo`) until the file is reopened; see the crate docs.
            self.discard(&store, committing);
        }
        result
    }

    fn scan(&self, from: Seq, visit: &mut dyn FnMut(Record) -> Result<(), JournalError>) -> Result<(), JournalError> {
        let store = self.store()?;
        // The log's records and redb's snapshot are taken together: a
        // checkpoint commits to redb before it drops records from the tail,
        // so every record is in one of the two (or in both, seen once).
        let (tail_first, tail, txn) = {
            let tail = lock(&store.tail);
            let skip = from.saturating_sub(tail.first).min(tail.records.len() as Seq) as usize;
            let records: Vec<Arc<[u8]>> = tail.records.iter().skip(skip).cloned().collect();
            let txn = store.db.begin_read().map_err(storage("begin read transaction"))?;
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
            for entry in table.range(start..).map_err(storage("scan"))? {
                let (key, value) = entry.map_err(storage("scan"))?;
                let seq = key.value();
                check(seq, &mut expected)?;
                let payload = record::decode(seq, value.value())?;
                visit(Record { seq, payload })?;
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

    fn read(&self, seq: Seq) -> Result<Option<Record>, JournalError> {
        let store = self.store()?;
        if let Some(payload) = lock(&store.tail).get(seq) {
            return Ok(Some(Record { seq, payload: payload.to_vec() }));
        }
        // Not in the tail: redb holds it if anything does (a checkpoint
        // commits to redb before it drops records from the tail).
        let txn = store.db.begin_read().map_err(storage("begin read transaction"))?;
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
        let store = self.store()?;
        if let Some(last) = lock(&store.tail).last() {
            return Ok(Some(last));
        }
        last_in(&store.db)
    }
}

/// Writes `payloads` into redb in one transaction committed with `commit`
/// (a log's checkpoint commits in two phases); returns the first seq given.
/// `committing` is set to that seq just before the commit, which may reach
/// the disk even if it fails.
fn write_batch(
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
        let last = table.last().map_err(storage("read last record"))?;
        let next = next_seq(last.map(|(seq, _)| seq.value()))?;
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
        let mut stored = Vec::new();
        for (payload, seq) in payloads.iter().zip(next..) {
            record::encode_into(seq, payload.as_ref(), &mut stored);
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

/// How a batch reaches the disk; the crate docs weigh the three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Commit {
    /// One frame appended to the commit log, then one fdatasync (the
    /// default); the log is checkpointed into redb in two phases when full.
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

/// Drops `store` from `handle` after a failed write, so the next call
/// reopens the files, and remembers that records from `first` on, if a
/// commit of them was attempted, were never acknowledged.
fn discard(handle: &Mutex<Handle>, store: &Arc<Store>, first: Option<Seq>) {
    let mut handle = lock(handle);
    if let Some(first) = first {
        let earliest = handle.unacknowledged_from.map_or(first, |f| f.min(first));
        handle.unacknowledged_from = Some(earliest);
    }
    // Another caller may already have replaced it with a fresh one.
    if handle.store.as_ref().is_some_and(|current| Arc::ptr_eq(current, store)) {
        handle.store = None;
    }
}

/// [`discard`] of the store at `failed`, by a caller that holds no reference
/// to it any more: if the handle held the last one, the store closes here,
/// under the handle's lock, so no reopen can find its files still open.
fn discard_by_address(handle: &Mutex<Handle>, failed: *const Store) {
    let mut handle = lock(handle);
    if handle.store.as_ref().is_some_and(|current| std::ptr::eq(Arc::as_ptr(current), failed)) {
        handle.store = None;
    }
}

/// Opens the commit log beside the redb file: created if the journal
/// commits through it, else only if one was left (to be recovered and
/// removed by `open_store`).
fn open_log_file(path: &Path, commit: Commit) -> Result<Option<Box<dyn StorageBackend>>, JournalError> {
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
fn last_in(db: &Database) -> Result<Option<Seq>, JournalError> {
    let txn = db.begin_read().map_err(storage("begin read transaction"))?;
    let Some(table) = records(&txn)? else {
        return Ok(None);
    };
    let last = table.last().map_err(storage("read last record"))?;
    Ok(last.map(|(seq, _)| seq.value()))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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
fn next_seq(last: Option<Seq>) -> Result<Seq, JournalError> {
    match last {
        None => Ok(1),
        Some(last) => last.checked_add(1).ok_or_else(seq_exhausted),
    }
}

fn seq_exhausted() -> JournalError {
    JournalError::Storage("journal is full: no seq is left after `u64::MAX`".into())
}

/// Maps an I/O error of the commit log to [`JournalError::Storage`].
fn io_storage(what: &str) -> impl Fn(std::io::Error) -> JournalError + '_ {
    move |e| JournalError::Storage(format!("could not {what}: {e}"))
}

/// Maps a redb error to [`JournalError::Storage`], saying what was being done.
fn storage<E: Into<redb::Error>>(what: &str) -> impl Fn(E) -> JournalError + '_ {
    move |e| JournalError::Storage(format!("redb could not {what}: {}", e.into()))
}
