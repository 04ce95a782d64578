//! Fault injection backends, for tests of whatever sits above a [`Journal`].
//!
//! - [`FailAfter`] wraps any journal and makes its appends fail after a
//!   number of successes, as a full disk or a lost volume would, until healed.
//! - [`CrashImage`] keeps what a running process sees apart from what a
//!   restart would find, and can lose the batch of a chosen append the way a
//!   crash in the middle of a commit loses it.
//!
//! - [`Gate`] wraps any journal and holds its appends while closed: the
//!   caller's thread really blocks in `append`, as on a disk that stalls.
//!
//! All pass [`crate::conformance::run_all`] while healthy (a gate open).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::{Journal, JournalError, Record, Seq};

/// A journal whose appends succeed `ok_appends` times, then fail with
/// [`JournalError::Storage`], writing nothing, until [`FailAfter::heal`].
///
/// Reads are passed through untouched. Every call to `append`, failed or not,
/// empty batch or not, is counted.
#[derive(Debug)]
pub struct FailAfter<J> {
    inner: J,
    ok_appends: u64,
    appends: AtomicU64,
    failures: AtomicU64,
    healed: AtomicBool,
}

impl<J: Journal> FailAfter<J> {
    /// Wraps `inner`: its first `ok_appends` appends go through, the later
    /// ones fail. `u64::MAX` never fails.
    pub fn new(inner: J, ok_appends: u64) -> Self {
        Self {
            inner,
            ok_appends,
            appends: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            healed: AtomicBool::new(false),
        }
    }

    /// Lets every later append through, as storage that came back would.
    pub fn heal(&self) {
        self.healed.store(true, Ordering::SeqCst);
    }

    /// How many times `append` was called, failed calls included.
    pub fn appends(&self) -> u64 {
        self.appends.load(Ordering::SeqCst)
    }

    /// How many calls to `append` were made to fail.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::SeqCst)
    }

    /// The wrapped journal.
    pub fn inner(&self) -> &J {
        &self.inner
    }

    /// Unwraps the journal.
    pub fn into_inner(self) -> J {
        self.inner
    }
}

impl<J: Journal> Journal for FailAfter<J> {
    fn append(&self, payloads: &[Vec<u8>]) -> Result<Seq, JournalError> {
        let call = self.appends.fetch_add(1, Ordering::SeqCst) + 1;
        if call > self.ok_appends && !self.healed.load(Ordering::SeqCst) {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err(JournalError::Storage(format!(
                "injected failure of append `{call}` (only {} allowed before heal)",
                self.ok_appends
            )));
        }
        self.inner.append(payloads)
    }

    fn scan(&self, from: Seq, visit: &mut dyn FnMut(Record) -> Result<(), JournalError>) -> Result<(), JournalError> {
        self.inner.scan(from, visit)
    }

    fn read(&self, seq: Seq) -> Result<Option<Record>, JournalError> {
        self.inner.read(seq)
    }

    fn last_seq(&self) -> Result<Option<Seq>, JournalError> {
        self.inner.last_seq()
    }
}

/// An in-memory journal with two images: the *live* one, what this process
/// has written, and the *durable* one, what a restart would find.
///
/// While healthy every append reaches both images before it returns `Ok`, as
/// the [`Journal`] contract demands. One append can be chosen to crash
/// ([`CrashImage::crash_at`]): its batch reaches the live image only, the
/// call returns [`JournalError::Storage`], and from then on the journal is
/// down: every call fails, as they would in a process whose storage died in
/// the middle of a commit. [`CrashImage::crash`] is the restart: a new,
/// healthy journal holding exactly the durable image. It can be called at any
/// time, also with no crash configured, to restart between two appends.
#[derive(Debug, Default)]
pub struct CrashImage {
    state: Mutex<Images>,
}

#[derive(Debug, Default)]
struct Images {
    live: Vec<Vec<u8>>,
    durable: Vec<Vec<u8>>,
    /// Calls to `append` so far.
    appends: u64,
    /// The 1-based append call that crashes, if any.
    crash_at: Option<u64>,
    /// Set once the chosen append has crashed.
    down: bool,
}

impl CrashImage {
    /// An empty, healthy journal with no crash configured.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the `call`-th call to `append` (1-based, counted since this
    /// journal was made) crash; an earlier call already made is unaffected.
    pub fn crash_at(&self, call: u64) {
        self.images().crash_at = Some(call);
    }

    /// How many times `append` was called, the crashed call included.
    pub fn appends(&self) -> u64 {
        self.images().appends
    }

