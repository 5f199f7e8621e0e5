//! The protocol's process manager: makes sure every step a committed event owes is done.
//!
//! The request path runs a transaction's steps right after its debit is durable
//! ([`crate::router::Router::complete`]). This manager follows the log from its checkpoint and
//! remembers, for every event that owes steps ([`domain::protocol::follow_ups`]), the ids of
//! the events those steps record. Seeing such an event in the log closes its step. A step still
//! open after [`STEP_GRACE`] (the request path died, e.g. the node crashed between two
//! appends), or that was open when the node restarted, is run here. Steps are idempotent
//! (deterministic event ids), so running one twice is harmless. The checkpoint is the position
//! of the oldest event with an open step, so a restart re-reads exactly what may be open.
//!
//! It also keeps the timers events set ([`domain::protocol::timers`]) and runs each one's step
//! once the clock reaches it (checked every tick), after a restart too: the checkpoint lists
//! the positions of the events whose timers are pending, which are read again on load, so a
//! timer days away does not hold the checkpoint back. A timer is dropped once its step ran; a
//! crash before the checkpoint says so runs it again, which records nothing new.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use actix::prelude::*;
use dashmap::DashSet;
use domain::codec::{DomainEvent, decode_wallet_fact};
use domain::protocol::{Fact, FollowUp, follow_ups, stream_owner, timers};
use serde::{Deserialize, Serialize};
use store::{EventStore, RecordedEvent, Snapshot, StoreError};

use crate::limits::{PROTOCOL_MANAGER_TICK, STEP_GRACE};
use crate::metrics;
use crate::router::Router;

/// Snapshot key of the manager's checkpoint (its `revision` holds the log position). The name
/// is from the time it delivered only transfers' credits; the position means the same.
pub const CHECKPOINT_KEY: &str = "process/transfers";

/// What the manager has seen, shared with the request path: a committed transaction whose
/// steps are all done needs none of them run again (and an old one may no longer be answered
/// from an actor's memory).
#[derive(Debug, Default)]
pub struct Progress {
    /// Next position the manager will observe.
    observed: AtomicU64,
    /// Positions of events with a step still open.
    open: DashSet<u64>,
}

impl Progress {
    /// Whether every step the event at `position` owed is done: the manager has seen it and
    /// every event its steps record.
    pub fn is_done(&self, position: u64) -> bool {
        self.observed.load(Ordering::Acquire) > position && !self.open.contains(&position)
    }

    /// Next position the manager will observe.
    pub fn observed(&self) -> u64 {
        self.observed.load(Ordering::Acquire)
    }
}

struct Open {
    /// (event id the step records, step).
    steps: Vec<(u128, FollowUp)>,
    seen: Instant,
}

/// The process manager actor.
pub struct ProtocolManager {
    store: Arc<dyn EventStore>,
    router: Router,
    start: u64,
    observed: u64,
    head_at_start: u64,
    open: BTreeMap<u64, Open>,
    /// Event id of an open step → position of the event that owes it.
    by_event: HashMap<u128, u64>,
    running: HashSet<u64>,
    saved_checkpoint: u64,
    recovered: Arc<AtomicBool>,
    recovering: bool,
    progress: Arc<Progress>,
    /// Pending timers by (due time, position of the event that set it).
    timers: BTreeMap<(u64, u64), FollowUp>,
    firing: HashSet<(u64, u64)>,
    timers_changed: bool,
}

/// What the checkpoint's data holds besides its position.
#[derive(Default, Serialize, Deserialize)]
struct CheckpointData {
    /// Positions of the events whose timers are pending.
    timers: Vec<u64>,
}

/// The protocol's view of a stored event, decoded without copying what it does not need.
fn fact(event: &RecordedEvent) -> Option<Fact> {
    if let Some(wallet) = decode_wallet_fact(&event.event_type, &event.data) {
        return match wallet {
            Ok(fact) => Some(Fact::Wallet(fact)),
            Err(error) => {
                tracing::error!(position = event.position, %error, "undecodable wallet event");
                None
            }
        };
    }
    let module_stream = [
        "vesting/",
        "dao/",
        "proposal/",
        "agent/",
        "job/",
        "miner/",
        "jobs/",
        "staking/",
    ];
    if !module_stream.iter().any(|p| event.stream.starts_with(p)) {
        return None;
    }
    match DomainEvent::decode(&event.event_type, &event.data, event.recorded_at_ms) {
        Ok(decoded) => crate::router::fact_of(&decoded),
        Err(error) => {
            tracing::error!(position = event.position, %error, "undecodable module event");
            None
        }
    }
}

