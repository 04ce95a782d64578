//! Pure evaluation: rule outcomes and the final decision. No I/O, no actors;
//! velocity rules hand back a [`WindowCheck`] that the engine asks the
//! window's actor about.

use std::borrow::Cow;
use std::sync::Arc;

use rust_decimal::Decimal;

use crate::model::activity::{ActivityStatus, PolicyEvaluation};
use crate::model::amount::usd_shown;
use crate::model::policy::{ActionKind, VelocityScope};

use super::compile::{CompiledPolicy, CompiledRule, Measure, Span, Velocity};
use super::subject::Subject;

/// How the outcomes of several triggered policies combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
pub enum EvaluationMode {
    /// Dfns: every matching policy is evaluated; any Block blocks, any
    /// RequestApproval asks for approval.
    #[default]
    #[serde(rename = "all-triggered")]
    AllTriggered,
    /// Fordefi: the first matching, triggered policy in priority order decides.
    #[serde(rename = "first-match")]
    FirstMatch,
}

/// The decision `first-match` takes when no policy triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
pub enum DefaultAction {
    /// Allow.
    #[default]
    NoAction,
    /// Block.
    Block,
}

/// An amount a window sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Quantity {
    /// USD.
    Usd(Decimal),
    /// Smallest units of one asset.
    Units(crate::model::amount::TokenAmount),
    /// One activity.
    One,
}

/// Identifies one velocity window: a policy and a scope key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct WindowKey {
    /// The velocity policy.
    pub policy_id: Arc<str>,
    /// Wallet id, initiator id, recipient, or `*` for the organization.
    /// Shared (the check, its count and the window's map entry hold the
    /// same text) and written as a plain string.
    pub scope_key: Arc<str>,
}

/// What to ask a window: may `quantity` be added without exceeding the limit?
#[derive(Debug, Clone)]
pub struct WindowCheck {
    /// Which window.
    pub key: WindowKey,
    /// The rule's limit and window.
    pub velocity: Velocity,
    /// This activity's contribution; `None` when it is unpriced (triggers, and
    /// adds nothing to a USD window if allowed anyway).
    pub quantity: Option<Quantity>,
}

/// Why a rule triggered or did not: fixed text for the outcomes whose reason
/// names no value (most of them, and every rule that does not trigger, whose
/// reason is never shown), formatted only when it names one.
pub type Reason = Cow<'static, str>;

/// The outcome of one policy's rule, before velocity answers.
#[derive(Debug, Clone)]
pub enum RuleOutcome {
    /// Decided without state.
    Decided {
        /// Whether it triggered.
        triggered: bool,
        /// Why.
        reason: Reason,
    },
    /// Needs the window's answer.
    Window(WindowCheck),
}

/// Evaluates the stateless part of `policy`'s rule for `subject`.
pub fn rule_outcome(policy: &CompiledPolicy, subject: &Subject<'_>) -> RuleOutcome {
    let decided = |triggered, reason: Reason| RuleOutcome::Decided { triggered, reason };
    match &policy.rule {
        CompiledRule::Always => decided(true, "policy triggers on every activity".into()),
        CompiledRule::AmountLimit(limit) => match subject.usd_value {
            None => decided(true, format!("value is unpriced; limit {limit} USD fails closed").into()),
            Some(value) if value > *limit => {
                decided(true, format!("value {} USD exceeds limit {limit} USD", usd_shown(value)).into())
            }
            // Reasons of rules that did not trigger are never shown: keep them cheap.
            Some(_) => decided(false, "value is within the limit".into()),
        },
        CompiledRule::Nominal(limits) => {
            for (symbol, limit) in limits {
                match subject.amount_of(symbol) {
                    None => return decided(true, format!("amount of {symbol} overflows; fails closed").into()),
                    Some(amount) if amount > *limit => {
                        return decided(true, format!("amount {amount} {symbol} exceeds limit {limit} {symbol}").into())
                    }
                    Some(_) => {}
                }
            }
            decided(false, "every listed asset is within its limit".into())
        }
        CompiledRule::Whitelist(addresses) => match subject.recipient() {
            None => decided(true, "recipient is absent; whitelist fails closed".into()),
            Some(r) if addresses.contains(r) => decided(false, "recipient is whitelisted".into()),
            Some(r) => decided(true, format!("recipient {r} is not whitelisted").into()),
        },
        CompiledRule::Velocity(velocity) => RuleOutcome::Window(window_check(policy, velocity, subject)),
    }
}

