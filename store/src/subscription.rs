//! The pull-based catch-up subscription shared by the backends.

use std::collections::VecDeque;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::watch;

use crate::{Position, RecordedEvent, StoreError, StoreResult, limits};

/// Published head of the log, watched by subscriptions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Head {
    /// Position the next event will get: every position below is durable and readable.
    pub(crate) next_position: Position,
    /// The store is closed: no event will be published any more.
    pub(crate) closed: bool,
}

struct Cursor {
    next: Position,
    buffered: VecDeque<RecordedEvent>,
    head: watch::Receiver<Head>,
    read_all: ReadAll,
    done: bool,
}

/// Reads up to `max` events of `$all` from a position: a backend's read, synchronous (then
/// wrapped in a ready future) or not.
pub(crate) type ReadAll =
    Box<dyn Fn(Position, usize) -> BoxFuture<'static, StoreResult<Vec<RecordedEvent>>> + Send>;

/// Yields every event from `from` on: reads batches with `read_all` while behind the head, then
/// waits for the head to move. Marks the head seen *before* comparing, so no wake-up is lost.
/// Ends after yielding an error (a failed read, or [`StoreError::Closed`] once caught up with a
/// closed store).
pub(crate) fn subscribe(
    from: Position,
    head: watch::Receiver<Head>,
    read_all: ReadAll,
) -> BoxStream<'static, StoreResult<RecordedEvent>> {
    let cursor = Cursor {
        next: from,
        buffered: VecDeque::new(),
        head,
        read_all,
        done: false,
    };
    futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if c.done {
                return None;
            }
            if let Some(event) = c.buffered.pop_front() {
                return Some((Ok(event), c));
            }
            let head = *c.head.borrow_and_update();
            if c.next < head.next_position {
                match (c.read_all)(c.next, limits::SUBSCRIPTION_BATCH_MAX).await {
                    Ok(events) => {
                        assert!(!events.is_empty(), "published events are readable");
                        for (i, e) in events.iter().enumerate() {
                            assert_eq!(e.position, c.next + i as u64, "subscription is gap-free");
                        }
                        c.next += events.len() as u64;
                        c.buffered.extend(events);
                        continue;
                    }
                    Err(e) => {
                        c.done = true;
                        return Some((Err(e), c));
                    }
                }
            }
            if head.closed || c.head.changed().await.is_err() {
                c.done = true;
                return Some((Err(StoreError::Closed), c));
            }
        }
    })
    .boxed()
}
