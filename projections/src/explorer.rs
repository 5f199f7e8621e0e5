//! The explorer projection: accounts, transactions and blocks of every chain.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dashmap::DashMap;
use domain::address::Address;
use domain::block::Block;
use domain::chain::ChainEvent;
use domain::codec::DomainEvent;
use domain::dao::DaoEvent;
use domain::genesis::Genesis;
use domain::hash::Hash32;
use domain::merkle::MerkleProof;
use domain::money::Amount;
use domain::vesting::{Refusal, Schedule, VestingEvent};
use domain::wallet::WalletEvent;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use store::RecordedEvent;
use tokio::sync::broadcast;

use crate::projection::Projection;

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
    /// Kind.
    pub kind: String,
    /// Where its outflow went (recipient or module account).
    pub to: Address,
    /// Amount of the outflow.
    pub amount: Amount,
    /// Asset of the outflow (`None`: native).
    pub asset: Option<String>,
    /// Fee paid.
    pub fee: Amount,
    /// Log position of the debit.
    pub position: u64,
    /// The node's clock when it committed, Unix ms.
    pub committed_at_ms: u64,
    /// Set when a module refused it after it committed (nonce and fee used, nothing else).
    pub refused: Option<Refusal>,
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

/// Capacity of the live block feed (slow subscribers skip ahead).
pub const BLOCK_FEED_CAPACITY: usize = 256;

/// The explorer's state. Concurrent reads while one writer applies events.
pub struct Explorer {
    accounts: DashMap<(Arc<str>, Address), AccountView>,
    txs: DashMap<Hash32, TxView>,
    chains: RwLock<BTreeMap<String, ChainView>>,
    supply: DashMap<Arc<str>, SupplyView>,
    /// Balances of assets other than the native one, by (chain, asset, address).
    asset_balances: DashMap<(Arc<str>, String, Address), Amount>,
    /// Supply books of assets other than the native one, by (chain, asset).
    asset_supply: DashMap<(Arc<str>, String), SupplyView>,
    /// Vesting schedules by id.
    schedules: DashMap<Hash32, VestingView>,
    /// Schedule ids by (chain, beneficiary).
    schedules_of: DashMap<(Arc<str>, Address), Vec<Hash32>>,
    /// Every account (of any asset) in (chain, address) order, for paging.
    account_index: RwLock<BTreeSet<(Arc<str>, Address)>>,
    next_position: RwLock<u64>,
    /// Newly applied blocks, live.
    blocks: broadcast::Sender<Arc<Block>>,
}

impl Default for Explorer {
    fn default() -> Self {
        Explorer {
            accounts: DashMap::new(),
            txs: DashMap::new(),
            chains: RwLock::default(),
            supply: DashMap::new(),
            asset_balances: DashMap::new(),
            asset_supply: DashMap::new(),
            schedules: DashMap::new(),
            schedules_of: DashMap::new(),
            account_index: RwLock::default(),
            next_position: RwLock::default(),
            blocks: broadcast::channel(BLOCK_FEED_CAPACITY).0,
        }
    }
}

impl Projection for Explorer {
    const NAME: &'static str = "explorer";
    const CHECKPOINT_EVERY_EVENTS: u64 = 1_000_000;
    type Copy = ExplorerState;

    fn empty() -> Self {
        Explorer::default()
    }

    fn next_position(&self) -> u64 {
        Explorer::next_position(self)
    }

    fn apply(&self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        Explorer::apply(self, event)
    }

    fn copy(&self) -> ExplorerState {
        self.export()
    }

    fn encode(copy: &ExplorerState) -> (u64, Vec<u8>) {
        (copy.next_position, crate::checkpoint::encode(copy))
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        crate::checkpoint::decode(bytes)
            .map(Explorer::import)
            .map_err(|e| e.to_string())
    }
}

