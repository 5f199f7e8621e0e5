//! Errors of commands routed to actors.

use domain::TxError;
use store::StoreError;

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The domain refused it; nothing changed.
    #[error(transparent)]
    Rejected(#[from] TxError),
    /// The event log failed.
    #[error("event log: {0}")]
    Store(#[from] StoreError),
    /// The actor was stopping; the registry retries on a fresh activation.
    #[error("actor restarting")]
    Restarting,
    /// The target does not exist (e.g. an unknown chain).
    #[error("{0}")]
    NotFound(String),
    /// The node cannot serve it now.
    #[error("unavailable: {0}")]
    Unavailable(String),
}
