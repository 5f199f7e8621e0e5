//! How far a projection has got, and the waiters for a position.
//!
//! A writer waits until the projection has applied its events before it answers, so every read
//! after the answer sees them. Waiters are kept ordered by the position they need, and only those
//! reached are woken: with hundreds of requests in flight, waking every waiter on every event
//! would cost more than the projection itself.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use tokio::sync::oneshot;

#[derive(Default)]
struct Inner {
    /// Every position before this one is applied.
    applied: u64,
    /// Waiters by the position they wait for (exclusive end).
    waiters: BTreeMap<u64, Vec<oneshot::Sender<()>>>,
    /// Set when the projection has stopped: waiters are released, nothing more will come.
    stopped: bool,
}

/// The projection stopped (it refused an event or lost its subscription) before reaching the
/// position waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the projection has stopped; reads no longer follow the log")]
pub struct ProjectionStopped;

/// The applied position of a projection, with ordered waiters.
#[derive(Default)]
pub struct Watermark {
    inner: Mutex<Inner>,
}

impl Watermark {
    /// A watermark at `applied`.
    pub fn new(applied: u64) -> Watermark {
        Watermark {
            inner: Mutex::new(Inner {
                applied,
                ..Inner::default()
            }),
        }
    }

    /// Every position before the returned one is applied.
    pub fn applied(&self) -> u64 {
        self.inner.lock().applied
    }

    /// Records that every position before `next` is applied, and wakes the waiters it satisfies.
    pub fn advance(&self, next: u64) {
        let ready = {
            let mut inner = self.inner.lock();
            debug_assert!(next >= inner.applied, "the watermark only moves forward");
            inner.applied = next;
            let later = inner.waiters.split_off(&(next + 1));
            std::mem::replace(&mut inner.waiters, later)
        };
        for sender in ready.into_values().flatten() {
            let _ = sender.send(());
        }
    }

    /// Releases every waiter for good (the projection stopped).
    pub fn stop(&self) {
        let waiters = {
            let mut inner = self.inner.lock();
            inner.stopped = true;
            std::mem::take(&mut inner.waiters)
        };
        drop(waiters);
    }

    /// Waits until every position before `position` is applied. Fails if the projection
    /// stopped before getting there: its reads will not show the effect.
    pub async fn wait_for(&self, position: u64) -> Result<(), ProjectionStopped> {
        let receiver = {
            let mut inner = self.inner.lock();
            if inner.applied >= position {
                return Ok(());
            }
            if inner.stopped {
                return Err(ProjectionStopped);
            }
            let (sender, receiver) = oneshot::channel();
            inner.waiters.entry(position).or_default().push(sender);
            receiver
        };
        receiver.await.map_err(|_| ProjectionStopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_exactly_when_their_position_is_applied() {
        let mark = std::sync::Arc::new(Watermark::new(3));
        mark.wait_for(2).await.unwrap();
        let waiting = {
            let mark = mark.clone();
            tokio::spawn(async move { mark.wait_for(10).await })
        };
        tokio::task::yield_now().await;
        mark.advance(9);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "position 9 is not 10");
        mark.advance(10);
        waiting.await.unwrap().unwrap();
        assert_eq!(mark.applied(), 10);
    }

    #[tokio::test]
    async fn a_stopped_projection_releases_its_waiters() {
        let mark = std::sync::Arc::new(Watermark::new(0));
        let waiting = {
            let mark = mark.clone();
            tokio::spawn(async move { mark.wait_for(5).await })
        };
        tokio::task::yield_now().await;
        mark.stop();
        assert_eq!(waiting.await.unwrap(), Err(ProjectionStopped));
        assert_eq!(mark.wait_for(100).await, Err(ProjectionStopped));
        assert_eq!(
            mark.wait_for(0).await,
            Ok(()),
            "what was applied stays readable"
        );
    }
}
