//! [`FileStore`]: the embedded, durable, group-committing segment log.
//!
//! Layout: `<dir>/log/<20-digit first position>.seg` segments of records (see `codec`),
//! `<dir>/snapshots/*.snap`, and `<dir>/LOCK` (an advisory lock: one process per directory).
//!
//! One writer thread owns the log file. It drains every queued append, decides each against
//! the write-side state (which includes the earlier appends of the same group), encodes the
//! accepted events into one buffer, writes it with one `write` and makes it durable with one
//! `fdatasync` (group commit), then publishes the events to the read side and only then
//! answers. Reads use positioned reads of the segment files through the location index and
//! see only published (durable) events.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{oneshot, watch};

use crate::codec::{self, HEADER_LEN, PayloadRef, RecordFields};
use crate::metrics::METRICS;
use crate::state::{StreamId, StreamIndex, WriteState, check_append};
use crate::subscription::{Head, subscribe};
use crate::{
    AppendOutcome, EventStore, ExpectedRevision, NewEvent, Position, RecordedEvent, Revision,
    Snapshot, StoreError, StoreResult, limits, snapshot,
};

/// Tuning of a [`FileStore`].
#[derive(Clone)]
pub struct FileStoreOptions {
    /// Size at which the log starts a new segment, bytes; `1..=`[`limits::SEGMENT_SIZE_MAX`].
    /// A segment exceeds it by at most one group commit.
    pub segment_size_max: u64,
    /// Faults to inject into the log's writes and syncs (a fault simulation's storage layer);
    /// `None` in a node.
    pub faults: Option<Arc<dyn StorageFaults>>,
}

impl Default for FileStoreOptions {
    fn default() -> Self {
        Self {
            segment_size_max: limits::SEGMENT_SIZE_DEFAULT,
            faults: None,
        }
    }
}

impl std::fmt::Debug for FileStoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStoreOptions")
            .field("segment_size_max", &self.segment_size_max)
            .field("faults", &self.faults.is_some())
            .finish()
    }
}

/// A storage layer that fails on purpose: the writer asks it before each group's write and
/// before each fdatasync, in that order, from its one thread. It also learns from these calls
/// exactly which bytes were made durable, which is what a simulated crash may not lose.
pub trait StorageFaults: Send + Sync + 'static {
    /// Before `len` bytes are written at `offset` of the segment `file`.
    fn write(&self, file: &Path, offset: u64, len: usize) -> WriteFault;
    /// Before `file` is made durable (everything written to it so far).
    fn sync(&self, file: &Path) -> SyncFault;
}

/// What becomes of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteFault {
    /// It is written.
    None,
    /// It fails before a byte is written.
    Fail,
    /// Only its first bytes (fewer than asked) are written, then it fails.
    Torn(usize),
}

/// What becomes of an fdatasync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncFault {
    /// It syncs.
    None,
    /// It fails (the written bytes stay in the file, durable or not).
    Fail,
    /// It syncs after this long.
    Slow(Duration),
}

/// Where a record lies: segment index, byte offset and length.
#[derive(Clone, Copy, Debug)]
struct Loc {
    segment: u32,
    offset: u32,
    len: u32,
}

struct Segment {
    file: Arc<File>,
    path: Arc<str>,
}

/// Published, durable state that reads see.
#[derive(Default)]
struct ReadSide {
    streams: StreamIndex,
    /// Location of every published position (index = position).
    locs: Vec<Loc>,
    segments: Vec<Segment>,
}

struct Shared {
    snapshots_dir: PathBuf,
    read: RwLock<ReadSide>,
    next_position: AtomicU64,
    head: watch::Sender<Head>,
    failed: AtomicBool,
}

struct Request {
    stream: String,
    expected: ExpectedRevision,
    events: Vec<NewEvent>,
    reply: oneshot::Sender<StoreResult<AppendOutcome>>,
    enqueued: Instant,
}

/// The embedded segment log: the node's [`EventStore`]. See the module docs.
///
/// An append is submitted to the writer when [`EventStore::append`] is called; dropping the
/// returned future does not cancel it.
pub struct FileStore {
    shared: Arc<Shared>,
    sender: RwLock<Option<mpsc::Sender<Request>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    lock_file: Mutex<Option<File>>,
}

fn io(context: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("{context} {}: {e}", path.display()))
}

fn sync_dir(path: &Path) -> StoreResult<()> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("fsync directory", path, e))
}

fn segment_name(first_position: Position) -> String {
    format!("{first_position:020}.seg")
}

impl FileStore {
    /// Opens (creating if needed) the log in `dir` with default options, recovering from a
    /// crash: a torn tail is truncated, damage before it is [`StoreError::Corrupt`].
    pub fn open(dir: impl AsRef<Path>) -> StoreResult<Arc<Self>> {
        Self::open_with(dir, FileStoreOptions::default())
    }

