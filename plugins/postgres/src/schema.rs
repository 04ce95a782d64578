//! The two tables, created on first open, and the format check on every open.
//!
//! - `warden_journal (seq, checksum, payload)`: one row per record.
//! - `warden_lease`: exactly one row (`id = 1`) holding the leader's lease
//!   (`epoch`, `holder`, `advertise_url`, `expires_at`) and `next_seq`, the
//!   seq the next record gets. Both live in one row so that the one row lock
//!   an append takes both fences it (its epoch must be current) and orders it
//!   (it takes the seqs from `next_seq` and moves it on).

use postgres::Client;
use warden_journal::JournalError;

use crate::session::storage;

/// The journal format this crate writes and reads.
pub(crate) const FORMAT: i32 = 1;

/// Serializes the creation of the tables by nodes starting at once (`CREATE
/// TABLE IF NOT EXISTS` alone races on the catalog). The value is arbitrary,
/// fixed: "warden" in ASCII.
const SCHEMA_LOCK: i64 = 0x0000_7761_7264_656e;

const CREATE: &str = "
CREATE TABLE IF NOT EXISTS warden_journal (
    seq      bigint  PRIMARY KEY CHECK (seq > 0),
    checksum integer NOT NULL,
    payload  bytea   NOT NULL
);
CREATE TABLE IF NOT EXISTS warden_lease (
    id            smallint    PRIMARY KEY CHECK (id = 1),
    format        integer     NOT NULL,
    epoch         bigint      NOT NULL CHECK (epoch >= 0),
    holder        text,
    advertise_url text,
    expires_at    timestamptz,
    next_seq      bigint      NOT NULL CHECK (next_seq > 0)
);";

/// Creates the tables if they are missing and checks the stored format.
pub(crate) fn ensure(client: &mut Client) -> Result<(), JournalError> {
    let mut txn = client.transaction().map_err(storage("begin the schema transaction"))?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).map_err(storage("lock the schema"))?;
    txn.batch_execute(CREATE).map_err(storage("create the journal tables"))?;
    // A journal that already has records but no lease row cannot be: both
    // tables are created in this one transaction.
    txn.execute(
        "INSERT INTO warden_lease (id, format, epoch, next_seq) VALUES (1, $1, 0, 1) ON CONFLICT (id) DO NOTHING",
        &[&FORMAT],
    )
    .map_err(storage("create the lease row"))?;
    let format: i32 = txn
        .query_one("SELECT format FROM warden_lease WHERE id = 1", &[])
        .map_err(storage("read the journal format"))?
        .get(0);
    txn.commit().map_err(storage("commit the schema"))?;
    if format != FORMAT {
        return Err(JournalError::Storage(format!(
            "the journal in postgres has format `{format}`; this version of Warden reads format `{FORMAT}` only"
        )));
    }
    Ok(())
}
