//! Exact money: token amounts up to 2^256 - 1 in smallest units, USD as exact decimals.

use std::fmt;
use std::str::FromStr;

use ruint::aliases::U256;
use rust_decimal::Decimal;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A token amount in the asset's smallest unit (wei, satoshi).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TokenAmount(pub U256);

impl TokenAmount {
    /// Parses a non-negative integer string of at most 2^256 - 1.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = super::text::trim(text);
        let not_integer = || format!("`{text}` is not a non-negative integer in the asset's smallest unit");
        // Amounts of up to 38 digits (10^38 < 2^128: every token amount seen
        // in practice) are read in machine words, checked and summed in one
        // pass, several times faster than a U256 (or a checked u128) parse:
        // up to 19 digits in one u64 (10^19 < 2^64), up to 38 in two.
        let digits = text.as_bytes();
        if digits.is_empty() {
            return Err(not_integer());
        }
        if digits.len() <= 19 {
            return word_of(digits).map(|word| TokenAmount(U256::from(word))).ok_or_else(not_integer);
        }
        if digits.len() <= 38 {
            let (high, low) = digits.split_at(digits.len() - 19);
            let (Some(high), Some(low)) = (word_of(high), word_of(low)) else { return Err(not_integer()) };
            return Ok(TokenAmount(U256::from(u128::from(high) * 10_000_000_000_000_000_000 + u128::from(low))));
        }
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(not_integer());
        }
        U256::from_str_radix(text, 10).map(TokenAmount).map_err(|_| format!("`{text}` exceeds 2^256 - 1"))
    }

    /// `self + other`, `None` on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(TokenAmount)
    }
}

impl fmt::Display for TokenAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The value of at most 19 ASCII digits (below 10^19 < 2^64: no step
/// overflows); `None` when a byte is not a digit.
fn word_of(digits: &[u8]) -> Option<u64> {
    debug_assert!(digits.len() <= 19);
    // Eight digits at a time, then one by one: a 19-digit wei amount costs
    // two word operations and three digits instead of nineteen digits.
    let mut value = 0u64;
    let mut chunks = digits.chunks_exact(8);
    for chunk in &mut chunks {
        value = value * 100_000_000 + eight_digits(u64::from_le_bytes(chunk.try_into().ok()?))?;
    }
    for &byte in chunks.remainder() {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + u64::from(digit);
    }
    Some(value)
}

/// The value of eight ASCII digits read as one little-endian word (the
/// first digit in the lowest byte), `None` unless all eight are digits.
fn eight_digits(word: u64) -> Option<u64> {
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    // A digit byte is 0x30 to 0x39: its high nibble is 3, and stays 3 when
    // 6 is added (0x3A to 0x3F would carry into it). After the first test
    // every byte is at most 0x3F, so adding 6 carries into no other byte.
    if word & HIGH_NIBBLES != ZEROS || word.wrapping_add(0x0606_0606_0606_0606) & HIGH_NIBBLES != ZEROS {
        return None;
    }
    let word = word - ZEROS;
    // Adjacent digits combined pairwise, then pairs of pairs, then halves:
    // each step multiplies the more significant (lower) lane by 10, 100,
    // 10^4 and adds the next lane.
    let word = (word & 0x000F_000F_000F_000F) * 10 + ((word >> 8) & 0x000F_000F_000F_000F);
    let word = (word & 0x0000_00FF_0000_00FF) * 100 + ((word >> 16) & 0x0000_00FF_0000_00FF);
    Some((word & 0xFFFF) * 10_000 + ((word >> 32) & 0xFFFF))
}

/// A USD value as a reason shows it: as given when it has at most two
/// decimals (`150000.00`), else without trailing zeros but with at least
/// two (a value priced from 18-decimal units reads `110.00`, not
/// `110.000000000000000000`).
pub fn usd_shown(value: Decimal) -> Decimal {
    if value.scale() <= 2 {
        return value;
    }
    let mut shown = value.normalize();
    if shown.scale() < 2 {
        shown.rescale(2);
    }
    shown
}

/// Parses a USD decimal: finite, exact, given as a string or a JSON number.
pub fn parse_usd(text: &str) -> Result<Decimal, String> {
    let text = super::text::trim(text);
    if let Some(value) = plain_decimal(text) {
        return Ok(value);
    }
    let valid = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        && text.bytes().filter(|b| *b == b'.').count() <= 1;
    if !valid {
        return Err(format!("`{text}` is not a decimal"));
    }
    // Exact or refused: `from_str` would round past 28 significant digits,
    // and a limit or a value rounded up or down compares wrongly. Trailing
    // zeros of a fraction change nothing, so past the 28th place they are
    // dropped (`from_str_exact` refuses any digit there, zero or not); below
    // it they are kept, as the scale the text was written with.
    let refused = || format!("`{text}` is not a decimal within 28 significant digits");
    Decimal::from_str_exact(text).or_else(|_| match text.contains('.') {
        true => Decimal::from_str_exact(text.trim_end_matches('0').trim_end_matches('.')).map_err(|_| refused()),
        false => Err(refused()),
    })
}

/// Most digits [`plain_decimal`] reads: 10^18 < 2^63, so they fit an `i64`.
const PLAIN_DECIMAL_DIGITS: usize = 18;

/// A decimal written plainly, `digits` or `digits.digits` in at most
/// [`PLAIN_DECIMAL_DIGITS`] bytes (every USD value seen in practice), read in
/// one pass into the same value and scale as `Decimal::from_str` gives,
/// several times faster; `None` for anything else (signs, exponents, a bare
/// point, more digits), which the general parser then reads or refuses.
fn plain_decimal(text: &str) -> Option<Decimal> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > PLAIN_DECIMAL_DIGITS {
        return None;
    }
    let (mut mantissa, mut point) = (0i64, None);
    for (i, &byte) in bytes.iter().enumerate() {
        match byte {
            b'0'..=b'9' => mantissa = mantissa * 10 + i64::from(byte - b'0'),
            // A point between digits only: "5." and ".5" go to the general parser.
            b'.' if point.is_none() && i > 0 && i + 1 < bytes.len() => point = Some(i),
            _ => return None,
        }
    }
    // At most 16 fractional digits: within the 28 a `Decimal` scale allows.
    let scale = point.map_or(0, |point| bytes.len() - point - 1);
    Some(Decimal::new(mantissa, scale as u32))
}

