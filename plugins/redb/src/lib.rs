//! Warden's durable [`Journal`](warden_journal::Journal): one redb file, one
//! table `warden_journal` mapping each seq (`u64`) to its stored record.
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
//! Each `append` is one redb write transaction holding the whole batch,
//! committed with [`Durability::Immediate`](redb::Durability::Immediate) and
//! redb's one-phase commit: `append` returns `Ok` only after the commit's
//! fsync, so an acknowledged batch survives a crash of the process or of the
//! machine.
//!
//! Commit settings, weighed with this crate's bench (`commit_strategy`,
//! raw redb commits of 205-byte values; figures in `BENCH_RESULTS.md`) on the
//! 2-core development machine, where a small write and fsync of a plain file
//! takes 0.11 to 0.28 ms and fsync-bound figures vary up to 2x between runs:
//!
//! - **One-phase commit (one fsync), not two-phase.** A commit writes its new
//!   pages (redb never overwrites a page of the last commit), writes the new
//!   root with its checksum into the inactive commit slot, flips the god byte
//!   to that slot, then fsyncs once. Two-phase commit fsyncs between the slot
//!   and the flip as well: a second fsync on every commit, the difference
//!   between a durable decision at one caller slower than PostgreSQL's one
//!   `fdatasync` and one ahead of it (issue 13; BENCHMARKS.md, section 12).
//!   Why one fsync is safe here:
//!   - *Answered means durable* holds the same: the fsync covers the pages,
//!     the slot and the flip, and `append` answers after it.
//!   - *A crash never leaves half a batch.* Power lost before the fsync
//!     completes may leave any part of those writes on disk, in any order,
//!     torn at any sector. If the flip did not land, the previous commit is
//!     still the primary, whole, since none of its pages was written. If it
//!     landed, redb verifies the new primary's checksums (the slot's, and
//!     each page's from the root down: every open here walks the whole file,
//!     see *Corruption*) and, finding any page torn, falls back to the other
//!     slot, the previous commit. The unit test `power_cut` runs 300 such
//!     cuts on a model disk that loses any subset of the unsynced sectors, in
//!     any order; about 40% of them land the flip with torn pages. Each image
//!     is opened as a real redb file and must hold every acknowledged batch,
//!     whole, and at most the one under way; a control without fsync must
//!     fail that check.
//!   - *The attack redb warns of does not apply.* redb's checksums are
//!     XXH3, not cryptographic; its docs describe a theoretical attack on
//!     one-phase commit by someone who controls the order pages reach the
//!     disk, can cut power during an fsync, knows the file's contents, and
//!     writes arbitrary data in a transaction, to make a torn commit verify.
//!     Whoever controls the disk's write order and power already controls
//!     the host, and so the file itself. And a requester does not write
//!     arbitrary data: every record is a server-made fact framed by bincode,
//!     behind a CRC32 of its seq, with random ids (activity, approval)
//!     chosen by the server in it, so the page bytes are not the
//!     requester's to choose. The records' own CRC32 and the seq check of
//!     every scan (see *Corruption*) are a second, independent check.
//!
//!   The earlier choice of two-phase commit took redb's advice for input that
//!   may be malicious; the argument above is why the advice buys nothing
//!   here. A deployment that wants it anyway opens the journal with
//!   [`RedbJournal::open_with`] and [`Commit::TwoPhase`] (the server's
//!   `[journal] two_phase_commit = true`); the `power_cut` test runs both.
//! - **Quick repair: off.** It saves the allocator state in every commit
//!   (1 record: 0.54 ms, 1000 records: 3.7 ms) so that recovery after a crash
//!   need not walk the file. Every open here walks and verifies the whole
//!   file anyway (see *Corruption*), so it would buy nothing.
//!
//! # What survives a crash
//!
//! Every batch whose `append` returned `Ok`, whole. A batch whose `append`
//! was under way is wholly present or wholly absent: redb commits are
//! atomic, so no batch is ever partly there. After a restart the journal is
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
//! # Corruption
//!
//! A stored value is `[version 1][CRC32 of seq ++ payload][payload]`. A
//! value that is short, of another version, or fails its checksum is
//! reported as [`JournalError::Corrupt`](warden_journal::JournalError::Corrupt)
//! with its seq by `read` and `scan`, never skipped; `scan` also reports a
//! missing seq in the middle of the journal. Since the seq is in the
//! checksum, a value found under another key fails too.
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
//! One process opens the file at a time (redb locks it). Appends are
//! serialized, as redb's single writer would serialize them anyway; reads
//! run on snapshots and never wait for a commit.
#![deny(missing_docs)]

mod journal;
mod log;
#[cfg(test)]
mod power_cut;
mod record;
#[cfg(test)]
mod tests;

pub use journal::{Commit, RedbJournal};