fn window_check(policy: &CompiledPolicy, velocity: &Velocity, subject: &Subject<'_>) -> WindowCheck {
    // The key outlives the request (the window's actor keeps it): owned.
    let scope_key: Arc<str> = match velocity.scope {
        VelocityScope::Wallet => subject.wallet_id.unwrap_or_default().into(),
        VelocityScope::Initiator => subject.initiator_id.into(),
        // Activities without a recipient share one window: fail closed.
        VelocityScope::Recipient => subject.recipient().unwrap_or("-").into(),
        VelocityScope::Organization => "*".into(),
    };
    let quantity = match &velocity.measure {
        Measure::Usd(_) => subject.usd_value.map(Quantity::Usd),
        Measure::Asset { symbol, .. } => subject.amount_of(symbol).map(Quantity::Units),
        Measure::Count(_) => Some(Quantity::One),
    };
    WindowCheck { key: WindowKey { policy_id: policy.id.clone(), scope_key }, velocity: velocity.clone(), quantity }
}

/// Describes a window span for reasons.
pub fn describe_span(span: Span) -> String {
    match span {
        Span::Rolling(secs) => format!("in the last {secs} s"),
        Span::Calendar(period) => format!("this calendar {period:?} (UTC)").to_lowercase(),
    }
}

/// One policy with its final rule outcome.
#[derive(Debug, Clone)]
pub struct Judged<'p> {
    /// The policy, borrowed from the snapshot it was matched in.
    pub policy: &'p Arc<CompiledPolicy>,
    /// Whether its rule triggered.
    pub triggered: bool,
    /// Why.
    pub reason: Reason,
}

/// The decision on an activity.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// `Allowed`, `Blocked` or `PendingApproval`.
    pub status: ActivityStatus,
    /// The policies that triggered, with reasons (what the caller sees).
    pub evaluations: Vec<PolicyEvaluation>,
    /// The `RequestApproval` policies whose groups the approval holds.
    pub approvers_from: Vec<Arc<CompiledPolicy>>,
}

fn evaluation(j: &Judged<'_>) -> PolicyEvaluation {
    PolicyEvaluation {
        policy_id: j.policy.policy.id.clone(),
        name: j.policy.policy.spec.name.clone(),
        triggered: j.triggered,
        reason: j.reason.to_string(),
    }
}

/// Combines the judged policies (in evaluation order) into a verdict.
pub fn decide(
    mode: EvaluationMode,
    default_action: DefaultAction,
    subject: &Subject<'_>,
    judged: &[Judged<'_>],
) -> Verdict {
    // Walked again for each question rather than collected: most
    // activities trigger nothing, and then nothing here allocates.
    let triggered = || judged.iter().filter(|j| j.triggered);
    match mode {
        // The common case, nothing triggered, answered at once.
        EvaluationMode::AllTriggered if triggered().next().is_none() => {
            Verdict { status: ActivityStatus::Allowed, evaluations: Vec::new(), approvers_from: Vec::new() }
        }
        EvaluationMode::AllTriggered => {
            let evaluations = triggered().map(evaluation).collect();
            let action = |j: &Judged<'_>| j.policy.policy.spec.action.kind;
            if triggered().any(|j| action(j) == ActionKind::Block) {
                return Verdict { status: ActivityStatus::Blocked, evaluations, approvers_from: Vec::new() };
            }
            let approvers_from: Vec<_> = triggered()
                .filter(|j| action(j) == ActionKind::RequestApproval)
                .map(|j| Arc::clone(j.policy))
                .collect();
            let status =
                if approvers_from.is_empty() { ActivityStatus::Allowed } else { ActivityStatus::PendingApproval };
            Verdict { status, evaluations, approvers_from }
        }
        EvaluationMode::FirstMatch => match triggered().next() {
            Some(first) => {
                let evaluations = vec![evaluation(first)];
                match first.policy.policy.spec.action.kind {
                    ActionKind::Block => {
                        Verdict { status: ActivityStatus::Blocked, evaluations, approvers_from: Vec::new() }
                    }
                    ActionKind::NoAction => {
                        Verdict { status: ActivityStatus::Allowed, evaluations, approvers_from: Vec::new() }
                    }
                    ActionKind::RequestApproval => Verdict {
                        status: ActivityStatus::PendingApproval,
                        evaluations,
                        approvers_from: vec![Arc::clone(first.policy)],
                    },
                }
            }
            // `default_action` governs signatures only; an ungoverned policy
            // change is applied at once.
            None => {
                let block = default_action == DefaultAction::Block
                    && subject.kind == crate::model::policy::ActivityKind::WalletsSign;
                let status = if block { ActivityStatus::Blocked } else { ActivityStatus::Allowed };
                Verdict { status, evaluations: Vec::new(), approvers_from: Vec::new() }
            }
        },
    }
}
