//! Connections: the settings every session of this crate runs with, and how
//! PostgreSQL's errors are reported.
//!
//! The client is the synchronous `postgres` crate, which drives its own
//! single-threaded tokio runtime inside each call: a call made from inside an
//! async task would start a runtime within a runtime and panic. Every method
//! of this crate blocks, and must be called from a plain thread or tokio's
//! blocking pool (`spawn_blocking`), never from an async task.

use std::error::Error as _;
use std::time::Duration;

use postgres::{Client, Config, NoTls};
use warden_journal::JournalError;

/// How long opening a connection may take before the call fails, so a node
/// whose database is unreachable reports it instead of hanging.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long sent data may stay unacknowledged by the server's host before
/// the connection is dropped: a partitioned database fails calls within this
/// time instead of the operating system's default of many minutes.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of every session, sent once at connect.
///
/// - `synchronous_commit = on`: a commit returns only once its WAL is flushed
///   to disk (and to synchronous standbys, if the operator set any); a server
///   or role default of `off` or `local` would weaken `append`'s contract.
/// - `statement_timeout`: no call waits forever on a stuck server or lock.
/// - `lock_timeout`: a lease update waits this long at most for the lease
///   row, which appends lock for the few milliseconds of their commit.
/// - `idle_in_transaction_session_timeout`: this crate keeps no transaction
///   open across round trips; should one ever be, a paused client cannot hold
///   its locks longer than this.
const SESSION_SETTINGS: &str = "SET synchronous_commit = on; \
     SET statement_timeout = '30s'; \
     SET lock_timeout = '5s'; \
     SET idle_in_transaction_session_timeout = '10s'";

/// Parses a connection URL or key-value string, with this crate's timeouts.
pub(crate) fn config(url: &str) -> Result<Config, JournalError> {
    let mut config: Config = url.parse().map_err(|e: postgres::Error| {
        // The URL may hold a password: name the problem, not the input.
        JournalError::Storage(format!("the postgres connection string is invalid: {}", describe(&e)))
    })?;
    config.connect_timeout(CONNECT_TIMEOUT);
    config.tcp_user_timeout(TCP_USER_TIMEOUT);
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(10));
    if config.get_application_name().is_none() {
        config.application_name("warden");
    }
    Ok(config)
}

/// A new session with [`SESSION_SETTINGS`] applied.
pub(crate) fn connect(config: &Config) -> Result<Session, JournalError> {
    let mut client = off_runtime(|| config.connect(NoTls)).map_err(storage("connect"))?;
    client.batch_execute(SESSION_SETTINGS).map_err(storage("apply the session settings"))?;
    Ok(Session(Some(client)))
}

/// A connection that may be dropped anywhere.
///
/// Dropping the client closes the connection by blocking on the client's
/// own runtime, which panics inside an async task; and a journal is dropped
/// wherever its last owner is, an engine shutting down inside its runtime
/// included. So a session dropped inside a tokio runtime is closed on a
/// thread of its own.
pub(crate) struct Session(Option<Client>);

impl std::ops::Deref for Session {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.0.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for Session {
    fn deref_mut(&mut self) -> &mut Client {
        self.0.as_mut().expect("present until dropped")
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(client) = self.0.take() else { return };
        if tokio::runtime::Handle::try_current().is_ok() {
            // If no thread can be started, leaking the connection is better
            // than a panic: the server ends it when this process exits.
            let _ = std::thread::Builder::new().name("warden-postgres-close".into()).spawn(move || drop(client));
        } else {
            drop(client);
        }
    }
}

/// Runs `call` (a blocking call of the client) where it can block: here,
/// or, on a thread that drives a tokio runtime (an HTTP handler, an actor),
/// on a thread of its own. The client blocks on a runtime of its own for
/// every call, which panics inside another; the engine reads the journal
/// from such threads (an activity's trail entry, a resolved approval).
/// Outside a runtime this costs nothing; inside, a thread start (tens of
/// microseconds, beside a round trip to the database).
pub(crate) fn off_runtime<T: Send>(call: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return call();
    }
    std::thread::scope(|scope| {
        match std::thread::Builder::new().name("warden-postgres-call".into()).spawn_scoped(scope, call) {
            Ok(thread) => thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            // No thread to be had: blocking here is the only way left.
            Err(_) => panic!("warden-postgres: no thread could be started for a blocking call inside a runtime"),
        }
    })
}

/// Fails unless the server makes commits durable: with `fsync` or
/// `full_page_writes` off, a crash of the database host can lose or tear
/// committed records, whatever this crate does.
pub(crate) fn require_durable_server(client: &mut Client) -> Result<(), JournalError> {
    let row = client
        .query_one("SELECT current_setting('fsync'), current_setting('full_page_writes')", &[])
        .map_err(storage("read the server's durability settings"))?;
    for (name, value) in [("fsync", row.get::<_, String>(0)), ("full_page_writes", row.get::<_, String>(1))] {
        if value != "on" {
            return Err(JournalError::Storage(format!(
                "the postgres server runs with `{name} = {value}`: committed records would not survive a crash \
                 of the database host; set `{name} = on`"
            )));
        }
    }
    Ok(())
}

/// Maps a client error to [`JournalError::Storage`], saying what was being
/// done and what the server said.
pub(crate) fn storage(what: &str) -> impl Fn(postgres::Error) -> JournalError + '_ {
    move |e| JournalError::Storage(format!("postgres could not {what}: {}", describe(&e)))
}

/// The error with its causes: the client's own `Display` says only "db error"
/// and keeps the server's message in its source.
pub(crate) fn describe(error: &postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
