//! Routes commands to aggregate actors, activating them on demand.
//!
//! Actors are spread over a fixed pool of arbiters (threads) by a hash of their id, so the
//! placement is stable and independent of which thread asks. A command that reaches an actor
//! which is stopping (passivation, or a restart after a failed append) is retried on a fresh
//! activation; optimistic concurrency in the log makes even a brief overlap of two activations
//! of one stream safe.
//!
//! A command for an instance whose stream does not exist is first decided against the empty
//! state right here: if that refuses it (a transfer from a never-funded key), the answer comes
//! without activating an actor, so junk cannot fill memory with empty actors.

use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use dashmap::DashMap;
use domain::aggregate::{Aggregate, Context as DecideContext};
use store::EventStore;

use crate::aggregate::{AggregateActor, Execute, GetState, Hosted, Query, Reply};
use crate::clock::SharedClock;
use crate::error::CommandError;
use crate::limits::{IDLE_TIMEOUT, ROUTE_ATTEMPTS_MAX};

/// Gives the facts of an instance, or says it cannot exist here (an unknown chain).
pub type FactsOf<A> =
    dyn Fn(&<A as Aggregate>::Id) -> Result<<A as Aggregate>::Facts, CommandError> + Send + Sync;

/// Told an instance's state whenever it changes (see [`Registry::publishing`]).
pub type PublishOf<A> = dyn Fn(&<A as Aggregate>::Id, &<A as Aggregate>::State) + Send + Sync;

struct Inner<A: Hosted> {
    actors: DashMap<A::Id, Addr<AggregateActor<A>>>,
    arbiters: Vec<ArbiterHandle>,
    store: Arc<dyn EventStore>,
    clock: SharedClock,
    facts: Box<FactsOf<A>>,
    /// An actor idle this long passivates.
    idle_timeout: Duration,
    publish: Option<Box<PublishOf<A>>>,
}

/// Handle to every actor of one aggregate type. Cheap to clone.
pub struct Registry<A: Hosted> {
    inner: Arc<Inner<A>>,
}

impl<A: Hosted> Clone for Registry<A> {
    fn clone(&self) -> Self {
        Registry {
            inner: self.inner.clone(),
        }
    }
}

impl<A: Hosted> Registry<A> {
    /// A registry whose actors run on `arbiters`, read the time from `clock` and get their
    /// facts from `facts`.
    pub fn new(
        store: Arc<dyn EventStore>,
        clock: SharedClock,
        arbiters: Vec<ArbiterHandle>,
        facts: impl Fn(&A::Id) -> Result<A::Facts, CommandError> + Send + Sync + 'static,
    ) -> Self {
        assert!(!arbiters.is_empty(), "at least one arbiter");
        Registry {
            inner: Arc::new(Inner {
                actors: DashMap::new(),
                arbiters,
                store,
                clock,
                facts: Box::new(facts),
                idle_timeout: IDLE_TIMEOUT,
                publish: None,
            }),
        }
    }

    /// The same registry with another passivation timeout (tests use a short one). Call it
    /// before the first command.
    pub fn with_idle_timeout(self, idle_timeout: Duration) -> Self {
        let inner = Arc::try_unwrap(self.inner)
            .unwrap_or_else(|_| panic!("set the idle timeout before use"));
        Registry {
            inner: Arc::new(Inner {
                idle_timeout,
                ..inner
            }),
        }
    }

    /// The same registry, telling `publish` every instance's state when it is loaded and
    /// after each durable append, before any command of that append is answered. For state
    /// that a hot path reads without a message to the actor (the pause board). Call it before
    /// the first command.
    pub fn publishing(self, publish: impl Fn(&A::Id, &A::State) + Send + Sync + 'static) -> Self {
        let inner =
            Arc::try_unwrap(self.inner).unwrap_or_else(|_| panic!("set the publisher before use"));
        Registry {
            inner: Arc::new(Inner {
                publish: Some(Box::new(publish)),
                ..inner
            }),
        }
    }

    /// Tells the publisher, if any, `id`'s state.
    pub(crate) fn publish(&self, id: &A::Id, state: &A::State) {
        if let Some(publish) = &self.inner.publish {
            publish(id, state);
        }
    }

    /// The facts instance `id` is given.
    pub fn facts(&self, id: &A::Id) -> Result<A::Facts, CommandError> {
        (self.inner.facts)(id)
    }

    /// How long an idle actor stays activated.
    pub fn idle_timeout(&self) -> Duration {
        self.inner.idle_timeout
    }

