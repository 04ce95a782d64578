//! A real panic in any handler of a window or approval actor (injected with
//! the test-only `warden::faults` hook, at the start of the real handler)
//! restarts the actor with its state read back from the journal: the caller
//! in flight gets an error or fails closed, and the next call is answered
//! correctly.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;
use warden::*;
use warden_journal::faulty::Gate;
use warden_journal::{Record, Seq};

fn velocity_policy(limit: &str) -> PolicySpec {
    spec(json!({"name": "v", "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionAmountVelocity", "configuration": {"limit": limit, "currency": "USD", "timeWindow": 3600}},
        "action": {"kind": "Block"}}))
}

async fn window_with_700() -> (Harness, Policy, String) {
    let h = harness(|b| b).await;
    let policy = h.add_policy(velocity_policy("1000")).await;
    assert_eq!(h.submit(transfer_with("700", json!({}))).await.status, ActivityStatus::Allowed);
    let key = format!("{}/wa-1", policy.id);
    (h, policy, key)
}

#[actix_rt::test]
async fn a_panic_in_reserve_fails_closed_then_the_window_answers_from_the_journal() {
    let (h, policy, key) = window_with_700().await;
    faults::inject("window.reserve", &key);

    let crashed = h.submit(transfer_with("100", json!({}))).await;
    assert_eq!(crashed.status, ActivityStatus::Blocked, "the check in flight fails closed");
    assert!(crashed.policy_evaluations[0].reason.contains("fails closed"), "{:?}", crashed.policy_evaluations);
    eventually("the window restarted", || h.engine.actor_restarts().0 == 1).await;

    assert_eq!(h.engine.window_total(&policy.id, "wa-1").await.as_deref(), Some("700"));
    assert_eq!(h.submit(transfer_with("400", json!({}))).await.status, ActivityStatus::Blocked);
    assert_eq!(h.submit(transfer_with("300", json!({}))).await.status, ActivityStatus::Allowed);
}

#[actix_rt::test]
async fn a_panic_in_commit_loses_no_count() {
    let (h, policy, key) = window_with_700().await;
    // A count is applied at the window's next use: the 700's, here.
    assert_eq!(h.engine.window_total(&policy.id, "wa-1").await.as_deref(), Some("700"));
    faults::inject("window.commit", &key);

    // Allowed and journaled; its count waits for the window's next use
    // (here the read of its total), which crashes taking it in memory: that
    // call is answered unavailable, the next one from the journal.
    assert_eq!(h.submit(transfer_with("200", json!({}))).await.status, ActivityStatus::Allowed);
    let in_flight = h.engine.window_total(&policy.id, "wa-1").await.unwrap();
    assert!(in_flight.starts_with("unavailable"), "{in_flight}");
    assert_eq!(h.engine.window_total(&policy.id, "wa-1").await.as_deref(), Some("900"), "read back from the journal");
    assert_eq!(h.engine.actor_restarts().0, 1);
    assert_eq!(h.submit(transfer_with("200", json!({}))).await.status, ActivityStatus::Blocked);
    assert_eq!(h.submit(transfer_with("100", json!({}))).await.status, ActivityStatus::Allowed);
}

#[actix_rt::test]
async fn a_panic_in_release_leaves_no_reservation_behind() {
    let (h, policy, key) = window_with_700().await;
    faults::inject("window.release", &key);

    assert_eq!(h.submit(transfer_with("400", json!({}))).await.status, ActivityStatus::Blocked);
    assert_eq!(h.engine.window_total(&policy.id, "wa-1").await.as_deref(), Some("700"));
    assert_eq!(h.engine.actor_restarts().0, 1);
    assert_eq!(h.submit(transfer_with("300", json!({}))).await.status, ActivityStatus::Allowed);
}

#[actix_rt::test]
async fn a_panic_in_total_answers_unavailable_once() {
    let (h, policy, key) = window_with_700().await;
    faults::inject("window.total", &key);

    let crashed = h.engine.window_total(&policy.id, "wa-1").await.unwrap();
    assert!(crashed.starts_with("unavailable"), "{crashed}");
    eventually("the window restarted", || h.engine.actor_restarts().0 == 1).await;
    assert_eq!(h.engine.window_total(&policy.id, "wa-1").await.as_deref(), Some("700"));
}

