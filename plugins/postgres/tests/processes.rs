//! Real writer processes, paused and killed: a leader stopped with `SIGSTOP`
//! past its lease and resumed after a takeover commits nothing more, and a
//! writer killed with `SIGKILL` mid-append leaves no partial batch.
//!
//! The test binary re-executes itself as the writer (the role is chosen by
//! environment variables). The writer appends batches in a loop and prints
//! `ack <first> <batch> <size>` after each append that returned `Ok`, and
//! `fenced` after each that was refused for its epoch.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{database, wait_until_expired, LONG};
use warden_journal::{Journal, JournalError, Seq};
use warden_postgres::{Leases, PostgresJournal};

/// The database URL the child writes to; set only in the child.
const CHILD_URL: &str = "WARDEN_PG_CHILD_URL";
/// The child's role: `leader` (takes a lease first) or `single` (epoch 0).
const CHILD_ROLE: &str = "WARDEN_PG_CHILD_ROLE";
/// The lease the child leader takes: short, so the test can wait it out.
const CHILD_LEASE: Duration = Duration::from_millis(500);
/// Refusals after which the child leader stops.
const FENCED_BEFORE_EXIT: usize = 10;

/// The payload of record `index` of batch `batch` of `size` records.
fn payload(batch: u64, size: u64, index: u64) -> Vec<u8> {
    format!("child;batch={batch};size={size};index={index}").into_bytes()
}

fn batch_size(batch: u64) -> u64 {
    1 + (batch * 7919) % 32
}

/// The child: appends until killed, or until fenced often enough.
fn run_child(url: &str, role: &str) -> ! {
    let journal = match role {
        "leader" => {
            let leases = Leases::connect(url).expect("child connects");
            let lease = leases.try_acquire("child", "http://child", CHILD_LEASE).expect("try").expect("child leads");
            PostgresJournal::open_as_leader(url, &lease).expect("child opens as leader")
        }
        _ => PostgresJournal::open(url).expect("child opens"),
    };
    let mut batch = journal.last_seq().expect("last_seq").map_or(0, |last| {
        let record = journal.read(last).expect("read").expect("last record");
        let text = String::from_utf8(record.payload).expect("utf-8");
        text.split(';')
            .nth(1)
            .and_then(|f| f.strip_prefix("batch="))
            .and_then(|b| b.parse::<u64>().ok())
            .expect("batch")
            + 1
    });
    let mut out = std::io::stdout().lock();
    let mut fenced = 0;
    loop {
        let size = batch_size(batch);
        let payloads: Vec<Vec<u8>> = (0..size).map(|i| payload(batch, size, i)).collect();
        match journal.append(&payloads) {
            Ok(first) => writeln!(out, "ack {first} {batch} {size}").expect("print"),
            Err(JournalError::Fenced { .. }) => {
                writeln!(out, "fenced").expect("print");
                fenced += 1;
            }
            Err(other) => panic!("child append: {other}"),
        }
        out.flush().expect("flush");
        if fenced >= FENCED_BEFORE_EXIT {
            std::process::exit(0);
        }
        batch += 1;
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Line {
    Ack { first: Seq, batch: u64, size: u64 },
    Fenced,
}

fn parse(line: &str) -> Option<Line> {
    if line == "fenced" {
        return Some(Line::Fenced);
    }
    let mut words = line.strip_prefix("ack ")?.split(' ').map(str::parse::<u64>);
    let ack = Line::Ack { first: words.next()?.ok()?, batch: words.next()?.ok()?, size: words.next()?.ok()? };
    words.next().is_none().then_some(ack)
}

/// The child process and a thread collecting its lines; `first` is signalled
/// once `wanted` acks have arrived.
struct Writer {
    child: Child,
    lines: std::thread::JoinHandle<Vec<Line>>,
    acked: mpsc::Receiver<()>,
}

fn spawn_child(test: &str, url: &str, role: &str, wanted: usize) -> Writer {
    let mut child = Command::new(std::env::current_exe().expect("current exe"))
        .args(["--exact", test, "--nocapture"])
        .env(CHILD_URL, url)
        .env(CHILD_ROLE, role)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, acked) = mpsc::channel();
    let lines = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            // A line cut by a kill is no ack; libtest's own lines neither.
            let Ok(line) = line else { break };
            if let Some(parsed) = parse(&line) {
                lines.push(parsed);
                if lines.len() == wanted {
                    let _ = tx.send(());
                }
            }
        }
        lines
    });
    let writer = Writer { child, lines, acked };
    if writer.acked.recv_timeout(Duration::from_secs(30)).is_err() {
        let mut writer = writer;
        let _ = writer.child.kill();
        let _ = writer.child.wait();
        panic!("the writer acknowledged nothing within 30 s");
    }
    writer
}

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: `kill` has no memory effects; the child is not reaped yet.
    let result = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(result, 0, "signal {signal} to the writer");
}

