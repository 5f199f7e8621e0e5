//! REST handlers (`/v1`), health, metrics, OpenAPI and the live block feed.

use std::sync::Arc;

use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::{HttpRequest, HttpResponse, web};
use domain::address::Address;
use domain::asset::{NATIVE, NATIVE_DECIMALS};
use domain::block::Block;
use domain::genesis::token_symbol;
use domain::hash::Hash32;
use domain::keys::SigningKey;
use domain::kinds::Module;
use domain::merkle::{MerkleProof, verify_proof};
use domain::money::Amount;
use domain::tx::SignedEnvelope;
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use projections::explorer::SupplyView;

use crate::app::App;
use crate::error::ApiError;
use crate::limits::{
    BLOCKS_PAGE_BYTES_MAX, BLOCKS_PAGE_DEFAULT, BLOCKS_PAGE_MAX, BODY_LEN_MAX, PAGE_DEFAULT,
    PAGE_MAX,
};

type Data = web::Data<Arc<App>>;

/// The OpenAPI document of this node.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Registers every route on `cfg`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(BODY_LEN_MAX)
            .content_type_required(false)
            .error_handler(json_error),
    )
    .app_data(web::QueryConfig::default().error_handler(query_error))
    .app_data(web::PayloadConfig::new(BODY_LEN_MAX))
    .route("/", web::get().to(crate::index::index))
    .route("/health", web::get().to(health))
    .route("/metrics", web::get().to(metrics))
    .route("/openapi.json", web::get().to(openapi))
    .route("/rpc", web::post().to(crate::rpc::handle))
    .service(
        web::scope("/v1")
            .route("/transactions", web::post().to(post_transaction))
            .route("/transactions/{hash}", web::get().to(get_transaction))
            .route("/accounts", web::get().to(list_accounts))
            .route("/accounts/{address}", web::get().to(get_account))
            .route("/accounts/{address}/power", web::get().to(get_power))
            .route("/modules", web::get().to(list_modules))
            .route("/chains", web::get().to(list_chains))
            .route("/chains/{id}", web::get().to(get_chain))
            .route("/blocks", web::get().to(list_blocks))
            .route("/blocks/{id}", web::get().to(get_block))
            .route("/blocks/{id}/verify", web::get().to(verify_block))
            .route("/proofs/verify", web::post().to(verify_proof_route))
            .route("/faucet", web::post().to(faucet))
            .route("/log", web::get().to(crate::replication::get_log))
            .route("/peers", web::get().to(crate::replication::get_peers))
            .route("/stream/blocks", web::get().to(crate::feed::stream_blocks))
            .route("/wallet/create", web::post().to(wallet_create))
            .route("/wallet/import", web::post().to(wallet_import))
            .route("/wallet/balance", web::get().to(wallet_balance))
            .route("/wallet/send", web::post().to(wallet_send))
            .configure(crate::governance::routes)
            .configure(crate::agents::routes)
            .configure(crate::jobs::routes)
            .configure(crate::blobs::routes)
            .configure(crate::staking::routes),
    )
    .default_service(web::to(crate::index::fallback));
}

fn json_error(error: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match &error {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::new(
                "payload_too_large",
                format!("request body is larger than {BODY_LEN_MAX} bytes"),
            )
        }
        JsonPayloadError::Deserialize(e) => ApiError::malformed(format!("invalid JSON body: {e}")),
        other => ApiError::malformed(format!("invalid JSON body: {other}")),
    };
    api.into()
}

fn query_error(error: QueryPayloadError, request: &HttpRequest) -> actix_web::Error {
    // serde's own words name Rust types; say what was sent and where the rules are.
    let detail = match &error {
        QueryPayloadError::Deserialize(e) if e.to_string().starts_with("unknown field") => e
            .to_string()
            .split(", expected")
            .next()
            .unwrap_or_default()
            .to_string(),
        _ => "a value out of shape".to_string(),
    };
    let message = format!(
        "invalid query {:?}: {detail} (GET /openapi.json lists each endpoint's parameters)",
        request.query_string()
    );
    ApiError::malformed(message).into()
}

fn parse_address(text: &str) -> Result<Address, ApiError> {
    text.parse()
        .map_err(|e| ApiError::malformed(format!("{text:?}: {e}")))
}

