//! Assets of a chain: the native token (`AIT`, 18 decimals) and those its genesis declares
//! (e.g. a devnet stable `USDX` with 6 decimals that the faucet's key may mint).
//!
//! In events and state the native asset is `None` (so events written before assets existed
//! read unchanged); any other asset is its symbol.

use serde::{Deserialize, Serialize};

use crate::address::Address;

/// Symbol of every chain's native asset.
pub const NATIVE: &str = "AIT";
/// Decimals of the native asset.
pub const NATIVE_DECIMALS: u8 = 18;
/// Longest asset symbol.
pub const SYMBOL_LEN_MAX: usize = 12;
/// Most decimals an asset may declare (10^38 < u128::MAX).
pub const DECIMALS_MAX: u8 = 30;
/// Most assets a genesis may declare.
pub const ASSETS_MAX: usize = 32;

/// An asset a genesis declares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetSpec {
    /// Symbol: 1-12 uppercase ASCII letters or digits, not `AIT`.
    pub symbol: String,
    /// Decimals of its display unit.
    pub decimals: u8,
    /// The one account that may mint it with a `mint` transaction (none: nobody can).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minter: Option<Address>,
}

impl AssetSpec {
    /// Checks the symbol and decimals.
    pub fn validate(&self) -> Result<(), String> {
        let symbol_ok = !self.symbol.is_empty()
            && self.symbol.len() <= SYMBOL_LEN_MAX
            && self
                .symbol
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !symbol_ok || self.symbol == NATIVE {
            return Err(format!(
                "asset symbol {:?} must be 1-{SYMBOL_LEN_MAX} uppercase letters or digits, not {NATIVE}",
                self.symbol
            ));
        }
        if self.decimals > DECIMALS_MAX {
            return Err(format!(
                "asset {} has more than {DECIMALS_MAX} decimals",
                self.symbol
            ));
        }
        Ok(())
    }
}

/// The stored form of an asset named in a request: `None` for the native one.
pub fn normalize(symbol: Option<&str>) -> Option<String> {
    match symbol {
        None | Some(NATIVE) => None,
        Some(other) => Some(other.to_string()),
    }
}

/// The symbol of a stored asset.
pub fn symbol(asset: &Option<String>) -> &str {
    asset.as_deref().unwrap_or(NATIVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(symbol: &str, decimals: u8) -> AssetSpec {
        AssetSpec {
            symbol: symbol.into(),
            decimals,
            minter: None,
        }
    }

    #[test]
    fn symbols_are_short_uppercase_and_never_the_native_one() {
        assert!(spec("USDX", 6).validate().is_ok());
        for bad in ["", "usdx", "AIT", "TOO-LONG", "ABCDEFGHIJKLM"] {
            assert!(spec(bad, 6).validate().is_err(), "{bad:?}");
        }
        assert!(spec("USDX", DECIMALS_MAX + 1).validate().is_err());
    }

    #[test]
    fn the_native_asset_is_stored_as_none() {
        assert_eq!(normalize(Some("AIT")), None);
        assert_eq!(normalize(None), None);
        assert_eq!(normalize(Some("USDX")).as_deref(), Some("USDX"));
        assert_eq!(symbol(&None), "AIT");
    }
}
