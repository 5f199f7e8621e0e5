//! GPU staking pools (PRODUCT.md §5): providers lock AIT in a pool for 7 to 365 days and earn a
//! share of the pool's emission, which is paid out of the pool's funded budget.
//!
//! One aggregate per chain (`staking/<chain>`) holds every pool and position of the chain: a
//! slash takes 5 % of a provider's stake in every pool at once, and a reputation change
//! reweighs all its positions, so the pools of a chain (few, from the genesis) share a stream.
//! Its module account `staking/<chain>` holds the pools' budgets and the stakes.
//!
//! Rules:
//! - weight = stake × (1 + reputation/1000) × lock multiplier (1.0 at 7 days rising linearly to
//!   2.0 at 365 days), counted in [`WEIGHT_UNIT`]s of base units.
//! - Each pool settles an epoch every `epoch_s` (a durable timer): emission = reward_rate ×
//!   (seconds of the epoch during which the pool had weight) × utilization, at most the budget
//!   left. Utilization = busy GPU time of the pool's providers on paid, verified jobs in the
//!   epoch ÷ (their registered capacity × the epoch's length), at most 1.
//! - The emission is split by weight-time: a position gets ⌊emission × its weight-milliseconds
//!   in the epoch ÷ the pool's⌋. What rounding leaves stays in the budget.
//! - `claim_rewards` pays what settled and was not claimed, never twice; `unstake` returns the
//!   stake once the lock has ended (`locked` before); `early_exit` returns it less 10 % to the
//!   treasury. A closed position still gets its share of the epoch it was in, and can claim it.
//! - `add_stake` keeps accrued rewards; the later lock end wins.
//! - A disproved result slashes 5 % of the provider's stake in every pool to the treasury, once
//!   per job.
//!
//! Worked example: a pool with reward_rate 1 AIT/s and a 3,600 s epoch. Alice stakes 100 AIT for
//! 365 days (multiplier 2.0, reputation 0: weight 200 AIT) at the epoch's start; Bob 100 AIT for
//! 7 days (weight 100 AIT) half-way through. The pool had weight for the whole 3,600 s; Alice's
//! weight-time is 200 × 3,600, Bob's 100 × 1,800, the pool's 900,000 AIT·s. Their providers
//! were busy 900 GPU-seconds out of 2 × 3,600 (capacity 1 each): utilization 12.5 %. Emission =
//! 1 × 3,600 × 0.125 = 450 AIT: Alice gets 450 × 720,000 ÷ 900,000 = 360, Bob 90.

use std::collections::{BTreeMap, BTreeSet};

use imbl::{OrdMap, OrdSet};

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::aggregate::{Aggregate, BatchClass, Context};
use crate::codec::DomainEvent;
use crate::error::TxError;
use crate::event_id::event_id;
use crate::hash::Hash32;
use crate::money::Amount;
use crate::twas::BalanceChange;
use crate::vesting::Refusal;

/// Basis points in one.
pub const BPS: u128 = 10_000;
/// Shortest lock any pool allows, days.
pub const LOCK_DAYS_MIN: u32 = 7;
/// Longest lock any pool allows, days.
pub const LOCK_DAYS_MAX: u32 = 365;
/// Share of the stake an early exit leaves to the treasury.
pub const EARLY_EXIT_PENALTY_BPS: u128 = 1_000;
/// Share of a provider's stake a disproved result slashes.
pub const SLASH_BPS: u128 = 500;
/// Longest epoch: 30 days (weight-milliseconds of any supply below 10^30 base units fit a u128).
pub const EPOCH_S_MAX: u64 = 30 * 24 * 3600;
/// Most pools on a chain.
pub const POOLS_MAX: usize = 16;
/// Base units per unit of weight (a micro-AIT).
pub const WEIGHT_UNIT: u128 = 1_000_000_000_000;
/// Settled epochs a pool keeps for its reads.
pub const EPOCHS_SHOWN: usize = 48;
/// Highest reputation.
pub const REPUTATION_MAX: u16 = 1_000;

const DAY_MS: u64 = 24 * 3600 * 1000;

/// Stream of a chain's pools and positions.
pub fn staking_stream(chain_id: &str) -> String {
    format!("staking/{chain_id}")
}

/// The module account holding a chain's pool budgets and stakes.
pub fn staking_account(chain_id: &str) -> Address {
    Address::module(&format!("staking/{chain_id}"))
}

/// GPU requirements of a pool's providers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolRequirements {
    /// Least GPU memory a provider's registered adapter reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_vram_mb: Option<u64>,
    /// Job kinds the pool is for (informative: miners run every kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinds: Option<Vec<String>>,
}

/// A pool as the genesis declares it (`[[chains.genesis.pools]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// Id: 1 to 32 lowercase letters, digits or `-`.
    pub id: String,
    /// Emission at full utilization, base units per second.
    pub reward_rate: Amount,
    /// What the pool may ever pay in rewards (funded into the staking account at genesis).
    pub budget: Amount,
    /// Least stake of a position, base units.
    pub min_stake: Amount,
    /// Shortest lock, days (at least 7).
    pub min_lock_days: u32,
    /// Longest lock, days (at most 365).
    pub max_lock_days: u32,
    /// Epoch length, seconds.
    pub epoch_s: u64,
    /// What providers must offer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<PoolRequirements>,
}

impl PoolSpec {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), String> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 32
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            return Err(format!(
                "pool id {:?}: 1-32 lowercase letters, digits or '-'",
                self.id
            ));
        }
        if !(LOCK_DAYS_MIN <= self.min_lock_days
            && self.min_lock_days <= self.max_lock_days
            && self.max_lock_days <= LOCK_DAYS_MAX)
        {
            return Err(format!(
                "pool {}: {LOCK_DAYS_MIN} <= min_lock_days <= max_lock_days <= {LOCK_DAYS_MAX}",
                self.id
            ));
        }
        if !(1..=EPOCH_S_MAX).contains(&self.epoch_s) {
            return Err(format!("pool {}: epoch_s is 1..={EPOCH_S_MAX}", self.id));
        }
        if self.min_stake == Amount::ZERO {
            return Err(format!("pool {}: min_stake must be positive", self.id));
        }
        Ok(())
    }
}

