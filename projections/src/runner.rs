//! Feeds a read model from the log and publishes its progress: one generic runner for every
//! [`Projection`] (checkpoint on load and every so many events, the applied position with its
//! waiters for read-your-writes, stop on refusal, lag metric).

use std::sync::{Arc, LazyLock};

use actix::prelude::*;
use prometheus::{IntGaugeVec, register_int_gauge_vec};
use store::{EventStore, RecordedEvent, Snapshot, StoreError};

use crate::projection::{Projection, checkpoint_key};
use crate::watermark::{ProjectionStopped, Watermark};

static PROJECTION_LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "aitbc_projection_lag_events",
        "Events in the log not yet applied by a projection",
        &["projection"]
    )
    .expect("metric registers once")
});

/// Shared handles to a running projection.
pub struct ProjectionHandle<P> {
    /// The read model.
    pub read_model: Arc<P>,
    /// Next position applied (everything before it is readable), with waiters.
    pub applied: Arc<Watermark>,
}

impl<P> Clone for ProjectionHandle<P> {
    fn clone(&self) -> Self {
        ProjectionHandle {
            read_model: self.read_model.clone(),
            applied: self.applied.clone(),
        }
    }
}

impl<P> ProjectionHandle<P> {
    /// Waits until every event before `position` (exclusive) is applied.
    pub async fn wait_applied(&self, position: u64) -> Result<(), ProjectionStopped> {
        self.applied.wait_for(position).await
    }
}

/// Loads `P` from its checkpoint; empty (rebuilt from zero) when there is none, it cannot be
/// read, or it is ahead of the log.
pub async fn load<P: Projection>(store: &dyn EventStore) -> Result<P, StoreError> {
    let Some(snapshot) = store.load_snapshot(&checkpoint_key::<P>()).await? else {
        return Ok(P::empty());
    };
    match P::decode(&snapshot.data) {
        Ok(loaded)
            if loaded.next_position() == snapshot.revision
                && loaded.next_position() <= store.next_position() =>
        {
            Ok(loaded)
        }
        Ok(_) => {
            tracing::warn!(
                projection = P::NAME,
                "checkpoint is ahead of the log; rebuilding from zero"
            );
            Ok(P::empty())
        }
        Err(error) => {
            tracing::warn!(projection = P::NAME, %error, "checkpoint unreadable; rebuilding from zero");
            Ok(P::empty())
        }
    }
}

/// Saves a copy of `P` (see [`ExportCopy`]) as its checkpoint. Encoding is blocking work: call
/// it off the actor threads.
pub async fn save_checkpoint<P: Projection>(
    store: &dyn EventStore,
    copy: &P::Copy,
) -> Result<(), StoreError> {
    let (revision, data) = P::encode(copy);
    store
        .save_snapshot(&checkpoint_key::<P>(), Snapshot { revision, data })
        .await
}

/// Asks the runner for a copy of its read model taken between two events (consistent).
pub struct ExportCopy<P>(std::marker::PhantomData<fn() -> P>);

impl<P> Default for ExportCopy<P> {
    fn default() -> Self {
        ExportCopy(std::marker::PhantomData)
    }
}

impl<P: Projection> Message for ExportCopy<P> {
    type Result = P::Copy;
}

/// The actor applying log events to a read model.
pub struct ProjectionRunner<P: Projection> {
    store: Arc<dyn EventStore>,
    read_model: Arc<P>,
    applied: Arc<Watermark>,
    last_checkpoint: u64,
}

impl<P: Projection> ProjectionRunner<P> {
    /// A runner for a loaded read model, and the handle readers use.
    pub fn new(store: Arc<dyn EventStore>, read_model: P) -> (Self, ProjectionHandle<P>) {
        let read_model = Arc::new(read_model);
        let start = read_model.next_position();
        let applied = Arc::new(Watermark::new(start));
        let handle = ProjectionHandle {
            read_model: read_model.clone(),
            applied: applied.clone(),
        };
        (
            ProjectionRunner {
                store,
                read_model,
                applied,
                last_checkpoint: start,
            },
            handle,
        )
    }
}

impl<P: Projection> Actor for ProjectionRunner<P> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.add_stream(self.store.subscribe_all(self.read_model.next_position()));
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.applied.stop();
    }
}

impl<P: Projection> StreamHandler<Result<RecordedEvent, StoreError>> for ProjectionRunner<P> {
    fn handle(&mut self, item: Result<RecordedEvent, StoreError>, ctx: &mut Context<Self>) {
        let event = match item {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(projection = P::NAME, %error, "subscription failed; stopping");
                ctx.stop();
                return;
            }
        };
        if let Err(error) = self.read_model.apply(&event) {
            // The log breaks an invariant: serving reads from it would spread the damage.
            tracing::error!(projection = P::NAME, %error, "refused an event; stopping");
            ctx.stop();
            return;
        }
        let next = event.position + 1;
        self.applied.advance(next);
        PROJECTION_LAG
            .with_label_values(&[P::NAME])
            .set(self.store.next_position().saturating_sub(next) as i64);
        if next - self.last_checkpoint >= P::CHECKPOINT_EVERY_EVENTS {
            self.last_checkpoint = next;
            // The copy is taken here, between two events, so it is consistent; encoding and
            // writing it is blocking work, kept off the arbiter.
            let copy = self.read_model.copy();
            let store = self.store.clone();
            std::thread::spawn(move || {
                let save = save_checkpoint::<P>(store.as_ref(), &copy);
                if let Err(error) = futures::executor::block_on(save) {
                    tracing::warn!(projection = P::NAME, %error, "checkpoint not saved");
                }
            });
        }
    }
}

impl<P: Projection> Handler<ExportCopy<P>> for ProjectionRunner<P> {
    type Result = MessageResult<ExportCopy<P>>;

    fn handle(&mut self, _msg: ExportCopy<P>, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.read_model.copy())
    }
}
