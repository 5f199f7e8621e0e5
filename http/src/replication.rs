//! Followers (PRODUCT.md §2): a node started with `--follow URL` keeps a copy of its peer's
//! event log, checks it, serves reads from it and forwards transactions to the peer.
//!
//! Every node serves its log read-only at `GET /v1/log` (`from`, `limit`, `wait_ms`: a long
//! poll at the head). A follower's `Replicator` (its own thread) asks for the events after the
//! last one it holds and appends them to its own log at the same positions, with the same
//! streams, revisions and ids, after checking them (`Verifier`): every debit's signed envelope
//! (signature, hash, sender), the chain's genesis against its own configuration, and every block
//! (its validators' signatures, height, link to the previous block, the positions it covers, and
//! its leaves against the debits and receipts the follower received in that range). The first
//! event that does not check stops replication for good: nothing from it on is written, and
//! `GET /v1/peers` says why. Events that carry no signature (credits, module events) are taken
//! in the peer's order; the peer's blocks vouch only for the transactions and receipts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use base64::Engine as _;
use domain::block::Block;
use domain::codec::DomainEvent;
use domain::genesis::Genesis;
use domain::merkle::Leaf;
use domain::tx::{HeldSignature, SignatureClaim, check_claims};
use domain::wallet::{Debit, WalletEvent};
use futures::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use store::{EventId, EventStore, ExpectedRevision, NewEvent, RecordedEvent};

use crate::app::App;
use crate::error::ApiError;

type Data = web::Data<Arc<App>>;

/// Most events in one page of `GET /v1/log`.
pub const LOG_PAGE_MAX: usize = 1_000;
/// Most event bytes in one page (at least one event is always sent).
const LOG_PAGE_BYTES_MAX: usize = 4 << 20;
/// Longest `wait_ms` of a long poll.
const LOG_WAIT_MAX_MS: u64 = 30_000;

/// `GET /v1/log` query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    from: Option<u64>,
    limit: Option<usize>,
    wait_ms: Option<u64>,
}

/// One event of the log, as `GET /v1/log` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogEvent {
    position: u64,
    stream: String,
    revision: u64,
    /// 32 hex digits.
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    /// Base64 of the event's bytes.
    data: String,
    recorded_at_ms: u64,
}

/// A page of the log.
#[derive(Debug, Serialize, Deserialize)]
pub struct LogPage {
    events: Vec<LogEvent>,
    /// The position the next event will get on this node.
    head: u64,
}

/// `GET /v1/log?from=&limit=&wait_ms=`: the events from `from` on, in position order; with
/// `wait_ms`, waits that long at most for one when there is none yet.
pub async fn get_log(app: Data, query: web::Query<LogQuery>) -> Result<HttpResponse, ApiError> {
    let from = query.from.unwrap_or(0);
    let limit = query.limit.unwrap_or(256);
    if limit == 0 || limit > LOG_PAGE_MAX {
        return Err(ApiError::malformed(format!(
            "limit must be between 1 and {LOG_PAGE_MAX}"
        )));
    }
    let wait_ms = query.wait_ms.unwrap_or(0);
    if wait_ms > LOG_WAIT_MAX_MS {
        return Err(ApiError::malformed(format!(
            "wait_ms must be at most {LOG_WAIT_MAX_MS}"
        )));
    }
    if wait_ms > 0 && app.store.next_position() <= from {
        // The log's own subscription wakes when the event at `from` is durable: no polling.
        let mut arrivals = app.store.subscribe_all(from);
        let _ = actix_rt::time::timeout(Duration::from_millis(wait_ms), arrivals.next()).await;
    }
    let events = app
        .store
        .read_all(from, limit)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut bytes = 0;
    let engine = base64::engine::general_purpose::STANDARD;
    let events: Vec<LogEvent> = events
        .into_iter()
        .take_while(|e| {
            let first = bytes == 0;
            bytes += e.data.len() + e.stream.len() + 64;
            first || bytes <= LOG_PAGE_BYTES_MAX
        })
        .map(|e| LogEvent {
            position: e.position,
            stream: e.stream.to_string(),
            revision: e.revision,
            id: format!("{:032x}", e.id.0),
            event_type: e.event_type,
            data: engine.encode(&e.data),
            recorded_at_ms: e.recorded_at_ms,
        })
        .collect();
    Ok(HttpResponse::Ok().json(LogPage {
        events,
        head: app.store.next_position(),
    }))
}

