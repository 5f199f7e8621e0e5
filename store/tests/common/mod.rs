//! Shared helpers of the store's integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use store::{EventId, EventStore, FileStore, MemoryStore, NewEvent, RecordedEvent};
use tempfile::TempDir;

/// A store under test and the directory it lives in (kept alive with it).
pub type Made = (Arc<dyn EventStore>, Option<TempDir>);

pub fn memory() -> Made {
    (Arc::new(MemoryStore::new()), None)
}

pub fn file() -> Made {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FileStore::open(dir.path()).expect("open");
    (store, Some(dir))
}

pub fn ev(id: u128) -> NewEvent {
    NewEvent {
        id: EventId(id),
        event_type: "Happened".into(),
        data: format!("{{\"n\":{id}}}").into_bytes(),
    }
}

pub fn evs(ids: impl IntoIterator<Item = u128>) -> Vec<NewEvent> {
    ids.into_iter().map(ev).collect()
}

/// Takes `n` events from a subscription, failing after a generous timeout.
pub async fn take(
    sub: &mut futures::stream::BoxStream<'static, store::StoreResult<RecordedEvent>>,
    n: usize,
) -> Vec<RecordedEvent> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(20), sub.next())
            .await
            .expect("subscription stalled")
            .expect("subscription ended")
            .expect("subscription error");
        out.push(next);
    }
    out
}

/// Events without their recording time, for comparisons across backends.
pub fn untimed(events: &[RecordedEvent]) -> Vec<RecordedEvent> {
    events
        .iter()
        .cloned()
        .map(|mut e| {
            e.recorded_at_ms = 0;
            e
        })
        .collect()
}
