//! The checkpointer: a thread that moves the records held in memory into
//! redb while appends go on, so that no append waits for a checkpoint
//! unless the log is full.
//!
//! It holds only weak references to its store and the journal's handle: the
//! store, dropped, stops and joins it. After a failed checkpoint it drops the store from the
//! journal's handle (redb refuses a handle after a failed write) and ends;
//! the next call reopens the files and recovers the log.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;

use crate::journal::{discard, lock, Handle, Store};

/// A checkpointer thread, owned by its store.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    bell: Arc<Bell>,
    thread: Option<JoinHandle<()>>,
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
    /// Starts the thread for `store`, which `handle` holds.
    pub(crate) fn start(store: &Arc<Store>, handle: &Arc<Mutex<Handle>>) -> std::io::Result<Self> {
        let bell = Arc::new(Bell::default());
        // Weak references only: the handle holds the store, which holds
        // this thread's handle.
        let (store, handle, asked) = (Arc::downgrade(store), Arc::downgrade(handle), Arc::clone(&bell));
        let thread = std::thread::Builder::new()
            .name("warden-checkpoint".into())
            .spawn(move || checkpoint_when_asked(&store, &handle, &asked))?;
        Ok(Checkpointer { bell, thread: Some(thread) })
    }

    /// Asks for a checkpoint; returns at once.
    pub(crate) fn ask(&self) {
        lock(&self.bell.asked).checkpoint = true;
        self.bell.rung.notify_one();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        lock(&self.bell.asked).stop = true;
        self.bell.rung.notify_one();
        if let Some(thread) = self.thread.take() {
            // The store may be dropped by the thread itself, at the end of a
            // checkpoint: it is ending then, and cannot wait for itself.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

fn checkpoint_when_asked(store: &Weak<Store>, handle: &Weak<Mutex<Handle>>, bell: &Bell) {
    loop {
        {
            let mut asked = lock(&bell.asked);
            while !asked.checkpoint && !asked.stop {
                asked = bell.rung.wait(asked).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if asked.stop {
                return;
            }
            asked.checkpoint = false;
        }
        let Some(store) = store.upgrade() else { return };
        if store.move_tail_into_redb().is_err() {
            // The records are still held and in the log; the next call
            // reopens the files and recovers them into redb.
            if let Some(handle) = handle.upgrade() {
                discard(&handle, &store, None);
            }
            return;
        }
    }
}