    /// [`FileStore::open`] with explicit options.
    pub fn open_with(dir: impl AsRef<Path>, options: FileStoreOptions) -> StoreResult<Arc<Self>> {
        if !(1..=limits::SEGMENT_SIZE_MAX).contains(&options.segment_size_max) {
            return Err(StoreError::Invalid(format!(
                "segment_size_max {} out of 1..={}",
                options.segment_size_max,
                limits::SEGMENT_SIZE_MAX
            )));
        }
        let dir = dir.as_ref();
        let log_dir = dir.join("log");
        let snapshots_dir = dir.join("snapshots");
        for d in [dir, &log_dir, &snapshots_dir] {
            std::fs::create_dir_all(d).map_err(|e| io("create directory", d, e))?;
        }
        let lock_file = lock(dir)?;
        sync_dir(dir)?;
        let leftovers = snapshot::remove_leftovers(&snapshots_dir)?;
        if leftovers > 0 {
            tracing::info!(leftovers, "removed temporary snapshot files a crash left");
        }
        let started = Instant::now();
        let recovered = recover(&log_dir)?;
        let next_position = recovered.state.next_position();
        tracing::info!(
            dir = %dir.display(),
            events = next_position,
            streams = recovered.state.stream_count(),
            segments = recovered.read.segments.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "event log opened"
        );
        let active = recovered
            .read
            .segments
            .last()
            .expect("at least one segment");
        let writer = Writer {
            segment: Arc::clone(&active.file),
            segment_path: PathBuf::from(&*active.path),
            segment_index: u32::try_from(recovered.read.segments.len() - 1)
                .expect("fewer than 2^32 segments"),
            segment_size: recovered.active_size,
            segment_size_max: options.segment_size_max,
            state: recovered.state,
            log_dir,
            shared: Arc::new(Shared {
                snapshots_dir,
                read: RwLock::new(recovered.read),
                next_position: AtomicU64::new(next_position),
                head: watch::Sender::new(Head {
                    next_position,
                    closed: false,
                }),
                failed: AtomicBool::new(false),
            }),
            buf: Vec::new(),
            staged: Vec::new(),
            results: Vec::new(),
            failed: false,
            fsync_ewma: Duration::from_millis(1),
            faults: options.faults,
        };
        let shared = Arc::clone(&writer.shared);
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("aitbc-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Io(format!("spawn writer thread: {e}")))?;
        Ok(Arc::new(Self {
            shared,
            sender: RwLock::new(Some(tx)),
            writer: Mutex::new(Some(thread)),
            lock_file: Mutex::new(Some(lock_file)),
        }))
    }

    /// Stops the writer after it has answered every queued append, and releases the directory.
    /// Later appends fail with [`StoreError::Closed`]; reads keep working; subscriptions end
    /// with [`StoreError::Closed`] once caught up. Idempotent; also run on drop.
    pub fn close(&self) {
        drop(self.sender.write().take());
        if let Some(thread) = self.writer.lock().take()
            && thread.join().is_err()
        {
            tracing::error!("event log writer thread panicked");
        }
        self.shared.head.send_modify(|h| h.closed = true);
        drop(self.lock_file.lock().take());
    }
}

impl Drop for FileStore {
    fn drop(&mut self) {
        self.close();
    }
}

// ---------------------------------------------------------------------------------------------
// Recovery.

struct Recovered {
    state: WriteState,
    read: ReadSide,
    active_size: u64,
}

/// Takes the directory's advisory lock (one process per store directory).
fn lock(dir: &Path) -> StoreResult<File> {
    let lock_path = dir.join("LOCK");
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io("open", &lock_path, e))?;
    if let Err(e) = lock_file.try_lock() {
        return Err(StoreError::Io(format!(
            "{} is locked by another process ({e}): is another node running on this data directory?",
            dir.display()
        )));
    }
    Ok(lock_file)
}

/// Damage found in a log: where, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogDamage {
    /// The segment file.
    pub file: String,
    /// Byte offset in it.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

/// What [`check`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogReport {
    /// Segment files.
    pub segments: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Events readable before any damage.
    pub events: u64,
    /// A torn tail (an unacknowledged write), which the next open truncates.
    pub torn: Option<LogDamage>,
    /// Damage that keeps the log from opening.
    pub corrupt: Option<LogDamage>,
}

/// Each segment of the log under `dir` scanned in order (`visit` gets its path, its bytes and
/// the scan's outcome); stops at damage. The directory must not be open in another process.
fn scan_log(
    dir: &Path,
    keep_boundaries: bool,
    mut visit: impl FnMut(usize, &Path, u64, &Result<Scan, (u64, String)>),
) -> StoreResult<u64> {
    let mut state = WriteState::default();
    let mut read = ReadSide::default();
    let segments = list_segments(&dir.join("log"))?;
    for (i, (first, path)) in segments.iter().enumerate() {
        let buf = std::fs::read(path).map_err(|e| io("read", path, e))?;
        let scan = match *first == state.next_position() {
            true => {
                let segment = u32::try_from(i).expect("fewer than 2^32 segments");
                scan_segment(&buf, segment, &mut state, &mut read, keep_boundaries)
            }
            false => Err((0, format!("a segment is missing before position {first}"))),
        };
        visit(i, path, buf.len() as u64, &scan);
        if scan.is_err() || scan.is_ok_and(|s| s.torn.is_some() && i + 1 < segments.len()) {
            break;
        }
    }
    Ok(state.next_position())
}

