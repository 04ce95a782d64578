//! The journal writer: how the engine's commits reach the journal.
//!
//! For a journal that syncs (redb, PostgreSQL), one thread, not an actor (it
//! blocks on fsync), groups the records of every waiting caller into one
//! commit (one fsync), then answers each of them. For a journal whose append
//! never waits (in memory), there is nothing to group: the caller appends on
//! its own thread, one batch at a time, and skips the two thread wake-ups of
//! the hand-off to the writer and back.
//!
//! INVARIANT (answered means durable): a caller's future resolves `Ok` only
//! after the batch holding its records was committed by the journal.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use warden_journal::{Journal, JournalError, Seq};

use crate::error::{Error, Unavailable};
use crate::telemetry;

use super::facts::Fact;

/// Most records in one commit: large enough to amortize the fsync over many
/// callers, small enough that one commit stays well under a second.
pub const MAX_BATCH_RECORDS: usize = 4096;

struct Job {
    payloads: Vec<Vec<u8>>,
    done: oneshot::Sender<Result<Seq, JournalError>>,
}

/// A handle to the writer: its thread, or the journal appended in place.
pub struct JournalWriter {
    route: Route,
}

enum Route {
    /// Batches go to the writer thread, which groups them.
    Thread { jobs: Mutex<Option<mpsc::Sender<Job>>>, thread: Mutex<Option<JoinHandle<()>>> },
    /// Batches are appended by their caller; `None` once closed. The lock
    /// keeps appends one at a time, as the writer thread would.
    InPlace(Mutex<Option<Arc<dyn Journal>>>),
}

impl JournalWriter {
    /// Starts the writer over `journal`: its thread, unless the journal's
    /// appends never wait.
    pub fn start(journal: Arc<dyn Journal>) -> Self {
        if journal.appends_without_waiting() {
            return JournalWriter { route: Route::InPlace(Mutex::new(Some(journal))) };
        }
        let (jobs, inbox) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("warden-journal".into())
            .spawn(move || write_batches(journal.as_ref(), &inbox))
            .expect("the journal writer thread starts");
        JournalWriter { route: Route::Thread { jobs: Mutex::new(Some(jobs)), thread: Mutex::new(Some(thread)) } }
    }

    /// Commits `facts` as one atomic unit (on the thread route, grouped with
    /// other callers' facts in one append); answers the seq of the first
    /// (the others follow contiguously). A journal error comes back as the
    /// journal reported it.
    pub async fn commit(&self, facts: &[Fact]) -> Result<Seq, Error> {
        let payloads: Vec<Vec<u8>> = facts.iter().map(Fact::encode).collect();
        let jobs = match &self.route {
            Route::InPlace(journal) => {
                let journal = journal.lock().unwrap_or_else(|p| p.into_inner());
                let Some(journal) = journal.as_ref() else { return Err(Unavailable::ShuttingDown.into()) };
                return append_measured(journal.as_ref(), &payloads).map_err(Error::Journal);
            }
            Route::Thread { jobs, .. } => jobs,
        };
        let (done, answer) = oneshot::channel();
        {
            let jobs = jobs.lock().unwrap_or_else(|p| p.into_inner());
            let Some(jobs) = jobs.as_ref() else { return Err(Unavailable::ShuttingDown.into()) };
            jobs.send(Job { payloads, done }).map_err(|_| Unavailable::ShuttingDown)?;
        }
        match answer.await {
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(error)) => Err(Error::Journal(error)),
            Err(_) => Err(Unavailable::ShuttingDown.into()),
        }
    }

    /// Stops taking work, commits what is queued, and waits for the thread.
    pub fn close(&self) {
        match &self.route {
            // Taken under the lock an append holds: none is under way after.
            Route::InPlace(journal) => drop(journal.lock().unwrap_or_else(|p| p.into_inner()).take()),
            Route::Thread { jobs, thread } => {
                jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(thread) = thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    let _ = thread.join();
                }
            }
        }
    }
}

/// Appends `batch`, recording the commit's duration and records (both routes).
fn append_measured(journal: &dyn Journal, batch: &[Vec<u8>]) -> Result<Seq, JournalError> {
    let started = Instant::now();
    let result = journal.append(batch);
    let seconds = started.elapsed().as_secs_f64();
    match &result {
        Ok(_) => telemetry::journal_commit_took(seconds, Some(batch.len() as u64)),
        Err(error) => {
            telemetry::journal_commit_took(seconds, None);
            tracing::error!(%error, records = batch.len(), "journal commit failed; its callers are told");
        }
    }
    result
}

