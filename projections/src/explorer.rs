//! The explorer projection: accounts, transactions and blocks of every chain.

use std::collections::BTreeMap;
use std::sync::Arc;

use dashmap::DashMap;
use domain::address::Address;
use domain::block::Block;
use domain::chain::ChainEvent;
use domain::codec::DomainEvent;
use domain::genesis::Genesis;
use domain::hash::Hash32;
use domain::merkle::{MerkleProof, merkle_proof};
use domain::money::Amount;
use domain::wallet::WalletEvent;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use store::RecordedEvent;

/// An account as the explorer shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    /// Balance.
    pub balance: Amount,
    /// Next nonce.
    pub nonce: u64,
}

/// One event a transaction caused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxEventView {
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Stream.
    pub stream: String,
    /// Log position.
    pub position: u64,
    /// Account affected.
    pub address: Address,
    /// Amount moved.
    pub amount: Amount,
}

/// A committed transaction. The signed envelope is not copied here: it stays in the log, in
/// the debit event at `position`, and is read from there on request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxView {
    /// Hash.
    pub tx_hash: Hash32,
    /// Chain.
    pub chain_id: String,
    /// Sender.
    pub sender: Address,
    /// Nonce.
    pub nonce: u64,
    /// Recipient.
    pub to: Address,
    /// Amount sent.
    pub amount: Amount,
    /// Fee paid.
    pub fee: Amount,
    /// Log position of the debit.
    pub position: u64,
    /// Events caused, in log order.
    pub events: Vec<TxEventView>,
    /// Block that includes it, once sealed.
    pub block_height: Option<u64>,
    /// Index inside that block.
    pub block_index: Option<usize>,
}

/// Supply books of a chain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupplyView {
    /// Total ever minted (genesis + minting).
    pub minted: Amount,
    /// Total burned.
    pub burned: Amount,
    /// Sum of all account balances.
    pub balances: Amount,
    /// Debited but not yet credited.
    pub in_flight: Amount,
}

impl SupplyView {
    /// Conservation: balances + in flight = minted − burned.
    pub fn conserved(&self) -> bool {
        self.balances.checked_add(self.in_flight) == self.minted.checked_sub(self.burned)
    }
}

/// A chain as the explorer shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainView {
    /// Genesis.
    pub genesis: Genesis,
    /// Blocks by height.
    pub blocks: Vec<Block>,
}

/// Why an event could not be applied: the log breaks an invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event at position {position}: {reason}")]
pub struct ProjectionError {
    /// Position.
    pub position: u64,
    /// What broke.
    pub reason: String,
}

/// The explorer's state. Concurrent reads while one writer applies events.
#[derive(Default)]
pub struct Explorer {
    accounts: DashMap<(Arc<str>, Address), AccountView>,
    txs: DashMap<Hash32, TxView>,
    chains: RwLock<BTreeMap<String, ChainView>>,
    supply: DashMap<Arc<str>, SupplyView>,
    next_position: RwLock<u64>,
}

/// Serializable form of the whole explorer (checkpoints, equality in tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExplorerState {
    /// Next position to apply.
    pub next_position: u64,
    /// Accounts by chain and address.
    pub accounts: BTreeMap<String, BTreeMap<Address, AccountView>>,
    /// Transactions by hash.
    pub txs: BTreeMap<Hash32, TxView>,
    /// Chains.
    pub chains: BTreeMap<String, ChainView>,
    /// Supply books.
    pub supply: BTreeMap<String, SupplyView>,
}

fn parse_wallet_stream(stream: &str) -> Option<(&str, Address)> {
    let rest = stream.strip_prefix("wallet/")?;
    let (chain, address) = rest.split_once('/')?;
    Some((chain, address.parse().ok()?))
}

impl Explorer {
    /// Next position this projection will apply.
    pub fn next_position(&self) -> u64 {
        *self.next_position.read()
    }

    /// Applies the event at `next_position()`.
    pub fn apply(&self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        let fail = |reason: String| ProjectionError {
            position: event.position,
            reason,
        };
        let expected = self.next_position();
        if event.position != expected {
            return Err(fail(format!("expected position {expected}")));
        }
        let decoded =
            match DomainEvent::decode(&event.event_type, &event.data, event.recorded_at_ms) {
                Ok(decoded) => Some(decoded),
                // Events of other modules are not the explorer's business.
                Err(domain::codec::DecodeError::UnknownType(_)) => None,
                Err(e) => return Err(fail(e.to_string())),
            };
        match decoded {
            Some(DomainEvent::Wallet(wallet_event)) => {
                let (chain, address) = parse_wallet_stream(&event.stream)
                    .ok_or_else(|| fail(format!("wallet event in stream {}", event.stream)))?;
                self.apply_wallet(chain, address, &wallet_event, event)
                    .map_err(fail)?;
            }
            Some(DomainEvent::Chain(chain_event)) => {
                self.apply_chain(&chain_event).map_err(fail)?
            }
            None => {}
        }
        *self.next_position.write() = event.position + 1;
        Ok(())
    }

