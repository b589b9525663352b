//! Exact decimal rates and the one conversion of a fiat price to base units.

use alloy_primitives::U256;

use super::RateError;
use crate::invoice::Amount;

/// Most fractional digits a rate may carry (after applying an exponent).
const MAX_SCALE: u32 = 36;

/// A positive decimal: `mantissa / 10^scale`, exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    mantissa: U256,
    scale: u32,
}

/// Why a text is not a rate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateParseError {
    #[error("`{0}` is not a decimal number")]
    Malformed(String),
    #[error("a rate must be greater than zero")]
    NotPositive,
    #[error("`{0}` has more than {MAX_SCALE} fractional digits or is too large")]
    OutOfRange(String),
}

impl Rate {
    /// Exactly 1.
    pub const ONE: Rate = Rate {
        mantissa: U256::from_limbs([1, 0, 0, 0]),
        scale: 0,
    };

    /// `mantissa / 10^scale`, e.g. a price feed's integer answer and its decimals.
    pub fn from_scaled(mantissa: U256, scale: u32) -> Result<Rate, RateParseError> {
        if mantissa.is_zero() {
            return Err(RateParseError::NotPositive);
        }
        if scale > MAX_SCALE {
            return Err(RateParseError::OutOfRange(format!("{mantissa}e-{scale}")));
        }
        Ok(Rate { mantissa, scale })
    }

    /// Parses `digits[.digits][(e|E)[+|-]digits]`: a JSON number's text or a decimal
    /// string. No sign, no whitespace; zero is refused.
    pub fn parse(text: &str) -> Result<Rate, RateParseError> {
        let malformed = || RateParseError::Malformed(text.to_owned());
        let range = || RateParseError::OutOfRange(text.to_owned());
        let (number, exponent) = match text.find(['e', 'E']) {
            Some(at) => {
                let exp = &text[at + 1..];
                let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(malformed());
                }
                let exp: i64 = exp.parse().map_err(|_| range())?;
                (&text[..at], exp)
            }
            None => (text, 0),
        };
        let (int, frac) = match number.split_once('.') {
            Some((i, f)) => (i, f),
            None => (number, ""),
        };
        let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty()
            || !digits_ok(int)
            || !digits_ok(frac)
            || (number.contains('.') && frac.is_empty())
        {
            return Err(malformed());
        }
        let frac = frac.trim_end_matches('0');
        let mut mantissa = U256::ZERO;
        for b in int.bytes().chain(frac.bytes()) {
            mantissa = mantissa
                .checked_mul(U256::from(10u8))
                .and_then(|m| m.checked_add(U256::from(b - b'0')))
                .ok_or_else(range)?;
        }
        if mantissa.is_zero() {
            return Err(RateParseError::NotPositive);
        }
        let mut scale = frac.len() as i64 - exponent;
        while scale < 0 {
            mantissa = mantissa.checked_mul(U256::from(10u8)).ok_or_else(range)?;
            scale += 1;
        }
        if scale > i64::from(MAX_SCALE) {
            return Err(range());
        }
        Ok(Rate {
            mantissa,
            scale: scale as u32,
        })
    }
}

impl std::fmt::Display for Rate {
    /// Canonical decimal: no exponent, no trailing fractional zeros.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = self.mantissa.to_string();
        let scale = self.scale as usize;
        if scale == 0 {
            return f.write_str(&digits);
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        let frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            f.write_str(int)
        } else {
            write!(f, "{int}.{frac}")
        }
    }
}

fn pow10(n: u32) -> Option<U256> {
    U256::from(10u8).checked_pow(U256::from(n))
}

/// `fiat_amount` (a positive decimal string, at most 18 fractional digits) at `rate`
/// (fiat per whole asset unit) in base units of an asset with `decimals` decimals:
/// `ceil(fiat · 10^decimals / rate)`. Rounded **up**: the payer never pays less than
/// the price.
pub fn fiat_to_base_units(
    fiat_amount: &str,
    rate: &Rate,
    decimals: u8,
) -> Result<Amount, RateError> {
    let invalid = || RateError::InvalidAmount(fiat_amount.to_owned());
    let frac_len = fiat_amount
        .split_once('.')
        .map_or(0, |(_, f)| f.trim_end_matches('0').len());
    if frac_len > 18 {
        return Err(invalid());
    }
    let fiat = Amount::parse_decimal(fiat_amount, frac_len as u8).map_err(|_| invalid())?;
    if fiat.is_zero() {
        return Err(invalid());
    }
    // fiat = F / 10^fs, rate = R / 10^rs: amount = F · 10^rs · 10^d / (R · 10^fs).
    let numerator = fiat
        .as_u256()
        .checked_mul(pow10(rate.scale).ok_or(RateError::Overflow)?)
        .and_then(|n| n.checked_mul(pow10(u32::from(decimals))?))
        .ok_or(RateError::Overflow)?;
    let denominator = rate
        .mantissa
        .checked_mul(pow10(frac_len as u32).ok_or(RateError::Overflow)?)
        .ok_or(RateError::Overflow)?;
    let (q, r) = numerator.div_rem(denominator);
    let q = if r.is_zero() {
        q
    } else {
        q.checked_add(U256::from(1u8)).ok_or(RateError::Overflow)?
    };
    Ok(Amount::from(q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_exactly_from_json_number_text() {
        for (text, canonical) in [
            ("1", "1"),
            ("1.0002", "1.0002"),
            ("3021.450", "3021.45"),
            ("7.1", "7.1"),
            ("1.5e-05", "0.000015"),
            ("2E3", "2000"),
            ("0.1", "0.1"),
        ] {
            assert_eq!(Rate::parse(text).unwrap().to_string(), canonical, "{text}");
        }
        for bad in ["", "-1", "+1", ".5", "5.", "1,0", " 1", "0x10", "1e", "abc"] {
            assert!(
                matches!(Rate::parse(bad), Err(RateParseError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(Rate::parse("0.000"), Err(RateParseError::NotPositive));
        assert!(matches!(
            Rate::parse("1e-40"),
            Err(RateParseError::OutOfRange(_))
        ));
    }

    #[test]
    fn conversion_is_exact_and_rounds_the_payers_amount_up() {
        let rate = |t| Rate::parse(t).unwrap();
        let convert = |fiat, r, d| fiat_to_base_units(fiat, &rate(r), d).unwrap().to_string();
        assert_eq!(convert("20", "1", 6), "20000000");
        assert_eq!(convert("20.00", "1", 6), "20000000");
        // 20 USD at 1.0002 USD per USDT: 19.996000799…, up to the next base unit.
        assert_eq!(convert("20", "1.0002", 6), "19996001");
        // An exact result is not rounded.
        assert_eq!(convert("15", "7.5", 6), "2000000");
        // 0.1 + 0.2 style fractions stay exact.
        assert_eq!(convert("0.3", "0.1", 0), "3");
        assert_eq!(convert("1", "3", 0), "1");
        assert_eq!(convert("0.01", "3000", 18), "3333333333334");
        for bad in ["0", "0.00", "-1", "1e2", "", ".5", "1.0000000000000000001"] {
            assert!(
                matches!(
                    fiat_to_base_units(bad, &rate("1"), 6),
                    Err(RateError::InvalidAmount(_))
                ),
                "{bad}"
            );
        }
    }
}