/// Converts `amount / 10^decimals` into a decimal, `None` when it does not fit
/// (the caller then treats the asset as unpriced: fail closed).
///
/// Digits beyond the 28th decimal place are truncated; prices have far fewer.
pub fn units_to_decimal(amount: TokenAmount, decimals: u8) -> Option<Decimal> {
    let scale = U256::from(10u8).checked_pow(U256::from(decimals))?;
    let whole = amount.0 / scale;
    let rest = amount.0 % scale;
    let whole = Decimal::from_str(&whole.to_string()).ok()?;
    if rest.is_zero() {
        return Some(whole);
    }
    // Keep at most 28 fractional digits of `rest / 10^decimals`.
    let (rest, scale) = if decimals > 28 {
        let drop = U256::from(10u8).checked_pow(U256::from(decimals - 28))?;
        (rest / drop, 28)
    } else {
        (rest, u32::from(decimals))
    };
    let rest: u128 = rest.try_into().ok()?;
    let fraction = Decimal::try_from_i128_with_scale(i128::try_from(rest).ok()?, scale).ok()?;
    whole.checked_add(fraction)
}

/// A value given as a JSON string or number and kept as its exact text, so
/// that `"100000"` and `100000` read the same. The contract accepts JSON
/// numbers; one with a fraction or an exponent reaches us as serde_json's
/// `f64`, kept as its shortest text: exact for every number a JavaScript
/// client can send (its numbers are `f64`s), but a number written with more
/// than 15 significant digits may already be rounded (`100.0000000000000001`
/// reads as `100`), so such values belong in strings, which are exact to 28
/// digits or refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NumberText(pub String);

impl NumberText {
    /// The value as a count (a whole number, 0 included), if it is one.
    pub fn as_count(&self) -> Option<u64> {
        self.0.trim().parse().ok()
    }
}

/// Documented as it is read: a decimal string, or a JSON number while exact;
/// written back as a string (a rule's count limit is written as an integer:
/// see `Rule`'s `Serialize`).
impl utoipa::PartialSchema for NumberText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::Array(vec![Type::String, Type::Number]))
            .description(Some("A decimal as a string (or a JSON number of at most 15 significant digits, below 2^53); answered as a string, but a `TransactionCountVelocity` limit as an integer."))
            .examples(["100000"])
            .into()
    }
}

impl utoipa::ToSchema for NumberText {}