    /// Applies a wallet event: the new account and supply are computed on copies and checked
    /// first, so a refused event leaves nothing half-applied.
    fn apply_wallet(
        &self,
        chain: &str,
        address: Address,
        event: &WalletEvent,
        recorded: &RecordedEvent,
    ) -> Result<(), String> {
        let chain: Arc<str> = self
            .supply
            .get(chain)
            .map(|e| e.key().clone())
            .unwrap_or_else(|| Arc::from(chain));
        let key = (chain.clone(), address);
        let mut account = self.accounts.get(&key).map(|a| *a).unwrap_or_default();
        let mut supply = self.supply.get(&chain).map(|s| *s).unwrap_or_default();
        let overflow = || "amount overflow".to_string();
        let view = |amount: Amount| TxEventView {
            event_type: recorded.event_type.clone(),
            stream: recorded.stream.to_string(),
            position: recorded.position,
            address,
            amount,
        };
        let mut new_tx = None;
        match event {
            WalletEvent::Funded { amount, .. } => {
                account.balance = account.balance.checked_add(*amount).ok_or_else(overflow)?;
                supply.minted = supply.minted.checked_add(*amount).ok_or_else(overflow)?;
                supply.balances = supply.balances.checked_add(*amount).ok_or_else(overflow)?;
            }
            WalletEvent::Debited(debit) => {
                let total = debit.total();
                if debit.nonce != account.nonce {
                    return Err(format!(
                        "debit with nonce {} but account nonce {}",
                        debit.nonce, account.nonce
                    ));
                }
                if self.txs.contains_key(&debit.tx_hash) {
                    return Err(format!("transaction {} debited twice", debit.tx_hash));
                }
                account.balance = account
                    .balance
                    .checked_sub(total)
                    .ok_or("negative balance")?;
                account.nonce += 1;
                supply.balances = supply
                    .balances
                    .checked_sub(total)
                    .ok_or("negative supply")?;
                supply.in_flight = supply.in_flight.checked_add(total).ok_or_else(overflow)?;
                new_tx = Some(TxView {
                    tx_hash: debit.tx_hash,
                    chain_id: chain.to_string(),
                    sender: address,
                    nonce: debit.nonce,
                    to: debit.to,
                    amount: debit.amount,
                    fee: debit.fee,
                    position: recorded.position,
                    events: vec![view(total)],
                    block_height: None,
                    block_index: None,
                });
            }
            WalletEvent::Credited(credit) => {
                if !self.txs.contains_key(&credit.transfer_id) {
                    return Err("credit for an unknown transfer".into());
                }
                account.balance = account
                    .balance
                    .checked_add(credit.amount)
                    .ok_or_else(overflow)?;
                supply.balances = supply
                    .balances
                    .checked_add(credit.amount)
                    .ok_or_else(overflow)?;
                supply.in_flight = supply
                    .in_flight
                    .checked_sub(credit.amount)
                    .ok_or("credit without a matching debit in flight")?;
            }
        }
        if !supply.conserved() {
            return Err(format!("conservation broken on chain {chain}: {supply:?}"));
        }
        self.accounts.insert(key, account);
        self.supply.insert(chain, supply);
        match (new_tx, event) {
            (Some(tx), _) => {
                self.txs.insert(tx.tx_hash, tx);
            }
            (None, WalletEvent::Credited(credit)) => {
                if let Some(mut tx) = self.txs.get_mut(&credit.transfer_id) {
                    tx.events.push(view(credit.amount));
                }
            }
            (None, _) => {}
        }
        Ok(())
    }

