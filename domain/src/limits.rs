//! Bounds on everything the domain accepts from outside.

/// Longest transaction payload, bytes.
pub const PAYLOAD_LEN_MAX: usize = 64 * 1024;
/// Longest chain id.
pub const CHAIN_ID_LEN_MAX: usize = 64;
/// Most transactions in one block. A sealed block is one event: each transaction is listed twice
/// (its hash, and its typed leaf), at most [`BLOCK_TX_JSON_LEN_MAX`] bytes of JSON, so 4,000 of
/// them stay well inside the log's per-event limit (checked in `actors::limits`).
pub const BLOCK_TXS_MAX: usize = 4_000;
/// Longest kind name (the table's names are checked against it).
pub const KIND_LEN_MAX: usize = 32;
/// Most JSON bytes one transaction adds to a block: `"<64 hex>",` in `tx_hashes` and
/// `{"type":"tx","kind":"<kind>","hash":"<64 hex>"},` in `leaves`.
pub const BLOCK_TX_JSON_LEN_MAX: usize = 67 + 40 + KIND_LEN_MAX + 66;
/// Longest custodial wallet name.
pub const WALLET_NAME_LEN_MAX: usize = 64;
/// Longest passphrase accepted.
pub const PASSPHRASE_LEN_MAX: usize = 1024;
/// Most validators of one chain.
pub const VALIDATORS_MAX: usize = 64;