/// Lock multiplier in basis points: 10,000 at 7 days rising linearly to 20,000 at 365.
pub fn lock_multiplier_bps(lock_days: u32) -> u128 {
    let days = lock_days.clamp(LOCK_DAYS_MIN, LOCK_DAYS_MAX);
    BPS + BPS * u128::from(days - LOCK_DAYS_MIN) / u128::from(LOCK_DAYS_MAX - LOCK_DAYS_MIN)
}

/// Weight of `amount` locked for `lock_days` by a provider of `reputation`, in weight units.
pub fn weight_of(amount: Amount, lock_days: u32, reputation: u16) -> u128 {
    let reputation = u128::from(reputation.min(REPUTATION_MAX));
    let units = amount.0 / WEIGHT_UNIT;
    units * (1_000 + reputation) / 1_000 * lock_multiplier_bps(lock_days) / BPS
}

/// `value × num ÷ den`, rounded down, without overflow when `num ≤ den`.
fn mul_div(value: u128, num: u128, den: u128) -> u128 {
    debug_assert!(den > 0 && num <= den);
    (value / den) * num + (value % den) * num / den
}

/// Body of `stake`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StakeBody {
    /// The pool.
    pub pool_id: String,
    /// Base units staked.
    pub amount: Amount,
    /// Lock, days.
    pub lock_days: u32,
}

/// Body of `add_stake`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddStakeBody {
    /// The position.
    pub position_id: Hash32,
    /// Base units added.
    pub amount: Amount,
    /// A new lock from now, days (the later end wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_days: Option<u32>,
}

/// Body of `claim_rewards`, `unstake` and `early_exit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionRef {
    /// The position.
    pub position_id: Hash32,
}

/// What a staking transaction asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StakingAct {
    /// Open a position (its id: the transaction's hash).
    Stake(StakeBody),
    /// Add to a position.
    AddStake(AddStakeBody),
    /// Take the settled, unclaimed rewards.
    Claim(Hash32),
    /// Close a position whose lock ended.
    Unstake(Hash32),
    /// Close a position before its lock ends, with the penalty.
    EarlyExit(Hash32),
}

impl StakingAct {
    /// The position an act names (none for `stake`, whose position is the transaction).
    pub fn position(&self) -> Option<Hash32> {
        match self {
            StakingAct::Stake(_) => None,
            StakingAct::AddStake(body) => Some(body.position_id),
            StakingAct::Claim(id) | StakingAct::Unstake(id) | StakingAct::EarlyExit(id) => {
                Some(*id)
            }
        }
    }
}

/// What the host knows of a staker as a GPU provider (a registered miner), measured when it
/// stakes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderFacts {
    /// Jobs it runs at once (0: not a miner).
    pub capacity: u32,
    /// Its reputation (0 for a non-miner).
    pub reputation: u16,
    /// Its adapter's memory, MB.
    pub vram_mb: u64,
}

/// A pool's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// As declared.
    pub spec: PoolSpec,
    /// The current epoch (0 first).
    pub epoch: u64,
    /// When it started.
    pub epoch_start_ms: u64,
    /// Time up to which weight-time is counted.
    pub counted_ms: u64,
    /// Weight of the open positions.
    pub total_weight: u128,
    /// Weight-milliseconds of the epoch so far.
    pub weight_ms: u128,
    /// Milliseconds of the epoch during which the pool had weight.
    pub staked_ms: u64,
    /// Busy GPU milliseconds of the pool's providers on verified jobs this epoch.
    pub busy_ms: u128,
    /// What was counted past the epoch's end before it settled: the next epoch's start.
    pub carry: Carry,
    /// Rewards credited to positions, ever (the budget left is `budget − distributed`).
    pub distributed: Amount,
    /// The last settled epochs, newest last.
    pub settled: Vec<EpochRecord>,
}

impl Pool {
    /// The pool created by its spec at `at_ms`.
    fn new(spec: PoolSpec, at_ms: u64) -> Pool {
        Pool {
            spec,
            epoch: 0,
            epoch_start_ms: at_ms,
            counted_ms: at_ms,
            total_weight: 0,
            weight_ms: 0,
            staked_ms: 0,
            busy_ms: 0,
            carry: Carry::default(),
            distributed: Amount::ZERO,
            settled: Vec::new(),
        }
    }

    /// What the budget still holds.
    pub fn budget_left(&self) -> Amount {
        Amount(self.spec.budget.0 - self.distributed.0)
    }

    /// When the current epoch ends.
    pub fn epoch_end_ms(&self) -> u64 {
        self.epoch_start_ms + self.spec.epoch_s * 1000
    }

    /// Counts weight-time up to `at_ms`: into the epoch up to its end, into the carry after.
    fn count_to(&mut self, at_ms: u64) {
        let (within, after) = split(self.counted_ms, at_ms, self.epoch_end_ms());
        if self.total_weight > 0 {
            self.weight_ms += self.total_weight * u128::from(within);
            self.staked_ms += within;
            self.carry.weight_ms += self.total_weight * u128::from(after);
            self.carry.staked_ms += after;
        }
        self.counted_ms = self.counted_ms.max(at_ms);
    }
}

/// Counts made past an epoch's end before its settlement (a timer runs a moment after the end,
/// or long after it when the node was down): they open the next epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carry {
    /// Weight-milliseconds.
    pub weight_ms: u128,
    /// Milliseconds with weight.
    pub staked_ms: u64,
    /// Busy GPU milliseconds.
    pub busy_ms: u128,
}

