//! Start-up of a chain: genesis on first start, a consistency check on every later one.

use std::sync::Arc;

use domain::block::BlockDraft;
use domain::chain::{self, ChainCommand};
use domain::genesis::Genesis;
use domain::keys::SigningKey;
use store::EventStore;

use crate::chain::{LoadedChain, append_chain_event, load_chain};
use crate::error::CommandError;
use crate::registry::WalletRegistry;

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
    store: Arc<dyn EventStore>,
    registry: &WalletRegistry,
    genesis: &Genesis,
    signers: &[SigningKey],
) -> Result<LoadedChain, BootError> {
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
    let loaded = load_chain(store.as_ref(), &chain_id)
        .await
        .map_err(|e| command_error(e.into()))?;
    if let Some(existing) = &loaded.state.genesis {
        if existing != genesis {
            return Err(config_error(
                "the genesis in the configuration differs from the one this chain was created with"
                    .into(),
            ));
        }
        return Ok(loaded);
    }
    if signers.len() < genesis.validator_threshold {
        return Err(config_error(format!(
            "creating the chain needs {} validator keys, this node holds {}",
            genesis.validator_threshold,
            signers.len()
        )));
    }
    for allocation in &genesis.allocations {
        registry
            .fund(&chain_id, allocation.address, allocation.amount)
            .await
            .map_err(command_error)?;
    }
    let position = store.next_position();
    let block = BlockDraft {
        chain_id: chain_id.clone(),
        height: 0,
        prev_hash: genesis.hash(),
        timestamp: genesis.genesis_time,
        tx_hashes: Vec::new(),
        from_position: position,
        to_position: position,
    }
    .seal(signers);
    let events = chain::decide(
        &loaded.state,
        ChainCommand::Create {
            genesis: genesis.clone(),
            block,
        },
    )
    .map_err(|e| config_error(e.to_string()))?;
    append_chain_event(store.as_ref(), &chain_id, None, &events[0])
        .await
        .map_err(|e| command_error(e.into()))?;
    load_chain(store.as_ref(), &chain_id)
        .await
        .map_err(|e| command_error(e.into()))
}
