//! The event log: one [`EventStore`] trait and its backends.
//!
//! The model follows KurrentDB (EventStoreDB): events live in named **streams**, each event has a
//! 0-based **revision** inside its stream and a dense 0-based global **position** in `$all`.
//! An append targets one stream with an [`ExpectedRevision`]; all its events land or none do.
//! Appends are idempotent by [`EventId`]: events whose ids are already in the stream are not
//! written again, and the outcome reports where they already are.
//!
//! Backends: [`FileStore`] (the embedded segment log, the node's default) and, behind the
//! `test-utils` feature, [`MemoryStore`] for fast tests. Both pass the same contract suite
//! (`tests/contract.rs`).
//!
//! ```
//! use store::{EventId, EventStore, ExpectedRevision, FileStore, NewEvent};
//! # let dir = tempfile::tempdir().unwrap();
//! let store = FileStore::open(dir.path())?;
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let opened = NewEvent { id: EventId(1), event_type: "Opened".into(), data: b"{}".to_vec() };
//! let outcome = rt.block_on(store.append("account-1", ExpectedRevision::NoStream, vec![opened]))?;
//! assert_eq!(outcome.positions, [0]);
//! assert_eq!(store.stream_revision("account-1"), Some(0));
//! # Ok::<(), store::StoreError>(())
//! ```

#![warn(missing_docs)]

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;

pub mod blobs;
mod codec;
mod file;
#[cfg(feature = "nats")]
mod jetstream;
pub mod limits;
#[cfg(any(test, feature = "test-utils"))]
mod memory;
mod metrics;
mod snapshot;
mod state;
mod subscription;

pub use file::{
    FileStore, FileStoreOptions, LogDamage, LogReport, StorageFaults, SyncFault, WriteFault, check,
    truncate,
};
#[cfg(feature = "nats")]
pub use jetstream::{JetStreamOptions, JetStreamStore, LEASE_TTL, Lease};
#[cfg(all(feature = "nats", feature = "test-utils"))]
pub use jetstream::{NatsCluster, nats_server_binary};
#[cfg(any(test, feature = "test-utils"))]
pub use memory::MemoryStore;

/// Dense, 0-based global position of an event in `$all`.
pub type Position = u64;
/// 0-based revision of an event inside its stream.
pub type Revision = u64;

/// Unique id of an event; appends are idempotent by it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(pub u128);

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({:032x})", self.0)
    }
}

/// An event to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// Idempotency key.
    pub id: EventId,
    /// Type name, e.g. `Debited`; at most [`limits::EVENT_TYPE_LEN_MAX`] bytes.
    pub event_type: String,
    /// Payload (JSON in this project); at most [`limits::EVENT_DATA_LEN_MAX`] bytes.
    pub data: Vec<u8>,
}

/// An event as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Global position in `$all`.
    pub position: Position,
    /// Stream the event belongs to.
    pub stream: Arc<str>,
    /// Revision inside `stream`.
    pub revision: Revision,
    /// Idempotency key given at append.
    pub id: EventId,
    /// Type name.
    pub event_type: String,
    /// Payload bytes.
    pub data: Vec<u8>,
    /// Wall-clock time the store recorded the event (Unix milliseconds). Metadata only: domain
    /// rules never read it.
    pub recorded_at_ms: u64,
}

/// What the appender believes the stream's state to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedRevision {
    /// No check.
    Any,
    /// The stream must not exist (have no events).
    NoStream,
    /// The stream's last event must have exactly this revision.
    Exact(Revision),
}

/// Where each appended event ended up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Per input event: its position (the earlier one for an event already in the stream).
    pub positions: Vec<Position>,
    /// Per input event: its revision in the stream.
    pub revisions: Vec<Revision>,
    /// Per input event: `true` if this append wrote it, `false` if it was already there.
    pub written: Vec<bool>,
}

impl AppendOutcome {
    /// Position of the last event of the append (written or found).
    pub fn last_position(&self) -> Option<Position> {
        self.positions.iter().copied().max()
    }
}