#[actix_rt::test]
async fn a_panic_while_merging_a_rebuilt_ledger_rebuilds_again() {
    let (h, policy, key) = window_with_700().await;
    faults::inject("window.merge", &key);

    // A wider window: its windows are read again from the journal and merged.
    let mut wider = velocity_policy("1000");
    wider.rule.configuration.time_window = Some(7200);
    h.engine.update_policy(&admin(), &policy.id, wider).await.unwrap();
    eventually("the merge crashed and the window restarted", || h.engine.actor_restarts().0 == 1).await;

    assert_eq!(h.engine.window_total(&policy.id, "wa-1").await.as_deref(), Some("700"));
    assert_eq!(h.submit(transfer_with("400", json!({}))).await.status, ActivityStatus::Blocked);
}

#[actix_rt::test]
async fn a_panic_in_prune_restarts_the_idle_window_with_its_counts() {
    let clock = ManualClock::new(t0());
    let engine = Engine::builder().clock(clock.clone()).window_idle(Duration::from_millis(400)).build().await.unwrap();
    let policy = match engine.create_policy(&admin(), velocity_policy("1000")).await.unwrap() {
        PolicyChange::Applied(p) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(engine.evaluate(transfer_with("700", json!({}))).await.unwrap().status, ActivityStatus::Allowed);
    faults::inject("window.prune", &format!("{}/wa-1", policy.id));

    clock.advance(chrono::Duration::seconds(60));
    eventually("the idle sweep pruned, crashed and restarted", || engine.actor_restarts().0 == 1).await;
    assert_eq!(engine.window_total(&policy.id, "wa-1").await.as_deref(), Some("700"), "inside the hour");
}

#[actix_rt::test]
async fn a_panic_in_decide_answers_an_error_and_the_approval_goes_on() {
    let h = harness(|b| b).await;
    h.add_policy(large_transaction_policy()).await;
    let id = h.submit(transfer_with("150000", json!({}))).await.approval_id.unwrap();
    h.approve(&user("us-1"), &id).await.unwrap();
    faults::inject("approval.decide", &id);

    let crashed = h.approve(&user("us-2"), &id).await;
    assert!(matches!(&crashed, Err(Error::Unavailable(u)) if u.is_retryable()), "{crashed:?}");
    eventually("the approval actor restarted", || h.engine.actor_restarts().1 == 1).await;

    // The decision before the crash survived it; the retried one completes the quorum.
    assert!(matches!(h.approve(&user("us-1"), &id).await, Err(Error::Conflict(Conflict::AlreadyDecided { .. }))));
    let approval = h.approve(&user("us-2"), &id).await.unwrap();
    assert_eq!(approval.status, ApprovalStatus::Approved);
    assert_eq!(approval.approval_groups[0].approved_by, ["us-1", "us-2"]);
}

#[actix_rt::test]
async fn a_panic_while_settling_a_decision_leaves_the_approval_as_journaled() {
    let h = harness(|b| b).await;
    h.add_policy(large_transaction_policy()).await;
    let id = h.submit(transfer_with("150000", json!({}))).await.approval_id.unwrap();
    faults::inject("approval.settle", &id);

    assert!(matches!(h.approve(&user("us-1"), &id).await, Err(Error::Unavailable(_))));
    eventually("the approval actor restarted", || h.engine.actor_restarts().1 == 1).await;
    assert!(h.engine.approval(&id).unwrap().decisions.is_empty(), "nothing was journaled");
    h.approve(&user("us-1"), &id).await.unwrap();
    assert_eq!(h.approve(&user("us-2"), &id).await.unwrap().status, ApprovalStatus::Approved);
}

#[actix_rt::test]
async fn a_panic_in_expire_is_retried_and_the_approval_expires() {
    let h = harness(|b| b).await;
    let mut policy = large_transaction_policy();
    policy.action.auto_reject_timeout = Some(60);
    h.add_policy(policy).await;
    let activity = h.submit(transfer_with("150000", json!({}))).await;
    let id = activity.approval_id.unwrap();
    faults::inject("approval.expire", &id);

    h.clock.advance(chrono::Duration::seconds(61));
    eventually("the expiry crashed, restarted and was retried", || {
        h.engine.approval(&id).map(|a| a.status == ApprovalStatus::Expired).unwrap_or(false)
    })
    .await;
    assert_eq!(h.engine.actor_restarts().1, 1);
    assert_eq!(h.engine.activity(&activity.id).unwrap().status, ActivityStatus::Expired);
}

#[actix_rt::test]
async fn resolved_approvals_are_not_restarted() {
    let h = harness(|b| b).await;
    h.add_policy(large_transaction_policy()).await;
    for _ in 0..20 {
        let id = h.submit(transfer_with("150000", json!({}))).await.approval_id.unwrap();
        h.approve(&user("us-1"), &id).await.unwrap();
        assert_eq!(h.approve(&user("us-2"), &id).await.unwrap().status, ApprovalStatus::Approved);
        assert!(matches!(h.approve(&user("us-3"), &id).await, Err(Error::Conflict(_))));
    }
    assert_eq!(h.engine.actor_restarts(), (0, 0), "only a crash restarts an actor");
    assert_eq!(h.engine.live_actors().1, 0, "resolved approvals keep no actor");
}

/// A journal whose scans and reads fail while `unreadable` is set.
struct Unreadable {
    inner: MemoryJournal,
    unreadable: AtomicBool,
}

impl Journal for Unreadable {
    fn append(&self, payloads: &[Vec<u8>]) -> Result<Seq, JournalError> {
        self.inner.append(payloads)
    }
    fn scan(&self, from: Seq, visit: &mut dyn FnMut(Record) -> Result<(), JournalError>) -> Result<(), JournalError> {
        if self.unreadable.load(Ordering::SeqCst) {
            return Err(JournalError::Storage("disk unreadable (test)".into()));
        }
        self.inner.scan(from, visit)
    }
    fn read(&self, seq: Seq) -> Result<Option<Record>, JournalError> {
        if self.unreadable.load(Ordering::SeqCst) {
            return Err(JournalError::Storage("disk unreadable (test)".into()));
        }
        self.inner.read(seq)
    }
    fn last_seq(&self) -> Result<Option<Seq>, JournalError> {
        self.inner.last_seq()
    }
}

#[actix_rt::test]
async fn a_window_that_cannot_read_its_journal_fails_closed_until_it_can() {
    let journal = Arc::new(Unreadable { inner: MemoryJournal::new(), unreadable: AtomicBool::new(false) });
    let engine = Engine::builder().shared_journal(journal.clone()).build().await.unwrap();
    let policy = match engine.create_policy(&admin(), velocity_policy("1000")).await.unwrap() {
        PolicyChange::Applied(p) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(engine.evaluate(transfer_with("100", json!({}))).await.unwrap().status, ActivityStatus::Allowed);

    journal.unreadable.store(true, Ordering::SeqCst);
    faults::inject("window.release", &format!("{}/wa-1", policy.id));
    assert_eq!(engine.evaluate(transfer_with("5000", json!({}))).await.unwrap().status, ActivityStatus::Blocked);
    eventually("the window restarted", || engine.actor_restarts().0 == 1).await;

    // Its rebuild fails: a small transfer that fits is refused, never judged on a partial ledger.
    let refused = engine.evaluate(transfer_with("10", json!({}))).await.unwrap();
    assert_eq!(refused.status, ActivityStatus::Blocked);
    assert!(refused.policy_evaluations[0].reason.contains("could not be read"), "{:?}", refused.policy_evaluations);

    journal.unreadable.store(false, Ordering::SeqCst);
    let mut answer = ActivityStatus::Blocked;
    for _ in 0..100 {
        answer = engine.evaluate(transfer_with("10", json!({}))).await.unwrap().status;
        if answer == ActivityStatus::Allowed {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer, ActivityStatus::Allowed, "the retried rebuild read the journal");
    assert_eq!(engine.window_total(&policy.id, "wa-1").await.as_deref(), Some("110"));
}

/// The scene of the two tests below: 100 counted under a limit of 1000; a
/// transfer of 700 gets its reservation and waits on a closed journal gate; the
/// window restarts (a real panic); a second transfer of 700 is checked; the
/// journal lets go. Answers the engine, its clock, the policy, both answers,
/// and how many checks had gone to the window's actor before the restart.
async fn restart_while_a_reservation_is_held() -> (Engine, ManualClock, Policy, Activity, Activity, u64) {
    let (journal, clock) = (Arc::new(Gate::new(MemoryJournal::new())), ManualClock::new(t0()));
    let builder = Engine::builder().shared_journal(journal.clone()).clock(clock.clone());
    let engine = builder.window_idle(Duration::from_millis(300)).build().await.unwrap();
    let policy = match engine.create_policy(&admin(), velocity_policy("1000")).await.unwrap() {
        PolicyChange::Applied(policy) => policy,
        other => panic!("not applied: {other:?}"),
    };
    assert_eq!(engine.evaluate(transfer_with("100", json!({}))).await.unwrap().status, ActivityStatus::Allowed);
    // The first check of the new window may have gone to its actor, if the
    // actor was starting on its arbiter at that moment (it holds the lock);
    // a read through the actor waits until it is up.
    assert_eq!(engine.window_total(&policy.id, "wa-1").await.as_deref(), Some("100"));
    let sent_before = engine.window_checks_sent_to_actors();

    journal.close();
    let first = actix_rt::spawn({
        let engine = engine.clone();
        async move { engine.evaluate(transfer_with("700", json!({}))).await.unwrap() }
    });
    // The first activity has its reservation and waits on the journal; the
    // window's next use panics and the window restarts.
    eventually("the first activity waits on the journal", || journal.waiting() == 1).await;
    faults::inject("window.total", &format!("{}/wa-1", policy.id));
    let _ = engine.window_total(&policy.id, "wa-1").await;
    eventually("the window restarted", || engine.actor_restarts().0 == 1).await;
    let second = actix_rt::spawn({
        let engine = engine.clone();
        async move { engine.evaluate(transfer_with("700", json!({}))).await.unwrap() }
    });
    // Time for the second activity's check to reach the window (it fails
    // closed at once, then waits on the journal behind the first).
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    journal.open();
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    (engine, clock, policy, first, second, sent_before)
}

/// A window that restarts (a real panic) while an activity it granted a
/// reservation to is still on its way to the journal: the restarted window
/// reads back only journaled counts, so it fails closed until that activity
/// is settled, and never admits past the limit.
#[actix_rt::test]
async fn a_reservation_granted_before_a_restart_still_holds_its_amount() {
    let (engine, _clock, policy, first, second, sent_before) = restart_while_a_reservation_is_held().await;
    assert_eq!(first.status, ActivityStatus::Allowed);
    assert_eq!(second.status, ActivityStatus::Blocked, "100 + 700 + 700 is over 1000: {:?}", second.policy_evaluations);
    let reason = &second.policy_evaluations[0].reason;
    assert!(reason.contains("restarted while activities it had reserved for"), "{reason}");
    assert_eq!(
        engine.window_checks_sent_to_actors() - sent_before,
        1,
        "the unsettled window answered through its actor"
    );
    assert_eq!(engine.window_total(&policy.id, "wa-1").await.as_deref(), Some("800"));
    let third = engine.evaluate(transfer_with("200", json!({}))).await.unwrap();
    assert_eq!(third.status, ActivityStatus::Allowed, "settled: the window answers again");
}

/// Once the holds of its earlier generation are settled, a restarted window
/// that holds nothing any more retires like any other.
#[actix_rt::test]
async fn a_restarted_window_retires_once_its_earlier_holds_are_settled() {
    let (engine, clock, _policy, first, _second, _) = restart_while_a_reservation_is_held().await;
    assert_eq!(first.status, ActivityStatus::Allowed);
    assert_eq!(engine.live_actors().0, 1);
    clock.advance(chrono::Duration::hours(2));
    eventually("the window, empty and settled, retires", || engine.live_actors().0 == 0).await;
}
