//! The chain actor: seals a block every `block_time` over the log it has observed.
//!
//! It follows the log from the end of the last block. A block covers every position observed
//! since the previous block and lists, in log order, the hashes of this chain's transactions
//! committed there (their `Debited` events). With no new transactions no block is sealed,
//! unless the chain is configured for empty blocks.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use domain::block::BlockDraft;
use domain::chain::{self, ChainCommand, ChainEvent, ChainState, chain_stream};
use domain::codec::{DomainEvent, WalletFact, decode_wallet_fact};
use domain::hash::Hash32;
use domain::keys::SigningKey;
use domain::limits::BLOCK_TXS_MAX;
use store::{EventId, EventStore, ExpectedRevision, NewEvent, RecordedEvent, Revision, StoreError};

use crate::metrics;

/// How a chain seals.
#[derive(Clone, Debug)]
pub struct SealingConfig {
    /// Interval between sealing attempts.
    pub block_time: Duration,
    /// Seal blocks without transactions.
    pub empty_blocks: bool,
}

/// A loaded chain: state, stream revision and last block time.
#[derive(Clone, Debug)]
pub struct LoadedChain {
    /// Aggregate state.
    pub state: ChainState,
    /// Last revision of the chain stream.
    pub revision: Option<Revision>,
    /// Timestamp of the last block.
    pub last_timestamp: u64,
}

/// Reads a chain's stream into its state.
pub async fn load_chain(store: &dyn EventStore, chain_id: &str) -> Result<LoadedChain, StoreError> {
    let stream = chain_stream(chain_id);
    let mut loaded = LoadedChain {
        state: ChainState::default(),
        revision: None,
        last_timestamp: 0,
    };
    loop {
        let page = store
            .read_stream(&stream, loaded.revision.map_or(0, |r| r + 1), 1024)
            .await?;
        let done = page.len() < 1024;
        for recorded in page {
            let Ok(DomainEvent::Chain(event)) =
                DomainEvent::decode(&recorded.event_type, &recorded.data)
            else {
                return Err(StoreError::Invalid(format!(
                    "{stream} holds a non-chain event at revision {}",
                    recorded.revision
                )));
            };
            chain::evolve(&mut loaded.state, &event);
            loaded.last_timestamp = event.block().timestamp;
            loaded.revision = Some(recorded.revision);
        }
        if done {
            return Ok(loaded);
        }
    }
}

/// Appends a chain event with the expected revision.
pub async fn append_chain_event(
    store: &dyn EventStore,
    chain_id: &str,
    revision: Option<Revision>,
    event: &ChainEvent,
) -> Result<u64, StoreError> {
    let expected = revision.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
    let block = event.block();
    let id = domain::event_id::event_id(
        "block",
        format!("{}/{}", block.chain_id, block.height).as_bytes(),
    );
    let new = NewEvent {
        id: EventId(id),
        event_type: event.event_type().into(),
        data: DomainEvent::Chain(event.clone()).encode(),
    };
    let outcome = store
        .append(&chain_stream(chain_id), expected, vec![new])
        .await?;
    Ok(outcome.revisions[0])
}

/// The block sealer of one chain.
pub struct ChainActor {
    chain_id: String,
    wallet_prefix: String,
    loaded: LoadedChain,
    signers: Vec<SigningKey>,
    config: SealingConfig,
    store: Arc<dyn EventStore>,
    /// Next position to observe.
    observed: u64,
    /// (position, tx hash) of this chain's transactions since the last block.
    pending: Vec<(u64, Hash32)>,
    sealing: bool,
}

impl ChainActor {
    /// A sealer for a loaded (created) chain.
    pub fn new(
        loaded: LoadedChain,
        signers: Vec<SigningKey>,
        config: SealingConfig,
        store: Arc<dyn EventStore>,
    ) -> Self {
        let chain_id = loaded
            .state
            .genesis
            .as_ref()
            .expect("chain is created")
            .chain_id
            .clone();
        ChainActor {
            wallet_prefix: format!("wallet/{chain_id}/"),
            chain_id,
            observed: loaded.state.next_position,
            loaded,
            signers,
            config,
            store,
            pending: Vec::new(),
            sealing: false,
        }
    }

