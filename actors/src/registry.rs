//! Routes commands to wallet actors, activating them on demand.
//!
//! Actors are spread over a fixed pool of arbiters (threads) by a hash of their key, so the
//! placement is stable and independent of which thread asks. A command that reaches an actor
//! which is stopping (passivation, or a restart after a failed append) is retried on a fresh
//! activation; optimistic concurrency in the log makes even a brief overlap of two activations
//! of one stream safe.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use dashmap::DashMap;
use domain::address::Address;
use domain::money::Amount;
use domain::tx::VerifiedTx;
use domain::wallet::{Credit, WalletState};
use store::EventStore;

use crate::error::CommandError;
use crate::limits::{ROUTE_ATTEMPTS_MAX, WALLET_IDLE_TIMEOUT};
use crate::wallet::{
    ApplyCredit, Committed, Fund, GetState, SignAndTransfer, SubmitTransfer, WalletActor,
};

/// Identity of a wallet actor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WalletKey {
    /// Chain.
    pub chain_id: Arc<str>,
    /// Account.
    pub address: Address,
}

struct Inner {
    actors: DashMap<WalletKey, Addr<WalletActor>>,
    arbiters: Vec<ArbiterHandle>,
    store: Arc<dyn EventStore>,
    /// A wallet idle this long passivates.
    idle_timeout: Duration,
    /// Chain id → minimum fee.
    chains: BTreeMap<Arc<str>, Amount>,
}

/// Handle to all wallet actors of a node. Cheap to clone.
#[derive(Clone)]
pub struct WalletRegistry {
    inner: Arc<Inner>,
}

impl WalletRegistry {
    /// A registry for `chains` (id → minimum fee) whose actors run on `arbiters`.
    pub fn new(
        store: Arc<dyn EventStore>,
        chains: BTreeMap<Arc<str>, Amount>,
        arbiters: Vec<ArbiterHandle>,
    ) -> Self {
        assert!(!arbiters.is_empty(), "at least one arbiter");
        WalletRegistry {
            inner: Arc::new(Inner {
                actors: DashMap::new(),
                arbiters,
                store,
                chains,
                idle_timeout: WALLET_IDLE_TIMEOUT,
            }),
        }
    }

    /// The same registry with another passivation timeout (tests use a short one). Call it
    /// before the first command.
    pub fn with_idle_timeout(self, idle_timeout: Duration) -> Self {
        let inner = Arc::try_unwrap(self.inner)
            .unwrap_or_else(|_| panic!("set the idle timeout before use"));
        WalletRegistry {
            inner: Arc::new(Inner {
                idle_timeout,
                ..inner
            }),
        }
    }

    /// How long an idle wallet stays activated.
    pub fn idle_timeout(&self) -> Duration {
        self.inner.idle_timeout
    }

    fn key(&self, chain_id: &str, address: Address) -> Result<WalletKey, CommandError> {
        let (chain_id, _) = self.inner.chains.get_key_value(chain_id).ok_or_else(|| {
            CommandError::NotFound(format!("chain {chain_id:?} is not hosted here"))
        })?;
        Ok(WalletKey {
            chain_id: chain_id.clone(),
            address,
        })
    }

    fn activate(&self, key: &WalletKey) -> Addr<WalletActor> {
        if let Some(addr) = self.inner.actors.get(key)
            && addr.connected()
        {
            return addr.clone();
        }
        let mut slot = self
            .inner
            .actors
            .entry(key.clone())
            .or_insert_with(|| self.start(key));
        if !slot.connected() {
            *slot = self.start(key);
        }
        slot.clone()
    }

    fn start(&self, key: &WalletKey) -> Addr<WalletActor> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        let arbiter = &self.inner.arbiters[(hasher.finish() as usize) % self.inner.arbiters.len()];
        let min_fee = self.inner.chains[&key.chain_id];
        let (key, store, registry) = (key.clone(), self.inner.store.clone(), self.clone());
        WalletActor::start_in_arbiter(arbiter, move |_| {
            WalletActor::new(key, min_fee, store, registry)
        })
    }

    /// Removes `addr` as the activation of `key` (called by a stopping actor).
    pub(crate) fn forget(&self, key: &WalletKey, addr: &Addr<WalletActor>) {
        self.inner
            .actors
            .remove_if(key, |_, current| current == addr);
    }

    async fn call<M, R>(&self, key: WalletKey, message: M) -> Result<R, CommandError>
    where
        M: Message<Result = Result<R, CommandError>> + Send + Clone + 'static,
        M::Result: Send,
        WalletActor: Handler<M>,
    {
        for _ in 0..ROUTE_ATTEMPTS_MAX {
            let addr = self.activate(&key);
            match addr.send(message.clone()).await {
                Ok(Err(CommandError::Restarting)) | Err(MailboxError::Closed) => {
                    self.forget(&key, &addr);
                }
                Ok(result) => return result,
                Err(MailboxError::Timeout) => {
                    return Err(CommandError::Unavailable("wallet actor timed out".into()));
                }
            }
        }
        Err(CommandError::Unavailable(format!(
            "wallet {} kept restarting",
            key.address
        )))
    }

    /// Submits a verified transfer to its sender's wallet.
    pub async fn submit(&self, tx: VerifiedTx) -> Result<Committed, CommandError> {
        let key = self.key(&tx.payload.chain_id, tx.payload.sender)?;
        self.call(key, SubmitTransfer(Box::new(tx))).await
    }

    /// Signs (with the next nonce) and submits a transfer from a key the node holds.
    pub async fn sign_and_submit(
        &self,
        chain_id: &str,
        order: SignAndTransfer,
    ) -> Result<Committed, CommandError> {
        let key = self.key(chain_id, order.key.address())?;
        self.call(key, order).await
    }

    /// Applies a credit (idempotent).
    pub async fn credit(
        &self,
        chain_id: &str,
        to: Address,
        credit: Credit,
    ) -> Result<u64, CommandError> {
        let key = self.key(chain_id, to)?;
        self.call(key, ApplyCredit(credit)).await
    }

    /// Funds an account at genesis (idempotent).
    pub async fn fund(
        &self,
        chain_id: &str,
        to: Address,
        amount: Amount,
    ) -> Result<u64, CommandError> {
        let key = self.key(chain_id, to)?;
        self.call(key, Fund(amount)).await
    }

    /// Current state of a wallet, straight from its actor.
    pub async fn state(
        &self,
        chain_id: &str,
        address: Address,
    ) -> Result<WalletState, CommandError> {
        let key = self.key(chain_id, address)?;
        self.call(key, GetState).await
    }

    /// Delivers every credit a committed transfer owes, concurrently. Returns the highest
    /// position written (or found).
    pub async fn deliver_credits(&self, committed: &Committed) -> Result<u64, CommandError> {
        let deliveries = committed
            .credits
            .iter()
            .map(|(to, credit)| self.credit(&committed.chain_id, *to, credit.clone()));
        let positions = futures::future::try_join_all(deliveries).await?;
        Ok(positions.into_iter().fold(committed.position, u64::max))
    }

    /// Number of activated wallets.
    pub fn active(&self) -> usize {
        self.inner.actors.len()
    }
}