/// What a follower knows of its peer (`GET /v1/peers`).
#[derive(Clone, Debug, Serialize)]
pub struct PeerStatus {
    /// The peer's URL.
    pub url: String,
    /// `following`, `unreachable: …` (it tries again) or `refused: …` (it stopped).
    pub state: String,
    /// Events this node holds (the next position it asks for).
    pub applied: u64,
    /// The peer's head at the last contact.
    pub peer_head: u64,
    /// Events behind the peer at the last contact.
    pub lag: u64,
    /// Heights of this node's chains (from its own copy).
    pub heights: BTreeMap<String, u64>,
    /// Unix milliseconds of the last answer from the peer.
    pub last_contact_ms: Option<u64>,
}

/// The peer a follower replicates, shared with the HTTP side.
#[derive(Clone)]
pub struct Upstream {
    /// The peer's base URL (`http://host:port`).
    pub url: String,
    status: Arc<Mutex<PeerStatus>>,
    agent: ureq::Agent,
}

impl Upstream {
    /// A peer at `url`.
    pub fn new(url: &str) -> Upstream {
        let url = url.trim_end_matches('/').to_string();
        Upstream {
            status: Arc::new(Mutex::new(PeerStatus {
                url: url.clone(),
                state: "starting".into(),
                applied: 0,
                peer_head: 0,
                lag: 0,
                heights: BTreeMap::new(),
                last_contact_ms: None,
            })),
            url,
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .timeout(Duration::from_secs(60))
                .build(),
        }
    }

    /// What this node knows of its peer now.
    pub fn status(&self) -> PeerStatus {
        self.status.lock().clone()
    }

    /// Sends a transaction's JSON to the peer; its status and body, or why it was not reached.
    pub fn forward(&self, body: &serde_json::Value) -> Result<(u16, serde_json::Value), String> {
        let url = format!("{}/v1/transactions", self.url);
        let answer = match self.agent.post(&url).send_json(body) {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(e) => return Err(e.to_string()),
        };
        let status = answer.status();
        let body = answer.into_json().map_err(|e| e.to_string())?;
        Ok((status, body))
    }
}

/// `GET /v1/peers`: the peer this node follows (none for a node that follows nobody).
pub async fn get_peers(app: Data) -> HttpResponse {
    let peers: Vec<PeerStatus> = app.upstream.iter().map(Upstream::status).collect();
    HttpResponse::Ok().json(serde_json::json!({ "peers": peers }))
}

/// Checks what a follower receives, chain by chain. See the module documentation.
pub struct Verifier {
    chains: BTreeMap<String, ChainCheck>,
}

struct ChainCheck {
    genesis: Genesis,
    stream: String,
    /// (height, hash, to_position) of the last block.
    last: Option<(u64, domain::hash::Hash32, u64)>,
    /// Leaves since the last block, with their positions.
    pending: Vec<(u64, Leaf)>,
}

impl Verifier {
    /// A verifier of the chains this node is configured with.
    pub fn new(chains: impl IntoIterator<Item = Genesis>) -> Verifier {
        Verifier {
            chains: chains
                .into_iter()
                .map(|genesis| {
                    let id = genesis.chain_id.clone();
                    let check = ChainCheck {
                        stream: domain::chain::chain_stream(&id),
                        genesis,
                        last: None,
                        pending: Vec::new(),
                    };
                    (id, check)
                })
                .collect(),
        }
    }

