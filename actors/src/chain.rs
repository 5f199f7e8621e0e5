//! The chain actor: seals a block every `block_time` over the log it has observed.
//!
//! It follows the log from the end of the last block. A block covers every position observed
//! since the previous block and lists, in log order, a typed leaf (kind and hash) for each of
//! this chain's transactions committed there (their `Debited` events, of every kind), and a
//! receipt leaf for each miner's result (`JobResultSubmitted`): the validators' signatures over
//! the root are the platform's countersignature of every receipt. With no
//! new transactions no block is sealed, unless the chain is configured for empty blocks. When
//! more than a block's worth of transactions waits, blocks follow each other without waiting for
//! the next tick.

use std::time::Duration;

use actix::prelude::*;
use domain::block::BlockDraft;
use domain::chain::{self, Chain, ChainCommand, ChainEvent, ChainState};
use domain::codec::{DomainEvent, WalletFact, decode_wallet_fact, is_debit};
use domain::hash::Hash32;
use domain::job::JobEvent;
use domain::keys::SigningKey;
use domain::limits::BLOCK_TXS_MAX;
use domain::merkle::Leaf;
use store::{RecordedEvent, StoreError};

use crate::error::CommandError;
use crate::metrics;
use crate::registry::Registry;

/// How a chain seals.
#[derive(Clone, Debug)]
pub struct SealingConfig {
    /// Interval between sealing attempts.
    pub block_time: Duration,
    /// Seal blocks without transactions.
    pub empty_blocks: bool,
    /// When nodes share one log, the one that may seal now (the holder of the chain's lease);
    /// `None`: this node's own log, always.
    pub permit: Option<SealPermit>,
}

/// Says whether this node may seal the chain now.
#[derive(Clone)]
pub struct SealPermit(pub std::sync::Arc<dyn Fn() -> bool + Send + Sync>);

impl std::fmt::Debug for SealPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealPermit(held: {})", (self.0)())
    }
}

/// The block sealer of one chain. Its blocks are commands to the chain's aggregate actor.
pub struct ChainActor {
    chain_id: String,
    /// The chain's own stream (`chain/<id>`), where blocks are recorded.
    chain_stream: String,
    state: ChainState,
    chains: Registry<Chain>,
    signers: Vec<SigningKey>,
    config: SealingConfig,
    /// Next position to observe.
    observed: u64,
    /// (position, leaf) of this chain's transactions since the last block.
    pending: Vec<(u64, Leaf)>,
    sealing: bool,
}

impl ChainActor {
    /// A sealer for a created chain whose current state is `state`.
    pub fn new(
        state: ChainState,
        chains: Registry<Chain>,
        signers: Vec<SigningKey>,
        config: SealingConfig,
    ) -> Self {
        let chain_id = state
            .genesis
            .as_ref()
            .expect("chain is created")
            .chain_id
            .clone();
        ChainActor {
            chain_stream: domain::chain::chain_stream(&chain_id),
            chain_id,
            observed: state.next_position,
            state,
            chains,
            signers,
            config,
            pending: Vec::new(),
            sealing: false,
        }
    }

