//! Read models fed by a subscription to the event log.
//!
//! - [`explorer::Explorer`]: accounts, transactions (status, events, block, proof) and blocks
//!   per chain, plus each chain's supply books (minted, balances, value in flight).
//! - [`projection::Projection`]: the shape of every read model; [`runner::ProjectionRunner`]:
//!   the one actor that feeds any of them from where its file left off, commits it every so
//!   often, and publishes how far it has got, so a writer can wait until its effect is
//!   readable. [`kv`]: a read model's file (redb tables + the position they reflect);
//!   [`records`]: the explorer's binary records.
//! - [`audit`]: replays the whole log and checks token conservation at every position.
//!
//! Invariant: a projection is a pure function of the log prefix it has applied: rebuilding from
//! zero gives the same state as resuming from its file at any commit.
#![warn(missing_docs)]

pub mod audit;
pub mod explorer;
pub mod kv;
pub mod projection;
pub mod records;
pub mod runner;
pub mod watermark;
