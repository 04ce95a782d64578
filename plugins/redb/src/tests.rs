//! Failed commits, through a storage backend that fails the fsync chosen.

use std::fs::OpenOptions;
use std::io;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use redb::backends::FileBackend;
use redb::{BackendError, Database, ReadableDatabase, StorageBackend};
use warden_journal::{Journal, JournalError};

use crate::{log, Commit, RedbJournal};

/// A file backend whose `n`-th fsync from when it is armed fails (0: none).
#[derive(Debug)]
struct FailingSync {
    file: FileBackend,
    fail_in: Arc<AtomicU64>,
    /// While set, every fsync fails.
    stuck: Arc<AtomicBool>,
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
        if self.stuck.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected fsync failure (stuck)"));
        }
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
    let backend = FailingSync {
        file: FileBackend::new(file).expect("file backend"),
        fail_in: Arc::clone(fail_in),
        stuck: Arc::default(),
    };
    let db = Database::builder().create_with_backend(backend).expect("create database");
    RedbJournal::from_storage(path.to_path_buf(), db, commit, None, 0).expect("journal")
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
    let table = txn.open_table(crate::store::RECORDS).expect("table");
    records_in(&table)
}

/// Records in `table`, counted run by run.
fn records_in(table: &impl redb::ReadableTable<u64, &'static [u8]>) -> u64 {
    let runs = table.iter().expect("iterate");
    runs.map(|run| {
        let (key, value) = run.expect("run");
        crate::record::count(key.value(), value.value()).expect("count")
    })
    .sum()
}

/// Checks a journal whose second append (`lost`, after three records `a`)
/// failed: the next call reopens it, the failed batch is nowhere, and the
/// journal goes on, also after a reopen of the file.
fn hides_the_failed_batch_and_goes_on(journal: RedbJournal, path: &Path) {
    assert_eq!(journal.last_seq().expect("last_seq after reopen"), Some(3));
    assert_eq!(payloads(&journal), batch("a", 3));
    assert_eq!(journal.read(4).expect("read"), None);
    assert_eq!(journal.append(&batch("b", 1)).expect("append after reopen"), 4);
    assert_eq!(payloads(&journal), [batch("a", 3), batch("b", 1)].concat());
    drop(journal);
    let reopened = RedbJournal::open(path).expect("reopen");
    assert_eq!(payloads(&reopened), [batch("a", 3), batch("b", 1)].concat());
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

    hides_the_failed_batch_and_goes_on(journal, &path);
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

/// A logged journal on real files at `path` (and its log beside it), whose
/// redb file fails the fsync `db_fail_in` arms and whose log the fsync
/// `log_fail_in` arms, or every one while `log_stuck` is set; the log holds
/// `log_pages` pages.
fn failing_logged_journal(
    path: &Path,
    db_fail_in: &Arc<AtomicU64>,
    log_fail_in: &Arc<AtomicU64>,
    log_stuck: &Arc<AtomicBool>,
    log_pages: u64,
) -> RedbJournal {
    let open = |path: &Path| {
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).expect("open file");
        FileBackend::new(file).expect("file backend")
    };
    let db_backend = FailingSync { file: open(path), fail_in: Arc::clone(db_fail_in), stuck: Arc::default() };
    let db = Database::builder().create_with_backend(db_backend).expect("create database");
    let log = FailingSync {
        file: open(&RedbJournal::log_path(path)),
        fail_in: Arc::clone(log_fail_in),
        stuck: Arc::clone(log_stuck),
    };
    RedbJournal::from_storage(path.to_path_buf(), db, Commit::Logged, Some(Box::new(log)), log_pages * log::PAGE)
        .expect("journal")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn log_holds(path: &Path, needle: &[u8]) -> bool {
    contains(&std::fs::read(RedbJournal::log_path(path)).expect("read the log"), needle)
}

#[test]
fn a_logged_append_failing_at_its_fdatasync_is_erased_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.redb");
    let (db_fail_in, log_fail_in) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let journal = failing_logged_journal(&path, &db_fail_in, &log_fail_in, &Arc::default(), 64);
    journal.append(&batch("a", 3)).expect("first append");
    log_fail_in.store(1, Ordering::SeqCst);
    journal.append(&batch("lost", 2)).expect_err("append must fail");
    // The frame reached the file, only its fdatasync failed; the journal
    // zeroed it at once, before any other call.
    assert!(!log_holds(&path, b"lost-1"), "the failed frame is erased");
    drop(journal); // no call after the failure: nothing else hides it
    let reopened = RedbJournal::open(&path).expect("reopen");
    assert_eq!(payloads(&reopened), batch("a", 3));
}

