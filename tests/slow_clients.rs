//! Slow clients cannot exhaust the server: a body that never finishes gets
//! 408 after `body_timeout_seconds` and its connection is closed; an
//! unauthenticated request's connection is closed right after its 401,
//! whether its body is chunked or sized. The real binary runs with 256 file
//! descriptors while a thousand such sockets are opened over a few seconds,
//! and a normal client keeps getting answers all along.

#![cfg(unix)]

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use warden::config::token_sha256_hex;

const TOKEN: &str = "slow-clients-token";
const SLOW_SOCKETS: usize = 1000;
/// The server's file-descriptor limit: far fewer than the slow sockets.
const SERVER_FDS: u64 = 256;
/// Longest a slow socket may stay open after it was opened: it may wait in
/// the listen backlog while the server is at `max_connections`, then gets
/// `body_timeout_seconds` (2) and the closing linger (1 s).
const DEADLINE: Duration = Duration::from_secs(90);

/// How a slow socket misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slow {
    /// A token and a sized body that stops half way: 408.
    AuthenticatedSized,
    /// A token and a chunked body that never ends: 408.
    AuthenticatedChunked,
    /// No token, a chunked body that never ends: 401 (actix-http would
    /// otherwise drain the body for ever).
    AnonymousChunked,
    /// No token, a sized body that stops half way: 401.
    AnonymousSized,
}

impl Slow {
    fn of(i: usize) -> Slow {
        [Slow::AuthenticatedSized, Slow::AuthenticatedChunked, Slow::AnonymousChunked, Slow::AnonymousSized][i % 4]
    }

    fn request(self) -> String {
        let auth = format!("Authorization: Bearer {TOKEN}\r\n");
        let auth = match self {
            Slow::AuthenticatedSized | Slow::AuthenticatedChunked => auth.as_str(),
            Slow::AnonymousChunked | Slow::AnonymousSized => "",
        };
        let framing = match self {
            Slow::AuthenticatedSized | Slow::AnonymousSized => "Content-Length: 1000\r\n\r\n{\"kind\":".to_owned(),
            Slow::AuthenticatedChunked | Slow::AnonymousChunked => {
                "Transfer-Encoding: chunked\r\n\r\n10\r\n{\"kind\": \"Walle".to_owned()
            }
        };
        format!("POST /v2/activities HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n{framing}")
    }

    fn expected_status(self) -> &'static str {
        match self {
            Slow::AuthenticatedSized | Slow::AuthenticatedChunked => "408",
            Slow::AnonymousChunked | Slow::AnonymousSized => "401",
        }
    }
}

/// What became of one slow socket.
#[derive(Debug)]
struct Outcome {
    kind: Slow,
    /// The status line's code, or `closed` for a close without an answer.
    status: String,
    /// Whether the answer was a problem document.
    problem: bool,
    /// Whether the server closed it (EOF or reset) before [`DEADLINE`].
    closed: bool,
    open_for: Duration,
}

/// Reads what the server sends on `socket` until it closes it, or the deadline.
async fn watch(kind: Slow, mut socket: TcpStream, opened: Instant) -> Outcome {
    let mut answer = Vec::new();
    let left = DEADLINE.saturating_sub(opened.elapsed());
    let closed = match tokio::time::timeout(left, socket.read_to_end(&mut answer)).await {
        Ok(Ok(_)) => true,                                                                           // EOF
        Ok(Err(error)) => error.kind() == std::io::ErrorKind::ConnectionReset || !answer.is_empty(), // reset
        Err(_) => false,
    };
    let text = String::from_utf8_lossy(&answer);
    let status = text.split(' ').nth(1).unwrap_or("closed").to_owned();
    let problem = text.to_ascii_lowercase().contains("content-type: application/problem+json");
    Outcome { kind, status, problem, closed, open_for: opened.elapsed() }
}

