//! [`JetStreamStore`]: the event log on a NATS JetStream cluster, for nodes that share one log.
//!
//! One JetStream stream holds the whole log (`$all`): each message is one append request
//! ([`message`]), on a subject per event stream (`<prefix>.s.wallet.<chain>.<address>`). Every
//! node follows the JetStream stream from its first message and applies each request with the
//! same rules as the embedded log ([`WriteState::plan`]), so every node assigns the same
//! positions and revisions and takes the same decisions, and a request that fails (an event id
//! in another stream) changes nothing anywhere. The server guards each event stream's single
//! writer: a request carries the sequence of the last message on its subject that its node had
//! applied (`Nats-Expected-Last-Subject-Sequence`), so a node that had not seen another node's
//! append is refused, catches up and decides again. `Nats-Msg-Id` lets an append whose
//! acknowledgement was lost be sent again without being stored twice.
//!
//! An append is acknowledged once JetStream has stored its message on a quorum of replicas
//! (with `sync_interval: always`, flushed to disk on each) **and** this node has applied it, so
//! the answer carries the outcome and every read on this node sees it. Reads come from the
//! events this node applied recently, else from the cluster (one request per message).
//! `next_position` and `stream_revision` answer what this node has applied. Snapshots live in
//! the object store bucket `<prefix>-snapshots`.

#[cfg(feature = "test-utils")]
mod cluster;
mod lease;
mod message;

pub use lease::{LEASE_TTL, Lease};

#[cfg(feature = "test-utils")]
pub use cluster::{NatsCluster, nats_server_binary};

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, context, object_store, stream};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use parking_lot::Mutex;
use tokio::io::AsyncReadExt;
use tokio::sync::{oneshot, watch};

use crate::state::{StreamId, StreamIndex, WriteState, check_append};
use crate::subscription::{Head, subscribe};
use crate::{
    AppendOutcome, EventStore, ExpectedRevision, NewEvent, Position, RecordedEvent, Revision,
    Snapshot, StoreError, StoreResult, snapshot,
};

/// How many times an append is decided again after the server refused it because another node
/// had appended to its stream meanwhile, or its acknowledgement did not come.
const APPEND_ATTEMPTS: usize = 16;
/// Longest an append tries before it answers that the cluster did not take it (a minority of
/// servers cannot store anything; a leader election takes a few seconds).
const APPEND_DEADLINE: Duration = Duration::from_secs(15);
/// Longest one request to the cluster waits for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest an append waits for this node to apply its own message.
const APPLY_WAIT: Duration = Duration::from_secs(30);
/// Longest a node waits at start for its cluster to be ready.
const CONNECT_WAIT: Duration = Duration::from_secs(60);
/// How long the follower's pull requests last; the server's heartbeat comes at half of it.
const FOLLOW_PULL_EXPIRY: Duration = Duration::from_secs(2);
/// Bytes of recently applied events kept in memory for reads and subscriptions.
const RECENT_BYTES_MAX: usize = 64 << 20;
/// Header naming the node and the append a message comes from (also its `Nats-Msg-Id`).
const ORIGIN_HEADER: &str = "Nats-Msg-Id";

/// Where the log lives and how it is replicated.
#[derive(Clone, Debug)]
pub struct JetStreamOptions {
    /// Server URLs (`nats://host:port`); several for a cluster, tried in turn.
    pub urls: Vec<String>,
    /// Names the JetStream objects: the stream `<PREFIX>_LOG`, its subjects `<prefix>.s.>` and
    /// the snapshot bucket `<prefix>-snapshots`. Letters, digits, `-` and `_`.
    pub prefix: String,
    /// Replicas of the stream and of the snapshot bucket when this node creates them (3 on a
    /// cluster; an existing stream keeps its own).
    pub replicas: usize,
}

/// The event log on a NATS JetStream cluster. See the module documentation.
pub struct JetStreamStore {
    shared: Arc<Shared>,
    /// Dropping it stops the store's runtime (the follower and the connection).
    _stop: oneshot::Sender<()>,
}

