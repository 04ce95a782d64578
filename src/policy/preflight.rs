//! Pure evaluation, public: compile a set of policies once, then evaluate
//! activities against it without windows, journal or actors. For benches, for
//! a signer's preflight check before it builds a transaction, and for what-if
//! replays.
//!
//! Velocity rules are judged as if their window were empty: they trigger only
//! when this activity alone exceeds the limit (unpriced activities trigger USD
//! windows, as in the engine). The engine, with its windows, can only be
//! stricter.

use std::sync::Arc;

use chrono::DateTime;
use smallvec::SmallVec;

use crate::error::ValidationError;
use crate::model::activity::{ActivityRequest, ActivityStatus, PolicyEvaluation};
use crate::model::policy::Policy;

use super::compile::compile;
use super::evaluate::{decide, rule_outcome, Judged, RuleOutcome};
use super::set::PolicySet;
use super::settings::Settings;
use super::subject::wallet_subject;
use super::window_math::Ledger;

/// A compiled, indexed set of policies with the settings to evaluate by.
#[derive(Debug)]
pub struct PolicyEvaluator {
    set: PolicySet,
    settings: Settings,
}

/// What the policies say of one activity.
#[derive(Debug, Clone, PartialEq)]
pub struct Preflight {
    /// `Allowed`, `Blocked` or `PendingApproval`.
    pub status: ActivityStatus,
    /// The policies that triggered, with their reasons.
    pub evaluations: Vec<PolicyEvaluation>,
}

impl PolicyEvaluator {
    /// Compiles `policies` (in creation order: the tie-break of
    /// `first-match`); archived ones never trigger. The error names the
    /// policy and field that does not compile.
    pub fn new(policies: impl IntoIterator<Item = Policy>, settings: Settings) -> Result<Self, ValidationError> {
        let mut compiled = Vec::new();
        for (ordinal, policy) in policies.into_iter().enumerate() {
            let id = policy.id.clone();
            let one = compile(Arc::new(policy), ordinal as u64).map_err(|e| e.within(&format!("policies[`{id}`]")))?;
            compiled.push(Arc::new(one));
        }
        Ok(PolicyEvaluator { set: PolicySet::new(compiled), settings })
    }

    /// Evaluates a `Wallets:Sign` activity; the error names an invalid field.
    pub fn evaluate(&self, request: &ActivityRequest) -> Result<Preflight, ValidationError> {
        let subject = wallet_subject(request, &self.settings.prices)?;
        // A few policies match an activity: judged inline, not on the heap.
        let mut judged: SmallVec<[Judged; 4]> = SmallVec::new();
        self.set.visit_matching(&subject, |policy| {
            let (triggered, reason) = match rule_outcome(policy, &subject) {
                RuleOutcome::Decided { triggered, reason } => (triggered, reason),
                RuleOutcome::Window(check) => {
                    let answer = Ledger::default().reserve(&check.velocity, 0, check.quantity, DateTime::UNIX_EPOCH);
                    (answer.triggered, answer.reason)
                }
            };
            judged.push(Judged { policy, triggered, reason });
        });
        let verdict = decide(self.settings.mode, self.settings.default_action, &subject, &judged);
        Ok(Preflight { status: verdict.status, evaluations: verdict.evaluations })
    }
}
