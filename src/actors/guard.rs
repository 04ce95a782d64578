//! What happens when a handler panics: the panic is caught where the handler
//! runs, logged, and the actor is stopped so that its actix `Supervisor`
//! restarts it; `Supervised::restarting` then rebuilds its state from the
//! journal. Without this, a panic unwinds through the arbiter, which drops the
//! actor's task for good: its address stays in the address book and every
//! later message fails.
//!
//! Faults are injected by tests through [`crate::faults`] (feature
//! `fault-injection`, off in every build but the tests'): a real panic at the
//! start of the named handler, on the real path.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use actix::prelude::*;

/// A handler panicked; the actor is restarting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Crashed;

/// Runs `body` as the handler of `site` (`"window.reserve"`) for the actor
/// keyed `key`; on a panic, stops the actor (its supervisor restarts it).
pub(crate) fn guarded<A, R>(
    ctx: &mut Context<A>,
    site: &'static str,
    key: &str,
    body: impl FnOnce() -> R,
) -> Result<R, Crashed>
where
    A: Actor<Context = Context<A>>,
{
    let caught = caught(site, key, body);
    if caught.is_err() {
        ctx.stop();
    }
    caught
}

/// Runs `body` as the work of `site` for the actor keyed `key`, wherever it
/// runs (a window's check runs on its caller's thread); a panic is caught and
/// logged, and the caller must have the actor restarted.
pub(crate) fn caught<R>(site: &'static str, key: &str, body: impl FnOnce() -> R) -> Result<R, Crashed> {
    catch_unwind(AssertUnwindSafe(|| {
        crate::faults::trip(site, key);
        body()
    }))
    .map_err(|payload| {
        crashed(site, key, payload.as_ref());
        Crashed
    })
}

/// Logs a caught panic.
pub(crate) fn crashed(site: &str, key: &str, payload: &(dyn Any + Send)) {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned());
    tracing::error!(site, key, panic = %message, "actor handler panicked; the actor restarts from the journal");
}
