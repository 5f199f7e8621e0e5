//! Governance reads (API.md "Governance"): parameters, proposals, their votes and voters'
//! power, the council and the treasury. Proposals are read from their actors (the state the
//! rules decide on); the DAO lists their ids.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use domain::address::Address;
use domain::dao::{ParamKind, SETTABLE};
use domain::hash::Hash32;
use domain::proposal::{Proposal, ProposalId, ProposalState, Vote, bond_account};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::ApiError;
use crate::routes::{ChainQuery, PageQuery, page_limit, parse, wire_enum};

type Data = web::Data<Arc<App>>;

/// Registers the governance routes on the `/v1` scope.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/governance/params", web::get().to(get_params))
        .route("/council", web::get().to(get_council))
        .route("/treasury", web::get().to(get_treasury))
        .route("/proposals", web::get().to(list_proposals))
        .route("/proposals/{id}", web::get().to(get_proposal))
        .route("/proposals/{id}/votes", web::get().to(list_votes))
        .route(
            "/proposals/{id}/power/{address}",
            web::get().to(get_proposal_power),
        );
}

/// Every settable parameter with its value in force and its range, the council and the
/// protocol version.
async fn get_params(app: Data, query: web::Query<ChainQuery>) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let params = app.router.governance_params(&chain_id).await?;
    let state = app.router.dao().state(chain_id.clone()).await?;
    let fields = serde_json::to_value(&params).expect("parameters serialize");
    let settable: Vec<Value> = SETTABLE
        .iter()
        .map(|p| {
            let (min, max) = match p.kind {
                ParamKind::Amount => (json!(p.min.to_string()), json!(p.max.to_string())),
                _ => (json!(p.min as u64), json!(p.max as u64)),
            };
            json!({
                "name": p.name,
                "value": fields[p.name],
                "kind": p.kind,
                "min": min,
                "max": max,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "chain_id": chain_id,
        "protocol_version": state.protocol_version,
        "params": settable,
        "council": {"members": params.council, "threshold": params.council_threshold},
        "changed": state.changes.keys().collect::<Vec<_>>(),
    })))
}

/// The council: members and threshold in force, how long a pause lasts, the pause and unpause
/// approvals still short of the threshold, and the pauses the DAO has recorded (one past its
/// end stays until its timer records the expiry, a moment later; `GET /v1/modules` tells what
/// is in force). Frozen accounts and agents' limits are listed too.
async fn get_council(app: Data, query: web::Query<ChainQuery>) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let params = app.router.governance_params(&chain_id).await?;
    let state = app.router.dao().state(chain_id.clone()).await?;
    let mut pending: Vec<Value> = state
        .pause_approvals
        .iter()
        .map(|(module, approvals)| {
            json!({
                "action": "pause",
                "module": module.name(),
                "approvals": approvals.keys().collect::<Vec<_>>(),
            })
        })
        .collect();
    pending.extend(state.unpause_approvals.iter().map(|(module, approvals)| {
        json!({"action": "unpause", "module": module.name(), "approvals": approvals})
    }));
    Ok(HttpResponse::Ok().json(json!({
        "chain_id": chain_id,
        "members": params.council,
        "threshold": params.council_threshold,
        "pause_expiry_s": params.pause_expiry_s,
        "pending": pending,
        "pauses": state.pauses.iter().map(|(module, pause)| json!({
            "module": module.name(),
            "until_ms": pause.until_ms,
            "reason": pause.reason,
            "tx_hash": pause.tx,
        })).collect::<Vec<_>>(),
        "frozen": state.frozen,
        "agent_limits": state.agent_limits.iter().map(|(agent, limits)| json!({
            "agent": agent,
            "trading_enabled": limits.trading_enabled,
            "max_position": limits.max_position,
            "max_order": limits.max_order,
            "daily_loss": limits.daily_loss,
        })).collect::<Vec<_>>(),
    })))
}

