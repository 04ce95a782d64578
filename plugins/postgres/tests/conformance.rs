//! The journal conformance suite on a real PostgreSQL server: a fresh
//! database per journal, and the same database reopened.

use std::sync::atomic::{AtomicUsize, Ordering};

use warden_journal::{conformance, Journal, JournalError};
use warden_postgres::testing::TempPostgres;
use warden_postgres::PostgresJournal;

fn server() -> TempPostgres {
    TempPostgres::start().expect("start a throwaway postgres (scripts/postgres.sh installs it when missing)")
}

#[test]
fn postgres_journal_conforms() {
    let server = server();
    let made = AtomicUsize::new(0);
    conformance::run_all(&|| {
        let n = made.fetch_add(1, Ordering::SeqCst);
        let url = server.create_database(&format!("conformance_{n}")).expect("create database");
        Box::new(PostgresJournal::open(&url).expect("open a fresh journal"))
    });
}

#[test]
fn postgres_journal_keeps_records_when_reopened() {
    let server = server();
    let url = server.create_database("reopen").expect("create database");
    conformance::reopen_keeps_records(&|| Box::new(PostgresJournal::open(&url).expect("open the journal")));
}

#[test]
fn acknowledged_records_survive_a_crash_of_the_server() {
    let mut server = server();
    let url = server.create_database("crash").expect("create database");
    let journal = PostgresJournal::open(&url).expect("open");
    let payloads: Vec<Vec<u8>> = (0..5).map(|i| format!("fact {i}").into_bytes()).collect();
    assert_eq!(journal.append(&payloads).expect("append"), 1);
    assert_eq!(journal.append(&payloads[..2]).expect("append"), 6);

    server.crash_and_restart().expect("restart after an immediate shutdown");

    // The same handle reconnects: its old sessions died with the server.
    let mut read = Vec::new();
    let scanned = (0..3).find_map(|_| {
        read.clear();
        journal
            .scan(1, &mut |record| {
                read.push(record.payload);
                Ok(())
            })
            .ok()
    });
    assert!(scanned.is_some(), "the journal must read again once the server is back");
    let wanted: Vec<Vec<u8>> = payloads.iter().chain(&payloads[..2]).cloned().collect();
    assert_eq!(read, wanted, "every acknowledged record must be there after crash recovery");
    let next = (0..3).find_map(|_| journal.append(&payloads[..1]).ok());
    assert_eq!(next, Some(8), "appends go on after the last acknowledged record");
}

#[test]
fn open_fails_clearly_when_the_server_is_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let err = PostgresJournal::open(&format!("postgresql://warden@127.0.0.1:{port}/nothing")).expect_err("no server");
    match err {
        JournalError::Storage(message) => assert!(message.contains("connect"), "{message}"),
        other => panic!("expected a storage error, got {other:?}"),
    }
}

#[test]
fn open_refuses_a_bad_connection_string() {
    match PostgresJournal::open("postgresql://[nonsense") {
        Err(JournalError::Storage(message)) => assert!(message.contains("connection string"), "{message}"),
        other => panic!("expected a storage error, got {other:?}"),
    }
}

#[test]
fn a_journal_dropped_inside_an_async_runtime_closes_without_panicking() {
    // The client closes a connection by blocking on a runtime of its own,
    // which panics inside another runtime; an engine shutting down drops its
    // journal there.
    let server = server();
    let url = server.create_database("dropped_in_runtime").expect("create database");
    let journal = PostgresJournal::open(&url).expect("open");
    journal.append(&[b"fact".to_vec()]).expect("append opens the writer's session");
    assert_eq!(journal.last_seq().expect("last_seq opens a read session"), Some(1));
    let leases = warden_postgres::Leases::connect(&url).expect("connect");
    let mut follower = journal.follow(1);
    follower.poll(std::time::Duration::from_millis(10), &mut |_| Ok(())).expect("poll opens its session");
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    runtime.block_on(async move {
        drop(follower);
        drop(leases);
        drop(journal);
    });
}
