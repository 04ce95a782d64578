//! Whether this node may write, and for how long: the writer it commits
//! through (none on a standby), the end of its lease, and the commits under
//! way, which a demotion waits for before the node starts following the
//! journal (so no record is applied twice).
//!
//! A single node installs its writer at build and has no lease end: it leads
//! for as long as it runs.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use crate::error::{Error, Unavailable};
use crate::journal::JournalWriter;

/// How much earlier than its lease a leader stops committing: the renewal
/// thread may be late by a scheduling hiccup, and the node must have stopped
/// before the database lets another node take over.
pub(crate) const LEASE_MARGIN: Duration = Duration::from_millis(250);

/// [`Leadership::lease_end`] of a node without a lease.
const NO_LEASE: u64 = u64::MAX;

/// A node's right to write.
pub(crate) struct Leadership {
    writer: ArcSwapOption<JournalWriter>,
    /// Set once the actors and timers run from the state: only then does the
    /// node answer as leader.
    leading: AtomicBool,
    /// When the lease ends (minus [`LEASE_MARGIN`]), in nanoseconds after
    /// `started`; [`NO_LEASE`]: a single node. An atomic, not a lock: every
    /// commit reads it.
    lease_end: AtomicU64,
    started: Instant,
    /// Where the leader is, as last read from the lease (standbys forward there).
    leader_url: ArcSwapOption<String>,
    in_flight: Arc<AtomicUsize>,
}

/// A commit under way; counted until dropped.
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Default for Leadership {
    fn default() -> Self {
        Leadership {
            writer: ArcSwapOption::empty(),
            leading: AtomicBool::new(false),
            lease_end: AtomicU64::new(NO_LEASE),
            started: Instant::now(),
            leader_url: ArcSwapOption::empty(),
            in_flight: Arc::default(),
        }
    }
}

impl Leadership {
    /// The writer to commit through, if this node may write now; the commit
    /// is counted until the returned guard drops.
    pub(crate) fn writer(&self) -> Result<(Arc<JournalWriter>, InFlight), Error> {
        // Counted first, so a demotion that removes the writer after this
        // point waits for this commit.
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight(self.in_flight.clone());
        let writer = self.writer.load_full().ok_or_else(|| self.not_leader())?;
        if !self.lease_holds() {
            return Err(self.not_leader());
        }
        Ok((writer, guard))
    }

    /// Commits go through `writer` from now on.
    pub(crate) fn install(&self, writer: JournalWriter) {
        self.writer.store(Some(Arc::new(writer)));
    }

    /// No more commits: answers the writer taken away (to be closed).
    pub(crate) fn uninstall(&self) -> Option<Arc<JournalWriter>> {
        self.leading.store(false, Ordering::Release);
        self.writer.swap(None)
    }

    /// Waits until every commit under way has been applied.
    pub(crate) async fn drained(&self) {
        while self.in_flight.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Whether the node answers as leader now.
    pub(crate) fn is_leading(&self) -> bool {
        self.leading.load(Ordering::Acquire) && self.lease_holds()
    }

    /// The node answers as leader (its actors and timers run).
    pub(crate) fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Release);
    }

    /// The lease now ends at `end` (`None`: no lease).
    pub(crate) fn set_lease_end(&self, end: Option<Instant>) {
        let nanos = end.map_or(NO_LEASE, |end| {
            let end = end.checked_sub(LEASE_MARGIN).unwrap_or(end);
            // A lease that ended before this node started has ended: 0.
            end.saturating_duration_since(self.started).as_nanos().min(u128::from(NO_LEASE - 1)) as u64
        });
        self.lease_end.store(nanos, Ordering::Release);
    }

    fn lease_holds(&self) -> bool {
        match self.lease_end.load(Ordering::Acquire) {
            NO_LEASE => true,
            end => (self.started.elapsed().as_nanos() as u64) < end,
        }
    }

    /// Where the leader is.
    pub(crate) fn leader_url(&self) -> Option<String> {
        self.leader_url.load_full().map(|url| (*url).clone())
    }

    /// The leader is at `url` (`None`: nobody leads now).
    pub(crate) fn set_leader_url(&self, url: Option<String>) {
        self.leader_url.store(url.map(Arc::new));
    }

    /// The error of a change this node cannot make.
    pub(crate) fn not_leader(&self) -> Error {
        Unavailable::NotLeader { leader: self.leader_url() }.into()
    }
}