    fn seal(&mut self, ctx: &mut Context<Self>) {
        let state = &self.state;
        if self.sealing || self.observed == state.next_position {
            return;
        }
        if self
            .config
            .permit
            .as_ref()
            .is_some_and(|permit| !(permit.0)())
        {
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
        let now = self.chains.clock().now_ms() / 1000;
        let block = BlockDraft {
            chain_id: self.chain_id.clone(),
            height: state.height + 1,
            prev_hash: state.last_hash,
            timestamp: now.max(state.last_timestamp),
            leaves: self.pending[..included]
                .iter()
                .map(|(_, leaf)| leaf.clone())
                .collect(),
            from_position: state.next_position,
            to_position,
        }
        .seal(&self.signers);
        let hash = block.hash;
        self.sealing = true;
        let (chains, chain_id) = (self.chains.clone(), self.chain_id.clone());
        let append = async move { chains.execute(chain_id, ChainCommand::Seal(block)).await };
        ctx.spawn(append.into_actor(self).map(move |result, act, ctx| {
            act.sealing = false;
            match result {
                Ok(applied) => {
                    let [(event @ ChainEvent::BlockSealed { .. }, _)] = applied.events.as_slice()
                    else {
                        unreachable!("a seal records one block: {:?}", applied.events)
                    };
                    if event.block().hash != hash {
                        // Another writer sealed this height: our view of the chain is stale.
                        act.lost_race(ctx);
                        return;
                    }
                    act.record(event);
                    metrics::BLOCKS_SEALED
                        .with_label_values(&[&act.chain_id])
                        .inc();
                    // More than a block's worth waiting: seal the next one now rather than a
                    // tick later, so sealing keeps up with any load.
                    if act.pending.len() >= BLOCK_TXS_MAX {
                        act.seal(ctx);
                    }
                }
                Err(CommandError::Conflict(_)) if act.config.permit.is_some() => act.lost_race(ctx),
                Err(
                    error @ (CommandError::Store(StoreError::Closed | StoreError::Invalid(_))
                    | CommandError::Conflict(_)),
                ) => {
                    // The log is gone, refuses this block for good, or another writer sealed:
                    // retrying cannot help. Stopping makes /health report the sealer.
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

/// Type of the job event that carries a miner's receipt.
const RESULT_SUBMITTED: &str = "JobResultSubmitted.v1";
/// Type of a sealed block's event.
const BLOCK_SEALED: &str = "BlockSealed.v1";

impl ChainActor {
    /// Takes a block into the sealer's view, once: the one it sealed, or one it observes in the
    /// log (sealed by another node sharing the log, or by itself before it heard back).
    fn record(&mut self, event: &ChainEvent) {
        let block = event.block();
        if block.height != self.state.height + 1 {
            return;
        }
        chain::evolve(&mut self.state, event);
        self.pending
            .retain(|(position, _)| *position >= block.to_position);
    }

    /// Another writer sealed the height this sealer tried. On a log of its own that is a bug
    /// somewhere: the sealer stops (and `/health` says so). On a log shared with other nodes it
    /// is a lease that changed hands in between: the other node's block reaches this sealer
    /// through the log, and it goes on from there.
    fn lost_race(&mut self, ctx: &mut Context<Self>) {
        match self.config.permit {
            Some(_) => {
                tracing::warn!(chain = %self.chain_id, "another node sealed this height; following its block")
            }
            None => {
                tracing::error!(chain = %self.chain_id, "another block holds this height; sealer stops");
                ctx.stop();
            }
        }
    }
}

/// The leaf `event` puts in chain `chain_id`'s next block, if any: a typed `tx` leaf for a
/// debit (of any kind) in one of its wallets, a receipt leaf for a miner's result in one of its
/// jobs. The sealer builds blocks from these; a follower checks the blocks it receives against
/// them. `Err`: an event of that kind that does not decode.
pub fn block_leaf(chain_id: &str, event: &RecordedEvent) -> Result<Option<Leaf>, String> {
    let undecodable = |what: &str, error: &dyn std::fmt::Debug| {
        format!(
            "undecodable {what} at position {}: {error:?}",
            event.position
        )
    };
    let rest = |prefix: &str| {
        event
            .stream
            .strip_prefix(prefix)
            .and_then(|s| s.strip_prefix(chain_id))
            .and_then(|s| s.strip_prefix('/'))
    };
    if let Some(job) = rest("job/") {
        if event.event_type != RESULT_SUBMITTED {
            return Ok(None);
        }
        let decoded = DomainEvent::decode(&event.event_type, &event.data, event.recorded_at_ms);
        return match (job.parse::<Hash32>(), decoded) {
            (
                Ok(job),
                Ok(DomainEvent::Job(JobEvent::ResultSubmitted {
                    result, job_kind, ..
                })),
            ) => Ok(Some(Leaf::receipt(
                &job_kind,
                domain::job::receipt_id(&job, &result),
            ))),
            other => Err(undecodable("job result", &other)),
        };
    }
    if rest("wallet/").is_none() || !is_debit(&event.event_type) {
        return Ok(None);
    }
    match decode_wallet_fact(&event.event_type, &event.data) {
        Some(Ok(WalletFact::Debited(debit))) => Ok(Some(Leaf::tx(&debit.kind, debit.tx_hash))),
        other => Err(undecodable("debit", &other)),
    }
}

impl Actor for ChainActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.add_stream(self.chains.store().subscribe_all(self.observed));
        ctx.run_interval(self.config.block_time, |act, ctx| act.seal(ctx));
    }
}

impl StreamHandler<Result<RecordedEvent, StoreError>> for ChainActor {
    fn handle(&mut self, item: Result<RecordedEvent, StoreError>, ctx: &mut Context<Self>) {
        let event = match item {
            Ok(event) => event,
            Err(error) => {
                match error {
                    StoreError::Closed => {
                        tracing::info!(chain = %self.chain_id, "the event log closed; the sealer stops")
                    }
                    error => {
                        tracing::error!(chain = %self.chain_id, %error, "sealer subscription failed; stopping")
                    }
                }
                ctx.stop();
                return;
            }
        };
        assert_eq!(
            event.position, self.observed,
            "the subscription is gap-free"
        );
        self.observed += 1;
        if *event.stream == *self.chain_stream && event.event_type == BLOCK_SEALED {
            match DomainEvent::decode(&event.event_type, &event.data, event.recorded_at_ms) {
                Ok(DomainEvent::Chain(sealed)) => self.record(&sealed),
                other => tracing::error!(position = event.position, ?other, "undecodable block"),
            }
            return;
        }
        match block_leaf(&self.chain_id, &event) {
            Ok(Some(leaf)) => self.pending.push((event.position, leaf)),
            Ok(None) => {}
            Err(error) => tracing::error!(%error, "not in a block"),
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!(chain = %self.chain_id, "sealer subscription ended");
    }
}
