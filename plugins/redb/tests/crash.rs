//! A writer killed with SIGKILL at random moments loses nothing it
//! acknowledged and never leaves half a batch.
//!
//! The test binary re-executes itself as the writer (the child role is chosen
//! by an environment variable). The child appends batches in a loop and
//! prints `ack <first> <last> <batch>` after each `append` returns; the parent
//! kills it after a random delay, reopens the file and checks every
//! acknowledged record is there, intact and in place, that seqs are
//! contiguous, and that every batch is whole.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use warden_journal::{Journal, Seq};
use warden_redb::RedbJournal;

/// Names the journal file the child writes to; set only in the child.
const CHILD_ENV: &str = "WARDEN_REDB_CRASH_CHILD";
const MIN_ROUNDS: u32 = 30;
const MAX_ROUNDS: u32 = 60;
/// Past this, no round is started beyond `MIN_ROUNDS`.
const SOFT_BUDGET: Duration = Duration::from_secs(8);
/// The longest the child may take to acknowledge what its round waits for
/// (its first batch, or enough frames to fill the commit log).
const FIRST_ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound of the random delay between the first ack and the kill.
const MAX_KILL_DELAY_MS: u64 = 40;

/// The payload of record `index` of batch `batch`, of `size` records:
/// every record names its batch and the batch size, padded to ~100 bytes.
fn payload(batch: u64, size: u64, index: u64) -> Vec<u8> {
    let mut text = format!("batch={batch};size={size};index={index};");
    text.extend(std::iter::repeat_n('.', 100usize.saturating_sub(text.len())));
    text.into_bytes()
}

/// `(batch, size, index)` of a payload written by [`payload`].
fn parse(payload: &[u8]) -> Option<(u64, u64, u64)> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut fields = text.split(';').map(|f| f.split_once('=').map(|(_, v)| v.parse().ok()));
    let mut next = || fields.next().flatten().flatten();
    let parsed = (next()?, next()?, next()?);
    (payload == self::payload(parsed.0, parsed.1, parsed.2).as_slice()).then_some(parsed)
}

/// The child: appends batches until killed, acknowledging each on stdout.
fn run_writer(path: &Path) -> ! {
    let journal = RedbJournal::open(path).expect("child opens the journal");
    let mut batch = match journal.last_seq().expect("last_seq") {
        None => 0,
        Some(last) => {
            let record = journal.read(last).expect("read last").expect("last record");
            parse(&record.payload).expect("last record is a test payload").0 + 1
        }
    };
    let mut out = std::io::stdout().lock();
    loop {
        let size = 1 + (batch * 7919) % 40;
        let payloads: Vec<Vec<u8>> = (0..size).map(|i| payload(batch, size, i)).collect();
        let first = journal.append(&payloads).expect("child append");
        writeln!(out, "ack {first} {} {batch}", first + size - 1).expect("print ack");
        out.flush().expect("flush ack");
        batch += 1;
    }
}

/// One acknowledged batch: seqs `first..=last` hold batch `batch`.
#[derive(Debug, Clone, Copy)]
struct Ack {
    first: Seq,
    last: Seq,
    batch: u64,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut words = line.strip_prefix("ack ")?.split(' ').map(str::parse);
    let ack = Ack { first: words.next()?.ok()?, last: words.next()?.ok()?, batch: words.next()?.ok()? };
    words.next().is_none().then_some(ack)
}

/// When a round kills its writer.
#[derive(Clone, Copy)]
enum Kill {
    /// This long after the first ack.
    After(Duration),
    /// As soon as the acknowledged batches' frames take this many pages of
    /// the commit log.
    AfterPages(u64),
}

/// Runs the child once, kills it as `kill` says, and returns the acks it
/// printed.
fn crash_round(path: &Path, kill: Kill) -> Vec<Ack> {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args(["--exact", "sigkill_loses_no_acknowledged_batch", "--nocapture"])
        .env(CHILD_ENV, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let (mut acks, mut pages) = (Vec::new(), 0);
        for line in BufReader::new(stdout).lines() {
            // A line cut by the kill is no ack; libtest's own lines neither.
            let Ok(line) = line else { break };
            if let Some(ack) = parse_ack(&line) {
                let time_to_kill = match kill {
                    Kill::After(_) => acks.is_empty(),
                    Kill::AfterPages(enough) => pages < enough && pages + frame_pages(ack.batch) >= enough,
                };
                pages += frame_pages(ack.batch);
                if time_to_kill {
                    let _ = tx.send(());
                }
                acks.push(ack);
            }
        }
        acks
    });
    if rx.recv_timeout(FIRST_ACK_TIMEOUT).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the writer did not acknowledge enough within {FIRST_ACK_TIMEOUT:?}");
    }
    if let Kill::After(delay) = kill {
        std::thread::sleep(delay);
    }
    // On unix this is SIGKILL: no destructor, no flush, no clean close.
    child.kill().expect("kill the writer");
    child.wait().expect("reap the writer");
    reader.join().expect("ack reader")
}

