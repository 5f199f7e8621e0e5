//! GPU staking pools (PRODUCT.md §5), given events / when a command / then events: stakes and
//! their checks, epoch settlement by utilization and weight-time (the module's worked example),
//! claims that never pay twice, locks, early exits, added stake, slashing, reputation; and
//! property tests: rewards never exceed the budget, value is conserved, and every position's
//! reward is the closed-form sum over its weight-time.

use std::collections::BTreeMap;

use domain::address::Address;
use domain::aggregate::{Aggregate, Context};
use domain::hash::Hash32;
use domain::money::Amount;
use domain::staking::{
    AddStakeBody, PoolSpec, ProviderFacts, StakeBody, Staking, StakingAct, StakingCommand,
    StakingEvent, StakingState, lock_multiplier_bps, weight_of,
};
use proptest::prelude::*;

const CHAIN: &str = "c";
const AIT: u128 = 1_000_000_000_000_000_000;
const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;
const ALICE: Address = Address([0xa1; 20]);
const BOB: Address = Address([0xb0; 20]);
const T0: u64 = 1_000_000;

fn spec(budget: u128) -> PoolSpec {
    PoolSpec {
        id: "gpu".into(),
        reward_rate: Amount(AIT),
        budget: Amount(budget),
        min_stake: Amount(100 * AIT),
        min_lock_days: 7,
        max_lock_days: 365,
        epoch_s: 3_600,
        requirements: None,
    }
}

fn miner() -> ProviderFacts {
    ProviderFacts {
        capacity: 1,
        reputation: 0,
        vram_mb: 8_192,
    }
}

struct Pools {
    events: Vec<StakingEvent>,
    next_tx: u8,
}

impl Pools {
    fn open(budget: u128) -> Pools {
        let mut pools = Pools {
            events: Vec::new(),
            next_tx: 0,
        };
        let open = StakingCommand::Open {
            pools: vec![spec(budget)],
            at_ms: T0,
        };
        pools.run(open, T0).unwrap();
        pools
    }

    fn state(&self) -> StakingState {
        domain::aggregate::replay::<Staking>(&self.events)
    }

    fn run(&mut self, command: StakingCommand, now_ms: u64) -> Result<Vec<StakingEvent>, String> {
        let id = CHAIN.to_string();
        let ctx = Context {
            id: &id,
            facts: &(),
            now_ms,
        };
        let new =
            Staking::decide(&self.state(), &ctx, command).map_err(|e| e.code().to_string())?;
        self.events.extend(new.clone());
        Ok(new)
    }

