//! Start-up of a chain: genesis on first start, a consistency check on every later one.

use domain::block::BlockDraft;
use domain::chain::{Chain, ChainCommand, ChainState};
use domain::genesis::Genesis;
use domain::keys::SigningKey;

use crate::error::CommandError;
use crate::registry::Registry;
use crate::wallet::WalletRegistry;

/// Why a chain could not start.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The log disagrees with the configuration.
    #[error("chain {chain_id}: {reason}")]
    Config {
        /// Chain.
        chain_id: String,
        /// What is wrong.
        reason: String,
    },
    /// A command failed.
    #[error("chain {chain_id}: {source}")]
    Command {
        /// Chain.
        chain_id: String,
        /// Failure.
        source: CommandError,
    },
}

/// Loads the chain, creating it from `genesis` (allocations funded, block 0 sealed by
/// `signers`) if the log does not have it yet. Idempotent: a crash half-way through genesis is
/// finished by the next start.
pub async fn ensure_chain(
    chains: &Registry<Chain>,
    wallets: &WalletRegistry,
    genesis: &Genesis,
    signers: &[SigningKey],
) -> Result<ChainState, BootError> {
    let chain_id = genesis.chain_id.clone();
    let config_error = |reason: String| BootError::Config {
        chain_id: chain_id.clone(),
        reason,
    };
    let command_error = |source: CommandError| BootError::Command {
        chain_id: chain_id.clone(),
        source,
    };
    genesis
        .validate()
        .map_err(|e| config_error(e.to_string()))?;
    let state = chains
        .state(chain_id.clone())
        .await
        .map_err(command_error)?;
    if let Some(existing) = &state.genesis {
        if existing != genesis {
            return Err(config_error(
                "the genesis in the configuration differs from the one this chain was created with"
                    .into(),
            ));
        }
        return Ok(state);
    }
    if signers.len() < genesis.validator_threshold {
        return Err(config_error(format!(
            "creating the chain needs {} validator keys, this node holds {}",
            genesis.validator_threshold,
            signers.len()
        )));
    }
    for allocation in &genesis.funding() {
        wallets
            .fund(&chain_id, allocation.address, allocation.amount)
            .await
            .map_err(command_error)?;
    }
    let position = chains.store().next_position();
    let block = BlockDraft {
        chain_id: chain_id.clone(),
        height: 0,
        prev_hash: genesis.hash(),
        timestamp: genesis.genesis_time,
        leaves: Vec::new(),
        from_position: position,
        to_position: position,
    }
    .seal(signers);
    let command = ChainCommand::Create {
        genesis: genesis.clone(),
        block,
    };
    chains
        .execute(chain_id.clone(), command)
        .await
        .map_err(command_error)?;
    chains.state(chain_id.clone()).await.map_err(command_error)
}
