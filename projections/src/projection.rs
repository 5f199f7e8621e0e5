//! The shape of every read model: applied in log order by one runner, committed to disk every
//! so often so that a restart resumes after the last commit.

use store::RecordedEvent;

use crate::explorer::ProjectionError;

/// A commit prepared on the runner's thread (a consistent cut, between two events) and run on
/// another one, so that applying events goes on meanwhile.
pub type PersistJob = Box<dyn FnOnce() -> Result<(), String> + Send>;

/// A read model fed by the log. Reads run concurrently with the one writer (the runner).
pub trait Projection: Send + Sync + Sized + 'static {
    /// Name, for metrics and logs.
    const NAME: &'static str;
    /// A commit starts after this many applied events (and at least every second when events
    /// arrive), so a restart replays at most about that many.
    const PERSIST_EVERY_EVENTS: u64;

    /// Next position it will apply (everything before it is applied).
    fn next_position(&self) -> u64;

    /// Applies the event at `next_position()`. An event that breaks an invariant is refused
    /// and changes nothing: the runner stops rather than serve a corrupt view.
    fn apply(&self, event: &RecordedEvent) -> Result<(), ProjectionError>;

    /// Freezes what was applied since the last commit and returns (the position it reflects,
    /// the job that writes it). `None` when there is nothing to commit, the read model lives
    /// in memory only, or a commit is still running.
    fn prepare_persist(&self) -> Option<(u64, PersistJob)>;

    /// The job of the last [`Projection::prepare_persist`] succeeded.
    fn persisted(&self);
}
