//! Every bound of the event log, in one place.

/// Longest stream name, bytes.
pub const STREAM_NAME_LEN_MAX: usize = 256;
/// Longest event type, bytes.
pub const EVENT_TYPE_LEN_MAX: usize = 128;
/// Largest event payload, bytes.
pub const EVENT_DATA_LEN_MAX: usize = 1 << 20;
/// Most events in one append.
pub const APPEND_EVENTS_MAX: usize = 4096;
/// Most payload bytes (sum of event data and type lengths) in one append.
pub const APPEND_BYTES_MAX: usize = 32 << 20;
/// Longest snapshot key, bytes.
pub const SNAPSHOT_KEY_LEN_MAX: usize = 1024;
/// Largest snapshot payload, bytes.
pub const SNAPSHOT_DATA_LEN_MAX: usize = 256 << 20;

/// Default size at which the file log starts a new segment, bytes. A segment may exceed it by
/// one group commit (the writer never splits a group across segments).
pub const SEGMENT_SIZE_DEFAULT: u64 = 64 << 20;
/// Largest segment size the options accept, bytes (record offsets are `u32`).
pub const SEGMENT_SIZE_MAX: u64 = 1 << 30;
/// Most append requests the writer commits with one fdatasync.
pub const GROUP_REQUESTS_MAX: usize = 4096;
/// Most encoded bytes the writer gathers into one group before it stops draining the queue.
pub const GROUP_BYTES_MAX: usize = 64 << 20;
/// Longest the writer waits for stragglers before a group commit, microseconds. It waits only
/// while the group is smaller than the previous one (i.e. under concurrent load).
pub const GROUP_GATHER_WAIT_MAX_US: u64 = 1_000;
/// Most bytes fetched by one positioned read when reading a run of contiguous records.
pub const READ_RUN_BYTES_MAX: usize = 4 << 20;
/// Most events a subscription reads ahead of its consumer in one batch.
pub const SUBSCRIPTION_BATCH_MAX: usize = 1024;

const _: () = assert!(EVENT_DATA_LEN_MAX + EVENT_TYPE_LEN_MAX <= APPEND_BYTES_MAX);
const _: () = assert!(APPEND_BYTES_MAX <= GROUP_BYTES_MAX);
const _: () = assert!(SEGMENT_SIZE_DEFAULT <= SEGMENT_SIZE_MAX);
// A group (at most GROUP_BYTES_MAX plus one append) must fit after a full segment in u32 offsets.
const _: () = assert!(SEGMENT_SIZE_MAX + 2 * (GROUP_BYTES_MAX as u64) < u32::MAX as u64);
const _: () = assert!(STREAM_NAME_LEN_MAX <= u16::MAX as usize);
const _: () = assert!(EVENT_TYPE_LEN_MAX <= u16::MAX as usize);
