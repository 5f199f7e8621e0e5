//! Pure domain rules of AITBC: ids, money, addresses, the signed transaction envelope, Merkle
//! proofs, blocks, genesis and one module per aggregate (`decide` / `evolve`).
//!
//! Invariant: nothing here does I/O, reads a clock, spawns, or knows about actix, tokio or files.
//! Time and randomness arrive as data.
//!
//! ```
//! use domain::{tx::{TxPayload, sign_payload}, keys::SigningKey, money::Amount};
//! let key = SigningKey::from_seed([7; 32]);
//! let payload = TxPayload::transfer("ait-devnet", key.address(), 0, Amount(0), key.address(), Amount(5));
//! let envelope = sign_payload(&key, &payload);
//! let verified = envelope.verify().unwrap();
//! assert_eq!(verified.payload.nonce, 0);
//! ```
#![warn(missing_docs)]

pub mod actions;
pub mod address;
pub mod agent;
pub mod aggregate;
pub mod asset;
pub mod block;
pub mod chain;
pub mod codec;
pub mod dao;
pub mod error;
pub mod event_id;
pub mod genesis;
pub mod hash;
pub mod job;
pub mod job_listing;
pub mod keys;
pub mod keystore;
pub mod kinds;
pub mod limits;
pub mod llm_job;
pub mod matmul;
pub mod merkle;
pub mod miner;
pub mod mlp;
pub mod money;
pub mod proposal;
pub mod protocol;
pub mod staking;
mod text;
pub mod twas;
pub mod tx;
pub mod vesting;
pub mod wallet;
pub mod wgsl;

pub use address::Address;
pub use error::TxError;
pub use hash::Hash32;
pub use money::Amount;
