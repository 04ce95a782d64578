//! The engine's events as a subscriber hears them (`Engine::subscribe`, the
//! source of `GET /v2/events`): every event of a change announced after the
//! subscription, the policy events as well as the activity's own.

mod common;

use std::sync::Arc;

use common::*;
use serde_json::json;
use tokio::sync::broadcast::error::TryRecvError;
use warden::*;
use warden_journal::faulty::Gate;

fn kinds_heard(events: &mut tokio::sync::broadcast::Receiver<EngineEvent>) -> Vec<String> {
    let mut kinds = Vec::new();
    loop {
        match events.try_recv() {
            Ok(event) => kinds.push(event.kind),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return kinds,
            Err(TryRecvError::Lagged(lost)) => panic!("{lost} events lost"),
        }
    }
}

/// A subscriber who joins while a held activity waits on the journal hears
/// all of its events once it is committed: the triggered policy and the
/// pending approval as well as the activity.
#[actix_rt::test]
async fn a_subscriber_who_joins_during_a_commit_hears_all_of_its_events() {
    let journal = Arc::new(Gate::new(MemoryJournal::new()));
    let engine = Engine::builder().shared_journal(journal.clone()).build().await.unwrap();
    let Ok(PolicyChange::Applied(_)) = engine.create_policy(&admin(), large_transaction_policy()).await else {
        panic!("the policy applies at once");
    };
    journal.close();
    let held = actix_rt::spawn({
        let engine = engine.clone();
        async move { engine.evaluate(transfer_with("150000", json!({}))).await.unwrap() }
    });
    eventually("the activity waits on the journal", || journal.waiting() == 1).await;
    let mut events = engine.subscribe();
    journal.open();
    assert_eq!(held.await.unwrap().status, ActivityStatus::PendingApproval);
    assert_eq!(kinds_heard(&mut events), ["policy.triggered", "policy.approval.pending", "activity.evaluated"]);
}