    fn seal(&mut self, ctx: &mut Context<Self>) {
        let state = &self.loaded.state;
        if self.sealing || self.observed == state.next_position {
            return;
        }
        if self.pending.is_empty() && !self.config.empty_blocks {
            return;
        }
        let included = self.pending.len().min(BLOCK_TXS_MAX);
        let to_position = self
            .pending
            .get(included)
            .map_or(self.observed, |(position, _)| *position);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let draft = BlockDraft {
            chain_id: self.chain_id.clone(),
            height: state.height + 1,
            prev_hash: state.last_hash,
            timestamp: now.max(self.loaded.last_timestamp),
            tx_hashes: self.pending[..included]
                .iter()
                .map(|(_, hash)| *hash)
                .collect(),
            from_position: state.next_position,
            to_position,
        };
        let events = match chain::decide(state, ChainCommand::Seal(draft.seal(&self.signers))) {
            Ok(events) => events,
            Err(error) => {
                tracing::error!(chain = %self.chain_id, %error, "sealer built an invalid block; stopping");
                ctx.stop();
                return;
            }
        };
        let event = events.into_iter().next().expect("a seal decides one block");
        self.sealing = true;
        let store = self.store.clone();
        let (chain_id, revision) = (self.chain_id.clone(), self.loaded.revision);
        let append = async move {
            append_chain_event(store.as_ref(), &chain_id, revision, &event)
                .await
                .map(|r| (r, event))
        };
        ctx.spawn(append.into_actor(self).map(move |result, act, ctx| {
            act.sealing = false;
            match result {
                Ok((revision, event)) => {
                    chain::evolve(&mut act.loaded.state, &event);
                    act.loaded.revision = Some(revision);
                    act.loaded.last_timestamp = event.block().timestamp;
                    act.pending.drain(..included);
                    metrics::BLOCKS_SEALED
                        .with_label_values(&[&act.chain_id])
                        .inc();
                }
                Err(error @ (StoreError::Closed | StoreError::WrongExpectedRevision { .. })) => {
                    // The log is gone, or another writer sealed: retrying cannot help. Stopping
                    // makes /health report the sealer.
                    tracing::error!(chain = %act.chain_id, %error, "block not appended; sealer stops");
                    ctx.stop();
                }
                Err(error) => {
                    // Nothing was written: the same block is built again on the next tick.
                    tracing::error!(chain = %act.chain_id, %error, "block not appended; retrying");
                }
            }
        }));
    }
}

impl Actor for ChainActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.add_stream(self.store.subscribe_all(self.observed));
        ctx.run_interval(self.config.block_time, |act, ctx| act.seal(ctx));
    }
}

impl StreamHandler<Result<RecordedEvent, StoreError>> for ChainActor {
    fn handle(&mut self, item: Result<RecordedEvent, StoreError>, ctx: &mut Context<Self>) {
        let event = match item {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(chain = %self.chain_id, %error, "sealer subscription failed; stopping");
                ctx.stop();
                return;
            }
        };
        assert_eq!(
            event.position, self.observed,
            "the subscription is gap-free"
        );
        self.observed += 1;
        if event.event_type != "Debited.v1" || !event.stream.starts_with(&self.wallet_prefix) {
            return;
        }
        match decode_wallet_fact(&event.event_type, &event.data) {
            Some(Ok(WalletFact::Debited(debit))) => {
                self.pending.push((event.position, debit.tx_hash))
            }
            other => tracing::error!(position = event.position, ?other, "undecodable debit"),
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!(chain = %self.chain_id, "sealer subscription ended");
    }
}
