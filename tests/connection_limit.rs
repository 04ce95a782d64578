//! `max_connections` bounds the connections served at once over all the
//! server's workers (actix counts per worker, which alone admitted a few
//! more than asked); the others wait, and are served as connections close.

use std::net::TcpListener;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warden::http::Server;
use warden::{Engine, MemoryJournal};

const LIMIT: usize = 3;
const OPENED: usize = 6;

/// Sends `GET /healthz` (keep-alive) on `socket`; whether an answer's first
/// bytes came back within `wait`.
async fn answered(socket: &mut TcpStream, wait: Duration) -> bool {
    let mut first = [0u8; 12];
    matches!(tokio::time::timeout(wait, socket.read_exact(&mut first)).await, Ok(Ok(_)))
        && first.starts_with(b"HTTP/1.1 200")
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

    let mut sockets = Vec::new();
    for _ in 0..OPENED {
        let mut socket = TcpStream::connect(address).await.expect("connects");
        socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        sockets.push(socket);
    }
    let mut served = Vec::new();
    let mut waiting = Vec::new();
    for mut socket in sockets {
        // The first answers come at once; the waiting ones get a while to show they wait.
        let wait = if served.len() < LIMIT { Duration::from_secs(10) } else { Duration::from_millis(700) };
        if answered(&mut socket, wait).await {
            served.push(socket);
        } else {
            waiting.push(socket);
        }
    }
    assert_eq!(served.len(), LIMIT, "served at once");
    assert_eq!(waiting.len(), OPENED - LIMIT);

    // A served connection closes: one waiting connection is served.
    drop(served.pop());
    let mut now_served = 0;
    for socket in &mut waiting {
        if answered(socket, Duration::from_secs(5)).await {
            now_served += 1;
            break;
        }
    }
    assert_eq!(now_served, 1, "a closed connection's slot goes to a waiting one");

    drop((served, waiting));
    let _ = stop.send(());
    serving.await.expect("server task").expect("server stops cleanly");
}
