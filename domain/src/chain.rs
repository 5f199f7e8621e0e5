//! The chain aggregate: the sequence of sealed blocks of one chain.
//!
//! Rules: block 0 is created once from the genesis; each later block extends the last one
//! (height + 1, `prev_hash` = last hash), covers the log positions right after the previous
//! block's range, and must verify (Merkle root, hash, m-of-n validator signatures).

use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, BatchClass, Context};
use crate::block::{Block, BlockError};
use crate::codec::DomainEvent;
use crate::event_id::event_id;
use crate::genesis::Genesis;
use crate::hash::Hash32;

/// Stream holding a chain's events.
pub fn chain_stream(chain_id: &str) -> String {
    format!("chain/{chain_id}")
}

/// State of a chain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainState {
    /// The genesis, once created.
    pub genesis: Option<Genesis>,
    /// Height of the last block.
    pub height: u64,
    /// Hash of the last block.
    pub last_hash: Hash32,
    /// First log position not yet covered by a block.
    pub next_position: u64,
    /// Timestamp of the last block, Unix seconds (the next one is never earlier).
    #[serde(default)]
    pub last_timestamp: u64,
}

/// Commands to a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainCommand {
    /// Create the chain with its genesis block (height 0, no transactions).
    Create {
        /// Genesis.
        genesis: Genesis,
        /// Block 0, sealed by the validators.
        block: Block,
    },
    /// Append a sealed block.
    Seal(Block),
}

/// Events of a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChainEvent {
    /// The chain exists; block 0 sealed.
    ChainCreated {
        /// Genesis (boxed: the largest field of any event).
        genesis: Box<Genesis>,
        /// Block 0.
        block: Block,
    },
    /// A block was sealed.
    BlockSealed {
        /// The block.
        block: Block,
    },
}

impl ChainEvent {
    /// Versioned event type name.
    pub fn event_type(&self) -> &'static str {
        match self {
            ChainEvent::ChainCreated { .. } => "ChainCreated.v1",
            ChainEvent::BlockSealed { .. } => "BlockSealed.v1",
        }
    }

    /// The block this event records.
    pub fn block(&self) -> &Block {
        match self {
            ChainEvent::ChainCreated { block, .. } | ChainEvent::BlockSealed { block } => block,
        }
    }
}

/// Why a chain command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// Create on an existing chain.
    #[error("chain already exists")]
    AlreadyCreated,
    /// Seal before create.
    #[error("chain does not exist")]
    NotCreated,
    /// Block does not extend the chain.
    #[error("block does not extend the chain: {0}")]
    DoesNotExtend(String),
    /// Block does not verify.
    #[error(transparent)]
    Invalid(#[from] BlockError),
}

/// Deterministic event id of the block at `height` of `chain_id`.
pub fn block_event_id(chain_id: &str, height: u64) -> u128 {
    event_id("block", format!("{chain_id}/{height}").as_bytes())
}

impl ChainCommand {
    fn block(&self) -> &Block {
        match self {
            ChainCommand::Create { block, .. } | ChainCommand::Seal(block) => block,
        }
    }
}

/// The chain aggregate, identified by its chain id.
#[derive(Debug)]
pub enum Chain {}

impl Aggregate for Chain {
    type Id = String;
    type Facts = ();
    type State = ChainState;
    type Command = ChainCommand;
    type Event = ChainEvent;
    type Error = ChainError;

    const NAME: &'static str = "chain";
    /// A block holds up to 10,000 leaves (~1.7 MB of JSON): only the latest heights are ever
    /// sealed again.
    const REMEMBERED: usize = 4;
    // A block event is up to megabytes of JSON; the state is a few numbers.
    const SNAPSHOT_EVERY_EVENTS: u64 = 4;

    fn stream(id: &String) -> String {
        chain_stream(id)
    }

    fn decide(
        state: &ChainState,
        _ctx: &Context<'_, Chain>,
        command: ChainCommand,
    ) -> Result<Vec<ChainEvent>, ChainError> {
        decide(state, command)
    }

    fn evolve(state: &mut ChainState, event: &ChainEvent) {
        evolve(state, event)
    }

    fn event_id(id: &String, event: &ChainEvent) -> u128 {
        block_event_id(id, event.block().height)
    }

    fn command_event_id(id: &String, command: &ChainCommand) -> Option<u128> {
        Some(block_event_id(id, command.block().height))
    }

    fn batch_class(_command: &ChainCommand) -> BatchClass {
        BatchClass::Decision
    }

    fn encode(event: &ChainEvent) -> (&'static str, Vec<u8>) {
        let data = serde_json::to_vec(event).expect("events serialize");
        (event.event_type(), data)
    }

    fn from_stored(event: DomainEvent) -> Option<ChainEvent> {
        match event {
            DomainEvent::Chain(event) => Some(event),
            _ => None,
        }
    }
}

