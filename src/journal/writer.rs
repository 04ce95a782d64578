//! The journal writer (a thread, not an actor: it blocks on fsync): one thread that groups the records of every waiting
//! caller into one commit (one fsync), then answers each of them.
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

use super::facts::Fact;

/// Most records in one commit: large enough to amortize the fsync over many
/// callers, small enough that one commit stays well under a second.
pub const MAX_BATCH_RECORDS: usize = 4096;

struct Job {
    payloads: Vec<Vec<u8>>,
    done: oneshot::Sender<Result<Seq, JournalError>>,
}

/// A handle to the writer thread.
pub struct JournalWriter {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl JournalWriter {
    /// Starts the writer thread over `journal`.
    pub fn start(journal: Arc<dyn Journal>) -> Self {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("warden-journal".into())
            .spawn(move || write_batches(journal.as_ref(), &inbox))
            .expect("the journal writer thread starts");
        JournalWriter { jobs: Mutex::new(Some(jobs)), thread: Mutex::new(Some(thread)) }
    }

    /// Commits `facts` as one atomic unit, grouped with other callers' facts;
    /// answers the seq of the first (the others follow contiguously). A
    /// journal error comes back as the journal reported it.
    pub async fn commit(&self, facts: &[Fact]) -> Result<Seq, Error> {
        let payloads = facts.iter().map(Fact::encode).collect();
        let (done, answer) = oneshot::channel();
        {
            let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
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
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
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
        let started = Instant::now();
        let result = journal.append(&batch);
        metrics::histogram!("warden_journal_commit_duration_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok(first_seq) => {
                metrics::counter!("warden_journal_records_total").increment(batch.len() as u64);
                // Each caller learns the seq of its own first record.
                let mut seq = first_seq;
                for (job, size) in jobs.into_iter().zip(sizes) {
                    let _ = job.done.send(Ok(seq));
                    seq += size;
                }
            }
            Err(error) => {
                tracing::error!(%error, records = batch.len(), "journal commit failed; its callers are told");
                for job in jobs {
                    let _ = job.done.send(Err(error.clone()));
                }
            }
        }
    }
}