impl Serialize for NumberText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NumberText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = NumberText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal string or number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NumberText, E> {
                Ok(NumberText(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumberText, E> {
                Ok(NumberText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumberText, E> {
                Ok(NumberText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumberText, E> {
                // Beyond 2^53 a JSON number has already lost digits in
                // parsing: refuse it rather than compare an inexact amount.
                const EXACT: f64 = 9_007_199_254_740_992.0;
                if !v.is_finite() || v.abs() >= EXACT {
                    return Err(E::custom("number is too large to be exact; give it as a decimal string"));
                }
                Ok(NumberText(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl fmt::Display for NumberText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for TokenAmount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for TokenAmount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        TokenAmount::parse(&text).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_amounts_are_exact_up_to_u256_max() {
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert_eq!(TokenAmount::parse(max).unwrap().to_string(), max);
        let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert!(TokenAmount::parse(over).unwrap_err().contains("2^256"));
        assert!(TokenAmount::parse("-1").is_err());
        assert!(TokenAmount::parse("1.5").is_err());
        assert!(TokenAmount::parse("").is_err());
        let max = TokenAmount::parse(max).unwrap();
        assert!(max.checked_add(TokenAmount(U256::from(1u8))).is_none());
    }

    #[test]
    fn amounts_parse_alike_on_every_side_of_the_word_fast_paths() {
        for text in [
            "0",
            "007",
            "1500000000000000000",                     // 19 digits: one word
            "9999999999999999999",                     // the largest of one word
            "10000000000000000000",                    // 20 digits: two words
            "12345678901234567890123456789",           // two words, the high one short
            "99999999999999999999999999999999999999",  // 38 digits: u128
            "100000000000000000000000000000000000000", // 39 digits: U256
            "340282366920938463463374607431768211455", // u128::MAX, 39 digits
            "340282366920938463463374607431768211456", // u128::MAX + 1
        ] {
            let exact = U256::from_str_radix(text, 10).unwrap();
            assert_eq!(TokenAmount::parse(text).unwrap(), TokenAmount(exact), "{text}");
        }
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn words_read_every_digit_string_as_the_integer_it_writes(value in 0..10_000_000_000_000_000_000u64, width in 0..20usize) {
            let text = format!("{value:0width$}");
            prop_assume!(text.len() <= 19);
            prop_assert_eq!(word_of(text.as_bytes()), Some(value));
        }

        #[test]
        fn words_refuse_any_byte_that_is_not_a_digit(
            value in 0..10_000_000_000_000_000_000u64,
            at in 0..19usize,
            // Often the bytes next to the digits, where a word test would slip.
            byte in prop_oneof![0x2Au8..0x30, 0x3Au8..0x40, any::<u8>()].prop_filter("not a digit", |b| !b.is_ascii_digit()),
        ) {
            let mut text = format!("{value:019}").into_bytes();
            text[at] = byte;
            prop_assert_eq!(word_of(&text), None);
            prop_assert_eq!(word_of(&text[..at + 1]), None);
        }
    }

    #[test]
    fn plain_decimals_read_as_the_general_parser_reads_them() {
        for text in [
            "0",
            "4500.00",
            "007.50",
            "0.000",
            "123456789012345678",  // 18 digits: the most read plainly
            "1234567890123456789", // 19: the general parser
            "12345678901234567.8",
            "0.0000000000000001",
            "99999999.99999999",
        ] {
            let general = Decimal::from_str(text).unwrap();
            assert_eq!(parse_usd(text).unwrap(), general, "{text}");
            // The same scale: reasons print the value as it was given.
            assert_eq!(parse_usd(text).unwrap().to_string(), general.to_string(), "{text}");
            assert_eq!(parse_usd(text).unwrap().scale(), general.scale(), "{text}");
        }
        for text in ["5.", ".5", "-1.5", "1.2.3", "", " ", "1e5", "+1"] {
            // Left to the general parser, as every decimal was before.
            assert_eq!(plain_decimal(text), None, "{text}");
        }
    }

    #[test]
    fn units_convert_exactly() {
        let wei = TokenAmount::parse("1500000000000000000").unwrap();
        assert_eq!(units_to_decimal(wei, 18).unwrap(), Decimal::from_str("1.5").unwrap());
        let sat = TokenAmount::parse("12345").unwrap();
        assert_eq!(units_to_decimal(sat, 8).unwrap(), Decimal::from_str("0.00012345").unwrap());
        let huge = TokenAmount(U256::MAX);
        assert!(units_to_decimal(huge, 0).is_none(), "too large to price fails closed");
        assert_eq!(units_to_decimal(TokenAmount::parse("7").unwrap(), 0).unwrap(), Decimal::from(7));
    }

    #[test]
    fn json_numbers_are_taken_only_while_exact() {
        let small: NumberText = serde_json::from_str("1500.25").unwrap();
        assert_eq!(small.0, "1500.25");
        let integer: NumberText = serde_json::from_str("100000").unwrap();
        assert_eq!(integer.0, "100000");
        let huge: Result<NumberText, _> = serde_json::from_str("20000000000000000001");
        assert!(huge.unwrap_err().to_string().contains("decimal string"));
        let text: NumberText = serde_json::from_str("\"20000000000000000001\"").unwrap();
        assert_eq!(text.0, "20000000000000000001");
    }

    #[test]
    fn usd_parsing_rejects_non_decimals() {
        assert_eq!(parse_usd("1500.25").unwrap(), Decimal::from_str("1500.25").unwrap());
        assert!(parse_usd("1e5").is_err());
        // Past 28 significant digits a decimal would be rounded: refused.
        assert!(parse_usd("100.000000000000000000000000001").is_err());
        assert!(parse_usd("99.9999999999999999999999999999999").is_err());
        assert_eq!(parse_usd("99.99999999999999999999999999").unwrap().to_string(), "99.99999999999999999999999999");
        // Trailing zeros past the 28th place are no rounding.
        assert_eq!(parse_usd("1.000000000000000000000000000000").unwrap(), Decimal::from(1));
        assert_eq!(parse_usd("100.0000000000000000000000000000").unwrap(), Decimal::from(100));
        assert!(parse_usd("abc").is_err());
        assert!(parse_usd("").is_err());
    }
}
