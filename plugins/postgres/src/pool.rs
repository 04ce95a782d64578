//! A small pool of read sessions, so reads from many threads run at once
//! without one connection per call.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use postgres::Config;
use warden_journal::JournalError;

use crate::reads::ReadSession;

/// Read sessions open at once, at most: reads beyond this wait for one to
/// come back, so a burst of readers cannot exhaust the server's connections.
const MAX_SESSIONS: usize = 8;

/// The pool: idle sessions, and how many exist in all.
pub(crate) struct Pool {
    config: Config,
    state: Mutex<State>,
    returned: Condvar,
}

struct State {
    idle: Vec<ReadSession>,
    open: usize,
}

impl Pool {
    /// An empty pool connecting with `config` on demand.
    pub(crate) fn new(config: Config) -> Self {
        Self { config, state: Mutex::new(State { idle: Vec::new(), open: 0 }), returned: Condvar::new() }
    }

    /// Runs `f` on a session of the pool. A session whose connection broke is
    /// dropped, not returned; if it broke under `f` (a session left idle
    /// across a restart of the server), `f` runs once more on a new one, so
    /// `f` must be a read that can be repeated.
    /// Runs where it can block (see [`crate::session::off_runtime`]).
    pub(crate) fn with<T: Send>(
        &self,
        f: impl FnMut(&mut ReadSession) -> Result<T, JournalError> + Send,
    ) -> Result<T, JournalError> {
        crate::session::off_runtime(|| self.with_here(f))
    }

    fn with_here<T>(&self, mut f: impl FnMut(&mut ReadSession) -> Result<T, JournalError>) -> Result<T, JournalError> {
        let mut session = self.take()?;
        let mut result = f(&mut session);
        if result.is_err() && !is_alive(&mut session) {
            // Dropped, not given back: a session the server ended (a restart,
            // an administrator) may not know it yet.
            self.discard(session);
            session = self.take()?;
            result = f(&mut session);
        }
        self.give_back(session);
        result
    }

    fn take(&self) -> Result<ReadSession, JournalError> {
        let mut state = self.state();
        loop {
            if let Some(session) = state.idle.pop() {
                return Ok(session);
            }
            if state.open < MAX_SESSIONS {
                state.open += 1;
                drop(state);
                let session = ReadSession::connect(&self.config);
                if session.is_err() {
                    self.state().open -= 1;
                    self.returned.notify_one();
                }
                return session;
            }
            state = self.returned.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn give_back(&self, session: ReadSession) {
        let mut state = self.state();
        if session.client.is_closed() {
            state.open -= 1;
        } else {
            state.idle.push(session);
        }
        drop(state);
        self.returned.notify_one();
    }

    fn discard(&self, session: ReadSession) {
        drop(session);
        self.state().open -= 1;
        self.returned.notify_one();
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update of the state is a single push, pop or count change.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a session that just failed a read can still be used: its
/// connection open and answering.
fn is_alive(session: &mut ReadSession) -> bool {
    !session.client.is_closed() && session.client.is_valid(std::time::Duration::from_secs(2)).is_ok()
}