    /// Takes up where this node's copy ends. What it holds was checked when it came, so it is
    /// not checked again: each chain's last block is read from the chain's stream, and only
    /// the events after it are read, for the leaves the next block must list.
    pub fn resume(&mut self, store: &dyn EventStore) -> Result<(), String> {
        let read = |what: &str, e: store::StoreError| format!("reading {what}: {e}");
        let held = store.next_position();
        let mut from = held;
        for check in self.chains.values_mut() {
            let Some(revision) = store.stream_revision(&check.stream) else {
                continue;
            };
            let last = futures::executor::block_on(store.read_stream(&check.stream, revision, 1))
                .map_err(|e| read(&check.stream, e))?;
            let event = last
                .first()
                .ok_or_else(|| format!("{} has no last event", check.stream))?;
            let decoded = DomainEvent::decode(&event.event_type, &event.data, event.recorded_at_ms);
            let Ok(DomainEvent::Chain(chain_event)) = decoded else {
                return Err(format!("{}: undecodable last block", check.stream));
            };
            let block = chain_event.block();
            check.last = Some((block.height, block.hash, block.to_position));
            from = from.min(block.to_position);
        }
        while from < held {
            let page = futures::executor::block_on(store.read_all(from, 1024))
                .map_err(|e| read("the log", e))?;
            for event in &page {
                for (chain_id, check) in &mut self.chains {
                    let after_last = check.last.is_some_and(|(_, _, to)| event.position >= to);
                    if let (true, Some(leaf)) =
                        (after_last, actors::chain::block_leaf(chain_id, event)?)
                    {
                        check.pending.push((event.position, leaf));
                    }
                }
            }
            from += page.len().max(1) as u64;
        }
        Ok(())
    }

    /// Checks the next events (in position order, none skipped), the signatures of their
    /// debits in batches; the first event that does not check is named.
    pub fn check_page(&mut self, events: &[RecordedEvent]) -> Result<(), String> {
        // The claims move into one batch; each debit keeps its place and its answer's turn.
        let mut claims = Vec::new();
        let debits: Vec<(usize, Result<Box<Debit>, String>)> = events
            .iter()
            .enumerate()
            .filter(|(_, event)| is_wallet_debit(event))
            .map(|(i, event)| {
                let debit = debit_claim(event).map(|(debit, claim)| {
                    claims.push(claim);
                    debit
                });
                (i, debit)
            })
            .collect();
        let mut held = check_claims(claims).into_iter();
        let mut debits = debits.into_iter().map(|(i, parsed)| {
            let parsed = parsed.map(|debit| (debit, held.next().expect("one answer per claim")));
            (i, parsed)
        });
        let mut next_debit = debits.next();
        for (i, event) in events.iter().enumerate() {
            if let Some((_, parsed)) = next_debit.take_if(|(at, _)| *at == i) {
                let (debit, held) = parsed?;
                check_debit(event, &debit, held)?;
                next_debit = debits.next();
            }
            self.check_chains(event)?;
        }
        Ok(())
    }

    /// The block checks of one event.
    fn check_chains(&mut self, event: &RecordedEvent) -> Result<(), String> {
        for (chain_id, check) in &mut self.chains {
            if let Some(leaf) = actors::chain::block_leaf(chain_id, event)? {
                check.pending.push((event.position, leaf));
            }
            if *event.stream == *check.stream {
                check.block(event)?;
            }
        }
        Ok(())
    }
}

fn is_wallet_debit(event: &RecordedEvent) -> bool {
    domain::codec::is_debit(&event.event_type) && event.stream.starts_with("wallet/")
}

/// A debit, decoded, and its transaction's signature to check.
type DebitClaim = (Box<Debit>, SignatureClaim);

fn debit_claim(event: &RecordedEvent) -> Result<DebitClaim, String> {
    let at = event.position;
    let decoded = DomainEvent::decode(&event.event_type, &event.data, event.recorded_at_ms);
    let Ok(DomainEvent::Wallet(WalletEvent::Debited(debit))) = decoded else {
        return Err(format!("position {at}: undecodable debit: {decoded:?}"));
    };
    let claim = debit
        .envelope
        .signature_claim(domain::keys::PublicKey::from_bytes)
        .map_err(|e| format!("position {at}: the debit's transaction does not verify: {e}"))?;
    Ok((Box::new(debit), claim))
}

/// The rest of a debit's check, once its signature was checked (`held`).
fn check_debit(
    event: &RecordedEvent,
    debit: &Debit,
    held: Option<HeldSignature>,
) -> Result<(), String> {
    let at = event.position;
    let held = held.ok_or(domain::error::TxError::BadSignature);
    let verified = held
        .and_then(|held| match debit.envelope.verified(&held) {
            Err(domain::error::TxError::SenderMismatch { .. }) => {
                debit.envelope.verified_as_caller(&held)
            }
            other => other,
        })
        .map_err(|e| format!("position {at}: the debit's transaction does not verify: {e}"))?;
    if verified.hash != debit.tx_hash || verified.payload.nonce != debit.nonce {
        return Err(format!(
            "position {at}: the debit does not record its own transaction"
        ));
    }
    let sender = verified.payload.sender.to_string();
    if !event.stream.ends_with(&format!("/{sender}")) {
        return Err(format!(
            "position {at}: a debit of {sender} in stream {}",
            event.stream
        ));
    }
    Ok(())
}

