//! Appends whose connection is cut: the writer finds out from a new session
//! whether the batch committed before it answers, so an `Ok` is always in
//! the journal once, and a batch reported as failed is never silently there.
//!
//! The cut is made by a TCP proxy between the journal and a real server,
//! which can drop the connection of the next append at a chosen moment.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use support::{all, database, payloads};
use warden_journal::{Journal, JournalError, Record};
use warden_postgres::PostgresJournal;

/// What the proxy does with the next chunk a client sends.
const PASS: u8 = 0;
/// Forwards it, waits for the server's first answer to it, then cuts the
/// client off without passing that answer on: the batch has committed, the
/// client cannot know.
const CUT_AFTER_COMMIT: u8 = 1;
/// Cuts the client off without forwarding it: the batch never reached the
/// server.
const CUT_BEFORE_SENDING: u8 = 2;

/// A loopback TCP proxy to a PostgreSQL server that can cut one connection.
struct Proxy {
    port: u16,
    next: Arc<AtomicU8>,
    /// While set, new connections are closed at once (the database is
    /// unreachable).
    refuse: Arc<AtomicBool>,
}

impl Proxy {
    fn start(server_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("addr").port();
        let next = Arc::new(AtomicU8::new(PASS));
        let refuse = Arc::new(AtomicBool::new(false));
        let (mode, refusing) = (Arc::clone(&next), Arc::clone(&refuse));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if refusing.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let server = TcpStream::connect(("127.0.0.1", server_port)).expect("connect to postgres");
                relay(client, server, Arc::clone(&mode));
            }
        });
        Self { port, next, refuse }
    }

    /// A URL of database `name` on the server, through the proxy.
    fn url(&self, name: &str) -> String {
        format!("postgresql://warden@127.0.0.1:{}/{name}", self.port)
    }
}

/// Pumps both ways between `client` and `server`, cutting as `mode` says.
fn relay(client: TcpStream, server: TcpStream, mode: Arc<AtomicU8>) {
    let cut_pending = Arc::new(AtomicBool::new(false));
    let (mut from_client, mut to_server) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
    let (mut from_server, mut to_client) = (server, client);
    let pending = Arc::clone(&cut_pending);
    let upstream_client = to_client.try_clone().expect("clone");
    std::thread::spawn(move || {
        let mut buffer = [0; 64 * 1024];
        while let Ok(n @ 1..) = from_client.read(&mut buffer) {
            match mode.swap(PASS, Ordering::SeqCst) {
                CUT_BEFORE_SENDING => {
                    let _ = upstream_client.shutdown(Shutdown::Both);
                    return;
                }
                CUT_AFTER_COMMIT => pending.store(true, Ordering::SeqCst),
                _ => {}
            }
            if to_server.write_all(&buffer[..n]).is_err() {
                return;
            }
        }
    });
    std::thread::spawn(move || {
        let mut buffer = [0; 64 * 1024];
        while let Ok(n @ 1..) = from_server.read(&mut buffer) {
            if cut_pending.load(Ordering::SeqCst) {
                // The server answered (it commits before it answers a
                // statement run on its own): drop the answer and the client.
                let _ = to_client.shutdown(Shutdown::Both);
                continue;
            }
            if to_client.write_all(&buffer[..n]).is_err() {
                return;
            }
        }
        let _ = to_client.shutdown(Shutdown::Both);
    });
}

fn tags(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| String::from_utf8_lossy(&r.payload).into_owned()).collect()
}

