//! The pending challenges and the issued user-action tokens, in memory.
//!
//! Both are bounded: each entry expires [`TTL`] after it was made, expired
//! entries are swept whenever one is added, a principal holds at most
//! [`PER_PRINCIPAL`] of each and the server at most [`TOTAL`]; past a bound
//! the caller gets 429 until entries expire or are used. A restart forgets
//! them all (a client then starts the flow again), which is why nothing here
//! is journaled: only the assertion of a used token is, with its change.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use crate::model::signed_action::SignedAction;

/// How long a challenge may wait to be signed, and a token to be used.
pub const TTL: Duration = Duration::minutes(5);
/// Entries of one kind a principal may hold at once: a person signs one
/// action at a time; a few dozen leave room for scripts and retries.
pub const PER_PRINCIPAL: usize = 32;
/// Entries of one kind the server holds at once (a few MB at most).
pub const TOTAL: usize = 10_000;

/// A challenge handed out by `/auth/action/init`.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// The principal it was issued to.
    pub principal_id: String,
    /// The challenge text the client signs inside `clientData`.
    pub challenge: String,
    /// The request it binds: method, path, sha256 of the body.
    pub binding: Binding,
    /// When it stops being accepted.
    pub expires: DateTime<Utc>,
}

/// What a token may be used for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// `POST`, `PUT` or `DELETE`.
    pub method: String,
    /// The percent-encoded path, without query.
    pub path: String,
    /// sha256 of the exact body bytes.
    pub body_sha256: [u8; 32],
}

/// A token issued by `/auth/action`.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The principal it was issued to.
    pub principal_id: String,
    /// The request it may authorize.
    pub binding: Binding,
    /// The assertion, without the body (the request brings it).
    pub assertion: SignedAction,
    /// When it stops being accepted.
    pub expires: DateTime<Utc>,
}

/// A bound was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// Challenges and tokens.
#[derive(Debug, Default)]
pub struct PendingActions {
    challenges: Mutex<Expiring<Challenge>>,
    grants: Mutex<Expiring<Grant>>,
}

impl PendingActions {
    /// Keeps a challenge under `id`.
    pub fn add_challenge(&self, id: String, challenge: Challenge, now: DateTime<Utc>) -> Result<(), Full> {
        let owner = challenge.principal_id.clone();
        let expires = challenge.expires;
        lock(&self.challenges).insert(id, owner, expires, challenge, now)
    }

    /// Takes the challenge `id` out if it was issued to `principal_id` and
    /// has not expired. A challenge of another principal stays (so that a
    /// guessed identifier cannot cancel someone else's action).
    pub fn take_challenge(&self, id: &str, principal_id: &str, now: DateTime<Utc>) -> Result<Challenge, Refusal> {
        let mut challenges = lock(&self.challenges);
        match challenges.get(id) {
            None => return Err(Refusal::Unknown),
            Some(challenge) if challenge.principal_id != principal_id => return Err(Refusal::OtherPrincipal),
            Some(_) => {}
        }
        let challenge = challenges.remove(id).ok_or(Refusal::Unknown)?;
        if challenge.expires <= now {
            return Err(Refusal::Expired);
        }
        Ok(challenge)
    }

    /// Keeps a token.
    pub fn add_grant(&self, token: String, grant: Grant, now: DateTime<Utc>) -> Result<(), Full> {
        let owner = grant.principal_id.clone();
        let expires = grant.expires;
        lock(&self.grants).insert(token, owner, expires, grant, now)
    }

    /// Uses a token: it is gone after this call whatever the outcome (single
    /// use), and it authorizes only an unexpired request of its principal
    /// with its method, path and body.
    pub fn use_grant(
        &self,
        token: &str,
        principal_id: &str,
        request: &Binding,
        now: DateTime<Utc>,
    ) -> Result<Grant, Refusal> {
        let grant = lock(&self.grants).remove(token).ok_or(Refusal::Unknown)?;
        if grant.expires <= now {
            return Err(Refusal::Expired);
        }
        if grant.principal_id != principal_id {
            return Err(Refusal::OtherPrincipal);
        }
        if grant.binding.method != request.method {
            return Err(Refusal::OtherMethod(grant.binding.method));
        }
        if grant.binding.path != request.path {
            return Err(Refusal::OtherPath(grant.binding.path));
        }
        if grant.binding.body_sha256 != request.body_sha256 {
            return Err(Refusal::OtherBody);
        }
        Ok(grant)
    }
}

/// Why a challenge or token is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Never issued, already used, or swept after expiry.
    Unknown,
    /// Issued, but its time is up.
    Expired,
    /// Issued to another principal.
    OtherPrincipal,
    /// Issued for another method.
    OtherMethod(String),
    /// Issued for another path.
    OtherPath(String),
    /// Issued for another body.
    OtherBody,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Unknown => write!(f, "is unknown or was already used"),
            Refusal::Expired => write!(f, "has expired (user actions last 5 minutes)"),
            Refusal::OtherPrincipal => write!(f, "was issued to another principal"),
            Refusal::OtherMethod(method) => write!(f, "was signed for method `{method}`"),
            Refusal::OtherPath(path) => {
                write!(f, "was signed for path `{}`", path.chars().take(64).collect::<String>())
            }
            Refusal::OtherBody => write!(f, "was signed for another body"),
        }
    }
}

/// Entries by key, with their expiry order and a count per owner.
#[derive(Debug)]
struct Expiring<T> {
    entries: HashMap<String, (String, DateTime<Utc>, T)>,
    /// Keys in the order they were added, with their expiry: the TTL is the
    /// same for all, so the front expires first. A used key stays here until
    /// swept; the queue is compacted when it outgrows the map.
    order: VecDeque<(String, DateTime<Utc>)>,
    per_owner: HashMap<String, usize>,
}

