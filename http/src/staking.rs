//! Staking reads (API.md "Staking"): a chain's pools (rate, budget left, total weight and
//! stake, the settled epochs with their utilization, an APR estimate) and positions (amount,
//! lock, weight, accrued, claimed), read from the chain's staking actor without copying its
//! state.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use domain::address::Address;
use domain::hash::Hash32;
use domain::staking::{Pool, Position, StakingState};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::ApiError;
use crate::routes::{ChainQuery, page_limit, parse};

type Data = web::Data<Arc<App>>;

const YEAR_S: u128 = 365 * 24 * 3600;

/// Registers the staking routes on the `/v1` scope.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/pools", web::get().to(list_pools))
        .route("/pools/{id}", web::get().to(get_pool))
        .route("/positions", web::get().to(list_positions))
        .route("/positions/{id}", web::get().to(get_position));
}

/// A pool as API.md shows it. The APR estimate annualizes the last settled epoch's
/// distribution over the stake now open (basis points; null before any epoch settled or
/// without stake).
fn pool_json(state: &StakingState, pool: &Pool) -> Value {
    let open: Vec<&Position> = state
        .positions
        .values()
        .filter(|p| p.pool_id == pool.spec.id && !p.closed)
        .collect();
    let staked: u128 = open.iter().map(|p| p.amount.0).sum();
    let apr_bps = pool.settled.last().filter(|_| staked > 0).map(|last| {
        let per_year = last.distributed.0 * YEAR_S / u128::from(pool.spec.epoch_s);
        (per_year.saturating_mul(10_000) / staked).to_string()
    });
    json!({
        "id": pool.spec.id,
        "reward_rate": pool.spec.reward_rate,
        "budget": pool.spec.budget,
        "budget_left": pool.budget_left(),
        "distributed": pool.distributed,
        "min_stake": pool.spec.min_stake,
        "min_lock_days": pool.spec.min_lock_days,
        "max_lock_days": pool.spec.max_lock_days,
        "epoch_s": pool.spec.epoch_s,
        "requirements": pool.spec.requirements,
        "epoch": pool.epoch,
        "epoch_ends_at_ms": pool.epoch_end_ms(),
        "total_weight": pool.total_weight.to_string(),
        "total_staked": staked.to_string(),
        "positions": open.len(),
        "busy_ms_this_epoch": pool.busy_ms.to_string(),
        "epochs": pool.settled,
        "apr_estimate_bps": apr_bps,
    })
}

fn position_json(id: &Hash32, position: &Position) -> Value {
    json!({
        "id": id,
        "pool_id": position.pool_id,
        "owner": position.owner,
        "amount": position.amount,
        "lock_days": position.lock_days,
        "lock_ends_at": position.lock_ends_ms / 1000,
        "lock_ends_at_ms": position.lock_ends_ms,
        "weight": position.weight.to_string(),
        "accrued": position.accrued,
        "claimed": position.claimed,
        "claimable": position.claimable(),
        "opened_at_ms": position.opened_at_ms,
        "closed": position.closed,
    })
}

/// `GET /v1/pools`: every pool of the chain.
async fn list_pools(app: Data, query: web::Query<ChainQuery>) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let pools = app
        .router
        .staking()
        .query(chain_id.clone(), |state| {
            state
                .pools
                .values()
                .map(|pool| pool_json(state, pool))
                .collect::<Vec<_>>()
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({"chain_id": chain_id, "pools": pools})))
}

/// `GET /v1/pools/{id}`.
async fn get_pool(
    app: Data,
    path: web::Path<String>,
    query: web::Query<ChainQuery>,
) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let id = path.into_inner();
    let pool = app
        .router
        .staking()
        .query(chain_id.clone(), {
            let id = id.clone();
            move |state| state.pools.get(&id).map(|pool| pool_json(state, pool))
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no pool {id:?}")))?;
    Ok(HttpResponse::Ok().json(pool))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PositionsQuery {
    chain: Option<String>,
    owner: Option<String>,
    pool_id: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /v1/positions?owner=&pool_id=`: positions in id order; the cursor is the last id.
async fn list_positions(
    app: Data,
    query: web::Query<PositionsQuery>,
) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let limit = page_limit(query.limit)?;
    let owner: Option<Address> = query.owner.as_deref().map(parse).transpose()?;
    let after: Option<Hash32> = query.cursor.as_deref().map(parse).transpose()?;
    let pool_id = query.pool_id.clone();
    let (page, more) = app
        .router
        .staking()
        .query(chain_id.clone(), move |state| {
            use std::ops::Bound;
            let start = after.map_or(Bound::Unbounded, Bound::Excluded);
            let mut kept = state
                .positions
                .range((start, Bound::Unbounded))
                .filter(|(_, p)| owner.is_none_or(|o| p.owner == o))
                .filter(|(_, p)| pool_id.as_ref().is_none_or(|id| p.pool_id == *id));
            let page: Vec<Value> = kept
                .by_ref()
                .take(limit)
                .map(|(id, p)| position_json(id, p))
                .collect();
            (page, kept.next().is_some())
        })
        .await?;
    let next_cursor = match more {
        true => page.last().map(|p| p["id"].clone()),
        false => None,
    };
    Ok(HttpResponse::Ok().json(json!({
        "chain_id": chain_id,
        "positions": page,
        "next_cursor": next_cursor,
    })))
}

/// `GET /v1/positions/{id}`.
async fn get_position(
    app: Data,
    path: web::Path<String>,
    query: web::Query<ChainQuery>,
) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let id: Hash32 = path
        .parse()
        .map_err(|_| ApiError::malformed("a position id is 64 hex characters"))?;
    let position = app
        .router
        .staking()
        .query(chain_id, move |state| {
            state.positions.get(&id).map(|p| position_json(&id, p))
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no position {id}")))?;
    Ok(HttpResponse::Ok().json(position))
}
