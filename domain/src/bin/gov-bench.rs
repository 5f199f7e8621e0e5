//! Governance figures (issue 7): tallying N votes on one proposal through its rules (each vote
//! decided and applied as the proposal's actor does), and the snapshot power of N holders with
//! 10 balance changes each inside the TWAS window.
//!
//! ```text
//! cargo run --release -p domain --bin gov-bench -- [--votes N] [--holders N]
//! ```

mod common;

use std::time::Instant;

use common::arg;

use domain::actions::{Action, ProposalType, ProposeBody};
use domain::address::Address;
use domain::aggregate::{Aggregate, Context};
use domain::dao::GovernanceParams;
use domain::hash::Hash32;
use domain::money::Amount;
use domain::proposal::{
    GovAct, Measured, ProposalAggregate, ProposalCommand, ProposalEvent, ProposalId, ProposalState,
    ProposalStep, Support,
};
use domain::twas::{BalanceChange, Power, power};

const DAY_MS: u64 = 24 * 3600 * 1000;

fn address(i: u64) -> Address {
    let mut bytes = [0u8; 20];
    bytes[..8].copy_from_slice(&i.to_be_bytes());
    bytes[8..16].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    Address(bytes)
}

fn decide(
    state: &ProposalState,
    id: &ProposalId,
    command: ProposalCommand,
    now_ms: u64,
) -> Vec<ProposalEvent> {
    let ctx = Context {
        id,
        facts: &(),
        now_ms,
    };
    ProposalAggregate::decide(state, &ctx, command).expect("decided")
}

fn tally(votes: u64) {
    let supply = Amount(1_000_000_000 * 10u128.pow(18));
    let id = ProposalId {
        chain_id: "bench".into(),
        id: Hash32::digest(b"proposal"),
    };
    let measured = |power_of: Option<Power>| Measured {
        params: GovernanceParams::default(),
        supply,
        power: power_of,
        ..Measured::default()
    };
    let mut state = ProposalState::default();
    let body = ProposeBody {
        proposal_type: ProposalType::ParameterChange,
        title: "bench".into(),
        description: String::new(),
        actions: vec![Action::SetParameter {
            name: "quorum_bps".into(),
            value: 300.into(),
        }],
    };
    let step = ProposalStep::Act {
        tx: id.id,
        sender: address(u64::MAX),
        act: GovAct::Propose(body),
        bond: Amount::ZERO,
        committed_at_ms: 0,
    };
    let whale = Power {
        power: supply,
        ..Power::default()
    };
    let command = ProposalCommand {
        step,
        measured: measured(Some(whale)),
    };
    for event in decide(&state, &id, command, 0) {
        ProposalAggregate::evolve(&mut state, &event);
    }
    let voting_ms = DAY_MS + 1;
    let started = Instant::now();
    for i in 0..votes {
        let support = [Support::For, Support::Against, Support::Abstain][(i % 3) as usize];
        let step = ProposalStep::Act {
            tx: Hash32::digest(&i.to_be_bytes()),
            sender: address(i),
            act: GovAct::Vote(support),
            bond: Amount::ZERO,
            committed_at_ms: voting_ms,
        };
        let voter_power = Power {
            twas: Amount(1_000 + u128::from(i)),
            power: Amount(1_000 + u128::from(i)),
            ..Power::default()
        };
        let command = ProposalCommand {
            step,
            measured: measured(Some(voter_power)),
        };
        for event in decide(&state, &id, command, voting_ms) {
            ProposalAggregate::evolve(&mut state, &event);
        }
    }
    let end = 8 * DAY_MS;
    let ended = decide(
        &state,
        &id,
        ProposalCommand {
            step: ProposalStep::EndVoting { ends_ms: end },
            measured: measured(None),
        },
        end,
    );
    let elapsed = started.elapsed();
    let proposal = state.proposal.as_ref().expect("created");
    assert_eq!(state.votes.len() as u64, votes, "every vote counted");
    assert!(matches!(&ended[..], [ProposalEvent::VotingEnded { .. }]));
    println!(
        "tally: {votes} votes decided and applied, then the outcome: {:.3} s ({:.2} µs per vote); for {}, against {}, abstain {}",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / votes as f64,
        proposal.tally.for_,
        proposal.tally.against,
        proposal.tally.abstain,
    );
}

fn snapshot_power(holders: u64) {
    let snapshot_ms = 30 * DAY_MS;
    let window_ms = DAY_MS;
    let supply = Amount(1_000_000_000 * 10u128.pow(18));
    // Each holder: a balance before the window, then 10 changes inside it.
    let histories: Vec<Vec<BalanceChange>> = (0..holders)
        .map(|h| {
            let mut seed = h.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut next = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            let mut history = vec![BalanceChange {
                at_ms: snapshot_ms - 2 * window_ms,
                balance: Amount(u128::from(next() % 1_000_000) * 10u128.pow(18)),
            }];
            let mut times: Vec<u64> = (0..10)
                .map(|_| snapshot_ms - window_ms + next() % window_ms)
                .collect();
            times.sort_unstable();
            for at_ms in times {
                let balance = Amount(u128::from(next() % 1_000_000) * 10u128.pow(18));
                history.push(BalanceChange { at_ms, balance });
            }
            history
        })
        .collect();
    let started = Instant::now();
    let mut total = Amount::ZERO;
    for history in &histories {
        let p = power(history, snapshot_ms, window_ms, 0, supply, 500);
        total = total.checked_add(p.power).expect("fits");
    }
    let elapsed = started.elapsed();
    println!(
        "snapshot power: {holders} holders with 10 balance changes each in the window: {:.3} s ({:.3} µs per holder); total power {total}",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / holders as f64,
    );
}

fn main() {
    tally(arg("--votes", 1_000_000));
    snapshot_power(arg("--holders", 1_000_000));
}
