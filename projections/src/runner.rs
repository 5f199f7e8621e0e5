//! Feeds a read model from the log and publishes its progress: one generic runner for every
//! [`Projection`] (commits every so many events or every second, off its thread; the applied
//! position with its waiters for read-your-writes; stop on refusal; lag metric).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use actix::prelude::*;
use prometheus::{IntGaugeVec, register_int_gauge_vec};
use store::{EventStore, RecordedEvent, StoreError};

use crate::projection::Projection;
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

/// How often a runner commits what it applied when events arrive slower than
/// [`Projection::PERSIST_EVERY_EVENTS`].
pub const PERSIST_INTERVAL: Duration = Duration::from_secs(1);

/// A commit finished (sent by its thread to the runner).
struct Persisted {
    position: u64,
    result: Result<(), String>,
}

impl Message for Persisted {
    type Result = ();
}

/// The actor applying log events to a read model.
pub struct ProjectionRunner<P: Projection> {
    store: Arc<dyn EventStore>,
    read_model: Arc<P>,
    applied: Arc<Watermark>,
    /// Position of the last commit started.
    last_persist: u64,
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
                last_persist: start,
            },
            handle,
        )
    }
}

impl<P: Projection> Actor for ProjectionRunner<P> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.add_stream(self.store.subscribe_all(self.read_model.next_position()));
        ctx.run_interval(PERSIST_INTERVAL, |act, ctx| act.persist(ctx));
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.applied.stop();
    }
}

impl<P: Projection> StreamHandler<Result<RecordedEvent, StoreError>> for ProjectionRunner<P> {
    fn handle(&mut self, item: Result<RecordedEvent, StoreError>, ctx: &mut Context<Self>) {
        let event = match item {
            Ok(event) => event,
            Err(StoreError::Closed) => {
                tracing::info!(projection = P::NAME, "the event log closed; stopping");
                ctx.stop();
                return;
            }
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
        if next - self.last_persist >= P::PERSIST_EVERY_EVENTS {
            self.persist(ctx);
        }
    }
}

impl<P: Projection> ProjectionRunner<P> {
    /// Starts a commit of what was applied, unless one is running or nothing is new.
    fn persist(&mut self, ctx: &mut Context<Self>) {
        if self.read_model.next_position() == self.last_persist {
            return;
        }
        let Some((position, job)) = self.read_model.prepare_persist() else {
            return;
        };
        self.last_persist = position;
        let runner = ctx.address();
        let spawned = std::thread::Builder::new()
            .name(format!("{}-commit", P::NAME))
            .spawn(move || {
                let result = job();
                runner.do_send(Persisted { position, result });
            });
        if let Err(error) = spawned {
            tracing::error!(projection = P::NAME, %error, "no thread for a commit; stopping");
            ctx.stop();
        }
    }
}

/// Commit what was applied now, on the runner's thread, and stop (the node is shutting down:
/// the next start then replays nothing).
pub struct Shutdown;

impl Message for Shutdown {
    type Result = Result<u64, String>;
}

impl<P: Projection> Handler<Shutdown> for ProjectionRunner<P> {
    type Result = Result<u64, String>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        ctx.stop();
        let position = self.read_model.next_position();
        if position == self.last_persist {
            return Ok(position);
        }
        let Some((position, job)) = self.read_model.prepare_persist() else {
            return Ok(self.last_persist);
        };
        job()?;
        self.read_model.persisted();
        self.last_persist = position;
        Ok(position)
    }
}

impl<P: Projection> Handler<Persisted> for ProjectionRunner<P> {
    type Result = ();

    fn handle(&mut self, msg: Persisted, ctx: &mut Context<Self>) {
        match msg.result {
            Ok(()) => self.read_model.persisted(),
            Err(error) => {
                // The disk under the read model fails; the log itself is likely next. Readers
                // keep the applied state, writers get `unavailable` from the stopped watermark.
                tracing::error!(projection = P::NAME, position = msg.position, %error, "commit failed; stopping");
                ctx.stop();
            }
        }
    }
}
