//! The fake host's money conversions: the real host's rules and error texts
//! (`polypay_host::invoice::money` behind the `money` capability), re-done without a
//! 256-bit integer type, for native plugin tests only. A test of the host pins that the
//! two agree on a table of inputs; a plugin never parses money itself (it asks the host
//! through [`crate::money`]).

use crate::HostError;

/// The largest number of decimals an asset may have: `10^77 < 2^256 < 10^78`.
const MAX_DECIMALS: u8 = 77;

/// `2^256 - 1`, the largest amount of base units.
const U256_MAX: &str =
    "115792089237316195423570985008687907853269984665640564039457584007913129639935";

const MALFORMED: &str = "expected digits, optionally followed by `.` and more digits (no sign, exponent, separators or whitespace)";

fn invalid(text: &str, why: String) -> HostError {
    HostError::Invalid(format!("amount `{text}`: {why}"))
}

/// `digits[.digits]`, or the host's error for `text`.
fn split(text: &str) -> Result<(&str, Option<&str>), HostError> {
    fn shape(s: &str) -> Option<(&str, Option<&str>)> {
        let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        let (int, frac) = match s.split_once('.') {
            Some((int, frac)) => (int, Some(frac)),
            None => (s, None),
        };
        (all_digits(int) && frac.is_none_or(all_digits)).then_some((int, frac))
    }
    if text.is_empty() {
        return Err(invalid(text, "amount is empty".into()));
    }
    let malformed = || invalid(text, format!("amount `{text}` is malformed: {MALFORMED}"));
    if let Some(rest) = text.strip_prefix('-') {
        return Err(match shape(rest) {
            Some(_) => invalid(text, "amount must not be negative".into()),
            None => malformed(),
        });
    }
    shape(text).ok_or_else(malformed)
}

/// Base-unit digits without leading zeros ("0" for zero), refused past `2^256 - 1`.
fn canonical_units(text: &str, digits: &str) -> Result<String, HostError> {
    let trimmed = digits.trim_start_matches('0');
    let trimmed = if trimmed.is_empty() { "0" } else { trimmed };
    if trimmed.len() > U256_MAX.len() || (trimmed.len() == U256_MAX.len() && trimmed > U256_MAX) {
        return Err(invalid(
            text,
            "amount is too large: it does not fit in 256 bits of base units".into(),
        ));
    }
    Ok(trimmed.to_owned())
}

/// `money.to-base-units` for an asset with `decimals` decimals.
pub(crate) fn to_base_units(text: &str, decimals: u8) -> Result<String, HostError> {
    if decimals > MAX_DECIMALS {
        return Err(invalid(
            text,
            format!(
                "an asset cannot have {decimals} decimals: at most {MAX_DECIMALS} are supported"
            ),
        ));
    }
    let (int, frac) = split(text)?;
    let frac = frac.unwrap_or("").trim_end_matches('0');
    if frac.len() > usize::from(decimals) {
        return Err(invalid(
            text,
            format!("amount has more than {decimals} fractional digits"),
        ));
    }
    let padding = "0".repeat(usize::from(decimals) - frac.len());
    canonical_units(text, &format!("{int}{frac}{padding}"))
}

/// Validates base units (`types.base-units`) and returns them without leading zeros.
pub(crate) fn base_units(text: &str) -> Result<String, HostError> {
    match split(text)? {
        (int, None) => canonical_units(text, int),
        (_, Some(_)) => Err(invalid(
            text,
            format!("amount `{text}` is malformed: {MALFORMED}"),
        )),
    }
}

/// `money.to-decimal`: valid base units in the asset's units, canonical.
pub(crate) fn to_decimal(text: &str, decimals: u8) -> Result<String, HostError> {
    Ok(format_units(&base_units(text)?, decimals))
}

/// Canonical decimal form of canonical base-unit digits.
pub(crate) fn format_units(digits: &str, decimals: u8) -> String {
    let decimals = usize::from(decimals);
    if decimals == 0 {
        return digits.to_owned();
    }
    let padded = if digits.len() <= decimals {
        format!("{}{digits}", "0".repeat(decimals + 1 - digits.len()))
    } else {
        digits.to_owned()
    };
    let (int, frac) = padded.split_at(padded.len() - decimals);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_exactly_both_ways() {
        assert_eq!(to_base_units("99.99", 6).unwrap(), "99990000");
        assert_eq!(to_base_units("0.000001", 6).unwrap(), "1");
        assert_eq!(to_base_units("007.50", 2).unwrap(), "750");
        assert_eq!(to_base_units("1.500", 2).unwrap(), "150");
        assert_eq!(to_base_units("0", 18).unwrap(), "0");
        assert_eq!(to_decimal("99990000", 6).unwrap(), "99.99");
        assert_eq!(to_decimal("0001", 6).unwrap(), "0.000001");
        assert_eq!(to_decimal("0", 6).unwrap(), "0");
        assert_eq!(to_decimal(U256_MAX, 0).unwrap(), U256_MAX);
    }

    #[test]
    fn refuses_what_the_host_refuses() {
        for (text, decimals) in [
            ("", 6),
            ("-1", 6),
            ("+1", 6),
            ("1e6", 6),
            (" 1", 6),
            ("1.", 6),
            (".5", 6),
            ("0.0000001", 6),
            ("1", 78),
        ] {
            assert!(
                matches!(to_base_units(text, decimals), Err(HostError::Invalid(_))),
                "{text:?}"
            );
        }
        let past = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert!(to_base_units(past, 0).is_err());
        assert!(to_base_units(U256_MAX, 0).is_ok());
        assert!(base_units("1.0").is_err());
    }
}
