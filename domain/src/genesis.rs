//! Genesis of a chain: the consensus-relevant part of a chain's configuration. Its hash is the
//! `prev_hash` of block 0, binding the chain to it.

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::asset::{ASSETS_MAX, AssetSpec};
use crate::dao::GovernanceParams;
use crate::hash::Hash32;
use crate::limits::{CHAIN_ID_LEN_MAX, VALIDATORS_MAX};
use crate::money::Amount;
use crate::staking::{POOLS_MAX, PoolSpec, staking_account};

/// Largest native supply of a chain with staking pools (10^12 AIT): pools' weight-milliseconds
/// then fit a u128.
pub const SUPPLY_WITH_POOLS_MAX: u128 = 1_000_000_000_000_000_000_000_000_000_000;

/// One initial allocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    /// Recipient.
    pub address: Address,
    /// Base units.
    pub amount: Amount,
}

/// The genesis of one chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Chain id, e.g. `ait-devnet`: lowercase letters, digits and `-`.
    pub chain_id: String,
    /// Unix seconds of block 0.
    pub genesis_time: u64,
    /// Validator public keys (64 hex each).
    pub validators: Vec<String>,
    /// Signatures needed for a block to be final (m of n).
    pub validator_threshold: usize,
    /// Minimum fee per transaction, base units.
    #[serde(default)]
    pub min_fee: Amount,
    /// Minimum fee per byte of a transaction's payload, on top of `min_fee` (spam: a payload
    /// padded with whitespace pays for its bytes). Left out of the serialized form when zero,
    /// so a genesis written before it existed keeps its hash.
    #[serde(default, skip_serializing_if = "Amount::is_zero")]
    pub min_fee_per_byte: Amount,
    /// Initial balances.
    #[serde(default)]
    pub allocations: Vec<Allocation>,
    /// Assets besides the native one. Left out of the serialized form when empty, so a genesis
    /// written before assets existed keeps its hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assets: Vec<AssetSpec>,
    /// Governance parameters and council (`[chains.genesis.governance]`). Left out of the
    /// serialized form when absent, so a genesis without the table keeps its hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub governance: Option<Box<GovernanceParams>>,
    /// GPU staking pools (`[[chains.genesis.pools]]`); their budgets are funded into the
    /// chain's staking account. Left out of the serialized form when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolSpec>,
}

/// Why a genesis is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid genesis for chain {chain_id:?}: {reason}")]
pub struct GenesisError {
    /// Chain.
    pub chain_id: String,
    /// What is wrong.
    pub reason: String,
}

impl Genesis {
    /// A chain with one validator (its public key, 64 hex) and nothing else: genesis time 0,
    /// no fees, allocations, assets, governance or pools. The others are set on top of it.
    pub fn single_validator(chain_id: &str, validator: String) -> Genesis {
        Genesis {
            chain_id: chain_id.into(),
            genesis_time: 0,
            validators: vec![validator],
            validator_threshold: 1,
            min_fee: Amount::ZERO,
            min_fee_per_byte: Amount::ZERO,
            allocations: vec![],
            assets: vec![],
            governance: None,
            pools: vec![],
        }
    }