/// Checks the journal at `path` against every ack so far; returns the number
/// of records and of batches found.
fn verify(path: &Path, acks: &[Ack]) -> (Seq, u64) {
    let journal = RedbJournal::open(path).expect("reopen after the crash");
    let mut records = Vec::new();
    journal
        .scan(1, &mut |record| {
            records.push(record);
            Ok(())
        })
        .expect("scan after the crash");

    // Contiguous seqs, whole batches numbered one after another.
    let mut batch_of_seq = Vec::with_capacity(records.len());
    let mut expected_batch = 0;
    let mut at = 0;
    while at < records.len() {
        let (batch, size, _) =
            parse(&records[at].payload).unwrap_or_else(|| panic!("seq {} holds a foreign payload", records[at].seq));
        assert_eq!(batch, expected_batch, "batch at seq {} out of order", records[at].seq);
        for index in 0..size {
            let i = at + index as usize;
            let record =
                records.get(i).unwrap_or_else(|| panic!("batch {batch} is partial: {index} of {size} records"));
            assert_eq!(record.seq, i as Seq + 1, "seqs are not contiguous");
            assert_eq!(
                parse(&record.payload),
                Some((batch, size, index)),
                "seq {} does not hold record {index} of batch {batch}",
                record.seq
            );
            batch_of_seq.push(batch);
        }
        at += size as usize;
        expected_batch += 1;
    }

    for ack in acks {
        for seq in ack.first..=ack.last {
            assert_eq!(
                batch_of_seq.get((seq - 1) as usize),
                Some(&ack.batch),
                "acknowledged batch {} (seqs {}..={}) is not intact at seq {seq}",
                ack.batch,
                ack.first,
                ack.last
            );
        }
    }
    (records.len() as Seq, expected_batch)
}

/// A small xorshift generator: enough randomness for kill delays, with a
/// seed printed so a failing run can be replayed by reading it.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn sigkill_loses_no_acknowledged_batch() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        run_writer(Path::new(&path));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.redb");
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0x9E37_79B9, |d| d.as_nanos() as u64) | 1;
    eprintln!("crash test seed: {seed:#x}");
    let mut random = seed;
    let started = Instant::now();
    let mut acks = Vec::new();
    let mut rounds = 0;
    while rounds < MIN_ROUNDS || (rounds < MAX_ROUNDS && started.elapsed() < SOFT_BUDGET) {
        let delay = Duration::from_millis(next_random(&mut random) % (MAX_KILL_DELAY_MS + 1));
        let round = crash_round(&path, Kill::After(delay));
        assert!(!round.is_empty(), "round {rounds} acknowledged nothing");
        acks.extend(round);
        let (records, batches) = verify(&path, &acks);
        let acked = acks.last().map_or(0, |a| a.batch + 1);
        assert!(batches >= acked, "round {rounds}: {batches} batches found, {acked} acknowledged");
        rounds += 1;
        if rounds == MIN_ROUNDS || rounds % 10 == 0 {
            eprintln!(
                "round {rounds}: {records} records in {batches} batches, {acked} batches acked, {:?}",
                started.elapsed()
            );
        }
    }
    let unacked_but_kept = verify(&path, &acks).1 - acks.len() as u64;
    eprintln!(
        "{rounds} crashes in {:?}: {} batches acknowledged, {unacked_but_kept} more committed unacknowledged",
        started.elapsed(),
        acks.len()
    );
}

/// Pages of the commit log a batch's frame takes (a header of 32 bytes and
/// 4 bytes per record before the payloads, rounded up to 4 KiB pages).
fn frame_pages(batch: u64) -> u64 {
    let size = 1 + (batch * 7919) % 40;
    let bytes: u64 = 32 + (0..size).map(|i| 4 + payload(batch, size, i).len() as u64).sum::<u64>();
    bytes.div_ceil(4096)
}

/// Pages of the log after its header (16 MiB in all).
const LOG_FRAME_PAGES: u64 = 16 * 1024 * 1024 / 4096 - 1;

#[test]
fn sigkill_while_the_log_fills_and_empties_loses_no_acknowledged_batch() {
    // Rounds killed a little before the commit log is full, and after an
    // append found it full, checkpointed and emptied it.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.redb");
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0x9E37_79B9, |d| d.as_nanos() as u64) | 1;
    eprintln!("crash test seed: {seed:#x}");
    let mut random = seed;
    let mut acks = Vec::new();
    for round in 0..4 {
        // Each round's open empties the log; its own frames fill it.
        let offset = next_random(&mut random) % 400;
        let pages = if round % 2 == 0 { LOG_FRAME_PAGES - offset } else { LOG_FRAME_PAGES + 1 + offset };
        let acked = crash_round(&path, Kill::AfterPages(pages));
        let written: u64 = acked.iter().map(|ack| frame_pages(ack.batch)).sum();
        assert!(written >= pages, "round {round}: killed after {written} pages of frames, before {pages}");
        acks.extend(acked);
        let (_, batches) = verify(&path, &acks);
        let acknowledged = acks.last().map_or(0, |a| a.batch + 1);
        assert!(batches >= acknowledged, "round {round}: {batches} batches found, {acknowledged} acknowledged");
    }
}
