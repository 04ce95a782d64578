//! Fencing: a writer whose lease epoch is no longer current never commits,
//! checked by the database inside each append's own transaction.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use support::{all, database, payloads, wait_until_expired, LONG, SHORT};
use warden_journal::{Journal, JournalError, Seq};
use warden_postgres::{Leases, PostgresJournal};

#[test]
fn an_append_under_a_superseded_epoch_fails_and_writes_nothing() {
    let (_server, url) = database("superseded");
    let a = Leases::connect(&url).expect("connect a");
    let b = Leases::connect(&url).expect("connect b");
    let lease_a = a.try_acquire("node-a", "http://a", SHORT).expect("acquire").expect("granted");
    let journal_a = PostgresJournal::open_as_leader(&url, &lease_a).expect("open a");
    assert_eq!(journal_a.epoch(), 1);
    assert_eq!(journal_a.append(&payloads("a", 3)).expect("epoch 1 appends while current"), 1);

    wait_until_expired(&b);
    let lease_b = b.try_acquire("node-b", "http://b", LONG).expect("acquire").expect("granted");
    assert_eq!(lease_b.epoch, 2);
    let journal_b = PostgresJournal::open_as_leader(&url, &lease_b).expect("open b");

    for _ in 0..3 {
        match journal_a.append(&payloads("stale", 2)) {
            Err(JournalError::Fenced { epoch: 1, current: 2 }) => {}
            other => panic!("an append under epoch 1 after epoch 2 was granted must be fenced, got {other:?}"),
        }
    }
    assert_eq!(journal_a.last_seq().expect("last_seq"), Some(3), "a fenced append writes nothing");
    assert_eq!(journal_b.append(&payloads("b", 2)).expect("epoch 2 appends"), 4, "seqs go on without a gap");
    assert_eq!(journal_b.append(&payloads("b2", 1)).expect("epoch 2 appends"), 6);

    let tags: Vec<String> = all(&journal_b).iter().map(|r| String::from_utf8_lossy(&r.payload).into_owned()).collect();
    assert_eq!(tags, ["a-0", "a-1", "a-2", "b-0", "b-1", "b2-0"]);
    assert!(tags.iter().all(|t| !t.starts_with("stale")));
}

#[test]
fn a_single_node_journal_is_fenced_once_a_lease_is_granted() {
    let (_server, url) = database("single_node");
    let single = PostgresJournal::open(&url).expect("open");
    assert_eq!(single.epoch(), 0);
    assert_eq!(single.append(&payloads("single", 2)).expect("no lease yet: epoch 0 writes"), 1);

    let leases = Leases::connect(&url).expect("connect");
    let lease = leases.try_acquire("node-a", "http://a", LONG).expect("acquire").expect("granted");
    match single.append(&payloads("late", 1)) {
        Err(JournalError::Fenced { epoch: 0, current: 1 }) => {}
        other => panic!("once a lease exists only its holder writes, got {other:?}"),
    }
    assert_eq!(single.read(2).expect("a fenced journal still reads").map(|r| r.payload), Some(b"single-1".to_vec()));

    let leader = PostgresJournal::open_as_leader(&url, &lease).expect("open as leader");
    assert_eq!(leader.append(&payloads("leader", 1)).expect("the leader appends after the single node"), 3);
    let message = JournalError::Fenced { epoch: 0, current: 1 }.to_string();
    assert!(message.contains("epoch `0`") && message.contains("epoch `1`"), "{message}");
}

#[test]
fn a_released_lease_fences_its_own_writer() {
    let (_server, url) = database("released");
    let leases = Leases::connect(&url).expect("connect");
    let lease = leases.try_acquire("node-a", "http://a", LONG).expect("acquire").expect("granted");
    let journal = PostgresJournal::open_as_leader(&url, &lease).expect("open");
    journal.append(&payloads("before", 1)).expect("append");
    assert!(leases.release(&lease).expect("release"));
    // Released but not yet taken: the epoch is still current, so the writer
    // may still write; fencing is by epoch, expiry only allows a takeover.
    assert_eq!(journal.append(&payloads("after-release", 1)).expect("still epoch 1"), 2);
    leases.try_acquire("node-b", "http://b", LONG).expect("acquire").expect("granted");
    assert!(matches!(journal.append(&payloads("fenced", 1)), Err(JournalError::Fenced { epoch: 1, current: 2 })));
}

