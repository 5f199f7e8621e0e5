//! Voting power from the log (PRODUCT.md §3): an account's native balance history over a TWAS
//! window, read back from its wallet stream, fed to `domain::twas`.
//!
//! The history is rebuilt backwards from the wallet actor's durable state and the revision it
//! reflects: each older event of the stream is undone in turn (a credit subtracted, a debit
//! added back) until the one at or before the window's start. So the cost follows the
//! account's activity in the window, not its whole history. Unvested tokens sit in the vesting
//! account, so they never count; staked tokens count through the staking aggregate's history
//! of each owner's stake.

use domain::address::Address;
use domain::codec::DomainEvent;
use domain::money::Amount;
use domain::twas::{BalanceChange, Power, power, sum_histories};
use domain::wallet::{WalletEvent, WalletId, wallet_stream};

use crate::error::CommandError;
use crate::wallet::WalletRegistry;

/// Events read per page, walking back through a wallet stream.
const PAGE: u64 = 256;
/// Most events one power computation reads back (a faucet or treasury changes its balance
/// far more often than a voter does).
pub const EVENTS_MAX: u64 = 100_000;

/// What enters (`in`) and leaves (`out`) the native balance with one wallet event, and when.
fn native_delta(event: &WalletEvent, recorded_at_ms: u64) -> (u64, Amount, Amount) {
    match event {
        WalletEvent::Funded { amount, .. } => (recorded_at_ms, *amount, Amount::ZERO),
        WalletEvent::Debited(debit) => (debit.committed_at_ms, Amount::ZERO, debit.native_out()),
        WalletEvent::Credited(credit) => match credit.asset {
            None => (recorded_at_ms, credit.amount, Amount::ZERO),
            Some(_) => (recorded_at_ms, Amount::ZERO, Amount::ZERO),
        },
        WalletEvent::PaidOut(payout) => match payout.asset {
            None => (recorded_at_ms, Amount::ZERO, payout.amount),
            Some(_) => (recorded_at_ms, Amount::ZERO, Amount::ZERO),
        },
    }
}

/// The native balance changes of `address` on `chain_id` from the last one at or before
/// `from_ms` on, oldest first (the balance before the first is zero).
pub async fn balance_history(
    wallets: &WalletRegistry,
    chain_id: &str,
    address: Address,
    from_ms: u64,
) -> Result<Vec<BalanceChange>, CommandError> {
    let id = WalletId {
        chain_id: chain_id.into(),
        address,
    };
    let (state, revision) = wallets.registry().versioned_state(id).await?;
    let Some(revision) = revision else {
        return Ok(Vec::new());
    };
    let store = wallets.registry().store();
    let stream = wallet_stream(chain_id, &address);
    let mut balance = state.balance;
    let mut newest_first: Vec<BalanceChange> = Vec::new();
    let mut end = revision + 1;
    'pages: while end > 0 {
        let start = end.saturating_sub(PAGE);
        let page = store
            .read_stream(&stream, start, (end - start) as usize)
            .await
            .map_err(|e| CommandError::Unavailable(e.to_string()))?;
        if revision + 1 - start > EVENTS_MAX {
            return Err(CommandError::Rejected(domain::TxError::LimitExceeded(
                format!("{address} changed its balance more than {EVENTS_MAX} times in the window"),
            )));
        }
        for recorded in page.iter().rev() {
            let event = match DomainEvent::decode(
                &recorded.event_type,
                &recorded.data,
                recorded.recorded_at_ms,
            ) {
                Ok(DomainEvent::Wallet(event)) => event,
                other => {
                    return Err(CommandError::Unavailable(format!(
                        "wallet stream {stream} holds {other:?}"
                    )));
                }
            };
            let (at_ms, came_in, went_out) = native_delta(&event, recorded.recorded_at_ms);
            // Never later than the change after it (clocks of a debit and a credit differ).
            let at_ms = newest_first
                .last()
                .map_or(at_ms, |next| at_ms.min(next.at_ms));
            newest_first.push(BalanceChange { at_ms, balance });
            balance = balance
                .checked_sub(came_in)
                .and_then(|b| b.checked_add(went_out))
                .ok_or_else(|| {
                    CommandError::Unavailable(format!("wallet stream {stream} does not add up"))
                })?;
            if at_ms <= from_ms {
                break 'pages;
            }
        }
        end = start;
    }
    newest_first.reverse();
    Ok(newest_first)
}

/// The voting power of `address` on `chain_id` at `snapshot_ms` over a window of `window_ms`,
/// with `terms` = (the supply, the cap in basis points of it, the address's agent reputation):
/// its liquid balance (read back from its wallet) plus its stake (`staked`, the staking
/// aggregate's history of it).
pub async fn power_at(
    wallets: &WalletRegistry,
    chain_id: &str,
    address: Address,
    staked: &[BalanceChange],
    (snapshot_ms, window_ms): (u64, u64),
    (supply, cap_bps, reputation): (Amount, u32, u16),
) -> Result<Power, CommandError> {
    let from_ms = snapshot_ms.saturating_sub(window_ms);
    let liquid = balance_history(wallets, chain_id, address, from_ms).await?;
    let history = sum_histories(&liquid, staked);
    Ok(power(
        &history,
        snapshot_ms,
        window_ms,
        reputation,
        supply,
        cap_bps,
    ))
}
