//! Money: exact integer amounts in an asset's base units.
//!
//! An [`Amount`] is a non-negative integer of base units (wei, the 10^-6 unit
//! of a 6-decimals stablecoin, ...) held in a `U256`. There are no floats
//! anywhere: at every boundary (JSON, database, logs) an amount is the decimal
//! string of its base units, e.g. `"1000000"`.
//!
//! Human amounts such as `"99.99"` are converted with the asset's decimals by
//! [`Amount::parse_decimal`] and [`Amount::format_decimal`], exactly or not
//! at all. The accepted human syntax is deliberately narrow:
//!
//! - one or more ASCII digits, optionally followed by `.` and one or more
//!   digits: `"1"`, `"0.5"`, `"007.250"`;
//! - `".5"` and `"1."` are rejected as malformed (a digit is required on both
//!   sides of the point), as are signs (`"+1"`), whitespace, exponents
//!   (`"1e6"`), digit separators (`"1_000"`, `"1,000"`) and the empty string;
//! - a leading `-` in front of an otherwise well-formed number is reported as
//!   [`MoneyError::Negative`] (even `"-0"`): amounts are never signed;
//! - fractional digits beyond the asset's decimals are accepted only when they
//!   are all zeros (`"1.500"` with 2 decimals is `150` base units), because
//!   they change nothing; a non-zero excess digit would need rounding and is
//!   [`MoneyError::TooManyDecimals`];
//! - decimals may be `0..=77` ([`MAX_DECIMALS`]): `10^77` is the largest power
//!   of ten that fits in a `U256`.
//!
//! The canonical human form produced by [`Amount::format_decimal`] has no
//! leading zeros, no trailing fractional zeros and no trailing point; zero is
//! `"0"`. Parsing a formatted amount with the same decimals gives it back.

use std::fmt;
use std::str::FromStr;

use alloy_primitives::U256;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest number of decimals an asset may have: `10^77 < 2^256 < 10^78`.
pub const MAX_DECIMALS: u8 = 77;

/// Why a string is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The input was the empty string.
    #[error("amount is empty")]
    Empty,
    /// The input is not a plain decimal number.
    #[error(
        "amount `{input}` is malformed: expected digits, optionally followed by `.` and more digits (no sign, exponent, separators or whitespace)"
    )]
    Malformed {
        /// The rejected input.
        input: String,
    },
    /// The input is a negative number.
    #[error("amount must not be negative")]
    Negative,
    /// The input has non-zero fractional digits beyond the asset's decimals.
    #[error("amount has more than {max} fractional digits")]
    TooManyDecimals {
        /// The asset's decimals.
        max: u8,
    },
    /// The amount does not fit in 256 bits of base units.
    #[error("amount is too large: it does not fit in 256 bits of base units")]
    Overflow,
    /// The asset's decimals are beyond [`MAX_DECIMALS`].
    #[error("an asset cannot have {decimals} decimals: at most {MAX_DECIMALS} are supported")]
    UnsupportedDecimals {
        /// The requested decimals.
        decimals: u8,
    },
}

/// A non-negative amount of an asset's base units.
///
/// Serialized as the decimal string of its base units (`"1000000"`); a JSON
/// number is not accepted, because most JSON readers turn it into a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(U256);

impl Amount {
    /// Zero base units.
    pub const ZERO: Amount = Amount(U256::ZERO);

    /// The largest representable amount, `2^256 - 1` base units.
    pub const MAX: Amount = Amount(U256::MAX);

    /// Parses a decimal string of base units such as `"1000000"`.
    ///
    /// Only ASCII digits are accepted (leading zeros are fine); a sign,
    /// whitespace, a decimal point or the empty string is an error.
    pub fn from_base_units(s: &str) -> Result<Amount, MoneyError> {
        match split_number(s)? {
            (int, None) => accumulate(U256::ZERO, int).map(Amount),
            (_, Some(_)) => Err(malformed(s)),
        }
    }