/// The milliseconds of `[from, to)` before `end` and after it.
fn split(from: u64, to: u64, end: u64) -> (u64, u64) {
    if to <= from {
        return (0, 0);
    }
    let within = to.min(end).saturating_sub(from);
    let after = to - from.max(end).min(to);
    (within, after)
}

/// One settled epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Its number.
    pub epoch: u64,
    /// When it ended.
    pub end_ms: u64,
    /// Utilization, basis points.
    pub utilization_bps: u32,
    /// Rate × staked time × utilization, at most the budget left.
    pub emission: Amount,
    /// What the positions got (≤ emission; the rest stays in the budget).
    pub distributed: Amount,
}

/// A position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Its pool.
    pub pool_id: String,
    /// Its owner (the provider).
    pub owner: Address,
    /// Base units staked.
    pub amount: Amount,
    /// Lock, days (of its latest lock).
    pub lock_days: u32,
    /// When the lock ends.
    pub lock_ends_ms: u64,
    /// Current weight (0 once closed).
    pub weight: u128,
    /// Weight-milliseconds in the pool's current epoch, counted up to `counted_ms`.
    pub weight_ms: u128,
    /// Weight-milliseconds counted past the epoch's end before it settled.
    pub carry_weight_ms: u128,
    /// See `weight_ms`.
    pub counted_ms: u64,
    /// Rewards settled, ever.
    pub accrued: Amount,
    /// Rewards paid out.
    pub claimed: Amount,
    /// Opened at.
    pub opened_at_ms: u64,
    /// Closed (unstaked, exited, or slashed to nothing).
    pub closed: bool,
}

impl Position {
    /// Counts its weight-time up to `at_ms`: into the epoch ending at `epoch_end_ms`, into the
    /// carry after it.
    fn count_to(&mut self, at_ms: u64, epoch_end_ms: u64) {
        let (within, after) = split(self.counted_ms, at_ms, epoch_end_ms);
        self.weight_ms += self.weight * u128::from(within);
        self.carry_weight_ms += self.weight * u128::from(after);
        self.counted_ms = self.counted_ms.max(at_ms);
    }

    /// Settled and not claimed.
    pub fn claimable(&self) -> Amount {
        Amount(self.accrued.0 - self.claimed.0)
    }
}

/// A provider as the pools know it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    /// Jobs it runs at once, as registered when it last staked.
    pub capacity: u32,
    /// Its reputation, kept up to date from its miner's events.
    pub reputation: u16,
}

/// A chain's pools and positions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakingState {
    /// Pools by id.
    pub pools: BTreeMap<String, Pool>,
    /// Positions by id (the `stake` transaction's hash). The collections that grow with the
    /// positions are persistent maps (`imbl`): the actor decides each batch against a copy of
    /// the state, which must not cost a copy of every position.
    pub positions: OrdMap<Hash32, Position>,
    /// Providers that staked.
    pub providers: BTreeMap<Address, Provider>,
    /// Position ids by owner.
    pub owned: OrdMap<Address, OrdSet<Hash32>>,
    /// Each owner's stake in all pools, as it changed (voting power counts it: PRODUCT.md §3).
    pub staked: OrdMap<Address, Vec<BalanceChange>>,
}

impl StakingState {
    /// The position `id`, owned by `sender`.
    fn owned(&self, id: &Hash32, sender: &Address) -> Result<&Position, TxError> {
        let position = self
            .positions
            .get(id)
            .ok_or_else(|| TxError::NotFound(format!("no position {id}")))?;
        if position.owner != *sender {
            return Err(TxError::NotOwner(format!(
                "position {id} is {}'s",
                position.owner
            )));
        }
        Ok(position)
    }

    /// The position `id`, owned by `sender` and open.
    fn open(&self, id: &Hash32, sender: &Address) -> Result<&Position, TxError> {
        let position = self.owned(id, sender)?;
        if position.closed {
            return Err(TxError::NotActive(format!("position {id} is closed")));
        }
        Ok(position)
    }

    /// The checks of `act` by `sender` at `now_ms`, made before anything is written (and again
    /// when decided); the provider facts are the host's measure of the sender.
    pub fn check(
        &self,
        act: &StakingAct,
        sender: &Address,
        amount: Amount,
        provider: &ProviderFacts,
        now_ms: u64,
    ) -> Result<(), TxError> {
        match act {
            StakingAct::Stake(body) => {
                let pool = self
                    .pools
                    .get(&body.pool_id)
                    .ok_or_else(|| TxError::NotFound(format!("no pool {:?}", body.pool_id)))?;
                let spec = &pool.spec;
                if amount < spec.min_stake {
                    return Err(TxError::LimitExceeded(format!(
                        "pool {} takes stakes of at least {}",
                        spec.id, spec.min_stake
                    )));
                }
                check_lock(spec, body.lock_days)?;
                check_requirements(spec, provider)
            }
            StakingAct::AddStake(body) => {
                let position = self.open(&body.position_id, sender)?;
                let spec = &self.pools[&position.pool_id].spec;
                if let Some(days) = body.lock_days {
                    check_lock(spec, days)?;
                }
                check_requirements(spec, provider)
            }
            StakingAct::Claim(id) => {
                let position = self.owned(id, sender)?;
                if position.claimable() == Amount::ZERO {
                    return Err(TxError::NothingToClaim(format!(
                        "position {id}: {} settled, all claimed",
                        position.accrued
                    )));
                }
                Ok(())
            }
            StakingAct::Unstake(id) => {
                let position = self.open(id, sender)?;
                if now_ms < position.lock_ends_ms {
                    return Err(TxError::Locked(format!(
                        "position {id} is locked until {} (Unix ms); early_exit pays a 10 % penalty",
                        position.lock_ends_ms
                    )));
                }
                Ok(())
            }
            StakingAct::EarlyExit(id) => {
                let position = self.open(id, sender)?;
                if now_ms >= position.lock_ends_ms {
                    return Err(TxError::NotActive(format!(
                        "position {id}'s lock has ended: unstake it without a penalty"
                    )));
                }
                Ok(())
            }
        }
    }

