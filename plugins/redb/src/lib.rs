//! Warden's durable [`Journal`](warden_journal::Journal): one redb file, one
//! table `warden_journal` mapping the first seq (`u64`) of each *run* of
//! consecutive records to the stored run, and by default a commit log beside
//! the file (`<file>.log`) that takes each batch first.
//!
//! ```
//! use warden_journal::Journal;
//! use warden_redb::RedbJournal;
//!
//! let dir = tempfile::tempdir()?;
//! let journal = RedbJournal::open(dir.path().join("journal.redb"))?;
//! let first = journal.append(&[b"fact one".to_vec(), b"fact two".to_vec()])?;
//! assert_eq!(first, 1);
//! assert_eq!(journal.read(2)?.map(|r| r.payload), Some(b"fact two".to_vec()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Durability
//!
//! `append` returns `Ok` only after an fsync that covers the whole batch, so
//! an acknowledged batch survives a crash of the process or of the machine.
//! How the batch reaches the disk is the [`Commit`]; the default is the
//! logged commit.
//!
//! ## The logged commit (default)
//!
//! Each batch is one *frame* appended to the commit log, then one
//! `fdatasync`; `append` answers after it. The batch's records are also kept
//! in memory and read from there until they are *checkpointed*: written into
//! redb in one two-phase commit. Once 2048 records are held, the store's
//! checkpoint thread (`warden-checkpoint`) is asked to move them, while
//! appends go on (the log keeps their frames: a recovery skips what redb
//! holds). When an append's frame does not fit in the log, the append
//! itself checkpoints (after the thread's checkpoint under way, if any) and
//! then, once that commit has returned, empties the log. Dropping the
//! journal checkpoints too, so a cleanly closed journal is all in the redb
//! file.
//!
//! The thread keeps checkpoints off the appends: with 50-record batches of
//! 300-byte records, one checkpoint in the append every 2048 records made p99
//! 3.9 ms; on the thread, p99 is 0.65 ms (p50 0.11 ms either way), and one
//! checkpoint of a whole 16 MiB log in the append, as at first, took 89 ms.
//! An append that fills the log still waits for a checkpoint (the longest
//! append of those runs: 5 ms). A failed checkpoint on the thread drops the
//! store like a failed append (see *When a commit fails*). The thread holds
//! the store only during a checkpoint; dropping the journal waits for the
//! thread to end, so the files are closed when the drop returns.
//!
//! Why: a redb commit writes its new B-tree pages wherever the allocator puts
//! them, plus its header: seven scattered writes for one small batch, and the
//! fsync waits for all of them. The log writes one page, at its end, into a
//! file whose blocks were allocated and written when it was made, so the
//! `fdatasync` carries no metadata. This is how PostgreSQL commits (one WAL
//! page). On the 2-core development machine a 300-byte write and
//! `fdatasync` into such a file took p50 0.10 ms, seven scattered 4 KiB
//! pages 0.39 ms; a durable decision at one caller went from about 3.1k to
//! 4.7k/s, from level with PostgreSQL's one-round-trip function to 1.6x
//! ahead of it (BENCHMARKS.md, section 12).
//!
//! The log file (`log.rs`) is 16 MiB, written with zeros when it is made;
//! its directory is fsynced at every open, so that its name survives a power
//! cut as well as its frames. Its first page is a header holding a *salt*,
//! a random number drawn afresh each time the log is emptied. Frames follow;
//! each starts on a 4 KiB page and fills whole pages: `[magic][body
//! length][CRC32 of the body][salt, first seq, record count, records]`. The
//! log is read from its second page: frames follow each other while each is
//! whole, carries the header's salt, and its first seq follows the last
//! record of the frame before. Why this is safe:
//!
//! - *Answered means durable*: the frame is written, then fdatasynced, then
//!   acknowledged; its records are visible to readers only after that.
//! - *A crash never leaves half a batch.* Power lost before the fdatasync
//!   completes may leave any part of the frame on disk, in any order, torn
//!   at any sector; the frame then fails its checksum (or its length, or its
//!   magic), and the log ends before it. It was never acknowledged. Since
//!   frames start on pages, a frame under way never rewrites a sector that
//!   holds an acknowledged one.
//! - *Nothing old comes back.* A checkpoint empties the log by writing a
//!   header with a new salt (then fdatasync) only after its redb commit
//!   returned, so the log never loses a record redb does not hold. Whatever
//!   the file held before, old frames or bytes of old payloads shaped like a
//!   frame, carries another salt, drawn before the new one, which nobody
//!   outside the process can foresee (std's `RandomState`, seeded from the
//!   operating system), and the log ends there. Frames whose records redb
//!   already holds are skipped.
//! - *A checkpoint cut short loses nothing.* Its redb commit is two-phase
//!   (redb's advice for input that may be malicious costs nothing at this
//!   rate), so redb holds either the old or the new checkpoint; the log
//!   still holds every record either way.
//! - *Opening recovers.* After redb's integrity check (see *Corruption*), the
//!   log is read; the records after redb's last one are written into redb in
//!   one two-phase commit, then the log is emptied. A log that does not
//!   continue redb (a gap) is reported as
//!   [`JournalError::Corrupt`](warden_journal::JournalError::Corrupt).
//! - *A batch larger than the whole log* is committed straight into redb in
//!   a two-phase commit, after a checkpoint, so the seqs stay in order.
//! - *Checksums.* A torn frame would have to match its CRC32 by chance (one
//!   in 2^32), with a length, magic and salt that fit and a seq that
//!   follows. CRC32 is no defence against someone who chooses the torn
//!   bytes; such a person controls the disk's write order and power, and so
//!   the host.
//!
//! The unit test `power_cut` runs 300 cuts on a model disk holding both the
//! redb file and the log, which keeps each write since the file's last
//! fsync whole, not at all, or torn at sectors, landed in any order (a third
//! of the cuts fall on an fsync, half of those with every write landed, so
//! that the commit under way is often found whole); every
//! run checkpoints several times, empties the log, and commits one batch
//! larger than the log, so cuts fall in all of those too. Each image
//! is opened as real files and must hold every acknowledged batch, whole,
//! and at most the one under way. A control whose log never fsyncs must fail
//! the same check. The crash test kills a writer with `SIGKILL` mid-run.
//!
//! Memory: the records not yet checkpointed, about 2048 while the thread
//! keeps up. When it falls behind, at most 32,768 records (and one batch
//! more: an append that finds that many checkpoints before its frame) and at
//! most the log's 16 MiB of frames, whichever comes first; each record held
//! costs about 40 bytes besides its payload. Opening reads the whole log
//! once (at most its 16 MiB, whatever the file's length).
//!
//! The log is part of the journal: a log deleted or lost with its file
//! system takes the records not yet checkpointed with it, and an open finds
//! nothing to tell it so. Copy or move the two files together.
//!
//! ## A redb commit per batch
//!
//! [`RedbJournal::open_with`] and [`Commit::TwoPhase`] (the server's
//! `[journal] two_phase_commit = true`) commit each batch into redb in two
//! phases, without a log: the pages and the new root's slot, an fsync, the
//! switch to that slot, a second fsync. [`Commit::OnePhase`] skips the first
//! fsync. Opening with either recovers a log left by the logged commit, then
//! removes it. Weighed with this crate's bench (`commit_strategy`, raw redb
//! commits of 205-byte values; figures in `BENCH_RESULTS.md`):
//!
//! - **One phase.** A commit writes its new pages (redb never overwrites a
//!   page of the last commit), writes the new root with its checksum into the
//!   inactive commit slot, flips the god byte to that slot, then fsyncs once.
//!   If the flip did not land, the previous commit is still the primary,
//!   whole. If it landed, redb verifies the new primary's checksums (every
//!   open here walks the whole file, see *Corruption*) and, finding any page
//!   torn, falls back to the previous commit; `power_cut` sees about 40% of
//!   its cuts land the flip with torn pages. redb's docs describe a
//!   theoretical attack on one-phase commit by someone who controls the
//!   order pages reach the disk and the power, and writes arbitrary data in
//!   a transaction: whoever controls the disk that way controls the host,
//!   and a requester does not choose the bytes (every record is a
//!   server-made fact, framed by bincode, behind a CRC32 of its seq, with
//!   random ids chosen by the server in it).
//! - **Two phases**: redb's advice for input that may be malicious, at a
//!   second fsync on every commit.
//! - **Quick repair: off**, in every mode. It saves the allocator state in
//!   every commit (1 record: 0.54 ms, 1000 records: 3.7 ms) so that recovery
//!   after a crash need not walk the file. Every open here walks and
//!   verifies the whole file anyway (see *Corruption*), so it would buy
//!   nothing.
//!
//! # What survives a crash
//!
//! Every batch whose `append` returned `Ok`, whole. A batch whose `append`
//! was under way is wholly present or wholly absent: a log frame is whole or
//! ends the log, and redb commits are atomic, so no batch is ever partly
//! there. After a restart the journal is
//! therefore a prefix of the batches appended, containing every acknowledged
//! one. The crash test of this crate kills a writer with `SIGKILL` mid-run
//! and checks exactly that.
//!
//! # When a commit fails
//!
//! After a failed write redb refuses further use of that database handle
//! until the file is reopened. The journal drops its handle and reopens the
//! file on its next call, whatever that call is. A failed commit may still
//! have reached the disk (an fsync that reports an error says nothing of
//! what was written), so the reopen first removes every record from the
//! failed batch's first seq on: what `append` reported as failed is never
//! seen afterwards by this process. If the process dies before that reopen,
//! the failed batch may be found whole after the restart; no fsync-based
//! store can rule that out. The reopen fails, and the call with it, as long
//! as another thread still holds the old handle (for instance in a long
//! scan); a later call tries again.
//!
//! In the logged commit, a failed write or `fdatasync` of a frame may leave
//! the frame in the file, whole. The journal at once zeroes the frame's
//! first page and fdatasyncs that (the page is past every acknowledged
//! frame), so that no later open finds the frame even if this process makes
//! no further call; and the reopen reads the log only up to the failed
//! batch's first seq, checkpoints what comes before, and empties the log.
//! Only when the erasure fails too and the process then dies is the failed
//! batch possibly found after a restart, as above. A failed checkpoint
//! loses nothing: the log still holds every record, and the reopen recovers
//! them into redb.
//!
//! # Corruption
//!
//! A stored value is a run: `[version 2][record count]`, then per record
//! `[length][CRC32 of seq ++ payload][payload]`, at most 64 records and
//! (unless it holds one) just under 32 KiB. Files of earlier versions hold
//! one record per value, `[version 1][CRC32 of seq ++ payload][payload]`;
//! both are read, and new records are written as runs after them
//! (`record.rs`). (These value versions are the redb file's; the engine's
//! own record format, inside each payload, has its own.)
//!
//! Damage is reported as
//! [`JournalError::Corrupt`](warden_journal::JournalError::Corrupt), never
//! skipped, with the seq of the record that fails its checksum or its
//! length, or of the run's first record when the run's header is short or
//! of another version. `read` checks only the record it returns (it finds
//! it by the lengths before it); `scan` checks every record from where it
//! starts, and also reports a missing seq in the middle of the journal and
//! bytes after a run's last record. Since the seq is in each checksum, a
//! record found under another seq fails too. The last run is checked whole
//! when the journal opens, since the next seq is read from it (its count is
//! in no checksum): damage there refuses the open.
//!
//! Why runs: a redb insert costs about the same whatever the value's size,
//! and a checkpoint made one per record. Each batch, and each checkpoint,
//! starts a new run, so removing a failed batch (above) removes whole runs.
//!
//! Below the records, the file is opened with redb's integrity check
//! ([`Builder::set_check_integrity_on_open`](redb::Builder::set_check_integrity_on_open)):
//! the checksum of every page is verified and the allocator state rebuilt,
//! so a file damaged outside redb fails to open with
//! [`JournalError::Storage`](warden_journal::JournalError::Storage) instead
//! of being trusted, where redb's plain open may panic. The check reads the
//! whole file: 0.17 to 0.25 s per million records of 200 bytes, on top of
//! the engine's own recovery scan (0.13 to 0.14 s). It doubles as the crash
//! recovery, so a restart after a crash costs no more than a clean one.
//!
//! # Cache
//!
//! redb keeps recently read pages in its own cache, 1 GiB by default. A
//! journal is read through once at start and record by record afterwards, so
//! the journal asks for 64 MiB: with the default, the start-up scan of a
//! large journal copies the whole file into fresh memory, and a restart of
//! the engine over a million records took 2 to 3 s longer (and 0.8 GB more
//! memory) for it.
//!
//! # Sharing
//!
//! One process opens the file at a time (redb locks it), and opens the log
//! only once it holds that lock. Appends are serialized, as redb's single
//! writer would serialize them anyway; reads run on redb snapshots and the
//! log's records in memory, and wait for no commit or checkpoint. They do
//! wait, after a failed write, for the reopen (and its recovery) that the
//! first call after it makes.
#![deny(missing_docs)]

mod checkpointer;
mod journal;
mod log;
#[cfg(test)]
mod power_cut;
mod record;
mod store;
#[cfg(test)]
mod tests;

pub use journal::RedbJournal;
pub use store::Commit;
