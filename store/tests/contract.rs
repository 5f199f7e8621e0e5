//! The contract every [`EventStore`] backend passes, run against [`FileStore`] and
//! [`MemoryStore`].

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{ev, evs, take};
use store::{EventId, EventStore, ExpectedRevision, NewEvent, Snapshot, StoreError, limits};

type Store = Arc<dyn EventStore>;

mod checks {
    use super::*;

    pub async fn new_stream_with_no_stream(s: Store) {
        let out = s
            .append("a", ExpectedRevision::NoStream, evs([1, 2]))
            .await
            .unwrap();
        assert_eq!(out.positions, [0, 1]);
        assert_eq!(out.revisions, [0, 1]);
        assert_eq!(out.written, [true, true]);
        assert_eq!(out.last_position(), Some(1));
        assert_eq!(s.stream_revision("a"), Some(1));
        assert_eq!(s.stream_revision("b"), None);
        assert_eq!(s.next_position(), 2);
        let err = s
            .append("a", ExpectedRevision::NoStream, evs([3]))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            StoreError::WrongExpectedRevision {
                stream: "a".into(),
                expected: ExpectedRevision::NoStream,
                actual: Some(1)
            }
        );
        assert_eq!(s.next_position(), 2);
    }

    pub async fn exact_revision(s: Store) {
        let err = s
            .append("a", ExpectedRevision::Exact(0), evs([1]))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            StoreError::WrongExpectedRevision {
                stream: "a".into(),
                expected: ExpectedRevision::Exact(0),
                actual: None
            }
        );
        s.append("a", ExpectedRevision::NoStream, evs([1, 2]))
            .await
            .unwrap();
        let out = s
            .append("a", ExpectedRevision::Exact(1), evs([3]))
            .await
            .unwrap();
        assert_eq!(out.revisions, [2]);
        assert_eq!(out.positions, [2]);
        let err = s
            .append("a", ExpectedRevision::Exact(1), evs([4]))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            StoreError::WrongExpectedRevision {
                stream: "a".into(),
                expected: ExpectedRevision::Exact(1),
                actual: Some(2)
            }
        );
        assert_eq!(s.stream_revision("a"), Some(2));
        assert_eq!(s.next_position(), 3);
    }

    pub async fn any_revision(s: Store) {
        s.append("a", ExpectedRevision::Any, evs([1]))
            .await
            .unwrap();
        s.append("b", ExpectedRevision::Any, evs([2]))
            .await
            .unwrap();
        let out = s
            .append("a", ExpectedRevision::Any, evs([3, 4]))
            .await
            .unwrap();
        assert_eq!(out.positions, [2, 3]);
        assert_eq!(out.revisions, [1, 2]);
        assert_eq!(s.stream_revision("a"), Some(2));
        assert_eq!(s.stream_revision("b"), Some(0));
    }

    pub async fn batch_is_atomic(s: Store) {
        s.append("a", ExpectedRevision::Any, evs([1]))
            .await
            .unwrap();
        // Fails on its last event: an id already in another stream.
        let err = s
            .append("b", ExpectedRevision::Any, evs([10, 11, 1]))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            StoreError::EventIdConflict {
                id: EventId(1),
                existing_stream: "a".into()
            }
        );
        // Fails on its last event: oversized.
        let mut batch = evs([20, 21]);
        batch.push(NewEvent {
            id: EventId(22),
            event_type: "T".into(),
            data: vec![0; limits::EVENT_DATA_LEN_MAX + 1],
        });
        assert!(matches!(
            s.append("b", ExpectedRevision::Any, batch).await,
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(s.next_position(), 1);
        assert_eq!(s.stream_revision("b"), None);
        assert!(s.read_stream("b", 0, 100).await.unwrap().is_empty());
        assert_eq!(s.read_all(0, 100).await.unwrap().len(), 1);
        // The rejected ids were not recorded: they can be appended now.
        let out = s
            .append("b", ExpectedRevision::NoStream, evs([10, 11, 20]))
            .await
            .unwrap();
        assert_eq!(out.written, [true, true, true]);
    }

    pub async fn idempotent_reappend(s: Store) {
        let first = s
            .append("a", ExpectedRevision::NoStream, evs([1, 2, 3]))
            .await
            .unwrap();
        s.append("b", ExpectedRevision::NoStream, evs([4]))
            .await
            .unwrap();
        // Same ids with a stale expected revision: success, nothing written.
        let again = s
            .append("a", ExpectedRevision::NoStream, evs([1, 2, 3]))
            .await
            .unwrap();
        assert_eq!(again.positions, first.positions);
        assert_eq!(again.revisions, first.revisions);
        assert_eq!(again.written, [false, false, false]);
        let subset = s
            .append("a", ExpectedRevision::Exact(7), evs([2]))
            .await
            .unwrap();
        assert_eq!(subset.positions, [1]);
        assert_eq!(subset.revisions, [1]);
        assert_eq!(subset.written, [false]);
        assert_eq!(subset.last_position(), Some(1));
        assert_eq!(s.next_position(), 4);
        assert_eq!(s.read_all(0, 100).await.unwrap().len(), 4);
        assert_eq!(s.stream_revision("a"), Some(2));
    }

    pub async fn partial_reappend(s: Store) {
        s.append("a", ExpectedRevision::NoStream, evs([1, 2]))
            .await
            .unwrap();
        s.append("b", ExpectedRevision::NoStream, evs([9]))
            .await
            .unwrap();
        let out = s
            .append("a", ExpectedRevision::Exact(1), evs([2, 3, 4]))
            .await
            .unwrap();
        assert_eq!(out.written, [false, true, true]);
        assert_eq!(out.positions, [1, 3, 4]);
        assert_eq!(out.revisions, [1, 2, 3]);
        assert_eq!(out.last_position(), Some(4));
        // With new events the expected revision is checked (against the stream's last one).
        let err = s
            .append("a", ExpectedRevision::Exact(1), evs([3, 5]))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            StoreError::WrongExpectedRevision {
                stream: "a".into(),
                expected: ExpectedRevision::Exact(1),
                actual: Some(3)
            }
        );
        let out = s
            .append("a", ExpectedRevision::Any, evs([4, 5]))
            .await
            .unwrap();
        assert_eq!(out.written, [false, true]);
        assert_eq!(out.revisions, [3, 4]);
        let revs: Vec<u64> = s
            .read_stream("a", 0, 100)
            .await
            .unwrap()
            .iter()
            .map(|e| e.revision)
            .collect();
        assert_eq!(revs, [0, 1, 2, 3, 4]);
    }

    pub async fn event_id_conflict_across_streams(s: Store) {
        s.append("a", ExpectedRevision::Any, evs([1, 2]))
            .await
            .unwrap();
        let err = s
            .append("b", ExpectedRevision::NoStream, evs([2]))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            StoreError::EventIdConflict {
                id: EventId(2),
                existing_stream: "a".into()
            }
        );
        assert_eq!(s.stream_revision("b"), None);
        assert_eq!(s.next_position(), 2);
    }

    pub async fn limits_are_invalid(s: Store) {
        s.append("a", ExpectedRevision::Any, evs([1]))
            .await
            .unwrap();
        let big_type = NewEvent {
            id: EventId(50),
            event_type: "T".repeat(limits::EVENT_TYPE_LEN_MAX + 1),
            data: vec![],
        };
        let big_data = NewEvent {
            id: EventId(51),
            event_type: "T".into(),
            data: vec![1; limits::EVENT_DATA_LEN_MAX + 1],
        };
        let too_many: Vec<NewEvent> = (0..limits::APPEND_EVENTS_MAX as u128 + 1)
            .map(|i| ev(1000 + i))
            .collect();
        let cases: Vec<(String, Vec<NewEvent>)> = vec![
            ("a".into(), vec![]),
            ("a".into(), vec![big_type]),
            ("a".into(), vec![big_data]),
            ("a".into(), too_many),
            ("a".into(), evs([60, 61, 60])),
            ("s".repeat(limits::STREAM_NAME_LEN_MAX + 1), evs([70])),
            (String::new(), evs([71])),
        ];
        for (stream, events) in cases {
            let got = s.append(&stream, ExpectedRevision::Any, events).await;
            assert!(matches!(got, Err(StoreError::Invalid(_))), "{got:?}");
        }
        // The largest valid sizes pass.
        let max = NewEvent {
            id: EventId(80),
            event_type: "T".repeat(limits::EVENT_TYPE_LEN_MAX),
            data: vec![7; limits::EVENT_DATA_LEN_MAX],
        };
        let name = "s".repeat(limits::STREAM_NAME_LEN_MAX);
        s.append(&name, ExpectedRevision::NoStream, vec![max.clone()])
            .await
            .unwrap();
        assert_eq!(s.next_position(), 2);
        let read = s.read_stream(&name, 0, 10).await.unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].data, max.data);
        assert_eq!(read[0].event_type, max.event_type);
    }

    pub async fn read_stream_from_revision_with_max(s: Store) {
        for i in 0..10u128 {
            s.append("a", ExpectedRevision::Any, evs([i]))
                .await
                .unwrap();
            s.append("b", ExpectedRevision::Any, evs([100 + i]))
                .await
                .unwrap();
        }
        let got = s.read_stream("a", 3, 4).await.unwrap();
        let revs: Vec<u64> = got.iter().map(|e| e.revision).collect();
        assert_eq!(revs, [3, 4, 5, 6]);
        let positions: Vec<u64> = got.iter().map(|e| e.position).collect();
        assert_eq!(positions, [6, 8, 10, 12]);
        for e in &got {
            assert_eq!(&*e.stream, "a");
            let n = u128::from(e.revision);
            assert_eq!(e.id, EventId(n));
            assert_eq!(e.event_type, "Happened");
            assert_eq!(e.data, format!("{{\"n\":{n}}}").into_bytes());
            assert!(e.recorded_at_ms > 1_600_000_000_000);
        }
        assert_eq!(s.read_stream("a", 8, 100).await.unwrap().len(), 2);
        assert!(s.read_stream("a", 10, 100).await.unwrap().is_empty());
        assert!(
            s.read_stream("a", u64::MAX, usize::MAX)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(s.read_stream("a", 0, 0).await.unwrap().is_empty());
        assert!(s.read_stream("nope", 0, 10).await.unwrap().is_empty());
        assert_eq!(s.read_stream("b", 0, usize::MAX).await.unwrap().len(), 10);
    }

    pub async fn read_all_from_position_with_max(s: Store) {
        for i in 0..5u128 {
            s.append(
                &format!("s{i}"),
                ExpectedRevision::NoStream,
                evs([i * 2, i * 2 + 1]),
            )
            .await
            .unwrap();
        }
        let got = s.read_all(3, 4).await.unwrap();
        let positions: Vec<u64> = got.iter().map(|e| e.position).collect();
        assert_eq!(positions, [3, 4, 5, 6]);
        let ids: Vec<EventId> = got.iter().map(|e| e.id).collect();
        assert_eq!(ids, [EventId(3), EventId(4), EventId(5), EventId(6)]);
        assert_eq!(&*got[0].stream, "s1");
        assert_eq!(got[0].revision, 1);
        assert_eq!(s.read_all(8, 100).await.unwrap().len(), 2);
        assert!(s.read_all(10, 100).await.unwrap().is_empty());
        assert!(s.read_all(u64::MAX, usize::MAX).await.unwrap().is_empty());
        assert!(s.read_all(0, 0).await.unwrap().is_empty());
        assert_eq!(s.read_all(0, usize::MAX).await.unwrap().len(), 10);
    }

    pub async fn subscription_catches_up_then_goes_live(s: Store) {
        const BEFORE: u128 = 50;
        const TASKS: u128 = 4;
        const PER_TASK: u128 = 40;
        for i in 0..BEFORE {
            s.append("before", ExpectedRevision::Any, evs([i]))
                .await
                .unwrap();
        }
        let mut sub = s.subscribe_all(0);
        let first = take(&mut sub, 10).await;
        assert_eq!(first[0].position, 0);
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let s = Arc::clone(&s);
            tasks.push(tokio::spawn(async move {
                for i in 0..PER_TASK {
                    let id = 1000 * (t + 1) + i;
                    let out = s
                        .append(&format!("task-{t}"), ExpectedRevision::Any, evs([id]))
                        .await
                        .unwrap();
                    assert_eq!(out.revisions, [i as u64]);
                }
            }));
        }
        let total = (BEFORE + TASKS * PER_TASK) as usize;
        let rest = take(&mut sub, total - first.len()).await;
        for t in tasks {
            t.await.unwrap();
        }
        let all: Vec<_> = first.into_iter().chain(rest).collect();
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e.position, i as u64, "no gaps, no reordering");
        }
        let ids: HashSet<EventId> = all.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), total);
        // Per stream, revisions arrive in order.
        for t in 0..TASKS {
            let revs: Vec<u64> = all
                .iter()
                .filter(|e| *e.stream == format!("task-{t}"))
                .map(|e| e.revision)
                .collect();
            assert_eq!(revs, (0..PER_TASK as u64).collect::<Vec<_>>());
        }
        // Still live after catching up.
        s.append("after", ExpectedRevision::NoStream, evs([99_999]))
            .await
            .unwrap();
        let last = take(&mut sub, 1).await;
        assert_eq!(last[0].position, total as u64);
        assert_eq!(all, s.read_all(0, total).await.unwrap());
    }

    pub async fn subscription_from_the_middle(s: Store) {
        for i in 0..10u128 {
            s.append("a", ExpectedRevision::Any, evs([i]))
                .await
                .unwrap();
        }
        let mut sub = s.subscribe_all(5);
        let got = take(&mut sub, 5).await;
        let positions: Vec<u64> = got.iter().map(|e| e.position).collect();
        assert_eq!(positions, [5, 6, 7, 8, 9]);
        let mut future = s.subscribe_all(12);
        s.append("a", ExpectedRevision::Exact(9), evs([10, 11, 12, 13]))
            .await
            .unwrap();
        assert_eq!(
            take(&mut sub, 4)
                .await
                .iter()
                .map(|e| e.position)
                .collect::<Vec<_>>(),
            [10, 11, 12, 13]
        );
        assert_eq!(
            take(&mut future, 2)
                .await
                .iter()
                .map(|e| e.position)
                .collect::<Vec<_>>(),
            [12, 13]
        );
    }

    pub async fn snapshots(s: Store) {
        assert_eq!(s.load_snapshot("acc-1").await.unwrap(), None);
        let one = Snapshot {
            revision: 3,
            data: b"{\"balance\":3}".to_vec(),
        };
        s.save_snapshot("acc-1", one.clone()).await.unwrap();
        assert_eq!(s.load_snapshot("acc-1").await.unwrap(), Some(one));
        let two = Snapshot {
            revision: 9,
            data: vec![],
        };
        s.save_snapshot("acc-1", two.clone()).await.unwrap();
        assert_eq!(s.load_snapshot("acc-1").await.unwrap(), Some(two.clone()));
        assert_eq!(s.load_snapshot("acc-2").await.unwrap(), None);
        for key in ["a/b\\c ü", &"k".repeat(300), "."] {
            let snap = Snapshot {
                revision: 1,
                data: key.as_bytes().to_vec(),
            };
            s.save_snapshot(key, snap.clone()).await.unwrap();
            assert_eq!(s.load_snapshot(key).await.unwrap(), Some(snap));
        }
        assert_eq!(s.load_snapshot("acc-1").await.unwrap(), Some(two));
        assert!(matches!(
            s.load_snapshot("").await,
            Err(StoreError::Invalid(_))
        ));
    }
}

macro_rules! contract_suite {
    ($backend:ident, $make:path, [$($check:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let (store, _dir) = $make().await;
                    checks::$check(store).await;
                }
            )*

            /// The subscription also works on a current-thread runtime (actix's).
            #[tokio::test(flavor = "current_thread")]
            async fn subscription_on_current_thread_runtime() {
                let (store, _dir) = $make().await;
                checks::subscription_catches_up_then_goes_live(store).await;
            }
        }
    };
}

macro_rules! contract {
    ($($backend:ident => $make:path),* $(,)?) => {
        $(
            contract_suite!($backend, $make, [
                new_stream_with_no_stream,
                exact_revision,
                any_revision,
                batch_is_atomic,
                idempotent_reappend,
                partial_reappend,
                event_id_conflict_across_streams,
                limits_are_invalid,
                read_stream_from_revision_with_max,
                read_all_from_position_with_max,
                subscription_catches_up_then_goes_live,
                subscription_from_the_middle,
                snapshots,
            ]);
        )*
    };
}

contract!(memory => common::memory, file => common::file);
#[cfg(feature = "nats")]
contract!(jetstream => common::nats);
