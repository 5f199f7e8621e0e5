//! Bounds on everything the domain accepts from outside.

/// Longest transaction payload, bytes.
pub const PAYLOAD_LEN_MAX: usize = 64 * 1024;
/// Longest chain id.
pub const CHAIN_ID_LEN_MAX: usize = 64;
/// Most transactions in one block (a sealed block is one event: 10,000 hashes are ~670 KB of
/// JSON, inside the log's per-event limit).
pub const BLOCK_TXS_MAX: usize = 10_000;
/// Longest custodial wallet name.
pub const WALLET_NAME_LEN_MAX: usize = 64;
/// Longest passphrase accepted.
pub const PASSPHRASE_LEN_MAX: usize = 1024;
/// Most validators of one chain.
pub const VALIDATORS_MAX: usize = 64;
