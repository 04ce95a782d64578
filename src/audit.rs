//! `warden audit verify`: every signed user action in a journal, checked
//! again offline against the keys of the config file, without trusting the
//! server that wrote it. A record holds the assertion and the request it
//! was bound to (see [`SignedAction`]); checking it needs only the public
//! key of its credential.

use warden_journal::{Journal, JournalError, Seq};

use crate::config::PrincipalConfig;
use crate::journal::facts::{Fact, Json};
use crate::model::approval::{Decision, DecisionValue};
use crate::model::signed_action::SignedAction;

/// What a verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// Records read.
    pub records: u64,
    /// Signed actions checked.
    pub checked: u64,
    /// Every one that failed, in journal order.
    pub failures: Vec<AuditFailure>,
}

/// One signed action that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFailure {
    /// Its record.
    pub seq: Seq,
    /// Who it claims signed.
    pub principal_id: String,
    /// With which credential.
    pub credential_id: String,
    /// The request it was bound to, `METHOD path`.
    pub request: String,
    /// Why it fails.
    pub reason: String,
}

impl std::fmt::Display for AuditFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "record {}: `{}` with credential `{}` ({}): {}",
            self.seq, self.principal_id, self.credential_id, self.request, self.reason
        )
    }
}

/// Checks every signed action of `journal` against the credentials of
/// `principals`. A record that cannot be decoded is a failure too (it may
/// have held one); an unreadable journal is an error.
pub fn verify_journal(journal: &dyn Journal, principals: &[PrincipalConfig]) -> Result<AuditReport, JournalError> {
    let mut report = AuditReport::default();
    journal.scan(1, &mut |record| {
        report.records += 1;
        let found = match Fact::decode(&record.payload) {
            Ok(Fact::UserActionSigned(Json(signed))) => Some((signed, None)),
            Ok(Fact::DecisionRecorded { approval_id, decision: Json(decision) }) => {
                decision.user_action.clone().map(|signed| (signed, Some((approval_id, decision))))
            }
            Ok(_) => None,
            Err(error) => {
                report.failures.push(AuditFailure {
                    seq: record.seq,
                    principal_id: String::new(),
                    credential_id: String::new(),
                    request: String::new(),
                    reason: format!("the record cannot be decoded: {error}"),
                });
                None
            }
        };
        if let Some((signed, decision)) = found {
            report.checked += 1;
            let outcome = check(&signed, principals).and_then(|()| match &decision {
                Some((approval_id, decision)) => check_decision(&signed, approval_id, decision),
                None => Ok(()),
            });
            if let Err(reason) = outcome {
                report.failures.push(AuditFailure {
                    seq: record.seq,
                    principal_id: signed.principal_id.clone(),
                    credential_id: signed.credential_id.clone(),
                    request: format!("{} {}", signed.method, signed.path),
                    reason,
                });
            }
        }
        Ok(())
    })?;
    Ok(report)
}

/// The journal payload of a signed action, as the engine writes it (for
/// tools that build journals, and for tests that tamper with one).
pub fn signed_action_payload(signed: &SignedAction) -> Vec<u8> {
    Fact::UserActionSigned(Json(signed.clone())).encode()
}

/// The key of the credential verifies the assertion, and the credential is
/// the claimed principal's.
fn check(signed: &SignedAction, principals: &[PrincipalConfig]) -> Result<(), String> {
    let owner = principals
        .iter()
        .find_map(|p| p.credential(&signed.credential_id).map(|credential| (p, credential)))
        .ok_or_else(|| format!("credential `{}` is not in the config", signed.credential_id))?;
    let (principal, credential) = owner;
    if principal.principal.id != signed.principal_id {
        return Err(format!(
            "credential `{}` belongs to `{}`, not `{}`",
            credential.id, principal.principal.id, signed.principal_id
        ));
    }
    signed.verify(&credential.public_key).map_err(|e| e.to_string())
}

/// A signed decision is the decision its signed body asked for, on its
/// approval, by its signer.
fn check_decision(signed: &SignedAction, approval_id: &str, decision: &Decision) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Body {
        value: DecisionValue,
        #[serde(default)]
        reason: String,
    }
    if decision.user_id != signed.principal_id || decision.credential_id.as_deref() != Some(&signed.credential_id) {
        return Err(format!("the decision was recorded for `{}`, not its signer", decision.user_id));
    }
    if !signed.path.ends_with(&format!("/policy-approvals/{approval_id}/decisions")) {
        return Err(format!("the signed request is not a decision on approval `{approval_id}`"));
    }
    let body: Body = serde_json::from_str(&signed.body).map_err(|_| "the signed body is not a decision".to_owned())?;
    if body.value != decision.value || body.reason != decision.reason {
        return Err("the recorded decision is not the one signed (value or reason differ)".to_owned());
    }
    Ok(())
}
