//! GPU jobs over HTTP (API.md "Jobs and miners"): the signed miner protocol (register,
//! heartbeat, long poll for work, results with their receipts) and the reads of jobs and miners.
//!
//! Every miner request carries `X-AITBC-Key`, `X-AITBC-Time` (Unix ms) and `X-AITBC-Signature`:
//! Ed25519 over `AITBC-REQ-V1\n` + method + `\n` + path with query + `\n` + time + `\n` + hex
//! SHA-256 of the body. A request more than 30 s off, or whose signature was seen before, is
//! refused with 401 `unauthorized`; so is a bad signature.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use domain::TxError;
use domain::address::Address;
use domain::hash::Hash32;
use domain::job::{HexBytes, JobId, JobState, JobStatus, MinerResult};
use domain::job_listing::JobListing;
use domain::keys::PublicKey;
use domain::miner::{MinerCommand, MinerId, MinerRecord, RegisterMiner};
use domain::money::Amount;
use domain::protocol::FollowUp;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::ApiError;
use crate::routes::{ChainQuery, parse, wire_enum};

type Data = web::Data<Arc<App>>;

/// Domain separation of a miner request's signed bytes.
pub const REQUEST_PREFIX: &str = "AITBC-REQ-V1\n";
/// Most a request's time may differ from the node's clock.
pub const REQUEST_SKEW_MS: u64 = 30_000;
/// Signatures of recent miner requests (a replay is refused) and each miner's last contact
/// since the node started.
pub struct MinerRequests {
    seen: Mutex<HashMap<String, u64>>,
    last_seen: Mutex<HashMap<Address, u64>>,
    started_ms: u64,
}

impl MinerRequests {
    /// Nothing seen yet; the node started at `started_ms`.
    pub fn new(started_ms: u64) -> MinerRequests {
        MinerRequests {
            seen: Mutex::default(),
            last_seen: Mutex::default(),
            started_ms,
        }
    }

    /// Records `signature` made at `time_ms`; `false` if it was seen before. Forgets those too
    /// old to be accepted again.
    fn first_time(&self, signature: &str, time_ms: u64, now_ms: u64) -> bool {
        let mut seen = self.seen.lock();
        if seen.len() > 10_000 {
            seen.retain(|_, t| t.saturating_add(2 * REQUEST_SKEW_MS) > now_ms);
        }
        seen.insert(signature.to_string(), time_ms).is_none()
    }

    fn contact(&self, miner: Address, now_ms: u64) {
        self.last_seen.lock().insert(miner, now_ms);
    }

    fn last_contact(&self, miner: &Address) -> Option<u64> {
        self.last_seen.lock().get(miner).copied()
    }

    /// When `miner` was last heard from, counting the node's start as a contact (after a
    /// restart a miner has the whole grace period to show up).
    fn heard_at(&self, miner: &Address) -> u64 {
        self.last_contact(miner).unwrap_or(self.started_ms)
    }
}

/// Records that `miner`, recorded offline, is in contact again (its heartbeats cause no other
/// event).
async fn came_online(
    app: &App,
    chain_id: &str,
    miner: Address,
    record: &MinerRecord,
) -> Result<(), ApiError> {
    if record.online {
        return Ok(());
    }
    let step = FollowUp::Miner {
        chain_id: Arc::from(chain_id),
        miner,
        command: MinerCommand::Presence {
            online: true,
            at_ms: app.clock.now_ms(),
        },
    };
    app.router.run_to_end(step).await?;
    Ok(())
}

/// Every `offline_after_ms / 4`, records as offline the miners of every chain silent for
/// `offline_after_ms`.
pub async fn watch_presence(app: Arc<App>, offline_after_ms: u64) {
    let every = std::time::Duration::from_millis((offline_after_ms / 4).clamp(250, 10_000));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        for chain_id in app.chains.keys() {
            if let Err(error) = mark_silent(&app, chain_id, offline_after_ms).await {
                tracing::warn!(%chain_id, message = %error.message, "miner presence not updated");
            }
        }
    }
}

async fn mark_silent(app: &App, chain_id: &str, offline_after_ms: u64) -> Result<(), ApiError> {
    let miners = app
        .router
        .market()
        .state(chain_id.to_string())
        .await?
        .miners;
    let now_ms = app.clock.now_ms();
    for miner in miners {
        let silent = now_ms.saturating_sub(app.miner_requests.heard_at(&miner)) >= offline_after_ms;
        if !silent || !miner_record(app, chain_id, miner).await?.online {
            continue;
        }
        let step = FollowUp::Miner {
            chain_id: Arc::from(chain_id),
            miner,
            command: MinerCommand::Presence {
                online: false,
                at_ms: now_ms,
            },
        };
        app.router.run_to_end(step).await?;
    }
    Ok(())
}