fn parse_amount(text: &str) -> Result<Amount, ApiError> {
    text.parse()
        .map_err(|e| ApiError::malformed(format!("{text:?}: {e}")))
}

/// `?chain=`: the chain a read is about (the node's default when absent).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChainQuery {
    pub(crate) chain: Option<String>,
}

async fn health(app: Data) -> HttpResponse {
    let stopped = app.components.stopped();
    let status = match (app.is_ready(), stopped.is_empty()) {
        (true, true) => "ok",
        (_, false) => "degraded",
        (false, true) => "starting",
    };
    let body = json!({
        "status": status,
        "stopped": stopped,
        "log_position": app.store.next_position(),
        "projection_position": app.projections.read_model.next_position(),
        "chains": app.chains.keys().collect::<Vec<_>>(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    if status == "ok" {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics() -> HttpResponse {
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&prometheus::gather())
        .unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text)
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

async fn post_transaction(
    app: Data,
    body: web::Json<SignedEnvelope>,
) -> Result<HttpResponse, ApiError> {
    if let Some(upstream) = app.upstream.clone() {
        return crate::replication::forward(&app, upstream, &body).await;
    }
    let accepted = app.submit(body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(accepted))
}

/// JSON of a committed transaction, with block and proof once sealed.
pub async fn transaction_json(app: &App, hash: &str) -> Result<Value, ApiError> {
    let hash: Hash32 = hash
        .parse()
        .map_err(|_| ApiError::malformed("transaction hash must be 64 lowercase hex"))?;
    let tx = app
        .projections
        .read_model
        .tx(&hash)
        .ok_or_else(|| ApiError::not_found(format!("transaction {hash} not found")))?;
    let envelope = app.debit_envelope(tx.position).await?;
    let mut body = json!({
        "tx_hash": tx.tx_hash,
        "status": "committed",
        "chain_id": tx.chain_id,
        "sender": tx.sender,
        "nonce": tx.nonce,
        "kind": tx.kind,
        "outcome": if tx.refused.is_some() { "refused" } else { "applied" },
        "committed_at_ms": tx.committed_at_ms,
        "to": tx.to,
        "amount": tx.amount,
        "asset": domain::asset::symbol(&tx.asset),
        "fee": tx.fee,
        "payload": envelope.payload,
        "public_key": envelope.public_key,
        "signature": envelope.signature,
        "position": tx.position,
        "events": tx.events,
        "sealed": false,
        "block_height": Value::Null,
    });
    if let Some(reason) = &tx.refused {
        body["reason"] = json!(reason);
    }
    if let Some((block, proof)) = app.projections.read_model.tx_proof(&tx) {
        body["sealed"] = json!(true);
        body["block_height"] = json!(block.height);
        body["block_hash"] = json!(block.hash);
        body["merkle_root"] = json!(block.merkle_root);
        body["proof"] = json!(proof);
    }
    Ok(body)
}

async fn get_transaction(app: Data, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(transaction_json(&app, &path).await?))
}

/// JSON of an account: native balance and nonce, every asset's balance, vesting schedules.
pub fn account_json(app: &App, address: &str, chain: Option<&str>) -> Result<Value, ApiError> {
    let address = parse_address(address)?;
    let chain_id = app.chain_id(chain)?;
    let explorer = &app.projections.read_model;
    let account = explorer.account(chain_id, &address);
    let mut balances = serde_json::Map::new();
    balances.insert(NATIVE.into(), json!(account.balance));
    for asset in &app.chains[chain_id].genesis.assets {
        let balance = explorer.asset_balance(chain_id, &asset.symbol, &address);
        balances.insert(asset.symbol.clone(), json!(balance));
    }
    let now_ms = app.clock.now_ms();
    let vesting: Vec<Value> = explorer
        .schedules_of(chain_id, &address)
        .iter()
        .map(|v| {
            json!({
                "id": v.id,
                "asset": domain::asset::symbol(&v.schedule.asset),
                "total": v.schedule.total,
                "vested": v.schedule.vested_at(now_ms),
                "claimed": v.claimed,
                "start_at": v.schedule.start_ms / 1000,
                "cliff_at": v.schedule.cliff_ms / 1000,
                "end_at": v.schedule.end_ms / 1000,
            })
        })
        .collect();
    Ok(json!({
        "address": address,
        "chain_id": chain_id,
        "balance": account.balance,
        "balances": balances,
        "nonce": account.nonce,
        "token": token_symbol(chain_id),
        "vesting": vesting,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    pub(crate) chain: Option<String>,
    pub(crate) limit: Option<usize>,
    pub(crate) cursor: Option<String>,
}

/// A path or query value parsed, or 400 `malformed` naming it.
pub(crate) fn parse<T: std::str::FromStr<Err: std::fmt::Display>>(
    text: &str,
) -> Result<T, ApiError> {
    text.parse()
        .map_err(|e| ApiError::malformed(format!("{text:?}: {e}")))
}

/// A state or type from its wire name, or 400 `malformed`.
pub(crate) fn wire_enum<T: serde::de::DeserializeOwned>(name: &str) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::json!(name))
        .map_err(|_| ApiError::malformed(format!("unknown {name:?}")))
}

/// The checked `limit` of a list request (API.md: ≤ 1000, default 100).
pub(crate) fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(PAGE_DEFAULT);
    if limit == 0 || limit > PAGE_MAX {
        return Err(ApiError::malformed(format!(
            "limit must be between 1 and {PAGE_MAX}"
        )));
    }
    Ok(limit)
}

/// The module accounts of `chain_id`: (label, address).
fn module_accounts(chain_id: &str) -> [(&'static str, Address); 4] {
    [
        ("treasury", Address::treasury(chain_id)),
        ("vesting", domain::vesting::vesting_account(chain_id)),
        ("bonds", domain::proposal::bond_account(chain_id)),
        ("jobs", domain::job::escrow_account(chain_id)),
    ]
}

/// Every account of a chain with its balances, in address order (wallets and module accounts,
/// so that anyone can sum them against the supply). The cursor is the last address returned.
async fn list_accounts(app: Data, query: web::Query<PageQuery>) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?;
    let limit = page_limit(query.limit)?;
    let after = query.cursor.as_deref().map(parse_address).transpose()?;
    let page = app
        .projections
        .read_model
        .accounts_page(chain_id, after, limit + 1);
    let modules = module_accounts(chain_id);
    let assets = &app.chains[chain_id].genesis.assets;
    let explorer = &app.projections.read_model;
    let accounts: Vec<Value> = page
        .iter()
        .take(limit)
        .map(|(address, account)| {
            let mut balances = serde_json::Map::new();
            balances.insert(NATIVE.into(), json!(account.balance));
            for asset in assets {
                let balance = explorer.asset_balance(chain_id, &asset.symbol, address);
                balances.insert(asset.symbol.clone(), json!(balance));
            }
            let module = modules.iter().find(|(_, a)| a == address).map(|(l, _)| *l);
            json!({
                "address": address,
                "balance": account.balance,
                "balances": balances,
                "nonce": account.nonce,
                "module": module,
            })
        })
        .collect();
    let next_cursor = match page.len() > limit {
        true => json!(page[limit - 1].0),
        false => Value::Null,
    };
    Ok(HttpResponse::Ok().json(json!({
        "chain_id": chain_id,
        "accounts": accounts,
        "next_cursor": next_cursor,
    })))
}

/// The modules (with their pause state) and the module accounts of a chain.
async fn list_modules(app: Data, query: web::Query<ChainQuery>) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?;
    let now_ms = app.clock.now_ms();
    let pauses = app.router.pauses();
    let modules: Vec<Value> = Module::ALL
        .iter()
        .map(|module| {
            let pause = pauses.pause(chain_id, *module, now_ms);
            json!({
                "module": module.name(),
                "paused": pause.is_some(),
                // Unix seconds (rounded up: still paused until then), and exactly.
                "paused_until": pause.as_ref().map(|p| p.until_ms.div_ceil(1000)),
                "paused_until_ms": pause.as_ref().map(|p| p.until_ms),
                "reason": pause.as_ref().map(|p| p.reason.clone()),
            })
        })
        .collect();
    let accounts: Vec<Value> = module_accounts(chain_id)
        .iter()
        .map(|(label, address)| json!({"label": label, "address": address}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "chain_id": chain_id,
        "modules": modules,
        "accounts": accounts,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PowerQuery {
    chain: Option<String>,
    window_s: Option<u64>,
}

/// The voting power an account would have at a snapshot taken now (an extension of API.md:
/// the same fields as `GET /v1/proposals/{id}/power/{address}`, with the current supply).
async fn get_power(
    app: Data,
    path: web::Path<String>,
    query: web::Query<PowerQuery>,
) -> Result<HttpResponse, ApiError> {
    let address = parse_address(&path)?;
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let (power, now_ms, window_s) =
        crate::power::power_now(&app, &chain_id, &address, query.window_s).await?;
    Ok(HttpResponse::Ok().json(json!({
        "address": address,
        "chain_id": chain_id,
        "snapshot_ms": now_ms,
        "window_s": window_s,
        "twas": power.twas,
        "reputation": power.reputation,
        "multiplier_bps": power.multiplier_bps,
        "uncapped": power.uncapped,
        "cap": power.cap,
        "power": power.power,
    })))
}

async fn get_account(
    app: Data,
    path: web::Path<String>,
    query: web::Query<ChainQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(account_json(&app, &path, query.chain.as_deref())?))
}

/// JSON of a chain.
pub fn chain_json(app: &App, id: &str) -> Result<Value, ApiError> {
    let hosted = app
        .chains
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("chain {id:?} is not hosted by this node")))?;
    let (genesis, last) = app
        .projections
        .read_model
        .chain(id)
        .ok_or_else(|| ApiError::new("unavailable", "chain not yet created"))?;
    let supply = app.projections.read_model.supply(id);
    let supply_json = |supply: SupplyView| {
        json!({
            "minted": supply.minted,
            "burned": supply.burned,
            "balances": supply.balances,
            "in_flight": supply.in_flight,
            "conserved": supply.conserved(),
        })
    };
    let mut assets = vec![json!({
        "symbol": NATIVE,
        "decimals": NATIVE_DECIMALS,
        "native": true,
        "minter": Value::Null,
        "supply": supply_json(supply),
    })];
    for asset in &genesis.assets {
        assets.push(json!({
            "symbol": asset.symbol,
            "decimals": asset.decimals,
            "native": false,
            "minter": asset.minter,
            "supply": supply_json(app.projections.read_model.asset_supply(id, &asset.symbol)),
        }));
    }
    Ok(json!({
        "chain_id": id,
        "token": genesis.token_symbol(),
        "height": last.height,
        "last_block_hash": last.hash,
        "last_block_time": last.timestamp,
        "validators": genesis.validators,
        "validator_threshold": genesis.validator_threshold,
        "block_time_ms": hosted.block_time_ms,
        "min_fee": genesis.min_fee,
        "min_fee_per_byte": genesis.min_fee_per_byte,
        "genesis_hash": genesis.hash(),
        "faucet": hosted.faucet.is_some(),
        "supply": supply_json(supply),
        "assets": assets,
    }))
}

async fn list_chains(app: Data) -> Result<HttpResponse, ApiError> {
    let chains: Result<Vec<Value>, ApiError> =
        app.chains.keys().map(|id| chain_json(&app, id)).collect();
    Ok(HttpResponse::Ok().json(json!({"default_chain": app.default_chain, "chains": chains?})))
}

async fn get_chain(app: Data, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(chain_json(&app, &path)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlocksQuery {
    chain: Option<String>,
    from: Option<u64>,
    limit: Option<usize>,
}

async fn list_blocks(app: Data, query: web::Query<BlocksQuery>) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?;
    let limit = query.limit.unwrap_or(BLOCKS_PAGE_DEFAULT);
    if limit == 0 || limit > BLOCKS_PAGE_MAX {
        return Err(ApiError::malformed(format!(
            "limit must be between 1 and {BLOCKS_PAGE_MAX}"
        )));
    }
    let blocks = app
        .projections
        .read_model
        .blocks(chain_id, query.from.unwrap_or(0), limit);
    let (blocks, next_from) = page_within(blocks, BLOCKS_PAGE_BYTES_MAX);
    Ok(HttpResponse::Ok().json(BlocksPage {
        chain_id,
        blocks,
        next_from,
    }))
}

/// A page of blocks, each as its JSON.
#[derive(serde::Serialize)]
struct BlocksPage<'a> {
    chain_id: &'a str,
    blocks: Vec<Box<serde_json::value::RawValue>>,
    /// The height to ask `from` for the rest, when the page stopped at its byte budget.
    next_from: Option<u64>,
}

/// The first of `blocks` whose JSON fits in `budget` bytes (at least one), and the height the
/// rest starts at when some were left out.
fn page_within(
    blocks: Vec<Block>,
    budget: usize,
) -> (Vec<Box<serde_json::value::RawValue>>, Option<u64>) {
    let mut page = Vec::new();
    let mut used = 0;
    for block in blocks {
        let json = serde_json::value::to_raw_value(&block).expect("blocks serialize");
        used += json.get().len();
        if used > budget && !page.is_empty() {
            return (page, Some(block.height));
        }
        page.push(json);
    }
    (page, None)
}

/// A block by height (digits) or hash (64 hex).
pub fn find_block(app: &App, chain: Option<&str>, id: &str) -> Result<Block, ApiError> {
    let chain_id = app.chain_id(chain)?;
    let explorer = &app.projections.read_model;
    let block = if id.len() == 64 {
        let hash: Hash32 = id
            .parse()
            .map_err(|_| ApiError::malformed("block hash must be 64 lowercase hex"))?;
        explorer.block_by_hash(chain_id, &hash)
    } else {
        let height: u64 = id
            .parse()
            .map_err(|_| ApiError::malformed("block id must be a height or a 64-hex hash"))?;
        explorer.block(chain_id, height)
    };
    block.ok_or_else(|| ApiError::not_found(format!("block {id} not found on {chain_id}")))
}

async fn get_block(
    app: Data,
    path: web::Path<String>,
    query: web::Query<ChainQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(find_block(&app, query.chain.as_deref(), &path)?))
}

async fn verify_block(
    app: Data,
    path: web::Path<String>,
    query: web::Query<ChainQuery>,
) -> Result<HttpResponse, ApiError> {
    let block = find_block(&app, query.chain.as_deref(), &path)?;
    let (genesis, _) = app
        .projections
        .read_model
        .chain(&block.chain_id)
        .ok_or_else(|| ApiError::not_found("chain"))?;
    let result = block.verify(&genesis.validators, genesis.validator_threshold);
    Ok(HttpResponse::Ok().json(json!({
        "height": block.height,
        "hash": block.hash,
        "valid": result.is_ok(),
        "error": result.err().map(|e| e.to_string()),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofRequest {
    tx_hash: Hash32,
    merkle_root: Hash32,
    proof: MerkleProof,
}

async fn verify_proof_route(body: web::Json<ProofRequest>) -> HttpResponse {
    let valid = verify_proof(&body.tx_hash, &body.proof, &body.merkle_root);
    HttpResponse::Ok().json(json!({"valid": valid}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaucetRequest {
    address: String,
    amount: String,
    chain_id: Option<String>,
    asset: Option<String>,
}

async fn faucet(
    app: Data,
    request: HttpRequest,
    body: web::Json<FaucetRequest>,
) -> Result<HttpResponse, ApiError> {
    let to = parse_address(&body.address)?;
    let amount = parse_amount(&body.amount)?;
    let asked = json!([body.chain_id, to, amount, body.asset]).to_string();
    let key = request
        .headers()
        .get("Idempotency-Key")
        .and_then(|v| v.to_str().ok());
    let paid = app.faucet(body.chain_id.as_deref(), to, amount, body.asset.as_deref());
    let accepted = app
        .idempotency
        .once(
            "faucet",
            key,
            Hash32::digest(asked.as_bytes()),
            app.clock.now_ms(),
            paid,
        )
        .await?;
    Ok(HttpResponse::Ok().json(accepted))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateWallet {
    name: String,
    passphrase: Zeroizing<String>,
}

async fn wallet_create(app: Data, body: web::Json<CreateWallet>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let key = SigningKey::generate().map_err(|e| ApiError::internal(e.to_string()))?;
    hold_custodial(&app, body.name, body.passphrase, key).await
}

/// Stores `key` as a custodial wallet and answers with its public parts only.
async fn hold_custodial(
    app: &Data,
    name: String,
    passphrase: Zeroizing<String>,
    key: SigningKey,
) -> Result<HttpResponse, ApiError> {
    let (address, public_key) = (key.address(), hex::encode(key.public_key()));
    let credential = app
        .with_custody(move |custody| custody.store(&name, &passphrase, &key))
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "address": address,
        "public_key": public_key,
        "credential": credential.as_str(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportWallet {
    name: String,
    passphrase: Zeroizing<String>,
    secret_key: Zeroizing<String>,
}

async fn wallet_import(app: Data, body: web::Json<ImportWallet>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let key = SigningKey::from_hex(&body.secret_key)
        .ok_or_else(|| ApiError::malformed("secret_key must be 64 hex characters"))?;
    hold_custodial(&app, body.name, body.passphrase, key).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BalanceQuery {
    address: String,
    chain: Option<String>,
}

async fn wallet_balance(
    app: Data,
    query: web::Query<BalanceQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(account_json(&app, &query.address, query.chain.as_deref())?))
}

/// Stands for a custodial wallet name the node does not know: no key hashes to it.
const NO_WALLET: Address = Address([0; 20]);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendRequest {
    from: String,
    to: String,
    amount: String,
    passphrase: Zeroizing<String>,
    fee: Option<String>,
    chain_id: Option<String>,
    asset: Option<String>,
}

async fn wallet_send(
    app: Data,
    request: HttpRequest,
    body: web::Json<SendRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    // `from` is a wallet's address or name; one the node does not hold is refused as a wrong
    // passphrase is (the unlock of an address no wallet has runs the same work).
    let from = app
        .custody
        .find(&body.from)
        .or_else(|| body.from.parse().ok())
        .unwrap_or(NO_WALLET);
    let to = parse_address(&body.to)?;
    let amount = parse_amount(&body.amount)?;
    let fee = body.fee.as_deref().map(parse_amount).transpose()?;
    let headers = request.headers();
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let credential = text("Authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|c| Zeroizing::new(c.trim().to_string()));
    // What was asked, without its secrets.
    let asked = json!([body.chain_id, from, to, amount, body.asset, fee]).to_string();
    let send = app.custodial_send(
        crate::app::CustodialSend {
            chain: body.chain_id.clone(),
            from,
            to,
            amount,
            asset: body.asset,
            fee,
        },
        (body.passphrase, credential),
        request.peer_addr().map(|a| a.ip()),
    );
    let accepted = app
        .idempotency
        .once(
            "wallet_send",
            text("Idempotency-Key"),
            Hash32::digest(asked.as_bytes()),
            app.clock.now_ms(),
            send,
        )
        .await?;
    Ok(HttpResponse::Ok().json(accepted))
}

#[cfg(test)]
mod tests {
    use domain::block::BlockDraft;
    use domain::merkle::Leaf;

    use super::*;

    fn block(height: u64, txs: usize) -> Block {
        let leaves = (0..txs)
            .map(|i| Leaf::tx("transfer", Hash32::digest(&(i as u64).to_le_bytes())))
            .collect();
        BlockDraft {
            chain_id: "c".into(),
            height,
            prev_hash: Hash32::default(),
            timestamp: 10,
            leaves,
            from_position: 0,
            to_position: 1,
        }
        .seal(&[SigningKey::from_seed([1; 32])])
    }

    #[test]
    fn a_page_of_blocks_stops_at_its_byte_budget_and_says_where_to_go_on() {
        let blocks: Vec<Block> = (1..=5).map(|h| block(h, 100)).collect();
        let one = serde_json::to_vec(&blocks[0]).unwrap().len();
        let (page, next) = page_within(blocks.clone(), 2 * one + one / 2);
        assert_eq!((page.len(), next), (2, Some(3)));
        let (page, next) = page_within(blocks.clone(), usize::MAX);
        assert_eq!((page.len(), next), (5, None));
        let (page, next) = page_within(blocks, 10);
        assert_eq!((page.len(), next), (1, Some(2)), "one block, however big");
        let back: Block = serde_json::from_str(page[0].get()).unwrap();
        assert_eq!(back.height, 1);
    }
}
