//! Unit tests of validation, rules, filters and the combination of actions.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::compile::{compile, validate, CompiledRule, Span};
use super::evaluate::{decide, rule_outcome, DefaultAction, EvaluationMode, Judged, RuleOutcome};
use super::set::PolicySet;
use super::subject::{wallet_subject, PriceTable, Subject};
use super::window_math::{window_start, Ledger};
use crate::model::activity::{ActivityRequest, ActivityStatus};
use crate::model::policy::{CalendarPeriod, Policy, PolicySpec};

fn spec(value: Value) -> PolicySpec {
    serde_json::from_value(value).expect("test policy parses")
}

fn policy(rule: Value, action: Value, filters: Value) -> PolicySpec {
    spec(json!({"name": "p", "activityKind": "Wallets:Sign", "rule": rule, "action": action, "filters": filters}))
}

fn block() -> Value {
    json!({"kind": "Block"})
}

fn compiled(spec: PolicySpec, ordinal: u64) -> Arc<super::CompiledPolicy> {
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
    let policy = Policy { id: format!("pl-{ordinal}"), spec, date_created: now, date_updated: now };
    Arc::new(compile(Arc::new(policy), ordinal).expect("test policy compiles"))
}

/// The view of a test activity. The view borrows its request: leaked, the
/// request lives as long as the test's views of it (a few hundred bytes per
/// call, in a test process).
fn activity(value: Value) -> Subject<'static> {
    let mut base = json!({
        "kind": "Wallets:Sign",
        "initiator": {"id": "us-bob", "kind": "User"},
        "wallet": {"id": "wa-1", "tags": ["treasury"]},
        "transaction": {"type": "Transfer", "network": "Ethereum",
            "recipient": "0x76d1b7f9b3F69C435eeF76a98A415332084A856F",
            "assets": [{"symbol": "ETH", "decimals": 18, "amount": "1500000000000000000", "valueUsd": "4500.00"}]}
    });
    merge(&mut base, value);
    let request: &'static ActivityRequest =
        Box::leak(Box::new(serde_json::from_value(base).expect("test activity parses")));
    let mut prices = PriceTable::new();
    prices.insert("ETH".into(), Decimal::from(3000));
    wallet_subject(request, &prices).expect("test activity is valid")
}

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

fn triggered(spec: PolicySpec, subject: &Subject) -> (bool, String) {
    match rule_outcome(&compiled(spec, 1), subject) {
        RuleOutcome::Decided { triggered, reason } => (triggered, reason.into_owned()),
        RuleOutcome::Window(_) => panic!("stateless rule expected"),
    }
}

fn error_of(value: Value) -> String {
    validate(&spec(value)).expect_err("policy must be invalid").to_string()
}

// ----- validation -----

fn base_policy() -> Value {
    json!({"name": "p", "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionAmountLimit", "configuration": {"limit": "100000", "currency": "USD"}},
        "action": {"kind": "Block"}})
}

fn with(patch: Value) -> Value {
    let mut base = base_policy();
    merge(&mut base, patch);
    base
}

#[test]
fn valid_seed_policy_passes() {
    assert!(validate(&spec(base_policy())).is_ok());
}

#[test]
fn limits_must_be_positive_decimals() {
    for bad in [json!("0"), json!("-5"), json!("abc"), json!("1e3"), json!(0)] {
        let e = error_of(with(json!({"rule": {"configuration": {"limit": bad}}})));
        assert_eq!(e, "rule.configuration.limit must be a positive decimal");
    }
    assert!(validate(&spec(with(json!({"rule": {"configuration": {"limit": "1500.25"}}})))).is_ok());
    assert!(validate(&spec(with(json!({"rule": {"configuration": {"limit": 1500.25}}})))).is_ok());
    // Past 28 significant digits the limit would be rounded: refused.
    let e = error_of(with(json!({"rule": {"configuration": {"limit": "99.9999999999999999999999999999999"}}})));
    assert!(e.starts_with("rule.configuration.limit"), "{e}");
}

