//! [`MemoryStore`]: the contract in memory, for fast tests.

use std::collections::HashMap;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::state::{StreamIndex, WriteState, check_append};
use crate::subscription::{Head, subscribe};
use crate::{
    AppendOutcome, EventStore, ExpectedRevision, NewEvent, Position, RecordedEvent, Revision,
    Snapshot, StoreResult, snapshot,
};

#[derive(Default)]
struct Inner {
    write: WriteState,
    streams: StreamIndex,
    events: Vec<RecordedEvent>,
    snapshots: HashMap<String, Snapshot>,
}

/// In-memory [`EventStore`] with the same semantics as [`crate::FileStore`], minus durability.
/// Appends are decided when `append` is called (like the file store, which submits them then).
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    head: watch::Sender<Head>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            inner: Arc::default(),
            head: watch::Sender::new(Head::default()),
        }
    }

    fn append_now(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> StoreResult<AppendOutcome> {
        check_append(stream, &events)?;
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let plan = inner.write.plan(stream, expected, &events)?;
        if plan.new.is_empty() {
            return Ok(plan.outcome);
        }
        let name = Arc::clone(inner.write.stream_name(plan.stream_id));
        let recorded = plan.record(events, &name, crate::now_ms(), &mut inner.streams);
        for event in recorded {
            assert_eq!(
                event.position,
                inner.events.len() as u64,
                "positions are dense"
            );
            inner.events.push(event);
        }
        let next_position = inner.events.len() as u64;
        assert_eq!(next_position, inner.write.next_position());
        self.head.send_modify(|h| h.next_position = next_position);
        Ok(plan.outcome)
    }
}

fn read_all(inner: &Mutex<Inner>, from: Position, max: usize) -> Vec<RecordedEvent> {
    let inner = inner.lock();
    let from = usize::try_from(from)
        .unwrap_or(usize::MAX)
        .min(inner.events.len());
    let to = from.saturating_add(max).min(inner.events.len());
    inner.events[from..to].to_vec()
}

impl EventStore for MemoryStore {
    fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> BoxFuture<'static, StoreResult<AppendOutcome>> {
        futures::future::ready(self.append_now(stream, expected, events)).boxed()
    }

    fn read_stream(
        &self,
        stream: &str,
        from: Revision,
        max: usize,
    ) -> BoxFuture<'static, StoreResult<Vec<RecordedEvent>>> {
        let inner = self.inner.lock();
        let events = match inner.streams.positions(stream, from, max) {
            Some((_, positions)) => positions
                .iter()
                .map(|&p| inner.events[p as usize].clone())
                .collect(),
            None => Vec::new(),
        };
        futures::future::ready(Ok(events)).boxed()
    }

    fn read_all(
        &self,
        from: Position,
        max: usize,
    ) -> BoxFuture<'static, StoreResult<Vec<RecordedEvent>>> {
        futures::future::ready(Ok(read_all(&self.inner, from, max))).boxed()
    }

    fn subscribe_all(&self, from: Position) -> BoxStream<'static, StoreResult<RecordedEvent>> {
        let inner = Arc::clone(&self.inner);
        let read_all =
            move |from, max| futures::future::ready(Ok(read_all(&inner, from, max))).boxed();
        subscribe(from, self.head.subscribe(), Box::new(read_all))
    }

    fn next_position(&self) -> Position {
        self.inner.lock().write.next_position()
    }

    fn stream_revision(&self, stream: &str) -> Option<Revision> {
        self.inner.lock().streams.last_revision(stream)
    }

    fn save_snapshot(&self, key: &str, snapshot: Snapshot) -> BoxFuture<'static, StoreResult<()>> {
        let result = snapshot::check_save(key, &snapshot).map(|()| {
            self.inner.lock().snapshots.insert(key.to_owned(), snapshot);
        });
        futures::future::ready(result).boxed()
    }

    fn load_snapshot(&self, key: &str) -> BoxFuture<'static, StoreResult<Option<Snapshot>>> {
        let result =
            snapshot::check_key(key).map(|()| self.inner.lock().snapshots.get(key).cloned());
        futures::future::ready(result).boxed()
    }
}
