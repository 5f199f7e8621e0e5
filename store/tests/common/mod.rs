//! Shared helpers of the store's integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use store::{EventId, EventStore, FileStore, MemoryStore, NewEvent, RecordedEvent};
use tempfile::TempDir;

/// A store under test and the directory it lives in (kept alive with it).
pub type Made = (Arc<dyn EventStore>, Option<TempDir>);

pub async fn memory() -> Made {
    (Arc::new(MemoryStore::new()), None)
}

pub async fn file() -> Made {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FileStore::open(dir.path()).expect("open");
    (store, Some(dir))
}

/// The test binary's 3-node JetStream cluster, started on first use.
#[cfg(feature = "nats")]
pub fn nats_cluster() -> &'static store::NatsCluster {
    static CLUSTER: std::sync::OnceLock<store::NatsCluster> = std::sync::OnceLock::new();
    CLUSTER.get_or_init(|| store::NatsCluster::start(3).unwrap_or_else(|e| panic!("{e}")))
}

/// A JetStream store of its own (a fresh prefix) on the shared 3-node cluster, R3.
#[cfg(feature = "nats")]
pub async fn nats() -> Made {
    (Arc::new(nats_store(&fresh_prefix()).await), None)
}

/// A prefix no other store of this process uses.
#[cfg(feature = "nats")]
pub fn fresh_prefix() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("t{}x{n}", std::process::id())
}

/// Connects to the shared cluster under `prefix`, waiting while the cluster elects its leaders.
#[cfg(feature = "nats")]
pub async fn nats_store(prefix: &str) -> store::JetStreamStore {
    nats_store_on(nats_cluster().urls(), prefix).await
}

/// Connects to the servers at `urls` under `prefix`, waiting while they elect their leaders.
#[cfg(feature = "nats")]
pub async fn nats_store_on(urls: Vec<String>, prefix: &str) -> store::JetStreamStore {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let options = store::JetStreamOptions {
            urls: urls.clone(),
            prefix: prefix.to_string(),
            replicas: 3,
        };
        match store::JetStreamStore::connect(options).await {
            Ok(store) => return store,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("cluster not ready: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("JetStream cluster: {e}"),
        }
    }
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