impl ProtocolManager {
    /// Loads the checkpoint and returns a manager ready to start. `recovered` turns true once
    /// the manager has caught up with the log and finished every step it found open.
    pub async fn load(router: Router, recovered: Arc<AtomicBool>) -> Result<Self, StoreError> {
        let store = router.store().clone();
        let head_at_start = store.next_position();
        let (start, data) = match store.load_snapshot(CHECKPOINT_KEY).await? {
            Some(checkpoint) if checkpoint.revision > head_at_start => {
                // Written for a log longer than this one: resuming there would skip events.
                tracing::warn!(
                    checkpoint = checkpoint.revision,
                    head = head_at_start,
                    "protocol manager checkpoint is ahead of the log; replaying from zero"
                );
                (0, CheckpointData::default())
            }
            // Checkpoints written before timers existed hold no data.
            Some(checkpoint) if checkpoint.data.is_empty() => {
                (checkpoint.revision, CheckpointData::default())
            }
            Some(checkpoint) => match serde_json::from_slice(&checkpoint.data) {
                Ok(data) => (checkpoint.revision, data),
                Err(error) => {
                    tracing::warn!(%error, "protocol manager checkpoint unreadable; replaying from zero");
                    (0, CheckpointData::default())
                }
            },
            None => (0, CheckpointData::default()),
        };
        let mut pending = BTreeMap::new();
        for position in data.timers.into_iter().filter(|p| *p < start) {
            // The event that set the timer is read again: the timer is durable because it is.
            let Some(event) = store.read_all(position, 1).await?.pop() else {
                continue;
            };
            if let (Some(fact), Some(owner)) = (fact(&event), stream_owner(&event.stream)) {
                for timer in timers(&owner, &fact) {
                    pending.insert((timer.due_ms, position), timer.step);
                }
            }
        }
        Ok(ProtocolManager {
            store,
            router,
            start,
            observed: start,
            head_at_start,
            open: BTreeMap::new(),
            by_event: HashMap::new(),
            running: HashSet::new(),
            saved_checkpoint: start,
            recovered,
            recovering: false,
            progress: Arc::new(Progress {
                observed: AtomicU64::new(start),
                open: DashSet::new(),
            }),
            timers: pending,
            firing: HashSet::new(),
            timers_changed: false,
        })
    }