struct Shared {
    prefix: String,
    js: jetstream::Context,
    log: stream::Stream,
    snapshots: object_store::ObjectStore,
    leases: async_nats::jetstream::kv::Store,
    runtime: tokio::runtime::Handle,
    index: Mutex<Index>,
    head: watch::Sender<Head>,
    /// JetStream sequence of the last message this node applied.
    applied: watch::Sender<u64>,
    /// This process's appends are `<origin>-<n>`: how the follower finds their outcomes.
    origin: String,
    next_append: AtomicU64,
}

/// What this node has applied.
#[derive(Default)]
struct Index {
    write: WriteState,
    streams: StreamIndex,
    /// Per event stream, the JetStream sequence of its last message (applied or refused).
    last_sequence: HashMap<Arc<str>, u64>,
    /// The messages that wrote events, in order.
    written: Vec<Written>,
    /// The events of the last messages applied, newest last, at most `RECENT_BYTES_MAX`.
    recent: VecDeque<(u64, Arc<[RecordedEvent]>)>,
    recent_bytes: usize,
    /// Outcomes of this process's appends, by their number, once applied.
    outcomes: HashMap<u64, Option<StoreResult<AppendOutcome>>>,
    /// Why the follower stopped for good.
    failed: Option<String>,
}

/// A message that wrote events: where its events went.
struct Written {
    sequence: u64,
    stream: StreamId,
    first_position: Position,
    first_revision: Revision,
    /// The indexes of the written events in the request when some were already there.
    subset: Option<Box<[u32]>>,
    recorded_at_ms: u64,
}