#[test]
fn currency_must_be_usd() {
    let e = error_of(with(json!({"rule": {"configuration": {"currency": "EUR"}}})));
    assert!(e.starts_with("rule.configuration.currency"), "{e}");
}

#[test]
fn quorum_must_be_reachable_and_positive() {
    let groups = |quorum: u32, ids: Value| {
        with(json!({"action": {"kind": "RequestApproval",
            "approvalGroups": [{"name": "Treasury", "quorum": quorum, "approvers": {"userId": {"in": ids}}}]}}))
    };
    let e = error_of(groups(3, json!(["us-1", "us-2"])));
    assert_eq!(e, "action.approvalGroups[0].quorum `3` exceeds the 2 approvers listed in group `Treasury`");
    assert_eq!(error_of(groups(0, json!(["us-1"]))), "action.approvalGroups[0].quorum must be at least 1");
    // Duplicates do not count twice.
    assert!(error_of(groups(2, json!(["us-1", "us-1"]))).contains("exceeds"));
    assert!(validate(&spec(groups(2, json!(["us-1", "us-2"])))).is_ok());
}

#[test]
fn auto_reject_timeout_is_bounded() {
    let approval = |timeout: u64| {
        with(json!({"action": {"kind": "RequestApproval", "autoRejectTimeout": timeout,
            "approvalGroups": [{"name": "g", "quorum": 1}]}}))
    };
    assert_eq!(error_of(approval(0)), "action.autoRejectTimeout must be between 1 and 31536000 seconds");
    assert!(error_of(approval(u64::MAX)).starts_with("action.autoRejectTimeout"));
    assert!(validate(&spec(approval(86400))).is_ok());
}

#[test]
fn request_approval_needs_groups_and_block_takes_none() {
    let e = error_of(with(json!({"action": {"kind": "RequestApproval"}})));
    assert_eq!(e, "action.approvalGroups must list at least one group");
    let e = error_of(with(json!({"action": {"kind": "Block", "approvalGroups": [{"quorum": 1}]}})));
    assert!(e.starts_with("action.approvalGroups"), "{e}");
}

