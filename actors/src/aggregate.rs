//! The host of every aggregate: one actix actor per instance (a wallet, a chain, a vesting
//! schedule...), the only writer of its stream.
//!
//! Commands queue in the actor; whenever no append is in flight, the queued commands of one
//! [`BatchClass`] are decided in order against a staged copy of the state and appended as ONE
//! batch with the expected revision (per-stream group commit). Once the log acknowledges it, the
//! written events are applied with `evolve` and every command is answered with its events and
//! their positions. A command whose event is already known (same deterministic id, recently
//! stored or earlier in the same batch) is answered with that event, marked `duplicate`.
//!
//! Activation loads the latest snapshot (ignored with a warning if unreadable or ahead of the
//! log) and the stream after it. A failed append stops the actor: the next command rehydrates
//! from the log. An idle actor passivates.

use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use actix::prelude::*;
use domain::aggregate::{Aggregate, BatchClass, Context as DecideContext};
use serde::{Deserialize, Serialize};
use store::{
    AppendOutcome, EventId, EventStore, ExpectedRevision, NewEvent, Revision, Snapshot, StoreError,
};
use tokio::sync::oneshot;

use crate::error::CommandError;
use crate::limits::*;
use crate::metrics;
use crate::registry::Registry;

/// An aggregate this crate can host: its refusals become [`CommandError`]s.
pub trait Hosted: Aggregate<Error: Into<CommandError>> {}

impl<A> Hosted for A
where
    A: Aggregate,
    A::Error: Into<CommandError>,
{
}

/// What a command recorded: its events with their log positions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied<E> {
    /// The command's events and where they are in the log (for a duplicate: the events stored
    /// the first time).
    pub events: Vec<(E, u64)>,
    /// `true` when the events were already stored (a resubmission or a retried delivery).
    pub duplicate: bool,
}

impl<E> Applied<E> {
    /// Position of the last event, if any.
    pub fn last_position(&self) -> Option<u64> {
        self.events.iter().map(|(_, position)| *position).max()
    }
}

/// What an aggregate actor answers.
pub type Reply<A> = Result<Applied<<A as Aggregate>::Event>, CommandError>;

/// Decide and record a command.
pub struct Execute<A: Aggregate>(pub A::Command);

impl<A: Aggregate> Clone for Execute<A> {
    fn clone(&self) -> Self {
        Execute(self.0.clone())
    }
}

impl<A: Aggregate> Message for Execute<A> {
    type Result = Reply<A>;
}

/// Read the current state.
pub struct GetState<A>(PhantomData<fn() -> A>);

impl<A> GetState<A> {
    /// The request.
    pub fn new() -> Self {
        GetState(PhantomData)
    }
}

impl<A> Default for GetState<A> {
    fn default() -> Self {
        GetState::new()
    }
}

impl<A> Clone for GetState<A> {
    fn clone(&self) -> Self {
        GetState::new()
    }
}

impl<A: Aggregate> Message for GetState<A> {
    type Result = Result<(A::State, Option<Revision>), CommandError>;
}

/// Read something from the current state without copying all of it (a proposal's record
/// without its million votes, whether one address voted).
pub struct Query<A: Aggregate, R>(pub Arc<Reader<A, R>>);

/// What a [`Query`] runs on the state.
pub type Reader<A, R> = dyn Fn(&<A as Aggregate>::State) -> R + Send + Sync;

impl<A: Aggregate, R> Clone for Query<A, R> {
    fn clone(&self) -> Self {
        Query(self.0.clone())
    }
}

impl<A: Aggregate, R: 'static> Message for Query<A, R> {
    type Result = Result<R, CommandError>;
}

struct Pending<A: Aggregate> {
    command: A::Command,
    reply: oneshot::Sender<Reply<A>>,
    /// How many times another node's append to the stream made it decide again.
    conflicts: u32,
}

/// Who waits for which events of an in-flight batch.
struct Waiter<A: Aggregate> {
    events: Range<usize>,
    duplicate: bool,
    reply: oneshot::Sender<Reply<A>>,
    /// On a shared log, the command, to decide again if another node appended first.
    retry: Option<(A::Command, u32)>,
}

