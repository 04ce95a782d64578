//! Warden's shared journal on PostgreSQL, and the leader lease that lets
//! several nodes share it with one writer at a time.
//!
//! ```no_run
//! use std::time::Duration;
//! use warden_journal::Journal;
//! use warden_postgres::{Leases, PostgresJournal};
//!
//! let url = "postgresql://warden@127.0.0.1:5432/warden";
//! let leases = Leases::connect(url)?;
//! if let Some(lease) = leases.try_acquire("node-a", "http://127.0.0.1:8081", Duration::from_secs(3))? {
//!     let journal = PostgresJournal::open_as_leader(url, &lease)?;
//!     let first = journal.append(&[b"fact one".to_vec(), b"fact two".to_vec()])?;
//!     // ... renew before `lease.valid_until`, stop answering changes at it.
//! #   let _ = first;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Threads
//!
//! Every call blocks. The client is the synchronous `postgres` crate, which
//! runs each call on a tokio runtime of its own, and that panics on a thread
//! that already drives a runtime. So a call made on such a thread (an HTTP
//! handler or an actor reading the journal) runs on a thread of its own,
//! started for it, while the caller waits: safe anywhere, if dearer there by
//! a thread start. Prefer a plain thread (the engine's journal writer) or
//! tokio's blocking pool (`spawn_blocking`) for anything frequent. A
//! [`Follower`] is for a thread of its own. Dropping is safe anywhere: a
//! connection dropped inside a runtime is closed on a thread of its own.
//!
//! # Tables
//!
//! `warden_journal (seq bigint primary key, checksum integer, payload bytea)`
//! holds the records; `warden_lease` holds one row: the lease (`epoch`,
//! `holder`, `advertise_url`, `expires_at`), the journal format and
//! `next_seq`, the seq of the next record. Both are created on first open
//! (serialized by an advisory lock, so nodes may start together). One
//! database holds one journal.
//!
//! # Durability
//!
//! An append is one SQL statement in its own implicit transaction: it locks
//! the lease row, checks the writer's epoch, takes its seqs from `next_seq`,
//! inserts every record, and commits. Each session sets
//! `synchronous_commit = on`, so the commit returns once its write-ahead log
//! is flushed to disk, and the writer refuses to work with a server whose
//! `fsync` or `full_page_writes` is off, where a crash of the database host
//! could lose or tear committed records. `append` returns `Ok` only after
//! that commit; one statement means the batch is committed whole or not at
//! all.
//!
//! When `append` fails with an error the server reported (severity `ERROR`),
//! the transaction was rolled back: nothing of the batch is visible, ever.
//! When the connection is lost instead, the answer is lost with it and the
//! batch may or may not have committed. The writer then connects again, ends
//! the server process that ran the batch (`pg_terminate_backend`) and waits
//! for it to exit, after which the outcome can no longer change, and reads
//! whether the records are there: if they are, `append` returns `Ok`; if not,
//! it sends the batch once more on the new session. Only if that check itself
//! fails (the database unreachable) does `append` return `Err` with the batch
//! in doubt, as any store behind a network must; the next append settles it
//! first, and if it had committed after all, that writer refuses every later
//! append and says so: the caller must recover from the journal, which holds
//! the batch.
//!
//! # Checksums
//!
//! Each record carries a CRC32 of its seq and payload, checked by `read`
//! and `scan`, which report a mismatch as
//! [`JournalError::Corrupt`](warden_journal::JournalError::Corrupt) with the
//! seq, and a seq missing in the middle of the journal likewise. PostgreSQL's
//! own page checksums are not relied on: they are off unless the cluster was
//! made with them (`initdb --data-checksums`; off by default before
//! PostgreSQL 18, and in Debian's clusters), and they guard pages on disk,
//! not rows: a record changed by a stray `UPDATE`, a restore of the wrong
//! dump or a row copied under another seq passes them. The CRC costs one
//! pass over each payload, small beside a round trip.
//!
//! # Fencing
//!
//! A lease that expires by time is not enough on its own: a leader paused
//! past its lease (a stop signal, a long pause, a partition) wakes up still
//! believing it leads. As Kleppmann's fencing tokens have it, each grant of
//! the lease carries a higher epoch, and the storage refuses writes of older
//! epochs. Here the storage is PostgreSQL and the check is inside each
//! append's own statement:
//!
//! - [`Leases::try_acquire`] raises the epoch in the lease row, only once the
//!   lease has expired by the database's clock (`now()`; the nodes' clocks
//!   are never compared).
//! - An append's first step is an `UPDATE` of that same row matching only
//!   the writer's epoch. Both take the row's lock, so every append is ordered
//!   against every grant: an append ordered before a grant committed under a
//!   current epoch, and the new leader, which reads the journal after its
//!   grant, sees it; an append ordered after a grant matches nothing, writes
//!   nothing and fails with
//!   [`JournalError::Fenced`](warden_journal::JournalError::Fenced).
//! - Nothing depends on the paused writer's sense of time: whenever it wakes,
//!   its next append is refused. [`Lease::valid_until`] is for the leader's
//!   own duty to stop answering before its lease can be taken; it is measured
//!   on the node's monotonic clock from before the request was sent, so it
//!   ends no later than the database's expiry.
//! - A journal opened with [`PostgresJournal::open`] writes under epoch 0, the
//!   epoch before any grant: a single node without leases works as with
//!   redb, and is fenced off as soon as a cluster elects a leader.
//!
//! Appends hold the lease row's lock only while their statement runs, never
//! across round trips, so a paused or killed client holds no lock and cannot
//! hold up a takeover.
//!
//! # Seqs
//!
//! Seqs come from `next_seq`, read and moved on under the row lock in the
//! append's transaction: contiguous from 1, never reused, whatever fails. The
//! writer sends the seq it expects (it computes the checksums, which cover the
//! seq, before sending); if another writer of the same epoch moved `next_seq`
//! meanwhile, the statement writes nothing and the writer reads the head and
//! tries again.
//!
//! # Following
//!
//! Standbys tail the journal with a [`Follower`]: every append notifies the
//! `warden_journal` channel at commit (`pg_notify`), the follower `LISTEN`s
//! and reads the new records from the table when woken, and reads anyway
//! after [`POLL_INTERVAL`] (500 ms) without a notification, so a lost one
//! costs latency, never records. Measured on loopback: a record is visited
//! 0.5 to 0.7 ms after its append returned.
//!
//! # What survives what
//!
//! | failure | what is kept |
//! | --- | --- |
//! | the Warden process killed mid-append | every acknowledged batch; the one under way wholly or not at all (test `processes`) |
//! | the PostgreSQL server crashes | every acknowledged batch, by its write-ahead log (test `conformance`) |
//! | the database host loses power | every acknowledged batch, given `fsync` and `full_page_writes` (checked) and a disk that honours flushes |
//! | the connection drops mid-append | the outcome is read back before answering (see *Durability*) |
//! | a leader paused past its lease | nothing it appends after a takeover commits (tests `fencing`, `processes`) |
//! | the database host's disk is lost | nothing this crate can keep: that is PostgreSQL's own replication, with a synchronous standby |
//!
//! # Connections
//!
//! A journal uses one writer session, up to 8 read sessions (reads beyond
//! that wait for one), and each follower and [`Leases`] one more. Sessions
//! connect within 5 s or fail, give up on an unanswering server after 10 s
//! (`tcp_user_timeout`), and run statements for 30 s at most. The client
//! speaks plain TCP: keep the database on loopback or a private network
//! until TLS is added.
#![deny(missing_docs)]

mod follow;
mod journal;
mod lease;
mod pool;
mod reads;
mod record;
mod schema;
mod session;
#[cfg(feature = "testing")]
pub mod testing;
mod writer;

pub use follow::{Follower, POLL_INTERVAL};
pub use journal::PostgresJournal;
pub use lease::{Holder, Lease, Leases, MAX_LEASE};

/// A lease epoch: the fencing token of one grant of the lease, higher than
/// every earlier grant's. Epoch 0 is the state before any grant.
pub type Epoch = u64;
