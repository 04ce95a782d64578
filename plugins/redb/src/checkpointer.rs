//! The checkpointer: a thread that moves the records held in memory into
//! redb while appends go on, so that no append waits for a checkpoint
//! unless the log is full.
//!
//! It holds only weak references to its store and the journal's handle, and
//! a strong one to the store only during a checkpoint. The journal, dropped,
//! stops and joins it before it lets the store go, so the files are closed
//! when the drop returns. After a failed checkpoint it drops the store from the
//! journal's handle (redb refuses a handle after a failed write) and ends;
//! the next call reopens the files and recovers the log.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;

use crate::journal::{discard_by_address, lock, Handle, Store};

/// A checkpointer thread, owned by its store.
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
    /// Starts the thread for `store`, which `handle` holds.
    pub(crate) fn start(store: &Arc<Store>, handle: &Arc<Mutex<Handle>>) -> std::io::Result<Self> {
        let bell = Arc::new(Bell::default());
        // Weak references only: the handle holds the store, which holds
        // this thread's handle.
        let (store, handle, asked) = (Arc::downgrade(store), Arc::downgrade(handle), Arc::clone(&bell));
        let thread = std::thread::Builder::new()
            .name("warden-checkpoint".into())
            .spawn(move || checkpoint_when_asked(&store, &handle, &asked))?;
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
            // reopens the files and recovers them into redb. The thread
            // lets its reference go first, so that the store, if no call
            // holds it, closes under the handle's lock, before any reopen.
            let failed = Arc::as_ptr(&store);
            drop(store);
            if let Some(handle) = handle.upgrade() {
                discard_by_address(&handle, failed);
            }
            return;
        }
    }
}
