//! The shape of every read model: applied in log order by one runner, checkpointed, rebuilt
//! from zero when its checkpoint cannot be used.

use store::RecordedEvent;

use crate::explorer::ProjectionError;

/// A read model fed by the log. Reads run concurrently with the one writer (the runner).
pub trait Projection: Send + Sync + Sized + 'static {
    /// Name: its checkpoint is the snapshot `projection/<NAME>`; metrics and logs use it.
    const NAME: &'static str;
    /// A checkpoint is written after this many applied events (and at shutdown).
    const CHECKPOINT_EVERY_EVENTS: u64;
    /// A consistent copy of the state, taken between two events.
    type Copy: Send + 'static;

    /// The empty read model (before position 0).
    fn empty() -> Self;

    /// Next position it will apply (everything before it is applied).
    fn next_position(&self) -> u64;

    /// Applies the event at `next_position()`. An event that breaks an invariant is refused
    /// and changes nothing: the runner stops rather than serve a corrupt view.
    fn apply(&self, event: &RecordedEvent) -> Result<(), ProjectionError>;

    /// A copy of the state, taken between two events (cheap next to encoding it).
    fn copy(&self) -> Self::Copy;

    /// The checkpoint of a copy: (the position it reflects, bytes). Blocking work: the runner
    /// calls it off its thread.
    fn encode(copy: &Self::Copy) -> (u64, Vec<u8>);

    /// The read model a checkpoint holds, `Err` (with why) when it cannot be used.
    fn decode(bytes: &[u8]) -> Result<Self, String>;
}

/// The snapshot key of `P`'s checkpoint.
pub fn checkpoint_key<P: Projection>() -> String {
    format!("projection/{}", P::NAME)
}
