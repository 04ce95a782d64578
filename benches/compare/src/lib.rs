//! The scenario Warden and its peers are given in `cargo bench -p warden-compare`
//! (the bench itself is `benches/compare.rs`): the same policy semantics
//! written once for each side, so that what is timed is the same decision.
//!
//! - Pure evaluation, Warden against Cedar: K `Block` policies, each a USD
//!   amount limit ([`LIMIT_USD`]) filtered to one wallet tag. Exactly one
//!   filters to [`MATCHING_TAG`], the tag of the timed transfer; the K - 1
//!   others filter to tags no transfer carries ([`other_tag`]), so they cannot
//!   match. Cedar denies by default and Warden allows, so the Cedar set also
//!   holds one unconditional `permit`, and each Warden `Block` policy is a
//!   Cedar `forbid`.
//! - Durable velocity decisions, Warden against PostgreSQL: a per-wallet count
//!   window ([`VELOCITY_LIMIT`] activities in [`WINDOW_SECONDS`]); an activity
//!   is allowed and counted if its wallet counted fewer than the limit in the
//!   window, blocked otherwise. Warden runs it as a `TransactionCountVelocity`
//!   policy on a redb journal; PostgreSQL as [`POSTGRES_SCHEMA`]'s `decide`
//!   function, one round trip and one transaction per decision.
#![deny(missing_docs)]

use serde_json::json;
use warden::{ActivityRequest, Policy, PolicySpec};

/// The amount limit of every evaluation policy, in USD.
pub const LIMIT_USD: &str = "100000.00";
/// The wallet tag of the one policy that matches the timed transfer.
pub const MATCHING_TAG: &str = "treasury";
/// Activities a wallet may make in a window before it is blocked: far above
/// what a bench run counts, so every timed decision is allowed and written.
pub const VELOCITY_LIMIT: u64 = 1_000_000;
/// The velocity window, in seconds (a day).
pub const WINDOW_SECONDS: u64 = 86_400;
/// Wallets the durable stream spreads over: one window each.
pub const WALLETS: u64 = 10_000;
/// The recipient of every transfer.
pub const RECIPIENT: &str = "0x76d1b7f9b3F69C435eeF76a98A415332084A856F";

/// The tag of non-matching policy `i` (1..K): carried by no transfer.
pub fn other_tag(i: usize) -> String {
    format!("desk-{i}")
}

/// The tag policy `i` of a set filters to: policy 0 matches.
pub fn policy_tag(i: usize) -> String {
    if i == 0 {
        MATCHING_TAG.to_owned()
    } else {
        other_tag(i)
    }
}

/// Warden's side of the evaluation scenario: `k` stored policies for
/// `warden::PolicyEvaluator`, policy 0 the matching one.
pub fn warden_policies(k: usize) -> Vec<Policy> {
    (0..k)
        .map(|i| {
            serde_json::from_value(json!({
                "id": format!("pl-{i}"),
                "name": format!("Amount limit {i}"),
                "activityKind": "Wallets:Sign",
                "rule": {"kind": "TransactionAmountLimit", "configuration": {"limit": LIMIT_USD, "currency": "USD"}},
                "action": {"kind": "Block"},
                "filters": {"walletTags": {"hasAny": [policy_tag(i)]}},
                "status": "Active",
                "dateCreated": "2026-01-01T00:00:00Z",
                "dateUpdated": "2026-01-01T00:00:00Z"
            }))
            .expect("compare policy parses")
        })
        .collect()
}

/// Cedar's side of the evaluation scenario, as Cedar source: `k` `forbid`
/// policies (`@id` `pl-<i>`, policy 0 the matching one) and one `permit` of
/// everything, Cedar's way of saying "allowed unless a policy blocks". The
/// request carries the wallet's tags and the transfer's USD value (a Cedar
/// `decimal`) in its context.
pub fn cedar_policies(k: usize) -> String {
    let mut text = String::from("@id(\"allow-unless-blocked\")\npermit (principal, action, resource);\n");
    for i in 0..k {
        text.push_str(&format!(
            "@id(\"pl-{i}\")\nforbid (principal, action == Action::\"Wallets:Sign\", resource)\n\
             when {{ context.walletTags.contains(\"{}\") && context.valueUsd.greaterThan(decimal(\"{LIMIT_USD}\")) }};\n",
            policy_tag(i)
        ));
    }
    text
}

/// A transfer of `usd` USD of ETH from wallet `wallet`, tagged `tag`.
pub fn transfer(wallet: &str, tag: &str, usd: &str) -> ActivityRequest {
    serde_json::from_value(json!({
        "kind": "Wallets:Sign",
        "initiator": {"id": "us-bob", "kind": "User"},
        "wallet": {"id": wallet, "tags": [tag]},
        "transaction": {"type": "Transfer", "network": "Ethereum", "recipient": RECIPIENT,
            "assets": [{"symbol": "ETH", "decimals": 18, "amount": "1500000000000000000", "valueUsd": usd}]}
    }))
    .expect("compare activity parses")
}

/// Warden's side of the durable scenario: the per-wallet count window.
pub fn velocity_policy() -> PolicySpec {
    serde_json::from_value(json!({
        "name": "Wallet count velocity",
        "activityKind": "Wallets:Sign",
        "rule": {"kind": "TransactionCountVelocity",
                 "configuration": {"limit": VELOCITY_LIMIT, "timeWindow": WINDOW_SECONDS, "scope": "Wallet"}},
        "action": {"kind": "Block"},
        "status": "Active"
    }))
    .expect("velocity policy parses")
}

/// PostgreSQL's side of the durable scenario. `decide(wallet, body, limit,
/// window_seconds)` counts
/// the wallet's activities in the window and, under the limit, records this
/// one (its JSON body, as Warden journals its activity), all in the one
/// transaction of the call; it answers whether the activity is allowed. The
/// per-wallet advisory lock makes concurrent decisions of one wallet take
/// turns, so the window never overshoots (under `READ COMMITTED` two of them
/// would otherwise both count the same rows), as Warden's window actor does.
pub const POSTGRES_SCHEMA: &str = "
CREATE TABLE activity (
    id bigserial PRIMARY KEY,
    wallet text NOT NULL,
    at timestamptz NOT NULL,
    body text NOT NULL
);
CREATE INDEX activity_wallet_at ON activity (wallet, at);
CREATE FUNCTION decide(p_wallet text, p_body text, p_limit bigint, p_window_seconds bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    counted bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_wallet, 0));
    SELECT count(*) INTO counted FROM activity WHERE wallet = p_wallet AND at > now() - make_interval(secs => p_window_seconds::double precision);
    IF counted >= p_limit THEN
        RETURN false;
    END IF;
    INSERT INTO activity (wallet, at, body) VALUES (p_wallet, now(), p_body);
    RETURN true;
END
$$;
";

/// The wallet of activity `i` of the durable stream.
pub fn stream_wallet(i: u64) -> String {
    format!("wa-{}", i % WALLETS)
}

/// The median of `samples` (sorted in place); 0 when empty.
pub fn median(samples: &mut [f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}