    /// Weight of `position` given what is known of its owner now.
    fn weight(&self, position: &Position) -> u128 {
        let reputation = self
            .providers
            .get(&position.owner)
            .map_or(0, |p| p.reputation);
        weight_of(position.amount, position.lock_days, reputation)
    }

    /// Sets position `id`'s weight (its pool's weight-time counted up to `at_ms` first).
    fn reweigh(&mut self, id: &Hash32, at_ms: u64) {
        let Some(position) = self.positions.get(id) else {
            return;
        };
        let weight = if position.closed {
            0
        } else {
            self.weight(position)
        };
        let pool = self
            .pools
            .get_mut(&position.pool_id)
            .expect("a position's pool exists");
        pool.count_to(at_ms);
        let end = pool.epoch_end_ms();
        let position = self.positions.get_mut(id).expect("checked above");
        position.count_to(at_ms, end);
        pool.total_weight = pool.total_weight - position.weight + weight;
        position.weight = weight;
    }

    /// Records `owner`'s total stake at `at_ms` in its history (one change per time): its last
    /// total with `added` and without `removed` (each change of a position's amount comes
    /// here, so the last total is always the sum of its positions; summing them instead would
    /// cost every stake a pass over all of the owner's positions).
    fn record_stake(&mut self, owner: Address, at_ms: u64, added: u128, removed: u128) {
        let history = self.staked.entry(owner).or_default();
        let total = history.last().map_or(0, |last| last.balance.0) + added - removed;
        debug_assert_eq!(
            total,
            self.owned.get(&owner).map_or(0, |ids| ids
                .iter()
                .map(|id| self.positions[id].amount.0)
                .sum()),
            "the running total is the sum of the positions"
        );
        let history = self.staked.entry(owner).or_default();
        let change = BalanceChange {
            at_ms: history.last().map_or(at_ms, |last| last.at_ms.max(at_ms)),
            balance: Amount(total),
        };
        match history.last_mut() {
            Some(last) if last.at_ms == change.at_ms => *last = change,
            _ => history.push(change),
        }
    }

    /// `owner`'s stake history, oldest first (empty: it never staked).
    pub fn stake_history(&self, owner: &Address) -> Vec<BalanceChange> {
        self.staked.get(owner).cloned().unwrap_or_default()
    }

    /// The positions of `owner`.
    pub fn positions_of(&self, owner: &Address) -> Vec<Hash32> {
        self.owned
            .get(owner)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Settlement of `pool_id`'s current epoch: the record, and each position's share.
    fn settlement(&self, pool_id: &str) -> Option<(EpochRecord, Vec<(Hash32, Amount)>)> {
        let pool = self.pools.get(pool_id)?;
        let end_ms = pool.epoch_end_ms();
        let mut pool = pool.clone();
        pool.count_to(end_ms);
        let epoch_ms = u128::from(pool.spec.epoch_s * 1000);
        // One pass, nothing cloned: each position's weight-time up to the end, and its owner.
        let mut weights: Vec<(Hash32, u128)> = Vec::new();
        let mut owners: Vec<Address> = Vec::new();
        for (id, position) in self.positions.iter().filter(|(_, p)| p.pool_id == pool_id) {
            let (within, _) = split(position.counted_ms, end_ms, end_ms);
            let weight_ms = position.weight_ms + position.weight * u128::from(within);
            if weight_ms > 0 {
                owners.push(position.owner);
                weights.push((*id, weight_ms));
            }
        }
        owners.sort_unstable();
        owners.dedup();
        let capacity: u64 = owners
            .iter()
            .map(|o| self.providers.get(o).map_or(0, |p| u64::from(p.capacity)))
            .sum();
        let capacity_ms = u128::from(capacity) * epoch_ms;
        let utilization_bps = match capacity_ms {
            0 => 0,
            _ => mul_div(BPS, pool.busy_ms.min(capacity_ms), capacity_ms),
        };
        let full = pool
            .spec
            .reward_rate
            .0
            .saturating_mul(u128::from(pool.staked_ms))
            / 1000;
        let emission = mul_div(full, utilization_bps, BPS).min(pool.budget_left().0);
        let shares: Vec<(Hash32, Amount)> = weights
            .iter()
            .map(|(id, weight_ms)| (*id, Amount(mul_div(emission, *weight_ms, pool.weight_ms))))
            .collect();
        let distributed = shares.iter().map(|(_, a)| a.0).sum();
        let record = EpochRecord {
            epoch: pool.epoch,
            end_ms,
            utilization_bps: utilization_bps as u32,
            emission: Amount(emission),
            distributed: Amount(distributed),
        };
        Some((record, shares))
    }
}

fn check_lock(spec: &PoolSpec, lock_days: u32) -> Result<(), TxError> {
    if !(spec.min_lock_days..=spec.max_lock_days).contains(&lock_days) {
        return Err(TxError::Malformed(format!(
            "pool {} takes locks of {} to {} days",
            spec.id, spec.min_lock_days, spec.max_lock_days
        )));
    }
    Ok(())
}

fn check_requirements(spec: &PoolSpec, provider: &ProviderFacts) -> Result<(), TxError> {
    let Some(min_vram_mb) = spec.requirements.as_ref().and_then(|r| r.min_vram_mb) else {
        return Ok(());
    };
    if provider.capacity == 0 || provider.vram_mb < min_vram_mb {
        return Err(TxError::Unauthorized(format!(
            "pool {} is for registered miners with at least {min_vram_mb} MB of GPU memory",
            spec.id
        )));
    }
    Ok(())
}

/// Commands to a chain's staking aggregate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StakingCommand {
    /// Create the genesis pools (bootstrap).
    Open {
        /// The pools.
        pools: Vec<PoolSpec>,
        /// Genesis time, Unix ms.
        at_ms: u64,
    },
    /// Settle a committed staking transaction.
    Act {
        /// The transaction.
        tx: Hash32,
        /// Its sender.
        sender: Address,
        /// What it asks.
        act: StakingAct,
        /// What its debit moved into the staking account.
        amount: Amount,
        /// Its commit time.
        committed_at_ms: u64,
        /// The sender as a provider, measured by the host.
        provider: ProviderFacts,
    },
    /// Add a pool an executed treasury proposal created (its budget paid into the staking
    /// account by the same execution).
    AddPool {
        /// The pool.
        pool: PoolSpec,
        /// The execution's time.
        at_ms: u64,
        /// The proposal.
        proposal: Hash32,
        /// The action's index.
        index: u32,
    },
    /// A pool's epoch has ended (a timer).
    Settle {
        /// The pool.
        pool_id: String,
        /// The epoch.
        epoch: u64,
    },
    /// A provider's verified job kept its GPU busy.
    Work {
        /// The job.
        job: Hash32,
        /// The provider.
        miner: Address,
        /// GPU time it reported.
        gpu_ms: u64,
    },
    /// A provider's result was disproved.
    Slash {
        /// The job.
        job: Hash32,
        /// The provider.
        miner: Address,
    },
    /// A provider's reputation changed.
    Reputation {
        /// The job that changed it.
        job: Hash32,
        /// The provider.
        miner: Address,
        /// Its new reputation.
        reputation: u16,
    },
}

