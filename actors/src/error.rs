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
    /// An aggregate refused a command the node itself built (a block that no longer extends
    /// the chain): another writer got there first.
    #[error("conflict: {0}")]
    Conflict(String),
}

impl CommandError {
    /// Stable snake_case code (metrics, logs).
    pub fn code(&self) -> &'static str {
        match self {
            CommandError::Rejected(error) => error.code(),
            CommandError::Store(_) => "store",
            CommandError::Restarting => "restarting",
            CommandError::NotFound(_) => "not_found",
            CommandError::Unavailable(_) => "unavailable",
            CommandError::Conflict(_) => "conflict",
        }
    }
}

impl From<domain::chain::ChainError> for CommandError {
    fn from(error: domain::chain::ChainError) -> Self {
        CommandError::Conflict(error.to_string())
    }
}