    /// Parses a human amount such as `"99.99"` for an asset with `decimals`
    /// decimals, exactly. See the module docs for the accepted syntax.
    pub fn parse_decimal(s: &str, decimals: u8) -> Result<Amount, MoneyError> {
        if decimals > MAX_DECIMALS {
            return Err(MoneyError::UnsupportedDecimals { decimals });
        }
        let (int, frac) = split_number(s)?;
        let frac = frac.unwrap_or("").trim_end_matches('0');
        if frac.len() > usize::from(decimals) {
            return Err(MoneyError::TooManyDecimals { max: decimals });
        }
        let value = accumulate(U256::ZERO, int)?;
        let value = accumulate(value, frac)?;
        let ten = U256::from(10u8);
        let value = (frac.len()..usize::from(decimals))
            .try_fold(value, |v, _| v.checked_mul(ten).ok_or(MoneyError::Overflow))?;
        Ok(Amount(value))
    }

    /// The canonical human form for an asset with `decimals` decimals:
    /// `"99.99"`, `"1"`, `"0.000001"`, `"0"`. No trailing fractional zeros and
    /// no trailing point. Works for any `decimals`, although only
    /// `0..=MAX_DECIMALS` can be parsed back.
    pub fn format_decimal(&self, decimals: u8) -> String {
        let digits = self.0.to_string();
        let decimals = usize::from(decimals);
        if decimals == 0 {
            return digits;
        }
        // Left-pad so that there is at least one integer digit.
        let padded = if digits.len() <= decimals {
            format!("{}{digits}", "0".repeat(decimals + 1 - digits.len()))
        } else {
            digits
        };
        let (int, frac) = padded.split_at(padded.len() - decimals);
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            int.to_owned()
        } else {
            format!("{int}.{frac}")
        }
    }

    /// The decimal string of the base units, as stored and sent at boundaries.
    pub fn to_base_units_string(&self) -> String {
        self.0.to_string()
    }

    /// The base units as a `U256`.
    pub const fn as_u256(&self) -> U256 {
        self.0
    }

    /// Whether this is zero base units.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// `self + rhs`, or `None` if it does not fit in 256 bits.
    pub fn checked_add(self, rhs: Amount) -> Option<Amount> {
        self.0.checked_add(rhs.0).map(Amount)
    }

    /// `self - rhs`, or `None` if `rhs > self`.
    pub fn checked_sub(self, rhs: Amount) -> Option<Amount> {
        self.0.checked_sub(rhs.0).map(Amount)
    }

    /// `self + rhs`, clamped at [`Amount::MAX`].
    pub fn saturating_add(self, rhs: Amount) -> Amount {
        Amount(self.0.saturating_add(rhs.0))
    }

    /// `self - rhs`, clamped at zero.
    pub fn saturating_sub(self, rhs: Amount) -> Amount {
        Amount(self.0.saturating_sub(rhs.0))
    }
}

/// Splits `s` into its integer digits and, if there is a point, its
/// fractional digits; rejects everything that is not `digits[.digits]`.
fn split_number(s: &str) -> Result<(&str, Option<&str>), MoneyError> {
    fn shape(s: &str) -> Option<(&str, Option<&str>)> {
        let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        let (int, frac) = match s.split_once('.') {
            Some((int, frac)) => (int, Some(frac)),
            None => (s, None),
        };
        (all_digits(int) && frac.is_none_or(all_digits)).then_some((int, frac))
    }
    if s.is_empty() {
        return Err(MoneyError::Empty);
    }
    if let Some(rest) = s.strip_prefix('-') {
        return Err(match shape(rest) {
            Some(_) => MoneyError::Negative,
            None => malformed(s),
        });
    }
    shape(s).ok_or_else(|| malformed(s))
}

/// Appends ASCII `digits` to `value` in base ten, checking for overflow.
fn accumulate(value: U256, digits: &str) -> Result<U256, MoneyError> {
    let ten = U256::from(10u8);
    digits.bytes().try_fold(value, |v, b| {
        v.checked_mul(ten)
            .and_then(|v| v.checked_add(U256::from(b - b'0')))
            .ok_or(MoneyError::Overflow)
    })
}

fn malformed(s: &str) -> MoneyError {
    MoneyError::Malformed {
        input: s.to_owned(),
    }
}

impl From<u64> for Amount {
    fn from(value: u64) -> Amount {
        Amount(U256::from(value))
    }
}

impl From<U256> for Amount {
    fn from(value: U256) -> Amount {
        Amount(value)
    }
}

