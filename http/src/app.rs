//! The application service behind the handlers: submits transactions end to end (verify, route
//! to the sender's wallet, deliver credits, wait until readable), serves reads from the
//! projections, runs the faucet and the custodial wallets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix::Addr;
use actors::chain::ChainActor;
use actors::clock::SharedClock;
use actors::protocol::{Progress, ProtocolManager};
use actors::router::{Recorded, Router};
use dashmap::DashMap;
use domain::TxError;
use domain::address::Address;
use domain::codec::DomainEvent;
use domain::genesis::Genesis;
use domain::hash::Hash32;
use domain::job::JobInput;
use domain::keys::PublicKey;
use domain::keys::SigningKey;
use domain::kinds::{MintBody, TransferBody};
use domain::money::Amount;
use domain::protocol::stream_owner;
use domain::tx::{SignedEnvelope, VerifiedTx};
use domain::vesting::Refusal;
use domain::wallet::{SignOrder, SignedAction, WalletEvent};
use domain::wgsl::ShaderError;
use projections::explorer::Explorer;
use projections::runner::{ProjectionHandle, ProjectionRunner};
use serde::Serialize;
use store::EventStore;
use zeroize::Zeroizing;

use crate::custody::Custody;
use crate::error::ApiError;
use crate::limits::KEY_CACHE_MAX;

/// A hosted chain as the service needs it.
pub struct HostedChain {
    /// Genesis.
    pub genesis: Genesis,
    /// The chain's faucet, if it has one.
    pub faucet: Option<Faucet>,
    /// Milliseconds between blocks.
    pub block_time_ms: u64,
}

/// A chain's faucet: its key and what one request may ask for.
pub struct Faucet {
    /// The faucet account's key (the minter of the assets it hands out besides the native).
    pub key: SigningKey,
    /// Most one request may ask for of the native asset.
    pub max_amount: Amount,
    /// Most one request may ask for of each other asset it hands out.
    pub max_asset_amounts: BTreeMap<String, Amount>,
    /// How fast it hands out.
    pub gate: crate::faucet_limits::FaucetGate,
}

/// A custodial send's transfer.
pub struct CustodialSend {
    /// The chain (the default when none).
    pub chain: Option<String>,
    /// The custodial wallet.
    pub from: Address,
    /// The recipient.
    pub to: Address,
    /// How much.
    pub amount: Amount,
    /// Of which asset (the native one when none).
    pub asset: Option<String>,
    /// The fee (the chain's minimum when none).
    pub fee: Option<Amount>,
}

/// Who failed to unlock a custodial wallet, for the back-off.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Unlocker {
    /// The wallet tried.
    Wallet(Address),
    /// The client's address.
    Client(std::net::IpAddr),
}

/// Answer to an accepted transaction (API.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TxAccepted {
    /// Hash.
    pub tx_hash: Hash32,
    /// Always `committed`: durable in the log and applied.
    pub status: &'static str,
    /// Log position of the transaction's debit.
    pub position: u64,
    /// Log position of its last effect: a copy of the log holding every position up to this
    /// one (a follower's) shows all of the transaction.
    pub last_position: u64,
    /// `applied`, or `refused` when a module refused it after it committed (its nonce and
    /// fee are used; nothing else changed).
    pub outcome: &'static str,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Refusal>,
}

/// The node's service.
pub struct App {
    /// The event log.
    pub store: Arc<dyn EventStore>,
    /// The peer this node follows (`--follow`): it writes nothing itself then.
    pub upstream: Option<crate::replication::Upstream>,
    /// Slots of the live block streams (`crate::feed`).
    pub block_feeds: Arc<tokio::sync::Semaphore>,
    /// Failed custodial unlocks.
    pub unlock_failures: crate::custodial_guard::Backoff<Unlocker>,
    /// Sends and faucet requests made under an `Idempotency-Key`.
    pub idempotency: crate::custodial_guard::Idempotency,
    /// Whether a custodial send needs the wallet's credential (`[custody]`).
    pub require_credential: bool,
    /// The node's clock (the one decisions read).
    pub clock: SharedClock,
    /// The aggregates, by what the protocol's steps address.
    pub router: Router,
    /// Read models.
    pub projections: ProjectionHandle<Explorer>,
    /// Chains by id.
    pub chains: BTreeMap<String, HostedChain>,
    /// Chain used when a request names none.
    pub default_chain: String,
    /// Custodial keystore.
    pub custody: Custody,
    /// Set once recovery is complete (see `/health`).
    pub ready: Arc<AtomicBool>,
    /// Bounds concurrent Argon2id runs (19 MiB each), so unauthenticated custodial requests
    /// cannot exhaust memory or the blocking pool.
    pub kdf_permits: Arc<tokio::sync::Semaphore>,
    /// The node's long-running actors, for `/health`.
    pub components: Components,
    /// What the protocol manager has seen (which committed transactions are complete).
    pub progress: Arc<Progress>,
    /// Parsed public keys of recent senders (parsing is a third of a signature check).
    pub key_cache: DashMap<[u8; 32], PublicKey>,
    /// Matches open jobs with miners.
    pub scheduler: actors::scheduler::Scheduler,
    /// Signed miner requests seen lately (replays are refused) and miners' last contact.
    pub miner_requests: crate::jobs::MinerRequests,
    /// Job inputs and results too large for a transaction.
    pub blobs: Arc<store::blobs::BlobStore>,
}

