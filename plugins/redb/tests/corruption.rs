//! Damaged records are reported as corrupt, with their seq, never skipped.
//!
//! The damage is done the way a bad disk, a stray tool or an old version
//! would: by writing other bytes under a key of the redb file directly.

use std::path::Path;

use redb::{Database, TableDefinition};
use warden_journal::{Journal, JournalError, Record, Seq};
use warden_redb::RedbJournal;

/// The journal's table, as it is stored: the first seq of a run of records
/// -> the run.
const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("warden_journal");

/// A journal of 5 records `r1`..`r5` at `path`, closed, stored as three
/// runs: 1 and 2, 3 alone, 4 and 5 (each open appends, and its close
/// checkpoints what it appended as runs of its own).
fn five_records(path: &Path) {
    for seqs in [1..=2, 3..=3, 4..=5] {
        let journal = RedbJournal::open(path).expect("open");
        let payloads: Vec<Vec<u8>> = seqs.map(|i| format!("r{i}").into_bytes()).collect();
        journal.append(&payloads).expect("append");
    }
}

/// Replaces the value stored under `seq` (the run holding record 3 alone,
/// or the one of 4 and 5) by `bytes`, or removes it.
fn tamper(path: &Path, seq: Seq, bytes: Option<&[u8]>) {
    let db = Database::create(path).expect("open the file with redb");
    let txn = db.begin_write().expect("write transaction");
    {
        let mut table = txn.open_table(RECORDS).expect("journal table");
        match bytes {
            Some(bytes) => {
                table.insert(seq, bytes).expect("overwrite");
            }
            None => {
                table.remove(seq).expect("remove");
            }
        }
    }
    txn.commit().expect("commit");
}

/// The stored value of `seq`, read with redb directly.
fn stored(path: &Path, seq: Seq) -> Vec<u8> {
    use redb::ReadableDatabase;
    let db = Database::create(path).expect("open the file with redb");
    let txn = db.begin_read().expect("read transaction");
    let table = txn.open_table(RECORDS).expect("journal table");
    let value = table.get(seq).expect("get").expect("value present");
    value.value().to_vec()
}

/// Opens the damaged journal and checks that seq 3 is reported corrupt by
/// `scan` (after visiting 1 and 2) and by `read`, with a reason containing
/// `why`, while its neighbours still read.
fn assert_seq_3_corrupt(path: &Path, why: &str) {
    let journal = RedbJournal::open(path).expect("a damaged record does not stop the open");
    let mut visited = Vec::new();
    let result = journal.scan(1, &mut |record: Record| {
        visited.push(record.seq);
        Ok(())
    });
    match result {
        Err(JournalError::Corrupt { seq: 3, reason }) => {
            assert!(reason.contains(why), "reason `{reason}` should mention `{why}`");
        }
        other => panic!("scan must report seq 3 as corrupt, returned {other:?}"),
    }
    assert_eq!(visited, [1, 2], "scan must stop at the corrupt record");
    let from_middle = journal.scan(3, &mut |_| Ok(()));
    assert!(matches!(from_middle, Err(JournalError::Corrupt { seq: 3, .. })), "{from_middle:?}");
    assert_eq!(journal.read(2).expect("read 2").map(|r| r.payload), Some(b"r2".to_vec()));
    assert_eq!(journal.read(4).expect("read 4").map(|r| r.payload), Some(b"r4".to_vec()));
    assert_eq!(journal.last_seq().expect("last_seq"), Some(5));
}

fn fresh() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.redb");
    five_records(&path);
    (dir, path)
}

#[test]
fn flipped_payload_byte_is_corrupt() {
    let (_dir, path) = fresh();
    let mut value = stored(&path, 3);
    *value.last_mut().expect("payload") ^= 0x01;
    tamper(&path, 3, Some(&value));
    assert_seq_3_corrupt(&path, "checksum");
    match RedbJournal::open(&path).expect("open").read(3) {
        Err(JournalError::Corrupt { seq: 3, .. }) => {}
        other => panic!("read must report seq 3 as corrupt, returned {other:?}"),
    }
}

#[test]
fn bad_bytes_are_corrupt() {
    let (_dir, path) = fresh();
    tamper(&path, 3, Some(b"\x01\xde\xad\xbe\xefnot what was written"));
    assert_seq_3_corrupt(&path, "checksum");
}

#[test]
fn unknown_version_is_corrupt() {
    let (_dir, path) = fresh();
    let mut value = stored(&path, 3);
    value[0] = 9;
    tamper(&path, 3, Some(&value));
    assert_seq_3_corrupt(&path, "version `9`");
}

#[test]
fn short_value_is_corrupt() {
    let (_dir, path) = fresh();
    tamper(&path, 3, Some(b"\x01\x00"));
    assert_seq_3_corrupt(&path, "shorter");
}

#[test]
fn record_moved_to_another_seq_is_corrupt() {
    let (_dir, path) = fresh();
    let value_of_4 = stored(&path, 4);
    tamper(&path, 3, Some(&value_of_4));
    assert_seq_3_corrupt(&path, "checksum");
}

#[test]
fn missing_record_is_corrupt() {
    let (_dir, path) = fresh();
    tamper(&path, 3, None);
    let journal = RedbJournal::open(&path).expect("open");
    let mut visited = Vec::new();
    let result = journal.scan(0, &mut |record| {
        visited.push(record.seq);
        Ok(())
    });
    match result {
        Err(JournalError::Corrupt { seq: 3, reason }) => {
            assert!(reason.contains("missing"), "{reason}")
        }
        other => panic!("scan must report seq 3 as missing, returned {other:?}"),
    }
    assert_eq!(visited, [1, 2]);
}

