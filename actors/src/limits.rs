//! Every bound of the actor layer, in one place.

use std::time::Duration;

/// Mailbox capacity of an aggregate actor (callers wait when it is full: back-pressure).
pub const MAILBOX_MAX: usize = 4096;
/// Most events one actor appends in one batch.
pub const BATCH_EVENTS_MAX: usize = 1024;
/// An actor stops adding commands to a batch once its encoded events reach this many bytes.
pub const BATCH_BYTES_MAX: usize = 8 << 20;
/// Events read per page while rehydrating.
pub const REHYDRATE_PAGE_MAX: usize = 1024;
/// An actor idle this long passivates.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often idle actors check whether to passivate.
pub const IDLE_CHECK: Duration = Duration::from_secs(10);
/// Attempts to reach an actor that was stopping.
pub const ROUTE_ATTEMPTS_MAX: usize = 4;
/// The protocol manager runs a step itself once the event that owes it is this old.
pub const STEP_GRACE: Duration = Duration::from_secs(2);
/// How often the protocol manager looks for overdue steps and due timers (a timer's step runs
/// at most this late) and saves its checkpoint.
pub const PROTOCOL_MANAGER_TICK: Duration = Duration::from_millis(500);

const _: () = assert!(BATCH_EVENTS_MAX <= store::limits::APPEND_EVENTS_MAX);
// The last command of a batch may take it past the byte budget: its events (at most a debit,
// whose envelope JSON-escaping can at most double) must still fit the append.
const _: () = assert!(
    BATCH_BYTES_MAX + 2 * (domain::limits::PAYLOAD_LEN_MAX + 256) + 1024
        <= store::limits::APPEND_BYTES_MAX
);

/// Bytes of JSON a block's transactions take at most (hashes and typed leaves).
const BLOCK_TXS_JSON_LEN_MAX: usize =
    domain::limits::BLOCK_TXS_MAX * domain::limits::BLOCK_TX_JSON_LEN_MAX;
const _: () = assert!(BLOCK_TXS_JSON_LEN_MAX + 64 * 1024 <= store::limits::EVENT_DATA_LEN_MAX);
