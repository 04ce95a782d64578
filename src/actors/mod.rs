//! The actors: the policy registry (supervisor), one per velocity window, one
//! per pending approval, the journal writer and the webhook dispatcher.

pub mod approval;
pub mod journal_writer;
pub mod registry;
pub mod webhook_dispatcher;
pub mod window;