/// Base units, e.g. `1000000`.
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Base units; see [`Amount::from_base_units`].
impl FromStr for Amount {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Amount, MoneyError> {
        Amount::from_base_units(s)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Amount, D::Error> {
        let s = String::deserialize(deserializer)?;
        Amount::from_base_units(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn amount(base_units: &str) -> Amount {
        Amount::from_base_units(base_units).unwrap()
    }

    /// `2^256 - 1`, the largest amount.
    const U256_MAX: &str =
        "115792089237316195423570985008687907853269984665640564039457584007913129639935";
    /// `2^256`, one more than fits.
    const TWO_POW_256: &str =
        "115792089237316195423570985008687907853269984665640564039457584007913129639936";

    #[test]
    fn base_units_parse_plain_digits_and_leading_zeros() {
        assert_eq!(amount("0"), Amount::ZERO);
        assert_eq!(amount("1000000"), Amount::from(1_000_000));
        assert_eq!(amount("000123"), Amount::from(123));
        assert_eq!(amount(U256_MAX), Amount::MAX);
    }

    #[test]
    fn base_units_reject_everything_but_digits() {
        assert_eq!(Amount::from_base_units(""), Err(MoneyError::Empty));
        assert_eq!(Amount::from_base_units("-1"), Err(MoneyError::Negative));
        for bad in [
            "+1", " 1", "1 ", "1.0", "1.", ".1", "1e6", "1_000", "1,000", "0x10", "abc", "-", "١",
        ] {
            assert!(
                matches!(
                    Amount::from_base_units(bad),
                    Err(MoneyError::Malformed { .. })
                ),
                "{bad:?} must be malformed"
            );
        }
    }

    #[test]
    fn base_units_reject_overflow_beyond_u256() {
        assert_eq!(
            Amount::from_base_units(TWO_POW_256),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Amount::from_base_units(&format!("{U256_MAX}0")),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Amount::from_base_units(&"9".repeat(200)),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn decimal_parses_human_amounts_exactly() {
        assert_eq!(Amount::parse_decimal("99.99", 2), Ok(Amount::from(9999)));
        assert_eq!(
            Amount::parse_decimal("99.99", 6),
            Ok(Amount::from(99_990_000))
        );
        assert_eq!(
            Amount::parse_decimal("1", 18),
            Ok(amount("1000000000000000000"))
        );
        assert_eq!(Amount::parse_decimal("0.000001", 6), Ok(Amount::from(1)));
        assert_eq!(Amount::parse_decimal("0", 6), Ok(Amount::ZERO));
        assert_eq!(Amount::parse_decimal("0.0", 0), Ok(Amount::ZERO));
        assert_eq!(Amount::parse_decimal("007.50", 2), Ok(Amount::from(750)));
        assert_eq!(Amount::parse_decimal("42", 0), Ok(Amount::from(42)));
    }

    #[test]
    fn decimal_accepts_zero_digits_beyond_decimals() {
        assert_eq!(Amount::parse_decimal("1.500", 2), Ok(Amount::from(150)));
        assert_eq!(Amount::parse_decimal("1.000000", 0), Ok(Amount::from(1)));
    }

    #[test]
    fn decimal_rejects_nonzero_digits_beyond_decimals() {
        assert_eq!(
            Amount::parse_decimal("0.0000001", 6),
            Err(MoneyError::TooManyDecimals { max: 6 })
        );
        assert_eq!(
            Amount::parse_decimal("1.5", 0),
            Err(MoneyError::TooManyDecimals { max: 0 })
        );
        assert_eq!(
            Amount::parse_decimal("1.001", 2),
            Err(MoneyError::TooManyDecimals { max: 2 })
        );
    }

    #[test]
    fn decimal_rejects_negative_amounts() {
        for bad in ["-1", "-0", "-0.5", "-99.99"] {
            assert_eq!(
                Amount::parse_decimal(bad, 6),
                Err(MoneyError::Negative),
                "{bad}"
            );
        }
    }

    #[test]
    fn decimal_rejects_malformed_input() {
        assert_eq!(Amount::parse_decimal("", 6), Err(MoneyError::Empty));
        for bad in [
            ".5", "1.", ".", "-", "-.5", "--1", "+1", "1e6", "1E-6", "1.2.3", " 1", "1 ", "1_000",
            "1,5", "NaN", "inf", "0x1", "１",
        ] {
            assert!(
                matches!(
                    Amount::parse_decimal(bad, 6),
                    Err(MoneyError::Malformed { .. })
                ),
                "{bad:?} must be malformed"
            );
        }
    }

    #[test]
    fn decimal_rejects_overflow() {
        assert_eq!(
            Amount::parse_decimal(TWO_POW_256, 0),
            Err(MoneyError::Overflow)
        );
        // 2^256 / 10^18 rounded up, in human units of an 18-decimals asset.
        assert_eq!(
            Amount::parse_decimal(
                "115792089237316195423570985008687907853269984665640564039458",
                18
            ),
            Err(MoneyError::Overflow)
        );
        assert_eq!(Amount::parse_decimal("2", 77), Err(MoneyError::Overflow));
        assert_eq!(
            Amount::parse_decimal(&format!("{}.5", "9".repeat(100)), 1),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn decimal_supports_up_to_77_decimals() {
        let one_unit_77 = format!("1{}", "0".repeat(77));
        assert_eq!(Amount::parse_decimal("1", 77), Ok(amount(&one_unit_77)));
        assert_eq!(amount(&one_unit_77).format_decimal(77), "1");
        assert_eq!(
            Amount::parse_decimal(&format!("0.{}1", "0".repeat(76)), 77),
            Ok(Amount::from(1))
        );
        // 2^256 - 1 has 78 digits: one integer digit, the point and 77 fractional digits.
        assert_eq!(Amount::MAX.format_decimal(77).len(), 79);
        assert_eq!(
            Amount::parse_decimal("1", 78),
            Err(MoneyError::UnsupportedDecimals { decimals: 78 })
        );
        assert_eq!(
            Amount::parse_decimal("0", u8::MAX),
            Err(MoneyError::UnsupportedDecimals { decimals: u8::MAX })
        );
    }

    #[test]
    fn format_is_canonical() {
        assert_eq!(Amount::ZERO.format_decimal(0), "0");
        assert_eq!(Amount::ZERO.format_decimal(18), "0");
        assert_eq!(Amount::from(9999).format_decimal(2), "99.99");
        assert_eq!(Amount::from(9990).format_decimal(2), "99.9");
        assert_eq!(Amount::from(9900).format_decimal(2), "99");
        assert_eq!(Amount::from(1).format_decimal(6), "0.000001");
        assert_eq!(Amount::from(1_000_000).format_decimal(6), "1");
        assert_eq!(Amount::from(1_500_000).format_decimal(6), "1.5");
        assert_eq!(Amount::from(42).format_decimal(0), "42");
        assert_eq!(Amount::from(1).format_decimal(u8::MAX).len(), 2 + 255);
    }

    #[test]
    fn display_and_from_str_use_base_units() {
        let a = Amount::from(1_000_000);
        assert_eq!(a.to_string(), "1000000");
        assert_eq!(a.to_base_units_string(), "1000000");
        assert_eq!("1000000".parse::<Amount>(), Ok(a));
        assert!("1.5".parse::<Amount>().is_err());
        assert_eq!(Amount::MAX.to_string(), U256_MAX);
    }

    #[test]
    fn serde_uses_a_base_units_string() {
        let a = Amount::from(1_000_000);
        assert_eq!(serde_json::to_string(&a).unwrap(), r#""1000000""#);
        assert_eq!(serde_json::from_str::<Amount>(r#""1000000""#).unwrap(), a);
        // Numbers are not accepted: JSON readers commonly turn them into floats.
        assert!(serde_json::from_str::<Amount>("1000000").is_err());
        assert!(serde_json::from_str::<Amount>(r#""1.5""#).is_err());
        assert!(serde_json::from_str::<Amount>(r#""-1""#).is_err());
        assert!(serde_json::from_str::<Amount>(&format!(r#""{TWO_POW_256}""#)).is_err());
    }

    #[test]
    fn arithmetic_is_checked_or_saturating() {
        let (one, two) = (Amount::from(1), Amount::from(2));
        assert_eq!(one.checked_add(two), Some(Amount::from(3)));
        assert_eq!(Amount::MAX.checked_add(one), None);
        assert_eq!(Amount::MAX.saturating_add(one), Amount::MAX);
        assert_eq!(two.checked_sub(one), Some(one));
        assert_eq!(one.checked_sub(two), None);
        assert_eq!(one.saturating_sub(two), Amount::ZERO);
        assert!(Amount::ZERO.is_zero() && Amount::default().is_zero() && !one.is_zero());
        assert!(one < two && Amount::MAX > two);
        assert_eq!(two.as_u256(), U256::from(2u8));
    }

    #[test]
    fn error_messages_name_the_problem() {
        assert_eq!(
            MoneyError::TooManyDecimals { max: 6 }.to_string(),
            "amount has more than 6 fractional digits"
        );
        assert!(malformed("1e6").to_string().contains("`1e6`"));
        assert!(
            MoneyError::UnsupportedDecimals { decimals: 80 }
                .to_string()
                .contains("at most 77")
        );
    }

    fn any_amount() -> impl Strategy<Value = Amount> {
        prop_oneof![
            any::<u64>().prop_map(Amount::from),
            any::<[u64; 4]>().prop_map(|limbs| Amount(U256::from_limbs(limbs))),
        ]
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(a in any_amount(), decimals in 0..=MAX_DECIMALS) {
            prop_assert_eq!(Amount::parse_decimal(&a.format_decimal(decimals), decimals), Ok(a));
        }

        #[test]
        fn base_units_round_trip(a in any_amount()) {
            prop_assert_eq!(Amount::from_base_units(&a.to_base_units_string()), Ok(a));
            let json = serde_json::to_string(&a).unwrap();
            prop_assert_eq!(serde_json::from_str::<Amount>(&json).unwrap(), a);
        }

        #[test]
        fn parse_then_format_is_canonical(
            int in "[0-9]{1,20}",
            decimals in 0u8..=30,
            frac_seed in "[0-9]{30}",
            frac_len in 0usize..=30,
            trailing_zeros in 0usize..=5,
            with_point in any::<bool>(),
        ) {
            let frac = &frac_seed[..frac_len.min(usize::from(decimals))];
            let frac_text = format!("{frac}{}", "0".repeat(trailing_zeros));
            let input = if with_point && !frac_text.is_empty() {
                format!("{int}.{frac_text}")
            } else {
                int.clone()
            };
            let canonical_int = match int.trim_start_matches('0') { "" => "0", s => s };
            let canonical_frac = if input.contains('.') { frac_text.trim_end_matches('0') } else { "" };
            let canonical = if canonical_frac.is_empty() {
                canonical_int.to_owned()
            } else {
                format!("{canonical_int}.{canonical_frac}")
            };
            let parsed = Amount::parse_decimal(&input, decimals).unwrap();
            prop_assert_eq!(parsed.format_decimal(decimals), canonical);
        }

        #[test]
        fn nonzero_excess_digits_are_rejected(
            a in any::<u64>(), decimals in 0u8..=30, excess in 1u8..=9,
        ) {
            let input = Amount::from(a).format_decimal(decimals);
            let point = if input.contains('.') { "" } else { "." };
            let frac_digits = input.split_once('.').map_or(0, |(_, f)| f.len());
            let pad = "0".repeat(usize::from(decimals) - frac_digits);
            let too_precise = format!("{input}{point}{pad}{excess}");
            prop_assert_eq!(
                Amount::parse_decimal(&too_precise, decimals),
                Err(MoneyError::TooManyDecimals { max: decimals })
            );
        }

        #[test]
        fn negatives_are_rejected(a in any_amount(), decimals in 0..=MAX_DECIMALS) {
            let input = format!("-{}", a.format_decimal(decimals));
            prop_assert_eq!(Amount::parse_decimal(&input, decimals), Err(MoneyError::Negative));
        }

        #[test]
        fn values_beyond_u256_are_rejected(extra in 1u64.., decimals in 0..=MAX_DECIMALS) {
            // MAX + extra base units, written in human units.
            let too_big = Amount::MAX.as_u256().to_string().parse::<alloy_primitives::U512>()
                .unwrap() + alloy_primitives::U512::from(extra);
            let digits = too_big.to_string();
            let d = usize::from(decimals);
            let human = if d == 0 {
                digits
            } else {
                let (i, f) = digits.split_at(digits.len() - d);
                format!("{i}.{f}")
            };
            prop_assert_eq!(Amount::parse_decimal(&human, decimals), Err(MoneyError::Overflow));
        }

        #[test]
        fn garbage_is_never_accepted(s in "[0-9]*[^0-9.][0-9.]*") {
            prop_assert!(Amount::parse_decimal(&s, 18).is_err());
            prop_assert!(Amount::from_base_units(&s).is_err());
        }
    }
}
