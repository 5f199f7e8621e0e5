//! Token amounts: integer base units (u128), 18 decimals, strings in JSON.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Decimals of every native token.
pub const DECIMALS: u32 = 18;
/// Base units in one whole token (10^18).
pub const ONE_TOKEN: u128 = 10u128.pow(DECIMALS);

/// An amount of base units. Arithmetic is checked: overflow is an error, never a wrap.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(pub u128);

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);

    /// Whether it is zero.
    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }

    /// Whole tokens → base units; `None` on overflow.
    pub fn tokens(whole: u128) -> Option<Amount> {
        whole.checked_mul(ONE_TOKEN).map(Amount)
    }

    /// `self + other`, `None` on overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// `self - other`, `None` if it would go negative.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// Parses a decimal number of units of an asset with `decimals` decimals (`"12.5"` is
    /// 12.5 units), the symbol already taken off.
    pub fn parse_decimal(number: &str, decimals: u32) -> Result<Amount, BadAmount> {
        let number = number.trim();
        if number.starts_with('-') {
            return Err(BadAmount::Negative);
        }
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && frac.is_empty()) || !all_digits(whole) || !all_digits(frac) {
            return Err(BadAmount::NotDecimal);
        }
        if frac.len() > decimals as usize {
            return Err(BadAmount::TooManyDecimals(decimals));
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| BadAmount::TooLarge)?
        };
        let mut frac_units: u128 = 0;
        if !frac.is_empty() {
            frac_units = frac.parse().map_err(|_| BadAmount::NotDecimal)?;
            frac_units *= 10u128.pow(decimals - frac.len() as u32);
        }
        10u128
            .checked_pow(decimals)
            .and_then(|one| whole.checked_mul(one))
            .and_then(|w| w.checked_add(frac_units))
            .map(Amount)
            .ok_or(BadAmount::TooLarge)
    }

    /// Shows the amount as decimal tokens, e.g. `12.5`.
    pub fn display_tokens(self) -> String {
        self.display_units(DECIMALS)
    }

    /// Shows the amount in decimal units of an asset with `decimals` decimals.
    pub fn display_units(self, decimals: u32) -> String {
        let one = 10u128.pow(decimals);
        let (whole, frac) = (self.0 / one, self.0 % one);
        if frac == 0 {
            return whole.to_string();
        }
        let frac = format!("{frac:0width$}", width = decimals as usize);
        format!("{whole}.{}", frac.trim_end_matches('0'))
    }
}

fn all_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// Why a string is not an amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadAmount {
    /// Base units are a string of digits.
    #[error("amount must be a string of base units (digits only), e.g. \"1000\"")]
    NotDigits,
    /// A decimal amount is digits with at most one point.
    #[error("amount must be a decimal number, e.g. \"12.5\"")]
    NotDecimal,
    /// No sign is allowed, and amounts are never below zero.
    #[error("amount cannot be negative")]
    Negative,
    /// More than 2^128 - 1 base units.
    #[error("amount is too large: at most 340282366920938463463374607431768211455 base units")]
    TooLarge,
    /// Finer than the asset's smallest unit.
    #[error("amount has more than the asset's {0} decimals")]
    TooManyDecimals(u32),
}

impl FromStr for Amount {
    type Err = BadAmount;
    /// Base units only: digits, no sign, no leading `+`, at most u128.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with('-') && s.len() > 1 && all_digits(&s[1..]) {
            return Err(BadAmount::Negative);
        }
        if s.is_empty() || !all_digits(s) {
            return Err(BadAmount::NotDigits);
        }
        s.parse::<u128>()
            .map(Amount)
            .map_err(|_| BadAmount::TooLarge)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({})", self.0)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::text::parse(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_base_units_and_decimal_amounts() {
        assert_eq!("1000".parse::<Amount>(), Ok(Amount(1000)));
        assert_eq!(
            Amount::parse_decimal("12.5", DECIMALS),
            Ok(Amount(12_500_000_000_000_000_000))
        );
        assert_eq!(
            Amount::parse_decimal(" 3 ", DECIMALS),
            Ok(Amount(3 * ONE_TOKEN))
        );
        assert_eq!(Amount::parse_decimal(".5", 6), Ok(Amount(500_000)));
        assert_eq!(
            Amount::parse_decimal("0.000000000000000001", DECIMALS),
            Ok(Amount(1))
        );
        assert_eq!(Amount::parse_decimal("2.5", 6), Ok(Amount(2_500_000)));
    }

    #[test]
    fn bad_amounts_say_what_is_wrong() {
        for bad in ["", "+1", "1.5", "abc", "1e5", " 1"] {
            assert_eq!(bad.parse::<Amount>(), Err(BadAmount::NotDigits), "{bad}");
        }
        assert_eq!("-1".parse::<Amount>(), Err(BadAmount::Negative));
        let past_max = "340282366920938463463374607431768211456";
        assert_eq!(past_max.parse::<Amount>(), Err(BadAmount::TooLarge));
        assert_eq!("9".repeat(60).parse::<Amount>(), Err(BadAmount::TooLarge));
        assert_eq!(
            u128::MAX.to_string().parse::<Amount>(),
            Ok(Amount(u128::MAX))
        );
        for bad in ["", ".", "1.2.3", "1e3", "+1", "AIT"] {
            assert_eq!(
                Amount::parse_decimal(bad, DECIMALS),
                Err(BadAmount::NotDecimal),
                "{bad}"
            );
        }
        assert_eq!(Amount::parse_decimal("-1", 6), Err(BadAmount::Negative));
        assert_eq!(
            Amount::parse_decimal("0.0000000000000000001", DECIMALS),
            Err(BadAmount::TooManyDecimals(18))
        );
        assert_eq!(
            Amount::parse_decimal("340282366920938463464", DECIMALS),
            Err(BadAmount::TooLarge)
        );
        assert!(BadAmount::TooLarge.to_string().contains("too large"));
        assert!(!BadAmount::NotDigits.to_string().contains("AIT"));
    }

    #[test]
    fn other_assets_display_with_their_own_decimals() {
        assert_eq!(Amount(2_500_000).display_units(6), "2.5");
        assert_eq!(Amount(3_000_000).display_units(6), "3");
    }

    #[test]
    fn displays_tokens() {
        assert_eq!(Amount(12_500_000_000_000_000_000).display_tokens(), "12.5");
        assert_eq!(Amount(ONE_TOKEN).display_tokens(), "1");
        assert_eq!(Amount(1).display_tokens(), "0.000000000000000001");
    }

    #[test]
    fn json_is_a_string_of_base_units() {
        assert_eq!(serde_json::to_string(&Amount(5)).unwrap(), "\"5\"");
        assert_eq!(serde_json::from_str::<Amount>("\"7\"").unwrap(), Amount(7));
        assert!(serde_json::from_str::<Amount>("7").is_err());
    }
}
