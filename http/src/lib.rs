//! The node's HTTP face (actix-web): REST `/v1`, JSON-RPC at `/rpc`, a live block feed (SSE),
//! `/health`, `/metrics` and `/openapi.json`; and [`server::start`], which assembles a node
//! (event log, actors, projections) behind it.
//!
//! Handlers are thin: parse and bound the input, call the [`app::App`] service, map errors to
//! the stable codes of API.md ([`error::ApiError`]).
#![warn(missing_docs)]

pub mod agents;
pub mod app;
pub mod blobs;
pub mod config;
pub mod custodial_guard;
pub mod custody;
pub mod error;
pub mod faucet_limits;
pub mod feed;
pub mod governance;
pub mod index;
pub mod jobs;
pub mod limits;
pub mod models;
pub mod origin;
pub mod power;
pub mod replication;
pub mod routes;
pub mod rpc;
pub mod server;
pub mod signatures;
pub mod staking;
