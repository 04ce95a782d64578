//! The append path: one statement per batch that checks the writer's epoch,
//! takes the seqs and inserts the records, committed on its own; and what is
//! done when the connection dies before the answer arrives.

use std::time::{Duration, Instant};

use postgres::error::Severity;
use postgres::types::Type;
use postgres::{Client, Config, Statement};
use warden_journal::{JournalError, Seq};

use crate::record;
use crate::session::{self, describe, storage, Session};

/// How many times an append re-reads the head after finding `next_seq` moved
/// under it (only another writer of the same epoch can move it) before
/// giving up: enough for a rare race, bounded so it cannot spin.
const MAX_HEAD_RETRIES: u32 = 3;
/// How long the resolution of an append whose answer was lost waits for the
/// server process that ran it to exit.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The append statement.
///
/// INVARIANT (fencing): the `UPDATE` of the lease row matches only while the
/// row's epoch is the writer's own; it takes the row lock, so a takeover
/// (which updates the same row) commits either wholly before this statement,
/// which then matches nothing and inserts nothing, or wholly after it.
///
/// INVARIANT (contiguous seqs): the seqs come from `next_seq`, read and moved
/// on under that row lock in the same transaction as the insert, so they are
/// never given twice and never skipped. The writer sends the seq it expects
/// (`$2`) because it computes the checksums, which cover the seq, beforehand.
///
/// The statement runs in its own implicit transaction: one round trip, no
/// transaction left open between statements, so a client paused or killed
/// mid-append holds no lock. `pg_notify` wakes followers at commit.
const APPEND: &str = "
WITH head AS (
    UPDATE warden_lease SET next_seq = next_seq + $3
    WHERE id = 1 AND epoch = $1 AND next_seq = $2
    RETURNING next_seq - $3 AS first
), written AS (
    INSERT INTO warden_journal (seq, checksum, payload)
    SELECT head.first + r.ord - 1, r.checksum, r.payload
    FROM head, unnest($4::integer[], $5::bytea[]) WITH ORDINALITY AS r(checksum, payload, ord)
    RETURNING seq
)
SELECT head.first, (SELECT count(*) FROM written), pg_notify('warden_journal', (head.first + $3 - 1)::text)::text
FROM head";

/// The writer: the epoch it writes under, its session, and a batch whose
/// outcome is still unknown.
pub(crate) struct Writer {
    config: Config,
    epoch: i64,
    session: Option<WriteSession>,
    /// A batch whose commit may or may not have happened: the connection died
    /// before the answer came, and finding out failed too.
    in_doubt: Option<Batch>,
}

struct WriteSession {
    client: Session,
    append: Statement,
    /// The server process running this session, to make sure it has exited
    /// before the outcome of a lost answer is read.
    backend_pid: i32,
    /// The seq the next batch is expected to get.
    next_seq: i64,
}

/// A batch sent for commit: where it was to go and what it holds.
struct Batch {
    first: i64,
    checksums: Vec<i32>,
    /// The server process that ran it.
    backend_pid: i32,
}

impl Writer {
    /// A writer under `epoch`; it connects on its first append.
    pub(crate) fn new(config: Config, epoch: Seq) -> Result<Self, JournalError> {
        let epoch = i64::try_from(epoch)
            .map_err(|_| JournalError::Storage(format!("lease epoch `{epoch}` is out of range")))?;
        Ok(Self { config, epoch, session: None, in_doubt: None })
    }

    /// Appends a non-empty batch; see the crate docs for the contract kept.
    pub(crate) fn append(&mut self, payloads: &[Vec<u8>]) -> Result<Seq, JournalError> {
        if let Some(batch) = self.in_doubt.take() {
            self.settle_earlier(batch)?;
        }
        let count = i64::try_from(payloads.len()).map_err(|_| seq_exhausted())?;
        let epoch = self.epoch;
        let mut retries = 0;
        let mut resent = false;
        loop {
            let session = self.session()?;
            let first = session.next_seq;
            if first.checked_add(count).is_none() {
                return Err(seq_exhausted());
            }
            let checksums: Vec<i32> =
                payloads.iter().zip(first..).map(|(payload, seq)| record::checksum(seq as Seq, payload)).collect();
            let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            let result = session.client.query_opt(&session.append, &[&epoch, &first, &count, &checksums, &slices]);
            match result {
                Ok(Some(row)) => {
                    let (given, written): (i64, i64) = (row.get(0), row.get(1));
                    if given != first || written != count {
                        // The statement makes this impossible; refuse to
                        // acknowledge anything if it ever happens.
                        self.session = None;
                        return Err(JournalError::Storage(format!(
                            "append wrote `{written}` records at seq `{given}`, expected `{count}` at `{first}`"
                        )));
                    }
                    session.next_seq = first + count;
                    return Ok(first as Seq);
                }
                Ok(None) => {
                    // Nothing was written: either the epoch moved on, or
                    // `next_seq` did (a second writer of the same epoch).
                    let (current, next_seq) = head(&mut session.client)?;
                    if current != epoch {
                        return Err(JournalError::Fenced { epoch: epoch as Seq, current: current as Seq });
                    }
                    session.next_seq = next_seq;
                    retries += 1;
                    if retries > MAX_HEAD_RETRIES {
                        return Err(JournalError::Storage(
                            "append kept losing the race for the next seq to another writer of the same epoch".into(),
                        ));
                    }
                }
                Err(e) if outcome_known(&e) => {
                    if session.client.is_closed() {
                        self.session = None;
                    }
                    return Err(storage("append")(e));
                }
                Err(e) => {
                    let batch = Batch { first, checksums, backend_pid: session.backend_pid };
                    self.session = None;
                    match self.committed(&batch) {
                        Ok(true) => return Ok(batch.first as Seq),
                        // Certainly not committed: sent once more on the new
                        // session (a session left broken by a restart of the
                        // server fails at its first use).
                        Ok(false) if !resent => resent = true,
                        Ok(false) => {
                            return Err(JournalError::Storage(format!(
                                "postgres connection lost during an append, which did not commit: {}",
                                describe(&e)
                            )))
                        }
                        Err(unknown) => {
                            self.in_doubt = Some(batch);
                            return Err(JournalError::Storage(format!(
                                "postgres connection lost during an append at seq `{first}` ({}), and whether it \
                                 committed could not be read: {unknown}",
                                describe(&e)
                            )));
                        }
                    }
                }
            }
        }
    }

