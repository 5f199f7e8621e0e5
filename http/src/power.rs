//! Voting power of an account now (`GET /v1/accounts/{address}/power`): its native balance
//! history over the TWAS window, read back from its wallet stream, fed to `domain::twas`.
//!
//! The history is rebuilt backwards from the balance the explorer shows at one applied log
//! position: each older event of the wallet stream is undone in turn (a credit subtracted, a
//! debit added back), until the event at or before the window's start. So the cost follows the
//! account's activity within the window, not its whole history. Unvested tokens sit in the
//! vesting account, so they never count; staked tokens will be added by the staking module.

use domain::address::Address;
use domain::codec::DomainEvent;
use domain::money::Amount;
use domain::twas::{BalanceChange, Power, power};
use domain::wallet::{WalletEvent, wallet_stream};

use crate::app::App;
use crate::error::ApiError;

/// Events read per page, walking back through a wallet stream.
const PAGE: u64 = 256;
/// Most events one power computation reads back (a faucet or treasury changes its balance
/// far more often than a voter does).
pub const EVENTS_MAX: u64 = 100_000;

/// What leaves (`out`) and enters (`in`) the native balance with one wallet event, and when.
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

/// The native balance of `address` on `chain_id` and the log position it reflects, read while
/// the explorer stood still.
fn balance_at_a_position(app: &App, chain_id: &str, address: &Address) -> (Amount, u64) {
    let explorer = &app.projections.read_model;
    loop {
        let position = explorer.next_position();
        let balance = explorer.account(chain_id, address).balance;
        if explorer.next_position() == position {
            return (balance, position);
        }
    }
}

/// The native balance changes of `address` from the last one at or before `from_ms` on,
/// oldest first (the balance before the first is zero).
pub async fn balance_history(
    app: &App,
    chain_id: &str,
    address: &Address,
    from_ms: u64,
) -> Result<Vec<BalanceChange>, ApiError> {
    let (mut balance, applied) = balance_at_a_position(app, chain_id, address);
    let stream = wallet_stream(chain_id, address);
    let Some(last) = app.store.stream_revision(&stream) else {
        return Ok(Vec::new());
    };
    let mut newest_first: Vec<BalanceChange> = Vec::new();
    let mut end = last + 1;
    let mut read = 0;
    'pages: while end > 0 {
        let start = end.saturating_sub(PAGE);
        let page = app
            .store
            .read_stream(&stream, start, (end - start) as usize)
            .await
            .map_err(|e| ApiError::new("unavailable", e.to_string()))?;
        read += page.len() as u64;
        if read > EVENTS_MAX {
            return Err(ApiError::new(
                "limit_exceeded",
                format!("{address} changed its balance more than {EVENTS_MAX} times in the window"),
            ));
        }
        for recorded in page.iter().rev() {
            if recorded.position >= applied {
                continue; // not in the balance read above
            }
            let event = match DomainEvent::decode(
                &recorded.event_type,
                &recorded.data,
                recorded.recorded_at_ms,
            ) {
                Ok(DomainEvent::Wallet(event)) => event,
                other => {
                    return Err(ApiError::new(
                        "internal",
                        format!("wallet stream holds {other:?}"),
                    ));
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
                .ok_or_else(|| ApiError::new("internal", "wallet stream and explorer disagree"))?;
            if at_ms <= from_ms {
                break 'pages;
            }
        }
        end = start;
    }
    newest_first.reverse();
    Ok(newest_first)
}

/// The voting power `address` would have on `chain_id` at a snapshot taken now, over a window
/// of `window_s` (the chain's `twas_window_s` when absent).
pub async fn power_now(
    app: &App,
    chain_id: &str,
    address: &Address,
    window_s: Option<u64>,
) -> Result<(Power, u64, u64), ApiError> {
    let params = app.chains[chain_id].genesis.governance();
    let window_s = window_s.unwrap_or(params.twas_window_s);
    if window_s == 0 || window_s > domain::dao::DURATION_S_MAX {
        return Err(ApiError::malformed(format!(
            "window_s must be 1..={}",
            domain::dao::DURATION_S_MAX
        )));
    }
    let now_ms = app.clock.now_ms();
    let window_ms = window_s * 1000;
    let history = balance_history(app, chain_id, address, now_ms.saturating_sub(window_ms)).await?;
    let books = app.projections.read_model.supply(chain_id);
    let supply = books
        .minted
        .checked_sub(books.burned)
        .unwrap_or(Amount::ZERO);
    let power = power(&history, now_ms, window_ms, 0, supply, params.power_cap_bps);
    Ok((power, now_ms, window_s))
}
