//! The leader lease: grants, epochs, renewal, release and the holder lookup,
//! on a real PostgreSQL server.

mod support;

use std::time::{Duration, Instant};

use support::{database, wait_until_expired, LONG, SHORT};
use warden_journal::JournalError;
use warden_postgres::{Leases, MAX_LEASE};

#[test]
fn the_first_grant_is_epoch_1_and_excludes_every_other_node() {
    let (_server, url) = database("first_grant");
    let leases = Leases::connect(&url).expect("connect");
    let before = leases.holder().expect("holder");
    assert_eq!((before.epoch, before.node_id.as_deref(), before.is_live()), (0, None, false));

    let asked = Instant::now();
    let lease = leases.try_acquire("node-a", "http://127.0.0.1:8081", LONG).expect("acquire").expect("granted");
    assert_eq!((lease.epoch, lease.node_id.as_str()), (1, "node-a"));
    assert!(lease.valid_until >= asked + LONG, "validity counts from before the request was sent");
    assert!(lease.valid_until <= Instant::now() + LONG, "validity cannot start after the answer came");

    let other = Leases::connect(&url).expect("connect a second node");
    assert_eq!(other.try_acquire("node-b", "http://127.0.0.1:8082", LONG).expect("try"), None);
    assert_eq!(leases.try_acquire("node-a", "http://127.0.0.1:8081", LONG).expect("try"), None, "a holder renews");

    let holder = other.holder().expect("holder");
    assert_eq!(holder.epoch, 1);
    assert_eq!(holder.node_id.as_deref(), Some("node-a"));
    assert_eq!(holder.advertise_url.as_deref(), Some("http://127.0.0.1:8081"));
    assert!(holder.is_live() && holder.remaining <= LONG && holder.remaining > LONG / 2, "{holder:?}");
}

#[test]
fn an_expired_lease_is_taken_over_with_the_next_epoch() {
    let (_server, url) = database("takeover");
    let a = Leases::connect(&url).expect("connect a");
    let b = Leases::connect(&url).expect("connect b");
    let first = a.try_acquire("node-a", "http://a", SHORT).expect("acquire").expect("granted");
    wait_until_expired(&b);
    let second = b.try_acquire("node-b", "http://b", LONG).expect("acquire").expect("granted after expiry");
    assert_eq!((first.epoch, second.epoch), (1, 2));
    let holder = a.holder().expect("holder");
    assert_eq!(
        (holder.epoch, holder.node_id.as_deref(), holder.advertise_url.as_deref()),
        (2, Some("node-b"), Some("http://b"))
    );
}

#[test]
fn renew_extends_the_lease() {
    let (_server, url) = database("renew");
    let leases = Leases::connect(&url).expect("connect");
    let lease = leases.try_acquire("node-a", "http://a", Duration::from_secs(2)).expect("acquire").expect("granted");
    let renewed = leases.renew(&lease, LONG).expect("renew").expect("still current");
    assert_eq!(renewed.epoch, lease.epoch, "renewal keeps the epoch");
    assert!(renewed.valid_until > lease.valid_until);
    let holder = leases.holder().expect("holder");
    assert!(holder.remaining > Duration::from_secs(60), "renewed to {LONG:?}, {:?} left", holder.remaining);
}

#[test]
fn an_expired_lease_nobody_took_renews() {
    let (_server, url) = database("late_renew");
    let leases = Leases::connect(&url).expect("connect");
    let lease = leases.try_acquire("node-a", "http://a", SHORT).expect("acquire").expect("granted");
    wait_until_expired(&leases);
    let renewed = leases.renew(&lease, LONG).expect("renew").expect("nobody took over: still current");
    assert_eq!(renewed.epoch, 1);
    assert!(leases.holder().expect("holder").is_live());
}

#[test]
fn a_holder_cannot_renew_or_release_after_a_takeover() {
    let (_server, url) = database("lost_lease");
    let a = Leases::connect(&url).expect("connect a");
    let b = Leases::connect(&url).expect("connect b");
    let old = a.try_acquire("node-a", "http://a", SHORT).expect("acquire").expect("granted");
    wait_until_expired(&b);
    let new = b.try_acquire("node-b", "http://b", LONG).expect("acquire").expect("granted");
    assert_eq!(a.renew(&old, LONG).expect("renew"), None, "the old holder must learn it lost the lease");
    assert!(!a.release(&old).expect("release"), "the old holder cannot end the new lease");
    let holder = b.holder().expect("holder");
    assert_eq!((holder.epoch, holder.node_id.as_deref()), (2, Some("node-b")));
    assert!(holder.is_live());
    assert!(b.renew(&new, LONG).expect("renew").is_some());
}

#[test]
fn release_lets_a_standby_take_over_at_once() {
    let (_server, url) = database("release");
    let a = Leases::connect(&url).expect("connect a");
    let b = Leases::connect(&url).expect("connect b");
    let lease = a.try_acquire("node-a", "http://a", LONG).expect("acquire").expect("granted");
    assert!(a.release(&lease).expect("release"));
    assert!(!b.holder().expect("holder").is_live());
    let taken = b.try_acquire("node-b", "http://b", LONG).expect("acquire").expect("granted without waiting");
    assert_eq!(taken.epoch, 2);
}

#[test]
fn epochs_strictly_increase_over_many_takeovers() {
    let (_server, url) = database("epochs");
    let leases = Leases::connect(&url).expect("connect");
    let mut epochs = Vec::new();
    for round in 0..6 {
        let node = format!("node-{}", round % 3);
        let lease = leases.try_acquire(&node, "http://n", LONG).expect("acquire").expect("granted");
        epochs.push(lease.epoch);
        assert!(leases.release(&lease).expect("release"));
    }
    assert_eq!(epochs, [1, 2, 3, 4, 5, 6]);
}

#[test]
fn of_nodes_racing_for_an_expired_lease_exactly_one_wins() {
    let (_server, url) = database("race");
    let leases = Leases::connect(&url).expect("connect");
    let first = leases.try_acquire("node-0", "http://0", SHORT).expect("acquire").expect("granted");
    wait_until_expired(&leases);
    let winners: Vec<_> = std::thread::scope(|scope| {
        let racers: Vec<_> = (1..=4)
            .map(|n| {
                let url = &url;
                scope.spawn(move || {
                    let leases = Leases::connect(url).expect("connect");
                    leases.try_acquire(&format!("node-{n}"), "http://n", LONG).expect("try")
                })
            })
            .collect();
        racers.into_iter().filter_map(|r| r.join().expect("racer")).collect()
    });
    assert_eq!(winners.len(), 1, "exactly one node takes an expired lease: {winners:?}");
    assert_eq!(winners[0].epoch, first.epoch + 1);
}

#[test]
fn lease_lengths_out_of_range_are_refused() {
    let (_server, url) = database("lengths");
    let leases = Leases::connect(&url).expect("connect");
    for length in [Duration::ZERO, MAX_LEASE + Duration::from_secs(1)] {
        match leases.try_acquire("node-a", "http://a", length) {
            Err(JournalError::Storage(message)) => assert!(message.contains("lease length"), "{message}"),
            other => panic!("a lease of {length:?} must be refused, got {other:?}"),
        }
    }
    assert_eq!(leases.holder().expect("holder").epoch, 0, "a refused request grants nothing");
}
