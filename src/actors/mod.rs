//! The actors: the policy registry (supervisor), one per velocity window, one
//! per pending approval, the journal writer and the webhook dispatcher.

pub mod approval;
pub mod journal_writer;
pub mod registry;
pub mod webhook_dispatcher;
pub mod window;

/// Whether the actor system is being torn down around an actor that is only
/// now starting (an embedder dropped the system right after building the
/// engine). Such an actor has no runtime to set timers on and should do
/// nothing: actix would panic scheduling them.
pub(crate) fn system_is_gone() -> bool {
    tokio::runtime::Handle::try_current().is_err()
}
