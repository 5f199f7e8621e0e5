//! FileStore-only behaviour: durability across reopen, crash recovery, corruption detection,
//! segment rotation.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{evs, take};
use futures::StreamExt;
use store::{
    EventId, EventStore, ExpectedRevision, FileStore, FileStoreOptions, NewEvent, Snapshot,
    StoreError,
};

/// Bytes of one record of [`fixed`] in stream "s": header 16 + fixed payload 48 + "s" 1 +
/// "T" 1 + data 8.
const RECORD_LEN: u64 = 16 + 48 + 1 + 1 + 8;
/// Bytes of a group commit of one such record: its 16-byte frame, then the record.
const GROUP_LEN: u64 = 16 + RECORD_LEN;

fn fixed(id: u128) -> NewEvent {
    NewEvent {
        id: EventId(id),
        event_type: "T".into(),
        data: (id as u64).to_le_bytes().to_vec(),
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

fn only_segment(dir: &Path) -> PathBuf {
    let s = segments(dir);
    assert_eq!(s.len(), 1);
    s[0].clone()
}

/// Writes `n` single-event appends of [`fixed`] events to stream "s", and closes.
async fn write_singles(dir: &Path, n: u128) {
    let store = FileStore::open(dir).unwrap();
    for i in 0..n {
        store
            .append("s", ExpectedRevision::Any, vec![fixed(i)])
            .await
            .unwrap();
    }
    store.close();
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

fn set_len(p: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(p)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn write_at(p: &Path, offset: u64, bytes: &[u8]) {
    OpenOptions::new()
        .write(true)
        .open(p)
        .unwrap()
        .write_all_at(bytes, offset)
        .unwrap();
}

fn flip(p: &Path, offset: u64) {
    let f = OpenOptions::new().read(true).write(true).open(p).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    f.write_all_at(&[b[0] ^ 0x5a], offset).unwrap();
}

async fn ids(store: &FileStore) -> Vec<u128> {
    store
        .read_all(0, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id.0)
        .collect()
}

/// After recovery the store has exactly events 0..n, appends continue, and a second reopen
/// agrees.
async fn assert_recovered(dir: &Path, n: u128) {
    let store = FileStore::open(dir).unwrap();
    assert_eq!(ids(&store).await, (0..n).collect::<Vec<_>>());
    assert_eq!(store.next_position(), n as u64);
    let out = store
        .append("s", ExpectedRevision::Any, vec![fixed(1000)])
        .await
        .unwrap();
    assert_eq!(out.positions, [n as u64]);
    assert_eq!(out.revisions, [n as u64]);
    store.close();
    drop(store);
    let store = FileStore::open(dir).unwrap();
    let mut want: Vec<u128> = (0..n).collect();
    want.push(1000);
    assert_eq!(ids(&store).await, want);
}

#[tokio::test]
async fn reopen_returns_identical_events_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    for i in 0..20u128 {
        let stream = format!("s{}", i % 3);
        store
            .append(&stream, ExpectedRevision::Any, evs([i * 10, i * 10 + 1]))
            .await
            .unwrap();
    }
    store
        .save_snapshot(
            "s0",
            Snapshot {
                revision: 4,
                data: b"x".to_vec(),
            },
        )
        .await
        .unwrap();
    let before = store.read_all(0, usize::MAX).await.unwrap();
    let revisions: Vec<_> = (0..3)
        .map(|i| store.stream_revision(&format!("s{i}")))
        .collect();
    drop(store);

    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(store.read_all(0, usize::MAX).await.unwrap(), before);
    assert_eq!(store.next_position(), 40);
    for (i, r) in revisions.iter().enumerate() {
        assert_eq!(store.stream_revision(&format!("s{i}")), *r);
    }
    assert_eq!(
        store.load_snapshot("s0").await.unwrap(),
        Some(Snapshot {
            revision: 4,
            data: b"x".to_vec()
        })
    );
    // Idempotency survives the reopen.
    let again = store
        .append("s0", ExpectedRevision::NoStream, evs([0, 1]))
        .await
        .unwrap();
    assert_eq!(again.written, [false, false]);
    assert_eq!(again.positions, [0, 1]);
    let err = store
        .append("s1", ExpectedRevision::Any, evs([0]))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::EventIdConflict {
            id: EventId(0),
            existing_stream: "s0".into()
        }
    );
    // Positions and revisions continue.
    let out = store
        .append("s1", ExpectedRevision::Exact(13), evs([999]))
        .await
        .unwrap();
    assert_eq!(out.positions, [40]);
    assert_eq!(out.revisions, [14]);
    let out = store
        .append("new", ExpectedRevision::NoStream, evs([998]))
        .await
        .unwrap();
    assert_eq!(out.positions, [41]);
    assert_eq!(out.revisions, [0]);
}

#[tokio::test]
async fn torn_tail_incomplete_payload_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    write_singles(dir.path(), 5).await;
    let seg = only_segment(dir.path());
    assert_eq!(file_len(&seg), 5 * GROUP_LEN);
    set_len(&seg, 5 * GROUP_LEN - 3);
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(file_len(&seg), 4 * GROUP_LEN);
    drop(store);
    assert_recovered(dir.path(), 4).await;
}

#[tokio::test]
async fn torn_tail_incomplete_header_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    write_singles(dir.path(), 5).await;
    let seg = only_segment(dir.path());
    set_len(&seg, 4 * GROUP_LEN + 7);
    assert_recovered(dir.path(), 4).await;
}