/// A payment out of the staking account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakePayment {
    /// To.
    pub to: Address,
    /// Base units.
    pub amount: Amount,
}

/// Events of a chain's staking stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StakingEvent {
    /// The genesis pools exist (each sets its first epoch's timer).
    PoolsOpened {
        /// The pools.
        pools: Vec<PoolSpec>,
        /// When.
        at_ms: u64,
    },
    /// A pool an executed proposal created (sets its first epoch's timer).
    PoolAdded {
        /// The pool.
        pool: PoolSpec,
        /// When.
        at_ms: u64,
        /// The proposal.
        proposal: Hash32,
        /// The action's index.
        index: u32,
    },
    /// A proposal's pool whose id is taken (or past the chain's most pools): its budget goes
    /// back to the treasury.
    PoolRefused {
        /// The pool.
        pool: PoolSpec,
        /// The proposal.
        proposal: Hash32,
        /// The action's index.
        index: u32,
        /// Why.
        reason: String,
    },
    /// A position was opened.
    Staked {
        /// Transaction (and position id).
        tx: Hash32,
        /// Pool.
        pool_id: String,
        /// Owner.
        owner: Address,
        /// Base units.
        amount: Amount,
        /// Lock, days.
        lock_days: u32,
        /// When.
        at_ms: u64,
        /// The owner as a provider.
        provider: ProviderFacts,
    },
    /// Stake added to a position.
    StakeAdded {
        /// Transaction.
        tx: Hash32,
        /// Position.
        position_id: Hash32,
        /// Base units.
        amount: Amount,
        /// Its lock from now on, days, and when it ends.
        lock_days: u32,
        /// See `lock_days`.
        lock_ends_ms: u64,
        /// When.
        at_ms: u64,
        /// The owner as a provider.
        provider: ProviderFacts,
    },
    /// Rewards paid to a position's owner.
    RewardsClaimed {
        /// Transaction.
        tx: Hash32,
        /// Position.
        position_id: Hash32,
        /// Owner.
        owner: Address,
        /// Base units.
        amount: Amount,
    },
    /// A position closed: its stake returned, less a penalty for an early exit.
    Unstaked {
        /// Transaction.
        tx: Hash32,
        /// Position.
        position_id: Hash32,
        /// Owner.
        owner: Address,
        /// Returned.
        returned: Amount,
        /// To the treasury.
        penalty: Amount,
        /// When.
        at_ms: u64,
    },
    /// A pool's epoch settled (each position's share follows from the state: see the module).
    EpochSettled {
        /// Pool.
        pool_id: String,
        /// What was settled.
        record: EpochRecord,
        /// When the next epoch ends (its timer).
        next_end_ms: u64,
    },
    /// A provider's verified job counted as busy time in its pools.
    WorkCounted {
        /// Job.
        job: Hash32,
        /// Provider.
        miner: Address,
        /// GPU time.
        gpu_ms: u64,
        /// When.
        at_ms: u64,
    },
    /// A provider's stakes were slashed.
    Slashed {
        /// Job.
        job: Hash32,
        /// Provider.
        miner: Address,
        /// Taken from each position.
        taken: Vec<(Hash32, Amount)>,
        /// When.
        at_ms: u64,
    },
    /// A provider's reputation changed its positions' weights.
    Reweighed {
        /// Job that changed it.
        job: Hash32,
        /// Provider.
        miner: Address,
        /// Its reputation.
        reputation: u16,
        /// When.
        at_ms: u64,
    },
    /// A committed staking transaction that no longer applied (it lost a race).
    Refused {
        /// Transaction.
        tx: Hash32,
        /// Why.
        reason: Refusal,
    },
}

impl StakingEvent {
    /// Every type name, for the decoder.
    pub const TYPES: [&'static str; 12] = [
        "PoolsOpened.v1",
        "Staked.v1",
        "StakeAdded.v1",
        "RewardsClaimed.v1",
        "Unstaked.v1",
        "EpochSettled.v1",
        "WorkCounted.v1",
        "Slashed.v1",
        "Reweighed.v1",
        "StakingRefused.v1",
        "PoolAdded.v1",
        "StakingPoolRefused.v1",
    ];

