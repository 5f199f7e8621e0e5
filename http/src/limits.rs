//! Every bound of the HTTP layer, in one place.

/// Largest request body, bytes (API.md: larger → 413).
pub const BODY_LEN_MAX: usize = 1 << 20;
/// Most items one page of a list returns (API.md).
pub const PAGE_MAX: usize = 1000;
/// Items in a page when the request names no limit.
pub const PAGE_DEFAULT: usize = 100;
/// Most blocks one list request returns.
pub const BLOCKS_PAGE_MAX: usize = 100;
/// Default page of blocks.
pub const BLOCKS_PAGE_DEFAULT: usize = 20;
/// Most bytes of blocks one list answer holds (a page of full blocks stops early; `next_from`
/// continues it). At least one block is always returned, and a block's JSON is bounded.
pub const BLOCKS_PAGE_BYTES_MAX: usize = 4 << 20;
/// Shortest passphrase a custodial wallet accepts.
pub const PASSPHRASE_LEN_MIN: usize = 8;
/// Argon2id key derivations (19 MiB each) running at once for custodial wallets.
pub const KDF_CONCURRENCY_MAX: usize = 2;
/// Longest a custodial request waits for a derivation slot before 503 `unavailable`.
pub const KDF_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(2);
/// Parsed public keys kept (the cache is emptied when full).
pub const KEY_CACHE_MAX: usize = 65_536;
