//! Following the journal as it grows, for standbys.
//!
//! A [`Follower`] has its own session, which `LISTEN`s on the channel every
//! append notifies at commit, and reads the new records as soon as a
//! notification arrives. Notifications are a wake-up only, never the data:
//! the records are always read from the table, so a lost or merged
//! notification costs latency, not records. And the follower also reads
//! after [`POLL_INTERVAL`] without one (see [`Follower::with_poll_interval`]), so even a notification that never
//! comes (a session re-established, a pooler that drops them) delays a
//! standby by at most that.

use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::Config;
use warden_journal::{JournalError, Record, Seq};

use crate::reads::{ReadSession, Scan};
use crate::session::{self, storage};

/// The longest a follower waits for a notification before reading anyway.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Tails the journal from a seq on; see the [crate docs](crate#following).
pub struct Follower {
    config: Config,
    session: Option<ReadSession>,
    next: Seq,
    poll_interval: Duration,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower").field("next", &self.next).finish_non_exhaustive()
    }
}

impl Follower {
    pub(crate) fn new(config: Config, from: Seq) -> Self {
        Self { config, session: None, next: from.max(1), poll_interval: POLL_INTERVAL }
    }

    /// Sets how long a wait for a notification lasts before the follower
    /// reads anyway ([`POLL_INTERVAL`] by default).
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The seq of the next record this follower will visit.
    pub fn next_seq(&self) -> Seq {
        self.next
    }

    /// Visits every record from [`Follower::next_seq`] on that is committed
    /// now; if there is none, waits up to `timeout` for one to commit and
    /// visits those. Returns how many records were visited (0 on timeout).
    ///
    /// An error of `visit` stops the call, and the record it was given is
    /// visited again by the next call. A storage error drops the session; the
    /// next call reconnects and goes on from the same seq.
    pub fn poll(
        &mut self,
        timeout: Duration,
        visit: &mut dyn FnMut(Record) -> Result<(), JournalError>,
    ) -> Result<usize, JournalError> {
        let result = self.poll_inner(timeout, visit);
        if self.session.as_ref().is_some_and(|s| s.client.is_closed()) {
            self.session = None;
        }
        result
    }

    fn poll_inner(
        &mut self,
        timeout: Duration,
        visit: &mut dyn FnMut(Record) -> Result<(), JournalError>,
    ) -> Result<usize, JournalError> {
        let deadline = Instant::now() + timeout;
        loop {
            let visited = self.read_new(visit)?;
            let now = Instant::now();
            if visited > 0 || now >= deadline {
                return Ok(visited);
            }
            self.wait((deadline - now).min(self.poll_interval))?;
        }
    }

    /// Visits every committed record from `next` on.
    fn read_new(&mut self, visit: &mut dyn FnMut(Record) -> Result<(), JournalError>) -> Result<usize, JournalError> {
        let session = self.session()?;
        // Notifications that came with earlier queries are all answered by
        // the read below; drop them so they do not cut the next wait short.
        while session.client.notifications().iter().next().map_err(storage("read notifications"))?.is_some() {}
        let mut scan = Scan::from(self.next);
        let mut visited = 0;
        loop {
            let session = self.session()?;
            let page = scan.next_page(session)?;
            if page.is_end() {
                return Ok(visited);
            }
            for record in page.records {
                let seq = record.seq;
                visit(record)?;
                self.next = seq + 1;
                visited += 1;
            }
            if let Some(error) = page.error {
                return Err(error);
            }
        }
    }

    /// Waits up to `timeout` for a notification of a commit.
    fn wait(&mut self, timeout: Duration) -> Result<(), JournalError> {
        let session = self.session()?;
        let mut notifications = session.client.notifications();
        notifications.timeout_iter(timeout).next().map_err(storage("wait for a notification"))?;
        Ok(())
    }

    /// The session, connected and listening if needed.
    fn session(&mut self) -> Result<&mut ReadSession, JournalError> {
        if self.session.is_none() {
            let mut client = session::connect(&self.config)?;
            client.batch_execute("LISTEN warden_journal").map_err(storage("listen for appends"))?;
            self.session = Some(ReadSession::on(client)?);
        }
        Ok(self.session.as_mut().expect("set just above"))
    }
}
