//! Backend-independent bookkeeping: input limits, the write-side state that decides appends
//! (expected revision, idempotency), and the read-side stream index. Both backends use these,
//! so they decide every append identically.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Arc;

use crate::{
    AppendOutcome, EventId, ExpectedRevision, NewEvent, Position, Revision, StoreError,
    StoreResult, limits,
};

/// Checks an append's input against [`limits`]; everything here is independent of log state.
pub(crate) fn check_append(stream: &str, events: &[NewEvent]) -> StoreResult<()> {
    if events.is_empty() {
        return Err(StoreError::Invalid("empty batch".into()));
    }
    if events.len() > limits::APPEND_EVENTS_MAX {
        return Err(StoreError::Invalid(format!(
            "{} events in one append, at most {}",
            events.len(),
            limits::APPEND_EVENTS_MAX
        )));
    }
    if stream.is_empty() {
        return Err(StoreError::Invalid("empty stream name".into()));
    }
    if stream.len() > limits::STREAM_NAME_LEN_MAX {
        return Err(StoreError::Invalid(format!(
            "stream name of {} bytes, at most {}",
            stream.len(),
            limits::STREAM_NAME_LEN_MAX
        )));
    }
    let mut bytes_total = 0usize;
    for e in events {
        if e.event_type.len() > limits::EVENT_TYPE_LEN_MAX {
            return Err(StoreError::Invalid(format!(
                "event type of {} bytes, at most {}",
                e.event_type.len(),
                limits::EVENT_TYPE_LEN_MAX
            )));
        }
        if e.data.len() > limits::EVENT_DATA_LEN_MAX {
            return Err(StoreError::Invalid(format!(
                "event data of {} bytes, at most {}",
                e.data.len(),
                limits::EVENT_DATA_LEN_MAX
            )));
        }
        bytes_total += e.data.len() + e.event_type.len();
    }
    if bytes_total > limits::APPEND_BYTES_MAX {
        return Err(StoreError::Invalid(format!(
            "{bytes_total} payload bytes in one append, at most {}",
            limits::APPEND_BYTES_MAX
        )));
    }
    if let Some(id) = duplicate_id(events) {
        return Err(StoreError::Invalid(format!(
            "event id {id:?} appears twice in the batch"
        )));
    }
    Ok(())
}

fn duplicate_id(events: &[NewEvent]) -> Option<EventId> {
    const QUADRATIC_MAX: usize = 16;
    if events.len() <= QUADRATIC_MAX {
        for (i, a) in events.iter().enumerate() {
            if events[i + 1..].iter().any(|b| b.id == a.id) {
                return Some(a.id);
            }
        }
        return None;
    }
    let mut seen = HashSet::with_capacity(events.len());
    events.iter().find(|e| !seen.insert(e.id)).map(|e| e.id)
}

/// Hasher of [`EventId`] keys: two multiply-folds with per-process random keys. Several times
/// cheaper than SipHash on the replay and append paths, and still keyed, so ids chosen by a
/// client cannot be aimed at one bucket without knowing the keys.
#[derive(Clone)]
pub(crate) struct IdHashBuilder {
    k0: u64,
    k1: u64,
}

impl Default for IdHashBuilder {
    fn default() -> Self {
        let random = RandomState::new();
        Self {
            k0: random.hash_one(0x243f_6a88_85a3_08d3u64),
            k1: random.hash_one(0x1319_8a2e_0370_7344u64),
        }
    }
}

impl BuildHasher for IdHashBuilder {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher {
            k0: self.k0,
            k1: self.k1,
            h: 0,
        }
    }
}

/// See [`IdHashBuilder`].
pub(crate) struct IdHasher {
    k0: u64,
    k1: u64,
    h: u64,
}

fn folded_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(16) {
            let mut b = [0u8; 16];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u128(u128::from_le_bytes(b));
        }
    }

    fn write_u128(&mut self, v: u128) {
        let folded = folded_mul(v as u64 ^ self.k0, (v >> 64) as u64 ^ self.k1);
        self.h = folded_mul(folded ^ self.h, 0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.h
    }
}

/// Dense index of a stream, shared by the write and read sides.
pub(crate) type StreamId = u32;

/// An [`EventId`] stored as two `u64`s: 8-byte alignment keeps a map bucket at 40 bytes
/// instead of 48 (a `u128` key aligns the bucket to 16).
#[derive(Clone, Copy, PartialEq, Eq)]
struct IdKey([u64; 2]);

impl From<EventId> for IdKey {
    fn from(id: EventId) -> Self {
        Self([id.0 as u64, (id.0 >> 64) as u64])
    }
}

impl std::hash::Hash for IdKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from(self.0[0]) | u128::from(self.0[1]) << 64);
    }
}

#[derive(Clone, Copy, Debug)]
struct IdEntry {
    stream: StreamId,
    position: Position,
    revision: Revision,
}

struct WriteStream {
    name: Arc<str>,
    last_revision: Revision,
}

