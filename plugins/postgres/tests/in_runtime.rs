//! The journal called from a thread that drives a tokio runtime, as an HTTP
//! handler or an actor of the engine is: every call blocks, and connecting
//! (at open, and again when a pooled session broke) must not start a runtime
//! inside the caller's.

mod support;

use support::database;
use warden_journal::Journal;
use warden_postgres::PostgresJournal;

#[test]
fn a_journal_opens_appends_reads_and_reconnects_inside_a_runtime() {
    let (server, url) = database("in_runtime");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let journal = PostgresJournal::open(&url).expect("opens inside a runtime");
        let first = journal.append(&[b"one".to_vec()]).unwrap();
        assert_eq!(journal.read(first).unwrap().unwrap().payload, b"one");
        // Every session of this database ends: the next read reconnects, here.
        let admin = server.url("postgres");
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
            client
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = 'in_runtime' AND pid <> pg_backend_pid()",
                    &[],
                )
                .unwrap();
        })
        .join()
        .unwrap();
        assert_eq!(journal.read(first).unwrap().unwrap().payload, b"one");
        assert_eq!(journal.append(&[b"two".to_vec()]).unwrap(), first + 1);
    });
}
