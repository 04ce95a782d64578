//! Validation of a policy body and its compilation into typed rules and filters.

use std::sync::Arc;

// Seeded fast hashing: filter and whitelist sets are probed on every
// evaluation, with caller-chosen strings (SipHash cost more than the rest of
// a filter check).
use foldhash::HashSet;

use rust_decimal::Decimal;

use crate::error::ValidationError;
use crate::model::amount::{parse_usd, NumberText, TokenAmount};
use crate::model::policy::{
    ActionKind, ActivityKind, CalendarPeriod, Filters, InList, Policy, PolicySpec, RuleConfiguration, RuleKind,
    TagFilter, VelocityScope,
};

use super::limits::{MAX_AUTO_REJECT_TIMEOUT_SECS, MAX_TIME_WINDOW_SECS};
use super::subject::normalize_address;

/// What a velocity window sums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Measure {
    /// USD value, against a USD limit.
    Usd(Decimal),
    /// One asset's amount in smallest units, against a limit in the same units.
    Asset {
        /// The asset.
        symbol: String,
        /// The limit.
        limit: TokenAmount,
    },
    /// Number of activities.
    Count(u64),
}

/// How far back a window looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// The last `n` seconds.
    Rolling(u64),
    /// The current UTC calendar period.
    Calendar(CalendarPeriod),
}

/// A velocity rule, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Velocity {
    /// What is summed and its limit.
    pub measure: Measure,
    /// The window.
    pub span: Span,
    /// Whose activities share a window.
    pub scope: VelocityScope,
}

/// A rule, compiled into typed values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompiledRule {
    /// Always triggers.
    Always,
    /// USD value above the limit, or unpriced.
    AmountLimit(Decimal),
    /// Any listed asset above its limit.
    Nominal(Vec<(String, TokenAmount)>),
    /// Window total above the limit.
    Velocity(Velocity),
    /// Recipient absent or not in the set (normalized).
    Whitelist(HashSet<String>),
}

/// Filters with their lists turned into sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompiledFilters {
    /// Wallet ids.
    pub wallet_id: Option<HashSet<String>>,
    /// At least one of these tags.
    pub tags_any: Option<HashSet<String>>,
    /// All of these tags.
    pub tags_all: Option<Vec<String>>,
    /// Initiator ids.
    pub initiator_id: Option<HashSet<String>>,
    /// Transaction types (contract names).
    pub transaction_type: Option<HashSet<String>>,
    /// Asset symbols.
    pub asset_symbol: Option<HashSet<String>>,
    /// Normalized recipients.
    pub recipient: Option<HashSet<String>>,
    /// Policy ids (`Policies:Modify`).
    pub policy_id: Option<HashSet<String>>,
}

/// A policy ready to evaluate.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    /// The stored policy.
    pub policy: Arc<Policy>,
    /// Its rule.
    pub rule: CompiledRule,
    /// Its filters.
    pub filters: CompiledFilters,
    /// Creation order, the tie-break of `first-match`.
    pub ordinal: u64,
    /// The policy's id, shared by the keys of its velocity windows (a
    /// window check copies a pointer, not the text).
    pub id: Arc<str>,
}

/// Validates a policy body; the error names the offending field.
pub fn validate(spec: &PolicySpec) -> Result<(), ValidationError> {
    super::limits::check_policy(spec)?;
    compile_parts(spec).map(|_| ())
}

/// Compiles a stored policy.
pub fn compile(policy: Arc<Policy>, ordinal: u64) -> Result<CompiledPolicy, ValidationError> {
    let (rule, filters) = compile_parts(&policy.spec)?;
    let id = Arc::from(policy.id.as_str());
    Ok(CompiledPolicy { policy, rule, filters, ordinal, id })
}

fn compile_parts(spec: &PolicySpec) -> Result<(CompiledRule, CompiledFilters), ValidationError> {
    if spec.name.trim().is_empty() {
        return Err(ValidationError::new("name", "must not be empty"));
    }
    if spec.name.len() > 256 {
        return Err(ValidationError::new("name", "must be at most 256 characters"));
    }
    validate_action(spec)?;
    let rule = compile_rule(spec.activity_kind, spec.rule.kind, &spec.rule.configuration)?;
    let filters = compile_filters(spec.activity_kind, &spec.filters)?;
    Ok((rule, filters))
}