impl ChainCheck {
    fn block(&mut self, event: &RecordedEvent) -> Result<(), String> {
        let at = event.position;
        let decoded = DomainEvent::decode(&event.event_type, &event.data, event.recorded_at_ms)
            .map_err(|e| format!("position {at}: undecodable chain event: {e}"))?;
        let DomainEvent::Chain(chain_event) = decoded else {
            return Err(format!("position {at}: not a chain event"));
        };
        let block: &Block = chain_event.block();
        let genesis = &self.genesis;
        block
            .verify(&genesis.validators, genesis.validator_threshold)
            .map_err(|e| format!("position {at}: block {} does not verify: {e}", block.height))?;
        match (&chain_event, self.last) {
            (
                domain::chain::ChainEvent::ChainCreated {
                    genesis: theirs, ..
                },
                None,
            ) => {
                if **theirs != *genesis {
                    return Err(format!(
                        "position {at}: chain {} was created with another genesis",
                        genesis.chain_id
                    ));
                }
            }
            (domain::chain::ChainEvent::BlockSealed { .. }, Some((height, hash, to))) => {
                if block.height != height + 1
                    || block.prev_hash != hash
                    || block.from_position != to
                {
                    return Err(format!(
                        "position {at}: block {} does not follow block {height}",
                        block.height
                    ));
                }
                let covered = self
                    .pending
                    .partition_point(|(p, _)| *p < block.to_position);
                let leaves: Vec<Leaf> = self.pending.drain(..covered).map(|(_, l)| l).collect();
                // Release 0.1's blocks list bare transaction hashes.
                let listed = match block.version {
                    1 => leaves.iter().map(|l| l.hash).collect::<Vec<_>>() == block.tx_hashes,
                    _ => leaves == block.leaves,
                };
                if !listed {
                    return Err(format!(
                        "position {at}: block {} does not list the transactions of its range",
                        block.height
                    ));
                }
            }
            _ => return Err(format!("position {at}: a chain event out of order")),
        }
        self.last = Some((block.height, block.hash, block.to_position));
        Ok(())
    }
}