/// A vesting schedule as the explorer shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VestingView {
    /// Chain.
    pub chain_id: String,
    /// Id (the creating transaction's hash).
    pub id: Hash32,
    /// The schedule.
    pub schedule: Schedule,
    /// Claimed so far.
    pub claimed: Amount,
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
    /// Balances of other assets by (chain, asset).
    pub asset_balances: BTreeMap<(String, String), BTreeMap<Address, Amount>>,
    /// Supply books of other assets by (chain, asset).
    pub asset_supply: BTreeMap<(String, String), SupplyView>,
    /// Vesting schedules by id.
    pub schedules: BTreeMap<Hash32, VestingView>,
}

fn parse_wallet_stream(stream: &str) -> Option<(&str, Address)> {
    let rest = stream.strip_prefix("wallet/")?;
    let (chain, address) = rest.split_once('/')?;
    Some((chain, address.parse().ok()?))
}

fn parse_vesting_stream(stream: &str) -> Option<(&str, Hash32)> {
    let rest = stream.strip_prefix("vesting/")?;
    let (chain, id) = rest.split_once('/')?;
    Some((chain, id.parse().ok()?))
}

/// The books of `asset`: the native ones, or the other asset's (loaded on first use; one event
/// touches at most one asset besides the native one).
fn select_books<'b>(
    native: &'b mut Books,
    other: &'b mut Option<(String, Books)>,
    asset: &Option<String>,
    load: impl FnOnce() -> Books,
) -> &'b mut Books {
    match asset {
        None => native,
        Some(symbol) => {
            let (loaded, books) = other.get_or_insert_with(|| (symbol.clone(), load()));
            assert_eq!(loaded, symbol, "one other asset per event");
            books
        }
    }
}

/// The books one wallet event changes for one asset: the account's balance and the asset's
/// supply on the chain, worked on as copies and written back only once all checks passed.
struct Books {
    balance: Amount,
    supply: SupplyView,
}

impl Books {
    fn take_out(&mut self, amount: Amount) -> Result<(), String> {
        self.balance = self.balance.checked_sub(amount).ok_or("negative balance")?;
        self.supply.balances = self
            .supply
            .balances
            .checked_sub(amount)
            .ok_or("negative supply")?;
        self.send_off(amount)
    }

    fn send_off(&mut self, amount: Amount) -> Result<(), String> {
        self.supply.in_flight = self
            .supply
            .in_flight
            .checked_add(amount)
            .ok_or("amount overflow")?;
        Ok(())
    }

    fn mint(&mut self, amount: Amount) -> Result<(), String> {
        self.supply.minted = self
            .supply
            .minted
            .checked_add(amount)
            .ok_or("amount overflow")?;
        Ok(())
    }

    fn put_in(&mut self, amount: Amount) -> Result<(), String> {
        self.balance = self.balance.checked_add(amount).ok_or("amount overflow")?;
        self.supply.balances = self
            .supply
            .balances
            .checked_add(amount)
            .ok_or("amount overflow")?;
        Ok(())
    }

