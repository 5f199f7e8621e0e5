//! The application service behind the handlers: submits transactions end to end (verify, route
//! to the sender's wallet, deliver credits, wait until readable), serves reads from the
//! projections, runs the faucet and the custodial wallets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix::Addr;
use actors::chain::ChainActor;
use actors::transfers::TransferManager;
use actors::wallet::{Committed, WalletRegistry};
use dashmap::DashMap;
use domain::TxError;
use domain::address::Address;
use domain::codec::DomainEvent;
use domain::genesis::Genesis;
use domain::hash::Hash32;
use domain::keys::PublicKey;
use domain::keys::SigningKey;
use domain::money::Amount;
use domain::tx::{SignedEnvelope, TxAction, VerifiedTx};
use domain::wallet::{DebitSummary, SignOrder, WalletEvent};
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
    /// Faucet key and per-request maximum, if the chain has a faucet.
    pub faucet: Option<(SigningKey, Amount)>,
    /// Milliseconds between blocks.
    pub block_time_ms: u64,
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
}

/// What answering a resubmission needs of a transaction, kept without cloning the whole
/// transaction on the hot path.
struct Resubmission {
    chain_id: String,
    sender: Address,
    summary: DebitSummary,
}

impl Resubmission {
    fn of(tx: &VerifiedTx) -> Resubmission {
        let TxAction::Transfer(body) = &tx.action;
        Resubmission {
            chain_id: tx.payload.chain_id.clone(),
            sender: tx.payload.sender,
            summary: DebitSummary {
                tx_hash: tx.hash,
                nonce: tx.payload.nonce,
                to: body.to,
                amount: body.amount,
                fee: tx.payload.fee,
                treasury: Address::treasury(&tx.payload.chain_id),
                committed_at_ms: 0,
            },
        }
    }

    /// The already committed transfer at `position`: it owes the same credits as the first time.
    fn committed(&self, position: u64) -> Committed {
        Committed {
            chain_id: Arc::from(self.chain_id.as_str()),
            tx_hash: self.summary.tx_hash,
            sender: self.sender,
            position,
            credits: self.summary.credits(self.sender),
            duplicate: true,
        }
    }
}

/// The node's service.
pub struct App {
    /// The event log.
    pub store: Arc<dyn EventStore>,
    /// Wallet actors.
    pub registry: WalletRegistry,
    /// Read models.
    pub projections: ProjectionHandle,
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
    /// Parsed public keys of recent senders (parsing is a third of a signature check).
    pub key_cache: DashMap<[u8; 32], PublicKey>,
}