/// A decided append: its outcome and which input events it writes.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) outcome: AppendOutcome,
    /// The stream's id (only meaningful when `new` is non-empty).
    pub(crate) stream_id: StreamId,
    /// Indexes (into the input events) of the events to write, in order. Their positions and
    /// revisions are in `outcome` and are consecutive.
    pub(crate) new: Vec<usize>,
}

impl Plan {
    /// The events this plan writes, as recorded (each pushed onto `streams` under `name`, the
    /// stream's interned name), taken out of the append's `events`. (The file store writes
    /// its own records; the stores that keep events in memory use this.)
    #[cfg(any(test, feature = "test-utils", feature = "nats"))]
    pub(crate) fn record(
        &self,
        events: Vec<NewEvent>,
        name: &Arc<str>,
        recorded_at_ms: u64,
        streams: &mut StreamIndex,
    ) -> Vec<crate::RecordedEvent> {
        let mut events: Vec<Option<NewEvent>> = events.into_iter().map(Some).collect();
        self.new
            .iter()
            .map(|&i| {
                let e = events[i].take().expect("each event written once");
                let position = self.outcome.positions[i];
                streams.push(self.stream_id, name, position);
                crate::RecordedEvent {
                    position,
                    stream: Arc::clone(name),
                    revision: self.outcome.revisions[i],
                    id: e.id,
                    event_type: e.event_type,
                    data: e.data,
                    recorded_at_ms,
                }
            })
            .collect()
    }
}

/// An append checked against the state: the outcome with the places of events already in the
/// stream (new ones' left at 0), the stream's id and last revision if it exists, and which
/// input events are new.
struct Decided {
    outcome: AppendOutcome,
    stream_id: Option<StreamId>,
    new: Vec<usize>,
    actual: Option<Revision>,
}

/// What the writer knows to decide appends: every stream's last revision and every event id.
/// Updated as soon as an append is decided (ahead of durability); a failed write stops the
/// writer for good, so it never decides on state that did not become durable.
#[derive(Default)]
pub(crate) struct WriteState {
    stream_ids: HashMap<Arc<str>, StreamId>,
    streams: Vec<WriteStream>,
    ids: HashMap<IdKey, IdEntry, IdHashBuilder>,
    next_position: Position,
}

impl WriteState {
    pub(crate) fn next_position(&self) -> Position {
        self.next_position
    }

