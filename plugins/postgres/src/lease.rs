//! Leadership: the lease in the `warden_lease` row, its epochs, renewal and
//! the holder lookup standbys forward to.
//!
//! Every time is the database's (`now()`), never a node's clock: nodes need
//! not agree on the time of day. A node only measures durations on its own
//! monotonic clock, to know when to stop trusting a lease it holds.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use postgres::{Client, Config};
use warden_journal::JournalError;

use crate::session::{self, storage, Session};
use crate::{schema, Epoch};

/// The longest lease granted: a leader that stops renewing holds up every
/// change for up to this long, so hours would be a mistake, not a setting.
pub const MAX_LEASE: Duration = Duration::from_secs(3600);

/// A lease this node holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The fencing token of this grant: higher than every earlier grant's.
    pub epoch: Epoch,
    /// The node holding it.
    pub node_id: String,
    /// When this node must stop acting as leader unless it renewed: the
    /// moment the grant or renewal was *sent*, on this node's monotonic
    /// clock, plus the lease's length. The database computed its expiry from
    /// a moment no earlier, so the node stops before the database lets
    /// another node take over (clock rates assumed equal).
    pub valid_until: Instant,
}

/// Who holds the lease, as the database sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The epoch of the latest grant; `0` if none was ever made.
    pub epoch: Epoch,
    /// The node it was granted to, `None` if none ever was.
    pub node_id: Option<String>,
    /// Where that node said the other nodes reach it.
    pub advertise_url: Option<String>,
    /// How long the lease still runs by the database's clock; zero once expired.
    pub remaining: Duration,
}

impl Holder {
    /// Whether a node holds an unexpired lease.
    pub fn is_live(&self) -> bool {
        self.node_id.is_some() && !self.remaining.is_zero()
    }
}

/// The lease operations, on their own session (not the journal's writer), so
/// renewals are never queued behind appends on this node.
pub struct Leases {
    client: Mutex<Option<Session>>,
    config: Config,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases").finish_non_exhaustive()
    }
}

impl Leases {
    /// Connects to the database at `url` and creates the journal's tables if
    /// they are missing. Blocking: see the [crate docs](crate#threads).
    pub fn connect(url: &str) -> Result<Self, JournalError> {
        session::off_runtime(|| {
            let config = session::config(url)?;
            let mut client = session::connect(&config)?;
            schema::ensure(&mut client)?;
            Ok(Self { client: Mutex::new(Some(client)), config })
        })
    }

    /// Takes the lease for `node_id` if nobody holds an unexpired one
    /// (including `node_id` itself: a holder renews instead). Returns `None`
    /// while another lease runs. A grant always moves the epoch on, so every
    /// writer of an earlier grant is fenced off from then on.
    ///
    /// The grant waits for an append under way to commit (it takes the same
    /// row lock): every record the old leader committed is in the journal
    /// before the new leader's first scan.
    pub fn try_acquire(
        &self,
        node_id: &str,
        advertise_url: &str,
        length: Duration,
    ) -> Result<Option<Lease>, JournalError> {
        let seconds = lease_seconds(length)?;
        let sent = Instant::now();
        let row = self.with(|client| {
            client
                .query_opt(
                    "UPDATE warden_lease
                     SET epoch = epoch + 1, holder = $1, advertise_url = $2,
                         expires_at = now() + $3::float8 * interval '1 second'
                     WHERE id = 1 AND (holder IS NULL OR expires_at <= now())
                     RETURNING epoch",
                    &[&node_id, &advertise_url, &seconds],
                )
                .map_err(storage("take the lease"))
        })?;
        Ok(row.map(|row| Lease {
            epoch: row.get::<_, i64>(0) as Epoch,
            node_id: node_id.to_owned(),
            valid_until: sent + length,
        }))
    }

    /// Extends `lease` by `length` from now, if it is still the current
    /// grant. Returns `None` once another node took over: the caller is no
    /// longer leader (and its appends are already refused). A lease that
    /// expired with nobody taking over is still current and renews.
    pub fn renew(&self, lease: &Lease, length: Duration) -> Result<Option<Lease>, JournalError> {
        let seconds = lease_seconds(length)?;
        let epoch = epoch_to_db(lease.epoch)?;
        let sent = Instant::now();
        let renewed = self.with(|client| {
            client
                .execute(
                    "UPDATE warden_lease SET expires_at = now() + $3::float8 * interval '1 second'
                     WHERE id = 1 AND epoch = $1 AND holder = $2",
                    &[&epoch, &lease.node_id, &seconds],
                )
                .map_err(storage("renew the lease"))
        })?;
        Ok((renewed == 1).then(|| Lease { valid_until: sent + length, ..lease.clone() }))
    }

    /// Ends `lease` now, so a standby can take over without waiting for it to
    /// expire (a leader shutting down). Returns whether it was still current.
    pub fn release(&self, lease: &Lease) -> Result<bool, JournalError> {
        let epoch = epoch_to_db(lease.epoch)?;
        let released = self.with(|client| {
            client
                .execute(
                    "UPDATE warden_lease SET expires_at = now() WHERE id = 1 AND epoch = $1 AND holder = $2",
                    &[&epoch, &lease.node_id],
                )
                .map_err(storage("release the lease"))
        })?;
        Ok(released == 1)
    }

    /// The current holder, for standbys deciding when to take over and where
    /// to forward changes.
    pub fn holder(&self) -> Result<Holder, JournalError> {
        let row = self.with(|client| {
            client
                .query_one(
                    "SELECT epoch, holder, advertise_url,
                            extract(epoch FROM greatest(coalesce(expires_at - now(), interval '0'), interval '0'))
                                ::float8
                     FROM warden_lease WHERE id = 1",
                    &[],
                )
                .map_err(storage("read the lease"))
        })?;
        let remaining: f64 = row.get(3);
        Ok(Holder {
            epoch: row.get::<_, i64>(0) as Epoch,
            node_id: row.get(1),
            advertise_url: row.get(2),
            remaining: Duration::try_from_secs_f64(remaining).unwrap_or(Duration::ZERO),
        })
    }

    /// Runs `f` on the session, reconnecting first if the last call broke it.
    fn with<T: Send>(&self, f: impl FnOnce(&mut Client) -> Result<T, JournalError> + Send) -> Result<T, JournalError> {
        session::off_runtime(|| self.with_here(f))
    }

    fn with_here<T>(&self, f: impl FnOnce(&mut Client) -> Result<T, JournalError>) -> Result<T, JournalError> {
        let mut slot = self.client();
        if slot.as_ref().is_none_or(|session| session.is_closed()) {
            *slot = Some(session::connect(&self.config)?);
        }
        let client = slot.as_mut().expect("connected just above");
        let result = f(client);
        if client.is_closed() {
            *slot = None;
        }
        result
    }

    fn client(&self) -> MutexGuard<'_, Option<Session>> {
        // The slot is replaced whole; a panic cannot leave it half written.
        self.client.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A lease length in seconds, refused if zero or above [`MAX_LEASE`].
fn lease_seconds(length: Duration) -> Result<f64, JournalError> {
    if length.is_zero() || length > MAX_LEASE {
        return Err(JournalError::Storage(format!(
            "lease length `{length:?}` must be above zero and at most {MAX_LEASE:?}"
        )));
    }
    Ok(length.as_secs_f64())
}

fn epoch_to_db(epoch: Epoch) -> Result<i64, JournalError> {
    i64::try_from(epoch).map_err(|_| JournalError::Storage(format!("lease epoch `{epoch}` is out of range")))
}
