//! [`PostgresJournal`]: the [`Journal`] trait on the `warden_journal` table.

use std::sync::{Mutex, MutexGuard, PoisonError};

use postgres::Config;
use warden_journal::{Journal, JournalError, Record, Seq};

use crate::follow::Follower;
use crate::lease::Lease;
use crate::pool::Pool;
use crate::reads::Scan;
use crate::session;
use crate::writer::Writer;
use crate::{schema, Epoch};

/// A [`Journal`] in PostgreSQL, writing under one lease epoch. See the
/// [crate docs](crate) for durability, fencing and what survives what.
pub struct PostgresJournal {
    config: Config,
    epoch: Epoch,
    /// Appends, one at a time: the single writer of this handle.
    writer: Mutex<Writer>,
    reads: Pool,
}

impl std::fmt::Debug for PostgresJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresJournal").field("epoch", &self.epoch).finish_non_exhaustive()
    }
}

impl PostgresJournal {
    /// Opens the journal for a single node: it writes under epoch 0, which is
    /// current only as long as no lease was ever granted on this database.
    /// Once a cluster has elected a leader, only that leader's journal
    /// ([`PostgresJournal::open_as_leader`]) can append; this one can still
    /// read, and its appends fail with [`JournalError::Fenced`].
    ///
    /// Connects to `url` (a `postgresql://` URL or a key-value string),
    /// creates the tables if they are missing and checks their format.
    /// Blocking: see the [crate docs](crate#threads).
    pub fn open(url: &str) -> Result<Self, JournalError> {
        Self::open_at_epoch(url, 0)
    }

    /// Opens the journal to write under `lease`: every append commits only
    /// while `lease.epoch` is the current epoch, and fails with
    /// [`JournalError::Fenced`] once another node has taken the lease.
    pub fn open_as_leader(url: &str, lease: &Lease) -> Result<Self, JournalError> {
        Self::open_at_epoch(url, lease.epoch)
    }

    fn open_at_epoch(url: &str, epoch: Epoch) -> Result<Self, JournalError> {
        session::off_runtime(|| Self::open_here(url, epoch))
    }

    fn open_here(url: &str, epoch: Epoch) -> Result<Self, JournalError> {
        let config = session::config(url)?;
        let mut client = session::connect(&config)?;
        schema::ensure(&mut client)?;
        drop(client);
        Ok(Self {
            writer: Mutex::new(Writer::new(config.clone(), epoch)?),
            reads: Pool::new(config.clone()),
            config,
            epoch,
        })
    }

    /// The lease epoch this journal writes under (0: a single node, no lease).
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// A follower visiting the records from `from` on as they commit, on a
    /// session of its own. See [`Follower::poll`].
    pub fn follow(&self, from: Seq) -> Follower {
        Follower::new(self.config.clone(), from)
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        // The writer keeps its state consistent at every return; a panic
        // inside it can at worst leave a session that the next call checks.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Journal for PostgresJournal {
    fn append(&self, payloads: &[Vec<u8>]) -> Result<Seq, JournalError> {
        if payloads.is_empty() {
            let last = self.last_seq()?.unwrap_or(0);
            return last.checked_add(1).ok_or_else(|| JournalError::Storage("journal is full".into()));
        }
        session::off_runtime(|| self.writer().append(payloads))
    }

    fn scan(&self, from: Seq, visit: &mut dyn FnMut(Record) -> Result<(), JournalError>) -> Result<(), JournalError> {
        let mut scan = Scan::from(from);
        loop {
            // The session goes back to the pool before `visit` runs, so
            // `visit` may call into the journal.
            let page = self.reads.with(|session| scan.next_page(session))?;
            if page.is_end() {
                return Ok(());
            }
            for record in page.records {
                visit(record)?;
            }
            if let Some(error) = page.error {
                return Err(error);
            }
        }
    }

    fn read(&self, seq: Seq) -> Result<Option<Record>, JournalError> {
        self.reads.with(|session| session.read(seq))
    }

    fn last_seq(&self) -> Result<Option<Seq>, JournalError> {
        self.reads.with(|session| session.last_seq())
    }

    /// Every read is a round trip to the database.
    fn reads_wait_on_network(&self) -> bool {
        true
    }
}
