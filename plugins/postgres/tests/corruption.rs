//! Damaged records are reported as corrupt, with their seq, never skipped.
//!
//! The damage is done the way a stray tool or a wrong restore would: by SQL
//! on the journal's table, behind the journal's back.

mod support;

use support::database;
use warden_journal::{Journal, JournalError, Record};
use warden_postgres::PostgresJournal;

/// A journal of 5 records `r1`..`r5`, then `damage` run as SQL.
fn damaged(name: &str, damage: &str) -> (warden_postgres::testing::TempPostgres, PostgresJournal) {
    let (server, url) = database(name);
    let journal = PostgresJournal::open(&url).expect("open");
    let payloads: Vec<Vec<u8>> = (1..=5).map(|i| format!("r{i}").into_bytes()).collect();
    journal.append(&payloads).expect("append");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    client.batch_execute(damage).expect("damage the table");
    (server, journal)
}

/// Checks that a scan from 1 visits 1 and 2, then reports seq 3 corrupt with
/// a reason containing `why`, and that the neighbours still read.
fn assert_seq_3_corrupt(journal: &PostgresJournal, why: &str) {
    let mut visited = Vec::new();
    let result = journal.scan(1, &mut |record: Record| {
        visited.push(record.seq);
        Ok(())
    });
    match result {
        Err(JournalError::Corrupt { seq: 3, reason }) => assert!(reason.contains(why), "`{reason}` lacks `{why}`"),
        other => panic!("scan must report seq 3 as corrupt, returned {other:?}"),
    }
    assert_eq!(visited, [1, 2], "scan visits the good records before the corrupt one, then stops");
    assert_eq!(journal.read(2).expect("read 2").map(|r| r.payload), Some(b"r2".to_vec()));
    assert_eq!(journal.read(4).expect("read 4").map(|r| r.payload), Some(b"r4".to_vec()));
}

#[test]
fn a_changed_payload_is_corrupt() {
    let (_server, journal) = damaged("changed", "UPDATE warden_journal SET payload = 'r9' WHERE seq = 3");
    assert_seq_3_corrupt(&journal, "checksum");
    assert!(matches!(journal.read(3), Err(JournalError::Corrupt { seq: 3, .. })));
    let mut follower = journal.follow(1);
    let mut seen = Vec::new();
    let result = follower.poll(std::time::Duration::from_secs(1), &mut |r| {
        seen.push(r.seq);
        Ok(())
    });
    assert!(matches!(result, Err(JournalError::Corrupt { seq: 3, .. })), "{result:?}");
    assert_eq!(seen, [1, 2], "a follower stops at the corrupt record too");
}

#[test]
fn a_record_copied_under_another_seq_is_corrupt() {
    let (_server, journal) = damaged(
        "moved",
        "UPDATE warden_journal SET (checksum, payload) = (SELECT checksum, payload FROM warden_journal WHERE seq = 4) \
         WHERE seq = 3",
    );
    assert_seq_3_corrupt(&journal, "checksum");
}

#[test]
fn a_missing_record_is_corrupt() {
    let (_server, journal) = damaged("missing", "DELETE FROM warden_journal WHERE seq = 3");
    assert_seq_3_corrupt(&journal, "missing");
    assert_eq!(journal.read(3).expect("read"), None, "read of a missing seq finds nothing");
}