    /// A committed staking transaction by `sender` at `at_ms`: its event.
    fn act(&mut self, sender: Address, act: StakingAct, amount: u128, at_ms: u64) -> StakingEvent {
        self.next_tx += 1;
        let command = StakingCommand::Act {
            tx: Hash32([self.next_tx; 32]),
            sender,
            act,
            amount: Amount(amount),
            committed_at_ms: at_ms,
            provider: miner(),
        };
        let mut events = self.run(command, at_ms).unwrap();
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    fn stake(&mut self, sender: Address, amount: u128, lock_days: u32, at_ms: u64) -> Hash32 {
        let body = StakeBody {
            pool_id: "gpu".into(),
            amount: Amount(amount),
            lock_days,
        };
        match self.act(sender, StakingAct::Stake(body), amount, at_ms) {
            StakingEvent::Staked { tx, .. } => tx,
            other => panic!("{other:?}"),
        }
    }

    /// Settles the pool's current epoch at its end.
    fn settle(&mut self) -> StakingEvent {
        let pool = &self.state().pools["gpu"];
        let (epoch, end) = (pool.epoch, pool.epoch_end_ms());
        let command = StakingCommand::Settle {
            pool_id: "gpu".into(),
            epoch,
        };
        self.run(command, end).unwrap().remove(0)
    }

    fn work(&mut self, miner: Address, gpu_ms: u64, at_ms: u64) {
        self.next_tx += 1;
        let job = Hash32([self.next_tx; 32]);
        let command = StakingCommand::Work { job, miner, gpu_ms };
        self.run(command, at_ms).unwrap();
    }

    fn accrued(&self, position: &Hash32) -> u128 {
        self.state().positions[position].accrued.0
    }
}

fn refusal(event: &StakingEvent) -> &str {
    match event {
        StakingEvent::Refused { reason, .. } => &reason.code,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn the_worked_example_of_the_module_documentation() {
    let mut pools = Pools::open(1_000_000 * AIT);
    let alice = pools.stake(ALICE, 100 * AIT, 365, T0);
    let bob = pools.stake(BOB, 100 * AIT, 7, T0 + HOUR_MS / 2);
    pools.work(ALICE, 600_000, T0 + HOUR_MS / 3);
    pools.work(BOB, 300_000, T0 + HOUR_MS * 3 / 4);
    let settled = pools.settle();
    let StakingEvent::EpochSettled { record, .. } = &settled else {
        panic!("{settled:?}")
    };
    assert_eq!(record.utilization_bps, 1_250, "900 busy seconds of 7,200");
    assert_eq!(record.emission, Amount(450 * AIT));
    assert_eq!(pools.accrued(&alice), 360 * AIT);
    assert_eq!(pools.accrued(&bob), 90 * AIT);
    assert_eq!(record.distributed, Amount(450 * AIT));
    let pool = &pools.state().pools["gpu"];
    assert_eq!(pool.budget_left(), Amount((1_000_000 - 450) * AIT));
    assert_eq!((pool.epoch, pool.epoch_start_ms), (1, T0 + HOUR_MS));
}

#[test]
fn weight_is_stake_times_reputation_times_the_lock_multiplier() {
    assert_eq!(lock_multiplier_bps(7), 10_000);
    assert_eq!(lock_multiplier_bps(365), 20_000);
    assert_eq!(lock_multiplier_bps(186), 15_000, "half-way");
    let stake = Amount(100 * AIT);
    assert_eq!(weight_of(stake, 7, 0), 100_000_000, "micro-AIT");
    assert_eq!(weight_of(stake, 7, 500), 150_000_000);
    assert_eq!(weight_of(stake, 365, 1_000), 400_000_000);
}

#[test]
fn a_stake_is_checked_against_its_pool() {
    let mut pools = Pools::open(AIT);
    let stake = |pool: &str, amount: u128, lock_days: u32| {
        StakingAct::Stake(StakeBody {
            pool_id: pool.into(),
            amount: Amount(amount),
            lock_days,
        })
    };
    let cases = [
        (stake("cpu", 100 * AIT, 30), "not_found"),
        (stake("gpu", 99 * AIT, 30), "limit_exceeded"),
        (stake("gpu", 100 * AIT, 6), "malformed"),
        (stake("gpu", 100 * AIT, 366), "malformed"),
    ];
    for (act, code) in cases {
        let amount = match &act {
            StakingAct::Stake(body) => body.amount.0,
            _ => unreachable!(),
        };
        assert_eq!(refusal(&pools.act(ALICE, act, amount, T0)), code);
    }
    let mut gpu_only = spec(AIT);
    gpu_only.requirements = Some(domain::staking::PoolRequirements {
        min_vram_mb: Some(16_384),
        kinds: None,
    });
    let state = Pools {
        events: vec![StakingEvent::PoolsOpened {
            pools: vec![gpu_only],
            at_ms: T0,
        }],
        next_tx: 0,
    }
    .state();
    let error = state
        .check(
            &stake("gpu", 100 * AIT, 30),
            &ALICE,
            Amount(100 * AIT),
            &miner(),
            T0,
        )
        .unwrap_err();
    assert_eq!(error.code(), "unauthorized", "8 GB is not 16 GB");
}

#[test]
fn a_claim_pays_what_settled_and_never_twice() {
    let mut pools = Pools::open(1_000_000 * AIT);
    let position = pools.stake(ALICE, 100 * AIT, 30, T0);
    let claim = StakingAct::Claim(position);
    assert_eq!(
        refusal(&pools.act(ALICE, claim.clone(), 0, T0 + 1)),
        "nothing_to_claim"
    );
    pools.work(ALICE, 1_800_000, T0 + 10);
    pools.settle();
    let accrued = pools.accrued(&position);
    assert_eq!(accrued, 1_800 * AIT, "half busy for an hour at 1 AIT/s");
    assert_eq!(
        refusal(&pools.act(BOB, claim.clone(), 0, T0 + HOUR_MS + 1)),
        "not_owner"
    );
    match pools.act(ALICE, claim.clone(), 0, T0 + HOUR_MS + 1) {
        StakingEvent::RewardsClaimed { amount, owner, .. } => {
            assert_eq!((amount, owner), (Amount(accrued), ALICE));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        refusal(&pools.act(ALICE, claim, 0, T0 + HOUR_MS + 2)),
        "nothing_to_claim"
    );
    let payments = pools
        .events
        .iter()
        .flat_map(|e| e.payments(Address([9; 20])));
    assert_eq!(
        payments.map(|(_, _, p)| p.amount.0).sum::<u128>(),
        accrued,
        "paid once"
    );
}

#[test]
fn unstaking_waits_for_the_lock_and_an_early_exit_pays_the_penalty() {
    let mut pools = Pools::open(AIT);
    let position = pools.stake(ALICE, 200 * AIT, 7, T0);
    let early = pools.act(ALICE, StakingAct::Unstake(position), 0, T0 + 7 * DAY_MS - 1);
    assert_eq!(refusal(&early), "locked");
    match pools.act(ALICE, StakingAct::EarlyExit(position), 0, T0 + DAY_MS) {
        StakingEvent::Unstaked {
            returned, penalty, ..
        } => assert_eq!((returned, penalty), (Amount(180 * AIT), Amount(20 * AIT))),
        other => panic!("{other:?}"),
    }
    let again = pools.act(ALICE, StakingAct::Unstake(position), 0, T0 + 8 * DAY_MS);
    assert_eq!(refusal(&again), "not_active", "closed");

    let later = pools.stake(BOB, 100 * AIT, 7, T0);
    let exit = pools.act(BOB, StakingAct::EarlyExit(later), 0, T0 + 7 * DAY_MS);
    assert_eq!(
        refusal(&exit),
        "not_active",
        "the lock ended: unstake instead"
    );
    match pools.act(BOB, StakingAct::Unstake(later), 0, T0 + 7 * DAY_MS) {
        StakingEvent::Unstaked {
            returned, penalty, ..
        } => assert_eq!((returned, penalty), (Amount(100 * AIT), Amount::ZERO)),
        other => panic!("{other:?}"),
    }
    assert_eq!(pools.state().pools["gpu"].total_weight, 0);
}

#[test]
fn added_stake_keeps_the_rewards_and_the_later_lock_end() {
    let mut pools = Pools::open(1_000_000 * AIT);
    let position = pools.stake(ALICE, 100 * AIT, 30, T0);
    pools.work(ALICE, HOUR_MS, T0 + 1);
    pools.settle();
    let accrued = pools.accrued(&position);
    assert!(accrued > 0);
    let add = |lock_days| {
        StakingAct::AddStake(AddStakeBody {
            position_id: position,
            amount: Amount(50 * AIT),
            lock_days,
        })
    };
    let at = T0 + HOUR_MS + 5;
    pools.act(ALICE, add(Some(7)), 50 * AIT, at);
    let state = pools.state();
    let held = &state.positions[&position];
    assert_eq!(held.amount, Amount(150 * AIT));
    assert_eq!(
        (held.lock_days, held.lock_ends_ms),
        (30, T0 + 30 * DAY_MS),
        "the earlier end loses"
    );
    assert_eq!(held.accrued, Amount(accrued), "rewards kept");
    pools.act(ALICE, add(Some(60)), 50 * AIT, at + 1);
    let held = pools.state().positions[&position].clone();
    assert_eq!(
        (held.lock_days, held.lock_ends_ms),
        (60, at + 1 + 60 * DAY_MS)
    );
    assert_eq!(held.weight, weight_of(Amount(200 * AIT), 60, 0));
}

#[test]
fn a_disproved_result_slashes_five_percent_of_every_position_and_reputation_reweighs() {
    let mut pools = Pools::open(AIT);
    let first = pools.stake(ALICE, 100 * AIT, 7, T0);
    let second = pools.stake(ALICE, 300 * AIT, 7, T0);
    let other = pools.stake(BOB, 100 * AIT, 7, T0);
    let job = Hash32::digest(b"job");
    let slashed = pools
        .run(StakingCommand::Slash { job, miner: ALICE }, T0 + 5)
        .unwrap();
    match &slashed[..] {
        [StakingEvent::Slashed { taken, .. }] => {
            let taken: BTreeMap<Hash32, Amount> = taken.iter().copied().collect();
            assert_eq!(taken[&first], Amount(5 * AIT));
            assert_eq!(taken[&second], Amount(15 * AIT));
            assert!(!taken.contains_key(&other));
        }
        other => panic!("{other:?}"),
    }
    let treasury = Address([9; 20]);
    let (_, _, payment) = slashed[0].payments(treasury).remove(0);
    assert_eq!((payment.to, payment.amount), (treasury, Amount(20 * AIT)));
    let state = pools.state();
    assert_eq!(state.positions[&first].amount, Amount(95 * AIT));
    assert_eq!(
        state.positions[&first].weight,
        weight_of(Amount(95 * AIT), 7, 0)
    );

    let reputation = StakingCommand::Reputation {
        job,
        miner: BOB,
        reputation: 500,
    };
    pools.run(reputation, T0 + 6).unwrap();
    assert_eq!(
        pools.state().positions[&other].weight,
        weight_of(Amount(100 * AIT), 7, 500)
    );
    let stranger = StakingCommand::Reputation {
        job,
        miner: Address([7; 20]),
        reputation: 900,
    };
    assert!(
        pools.run(stranger, T0 + 7).unwrap().is_empty(),
        "not a provider here"
    );
}

#[test]
fn an_epoch_without_busy_providers_emits_nothing_and_the_budget_caps_emission() {
    let mut pools = Pools::open(10 * AIT);
    let position = pools.stake(ALICE, 100 * AIT, 7, T0);
    pools.settle();
    assert_eq!(pools.accrued(&position), 0, "utilization 0");
    pools.work(ALICE, HOUR_MS, T0 + HOUR_MS + 1);
    pools.settle();
    assert_eq!(
        pools.accrued(&position),
        10 * AIT,
        "the whole budget, no more"
    );
    assert_eq!(pools.state().pools["gpu"].budget_left(), Amount::ZERO);
    pools.work(ALICE, HOUR_MS, T0 + 2 * HOUR_MS + 1);
    pools.settle();
    assert_eq!(
        pools.accrued(&position),
        10 * AIT,
        "an empty budget pays nothing"
    );
}

#[test]
fn a_settlement_that_runs_late_counts_what_came_after_the_end_in_the_next_epoch() {
    let mut pools = Pools::open(1_000_000 * AIT);
    let early = pools.stake(ALICE, 100 * AIT, 7, T0);
    pools.work(ALICE, HOUR_MS, T0 + 1);
    // Bob stakes after the epoch ended but before it settled.
    let late = pools.stake(BOB, 100 * AIT, 7, T0 + HOUR_MS + 60_000);
    pools.settle();
    assert_eq!(pools.accrued(&late), 0, "not in the settled epoch");
    assert_eq!(pools.accrued(&early), 3_600 * AIT);
    pools.work(BOB, HOUR_MS, T0 + HOUR_MS + 120_000);
    pools.work(ALICE, HOUR_MS, T0 + HOUR_MS + 120_000);
    pools.settle();
    // Second epoch: Alice the whole hour, Bob 59 minutes.
    let (alice, bob) = (pools.accrued(&early) - 3_600 * AIT, pools.accrued(&late));
    assert_eq!(
        alice + bob,
        3_600 * AIT - 1,
        "one base unit of dust stays in the budget"
    );
    assert_eq!(bob, 3_600 * AIT * 59 / 119);
}

/// A random history of one pool: stakes, added stake, early exits, work, settlements.
#[derive(Clone, Debug)]
enum Step {
    Stake {
        who: usize,
        amount: u128,
        lock_days: u32,
    },
    Add {
        position: usize,
        amount: u128,
    },
    Exit {
        position: usize,
    },
    Work {
        who: usize,
        gpu_ms: u64,
    },
    Settle,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0usize..3, 100u128..10_000, 7u32..=365).prop_map(|(who, amount, lock_days)| {
            Step::Stake {
                who,
                amount: amount * AIT,
                lock_days,
            }
        }),
        (0usize..6, 1u128..1_000).prop_map(|(position, amount)| Step::Add {
            position,
            amount: amount * AIT
        }),
        (0usize..6).prop_map(|position| Step::Exit { position }),
        (0usize..3, 0u64..2 * HOUR_MS).prop_map(|(who, gpu_ms)| Step::Work { who, gpu_ms }),
        Just(Step::Settle),
    ]
}

/// An independent model of one pool: weights from `weight_of`, integrated over the intervals
/// between changes.
#[derive(Default)]
struct Model {
    amount: BTreeMap<Hash32, (Address, u128, u32)>,
    weight: BTreeMap<Hash32, u128>,
    integral: BTreeMap<Hash32, u128>,
    staked_ms: u64,
    busy_ms: u64,
    last_ms: u64,
    accrued: BTreeMap<Hash32, u128>,
    distributed: u128,
}

impl Model {
    fn advance(&mut self, to: u64) {
        let span = to - self.last_ms;
        if self.weight.values().any(|w| *w > 0) {
            self.staked_ms += span;
        }
        for (id, weight) in &self.weight {
            *self.integral.entry(*id).or_default() += weight * u128::from(span);
        }
        self.last_ms = to;
    }

    fn reweigh(&mut self, id: Hash32) {
        let (_, amount, lock_days) = self.amount[&id];
        self.weight
            .insert(id, weight_of(Amount(amount), lock_days, 0));
    }

    /// Settles at `end`: the emission, and each position's share.
    fn settle(&mut self, end: u64, budget: u128) -> u128 {
        self.advance(end);
        let providers: std::collections::BTreeSet<Address> = self
            .integral
            .iter()
            .filter(|(_, w)| **w > 0)
            .map(|(id, _)| self.amount[id].0)
            .collect();
        let capacity_ms = providers.len() as u128 * u128::from(HOUR_MS);
        let utilization = match capacity_ms {
            0 => 0,
            _ => u128::from(self.busy_ms).min(capacity_ms) * 10_000 / capacity_ms,
        };
        let full = AIT * u128::from(self.staked_ms) / 1_000;
        let emission = (full * utilization / 10_000).min(budget - self.distributed);
        let total: u128 = self.integral.values().sum();
        for (id, w) in std::mem::take(&mut self.integral) {
            // emission × w ÷ total, without overflowing.
            let share = emission
                .checked_div(total)
                .map(|whole| whole * w + emission % total * w / total);
            if let Some(share) = share {
                *self.accrued.entry(id).or_default() += share;
                self.distributed += share;
            }
        }
        self.staked_ms = 0;
        self.busy_ms = 0;
        emission
    }
}

proptest! {
    /// Σ accrued ≤ budget; the staking account always holds budget left + stakes + unclaimed
    /// rewards; and each epoch's emission and each position's reward are the closed form:
    /// emission = rate × staked time × utilization (at most the budget left), a position's
    /// share ⌊emission × its weight-time ÷ the pool's⌋, weight-time summed over the intervals
    /// between changes by an independent model.
    #[test]
    fn rewards_stay_within_the_budget_value_is_conserved_and_shares_are_the_closed_form(
        steps in proptest::collection::vec((step(), 1u64..HOUR_MS / 2), 1..40),
        budget in 1u128..20_000,
    ) {
        let owners = [ALICE, BOB, Address([0xc0; 20])];
        let budget = budget * AIT;
        let mut pools = Pools::open(budget);
        let mut positions: Vec<Hash32> = Vec::new();
        let mut model = Model { last_ms: T0, ..Model::default() };
        let (mut now, mut account) = (T0, budget);
        for (step, gap) in steps {
            now += gap;
            // Settle every epoch that ended before this step, as the timer would.
            while pools.state().pools["gpu"].epoch_end_ms() <= now {
                let end = pools.state().pools["gpu"].epoch_end_ms();
                let StakingEvent::EpochSettled { record, .. } = pools.settle() else { panic!() };
                prop_assert_eq!(record.emission.0, model.settle(end, budget));
            }
            model.advance(now);
            match step {
                Step::Stake { who, amount, lock_days } => {
                    let body = StakeBody { pool_id: "gpu".into(), amount: Amount(amount), lock_days };
                    if let StakingEvent::Staked { tx, .. } =
                        pools.act(owners[who], StakingAct::Stake(body), amount, now)
                    {
                        positions.push(tx);
                        account += amount;
                        model.amount.insert(tx, (owners[who], amount, lock_days));
                        model.reweigh(tx);
                    }
                }
                Step::Add { position, amount } => {
                    let Some(id) = positions.get(position) else { continue };
                    let owner = pools.state().positions[id].owner;
                    let body = AddStakeBody { position_id: *id, amount: Amount(amount), lock_days: None };
                    if let StakingEvent::StakeAdded { .. } =
                        pools.act(owner, StakingAct::AddStake(body), amount, now)
                    {
                        account += amount;
                        model.amount.get_mut(id).unwrap().1 += amount;
                        model.reweigh(*id);
                    }
                }
                Step::Exit { position } => {
                    let Some(id) = positions.get(position) else { continue };
                    let owner = pools.state().positions[id].owner;
                    let claim = pools.act(owner, StakingAct::Claim(*id), 0, now);
                    let exit = pools.act(owner, StakingAct::EarlyExit(*id), 0, now);
                    if let StakingEvent::Unstaked { .. } = exit {
                        model.weight.insert(*id, 0);
                    }
                    for event in [claim, exit] {
                        for (_, _, payment) in event.payments(Address([9; 20])) {
                            account -= payment.amount.0;
                        }
                    }
                }
                Step::Work { who, gpu_ms } => {
                    pools.work(owners[who], gpu_ms, now);
                    if model.amount.values().any(|(owner, _, _)| *owner == owners[who]) {
                        model.busy_ms += gpu_ms;
                    }
                }
                Step::Settle => {}
            }
            let state = pools.state();
            let pool = &state.pools["gpu"];
            let accrued: u128 = state.positions.values().map(|p| p.accrued.0).sum();
            prop_assert!(accrued <= budget, "rewards never exceed the budget");
            prop_assert_eq!(pool.distributed.0, accrued);
            let stakes: u128 = state.positions.values().map(|p| p.amount.0).sum();
            let unclaimed: u128 = state.positions.values().map(|p| p.claimable().0).sum();
            prop_assert_eq!(account, pool.budget_left().0 + stakes + unclaimed, "conservation");
            for (id, position) in &state.positions {
                prop_assert_eq!(position.accrued.0, model.accrued.get(id).copied().unwrap_or(0));
            }
        }
    }
}

#[test]
fn an_owners_stake_history_follows_every_change_for_its_voting_power() {
    use domain::twas::BalanceChange;
    let mut pools = Pools::open(AIT);
    let position = pools.stake(ALICE, 100 * AIT, 30, T0);
    let add = StakingAct::AddStake(AddStakeBody {
        position_id: position,
        amount: Amount(50 * AIT),
        lock_days: None,
    });
    pools.act(ALICE, add, 50 * AIT, T0 + 10);
    let slash = StakingCommand::Slash {
        job: Hash32::digest(b"job"),
        miner: ALICE,
    };
    pools.run(slash, T0 + 20).unwrap();
    pools.act(ALICE, StakingAct::EarlyExit(position), 0, T0 + 30);
    let change = |at_ms, tokens: u128| BalanceChange {
        at_ms,
        balance: Amount(tokens * AIT / 10),
    };
    assert_eq!(
        pools.state().stake_history(&ALICE),
        vec![
            change(T0, 1_000),
            change(T0 + 10, 1_500),
            change(T0 + 20, 1_425),
            change(T0 + 30, 0)
        ]
    );
    assert!(pools.state().stake_history(&BOB).is_empty());
}

#[test]
fn a_proposals_pool_is_added_once_and_a_taken_id_sends_the_budget_back() {
    use domain::actions::Action;
    let mut pools = Pools::open(AIT);
    let mut new = spec(500 * AIT);
    new.id = "h100".into();
    let action = Action::CreatePool { pool: new.clone() };
    assert_eq!(action.treasury_outflow(), Some((None, Amount(500 * AIT))));
    assert!(action.validate(&Default::default()).is_ok());
    let mut short = new.clone();
    short.min_lock_days = 3;
    let refused = Action::CreatePool { pool: short }.validate(&Default::default());
    assert_eq!(refused.unwrap_err().code(), "bad_action");

    let add = |pool: PoolSpec, index| StakingCommand::AddPool {
        pool,
        at_ms: T0 + 5,
        proposal: Hash32::digest(b"proposal"),
        index,
    };
    let added = pools.run(add(new.clone(), 0), T0 + 5).unwrap();
    assert!(
        matches!(&added[..], [StakingEvent::PoolAdded { .. }]),
        "{added:?}"
    );
    let state = pools.state();
    assert_eq!(state.pools["h100"].epoch_end_ms(), T0 + 5 + 3_600_000);
    let again = pools.run(add(new, 1), T0 + 6).unwrap();
    let treasury = Address([9; 20]);
    match &again[..] {
        [refused @ StakingEvent::PoolRefused { .. }] => {
            let (_, _, payment) = refused.payments(treasury).remove(0);
            assert_eq!((payment.to, payment.amount), (treasury, Amount(500 * AIT)));
        }
        other => panic!("{other:?}"),
    }
}

/// The state's persistent maps serialize as the `BTreeMap`s and `BTreeSet`s before them did, so
/// snapshots written by earlier releases still load (and the JSON is the same).
#[test]
fn persistent_collections_keep_the_snapshot_format() {
    use std::collections::{BTreeMap, BTreeSet};
    let pairs = [("b".to_string(), vec![2u32]), ("a".to_string(), vec![1, 3])];
    let tree: BTreeMap<String, Vec<u32>> = pairs.iter().cloned().collect();
    let persistent: imbl::OrdMap<String, Vec<u32>> = pairs.iter().cloned().collect();
    let json = serde_json::to_string(&tree).unwrap();
    assert_eq!(serde_json::to_string(&persistent).unwrap(), json);
    let back: imbl::OrdMap<String, Vec<u32>> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, persistent);
    let set: BTreeSet<u32> = [3, 1, 2].into();
    let persistent_set: imbl::OrdSet<u32> = [3u32, 1, 2].into_iter().collect();
    assert_eq!(
        serde_json::to_string(&persistent_set).unwrap(),
        serde_json::to_string(&set).unwrap()
    );
}