/// Registers the job and miner routes on the `/v1` scope.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/miners/register", web::post().to(register))
        .route("/miners/heartbeat", web::post().to(heartbeat))
        .route("/miners/jobs", web::get().to(poll))
        .route("/miners/jobs/{id}/result", web::post().to(post_result))
        .route("/miners", web::get().to(list_miners))
        .route("/models", web::get().to(crate::models::list_models))
        .route("/jobs", web::get().to(list_jobs))
        .route("/jobs/{id}", web::get().to(get_job))
        .route("/jobs/{id}/result", web::get().to(get_result))
        .route("/receipts", web::get().to(list_receipts))
        .route("/receipts/{id}", web::get().to(get_receipt));
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    TxError::Unauthorized(message.into()).into()
}

/// The signature headers of a request, checked for shape and time before its body is read.
pub(crate) struct SignedHeaders {
    key: [u8; 32],
    key_hex: String,
    signature: [u8; 64],
    signature_hex: String,
    time_ms: u64,
}

impl SignedHeaders {
    /// The signer's address.
    pub(crate) fn signer(&self) -> Address {
        Address::from_public_key(&self.key)
    }
}

/// The signature headers of `req`: present, well formed, and made within 30 s of the node's
/// clock and not before the node started (its memory of seen requests starts then too, so a
/// request signed before a restart cannot be replayed after it).
pub(crate) fn signed_headers(app: &App, req: &HttpRequest) -> Result<SignedHeaders, ApiError> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| unauthorized(format!("a miner request carries {name}")))
    };
    let (key_hex, time, signature_hex) = (
        header("X-AITBC-Key")?,
        header("X-AITBC-Time")?,
        header("X-AITBC-Signature")?,
    );
    let mut key = [0u8; 32];
    let mut signature = [0u8; 64];
    hex::decode_to_slice(key_hex, &mut key)
        .map_err(|_| unauthorized("X-AITBC-Key is 64 hex characters"))?;
    hex::decode_to_slice(signature_hex, &mut signature)
        .map_err(|_| unauthorized("X-AITBC-Signature is 128 hex characters"))?;
    let time_ms: u64 = time
        .parse()
        .map_err(|_| unauthorized("X-AITBC-Time is Unix milliseconds"))?;
    let now_ms = app.clock.now_ms();
    if time_ms.abs_diff(now_ms) > REQUEST_SKEW_MS {
        return Err(unauthorized(format!(
            "X-AITBC-Time is more than {} s off the node's clock",
            REQUEST_SKEW_MS / 1000
        )));
    }
    if time_ms < app.miner_requests.started_ms {
        return Err(unauthorized(
            "the request was signed before the node started: sign it again",
        ));
    }
    Ok(SignedHeaders {
        key,
        key_hex: key_hex.to_ascii_lowercase(),
        signature,
        signature_hex: signature_hex.to_ascii_lowercase(),
        time_ms,
    })
}

/// Checks that `headers` sign `req` with `body`, and that the request is new; records the
/// signer's contact. Returns the signer's address and key (hex).
pub(crate) fn verify_signed(
    app: &App,
    req: &HttpRequest,
    headers: SignedHeaders,
    body: &[u8],
) -> Result<(Address, String), ApiError> {
    let path = req
        .uri()
        .path_and_query()
        .map_or(req.path(), |p| p.as_str());
    let signed = format!(
        "{REQUEST_PREFIX}{}\n{path}\n{}\n{}",
        req.method(),
        headers.time_ms,
        Hash32::digest(body)
    );
    let key = PublicKey::from_bytes(&headers.key);
    if !key.is_some_and(|k| k.verify(signed.as_bytes(), &headers.signature)) {
        return Err(unauthorized("the request's signature does not verify"));
    }
    let now_ms = app.clock.now_ms();
    if !app
        .miner_requests
        .first_time(&headers.signature_hex, headers.time_ms, now_ms)
    {
        return Err(unauthorized("this request was seen before (a replay)"));
    }
    let signer = headers.signer();
    app.miner_requests.contact(signer, now_ms);
    Ok((signer, headers.key_hex))
}

