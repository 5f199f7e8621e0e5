//! Property: FileStore and MemoryStore decide every append identically, hold identical logs,
//! and the FileStore's log survives a reopen unchanged.

mod common;

use proptest::prelude::*;
use store::{EventId, EventStore, ExpectedRevision, FileStore, MemoryStore, NewEvent};

#[derive(Clone, Debug)]
struct Op {
    stream: u8,
    expected: ExpectedRevision,
    ids: Vec<u8>,
}

fn expected() -> impl Strategy<Value = ExpectedRevision> {
    prop_oneof![
        Just(ExpectedRevision::Any),
        Just(ExpectedRevision::NoStream),
        (0u64..6).prop_map(ExpectedRevision::Exact),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    (0u8..3, expected(), prop::collection::vec(0u8..24, 0..5)).prop_map(
        |(stream, expected, ids)| Op {
            stream,
            expected,
            ids,
        },
    )
}

fn events(ids: &[u8]) -> Vec<NewEvent> {
    ids.iter()
        .map(|&i| NewEvent {
            id: EventId(u128::from(i) << 64 | 7),
            event_type: format!("T{}", i % 3),
            data: vec![i; usize::from(i)],
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn file_and_memory_agree(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let file = FileStore::open(dir.path()).unwrap();
            let memory = MemoryStore::new();
            for op in &ops {
                let stream = format!("stream-{}", op.stream);
                let a = file.append(&stream, op.expected, events(&op.ids)).await;
                let b = memory.append(&stream, op.expected, events(&op.ids)).await;
                prop_assert_eq!(&a, &b, "{:?}", op);
                prop_assert_eq!(file.next_position(), memory.next_position());
                prop_assert_eq!(file.stream_revision(&stream), memory.stream_revision(&stream));
            }
            let logged = file.read_all(0, usize::MAX).await.unwrap();
            let expected = memory.read_all(0, usize::MAX).await.unwrap();
            prop_assert_eq!(common::untimed(&logged), common::untimed(&expected));
            for s in 0..3 {
                let stream = format!("stream-{s}");
                let f = file.read_stream(&stream, 0, usize::MAX).await.unwrap();
                let m = memory.read_stream(&stream, 0, usize::MAX).await.unwrap();
                prop_assert_eq!(common::untimed(&f), common::untimed(&m));
            }
            drop(file);
            let reopened = FileStore::open(dir.path()).unwrap();
            prop_assert_eq!(reopened.read_all(0, usize::MAX).await.unwrap(), logged);
            prop_assert_eq!(reopened.next_position(), memory.next_position());
            Ok(())
        })?;
    }
}
