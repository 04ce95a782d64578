//! The conformance suite every [`Journal`] backend runs.
//!
//! A backend proves itself with one test that calls [`run_all`] with a factory
//! of fresh, empty journals; a durable backend adds [`reopen_keeps_records`]
//! with a factory that opens the same storage each time:
//!
//! ```
//! use warden_journal::{conformance, Journal, MemoryJournal};
//!
//! conformance::run_all(&|| Box::new(MemoryJournal::new()) as Box<dyn Journal>);
//! ```
//!
//! Each check takes an empty journal and panics, with a message saying which
//! part of the contract was broken, at the first violation.

use std::collections::HashSet;

use crate::{Journal, JournalError, Record, Seq};

/// Runs every check that applies to any backend, each on a fresh journal
/// from `make`.
pub fn run_all(make: &dyn Fn() -> Box<dyn Journal>) {
    empty_journal(&*make());
    append_returns_contiguous_seqs(&*make());
    empty_batch_writes_nothing(&*make());
    scan_from_the_middle(&*make());
    scan_stops_at_visit_error(&*make());
    read_each_seq(&*make());
    large_and_empty_payloads(&*make());
    many_batches_keep_order(&*make());
    concurrent_appends(&*make());
}

/// An empty journal has no last seq, nothing to scan and nothing to read.
pub fn empty_journal(journal: &dyn Journal) {
    assert_eq!(ok(journal.last_seq(), "last_seq of an empty journal"), None, "an empty journal must have no last seq");
    for from in [0, 1, 2, Seq::MAX] {
        let records = collect(journal, from);
        assert!(records.is_empty(), "scan of an empty journal from `{from}` visited {} records", records.len());
    }
    for seq in [0, 1, Seq::MAX] {
        assert_eq!(
            ok(journal.read(seq), "read of an empty journal"),
            None,
            "read of seq `{seq}` in an empty journal must be None"
        );
    }
}

/// Appends return the seq of their first record: 1 for the first batch,
/// then right after the last record of the previous batch.
pub fn append_returns_contiguous_seqs(journal: &dyn Journal) {
    let mut expected: Seq = 1;
    for size in [3_usize, 1, 5, 2] {
        let batch = payloads(&format!("contiguous-{size}"), size);
        let first = ok(journal.append(&batch), "append");
        assert_eq!(first, expected, "append of a batch of {size} returned seq `{first}`, expected `{expected}`");
        expected += size as Seq;
        assert_eq!(
            ok(journal.last_seq(), "last_seq"),
            Some(expected - 1),
            "last_seq after appending up to seq `{}`",
            expected - 1
        );
    }
    let seqs: Vec<Seq> = collect(journal, 1).iter().map(|r| r.seq).collect();
    let wanted: Vec<Seq> = (1..expected).collect();
    assert_eq!(seqs, wanted, "scan must visit seqs 1..={} in order", expected - 1);
}

/// An empty batch returns the next seq and writes nothing.
pub fn empty_batch_writes_nothing(journal: &dyn Journal) {
    assert_eq!(
        ok(journal.append(&[]), "append of an empty batch"),
        1,
        "an empty batch on an empty journal must return seq 1"
    );
    assert_eq!(ok(journal.last_seq(), "last_seq"), None, "an empty batch must write nothing");
    ok(journal.append(&payloads("before-empty", 2)), "append");
    assert_eq!(
        ok(journal.append(&[]), "append of an empty batch"),
        3,
        "an empty batch after 2 records must return seq 3"
    );
    assert_eq!(ok(journal.append(&payloads("after-empty", 1)), "append"), 3, "an empty batch must not consume a seq");
    assert_eq!(collect(journal, 1).len(), 3, "an empty batch must write nothing");
}

