//! The typed view of an activity that rules and filters read: validated once,
//! at the edge, with addresses normalized and money parsed exactly.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use rust_decimal::Decimal;
use smallvec::SmallVec;

use crate::error::ValidationError;
use crate::model::activity::{ActivityRequest, OperationKind, TransactionType};
use crate::model::amount::{parse_usd, units_to_decimal, TokenAmount};
use crate::model::policy::ActivityKind;
use crate::model::principal::PrincipalKind;
use crate::model::text::trim;

/// USD per whole unit of each asset symbol.
pub type PriceTable = HashMap<String, Decimal>;

/// One outgoing asset, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectAsset<'a> {
    /// Symbol as given.
    pub symbol: &'a str,
    /// Amount in smallest units.
    pub amount: TokenAmount,
}

/// The outgoing assets of an activity: a transfer moves one or two, kept
/// inline (more spill to the heap).
pub type SubjectAssets<'a> = SmallVec<[SubjectAsset<'a>; 2]>;

/// A recipient address as given, normalized by [`normalize_address`] the
/// first time a filter or rule compares it: most policy sets never look at
/// the recipient, and a checksummed (mixed-case) hex address would otherwise
/// be lowercased into a new string on every evaluation.
#[derive(Debug, Clone)]
pub struct Recipient<'a> {
    given: &'a str,
    normalized: OnceLock<Cow<'a, str>>,
}

impl<'a> Recipient<'a> {
    /// The recipient `given` in the request.
    pub fn new(given: &'a str) -> Self {
        Recipient { given, normalized: OnceLock::new() }
    }

    /// The address as policies compare it.
    pub fn normalized(&self) -> &str {
        self.normalized.get_or_init(|| normalized_address(self.given))
    }
}

impl PartialEq for Recipient<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.normalized() == other.normalized()
    }
}

/// An activity as policies see it: a view that borrows its texts from the
/// request (or the policy change) it was built from.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject<'a> {
    /// Its kind.
    pub kind: ActivityKind,
    /// Initiator id.
    pub initiator_id: &'a str,
    /// Initiator kind.
    pub initiator_kind: PrincipalKind,
    /// Wallet id (`Wallets:Sign`).
    pub wallet_id: Option<&'a str>,
    /// Wallet tags.
    pub wallet_tags: &'a [String],
    /// Transaction type.
    pub transaction_type: Option<TransactionType>,
    /// Recipient; [`Subject::recipient`] gives it normalized.
    pub recipient: Option<Recipient<'a>>,
    /// Outgoing assets.
    pub assets: SubjectAssets<'a>,
    /// USD value; `None` when any asset is unpriced (fail closed).
    pub usd_value: Option<Decimal>,
    /// The policy a `Policies:Modify` activity touches.
    pub policy_id: Option<&'a str>,
    /// The operation of a `Policies:Modify` activity.
    pub operation_kind: Option<OperationKind>,
}

impl Subject<'_> {
    /// The recipient, normalized by [`normalize_address`].
    pub fn recipient(&self) -> Option<&str> {
        self.recipient.as_ref().map(Recipient::normalized)
    }

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
    normalized_address(address).into_owned()
}

/// [`normalize_address`], borrowing `address` when it is already normal.
fn normalized_address(address: &str) -> Cow<'_, str> {
    let address = trim(address);
    let hex = address.len() > 2 && (address.starts_with("0x") || address.starts_with("0X"));
    if hex && address.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(address.to_ascii_lowercase())
    } else {
        Cow::Borrowed(address)
    }
}

/// Maximum decimals an asset may declare: 10^77 is the largest power of ten
/// below 2^256, so more decimals could not describe a whole unit.
const MAX_DECIMALS: u8 = 77;

/// Validates a `Wallets:Sign` request into a [`Subject`] that borrows from
/// it, pricing it with `prices` where an asset carries no `valueUsd`.
pub fn wallet_subject<'a>(request: &'a ActivityRequest, prices: &PriceTable) -> Result<Subject<'a>, ValidationError> {
    super::limits::check_activity(request)?;
    let initiator = request.initiator.as_ref().ok_or_else(|| ValidationError::new("initiator", "is required"))?;
    if trim(&initiator.id).is_empty() {
        return Err(ValidationError::new("initiator.id", "must not be empty"));
    }
    let wallet = request.wallet.as_ref().ok_or_else(|| ValidationError::new("wallet", "is required"))?;
    if trim(&wallet.id).is_empty() {
        return Err(ValidationError::new("wallet.id", "must not be empty"));
    }
    let transaction = request.transaction.as_ref().ok_or_else(|| ValidationError::new("transaction", "is required"))?;
    if let Some(external_id) = &request.external_id {
        if external_id.is_empty() || external_id.len() > 256 {
            return Err(ValidationError::new("externalId", "must be 1 to 256 characters"));
        }
    }
    let recipient = match &transaction.recipient {
        Some(r) if trim(r).is_empty() => {
            return Err(ValidationError::new("transaction.recipient", "must not be empty when present"))
        }
        Some(r) => Some(Recipient::new(r)),
        None => None,
    };

    let mut assets = SubjectAssets::new();
    let mut usd_value = Some(Decimal::ZERO);
    for (i, asset) in transaction.assets.iter().enumerate() {
        let field = |name: &str| format!("transaction.assets[{i}].{name}");
        if trim(&asset.symbol).is_empty() {
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
            // The first value is the sum: 0 + v is v, scale and all
            // (`first_value_is_the_sum`), without a decimal addition.
            (Some(_), Some(v)) if i == 0 => Some(v),
            (Some(sum), Some(v)) => sum.checked_add(v),
            _ => None,
        };
        assets.push(SubjectAsset { symbol: &asset.symbol, amount });
    }

    Ok(Subject {
        kind: ActivityKind::WalletsSign,
        initiator_id: &initiator.id,
        initiator_kind: initiator.kind,
        wallet_id: Some(&wallet.id),
        wallet_tags: &wallet.tags,
        transaction_type: Some(transaction.kind),
        recipient,
        assets,
        usd_value,
        policy_id: None,
        operation_kind: None,
    })
}

/// The subject of a `Policies:Modify` activity.
pub fn policy_change_subject<'a>(
    initiator_id: &'a str,
    initiator_kind: PrincipalKind,
    policy_id: &'a str,
    operation: OperationKind,
) -> Subject<'a> {
    Subject {
        kind: ActivityKind::PoliciesModify,
        initiator_id,
        initiator_kind,
        wallet_id: None,
        wallet_tags: &[],
        transaction_type: None,
        recipient: None,
        assets: SubjectAssets::new(),
        usd_value: Some(Decimal::ZERO),
        policy_id: Some(policy_id),
        operation_kind: Some(operation),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use rust_decimal::Decimal;

    #[test]
    fn first_value_is_the_sum() {
        let mut negative_zero = Decimal::new(0, 2);
        negative_zero.set_sign_negative(true);
        for v in [Decimal::from_str("4500.00").unwrap(), Decimal::new(0, 3), negative_zero, Decimal::new(-15, 1)] {
            let sum = Decimal::ZERO.checked_add(v).unwrap();
            assert_eq!((sum, sum.scale(), sum.to_string()), (v, v.scale(), v.to_string()));
        }
    }
}