/// Reads and verifies every record of the store under `dir`, changing nothing (`aitbc store
/// check`). Refused while a node has the directory open.
pub fn check(dir: &Path) -> StoreResult<LogReport> {
    let _lock = lock(dir)?;
    let segment_count = list_segments(&dir.join("log"))?.len();
    let mut report = LogReport {
        segments: segment_count,
        bytes: 0,
        events: 0,
        torn: None,
        corrupt: None,
    };
    let damage = |path: &Path, (offset, reason): &(u64, String)| LogDamage {
        file: path.display().to_string(),
        offset: *offset,
        reason: reason.clone(),
    };
    report.events = scan_log(dir, false, |i, path, bytes, scan| {
        report.bytes += bytes;
        match scan {
            Err(error) => report.corrupt = Some(damage(path, error)),
            Ok(Scan {
                torn: Some(torn), ..
            }) if i + 1 < segment_count => {
                let (offset, reason) = torn;
                let reason = format!("{reason} in a segment that is not the last");
                report.corrupt = Some(damage(path, &(*offset, reason)));
            }
            Ok(Scan {
                torn: Some(torn), ..
            }) => report.torn = Some(damage(path, torn)),
            Ok(_) => {}
        }
    })?;
    Ok(report)
}

/// Cuts the log under `dir` so that it ends just before `position`, which must start a group
/// commit (`aitbc store truncate --at`): the events from `position` on are removed, every
/// later segment with them. Logged. Refused while a node has the directory open, and where
/// the log is damaged before `position`. The number of events removed.
pub fn truncate(dir: &Path, position: Position) -> StoreResult<u64> {
    let _lock = lock(dir)?;
    let mut cut: Option<(usize, PathBuf, u64)> = None;
    let mut nearest = (None, None);
    let mut damage = None;
    let mut segments = Vec::new();
    let end = scan_log(dir, true, |i, path, _, scan| {
        segments.push(path.to_path_buf());
        match scan {
            Err((offset, reason)) => {
                damage = Some(format!("{}:{offset}: {reason}", path.display()))
            }
            Ok(scan) => {
                for (starts, offset) in &scan.boundaries {
                    if *starts == position && cut.is_none() {
                        cut = Some((i, path.to_path_buf(), *offset));
                    }
                    if *starts < position {
                        nearest.0 = Some(*starts);
                    } else if nearest.1.is_none() && *starts > position {
                        nearest.1 = Some(*starts);
                    }
                }
            }
        }
    })?;
    if let Some(damage) = damage.filter(|_| cut.is_none()) {
        return Err(StoreError::Invalid(format!(
            "the log is damaged before {position}: {damage}"
        )));
    }
    if position >= end {
        return Ok(0);
    }
    let Some((index, path, offset)) = cut else {
        return Err(StoreError::Invalid(format!(
            "position {position} does not start a group commit; the nearest that do: {:?} and {:?}",
            nearest.0, nearest.1
        )));
    };
    tracing::warn!(file = %path.display(), offset, from = position, to = end, "truncating the event log");
    let file = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| io("open", &path, e))?;
    file.set_len(offset).map_err(|e| io("truncate", &path, e))?;
    file.sync_all().map_err(|e| io("fsync", &path, e))?;
    for later in &segments[index + 1..] {
        std::fs::remove_file(later).map_err(|e| io("remove", later, e))?;
    }
    sync_dir(&dir.join("log"))?;
    Ok(end - position)
}

fn list_segments(log_dir: &Path) -> StoreResult<Vec<(Position, PathBuf)>> {
    let mut segments = Vec::new();
    let entries = std::fs::read_dir(log_dir).map_err(|e| io("list", log_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io("list", log_dir, e))?;
        let name = entry.file_name();
        let parsed = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .filter(|stem| stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|stem| stem.parse::<Position>().ok());
        match parsed {
            Some(first) => segments.push((first, entry.path())),
            None => tracing::warn!(file = %entry.path().display(), "ignoring unknown file in log"),
        }
    }
    segments.sort();
    Ok(segments)
}