fn validate_action(spec: &PolicySpec) -> Result<(), ValidationError> {
    let action = &spec.action;
    if spec.activity_kind == ActivityKind::PoliciesModify && action.kind != ActionKind::RequestApproval {
        return Err(ValidationError::new("action.kind", "must be `RequestApproval` for a `Policies:Modify` policy"));
    }
    match action.kind {
        ActionKind::RequestApproval => {
            if action.approval_groups.is_empty() {
                return Err(ValidationError::new("action.approvalGroups", "must list at least one group"));
            }
            for (i, group) in action.approval_groups.iter().enumerate() {
                let field = |name: &str| format!("action.approvalGroups[{i}].{name}");
                if group.quorum == 0 {
                    return Err(ValidationError::new(field("quorum"), "must be at least 1"));
                }
                if let Some(list) = &group.approvers.user_id {
                    let distinct: HashSet<&String> = list.values.iter().collect();
                    if distinct.len() < group.quorum as usize {
                        return Err(ValidationError::new(
                            field("quorum"),
                            format!(
                                "`{}` exceeds the {} approvers listed in group `{}`",
                                group.quorum,
                                distinct.len(),
                                group.name
                            ),
                        ));
                    }
                    if list.values.iter().any(|v| v.trim().is_empty()) {
                        return Err(ValidationError::new(field("approvers.userId.in"), "must not hold empty ids"));
                    }
                }
            }
            if let Some(timeout) = action.auto_reject_timeout {
                if !(1..=MAX_AUTO_REJECT_TIMEOUT_SECS).contains(&timeout) {
                    return Err(ValidationError::new(
                        "action.autoRejectTimeout",
                        format!("must be between 1 and {MAX_AUTO_REJECT_TIMEOUT_SECS} seconds"),
                    ));
                }
            }
        }
        ActionKind::Block | ActionKind::NoAction => {
            if !action.approval_groups.is_empty() {
                return Err(ValidationError::new("action.approvalGroups", "is only allowed with `RequestApproval`"));
            }
        }
    }
    Ok(())
}

const CONFIG: &str = "rule.configuration";

fn field(name: &str) -> String {
    format!("{CONFIG}.{name}")
}

fn positive_usd(text: &NumberText, name: &str) -> Result<Decimal, ValidationError> {
    match parse_usd(&text.0) {
        Ok(v) if v > Decimal::ZERO => Ok(v),
        _ => Err(ValidationError::new(field(name), "must be a positive decimal")),
    }
}

fn positive_units(text: &NumberText, name: &str) -> Result<TokenAmount, ValidationError> {
    match TokenAmount::parse(&text.0) {
        Ok(v) if v.0 > ruint::aliases::U256::ZERO => Ok(v),
        Ok(_) => Err(ValidationError::new(field(name), "must be a positive integer in the asset's smallest unit")),
        Err(e) => Err(ValidationError::new(
            field(name),
            format!("must be a positive integer in the asset's smallest unit: {e}"),
        )),
    }
}

fn require<'a, T>(value: &'a Option<T>, name: &str) -> Result<&'a T, ValidationError> {
    value.as_ref().ok_or_else(|| ValidationError::new(field(name), "is required"))
}

fn usd_currency(config: &RuleConfiguration) -> Result<(), ValidationError> {
    match config.currency.as_deref() {
        Some("USD") => Ok(()),
        Some(other) => Err(ValidationError::new(field("currency"), format!("`{other}` is not supported; use `USD`"))),
        None => Err(ValidationError::new(field("currency"), "is required")),
    }
}

fn compile_rule(
    activity_kind: ActivityKind,
    kind: RuleKind,
    config: &RuleConfiguration,
) -> Result<CompiledRule, ValidationError> {
    if activity_kind == ActivityKind::PoliciesModify && kind != RuleKind::AlwaysTrigger {
        return Err(ValidationError::new("rule.kind", "must be `AlwaysTrigger` for a `Policies:Modify` policy"));
    }
    Ok(match kind {
        RuleKind::AlwaysTrigger => CompiledRule::Always,
        RuleKind::TransactionAmountLimit => {
            usd_currency(config)?;
            CompiledRule::AmountLimit(positive_usd(require(&config.limit, "limit")?, "limit")?)
        }
        RuleKind::TransactionAmountLimitNominal => {
            let assets = require(&config.assets, "assets")?;
            if assets.is_empty() {
                return Err(ValidationError::new(field("assets"), "must list at least one asset"));
            }
            let mut limits = Vec::with_capacity(assets.len());
            for (i, asset) in assets.iter().enumerate() {
                if asset.symbol.trim().is_empty() {
                    return Err(ValidationError::new(field(&format!("assets[{i}].symbol")), "must not be empty"));
                }
                limits.push((asset.symbol.clone(), positive_units(&asset.limit, &format!("assets[{i}].limit"))?));
            }
            CompiledRule::Nominal(limits)
        }
        RuleKind::TransactionAmountVelocity | RuleKind::TransactionCountVelocity => {
            CompiledRule::Velocity(compile_velocity(kind, config)?)
        }
        RuleKind::TransactionRecipientWhitelist => {
            let addresses = require(&config.addresses, "addresses")?;
            if addresses.iter().any(|a| a.trim().is_empty()) {
                return Err(ValidationError::new(field("addresses"), "must not hold empty addresses"));
            }
            CompiledRule::Whitelist(addresses.iter().map(|a| normalize_address(a)).collect())
        }
    })
}