#[test]
fn a_logged_append_failing_for_good_is_hidden_by_the_reopen_and_the_journal_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.redb");
    let (db_fail_in, log_fail_in) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let log_stuck = Arc::new(AtomicBool::new(false));
    let journal = failing_logged_journal(&path, &db_fail_in, &log_fail_in, &log_stuck, 64);
    assert_eq!(journal.append(&batch("a", 3)).expect("first append"), 1);

    log_stuck.store(true, Ordering::SeqCst);
    let err = journal.append(&batch("lost", 2)).expect_err("append must fail");
    assert!(matches!(err, JournalError::Storage(_)), "{err:?}");
    // Its erasure could not be synced either. Put the frame back where it
    // was written (the header, then the first batch's page), as a disk that
    // kept the frame and not the erasure would: hiding it is now the
    // reopen's doing.
    let log_path = RedbJournal::log_path(&path);
    let mut bytes = std::fs::read(&log_path).expect("read the log");
    let salt = u64::from_le_bytes(bytes[4..12].try_into().expect("salt"));
    let frame = log::frame(salt, 4, &batch("lost", 2));
    let at = 2 * log::PAGE as usize;
    bytes[at..at + frame.len()].copy_from_slice(&frame);
    std::fs::write(&log_path, &bytes).expect("write the log");
    log_stuck.store(false, Ordering::SeqCst);

    hides_the_failed_batch_and_goes_on(journal, &path);
}

#[test]
fn a_failed_checkpoint_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.redb");
    let (db_fail_in, log_fail_in) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // The header and two one-page frames: the third batch needs a
    // checkpoint first.
    let journal = failing_logged_journal(&path, &db_fail_in, &log_fail_in, &Arc::default(), 3);
    journal.append(&batch("a", 2)).expect("first append");
    journal.append(&batch("b", 2)).expect("second append");
    assert_eq!(stored_len_while_open(&journal), 0, "both batches are only in the log");

    db_fail_in.store(1, Ordering::SeqCst);
    let err = journal.append(&batch("c", 2)).expect_err("the checkpoint before it fails");
    assert!(matches!(err, JournalError::Storage(_)), "{err:?}");

    // The reopen recovers the log into redb; the refused batch is nowhere.
    assert_eq!(payloads(&journal), [batch("a", 2), batch("b", 2)].concat());
    assert_eq!(journal.append(&batch("d", 1)).expect("append after reopen"), 5);
    drop(journal);
    assert_eq!(stored_len(&path), 5, "a clean close checkpoints the log into redb");
    let reopened = RedbJournal::open(&path).expect("reopen");
    assert_eq!(payloads(&reopened), [batch("a", 2), batch("b", 2), batch("d", 1)].concat());
}

/// Records redb holds, read through the journal's own snapshot of it.
fn stored_len_while_open(journal: &RedbJournal) -> u64 {
    let store = journal.store().expect("store");
    let txn = store.db.begin_read().expect("read transaction");
    txn.open_table(crate::store::RECORDS).map(|t| records_in(&t)).unwrap_or(0)
}