fn recover(log_dir: &Path) -> StoreResult<Recovered> {
    let mut segments = list_segments(log_dir)?;
    if segments.is_empty() {
        let path = log_dir.join(segment_name(0));
        File::create_new(&path).map_err(|e| io("create", &path, e))?;
        sync_dir(log_dir)?;
        segments.push((0, path));
    }
    let mut state = WriteState::default();
    let mut read = ReadSide::default();
    let mut buf = Vec::new();
    let mut active_size = 0;
    let last = segments.len() - 1;
    let mut sizes = Vec::with_capacity(segments.len());
    for (_, path) in &segments {
        sizes.push(
            std::fs::metadata(path)
                .map_err(|e| io("stat", path, e))?
                .len(),
        );
    }
    let bytes_total: u64 = sizes.iter().sum();
    let mut bytes_seen = 0u64;
    for (i, (first, path)) in segments.iter().enumerate() {
        let seg_path: Arc<str> = Arc::from(path.display().to_string());
        let corrupt = |offset: u64, reason: String| StoreError::Corrupt {
            file: seg_path.to_string(),
            offset,
            reason,
        };
        if *first != state.next_position() {
            return Err(corrupt(
                0,
                format!(
                    "segment named for position {first}, but the log continues at {}",
                    state.next_position()
                ),
            ));
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(i == last)
            .open(path)
            .map_err(|e| io("open", path, e))?;
        let len = file.metadata().map_err(|e| io("stat", path, e))?.len();
        if len > limits::SEGMENT_SIZE_MAX + 4 * limits::GROUP_BYTES_MAX as u64 {
            return Err(corrupt(
                0,
                format!("segment of {len} bytes is larger than any we write"),
            ));
        }
        buf.clear();
        buf.reserve(len as usize);
        file.read_to_end(&mut buf)
            .map_err(|e| io("read", path, e))?;
        let segment = u32::try_from(i).expect("fewer than 2^32 segments");
        let scan = scan_segment(&buf, segment, &mut state, &mut read, false)
            .map_err(|(offset, reason)| corrupt(offset, reason))?;
        if let Some((offset, reason)) = scan.torn {
            if i != last {
                return Err(corrupt(
                    offset,
                    format!("{reason} in a segment that is not the last"),
                ));
            }
            tracing::warn!(
                file = %seg_path,
                offset = scan.valid_len,
                detected_at = offset,
                dropped_bytes = buf.len() as u64 - scan.valid_len,
                reason,
                "truncating torn tail of the event log"
            );
            file.set_len(scan.valid_len)
                .map_err(|e| io("truncate", path, e))?;
            file.sync_all().map_err(|e| io("fsync", path, e))?;
        }
        active_size = scan.valid_len;
        bytes_seen += len;
        // Size the indexes for the rest of the log from the density seen so far, once.
        if i == 0 && i != last && bytes_seen > 0 {
            let events = state.next_position() as f64;
            let estimate =
                (events * (bytes_total - bytes_seen) as f64 / bytes_seen as f64) as usize;
            state.reserve(estimate);
            read.locs.reserve(estimate);
        }
        read.segments.push(Segment {
            file: Arc::new(file),
            path: seg_path,
        });
    }
    assert_eq!(
        read.locs.len() as u64,
        state.next_position(),
        "every position is located"
    );
    Ok(Recovered {
        state,
        read,
        active_size,
    })
}

struct Scan {
    /// End of the last complete batch.
    valid_len: u64,
    /// Offset and cause of a torn tail after `valid_len`.
    torn: Option<(u64, String)>,
    /// Where the log may be cut (group starts, or batch starts where there are no frames),
    /// as (the position that starts there, offset): for an operator's truncation.
    boundaries: Vec<(Position, u64)>,
}

/// Scans one segment, replaying complete batches into `state` and `read`. `Err` is damage
/// before the tail: (offset, reason).
fn scan_segment(
    buf: &[u8],
    segment: u32,
    state: &mut WriteState,
    read: &mut ReadSide,
    keep_boundaries: bool,
) -> Result<Scan, (u64, String)> {
    let mut boundaries = Vec::new();
    let mut off = 0usize;
    let mut batch_start = 0usize;
    let mut pending: Vec<(usize, PayloadRef<'_>)> = Vec::new();
    let mut stream_hint = None;
    // The end of the (checksum-verified) group being read, if any.
    let mut group_end: Option<usize> = None;
    // Whether this segment was written in group frames (logs before them have none).
    let mut framed = false;
    let torn = loop {
        if group_end == Some(off) {
            if !pending.is_empty() {
                return Err((off as u64, "a group ends inside an append batch".to_owned()));
            }
            group_end = None;
        }
        if keep_boundaries && group_end.is_none() && pending.is_empty() {
            boundaries.push((state.next_position(), off as u64));
        }
        if off == buf.len() {
            break None;
        }
        let rest = &buf[off..];
        if rest.len() < HEADER_LEN {
            break Some((off, "incomplete record header at end of log".to_owned()));
        }
        let header = match codec::decode_header(rest) {
            Ok(h) => h,
            Err(reason) if rest.iter().all(|&b| b == 0) => {
                break Some((off, format!("{reason}: zero-filled tail")));
            }
            // Where a group's frame was due, with no readable frame after it: the frame of the
            // last group, damaged by the crash that interrupted its write (every group before
            // it was synced whole when it was acknowledged).
            Err(reason)
                if framed
                    && group_end.is_none()
                    && pending.is_empty()
                    && !codec::group_frame_within(&rest[1..]) =>
            {
                break Some((off, format!("{reason} in the last group's frame")));
            }
            Err(reason) => return Err((off as u64, reason.to_owned())),
        };
        let end = off + HEADER_LEN + header.payload_len;
        if header.group() {
            if group_end.is_some() || !pending.is_empty() {
                return Err((off as u64, "a group frame inside a group".to_owned()));
            }
            if end > buf.len() {
                break Some((off, "incomplete group at end of log".to_owned()));
            }
            if !codec::payload_crc_ok(&header, &buf[off + HEADER_LEN..end]) {
                // The last group was being written when the machine stopped: it was never
                // acknowledged. Damage to any other group is damage.
                if end == buf.len() {
                    break Some((off, "group checksum mismatch in the last group".to_owned()));
                }
                return Err((off as u64, "group checksum mismatch".to_owned()));
            }
            group_end = Some(end);
            framed = true;
            off += HEADER_LEN;
            continue;
        }
        if group_end.is_some_and(|group_end| end > group_end) {
            return Err((
                off as u64,
                "a record crosses the end of its group".to_owned(),
            ));
        }
        if end > buf.len() {
            break Some((off, "incomplete record at end of log".to_owned()));
        }
        let payload = &buf[off + HEADER_LEN..end];
        if !codec::payload_crc_ok(&header, payload) {
            if end == buf.len() {
                break Some((off, "payload checksum mismatch in last record".to_owned()));
            }
            return Err((off as u64, "payload checksum mismatch".to_owned()));
        }
        let record = codec::decode_payload(payload).map_err(|r| (off as u64, r.to_owned()))?;
        if let Some((_, first)) = pending.first()
            && first.stream != record.stream
        {
            return Err((off as u64, "append batch spans two streams".to_owned()));
        }
        pending.push((off, record));
        off = end;
        if header.batch_end() {
            for (at, r) in pending.drain(..) {
                let stream = state
                    .replay(r.stream, stream_hint, r.id, r.position, r.revision)
                    .map_err(|reason| (at as u64, reason))?;
                stream_hint = Some(stream);
                read.streams
                    .push(stream, state.stream_name(stream), r.position);
                let len = (HEADER_LEN + r.payload_len()) as u32;
                read.locs.push(Loc {
                    segment,
                    offset: at as u32,
                    len,
                });
            }
            batch_start = off;
        }
    };
    let torn = match torn {
        Some(t) => Some(t),
        None if !pending.is_empty() => Some((
            batch_start,
            "append batch without its last record at end of log".to_owned(),
        )),
        None => None,
    };
    let torn = torn.map(|(at, reason)| (at as u64, reason));
    // A boundary past a torn tail is not one.
    boundaries.retain(|(_, at)| *at <= batch_start as u64);
    Ok(Scan {
        valid_len: batch_start as u64,
        torn,
        boundaries,
    })
}

// ---------------------------------------------------------------------------------------------
// Writer.

struct Staged {
    stream: StreamId,
    len: u32,
}

struct Writer {
    shared: Arc<Shared>,
    state: WriteState,
    log_dir: PathBuf,
    segment: Arc<File>,
    segment_path: PathBuf,
    segment_index: u32,
    segment_size: u64,
    segment_size_max: u64,
    /// Encoded records of the group being committed.
    buf: Vec<u8>,
    /// One entry per record in `buf`.
    staged: Vec<Staged>,
    /// One entry per request of the group.
    results: Vec<StoreResult<AppendOutcome>>,
    failed: bool,
    fsync_ewma: Duration,
    faults: Option<Arc<dyn StorageFaults>>,
}

fn request_bytes(r: &Request) -> usize {
    r.events
        .iter()
        .map(|e| codec::record_len(r.stream.len(), e.event_type.len(), e.data.len()))
        .sum()
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Request>) {
        let mut group: Vec<Request> = Vec::new();
        let mut previous_group_len = 1;
        while let Ok(first) = rx.recv() {
            let mut bytes = request_bytes(&first);
            group.push(first);
            self.gather(&rx, &mut group, &mut bytes, previous_group_len);
            previous_group_len = group.len();
            if self.failed {
                for r in group.drain(..) {
                    let _ = r.reply.send(Err(StoreError::Closed));
                }
                continue;
            }
            self.commit(&mut group);
        }
    }

    /// Drains queued requests into `group`. While the group is smaller than the previous one
    /// (concurrent appenders that have not re-submitted yet), waits for them a little: at most
    /// half an fdatasync, so waiting never costs more than the sync it saves.
    fn gather(
        &self,
        rx: &mpsc::Receiver<Request>,
        group: &mut Vec<Request>,
        bytes: &mut usize,
        target_len: usize,
    ) {
        let mut deadline = None;
        while group.len() < limits::GROUP_REQUESTS_MAX && *bytes < limits::GROUP_BYTES_MAX {
            let next = match rx.try_recv() {
                Ok(r) => r,
                Err(mpsc::TryRecvError::Disconnected) => return,
                Err(mpsc::TryRecvError::Empty) => {
                    if group.len() >= target_len {
                        return;
                    }
                    let wait_max = (self.fsync_ewma / 2)
                        .min(Duration::from_micros(limits::GROUP_GATHER_WAIT_MAX_US));
                    let deadline = *deadline.get_or_insert_with(|| Instant::now() + wait_max);
                    let left = deadline.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(left) {
                        Ok(r) => r,
                        Err(_) => return,
                    }
                }
            };
            *bytes += request_bytes(&next);
            group.push(next);
        }
    }

    fn commit(&mut self, group: &mut Vec<Request>) {
        self.buf.clear();
        self.staged.clear();
        self.results.clear();
        let first_position = self.state.next_position();
        let recorded_at_ms = crate::now_ms();
        codec::begin_group(&mut self.buf);
        for req in group.iter() {
            let result = match self.state.plan(&req.stream, req.expected, &req.events) {
                Ok(plan) => {
                    for (k, &i) in plan.new.iter().enumerate() {
                        let e = &req.events[i];
                        let len = codec::encode_record(
                            &mut self.buf,
                            &RecordFields {
                                position: plan.outcome.positions[i],
                                revision: plan.outcome.revisions[i],
                                id: e.id,
                                recorded_at_ms,
                                stream: &req.stream,
                                event_type: &e.event_type,
                                data: &e.data,
                                batch_end: k + 1 == plan.new.len(),
                            },
                        );
                        self.staged.push(Staged {
                            stream: plan.stream_id,
                            len: len as u32,
                        });
                    }
                    Ok(plan.outcome)
                }
                Err(e) => Err(e),
            };
            self.results.push(result);
        }
        assert_eq!(
            first_position + self.staged.len() as u64,
            self.state.next_position(),
            "positions are dense"
        );
        if self.staged.is_empty() {
            self.buf.clear();
        } else {
            codec::seal_group(&mut self.buf);
        }
        if !self.buf.is_empty()
            && let Err(e) = self.write_and_sync(first_position)
        {
            self.fail(group, e);
            return;
        }
        let m = &*METRICS;
        if !self.staged.is_empty() {
            m.group_requests.observe(group.len() as f64);
            m.group_events.observe(self.staged.len() as f64);
            m.events_appended_total.inc_by(self.staged.len() as u64);
        }
        for (req, result) in group.drain(..).zip(self.results.drain(..)) {
            if result.is_ok() {
                m.appends_total.inc();
            }
            m.append_seconds
                .observe(req.enqueued.elapsed().as_secs_f64());
            let _ = req.reply.send(result);
        }
    }

    fn write_and_sync(&mut self, first_position: Position) -> StoreResult<()> {
        if self.segment_size > 0
            && self.segment_size + self.buf.len() as u64 > self.segment_size_max
        {
            self.rotate(first_position)?;
        }
        self.write_group()?;
        let started = Instant::now();
        self.before_sync()?;
        self.segment
            .sync_data()
            .map_err(|e| io("fdatasync", &self.segment_path, e))?;
        let took = started.elapsed();
        METRICS.fdatasync_seconds.observe(took.as_secs_f64());
        self.fsync_ewma = (self.fsync_ewma * 7 + took) / 8;
        self.publish(first_position);
        Ok(())
    }

    fn write_group(&self) -> StoreResult<()> {
        let fault = match &self.faults {
            Some(faults) => faults.write(&self.segment_path, self.segment_size, self.buf.len()),
            None => WriteFault::None,
        };
        let (bytes, injected) = match fault {
            WriteFault::None => (&self.buf[..], None),
            WriteFault::Fail => (&self.buf[..0], Some("injected write failure")),
            WriteFault::Torn(n) => (
                &self.buf[..n.min(self.buf.len())],
                Some("injected torn write"),
            ),
        };
        self.segment
            .write_all_at(bytes, self.segment_size)
            .map_err(|e| io("write", &self.segment_path, e))?;
        match injected {
            Some(what) => Err(StoreError::Io(what.into())),
            None => Ok(()),
        }
    }

    fn before_sync(&self) -> StoreResult<()> {
        match self.faults.as_ref().map(|f| f.sync(&self.segment_path)) {
            None | Some(SyncFault::None) => Ok(()),
            Some(SyncFault::Fail) => Err(StoreError::Io("injected fdatasync failure".into())),
            Some(SyncFault::Slow(took)) => {
                std::thread::sleep(took);
                Ok(())
            }
        }
    }

    fn rotate(&mut self, first_position: Position) -> StoreResult<()> {
        let path = self.log_dir.join(segment_name(first_position));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io("create", &path, e))?;
        sync_dir(&self.log_dir)?;
        let file = Arc::new(file);
        let mut read = self.shared.read.write();
        read.segments.push(Segment {
            file: Arc::clone(&file),
            path: Arc::from(path.display().to_string()),
        });
        self.segment_index =
            u32::try_from(read.segments.len() - 1).expect("fewer than 2^32 segments");
        drop(read);
        self.segment = file;
        self.segment_size = 0;
        tracing::debug!(file = %path.display(), "started a new log segment");
        self.segment_path = path;
        Ok(())
    }

    /// Makes the durable group visible to reads and subscriptions.
    fn publish(&mut self, first_position: Position) {
        let mut offset = self.segment_size + codec::GROUP_FRAME_LEN as u64;
        let end = first_position + self.staged.len() as u64;
        let mut read = self.shared.read.write();
        assert_eq!(
            read.locs.len() as u64,
            first_position,
            "publication is dense"
        );
        read.locs.reserve(self.staged.len());
        for (k, s) in self.staged.iter().enumerate() {
            let position = first_position + k as u64;
            read.streams
                .push(s.stream, self.state.stream_name(s.stream), position);
            read.locs.push(Loc {
                segment: self.segment_index,
                offset: offset as u32,
                len: s.len,
            });
            offset += u64::from(s.len);
        }
        drop(read);
        assert!(offset <= u64::from(u32::MAX), "record offsets fit in u32");
        assert_eq!(offset, self.segment_size + self.buf.len() as u64);
        self.segment_size = offset;
        self.shared.next_position.store(end, Ordering::Release);
        self.shared.head.send_modify(|h| h.next_position = end);
    }

    /// A failed write or fdatasync leaves the durable state unknown: answer the group with the
    /// error and refuse every later append.
    fn fail(&mut self, group: &mut Vec<Request>, error: StoreError) {
        tracing::error!(%error, "event log write failed; the store refuses further appends");
        self.failed = true;
        self.shared.failed.store(true, Ordering::Release);
        for req in group.drain(..) {
            let _ = req.reply.send(Err(error.clone()));
        }
        self.results.clear();
    }
}