    /// Whether the configured crash has happened.
    pub fn is_down(&self) -> bool {
        self.images().down
    }

    /// How many records the live image holds (the crashed batch included).
    pub fn live_len(&self) -> usize {
        self.images().live.len()
    }

    /// How many records the durable image holds.
    pub fn durable_len(&self) -> usize {
        self.images().durable.len()
    }

    /// The restart: a new healthy journal built from the durable image only.
    pub fn crash(&self) -> CrashImage {
        let durable = self.images().durable.clone();
        CrashImage { state: Mutex::new(Images { live: durable.clone(), durable, ..Images::default() }) }
    }

    fn images(&self) -> MutexGuard<'_, Images> {
        // A panic while the lock is held leaves both images whole (each
        // update is one `extend`), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The live image, or the error of a journal that is down.
    fn live(&self) -> Result<MutexGuard<'_, Images>, JournalError> {
        let images = self.images();
        if images.down {
            return Err(down_error());
        }
        Ok(images)
    }
}

fn down_error() -> JournalError {
    JournalError::Storage("journal is down after a simulated crash".into())
}

impl Journal for CrashImage {
    fn append(&self, payloads: &[Vec<u8>]) -> Result<Seq, JournalError> {
        let mut images = self.images();
        if images.down {
            return Err(down_error());
        }
        images.appends += 1;
        let first = images.live.len() as Seq + 1;
        images.live.extend_from_slice(payloads);
        if images.crash_at == Some(images.appends) {
            images.down = true;
            return Err(JournalError::Storage(format!(
                "simulated crash in append `{}`: the batch is not durable",
                images.appends
            )));
        }
        // INVARIANT (answered means durable): the batch is in the durable
        // image before `Ok` is returned.
        images.durable.extend_from_slice(payloads);
        Ok(first)
    }

    fn scan(&self, from: Seq, visit: &mut dyn FnMut(Record) -> Result<(), JournalError>) -> Result<(), JournalError> {
        // Copy the tail out first, so `visit` may call back into the journal.
        let first = from.max(1);
        let tail: Vec<Vec<u8>> = {
            let images = self.live()?;
            let start = usize::try_from(first - 1).unwrap_or(usize::MAX);
            images.live.get(start..).map(<[_]>::to_vec).unwrap_or_default()
        };
        for (payload, seq) in tail.into_iter().zip(first..) {
            visit(Record { seq, payload })?;
        }
        Ok(())
    }

    fn read(&self, seq: Seq) -> Result<Option<Record>, JournalError> {
        let images = self.live()?;
        let Some(index) = seq.checked_sub(1).and_then(|i| usize::try_from(i).ok()) else {
            return Ok(None);
        };
        Ok(images.live.get(index).map(|payload| Record { seq, payload: payload.clone() }))
    }

    fn last_seq(&self) -> Result<Option<Seq>, JournalError> {
        let len = self.live()?.live.len() as Seq;
        Ok((len > 0).then_some(len))
    }
}

/// A journal whose appends wait while its gate is closed (open when made).
/// Reads pass through, never held.
#[derive(Debug, Default)]
pub struct Gate<J> {
    inner: J,
    closed: Mutex<bool>,
    opened: Condvar,
    waiting: AtomicUsize,
}

impl<J: Journal> Gate<J> {
    /// Wraps `inner`, the gate open.
    pub fn new(inner: J) -> Self {
        Gate { inner, closed: Mutex::new(false), opened: Condvar::new(), waiting: AtomicUsize::new(0) }
    }

    /// Closes the gate: later appends wait until it opens.
    pub fn close(&self) {
        *self.closed.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }

    /// Opens the gate: waiting appends go on.
    pub fn open(&self) {
        *self.closed.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.opened.notify_all();
    }

    /// How many appends wait at the gate now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

impl<J: Journal> Journal for Gate<J> {
    fn append(&self, payloads: &[Vec<u8>]) -> Result<Seq, JournalError> {
        let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
        if *closed {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            closed = self.opened.wait_while(closed, |closed| *closed).unwrap_or_else(|p| p.into_inner());
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
        drop(closed);
        self.inner.append(payloads)
    }

    fn scan(&self, from: Seq, visit: &mut dyn FnMut(Record) -> Result<(), JournalError>) -> Result<(), JournalError> {
        self.inner.scan(from, visit)
    }

    fn read(&self, seq: Seq) -> Result<Option<Record>, JournalError> {
        self.inner.read(seq)
    }

    fn last_seq(&self) -> Result<Option<Seq>, JournalError> {
        self.inner.last_seq()
    }
}
