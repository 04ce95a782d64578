//! The errors of the embedded API, by family: an embedder matches on the
//! variant and on its kind, never on message text. The HTTP adapter maps each
//! variant to one status code, in one place (`http::problem`).

use warden_journal::JournalError;

use crate::model::approval::ApprovalStatus;

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

/// Why a caller may not do what it asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Forbidden {
    /// The caller is in none of the approval's groups (or is the initiator,
    /// or a service account, where the groups do not admit them).
    #[error("`{who}` is not an eligible approver of approval `{approval_id}`")]
    NotEligible {
        /// The approval.
        approval_id: String,
        /// The caller.
        who: String,
    },
}

/// Why the entity's state refuses the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Conflict {
    /// The caller already decided on this approval.
    #[error("`{who}` has already decided on approval `{approval_id}`")]
    AlreadyDecided {
        /// The approval.
        approval_id: String,
        /// The caller.
        who: String,
    },
    /// The approval is resolved.
    #[error("approval `{approval_id}` is no longer pending (it is {})", status.as_str())]
    NotPending {
        /// The approval.
        approval_id: String,
        /// What it resolved to.
        status: ApprovalStatus,
    },
    /// The deadline passed before the decision arrived: the approval expired.
    #[error("approval `{approval_id}` expired before the decision")]
    Expired {
        /// The approval.
        approval_id: String,
    },
    /// The policy already has a change waiting for approval.
    #[error("policy `{policy_id}` already has a pending change request `{change_request_id}`")]
    ChangePending {
        /// The policy.
        policy_id: String,
        /// The change request waiting.
        change_request_id: String,
    },
}

/// Why the engine cannot answer now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unavailable {
    /// The engine is shutting down (or was dropped); retrying here is useless,
    /// retrying after a restart (or on another node) is not.
    #[error("engine is shutting down")]
    ShuttingDown,
    /// An actor that had to answer stopped (a crash being recovered from);
    /// a retry reaches its restarted successor.
    #[error("{what} is restarting")]
    Restarting {
        /// What restarted (`approval `ap-...``, `policy registry`).
        what: String,
    },
    /// An internal task ended without answering.
    #[error("engine task failed: {reason}")]
    TaskFailed {
        /// What happened.
        reason: String,
    },
    /// This node is a standby (or lost its lease): only the leader writes.
    /// Retrying reaches the leader once one leads (the HTTP layer forwards
    /// changes there itself).
    #[error("this node is not the leader{}", leader.as_deref().map(|url| format!(" (the leader is at {url})")).unwrap_or_default())]
    NotLeader {
        /// Where the leader is, if one leads now.
        leader: Option<String>,
    },
}

impl Unavailable {
    /// Whether retrying the same call on this engine may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Unavailable::ShuttingDown => false,
            Unavailable::Restarting { .. } | Unavailable::TaskFailed { .. } | Unavailable::NotLeader { .. } => true,
        }
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
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The entity's state does not allow it.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The journal failed (as the journal reported it); nothing was answered as done.
    #[error("journal failure: {0}")]
    Journal(#[from] JournalError),
    /// The engine cannot answer now.
    #[error("engine unavailable: {0}")]
    Unavailable(#[from] Unavailable),
}

impl Error {
    pub(crate) fn not_found(kind: &'static str, id: &str) -> Self {
        Error::NotFound { kind, id: id.to_owned() }
    }

    /// Whether retrying the same call may succeed (a journal failure or an
    /// actor restarting); invalid, forbidden and conflicting calls never will.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Journal(JournalError::Corrupt { .. }) => false,
            Error::Journal(_) => true,
            Error::Unavailable(u) => u.is_retryable(),
            Error::Invalid(_) | Error::NotFound { .. } | Error::Forbidden(_) | Error::Conflict(_) => false,
        }
    }
}