// ---------------------------------------------------------------------------------------------
// Reads.

/// Records contiguous in one segment file, with consecutive positions.
struct Run {
    segment: u32,
    offset: u64,
    len: usize,
    first_position: Position,
    count: usize,
}

fn push_run(runs: &mut Vec<Run>, loc: Loc, position: Position) {
    if let Some(run) = runs.last_mut()
        && run.segment == loc.segment
        && run.first_position + run.count as u64 == position
        && run.offset + run.len as u64 == u64::from(loc.offset)
        && run.len + loc.len as usize <= limits::READ_RUN_BYTES_MAX
    {
        run.len += loc.len as usize;
        run.count += 1;
        return;
    }
    runs.push(Run {
        segment: loc.segment,
        offset: u64::from(loc.offset),
        len: loc.len as usize,
        first_position: position,
        count: 1,
    });
}

impl Shared {
    fn read_all(&self, from: Position, max: usize) -> StoreResult<Vec<RecordedEvent>> {
        let (runs, files) = {
            let read = self.read.read();
            let len = read.locs.len() as u64;
            let end = from.saturating_add(max as u64).min(len);
            let mut runs = Vec::new();
            for position in from.min(end)..end {
                push_run(&mut runs, read.locs[position as usize], position);
            }
            let files = segment_files(&read, &runs);
            (runs, files)
        };
        read_runs(&runs, &files, None)
    }