/// The signer of a request (a miner, or a blob's uploader): its signature, time window and
/// freshness checked.
pub(crate) fn authenticate(
    app: &App,
    req: &HttpRequest,
    body: &[u8],
) -> Result<(Address, String), ApiError> {
    let headers = signed_headers(app, req)?;
    verify_signed(app, req, headers, body)
}

fn strict<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::malformed(format!("body: {e}")))
}

async fn miner_record(app: &App, chain_id: &str, miner: Address) -> Result<MinerRecord, ApiError> {
    let id = MinerId {
        chain_id: chain_id.to_string(),
        miner,
    };
    app.router.miners().state(id).await?.record.ok_or_else(|| {
        ApiError::not_found(format!("{miner} is not a registered miner: register first"))
    })
}

/// `POST /v1/miners/register`: registers the signing miner, or updates its offer.
async fn register(
    app: Data,
    req: HttpRequest,
    body: web::Bytes,
    query: web::Query<ChainQuery>,
) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let (miner, public_key) = authenticate(&app, &req, &body)?;
    let offer: RegisterMiner = strict(&body)?;
    offer.validate()?;
    let step = FollowUp::Miner {
        chain_id: Arc::from(chain_id.as_str()),
        miner,
        command: MinerCommand::Register {
            public_key,
            offer: Box::new(offer),
            at_ms: app.clock.now_ms(),
        },
    };
    app.router.run_to_end(step).await?;
    let record = miner_record(&app, &chain_id, miner).await?;
    Ok(HttpResponse::Ok().json(miner_json(&app, &miner, &record)))
}

/// `POST /v1/miners/heartbeat`: the miner is alive (not an event).
async fn heartbeat(
    app: Data,
    req: HttpRequest,
    body: web::Bytes,
    query: web::Query<ChainQuery>,
) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let (miner, _) = authenticate(&app, &req, &body)?;
    let record = miner_record(&app, &chain_id, miner).await?;
    came_online(&app, &chain_id, miner, &record).await?;
    Ok(HttpResponse::Ok().json(json!({"address": miner, "reputation": record.reputation})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PollQuery {
    chain: Option<String>,
    wait_s: Option<u64>,
}

/// `GET /v1/miners/jobs?wait_s=`: a job leased to the miner, waiting up to `wait_s` (≤ 30).
async fn poll(
    app: Data,
    req: HttpRequest,
    query: web::Query<PollQuery>,
) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let (miner, _) = authenticate(&app, &req, &[])?;
    let wait_s = query.wait_s.unwrap_or(0);
    if wait_s > 30 {
        return Err(ApiError::malformed("wait_s is 0..=30"));
    }
    let record = miner_record(&app, &chain_id, miner).await?;
    came_online(&app, &chain_id, miner, &record).await?;
    let lease = app
        .scheduler
        .take(&app.router, &chain_id, miner, record, wait_s * 1000)
        .await?;
    let job = lease.map(|lease| {
        let input = serde_json::to_value(&lease.job.request.input).expect("inputs serialize");
        json!({
            "job_id": lease.job.id,
            "job_kind": input["job_kind"],
            "input": input["input"],
            "lease_until_ms": lease.lease_until_ms,
            "max_price": lease.job.request.max_price,
        })
    });
    Ok(HttpResponse::Ok().json(json!({ "job": job })))
}

/// Body of a miner's result.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultBody {
    #[serde(default)]
    result_b64: Option<String>,
    #[serde(default)]
    result_blob: Option<Hash32>,
    result_hash: Hash32,
    gpu_ms: u64,
    price: Amount,
    receipt_signature: String,
}

/// A result in blob `blob` is stored, is the result `result_hash` names, and is not too long.
async fn check_result_blob(app: &App, blob: Hash32, result_hash: &Hash32) -> Result<(), ApiError> {
    if blob != *result_hash {
        return Err(TxError::BadResult("result_blob is not result_hash".into()).into());
    }
    let blobs = app.blobs.clone();
    let length = web::block(move || blobs.get(&blob).map(|b| b.map(|b| b.len())))
        .await
        .map_err(|e| ApiError::new("unavailable", e.to_string()))?
        .map_err(|e| ApiError::new("unavailable", e.to_string()))?
        .ok_or_else(|| ApiError::not_found(format!("no blob {blob}: upload the result first")))?;
    if length > domain::job::RESULT_LEN_MAX {
        return Err(TxError::BadResult(format!(
            "a result has at most {} bytes",
            domain::job::RESULT_LEN_MAX
        ))
        .into());
    }
    Ok(())
}

