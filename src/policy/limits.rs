//! Input limits: ids, names, tags, symbols and addresses are at most
//! [`MAX_TEXT_BYTES`], windows and approval timeouts at most a year; an
//! error names the field and never echoes the input.

use crate::error::ValidationError;
use crate::model::activity::ActivityRequest;
use crate::model::policy::PolicySpec;

/// Longest rolling window: one year of seconds.
pub const MAX_TIME_WINDOW_SECS: u64 = 31_536_000;

/// Longest approval timeout: one year, like the longest window; an approval
/// nobody decides within a year is no longer an answer anyone waits for.
pub const MAX_AUTO_REJECT_TIMEOUT_SECS: u64 = 31_536_000;

/// Longest id, name, tag, symbol or address, in bytes.
pub const MAX_TEXT_BYTES: usize = 256;

/// Refuses `value` of `field` when longer than [`MAX_TEXT_BYTES`].
pub fn bounded(field: impl FnOnce() -> String, value: &str) -> Result<(), ValidationError> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(ValidationError::new(field(), format!("must be at most {MAX_TEXT_BYTES} bytes")));
    }
    Ok(())
}

/// Every text of an activity request (checked field by field: this runs on
/// every evaluation).
pub fn check_activity(request: &ActivityRequest) -> Result<(), ValidationError> {
    if let Some(external_id) = &request.external_id {
        bounded(|| "externalId".into(), external_id)?;
    }
    if let Some(initiator) = &request.initiator {
        bounded(|| "initiator.id".into(), &initiator.id)?;
    }
    if let Some(wallet) = &request.wallet {
        bounded(|| "wallet.id".into(), &wallet.id)?;
        for (i, tag) in wallet.tags.iter().enumerate() {
            bounded(|| format!("wallet.tags[{i}]"), tag)?;
        }
    }
    if let Some(transaction) = &request.transaction {
        if let Some(network) = &transaction.network {
            bounded(|| "transaction.network".into(), network)?;
        }
        if let Some(recipient) = &transaction.recipient {
            bounded(|| "transaction.recipient".into(), recipient)?;
        }
        for (i, asset) in transaction.assets.iter().enumerate() {
            bounded(|| format!("transaction.assets[{i}].symbol"), &asset.symbol)?;
        }
    }
    Ok(())
}

/// Every text of a policy body, wherever it stands (policies change rarely:
/// a walk over its JSON form finds them all, lists included).
pub fn check_policy(spec: &PolicySpec) -> Result<(), ValidationError> {
    // A window or a timeout given where the rule or action kind has no use
    // for it is still refused out of range: what the document says of a
    // field holds for every kind.
    let configuration = &spec.rule.configuration;
    if let Some(seconds) = configuration.time_window {
        in_range("rule.configuration.timeWindow", seconds, MAX_TIME_WINDOW_SECS, "seconds")?;
    }
    if let Some(minutes) = configuration.timeframe {
        in_range("rule.configuration.timeframe", minutes, MAX_TIME_WINDOW_SECS / 60, "minutes")?;
    }
    if let Some(seconds) = spec.action.auto_reject_timeout {
        in_range("action.autoRejectTimeout", seconds, MAX_AUTO_REJECT_TIMEOUT_SECS, "seconds")?;
    }
    for (i, group) in spec.action.approval_groups.iter().enumerate() {
        if group.quorum == 0 {
            return Err(ValidationError::new(format!("action.approvalGroups[{i}].quorum"), "must be at least 1"));
        }
    }
    let value = serde_json::to_value(spec).map_err(|e| ValidationError::new("", e.to_string()))?;
    walk(&value, &mut String::new())
}

fn in_range(field: &str, value: u64, max: u64, unit: &str) -> Result<(), ValidationError> {
    if (1..=max).contains(&value) {
        Ok(())
    } else {
        Err(ValidationError::new(field, format!("must be between 1 and {max} {unit}")))
    }
}

fn walk(value: &serde_json::Value, path: &mut String) -> Result<(), ValidationError> {
    match value {
        serde_json::Value::String(text) => bounded(|| path.clone(), text),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        serde_json::Value::Object(fields) => {
            for (key, item) in fields {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                walk(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offending_field_is_named_without_its_value() {
        let long = "x".repeat(MAX_TEXT_BYTES + 1);
        let spec: PolicySpec = serde_json::from_value(serde_json::json!({
            "name": "p", "activityKind": "Wallets:Sign",
            "rule": {"kind": "AlwaysTrigger", "configuration": {}}, "action": {"kind": "Block"},
            "filters": {"walletTags": {"hasAny": ["ok", long]}}
        }))
        .unwrap();
        let error = check_policy(&spec).unwrap_err();
        assert_eq!(error.field, "filters.walletTags.hasAny[1]");
        assert!(!error.to_string().contains(&long));
        assert!(bounded(|| "wallet.id".into(), &"y".repeat(MAX_TEXT_BYTES)).is_ok());
    }

    #[test]
    fn windows_out_of_range_are_refused_whatever_the_rule_kind() {
        let spec = |configuration: serde_json::Value| -> PolicySpec {
            serde_json::from_value(serde_json::json!({
                "name": "p", "activityKind": "Wallets:Sign",
                "rule": {"kind": "TransactionAmountLimit", "configuration": configuration}, "action": {"kind": "Block"}
            }))
            .unwrap()
        };
        let error = check_policy(&spec(serde_json::json!({"limit": "1", "timeframe": 0}))).unwrap_err();
        assert_eq!(error.field, "rule.configuration.timeframe");
        let error = check_policy(&spec(serde_json::json!({"limit": "1", "timeWindow": 31_536_001}))).unwrap_err();
        assert_eq!(error.field, "rule.configuration.timeWindow");
        assert!(check_policy(&spec(serde_json::json!({"limit": "1", "timeframe": 525_600}))).is_ok());
    }
}
