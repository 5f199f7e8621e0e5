//! Voting power of an account now (`GET /v1/accounts/{address}/power`): what
//! `actors::power` computes for a snapshot taken now, with the parameters in force.

use domain::address::Address;
use domain::twas::Power;

use crate::app::App;
use crate::error::ApiError;

/// The voting power `address` would have on `chain_id` at a snapshot taken now, over a window
/// of `window_s` (the chain's `twas_window_s` in force when absent). Returns the power, the
/// snapshot time and the window.
pub async fn power_now(
    app: &App,
    chain_id: &str,
    address: &Address,
    window_s: Option<u64>,
) -> Result<(Power, u64, u64), ApiError> {
    let params = app.router.governance_params(chain_id).await?;
    let window_s = window_s.unwrap_or(params.twas_window_s);
    if window_s == 0 || window_s > domain::dao::DURATION_S_MAX {
        return Err(ApiError::malformed(format!(
            "window_s must be 1..={}",
            domain::dao::DURATION_S_MAX
        )));
    }
    let now_ms = app.clock.now_ms();
    let supply = app.router.native_supply(chain_id)?;
    let snapshot = (now_ms, window_s * 1000);
    let reputation = app.router.reputation(chain_id, *address).await?;
    let terms = (supply, params.power_cap_bps, reputation);
    let power = app
        .router
        .power_at(chain_id, *address, snapshot, terms)
        .await?;
    Ok((power, now_ms, window_s))
}