#[test]
fn records_read_the_same_across_checkpoints_and_batches_larger_than_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.redb");
    let never = Arc::new(AtomicU64::new(0));
    let journal = failing_logged_journal(&path, &never, &never, &Arc::default(), 4).checkpointing_every(5);
    let mut expected: Vec<Vec<u8>> = Vec::new();
    for n in 0..40 {
        // Every seventh batch is larger than the whole log (three pages).
        let batch = if n % 7 == 3 { vec![vec![n as u8; 5000]; 3] } else { batch(&format!("batch{n}"), 1 + n % 4) };
        let first = journal.append(&batch).expect("append");
        assert_eq!(first, expected.len() as u64 + 1);
        expected.extend(batch);
        // Every record reads back wherever it is now, log or redb.
        assert_eq!(journal.last_seq().expect("last_seq"), Some(expected.len() as u64));
        for (seq, payload) in (1..).zip(&expected) {
            assert_eq!(journal.read(seq).expect("read").map(|r| r.payload).as_ref(), Some(payload), "seq {seq}");
        }
        let from = 1 + (n as u64 * 5) % expected.len() as u64;
        let mut scanned = Vec::new();
        journal
            .scan(from, &mut |r| {
                scanned.push(r.payload);
                Ok(())
            })
            .expect("scan");
        assert_eq!(scanned, expected[from as usize - 1..], "scan from {from} after batch {n}");
    }
    assert!(stored_len_while_open(&journal) > 0, "checkpoints moved records into redb");
    drop(journal);
    assert_eq!(payloads(&RedbJournal::open(&path).expect("reopen")), expected);
}

#[test]
fn a_log_left_by_a_crash_is_recovered_under_either_commit() {
    for reopen_with in [Commit::Logged, Commit::TwoPhase] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, copy) = (dir.path().join("journal.redb"), dir.path().join("copy.redb"));
        let journal = RedbJournal::open(&path).expect("open");
        journal.append(&batch("a", 2)).expect("append");
        journal.append(&batch("b", 3)).expect("append");
        // The files as a crash of the process would leave them: the records
        // only in the log.
        std::fs::copy(&path, &copy).expect("copy the redb file");
        std::fs::copy(RedbJournal::log_path(&path), RedbJournal::log_path(&copy)).expect("copy the log");
        assert_eq!(stored_len(&copy), 0, "{reopen_with:?}: the records are only in the log");

        let recovered = RedbJournal::open_with(&copy, reopen_with).expect("open the copy");
        assert_eq!(payloads(&recovered), [batch("a", 2), batch("b", 3)].concat(), "{reopen_with:?}");
        assert_eq!(recovered.append(&batch("c", 1)).expect("append"), 6);
        assert_eq!(
            RedbJournal::log_path(&copy).exists(),
            reopen_with == Commit::Logged,
            "a journal that does not commit through a log removes the one it recovered"
        );
        drop(recovered);
        assert_eq!(stored_len(&copy), 6, "{reopen_with:?}");
    }
}

/// Waits for what a thread does: a test of behaviour, not of time (the
/// bound only keeps a broken thread from hanging the test).
fn wait_until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("never happened: {what}");
}

#[test]
fn readers_see_every_record_once_while_a_thread_checkpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.redb");
    let never = Arc::new(AtomicU64::new(0));
    let journal =
        failing_logged_journal(&path, &never, &never, &Arc::default(), 8).checkpointing_in_background_every(3);
    let appended = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for reader in 0..3_u64 {
            let (journal, appended) = (&journal, &appended);
            scope.spawn(move || {
                while appended.load(Ordering::SeqCst) < 200 {
                    // Every record acknowledged before the read is found,
                    // whether still held, being moved, or in redb.
                    let acknowledged = appended.load(Ordering::SeqCst);
                    let last = journal.last_seq().expect("last_seq").unwrap_or(0);
                    assert!(last >= acknowledged, "last_seq {last} behind the {acknowledged} acknowledged");
                    for seq in (1..=acknowledged).rev().step_by(7) {
                        let record = journal.read(seq).expect("read").unwrap_or_else(|| panic!("seq {seq} missing"));
                        assert_eq!(record.payload, format!("r-{}", seq - 1).into_bytes());
                    }
                    let from = 1 + reader * acknowledged / 3;
                    let mut expected = from;
                    journal
                        .scan(from, &mut |r| {
                            assert_eq!(r.seq, expected, "scan from {from} skipped or repeated a record");
                            expected += 1;
                            Ok(())
                        })
                        .expect("scan");
                    assert!(expected > acknowledged, "scan from {from} ended at {expected}, before {acknowledged}");
                }
            });
        }
        for n in 0..200_u64 {
            let first = journal.append(&[format!("r-{n}").into_bytes()]).expect("append");
            assert_eq!(first, n + 1);
            appended.store(n + 1, Ordering::SeqCst);
        }
    });
    // The thread goes on checkpointing to the end (asked after every third
    // record): all but the last two records reach redb without a close.
    wait_until("the thread checkpoints all but the last two records", || stored_len_while_open(&journal) >= 198);
    drop(journal);
    assert_eq!(stored_len(&path), 200, "a clean close leaves every record in redb");
}

