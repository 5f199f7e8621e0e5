//! The explorer projection: accounts, transactions and blocks of every chain.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use dashmap::DashMap;
use domain::address::Address;
use domain::agent::AgentEvent;
use domain::block::{Block, ProvenBlock};
use domain::chain::ChainEvent;
use domain::codec::{DecodeError, DomainEvent, WalletFact, decode_wallet_fact};
use domain::dao::DaoEvent;
use domain::genesis::Genesis;
use domain::hash::Hash32;
use domain::job::JobEvent;
use domain::job_listing::JobListing;
use domain::merkle::MerkleProof;
use domain::money::Amount;
use domain::proposal::ProposalEvent;
use domain::staking::StakingEvent;
use domain::vesting::{Refusal, Schedule, VestingEvent};
use domain::wallet::{Credit, CreditKind, DebitSummary, Payout, WalletEvent};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use store::RecordedEvent;
use tokio::sync::broadcast;

use crate::kv::{Batch, Kv};
use crate::projection::{PersistJob, Projection};
use crate::records::{decode_block, decode_tx, encode_block, encode_tx};

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

/// A chain with all its blocks (an export).
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

/// Layout of the explorer's file; another one is rebuilt from the log.
const FILE_FORMAT: u64 = 4;

/// Bytes of one (position, hash) pair in a `tx_hash` chunk.
const TX_HASH_ENTRY: usize = 8 + 32;

/// The explorer's tables on disk. History is keyed by log position (big-endian), so commits
/// append at the end of its trees instead of rewriting pages all over them: `tx` (the
/// transaction whose debit is there), `tx_block` (its height and index), and `tx_hash` (one
/// entry per commit, keyed by its position: the (position, hash) pairs of the transactions it
/// wrote, read back into memory on open). `block` by chain 0 height; `block_height` by chain 0 hash;
/// `chain` by chain (genesis JSON); `account` by chain 0 address; `asset_balance` by chain 0
/// symbol 0 address; `supply` by chain 0 symbol ("" for the native asset); `schedule` by id;
/// `job` by id (its listing).
mod tables {
    use crate::kv::Table;

    pub const TXS: Table = Table::new("tx");
    pub const TX_HASHES: Table = Table::new("tx_hash");
    pub const TX_BLOCKS: Table = Table::new("tx_block");
    pub const BLOCKS: Table = Table::new("block");
    pub const BLOCK_HEIGHTS: Table = Table::new("block_height");
    pub const CHAINS: Table = Table::new("chain");
    pub const ACCOUNTS: Table = Table::new("account");
    pub const ASSET_BALANCES: Table = Table::new("asset_balance");
    pub const SUPPLY: Table = Table::new("supply");
    pub const SCHEDULES: Table = Table::new("schedule");
    pub const JOBS: Table = Table::new("job");
    pub const ALL: [Table; 11] = [
        TXS,
        TX_HASHES,
        TX_BLOCKS,
        BLOCKS,
        BLOCK_HEIGHTS,
        CHAINS,
        ACCOUNTS,
        ASSET_BALANCES,
        SUPPLY,
        SCHEDULES,
        JOBS,
    ];
}

fn key(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(&0u8)
}

fn block_key(chain: &str, height: u64) -> Vec<u8> {
    key(&[chain.as_bytes(), &height.to_be_bytes()])
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("explorer records serialize")
}

/// The history the explorer has applied but not yet committed to its file (all of it, for an
/// explorer without a file). A generation is frozen when a commit starts and dropped once the
/// commit is durable; readers look in the current generation, then the frozen one, then the
/// file.
#[derive(Default)]
struct Generation {
    txs: DashMap<Hash32, TxView>,
    tx_blocks: DashMap<Hash32, (u64, usize)>,
    blocks: DashMap<(Arc<str>, u64), Arc<Block>>,
    block_heights: DashMap<(Arc<str>, Hash32), u64>,
}

/// Keys of the in-memory state changed since the last commit.
#[derive(Default)]
struct Changed {
    accounts: HashSet<(Arc<str>, Address)>,
    asset_balances: HashSet<(Arc<str>, String, Address)>,
    supply: HashSet<Arc<str>>,
    asset_supply: HashSet<(Arc<str>, String)>,
    schedules: HashSet<Hash32>,
    jobs: HashSet<Hash32>,
    chains: HashSet<String>,
}

/// A chain's genesis and its newest block.
#[derive(Clone, Debug)]
struct ChainHead {
    genesis: Genesis,
    /// Blocks so far (the next block's height).
    height: u64,
    last: Arc<Block>,
}