#[test]
fn time_windows_are_bounded() {
    let velocity =
        |config: Value| with(json!({"rule": {"kind": "TransactionAmountVelocity", "configuration": config}}));
    let e = error_of(velocity(json!({"limit": "10", "currency": "USD", "timeWindow": 0})));
    assert_eq!(e, "rule.configuration.timeWindow must be between 1 and 31536000 seconds");
    let e = error_of(velocity(json!({"limit": "10", "currency": "USD", "timeWindow": 31_536_001u64})));
    assert!(e.starts_with("rule.configuration.timeWindow"));
    let e = error_of(velocity(json!({"limit": "10", "currency": "USD"})));
    assert_eq!(e, "rule.configuration.timeWindow is required");
    let alias = spec(velocity(json!({"limit": "10", "currency": "USD", "timeframe": 60})));
    match compiled(alias, 1).rule.clone() {
        CompiledRule::Velocity(v) => assert_eq!(v.span, Span::Rolling(3600)),
        other => panic!("{other:?}"),
    }
    let calendar = spec(velocity(json!({"limit": "10", "currency": "USD", "calendar": "Week"})));
    match compiled(calendar, 1).rule.clone() {
        CompiledRule::Velocity(v) => assert_eq!(v.span, Span::Calendar(CalendarPeriod::Week)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn count_limits_are_integers_and_asset_limits_smallest_units() {
    let count = |configuration: Value| {
        serde_json::to_value(policy(
            json!({"kind": "TransactionCountVelocity", "configuration": configuration}),
            block(),
            json!({}),
        ))
        .expect("policy as JSON")
    };
    assert_eq!(
        error_of(count(json!({"limit": "2.5", "timeWindow": 60}))),
        "rule.configuration.limit must be a positive integer"
    );
    assert!(validate(&spec(count(json!({"limit": 3, "timeWindow": 60})))).is_ok());
    for key in ["asset", "currency"] {
        let narrowed = count(json!({"limit": 3, "timeWindow": 60, key: if key == "asset" { "ETH" } else { "USD" }}));
        assert_eq!(
            error_of(narrowed),
            format!("rule.configuration.{key} does not apply to `TransactionCountVelocity`, which counts every matching activity")
        );
    }
    let nominal = with(json!({"rule": {"kind": "TransactionAmountLimitNominal",
        "configuration": {"assets": [{"symbol": "ETH", "limit": "1.5"}]}}}));
    assert!(error_of(nominal).starts_with("rule.configuration.assets[0].limit"));
    let overflow = with(json!({"rule": {"kind": "TransactionAmountLimitNominal",
        "configuration": {"assets": [{"symbol": "ETH", "limit":
        "115792089237316195423570985008687907853269984665640564039457584007913129639936"}]}}}));
    assert!(error_of(overflow).contains("2^256"));
}

#[test]
fn policies_modify_takes_only_always_trigger_and_request_approval() {
    let modify = |rule: Value, action: Value| json!({"name": "gov", "activityKind": "Policies:Modify", "rule": rule, "action": action});
    let approval = json!({"kind": "RequestApproval", "approvalGroups": [{"name": "g", "quorum": 1}]});
    assert!(validate(&spec(modify(json!({"kind": "AlwaysTrigger"}), approval.clone()))).is_ok());
    assert_eq!(
        error_of(modify(json!({"kind": "AlwaysTrigger"}), block())),
        "action.kind must be `RequestApproval` for a `Policies:Modify` policy"
    );
    assert!(error_of(modify(base_policy()["rule"].clone(), approval)).starts_with("rule.kind"));
}

#[test]
fn unknown_kinds_do_not_parse() {
    let unknown_rule: Result<PolicySpec, _> = serde_json::from_value(with(json!({"rule": {"kind": "Nope"}})));
    assert!(unknown_rule.is_err());
    let unknown_action: Result<PolicySpec, _> = serde_json::from_value(with(json!({"action": {"kind": "Maybe"}})));
    assert!(unknown_action.is_err());
}

#[test]
fn empty_filter_lists_are_errors() {
    let e = error_of(with(json!({"filters": {"walletId": {"in": []}}})));
    assert_eq!(e, "filters.walletId.in must list at least one value");
    let e = error_of(with(json!({"filters": {"transactionType": {"in": ["Swap"]}}})));
    assert!(e.starts_with("filters.transactionType.in[0]"));
}

// ----- rules -----

#[test]
fn amount_limit_triggers_above_limit_and_when_unpriced() {
    let rule = |limit: &str| {
        policy(
            json!({"kind": "TransactionAmountLimit", "configuration": {"limit": limit, "currency": "USD"}}),
            block(),
            json!({}),
        )
    };
    let (hit, reason) = triggered(rule("4000"), &activity(json!({})));
    assert!(hit);
    assert_eq!(reason, "value 4500.00 USD exceeds limit 4000 USD");
    assert!(!triggered(rule("4500"), &activity(json!({}))).0, "equal to the limit is within it");
    // Priced from the table: 1.5 ETH * 3000 = 4500.
    let from_table = activity(
        json!({"transaction": {"assets": [{"symbol": "ETH", "decimals": 18, "amount": "1500000000000000000"}]}}),
    );
    assert_eq!(from_table.usd_value, Some(Decimal::from_str("4500").unwrap()));
    // Shown as people read dollars, not with the units' 18 decimals.
    assert_eq!(triggered(rule("4000"), &from_table).1, "value 4500.00 USD exceeds limit 4000 USD");
    let cents = activity(
        json!({"transaction": {"assets": [{"symbol": "ETH", "decimals": 18, "amount": "1500000000000000001"}]}}),
    );
    assert_eq!(triggered(rule("4000"), &cents).1, "value 4500.000000000000003 USD exceeds limit 4000 USD");
    let unpriced = activity(json!({"transaction": {"assets": [{"symbol": "DOGE", "decimals": 8, "amount": "1"}]}}));
    assert_eq!(unpriced.usd_value, None);
    assert!(triggered(rule("1000000"), &unpriced).0, "unpriced fails closed");
}

#[test]
fn nominal_limit_compares_smallest_units() {
    let rule = policy(
        json!({"kind": "TransactionAmountLimitNominal",
        "configuration": {"assets": [{"symbol": "ETH", "limit": "1000000000000000000"}]}}),
        block(),
        json!({}),
    );
    assert!(triggered(rule.clone(), &activity(json!({}))).0);
    let small = activity(
        json!({"transaction": {"assets": [{"symbol": "ETH", "decimals": 18, "amount": "1000000000000000000"}]}}),
    );
    assert!(!triggered(rule, &small).0);
}

#[test]
fn whitelist_is_case_insensitive_for_hex_and_fails_closed() {
    let rule = policy(
        json!({"kind": "TransactionRecipientWhitelist",
        "configuration": {"addresses": ["0x76D1B7F9B3F69C435EEF76A98A415332084A856F"]}}),
        block(),
        json!({}),
    );
    assert!(!triggered(rule.clone(), &activity(json!({}))).0);
    let other = activity(json!({"transaction": {"recipient": "0x0000000000000000000000000000000000000001"}}));
    assert!(triggered(rule.clone(), &other).0);
    let mut absent = activity(json!({}));
    absent.recipient = None;
    let (hit, reason) = triggered(rule, &absent);
    assert!(hit);
    assert!(reason.contains("absent"));
}

#[test]
fn always_trigger_triggers() {
    assert!(triggered(policy(json!({"kind": "AlwaysTrigger"}), block(), json!({})), &activity(json!({}))).0);
}

// ----- filters and the index -----

fn matches(filters: Value, subject: &Subject) -> bool {
    let set = PolicySet::new([compiled(policy(json!({"kind": "AlwaysTrigger"}), block(), filters), 1)]);
    let found = !set.matching(subject).is_empty();
    found
}

#[test]
fn filters_select_activities() {
    let a = activity(json!({}));
    assert!(matches(json!({}), &a));
    assert!(matches(json!({"walletId": {"in": ["wa-1"]}}), &a));
    assert!(!matches(json!({"walletId": {"in": ["wa-2"]}}), &a));
    assert!(matches(json!({"walletTags": {"hasAny": ["ops", "treasury"]}}), &a));
    assert!(!matches(json!({"walletTags": {"hasAll": ["ops", "treasury"]}}), &a));
    assert!(matches(json!({"walletTags": {"hasAll": ["treasury"]}}), &a));
    assert!(matches(json!({"initiatorId": {"in": ["us-bob"]}}), &a));
    assert!(!matches(json!({"initiatorId": {"in": ["us-eve"]}}), &a));
    assert!(matches(json!({"transactionType": {"in": ["Transfer"]}}), &a));
    assert!(!matches(json!({"transactionType": {"in": ["ContractCall"]}}), &a));
    assert!(matches(json!({"assetSymbol": {"in": ["ETH"]}}), &a));
    assert!(!matches(json!({"assetSymbol": {"in": ["USDC"]}}), &a));
    assert!(matches(json!({"recipient": {"in": ["0x76d1b7f9b3f69c435eef76a98a415332084a856f"]}}), &a));
    assert!(!matches(json!({"recipient": {"in": ["0x01"]}}), &a));
}

#[test]
fn archived_policies_never_match() {
    let mut archived = policy(json!({"kind": "AlwaysTrigger"}), block(), json!({}));
    archived.status = crate::model::policy::PolicyStatus::Archived;
    assert!(PolicySet::new([compiled(archived, 1)]).matching(&activity(json!({}))).is_empty());
}

#[test]
fn the_index_only_returns_policies_that_can_match() {
    let policies: Vec<_> = (0..1000)
        .map(|i| {
            compiled(
                policy(json!({"kind": "AlwaysTrigger"}), block(), json!({"walletId": {"in": [format!("wa-{i}")]}})),
                i,
            )
        })
        .collect();
    let set = PolicySet::new(policies);
    let found = set.matching(&activity(json!({"wallet": {"id": "wa-7"}})));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].policy.id, "pl-7");
}

// ----- actions -----

/// A judged policy; the policy is leaked, as a snapshot would outlive it.
fn judged(spec: PolicySpec, ordinal: u64, hit: bool) -> Judged<'static> {
    Judged { policy: Box::leak(Box::new(compiled(spec, ordinal))), triggered: hit, reason: "r".into() }
}

