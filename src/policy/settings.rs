//! How an engine evaluates: the settings its builder (or config file) gives.

use super::{DefaultAction, EvaluationMode, PriceTable};

/// How the engine evaluates, from its builder.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `all-triggered` or `first-match`.
    pub mode: EvaluationMode,
    /// `first-match`'s answer when nothing triggers.
    pub default_action: DefaultAction,
    /// USD per whole unit.
    pub prices: PriceTable,
}