/// Decides a chain command.
pub fn decide(state: &ChainState, command: ChainCommand) -> Result<Vec<ChainEvent>, ChainError> {
    match command {
        ChainCommand::Create { genesis, block } => {
            if state.genesis.is_some() {
                return Err(ChainError::AlreadyCreated);
            }
            if block.height != 0 || block.prev_hash != genesis.hash() || !block.tx_hashes.is_empty()
            {
                return Err(ChainError::DoesNotExtend(
                    "block 0 must have no transactions and prev_hash = genesis hash".into(),
                ));
            }
            block.verify(&genesis.validators, genesis.validator_threshold)?;
            Ok(vec![ChainEvent::ChainCreated {
                genesis: Box::new(genesis),
                block,
            }])
        }
        ChainCommand::Seal(block) => {
            let genesis = state.genesis.as_ref().ok_or(ChainError::NotCreated)?;
            if block.chain_id != genesis.chain_id {
                return Err(ChainError::DoesNotExtend("wrong chain id".into()));
            }
            if block.height != state.height + 1 {
                return Err(ChainError::DoesNotExtend(format!(
                    "height {} after {}",
                    block.height, state.height
                )));
            }
            if block.prev_hash != state.last_hash {
                return Err(ChainError::DoesNotExtend(
                    "prev_hash is not the last block's hash".into(),
                ));
            }
            if block.from_position != state.next_position || block.to_position < block.from_position
            {
                return Err(ChainError::DoesNotExtend(format!(
                    "covers [{}, {}), expected to start at {}",
                    block.from_position, block.to_position, state.next_position
                )));
            }
            block.verify(&genesis.validators, genesis.validator_threshold)?;
            Ok(vec![ChainEvent::BlockSealed { block }])
        }
    }
}

/// Applies a chain event.
pub fn evolve(state: &mut ChainState, event: &ChainEvent) {
    match event {
        ChainEvent::ChainCreated { genesis, block } => {
            assert!(state.genesis.is_none(), "chain created twice");
            state.genesis = Some(Genesis::clone(genesis));
            state.height = 0;
            state.last_hash = block.hash;
            state.next_position = block.to_position;
            state.last_timestamp = block.timestamp;
        }
        ChainEvent::BlockSealed { block } => {
            assert_eq!(block.height, state.height + 1, "blocks are sequential");
            assert_eq!(
                block.from_position, state.next_position,
                "block ranges are contiguous"
            );
            state.height = block.height;
            state.last_hash = block.hash;
            state.next_position = block.to_position;
            state.last_timestamp = block.timestamp;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockDraft;
    use crate::keys::SigningKey;

    fn key() -> SigningKey {
        SigningKey::from_seed([4; 32])
    }

    fn genesis() -> Genesis {
        Genesis {
            genesis_time: 7,
            ..Genesis::single_validator("c", hex::encode(key().public_key()))
        }
    }

    fn block0() -> Block {
        BlockDraft {
            chain_id: "c".into(),
            height: 0,
            prev_hash: genesis().hash(),
            timestamp: 7,
            leaves: vec![],
            from_position: 0,
            to_position: 3,
        }
        .seal(&[key()])
    }

    fn created() -> ChainState {
        let mut state = ChainState::default();
        for e in decide(
            &state,
            ChainCommand::Create {
                genesis: genesis(),
                block: block0(),
            },
        )
        .unwrap()
        {
            evolve(&mut state, &e);
        }
        state
    }

    fn next(state: &ChainState, to: u64) -> BlockDraft {
        BlockDraft {
            chain_id: "c".into(),
            height: state.height + 1,
            prev_hash: state.last_hash,
            timestamp: 8,
            leaves: vec![crate::merkle::Leaf::tx("transfer", Hash32::digest(b"t"))],
            from_position: state.next_position,
            to_position: to,
        }
    }

    #[test]
    fn blocks_extend_the_chain_in_order() {
        let mut state = created();
        let block = next(&state, 9).seal(&[key()]);
        for e in decide(&state, ChainCommand::Seal(block.clone())).unwrap() {
            evolve(&mut state, &e);
        }
        assert_eq!(
            (state.height, state.last_hash, state.next_position),
            (1, block.hash, 9)
        );
    }

    #[test]
    fn a_block_that_skips_a_height_or_position_or_forks_is_refused() {
        let state = created();
        let mut d = next(&state, 9);
        d.height = 2;
        assert!(matches!(
            decide(&state, ChainCommand::Seal(d.seal(&[key()]))),
            Err(ChainError::DoesNotExtend(_))
        ));
        let mut d = next(&state, 9);
        d.from_position = 4;
        assert!(matches!(
            decide(&state, ChainCommand::Seal(d.seal(&[key()]))),
            Err(ChainError::DoesNotExtend(_))
        ));
        let mut d = next(&state, 9);
        d.prev_hash = Hash32::default();
        assert!(matches!(
            decide(&state, ChainCommand::Seal(d.seal(&[key()]))),
            Err(ChainError::DoesNotExtend(_))
        ));
    }

    #[test]
    fn a_block_signed_by_a_stranger_is_refused() {
        let state = created();
        let block = next(&state, 9).seal(&[SigningKey::from_seed([5; 32])]);
        assert!(matches!(
            decide(&state, ChainCommand::Seal(block)),
            Err(ChainError::Invalid(_))
        ));
    }

    #[test]
    fn a_chain_is_created_once() {
        let state = created();
        assert_eq!(
            decide(
                &state,
                ChainCommand::Create {
                    genesis: genesis(),
                    block: block0()
                }
            ),
            Err(ChainError::AlreadyCreated)
        );
    }
}
