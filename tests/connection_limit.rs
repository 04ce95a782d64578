//! `max_connections` bounds the connections served at once over all the
//! server's workers (actix counts per worker, which alone admitted a few
//! more than asked); the others wait, and are served as connections close.

use std::net::TcpListener;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warden::http::Server;
use warden::{Engine, MemoryJournal};

const LIMIT: usize = 3;
const OPENED: usize = 6;

/// Waits (up to `wait`) for the first bytes of the answer to the request
/// sent on `socket`; gives the socket back with whether they came.
async fn answer(index: usize, mut socket: TcpStream, wait: Duration) -> (usize, TcpStream, bool) {
    let mut first = [0u8; 12];
    let read = tokio::time::timeout(wait, socket.read_exact(&mut first)).await;
    let answered = matches!(read, Ok(Ok(_))) && first.starts_with(b"HTTP/1.1 200");
    (index, socket, answered)
}

#[actix_rt::test]
async fn no_more_connections_than_max_connections_are_served_at_once() {
    let engine = Engine::builder().journal(MemoryJournal::new()).build().await.expect("engine starts");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().unwrap();
    // Two workers: a per-worker limit rounded up would serve four.
    let server = Server::new(engine).workers(2).max_connections(LIMIT);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = actix_rt::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));

    // Every connection asks at once; which ones get a slot is the server's choice.
    let mut answers = FuturesUnordered::new();
    for index in 0..OPENED {
        let mut socket = TcpStream::connect(address).await.expect("connects");
        socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        answers.push(answer(index, socket, Duration::from_secs(60)));
    }
    let mut served = Vec::new();
    while served.len() < LIMIT {
        let (index, socket, answered) = answers.next().await.expect("an answer");
        assert!(answered, "connection {index} was closed unanswered");
        served.push(socket);
    }
    // The others wait. (Well within the served ones' 5 s keep-alive, whose
    // end would free their slots.)
    let more = tokio::time::timeout(Duration::from_millis(700), answers.next()).await;
    assert!(more.is_err(), "a connection past max_connections was served: {:?}", more.map(|a| a.map(|a| a.0)));

    // A served connection closes: a waiting one is served.
    drop(served.pop());
    let next = tokio::time::timeout(Duration::from_secs(30), answers.next()).await;
    let (index, _socket, answered) = next.expect("a waiting connection is served").expect("an answer");
    assert!(answered, "connection {index} was closed unanswered");

    drop((served, answers));
    let _ = stop.send(());
    serving.await.expect("server task").expect("server stops cleanly");
}
