//! When a failed delivery is tried again, and when Warden gives up.
//!
//! The delay before try `n + 1` is `FIRST_RETRY * 2^(n - 1)`, capped at
//! [`MAX_RETRY_DELAY`], plus up to a quarter of it at random so that the
//! events queued during a receiver's outage do not all come back in the same
//! instant: 2 s, 4 s, 8 s, ... 2048 s, then hourly. An event is retried as long
//! as it fails before [`RETRY_HORIZON`] has passed since its date (some 35
//! tries in all); the first failure after that makes it `Failed`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

/// Delay before the first retry (the contract asks for one within 5 s; with
/// jitter it comes within 2.5 s).
pub const FIRST_RETRY: Duration = Duration::from_secs(2);

/// Longest delay between two tries: a receiver back from a long outage gets
/// its events within the hour.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(60 * 60);

/// How long after its date an event is still retried (the contract says at
/// least 24 hours).
pub const RETRY_HORIZON: Duration = Duration::from_secs(24 * 60 * 60);

/// What follows a failed try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// Stop: the event is `Failed`.
    GiveUp,
}

/// The delay before the next try once `attempts` tries (at least one) have
/// failed, without jitter.
pub(crate) fn retry_delay(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(31);
    FIRST_RETRY.saturating_mul(1u32 << doublings).min(MAX_RETRY_DELAY)
}

/// What to do after try number `attempts` of an event dated `date` failed at
/// `now`.
pub(crate) fn after_failure(date: DateTime<Utc>, attempts: u32, now: DateTime<Utc>) -> AfterFailure {
    if now >= date + chrono_duration(RETRY_HORIZON) {
        return AfterFailure::GiveUp;
    }
    let delay = retry_delay(attempts);
    let jitter = rand::thread_rng().gen_range(Duration::ZERO..=delay / 4);
    AfterFailure::RetryAt(now + chrono_duration(delay + jitter))
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    // INVARIANT (bounded delays): every delay here is at most a day and a
    // quarter, far inside chrono's range.
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_two_seconds_up_to_an_hour() {
        let secs: Vec<u64> = (1..=14).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(secs, [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600, 3600]);
        assert_eq!(retry_delay(u32::MAX), MAX_RETRY_DELAY);
    }

    #[test]
    fn first_retry_comes_within_five_seconds() {
        let date = Utc::now();
        for _ in 0..100 {
            let AfterFailure::RetryAt(at) = after_failure(date, 1, date) else { panic!("gave up at once") };
            assert!(at > date && at <= date + chrono::Duration::seconds(5), "{at} vs {date}");
        }
    }

    #[test]
    fn retries_last_at_least_a_day_then_stop() {
        let date = Utc::now();
        let mut now = date;
        let mut attempts = 1;
        while let AfterFailure::RetryAt(at) = after_failure(date, attempts, now) {
            now = at;
            attempts += 1;
        }
        assert!(now >= date + chrono::Duration::hours(24));
        assert!(now < date + chrono::Duration::hours(26));
        assert!((30..40).contains(&attempts), "{attempts} tries");
    }
}