#[test]
fn file_damaged_below_redb_fails_to_open() {
    // A byte flipped in the file itself, not through redb: redb's page
    // checksums catch it when the journal opens, before any record is read.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.redb");
    {
        let journal = RedbJournal::open(&path).expect("open");
        let marker = b"unmistakable-marker-payload".to_vec();
        journal.append(&[marker]).expect("append");
    }
    let mut bytes = std::fs::read(&path).expect("read file");
    let at =
        bytes.windows(27).position(|w| w == b"unmistakable-marker-payload").expect("payload is stored in the clear");
    bytes[at] ^= 0x20;
    std::fs::write(&path, bytes).expect("write file");
    match RedbJournal::open(&path) {
        Err(JournalError::Storage(message)) => {
            assert!(message.to_lowercase().contains("corrupt"), "{message}");
        }
        other => panic!("a damaged file must fail to open, returned {other:?}"),
    }
}

#[test]
fn a_flipped_byte_inside_a_run_is_corrupt_at_its_record_only() {
    let (_dir, path) = fresh();
    let mut value = stored(&path, 1);
    *value.last_mut().expect("the payload of record 2") ^= 0x01;
    tamper(&path, 1, Some(&value));
    let journal = RedbJournal::open(&path).expect("open");
    let mut visited = Vec::new();
    let result = journal.scan(1, &mut |record| {
        visited.push(record.seq);
        Ok(())
    });
    assert!(matches!(result, Err(JournalError::Corrupt { seq: 2, .. })), "{result:?}");
    assert_eq!(visited, [1]);
    assert_eq!(journal.read(1).expect("read 1").map(|r| r.payload), Some(b"r1".to_vec()));
    assert!(matches!(journal.read(2), Err(JournalError::Corrupt { seq: 2, .. })));
}

#[test]
fn a_scan_from_inside_a_run_passes_over_the_records_before_it() {
    let (_dir, path) = fresh();
    let mut value = stored(&path, 1);
    // Record 1's payload follows the run's header (5 bytes) and its own (8).
    value[13] ^= 0x01;
    tamper(&path, 1, Some(&value));
    let journal = RedbJournal::open(&path).expect("open");
    let mut visited = Vec::new();
    journal
        .scan(2, &mut |record| {
            visited.push(record.seq);
            Ok(())
        })
        .expect("a scan from 2 does not read record 1");
    assert_eq!(visited, [2, 3, 4, 5]);
    assert!(matches!(journal.scan(1, &mut |_| Ok(())), Err(JournalError::Corrupt { seq: 1, .. })));
}

#[test]
fn damage_in_the_last_run_refuses_the_open() {
    // The next seq is read from the last run: its records are checked when
    // the journal opens, so a damaged one is not appended after.
    let (_dir, path) = fresh();
    let mut value = stored(&path, 4);
    *value.last_mut().expect("the payload of record 5") ^= 0x01;
    tamper(&path, 4, Some(&value));
    match RedbJournal::open(&path) {
        Err(JournalError::Corrupt { seq: 5, reason }) => assert!(reason.contains("checksum"), "{reason}"),
        other => panic!("the open must report seq 5 as corrupt, returned {other:?}"),
    }
    // A count raised past the records the run holds (it is in no checksum).
    let (_dir, path) = fresh();
    let mut value = stored(&path, 4);
    value[1..5].copy_from_slice(&40u32.to_le_bytes());
    tamper(&path, 4, Some(&value));
    match RedbJournal::open(&path) {
        Err(JournalError::Corrupt { seq: 6, reason }) => assert!(reason.contains("shorter"), "{reason}"),
        other => panic!("the open must refuse a run counting records it does not hold, returned {other:?}"),
    }
}

/// The version-1 value of one record, as versions before runs stored it:
/// `[1][CRC32 of seq ++ payload][payload]`.
fn version_1(seq: Seq, payload: &[u8]) -> Vec<u8> {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    let mut value = vec![1];
    value.extend_from_slice(&hasher.finalize().to_le_bytes());
    value.extend_from_slice(payload);
    value
}

#[test]
fn a_file_of_one_record_per_value_reads_and_goes_on_in_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.redb");
    {
        let db = Database::create(&path).expect("create with redb");
        let txn = db.begin_write().expect("write transaction");
        {
            let mut table = txn.open_table(RECORDS).expect("journal table");
            for seq in 1..=3 {
                table.insert(seq, version_1(seq, format!("old{seq}").as_bytes()).as_slice()).expect("insert");
            }
        }
        txn.commit().expect("commit");
    }
    let journal = RedbJournal::open(&path).expect("open a file of an earlier version");
    assert_eq!(journal.last_seq().expect("last_seq"), Some(3));
    assert_eq!(journal.read(2).expect("read 2").map(|r| r.payload), Some(b"old2".to_vec()));
    assert_eq!(journal.append(&[b"new4".to_vec(), b"new5".to_vec()]).expect("append"), 4);
    drop(journal);
    let journal = RedbJournal::open(&path).expect("reopen");
    let mut found = Vec::new();
    journal
        .scan(2, &mut |record| {
            found.push((record.seq, String::from_utf8(record.payload).expect("text")));
            Ok(())
        })
        .expect("scan");
    let expected = [(2, "old2"), (3, "old3"), (4, "new4"), (5, "new5")].map(|(seq, text)| (seq, text.to_owned()));
    assert_eq!(found, expected);
    assert_eq!(journal.read(5).expect("read 5").map(|r| r.payload), Some(b"new5".to_vec()));
    drop(journal);
    assert_eq!(stored(&path, 4)[0], 2, "new records are stored as a run");
}
