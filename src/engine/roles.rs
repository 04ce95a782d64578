//! Leader and standby: the two roles of a node that shares its journal with
//! others (the `cluster` layer decides which, from the lease).
//!
//! A standby folds every record the leader commits with the same
//! [`State::apply`](crate::state::State) as recovery, so its reads are the
//! leader's, a few milliseconds behind, tells its own subscribers the events
//! of those records (`followed_events`), and keeps the window counts of the
//! records it folds. Promoted, it starts its windows from those counts,
//! expires what is due (approval actors start as decisions and deadlines
//! reach them), hands the backlog of
//! webhook events to the dispatcher, and only then answers as leader.
//! Demoted (its lease lost), it stops committing, waits for the commits under
//! way, drops its actors, and goes back to following.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use warden_journal::{Journal, Record, Seq};

use crate::actors::webhook_dispatcher::Wake;
use crate::error::{Error, Unavailable};
use crate::journal::facts::Fact;
use crate::journal::replay::unexpected;
use crate::journal::JournalWriter;
use crate::policy::compile::CompiledRule;

use super::followed_events::Heard;
use super::recovery::{self, LedgersByWindow};
use super::Engine;

/// Folded records between two prunings of a standby's counts.
const PRUNE_EVERY: usize = 4096;

/// What a standby keeps to lead later: the windows' counts.
#[derive(Default)]
pub(super) struct Standby {
    ledgers: LedgersByWindow,
    since_prune: usize,
}

/// The standby's counts, `None` while the node leads.
pub(super) type StandbySlot = Arc<Mutex<Option<Standby>>>;

impl Standby {
    pub(super) fn new(ledgers: LedgersByWindow) -> Self {
        Standby { ledgers, since_prune: 0 }
    }
}

impl Engine {
    /// Folds one record the leader committed (a standby only; records come
    /// in journal order, from [`Engine::journal_seq`] + 1). A record that
    /// does not decode is refused, with its seq.
    pub fn follow(&self, record: Record) -> Result<(), Error> {
        let mut slot = self.standby.lock().unwrap_or_else(|p| p.into_inner());
        let Some(standby) = slot.as_mut() else {
            return Err(Unavailable::TaskFailed { reason: "a leader does not follow the journal".into() }.into());
        };
        let seq = record.seq;
        let mut fact = Fact::decode(&record.payload).map_err(|e| unexpected(seq, e.to_string()))?;
        let index = self.hub.state().count_index();
        recovery::collect_counts(&mut standby.ledgers, index, seq, &mut fact, recovery::horizon(&self.hub));
        let policy_changed = matches!(fact, Fact::PolicyPut(_));
        let heard = if self.hub.is_heard() { Heard::of(&fact) } else { None };
        let mut effects = Vec::new();
        self.hub.state().apply(seq, fact, &mut effects);
        if policy_changed {
            self.hub.state().publish_snapshot();
        }
        if let Some(heard) = heard {
            self.tell_followed(heard);
        }
        standby.since_prune += 1;
        if standby.since_prune >= PRUNE_EVERY {
            standby.since_prune = 0;
            self.prune(&mut standby.ledgers);
        }
        Ok(())
    }

    /// Drops the counts no window of the current policies can see any more.
    fn prune(&self, ledgers: &mut LedgersByWindow) {
        let now = self.hub.now();
        ledgers.retain(|policy_id, by_scope| {
            let Some(policy) = self.hub.state().compiled(policy_id) else { return false };
            let CompiledRule::Velocity(velocity) = &policy.rule else { return false };
            by_scope.retain(|_, ledger| {
                ledger.prune(velocity.span, now);
                !ledger.is_empty()
            });
            !by_scope.is_empty()
        });
    }

    /// Makes this standby the leader, committing through `journal` (opened
    /// under the lease just granted) once every committed record has been
    /// followed: starts the windows and approvals from the state, expires
    /// what is due, wakes the dispatcher, then answers changes.
    pub async fn promote(&self, journal: Arc<dyn Journal>) -> Result<(), Error> {
        let standby = self.standby.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(standby) = standby else { return Ok(()) };
        let hub = &self.hub;
        hub.leadership().install(JournalWriter::start(journal));
        recovery::start_leading(hub, standby.ledgers).await;
        let backlog: Vec<String> = hub.state().pending_events().into_iter().map(|(id, _, _)| id).collect();
        hub.leadership().set_leading(true);
        if let Some(dispatcher) = hub.dispatcher() {
            dispatcher.do_send(Wake { events: backlog });
        }
        tracing::info!(journal_seq = hub.state().applied_seq(), "leading");
        Ok(())
    }

    /// Makes this leader a standby (its lease is lost or ending): no more
    /// commits, the ones under way settled and applied, actors dropped, the
    /// window counts read back from the journal up to what was applied.
    /// Answers the seq to follow from.
    pub async fn demote(&self) -> Result<Seq, Error> {
        let hub = self.hub.clone();
        if let Some(writer) = hub.leadership().uninstall() {
            // Joins the writer thread (or waits for an append in place):
            // every queued batch is committed or fenced.
            let _ = tokio::task::spawn_blocking(move || writer.close()).await;
        }
        hub.leadership().drained().await;
        hub.book().clear();
        let upto = hub.state().applied_seq();
        let oldest = recovery::horizon(&hub);
        let state = hub.state().clone();
        // Read back through the count index: the records holding counts only.
        let ledgers = tokio::task::spawn_blocking(move || {
            let index = state.count_index();
            let mut ledgers = LedgersByWindow::default();
            for policy_id in index.policies() {
                let read = index.read(state.journal().as_ref(), &policy_id, oldest, upto, |_| true)?;
                let by_scope = ledgers.entry(policy_id.into()).or_default();
                for (key, ledger) in read {
                    by_scope.insert(key.scope_key, ledger);
                }
            }
            Ok::<_, Error>(ledgers)
        })
        .await
        .map_err(|e| Unavailable::TaskFailed { reason: e.to_string() })??;
        *self.standby.lock().unwrap_or_else(|p| p.into_inner()) = Some(Standby::new(ledgers));
        tracing::warn!(journal_seq = upto, "no longer leading: following the journal");
        Ok(upto + 1)
    }

    /// The lease this node holds ends at `end` (minus a margin): no commit
    /// starts after it unless renewed. `None`: no lease (a single node).
    pub fn set_lease_end(&self, end: Option<Instant>) {
        self.hub.leadership().set_lease_end(end);
    }

    /// Where the leader is now (`None`: nobody leads), as read from the lease;
    /// a single node names itself.
    pub fn set_leader_url(&self, url: Option<String>) {
        self.hub.leadership().set_leader_url(url);
    }

    /// Where the leader is, as last read from the lease.
    pub fn leader_url(&self) -> Option<String> {
        self.hub.leadership().leader_url()
    }
}
