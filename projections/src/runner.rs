//! Feeds the explorer from the log and publishes its progress.

use std::sync::{Arc, LazyLock};

use actix::prelude::*;
use domain::block::Block;
use domain::chain::ChainEvent;
use domain::codec::DomainEvent;
use prometheus::{IntGauge, register_int_gauge};
use store::{EventStore, RecordedEvent, Snapshot, StoreError};
use tokio::sync::broadcast;

use crate::checkpoint;
use crate::explorer::{Explorer, ExplorerState};
use crate::watermark::{ProjectionStopped, Watermark};

/// Snapshot key of the explorer's checkpoint.
pub const CHECKPOINT_KEY: &str = "projection/explorer";
/// A checkpoint is written after this many applied events.
pub const CHECKPOINT_EVERY_EVENTS: u64 = 1_000_000;
/// Capacity of the live block feed (slow subscribers skip ahead).
pub const BLOCK_FEED_CAPACITY: usize = 256;

static PROJECTION_LAG: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "aitbc_projection_lag_events",
        "Events in the log not yet applied by the explorer projection"
    )
    .expect("metric registers once")
});

/// Shared handles to a running projection.
#[derive(Clone)]
pub struct ProjectionHandle {
    /// The read model.
    pub explorer: Arc<Explorer>,
    /// Next position applied (everything before it is readable), with waiters.
    pub applied: Arc<Watermark>,
    /// Newly applied blocks, live.
    pub blocks: broadcast::Sender<Arc<Block>>,
}

impl ProjectionHandle {
    /// Waits until every event before `position` (exclusive) is applied.
    pub async fn wait_applied(&self, position: u64) -> Result<(), ProjectionStopped> {
        self.applied.wait_for(position).await
    }
}

/// Loads the explorer from its checkpoint (or empty).
pub async fn load_explorer(store: &dyn EventStore) -> Result<Explorer, StoreError> {
    let Some(snapshot) = store.load_snapshot(CHECKPOINT_KEY).await? else {
        return Ok(Explorer::default());
    };
    match checkpoint::decode(&snapshot.data) {
        Ok(state)
            if state.next_position == snapshot.revision
                && state.next_position <= store.next_position() =>
        {
            Ok(Explorer::import(state))
        }
        Ok(_) => {
            tracing::warn!("explorer checkpoint is ahead of the log; rebuilding from zero");
            Ok(Explorer::default())
        }
        Err(error) => {
            tracing::warn!(%error, "explorer checkpoint unreadable; rebuilding from zero");
            Ok(Explorer::default())
        }
    }
}

/// Saves `state` (a consistent copy, see [`ExportState`]) as the explorer's checkpoint.
/// Serializing is blocking work: call it off the actor threads.
pub async fn save_checkpoint(
    store: &dyn EventStore,
    state: &ExplorerState,
) -> Result<(), StoreError> {
    let revision = state.next_position;
    let data = checkpoint::encode(state);
    store
        .save_snapshot(CHECKPOINT_KEY, Snapshot { revision, data })
        .await
}

/// Asks the runner for a copy of the explorer taken between two events (consistent).
#[derive(Message)]
#[rtype(result = "ExplorerState")]
pub struct ExportState;

/// The actor applying log events to the explorer.
pub struct ProjectionRunner {
    store: Arc<dyn EventStore>,
    explorer: Arc<Explorer>,
    applied: Arc<Watermark>,
    blocks: broadcast::Sender<Arc<Block>>,
    last_checkpoint: u64,
}

impl ProjectionRunner {
    /// A runner for a loaded explorer, and the handle readers use.
    pub fn new(store: Arc<dyn EventStore>, explorer: Explorer) -> (Self, ProjectionHandle) {
        let explorer = Arc::new(explorer);
        let start = explorer.next_position();
        let applied = Arc::new(Watermark::new(start));
        let (blocks, _) = broadcast::channel(BLOCK_FEED_CAPACITY);
        let handle = ProjectionHandle {
            explorer: explorer.clone(),
            applied: applied.clone(),
            blocks: blocks.clone(),
        };
        (
            ProjectionRunner {
                store,
                explorer,
                applied,
                blocks,
                last_checkpoint: start,
            },
            handle,
        )
    }
}

impl Actor for ProjectionRunner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.add_stream(self.store.subscribe_all(self.explorer.next_position()));
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.applied.stop();
    }
}

impl StreamHandler<Result<RecordedEvent, StoreError>> for ProjectionRunner {
    fn handle(&mut self, item: Result<RecordedEvent, StoreError>, ctx: &mut Context<Self>) {
        let event = match item {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(%error, "projection subscription failed; stopping");
                ctx.stop();
                return;
            }
        };
        if let Err(error) = self.explorer.apply(&event) {
            // The log breaks an invariant: serving reads from it would spread the damage.
            tracing::error!(%error, "projection refused an event; stopping");
            ctx.stop();
            return;
        }
        let next = event.position + 1;
        self.applied.advance(next);
        PROJECTION_LAG.set(self.store.next_position().saturating_sub(next) as i64);
        let is_block = event.event_type.starts_with("BlockSealed")
            || event.event_type.starts_with("ChainCreated");
        if is_block
            && let Ok(DomainEvent::Chain(chain_event)) =
                DomainEvent::decode(&event.event_type, &event.data, event.recorded_at_ms)
        {
            let block = match chain_event {
                ChainEvent::ChainCreated { block, .. } | ChainEvent::BlockSealed { block } => block,
            };
            let _ = self.blocks.send(Arc::new(block));
        }
        if next - self.last_checkpoint >= CHECKPOINT_EVERY_EVENTS {
            self.last_checkpoint = next;
            // The copy is taken here, between two events, so it is consistent; serializing and
            // writing it is blocking work, kept off the arbiter.
            let state = self.explorer.export();
            let store = self.store.clone();
            std::thread::spawn(move || {
                if let Err(error) =
                    futures::executor::block_on(save_checkpoint(store.as_ref(), &state))
                {
                    tracing::warn!(%error, "explorer checkpoint not saved");
                }
            });
        }
    }
}

impl Handler<ExportState> for ProjectionRunner {
    type Result = MessageResult<ExportState>;

    fn handle(&mut self, _msg: ExportState, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.explorer.export())
    }
}