    /// What the manager has seen, for the request path.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    fn observe(&mut self, event: &RecordedEvent) {
        assert_eq!(
            event.position, self.observed,
            "the subscription is gap-free"
        );
        self.observed += 1;
        self.record(event);
        self.progress
            .observed
            .store(self.observed, Ordering::Release);
    }

    fn record(&mut self, event: &RecordedEvent) {
        if let Some(owner) = self.by_event.remove(&event.id.0)
            && let Some(open) = self.open.get_mut(&owner)
        {
            open.steps.retain(|(id, _)| *id != event.id.0);
            if open.steps.is_empty() {
                self.open.remove(&owner);
                self.progress.open.remove(&owner);
            }
        }
        let Some(fact) = fact(event) else { return };
        let Some(owner) = stream_owner(&event.stream) else {
            return;
        };
        for timer in timers(&owner, &fact) {
            self.timers
                .insert((timer.due_ms, event.position), timer.step);
            self.timers_changed = true;
        }
        let steps: Vec<(u128, FollowUp)> = follow_ups(&owner, &fact)
            .into_iter()
            .map(|step| (step.event_id(), step))
            .collect();
        if steps.is_empty() {
            return;
        }
        for (id, _) in &steps {
            self.by_event.insert(*id, event.position);
        }
        self.progress.open.insert(event.position);
        self.open.insert(
            event.position,
            Open {
                steps,
                seen: Instant::now(),
            },
        );
    }

    fn caught_up(&self) -> bool {
        self.observed >= self.head_at_start
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if !self.caught_up() {
            return;
        }
        let overdue: Vec<u64> = self
            .open
            .iter()
            .filter(|(position, open)| {
                !self.running.contains(position)
                    && (**position < self.head_at_start || open.seen.elapsed() >= STEP_GRACE)
            })
            .map(|(position, _)| *position)
            .collect();
        if !self.recovered.load(Ordering::Acquire) && !self.recovering {
            let from_before_crash: Vec<u64> = overdue
                .iter()
                .copied()
                .filter(|p| *p < self.head_at_start)
                .collect();
            self.recovering = true;
            let runs: Vec<_> = from_before_crash.iter().map(|p| self.run(*p)).collect();
            ctx.spawn(
                async move {
                    futures::future::join_all(runs)
                        .await
                        .into_iter()
                        .all(|ok| ok)
                }
                .into_actor(self)
                .map(move |all_ok, act, _| {
                    act.recovering = false;
                    for position in &from_before_crash {
                        act.running.remove(position);
                    }
                    // Steps those steps owe were seen in the log by now and are open again
                    // (and run on a later tick); recovery means what the crash left is done.
                    if all_ok {
                        act.recovered.store(true, Ordering::Release);
                        tracing::info!("protocol manager recovered: every open step is done");
                    }
                }),
            );
        }
        let head_at_start = self.head_at_start;
        for position in overdue.into_iter().filter(|p| *p >= head_at_start) {
            let run = self.run(position);
            ctx.spawn(run.into_actor(self).map(move |_, act, _| {
                // Done either way: a step still open is retried on a later tick.
                act.running.remove(&position);
            }));
        }
        self.fire_due_timers(ctx);
        self.save_checkpoint();
    }

    /// Runs the step of every timer the clock has reached.
    fn fire_due_timers(&mut self, ctx: &mut Context<Self>) {
        let now_ms = self.router.wallets().registry().clock().now_ms();
        let due: Vec<(u64, u64)> = self
            .timers
            .range(..(now_ms.saturating_add(1), 0))
            .map(|(key, _)| *key)
            .filter(|key| !self.firing.contains(key))
            .collect();
        for key in due {
            let (router, step) = (self.router.clone(), self.timers[&key].clone());
            self.firing.insert(key);
            let fire = async move { router.run_to_end(step).await };
            ctx.spawn(fire.into_actor(self).map(move |result, act, _| {
                act.firing.remove(&key);
                match result {
                    Ok(_) => {}
                    Err(crate::CommandError::Rejected(error)) => {
                        // The rules refuse it: running it again would be refused again.
                        tracing::error!(%error, "timer refused; dropped");
                    }
                    Err(error) => {
                        tracing::warn!(%error, "timer not run; retrying");
                        return;
                    }
                }
                act.timers.remove(&key);
                act.timers_changed = true;
            }));
        }
        metrics::TIMERS_PENDING.set(self.timers.len() as i64);
    }

    /// Runs the open steps of the event at `position`; `true` when all succeeded.
    fn run(&mut self, position: u64) -> impl Future<Output = bool> + use<> {
        let router = self.router.clone();
        let steps: Vec<FollowUp> = self
            .open
            .get(&position)
            .map(|o| o.steps.iter().map(|(_, step)| step.clone()).collect())
            .unwrap_or_default();
        self.running.insert(position);
        async move {
            metrics::STEPS_RECOVERED.add(steps.len() as i64);
            // Each step is run to the end: what it records may owe further steps, and recovery
            // means nothing a crash left is still undone.
            let results = futures::future::join_all(steps.into_iter().map(|step| {
                let router = router.clone();
                async move { router.run_to_end(step).await }
            }))
            .await;
            let mut all_ok = true;
            for error in results.into_iter().filter_map(Result::err) {
                tracing::warn!(position, %error, "protocol step failed; will retry");
                all_ok = false;
            }
            all_ok
        }
    }

    fn save_checkpoint(&mut self) {
        let checkpoint = self.open.keys().next().copied().unwrap_or(self.observed);
        if checkpoint == self.saved_checkpoint && !self.timers_changed {
            return;
        }
        self.saved_checkpoint = checkpoint;
        self.timers_changed = false;
        let mut positions: Vec<u64> = self.timers.keys().map(|(_, position)| *position).collect();
        positions.sort_unstable();
        positions.dedup();
        let data = match positions.is_empty() {
            true => Vec::new(),
            false => serde_json::to_vec(&CheckpointData { timers: positions })
                .expect("positions serialize"),
        };
        let save = self.store.save_snapshot(
            CHECKPOINT_KEY,
            Snapshot {
                revision: checkpoint,
                data,
            },
        );
        actix::spawn(async move {
            if let Err(error) = save.await {
                tracing::warn!(%error, "protocol manager checkpoint not saved");
            }
        });
    }
}

/// How many timers the manager holds (tests, health).
pub struct PendingTimers;

impl Message for PendingTimers {
    type Result = usize;
}

impl Handler<PendingTimers> for ProtocolManager {
    type Result = usize;

    fn handle(&mut self, _msg: PendingTimers, _ctx: &mut Context<Self>) -> usize {
        self.timers.len()
    }
}

impl Actor for ProtocolManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.add_stream(self.store.subscribe_all(self.start));
        // Nothing to catch up on (the checkpoint is the head): recover at once, not a tick later.
        self.tick(ctx);
        ctx.run_interval(PROTOCOL_MANAGER_TICK, |act, ctx| act.tick(ctx));
    }
}

impl StreamHandler<Result<RecordedEvent, StoreError>> for ProtocolManager {
    fn handle(&mut self, item: Result<RecordedEvent, StoreError>, ctx: &mut Context<Self>) {
        match item {
            Ok(event) => {
                self.observe(&event);
                if self.observed == self.head_at_start {
                    self.tick(ctx);
                }
            }
            Err(error) => {
                match error {
                    StoreError::Closed => {
                        tracing::info!("the event log closed; the protocol manager stops")
                    }
                    error => {
                        tracing::error!(%error, "protocol manager subscription failed; stopping")
                    }
                }
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!("protocol manager subscription ended");
    }
}