/// The explorer's state. Concurrent reads while one writer applies events.
///
/// What grows with the number of accounts lives in memory (balances, supply books, schedules,
/// the account index); what grows with history (transactions and blocks) lives in its file
/// once committed ([`Explorer::open`]); [`Projection::prepare_persist`] commits both.
pub struct Explorer {
    accounts: DashMap<(Arc<str>, Address), AccountView>,
    chains: RwLock<BTreeMap<String, ChainHead>>,
    supply: DashMap<Arc<str>, SupplyView>,
    /// Balances of assets other than the native one, by (chain, asset, address).
    asset_balances: DashMap<(Arc<str>, String, Address), Amount>,
    /// Supply books of assets other than the native one, by (chain, asset).
    asset_supply: DashMap<(Arc<str>, String), SupplyView>,
    /// Vesting schedules by id.
    schedules: DashMap<Hash32, VestingView>,
    /// Schedule ids by (chain, beneficiary).
    schedules_of: DashMap<(Arc<str>, Address), Vec<Hash32>>,
    /// GPU jobs by id, about 200 bytes each (no input, no result).
    jobs: DashMap<Hash32, JobView>,
    /// Job ids by chain, and by (chain, client), in submission order.
    jobs_in: DashMap<Arc<str>, Vec<Hash32>>,
    jobs_of: DashMap<(Arc<str>, Address), Vec<Hash32>>,
    /// Every account (of any asset) in (chain, address) order, for paging.
    account_index: RwLock<BTreeSet<(Arc<str>, Address)>>,
    /// The log position of every transaction's debit: its key in the file. About 60 bytes per
    /// transaction, read back on open from the compact `tx_hash` table.
    tx_positions: RwLock<HashMap<Hash32, u64>>,
    recent: RwLock<Arc<Generation>>,
    frozen: RwLock<Option<Arc<Generation>>>,
    changed: Mutex<Changed>,
    file: Option<Arc<Kv>>,
    next_position: RwLock<u64>,
    /// Newly applied blocks, live.
    blocks: broadcast::Sender<Arc<Block>>,
    /// Blocks whose trees were built for proofs, recently asked for.
    proven: DashMap<(Arc<str>, u64), Arc<ProvenBlock>>,
}

/// Blocks kept with their trees built (the cache is emptied when full).
const PROVEN_BLOCKS_KEPT: usize = 256;

impl Default for Explorer {
    fn default() -> Self {
        Explorer::with_file(None)
    }
}

impl Projection for Explorer {
    const NAME: &'static str = "explorer";
    const PERSIST_EVERY_EVENTS: u64 = 200_000;

    fn next_position(&self) -> u64 {
        Explorer::next_position(self)
    }

    fn apply(&self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        Explorer::apply(self, event)
    }

    fn prepare_persist(&self) -> Option<(u64, PersistJob)> {
        Explorer::prepare_persist(self)
    }

    fn persisted(&self) {
        let committed = self.frozen.write().take();
        // Freeing a second of history takes milliseconds: not on the runner's thread.
        std::thread::spawn(move || drop(committed));
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

/// A GPU job as the explorer lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    /// Chain.
    pub chain_id: String,
    /// Log position of its submission (lists are in submission order).
    pub position: u64,
    /// The job.
    pub listing: JobListing,
}

/// The whole explorer, sorted (audits, equality in tests).
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
    /// GPU jobs by id.
    pub jobs: BTreeMap<Hash32, JobView>,
}

/// A wallet event as the explorer needs it: a debit without its signed envelope.
enum WalletChange {
    Funded(Amount),
    Debited(DebitSummary),
    Credited(Credit),
    PaidOut(Payout),
}

impl From<WalletEvent> for WalletChange {
    fn from(event: WalletEvent) -> Self {
        match event {
            WalletEvent::Funded { amount, .. } => WalletChange::Funded(amount),
            WalletEvent::Debited(debit) => WalletChange::Debited(debit.summary()),
            WalletEvent::Credited(credit) => WalletChange::Credited(credit),
            WalletEvent::PaidOut(payout) => WalletChange::PaidOut(payout),
        }
    }
}

/// A debit, credit or payout read without copying the debit's envelope; `None` for other
/// event types.
fn wallet_change(event: &RecordedEvent) -> Option<Result<WalletChange, DecodeError>> {
    let fact = decode_wallet_fact(&event.event_type, &event.data)?;
    Some(fact.map(|fact| match fact {
        WalletFact::Debited(mut debit) => {
            if event.event_type == "Debited.v1" {
                // Release 0.1 did not record the commit time: the log's is used (as upcast).
                debit.committed_at_ms = event.recorded_at_ms;
            }
            WalletChange::Debited(debit)
        }
        WalletFact::Credited(credit) => WalletChange::Credited(credit),
        WalletFact::PaidOut(payout) => WalletChange::PaidOut(payout),
    }))
}

fn parse_wallet_stream(stream: &str) -> Option<(&str, Address)> {
    let rest = stream.strip_prefix("wallet/")?;
    let (chain, address) = rest.split_once('/')?;
    Some((chain, address.parse().ok()?))
}

