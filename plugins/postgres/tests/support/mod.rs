//! What the tests of this crate share: a server with a fresh database, and
//! waiting on the database's clock for a lease to run out.
#![allow(dead_code, reason = "each test binary uses its own part of this module")]

use std::time::{Duration, Instant};

use warden_journal::{Journal, Record};
use warden_postgres::testing::TempPostgres;
use warden_postgres::Leases;

/// A throwaway server and the URL of a fresh database on it.
pub fn database(name: &str) -> (TempPostgres, String) {
    let server =
        TempPostgres::start().expect("start a throwaway postgres (scripts/postgres.sh installs it when missing)");
    let url = server.create_database(name).expect("create the test database");
    (server, url)
}

/// Waits until the database says the current lease has expired: expiry is
/// the database's judgement, so the test asks it rather than sleeping.
pub fn wait_until_expired(leases: &Leases) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while leases.holder().expect("read the holder").is_live() {
        assert!(Instant::now() < deadline, "the lease never expired");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A lease short enough that tests can wait for it to expire.
pub const SHORT: Duration = Duration::from_millis(300);
/// A lease no test outlives.
pub const LONG: Duration = Duration::from_secs(600);

/// `count` distinct payloads `tag-0`, `tag-1`, ...
pub fn payloads(tag: &str, count: usize) -> Vec<Vec<u8>> {
    (0..count).map(|i| format!("{tag}-{i}").into_bytes()).collect()
}

/// Every record of `journal`, in order.
pub fn all(journal: &dyn Journal) -> Vec<Record> {
    let mut records = Vec::new();
    journal
        .scan(1, &mut |record| {
            records.push(record);
            Ok(())
        })
        .expect("scan");
    records
}