    /// Versioned type name.
    pub fn event_type(&self) -> &'static str {
        let index = match self {
            StakingEvent::PoolsOpened { .. } => 0,
            StakingEvent::Staked { .. } => 1,
            StakingEvent::StakeAdded { .. } => 2,
            StakingEvent::RewardsClaimed { .. } => 3,
            StakingEvent::Unstaked { .. } => 4,
            StakingEvent::EpochSettled { .. } => 5,
            StakingEvent::WorkCounted { .. } => 6,
            StakingEvent::Slashed { .. } => 7,
            StakingEvent::Reweighed { .. } => 8,
            StakingEvent::Refused { .. } => 9,
            StakingEvent::PoolAdded { .. } => 10,
            StakingEvent::PoolRefused { .. } => 11,
        };
        Self::TYPES[index]
    }

    /// The transaction this event settles, if any.
    pub fn tx(&self) -> Option<Hash32> {
        match self {
            StakingEvent::Staked { tx, .. }
            | StakingEvent::StakeAdded { tx, .. }
            | StakingEvent::RewardsClaimed { tx, .. }
            | StakingEvent::Unstaked { tx, .. }
            | StakingEvent::Refused { tx, .. } => Some(*tx),
            _ => None,
        }
    }

    /// The payments out of the staking account this event owes: (cause, to, amount).
    pub fn payments(&self, treasury: Address) -> Vec<(&'static str, Hash32, StakePayment)> {
        let pay = |to, amount| StakePayment { to, amount };
        match self {
            StakingEvent::RewardsClaimed {
                tx, owner, amount, ..
            } => vec![("staking-claim", *tx, pay(*owner, *amount))],
            StakingEvent::Unstaked {
                tx,
                owner,
                returned,
                penalty,
                ..
            } => vec![
                ("staking-return", *tx, pay(*owner, *returned)),
                ("staking-penalty", *tx, pay(treasury, *penalty)),
            ],
            StakingEvent::Slashed {
                job, miner, taken, ..
            } => {
                let total = taken.iter().map(|(_, a)| a.0).sum();
                let cause = Hash32::digest_parts(&[&job.0, &miner.0]);
                vec![("staking-slash", cause, pay(treasury, Amount(total)))]
            }
            StakingEvent::PoolRefused {
                pool,
                proposal,
                index,
                ..
            } => {
                let cause = Hash32::digest_parts(&[&proposal.0, &index.to_be_bytes()]);
                vec![("staking-pool-refund", cause, pay(treasury, pool.budget))]
            }
            _ => Vec::new(),
        }
        .into_iter()
        .filter(|(_, _, p)| p.amount > Amount::ZERO)
        .collect()
    }
}

/// Identity of a chain's staking aggregate: the chain.
pub type StakingId = String;

/// The staking aggregate.
#[derive(Debug)]
pub enum Staking {}

/// Id of the event `command` records.
pub fn command_event_id(chain_id: &str, command: &StakingCommand) -> u128 {
    let chain = chain_id.as_bytes();
    match command {
        StakingCommand::Open { .. } => event_id("staking-open", chain),
        StakingCommand::AddPool {
            proposal, index, ..
        } => pool_event_id(proposal, *index),
        StakingCommand::Act { tx, .. } => event_id("staking-tx", &tx.0),
        StakingCommand::Settle { pool_id, epoch } => settle_event_id(chain_id, pool_id, *epoch),
        StakingCommand::Work { job, miner, .. } => keyed("staking-work", job, miner),
        StakingCommand::Slash { job, miner } => keyed("staking-slash", job, miner),
        StakingCommand::Reputation { job, miner, .. } => keyed("staking-reputation", job, miner),
    }
}

fn pool_event_id(proposal: &Hash32, index: u32) -> u128 {
    event_id(
        "staking-pool",
        &[&proposal.0[..], &index.to_be_bytes()].concat(),
    )
}

fn keyed(label: &str, job: &Hash32, miner: &Address) -> u128 {
    event_id(label, &[&job.0[..], &miner.0[..]].concat())
}

fn settle_event_id(chain_id: &str, pool_id: &str, epoch: u64) -> u128 {
    let key = [
        chain_id.as_bytes(),
        b"/",
        pool_id.as_bytes(),
        &epoch.to_be_bytes(),
    ]
    .concat();
    event_id("staking-settle", &key)
}

impl Aggregate for Staking {
    type Id = StakingId;
    type Facts = ();
    type State = StakingState;
    type Command = StakingCommand;
    type Event = StakingEvent;
    type Error = TxError;

    const NAME: &'static str = "staking";
    /// A state holds every position of the chain.
    const SNAPSHOT_EVERY_EVENTS: u64 = 4_096;

    fn stream(id: &StakingId) -> String {
        staking_stream(id)
    }

