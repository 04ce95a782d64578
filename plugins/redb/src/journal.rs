//! [`RedbJournal`]: the journal's public face. It opens the [`Store`], runs
//! each append (through the commit log, or as a redb commit), drops a store
//! a write failed on and reopens the files at the next call, starts the
//! checkpoint thread, and checkpoints when dropped.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

#[cfg(test)]
use redb::{Database, StorageBackend};
use warden_journal::{Journal, JournalError, Record, Seq};

use crate::checkpointer::Checkpointer;
use crate::log::{self, Log};
use crate::store::{
    io_storage, lock, next_seq, open_database, open_log_file, seq_exhausted, write_batch, Commit, Store,
};

/// Records held in memory after which the checkpoint thread is asked to
/// write them into redb (one two-phase commit; the log keeps their frames):
/// this keeps the memory held and each checkpoint small, where one of a
/// full 16 MiB log of 300-byte records took 89 ms.
const CHECKPOINT_RECORDS: usize = 2048;

/// Records held in memory at most (and one batch more) while the checkpoint
/// thread falls behind: the next append then checkpoints before its frame.
/// The log's 16 MiB bound the records' bytes already; this bounds their count,
/// and so the memory a log of tiny records would take (about 40 bytes each
/// besides their payloads).
pub(crate) const HELD_RECORDS_AT_MOST: usize = 16 * CHECKPOINT_RECORDS;

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
    /// (every 2048 records on its thread, and when the log is full or the
    /// journal dropped); nothing is lost without it. Does nothing when the
    /// journal does not commit through a log.
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

    /// Whether the next append must checkpoint before its frame: when no
    /// thread does it, once [`checkpoint_records`](Self) are held; and when
    /// the thread falls behind, once [`HELD_RECORDS_AT_MOST`] are, which
    /// bounds the memory held whatever the records' sizes.
    fn must_checkpoint_inline(&self, store: &Store) -> bool {
        let held = store.held_records();
        match store.checkpointer.get() {
            None => held >= self.checkpoint_records,
            Some(_) => held >= HELD_RECORDS_AT_MOST,
        }
    }

    /// Appends through the log: the frame's fdatasync is the commit.
    fn append_logged(&self, store: &Arc<Store>, log: &mut Log, payloads: &[Vec<u8>]) -> Result<Seq, JournalError> {
        if !log.has_room_for(payloads) {
            // Waits for a checkpoint under way on the thread, if any.
            store.checkpoint(log).inspect_err(|_| self.discard(store, None))?;
        } else if self.must_checkpoint_inline(store) {
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
            return store
                .write_past_the_log(first, payloads, &mut committing)
                .inspect_err(|_| self.discard(store, committing));
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
        let held = store.hold(payloads);
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
        self.store()?.scan(from, visit)
    }

    fn read(&self, seq: Seq) -> Result<Option<Record>, JournalError> {
        self.store()?.read(seq)
    }

    fn last_seq(&self) -> Result<Option<Seq>, JournalError> {
        self.store()?.last_seq()
    }
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