/// `POST /v1/miners/jobs/{id}/result`: the miner's result and receipt.
async fn post_result(
    app: Data,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    query: web::Query<ChainQuery>,
) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let (miner, key_hex) = authenticate(&app, &req, &body)?;
    let job: Hash32 = path
        .parse()
        .map_err(|_| ApiError::malformed("a job id is 64 hex characters"))?;
    let result: ResultBody = strict(&body)?;
    let (bytes, in_blob) = match (&result.result_b64, result.result_blob) {
        (Some(b64), None) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| ApiError::malformed("result_b64 is not base64"))?;
            (bytes, false)
        }
        (None, Some(blob)) => {
            check_result_blob(&app, blob, &result.result_hash).await?;
            (Vec::new(), true)
        }
        _ => {
            return Err(ApiError::malformed(
                "a result has result_b64 or result_blob, not both",
            ));
        }
    };
    let receipt =
        domain::job::receipt_message(&job, &result.result_hash, result.gpu_ms, result.price);
    let mut signature = [0u8; 64];
    hex::decode_to_slice(&result.receipt_signature, &mut signature)
        .map_err(|_| ApiError::malformed("receipt_signature is 128 hex characters"))?;
    let mut key = [0u8; 32];
    hex::decode_to_slice(&key_hex, &mut key).expect("checked by authenticate");
    let valid =
        PublicKey::from_bytes(&key).is_some_and(|k| k.verify(receipt.as_bytes(), &signature));
    if !valid {
        return Err(TxError::BadResult("the receipt signature does not verify".into()).into());
    }
    // A result posted again (a retry after a network error) is answered with its receipt and
    // runs nothing again.
    let job_id = JobId {
        chain_id: chain_id.clone(),
        id: job,
    };
    let stored = app
        .router
        .jobs()
        .query(job_id, move |state| {
            state.assignments.get(&miner).and_then(|a| a.result.clone())
        })
        .await?;
    if let Some(stored) = stored {
        let same = stored.result_hash == result.result_hash
            && (stored.gpu_ms, stored.price) == (result.gpu_ms, result.price);
        if !same {
            return Err(TxError::NotActive(format!("{miner} already returned its result")).into());
        }
        return Ok(HttpResponse::Ok().json(json!({
            "receipt_id": domain::job::receipt_id(&job, &stored),
            "job_id": job,
        })));
    }
    let submitted = MinerResult {
        result: HexBytes(bytes),
        in_blob,
        result_hash: result.result_hash,
        gpu_ms: result.gpu_ms,
        price: result.price,
        receipt_signature: result.receipt_signature.to_ascii_lowercase(),
        at_ms: app.clock.now_ms(),
    };
    let receipt_id = domain::job::receipt_id(&job, &submitted);
    let step = FollowUp::Job {
        chain_id: Arc::from(chain_id.as_str()),
        id: job,
        command: domain::job::JobCommand::Result {
            miner,
            result: Box::new(submitted),
        },
    };
    let completion = app.router.run_to_end(step).await?;
    app.projections
        .wait_applied(completion.last_position + 1)
        .await
        .map_err(|stopped| ApiError::new("unavailable", stopped.to_string()))?;
    Ok(HttpResponse::Ok().json(json!({
        "receipt_id": receipt_id,
        "job_id": job,
    })))
}

fn miner_json(app: &App, address: &Address, record: &MinerRecord) -> Value {
    let last = app.miner_requests.last_contact(address);
    json!({
        "address": address,
        "public_key": record.public_key,
        "gpu": record.offer.gpu,
        "price_per_s": record.offer.price_per_s,
        "price_per_token": record.offer.price_per_token,
        "region": record.offer.region,
        "pool_id": record.offer.pool_id,
        "capacity": record.offer.capacity,
        "models": record.offer.models,
        "reputation": record.reputation,
        "registered_at_ms": record.registered_at_ms,
        "last_seen_ms": last,
        "online": record.online,
    })
}

/// `GET /v1/miners`: every registered miner of the chain.
async fn list_miners(app: Data, query: web::Query<ChainQuery>) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let miners = app.router.market().state(chain_id.clone()).await?.miners;
    let mut listed = Vec::new();
    for miner in miners {
        let record = miner_record(&app, &chain_id, miner).await?;
        listed.push(miner_json(&app, &miner, &record));
    }
    Ok(HttpResponse::Ok().json(json!({"chain_id": chain_id, "miners": listed})))
}