    fn decide(
        state: &StakingState,
        ctx: &Context<'_, Staking>,
        command: StakingCommand,
    ) -> Result<Vec<StakingEvent>, TxError> {
        let now_ms = ctx.now_ms;
        let event = match command {
            StakingCommand::Open { pools, at_ms } => {
                if !state.pools.is_empty() {
                    return Ok(Vec::new());
                }
                StakingEvent::PoolsOpened { pools, at_ms }
            }
            StakingCommand::AddPool {
                pool,
                at_ms,
                proposal,
                index,
            } => {
                let taken = state.pools.contains_key(&pool.id);
                if taken || state.pools.len() >= POOLS_MAX {
                    let reason = match taken {
                        true => format!("a pool {} exists", pool.id),
                        false => format!("a chain has at most {POOLS_MAX} pools"),
                    };
                    StakingEvent::PoolRefused {
                        pool,
                        proposal,
                        index,
                        reason,
                    }
                } else {
                    StakingEvent::PoolAdded {
                        pool,
                        at_ms,
                        proposal,
                        index,
                    }
                }
            }
            StakingCommand::Act {
                tx,
                sender,
                act,
                amount,
                committed_at_ms,
                provider,
            } => {
                if let Err(error) = state.check(&act, &sender, amount, &provider, committed_at_ms) {
                    return Ok(vec![StakingEvent::Refused {
                        tx,
                        reason: error.into(),
                    }]);
                }
                act_event(state, tx, sender, act, amount, committed_at_ms, provider)
            }
            StakingCommand::Settle { pool_id, epoch } => {
                let Some(pool) = state.pools.get(&pool_id) else {
                    return Ok(Vec::new());
                };
                if pool.epoch != epoch || now_ms < pool.epoch_end_ms() {
                    return Ok(Vec::new());
                }
                let (record, _) = state.settlement(&pool_id).expect("the pool exists");
                let next_end_ms = record.end_ms + pool.spec.epoch_s * 1000;
                StakingEvent::EpochSettled {
                    pool_id,
                    record,
                    next_end_ms,
                }
            }
            StakingCommand::Work { job, miner, gpu_ms } => {
                if state.positions_of(&miner).is_empty() {
                    return Ok(Vec::new());
                }
                StakingEvent::WorkCounted {
                    job,
                    miner,
                    gpu_ms,
                    at_ms: now_ms,
                }
            }
            StakingCommand::Slash { job, miner } => {
                let taken: Vec<(Hash32, Amount)> = state
                    .positions_of(&miner)
                    .into_iter()
                    .filter(|id| !state.positions[id].closed)
                    .map(|id| {
                        (
                            id,
                            Amount(mul_div(state.positions[&id].amount.0, SLASH_BPS, BPS)),
                        )
                    })
                    .filter(|(_, amount)| *amount > Amount::ZERO)
                    .collect();
                if taken.is_empty() {
                    return Ok(Vec::new());
                }
                StakingEvent::Slashed {
                    job,
                    miner,
                    taken,
                    at_ms: now_ms,
                }
            }
            StakingCommand::Reputation {
                job,
                miner,
                reputation,
            } => {
                if !state.providers.contains_key(&miner) {
                    return Ok(Vec::new());
                }
                StakingEvent::Reweighed {
                    job,
                    miner,
                    reputation,
                    at_ms: now_ms,
                }
            }
        };
        Ok(vec![event])
    }

    fn evolve(state: &mut StakingState, event: &StakingEvent) {
        match event {
            StakingEvent::PoolsOpened { pools, at_ms } => {
                for spec in pools {
                    state
                        .pools
                        .insert(spec.id.clone(), Pool::new(spec.clone(), *at_ms));
                }
            }
            StakingEvent::PoolAdded { pool, at_ms, .. } => {
                state
                    .pools
                    .insert(pool.id.clone(), Pool::new(pool.clone(), *at_ms));
            }
            StakingEvent::PoolRefused { .. } => {}
            StakingEvent::Staked {
                tx,
                pool_id,
                owner,
                amount,
                lock_days,
                at_ms,
                provider,
            } => {
                state.providers.insert(*owner, provider_of(provider));
                state.owned.entry(*owner).or_default().insert(*tx);
                state.positions.insert(
                    *tx,
                    Position {
                        pool_id: pool_id.clone(),
                        owner: *owner,
                        amount: *amount,
                        lock_days: *lock_days,
                        lock_ends_ms: at_ms + u64::from(*lock_days) * DAY_MS,
                        weight: 0,
                        weight_ms: 0,
                        carry_weight_ms: 0,
                        counted_ms: *at_ms,
                        accrued: Amount::ZERO,
                        claimed: Amount::ZERO,
                        opened_at_ms: *at_ms,
                        closed: false,
                    },
                );
                state.reweigh(tx, *at_ms);
                state.record_stake(*owner, *at_ms, amount.0, 0);
            }
            StakingEvent::StakeAdded {
                position_id,
                amount,
                lock_days,
                lock_ends_ms,
                at_ms,
                provider,
                ..
            } => {
                let position = state.positions.get_mut(position_id).expect("checked");
                position.amount = position.amount.checked_add(*amount).expect("stake fits");
                position.lock_days = *lock_days;
                position.lock_ends_ms = *lock_ends_ms;
                let owner = position.owner;
                state.providers.insert(owner, provider_of(provider));
                for id in state.positions_of(&owner) {
                    state.reweigh(&id, *at_ms);
                }
                state.record_stake(owner, *at_ms, amount.0, 0);
            }
            StakingEvent::RewardsClaimed {
                position_id,
                amount,
                ..
            } => {
                let position = state.positions.get_mut(position_id).expect("checked");
                position.claimed = position.claimed.checked_add(*amount).expect("fits");
                assert!(position.claimed <= position.accrued, "never claimed twice");
            }
            StakingEvent::Unstaked {
                position_id, at_ms, ..
            } => {
                let position = state.positions.get_mut(position_id).expect("checked");
                position.closed = true;
                state.reweigh(position_id, *at_ms);
                let position = state.positions.get_mut(position_id).expect("exists");
                let returned = std::mem::replace(&mut position.amount, Amount::ZERO);
                let owner = position.owner;
                state.record_stake(owner, *at_ms, 0, returned.0);
            }
            StakingEvent::EpochSettled {
                pool_id, record, ..
            } => {
                let (computed, shares) = state.settlement(pool_id).expect("the pool exists");
                assert_eq!(computed, *record, "a settlement recomputes the same");
                let end_ms = record.end_ms;
                // Shares come in position order: one pass pays them and opens the next epoch.
                let mut shares = shares.into_iter().peekable();
                let in_pool: Vec<Hash32> = state
                    .positions
                    .iter()
                    .filter(|(_, p)| p.pool_id == *pool_id)
                    .map(|(id, _)| *id)
                    .collect();
                for id in &in_pool {
                    let position = state.positions.get_mut(id).expect("listed");
                    if let Some((_, share)) = shares.next_if(|(share_id, _)| share_id == id) {
                        position.accrued = position.accrued.checked_add(share).expect("fits");
                    }
                    // Counted up to the end by the settlement; what came after opens the next.
                    position.count_to(end_ms, end_ms);
                    position.weight_ms = std::mem::take(&mut position.carry_weight_ms);
                }
                assert!(shares.next().is_none(), "every share reached its position");
                let pool = state.pools.get_mut(pool_id).expect("the pool exists");
                pool.distributed = pool
                    .distributed
                    .checked_add(record.distributed)
                    .expect("fits");
                assert!(
                    pool.distributed <= pool.spec.budget,
                    "rewards never exceed the budget"
                );
                pool.count_to(end_ms);
                let carry = std::mem::take(&mut pool.carry);
                pool.epoch += 1;
                pool.epoch_start_ms = end_ms;
                pool.weight_ms = carry.weight_ms;
                pool.staked_ms = carry.staked_ms;
                pool.busy_ms = carry.busy_ms;
                pool.settled.push(*record);
                if pool.settled.len() > EPOCHS_SHOWN {
                    pool.settled.remove(0);
                }
            }
            StakingEvent::WorkCounted {
                miner,
                gpu_ms,
                at_ms,
                ..
            } => {
                let pools: BTreeSet<String> = state
                    .positions_of(miner)
                    .iter()
                    .map(|id| state.positions[id].pool_id.clone())
                    .collect();
                for pool_id in pools {
                    let pool = state.pools.get_mut(&pool_id).expect("exists");
                    match *at_ms < pool.epoch_end_ms() {
                        true => pool.busy_ms += u128::from(*gpu_ms),
                        false => pool.carry.busy_ms += u128::from(*gpu_ms),
                    }
                }
            }
            StakingEvent::Slashed {
                miner,
                taken,
                at_ms,
                ..
            } => {
                for (id, amount) in taken {
                    let position = state.positions.get_mut(id).expect("slashed position");
                    position.amount = Amount(position.amount.0 - amount.0);
                    if position.amount == Amount::ZERO {
                        position.closed = true;
                    }
                    state.reweigh(id, *at_ms);
                }
                let slashed: u128 = taken.iter().map(|(_, amount)| amount.0).sum();
                state.record_stake(*miner, *at_ms, 0, slashed);
            }
            StakingEvent::Reweighed {
                miner,
                reputation,
                at_ms,
                ..
            } => {
                state.providers.entry(*miner).or_default().reputation = *reputation;
                for id in state.positions_of(miner) {
                    state.reweigh(&id, *at_ms);
                }
            }
            StakingEvent::Refused { .. } => {}
        }
    }

