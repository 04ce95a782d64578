//! The journal conformance suite on redb: a fresh file per journal, and the
//! same file reopened.

use std::sync::atomic::{AtomicUsize, Ordering};

use warden_journal::conformance;
use warden_redb::RedbJournal;

#[test]
fn redb_journal_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let made = AtomicUsize::new(0);
    conformance::run_all(&|| {
        let n = made.fetch_add(1, Ordering::SeqCst);
        let path = dir.path().join(format!("journal-{n}.redb"));
        Box::new(RedbJournal::open(path).expect("open a fresh journal"))
    });
}

#[test]
fn redb_journal_keeps_records_when_reopened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.redb");
    conformance::reopen_keeps_records(&|| Box::new(RedbJournal::open(&path).expect("open the journal")));
}

#[test]
fn open_creates_the_file_and_reports_its_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("new.redb");
    let journal = RedbJournal::open(&path).expect("open");
    assert!(path.exists());
    assert_eq!(journal.path(), path);
}

#[test]
fn open_refuses_a_file_that_is_not_redb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("garbage.redb");
    std::fs::write(&path, vec![0x5A; 64 * 1024]).expect("write garbage");
    let err = RedbJournal::open(&path).expect_err("garbage must not open");
    assert!(matches!(err, warden_journal::JournalError::Storage(_)), "{err:?}");
}
