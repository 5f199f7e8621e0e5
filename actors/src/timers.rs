//! Durable timers: fires the commands that events of a [`Timed`] aggregate schedule.
//!
//! A timer lives in the log as the event that set it ([`Timed::timer`]). The scheduler follows
//! the log, keeps the timers not yet fired, and sends each one's command to its instance once
//! the clock reaches it. Its checkpoint (snapshot `timers/<aggregate>`) holds the position it
//! has read up to and the timers still pending then, so after a restart it resumes from there
//! and fires what came due while the node was down. A timer is removed once its command is
//! recorded; a crash before the checkpoint says so fires it again, which records nothing new
//! (the command's events have deterministic ids, and `decide` ignores a timer that no longer
//! applies).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use domain::aggregate::{Aggregate, Timed, Timer};
use serde::{Deserialize, Serialize};
use store::{EventStore, RecordedEvent, Snapshot, StoreError};

use crate::aggregate::Hosted;
use crate::error::CommandError;
use crate::registry::Registry;

/// Snapshot key of `A`'s scheduler checkpoint.
pub fn checkpoint_key<A: Aggregate>() -> String {
    format!("timers/{}", A::NAME)
}

/// The checkpoint is saved at least this often (in events read), so a restart re-reads little.
const CHECKPOINT_EVERY_EVENTS: u64 = 100_000;

/// Order of pending timers: due time, then where the event that set it is.
type Key = (u64, u64);

#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "C: Serialize",
    deserialize = "C: serde::de::DeserializeOwned"
))]
struct Pending<C> {
    due_ms: u64,
    /// Position of the event that set it.
    position: u64,
    stream: String,
    command: C,
}

#[derive(Deserialize)]
#[serde(bound = "C: serde::de::DeserializeOwned")]
struct Checkpoint<C> {
    timers: Vec<Pending<C>>,
}

/// The checkpoint as written: the pending timers, borrowed.
#[derive(Serialize)]
#[serde(bound = "C: Serialize")]
struct CheckpointRef<'a, C> {
    timers: Vec<&'a Pending<C>>,
}

/// The scheduler of `A`'s timers.
pub struct TimerScheduler<A: Hosted + Timed> {
    registry: Registry<A>,
    tick: Duration,
    next_position: u64,
    pending: BTreeMap<Key, (A::Id, Pending<A::Command>)>,
    firing: HashSet<Key>,
    saved_position: u64,
    changed: bool,
    saving: bool,
}

impl<A: Hosted + Timed> TimerScheduler<A> {
    /// Loads the checkpoint; from the log's start when there is none, it is unreadable or it is
    /// ahead of the log. Due timers are looked for every `tick`.
    pub async fn load(registry: Registry<A>, tick: Duration) -> Result<Self, StoreError> {
        let store = registry.store().clone();
        let head = store.next_position();
        let mut scheduler = TimerScheduler {
            registry,
            tick,
            next_position: 0,
            pending: BTreeMap::new(),
            firing: HashSet::new(),
            saved_position: 0,
            changed: false,
            saving: false,
        };
        let Some(snapshot) = store.load_snapshot(&checkpoint_key::<A>()).await? else {
            return Ok(scheduler);
        };
        if snapshot.revision > head {
            tracing::warn!(
                aggregate = A::NAME,
                checkpoint = snapshot.revision,
                head,
                "timer checkpoint is ahead of the log; reading the log from zero"
            );
            return Ok(scheduler);
        }
        let checkpoint: Checkpoint<A::Command> = match serde_json::from_slice(&snapshot.data) {
            Ok(checkpoint) => checkpoint,
            Err(error) => {
                tracing::warn!(aggregate = A::NAME, %error, "timer checkpoint unreadable; reading the log from zero");
                return Ok(scheduler);
            }
        };
        for timer in checkpoint.timers {
            let Some(id) = A::id_of_stream(&timer.stream) else {
                tracing::warn!(
                    aggregate = A::NAME,
                    stream = timer.stream,
                    "timer checkpoint names a foreign stream; reading the log from zero"
                );
                scheduler.pending.clear();
                return Ok(scheduler);
            };
            scheduler
                .pending
                .insert((timer.due_ms, timer.position), (id, timer));
        }
        scheduler.next_position = snapshot.revision;
        scheduler.saved_position = snapshot.revision;
        Ok(scheduler)
    }

