//! The checkpointer: a thread that runs the journal's checkpoint each time
//! it is asked, so that appends go on while records move into redb.
//!
//! What a checkpoint is, and what the thread holds while it runs one, is the
//! journal's business (see `journal.rs`): here is only a thread, a bell, and
//! a stop that waits for the checkpoint under way.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// A checkpointer thread, owned by the store it checkpoints.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    bell: Arc<Bell>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What the thread is asked.
#[derive(Debug, Default)]
struct Bell {
    asked: Mutex<Ask>,
    rung: Condvar,
}

#[derive(Debug, Default)]
struct Ask {
    checkpoint: bool,
    stop: bool,
}

impl Checkpointer {
    /// Starts the thread. It runs `checkpoint` once per [`ask`](Self::ask)
    /// (asks that come while it runs make one more run), and ends when
    /// stopped or when `checkpoint` answers `false`.
    pub(crate) fn start(checkpoint: impl FnMut() -> bool + Send + 'static) -> std::io::Result<Self> {
        let bell = Arc::new(Bell::default());
        let asked = Arc::clone(&bell);
        let thread = std::thread::Builder::new()
            .name("warden-checkpoint".into())
            .spawn(move || run_when_asked(checkpoint, &asked))?;
        Ok(Checkpointer { bell, thread: Mutex::new(Some(thread)) })
    }

    /// Asks for a checkpoint; returns at once.
    pub(crate) fn ask(&self) {
        lock(&self.bell.asked).checkpoint = true;
        self.bell.rung.notify_one();
    }

    /// Stops the thread and waits for it to end (after the checkpoint under
    /// way, if any), unless called on the thread itself.
    pub(crate) fn stop(&self) {
        lock(&self.bell.asked).stop = true;
        self.bell.rung.notify_one();
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread {
            // The thread may drop the last reference to its store itself
            // (after a failure): it is ending then, and cannot wait for itself.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run_when_asked(mut checkpoint: impl FnMut() -> bool, bell: &Bell) {
    loop {
        {
            let mut asked = lock(&bell.asked);
            while !asked.checkpoint && !asked.stop {
                asked = bell.rung.wait(asked).unwrap_or_else(PoisonError::into_inner);
            }
            if asked.stop {
                return;
            }
            asked.checkpoint = false;
        }
        if !checkpoint() {
            return;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Two flags and a join handle, each replaced whole.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