/// Replicates `upstream`'s log into `store` on its own thread, for the life of the process.
pub fn follow(store: Arc<dyn EventStore>, upstream: Upstream, mut verifier: Verifier) {
    let spawned = std::thread::Builder::new()
        .name("aitbc-follower".into())
        .spawn(move || {
            if let Err(why) = verifier.resume(&*store) {
                tracing::error!(%why, "the follower cannot read its own copy");
                upstream.status.lock().state = format!("stopped: {why}");
                return;
            }
            loop {
                match replicate_page(&*store, &upstream, &mut verifier) {
                    Ok(()) => {}
                    Err(Stop::Unreachable(why)) => {
                        upstream.status.lock().state = format!("unreachable: {why}");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    Err(Stop::Refused(why)) => {
                        tracing::error!(%why, peer = %upstream.url, "replication stopped");
                        upstream.status.lock().state = format!("refused: {why}");
                        return;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the follower");
    }
}

enum Stop {
    Unreachable(String),
    Refused(String),
}

fn replicate_page(
    store: &dyn EventStore,
    upstream: &Upstream,
    verifier: &mut Verifier,
) -> Result<(), Stop> {
    let from = store.next_position();
    let url = format!(
        "{}/v1/log?from={from}&limit=256&wait_ms=10000",
        upstream.url
    );
    let page: LogPage = upstream
        .agent
        .get(&url)
        .call()
        .map_err(|e| Stop::Unreachable(e.to_string()))?
        .into_json()
        .map_err(|e| Stop::Unreachable(e.to_string()))?;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut events = Vec::with_capacity(page.events.len());
    for (i, e) in page.events.into_iter().enumerate() {
        if e.position != from + i as u64 {
            return Err(Stop::Refused(format!(
                "the peer sent position {} for {}",
                e.position,
                from + i as u64
            )));
        }
        let id = u128::from_str_radix(&e.id, 16)
            .map_err(|_| Stop::Refused(format!("position {}: bad event id", e.position)))?;
        let data = engine
            .decode(&e.data)
            .map_err(|_| Stop::Refused(format!("position {}: bad data", e.position)))?;
        let event = RecordedEvent {
            position: e.position,
            stream: Arc::from(e.stream.as_str()),
            revision: e.revision,
            id: EventId(id),
            event_type: e.event_type,
            data,
            recorded_at_ms: e.recorded_at_ms,
        };
        events.push(event);
    }
    verifier.check_page(&events).map_err(Stop::Refused)?;
    // Appended in order without waiting for each (the log decides them as they are called):
    // one group commit for the page, and the same positions as the peer's.
    let appends: Vec<_> = events
        .iter()
        .map(|e| {
            let expected = match e.revision {
                0 => ExpectedRevision::NoStream,
                r => ExpectedRevision::Exact(r - 1),
            };
            let new = NewEvent {
                id: e.id,
                event_type: e.event_type.clone(),
                data: e.data.clone(),
            };
            store.append(&e.stream, expected, vec![new])
        })
        .collect();
    let outcomes = futures::executor::block_on(futures::future::join_all(appends));
    for (event, outcome) in events.iter().zip(outcomes) {
        match outcome {
            Ok(outcome) if outcome.positions == [event.position] => {}
            other => {
                return Err(Stop::Refused(format!(
                    "position {}: this node's copy diverged: {other:?}",
                    event.position
                )));
            }
        }
    }
    let applied = store.next_position();
    let mut status = upstream.status.lock();
    status.state = "following".into();
    status.applied = applied;
    status.peer_head = page.head;
    status.lag = page.head.saturating_sub(applied);
    status.last_contact_ms = Some(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    );
    for (chain_id, check) in &verifier.chains {
        if let Some((height, ..)) = check.last {
            status.heights.insert(chain_id.clone(), height);
        }
    }
    Ok(())
}

/// `POST /v1/transactions` on a follower: sent to the peer; once the peer committed it, the
/// answer waits (10 s at most) until this node holds the transaction too, so a read here right
/// after sees it, as on the peer.
pub async fn forward(
    app: &App,
    upstream: Upstream,
    envelope: &domain::tx::SignedEnvelope,
) -> Result<HttpResponse, ApiError> {
    let body = serde_json::to_value(envelope).map_err(|e| ApiError::internal(e.to_string()))?;
    let url = upstream.url.clone();
    let answer = web::block(move || upstream.forward(&body))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let (status, body) = answer.map_err(|why| {
        ApiError::new(
            "unavailable",
            format!("this node follows {url}, which did not answer: {why}"),
        )
    })?;
    // Read-your-writes here too: the answer waits until this copy shows the transaction's
    // last effect (its credit, say), not only its debit.
    let last = body["last_position"].as_u64().or(body["position"].as_u64());
    if status == 200
        && let Some(position) = last
    {
        let held = app.projections.wait_applied(position.saturating_add(1));
        let _ = actix_rt::time::timeout(Duration::from_secs(10), held).await;
    }
    let status = actix_web::http::StatusCode::from_u16(status)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(HttpResponse::build(status).json(body))
}

/// On a follower, requests that would write here are refused (503 `unavailable`, naming the
/// peer); reads, `POST /v1/transactions` (forwarded), `POST /v1/proofs/verify` and JSON-RPC
/// (whose `broadcast_tx` is refused the same way) pass.
pub async fn follower_guard(
    request: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::http::Method;
    let passes = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) || matches!(
        request.path(),
        "/v1/transactions" | "/v1/proofs/verify" | "/rpc"
    );
    if passes {
        return Ok(next.call(request).await?.map_into_left_body());
    }
    let peer = request
        .app_data::<Data>()
        .and_then(|app| app.upstream.as_ref().map(|u| u.url.clone()))
        .unwrap_or_default();
    let error = ApiError::new(
        "unavailable",
        format!("this node follows {peer} and writes nothing itself: send this request there"),
    );
    let response = actix_web::ResponseError::error_response(&error);
    Ok(request.into_response(response).map_into_right_body())
}
