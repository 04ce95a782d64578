//! The typed view of an activity that rules and filters read: validated once,
//! at the edge, with addresses normalized and money parsed exactly.

use std::collections::HashMap;

use rust_decimal::Decimal;

use crate::error::ValidationError;
use crate::model::activity::{ActivityRequest, OperationKind, TransactionType};
use crate::model::amount::{parse_usd, units_to_decimal, TokenAmount};
use crate::model::policy::ActivityKind;
use crate::model::principal::PrincipalKind;

/// USD per whole unit of each asset symbol.
pub type PriceTable = HashMap<String, Decimal>;

/// One outgoing asset, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectAsset {
    /// Symbol as given.
    pub symbol: String,
    /// Amount in smallest units.
    pub amount: TokenAmount,
}

/// An activity as policies see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    /// Its kind.
    pub kind: ActivityKind,
    /// Initiator id.
    pub initiator_id: String,
    /// Initiator kind.
    pub initiator_kind: PrincipalKind,
    /// Wallet id (`Wallets:Sign`).
    pub wallet_id: Option<String>,
    /// Wallet tags.
    pub wallet_tags: Vec<String>,
    /// Transaction type.
    pub transaction_type: Option<TransactionType>,
    /// Recipient, normalized by [`normalize_address`].
    pub recipient: Option<String>,
    /// Outgoing assets.
    pub assets: Vec<SubjectAsset>,
    /// USD value; `None` when any asset is unpriced (fail closed).
    pub usd_value: Option<Decimal>,
    /// The policy a `Policies:Modify` activity touches.
    pub policy_id: Option<String>,
    /// The operation of a `Policies:Modify` activity.
    pub operation_kind: Option<OperationKind>,
}

impl Subject {
    /// The total of `symbol` over the outgoing assets; `None` on overflow
    /// (callers treat it as triggering), `Some(0)` when absent.
    pub fn amount_of(&self, symbol: &str) -> Option<TokenAmount> {
        self.assets
            .iter()
            .filter(|a| a.symbol == symbol)
            .try_fold(TokenAmount::default(), |sum, a| sum.checked_add(a.amount))
    }

    /// Whether any outgoing asset is `symbol`.
    pub fn moves(&self, symbol: &str) -> bool {
        self.assets.iter().any(|a| a.symbol == symbol)
    }
}

/// Normalizes an address for comparison: `0x` hex addresses compare
/// case-insensitively (EIP-55 checksums are only a display form); every other
/// address format (base58, bech32 with its own rules) compares exactly.
pub fn normalize_address(address: &str) -> String {
    let address = address.trim();
    if address.len() > 2 && (address.starts_with("0x") || address.starts_with("0X")) {
        address.to_ascii_lowercase()
    } else {
        address.to_owned()
    }
}

/// Maximum decimals an asset may declare: 10^77 is the largest power of ten
/// below 2^256, so more decimals could not describe a whole unit.
const MAX_DECIMALS: u8 = 77;

/// Validates a `Wallets:Sign` request into a [`Subject`], pricing it with
/// `prices` where an asset carries no `valueUsd`.
pub fn wallet_subject(request: &ActivityRequest, prices: &PriceTable) -> Result<Subject, ValidationError> {
    super::limits::check_activity(request)?;
    let initiator = request.initiator.as_ref().ok_or_else(|| ValidationError::new("initiator", "is required"))?;
    if initiator.id.trim().is_empty() {
        return Err(ValidationError::new("initiator.id", "must not be empty"));
    }
    let wallet = request.wallet.as_ref().ok_or_else(|| ValidationError::new("wallet", "is required"))?;
    if wallet.id.trim().is_empty() {
        return Err(ValidationError::new("wallet.id", "must not be empty"));
    }
    let transaction = request.transaction.as_ref().ok_or_else(|| ValidationError::new("transaction", "is required"))?;
    if let Some(external_id) = &request.external_id {
        if external_id.is_empty() || external_id.len() > 256 {
            return Err(ValidationError::new("externalId", "must be 1 to 256 characters"));
        }
    }
    let recipient = match &transaction.recipient {
        Some(r) if r.trim().is_empty() => {
            return Err(ValidationError::new("transaction.recipient", "must not be empty when present"))
        }
        Some(r) => Some(normalize_address(r)),
        None => None,
    };

    let mut assets = Vec::with_capacity(transaction.assets.len());
    let mut usd_value = Some(Decimal::ZERO);
    for (i, asset) in transaction.assets.iter().enumerate() {
        let field = |name: &str| format!("transaction.assets[{i}].{name}");
        if asset.symbol.trim().is_empty() {
            return Err(ValidationError::new(field("symbol"), "must not be empty"));
        }
        if asset.decimals > MAX_DECIMALS {
            return Err(ValidationError::new(field("decimals"), format!("must be at most {MAX_DECIMALS}")));
        }
        let amount = TokenAmount::parse(&asset.amount.0).map_err(|e| ValidationError::new(field("amount"), e))?;
        let value = match &asset.value_usd {
            Some(v) => {
                let v = parse_usd(&v.0).map_err(|e| ValidationError::new(field("valueUsd"), e))?;
                if v.is_sign_negative() {
                    return Err(ValidationError::new(field("valueUsd"), "must not be negative"));
                }
                Some(v)
            }
            None => prices
                .get(&asset.symbol)
                .and_then(|price| units_to_decimal(amount, asset.decimals)?.checked_mul(*price)),
        };
        usd_value = match (usd_value, value) {
            (Some(sum), Some(v)) => sum.checked_add(v),
            _ => None,
        };
        assets.push(SubjectAsset { symbol: asset.symbol.clone(), amount });
    }

    Ok(Subject {
        kind: ActivityKind::WalletsSign,
        initiator_id: initiator.id.clone(),
        initiator_kind: initiator.kind,
        wallet_id: Some(wallet.id.clone()),
        wallet_tags: wallet.tags.clone(),
        transaction_type: Some(transaction.kind),
        recipient,
        assets,
        usd_value,
        policy_id: None,
        operation_kind: None,
    })
}

/// The subject of a `Policies:Modify` activity.
pub fn policy_change_subject(
    initiator_id: &str,
    initiator_kind: PrincipalKind,
    policy_id: &str,
    operation: OperationKind,
) -> Subject {
    Subject {
        kind: ActivityKind::PoliciesModify,
        initiator_id: initiator_id.to_owned(),
        initiator_kind,
        wallet_id: None,
        wallet_tags: Vec::new(),
        transaction_type: None,
        recipient: None,
        assets: Vec::new(),
        usd_value: Some(Decimal::ZERO),
        policy_id: Some(policy_id.to_owned()),
        operation_kind: Some(operation),
    }
}
