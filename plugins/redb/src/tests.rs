//! Failed commits, through a storage backend that fails the fsync chosen.

use std::fs::OpenOptions;
use std::io;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use redb::backends::FileBackend;
use redb::{BackendError, Database, ReadableDatabase, ReadableTableMetadata, StorageBackend};
use warden_journal::{Journal, JournalError};

use crate::{Commit, RedbJournal};

/// A file backend whose `n`-th fsync from when it is armed fails (0: none).
#[derive(Debug)]
struct FailingSync {
    file: FileBackend,
    fail_in: Arc<AtomicU64>,
}

impl StorageBackend for FailingSync {
    fn len(&self) -> Result<u64, io::Error> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.file.set_len(len)
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        let left = self.fail_in.load(Ordering::SeqCst);
        if left > 0 {
            self.fail_in.store(left - 1, Ordering::SeqCst);
            if left == 1 {
                return Err(io::Error::other("injected fsync failure"));
            }
        }
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.file.write(offset, data)
    }
    fn close(&self) -> Result<(), io::Error> {
        self.file.close()
    }
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(start, end)
    }
    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(start, end)
    }
    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(start, end)
    }
    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(start, end)
    }
    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(start, end)
    }
    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(start, end)
    }
}

/// A journal on `path`, committing with `commit`, whose storage fails the
/// fsync `fail_in` arms.
fn failing_journal(path: &Path, fail_in: &Arc<AtomicU64>, commit: Commit) -> RedbJournal {
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).expect("open file");
    let backend = FailingSync { file: FileBackend::new(file).expect("file backend"), fail_in: Arc::clone(fail_in) };
    let db = Database::builder().create_with_backend(backend).expect("create database");
    RedbJournal::from_database(path.to_path_buf(), db, commit)
}

fn batch(tag: &str, count: usize) -> Vec<Vec<u8>> {
    (0..count).map(|i| format!("{tag}-{i}").into_bytes()).collect()
}

fn payloads(journal: &RedbJournal) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    journal
        .scan(1, &mut |r| {
            found.push(r.payload);
            Ok(())
        })
        .expect("scan");
    found
}

/// Records stored in the file, read with redb directly.
fn stored_len(path: &Path) -> u64 {
    let db = Database::create(path).expect("open database directly");
    let txn = db.begin_read().expect("read transaction");
    let table = txn.open_table(crate::journal::RECORDS).expect("table");
    table.len().expect("len")
}

/// Fails the `sync`-th fsync of the second append, then checks the journal
/// hides that batch and carries on after reopening. Returns how many records
/// the file held right after the failure, before the journal reopened it.
fn fail_second_append_at_sync(commit: Commit, sync: u64) -> u64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.redb");
    let fail_in = Arc::new(AtomicU64::new(0));
    let journal = failing_journal(&path, &fail_in, commit);
    assert_eq!(journal.append(&batch("a", 3)).expect("first append"), 1);

    fail_in.store(sync, Ordering::SeqCst);
    let err = journal.append(&batch("lost", 2)).expect_err("append must fail");
    assert!(matches!(err, JournalError::Storage(_)), "{err:?}");

    // The journal dropped its handle, so the file can be looked at.
    let on_disk = stored_len(&path);

    assert_eq!(journal.last_seq().expect("last_seq after reopen"), Some(3));
    assert_eq!(payloads(&journal), batch("a", 3));
    assert_eq!(journal.read(4).expect("read"), None);
    assert_eq!(journal.append(&batch("b", 1)).expect("append after reopen"), 4);
    assert_eq!(payloads(&journal), [batch("a", 3), batch("b", 1)].concat());
    drop(journal);
    let reopened = RedbJournal::open(&path).expect("reopen");
    assert_eq!(payloads(&reopened), [batch("a", 3), batch("b", 1)].concat());
    on_disk
}

#[test]
fn commit_failing_at_its_fsync_is_rolled_back() {
    // A one-phase commit writes its pages and switches to the new root
    // before its only fsync: the batch is in the file although the commit
    // failed, and the reopen must remove it.
    assert_eq!(fail_second_append_at_sync(Commit::OnePhase, 1), 5);
}

#[test]
fn two_phase_commit_failing_before_the_switch_loses_the_batch() {
    // The first fsync of a two-phase commit precedes the switch to the new
    // root: the failed batch never reaches the file.
    assert_eq!(fail_second_append_at_sync(Commit::TwoPhase, 1), 3);
}

#[test]
fn two_phase_commit_failing_after_the_switch_is_rolled_back() {
    // Its second fsync follows the switch: the batch is in the file although
    // the commit failed, and the reopen must remove it.
    assert_eq!(fail_second_append_at_sync(Commit::TwoPhase, 2), 5);
}
