//! The cluster layer: which node of a shared PostgreSQL journal leads.
//!
//! One thread per node (`warden-cluster`) runs the role:
//!
//! - As a **standby** it follows the journal (a LISTEN/NOTIFY follower that
//!   also polls), folding each record into the engine with the same fold as
//!   recovery, and reads the lease every [`CHECK_EVERY`]: it tells the engine
//!   where the leader is (changes are forwarded there), and when the lease
//!   has expired it takes it. Holding it, it opens the journal under the new
//!   epoch, follows every record committed before the grant (the grant waited
//!   for appends under way), and promotes the engine, which starts its actors
//!   and timers from the state and only then answers as leader.
//! - As **leader** it renews the lease every third of its length. The engine
//!   refuses to commit past the lease's end (minus a margin) unless renewed,
//!   so a node that cannot renew stops answering changes before anyone can
//!   take over; and every append is fenced by its epoch in the database
//!   anyway. When the renewal says another node holds the lease, or the lease
//!   has run out, the engine is demoted and the node follows again.
//!
//! Nothing here is a consensus of its own: PostgreSQL orders the grants and
//! the appends (see the `warden-postgres` crate's docs, *Fencing*).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use warden_journal::{Journal, JournalError};
use warden_postgres::{Follower, Lease, Leases, PostgresJournal};

use crate::config::ClusterConfig;
use crate::engine::Engine;

/// How often a standby reads the lease: a dead leader's lease is taken at
/// most this long after it expired.
pub const CHECK_EVERY: Duration = Duration::from_millis(200);

/// How long one follow step waits for a notification of an append.
const FOLLOW_WAIT: Duration = Duration::from_millis(100);

/// A running cluster role; [`Cluster::stop`] ends it (releasing the lease).
pub struct Cluster {
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Cluster {
    /// Starts following `journal` (opened at epoch 0, for reads) as a
    /// standby of `url`'s cluster, taking the lead when it is free. `engine`
    /// must have been built as a standby over `journal`; `runtime` is the
    /// engine's (its promotion and demotion run there).
    pub fn start(
        engine: Engine,
        journal: Arc<PostgresJournal>,
        url: String,
        config: ClusterConfig,
        runtime: tokio::runtime::Handle,
    ) -> std::io::Result<Cluster> {
        let stopping = Arc::new(AtomicBool::new(false));
        let role = Role { engine, journal, url, config, runtime, stopping: stopping.clone() };
        let thread = std::thread::Builder::new().name("warden-cluster".into()).spawn(move || role.run())?;
        Ok(Cluster { stopping, thread: Some(thread) })
    }

    /// Stops the role; a leader releases its lease so a standby takes over
    /// at once instead of after the lease.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Role {
    engine: Engine,
    journal: Arc<PostgresJournal>,
    url: String,
    config: ClusterConfig,
    runtime: tokio::runtime::Handle,
    stopping: Arc<AtomicBool>,
}

impl Role {
    fn run(self) {
        let leases = loop {
            match Leases::connect(&self.url) {
                Ok(leases) => break leases,
                Err(error) => {
                    tracing::error!(%error, "cannot reach the lease; retrying");
                    if self.pause(Duration::from_secs(1)) {
                        return;
                    }
                }
            }
        };
        let mut follower = self.journal.follow(self.engine.journal_seq() + 1);
        while !self.stopping.load(Ordering::Acquire) {
            let Some(lease) = self.follow_until_leading(&leases, &mut follower) else { break };
            let lease = self.lead(&leases, lease);
            match lease {
                Some(lease) => {
                    // Stopping: let a standby take over now.
                    let _ = leases.release(&lease);
                    break;
                }
                None => {
                    let engine = self.engine.clone();
                    let Some(next) = self.on_runtime(async move { engine.demote().await }) else { break };
                    let next = next.unwrap_or_else(|error| {
                        tracing::error!(%error, "demotion could not re-read the windows");
                        self.engine.journal_seq() + 1
                    });
                    follower = self.journal.follow(next);
                }
            }
        }
    }