#[tokio::test]
async fn torn_tail_zero_filled_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    write_singles(dir.path(), 5).await;
    let seg = only_segment(dir.path());
    // The file grew but the data never landed: zeros where the last record should be, plus more.
    write_at(&seg, 4 * GROUP_LEN, &[0u8; 300]);
    assert_recovered(dir.path(), 4).await;
}

#[tokio::test]
async fn torn_tail_bad_checksum_in_last_record_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    write_singles(dir.path(), 5).await;
    let seg = only_segment(dir.path());
    flip(&seg, 5 * GROUP_LEN - 2);
    assert_recovered(dir.path(), 4).await;
}

#[tokio::test]
async fn torn_tail_short_garbage_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    write_singles(dir.path(), 5).await;
    let seg = only_segment(dir.path());
    write_at(&seg, 5 * GROUP_LEN, &[0xab; 11]);
    assert_recovered(dir.path(), 5).await;
}

#[tokio::test]
async fn corrupt_middle_record_payload_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_singles(dir.path(), 5).await;
    let seg = only_segment(dir.path());
    flip(&seg, 2 * GROUP_LEN + 16 + 40);
    let err = FileStore::open(dir.path())
        .err()
        .expect("corrupt log must not open");
    match err {
        StoreError::Corrupt {
            file,
            offset,
            reason,
        } => {
            assert!(file.ends_with("00000000000000000000.seg"), "{file}");
            assert_eq!(offset, 2 * GROUP_LEN, "the damaged group's frame");
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Nothing was truncated: the acknowledged data is still there for an operator.
    assert_eq!(file_len(&seg), 5 * GROUP_LEN);
}

#[tokio::test]
async fn corrupt_middle_record_length_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_singles(dir.path(), 5).await;
    let seg = only_segment(dir.path());
    flip(&seg, 3 * GROUP_LEN); // the length in group 3's frame
    match FileStore::open(dir.path()).err() {
        Some(StoreError::Corrupt { offset, reason, .. }) => {
            assert_eq!(offset, 3 * GROUP_LEN);
            assert!(reason.contains("header"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn corrupt_last_record_followed_by_data_is_an_error() {
    // A bad record followed by a valid-looking one is damage, not a torn write.
    let dir = tempfile::tempdir().unwrap();
    write_singles(dir.path(), 5).await;
    let seg = only_segment(dir.path());
    flip(&seg, 3 * GROUP_LEN + 16 + 30);
    assert!(matches!(
        FileStore::open(dir.path()).err(),
        Some(StoreError::Corrupt { offset, .. }) if offset == 3 * GROUP_LEN
    ));
}

/// Two single appends, then one batch of three.
async fn write_with_batch(dir: &Path) {
    let store = FileStore::open(dir).unwrap();
    store
        .append("s", ExpectedRevision::Any, vec![fixed(0)])
        .await
        .unwrap();
    store
        .append("s", ExpectedRevision::Any, vec![fixed(1)])
        .await
        .unwrap();
    let out = store
        .append(
            "s",
            ExpectedRevision::Exact(1),
            vec![fixed(2), fixed(3), fixed(4)],
        )
        .await
        .unwrap();
    assert_eq!(out.positions, [2, 3, 4]);
}

#[tokio::test]
async fn torn_batch_is_dropped_whole() {
    let dir = tempfile::tempdir().unwrap();
    write_with_batch(dir.path()).await;
    let seg = only_segment(dir.path());
    set_len(&seg, 2 * GROUP_LEN + 16 + 3 * RECORD_LEN - 10); // inside the batch's last record
    assert_batch_dropped_and_retried(dir.path(), &seg).await;
}

/// After [`write_with_batch`] lost its batch: the two singles remain, the file ends after them,
/// and the batch can be made again as it was.
async fn assert_batch_dropped_and_retried(dir: &Path, seg: &Path) {
    let store = FileStore::open(dir).unwrap();
    assert_eq!(ids(&store).await, [0, 1], "truncated to the group's start");
    assert_eq!(store.stream_revision("s"), Some(1));
    assert_eq!(file_len(seg), 2 * GROUP_LEN);
    let out = store
        .append(
            "s",
            ExpectedRevision::Exact(1),
            vec![fixed(2), fixed(3), fixed(4)],
        )
        .await
        .unwrap();
    assert_eq!(out.written, [true, true, true]);
}

#[tokio::test]
async fn batch_missing_its_last_record_is_dropped_whole() {
    let dir = tempfile::tempdir().unwrap();
    write_with_batch(dir.path()).await;
    let seg = only_segment(dir.path());
    set_len(&seg, 2 * GROUP_LEN + 16 + 2 * RECORD_LEN); // two complete records of the batch
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(ids(&store).await, [0, 1]);
    assert_eq!(store.next_position(), 2);
}

fn small_segments() -> FileStoreOptions {
    FileStoreOptions {
        segment_size_max: 10 * GROUP_LEN,
        ..FileStoreOptions::default()
    }
}

#[tokio::test]
async fn segments_rotate_and_reads_span_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open_with(dir.path(), small_segments()).unwrap();
    for i in 0..45u128 {
        let stream = if i % 2 == 0 { "s" } else { "t" };
        store
            .append(stream, ExpectedRevision::Any, vec![fixed(i)])
            .await
            .unwrap();
    }
    // A batch larger than a segment lands whole in a fresh segment.
    let big: Vec<NewEvent> = (100..125u128).map(fixed).collect();
    store.append("s", ExpectedRevision::Any, big).await.unwrap();
    store
        .append("t", ExpectedRevision::Any, vec![fixed(200)])
        .await
        .unwrap();
    let names: Vec<String> = segments(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [0u64, 10, 20, 30, 40, 45, 70].map(|p| format!("{p:020}.seg")),
        "segments are named after their first position"
    );
    let all = store.read_all(0, usize::MAX).await.unwrap();
    assert_eq!(all.len(), 71);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, i as u64);
    }
    let middle = store.read_all(8, 30).await.unwrap();
    assert_eq!(middle, all[8..38]);
    let s = store.read_stream("s", 2, 40).await.unwrap();
    assert_eq!(s.len(), 40);
    assert_eq!(s[0].id, EventId(4));
    assert_eq!(s.last().unwrap().id, EventId(118)); // revision 41: 23 singles, then the batch
    let mut sub = store.subscribe_all(5);
    assert_eq!(take(&mut sub, 66).await, all[5..]);
    drop(store);

    let store = FileStore::open_with(dir.path(), small_segments()).unwrap();
    assert_eq!(store.read_all(0, usize::MAX).await.unwrap(), all);
    let out = store
        .append("t", ExpectedRevision::Exact(22), vec![fixed(300)])
        .await
        .unwrap();
    assert_eq!((out.positions[0], out.revisions[0]), (71, 23));
    // Default options reopen the same log.
    drop(store);
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(store.next_position(), 72);
}

/// 25 single appends in segments of 10 groups: three segments.
async fn write_25_in_three_segments(dir: &Path) {
    let store = FileStore::open_with(dir, small_segments()).unwrap();
    for i in 0..25u128 {
        store
            .append("s", ExpectedRevision::Any, vec![fixed(i)])
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn damage_in_a_non_last_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_25_in_three_segments(dir.path()).await;
    let segs = segments(dir.path());
    assert_eq!(segs.len(), 3);
    // A torn-looking tail is still damage when it is not the end of the log.
    set_len(&segs[1], 10 * GROUP_LEN - 5);
    match FileStore::open(dir.path()).err() {
        Some(StoreError::Corrupt { file, offset, .. }) => {
            assert!(file.ends_with("00000000000000000010.seg"), "{file}");
            assert_eq!(offset, 9 * GROUP_LEN);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_25_in_three_segments(dir.path()).await;
    std::fs::remove_file(&segments(dir.path())[1]).unwrap();
    assert!(matches!(
        FileStore::open(dir.path()).err(),
        Some(StoreError::Corrupt { offset: 0, .. })
    ));
}

#[tokio::test]
async fn a_directory_is_opened_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    assert!(matches!(
        FileStore::open(dir.path()).err(),
        Some(StoreError::Io(_))
    ));
    store.close();
    let again = FileStore::open(dir.path()).unwrap();
    drop(again);
}

#[tokio::test]
async fn closed_store_refuses_appends_and_ends_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    store
        .append("s", ExpectedRevision::Any, vec![fixed(0)])
        .await
        .unwrap();
    let mut sub = store.subscribe_all(0);
    assert_eq!(take(&mut sub, 1).await[0].id, EventId(0));
    let pending = store.append("s", ExpectedRevision::Any, vec![fixed(1)]);
    store.close();
    // Queued before close: answered, durable.
    assert_eq!(pending.await.unwrap().positions, [1]);
    assert_eq!(take(&mut sub, 1).await[0].id, EventId(1));
    assert_eq!(sub.next().await, Some(Err(StoreError::Closed)));
    assert_eq!(sub.next().await, None);
    assert_eq!(
        store
            .append("s", ExpectedRevision::Any, vec![fixed(2)])
            .await,
        Err(StoreError::Closed)
    );
    assert_eq!(store.read_all(0, 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn damaged_snapshot_reads_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    store
        .save_snapshot(
            "acc",
            Snapshot {
                revision: 2,
                data: vec![1, 2, 3],
            },
        )
        .await
        .unwrap();
    let path = dir
        .path()
        .join("snapshots")
        .join(format!("{}.snap", "616363"));
    assert!(path.exists());
    flip(&path, 20);
    assert_eq!(store.load_snapshot("acc").await.unwrap(), None);
    store
        .save_snapshot(
            "acc",
            Snapshot {
                revision: 3,
                data: vec![],
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.load_snapshot("acc").await.unwrap().unwrap().revision,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_group_committed_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let mut tasks = Vec::new();
    for t in 0..32u128 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for i in 0..20u128 {
                let out = store
                    .append(
                        &format!("c{t}"),
                        ExpectedRevision::Exact(i as u64).into_option(i),
                        evs([t * 100 + i]),
                    )
                    .await
                    .unwrap();
                assert_eq!(out.revisions, [i as u64]);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = store.read_all(0, usize::MAX).await.unwrap();
    assert_eq!(all.len(), 640);
    drop(store);
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(store.read_all(0, usize::MAX).await.unwrap(), all);
}

trait FirstIsNoStream {
    fn into_option(self, i: u128) -> ExpectedRevision;
}

impl FirstIsNoStream for ExpectedRevision {
    /// `NoStream` for the first append of a stream, `self` after.
    fn into_option(self, i: u128) -> ExpectedRevision {
        if i == 0 {
            ExpectedRevision::NoStream
        } else {
            ExpectedRevision::Exact(i as u64 - 1)
        }
    }
}

/// Two single appends, then a batch of three as the last group; the batch's middle record is
/// zeroed, as when the machine stopped with only some of the group's pages written.
async fn zeroed_inside_the_batch(dir: &Path) -> PathBuf {
    write_with_batch(dir).await;
    let seg = only_segment(dir);
    write_at(
        &seg,
        2 * GROUP_LEN + 16 + RECORD_LEN,
        &[0u8; RECORD_LEN as usize],
    );
    seg
}

#[tokio::test]
async fn a_zeroed_range_inside_the_last_group_followed_by_records_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let seg = zeroed_inside_the_batch(dir.path()).await;
    assert_batch_dropped_and_retried(dir.path(), &seg).await;
}

#[tokio::test]
async fn the_same_damage_in_a_group_that_is_not_the_last_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let seg = zeroed_inside_the_batch(dir.path()).await;
    // A later group landed after the damaged one: that one was acknowledged.
    let mut later = vec![0u8; GROUP_LEN as usize];
    let bytes = std::fs::read(&seg).unwrap();
    later.copy_from_slice(&bytes[..GROUP_LEN as usize]);
    write_at(&seg, file_len(&seg), &later);
    match FileStore::open(dir.path()).err() {
        Some(StoreError::Corrupt {
            file,
            offset,
            reason,
        }) => {
            assert!(file.ends_with("00000000000000000000.seg"), "{file}");
            assert_eq!(offset, 2 * GROUP_LEN, "the damaged group's frame");
            assert!(reason.contains("group checksum"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// The last group's own frame damaged (its first bytes landed, the rest zeroed), as the fault
/// simulation found: a torn tail, not corruption.
#[tokio::test]
async fn a_damaged_frame_of_the_last_group_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    write_with_batch(dir.path()).await;
    let seg = only_segment(dir.path());
    write_at(&seg, 2 * GROUP_LEN + 9, &[0u8; 20]);
    assert_batch_dropped_and_retried(dir.path(), &seg).await;
}

#[tokio::test]
async fn a_damaged_frame_with_a_readable_group_after_it_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_with_batch(dir.path()).await;
    let seg = only_segment(dir.path());
    // The second group's frame is damaged; the batch after it was acknowledged.
    write_at(&seg, GROUP_LEN + 9, &[0u8; 4]);
    match FileStore::open(dir.path()).err() {
        Some(StoreError::Corrupt { offset, reason, .. }) => {
            assert_eq!(offset, GROUP_LEN, "the damaged frame");
            assert!(reason.contains("header checksum"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn temporary_snapshot_files_a_crash_left_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let snapshot = Snapshot {
        revision: 1,
        data: b"x".to_vec(),
    };
    store.save_snapshot("k", snapshot.clone()).await.unwrap();
    drop(store);
    let leftover = dir.path().join("snapshots").join(".tmp-4242-7");
    std::fs::write(&leftover, b"half a snapshot").unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    assert!(!leftover.exists(), "removed");
    assert_eq!(
        store.load_snapshot("k").await.unwrap(),
        Some(snapshot),
        "the real one stays"
    );
}

#[tokio::test]
async fn check_reports_without_changing_anything() {
    let dir = tempfile::tempdir().unwrap();
    write_singles(dir.path(), 5).await;
    let seg = only_segment(dir.path());
    let healthy = store::check(dir.path()).unwrap();
    assert_eq!(
        (healthy.segments, healthy.bytes, healthy.events),
        (1, 5 * GROUP_LEN, 5)
    );
    assert_eq!((healthy.torn, healthy.corrupt), (None, None));
    set_len(&seg, 5 * GROUP_LEN - 3);
    let torn = store::check(dir.path()).unwrap();
    assert_eq!(torn.events, 4);
    assert_eq!(
        torn.torn.as_ref().map(|t| t.offset),
        Some(4 * GROUP_LEN),
        "{torn:?}"
    );
    assert_eq!(file_len(&seg), 5 * GROUP_LEN - 3, "check truncates nothing");
    flip(&seg, GROUP_LEN + 16 + 40);
    let corrupt = store::check(dir.path()).unwrap();
    let damage = corrupt.corrupt.expect("damage");
    assert_eq!((damage.offset, corrupt.events), (GROUP_LEN, 1));
    assert!(
        damage.file.ends_with(".seg") && damage.reason.contains("checksum"),
        "{damage:?}"
    );
    let held = FileStore::open(dir.path().join("held")).unwrap();
    assert!(
        store::check(&dir.path().join("held")).is_err(),
        "not while a store has it open"
    );
    drop(held);
}

#[tokio::test]
async fn truncate_cuts_at_a_group_start_and_only_there() {
    let dir = tempfile::tempdir().unwrap();
    write_with_batch(dir.path()).await;
    let refused = store::truncate(dir.path(), 3).unwrap_err();
    assert!(
        refused.to_string().contains("Some(2) and Some(5)"),
        "{refused}"
    );
    assert_eq!(
        store::truncate(dir.path(), 2).unwrap(),
        3,
        "the batch of three"
    );
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(ids(&store).await, [0, 1]);
    assert_eq!(store.stream_revision("s"), Some(1));
    drop(store);
    assert_eq!(
        store::truncate(dir.path(), 9).unwrap(),
        0,
        "past the end: nothing"
    );

    let dir = tempfile::tempdir().unwrap();
    write_25_in_three_segments(dir.path()).await;
    assert_eq!(segments(dir.path()).len(), 3);
    assert_eq!(store::truncate(dir.path(), 12).unwrap(), 13);
    assert_eq!(segments(dir.path()).len(), 2, "the later segment is gone");
    let store = FileStore::open(dir.path()).unwrap();
    assert_eq!(store.next_position(), 12);
}
