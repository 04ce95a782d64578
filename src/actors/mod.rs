//! The actors layer: the policy registry (supervisor and single writer of the
//! snapshot), one actor per velocity window, one per pending approval, the
//! webhook dispatcher, and the hub through which every state change is
//! committed and applied. Actors never import the engine: each gets, when it
//! starts, the narrow handle it needs.

pub(crate) mod approval;
pub(crate) mod book;
mod guard;
pub(crate) mod hub;
pub(crate) mod leadership;
pub(crate) mod registry;
pub(crate) mod serial;
pub mod webhook_dispatcher;
pub(crate) mod window;

/// Whether the actor system is being torn down around an actor that is only
/// now starting (an embedder dropped the system right after building the
/// engine). Such an actor has no runtime to set timers on and should do
/// nothing: actix would panic scheduling them.
pub(crate) fn system_is_gone() -> bool {
    tokio::runtime::Handle::try_current().is_err()
}