    /// The clock decisions read.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// The event log.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.inner.store
    }

    fn activate(&self, id: &A::Id, facts: &A::Facts) -> Addr<AggregateActor<A>> {
        if let Some(addr) = self.inner.actors.get(id)
            && addr.connected()
        {
            return addr.clone();
        }
        let mut slot = self
            .inner
            .actors
            .entry(id.clone())
            .or_insert_with(|| self.start(id, facts));
        if !slot.connected() {
            *slot = self.start(id, facts);
        }
        slot.clone()
    }

    fn start(&self, id: &A::Id, facts: &A::Facts) -> Addr<AggregateActor<A>> {
        let hash =
            BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(id);
        let arbiter = &self.inner.arbiters[(hash as usize) % self.inner.arbiters.len()];
        let (id, facts) = (id.clone(), facts.clone());
        let (store, registry) = (self.inner.store.clone(), self.clone());
        AggregateActor::start_in_arbiter(arbiter, move |_| {
            AggregateActor::new(id, facts, store, registry)
        })
    }

    /// Removes `addr` as the activation of `id` (called by a stopping actor).
    pub(crate) fn forget(&self, id: &A::Id, addr: &Addr<AggregateActor<A>>) {
        self.inner
            .actors
            .remove_if(id, |_, current| current == addr);
    }

    async fn call<M, R>(&self, id: &A::Id, facts: &A::Facts, message: M) -> Result<R, CommandError>
    where
        M: Message<Result = Result<R, CommandError>> + Send + Clone + 'static,
        M::Result: Send,
        AggregateActor<A>: Handler<M>,
        <AggregateActor<A> as Actor>::Context: actix::dev::ToEnvelope<AggregateActor<A>, M>,
    {
        for _ in 0..ROUTE_ATTEMPTS_MAX {
            let addr = self.activate(id, facts);
            match addr.send(message.clone()).await {
                Ok(Err(CommandError::Restarting)) | Err(MailboxError::Closed) => {
                    self.forget(id, &addr);
                }
                Ok(result) => return result,
                Err(MailboxError::Timeout) => {
                    return Err(CommandError::Unavailable(format!(
                        "{} actor timed out",
                        A::NAME
                    )));
                }
            }
        }
        Err(CommandError::Unavailable(format!(
            "{} {id:?} kept restarting",
            A::NAME
        )))
    }

    /// Decides and records `command` on instance `id`. On a log shared with other nodes, a
    /// refusal is decided again once this node has applied everything the stream held (the
    /// command may follow another node's append this node had not applied yet: a nonce, a
    /// credit).
    pub async fn execute(&self, id: A::Id, command: A::Command) -> Reply<A> {
        let store = &self.inner.store;
        if !store.shared() {
            return self.execute_here(id, command).await;
        }
        let stream = A::stream(&id);
        let seen = store.stream_revision(&stream);
        let result = self.execute_here(id.clone(), command.clone()).await;
        if !matches!(result, Err(CommandError::Rejected(_))) {
            return result;
        }
        match store.catch_up(&stream).await {
            Ok(()) if store.stream_revision(&stream) != seen => {
                self.execute_here(id, command).await
            }
            _ => result,
        }
    }

    async fn execute_here(&self, id: A::Id, command: A::Command) -> Reply<A> {
        let facts = (self.inner.facts)(&id)?;
        if !self.inner.actors.contains_key(&id)
            && self.inner.store.stream_revision(&A::stream(&id)).is_none()
        {
            let ctx = DecideContext {
                id: &id,
                facts: &facts,
                now_ms: self.inner.clock.now_ms(),
            };
            if let Err(error) = A::decide(&A::State::default(), &ctx, command.clone()) {
                let error: CommandError = error.into();
                crate::metrics::command(A::NAME, error.code());
                return Err(error);
            }
        }
        self.call(&id, &facts, Execute::<A>(command)).await
    }

    /// Current state of an instance, straight from its actor (the empty state, without
    /// activating anything, for an instance whose stream does not exist).
    pub async fn state(&self, id: A::Id) -> Result<A::State, CommandError> {
        Ok(self.versioned_state(id).await?.0)
    }

    /// What `read` returns for the current state of instance `id`, computed in its actor (the
    /// empty state, without activating anything, for an instance whose stream does not exist).
    pub async fn query<R: Send + 'static>(
        &self,
        id: A::Id,
        read: impl Fn(&A::State) -> R + Send + Sync + 'static,
    ) -> Result<R, CommandError> {
        let facts = (self.inner.facts)(&id)?;
        if !self.inner.actors.contains_key(&id)
            && self.inner.store.stream_revision(&A::stream(&id)).is_none()
        {
            return Ok(read(&A::State::default()));
        }
        self.call(&id, &facts, Query::<A, R>(Arc::new(read))).await
    }

    /// [`Registry::state`] with the stream revision of its last event (`None`: no events).
    pub async fn versioned_state(
        &self,
        id: A::Id,
    ) -> Result<(A::State, Option<store::Revision>), CommandError> {
        let facts = (self.inner.facts)(&id)?;
        if !self.inner.actors.contains_key(&id)
            && self.inner.store.stream_revision(&A::stream(&id)).is_none()
        {
            return Ok((A::State::default(), None));
        }
        self.call(&id, &facts, GetState::<A>::new()).await
    }

    /// Number of activated actors.
    pub fn active(&self) -> usize {
        self.inner.actors.len()
    }
}