    /// Checks ids, keys, threshold, allocations (no duplicates, total fits in u128).
    pub fn validate(&self) -> Result<(), GenesisError> {
        let fail = |reason: String| GenesisError {
            chain_id: self.chain_id.clone(),
            reason,
        };
        if !is_valid_chain_id(&self.chain_id) {
            return Err(fail(format!(
                "chain id must be 1-{CHAIN_ID_LEN_MAX} lowercase letters, digits or '-'"
            )));
        }
        if self.validators.is_empty() || self.validators.len() > VALIDATORS_MAX {
            return Err(fail(format!("needs 1-{VALIDATORS_MAX} validators")));
        }
        for v in &self.validators {
            let lower_hex = v
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if v.len() != 64 || !lower_hex {
                return Err(fail(format!(
                    "validator key {v:?} is not 64 lowercase hex characters"
                )));
            }
        }
        if self.validator_threshold == 0 || self.validator_threshold > self.validators.len() {
            return Err(fail(
                "validator_threshold must be between 1 and the number of validators".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for a in &self.allocations {
            if !seen.insert(a.address) {
                return Err(fail(format!("address {} is allocated twice", a.address)));
            }
        }
        self.total_supply()
            .ok_or_else(|| fail("allocations overflow u128".into()))?;
        if self.assets.len() > ASSETS_MAX {
            return Err(fail(format!("at most {ASSETS_MAX} assets")));
        }
        let mut symbols = std::collections::BTreeSet::new();
        for asset in &self.assets {
            asset.validate().map_err(fail)?;
            if !symbols.insert(&asset.symbol) {
                return Err(fail(format!("asset {} is declared twice", asset.symbol)));
            }
        }
        if let Some(governance) = &self.governance {
            governance.validate().map_err(fail)?;
        }
        if self.pools.len() > POOLS_MAX {
            return Err(fail(format!("at most {POOLS_MAX} pools")));
        }
        let mut ids = std::collections::BTreeSet::new();
        for pool in &self.pools {
            pool.validate().map_err(fail)?;
            if !ids.insert(&pool.id) {
                return Err(fail(format!("pool {} is declared twice", pool.id)));
            }
        }
        let supply = self
            .total_supply()
            .ok_or_else(|| fail("allocations and pool budgets overflow u128".into()))?;
        if !self.pools.is_empty() && supply.0 > SUPPLY_WITH_POOLS_MAX {
            return Err(fail(format!(
                "a chain with staking pools has a supply of at most {SUPPLY_WITH_POOLS_MAX} base units"
            )));
        }
        Ok(())
    }

    /// What the genesis funds: the allocations, then the pools' budgets in the staking account.
    pub fn funding(&self) -> Vec<Allocation> {
        let mut funding = self.allocations.clone();
        let budgets: u128 = self.pools.iter().map(|p| p.budget.0).sum();
        if budgets > 0 {
            funding.push(Allocation {
                address: staking_account(&self.chain_id),
                amount: Amount(budgets),
            });
        }
        funding
    }

    /// The governance parameters: the genesis table's, or the defaults.
    pub fn governance(&self) -> GovernanceParams {
        self.governance.as_deref().cloned().unwrap_or_default()
    }

    /// The declared asset `symbol` (`None` for the native one or an undeclared one).
    pub fn asset(&self, symbol: &str) -> Option<&AssetSpec> {
        self.assets.iter().find(|a| a.symbol == symbol)
    }

    /// Sum of allocations and pool budgets; `None` on overflow.
    pub fn total_supply(&self) -> Option<Amount> {
        let allocations = self
            .allocations
            .iter()
            .try_fold(Amount::ZERO, |sum, a| sum.checked_add(a.amount))?;
        self.pools
            .iter()
            .try_fold(allocations, |sum, p| sum.checked_add(p.budget))
    }

    /// Display name of the native token: `AITBC-AIT-<CHAIN>`.
    pub fn token_symbol(&self) -> String {
        token_symbol(&self.chain_id)
    }

    /// SHA-256 of the canonical JSON of this genesis.
    pub fn hash(&self) -> Hash32 {
        Hash32::digest(&serde_json::to_vec(self).expect("genesis serializes"))
    }
}

/// Display name of a chain's native token, e.g. `AITBC-AIT-DEVNET` for `ait-devnet`.
pub fn token_symbol(chain_id: &str) -> String {
    let suffix = chain_id.strip_prefix("ait-").unwrap_or(chain_id);
    format!("AITBC-AIT-{}", suffix.to_uppercase())
}

/// Chain ids are 1-64 of `[a-z0-9-]`.
pub fn is_valid_chain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= CHAIN_ID_LEN_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn genesis() -> Genesis {
        Genesis {
            allocations: vec![Allocation {
                address: Address([1; 20]),
                amount: Amount(5),
            }],
            ..Genesis::single_validator("ait-devnet", "ab".repeat(32))
        }
    }

    #[test]
    fn a_genesis_without_assets_keeps_the_hash_it_had_before_assets_existed() {
        // The JSON release 0.1 hashed: no "assets" key.
        let json = serde_json::to_string(&genesis()).unwrap();
        assert!(!json.contains("assets"), "{json}");
        let mut with_assets = genesis();
        with_assets.assets.push(crate::asset::AssetSpec {
            symbol: "USDX".into(),
            decimals: 6,
            minter: None,
        });
        assert_ne!(with_assets.hash(), genesis().hash());
        with_assets.validate().unwrap();
        with_assets.assets.push(with_assets.assets[0].clone());
        assert!(with_assets.validate().is_err(), "declared twice");
    }

    #[test]
    fn token_symbol_follows_the_chain() {
        assert_eq!(genesis().token_symbol(), "AITBC-AIT-DEVNET");
    }

    #[test]
    fn invalid_geneses_are_rejected() {
        genesis().validate().unwrap();
        let mut g = genesis();
        g.chain_id = "Bad Id".into();
        assert!(g.validate().is_err());
        let mut g = genesis();
        g.validators = vec!["AB".repeat(32)];
        assert!(
            g.validate().is_err(),
            "uppercase keys would never match signatures"
        );
        let mut g = genesis();
        g.validator_threshold = 2;
        assert!(g.validate().is_err());
        let mut g = genesis();
        g.allocations.push(g.allocations[0].clone());
        assert!(g.validate().is_err());
        let mut g = genesis();
        g.allocations.push(Allocation {
            address: Address([2; 20]),
            amount: Amount(u128::MAX),
        });
        assert!(g.validate().is_err());
    }
}