    fn event_id(id: &StakingId, event: &StakingEvent) -> u128 {
        let chain = id.as_bytes();
        match event {
            StakingEvent::PoolsOpened { .. } => event_id("staking-open", chain),
            StakingEvent::PoolAdded {
                proposal, index, ..
            }
            | StakingEvent::PoolRefused {
                proposal, index, ..
            } => pool_event_id(proposal, *index),
            StakingEvent::Staked { tx, .. }
            | StakingEvent::StakeAdded { tx, .. }
            | StakingEvent::RewardsClaimed { tx, .. }
            | StakingEvent::Unstaked { tx, .. }
            | StakingEvent::Refused { tx, .. } => event_id("staking-tx", &tx.0),
            StakingEvent::EpochSettled {
                pool_id, record, ..
            } => settle_event_id(id, pool_id, record.epoch),
            StakingEvent::WorkCounted { job, miner, .. } => keyed("staking-work", job, miner),
            StakingEvent::Slashed { job, miner, .. } => keyed("staking-slash", job, miner),
            StakingEvent::Reweighed { job, miner, .. } => keyed("staking-reputation", job, miner),
        }
    }

    fn command_event_id(id: &StakingId, command: &StakingCommand) -> Option<u128> {
        Some(command_event_id(id, command))
    }

    fn batch_class(_command: &StakingCommand) -> BatchClass {
        BatchClass::Decision
    }

    fn encode(event: &StakingEvent) -> (&'static str, Vec<u8>) {
        let data = serde_json::to_vec(event).expect("events serialize");
        (event.event_type(), data)
    }

    fn from_stored(event: DomainEvent) -> Option<StakingEvent> {
        match event {
            DomainEvent::Staking(event) => Some(event),
            _ => None,
        }
    }
}

fn provider_of(facts: &ProviderFacts) -> Provider {
    Provider {
        capacity: facts.capacity,
        reputation: facts.reputation,
    }
}

/// The event of a staking act that passed its checks.
fn act_event(
    state: &StakingState,
    tx: Hash32,
    sender: Address,
    act: StakingAct,
    amount: Amount,
    at_ms: u64,
    provider: ProviderFacts,
) -> StakingEvent {
    match act {
        StakingAct::Stake(body) => StakingEvent::Staked {
            tx,
            pool_id: body.pool_id,
            owner: sender,
            amount,
            lock_days: body.lock_days,
            at_ms,
            provider,
        },
        StakingAct::AddStake(body) => {
            let position = &state.positions[&body.position_id];
            let (lock_days, lock_ends_ms) = match body.lock_days {
                Some(days) if at_ms + u64::from(days) * DAY_MS > position.lock_ends_ms => {
                    (days, at_ms + u64::from(days) * DAY_MS)
                }
                _ => (position.lock_days, position.lock_ends_ms),
            };
            StakingEvent::StakeAdded {
                tx,
                position_id: body.position_id,
                amount,
                lock_days,
                lock_ends_ms,
                at_ms,
                provider,
            }
        }
        StakingAct::Claim(id) => StakingEvent::RewardsClaimed {
            tx,
            position_id: id,
            owner: sender,
            amount: state.positions[&id].claimable(),
        },
        StakingAct::Unstake(id) | StakingAct::EarlyExit(id) => {
            let stake = state.positions[&id].amount;
            let penalty = match act {
                StakingAct::EarlyExit(_) => Amount(mul_div(stake.0, EARLY_EXIT_PENALTY_BPS, BPS)),
                _ => Amount::ZERO,
            };
            StakingEvent::Unstaked {
                tx,
                position_id: id,
                owner: sender,
                returned: Amount(stake.0 - penalty.0),
                penalty,
                at_ms,
            }
        }
    }
}
