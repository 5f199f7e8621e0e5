//! [`Lease`]: one holder at a time across the nodes of a cluster, for as long as it renews.
//!
//! A key in the KV bucket `<prefix>-leases`, whose entries expire `LEASE_TTL` after their last
//! write. A node takes the lease by creating the key (refused while another holds it) and keeps
//! it by updating it at the revision it last wrote, a third of the TTL apart; if its updates
//! stop (the node died, or lost the cluster), the entry expires and another node's create
//! succeeds. A holder counts the lease as held only until two thirds of the TTL after its last
//! confirmed write, so it stops acting before anyone else can take over.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};

use crate::{StoreError, StoreResult};

/// How long a lease outlives its holder's last renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(3);

/// A lease this node competes for; see the module documentation.
#[derive(Clone)]
pub struct Lease {
    /// Milliseconds since `epoch` before which the lease is held (0: not held).
    held_until_ms: Arc<AtomicU64>,
    epoch: Instant,
}

impl Lease {
    /// Whether this node holds the lease now.
    pub fn held(&self) -> bool {
        (self.epoch.elapsed().as_millis() as u64) < self.held_until_ms.load(Ordering::Acquire)
    }
}

pub(crate) async fn bucket(
    js: &jetstream::Context,
    prefix: &str,
    replicas: usize,
) -> StoreResult<kv::Store> {
    let name = format!("{prefix}-leases");
    if let Ok(store) = js.get_key_value(&name).await {
        return Ok(store);
    }
    js.create_key_value(kv::Config {
        bucket: name,
        history: 1,
        max_age: LEASE_TTL,
        num_replicas: replicas,
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| StoreError::Io(format!("the lease bucket: {e}")))
}

/// Starts competing for lease `name` (letters, digits, `-`, `_`) as `holder`, on the current
/// runtime, for as long as that runtime runs.
pub(crate) fn compete(bucket: kv::Store, name: String, holder: String) -> Lease {
    let lease = Lease {
        held_until_ms: Arc::new(AtomicU64::new(0)),
        epoch: Instant::now(),
    };
    let (held_until_ms, epoch) = (Arc::clone(&lease.held_until_ms), lease.epoch);
    tokio::spawn(async move {
        let mut revision: Option<u64> = None;
        loop {
            let asked = epoch.elapsed();
            let value = bytes::Bytes::from(holder.clone().into_bytes());
            let written = match revision {
                Some(r) => bucket.update(&name, value, r).await.ok(),
                None => bucket.create(&name, value).await.ok(),
            };
            match written {
                Some(r) => {
                    if revision.is_none() {
                        tracing::info!(lease = %name, "lease taken");
                    }
                    revision = Some(r);
                    let until = asked + LEASE_TTL * 2 / 3;
                    held_until_ms.store(until.as_millis() as u64, Ordering::Release);
                }
                None => {
                    if revision.is_some() {
                        tracing::warn!(lease = %name, "lease lost");
                    }
                    revision = None;
                    held_until_ms.store(0, Ordering::Release);
                }
            }
            tokio::time::sleep(LEASE_TTL / 3).await;
        }
    });
    lease
}
