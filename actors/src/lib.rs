//! actix actors that host the domain's aggregates over the event log.
//!
//! - [`aggregate::AggregateActor`]: hosts one instance of any [`domain::aggregate::Aggregate`]
//!   (a wallet, a chain), activated on first use by rehydrating from snapshot + stream,
//!   passivated when idle, the only writer of its stream. It batches the commands that queue up
//!   while an append is in flight into one append (per-stream group commit), so a hot account (a
//!   faucet, the treasury) is not limited to one fsync per command.
//! - [`registry::Registry`]: routes a command to its actor, activating it on demand and retrying
//!   on an actor that has just passivated. [`wallet::WalletRegistry`] is the wallets' typed face.
//! - [`clock`]: the injected clock every decision and timestamp reads.
//! - [`dao`]: the chains' DAOs and the pause board transactions are checked against.
//! - [`power`]: voting power read back from the wallet streams.
//! - [`router::Router`]: runs the cross-aggregate protocol's steps (credits, payouts, module
//!   commands) for the request path; [`protocol::ProtocolManager`]: the process manager that
//!   runs from its checkpoint whatever step a crash left undone, and the steps timers owe once
//!   they are due.
//! - [`chain::ChainActor`]: seals blocks every `block_time` from the log it observes.
//! - [`bootstrap`]: genesis and start-up of a chain.
//!
//! Invariant: actors change state only by appending events and then applying them with the
//! domain's `evolve`; nothing else mutates aggregate state.
#![warn(missing_docs)]

pub mod aggregate;
pub mod bootstrap;
pub mod chain;
pub mod clock;
pub mod dao;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod power;
pub mod protocol;
pub mod registry;
pub mod router;
pub mod scheduler;
pub mod wallet;

pub use error::CommandError;