/// A stored snapshot of an aggregate's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Stream revision the state reflects (all events up to and including it).
    pub revision: Revision,
    /// Serialized state.
    pub data: Vec<u8>,
}

/// Errors of the event log.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Optimistic concurrency failure.
    #[error("wrong expected revision on stream {stream}: expected {expected:?}, actual {actual:?}")]
    WrongExpectedRevision {
        /// Stream appended to.
        stream: String,
        /// What the appender expected.
        expected: ExpectedRevision,
        /// Last revision of the stream, `None` if it does not exist.
        actual: Option<Revision>,
    },
    /// An event id of the batch already exists in another stream.
    #[error("event id {id:?} already exists in stream {existing_stream}")]
    EventIdConflict {
        /// The id.
        id: EventId,
        /// Where it already is.
        existing_stream: String,
    },
    /// The input breaks a limit (empty batch, oversized event, bad stream name...).
    #[error("invalid append: {0}")]
    Invalid(String),
    /// A record failed its checksum before the tail of the log: acknowledged data is damaged.
    #[error("corrupt log: {file} at offset {offset}: {reason}")]
    Corrupt {
        /// Segment file.
        file: String,
        /// Byte offset of the bad record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// I/O failure (after which the writer stops: the log's durable state is unknown).
    #[error("i/o error: {0}")]
    Io(String),
    /// The store is shut down or its writer has stopped after a failure.
    #[error("event store closed")]
    Closed,
}

/// Result alias for the store.
pub type StoreResult<T> = Result<T, StoreError>;

/// The event log. Object-safe: consumers hold an `Arc<dyn EventStore>`.
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` atomically. Events whose ids already exist in `stream` are
    /// skipped (idempotency); if all are skipped the append succeeds without checking
    /// `expected`. Otherwise `expected` is checked against the stream's last revision. The
    /// future resolves only once the written events are durable (fdatasync) and visible to
    /// reads and subscriptions.
    fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> BoxFuture<'static, StoreResult<AppendOutcome>>;

    /// Reads up to `max` events of `stream` from revision `from` on, in revision order.
    /// An unknown stream reads as empty.
    fn read_stream(
        &self,
        stream: &str,
        from: Revision,
        max: usize,
    ) -> BoxFuture<'static, StoreResult<Vec<RecordedEvent>>>;

    /// Reads up to `max` events of `$all` from position `from` on, in position order.
    fn read_all(
        &self,
        from: Position,
        max: usize,
    ) -> BoxFuture<'static, StoreResult<Vec<RecordedEvent>>>;

    /// Catch-up subscription to `$all` from `from`: yields every event at or after `from` in
    /// position order, then live events as they become durable, without gaps or reordering.
    /// Pull-based: the log is read only as fast as the consumer polls (back-pressure).
    fn subscribe_all(&self, from: Position) -> BoxStream<'static, StoreResult<RecordedEvent>>;

    /// Position the next appended event will get (= number of events in `$all`).
    fn next_position(&self) -> Position;

    /// Last revision of `stream`, `None` if it has no events.
    fn stream_revision(&self, stream: &str) -> Option<Revision>;

    /// Stores a snapshot under `key` (replacing any earlier one). Snapshots are caches:
    /// losing one costs a longer replay, never data.
    fn save_snapshot(&self, key: &str, snapshot: Snapshot) -> BoxFuture<'static, StoreResult<()>>;

    /// Loads the snapshot stored under `key`, if any and intact.
    fn load_snapshot(&self, key: &str) -> BoxFuture<'static, StoreResult<Option<Snapshot>>>;

    /// Whether other nodes append to this log too: then this node's reads, `next_position` and
    /// `stream_revision` show their appends only once it has applied them, a moment later.
    fn shared(&self) -> bool {
        false
    }

    /// Waits until this node has applied every event `stream` had in the log when called. A
    /// log no other node appends to has nothing to wait for.
    fn catch_up(&self, _stream: &str) -> BoxFuture<'static, StoreResult<()>> {
        Box::pin(futures::future::ready(Ok(())))
    }
}

/// Wall-clock now in Unix milliseconds (0 if the clock is before 1970).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