/// The server process, killed however the test ends (a failed assertion included).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// This process opens a thousand sockets: make sure its own limit allows it.
fn raise_own_fd_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < 4096 {
            limit.rlim_cur = limit.rlim_max.min(4096);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[actix_rt::test]
async fn a_thousand_unfinished_bodies_are_cut_and_normal_clients_keep_being_served() {
    raise_own_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "body_timeout_seconds = 2\nmax_connections = 150\n\n[[principals]]\nid = \"us-bob\"\nroles = [\"Signer\"]\ntoken_sha256 = \"{}\"\n",
            token_sha256_hex(TOKEN)
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_warden"));
    command.args(["serve", "--config"]).arg(&config).args(["--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path());
    // SAFETY: setrlimit is async-signal-safe; it only lowers this child's limit.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: SERVER_FDS, rlim_max: SERVER_FDS };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = KillOnDrop(command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap());
    let mut lines =
        BufReader::new(tokio::process::ChildStdout::from_std(child.0.stdout.take().unwrap()).unwrap()).lines();
    let address = loop {
        let line = lines.next_line().await.unwrap().expect("warden prints where it listens");
        if let Some(base) = line.strip_prefix("warden listening on http://") {
            break base.trim().to_owned();
        }
    };

    // The normal client's connection exists before the storm; it is asked
    // again and again, all through it.
    let client = awc::Client::builder().timeout(Duration::from_secs(15)).finish();
    let first = client.get(format!("http://{address}/healthz")).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let storm_over = Arc::new(AtomicBool::new(false));
    let normal = {
        let (address, storm_over) = (address.clone(), storm_over.clone());
        actix_rt::spawn(async move {
            let mut answered = 0;
            while !storm_over.load(Ordering::Relaxed) {
                let answer = client.get(format!("http://{address}/healthz")).send().await;
                assert!(matches!(&answer, Ok(r) if r.status() == 200), "healthz while slow clients wait: {answer:?}");
                answered += 1;
                actix_rt::time::sleep(Duration::from_millis(100)).await;
            }
            answered
        })
    };

    // A thousand slow sockets over about five seconds, each watched from the
    // moment it is opened.
    let mut watchers = Vec::with_capacity(SLOW_SOCKETS);
    let mut refused = 0;
    for i in 0..SLOW_SOCKETS {
        let kind = Slow::of(i);
        let opened = Instant::now();
        let Ok(mut socket) = TcpStream::connect(&address).await else {
            refused += 1;
            continue;
        };
        // The server may already have answered and closed; what matters is what it sends.
        let _ = socket.write_all(kind.request().as_bytes()).await;
        watchers.push(tokio::spawn(watch(kind, socket, opened)));
        if i % 40 == 39 {
            actix_rt::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(refused, 0, "every slow socket could connect");

    let mut outcomes = Vec::with_capacity(SLOW_SOCKETS);
    for watcher in watchers {
        outcomes.push(watcher.await.unwrap());
    }
    storm_over.store(true, Ordering::Relaxed);
    let answered = normal.await.unwrap();
    assert!(answered >= 10, "the normal client was answered {answered} times during the storm");

    let still_open: Vec<&Outcome> = outcomes.iter().filter(|o| !o.closed).collect();
    assert!(
        still_open.is_empty(),
        "{} slow sockets were still open {DEADLINE:?} after they were opened, e.g. {:?}",
        still_open.len(),
        still_open.first()
    );
    let mut statuses = std::collections::BTreeMap::<(Slow, &str), usize>::new();
    for outcome in &outcomes {
        *statuses.entry((outcome.kind, outcome.status.as_str())).or_default() += 1;
    }
    for outcome in &outcomes {
        assert_eq!(
            outcome.status,
            outcome.kind.expected_status(),
            "a {:?} socket (closed after {:?}); all: {statuses:?}",
            outcome.kind,
            outcome.open_for
        );
        assert!(outcome.problem, "the {} of a {:?} socket is a problem document", outcome.status, outcome.kind);
    }

    let answer = awc::Client::default().get(format!("http://{address}/healthz")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    drop(child);
}