async fn job_state(app: &App, chain_id: &str, path: &str) -> Result<JobState, ApiError> {
    let id: Hash32 = path
        .parse()
        .map_err(|_| ApiError::malformed("a job id is 64 hex characters"))?;
    let job = JobId {
        chain_id: chain_id.to_string(),
        id,
    };
    let state = app.router.jobs().state(job).await?;
    match state.job {
        Some(_) => Ok(state),
        None => Err(ApiError::not_found(format!("no job {id}"))),
    }
}

/// `GET /v1/jobs` filters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobsQuery {
    chain: Option<String>,
    owner: Option<String>,
    state: Option<String>,
    job_kind: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /v1/jobs?owner=&state=&job_kind=`: a chain's jobs (a client's, when `owner` is given),
/// newest first, from the explorer; the cursor is the id of the last job returned.
async fn list_jobs(app: Data, query: web::Query<JobsQuery>) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let limit = crate::routes::page_limit(query.limit)?;
    let owner: Option<Address> = query.owner.as_deref().map(parse).transpose()?;
    let state: Option<JobStatus> = query.state.as_deref().map(wire_enum).transpose()?;
    let after: Option<Hash32> = query.cursor.as_deref().map(parse).transpose()?;
    let kind = query.job_kind.as_deref();
    let keep = |job: &JobListing| {
        state.is_none_or(|s| job.status() == s) && kind.is_none_or(|k| job.job_kind == k)
    };
    let explorer = &app.projections.read_model;
    let (page, more) = explorer
        .jobs_page(&chain_id, owner.as_ref(), keep, after, limit)
        .ok_or_else(|| ApiError::malformed("unknown cursor"))?;
    let next_cursor = match more {
        true => page.last().map(|job| json!(job.id)),
        false => None,
    };
    let jobs: Vec<Value> = page
        .iter()
        .map(|job| {
            json!({
                "id": job.id,
                "owner": job.owner,
                "job_kind": job.job_kind,
                "state": job.status(),
                "max_price": job.max_price,
                "redundancy": job.redundancy,
                "submitted_at_ms": job.submitted_at_ms,
                "deadline_ms": job.deadline_ms,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "chain_id": chain_id,
        "jobs": jobs,
        "next_cursor": next_cursor,
    })))
}

/// `GET /v1/jobs/{id}`: state, assignments, results, verification, payments.
async fn get_job(
    app: Data,
    path: web::Path<String>,
    query: web::Query<ChainQuery>,
) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let state = job_state(&app, &chain_id, &path).await?;
    let job = state.job.as_ref().expect("found");
    let request = serde_json::to_value(&job.request.input).expect("inputs serialize");
    // Until the job is over its results stay hidden: a redundant miner must not copy another's.
    let reveal = state.is_final();
    let assignments: Vec<Value> = state
        .assignments
        .iter()
        .map(|(miner, a)| {
            json!({
                "miner": miner,
                "lease_until_ms": a.lease_until_ms,
                "expired": a.expired,
                "result": a.result.as_ref().map(|r| match reveal {
                    true => json!({
                        "result_hash": r.result_hash,
                        "gpu_ms": r.gpu_ms,
                        "price": r.price,
                        "receipt_signature": r.receipt_signature,
                        "at_ms": r.at_ms,
                    }),
                    false => json!({ "at_ms": r.at_ms }),
                }),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "id": job.id,
        "chain_id": chain_id,
        "owner": job.owner,
        "job_kind": request["job_kind"],
        "input": request["input"],
        "max_price": job.request.max_price,
        "redundancy": job.request.redundancy,
        "constraints": job.request.constraints,
        "verification": job.request.verification,
        "escrow": job.escrow,
        "submitted_at_ms": job.submitted_at_ms,
        "deadline_ms": job.deadline_ms,
        "state": state.status(),
        "assignments": assignments,
        "result_hash": state.verified_hash,
        "reexecuted": state.reexecuted,
        "payments": state.payments,
        "refunded": state.refunded,
    })))
}

/// `GET /v1/jobs/{id}/result`: the verified result.
async fn get_result(
    app: Data,
    path: web::Path<String>,
    query: web::Query<ChainQuery>,
) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let state = job_state(&app, &chain_id, &path).await?;
    let Some(hash) = state.verified_hash else {
        return Err(TxError::NotActive(format!(
            "the job is {:?}: no verified result",
            state.status()
        ))
        .into());
    };
    let accepted = state
        .assignments
        .values()
        .filter_map(|a| a.result.as_ref())
        .find(|r| r.result_hash == hash)
        .expect("the accepted result is a miner's");
    let job_id = state.job.as_ref().expect("found").id;
    // A result that came as a blob is served from the blob store.
    if accepted.in_blob {
        return Ok(HttpResponse::Ok().json(json!({
            "job_id": job_id,
            "result_hash": hash,
            "result_blob": hash,
        })));
    }
    Ok(HttpResponse::Ok().json(json!({
        "job_id": job_id,
        "result_hash": hash,
        "result_b64": base64::engine::general_purpose::STANDARD.encode(&accepted.result.0),
    })))
}

/// The sealed block of `chain_id` whose positions cover `position`, if sealed yet.
fn block_covering(app: &App, chain_id: &str, position: u64) -> Option<domain::block::Block> {
    let explorer = &app.projections.read_model;
    let (_, last) = explorer.chain(chain_id)?;
    if last.to_position <= position {
        return None;
    }
    let (mut low, mut high) = (1, last.height);
    while low <= high {
        let middle = low + (high - low) / 2;
        let block = explorer.block(chain_id, middle)?;
        if position < block.from_position {
            high = middle - 1;
        } else if position >= block.to_position {
            low = middle + 1;
        } else {
            return Some(block);
        }
    }
    None
}

/// The receipts of `job` (one per result), with their block and inclusion proof once sealed.
async fn receipts_of(app: &App, chain_id: &str, job: Hash32) -> Result<Vec<Value>, ApiError> {
    let stream = domain::job::job_stream(chain_id, &job);
    let events = app
        .store
        .read_stream(&stream, 0, 10_000)
        .await
        .map_err(|e| ApiError::new("unavailable", e.to_string()))?;
    let mut receipts = Vec::new();
    for recorded in events {
        let decoded = domain::codec::DomainEvent::decode(
            &recorded.event_type,
            &recorded.data,
            recorded.recorded_at_ms,
        );
        let Ok(domain::codec::DomainEvent::Job(domain::job::JobEvent::ResultSubmitted {
            miner,
            result,
            job_kind,
            ..
        })) = decoded
        else {
            continue;
        };
        let id = domain::job::receipt_id(&job, &result);
        let mut receipt = json!({
            "receipt_id": id,
            "job_id": job,
            "job_kind": job_kind,
            "miner": miner,
            "result_hash": result.result_hash,
            "gpu_ms": result.gpu_ms,
            "price": result.price,
            "receipt_signature": result.receipt_signature,
            "block_height": Value::Null,
        });
        if let Some(block) = block_covering(app, chain_id, recorded.position) {
            receipt["block_height"] = json!(block.height);
            receipt["block_hash"] = json!(block.hash);
            receipt["merkle_root"] = json!(block.merkle_root);
            receipt["proof"] = json!(block.receipt_proof(&id));
        }
        receipts.push(receipt);
    }
    Ok(receipts)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiptsQuery {
    chain: Option<String>,
    job_id: Hash32,
}

/// `GET /v1/receipts?job_id=`: a job's receipts.
async fn list_receipts(
    app: Data,
    query: web::Query<ReceiptsQuery>,
) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let receipts = receipts_of(&app, &chain_id, query.job_id).await?;
    Ok(HttpResponse::Ok().json(json!({"job_id": query.job_id, "receipts": receipts})))
}

/// `GET /v1/receipts/{id}`: one receipt, with its block and proof once sealed.
async fn get_receipt(
    app: Data,
    path: web::Path<String>,
    query: web::Query<ChainQuery>,
) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let id: Hash32 = path
        .parse()
        .map_err(|_| ApiError::malformed("a receipt id is 64 hex characters"))?;
    let job = app
        .router
        .market()
        .query(chain_id.clone(), move |state| {
            state.receipts.get(&id).copied()
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no receipt {id}")))?;
    let receipts = receipts_of(&app, &chain_id, job).await?;
    let receipt = receipts
        .into_iter()
        .find(|r| r["receipt_id"] == json!(id))
        .ok_or_else(|| ApiError::not_found(format!("no receipt {id}")))?;
    Ok(HttpResponse::Ok().json(receipt))
}