/// The long-running actors a node cannot serve correctly without.
pub struct Components {
    /// The explorer projection.
    pub projection: Addr<ProjectionRunner<Explorer>>,
    /// The protocol's process manager.
    pub manager: Option<Addr<ProtocolManager>>,
    /// Block sealers by chain.
    pub sealers: Vec<(String, Addr<ChainActor>)>,
}

impl Components {
    /// Names of the components that have stopped.
    pub fn stopped(&self) -> Vec<String> {
        let mut stopped = Vec::new();
        if !self.projection.connected() {
            stopped.push("projection".to_string());
        }
        if self.manager.as_ref().is_some_and(|m| !m.connected()) {
            stopped.push("protocol-manager".to_string());
        }
        for (chain, sealer) in &self.sealers {
            if !sealer.connected() {
                stopped.push(format!("sealer/{chain}"));
            }
        }
        stopped
    }
}

impl App {
    /// The chain named, or the default one.
    pub fn chain_id<'a>(&'a self, requested: Option<&'a str>) -> Result<&'a str, ApiError> {
        let id = requested.unwrap_or(&self.default_chain);
        if !self.chains.contains_key(id) {
            return Err(ApiError::not_found(format!(
                "chain {id:?} is not hosted by this node"
            )));
        }
        Ok(id)
    }

