//! Staking figure (issue 10): settling one epoch of a pool holding N positions, as the chain's
//! staking actor does (the settlement decided, then applied: every position's share of the
//! emission by its weight-time).
//!
//! ```text
//! cargo run --release -p domain --bin staking-bench -- [--positions N] [--runs N]
//! ```

mod common;

use std::time::Instant;

use common::arg;

use domain::address::Address;
use domain::aggregate::{Aggregate, Context};
use domain::hash::Hash32;
use domain::money::Amount;
use domain::staking::{
    PoolSpec, ProviderFacts, StakeBody, Staking, StakingAct, StakingCommand, StakingEvent,
    StakingState,
};

const AIT: u128 = 1_000_000_000_000_000_000;
const T0: u64 = 1_000_000;

fn decide(state: &StakingState, command: StakingCommand, now_ms: u64) -> Vec<StakingEvent> {
    let id = "bench".to_string();
    let ctx = Context {
        id: &id,
        facts: &(),
        now_ms,
    };
    Staking::decide(state, &ctx, command).expect("decided")
}

fn apply(state: &mut StakingState, events: &[StakingEvent]) {
    for event in events {
        Staking::evolve(state, event);
    }
}

fn main() {
    let positions = arg("--positions", 100_000);
    let runs = arg("--runs", 5);
    let spec = PoolSpec {
        id: "gpu".into(),
        reward_rate: Amount(AIT),
        budget: Amount(1_000_000_000 * AIT),
        min_stake: Amount(100 * AIT),
        min_lock_days: 7,
        max_lock_days: 365,
        epoch_s: 3_600,
        requirements: None,
    };
    let mut state = StakingState::default();
    let open = StakingCommand::Open {
        pools: vec![spec],
        at_ms: T0,
    };
    let events = decide(&state, open, T0);
    apply(&mut state, &events);
    let provider = ProviderFacts {
        capacity: 1,
        reputation: 100,
        vram_mb: 8_192,
    };
    for i in 0..positions {
        let mut bytes = [0u8; 20];
        bytes[..8].copy_from_slice(&i.to_be_bytes());
        let at_ms = T0 + i % 3_000_000;
        let act = StakingCommand::Act {
            tx: Hash32::digest(&i.to_be_bytes()),
            sender: Address(bytes),
            act: StakingAct::Stake(StakeBody {
                pool_id: "gpu".into(),
                amount: Amount((100 + u128::from(i % 1_000)) * AIT),
                lock_days: 7 + (i % 359) as u32,
            }),
            amount: Amount((100 + u128::from(i % 1_000)) * AIT),
            committed_at_ms: at_ms,
            provider,
        };
        let events = decide(&state, act, at_ms);
        apply(&mut state, &events);
        if i % 10 == 0 {
            let work = StakingCommand::Work {
                job: Hash32::digest(&[&i.to_be_bytes()[..], b"job"].concat()),
                miner: Address(bytes),
                gpu_ms: 60_000,
            };
            let events = decide(&state, work, at_ms);
            apply(&mut state, &events);
        }
    }
    println!("staking-bench: {positions} positions in one pool, epoch settlement (decide + apply)");
    for run in 0..runs {
        let pool = &state.pools["gpu"];
        let (epoch, end) = (pool.epoch, pool.epoch_end_ms());
        let settle = StakingCommand::Settle {
            pool_id: "gpu".into(),
            epoch,
        };
        let started = Instant::now();
        let events = decide(&state, settle, end);
        apply(&mut state, &events);
        let elapsed = started.elapsed();
        let StakingEvent::EpochSettled { record, .. } = &events[0] else {
            panic!("not settled: {events:?}");
        };
        println!(
            "run {run}: {:.1} ms (utilization {} bps, emission {} base units, distributed {})",
            elapsed.as_secs_f64() * 1e3,
            record.utilization_bps,
            record.emission,
            record.distributed
        );
    }
}