#[test]
fn a_dropped_journal_has_closed_its_files() {
    // A checkpoint may be under way on the thread when the journal is
    // dropped: the drop waits for it, so the files can be opened at once.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.redb");
    let never = Arc::new(AtomicU64::new(0));
    for round in 0..40_u64 {
        let journal =
            failing_logged_journal(&path, &never, &never, &Arc::default(), 64).checkpointing_in_background_every(2);
        for n in 0..3 {
            journal.append(&batch(&format!("round{round}-{n}"), 1)).expect("append");
        }
        drop(journal);
        let reopened = RedbJournal::open(&path).unwrap_or_else(|e| panic!("round {round}: reopen at once: {e}"));
        assert_eq!(reopened.last_seq().expect("last_seq"), Some(3 * (round + 1)));
    }
}

#[test]
fn a_failed_background_checkpoint_loses_nothing_and_the_journal_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.redb");
    let (db_fail_in, never) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let journal =
        failing_logged_journal(&path, &db_fail_in, &never, &Arc::default(), 64).checkpointing_in_background_every(4);
    // The first commit of the thread's checkpoint fails (two-phase: its
    // first fsync).
    db_fail_in.store(1, Ordering::SeqCst);
    journal.append(&batch("a", 2)).expect("append");
    journal.append(&batch("b", 2)).expect("append: the thread is asked to checkpoint");
    // The thread gives the store up; waiting on behaviour, not on time.
    wait_until("the failed checkpoint gives the store up", || journal.handle().store.is_none());
    assert_eq!(db_fail_in.load(Ordering::SeqCst), 0, "the injected failure was used");
    // The next call reopens the files and recovers the log into redb.
    assert_eq!(payloads(&journal), [batch("a", 2), batch("b", 2)].concat());
    assert_eq!(stored_len_while_open(&journal), 4, "the reopen checkpointed the log");
    assert_eq!(journal.append(&batch("c", 1)).expect("append after the reopen"), 5);
    drop(journal);
    let reopened = RedbJournal::open(&path).expect("reopen");
    assert_eq!(payloads(&reopened), [batch("a", 2), batch("b", 2), batch("c", 1)].concat());
}

#[test]
fn records_held_are_bounded_when_the_thread_falls_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.redb");
    let never = Arc::new(AtomicU64::new(0));
    // A thread that is never asked: it falls behind for good. A log large
    // enough that it is not what fills up.
    let journal = failing_logged_journal(&path, &never, &never, &Arc::default(), 1024)
        .checkpointing_in_background_every(usize::MAX);
    let batch: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8]).collect();
    let bound = crate::journal::HELD_RECORDS_AT_MOST + batch.len();
    let mut most = 0;
    for _ in 0..40 {
        journal.append(&batch).expect("append");
        let held = journal.store().expect("store").held_records();
        assert!(held <= bound, "{held} records held, more than {bound}");
        most = most.max(held);
    }
    assert!(most > crate::journal::HELD_RECORDS_AT_MOST, "the bound was reached ({most} held at most)");
    assert!(stored_len_while_open(&journal) > 0, "an append checkpointed itself");
    drop(journal);
    assert_eq!(stored_len(&path), 40_000);
}

#[test]
fn removing_a_failed_batch_cuts_a_run_that_reaches_it() {
    // Batches start runs, so this does not happen through `append`; the
    // removal must still be exact if a file holds such a run.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.redb");
    {
        let db = crate::store::open_database(&path, None, Commit::OnePhase).expect("open");
        crate::store::write_batch(&db, Commit::OnePhase, &batch("a", 5), &mut None).expect("one run of 5");
    }
    drop(crate::store::open_database(&path, Some(4), Commit::OnePhase).expect("open, removing from 4"));
    assert_eq!(stored_len(&path), 3);
    let journal = RedbJournal::open_with(&path, Commit::OnePhase).expect("open the journal");
    assert_eq!(payloads(&journal), batch("a", 3));
    assert_eq!(journal.append(&batch("b", 1)).expect("append"), 4);
}