    /// Follows the journal as a standby until this node holds the lease and
    /// has been promoted. `None` when stopping.
    fn follow_until_leading(&self, leases: &Leases, follower: &mut Follower) -> Option<Lease> {
        let mut last_check: Option<Instant> = None;
        while !self.stopping.load(Ordering::Acquire) {
            self.follow_step(follower);
            if last_check.is_some_and(|at| at.elapsed() < CHECK_EVERY) {
                continue;
            }
            last_check = Some(Instant::now());
            let holder = match leases.holder() {
                Ok(holder) => holder,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the lease");
                    continue;
                }
            };
            if holder.is_live() {
                self.engine.set_leader_url(holder.advertise_url);
                continue;
            }
            self.engine.set_leader_url(None);
            match leases.try_acquire(&self.config.node_id, &self.config.advertise_url, self.config.lease) {
                Ok(Some(lease)) => match self.take_over(&lease, follower) {
                    Ok(()) => return Some(lease),
                    Err(error) => {
                        tracing::error!(%error, "could not take over; releasing the lease");
                        self.engine.set_lease_end(None);
                        let _ = leases.release(&lease);
                    }
                },
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "cannot take the lease"),
            }
        }
        None
    }

    /// Folds what was committed since the last step, waiting a little for more.
    fn follow_step(&self, follower: &mut Follower) {
        let engine = &self.engine;
        let mut fold = |record| engine.follow(record).map_err(|e| JournalError::Storage(e.to_string()));
        if let Err(error) = follower.poll(FOLLOW_WAIT, &mut fold) {
            tracing::error!(%error, "following the journal failed; retrying");
            self.pause(FOLLOW_WAIT);
        }
    }

    /// Holding `lease`: catches up with every committed record, then promotes.
    fn take_over(&self, lease: &Lease, follower: &mut Follower) -> Result<(), JournalError> {
        let journal = PostgresJournal::open_as_leader(&self.url, lease)?;
        // Read after the grant: every append of the old leader is committed
        // or fenced by now, so this is the last record before ours.
        let head = journal.last_seq()?.unwrap_or(0);
        while follower.next_seq() <= head {
            let engine = &self.engine;
            follower.poll(FOLLOW_WAIT, &mut |record| {
                engine.follow(record).map_err(|e| JournalError::Storage(e.to_string()))
            })?;
        }
        self.engine.set_lease_end(Some(lease.valid_until));
        let journal: Arc<dyn Journal> = Arc::new(journal);
        let engine = self.engine.clone();
        self.on_runtime(async move { engine.promote(journal).await })
            .ok_or_else(|| JournalError::Storage("the engine stopped".into()))?
            .map_err(|e| JournalError::Storage(e.to_string()))?;
        self.engine.set_leader_url(Some(self.config.advertise_url.clone()));
        tracing::info!(node = %self.config.node_id, epoch = lease.epoch, "took the lead");
        Ok(())
    }

    /// Renews `lease` while leading. Answers the lease when stopping, `None`
    /// once it is lost.
    fn lead(&self, leases: &Leases, mut lease: Lease) -> Option<Lease> {
        let every = self.config.lease / 3;
        loop {
            if self.pause(every) {
                return Some(lease);
            }
            match leases.renew(&lease, self.config.lease) {
                Ok(Some(renewed)) => {
                    self.engine.set_lease_end(Some(renewed.valid_until));
                    lease = renewed;
                }
                Ok(None) => {
                    tracing::warn!(node = %self.config.node_id, "another node holds the lease");
                    return None;
                }
                Err(error) if Instant::now() >= lease.valid_until => {
                    tracing::error!(%error, "the lease ran out unrenewed");
                    return None;
                }
                Err(error) => tracing::warn!(%error, "cannot renew the lease yet"),
            }
        }
    }

    /// Runs `work` on the engine's runtime and waits for it; `None` if the
    /// runtime is gone (the process is ending).
    fn on_runtime<T: Send + 'static>(&self, work: impl std::future::Future<Output = T> + Send + 'static) -> Option<T> {
        let (done, answer) = std::sync::mpsc::channel();
        self.runtime.spawn(async move {
            let _ = done.send(work.await);
        });
        answer.recv().ok()
    }

    /// Sleeps up to `length`; answers whether the role is stopping.
    fn pause(&self, length: Duration) -> bool {
        let end = Instant::now() + length;
        while Instant::now() < end {
            if self.stopping.load(Ordering::Acquire) {
                return true;
            }
            std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
        }
        self.stopping.load(Ordering::Acquire)
    }
}