/// A scan from any seq visits exactly the records from there on, in order.
pub fn scan_from_the_middle(journal: &dyn Journal) {
    let batch = payloads("middle", 10);
    ok(journal.append(&batch), "append");
    for from in [0, 1, 2, 5, 10, 11, 100] {
        let records = collect(journal, from);
        let start = from.clamp(1, 11);
        let wanted: Vec<Record> =
            (start..=10).map(|seq| Record { seq, payload: batch[(seq - 1) as usize].clone() }).collect();
        assert_eq!(records, wanted, "scan from `{from}` of 10 records must visit seqs {start}..=10");
    }
}

/// A scan stops at the first error of the visitor and returns it.
pub fn scan_stops_at_visit_error(journal: &dyn Journal) {
    ok(journal.append(&payloads("stop", 5)), "append");
    let mut visited = Vec::new();
    let result = journal.scan(1, &mut |record| {
        visited.push(record.seq);
        if record.seq == 3 {
            return Err(JournalError::Storage("visitor stops here".into()));
        }
        Ok(())
    });
    match result {
        Err(JournalError::Storage(message)) if message == "visitor stops here" => {}
        other => panic!("scan must return the visitor's error, returned {other:?}"),
    }
    assert_eq!(visited, [1, 2, 3], "scan must stop at the visitor's first error");
}

/// Every record reads back by its seq; seqs outside the journal read None.
pub fn read_each_seq(journal: &dyn Journal) {
    let first = payloads("read-a", 4);
    let second = payloads("read-b", 3);
    ok(journal.append(&first), "append");
    ok(journal.append(&second), "append");
    for (seq, payload) in (1..).zip(first.iter().chain(&second)) {
        let record = ok(journal.read(seq), "read");
        assert_eq!(record, Some(Record { seq, payload: payload.clone() }), "read of seq `{seq}`");
    }
    for seq in [0, 8, 9, Seq::MAX] {
        assert_eq!(ok(journal.read(seq), "read"), None, "read of seq `{seq}` in a journal of 7 records must be None");
    }
}

/// A 1 MiB payload and a zero-length payload come back byte for byte.
pub fn large_and_empty_payloads(journal: &dyn Journal) {
    let large: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let batch = vec![Vec::new(), large.clone(), Vec::new(), b"small".to_vec()];
    ok(journal.append(&batch), "append of large and empty payloads");
    ok(journal.append(&[Vec::new()]), "append of one empty payload");
    let records = collect(journal, 1);
    let got: Vec<&[u8]> = records.iter().map(|r| r.payload.as_slice()).collect();
    let wanted: Vec<&[u8]> = vec![&[], &large, &[], b"small", &[]];
    assert!(
        got == wanted,
        "large (1 MiB) and zero-length payloads must round trip; got lengths {:?}",
        got.iter().map(|p| p.len()).collect::<Vec<_>>()
    );
    let read = ok(journal.read(2), "read of the 1 MiB payload");
    assert!(read.is_some_and(|r| r.payload == large), "read of the 1 MiB payload must return it intact");
    assert_eq!(
        ok(journal.read(5), "read of a zero-length payload").map(|r| r.payload),
        Some(Vec::new()),
        "a zero-length payload must read back as present and empty"
    );
}

/// 1000 records appended in 10 batches come back in the order appended.
pub fn many_batches_keep_order(journal: &dyn Journal) {
    let mut wanted = Vec::new();
    for batch in 0..10 {
        let payloads = payloads(&format!("batch-{batch}"), 100);
        let first = ok(journal.append(&payloads), "append");
        assert_eq!(first, batch * 100 + 1, "seq of batch `{batch}` of 100");
        wanted.extend(payloads);
    }
    let records = collect(journal, 1);
    assert_eq!(records.len(), 1000, "10 batches of 100 must scan as 1000 records");
    for (index, (record, payload)) in records.iter().zip(&wanted).enumerate() {
        let seq = index as Seq + 1;
        assert!(
            record.seq == seq && &record.payload == payload,
            "record {seq} of 1000 is out of order: seq `{}`, payload `{}`",
            record.seq,
            String::from_utf8_lossy(&record.payload)
        );
    }
    assert_eq!(ok(journal.last_seq(), "last_seq"), Some(1000), "last_seq after 1000 records");
}

