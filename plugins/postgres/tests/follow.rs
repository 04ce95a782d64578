//! Following the journal: a standby's follower visits every committed record
//! in order, woken by the appends' notifications.

mod support;

use std::time::{Duration, Instant};

use support::{database, payloads};
use warden_journal::{Journal, JournalError, Record};
use warden_postgres::PostgresJournal;

/// Polls until `count` records were visited, failing after `limit` polls.
fn poll_until(follower: &mut warden_postgres::Follower, count: usize) -> Vec<Record> {
    let mut seen = Vec::new();
    for _ in 0..40 {
        follower
            .poll(Duration::from_secs(1), &mut |record| {
                seen.push(record);
                Ok(())
            })
            .expect("poll");
        if seen.len() >= count {
            return seen;
        }
    }
    panic!("the follower saw {} of {count} records", seen.len());
}

#[test]
fn a_follower_visits_existing_then_new_records_in_order() {
    let (_server, url) = database("follow");
    let writer = PostgresJournal::open(&url).expect("open the writer");
    writer.append(&payloads("before", 3)).expect("append");
    let reader = PostgresJournal::open(&url).expect("open the standby's journal");
    let mut follower = reader.follow(2);
    assert_eq!(follower.next_seq(), 2);

    let existing = poll_until(&mut follower, 2);
    assert_eq!(existing.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(follower.next_seq(), 4);

    let appender = std::thread::spawn(move || {
        for batch in 0..5 {
            writer.append(&payloads(&format!("live{batch}"), 2)).expect("append");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let live = poll_until(&mut follower, 10);
    appender.join().expect("appender");
    assert_eq!(live.iter().map(|r| r.seq).collect::<Vec<_>>(), (4..=13).collect::<Vec<_>>());
    assert_eq!(live[0].payload, b"live0-0");
    assert_eq!(live[9].payload, b"live4-1");
}

#[test]
fn a_poll_with_nothing_new_visits_nothing() {
    let (_server, url) = database("quiet");
    let journal = PostgresJournal::open(&url).expect("open");
    let mut follower = journal.follow(1);
    let visited = follower.poll(Duration::from_millis(100), &mut |_| Ok(())).expect("poll");
    assert_eq!(visited, 0);
    assert_eq!(follower.next_seq(), 1);
}

#[test]
fn a_waiting_follower_is_woken_by_an_append() {
    // The follower waits with a timeout and a poll interval far longer than
    // the test, so it can only return because the append's notification woke
    // it; the latency is printed as the standby lag on this machine.
    let (_server, url) = database("wake");
    let journal = PostgresJournal::open(&url).expect("open");
    let mut follower = journal.follow(1).with_poll_interval(Duration::from_secs(3600));
    follower.poll(Duration::from_millis(10), &mut |_| Ok(())).expect("connect and listen");
    let writer = PostgresJournal::open(&url).expect("open the writer");
    let mut lags = Vec::new();
    for round in 0..5 {
        let appended = std::thread::scope(|scope| {
            let append = scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                writer.append(&payloads(&format!("wake{round}"), 1)).expect("append");
                Instant::now()
            });
            let mut seen = Vec::new();
            let visited = follower
                .poll(Duration::from_secs(60), &mut |record| {
                    seen.push(record);
                    Ok(())
                })
                .expect("poll");
            let woke = Instant::now();
            assert_eq!((visited, seen.len()), (1, 1), "one record was appended");
            let appended = append.join().expect("append");
            woke.saturating_duration_since(appended)
        });
        lags.push(appended);
    }
    eprintln!("standby lag (append returned -> follower visited): {lags:?}");
}

#[test]
fn a_visit_error_stops_the_poll_and_the_record_comes_again() {
    let (_server, url) = database("visit_error");
    let journal = PostgresJournal::open(&url).expect("open");
    journal.append(&payloads("r", 4)).expect("append");
    let mut follower = journal.follow(1);
    let mut seen = Vec::new();
    let result = follower.poll(Duration::from_secs(1), &mut |record| {
        if record.seq == 3 {
            return Err(JournalError::Storage("apply failed".into()));
        }
        seen.push(record.seq);
        Ok(())
    });
    assert!(matches!(result, Err(JournalError::Storage(m)) if m == "apply failed"));
    assert_eq!(seen, [1, 2]);
    assert_eq!(follower.next_seq(), 3);
    let rest = poll_until(&mut follower, 2);
    assert_eq!(rest.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4]);
}

#[test]
fn a_follower_goes_on_after_the_server_restarts() {
    let (mut server, url) = database("follow_restart");
    let journal = PostgresJournal::open(&url).expect("open");
    journal.append(&payloads("before", 2)).expect("append");
    let mut follower = journal.follow(1);
    assert_eq!(poll_until(&mut follower, 2).len(), 2);

    server.crash_and_restart().expect("restart");
    let appended = (0..3).find_map(|_| journal.append(&payloads("after", 2)).ok());
    assert_eq!(appended, Some(3));
    // The first poll may fail on the session the crash broke; a later one
    // reconnects and goes on from the same seq.
    let mut seen = Vec::new();
    for _ in 0..10 {
        let _ = follower.poll(Duration::from_secs(1), &mut |record| {
            seen.push(record.seq);
            Ok(())
        });
        if seen.len() >= 2 {
            break;
        }
    }
    assert_eq!(seen, [3, 4]);
}
