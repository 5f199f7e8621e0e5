//! Whole-log audit: replays every event from position 0 and checks, after EACH event, that
//! every chain conserves each of its assets (balances + in flight = minted − burned), that no balance
//! goes negative and that nonces are sequential (the explorer's `apply` refuses otherwise).

use std::collections::BTreeMap;

use store::{EventStore, StoreError};

use crate::explorer::{Explorer, SupplyView};

/// What the audit found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Events replayed.
    pub events: u64,
    /// Final supply books of the native asset per chain.
    pub supply: BTreeMap<String, SupplyView>,
    /// Final supply books of other assets per (chain, asset).
    pub asset_supply: BTreeMap<(String, String), SupplyView>,
}

/// Why the audit failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The log could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An invariant broke at a position.
    #[error(transparent)]
    Violation(#[from] crate::explorer::ProjectionError),
}

/// Replays the whole log and checks the invariants at every position.
pub async fn audit(store: &dyn EventStore) -> Result<AuditReport, AuditError> {
    let explorer = Explorer::default();
    let end = store.next_position();
    let mut from = 0;
    while from < end {
        let page = store.read_all(from, 4096).await?;
        if page.is_empty() {
            break;
        }
        for event in &page {
            explorer.apply(event)?;
        }
        from = explorer.next_position();
    }
    let state = explorer.export();
    Ok(AuditReport {
        events: from,
        supply: state.supply,
        asset_supply: state.asset_supply,
    })
}