impl JetStreamStore {
    /// Connects, creates the stream and the snapshot bucket if they do not exist, and applies
    /// the whole log before returning (a node starts with everything the cluster holds).
    pub async fn connect(options: JetStreamOptions) -> StoreResult<JetStreamStore> {
        JetStreamOptions::check_prefix(&options.prefix)
            .map_err(|why| StoreError::Invalid(format!("JetStream {why}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Io(format!("store runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("aitbc-jetstream".into())
            .spawn(move || {
                // The runtime is dropped on its own thread once the store is dropped.
                let _ = runtime.block_on(stopped);
            })
            .map_err(|e| StoreError::Io(format!("store thread: {e}")))?;
        let runtime_handle = handle.clone();
        let opened = handle.spawn(async move {
            let (shared, last) = open_when_ready(options, runtime_handle).await?;
            let shared = Arc::new(shared);
            tokio::spawn(follow(Arc::clone(&shared)));
            shared.wait_applied(last).await?;
            Ok::<_, StoreError>(shared)
        });
        let shared = opened
            .await
            .map_err(|e| StoreError::Io(format!("connect: {e}")))??;
        Ok(JetStreamStore {
            shared,
            _stop: stop,
        })
    }
}

impl JetStreamOptions {
    /// Whether `prefix` may name a network's JetStream objects; `Err` says what it must be.
    pub fn check_prefix(prefix: &str) -> Result<(), String> {
        let ok = !prefix.is_empty()
            && prefix.len() <= 64
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        match ok {
            true => Ok(()),
            false => Err(format!(
                "prefix {prefix:?}: 1-64 letters, digits, '-' or '_'"
            )),
        }
    }
}

fn nats_error(what: &str) -> impl FnOnce(&dyn std::fmt::Display) -> StoreError + '_ {
    move |e| StoreError::Io(format!("{what}: {e}"))
}

/// [`open`], again while the cluster is not ready (servers still starting, no JetStream leader
/// elected yet: a node started with its cluster waits for it), for `CONNECT_WAIT` at most.
async fn open_when_ready(
    options: JetStreamOptions,
    runtime: tokio::runtime::Handle,
) -> StoreResult<(Shared, u64)> {
    let started = tokio::time::Instant::now();
    let mut told = started;
    loop {
        match open(options.clone(), runtime.clone()).await {
            Ok(opened) => return Ok(opened),
            Err(e) if started.elapsed() < CONNECT_WAIT => {
                if told.elapsed() >= Duration::from_secs(5) {
                    tracing::warn!(error = %e, "waiting for the NATS cluster");
                    told = tokio::time::Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Connects and makes sure the stream and the bucket exist; returns the stream's last sequence.
async fn open(
    options: JetStreamOptions,
    runtime: tokio::runtime::Handle,
) -> StoreResult<(Shared, u64)> {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(options.urls.as_slice())
        .await
        .map_err(|e| nats_error("connect")(&e))?;
    let mut js = jetstream::new(client);
    js.set_timeout(REQUEST_TIMEOUT);
    let mut log = js
        .get_or_create_stream(stream::Config {
            name: format!("{}_LOG", options.prefix.to_uppercase()),
            subjects: vec![format!("{}.s.>", options.prefix)],
            num_replicas: options.replicas,
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| nats_error("the log's stream")(&e))?;
    let bucket = format!("{}-snapshots", options.prefix);
    let snapshots = match js.get_object_store(&bucket).await {
        Ok(store) => store,
        Err(_) => js
            .create_object_store(object_store::Config {
                bucket: bucket.clone(),
                num_replicas: options.replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| nats_error("the snapshot bucket")(&e))?,
    };
    let leases = lease::bucket(&js, &options.prefix, options.replicas).await?;
    let origin = format!("{:016x}", {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| nats_error("randomness")(&e))?;
        u64::from_le_bytes(bytes)
    });
    let last = log
        .info()
        .await
        .map_err(|e| nats_error("the log's stream")(&e))?
        .state
        .last_sequence;
    let shared = Shared {
        prefix: options.prefix,
        js,
        log,
        snapshots,
        leases,
        runtime,
        index: Mutex::default(),
        head: watch::Sender::new(Head::default()),
        applied: watch::Sender::new(0),
        origin,
        next_append: AtomicU64::new(0),
    };
    Ok((shared, last))
}

/// Applies every message of the log in order, from the first, for the life of the store. An
/// ordered consumer re-creates itself after a gap or a lost connection; a failed consumer is
/// re-created from the last applied message.
async fn follow(shared: Arc<Shared>) {
    loop {
        let start = *shared.applied.borrow() + 1;
        let consumer = shared
            .log
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                },
                // Pulls that expire after 2 s, with a heartbeat each second: a consumer lost
                // with its server is re-created within seconds (the default waits 30 s).
                max_expires: FOLLOW_PULL_EXPIRY,
                ..Default::default()
            })
            .await;
        let messages = match consumer {
            Ok(consumer) => consumer.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, "JetStream log: cannot follow; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(message) => message,
                Err(e) => {
                    tracing::warn!(error = %e, "JetStream log: follower interrupted");
                    break;
                }
            };
            let Ok(info) = message.info() else {
                tracing::warn!("JetStream log: a message without its metadata");
                break;
            };
            let (sequence, published) = (info.stream_sequence, info.published);
            let recorded_at_ms = (published.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
            let origin = message
                .headers
                .as_ref()
                .and_then(|h| h.get(ORIGIN_HEADER))
                .map(|v| v.as_str().to_owned());
            if let Err(why) = shared.apply(
                sequence,
                message.subject.as_str(),
                &message.payload,
                origin.as_deref(),
                recorded_at_ms,
            ) {
                tracing::error!(sequence, %why, "JetStream log: cannot continue");
                shared.index.lock().failed = Some(why);
                shared.head.send_modify(|h| h.closed = true);
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Shared {
    /// Applies message `sequence`. `Err` only when the log cannot be followed any more (a
    /// message is missing).
    fn apply(
        &self,
        sequence: u64,
        subject: &str,
        payload: &[u8],
        origin: Option<&str>,
        recorded_at_ms: u64,
    ) -> Result<(), String> {
        let applied = *self.applied.borrow();
        if sequence <= applied {
            return Ok(());
        }
        if sequence != applied + 1 {
            return Err(format!(
                "message {sequence} follows {applied}: messages were removed from the stream"
            ));
        }
        let mut guard = self.index.lock();
        let index = &mut *guard;
        let outcome = self.decide(index, sequence, subject, payload, recorded_at_ms);
        let append = origin
            .and_then(|o| o.strip_prefix(self.origin.as_str()))
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(slot) = append.and_then(|n| index.outcomes.get_mut(&n)) {
            *slot = Some(outcome);
        }
        let next_position = index.write.next_position();
        drop(guard);
        self.head.send_modify(|h| h.next_position = next_position);
        self.applied.send_replace(sequence);
        Ok(())
    }

    /// Decides a request exactly as every node does, and records what it writes.
    fn decide(
        &self,
        index: &mut Index,
        sequence: u64,
        subject: &str,
        payload: &[u8],
        recorded_at_ms: u64,
    ) -> StoreResult<AppendOutcome> {
        let request = message::decode(payload)
            .map_err(|why| StoreError::Invalid(format!("message {sequence}: {why}")))?;
        if message::subject(&self.prefix, &request.stream) != subject {
            return Err(StoreError::Invalid(format!(
                "message {sequence}: subject {subject} does not name stream {}",
                request.stream
            )));
        }
        check_append(&request.stream, &request.events)?;
        let plan = index
            .write
            .plan(&request.stream, request.expected, &request.events);
        let name: Arc<str> = match plan.as_ref() {
            Ok(plan) if !plan.new.is_empty() => Arc::clone(index.write.stream_name(plan.stream_id)),
            _ => Arc::from(request.stream.as_str()),
        };
        index.last_sequence.insert(Arc::clone(&name), sequence);
        let plan = plan?;
        if plan.new.is_empty() {
            return Ok(plan.outcome);
        }
        let first = plan.new[0];
        let all_new = plan.new.len() == request.events.len();
        let recorded = plan.record(request.events, &name, recorded_at_ms, &mut index.streams);
        let bytes: usize = recorded.iter().map(recent_bytes).sum();
        index.written.push(Written {
            sequence,
            stream: plan.stream_id,
            first_position: plan.outcome.positions[first],
            first_revision: plan.outcome.revisions[first],
            subset: (!all_new).then(|| plan.new.iter().map(|&i| i as u32).collect()),
            recorded_at_ms,
        });
        index.recent.push_back((sequence, recorded.into()));
        index.recent_bytes += bytes;
        while index.recent_bytes > RECENT_BYTES_MAX && index.recent.len() > 1 {
            let (_, old) = index.recent.pop_front().expect("not empty");
            index.recent_bytes -= old.iter().map(recent_bytes).sum::<usize>();
        }
        Ok(plan.outcome)
    }

    /// Waits until this node has applied message `sequence`.
    async fn wait_applied(&self, sequence: u64) -> StoreResult<()> {
        let mut applied = self.applied.subscribe();
        let mut head = self.head.subscribe();
        let reached = async {
            tokio::select! {
                r = applied.wait_for(|&a| a >= sequence) => r.map(|_| ()).map_err(|_| StoreError::Closed),
                _ = head.wait_for(|h| h.closed) => Err(StoreError::Closed),
            }
        };
        match tokio::time::timeout(APPLY_WAIT, reached).await {
            Ok(result) => result.map_err(|e| match self.index.lock().failed.clone() {
                Some(why) => StoreError::Io(why),
                None => e,
            }),
            Err(_) => Err(StoreError::Io(format!(
                "the cluster's log did not reach message {sequence} within {APPLY_WAIT:?}"
            ))),
        }
    }

    async fn append(
        self: Arc<Self>,
        stream: String,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> StoreResult<AppendOutcome> {
        let subject = message::subject(&self.prefix, &stream);
        let payload = bytes::Bytes::from(message::encode(&stream, expected, &events));
        let number = self.next_append.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{number}", self.origin);
        let _slot = OutcomeSlot::new(&self, number);
        // The server's view of the stream's last message, when it refused ours.
        let mut server_last: Option<u64> = None;
        let deadline = tokio::time::Instant::now() + APPEND_DEADLINE;
        for _ in 0..APPEND_ATTEMPTS {
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            let last = {
                let mut index = self.index.lock();
                // An earlier attempt that seemed lost was stored and applied.
                if let Some(outcome) = index.outcomes.get_mut(&number).and_then(Option::take) {
                    return outcome;
                }
                if let Some(outcome) = index.write.preview(&stream, expected, &events)? {
                    return Ok(outcome);
                }
                server_last.unwrap_or_else(|| {
                    index
                        .last_sequence
                        .get(stream.as_str())
                        .copied()
                        .unwrap_or(0)
                })
            };
            let publish = jetstream::message::PublishMessage::build()
                .payload(payload.clone())
                .message_id(&id)
                .expected_last_subject_sequence(last);
            let acked = match self.js.send_publish(subject.clone(), publish).await {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match acked {
                Ok(ack) => {
                    self.wait_applied(ack.sequence).await?;
                    let outcome = self
                        .index
                        .lock()
                        .outcomes
                        .get_mut(&number)
                        .and_then(Option::take);
                    // Every message under this append's id puts its outcome in the slot, and
                    // only a duplicate of it (an earlier attempt, stored) is not applied again.
                    return outcome.ok_or_else(|| {
                        StoreError::Io(format!("message {}: no outcome applied", ack.sequence))
                    })?;
                }
                Err(e) if wrong_last_sequence(&e) => {
                    let sequence = self.last_sequence_of(&subject).await?;
                    self.wait_applied(sequence).await?;
                    server_last = Some(sequence);
                }
                Err(e) if matches!(e.kind(), context::PublishErrorKind::MaxPayloadExceeded) => {
                    return Err(StoreError::Invalid(format!(
                        "the append is larger than the cluster's max_payload: {e}"
                    )));
                }
                Err(e) => {
                    // No answer: stored or not, sending it again under the same id is safe.
                    tracing::warn!(error = %e, "JetStream append: no acknowledgement; sending again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        Err(StoreError::Io(format!(
            "append to {stream}: the cluster did not take it (within {APPEND_DEADLINE:?}, \
             {APPEND_ATTEMPTS} attempts at most)"
        )))
    }

    /// The cluster's sequence of the last message on `subject` (0: none).
    async fn last_sequence_of(&self, subject: &str) -> StoreResult<u64> {
        match self.log.get_last_raw_message_by_subject(subject).await {
            Ok(message) => Ok(message.sequence),
            Err(e) if matches!(e.kind(), stream::LastRawMessageErrorKind::NoMessageFound) => Ok(0),
            Err(e) => Err(nats_error("the stream's last message")(&e)),
        }
    }

    /// Runs `work` on the store's runtime, where the connection lives.
    fn run<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = StoreResult<T>> + Send + 'static,
    ) -> BoxFuture<'static, StoreResult<T>> {
        let task = self.runtime.spawn(work);
        async move {
            task.await
                .map_err(|e| StoreError::Io(format!("store task: {e}")))?
        }
        .boxed()
    }

    /// Up to `max` events of `$all` from `from` on, of those this node has applied.
    async fn read_all(
        self: Arc<Self>,
        from: Position,
        max: usize,
    ) -> StoreResult<Vec<RecordedEvent>> {
        let end = self
            .index
            .lock()
            .write
            .next_position()
            .min(from.saturating_add(max as u64));
        match from < end {
            true => self.events_at((from..end).collect()).await,
            false => Ok(Vec::new()),
        }
    }

    /// The events at `positions` (ascending, each applied), from memory or the cluster.
    async fn events_at(&self, positions: Vec<Position>) -> StoreResult<Vec<RecordedEvent>> {
        // Per message that holds some of them: its place in `written`, the offsets wanted.
        let mut wanted: Vec<(usize, Vec<usize>)> = Vec::new();
        let mut found: HashMap<usize, Arc<[RecordedEvent]>> = HashMap::new();
        let mut fetches = Vec::new();
        {
            let index = self.index.lock();
            for p in positions {
                let w = index.written.partition_point(|w| w.first_position <= p) - 1;
                let offset = (p - index.written[w].first_position) as usize;
                match wanted.last_mut() {
                    Some((last, offsets)) if *last == w => offsets.push(offset),
                    _ => wanted.push((w, vec![offset])),
                }
            }
            for &(w, _) in &wanted {
                let written = &index.written[w];
                let recent = index
                    .recent
                    .binary_search_by_key(&written.sequence, |(s, _)| *s)
                    .ok();
                match recent {
                    Some(i) => {
                        found.insert(w, Arc::clone(&index.recent[i].1));
                    }
                    None => fetches.push(Fetch {
                        written: w,
                        sequence: written.sequence,
                        stream: Arc::clone(index.write.stream_name(written.stream)),
                        subset: written.subset.clone(),
                        first_position: written.first_position,
                        first_revision: written.first_revision,
                        recorded_at_ms: written.recorded_at_ms,
                    }),
                }
            }
        }
        let fetched =
            futures::future::try_join_all(fetches.into_iter().map(|f| f.run(&self.log))).await?;
        found.extend(fetched);
        let mut out = Vec::new();
        for (w, offsets) in wanted {
            let events = &found[&w];
            out.extend(offsets.into_iter().map(|o| events[o].clone()));
        }
        Ok(out)
    }
}

/// A message to read back from the cluster, and where its written events went.
struct Fetch {
    written: usize,
    sequence: u64,
    stream: Arc<str>,
    subset: Option<Box<[u32]>>,
    first_position: Position,
    first_revision: Revision,
    recorded_at_ms: u64,
}

impl Fetch {
    async fn run(self, log: &stream::Stream) -> StoreResult<(usize, Arc<[RecordedEvent]>)> {
        let sequence = self.sequence;
        let message = log
            .get_raw_message(sequence)
            .await
            .map_err(|e| nats_error("reading the log")(&e))?;
        let request = message::decode(&message.payload)
            .map_err(|why| StoreError::Io(format!("message {sequence}: {why}")))?;
        let mut events: Vec<Option<NewEvent>> = request.events.into_iter().map(Some).collect();
        let chosen: Vec<usize> = match &self.subset {
            Some(subset) => subset.iter().map(|&i| i as usize).collect(),
            None => (0..events.len()).collect(),
        };
        let mut recorded = Vec::with_capacity(chosen.len());
        for (k, i) in chosen.into_iter().enumerate() {
            let e = events
                .get_mut(i)
                .and_then(Option::take)
                .ok_or_else(|| StoreError::Io(format!("message {sequence} changed")))?;
            recorded.push(RecordedEvent {
                position: self.first_position + k as u64,
                stream: Arc::clone(&self.stream),
                revision: self.first_revision + k as u64,
                id: e.id,
                event_type: e.event_type,
                data: e.data,
                recorded_at_ms: self.recorded_at_ms,
            });
        }
        Ok((self.written, recorded.into()))
    }
}

/// What an event held in memory costs, roughly (its bytes and its bookkeeping).
fn recent_bytes(event: &RecordedEvent) -> usize {
    event.data.len() + event.event_type.len() + 96
}

/// Whether the server refused a publish because the subject's last sequence was not the
/// expected one. Servers since 2.12 say so with error code 10164 as well as 10071, and the
/// client names only the latter.
fn wrong_last_sequence(error: &context::PublishError) -> bool {
    if matches!(error.kind(), context::PublishErrorKind::WrongLastSequence) {
        return true;
    }
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<jetstream::Error>())
        .is_some_and(|e| {
            let code = e.error_code();
            code == jetstream::ErrorCode::STREAM_WRONG_LAST_SEQUENCE
                || code == jetstream::ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT
        })
}

/// The slot where the follower puts the outcome of one of this process's appends; removed
/// when the append ends, however it ends.
struct OutcomeSlot<'a> {
    shared: &'a Shared,
    number: u64,
}

impl<'a> OutcomeSlot<'a> {
    fn new(shared: &'a Shared, number: u64) -> Self {
        shared.index.lock().outcomes.insert(number, None);
        Self { shared, number }
    }
}

impl Drop for OutcomeSlot<'_> {
    fn drop(&mut self) {
        self.shared.index.lock().outcomes.remove(&self.number);
    }
}

impl JetStreamStore {
    /// Competes for the lease `name` (letters, digits, `-`, `_`) among the nodes of the cluster
    /// for as long as the store is open: [`Lease::held`] says whether this node holds it.
    pub fn lease(&self, name: &str) -> Lease {
        let _runtime = self.shared.runtime.enter();
        lease::compete(
            self.shared.leases.clone(),
            name.to_string(),
            self.shared.origin.clone(),
        )
    }

    /// Runs `work` on the store's runtime, where the connection lives.
    fn run<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = StoreResult<T>> + Send + 'static,
    ) -> BoxFuture<'static, StoreResult<T>> {
        self.shared.run(work)
    }
}

impl EventStore for JetStreamStore {
    fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> BoxFuture<'static, StoreResult<AppendOutcome>> {
        if let Err(e) = check_append(stream, &events) {
            return futures::future::ready(Err(e)).boxed();
        }
        let shared = Arc::clone(&self.shared);
        self.run(shared.append(stream.to_owned(), expected, events))
    }

    fn read_stream(
        &self,
        stream: &str,
        from: Revision,
        max: usize,
    ) -> BoxFuture<'static, StoreResult<Vec<RecordedEvent>>> {
        let positions = self
            .shared
            .index
            .lock()
            .streams
            .positions(stream, from, max)
            .map(|(_, positions)| positions.to_vec())
            .unwrap_or_default();
        let shared = Arc::clone(&self.shared);
        self.run(async move { shared.events_at(positions).await })
    }

    fn read_all(
        &self,
        from: Position,
        max: usize,
    ) -> BoxFuture<'static, StoreResult<Vec<RecordedEvent>>> {
        self.run(Arc::clone(&self.shared).read_all(from, max))
    }

    fn subscribe_all(&self, from: Position) -> BoxStream<'static, StoreResult<RecordedEvent>> {
        let shared = Arc::clone(&self.shared);
        let read_all = move |from, max| shared.run(Arc::clone(&shared).read_all(from, max));
        subscribe(from, self.shared.head.subscribe(), Box::new(read_all))
    }

    fn next_position(&self) -> Position {
        self.shared.index.lock().write.next_position()
    }

    fn stream_revision(&self, stream: &str) -> Option<Revision> {
        self.shared.index.lock().streams.last_revision(stream)
    }

    fn shared(&self) -> bool {
        true
    }

    fn catch_up(&self, stream: &str) -> BoxFuture<'static, StoreResult<()>> {
        let (shared, subject) = (
            Arc::clone(&self.shared),
            message::subject(&self.shared.prefix, stream),
        );
        self.run(async move {
            let last = shared.last_sequence_of(&subject).await?;
            shared.wait_applied(last).await
        })
    }