/// The treasury's balances and the bond account's.
async fn get_treasury(app: Data, query: web::Query<ChainQuery>) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let wallets = app.router.wallets();
    let account = |address: Address, state: domain::wallet::WalletState| {
        json!({
            "address": address,
            "balance": state.balance,
            "balances": state.assets,
        })
    };
    let treasury = Address::treasury(&chain_id);
    let bonds = bond_account(&chain_id);
    let treasury_state = wallets.state(&chain_id, treasury).await?;
    let bonds_state = wallets.state(&chain_id, bonds).await?;
    let mut body = account(treasury, treasury_state);
    body["chain_id"] = json!(chain_id);
    body["bonds"] = account(bonds, bonds_state);
    Ok(HttpResponse::Ok().json(body))
}

/// A proposal as API.md shows it, in its state at `now_ms`.
pub fn proposal_json(chain_id: &str, proposal: &Proposal, voters: usize, now_ms: u64) -> Value {
    let challenge = proposal.challenge.as_ref().map(|c| {
        json!({
            "tx_hash": c.tx,
            "challenger": c.challenger,
            "reason": c.reason,
            "bond": c.bond,
            "at_ms": c.at_ms,
            "expires_ms": c.expires_ms,
            "uphold": c.uphold,
            "dismiss": c.dismiss,
        })
    });
    json!({
        "id": proposal.id,
        "chain_id": chain_id,
        "proposer": proposal.proposer,
        "proposal_type": proposal.proposal_type,
        "title": proposal.title,
        "description": proposal.description,
        "state": proposal.status_at(now_ms).name(),
        "created_at_ms": proposal.created_at_ms,
        "snapshot_ms": proposal.created_at_ms,
        "voting_starts_ms": proposal.voting_starts_ms,
        "voting_ends_ms": proposal.voting_ends_ms,
        "eta_ms": proposal.eta_ms,
        "executed_at_ms": proposal.executed_at_ms,
        "actions": proposal.actions,
        "actions_hash": proposal.actions_hash,
        "tally": proposal.tally,
        "voters": voters,
        "quorum": proposal.quorum,
        "supply_at_snapshot": proposal.supply,
        "bond": proposal.bond,
        "proposer_power": proposal.proposer_power.power,
        "challenge": challenge,
        "approvals": proposal.approvals,
        "params": proposal.params,
    })
}

/// What `read` returns for proposal `id` and its state, read in the proposal's actor (a state
/// holds every vote: it is never copied whole); `not_found` for no such proposal.
async fn read_proposal<R: Send + 'static>(
    app: &App,
    chain_id: &str,
    id: Hash32,
    read: impl Fn(&Proposal, &ProposalState) -> R + Send + Sync + 'static,
) -> Result<R, ApiError> {
    let proposal_id = ProposalId {
        chain_id: chain_id.to_string(),
        id,
    };
    let found = app
        .router
        .proposals()
        .query(proposal_id, move |state| {
            state
                .proposal
                .as_ref()
                .map(|proposal| read(proposal, state))
        })
        .await?;
    found.ok_or_else(|| ApiError::not_found(format!("no proposal {id}")))
}