    /// Timers not fired yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn observe(&mut self, event: &RecordedEvent) {
        assert_eq!(
            event.position, self.next_position,
            "the subscription is gap-free"
        );
        self.next_position += 1;
        let Some(id) = A::id_of_stream(&event.stream) else {
            return;
        };
        let decoded = match A::decode(&event.event_type, &event.data, event.recorded_at_ms) {
            Ok(decoded) => decoded,
            Err(error) => {
                tracing::error!(aggregate = A::NAME, position = event.position, %error, "undecodable event; its timer, if any, is lost");
                return;
            }
        };
        if let Some(Timer { due_ms, command }) = A::timer(&id, &decoded) {
            let timer = Pending {
                due_ms,
                position: event.position,
                stream: event.stream.to_string(),
                command,
            };
            self.pending.insert((due_ms, event.position), (id, timer));
            self.changed = true;
        }
    }

    fn fire_due(&mut self, ctx: &mut Context<Self>) {
        let now_ms = self.registry.clock().now_ms();
        let due: Vec<Key> = self
            .pending
            .range(..(now_ms + 1, 0))
            .map(|(key, _)| *key)
            .filter(|key| !self.firing.contains(key))
            .collect();
        for key in due {
            let (id, timer) = &self.pending[&key];
            let (registry, id, command) =
                (self.registry.clone(), id.clone(), timer.command.clone());
            let fire = async move { registry.execute(id, command).await };
            self.firing.insert(key);
            ctx.spawn(fire.into_actor(self).map(move |result, act, _| {
                act.firing.remove(&key);
                match result {
                    Ok(_) => {}
                    Err(
                        error @ (CommandError::Store(_)
                        | CommandError::Restarting
                        | CommandError::Unavailable(_)),
                    ) => {
                        tracing::warn!(aggregate = A::NAME, %error, "timer not fired; retrying");
                        return;
                    }
                    Err(error) => {
                        // The rules refuse it: firing it again would be refused again.
                        tracing::error!(aggregate = A::NAME, %error, "timer refused; dropped");
                    }
                }
                act.pending.remove(&key);
                act.changed = true;
            }));
        }
        crate::metrics::TIMERS_PENDING
            .with_label_values(&[A::NAME])
            .set(self.pending.len() as i64);
        self.save_checkpoint(ctx);
    }

    fn save_checkpoint(&mut self, ctx: &mut Context<Self>) {
        let stale = self.next_position - self.saved_position >= CHECKPOINT_EVERY_EVENTS;
        if self.saving || !(self.changed || stale) || self.next_position == self.saved_position {
            return;
        }
        let checkpoint = CheckpointRef {
            timers: self.pending.values().map(|(_, timer)| timer).collect(),
        };
        let data = serde_json::to_vec(&checkpoint).expect("timers serialize");
        let position = self.next_position;
        self.saving = true;
        self.changed = false;
        let save = self.registry.store().save_snapshot(
            &checkpoint_key::<A>(),
            Snapshot {
                revision: position,
                data,
            },
        );
        ctx.spawn(save.into_actor(self).map(move |result, act, _| {
            act.saving = false;
            match result {
                Ok(()) => act.saved_position = position,
                Err(error) => {
                    act.changed = true;
                    tracing::warn!(aggregate = A::NAME, %error, "timer checkpoint not saved");
                }
            }
        }));
    }
}

impl<A: Hosted + Timed> Actor for TimerScheduler<A> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let store: Arc<dyn EventStore> = self.registry.store().clone();
        ctx.add_stream(store.subscribe_all(self.next_position));
        ctx.run_interval(self.tick, |act, ctx| act.fire_due(ctx));
    }
}

impl<A: Hosted + Timed> StreamHandler<Result<RecordedEvent, StoreError>> for TimerScheduler<A> {
    fn handle(&mut self, item: Result<RecordedEvent, StoreError>, ctx: &mut Context<Self>) {
        match item {
            Ok(event) => self.observe(&event),
            Err(error) => {
                tracing::error!(aggregate = A::NAME, %error, "timer subscription failed; stopping");
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!(aggregate = A::NAME, "timer subscription ended");
    }
}

/// How many timers a scheduler holds (tests, health).
pub struct PendingTimers;

impl Message for PendingTimers {
    type Result = usize;
}

impl<A: Hosted + Timed> Handler<PendingTimers> for TimerScheduler<A> {
    type Result = usize;

    fn handle(&mut self, _msg: PendingTimers, _ctx: &mut Context<Self>) -> usize {
        self.pending.len()
    }
}