impl<T> Default for Expiring<T> {
    fn default() -> Self {
        Expiring { entries: HashMap::new(), order: VecDeque::new(), per_owner: HashMap::new() }
    }
}

impl<T> Expiring<T> {
    fn insert(
        &mut self,
        key: String,
        owner: String,
        expires: DateTime<Utc>,
        value: T,
        now: DateTime<Utc>,
    ) -> Result<(), Full> {
        self.sweep(now);
        let held = self.per_owner.get(&owner).copied().unwrap_or(0);
        if held >= PER_PRINCIPAL || self.entries.len() >= TOTAL {
            return Err(Full);
        }
        *self.per_owner.entry(owner.clone()).or_default() += 1;
        self.order.push_back((key.clone(), expires));
        self.entries.insert(key, (owner, expires, value));
        Ok(())
    }

    fn get(&self, key: &str) -> Option<&T> {
        self.entries.get(key).map(|(_, _, value)| value)
    }

    fn remove(&mut self, key: &str) -> Option<T> {
        let (owner, _, value) = self.entries.remove(key)?;
        if let Some(count) = self.per_owner.get_mut(&owner) {
            *count -= 1;
            if *count == 0 {
                self.per_owner.remove(&owner);
            }
        }
        Some(value)
    }

    fn sweep(&mut self, now: DateTime<Utc>) {
        while let Some((key, expires)) = self.order.front() {
            if *expires > now {
                break;
            }
            // The key may have been used and even reissued; only an entry
            // with this very expiry is the one queued here.
            let key = key.clone();
            let expires = *expires;
            self.order.pop_front();
            if self.entries.get(&key).is_some_and(|(_, e, _)| *e == expires) {
                self.remove(&key);
            }
        }
        if self.order.len() > 2 * TOTAL {
            let entries = &self.entries;
            self.order.retain(|(key, expires)| entries.get(key).is_some_and(|(_, e, _)| e == expires));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps stay consistent across a panic in another holder: every
    // change is a single insert or remove.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(principal: &str, at: DateTime<Utc>) -> Grant {
        Grant {
            principal_id: principal.into(),
            binding: binding("POST", "/v2/policies", b"{}"),
            assertion: SignedAction {
                principal_id: principal.into(),
                credential_id: "cr".into(),
                client_data: String::new(),
                signature: String::new(),
                method: "POST".into(),
                path: "/v2/policies".into(),
                body: String::new(),
            },
            expires: at + TTL,
        }
    }

    fn binding(method: &str, path: &str, body: &[u8]) -> Binding {
        Binding {
            method: method.into(),
            path: path.into(),
            body_sha256: crate::model::signed_action::body_sha256(body),
        }
    }

    #[test]
    fn a_token_is_single_use_and_bound() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let actions = PendingActions::default();
        let request = binding("POST", "/v2/policies", b"{}");
        actions.add_grant("t".into(), grant("us-a", now), now).unwrap();
        assert!(actions.use_grant("t", "us-a", &request, now).is_ok());
        assert_eq!(actions.use_grant("t", "us-a", &request, now).unwrap_err(), Refusal::Unknown);

        for (principal, other, refusal) in [
            ("us-b", request.clone(), Refusal::OtherPrincipal),
            ("us-a", binding("PUT", "/v2/policies", b"{}"), Refusal::OtherMethod("POST".into())),
            ("us-a", binding("POST", "/v2/policies/x", b"{}"), Refusal::OtherPath("/v2/policies".into())),
            ("us-a", binding("POST", "/v2/policies", b"{ }"), Refusal::OtherBody),
        ] {
            actions.add_grant("t".into(), grant("us-a", now), now).unwrap();
            assert_eq!(actions.use_grant("t", principal, &other, now).unwrap_err(), refusal);
            assert_eq!(actions.use_grant("t", "us-a", &request, now).unwrap_err(), Refusal::Unknown, "burnt");
        }
        actions.add_grant("t".into(), grant("us-a", now), now).unwrap();
        assert_eq!(actions.use_grant("t", "us-a", &request, now + TTL).unwrap_err(), Refusal::Expired);
    }

    #[test]
    fn entries_are_bounded_per_principal_and_swept_when_expired() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let actions = PendingActions::default();
        for i in 0..PER_PRINCIPAL {
            actions.add_grant(format!("t{i}"), grant("us-a", now), now).unwrap();
        }
        assert_eq!(actions.add_grant("x".into(), grant("us-a", now), now), Err(Full));
        // Another principal is not starved by the first.
        actions.add_grant("y".into(), grant("us-b", now), now).unwrap();
        // Using one frees a place.
        actions.use_grant("t0", "us-a", &binding("POST", "/v2/policies", b"{}"), now).unwrap();
        actions.add_grant("x".into(), grant("us-a", now), now).unwrap();
        // After the TTL, every old entry is swept when a new one comes.
        let later = now + TTL;
        actions.add_grant("z".into(), grant("us-a", later), later).unwrap();
        assert_eq!(lock(&actions.grants).entries.len(), 1);
    }

    #[test]
    fn churn_keeps_the_expiry_queue_bounded() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let actions = PendingActions::default();
        let request = binding("POST", "/v2/policies", b"{}");
        for i in 0..(3 * TOTAL) {
            actions.add_grant(format!("t{i}"), grant("us-a", now), now).unwrap();
            actions.use_grant(&format!("t{i}"), "us-a", &request, now).unwrap();
        }
        assert!(lock(&actions.grants).order.len() <= 2 * TOTAL + 1);
    }
}