/// A proposal's record and its number of voters.
async fn proposal_summary(
    app: &App,
    chain_id: &str,
    id: Hash32,
) -> Result<(Proposal, usize), ApiError> {
    read_proposal(app, chain_id, id, |proposal, state| {
        (proposal.clone(), state.votes.len())
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposalsQuery {
    chain: Option<String>,
    state: Option<String>,
    proposal_type: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// Proposals, newest first, optionally of one state and type. The cursor is the id of the last
/// proposal returned.
async fn list_proposals(
    app: Data,
    query: web::Query<ProposalsQuery>,
) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let limit = page_limit(query.limit)?;
    let wanted_state: Option<domain::proposal::Status> =
        query.state.as_deref().map(wire_enum).transpose()?;
    let wanted_type: Option<domain::actions::ProposalType> =
        query.proposal_type.as_deref().map(wire_enum).transpose()?;
    let after: Option<Hash32> = query.cursor.as_deref().map(parse).transpose()?;
    let ids = app.router.dao().state(chain_id.clone()).await?.proposals;
    let mut newest_first = ids.iter().rev().peekable();
    if let Some(after) = after {
        if !ids.contains(&after) {
            return Err(ApiError::malformed(format!("unknown cursor {after}")));
        }
        newest_first.find(|id| **id == after);
    }
    let now_ms = app.clock.now_ms();
    let (mut page, mut last) = (Vec::new(), None);
    for id in newest_first {
        let (proposal, voters) = proposal_summary(&app, &chain_id, *id).await?;
        let status = proposal.status_at(now_ms);
        if wanted_state.is_some_and(|s| s != status)
            || wanted_type.is_some_and(|t| t != proposal.proposal_type)
        {
            continue;
        }
        if page.len() == limit {
            break;
        }
        page.push(proposal_json(&chain_id, &proposal, voters, now_ms));
        last = Some(*id);
    }
    let more = page.len() == limit && ids.first() != last.as_ref();
    Ok(HttpResponse::Ok().json(json!({
        "chain_id": chain_id,
        "proposals": page,
        "next_cursor": if more { json!(last) } else { Value::Null },
    })))
}

async fn get_proposal(
    app: Data,
    path: web::Path<String>,
    query: web::Query<ChainQuery>,
) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let id: Hash32 = parse(&path)?;
    let (proposal, voters) = proposal_summary(&app, &chain_id, id).await?;
    let now_ms = app.clock.now_ms();
    Ok(HttpResponse::Ok().json(proposal_json(&chain_id, &proposal, voters, now_ms)))
}

/// A proposal's votes in voter address order; the cursor is the last voter returned.
async fn list_votes(
    app: Data,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let id: Hash32 = parse(&path)?;
    let limit = page_limit(query.limit)?;
    let after: Option<Address> = query.cursor.as_deref().map(parse).transpose()?;
    let page: Vec<(Address, Vote)> = read_proposal(&app, &chain_id, id, move |_, state| {
        let from = match after {
            Some(after) => std::ops::Bound::Excluded(after),
            None => std::ops::Bound::Unbounded,
        };
        let range = state.votes.range((from, std::ops::Bound::Unbounded));
        range.take(limit + 1).map(|(a, v)| (*a, *v)).collect()
    })
    .await?;
    let votes: Vec<Value> = page
        .iter()
        .take(limit)
        .map(|(voter, vote)| {
            json!({
                "voter": voter,
                "support": vote.support,
                "power": vote.power,
                "tx_hash": vote.tx,
            })
        })
        .collect();
    let next_cursor = match page.len() > limit {
        true => json!(page[limit - 1].0),
        false => Value::Null,
    };
    Ok(HttpResponse::Ok().json(json!({
        "proposal_id": id,
        "votes": votes,
        "next_cursor": next_cursor,
    })))
}

/// The power `address` has on a proposal: at its snapshot, over the window and cap in force
/// when it was created; `voted` shows the power its vote recorded, if it voted.
async fn get_proposal_power(
    app: Data,
    path: web::Path<(String, String)>,
    query: web::Query<ChainQuery>,
) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let (id, address) = path.into_inner();
    let (id, address): (Hash32, Address) = (parse(&id)?, parse(&address)?);
    let (proposal, voted) = read_proposal(&app, &chain_id, id, move |proposal, state| {
        (proposal.clone(), state.votes.get(&address).copied())
    })
    .await?;
    let power = app
        .router
        .power_at_snapshot(&chain_id, &proposal, address)
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "address": address,
        "proposal_id": id,
        "snapshot_ms": proposal.created_at_ms,
        "twas": power.twas,
        "reputation": power.reputation,
        "multiplier_bps": power.multiplier_bps,
        "uncapped": power.uncapped,
        "cap": power.cap,
        "power": power.power,
        "voted": voted.map(|v| json!({"support": v.support, "power": v.power})),
    })))
}