/// How long the writer keeps looking for the next job after a commit before
/// it sleeps. A caller answered by one commit sends its next records about
/// 100 us later (its own wake-up, then the next activity's evaluation and
/// window round trip); finding them awake saves the wake-up of a sleeping
/// thread (~20 us on a VM). Counted with one caller on the durable bench: a
/// look of 60 us found the next job 70% of the times it had to wait, one of
/// 200 us 90%. The look yields the core between tries, so a busy machine
/// loses little, and an idle one (no commits) does not look at all.
const STAY_AWAKE: Duration = Duration::from_micros(150);

/// The next job: at once if one waits, else after a short look while awake,
/// else asleep until one comes. `None` once every sender is gone.
fn next_job(inbox: &mpsc::Receiver<Job>) -> Option<Job> {
    let looking_since = Instant::now();
    loop {
        match inbox.try_recv() {
            Ok(job) => return Some(job),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) if looking_since.elapsed() < STAY_AWAKE => std::thread::yield_now(),
            Err(mpsc::TryRecvError::Empty) => return inbox.recv().ok(),
        }
    }
}

fn write_batches(journal: &dyn Journal, inbox: &mpsc::Receiver<Job>) {
    while let Some(first) = next_job(inbox) {
        let mut jobs = vec![first];
        let mut records = jobs[0].payloads.len();
        while records < MAX_BATCH_RECORDS {
            match inbox.try_recv() {
                Ok(job) => {
                    records += job.payloads.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let sizes: Vec<u64> = jobs.iter().map(|j| j.payloads.len() as u64).collect();
        let batch: Vec<Vec<u8>> = jobs.iter_mut().flat_map(|j| std::mem::take(&mut j.payloads)).collect();
        match append_measured(journal, &batch) {
            Ok(first_seq) => {
                // Each caller learns the seq of its own first record.
                let mut seq = first_seq;
                for (job, size) in jobs.into_iter().zip(sizes) {
                    let _ = job.done.send(Ok(seq));
                    seq += size;
                }
            }
            Err(error) => {
                for job in jobs {
                    let _ = job.done.send(Err(error.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;
    use warden_journal::faulty::Gate;
    use warden_journal::MemoryJournal;

    use super::*;

    fn deleted(webhook_id: &str) -> Fact {
        Fact::WebhookDeleted { webhook_id: webhook_id.to_owned() }
    }

    #[test]
    fn a_journal_in_memory_is_appended_on_the_callers_thread() {
        let journal = Arc::new(MemoryJournal::new());
        let writer = JournalWriter::start(journal.clone());
        // Nothing to wait for: the append is done when `commit` is first polled.
        let first = writer.commit(&[deleted("wh-1"), deleted("wh-2")]).now_or_never();
        assert_eq!(first.expect("committed without waiting").expect("committed"), 1);
        let second = writer.commit(&[deleted("wh-3")]).now_or_never();
        assert_eq!(second.expect("committed without waiting").expect("committed"), 3);
        let record = journal.read(3).expect("read").expect("the third record is there");
        assert!(
            matches!(Fact::decode(&record.payload), Ok(Fact::WebhookDeleted { webhook_id }) if webhook_id == "wh-3")
        );

        writer.close();
        let refused = writer.commit(&[deleted("wh-4")]).now_or_never().expect("refused at once");
        assert!(matches!(refused, Err(Error::Unavailable(Unavailable::ShuttingDown))), "{refused:?}");
        assert_eq!(journal.last_seq().expect("last seq"), Some(3), "nothing is appended after close");
    }

    #[test]
    fn a_journal_that_may_wait_is_appended_by_the_writer_thread() {
        // A gate may hold an append: it must never hold the caller's thread.
        let gate = Arc::new(Gate::new(MemoryJournal::new()));
        let writer = JournalWriter::start(gate.clone());
        gate.close();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let committed = runtime.block_on(async {
            let facts = [deleted("wh-1")];
            let mut commit = std::pin::pin!(writer.commit(&facts));
            assert!((&mut commit).now_or_never().is_none(), "the caller waits while the writer is held");
            while gate.waiting() == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            gate.open();
            commit.await
        });
        assert_eq!(committed.expect("committed once the gate opens"), 1);
        writer.close();
    }
}
