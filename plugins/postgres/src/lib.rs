//! Warden's shared journal on PostgreSQL, and the leader lease that lets
//! several nodes share it with one writer at a time.
//!
//! TODO crate docs
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