    fn save_snapshot(&self, key: &str, snapshot: Snapshot) -> BoxFuture<'static, StoreResult<()>> {
        if let Err(e) = snapshot::check_save(key, &snapshot) {
            return futures::future::ready(Err(e)).boxed();
        }
        let (shared, key) = (Arc::clone(&self.shared), key.to_owned());
        self.run(async move {
            let mut bytes = Vec::with_capacity(8 + snapshot.data.len());
            bytes.extend_from_slice(&snapshot.revision.to_le_bytes());
            bytes.extend_from_slice(&snapshot.data);
            shared
                .snapshots
                .put(key.as_str(), &mut bytes.as_slice())
                .await
                .map_err(|e| nats_error("saving a snapshot")(&e))?;
            Ok(())
        })
    }

    fn load_snapshot(&self, key: &str) -> BoxFuture<'static, StoreResult<Option<Snapshot>>> {
        if let Err(e) = snapshot::check_key(key) {
            return futures::future::ready(Err(e)).boxed();
        }
        let (shared, key) = (Arc::clone(&self.shared), key.to_owned());
        self.run(async move {
            let mut object = match shared.snapshots.get(key.as_str()).await {
                Ok(object) => object,
                Err(e) if matches!(e.kind(), object_store::GetErrorKind::NotFound) => {
                    return Ok(None);
                }
                Err(e) => return Err(nats_error("loading a snapshot")(&e)),
            };
            let mut bytes = Vec::new();
            object
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| nats_error("loading a snapshot")(&e))?;
            // A snapshot is a cache: one that does not read is as good as none.
            if bytes.len() < 8 {
                return Ok(None);
            }
            let (revision, data) = bytes.split_at(8);
            Ok(Some(Snapshot {
                revision: u64::from_le_bytes(revision.try_into().expect("8 bytes")),
                data: data.to_vec(),
            }))
        })
    }
}