/// The long-running actors a node cannot serve correctly without.
pub struct Components {
    /// The explorer projection.
    pub projection: Addr<ProjectionRunner>,
    /// The transfer process manager.
    pub manager: Addr<TransferManager>,
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
        if !self.manager.connected() {
            stopped.push("transfer-manager".to_string());
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
        let permit = self
            .kdf_permits
            .clone()
            .acquire_owned()
            .await
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

    /// The signed envelope kept in the debit event at `position`.
    pub async fn debit_envelope(&self, position: u64) -> Result<SignedEnvelope, ApiError> {
        let events = self
            .store
            .read_all(position, 1)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let event = events.first().filter(|e| e.position == position);
        match event.map(|e| DomainEvent::decode(&e.event_type, &e.data, e.recorded_at_ms)) {
            Some(Ok(DomainEvent::Wallet(WalletEvent::Debited(debit)))) => Ok(debit.envelope),
            _ => Err(ApiError::internal(format!(
                "log position {position} is not a debit"
            ))),
        }
    }

    /// Writes wait for recovery (log replayed, open transfers finished, projections caught up):
    /// until then they are refused at once rather than left hanging.
    /// The same holds once a part the write path needs (projection, transfer manager) stopped.
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
        self.ensure_ready()?;
        let tx = envelope.verify_with(|bytes| self.parse_key(bytes))?;
        self.remember_key(&tx);
        if !self.chains.contains_key(&tx.payload.chain_id) {
            let hosted: Vec<&str> = self.chains.keys().map(String::as_str).collect();
            return Err(TxError::WrongChain {
                expected: hosted.join(", "),
                got: tx.payload.chain_id.clone(),
            }
            .into());
        }
        if let Some(known) = self.projections.explorer.tx(&tx.hash) {
            // Already committed: make sure its credits are there too before answering the same.
            return self
                .finish(Resubmission::of(&tx).committed(known.position))
                .await;
        }
        let (hash, resubmission) = (tx.hash, Resubmission::of(&tx));
        match self.registry.submit(tx).await {
            Ok(committed) => self.finish(committed).await,
            Err(actors::CommandError::Rejected(TxError::BadNonce { expected, got }))
                if got < expected =>
            {
                // Maybe an old resubmission that the wallet no longer remembers.
                self.wait_readable(self.store.next_position()).await?;
                match self.projections.explorer.tx(&hash) {
                    Some(known) => self.finish(resubmission.committed(known.position)).await,
                    None => Err(TxError::BadNonce { expected, got }.into()),
                }
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Waits until the explorer has applied every position before `position`.
    async fn wait_readable(&self, position: u64) -> Result<(), ApiError> {
        self.projections
            .wait_applied(position)
            .await
            .map_err(|stopped| ApiError::new("unavailable", stopped.to_string()))
    }

    /// Delivers a committed transfer's credits (idempotent) and waits until all of it is
    /// readable. If delivery fails the debit still stands and the transfer manager finishes it:
    /// the error names the transaction so the client can look it up instead of paying twice.
    async fn finish(&self, committed: Committed) -> Result<TxAccepted, ApiError> {
        let last = match self.registry.deliver_credits(&committed).await {
            Ok(last) => last,
            Err(error) => {
                tracing::warn!(tx = %committed.tx_hash, %error, "credits not delivered on the request path");
                return Err(ApiError::new(
                    "unavailable",
                    format!(
                        "transaction {} is committed at log position {} but its credits are still being delivered \
                         ({error}); look it up with GET /v1/transactions/{}",
                        committed.tx_hash, committed.position, committed.tx_hash
                    ),
                ));
            }
        };
        self.wait_readable(last + 1).await.map_err(|error| {
            ApiError::new(
                "unavailable",
                format!(
                    "transaction {} is committed at log position {} but cannot be shown as read: {}",
                    committed.tx_hash, committed.position, error.message
                ),
            )
        })?;
        Ok(TxAccepted {
            tx_hash: committed.tx_hash,
            status: "committed",
            position: committed.position,
        })
    }

    /// Pays `amount` from the chain's faucet to `to` through an ordinary signed transfer.
    pub async fn faucet(
        &self,
        chain: Option<&str>,
        to: Address,
        amount: Amount,
    ) -> Result<TxAccepted, ApiError> {
        self.ensure_ready()?;
        let chain_id = self.chain_id(chain)?;
        let hosted = &self.chains[chain_id];
        let Some((key, max)) = &hosted.faucet else {
            return Err(ApiError::not_found(format!(
                "chain {chain_id} has no faucet"
            )));
        };
        if amount == Amount::ZERO || amount > *max {
            return Err(ApiError::malformed(format!(
                "faucet amount must be between 1 and {max} base units"
            )));
        }
        let order = SignOrder {
            key: key.clone(),
            to,
            amount,
            fee: hosted.genesis.min_fee,
        };
        let committed = self.registry.sign_and_submit(chain_id, order).await?;
        self.finish(committed).await
    }

    /// Sends from a custodial wallet. Argon2id runs on the blocking pool.
    pub async fn custodial_send(
        self: &Arc<Self>,
        chain: Option<&str>,
        from: Address,
        to: Address,
        amount: Amount,
        fee: Option<Amount>,
        passphrase: Zeroizing<String>,
    ) -> Result<TxAccepted, ApiError> {
        self.ensure_ready()?;
        if amount == Amount::ZERO {
            return Err(ApiError::malformed("amount must be positive"));
        }
        let chain_id = self.chain_id(chain)?.to_string();
        let key = self
            .with_custody(move |custody| custody.unlock(&from, &passphrase))
            .await?;
        let fee = fee.unwrap_or(self.chains[&chain_id].genesis.min_fee);
        let committed = self
            .registry
            .sign_and_submit(
                &chain_id,
                SignOrder {
                    key,
                    to,
                    amount,
                    fee,
                },
            )
            .await?;
        self.finish(committed).await
    }
}