#[test]
fn an_append_that_committed_before_its_answer_was_lost_is_acknowledged_once() {
    let (server, _) = database("committed_unanswered");
    let proxy = Proxy::start(server.port());
    let journal = PostgresJournal::open(&proxy.url("committed_unanswered")).expect("open through the proxy");
    assert_eq!(journal.append(&payloads("first", 2)).expect("append"), 1);

    proxy.next.store(CUT_AFTER_COMMIT, Ordering::SeqCst);
    assert_eq!(journal.append(&payloads("lost", 3)).expect("the committed batch is acknowledged"), 3);
    assert_eq!(proxy.next.load(Ordering::SeqCst), PASS, "the cut was made");
    assert_eq!(journal.append(&payloads("after", 1)).expect("append"), 6);

    let direct = PostgresJournal::open(&server.url("committed_unanswered")).expect("open directly");
    assert_eq!(tags(&all(&direct)), ["first-0", "first-1", "lost-0", "lost-1", "lost-2", "after-0"]);
}

#[test]
fn an_append_that_never_reached_the_server_is_sent_again() {
    let (server, _) = database("never_sent");
    let proxy = Proxy::start(server.port());
    let journal = PostgresJournal::open(&proxy.url("never_sent")).expect("open through the proxy");
    assert_eq!(journal.append(&payloads("first", 1)).expect("append"), 1);

    proxy.next.store(CUT_BEFORE_SENDING, Ordering::SeqCst);
    assert_eq!(journal.append(&payloads("resent", 2)).expect("sent again on a new session"), 2);
    assert_eq!(proxy.next.load(Ordering::SeqCst), PASS, "the cut was made");

    let direct = PostgresJournal::open(&server.url("never_sent")).expect("open directly");
    assert_eq!(tags(&all(&direct)), ["first-0", "resent-0", "resent-1"]);
}

#[test]
fn a_batch_in_doubt_that_committed_stops_the_writer() {
    let (server, _) = database("in_doubt");
    let proxy = Proxy::start(server.port());
    let journal = PostgresJournal::open(&proxy.url("in_doubt")).expect("open through the proxy");
    assert_eq!(journal.append(&payloads("first", 1)).expect("append"), 1);

    // The answer is lost and the database is unreachable while the writer
    // tries to find out: the append fails, its outcome unknown.
    proxy.refuse.store(true, Ordering::SeqCst);
    proxy.next.store(CUT_AFTER_COMMIT, Ordering::SeqCst);
    match journal.append(&payloads("doubt", 2)) {
        Err(JournalError::Storage(message)) => assert!(message.contains("could not be read"), "{message}"),
        other => panic!("an append whose outcome cannot be read must fail, got {other:?}"),
    }

    // Reachable again: the writer settles the doubt before anything else. The
    // batch had committed, so the writer refuses to go on.
    proxy.refuse.store(false, Ordering::SeqCst);
    for _ in 0..2 {
        match journal.append(&payloads("next", 1)) {
            Err(JournalError::Storage(message)) => assert!(message.contains("committed after all"), "{message}"),
            other => panic!("a writer whose failed batch committed must stop, got {other:?}"),
        }
    }
    let direct = PostgresJournal::open(&server.url("in_doubt")).expect("open directly");
    assert_eq!(tags(&all(&direct)), ["first-0", "doubt-0", "doubt-1"], "recovery finds the batch");
}

#[test]
fn a_batch_in_doubt_that_did_not_commit_lets_the_writer_go_on() {
    let (server, _) = database("doubt_cleared");
    let proxy = Proxy::start(server.port());
    let journal = PostgresJournal::open(&proxy.url("doubt_cleared")).expect("open through the proxy");
    assert_eq!(journal.append(&payloads("first", 1)).expect("append"), 1);

    proxy.refuse.store(true, Ordering::SeqCst);
    proxy.next.store(CUT_BEFORE_SENDING, Ordering::SeqCst);
    assert!(matches!(journal.append(&payloads("unsent", 2)), Err(JournalError::Storage(_))));

    proxy.refuse.store(false, Ordering::SeqCst);
    assert_eq!(journal.append(&payloads("next", 1)).expect("the doubt is cleared"), 2);
    let direct = PostgresJournal::open(&server.url("doubt_cleared")).expect("open directly");
    assert_eq!(tags(&all(&direct)), ["first-0", "next-0"]);
}