    fn read_stream(
        &self,
        stream: &str,
        from: Revision,
        max: usize,
    ) -> StoreResult<Vec<RecordedEvent>> {
        let (name, runs, files) = {
            let read = self.read.read();
            let Some((name, positions)) = read.streams.positions(stream, from, max) else {
                return Ok(Vec::new());
            };
            let mut runs = Vec::new();
            for &position in positions {
                push_run(&mut runs, read.locs[position as usize], position);
            }
            let files = segment_files(&read, &runs);
            (Arc::clone(name), runs, files)
        };
        let events = read_runs(&runs, &files, Some(&name))?;
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.revision, from + i as u64, "stream reads are dense");
        }
        Ok(events)
    }
}

/// File handles of the segments `runs` touch (index-aligned with `runs`), taken under the lock
/// so the I/O happens without it.
fn segment_files(read: &ReadSide, runs: &[Run]) -> Vec<(Arc<File>, Arc<str>)> {
    runs.iter()
        .map(|r| {
            let s = &read.segments[r.segment as usize];
            (Arc::clone(&s.file), Arc::clone(&s.path))
        })
        .collect()
}

fn read_runs(
    runs: &[Run],
    files: &[(Arc<File>, Arc<str>)],
    stream: Option<&Arc<str>>,
) -> StoreResult<Vec<RecordedEvent>> {
    let mut events = Vec::with_capacity(runs.iter().map(|r| r.count).sum());
    let mut buf = Vec::new();
    for (run, (file, path)) in runs.iter().zip(files) {
        buf.resize(run.len, 0);
        file.read_exact_at(&mut buf, run.offset).map_err(|e| {
            let what = if e.kind() == ErrorKind::UnexpectedEof {
                "short read of"
            } else {
                "read"
            };
            StoreError::Io(format!("{what} {path}: {e}"))
        })?;
        let mut off = 0;
        for i in 0..run.count {
            let corrupt = |reason: &str| StoreError::Corrupt {
                file: path.to_string(),
                offset: run.offset + off as u64,
                reason: reason.to_owned(),
            };
            let header = codec::decode_header(&buf[off..]).map_err(corrupt)?;
            let end = off + HEADER_LEN + header.payload_len;
            if end > buf.len() {
                return Err(corrupt("record longer than its index entry"));
            }
            let payload = &buf[off + HEADER_LEN..end];
            if !codec::payload_crc_ok(&header, payload) {
                return Err(corrupt("payload checksum mismatch"));
            }
            let record = codec::decode_payload(payload).map_err(corrupt)?;
            assert_eq!(
                record.position,
                run.first_position + i as u64,
                "index points at its record"
            );
            events.push(record.to_event(stream).map_err(corrupt)?);
            off = end;
        }
        assert_eq!(off, buf.len(), "a run ends at a record boundary");
    }
    Ok(events)
}