    /// Whether recovery is complete.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Runs a custodial keystore operation (Argon2id) on the blocking pool, at most
    /// [`crate::limits::KDF_CONCURRENCY_MAX`] at a time.
    pub async fn with_custody<T: Send + 'static>(
        self: &Arc<Self>,
        operation: impl FnOnce(&Custody) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        // The permit moves into the blocking task: a client that hangs up cannot free it while
        // its derivation still runs.
        // A bounded wait: junk requests queued ahead cannot hold real ones for long.
        let permit = tokio::time::timeout(
            crate::limits::KDF_WAIT_MAX,
            self.kdf_permits.clone().acquire_owned(),
        )
        .await
        .map_err(|_| ApiError {
            retry_after_s: Some(1),
            ..ApiError::new("unavailable", "custodial wallets are busy; try again")
        })?
        .map_err(|_| ApiError::internal("shutting down"))?;
        let app = self.clone();
        actix_web::web::block(move || {
            let result = operation(&app.custody);
            drop(permit);
            result
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
    }

    /// The debit event at `position`, as the protocol replays it.
    async fn recorded_debit(&self, position: u64) -> Result<Recorded, ApiError> {
        let events = self
            .store
            .read_all(position, 1)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let event = events.into_iter().next().filter(|e| e.position == position);
        match event.map(|e| {
            let decoded = DomainEvent::decode(&e.event_type, &e.data, e.recorded_at_ms);
            (stream_owner(&e.stream), decoded)
        }) {
            Some((Some(owner), Ok(event @ DomainEvent::Wallet(WalletEvent::Debited(_))))) => {
                Ok(Recorded {
                    owner,
                    event,
                    position,
                })
            }
            _ => Err(ApiError::internal(format!(
                "log position {position} is not a debit"
            ))),
        }
    }

    /// The signed envelope kept in the debit event at `position`.
    pub async fn debit_envelope(&self, position: u64) -> Result<SignedEnvelope, ApiError> {
        match self.recorded_debit(position).await?.event {
            DomainEvent::Wallet(WalletEvent::Debited(debit)) => Ok(debit.envelope),
            _ => unreachable!("recorded_debit returns debits"),
        }
    }

    /// Writes wait for recovery (log replayed, open transfers finished, projections caught up):
    /// until then they are refused at once rather than left hanging.
    /// The same holds once a part the write path needs (projection, protocol manager) stopped.
    fn ensure_ready(&self) -> Result<(), ApiError> {
        if !self.is_ready() {
            return Err(ApiError::new(
                "unavailable",
                "the node is starting: it is still recovering its log; retry shortly",
            ));
        }
        let stopped = self.components.stopped();
        if !stopped.is_empty() {
            let message = format!(
                "the node is degraded ({} stopped) and accepts no writes",
                stopped.join(", ")
            );
            return Err(ApiError::new("unavailable", message));
        }
        Ok(())
    }

    /// Parses a public key through the cache.
    fn parse_key(&self, bytes: &[u8; 32]) -> Option<PublicKey> {
        match self.key_cache.get(bytes) {
            Some(key) => Some(*key),
            None => PublicKey::from_bytes(bytes),
        }
    }

    /// Remembers the key of a sender whose signature verified (never of a forger: junk
    /// signatures must not be able to flush the cache).
    fn remember_key(&self, tx: &VerifiedTx) {
        let bytes = tx.public_key.to_bytes();
        if self.key_cache.contains_key(&bytes) {
            return;
        }
        if self.key_cache.len() >= KEY_CACHE_MAX {
            self.key_cache.clear();
        }
        self.key_cache.insert(bytes, tx.public_key);
    }

    /// Verifies and executes a signed transaction; returns once its effects are readable.
    /// Resubmitting the same envelope returns the same answer and changes nothing.
    pub async fn submit(&self, envelope: SignedEnvelope) -> Result<TxAccepted, ApiError> {
        if let Some(upstream) = &self.upstream {
            return Err(ApiError::new(
                "unavailable",
                format!(
                    "this node follows {}: send the transaction there (or to POST /v1/transactions here)",
                    upstream.url
                ),
            ));
        }
        self.ensure_ready()?;
        let claim = envelope.signature_claim(|bytes| self.parse_key(bytes))?;
        let held = crate::signatures::check(claim)
            .await
            .ok_or(TxError::BadSignature)?;
        let mut tx = match envelope.verified(&held) {
            // An agent's transaction signed by one of its callers.
            Err(TxError::SenderMismatch { .. }) => {
                let tx = envelope.verified_as_caller(&held)?;
                if self.chains.contains_key(&tx.payload.chain_id) {
                    let (chain_id, sender) = (&tx.payload.chain_id, tx.payload.sender);
                    let key = &tx.envelope.public_key;
                    self.router.check_caller(chain_id, sender, key).await?;
                }
                tx
            }
            verified => verified?,
        };
        self.remember_key(&tx);
        if !self.chains.contains_key(&tx.payload.chain_id) {
            let hosted: Vec<&str> = self.chains.keys().map(String::as_str).collect();
            return Err(TxError::WrongChain {
                expected: hosted.join(", "),
                got: tx.payload.chain_id.clone(),
            }
            .into());
        }
        let hash = tx.hash;
        // A resubmission of a committed transaction fails the checks of a new one (its nonce is
        // used, a claim is made, its module may be paused since): only then is it looked up, so
        // a new transaction never searches the history.
        match self.router.precheck(&tx).await {
            Ok(deposit) => tx.deposit = deposit,
            Err(error) => return self.known_or(hash, error.into()).await,
        }
        // After the sender's nonce and funds: a job's input may cost the node work to check.
        self.check_job_input(&tx).await?;
        match self.router.wallets().submit(tx).await {
            Ok(committed) => self.finish(committed.into()).await,
            Err(actors::CommandError::Rejected(TxError::BadNonce { expected, got }))
                if got < expected =>
            {
                // Maybe an old resubmission that the wallet no longer remembers.
                let error = TxError::BadNonce { expected, got }.into();
                self.known_or(hash, error).await
            }
            Err(error) => Err(error.into()),
        }
    }

    /// A job whose input is a blob needs the blob stored and well formed, and a shader needs
    /// to pass the node's GPU executor's validation (else nothing is escrowed).
    async fn check_job_input(&self, tx: &VerifiedTx) -> Result<(), ApiError> {
        let domain::kinds::TxAction::SubmitJob(request) = &tx.action else {
            return Ok(());
        };
        let (blobs, input) = (self.blobs.clone(), request.input.clone());
        let shaders = self.router.shaders().cloned();
        let models = self.router.models().cloned();
        // Reading and hashing up to 64 MiB: off the request thread.
        actix_web::web::block(move || -> Result<(), ApiError> {
            let mut bytes = Vec::new();
            for hash in input.blobs() {
                let blob = blobs
                    .get(&hash)
                    .map_err(|e| ApiError::new("unavailable", e.to_string()))?
                    .ok_or_else(|| {
                        ApiError::not_found(format!("no blob {hash}: upload it first"))
                    })?;
                bytes.push(blob);
            }
            input.check_blobs(&bytes)?;
            if let JobInput::LlmGenerate(request) = &input {
                let Some(models) = models else {
                    return Err(TxError::UnsupportedKind(
                        "this node has no language model: it takes no llm_generate job".into(),
                    )
                    .into());
                };
                return Ok(models.admit(request)?);
            }
            let JobInput::Wgsl(shader) = &input else {
                return Ok(());
            };
            let Some(shaders) = shaders else {
                return Err(TxError::UnsupportedKind(
                    "this node has no GPU executor: it takes no wgsl job".into(),
                )
                .into());
            };
            shaders.validate(shader, &bytes).map_err(|e| match e {
                ShaderError::Refused(error) => error.into(),
                ShaderError::NotRun(reason) | ShaderError::Busy(reason) => {
                    ApiError::new("unavailable", reason)
                }
            })
        })
        .await
        .map_err(|e| ApiError::new("unavailable", e.to_string()))?
    }

    /// The answer of committed transaction `hash` (after making sure every step is done, and
    /// once the explorer has caught up with the log), or `error` if it was never committed.
    async fn known_or(&self, hash: Hash32, error: ApiError) -> Result<TxAccepted, ApiError> {
        self.wait_readable(self.store.next_position()).await?;
        match self.projections.read_model.tx(&hash) {
            Some(known) => {
                self.finish(self.recorded_debit(known.position).await?)
                    .await
            }
            None => Err(error),
        }
    }

    /// Waits until the explorer has applied every position before `position`.
    async fn wait_readable(&self, position: u64) -> Result<(), ApiError> {
        self.projections
            .wait_applied(position)
            .await
            .map_err(|stopped| ApiError::new("unavailable", stopped.to_string()))
    }

    /// Runs every step a committed transaction owes (idempotent) and waits until all of it is
    /// readable. If a step fails the debit still stands and the protocol manager finishes it:
    /// the error names the transaction so the client can look it up instead of paying twice.
    async fn finish(&self, debit: Recorded) -> Result<TxAccepted, ApiError> {
        let (tx_hash, position) = match &debit.event {
            DomainEvent::Wallet(WalletEvent::Debited(d)) => (d.tx_hash, debit.position),
            _ => unreachable!("transactions finish from their debit"),
        };
        let completion = match self.router.complete(debit).await {
            Ok(completion) => completion,
            Err(error) => {
                tracing::warn!(tx = %tx_hash, %error, "protocol steps not finished on the request path");
                return Err(ApiError::new(
                    "unavailable",
                    format!(
                        "transaction {tx_hash} is committed at log position {position} but its effects are still \
                         being applied ({error}); look it up with GET /v1/transactions/{tx_hash}"
                    ),
                ));
            }
        };
        self.wait_readable(completion.last_position + 1)
            .await
            .map_err(|error| {
                ApiError::new(
                    "unavailable",
                    format!(
                        "transaction {tx_hash} is committed at log position {position} but cannot be shown as read: {}",
                        error.message
                    ),
                )
            })?;
        Ok(TxAccepted {
            tx_hash,
            status: "committed",
            position,
            last_position: completion.last_position,
            outcome: if completion.refused.is_some() {
                "refused"
            } else {
                "applied"
            },
            reason: completion.refused,
        })
    }

    /// Pays `amount` of `asset` from the chain's faucet to `to` through an ordinary signed
    /// transaction: a transfer of the native asset, a mint of another one whose minter is the
    /// faucet's key.
    pub async fn faucet(
        &self,
        chain: Option<&str>,
        to: Address,
        amount: Amount,
        asset: Option<&str>,
    ) -> Result<TxAccepted, ApiError> {
        self.ensure_ready()?;
        let chain_id = self.chain_id(chain)?;
        let hosted = &self.chains[chain_id];
        let Some(faucet) = &hosted.faucet else {
            return Err(ApiError::not_found(format!(
                "chain {chain_id} has no faucet"
            )));
        };
        let asset = domain::asset::normalize(asset);
        let max = match &asset {
            None => Some(faucet.max_amount),
            Some(symbol) => faucet.max_asset_amounts.get(symbol).copied(),
        };
        let Some(max) = max else {
            return Err(ApiError::malformed(format!(
                "the faucet of {chain_id} does not hand out {}",
                domain::asset::symbol(&asset)
            )));
        };
        if amount == Amount::ZERO || amount > max {
            return Err(ApiError::malformed(format!(
                "faucet amount must be between 1 and {max} base units"
            )));
        }
        // Last of the checks that cost nothing, so a refused request takes nothing.
        let now_ms = self.clock.now_ms();
        faucet
            .gate
            .take(to, asset.as_deref(), amount, max, now_ms)?;
        let key = &faucet.key;
        let action = match asset {
            None => SignedAction::Transfer(TransferBody {
                to,
                amount,
                asset: None,
            }),
            Some(symbol) => {
                let spec = hosted.genesis.asset(&symbol).ok_or_else(|| {
                    ApiError::malformed(format!("asset {symbol} is not declared on {chain_id}"))
                })?;
                if spec.minter != Some(key.address()) {
                    return Err(ApiError::malformed(format!(
                        "the faucet of {chain_id} cannot mint {symbol}"
                    )));
                }
                SignedAction::Mint(MintBody {
                    to,
                    asset: symbol,
                    amount,
                })
            }
        };
        self.router
            .check_sendable(chain_id, action.kind(), &key.address())?;
        let order = SignOrder {
            key: key.clone(),
            action,
            fee: hosted.genesis.min_fee,
        };
        let committed = self
            .router
            .wallets()
            .sign_and_submit(chain_id, order)
            .await?;
        self.finish(committed.into()).await
    }

    /// Sends from a custodial wallet, unlocked with its passphrase and credential (`secrets`)
    /// for a client at `client`. Argon2id runs on the blocking pool; failed unlocks back off per
    /// wallet and per client.
    pub async fn custodial_send(
        self: &Arc<Self>,
        send: CustodialSend,
        secrets: (Zeroizing<String>, Option<Zeroizing<String>>),
        client: Option<std::net::IpAddr>,
    ) -> Result<TxAccepted, ApiError> {
        let CustodialSend {
            chain,
            from,
            to,
            amount,
            asset,
            fee,
        } = send;
        self.ensure_ready()?;
        if amount == Amount::ZERO {
            return Err(ApiError::malformed("amount must be positive"));
        }
        let chain_id = self.chain_id(chain.as_deref())?.to_string();
        let asset = domain::asset::normalize(asset.as_deref());
        if let Some(symbol) = &asset
            && self.chains[&chain_id].genesis.asset(symbol).is_none()
        {
            return Err(ApiError::malformed(format!(
                "asset {symbol} is not declared on {chain_id}"
            )));
        }
        self.router.check_sendable(&chain_id, "transfer", &from)?;
        let mut tried = vec![Unlocker::Wallet(from)];
        tried.extend(client.map(Unlocker::Client));
        self.unlock_failures.check(&tried, self.clock.now_ms())?;
        let required = self.require_credential;
        let (passphrase, credential) = secrets;
        let unlocked = self
            .with_custody(move |custody| {
                custody.unlock(
                    &from,
                    &passphrase,
                    credential.as_deref().map(|c| c.as_str()),
                    required,
                )
            })
            .await;
        let key = match unlocked {
            Ok(key) => {
                self.unlock_failures.succeeded(&Unlocker::Wallet(from));
                key
            }
            Err(error) => {
                if error.code == "unauthorized" {
                    self.unlock_failures.failed(&tried, self.clock.now_ms());
                }
                return Err(error);
            }
        };
        let fee = fee.unwrap_or(self.chains[&chain_id].genesis.min_fee);
        let order = SignOrder {
            key,
            action: SignedAction::Transfer(TransferBody { to, amount, asset }),
            fee,
        };
        let committed = self
            .router
            .wallets()
            .sign_and_submit(&chain_id, order)
            .await?;
        self.finish(committed.into()).await
    }
}