    /// Applies a chain event; every check runs before anything changes.
    fn apply_chain(&self, event: &ChainEvent) -> Result<(), String> {
        let mut chains = self.chains.write();
        let block = event.block();
        if let ChainEvent::BlockSealed { block } = event {
            let chain = chains
                .get(&block.chain_id)
                .ok_or("block for an unknown chain")?;
            if block.height != chain.blocks.len() as u64 {
                return Err(format!(
                    "block {} after {} blocks",
                    block.height,
                    chain.blocks.len()
                ));
            }
        }
        if let Some(unknown) = block
            .tx_hashes
            .iter()
            .find(|hash| !self.txs.contains_key(*hash))
        {
            return Err(format!("block includes an unknown transaction {unknown}"));
        }
        match event {
            ChainEvent::ChainCreated { genesis, block } => {
                chains.insert(
                    genesis.chain_id.clone(),
                    ChainView {
                        genesis: genesis.clone(),
                        blocks: vec![block.clone()],
                    },
                );
            }
            ChainEvent::BlockSealed { block } => {
                chains
                    .get_mut(&block.chain_id)
                    .expect("checked above")
                    .blocks
                    .push(block.clone());
            }
        }
        for (index, hash) in block.tx_hashes.iter().enumerate() {
            if let Some(mut tx) = self.txs.get_mut(hash) {
                tx.block_height = Some(block.height);
                tx.block_index = Some(index);
            }
        }
        Ok(())
    }

    /// Account on `chain` (never-seen accounts read as zero).
    pub fn account(&self, chain: &str, address: &Address) -> AccountView {
        self.accounts
            .get(&(Arc::from(chain), *address))
            .map(|a| *a)
            .unwrap_or_default()
    }

    /// A committed transaction. The signed envelope is not copied here: it stays in the log, in
    /// the debit event at `position`, and is read from there on request.
    pub fn tx(&self, hash: &Hash32) -> Option<TxView> {
        self.txs.get(hash).map(|t| t.clone())
    }

    /// A transaction's inclusion proof, once sealed: (block, proof).
    pub fn tx_proof(&self, tx: &TxView) -> Option<(Block, MerkleProof)> {
        let (height, index) = (tx.block_height?, tx.block_index?);
        let block = self.block(&tx.chain_id, height)?;
        let proof = merkle_proof(&block.tx_hashes, index)?;
        Some((block, proof))
    }

    /// Block at `height` of `chain`.
    pub fn block(&self, chain: &str, height: u64) -> Option<Block> {
        self.chains
            .read()
            .get(chain)?
            .blocks
            .get(usize::try_from(height).ok()?)
            .cloned()
    }

    /// Block with `hash` (searched from the newest).
    pub fn block_by_hash(&self, chain: &str, hash: &Hash32) -> Option<Block> {
        self.chains
            .read()
            .get(chain)?
            .blocks
            .iter()
            .rev()
            .find(|b| b.hash == *hash)
            .cloned()
    }

    /// Up to `limit` blocks of `chain` from height `from`.
    pub fn blocks(&self, chain: &str, from: u64, limit: usize) -> Vec<Block> {
        let chains = self.chains.read();
        let Some(view) = chains.get(chain) else {
            return Vec::new();
        };
        view.blocks
            .iter()
            .skip(usize::try_from(from).unwrap_or(usize::MAX))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Genesis and last block of `chain`.
    pub fn chain(&self, chain: &str) -> Option<(Genesis, Block)> {
        let chains = self.chains.read();
        let view = chains.get(chain)?;
        Some((view.genesis.clone(), view.blocks.last()?.clone()))
    }

    /// Supply books of `chain`.
    pub fn supply(&self, chain: &str) -> SupplyView {
        self.supply.get(chain).map(|s| *s).unwrap_or_default()
    }

    /// A sorted copy of the whole state.
    pub fn export(&self) -> ExplorerState {
        let mut accounts: BTreeMap<String, BTreeMap<Address, AccountView>> = BTreeMap::new();
        for entry in self.accounts.iter() {
            accounts
                .entry(entry.key().0.to_string())
                .or_default()
                .insert(entry.key().1, *entry.value());
        }
        ExplorerState {
            next_position: self.next_position(),
            accounts,
            txs: self
                .txs
                .iter()
                .map(|e| (*e.key(), e.value().clone()))
                .collect(),
            chains: self.chains.read().clone(),
            supply: self
                .supply
                .iter()
                .map(|e| (e.key().to_string(), *e.value()))
                .collect(),
        }
    }

    /// Rebuilds an explorer from an exported state.
    pub fn import(state: ExplorerState) -> Explorer {
        let explorer = Explorer::default();
        for (chain, accounts) in state.accounts {
            let chain: Arc<str> = Arc::from(chain.as_str());
            for (address, view) in accounts {
                explorer.accounts.insert((chain.clone(), address), view);
            }
        }
        for (hash, tx) in state.txs {
            explorer.txs.insert(hash, tx);
        }
        for (chain, supply) in state.supply {
            explorer.supply.insert(Arc::from(chain.as_str()), supply);
        }
        *explorer.chains.write() = state.chains;
        *explorer.next_position.write() = state.next_position;
        explorer
    }
}
