//! The journal layer: the facts Warden journals and their record format, the
//! group-committing writer, and replay (reading facts back in order).
//!
//! Below it are only the pure layers (model, policy, workflow); the state
//! layer folds what this one reads.

pub(crate) mod facts;
pub(crate) mod replay;
pub(crate) mod writer;

pub(crate) use writer::JournalWriter;
