//! A caller that stops waiting (a dropped connection, a timeout) does not
//! leave the engine half way: the evaluation runs to its end.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;
use warden::*;
use warden_journal::{JournalError, Record, Seq};

/// A journal whose appends take a while, like a slow disk.
struct SlowJournal(MemoryJournal);

impl Journal for SlowJournal {
    fn append(&self, payloads: &[Vec<u8>]) -> Result<Seq, JournalError> {
        std::thread::sleep(Duration::from_millis(150));
        self.0.append(payloads)
    }
    fn scan(&self, from: Seq, visit: &mut dyn FnMut(Record) -> Result<(), JournalError>) -> Result<(), JournalError> {
        self.0.scan(from, visit)
    }
    fn read(&self, seq: Seq) -> Result<Option<Record>, JournalError> {
        self.0.read(seq)
    }
    fn last_seq(&self) -> Result<Option<Seq>, JournalError> {
        self.0.last_seq()
    }
}

#[actix_rt::test]
async fn an_abandoned_evaluation_still_completes_and_counts_once() {
    let journal = Arc::new(SlowJournal(MemoryJournal::new()));
    let engine = Engine::builder().clock(ManualClock::new(t0())).shared_journal(journal.clone()).build().await.unwrap();
    let window = spec(json!({"name": "v", "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionAmountVelocity", "configuration": {"limit": "1000", "currency": "USD", "timeWindow": 3600}},
        "action": {"kind": "Block"}}));
    let PolicyChange::Applied(policy) = engine.create_policy(&admin(), window).await.unwrap() else { unreachable!() };

    let abandoned = tokio::time::timeout(
        Duration::from_millis(20),
        engine.evaluate(transfer_with("600", json!({"externalId": "x-1"}))),
    )
    .await;
    assert!(abandoned.is_err(), "the caller gave up before the commit");

    // The retry answers the first evaluation: same activity, counted once.
    let retried = engine.evaluate(transfer_with("600", json!({"externalId": "x-1"}))).await.unwrap();
    assert_eq!(retried.status, ActivityStatus::Allowed);
    assert_eq!(engine.window_total(&policy.id, "wa-1").await.as_deref(), Some("600"));
    let signatures = ActivityFilter { wallet_id: Some("wa-1".into()), ..Default::default() };
    assert_eq!(engine.activities(&signatures, &PageRequest::default()).unwrap().items.len(), 1);
    engine.shutdown();

    let restarted = Engine::builder().clock(ManualClock::new(t0())).shared_journal(journal).build().await.unwrap();
    assert_eq!(restarted.activities(&signatures, &PageRequest::default()).unwrap().items.len(), 1);
    assert_eq!(restarted.window_total(&policy.id, "wa-1").await.as_deref(), Some("600"));
}