    /// The session, connected (and the expected next seq read) if needed.
    fn session(&mut self) -> Result<&mut WriteSession, JournalError> {
        if self.session.is_none() {
            let mut client = session::connect(&self.config)?;
            session::require_durable_server(&mut client)?;
            let append = client
                .prepare_typed(APPEND, &[Type::INT8, Type::INT8, Type::INT8, Type::INT4_ARRAY, Type::BYTEA_ARRAY])
                .map_err(storage("prepare the append"))?;
            let backend_pid: i32 =
                client.query_one("SELECT pg_backend_pid()", &[]).map_err(storage("read the backend pid"))?.get(0);
            let (_, next_seq) = head(&mut client)?;
            self.session = Some(WriteSession { client, append, backend_pid, next_seq });
        }
        Ok(self.session.as_mut().expect("set just above"))
    }

    /// A batch reported as failed, whose outcome was unknown: if it committed
    /// after all, the journal holds records the caller was told are not
    /// there, and this writer refuses every later append; the caller must
    /// reopen the journal and recover from what it holds.
    fn settle_earlier(&mut self, batch: Batch) -> Result<(), JournalError> {
        match self.committed(&batch) {
            Ok(false) => Ok(()),
            Ok(true) => {
                let first = batch.first;
                let last = first + batch.checksums.len() as i64 - 1;
                self.in_doubt = Some(batch);
                Err(JournalError::Storage(format!(
                    "a batch reported as failed committed after all (seqs `{first}` to `{last}`): \
                     reopen the journal and recover from it"
                )))
            }
            Err(e) => {
                self.in_doubt = Some(batch);
                Err(e)
            }
        }
    }

    /// Whether `batch` committed, read on a new session once the server
    /// process that ran it has exited (until then it could still commit).
    fn committed(&mut self, batch: &Batch) -> Result<bool, JournalError> {
        let session = self.session()?;
        let client = &mut session.client;
        client
            .execute("SELECT pg_terminate_backend($1)", &[&batch.backend_pid])
            .map_err(storage("end the server process of the lost append"))?;
        let deadline = Instant::now() + RESOLVE_TIMEOUT;
        loop {
            let alive: i64 = client
                .query_one("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", &[&batch.backend_pid])
                .map_err(storage("look for the server process of the lost append"))?
                .get(0);
            if alive == 0 {
                break;
            }
            if Instant::now() >= deadline {
                return Err(JournalError::Storage(format!(
                    "the server process `{}` of the lost append did not exit within {RESOLVE_TIMEOUT:?}",
                    batch.backend_pid
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let last = batch.first + batch.checksums.len() as i64 - 1;
        let rows = client
            .query(
                "SELECT checksum FROM warden_journal WHERE seq BETWEEN $1 AND $2 ORDER BY seq",
                &[&batch.first, &last],
            )
            .map_err(storage("read the records of the lost append"))?;
        let stored: Vec<i32> = rows.iter().map(|row| row.get(0)).collect();
        // The head moved on whatever the outcome; read it again.
        session.next_seq = head(&mut session.client)?.1;
        Ok(stored == batch.checksums)
    }
}

/// The lease row's epoch and next seq.
pub(crate) fn head(client: &mut Client) -> Result<(i64, i64), JournalError> {
    let row = client
        .query_one("SELECT epoch, next_seq FROM warden_lease WHERE id = 1", &[])
        .map_err(storage("read the journal head"))?;
    Ok((row.get(0), row.get(1)))
}

/// Whether a failed append certainly did not commit: the server answered
/// with an `ERROR`, which rolls back the statement's transaction. A lost
/// connection, a `FATAL` (which may come right after a commit) or anything
/// else leaves the outcome to be read back.
fn outcome_known(error: &postgres::Error) -> bool {
    error.as_db_error().is_some_and(|db| match db.parsed_severity() {
        Some(severity) => severity == Severity::Error,
        // Servers before 9.6 send only the localized severity.
        None => db.severity() == "ERROR",
    })
}

fn seq_exhausted() -> JournalError {
    JournalError::Storage("journal is full: no seq is left after `i64::MAX`".into())
}