/// Appends from 8 threads at once never lose, duplicate or interleave a
/// record: seqs are unique and contiguous, and each batch is contiguous at
/// the seq its append returned.
pub fn concurrent_appends(journal: &dyn Journal) {
    const THREADS: usize = 8;
    const BATCHES: usize = 40;
    let appended: Vec<Vec<(Seq, Vec<Vec<u8>>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|thread| {
                scope.spawn(move || {
                    (0..BATCHES)
                        .map(|batch| {
                            let size = 1 + (thread + batch) % 4;
                            let batch = payloads(&format!("t{thread}-b{batch}"), size);
                            (ok(journal.append(&batch), "concurrent append"), batch)
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });

    let records = collect(journal, 1);
    let total: usize = appended.iter().flatten().map(|(_, b)| b.len()).sum();
    assert_eq!(records.len(), total, "{THREADS} threads appended {total} records, scan found {}", records.len());
    for (index, record) in records.iter().enumerate() {
        assert_eq!(record.seq, index as Seq + 1, "seqs must be contiguous from 1");
    }
    let unique: HashSet<&[u8]> = records.iter().map(|r| r.payload.as_slice()).collect();
    assert_eq!(unique.len(), total, "a concurrent append duplicated a record");
    for (first, batch) in appended.iter().flatten() {
        for (seq, payload) in (*first..).zip(batch) {
            let found = records.get((seq - 1) as usize).map(|r| &r.payload);
            assert_eq!(found, Some(payload), "batch appended at seq `{first}` is not where its append said");
        }
    }
    assert_eq!(ok(journal.last_seq(), "last_seq"), Some(total as Seq), "last_seq after concurrent appends");
}

/// For durable backends: records survive closing and reopening, and the
/// next append continues the sequence. `open` must open the same storage
/// each time, empty on the first call.
pub fn reopen_keeps_records(open: &dyn Fn() -> Box<dyn Journal>) {
    let first = payloads("before-reopen", 5);
    let second = payloads("before-reopen-2", 3);
    {
        let journal = open();
        empty_journal(&*journal);
        ok(journal.append(&first), "append");
        ok(journal.append(&second), "append");
    }
    let third = payloads("after-reopen", 2);
    {
        let journal = open();
        let wanted: Vec<Vec<u8>> = first.iter().chain(&second).cloned().collect();
        assert_eq!(
            payloads_of(&collect(&*journal, 1)),
            wanted,
            "records appended before closing must all be there after reopening"
        );
        assert_eq!(ok(journal.last_seq(), "last_seq after reopen"), Some(8), "last_seq after reopen");
        assert_eq!(
            ok(journal.append(&third), "append after reopen"),
            9,
            "the first append after reopening must continue the sequence"
        );
    }
    let journal = open();
    let records = collect(&*journal, 1);
    assert_eq!(records.len(), 10, "records after a second reopen");
    assert_eq!(payloads_of(&records[8..]), third, "records appended after a reopen must survive the next one");
    assert_eq!(
        ok(journal.read(9), "read after reopen").map(|r| r.payload),
        Some(third[0].clone()),
        "read after a second reopen"
    );
}

/// Unwraps `result`, panicking with what was being done.
fn ok<T>(result: Result<T, JournalError>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what} failed: {e}"))
}

/// Every record from `from` on.
fn collect(journal: &dyn Journal, from: Seq) -> Vec<Record> {
    let mut records = Vec::new();
    ok(
        journal.scan(from, &mut |record| {
            records.push(record);
            Ok(())
        }),
        "scan",
    );
    records
}

fn payloads_of(records: &[Record]) -> Vec<Vec<u8>> {
    records.iter().map(|r| r.payload.clone()).collect()
}

/// `count` distinct payloads naming `tag` and their index.
fn payloads(tag: &str, count: usize) -> Vec<Vec<u8>> {
    (0..count).map(|i| format!("{tag}-{i}").into_bytes()).collect()
}
