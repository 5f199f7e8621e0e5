//! Wallets on the generic host: the typed entry points the node uses (submit a transfer, sign
//! one with a held key, deliver a credit, fund at genesis), answered with what the transfer
//! protocol needs to finish a transfer.

use std::collections::BTreeMap;
use std::sync::Arc;

use domain::address::Address;
use domain::genesis::Genesis;
use domain::hash::Hash32;
use domain::money::Amount;
use domain::tx::VerifiedTx;
use domain::wallet::{
    Credit, Debit, SignOrder, Wallet, WalletCommand, WalletEvent, WalletFacts, WalletId,
    WalletState,
};

use crate::aggregate::Applied;
use crate::error::CommandError;
use crate::registry::Registry;

/// A transaction whose debit is durable in the sender's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// Chain.
    pub chain_id: Arc<str>,
    /// Sender.
    pub sender: Address,
    /// Log position of the debit.
    pub position: u64,
    /// The debit.
    pub debit: Box<Debit>,
    /// `true` when this answer is for a resubmission of an already committed transaction.
    pub duplicate: bool,
}

impl Committed {
    /// The transaction's hash.
    pub fn tx_hash(&self) -> Hash32 {
        self.debit.tx_hash
    }
}

/// Handle to every wallet actor of a node. Cheap to clone.
#[derive(Clone)]
pub struct WalletRegistry {
    registry: Registry<Wallet>,
}

impl WalletRegistry {
    /// Wallets on `registry`.
    pub fn new(registry: Registry<Wallet>) -> Self {
        WalletRegistry { registry }
    }

    /// The generic registry underneath.
    pub fn registry(&self) -> &Registry<Wallet> {
        &self.registry
    }

    fn id(chain_id: &str, address: Address) -> WalletId {
        WalletId {
            chain_id: Arc::from(chain_id),
            address,
        }
    }

    async fn debit(&self, id: WalletId, command: WalletCommand) -> Result<Committed, CommandError> {
        let applied = self.registry.execute(id.clone(), command).await?;
        let duplicate = applied.duplicate;
        match applied.events.into_iter().next() {
            Some((WalletEvent::Debited(debit), position)) => Ok(Committed {
                chain_id: id.chain_id,
                sender: id.address,
                position,
                debit: Box::new(debit),
                duplicate,
            }),
            other => unreachable!("a transaction records one debit, not {other:?}"),
        }
    }

    /// Submits a verified transfer to its sender's wallet.
    pub async fn submit(&self, tx: VerifiedTx) -> Result<Committed, CommandError> {
        let id = Self::id(&tx.payload.chain_id, tx.payload.sender);
        self.debit(id, WalletCommand::Transfer(Box::new(tx))).await
    }

    /// Signs (with the next nonce) and submits a transfer from a key the node holds.
    pub async fn sign_and_submit(
        &self,
        chain_id: &str,
        order: SignOrder,
    ) -> Result<Committed, CommandError> {
        let id = Self::id(chain_id, order.key.address());
        self.debit(id, WalletCommand::SignAndTransfer(Box::new(order)))
            .await
    }

    fn position(applied: Applied<WalletEvent>) -> u64 {
        applied
            .last_position()
            .expect("a credit or a fund records one event")
    }

    /// Applies a credit (idempotent). Returns its log position.
    pub async fn credit(
        &self,
        chain_id: &str,
        to: Address,
        credit: Credit,
    ) -> Result<u64, CommandError> {
        let applied = self
            .registry
            .execute(Self::id(chain_id, to), WalletCommand::Credit(credit))
            .await?;
        Ok(Self::position(applied))
    }

    /// Funds an account at genesis (idempotent). Returns its log position.
    pub async fn fund(
        &self,
        chain_id: &str,
        to: Address,
        amount: Amount,
    ) -> Result<u64, CommandError> {
        let applied = self
            .registry
            .execute(Self::id(chain_id, to), WalletCommand::Fund { amount })
            .await?;
        Ok(Self::position(applied))
    }

    /// Current state of a wallet, straight from its actor.
    pub async fn state(
        &self,
        chain_id: &str,
        address: Address,
    ) -> Result<WalletState, CommandError> {
        self.registry.state(Self::id(chain_id, address)).await
    }

    /// Number of activated wallets.
    pub fn active(&self) -> usize {
        self.registry.active()
    }
}

/// Facts of wallets on the chains of `geneses`; a wallet on any other chain does not exist
/// here.
pub fn wallet_facts<'a>(
    geneses: impl IntoIterator<Item = &'a Genesis>,
) -> impl Fn(&WalletId) -> Result<WalletFacts, CommandError> + Send + Sync + 'static {
    let facts: BTreeMap<Arc<str>, WalletFacts> = geneses
        .into_iter()
        .map(|g| (Arc::from(g.chain_id.as_str()), WalletFacts::of(g)))
        .collect();
    move |id| {
        facts.get(&id.chain_id).cloned().ok_or_else(|| {
            CommandError::NotFound(format!("chain {:?} is not hosted here", id.chain_id))
        })
    }
}
