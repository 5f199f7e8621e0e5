//! Blobs over HTTP (API.md "Jobs and miners"): `POST /v1/blobs` stores raw bytes (≤ 64 MiB) for
//! the signer of the request (the miner protocol's signature; a funded account), within its
//! quota, answering `{"hash"}`; `GET /v1/blobs/{hash}` returns them, checked against the hash.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use actors::clock::SharedClock;
use actors::scheduler::Scheduler;
use domain::TxError;
use domain::address::Address;
use domain::hash::Hash32;
use serde_json::json;
use store::blobs::{BLOB_LEN_MAX, BlobError, BlobStore};

use crate::app::App;
use crate::error::ApiError;
use crate::jobs::{signed_headers, verify_signed};
use crate::routes::ChainQuery;

type Data = web::Data<Arc<App>>;

/// Registers the blob routes on the `/v1` scope.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/blobs", web::post().to(upload))
        .route("/blobs/{hash}", web::get().to(download));
}

fn blob_error(error: BlobError) -> ApiError {
    match error {
        BlobError::Quota { .. } => TxError::LimitExceeded(error.to_string()).into(),
        BlobError::TooLarge => ApiError::new("payload_too_large", error.to_string()),
        BlobError::Damaged(_) | BlobError::Io(_) => ApiError::new("unavailable", error.to_string()),
    }
}

/// How often unreferenced blobs are collected.
const COLLECT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Every minute, removes the blobs stored more than `ttl_ms` ago that no open job refers to.
pub async fn collect_forever(
    blobs: Arc<BlobStore>,
    scheduler: Scheduler,
    clock: SharedClock,
    ttl_ms: u64,
) {
    let mut tick = tokio::time::interval(COLLECT_EVERY);
    loop {
        tick.tick().await;
        let referenced = scheduler.referenced_blobs();
        let before = clock.now_ms().saturating_sub(ttl_ms);
        let blobs = blobs.clone();
        match web::block(move || blobs.collect(before, &referenced)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(removed)) => tracing::info!(removed, "unreferenced blobs collected"),
            Ok(Err(error)) => tracing::warn!(%error, "blob collection failed"),
            Err(error) => tracing::warn!(%error, "blob collection did not run"),
        }
    }
}

/// `POST /v1/blobs`: stores the body for the signing account. The signature's headers, their
/// time and the signer's funds are checked before the body (up to 64 MiB) is read.
async fn upload(
    app: Data,
    req: HttpRequest,
    mut payload: web::Payload,
    query: web::Query<ChainQuery>,
) -> Result<HttpResponse, ApiError> {
    use futures::StreamExt;
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let headers = signed_headers(&app, &req)?;
    let signer = headers.signer();
    let balance = app.router.wallets().state(&chain_id, signer).await?.balance;
    if balance == domain::money::Amount::ZERO && !is_miner(&app, &chain_id, signer).await? {
        return Err(TxError::Unauthorized(format!(
            "{signer} holds nothing on {chain_id} and mines nothing: blobs are stored for \
             funded accounts and registered miners"
        ))
        .into());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::malformed(format!("body: {e}")))?;
        if body.len() + chunk.len() > BLOB_LEN_MAX {
            return Err(blob_error(BlobError::TooLarge));
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    let (owner, _) = verify_signed(&app, &req, headers, &body)?;
    let now_ms = app.clock.now_ms();
    let blobs = app.blobs.clone();
    let hash = web::block(move || blobs.put(owner, &body, now_ms))
        .await
        .map_err(|e| ApiError::new("unavailable", e.to_string()))?
        .map_err(blob_error)?;
    Ok(HttpResponse::Ok().json(json!({
        "hash": hash,
        "stored_bytes": app.blobs.usage(&owner),
    })))
}

/// Whether `address` is a registered miner of `chain_id` (miners upload results too long to
/// travel inline).
async fn is_miner(app: &App, chain_id: &str, address: Address) -> Result<bool, ApiError> {
    let id = domain::miner::MinerId {
        chain_id: chain_id.to_string(),
        miner: address,
    };
    Ok(app.router.miners().state(id).await?.record.is_some())
}

/// `GET /v1/blobs/{hash}`: the bytes, checked against their hash.
async fn download(app: Data, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let hash: Hash32 = path
        .parse()
        .map_err(|_| ApiError::malformed("a blob hash is 64 hex characters"))?;
    let blobs = app.blobs.clone();
    let bytes = web::block(move || blobs.get(&hash))
        .await
        .map_err(|e| ApiError::new("unavailable", e.to_string()))?
        .map_err(blob_error)?
        .ok_or_else(|| ApiError::not_found(format!("no blob {hash}")))?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(bytes))
}