fn approval_action() -> Value {
    json!({"kind": "RequestApproval", "approvalGroups": [{"name": "g", "quorum": 1}]})
}

#[test]
fn all_triggered_block_wins_then_approval_then_allow() {
    let a = activity(json!({}));
    let always = json!({"kind": "AlwaysTrigger"});
    let b = judged(policy(always.clone(), block(), json!({})), 1, true);
    let r = judged(policy(always.clone(), approval_action(), json!({})), 2, true);
    let n = judged(policy(always, json!({"kind": "NoAction"}), json!({})), 3, true);
    let mode = EvaluationMode::AllTriggered;
    let d = DefaultAction::NoAction;
    assert_eq!(decide(mode, d, &a, &[b.clone(), r.clone()]).status, ActivityStatus::Blocked);
    let v = decide(mode, d, &a, &[r.clone(), n.clone()]);
    assert_eq!(v.status, ActivityStatus::PendingApproval);
    assert_eq!(v.approvers_from.len(), 1);
    assert_eq!(decide(mode, d, &a, &[n]).status, ActivityStatus::Allowed);
    let untriggered = Judged { triggered: false, ..b };
    assert_eq!(decide(mode, d, &a, &[untriggered]).status, ActivityStatus::Allowed);
}

#[test]
fn first_match_takes_the_first_triggered_and_falls_back_to_default() {
    let a = activity(json!({}));
    let always = json!({"kind": "AlwaysTrigger"});
    let allow = judged(policy(always.clone(), json!({"kind": "NoAction"}), json!({})), 1, true);
    let b = judged(policy(always, block(), json!({})), 2, true);
    let mode = EvaluationMode::FirstMatch;
    assert_eq!(decide(mode, DefaultAction::Block, &a, &[allow.clone(), b.clone()]).status, ActivityStatus::Allowed);
    assert_eq!(decide(mode, DefaultAction::NoAction, &a, &[b, allow]).status, ActivityStatus::Blocked);
    assert_eq!(decide(mode, DefaultAction::Block, &a, &[]).status, ActivityStatus::Blocked);
    assert_eq!(decide(mode, DefaultAction::NoAction, &a, &[]).status, ActivityStatus::Allowed);
}