    fn land(&mut self, amount: Amount) -> Result<(), String> {
        self.put_in(amount)?;
        self.supply.in_flight = self
            .supply
            .in_flight
            .checked_sub(amount)
            .ok_or("credit without a matching debit in flight")?;
        Ok(())
    }
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
            Some(DomainEvent::Vesting(vesting_event)) => {
                let (chain, id) = parse_vesting_stream(&event.stream)
                    .ok_or_else(|| fail(format!("vesting event in stream {}", event.stream)))?;
                self.apply_vesting(chain, id, &vesting_event, event)
                    .map_err(fail)?;
            }
            Some(DomainEvent::Dao(dao_event)) => self.apply_dao(&dao_event, event).map_err(fail)?,
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
        let mut native = Books {
            balance: account.balance,
            supply: self.supply.get(&chain).map(|s| *s).unwrap_or_default(),
        };
        let mut other: Option<(String, Books)> = None;
        macro_rules! books_of {
            ($asset:expr) => {{
                let asset: &Option<String> = $asset;
                select_books(&mut native, &mut other, asset, || {
                    self.asset_books(&chain, asset.as_deref().expect("not native"), address)
                })
            }};
        }
        let view = |amount: Amount| TxEventView {
            event_type: recorded.event_type.clone(),
            stream: recorded.stream.to_string(),
            position: recorded.position,
            address,
            amount,
        };
        let mut new_tx = None;
        let mut cause = None;
        match event {
            WalletEvent::Funded { amount, .. } => {
                let books = books_of!(&None);
                books.mint(*amount)?;
                books.put_in(*amount)?;
            }
            WalletEvent::Debited(debit) => {
                if debit.nonce != account.nonce {
                    return Err(format!(
                        "debit with nonce {} but account nonce {}",
                        debit.nonce, account.nonce
                    ));
                }
                if self.txs.contains_key(&debit.tx_hash) {
                    return Err(format!("transaction {} debited twice", debit.tx_hash));
                }
                books_of!(&None).take_out(debit.native_out())?;
                if let Some((symbol, amount)) = debit.asset_out() {
                    books_of!(&Some(symbol.to_string())).take_out(amount)?;
                }
                if debit.minted {
                    let books = books_of!(&debit.asset);
                    books.mint(debit.amount)?;
                    books.send_off(debit.amount)?;
                }
                account.nonce += 1;
                new_tx = Some(TxView {
                    tx_hash: debit.tx_hash,
                    chain_id: chain.to_string(),
                    sender: address,
                    nonce: debit.nonce,
                    kind: debit.kind.clone(),
                    to: debit.to,
                    amount: debit.amount,
                    asset: debit.asset.clone(),
                    fee: debit.fee,
                    position: recorded.position,
                    committed_at_ms: debit.committed_at_ms,
                    refused: None,
                    events: vec![view(debit.native_out())],
                    block_height: None,
                    block_index: None,
                });
            }
            WalletEvent::Credited(credit) => {
                if !self.txs.contains_key(&credit.transfer_id) {
                    return Err("credit for an unknown transfer".into());
                }
                books_of!(&credit.asset).land(credit.amount)?;
                cause = Some((credit.transfer_id, credit.amount));
            }
            WalletEvent::PaidOut(payout) => {
                if !self.txs.contains_key(&payout.cause) {
                    return Err("payout for an unknown transaction".into());
                }
                books_of!(&payout.asset).take_out(payout.amount)?;
                cause = Some((payout.cause, payout.amount));
            }
        }
        if !native.supply.conserved() {
            return Err(format!(
                "conservation broken on chain {chain}: {:?}",
                native.supply
            ));
        }
        if let Some((symbol, books)) = &other
            && !books.supply.conserved()
        {
            return Err(format!(
                "conservation of {symbol} broken on chain {chain}: {:?}",
                books.supply
            ));
        }
        account.balance = native.balance;
        if self.accounts.insert(key, account).is_none() {
            self.account_index.write().insert((chain.clone(), address));
        }
        self.supply.insert(chain.clone(), native.supply);
        if let Some((symbol, books)) = other {
            self.asset_balances
                .insert((chain.clone(), symbol.clone(), address), books.balance);
            self.asset_supply.insert((chain, symbol), books.supply);
        }
        if let Some(tx) = new_tx {
            self.txs.insert(tx.tx_hash, tx);
        }
        if let Some((hash, amount)) = cause
            && let Some(mut tx) = self.txs.get_mut(&hash)
        {
            tx.events.push(view(amount));
        }
        Ok(())
    }

    fn asset_books(&self, chain: &Arc<str>, symbol: &str, address: Address) -> Books {
        let balance = self
            .asset_balances
            .get(&(chain.clone(), symbol.to_string(), address))
            .map_or(Amount::ZERO, |b| *b);
        let supply = self
            .asset_supply
            .get(&(chain.clone(), symbol.to_string()))
            .map(|s| *s)
            .unwrap_or_default();
        Books { balance, supply }
    }

    /// Applies a vesting event: schedules by id and by beneficiary; a refusal marks its
    /// transaction.
    fn apply_vesting(
        &self,
        chain: &str,
        id: Hash32,
        event: &VestingEvent,
        recorded: &RecordedEvent,
    ) -> Result<(), String> {
        let view = |address: Address, amount: Amount| TxEventView {
            event_type: recorded.event_type.clone(),
            stream: recorded.stream.to_string(),
            position: recorded.position,
            address,
            amount,
        };
        match event {
            VestingEvent::VestingCreated(schedule) => {
                let mut tx = self
                    .txs
                    .get_mut(&id)
                    .ok_or("vesting schedule for an unknown transaction")?;
                if self.schedules.contains_key(&id) {
                    return Err(format!("vesting schedule {id} created twice"));
                }
                tx.events.push(view(schedule.beneficiary, schedule.total));
                let chain: Arc<str> = Arc::from(chain);
                self.schedules_of
                    .entry((chain.clone(), schedule.beneficiary))
                    .or_default()
                    .push(id);
                self.schedules.insert(
                    id,
                    VestingView {
                        chain_id: chain.to_string(),
                        id,
                        schedule: schedule.clone(),
                        claimed: Amount::ZERO,
                    },
                );
            }
            VestingEvent::VestingClaimed {
                claim_tx,
                beneficiary,
                amount,
                ..
            } => {
                let mut tx = self
                    .txs
                    .get_mut(claim_tx)
                    .ok_or("claim by an unknown transaction")?;
                let mut schedule = self
                    .schedules
                    .get_mut(&id)
                    .ok_or("claim on an unknown schedule")?;
                let claimed = schedule
                    .claimed
                    .checked_add(*amount)
                    .filter(|c| *c <= schedule.schedule.total)
                    .ok_or("claimed more than the schedule holds")?;
                schedule.claimed = claimed;
                tx.events.push(view(*beneficiary, *amount));
            }
            VestingEvent::ClaimRefused { claim_tx, reason } => {
                let mut tx = self
                    .txs
                    .get_mut(claim_tx)
                    .ok_or("refusal of an unknown transaction")?;
                tx.refused = Some(reason.clone());
                let sender = tx.sender;
                tx.events.push(view(sender, Amount::ZERO));
            }
        }
        Ok(())
    }

    /// Applies a DAO event: the council transaction that caused it shows it, and a refusal
    /// marks that transaction. (The modules' pause state is served from the DAO itself.)
    fn apply_dao(&self, event: &DaoEvent, recorded: &RecordedEvent) -> Result<(), String> {
        let Some(tx_hash) = event.tx() else {
            return Ok(());
        };
        let mut tx = self
            .txs
            .get_mut(&tx_hash)
            .ok_or("council action by an unknown transaction")?;
        if let DaoEvent::CouncilActRefused { reason, .. } = event {
            tx.refused = Some(reason.clone());
        }
        let address = tx.sender;
        tx.events.push(TxEventView {
            event_type: recorded.event_type.clone(),
            stream: recorded.stream.to_string(),
            position: recorded.position,
            address,
            amount: Amount::ZERO,
        });
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
        // Nobody listening is fine.
        let _ = self.blocks.send(Arc::new(block.clone()));
        Ok(())
    }

    /// The blocks applied from now on.
    pub fn subscribe_blocks(&self) -> broadcast::Receiver<Arc<Block>> {
        self.blocks.subscribe()
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
        let block = self.block(&tx.chain_id, tx.block_height?)?;
        let proof = block.tx_proof(&tx.tx_hash)?;
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

    /// Supply books of `chain`'s native asset.
    pub fn supply(&self, chain: &str) -> SupplyView {
        self.supply.get(chain).map(|s| *s).unwrap_or_default()
    }

    /// Supply books of `asset` (not the native one) on `chain`.
    pub fn asset_supply(&self, chain: &str, asset: &str) -> SupplyView {
        self.asset_supply
            .get(&(Arc::from(chain), asset.to_string()))
            .map(|s| *s)
            .unwrap_or_default()
    }

    /// Balance of `asset` (not the native one) of `address` on `chain`.
    pub fn asset_balance(&self, chain: &str, asset: &str, address: &Address) -> Amount {
        self.asset_balances
            .get(&(Arc::from(chain), asset.to_string(), *address))
            .map_or(Amount::ZERO, |b| *b)
    }

    /// Vesting schedules whose beneficiary is `address` on `chain`, oldest first.
    pub fn schedules_of(&self, chain: &str, address: &Address) -> Vec<VestingView> {
        let ids = self
            .schedules_of
            .get(&(Arc::from(chain), *address))
            .map(|ids| ids.clone())
            .unwrap_or_default();
        ids.iter()
            .filter_map(|id| self.schedules.get(id).map(|v| v.clone()))
            .collect()
    }

    /// Every account of `chain` in address order, from `after` (exclusive), at most `limit`.
    pub fn accounts_page(
        &self,
        chain: &str,
        after: Option<Address>,
        limit: usize,
    ) -> Vec<(Address, AccountView)> {
        use std::ops::Bound;
        let chain: Arc<str> = Arc::from(chain);
        let start = match after {
            Some(address) => Bound::Excluded((chain.clone(), address)),
            None => Bound::Included((chain.clone(), Address([0; 20]))),
        };
        let addresses: Vec<Address> = self
            .account_index
            .read()
            .range((start, Bound::Unbounded))
            .take_while(|(c, _)| *c == chain)
            .take(limit)
            .map(|(_, address)| *address)
            .collect();
        addresses
            .into_iter()
            .map(|address| (address, self.account(&chain, &address)))
            .collect()
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
            asset_balances: {
                let mut balances: BTreeMap<(String, String), BTreeMap<Address, Amount>> =
                    BTreeMap::new();
                for e in self.asset_balances.iter() {
                    let (chain, asset, address) = e.key();
                    balances
                        .entry((chain.to_string(), asset.clone()))
                        .or_default()
                        .insert(*address, *e.value());
                }
                balances
            },
            asset_supply: self
                .asset_supply
                .iter()
                .map(|e| ((e.key().0.to_string(), e.key().1.clone()), *e.value()))
                .collect(),
            schedules: self
                .schedules
                .iter()
                .map(|e| (*e.key(), e.value().clone()))
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
                explorer
                    .account_index
                    .write()
                    .insert((chain.clone(), address));
            }
        }
        for (hash, tx) in state.txs {
            explorer.txs.insert(hash, tx);
        }
        for (chain, supply) in state.supply {
            explorer.supply.insert(Arc::from(chain.as_str()), supply);
        }
        for ((chain, asset), balances) in state.asset_balances {
            let chain: Arc<str> = Arc::from(chain.as_str());
            for (address, balance) in balances {
                explorer
                    .asset_balances
                    .insert((chain.clone(), asset.clone(), address), balance);
            }
        }
        for ((chain, asset), supply) in state.asset_supply {
            explorer
                .asset_supply
                .insert((Arc::from(chain.as_str()), asset), supply);
        }
        // Oldest first, as they were created: in the order of their transactions in the log.
        let mut schedules: Vec<VestingView> = state.schedules.into_values().collect();
        schedules.sort_by_key(|v| explorer.txs.get(&v.id).map(|tx| tx.position));
        for view in schedules {
            explorer
                .schedules_of
                .entry((Arc::from(view.chain_id.as_str()), view.schedule.beneficiary))
                .or_default()
                .push(view.id);
            explorer.schedules.insert(view.id, view);
        }
        *explorer.chains.write() = state.chains;
        *explorer.next_position.write() = state.next_position;
        explorer
    }
}