fn compile_velocity(kind: RuleKind, config: &RuleConfiguration) -> Result<Velocity, ValidationError> {
    let limit = require(&config.limit, "limit")?;
    let measure = if kind == RuleKind::TransactionCountVelocity {
        // A count counts every matching activity: an asset or a currency here
        // would read as a narrower count that nothing would apply.
        for (given, name) in [(config.asset.is_some(), "asset"), (config.currency.is_some(), "currency")] {
            if given {
                return Err(ValidationError::new(
                    field(name),
                    "does not apply to `TransactionCountVelocity`, which counts every matching activity",
                ));
            }
        }
        match limit.as_count() {
            Some(n) if n > 0 => Measure::Count(n),
            _ => return Err(ValidationError::new(field("limit"), "must be a positive integer")),
        }
    } else {
        match (&config.asset, &config.currency) {
            (Some(_), Some(_)) => {
                return Err(ValidationError::new(field("asset"), "and `currency` are exclusive; give one"))
            }
            (Some(symbol), None) if symbol.trim().is_empty() => {
                return Err(ValidationError::new(field("asset"), "must not be empty"))
            }
            (Some(symbol), None) => Measure::Asset { symbol: symbol.clone(), limit: positive_units(limit, "limit")? },
            (None, _) => {
                usd_currency(config)?;
                Measure::Usd(positive_usd(limit, "limit")?)
            }
        }
    };
    let span = match (config.time_window, config.timeframe, config.calendar) {
        (_, _, Some(period)) if config.time_window.is_none() && config.timeframe.is_none() => Span::Calendar(period),
        (_, _, Some(_)) => {
            return Err(ValidationError::new(field("calendar"), "replaces `timeWindow`; give only one of them"))
        }
        (Some(_), Some(_), None) => {
            return Err(ValidationError::new(field("timeframe"), "is an alias of `timeWindow`; give only one"))
        }
        (Some(secs), None, None) => Span::Rolling(window_seconds(secs, "timeWindow")?),
        (None, Some(minutes), None) => Span::Rolling(window_seconds(minutes.saturating_mul(60), "timeframe")?),
        (None, None, None) => return Err(ValidationError::new(field("timeWindow"), "is required")),
    };
    Ok(Velocity { measure, span, scope: config.scope.unwrap_or_default() })
}

fn window_seconds(secs: u64, name: &str) -> Result<u64, ValidationError> {
    if (1..=MAX_TIME_WINDOW_SECS).contains(&secs) {
        Ok(secs)
    } else {
        Err(ValidationError::new(field(name), format!("must be between 1 and {MAX_TIME_WINDOW_SECS} seconds")))
    }
}

fn set(
    list: &Option<InList>,
    name: &str,
    normalize: fn(&str) -> String,
) -> Result<Option<HashSet<String>>, ValidationError> {
    match list {
        None => Ok(None),
        Some(list) if list.values.is_empty() => {
            Err(ValidationError::new(format!("filters.{name}.in"), "must list at least one value"))
        }
        Some(list) => Ok(Some(list.values.iter().map(|v| normalize(v)).collect())),
    }
}

fn compile_filters(kind: ActivityKind, filters: &Filters) -> Result<CompiledFilters, ValidationError> {
    let same = |v: &str| v.to_owned();
    if kind == ActivityKind::PoliciesModify {
        let wallet_only = filters.wallet_id.is_some()
            || filters.wallet_tags.is_some()
            || filters.transaction_type.is_some()
            || filters.asset_symbol.is_some()
            || filters.recipient.is_some();
        if wallet_only {
            return Err(ValidationError::new(
                "filters",
                "a `Policies:Modify` policy takes only the `policyId` and `initiatorId` filters",
            ));
        }
    } else if filters.policy_id.is_some() {
        return Err(ValidationError::new("filters.policyId", "applies only to `Policies:Modify` policies"));
    }
    if let Some(types) = &filters.transaction_type {
        for (i, t) in types.values.iter().enumerate() {
            if !["Transfer", "ContractCall", "Allowance", "MessageSignature", "BlackBoxSignature"].contains(&t.as_str())
            {
                return Err(ValidationError::new(
                    format!("filters.transactionType.in[{i}]"),
                    format!("`{t}` is not a transaction type"),
                ));
            }
        }
    }
    let (tags_any, tags_all) = match &filters.wallet_tags {
        None => (None, None),
        Some(TagFilter { has_any: None, has_all: None }) => {
            return Err(ValidationError::new("filters.walletTags", "must give `hasAny` or `hasAll`"))
        }
        Some(TagFilter { has_any, has_all }) => {
            if has_any.as_ref().is_some_and(Vec::is_empty) {
                return Err(ValidationError::new("filters.walletTags.hasAny", "must list at least one tag"));
            }
            if has_all.as_ref().is_some_and(Vec::is_empty) {
                return Err(ValidationError::new("filters.walletTags.hasAll", "must list at least one tag"));
            }
            (has_any.as_ref().map(|v| v.iter().cloned().collect()), has_all.clone())
        }
    };
    Ok(CompiledFilters {
        wallet_id: set(&filters.wallet_id, "walletId", same)?,
        tags_any,
        tags_all,
        initiator_id: set(&filters.initiator_id, "initiatorId", same)?,
        transaction_type: set(&filters.transaction_type, "transactionType", same)?,
        asset_symbol: set(&filters.asset_symbol, "assetSymbol", same)?,
        recipient: set(&filters.recipient, "recipient", normalize_address)?,
        policy_id: set(&filters.policy_id, "policyId", same)?,
    })
}
