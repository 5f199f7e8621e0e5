//! The shape of every aggregate: one entity's rules as two pure functions over its own events.
//!
//! `decide(state, context, command) → events | error` says what happens; `evolve(state, event)`
//! applies what happened. The context carries what the entity knows besides its stream: its
//! identity, static facts (a chain's minimum fee) and the time of the decision, taken once by
//! the host from its clock — rules never read a clock. The host (`actors::aggregate`) stores the
//! events in the aggregate's stream with the expected revision, then evolves. Events have
//! deterministic ids, so a command retried after a crash stores its events once.

use std::fmt::Debug;
use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{DecodeError, DomainEvent};

/// What a decision may know besides the aggregate's own state.
#[derive(Debug)]
pub struct Context<'a, A: Aggregate> {
    /// Which instance decides.
    pub id: &'a A::Id,
    /// Static facts about it.
    pub facts: &'a A::Facts,
    /// The host's clock when the decision is made, Unix milliseconds.
    pub now_ms: u64,
}

/// How a command's events relate to the other commands of one append (see
/// [`Aggregate::batch_class`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchClass {
    /// Idempotent facts arriving from elsewhere (a credit): they may already be in the stream,
    /// in which case the log skips them. Nothing in the same batch may depend on them.
    Idempotent,
    /// Decisions that later decisions depend on (a debit consumes the nonce the next debit
    /// checks). One that the log already holds means the host's state was stale.
    Decision,
}

/// One kind of entity (wallet, chain, vesting schedule...).
pub trait Aggregate: Sized + Unpin + 'static {
    /// Identity of one instance, e.g. (chain, address).
    type Id: Clone + Eq + Hash + Debug + Send + Sync + Unpin + 'static;
    /// Static facts an instance is given when activated.
    type Facts: Clone + Debug + Send + Sync + Unpin + 'static;
    /// The state its events build.
    type State: Clone + Default + Debug + Serialize + DeserializeOwned + Send + Unpin + 'static;
    /// What it can be asked.
    type Command: Clone + Debug + Send + Unpin + 'static;
    /// What it records.
    type Event: Clone + Debug + Send + Sync + Unpin + 'static;
    /// Why it refuses.
    type Error: Clone + Debug + Send + Unpin + 'static;

    /// Short name for logs and metrics, e.g. `wallet`.
    const NAME: &'static str;

    /// How many recent decided events a host keeps to answer a repeated command without
    /// deciding it again (older repeats are refused by the rules, e.g. a used nonce, and the
    /// caller looks the first answer up). Large events (blocks) keep fewer.
    const REMEMBERED: usize = 1024;

    /// A snapshot of an instance's state is saved after this many new events, so activation
    /// replays at most that many. Aggregates with large events (blocks) save more often.
    const SNAPSHOT_EVERY_EVENTS: u64 = 256;

    /// The stream holding an instance's events.
    fn stream(id: &Self::Id) -> String;

    /// Decides a command. Pure: same state, context and command, same answer.
    fn decide(
        state: &Self::State,
        ctx: &Context<'_, Self>,
        command: Self::Command,
    ) -> Result<Vec<Self::Event>, Self::Error>;

    /// Applies an event. Panics on an event that breaks an invariant: the log would be corrupt.
    fn evolve(state: &mut Self::State, event: &Self::Event);

    /// Deterministic id of an event of instance `id` (the log's idempotency key).
    fn event_id(id: &Self::Id, event: &Self::Event) -> u128;

    /// The id of the event a command will record, when it is known before deciding: a command
    /// whose event is already stored is answered with it instead of being decided again.
    fn command_event_id(id: &Self::Id, command: &Self::Command) -> Option<u128>;

    /// Commands of different classes never share one append.
    fn batch_class(command: &Self::Command) -> BatchClass;

    /// The stored form of an event: its versioned type name and its bytes (what
    /// `DomainEvent::encode` writes for it), made without copying the event.
    fn encode(event: &Self::Event) -> (&'static str, Vec<u8>);

    /// An event of this aggregate from its stored form; `None` for another aggregate's event.
    fn from_stored(event: DomainEvent) -> Option<Self::Event>;

    /// Decodes a stored event of this aggregate's stream. `recorded_at_ms` (the log's metadata)
    /// fills in what older event versions did not record.
    fn decode(
        event_type: &str,
        data: &[u8],
        recorded_at_ms: u64,
    ) -> Result<Self::Event, DecodeError> {
        let event = DomainEvent::decode(event_type, data, recorded_at_ms)?;
        Self::from_stored(event).ok_or_else(|| {
            DecodeError::UnknownType(format!("{event_type} is not an event of a {}", Self::NAME))
        })
    }
}

/// Applies `events` in order to a default state: the `given` of given/when/then tests.
pub fn replay<A: Aggregate>(events: &[A::Event]) -> A::State {
    let mut state = A::State::default();
    for event in events {
        A::evolve(&mut state, event);
    }
    state
}