impl EventStore for FileStore {
    fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> BoxFuture<'static, StoreResult<AppendOutcome>> {
        if let Err(e) = check_append(stream, &events) {
            return futures::future::ready(Err(e)).boxed();
        }
        if self.shared.failed.load(Ordering::Acquire) {
            return futures::future::ready(Err(StoreError::Closed)).boxed();
        }
        let (reply, answer) = oneshot::channel();
        let request = Request {
            stream: stream.to_owned(),
            expected,
            events,
            reply,
            enqueued: Instant::now(),
        };
        let sent = match &*self.sender.read() {
            Some(sender) => sender.send(request).is_ok(),
            None => false,
        };
        if !sent {
            return futures::future::ready(Err(StoreError::Closed)).boxed();
        }
        async move { answer.await.unwrap_or(Err(StoreError::Closed)) }.boxed()
    }

    fn read_stream(
        &self,
        stream: &str,
        from: Revision,
        max: usize,
    ) -> BoxFuture<'static, StoreResult<Vec<RecordedEvent>>> {
        let shared = Arc::clone(&self.shared);
        let stream = stream.to_owned();
        async move { shared.read_stream(&stream, from, max) }.boxed()
    }

    fn read_all(
        &self,
        from: Position,
        max: usize,
    ) -> BoxFuture<'static, StoreResult<Vec<RecordedEvent>>> {
        let shared = Arc::clone(&self.shared);
        async move { shared.read_all(from, max) }.boxed()
    }

    fn subscribe_all(&self, from: Position) -> BoxStream<'static, StoreResult<RecordedEvent>> {
        let shared = Arc::clone(&self.shared);
        let read_all = move |from, max| futures::future::ready(shared.read_all(from, max)).boxed();
        subscribe(from, self.shared.head.subscribe(), Box::new(read_all))
    }

    fn next_position(&self) -> Position {
        self.shared.next_position.load(Ordering::Acquire)
    }

    fn stream_revision(&self, stream: &str) -> Option<Revision> {
        self.shared.read.read().streams.last_revision(stream)
    }

    fn save_snapshot(&self, key: &str, snapshot: Snapshot) -> BoxFuture<'static, StoreResult<()>> {
        let shared = Arc::clone(&self.shared);
        let key = key.to_owned();
        async move { snapshot::save(&shared.snapshots_dir, &key, &snapshot) }.boxed()
    }

    fn load_snapshot(&self, key: &str) -> BoxFuture<'static, StoreResult<Option<Snapshot>>> {
        let shared = Arc::clone(&self.shared);
        let key = key.to_owned();
        async move { snapshot::load(&shared.snapshots_dir, &key) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: u128) -> NewEvent {
        NewEvent {
            id: crate::EventId(id),
            event_type: "T".into(),
            data: vec![1, 2, 3],
        }
    }

    /// Fails the second fdatasync.
    struct SecondSyncFails(AtomicU64);

    impl StorageFaults for SecondSyncFails {
        fn write(&self, _: &Path, _: u64, _: usize) -> WriteFault {
            WriteFault::None
        }
        fn sync(&self, _: &Path) -> SyncFault {
            match self.0.fetch_add(1, Ordering::AcqRel) {
                1 => SyncFault::Fail,
                _ => SyncFault::None,
            }
        }
    }

    #[tokio::test]
    async fn failed_fdatasync_is_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let options = FileStoreOptions {
            faults: Some(Arc::new(SecondSyncFails(AtomicU64::new(0)))),
            ..FileStoreOptions::default()
        };
        let store = FileStore::open_with(dir.path(), options).unwrap();
        store
            .append("s", ExpectedRevision::Any, vec![ev(0)])
            .await
            .unwrap();
        let err = store
            .append("s", ExpectedRevision::Any, vec![ev(1)])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Io(_)), "{err:?}");
        // Never pretend later writes are durable.
        let later = store.append("s", ExpectedRevision::Any, vec![ev(2)]).await;
        assert_eq!(later, Err(StoreError::Closed));
        // The unsynced group was never published.
        assert_eq!(store.next_position(), 1);
        assert_eq!(store.read_all(0, 10).await.unwrap().len(), 1);
        assert_eq!(store.stream_revision("s"), Some(0));
        drop(store);
        // The write reached the file (not acknowledged, but there): a retry is idempotent.
        let store = FileStore::open(dir.path()).unwrap();
        let again = store
            .append("s", ExpectedRevision::Exact(0), vec![ev(1)])
            .await
            .unwrap();
        assert_eq!(again.positions, [1]);
        assert!(store.next_position() == 2);
    }

    #[tokio::test]
    async fn a_log_written_before_group_frames_opens_and_grows_framed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("log")).unwrap();
        let mut legacy = Vec::new();
        for position in 0..3u64 {
            let data = [position as u8];
            codec::encode_record(
                &mut legacy,
                &RecordFields {
                    position,
                    revision: position,
                    id: crate::EventId(u128::from(position)),
                    recorded_at_ms: 0,
                    stream: "s",
                    event_type: "T",
                    data: &data,
                    batch_end: position != 1,
                },
            );
        }
        std::fs::write(dir.path().join("log").join(segment_name(0)), &legacy).unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        assert_eq!(store.read_all(0, 10).await.unwrap().len(), 3);
        store
            .append("s", ExpectedRevision::Exact(2), vec![ev(3)])
            .await
            .unwrap();
        drop(store);
        let store = FileStore::open(dir.path()).unwrap();
        let all = store.read_all(0, 10).await.unwrap();
        let ids: Vec<u128> = all.iter().map(|e| e.id.0).collect();
        assert_eq!(ids, [0, 1, 2, 3], "the old records, then a framed group");
    }

    #[test]
    fn options_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let bad = FileStoreOptions {
            segment_size_max: 0,
            ..FileStoreOptions::default()
        };
        assert!(matches!(
            FileStore::open_with(dir.path(), bad).err(),
            Some(StoreError::Invalid(_))
        ));
    }
}
