//! Policy validation, compilation into an indexed [`PolicySet`], and pure
//! evaluation. Nothing here does I/O or talks to actors.

pub mod compile;
pub mod evaluate;
pub mod limits;
pub mod preflight;
pub mod set;
pub mod settings;
pub mod subject;
pub mod window_math;

#[cfg(test)]
mod ledger_tests;
#[cfg(test)]
mod tests;

pub use compile::{compile, validate, CompiledPolicy};
pub use evaluate::{
    decide, rule_outcome, DefaultAction, EvaluationMode, Judged, Quantity, RuleOutcome, Verdict, WindowCheck, WindowKey,
};
pub use preflight::{PolicyEvaluator, Preflight};
pub use set::PolicySet;
pub use settings::Settings;
pub use subject::{PriceTable, Subject};
