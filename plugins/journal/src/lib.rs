//! The persistence plugin trait of Warden.
//!
//! Warden journals facts, never derived state: every policy change, activity,
//! count, approval, decision and webhook event is one record appended to a
//! [`Journal`]. On start the engine scans the journal and rebuilds its state.
//! A backend is one type implementing [`Journal`] that passes
//! [`conformance::run_all`].
#![deny(missing_docs)]

pub mod conformance;
pub mod faulty;
mod memory;

pub use memory::MemoryJournal;

/// The sequence number of a record: assigned by the journal, starting at 1,
/// strictly increasing, never reused.
pub type Seq = u64;

/// One journaled record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position of the record in the journal.
    pub seq: Seq,
    /// The engine's opaque bytes, exactly as appended.
    pub payload: Vec<u8>,
}

/// What can go wrong in a journal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The storage failed (I/O, full disk, lock); the batch is not committed.
    #[error("journal storage failed: {0}")]
    Storage(String),
    /// A stored record does not match its checksum or format.
    #[error("journal record at seq {seq} is corrupt: {reason}")]
    Corrupt {
        /// The position of the corrupt record.
        seq: Seq,
        /// What was found wrong.
        reason: String,
    },
    /// The writer's lease epoch is no longer the current one: another node
    /// took over the journal, and this writer may never write again. The
    /// batch is not committed. Only backends shared by several nodes, which
    /// fence their writers (Kleppmann's fencing token), return it.
    #[error("journal writer of lease epoch `{epoch}` is fenced off by epoch `{current}`: the batch is not committed")]
    Fenced {
        /// The epoch the writer was bound to.
        epoch: u64,
        /// The epoch now current.
        current: u64,
    },
}

/// An append-only, durable log of opaque records.
///
/// Implementations must be usable from several threads; the engine calls
/// [`Journal::append`] one batch at a time (from its writer thread, or, when
/// [`Journal::appends_without_waiting`], from the caller's), and reads from
/// anywhere.
pub trait Journal: Send + Sync + 'static {
    /// Appends `payloads` as one atomic batch and returns the sequence number
    /// given to the first of them (the others follow contiguously).
    ///
    /// Contract: when this returns `Ok`, every record of the batch survives a
    /// crash of the process or the machine. When it returns `Err`, none of
    /// them is visible, now or after a restart. An empty batch returns the
    /// next sequence number and writes nothing.
    fn append(&self, payloads: &[Vec<u8>]) -> Result<Seq, JournalError>;

    /// Calls `visit` with every record whose seq is `>= from`, in seq order.
    /// Stops at, and returns, the first error of `visit` or of the storage.
    /// A corrupt record is reported as [`JournalError::Corrupt`], never skipped.
    fn scan(&self, from: Seq, visit: &mut dyn FnMut(Record) -> Result<(), JournalError>) -> Result<(), JournalError>;

    /// Reads one record, `None` if no record has that seq.
    fn read(&self, seq: Seq) -> Result<Option<Record>, JournalError>;

    /// The seq of the last committed record, `None` while empty.
    fn last_seq(&self) -> Result<Option<Seq>, JournalError>;

    /// Whether a read waits on another process (a database over the
    /// network), so that a caller on an async task should read on a blocking
    /// pool rather than hold its thread for a round trip. `false` (the
    /// default) for a journal read in this process, from memory or a local
    /// file's cache.
    fn reads_wait_on_network(&self) -> bool {
        false
    }

    /// Whether [`Journal::append`] returns without waiting on a disk or
    /// another process (a journal kept in memory; it may still wait a moment
    /// for its own lock, held by a read that copies records out). The
    /// engine then appends on the caller's own thread instead of handing the
    /// batch to its writer thread and back, which costs two thread wake-ups
    /// and gains nothing when there is no fsync to group. `false` (the
    /// default) for every journal that syncs or reaches a server, and for
    /// wrappers: such an append would hold an async runtime's thread.
    fn appends_without_waiting(&self) -> bool {
        false
    }
}

impl<J: Journal + ?Sized> Journal for std::sync::Arc<J> {
    fn append(&self, payloads: &[Vec<u8>]) -> Result<Seq, JournalError> {
        (**self).append(payloads)
    }
    fn scan(&self, from: Seq, visit: &mut dyn FnMut(Record) -> Result<(), JournalError>) -> Result<(), JournalError> {
        (**self).scan(from, visit)
    }
    fn read(&self, seq: Seq) -> Result<Option<Record>, JournalError> {
        (**self).read(seq)
    }
    fn last_seq(&self) -> Result<Option<Seq>, JournalError> {
        (**self).last_seq()
    }
    fn reads_wait_on_network(&self) -> bool {
        (**self).reads_wait_on_network()
    }

    fn appends_without_waiting(&self) -> bool {
        (**self).appends_without_waiting()
    }
}