fn parse_job_stream(stream: &str) -> Option<(&str, Hash32)> {
    let rest = stream.strip_prefix("job/")?;
    let (chain, id) = rest.split_once('/')?;
    Some((chain, id.parse().ok()?))
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
        let wallet_stream_of = || {
            parse_wallet_stream(&event.stream)
                .ok_or_else(|| fail(format!("wallet event in stream {}", event.stream)))
        };
        // Debits, credits and payouts (nearly every event) are read without the envelope.
        if let Some(change) = wallet_change(event) {
            let change = change.map_err(|e| fail(e.to_string()))?;
            let (chain, address) = wallet_stream_of()?;
            self.apply_wallet(chain, address, &change, event)
                .map_err(fail)?;
        } else {
            match DomainEvent::decode(&event.event_type, &event.data, event.recorded_at_ms) {
                Ok(DomainEvent::Wallet(wallet_event)) => {
                    let (chain, address) = wallet_stream_of()?;
                    let change = WalletChange::from(wallet_event);
                    self.apply_wallet(chain, address, &change, event)
                        .map_err(fail)?;
                }
                Ok(DomainEvent::Chain(chain_event)) => {
                    self.apply_chain(&chain_event).map_err(fail)?
                }
                Ok(DomainEvent::Vesting(vesting_event)) => {
                    let (chain, id) = parse_vesting_stream(&event.stream)
                        .ok_or_else(|| fail(format!("vesting event in stream {}", event.stream)))?;
                    self.apply_vesting(chain, id, &vesting_event, event)
                        .map_err(fail)?;
                }
                Ok(DomainEvent::Dao(dao_event)) => {
                    let refused = match &dao_event {
                        DaoEvent::CouncilActRefused { reason, .. } => Some(reason),
                        _ => None,
                    };
                    self.apply_module_event(dao_event.tx(), refused, event)
                        .map_err(fail)?
                }
                Ok(DomainEvent::Job(job_event)) => {
                    let refused = match &job_event {
                        JobEvent::CancelRefused { reason, .. } => Some(reason),
                        _ => None,
                    };
                    self.apply_module_event(job_event.tx(), refused, event)
                        .map_err(fail)?;
                    self.apply_job(&event.stream, &job_event, event.position)
                        .map_err(fail)?
                }
                Ok(DomainEvent::Miner(_) | DomainEvent::Market(_)) => {}
                Ok(DomainEvent::Staking(staking_event)) => {
                    let refused = match &staking_event {
                        StakingEvent::Refused { reason, .. } => Some(reason),
                        _ => None,
                    };
                    self.apply_module_event(staking_event.tx(), refused, event)
                        .map_err(fail)?
                }
                Ok(DomainEvent::Agent(agent_event)) => {
                    let refused = match &agent_event {
                        AgentEvent::Refused { reason, .. } => Some(reason),
                        _ => None,
                    };
                    self.apply_module_event(Some(agent_event.tx()), refused, event)
                        .map_err(fail)?
                }
                Ok(DomainEvent::Proposal(proposal_event)) => {
                    let refused = match &proposal_event {
                        ProposalEvent::Refused { reason, .. } => Some(reason),
                        _ => None,
                    };
                    self.apply_module_event(proposal_event.tx(), refused, event)
                        .map_err(fail)?
                }
                // Events of other modules are not the explorer's business.
                Err(DecodeError::UnknownType(_)) => {}
                Err(e) => return Err(fail(e.to_string())),
            }
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
        event: &WalletChange,
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
            WalletChange::Funded(amount) => {
                let books = books_of!(&None);
                books.mint(*amount)?;
                books.put_in(*amount)?;
            }
            WalletChange::Debited(debit) => {
                if debit.nonce != account.nonce {
                    return Err(format!(
                        "debit with nonce {} but account nonce {}",
                        debit.nonce, account.nonce
                    ));
                }
                // No second debit of one transaction can pass the nonce check above: its hash
                // binds the sender and the nonce.
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
            WalletChange::Credited(credit) => {
                // A payout's cause is a transaction or a module's own key (a returned bond).
                if credit.kind != CreditKind::Payout && !self.has_tx(&credit.transfer_id) {
                    return Err("credit for an unknown transfer".into());
                }
                books_of!(&credit.asset).land(credit.amount)?;
                cause = Some((credit.transfer_id, credit.amount));
            }
            WalletChange::PaidOut(payout) => {
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
        self.note(|changed| {
            changed.accounts.insert(key.clone());
            changed.supply.insert(chain.clone());
        });
        if self.accounts.insert(key, account).is_none() {
            self.account_index.write().insert((chain.clone(), address));
        }
        self.supply.insert(chain.clone(), native.supply);
        if let Some((symbol, books)) = other {
            self.note(|changed| {
                changed
                    .asset_balances
                    .insert((chain.clone(), symbol.clone(), address));
                changed.asset_supply.insert((chain.clone(), symbol.clone()));
            });
            self.asset_balances
                .insert((chain.clone(), symbol.clone(), address), books.balance);
            self.asset_supply.insert((chain, symbol), books.supply);
        }
        if let Some(tx) = new_tx {
            self.tx_positions.write().insert(tx.tx_hash, tx.position);
            self.recent.read().txs.insert(tx.tx_hash, tx);
        }
        if let Some((hash, amount)) = cause {
            self.update_tx(&hash, |tx| tx.events.push(view(amount)));
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

    /// Applies a job event to the job's listing (indexed by chain and client when submitted).
    fn apply_job(&self, stream: &str, event: &JobEvent, position: u64) -> Result<(), String> {
        let (chain, id) =
            parse_job_stream(stream).ok_or(format!("job event in stream {stream}"))?;
        if let JobEvent::Submitted(job) = event {
            if self.jobs.contains_key(&id) {
                return Err(format!("job {id} submitted twice"));
            }
            let view = JobView {
                chain_id: chain.to_string(),
                position,
                listing: JobListing::of(job),
            };
            let chain: Arc<str> = Arc::from(chain);
            self.jobs_in.entry(chain.clone()).or_default().push(id);
            self.jobs_of.entry((chain, job.owner)).or_default().push(id);
            self.jobs.insert(id, view);
        } else {
            let mut view = self
                .jobs
                .get_mut(&id)
                .ok_or(format!("event of unknown job {id}"))?;
            view.listing.apply(event);
        }
        self.changed.lock().jobs.insert(id);
        Ok(())
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
                // Made by a `create_vesting` (id = its hash) or by an executed proposal.
                if self.schedules.contains_key(&id) {
                    return Err(format!("vesting schedule {id} created twice"));
                }
                self.update_tx(&id, |tx| {
                    tx.events.push(view(schedule.beneficiary, schedule.total))
                });
                self.note(|changed| {
                    changed.schedules.insert(id);
                });
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
                if !self.has_tx(claim_tx) {
                    return Err("claim by an unknown transaction".into());
                }
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
                drop(schedule);
                self.note(|changed| {
                    changed.schedules.insert(id);
                });
                self.update_tx(claim_tx, |tx| tx.events.push(view(*beneficiary, *amount)));
            }
            VestingEvent::ClaimRefused { claim_tx, reason } => {
                let found = self.update_tx(claim_tx, |tx| {
                    tx.refused = Some(reason.clone());
                    let sender = tx.sender;
                    tx.events.push(view(sender, Amount::ZERO));
                });
                if !found {
                    return Err("refusal of an unknown transaction".into());
                }
            }
        }
        Ok(())
    }

    /// Applies a DAO event: the council transaction that caused it shows it, and a refusal
    /// marks that transaction. (The modules' pause state is served from the DAO itself.)
    fn apply_module_event(
        &self,
        tx_hash: Option<Hash32>,
        refused: Option<&Refusal>,
        recorded: &RecordedEvent,
    ) -> Result<(), String> {
        let Some(tx_hash) = tx_hash else {
            return Ok(());
        };
        let found = self.update_tx(&tx_hash, |tx| {
            if let Some(reason) = refused {
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
        });
        match found {
            true => Ok(()),
            false => Err(format!("{} by an unknown transaction", recorded.event_type)),
        }
    }

    /// Applies a chain event; every check runs before anything changes.
    fn apply_chain(&self, event: &ChainEvent) -> Result<(), String> {
        let mut chains = self.chains.write();
        let block = event.block();
        if let ChainEvent::BlockSealed { block } = event {
            let chain = chains
                .get(&block.chain_id)
                .ok_or("block for an unknown chain")?;
            if block.height != chain.height {
                return Err(format!(
                    "block {} after {} blocks",
                    block.height, chain.height
                ));
            }
        }
        if let Some(unknown) = self.first_unknown_tx(&block.tx_hashes) {
            return Err(format!("block includes an unknown transaction {unknown}"));
        }
        let block = Arc::new(block.clone());
        let chain: Arc<str> = Arc::from(block.chain_id.as_str());
        match event {
            ChainEvent::ChainCreated { genesis, .. } => {
                self.note(|changed| {
                    changed.chains.insert(genesis.chain_id.clone());
                });
                chains.insert(
                    genesis.chain_id.clone(),
                    ChainHead {
                        genesis: Genesis::clone(genesis),
                        height: 1,
                        last: block.clone(),
                    },
                );
            }
            ChainEvent::BlockSealed { .. } => {
                let head = chains.get_mut(&block.chain_id).expect("checked above");
                head.height += 1;
                head.last = block.clone();
            }
        }
        let recent = self.recent.read();
        for (index, hash) in block.tx_hashes.iter().enumerate() {
            recent.tx_blocks.insert(*hash, (block.height, index));
        }
        recent
            .block_heights
            .insert((chain.clone(), block.hash), block.height);
        recent.blocks.insert((chain, block.height), block.clone());
        // Nobody listening is fine.
        let _ = self.blocks.send(block);
        Ok(())
    }

    /// Records a change of in-memory state for the next commit (explorers with a file only).
    fn note(&self, change: impl FnOnce(&mut Changed)) {
        if self.file.is_some() {
            change(&mut self.changed.lock());
        }
    }

    /// Whether transaction `hash` is known.
    fn has_tx(&self, hash: &Hash32) -> bool {
        self.tx_positions.read().contains_key(hash)
    }

    /// The first of `hashes` that is not a known transaction.
    fn first_unknown_tx(&self, hashes: &[Hash32]) -> Option<Hash32> {
        hashes.iter().find(|hash| !self.has_tx(hash)).copied()
    }

    /// What `find` finds in the history not committed to the file yet: the current generation
    /// first, then the frozen one (one lock at a time).
    fn uncommitted<T>(&self, find: impl Fn(&Generation) -> Option<T>) -> Option<T> {
        let found = find(&self.recent.read());
        found.or_else(|| self.frozen.read().as_deref().and_then(&find))
    }

    /// Transaction `hash` as last recorded (without its block).
    fn stored_tx(&self, hash: &Hash32) -> Option<TxView> {
        if let Some(tx) = self.uncommitted(|g| g.txs.get(hash).map(|tx| tx.clone())) {
            return Some(tx);
        }
        let position = *self.tx_positions.read().get(hash)?;
        let bytes = self
            .file
            .as_ref()?
            .get(tables::TXS, &position.to_be_bytes())?;
        match decode_tx(&bytes) {
            Ok(tx) => Some(tx),
            Err(error) => {
                tracing::error!(tx = %hash, %error, "explorer file holds an unreadable transaction");
                None
            }
        }
    }

    /// Changes transaction `hash` (in the current generation, where it moves first if it was
    /// committed already); `false` when it is unknown.
    fn update_tx(&self, hash: &Hash32, change: impl FnOnce(&mut TxView)) -> bool {
        let recent = self.recent.read();
        if let Some(mut tx) = recent.txs.get_mut(hash) {
            change(&mut tx);
            return true;
        }
        let Some(mut tx) = self.stored_tx(hash) else {
            return false;
        };
        change(&mut tx);
        recent.txs.insert(*hash, tx);
        true
    }

    /// Where transaction `hash` is in its chain: (height, index).
    fn tx_block(&self, hash: &Hash32) -> Option<(u64, usize)> {
        if let Some(at) = self.uncommitted(|g| g.tx_blocks.get(hash).map(|at| *at)) {
            return Some(at);
        }
        let position = *self.tx_positions.read().get(hash)?;
        let bytes = self
            .file
            .as_ref()?
            .get(tables::TX_BLOCKS, &position.to_be_bytes())?;
        let (height, index) = bytes.split_at_checked(8)?;
        Some((
            u64::from_be_bytes(height.try_into().ok()?),
            u64::from_be_bytes(index.try_into().ok()?) as usize,
        ))
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
        let mut tx = self.stored_tx(hash)?;
        if let Some((height, index)) = self.tx_block(hash) {
            tx.block_height = Some(height);
            tx.block_index = Some(index);
        }
        Some(tx)
    }

    /// A transaction's inclusion proof, once sealed: (block, proof).
    pub fn tx_proof(&self, tx: &TxView) -> Option<(Arc<Block>, MerkleProof)> {
        let height = tx.block_height?;
        let key = (Arc::from(tx.chain_id.as_str()), height);
        let proven = match self.proven.get(&key).map(|p| Arc::clone(&p)) {
            Some(proven) => proven,
            None => {
                if height >= self.chains.read().get(tx.chain_id.as_str())?.height {
                    return None;
                }
                let proven = Arc::new(self.stored_block(&tx.chain_id, height)?.proven());
                if self.proven.len() >= PROVEN_BLOCKS_KEPT {
                    self.proven.clear();
                }
                self.proven.insert(key, Arc::clone(&proven));
                proven
            }
        };
        let proof = proven.tx_proof(&tx.tx_hash)?;
        Some((Arc::clone(&proven.block), proof))
    }

    fn stored_block(&self, chain: &str, height: u64) -> Option<Arc<Block>> {
        let key = (Arc::from(chain), height);
        if let Some(block) = self.uncommitted(|g| g.blocks.get(&key).map(|b| b.clone())) {
            return Some(block);
        }
        let bytes = self
            .file
            .as_ref()?
            .get(tables::BLOCKS, &block_key(chain, height))?;
        match decode_block(&bytes) {
            Ok(block) => Some(Arc::new(block)),
            Err(error) => {
                tracing::error!(chain, height, %error, "explorer file holds an unreadable block");
                None
            }
        }
    }

    /// Block at `height` of `chain`.
    pub fn block(&self, chain: &str, height: u64) -> Option<Block> {
        if height >= self.chains.read().get(chain)?.height {
            return None;
        }
        self.stored_block(chain, height).map(|b| (*b).clone())
    }

    /// Block with `hash`.
    pub fn block_by_hash(&self, chain: &str, hash: &Hash32) -> Option<Block> {
        let key = (Arc::from(chain), *hash);
        let height = match self.uncommitted(|g| g.block_heights.get(&key).map(|h| *h)) {
            Some(height) => height,
            None => {
                let bytes = self
                    .file
                    .as_ref()?
                    .get(tables::BLOCK_HEIGHTS, &key_of_hash(chain, hash))?;
                u64::from_be_bytes(bytes.try_into().ok()?)
            }
        };
        self.block(chain, height)
    }

    /// Up to `limit` blocks of `chain` from height `from`.
    pub fn blocks(&self, chain: &str, from: u64, limit: usize) -> Vec<Block> {
        let Some(height) = self.chains.read().get(chain).map(|c| c.height) else {
            return Vec::new();
        };
        (from..height)
            .take(limit)
            .map_while(|h| self.stored_block(chain, h).map(|b| (*b).clone()))
            .collect()
    }

    /// Genesis and last block of `chain`.
    pub fn chain(&self, chain: &str) -> Option<(Genesis, Block)> {
        let chains = self.chains.read();
        let head = chains.get(chain)?;
        Some((head.genesis.clone(), (*head.last).clone()))
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

    /// A page of `chain`'s jobs (of `owner`'s only, when given) that `keep` keeps, newest
    /// first, after job `after` (exclusive), at most `limit`; and whether more may follow.
    /// `None` when `after` is not one of those jobs.
    pub fn jobs_page(
        &self,
        chain: &str,
        owner: Option<&Address>,
        keep: impl Fn(&JobListing) -> bool,
        after: Option<Hash32>,
        limit: usize,
    ) -> Option<(Vec<JobListing>, bool)> {
        let chain: Arc<str> = Arc::from(chain);
        let ids = match owner {
            Some(owner) => self.jobs_of.get(&(chain, *owner)).map(|ids| ids.clone()),
            None => self.jobs_in.get(&chain).map(|ids| ids.clone()),
        }
        .unwrap_or_default();
        let mut newest_first = ids.iter().rev().peekable();
        if let Some(after) = after {
            newest_first.find(|id| **id == after)?;
        }
        let mut page = Vec::new();
        for id in newest_first {
            let Some(view) = self.jobs.get(id) else {
                continue;
            };
            if !keep(&view.listing) {
                continue;
            }
            if page.len() == limit {
                return Some((page, true));
            }
            page.push(view.listing.clone());
        }
        Some((page, false))
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

    /// A sorted copy of the whole state (reads every transaction and block: audits and tests).
    pub fn export(&self) -> ExplorerState {
        let mut accounts: BTreeMap<String, BTreeMap<Address, AccountView>> = BTreeMap::new();
        for entry in self.accounts.iter() {
            accounts
                .entry(entry.key().0.to_string())
                .or_default()
                .insert(entry.key().1, *entry.value());
        }
        let hashes: BTreeSet<Hash32> = self.tx_positions.read().keys().copied().collect();
        let chains = self
            .chains
            .read()
            .iter()
            .map(|(id, head)| {
                let blocks = (0..head.height)
                    .map(|h| (*self.stored_block(id, h).expect("every block is stored")).clone())
                    .collect();
                let view = ChainView {
                    genesis: head.genesis.clone(),
                    blocks,
                };
                (id.clone(), view)
            })
            .collect();
        ExplorerState {
            next_position: self.next_position(),
            accounts,
            txs: hashes
                .iter()
                .map(|hash| (*hash, self.tx(hash).expect("every listed tx is stored")))
                .collect(),
            chains,
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
            jobs: self
                .jobs
                .iter()
                .map(|e| (*e.key(), e.value().clone()))
                .collect(),
        }
    }

    fn with_file(file: Option<Arc<Kv>>) -> Explorer {
        Explorer {
            accounts: DashMap::new(),
            chains: RwLock::default(),
            supply: DashMap::new(),
            asset_balances: DashMap::new(),
            asset_supply: DashMap::new(),
            schedules: DashMap::new(),
            schedules_of: DashMap::new(),
            jobs: DashMap::new(),
            jobs_in: DashMap::new(),
            jobs_of: DashMap::new(),
            account_index: RwLock::default(),
            tx_positions: RwLock::default(),
            recent: RwLock::default(),
            frozen: RwLock::default(),
            changed: Mutex::default(),
            file,
            next_position: RwLock::default(),
            blocks: broadcast::channel(BLOCK_FEED_CAPACITY).0,
            proven: DashMap::new(),
        }
    }

    /// An explorer kept in its file at `path`, for a log whose next position is `log_head`:
    /// what grows with the number of accounts is loaded into memory, history stays on disk,
    /// and the runner resumes after the last commit. A file that cannot be used is rebuilt.
    pub fn open(path: &Path, log_head: u64) -> Result<Explorer, String> {
        let (file, position) = Kv::open(path, &tables::ALL, FILE_FORMAT, log_head)?;
        let explorer = Explorer::with_file(Some(Arc::new(file)));
        match explorer.load(position) {
            Ok(()) => Ok(explorer),
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "explorer file not usable; rebuilding it from the log");
                drop(explorer);
                let file = Kv::recreate(path, &tables::ALL, FILE_FORMAT)?;
                Ok(Explorer::with_file(Some(Arc::new(file))))
            }
        }
    }

    /// Loads the in-memory state the file holds at `position`.
    fn load(&self, position: u64) -> Result<(), String> {
        let file = self.file.as_ref().expect("loading needs a file");
        let bad = |what: &str| format!("bad {what} record");
        // Chains and symbols hold no 0 byte; an address (always last) may.
        let split = |key: &[u8], parts: usize| -> Vec<Vec<u8>> {
            key.splitn(parts, |b| *b == 0).map(<[u8]>::to_vec).collect()
        };
        let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).map_err(|_| bad("key"));
        let address = |bytes: &[u8]| -> Result<Address, String> {
            Ok(Address(bytes.try_into().map_err(|_| bad("address"))?))
        };
        for (key, value) in file.all(tables::CHAINS)? {
            let chain = text(&key)?;
            let genesis: Genesis = serde_json::from_slice(&value).map_err(|e| e.to_string())?;
            let mut prefix = chain.as_bytes().to_vec();
            prefix.push(0);
            let (_, last) = file
                .last(tables::BLOCKS, &prefix)
                .ok_or_else(|| format!("chain {chain} has no blocks"))?;
            let last = decode_block(&last).map_err(|e| e.to_string())?;
            let head = ChainHead {
                genesis,
                height: last.height + 1,
                last: Arc::new(last),
            };
            self.chains.write().insert(chain, head);
        }
        let mut index = self.account_index.write();
        for (key, value) in file.all(tables::ACCOUNTS)? {
            let parts = split(&key, 2);
            let [chain, who] = &parts[..] else {
                return Err(bad("account"));
            };
            let key = (Arc::from(text(chain)?.as_str()), address(who)?);
            let view: AccountView = serde_json::from_slice(&value).map_err(|e| e.to_string())?;
            index.insert(key.clone());
            self.accounts.insert(key, view);
        }
        drop(index);
        for (key, value) in file.all(tables::ASSET_BALANCES)? {
            let parts = split(&key, 3);
            let [chain, symbol, who] = &parts[..] else {
                return Err(bad("asset balance"));
            };
            let balance: Amount = serde_json::from_slice(&value).map_err(|e| e.to_string())?;
            let key = (
                Arc::from(text(chain)?.as_str()),
                text(symbol)?,
                address(who)?,
            );
            self.asset_balances.insert(key, balance);
        }
        for (key, value) in file.all(tables::SUPPLY)? {
            let parts = split(&key, 2);
            let [chain, symbol] = &parts[..] else {
                return Err(bad("supply"));
            };
            let books: SupplyView = serde_json::from_slice(&value).map_err(|e| e.to_string())?;
            let chain: Arc<str> = Arc::from(text(chain)?.as_str());
            match symbol.is_empty() {
                true => self.supply.insert(chain, books),
                false => self.asset_supply.insert((chain, text(symbol)?), books),
            };
        }
        let mut entries = 0;
        file.each(tables::TX_HASHES, |_, chunk| {
            entries += chunk.len() / TX_HASH_ENTRY;
            Ok(())
        })?;
        let mut positions = self.tx_positions.write();
        positions.reserve(entries);
        file.each(tables::TX_HASHES, |_, chunk| {
            if chunk.len() % TX_HASH_ENTRY != 0 {
                return Err(bad("tx hash chunk"));
            }
            for entry in chunk.chunks_exact(TX_HASH_ENTRY) {
                let (position, hash) = entry.split_at(8);
                let position = u64::from_be_bytes(position.try_into().expect("8 bytes"));
                positions.insert(Hash32(hash.try_into().expect("32 bytes")), position);
            }
            Ok(())
        })?;
        drop(positions);
        let mut schedules: Vec<(u64, VestingView)> = Vec::new();
        for (_, value) in file.all(tables::SCHEDULES)? {
            let view: VestingView = serde_json::from_slice(&value).map_err(|e| e.to_string())?;
            // Oldest first, as they were created: in the order of their transactions.
            let created = self.stored_tx(&view.id).ok_or(bad("schedule"))?.position;
            schedules.push((created, view));
        }
        schedules.sort_by_key(|(created, _)| *created);
        for (_, view) in schedules {
            self.schedules_of
                .entry((Arc::from(view.chain_id.as_str()), view.schedule.beneficiary))
                .or_default()
                .push(view.id);
            self.schedules.insert(view.id, view);
        }
        let mut jobs: Vec<JobView> = Vec::new();
        for (_, value) in file.all(tables::JOBS)? {
            jobs.push(serde_json::from_slice(&value).map_err(|e| e.to_string())?);
        }
        jobs.sort_by_key(|view| view.position);
        for view in jobs {
            let (chain, listing) = (Arc::from(view.chain_id.as_str()), &view.listing);
            self.jobs_in
                .entry(Arc::clone(&chain))
                .or_default()
                .push(listing.id);
            self.jobs_of
                .entry((chain, listing.owner))
                .or_default()
                .push(listing.id);
            self.jobs.insert(listing.id, view);
        }
        *self.next_position.write() = position;
        Ok(())
    }

    /// Freezes what changed since the last commit and returns the job that writes it (run off
    /// the runner's thread; [`Projection::persisted`] drops the frozen generation after it).
    /// `None` without a file, when nothing was applied since, or while a commit is running.
    fn prepare_persist(&self) -> Option<(u64, PersistJob)> {
        let file = self.file.clone()?;
        if self.frozen.read().is_some() {
            return None;
        }
        let position = self.next_position();
        let changed = std::mem::take(&mut *self.changed.lock());
        // The frozen generation is visible before the current one is replaced, so a reader
        // always finds an entry in one of them (or, once committed, in the file).
        let frozen = self.recent.read().clone();
        *self.frozen.write() = Some(frozen.clone());
        *self.recent.write() = Arc::new(Generation::default());
        let mut batch = Batch::default();
        for (chain, address) in &changed.accounts {
            let key = key(&[chain.as_bytes(), &address.0]);
            batch.put(tables::ACCOUNTS, key, json(&self.account(chain, address)));
        }
        for (chain, symbol, address) in &changed.asset_balances {
            let key = key(&[chain.as_bytes(), symbol.as_bytes(), &address.0]);
            let balance = self.asset_balance(chain, symbol, address);
            batch.put(tables::ASSET_BALANCES, key, json(&balance));
        }
        for chain in &changed.supply {
            let key = key(&[chain.as_bytes(), b""]);
            batch.put(tables::SUPPLY, key, json(&self.supply(chain)));
        }
        for (chain, symbol) in &changed.asset_supply {
            let key = key(&[chain.as_bytes(), symbol.as_bytes()]);
            batch.put(tables::SUPPLY, key, json(&self.asset_supply(chain, symbol)));
        }
        for id in &changed.schedules {
            if let Some(view) = self.schedules.get(id) {
                batch.put(tables::SCHEDULES, id.0.to_vec(), json(&*view));
            }
        }
        for id in &changed.jobs {
            if let Some(view) = self.jobs.get(id) {
                batch.put(tables::JOBS, id.0.to_vec(), json(&*view));
            }
        }
        for chain in &changed.chains {
            if let Some(head) = self.chains.read().get(chain) {
                batch.put(
                    tables::CHAINS,
                    chain.as_bytes().to_vec(),
                    json(&head.genesis),
                );
            }
        }
        let positions = self.tx_positions.read();
        let tx_blocks: Vec<(u64, (u64, usize))> = frozen
            .tx_blocks
            .iter()
            .filter_map(|at| Some((*positions.get(at.key())?, *at.value())))
            .collect();
        drop(positions);
        let job = move || {
            // Encoding the history is the bulk of the work: here, off the runner's thread.
            let mut hashes = Vec::with_capacity(frozen.txs.len() * TX_HASH_ENTRY);
            for tx in frozen.txs.iter() {
                hashes.extend_from_slice(&tx.position.to_be_bytes());
                hashes.extend_from_slice(&tx.key().0);
                let key = tx.position.to_be_bytes().to_vec();
                batch.put(tables::TXS, key, encode_tx(tx.value()));
            }
            if !hashes.is_empty() {
                // One entry per commit: reading them back on open is one pass over a few
                // large values, not millions of small ones.
                batch.put(tables::TX_HASHES, position.to_be_bytes().to_vec(), hashes);
            }
            for (position, (height, index)) in tx_blocks {
                let value = [height.to_be_bytes(), (index as u64).to_be_bytes()].concat();
                batch.put(tables::TX_BLOCKS, position.to_be_bytes().to_vec(), value);
            }
            for block in frozen.blocks.iter() {
                let (chain, height) = block.key();
                batch.put(
                    tables::BLOCKS,
                    block_key(chain, *height),
                    encode_block(block.value()),
                );
            }
            for entry in frozen.block_heights.iter() {
                let (chain, hash) = entry.key();
                let height = entry.value().to_be_bytes().to_vec();
                batch.put(tables::BLOCK_HEIGHTS, key_of_hash(chain, hash), height);
            }
            file.commit(position, batch)
        };
        Some((position, Box::new(job)))
    }
}

fn key_of_hash(chain: &str, hash: &Hash32) -> Vec<u8> {
    key(&[chain.as_bytes(), &hash.0])
}