/// Most times a command is decided again because other nodes kept appending to its stream
/// first; then it is answered `Restarting` (the registry tries a fresh activation).
const CONFLICTS_MAX: u32 = 8;

/// A snapshot serializes the whole state, so the larger the last one, the more events go by
/// before the next: at least one event per this many bytes of it. Saving then costs each event
/// a bounded share (a chain's staking state with 100,000 positions was re-serialized, 20 MB,
/// every 4,096 stakes: 14 % of the node's CPU), and activation replays at most as many events
/// as would cost about as much as reading the snapshot.
const SNAPSHOT_BYTES_PER_EVENT: u64 = 512;

/// Lets the actor save its next snapshot once this one is done, whatever happened to it.
struct SnapshotSaved(Arc<AtomicBool>);

impl Drop for SnapshotSaved {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Whether a snapshot is due `since` events after the last one, which took `last_bytes`.
fn snapshot_due<A: Aggregate>(since: u64, last_bytes: u64) -> bool {
    since >= A::SNAPSHOT_EVERY_EVENTS.max(last_bytes / SNAPSHOT_BYTES_PER_EVENT)
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot<S> {
    state: S,
}

/// A batch being built.
struct Batch<A: Aggregate> {
    staged: A::State,
    events: Vec<A::Event>,
    /// The events' ids, computed once.
    ids: Vec<u128>,
    encoded: Vec<NewEvent>,
    waiters: Vec<Waiter<A>>,
    index_by_id: HashMap<u128, usize>,
    bytes: usize,
}

/// The actor hosting one instance of `A`.
pub struct AggregateActor<A: Hosted> {
    id: A::Id,
    stream: String,
    facts: A::Facts,
    state: A::State,
    revision: Option<Revision>,
    snapshot_revision: Option<Revision>,
    /// Size of the last snapshot saved or loaded, and whether one is being saved (shared with
    /// the thread that serializes and saves it).
    snapshot_bytes: Arc<AtomicU64>,
    snapshot_saving: Arc<AtomicBool>,
    store: Arc<dyn EventStore>,
    /// Whether other nodes append to the log too (`EventStore::shared`).
    shared_log: bool,
    registry: Registry<A>,
    queue: VecDeque<Pending<A>>,
    in_flight: bool,
    loaded: bool,
    recent: HashMap<u128, (A::Event, u64)>,
    recent_order: VecDeque<u128>,
    last_activity: Instant,
}

impl<A: Hosted> AggregateActor<A> {
    /// A not yet loaded actor for `id`.
    pub fn new(
        id: A::Id,
        facts: A::Facts,
        store: Arc<dyn EventStore>,
        registry: Registry<A>,
    ) -> Self {
        AggregateActor {
            stream: A::stream(&id),
            id,
            facts,
            state: A::State::default(),
            revision: None,
            snapshot_revision: None,
            snapshot_bytes: Arc::default(),
            snapshot_saving: Arc::default(),
            shared_log: store.shared(),
            store,
            registry,
            queue: VecDeque::new(),
            in_flight: false,
            loaded: false,
            recent: HashMap::new(),
            recent_order: VecDeque::new(),
            last_activity: Instant::now(),
        }
    }

    fn remember(&mut self, id: u128, event: &A::Event, position: u64) {
        if self.recent.insert(id, (event.clone(), position)).is_none() {
            self.recent_order.push_back(id);
        }
        while self.recent_order.len() > A::REMEMBERED {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }

    fn enqueue(&mut self, pending: Pending<A>, ctx: &mut Context<Self>) {
        self.last_activity = Instant::now();
        self.queue.push_back(pending);
        self.flush(ctx);
    }

    /// Decides and appends the next batch, if none is in flight.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        // On a log other nodes append to, this stream may have moved on without this actor
        // (another node's credit, or its own commands): it applies those events first.
        if self.shared_log
            && self.loaded
            && !self.in_flight
            && !self.queue.is_empty()
            && self.store.stream_revision(&self.stream) != self.revision
        {
            self.catch_up(ctx);
            return;
        }
        while self.loaded && !self.in_flight && !self.queue.is_empty() {
            let class = A::batch_class(&self.queue.front().expect("not empty").command);
            let now_ms = self.registry.clock().now_ms();
            let mut batch = Batch {
                staged: self.state.clone(),
                events: Vec::new(),
                ids: Vec::new(),
                encoded: Vec::new(),
                waiters: Vec::new(),
                index_by_id: HashMap::new(),
                bytes: 0,
            };
            while batch.events.len() < BATCH_EVENTS_MAX && batch.bytes < BATCH_BYTES_MAX {
                match self.queue.front() {
                    Some(front) if A::batch_class(&front.command) == class => {}
                    _ => break,
                }
                let pending = self.queue.pop_front().expect("front exists");
                self.decide_one(pending, now_ms, &mut batch);
            }
            if batch.events.is_empty() {
                // Every command decided nothing happens (a timer that no longer applies).
                for waiter in batch.waiters {
                    let _ = waiter.reply.send(Ok(Applied {
                        events: Vec::new(),
                        duplicate: false,
                    }));
                }
            } else {
                self.append(batch, class, ctx);
            }
        }
    }

    fn decide_one(&mut self, pending: Pending<A>, now_ms: u64, batch: &mut Batch<A>) {
        let Pending {
            command,
            reply,
            conflicts,
        } = pending;
        let retry = self.shared_log.then(|| (command.clone(), conflicts));
        if let Some(known) = A::command_event_id(&self.id, &command) {
            if let Some((event, position)) = self.recent.get(&known) {
                metrics::command(A::NAME, "duplicate");
                let _ = reply.send(Ok(Applied {
                    events: vec![(event.clone(), *position)],
                    duplicate: true,
                }));
                return;
            }
            if let Some(&index) = batch.index_by_id.get(&known) {
                batch.waiters.push(Waiter {
                    events: index..index + 1,
                    duplicate: true,
                    reply,
                    retry,
                });
                return;
            }
        }
        let ctx = DecideContext {
            id: &self.id,
            facts: &self.facts,
            now_ms,
        };
        match A::decide(&batch.staged, &ctx, command) {
            Ok(events) => {
                let start = batch.events.len();
                for event in events {
                    A::evolve(&mut batch.staged, &event);
                    let id = A::event_id(&self.id, &event);
                    let (event_type, data) = A::encode(&event);
                    batch.bytes += data.len();
                    batch.index_by_id.insert(id, batch.events.len());
                    batch.encoded.push(NewEvent {
                        id: EventId(id),
                        event_type: event_type.to_string(),
                        data,
                    });
                    batch.ids.push(id);
                    batch.events.push(event);
                }
                batch.waiters.push(Waiter {
                    events: start..batch.events.len(),
                    duplicate: false,
                    reply,
                    retry,
                });
            }
            Err(error) => {
                let error: CommandError = error.into();
                metrics::command(A::NAME, error.code());
                let _ = reply.send(Err(error));
            }
        }
    }

    fn append(&mut self, batch: Batch<A>, class: BatchClass, ctx: &mut Context<Self>) {
        let expected = match self.revision {
            None => ExpectedRevision::NoStream,
            Some(r) => ExpectedRevision::Exact(r),
        };
        self.in_flight = true;
        let Batch {
            events,
            ids,
            encoded,
            waiters,
            ..
        } = batch;
        let append = self.store.append(&self.stream, expected, encoded);
        ctx.spawn(append.into_actor(self).map(move |result, act, ctx| {
            act.in_flight = false;
            act.complete(result, class, (events, ids), waiters, ctx);
            act.flush(ctx);
        }));
    }

    fn complete(
        &mut self,
        result: Result<AppendOutcome, StoreError>,
        class: BatchClass,
        (events, ids): (Vec<A::Event>, Vec<u128>),
        waiters: Vec<Waiter<A>>,
        ctx: &mut Context<Self>,
    ) {
        let outcome = match result {
            Ok(outcome) => outcome,
            // Another node appended to this stream first (a shared log): nothing of this batch
            // was written. Its commands go back to the front of the queue, and `flush` applies
            // the other node's events before deciding them again.
            Err(StoreError::WrongExpectedRevision { .. })
                if self.shared_log
                    && waiters
                        .iter()
                        .all(|w| w.retry.as_ref().is_some_and(|(_, n)| *n < CONFLICTS_MAX)) =>
            {
                for waiter in waiters.into_iter().rev() {
                    let (command, conflicts) = waiter.retry.expect("checked");
                    self.queue.push_front(Pending {
                        command,
                        reply: waiter.reply,
                        conflicts: conflicts + 1,
                    });
                }
                return;
            }
            Err(error) => {
                // The log refused or failed: our view may be stale. Answer everyone, then stop so
                // that the next command rehydrates from the log.
                tracing::warn!(stream = %self.stream, %error, "append failed; actor restarts");
                let error = match error {
                    StoreError::WrongExpectedRevision { .. } => CommandError::Restarting,
                    other => CommandError::Store(other),
                };
                for waiter in waiters {
                    let _ = waiter.reply.send(Err(error.clone()));
                }
                self.stop(ctx);
                return;
            }
        };
        let mut stale = false;
        for (i, event) in events.iter().enumerate() {
            if outcome.written[i] {
                A::evolve(&mut self.state, event);
                self.revision = Some(
                    self.revision
                        .map_or(outcome.revisions[i], |r| r.max(outcome.revisions[i])),
                );
            } else if class == BatchClass::Decision {
                // A decision the log already holds but our state did not reflect.
                stale = true;
            }
            // Idempotent facts need no memory: the log itself answers a repeated one.
            if class == BatchClass::Decision {
                self.remember(ids[i], event, outcome.positions[i]);
            }
        }
        if outcome.written.iter().any(|w| *w) {
            self.registry.publish(&self.id, &self.state);
        }
        // A decision the log already held is not this batch's to answer: its waiters retry on a
        // fresh activation, which knows the stored event. Duplicates (of an event earlier in
        // this batch) get copies; each original command then takes its own events.
        let unwritten = |range: &Range<usize>| {
            class == BatchClass::Decision && range.clone().any(|i| !outcome.written[i])
        };
        let mut events: Vec<Option<A::Event>> = events.into_iter().map(Some).collect();
        let (duplicates, originals): (Vec<_>, Vec<_>) =
            waiters.into_iter().partition(|w| w.duplicate);
        for waiter in duplicates {
            if unwritten(&waiter.events) {
                let _ = waiter.reply.send(Err(CommandError::Restarting));
                continue;
            }
            let copies = waiter
                .events
                .map(|i| {
                    (
                        events[i].clone().expect("not yet taken"),
                        outcome.positions[i],
                    )
                })
                .collect();
            let _ = waiter.reply.send(Ok(Applied {
                events: copies,
                duplicate: true,
            }));
        }
        for waiter in originals {
            if unwritten(&waiter.events) {
                let _ = waiter.reply.send(Err(CommandError::Restarting));
                continue;
            }
            metrics::command(A::NAME, "committed");
            let own = waiter
                .events
                .map(|i| (events[i].take().expect("taken once"), outcome.positions[i]))
                .collect();
            let _ = waiter.reply.send(Ok(Applied {
                events: own,
                duplicate: false,
            }));
        }
        if stale {
            self.stop(ctx);
            return;
        }
        self.maybe_snapshot();
    }

    /// Saves a snapshot once enough events went by, serialized and written on a blocking
    /// thread so that the actor goes on deciding (its state is cloned: persistent maps make
    /// that cheap for the large ones). One at a time per actor.
    fn maybe_snapshot(&mut self) {
        let Some(revision) = self.revision else {
            return;
        };
        let since = self
            .snapshot_revision
            .map_or(revision + 1, |s| revision - s);
        let last_bytes = self.snapshot_bytes.load(Ordering::Relaxed);
        if !snapshot_due::<A>(since, last_bytes)
            || self.snapshot_saving.swap(true, Ordering::AcqRel)
        {
            return;
        }
        self.snapshot_revision = Some(revision);
        let state = StoredSnapshot {
            state: self.state.clone(),
        };
        let (store, stream) = (self.store.clone(), self.stream.clone());
        let (bytes, saving) = (self.snapshot_bytes.clone(), self.snapshot_saving.clone());
        tokio::task::spawn_blocking(move || {
            let _done = SnapshotSaved(saving);
            let data = serde_json::to_vec(&state).expect("state serializes");
            let len = data.len() as u64;
            let saved = store.save_snapshot(&stream, Snapshot { revision, data });
            match futures::executor::block_on(saved) {
                Ok(()) => bytes.store(len, Ordering::Relaxed),
                Err(error) => tracing::warn!(%stream, %error, "snapshot not saved"),
            }
        });
    }

    /// Applies the events of its stream this actor did not write (on a shared log), then goes
    /// on deciding. A page that does not continue its revision means a view it cannot trust:
    /// it stops, and its commands go to a fresh activation.
    fn catch_up(&mut self, ctx: &mut Context<Self>) {
        self.in_flight = true;
        let from = self.revision.map_or(0, |r| r + 1);
        let read = self
            .store
            .read_stream(&self.stream, from, REHYDRATE_PAGE_MAX);
        ctx.spawn(read.into_actor(self).map(move |page, act, ctx| {
            act.in_flight = false;
            let page = match page {
                Ok(page) if page.first().is_some_and(|e| e.revision == from) => page,
                _ => return act.stop(ctx),
            };
            for recorded in page {
                let decoded = A::decode(
                    &recorded.event_type,
                    &recorded.data,
                    recorded.recorded_at_ms,
                );
                let Ok(event) = decoded else {
                    return act.stop(ctx);
                };
                A::evolve(&mut act.state, &event);
                act.revision = Some(recorded.revision);
                act.remember(A::event_id(&act.id, &event), &event, recorded.position);
            }
            act.registry.publish(&act.id, &act.state);
            act.flush(ctx);
        }));
    }

    fn stop(&mut self, ctx: &mut Context<Self>) {
        self.registry.forget(&self.id, &ctx.address());
        for pending in self.queue.drain(..) {
            let _ = pending.reply.send(Err(CommandError::Restarting));
        }
        ctx.stop();
    }

    fn load(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let stream = self.stream.clone();
        let snapshot_bytes = self.snapshot_bytes.clone();
        let load = async move {
            let (mut state, mut revision) = (A::State::default(), None);
            if let Some(snapshot) = store.load_snapshot(&stream).await? {
                let head = store.stream_revision(&stream);
                if head.is_none_or(|head| snapshot.revision > head) {
                    tracing::warn!(%stream, snapshot = snapshot.revision, ?head, "ignoring a snapshot ahead of the log");
                } else {
                    match serde_json::from_slice::<StoredSnapshot<A::State>>(&snapshot.data) {
                        Ok(s) => {
                            (state, revision) = (s.state, Some(snapshot.revision));
                            snapshot_bytes.store(snapshot.data.len() as u64, Ordering::Relaxed);
                        }
                        Err(error) => {
                            tracing::warn!(%stream, %error, "ignoring an unreadable snapshot")
                        }
                    }
                }
            }
            let snapshot_revision = revision;
            // The stream's last events are remembered for idempotent answers, also those the
            // snapshot already covers (they are read, not applied again).
            let mut events = VecDeque::with_capacity(A::REMEMBERED.min(REHYDRATE_PAGE_MAX));
            let head = store.stream_revision(&stream);
            let tail_from = head.map_or(0, |h| (h + 1).saturating_sub(A::REMEMBERED as u64));
            let mut from = revision.map_or(0, |r| r + 1).min(tail_from);
            loop {
                let page = store.read_stream(&stream, from, REHYDRATE_PAGE_MAX).await?;
                let done = page.len() < REHYDRATE_PAGE_MAX;
                for recorded in page {
                    from = recorded.revision + 1;
                    let event = A::decode(
                        &recorded.event_type,
                        &recorded.data,
                        recorded.recorded_at_ms,
                    )
                    .map_err(|error| {
                        StoreError::Invalid(format!(
                            "stream {stream} revision {}: {error}",
                            recorded.revision
                        ))
                    })?;
                    if snapshot_revision.is_some_and(|s| recorded.revision <= s) {
                        if events.len() == A::REMEMBERED {
                            events.pop_front();
                        }
                        events.push_back((event, recorded.position));
                        continue;
                    }
                    A::evolve(&mut state, &event);
                    revision = Some(recorded.revision);
                    if events.len() == A::REMEMBERED {
                        events.pop_front();
                    }
                    events.push_back((event, recorded.position));
                }
                if done {
                    break;
                }
            }
            Ok::<_, StoreError>((state, revision, snapshot_revision, events))
        };
        ctx.wait(load.into_actor(self).map(|result, act, ctx| match result {
            Ok((state, revision, snapshot_revision, events)) => {
                act.state = state;
                act.revision = revision;
                act.snapshot_revision = snapshot_revision;
                for (event, position) in &events {
                    act.remember(A::event_id(&act.id, event), event, *position);
                }
                act.loaded = true;
                act.registry.publish(&act.id, &act.state);
                act.flush(ctx);
            }
            Err(error) => {
                tracing::error!(stream = %act.stream, %error, "actor could not be loaded");
                for pending in act.queue.drain(..) {
                    let _ = pending.reply.send(Err(CommandError::Store(error.clone())));
                }
                act.registry.forget(&act.id, &ctx.address());
                ctx.stop();
            }
        }));
    }
}

impl<A: Hosted> Actor for AggregateActor<A> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        metrics::ACTIVE_ACTORS.with_label_values(&[A::NAME]).inc();
        ctx.set_mailbox_capacity(MAILBOX_MAX);
        self.load(ctx);
        let idle_timeout = self.registry.idle_timeout();
        ctx.run_interval(IDLE_CHECK.min(idle_timeout), move |act, ctx| {
            let idle = act.last_activity.elapsed() >= idle_timeout;
            if idle && !act.in_flight && act.queue.is_empty() {
                act.registry.forget(&act.id, &ctx.address());
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        metrics::ACTIVE_ACTORS.with_label_values(&[A::NAME]).dec();
    }
}

impl<A: Hosted> Handler<Execute<A>> for AggregateActor<A> {
    type Result = ResponseFuture<Reply<A>>;

    fn handle(&mut self, msg: Execute<A>, ctx: &mut Context<Self>) -> Self::Result {
        let (reply, rx) = oneshot::channel();
        self.enqueue(
            Pending {
                command: msg.0,
                reply,
                conflicts: 0,
            },
            ctx,
        );
        Box::pin(async move { rx.await.unwrap_or(Err(CommandError::Restarting)) })
    }
}

impl<A: Hosted, R: 'static> Handler<Query<A, R>> for AggregateActor<A> {
    type Result = Result<R, CommandError>;

    fn handle(&mut self, query: Query<A, R>, _ctx: &mut Context<Self>) -> Self::Result {
        self.last_activity = Instant::now();
        Ok((query.0)(&self.state))
    }
}

impl<A: Hosted> Handler<GetState<A>> for AggregateActor<A> {
    type Result = Result<(A::State, Option<Revision>), CommandError>;

    fn handle(&mut self, _msg: GetState<A>, _ctx: &mut Context<Self>) -> Self::Result {
        // Runs only once loaded: loading holds the mailbox (`ctx.wait`). The state is the
        // durable one (a batch in flight is not in it), so it matches the revision.
        self.last_activity = Instant::now();
        Ok((self.state.clone(), self.revision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::staking::Staking;
    use domain::wallet::Wallet;

    #[test]
    fn a_larger_snapshot_waits_for_more_events() {
        // Small states: the aggregate's own interval.
        assert!(!snapshot_due::<Wallet>(255, 4_000));
        assert!(snapshot_due::<Wallet>(256, 4_000));
        assert!(!snapshot_due::<Staking>(4_095, 0));
        assert!(snapshot_due::<Staking>(4_096, 0));
        // 20 MB of positions: one event per 512 bytes of it, 40,960 events.
        assert!(!snapshot_due::<Staking>(40_959, 20 << 20));
        assert!(snapshot_due::<Staking>(40_960, 20 << 20));
    }
}
