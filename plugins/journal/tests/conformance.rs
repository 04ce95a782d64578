//! The conformance suite on the in-memory journal and on the fault injection
//! backends while healthy, then the faults themselves.

use std::sync::{Arc, Mutex};

use warden_journal::conformance;
use warden_journal::faulty::{CrashImage, FailAfter, Gate};
use warden_journal::{Journal, JournalError, MemoryJournal, Record};

fn payloads(tag: &str, count: usize) -> Vec<Vec<u8>> {
    (0..count).map(|i| format!("{tag}-{i}").into_bytes()).collect()
}

fn all(journal: &dyn Journal) -> Vec<Record> {
    let mut records = Vec::new();
    journal
        .scan(1, &mut |r| {
            records.push(r);
            Ok(())
        })
        .expect("scan");
    records
}

#[test]
fn memory_journal_conforms() {
    conformance::run_all(&|| Box::new(MemoryJournal::new()));
}

#[test]
fn fail_after_conforms_while_healthy() {
    conformance::run_all(&|| Box::new(FailAfter::new(MemoryJournal::new(), u64::MAX)));
}

#[test]
fn crash_image_conforms_while_healthy() {
    conformance::run_all(&|| Box::new(CrashImage::new()));
}

#[test]
fn an_open_gate_conforms() {
    conformance::run_all(&|| Box::new(Gate::new(MemoryJournal::new())));
}

#[test]
fn a_closed_gate_holds_appends_until_it_opens() {
    let gate = Arc::new(Gate::new(MemoryJournal::new()));
    gate.close();
    let appending = {
        let gate = gate.clone();
        std::thread::spawn(move || gate.append(&[b"held".to_vec()]))
    };
    while gate.waiting() == 0 {
        std::thread::yield_now();
    }
    assert_eq!(gate.last_seq().unwrap(), None, "nothing appended while closed");
    gate.open();
    assert_eq!(appending.join().unwrap().unwrap(), 1);
    assert_eq!((gate.waiting(), gate.last_seq().unwrap()), (0, Some(1)));
}

#[test]
fn crash_image_restart_keeps_records() {
    // With no crash configured, a restart loses nothing: "reopening" is
    // restarting from the durable image of the journal handed out last.
    let last = Mutex::new(Arc::new(CrashImage::new()));
    conformance::reopen_keeps_records(&|| {
        let mut last = last.lock().expect("lock");
        let restarted = Arc::new(last.crash());
        *last = Arc::clone(&restarted);
        Box::new(restarted)
    });
}

#[test]
fn fail_after_fails_invisibly_until_healed() {
    let journal = FailAfter::new(MemoryJournal::new(), 2);
    assert_eq!(journal.append(&payloads("a", 2)).expect("first append"), 1);
    assert_eq!(journal.append(&payloads("b", 1)).expect("second append"), 3);

    for _ in 0..2 {
        let err = journal.append(&payloads("lost", 4)).expect_err("third append must fail");
        assert!(matches!(err, JournalError::Storage(_)), "{err:?}");
    }
    assert_eq!(journal.appends(), 4);
    assert_eq!(journal.failures(), 2);
    assert_eq!(journal.last_seq().expect("last_seq"), Some(3), "a failed batch is invisible");
    assert!(all(&journal).iter().all(|r| !r.payload.starts_with(b"lost")));
    assert_eq!(journal.read(4).expect("read"), None);

    journal.heal();
    assert_eq!(journal.append(&payloads("c", 2)).expect("append after heal"), 4);
    assert_eq!(journal.appends(), 5);
    assert_eq!(journal.failures(), 2);
    let got: Vec<Vec<u8>> = all(&journal).into_iter().map(|r| r.payload).collect();
    let wanted: Vec<Vec<u8>> = [payloads("a", 2), payloads("b", 1), payloads("c", 2)].concat();
    assert_eq!(got, wanted);
}

#[test]
fn fail_after_zero_fails_from_the_first_append() {
    let journal = FailAfter::new(MemoryJournal::new(), 0);
    assert!(journal.append(&payloads("x", 1)).is_err());
    assert_eq!(journal.inner().last_seq().expect("last_seq"), None);
}

#[test]
fn crash_image_loses_the_crashed_batch_only() {
    let journal = CrashImage::new();
    journal.crash_at(3);
    assert_eq!(journal.append(&payloads("a", 2)).expect("append 1"), 1);
    assert_eq!(journal.append(&payloads("b", 3)).expect("append 2"), 3);
    let err = journal.append(&payloads("torn", 4)).expect_err("append 3 crashes");
    assert!(matches!(err, JournalError::Storage(_)), "{err:?}");

    // The process that crashed has the batch in memory, the disk does not.
    assert!(journal.is_down());
    assert_eq!(journal.live_len(), 9);
    assert_eq!(journal.durable_len(), 5);
    // A journal that is down answers nothing.
    assert!(journal.append(&payloads("late", 1)).is_err());
    assert!(journal.last_seq().is_err());
    assert!(journal.read(1).is_err());
    assert!(journal.scan(1, &mut |_| Ok(())).is_err());
    assert_eq!(journal.appends(), 3, "calls to a journal that is down are not appends");

    let restarted = journal.crash();
    assert!(!restarted.is_down());
    let got: Vec<Vec<u8>> = all(&restarted).into_iter().map(|r| r.payload).collect();
    assert_eq!(got, [payloads("a", 2), payloads("b", 3)].concat());
    assert_eq!(restarted.append(&payloads("c", 1)).expect("append after restart"), 6);
    assert_eq!(restarted.crash().last_seq().expect("last_seq"), Some(6));
}

#[test]
fn crash_image_crash_at_a_past_call_never_fires() {
    let journal = CrashImage::new();
    journal.append(&payloads("a", 1)).expect("append");
    journal.crash_at(1);
    journal.append(&payloads("b", 1)).expect("append after a past crash point");
    assert!(!journal.is_down());
    assert_eq!(journal.crash().last_seq().expect("last_seq"), Some(2));
}
