//! Agent reads (API.md "Agents"): every agent of a chain, optionally of one role, and one
//! agent's record, read from its actor; the DAO lists their addresses.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use domain::address::Address;
use domain::agent::{AgentRecord, Role};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::ApiError;
use crate::routes::{ChainQuery, page_limit};

type Data = web::Data<Arc<App>>;

/// Registers the agent routes on the `/v1` scope.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/agents", web::get().to(list_agents))
        .route("/agents/{address}", web::get().to(get_agent));
}

/// An agent as API.md shows it; `reputation` is the one its votes carry (see
/// `Router::reputation`).
fn agent_json(address: &Address, record: &AgentRecord, reputation: u16) -> Value {
    json!({
        "address": address,
        "role": record.role,
        "owner": record.owner,
        "callers": record.callers,
        "reputation": reputation,
        "strategy": record.strategy,
        "auto_vote": record.auto_vote,
        "active": record.active,
        "registered_at_ms": record.registered_at_ms,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentsQuery {
    chain: Option<String>,
    role: Option<Role>,
    limit: Option<usize>,
    cursor: Option<Address>,
}

/// Agents in registration order, optionally of one role; the cursor is the last one returned.
async fn list_agents(app: Data, query: web::Query<AgentsQuery>) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let limit = page_limit(query.limit)?;
    let addresses = app.router.dao().state(chain_id.clone()).await?.agents;
    let start = match query.cursor {
        None => 0,
        Some(after) => match addresses.iter().position(|a| *a == after) {
            Some(index) => index + 1,
            None => return Err(ApiError::malformed(format!("unknown cursor {after}"))),
        },
    };
    let (mut page, mut last) = (Vec::new(), None);
    for address in &addresses[start..] {
        let Some(record) = app.router.agent(&chain_id, *address).await? else {
            continue;
        };
        if query.role.is_some_and(|role| role != record.role) {
            continue;
        }
        if page.len() == limit {
            break;
        }
        let reputation = app.router.reputation(&chain_id, *address).await?;
        page.push(agent_json(address, &record, reputation));
        last = Some(*address);
    }
    let more = page.len() == limit && addresses.last() != last.as_ref();
    Ok(HttpResponse::Ok().json(json!({
        "chain_id": chain_id,
        "agents": page,
        "next_cursor": if more { json!(last) } else { Value::Null },
    })))
}

async fn get_agent(
    app: Data,
    path: web::Path<String>,
    query: web::Query<ChainQuery>,
) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let address: Address = path
        .parse()
        .map_err(|e| ApiError::malformed(format!("{:?}: {e}", path.as_str())))?;
    match app.router.agent(&chain_id, address).await? {
        Some(record) => {
            let reputation = app.router.reputation(&chain_id, address).await?;
            Ok(HttpResponse::Ok().json(agent_json(&address, &record, reputation)))
        }
        None => Err(ApiError::not_found(format!(
            "{address} is not an agent on {chain_id}"
        ))),
    }
}