/// Two writers of different epochs append at full speed while the lease
/// changes hands: every acknowledged record is where its append said, the old
/// writer never succeeds again once fenced, and no record of the old epoch
/// comes after one of the new.
#[test]
fn concurrent_writers_of_two_epochs_never_interleave_a_stale_write() {
    let (_server, url) = database("two_writers");
    let leases = Leases::connect(&url).expect("connect");
    let lease_a = leases.try_acquire("node-a", "http://a", LONG).expect("acquire").expect("granted");
    let journal_a = PostgresJournal::open_as_leader(&url, &lease_a).expect("open a");
    let taken_over = AtomicBool::new(false);
    let attempts_after = AtomicUsize::new(0);

    let (acked_a, fenced_after, acked_b) = std::thread::scope(|scope| {
        let writer_a = scope.spawn(|| {
            let mut acked: Vec<(Seq, Vec<Vec<u8>>)> = Vec::new();
            let mut fenced = 0;
            for batch in 0.. {
                let payloads = payloads(&format!("a{batch}"), 1 + batch % 3);
                let after_takeover = taken_over.load(Ordering::SeqCst);
                let result = journal_a.append(&payloads);
                if after_takeover {
                    attempts_after.fetch_add(1, Ordering::SeqCst);
                }
                match result {
                    Ok(first) => {
                        assert!(!after_takeover, "epoch 1 appended at seq {first} after epoch 2 was granted");
                        assert_eq!(fenced, 0, "epoch 1 appended at seq {first} after being fenced");
                        acked.push((first, payloads));
                    }
                    Err(JournalError::Fenced { epoch: 1, current: 2 }) => fenced += 1,
                    Err(other) => panic!("writer a: {other}"),
                }
                // Keep trying well after the takeover: none may succeed.
                if fenced >= 20 {
                    break;
                }
                if batch > 10_000 {
                    panic!("writer a was never fenced");
                }
            }
            (acked, fenced)
        });
        // Let epoch 1 write a while, then take over as epoch 2.
        while journal_a.last_seq().expect("last_seq").unwrap_or(0) < 50 {
            std::thread::yield_now();
        }
        assert!(leases.release(&lease_a).expect("release"));
        let lease_b = leases.try_acquire("node-b", "http://b", LONG).expect("acquire").expect("granted");
        taken_over.store(true, Ordering::SeqCst);
        // Epoch 1 gets every chance to write under epoch 2 before epoch 2
        // writes anything itself: its next seq is still free.
        while attempts_after.load(Ordering::SeqCst) < 5 && !writer_a.is_finished() {
            std::thread::yield_now();
        }
        let journal_b = PostgresJournal::open_as_leader(&url, &lease_b).expect("open b");
        let mut acked_b = Vec::new();
        for batch in 0..60 {
            let payloads = payloads(&format!("b{batch}"), 1 + batch % 4);
            acked_b.push((journal_b.append(&payloads).expect("epoch 2 appends"), payloads));
        }
        let (acked_a, fenced) = writer_a.join().expect("writer a");
        (acked_a, fenced, acked_b)
    });
    assert!(taken_over.load(Ordering::SeqCst));
    assert!(fenced_after >= 20 && acked_a.len() >= 20, "a acked {} and was fenced {fenced_after} times", acked_a.len());

    let journal = PostgresJournal::open(&url).expect("open a reader");
    let records = all(&journal);
    for (index, record) in records.iter().enumerate() {
        assert_eq!(record.seq, index as Seq + 1, "seqs are contiguous from 1");
    }
    let first_b = records.iter().position(|r| r.payload.starts_with(b"b")).expect("epoch 2 wrote");
    assert!(
        records[first_b..].iter().all(|r| r.payload.starts_with(b"b")),
        "a record of epoch 1 was committed after the first record of epoch 2"
    );
    for (first, payloads) in acked_a.iter().chain(&acked_b) {
        for (seq, payload) in (*first..).zip(payloads) {
            assert_eq!(&records[(seq - 1) as usize].payload, payload, "acknowledged record at seq {seq} is not there");
        }
    }
    let acked_total: usize = acked_a.iter().chain(&acked_b).map(|(_, p)| p.len()).sum();
    assert_eq!(records.len(), acked_total, "every record in the journal was acknowledged to its writer");
}
