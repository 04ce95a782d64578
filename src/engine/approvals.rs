//! Deciding on an approval: found, checked and recorded by its actor, whose
//! mailbox orders the decisions.

use crate::actors::approval::Decide;
use crate::actors::hub::Hub;
use crate::error::{Conflict, Error, Unavailable, ValidationError};
use crate::model::approval::{Approval, DecisionValue};
use crate::model::principal::Principal;
use crate::model::signed_action::SignedAction;
use crate::workflow;

/// Longest accepted decision reason, in characters.
pub const MAX_REASON_CHARS: usize = 4096;

/// `caller` approves or denies: 404 unknown, 403 not eligible, 409 already
/// decided or no longer pending.
pub(super) async fn decide(
    hub: &Hub,
    caller: &Principal,
    approval_id: &str,
    value: DecisionValue,
    reason: String,
    user_action: Option<SignedAction>,
) -> Result<Approval, Error> {
    if !hub.state().has_approval(approval_id) {
        return Err(Error::not_found("approval", approval_id));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ValidationError::new("reason", format!("must be at most {MAX_REASON_CHARS} characters")).into());
    }
    if hub.state().is_pending_approval(approval_id) {
        let actor = hub.book().approval(approval_id, hub.now(), &hub.approval_port());
        let decide = Decide { who: caller.id.clone(), kind: caller.kind, value, reason, user_action };
        let decided = actor.addr.send(decide).await;
        drop(actor);
        match decided {
            // Resolved between the lookup and the decision: checked below.
            Ok(Err(Error::Conflict(Conflict::NotPending { .. }))) | Err(actix::MailboxError::Closed) => {}
            Ok(answer) => return answer,
            Err(actix::MailboxError::Timeout) => {
                return Err(Unavailable::Restarting { what: format!("approval `{approval_id}`") }.into())
            }
        }
        if hub.state().is_pending_approval(approval_id) {
            // Still pending, yet its actor did not answer: it crashed on this
            // decision and restarts. Nothing was journaled; the caller may retry.
            return Err(Unavailable::Restarting { what: format!("approval `{approval_id}`") }.into());
        }
    }
    // Resolved: the same checks, in the contract's order (403, then 409).
    // A resolved approval is read from the journal, on the blocking pool.
    let (state, id) = (hub.state().clone(), approval_id.to_owned());
    let approval = tokio::task::spawn_blocking(move || state.approval(&id))
        .await
        .map_err(|e| Unavailable::TaskFailed { reason: e.to_string() })??
        .ok_or_else(|| Error::not_found("approval", approval_id))?;
    workflow::check_decision(&approval, &caller.id, caller.kind, value)?;
    Err(Conflict::NotPending { approval_id: approval_id.to_owned(), status: approval.status }.into())
}