#[test]
fn first_match_orders_by_priority_then_creation() {
    let always = json!({"kind": "AlwaysTrigger"});
    let mut late = policy(always.clone(), block(), json!({}));
    late.priority = None;
    let mut high = policy(always.clone(), block(), json!({}));
    high.priority = Some(1);
    let mut low = policy(always, block(), json!({}));
    low.priority = Some(5);
    let set = PolicySet::new([compiled(late, 1), compiled(low, 2), compiled(high, 3)]);
    let order: Vec<_> = set.matching(&activity(json!({}))).iter().map(|p| p.policy.id.clone()).collect();
    assert_eq!(order, ["pl-3", "pl-2", "pl-1"]);
}

// ----- windows -----

#[test]
fn calendar_windows_start_on_utc_boundaries() {
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 15, 30, 0).unwrap(); // a Sunday
    assert_eq!(
        window_start(Span::Calendar(CalendarPeriod::Day), now),
        Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap()
    );
    assert_eq!(
        window_start(Span::Calendar(CalendarPeriod::Week), now),
        Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap()
    );
    assert_eq!(
        window_start(Span::Calendar(CalendarPeriod::Month), now),
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
    );
}

#[test]
fn ledger_reserves_commits_and_expires_rolling_entries() {
    let spec = policy(
        json!({"kind": "TransactionAmountVelocity",
        "configuration": {"limit": "100", "currency": "USD", "timeWindow": 60}}),
        block(),
        json!({}),
    );
    let CompiledRule::Velocity(velocity) = compiled(spec, 1).rule.clone() else { panic!() };
    let usd = |v: i64| Some(super::Quantity::Usd(Decimal::from(v)));
    let t0 = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
    let mut ledger = Ledger::default();
    assert!(!ledger.reserve(&velocity, 1, usd(60), t0).triggered);
    // The pending reservation counts against the next one.
    assert!(ledger.reserve(&velocity, 2, usd(50), t0).triggered);
    ledger.release(1);
    assert!(!ledger.reserve(&velocity, 3, usd(100), t0).triggered);
    ledger.commit(3, "ac-3", None, t0);
    assert_eq!(ledger.committed_total(&velocity, t0), "100");
    assert!(ledger.reserve(&velocity, 4, usd(1), t0 + chrono::Duration::seconds(59)).triggered);
    // Exactly 60 s later the entry has left the rolling window.
    assert!(!ledger.reserve(&velocity, 5, usd(1), t0 + chrono::Duration::seconds(60)).triggered);
    // Unpriced fails closed.
    assert!(ledger.reserve(&velocity, 6, None, t0).triggered);
}

