//! The errors of the embedded API. The HTTP adapter maps each variant to one
//! status code, in one place (`http::problem`).

use warden_journal::JournalError;

/// Why an input was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct ValidationError {
    /// The offending field, as a JSON path (`rule.configuration.limit`).
    pub field: String,
    /// What is wrong, starting lowercase (`must be a positive decimal`).
    pub message: String,
}

impl ValidationError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError { field: field.into(), message: message.into() }
    }

    /// The same error, with `prefix.` before the field.
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() { prefix.to_owned() } else { format!("{prefix}.{}", self.field) };
        self
    }
}

/// What an engine call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is invalid; nothing changed.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// No such entity.
    #[error("{kind} `{id}` not found")]
    NotFound {
        /// `policy`, `activity`, `approval`, ...
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The entity's state does not allow it (already decided, not pending, a
    /// change already pending, duplicate).
    #[error("{0}")]
    Conflict(String),
    /// The journal could not commit; nothing was answered as done.
    #[error("journal failure: {0}")]
    Journal(#[from] JournalError),
    /// The engine is stopping or an internal actor is gone; retry later.
    #[error("engine unavailable: {0}")]
    Unavailable(String),
}

impl Error {
    pub(crate) fn not_found(kind: &'static str, id: &str) -> Self {
        Error::NotFound { kind, id: id.to_owned() }
    }
}