    /// Makes room for `additional` more events (recovery, to avoid rehashing a large map).
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.ids.reserve(additional);
    }

    pub(crate) fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Decides an append whose input already passed [`check_append`], and records the events
    /// it writes.
    pub(crate) fn plan(
        &mut self,
        stream: &str,
        expected: ExpectedRevision,
        events: &[NewEvent],
    ) -> StoreResult<Plan> {
        let Decided {
            mut outcome,
            stream_id,
            new,
            actual,
        } = self.decide(stream, expected, events)?;
        if new.is_empty() {
            return Ok(Plan {
                outcome,
                stream_id: stream_id.unwrap_or(0),
                new,
            });
        }
        let stream_id = match stream_id {
            Some(s) => s,
            None => self.intern(stream),
        };
        let mut revision = actual.map_or(0, |r| r + 1);
        for &i in &new {
            let position = self.next_position;
            self.next_position += 1;
            let old = self.ids.insert(
                IdKey::from(events[i].id),
                IdEntry {
                    stream: stream_id,
                    position,
                    revision,
                },
            );
            assert!(old.is_none(), "event id decided twice");
            outcome.positions[i] = position;
            outcome.revisions[i] = revision;
            revision += 1;
        }
        self.streams[stream_id as usize].last_revision = revision - 1;
        Ok(Plan {
            outcome,
            stream_id,
            new,
        })
    }

    /// What [`WriteState::plan`] would decide, without recording anything: `Ok(Some(outcome))`
    /// when every event is already in the stream (nothing to write), `Ok(None)` when the
    /// append would write.
    #[cfg(feature = "nats")]
    pub(crate) fn preview(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: &[NewEvent],
    ) -> StoreResult<Option<AppendOutcome>> {
        let decided = self.decide(stream, expected, events)?;
        Ok(decided.new.is_empty().then_some(decided.outcome))
    }

    /// The checks of an append against the current state: ids already in the stream (their
    /// places) or in another (a conflict), then the expected revision if anything is new.
    fn decide(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: &[NewEvent],
    ) -> StoreResult<Decided> {
        let stream_id = self.stream_ids.get(stream).copied();
        let n = events.len();
        let mut outcome = AppendOutcome {
            positions: Vec::with_capacity(n),
            revisions: Vec::with_capacity(n),
            written: Vec::with_capacity(n),
        };
        let mut new = Vec::new();
        for (i, e) in events.iter().enumerate() {
            match self.ids.get(&IdKey::from(e.id)) {
                Some(entry) if Some(entry.stream) == stream_id => {
                    outcome.positions.push(entry.position);
                    outcome.revisions.push(entry.revision);
                    outcome.written.push(false);
                }
                Some(entry) => {
                    return Err(StoreError::EventIdConflict {
                        id: e.id,
                        existing_stream: self.streams[entry.stream as usize].name.to_string(),
                    });
                }
                None => {
                    new.push(i);
                    outcome.positions.push(0);
                    outcome.revisions.push(0);
                    outcome.written.push(true);
                }
            }
        }
        let actual = stream_id.map(|s| self.streams[s as usize].last_revision);
        if new.is_empty() {
            return Ok(Decided {
                outcome,
                stream_id,
                new,
                actual,
            });
        }
        let ok = match expected {
            ExpectedRevision::Any => true,
            ExpectedRevision::NoStream => actual.is_none(),
            ExpectedRevision::Exact(r) => actual == Some(r),
        };
        if !ok {
            return Err(StoreError::WrongExpectedRevision {
                stream: stream.to_owned(),
                expected,
                actual,
            });
        }
        Ok(Decided {
            outcome,
            stream_id,
            new,
            actual,
        })
    }

    fn intern(&mut self, stream: &str) -> StreamId {
        let id = StreamId::try_from(self.streams.len()).expect("fewer than 2^32 streams");
        let name: Arc<str> = Arc::from(stream);
        self.streams.push(WriteStream {
            name: Arc::clone(&name),
            last_revision: 0,
        });
        let old = self.stream_ids.insert(name, id);
        assert!(old.is_none());
        id
    }

    /// Replays one recorded event (recovery). Checks that positions and revisions are dense
    /// and ids unique; `Err` says which invariant the log breaks.
    /// `hint` is a stream id that probably names `stream` (the previous record's), to skip a
    /// lookup.
    pub(crate) fn replay(
        &mut self,
        stream: &str,
        hint: Option<StreamId>,
        id: EventId,
        position: Position,
        revision: Revision,
    ) -> Result<StreamId, String> {
        if position != self.next_position {
            return Err(format!(
                "position {position}, expected {}",
                self.next_position
            ));
        }
        let known = match hint {
            Some(h) if *self.streams[h as usize].name == *stream => Some(h),
            _ => self.stream_ids.get(stream).copied(),
        };
        let stream_id = match known {
            Some(s) => {
                let expected = self.streams[s as usize].last_revision + 1;
                if revision != expected {
                    return Err(format!(
                        "revision {revision} of stream {stream}, expected {expected}"
                    ));
                }
                s
            }
            None => {
                if revision != 0 {
                    return Err(format!("stream {stream} starts at revision {revision}"));
                }
                self.intern(stream)
            }
        };
        if let Some(other) = self.ids.insert(
            IdKey::from(id),
            IdEntry {
                stream: stream_id,
                position,
                revision,
            },
        ) {
            return Err(format!(
                "event id {id:?} already at position {}",
                other.position
            ));
        }
        self.streams[stream_id as usize].last_revision = revision;
        self.next_position += 1;
        Ok(stream_id)
    }

    /// Interned name of a stream.
    pub(crate) fn stream_name(&self, id: StreamId) -> &Arc<str> {
        &self.streams[id as usize].name
    }
}

/// Read side: stream name → positions of its events (index = revision).
#[derive(Default)]
pub(crate) struct StreamIndex {
    ids: HashMap<Arc<str>, StreamId>,
    positions: Vec<Vec<Position>>,
    names: Vec<Arc<str>>,
}

impl StreamIndex {
    /// Records that `position` is the next revision of stream `id` (named `name`), creating
    /// the stream when `id` is new. Stream ids are assigned densely by [`WriteState`].
    pub(crate) fn push(&mut self, id: StreamId, name: &Arc<str>, position: Position) {
        let i = id as usize;
        if i == self.positions.len() {
            self.positions.push(Vec::new());
            self.names.push(Arc::clone(name));
            let old = self.ids.insert(Arc::clone(name), id);
            assert!(old.is_none(), "stream {name} created twice");
        }
        assert!(i < self.positions.len(), "stream ids are dense");
        let positions = &mut self.positions[i];
        assert!(
            positions.last().is_none_or(|&p| p < position),
            "positions increase in a stream"
        );
        positions.push(position);
    }

    /// Positions of `stream` from revision `from`, at most `max`, and the interned name.
    pub(crate) fn positions(
        &self,
        stream: &str,
        from: Revision,
        max: usize,
    ) -> Option<(&Arc<str>, &[Position])> {
        let &id = self.ids.get(stream)?;
        let all = &self.positions[id as usize];
        let from = usize::try_from(from).unwrap_or(usize::MAX).min(all.len());
        let to = from.saturating_add(max).min(all.len());
        Some((&self.names[id as usize], &all[from..to]))
    }

    /// Last revision of `stream`.
    pub(crate) fn last_revision(&self, stream: &str) -> Option<Revision> {
        let &id = self.ids.get(stream)?;
        let n = self.positions[id as usize].len();
        assert!(n > 0, "a stream exists only with events");
        Some(n as Revision - 1)
    }
}