#[test]
fn a_repeated_wallet_tag_matches_its_policy_once() {
    let filters = json!({"walletTags": {"hasAny": ["treasury"]}});
    let set = PolicySet::new([compiled(policy(json!({"kind": "AlwaysTrigger"}), block(), filters), 1)]);
    // Few tags are deduplicated by a scan, many by a set: both ways.
    for count in [2, 3, 9, 40] {
        let mut tags: Vec<String> = (0..count).map(|i| format!("desk-{i}")).collect();
        tags[0] = "treasury".into();
        tags[count - 1] = "treasury".into();
        let found = set.matching(&activity(json!({"wallet": {"tags": tags}})));
        assert_eq!(found.len(), 1, "{count} tags, `treasury` twice");
    }
}

#[test]
fn a_policy_found_through_the_index_is_still_held_to_its_other_filters() {
    let a = activity(json!({}));
    // Bucketed by wallet: the tag, the initiator and the recipient still count.
    assert!(matches(json!({"walletId": {"in": ["wa-1"]}, "walletTags": {"hasAny": ["treasury"]}}), &a));
    assert!(!matches(json!({"walletId": {"in": ["wa-1"]}, "walletTags": {"hasAny": ["ops"]}}), &a));
    assert!(!matches(json!({"walletId": {"in": ["wa-1"]}, "initiatorId": {"in": ["us-eve"]}}), &a));
    // Bucketed by initiator, then by tag: the filters after theirs still count.
    assert!(!matches(json!({"initiatorId": {"in": ["us-bob"]}, "walletTags": {"hasAll": ["ops"]}}), &a));
    assert!(!matches(json!({"walletTags": {"hasAny": ["treasury"]}, "recipient": {"in": ["0x01"]}}), &a));
    assert!(!matches(json!({"walletTags": {"hasAll": ["treasury", "ops"]}}), &a));
    assert!(matches(json!({"walletTags": {"hasAny": ["treasury"]}, "assetSymbol": {"in": ["ETH"]}}), &a));
}