/// Every record, as `(seq, payload)`.
fn records(url: &str) -> Vec<(Seq, Vec<u8>)> {
    let journal = PostgresJournal::open(url).expect("open a reader");
    let mut records = Vec::new();
    journal
        .scan(1, &mut |r| {
            records.push((r.seq, r.payload));
            Ok(())
        })
        .expect("scan");
    records
}

/// Checks that the child's records form whole batches in order from batch 0,
/// contiguous from seq 1, and that every ack is where it said; returns how
/// many of the child's records lead the journal.
fn check_child_batches(records: &[(Seq, Vec<u8>)], lines: &[Line]) -> usize {
    let mut at = 0;
    let mut batch = 0;
    while at < records.len() && records[at].1.starts_with(b"child;") {
        let size = batch_size(batch);
        for index in 0..size {
            let (seq, stored) = records.get(at + index as usize).unwrap_or_else(|| panic!("batch {batch} is partial"));
            assert_eq!(*seq, (at + index as usize) as Seq + 1, "seqs are contiguous");
            assert_eq!(stored, &payload(batch, size, index), "batch {batch} is partial or out of order");
        }
        at += size as usize;
        batch += 1;
    }
    for line in lines {
        if let Line::Ack { first, batch, size } = *line {
            for index in 0..size {
                let found = records.get((first + index - 1) as usize).map(|(_, p)| p);
                assert_eq!(found, Some(&payload(batch, size, index)), "acknowledged batch {batch} is not intact");
            }
        }
    }
    at
}

#[test]
fn a_paused_leader_resumed_after_a_takeover_commits_nothing() {
    if let (Some(url), Some(role)) = (std::env::var_os(CHILD_URL), std::env::var_os(CHILD_ROLE)) {
        run_child(&url.to_string_lossy(), &role.to_string_lossy());
    }
    let (_server, url) = database("paused_leader");
    let mut writer = spawn_child("a_paused_leader_resumed_after_a_takeover_commits_nothing", &url, "leader", 20);

    signal(&writer.child, libc::SIGSTOP);
    let leases = Leases::connect(&url).expect("connect");
    wait_until_expired(&leases);
    let lease = leases.try_acquire("parent", "http://parent", LONG).expect("try").expect("the parent takes over");
    assert_eq!(lease.epoch, 2);
    let journal = PostgresJournal::open_as_leader(&url, &lease).expect("open as the new leader");
    // The takeover waited for any append the paused leader had sent: from
    // here on, nothing of it may commit.
    let at_takeover = journal.last_seq().expect("last_seq").expect("the old leader wrote");
    signal(&writer.child, libc::SIGCONT);

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = writer.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the resumed leader never learned it was fenced");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "the resumed leader exits after {FENCED_BEFORE_EXIT} refusals: {status}");
    let lines = writer.lines.join().expect("lines");

    let first_fenced = lines.iter().position(|l| *l == Line::Fenced).expect("the old leader was fenced");
    assert!(lines[first_fenced..].iter().all(|l| *l == Line::Fenced), "the old leader committed after being fenced");
    let parent_first = journal.append(&[b"parent;0".to_vec()]).expect("the new leader appends");
    assert_eq!(parent_first, at_takeover + 1, "the new leader goes on right after the old leader's last record");
    let records = records(&url);
    let child_records = check_child_batches(&records, &lines);
    assert_eq!(child_records as Seq, at_takeover, "the resumed leader committed after the takeover");
    assert_eq!(records.len() as Seq, parent_first, "nothing but the new leader's record after the takeover");
}

#[test]
fn a_writer_killed_mid_append_leaves_no_partial_batch() {
    if let (Some(url), Some(role)) = (std::env::var_os(CHILD_URL), std::env::var_os(CHILD_ROLE)) {
        run_child(&url.to_string_lossy(), &role.to_string_lossy());
    }
    let (_server, url) = database("killed_writer");
    let mut lines = Vec::new();
    for round in 0..8_u64 {
        let mut writer = spawn_child("a_writer_killed_mid_append_leaves_no_partial_batch", &url, "single", 1);
        std::thread::sleep(Duration::from_millis(round * 7 % 40));
        writer.child.kill().expect("SIGKILL the writer");
        writer.child.wait().expect("reap");
        lines.extend(writer.lines.join().expect("lines"));
        let records = records(&url);
        let whole = check_child_batches(&records, &lines);
        assert_eq!(whole, records.len(), "round {round}: the journal holds only whole batches of the writer");
    }
}
