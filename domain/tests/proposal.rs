//! OpenClawDAO proposals (PRODUCT.md §3), given events / when a step / then events: the
//! lifecycle and its times, quorum and success, one vote per address, the proposal threshold,
//! council approvals, bonds and challenges, expiry, execution bound to the voted actions, and
//! token conservation of the bonds through every path.

use std::collections::BTreeMap;
use std::sync::Arc;

use domain::actions::{Action, ProposalType, ProposeBody};
use domain::address::Address;
use domain::agent::Plan;
use domain::aggregate::{Aggregate, Context};
use domain::dao::GovernanceParams;
use domain::hash::Hash32;
use domain::kinds::Module;
use domain::money::Amount;
use domain::proposal::{
    GovAct, Measured, ProposalAggregate, ProposalCommand, ProposalEvent, ProposalId, ProposalState,
    ProposalStep, Status, Support, bond_account,
};
use domain::protocol::{Fact, FollowUp, Owner, follow_ups, timers};
use domain::twas::Power;
use proptest::prelude::*;

const CHAIN: &str = "c";
const SUPPLY: u128 = 1_000_000;
const BOND: u128 = 100;
const CHALLENGE_BOND: u128 = 40;
const COUNCIL: [Address; 3] = [
    Address([0xc1; 20]),
    Address([0xc2; 20]),
    Address([0xc3; 20]),
];
const PROPOSER: Address = Address([1; 20]);
const CHALLENGER: Address = Address([2; 20]);

fn params() -> GovernanceParams {
    GovernanceParams {
        voting_delay_s: 10,
        voting_period_s: 20,
        emergency_voting_period_s: 5,
        quorum_bps: 400, // 40,000 of the 1,000,000 supply
        proposal_threshold: Amount(1_000),
        proposal_bond: Amount(BOND),
        challenge_bond: Amount(CHALLENGE_BOND),
        timelock_s: 30,
        grace_period_s: 50,
        power_cap_bps: 500,
        twas_window_s: 100,
        challenge_timeout_s: 60,
        pause_expiry_s: 600,
        council: COUNCIL.to_vec(),
        council_threshold: 2,
    }
}

fn power(amount: u128) -> Power {
    Power {
        twas: Amount(amount),
        reputation: 0,
        multiplier_bps: 10_000,
        uncapped: Amount(amount),
        cap: Amount(SUPPLY / 20),
        power: Amount(amount.min(SUPPLY / 20)),
    }
}

/// One proposal's stream, a clock and what the host would measure.
struct World {
    id: Hash32,
    events: Vec<ProposalEvent>,
    treasury: Amount,
    params: GovernanceParams,
    next_tx: u32,
    /// The plans of the auto-voting agents the host would find when voting starts.
    agents: Vec<(Address, Plan)>,
    agent_active: bool,
}

impl World {
    fn new() -> World {
        World {
            id: Hash32::digest(b"propose"),
            events: Vec::new(),
            treasury: Amount(1_000_000),
            params: params(),
            next_tx: 0,
            agents: Vec::new(),
            agent_active: true,
        }
    }

    fn state(&self) -> ProposalState {
        domain::aggregate::replay::<ProposalAggregate>(&self.events)
    }

    fn status(&self, now_ms: u64) -> Status {
        self.state().proposal.expect("created").status_at(now_ms)
    }

    fn decide(
        &mut self,
        step: ProposalStep,
        power_of: Option<u128>,
        now_ms: u64,
    ) -> Vec<ProposalEvent> {
        let measured = Measured {
            params: self.params.clone(),
            supply: Amount(SUPPLY),
            power: power_of.map(power),
            treasury: BTreeMap::from([(None, self.treasury)]),
            agents: self.agents.clone(),
            agent_active: self.agent_active,
        };
        let id = ProposalId {
            chain_id: CHAIN.into(),
            id: self.id,
        };
        let ctx = Context {
            id: &id,
            facts: &(),
            now_ms,
        };
        let command = ProposalCommand { step, measured };
        let new = ProposalAggregate::decide(&self.state(), &ctx, command).expect("decided");
        self.events.extend(new.clone());
        new
    }

    /// A committed transaction by `sender` at `at_ms`; `power` is the sender's at the snapshot.
    fn send(&mut self, sender: Address, act: GovAct, at_ms: u64, power: u128) -> ProposalEvent {
        let bond = match &act {
            GovAct::Propose(_) => Amount(BOND),
            GovAct::Challenge { .. } => Amount(CHALLENGE_BOND),
            _ => Amount::ZERO,
        };
        let tx = match &act {
            GovAct::Propose(_) => self.id,
            _ => {
                self.next_tx += 1;
                Hash32::digest(&self.next_tx.to_be_bytes())
            }
        };
        let step = ProposalStep::Act {
            tx,
            sender,
            act,
            bond,
            committed_at_ms: at_ms,
        };
        let mut new = self.decide(step, Some(power), at_ms);
        assert_eq!(new.len(), 1, "a transaction records one event");
        new.remove(0)
    }

    fn propose(
        &mut self,
        proposal_type: ProposalType,
        actions: Vec<Action>,
        at_ms: u64,
    ) -> ProposalEvent {
        let body = ProposeBody {
            proposal_type,
            title: "t".into(),
            description: "d".into(),
            actions,
        };
        self.send(PROPOSER, GovAct::Propose(body), at_ms, 10_000)
    }

    /// Fires every timer the stream has set that is due by `now_ms`.
    fn fire_timers(&mut self, now_ms: u64) -> Vec<ProposalEvent> {
        let owner = Owner::Proposal {
            chain_id: Arc::from(CHAIN),
            id: self.id,
        };
        let due: Vec<ProposalStep> = self
            .events
            .clone()
            .iter()
            .flat_map(|e| timers(&owner, &Fact::Proposal(e.clone())))
            .filter(|t| t.due_ms <= now_ms)
            .map(|t| match t.step {
                FollowUp::Proposal { step, .. } => step,
                other => panic!("{other:?}"),
            })
            .collect();
        // A start of voting without agents shows nothing: tests look at what else fired.
        due.into_iter()
            .flat_map(|step| self.decide(step, None, now_ms))
            .filter(|e| {
                !matches!(e, ProposalEvent::VotingStarted { votes, followers, .. }
                    if votes.is_empty() && followers.is_empty())
            })
            .collect()
    }

    /// Runs the agents' votes a proposal event owes, each agent with `power`.
    fn run_auto_votes(
        &mut self,
        event: &ProposalEvent,
        power: u128,
        now_ms: u64,
    ) -> Vec<ProposalEvent> {
        let owner = Owner::Proposal {
            chain_id: Arc::from(CHAIN),
            id: self.id,
        };
        let steps = follow_ups(&owner, &Fact::Proposal(event.clone()));
        let mut recorded = Vec::new();
        for step in steps {
            if let FollowUp::Proposal { step, .. } = step {
                for new in self.decide(step, Some(power), now_ms) {
                    recorded.extend(self.run_auto_votes(&new, power, now_ms));
                    recorded.push(new);
                }
            }
        }
        recorded
    }

    /// Every bond movement the events owe: (into the bond account, out of it), and what went
    /// to each payee.
    fn bond_flows(&self) -> (u128, u128, BTreeMap<Address, u128>) {
        let owner = Owner::Proposal {
            chain_id: Arc::from(CHAIN),
            id: self.id,
        };
        let bonds = bond_account(CHAIN);
        let mut locked = 0;
        let mut paid = BTreeMap::new();
        for event in &self.events {
            locked += match event {
                ProposalEvent::Created(p) => p.bond.0,
                ProposalEvent::Challenged { challenge } => challenge.bond.0,
                ProposalEvent::Refused { refund, .. } => refund.0,
                _ => 0,
            };
            for step in follow_ups(&owner, &Fact::Proposal(event.clone())) {
                if let FollowUp::PayOut { from, payout, .. } = step
                    && from == bonds
                {
                    *paid.entry(payout.to).or_insert(0) += payout.amount.0;
                }
            }
        }
        let out = paid.values().sum();
        (locked, out, paid)
    }
}

fn pause_jobs() -> Vec<Action> {
    vec![Action::Pause {
        module: Module::Jobs,
    }]
}

fn set_quorum(bps: u32) -> Vec<Action> {
    vec![Action::SetParameter {
        name: "quorum_bps".into(),
        value: bps.into(),
    }]
}

fn voter(n: u8) -> Address {
    Address([0x50 + n; 20])
}

fn refusal(event: &ProposalEvent) -> &str {
    match event {
        ProposalEvent::Refused { reason, .. } => &reason.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_proposal_goes_from_pending_through_voting_and_timelock_to_executed() {
    let mut w = World::new();
    let created = w.propose(ProposalType::ParameterChange, set_quorum(500), 1_000);
    let ProposalEvent::Created(proposal) = &created else {
        panic!("{created:?}")
    };
    assert_eq!(proposal.voting_starts_ms, 11_000, "creation + voting delay");
    assert_eq!(proposal.voting_ends_ms, 31_000, "start + voting period");
    assert_eq!(
        proposal.quorum,
        Amount(40_000),
        "quorum_bps of the supply at the snapshot"
    );
    assert_eq!(w.status(10_999), Status::Pending);
    let early = w.send(voter(1), GovAct::Vote(Support::For), 10_999, 30_000);
    assert_eq!(
        refusal(&early),
        "not_active",
        "no vote before voting starts"
    );
    assert_eq!(w.status(11_000), Status::Active);
    w.send(voter(1), GovAct::Vote(Support::For), 11_000, 30_000);
    w.send(voter(2), GovAct::Vote(Support::Abstain), 20_000, 15_000);
    w.send(voter(3), GovAct::Vote(Support::Against), 30_999, 20_000);
    let late = w.send(voter(4), GovAct::Vote(Support::For), 31_000, 30_000);
    assert_eq!(refusal(&late), "not_active", "no vote once voting ended");
    assert_eq!(
        w.status(31_000),
        Status::Succeeded,
        "visible before the timer fires"
    );
    let queue_early = w.send(voter(9), GovAct::Queue, 30_999, 0);
    assert_eq!(refusal(&queue_early), "not_active");
    let ended = w.fire_timers(31_000);
    assert!(matches!(
        &ended[..],
        [ProposalEvent::VotingEnded {
            succeeded: true,
            ..
        }]
    ));
    let queued = w.send(voter(9), GovAct::Queue, 32_000, 0);
    assert!(matches!(
        queued,
        ProposalEvent::Queued {
            eta_ms: 62_000,
            deadline_ms: 112_000,
            ..
        }
    ));
    assert_eq!(
        refusal(&w.send(voter(9), GovAct::Execute, 61_999, 0)),
        "not_active"
    );
    let executed = w.send(voter(9), GovAct::Execute, 62_000, 0);
    let ProposalEvent::Executed { actions, .. } = &executed else {
        panic!("{executed:?}")
    };
    assert_eq!(actions, &set_quorum(500), "exactly the voted actions");
    assert_eq!(w.status(1_000_000), Status::Executed);
    assert_eq!(
        refusal(&w.send(voter(9), GovAct::Execute, 62_001, 0)),
        "not_active",
        "once"
    );
    let (locked, out, paid) = w.bond_flows();
    assert_eq!((locked, out), (BOND, BOND));
    assert_eq!(
        paid[&PROPOSER], BOND,
        "the proposer's bond comes back on execution"
    );
    assert!(
        w.fire_timers(u64::MAX / 2).is_empty(),
        "no timer applies any more"
    );
}

#[test]
fn quorum_counts_for_and_abstain_and_success_needs_more_for_than_against() {
    let cases: [(&[(Support, u128)], bool); 5] = [
        (&[(Support::For, 39_999)], false),
        (&[(Support::For, 20_000), (Support::Abstain, 20_000)], true),
        (&[(Support::For, 20_000), (Support::Against, 20_000)], false),
        (&[(Support::Abstain, 50_000)], false),
        (&[(Support::For, 40_000), (Support::Against, 39_999)], true),
    ];
    for (votes, succeeds) in cases {
        let mut w = World::new();
        w.propose(ProposalType::ParameterChange, set_quorum(500), 0);
        for (i, (support, power)) in votes.iter().enumerate() {
            w.send(voter(i as u8), GovAct::Vote(*support), 15_000, *power);
        }
        let ended = w.fire_timers(30_000);
        assert!(
            matches!(&ended[..], [ProposalEvent::VotingEnded { succeeded, .. }] if *succeeded == succeeds),
            "{votes:?}: {ended:?}"
        );
        let expected = if succeeds {
            Status::Succeeded
        } else {
            Status::Defeated
        };
        assert_eq!(w.status(30_000), expected);
        let (locked, out, _) = w.bond_flows();
        assert_eq!(
            out,
            if succeeds { 0 } else { locked },
            "a defeat returns the bond"
        );
    }
}

#[test]
fn one_vote_per_address_and_no_vote_without_power() {
    let mut w = World::new();
    w.propose(ProposalType::ParameterChange, set_quorum(500), 0);
    w.send(voter(1), GovAct::Vote(Support::For), 10_000, 5);
    let again = w.send(voter(1), GovAct::Vote(Support::Against), 10_001, 5);
    assert_eq!(refusal(&again), "already_voted");
    assert_eq!(
        refusal(&w.send(voter(2), GovAct::Vote(Support::For), 10_000, 0)),
        "no_voting_power"
    );
    let proposal = w.state().proposal.unwrap();
    assert_eq!(
        proposal.tally.for_,
        Amount(5),
        "the refused votes counted nothing"
    );
    assert_eq!(proposal.tally.against, Amount::ZERO);
}

#[test]
fn a_proposer_below_the_threshold_is_refused_and_gets_its_bond_back() {
    let mut w = World::new();
    let body = ProposeBody {
        proposal_type: ProposalType::ParameterChange,
        title: "t".into(),
        description: "d".into(),
        actions: set_quorum(500),
    };
    let refused = w.send(PROPOSER, GovAct::Propose(body), 0, 999);
    assert_eq!(refusal(&refused), "below_threshold");
    assert!(w.state().proposal.is_none());
    let (locked, out, paid) = w.bond_flows();
    assert_eq!((locked, out, paid[&PROPOSER]), (BOND, BOND, BOND));
}

#[test]
fn actions_are_checked_against_the_parameters_in_force() {
    let mut w = World::new();
    let refused = w.propose(ProposalType::ParameterChange, set_quorum(10_001), 0);
    assert_eq!(refusal(&refused), "bad_action");
    let mut w = World::new();
    let council = vec![Action::SetCouncil {
        members: vec![COUNCIL[0]],
        threshold: 2,
    }];
    let refused = w.propose(ProposalType::ProtocolUpgrade, council, 0);
    assert_eq!(
        refusal(&refused),
        "bad_action",
        "threshold above the members"
    );
}

#[test]
fn only_the_proposer_cancels_and_only_before_voting() {
    let mut w = World::new();
    w.propose(ProposalType::ParameterChange, set_quorum(500), 0);
    assert_eq!(
        refusal(&w.send(voter(1), GovAct::Cancel, 1_000, 0)),
        "not_owner"
    );
    let canceled = w.send(PROPOSER, GovAct::Cancel, 9_999, 0);
    assert!(matches!(canceled, ProposalEvent::Canceled { .. }));
    assert_eq!(w.status(9_999), Status::Canceled);
    assert_eq!(
        refusal(&w.send(voter(1), GovAct::Vote(Support::For), 10_000, 5)),
        "not_active"
    );
    let (locked, out, _) = w.bond_flows();
    assert_eq!(locked, out);

    let mut w = World::new();
    w.propose(ProposalType::ParameterChange, set_quorum(500), 0);
    assert_eq!(
        refusal(&w.send(PROPOSER, GovAct::Cancel, 10_000, 0)),
        "not_active"
    );
}

#[test]
fn an_upheld_challenge_rejects_and_splits_the_proposers_bond() {
    let mut w = World::new();
    w.propose(ProposalType::ParameterChange, set_quorum(500), 0);
    let challenged = w.send(
        CHALLENGER,
        GovAct::Challenge {
            reason: "spam".into(),
        },
        1_000,
        0,
    );
    assert!(matches!(challenged, ProposalEvent::Challenged { .. }));
    let second = w.send(voter(1), GovAct::Challenge { reason: "x".into() }, 1_001, 0);
    assert_eq!(
        refusal(&second),
        "not_active",
        "one open challenge at a time"
    );
    assert_eq!(
        w.status(50_000),
        Status::Pending,
        "a challenged proposal does not vote"
    );
    let uphold = GovAct::Resolve { uphold: true };
    assert_eq!(
        refusal(&w.send(voter(1), uphold.clone(), 2_000, 0)),
        "not_council"
    );
    let first = w.send(COUNCIL[0], uphold.clone(), 2_000, 0);
    assert!(matches!(first, ProposalEvent::ResolutionApproved { .. }));
    assert_eq!(
        refusal(&w.send(COUNCIL[0], uphold.clone(), 2_001, 0)),
        "already_voted"
    );
    let upheld = w.send(COUNCIL[1], uphold, 3_000, 0);
    assert!(matches!(upheld, ProposalEvent::ChallengeUpheld { .. }));
    assert_eq!(w.status(3_000), Status::Rejected);
    let (locked, out, paid) = w.bond_flows();
    let both = BOND + 2 * CHALLENGE_BOND; // the refused second challenge locked one too
    assert_eq!((locked, out), (both, both));
    assert_eq!(
        paid[&voter(1)],
        CHALLENGE_BOND,
        "a refused challenge gets its bond back"
    );
    assert_eq!(paid[&CHALLENGER], CHALLENGE_BOND + BOND / 2);
    assert_eq!(paid[&Address::treasury(CHAIN)], BOND - BOND / 2);
    assert!(!paid.contains_key(&PROPOSER), "the proposer loses its bond");
    assert!(
        w.fire_timers(1_000_000).is_empty(),
        "the challenge's timer no longer applies"
    );
}

#[test]
fn a_dismissed_challenge_forfeits_its_bond_and_voting_starts_late_with_its_full_period() {
    let mut w = World::new();
    w.propose(ProposalType::ParameterChange, set_quorum(500), 0);
    w.send(
        CHALLENGER,
        GovAct::Challenge {
            reason: "spam".into(),
        },
        1_000,
        0,
    );
    let dismiss = GovAct::Resolve { uphold: false };
    w.send(COUNCIL[0], dismiss.clone(), 12_000, 0);
    // A member who voted to dismiss cannot also uphold.
    assert_eq!(
        refusal(&w.send(COUNCIL[0], GovAct::Resolve { uphold: true }, 12_001, 0)),
        "already_voted"
    );
    let dismissed = w.send(COUNCIL[2], dismiss, 15_000, 0);
    let ProposalEvent::ChallengeDismissed {
        voting_starts_ms,
        voting_ends_ms,
        ..
    } = dismissed
    else {
        panic!("{dismissed:?}")
    };
    assert_eq!((voting_starts_ms, voting_ends_ms), (15_000, 35_000));
    assert_eq!(w.status(15_000), Status::Active);
    assert!(
        w.fire_timers(34_999).is_empty(),
        "the first end no longer applies"
    );
    let (_, _, paid) = w.bond_flows();
    assert_eq!(paid[&Address::treasury(CHAIN)], CHALLENGE_BOND);
    w.send(voter(1), GovAct::Vote(Support::For), 20_000, 50_000);
    assert!(matches!(
        &w.fire_timers(35_000)[..],
        [ProposalEvent::VotingEnded {
            succeeded: true,
            ..
        }]
    ));
}

#[test]
fn an_unresolved_challenge_cancels_the_proposal_after_its_timeout_and_returns_both_bonds() {
    let mut w = World::new();
    w.propose(ProposalType::ParameterChange, set_quorum(500), 0);
    w.send(
        CHALLENGER,
        GovAct::Challenge {
            reason: "spam".into(),
        },
        1_000,
        0,
    );
    w.send(COUNCIL[0], GovAct::Resolve { uphold: true }, 2_000, 0);
    assert!(
        w.fire_timers(60_999)
            .iter()
            .all(|e| !matches!(e, ProposalEvent::ChallengeExpired { .. }))
    );
    let fired = w.fire_timers(61_000);
    assert!(
        fired
            .iter()
            .any(|e| matches!(e, ProposalEvent::ChallengeExpired { .. })),
        "{fired:?}"
    );
    assert_eq!(w.status(61_000), Status::Canceled);
    let (locked, out, paid) = w.bond_flows();
    assert_eq!(locked, out);
    assert_eq!((paid[&PROPOSER], paid[&CHALLENGER]), (BOND, CHALLENGE_BOND));
}

#[test]
fn an_emergency_votes_at_once_needs_the_council_and_has_no_timelock() {
    let mut w = World::new();
    let created = w.propose(ProposalType::Emergency, pause_jobs(), 1_000);
    let ProposalEvent::Created(proposal) = &created else {
        panic!()
    };
    assert_eq!(
        (proposal.voting_starts_ms, proposal.voting_ends_ms),
        (1_000, 6_000)
    );
    assert_eq!(w.status(1_000), Status::Active);
    let challenge = w.send(
        CHALLENGER,
        GovAct::Challenge { reason: "x".into() },
        1_000,
        0,
    );
    assert_eq!(
        refusal(&challenge),
        "not_active",
        "no pending window to challenge in"
    );
    w.send(voter(1), GovAct::Vote(Support::For), 2_000, 50_000);
    w.send(COUNCIL[0], GovAct::Approve, 2_000, 0);
    let queue = w.send(voter(9), GovAct::Queue, 6_000, 0);
    assert!(refusal(&queue) == "not_active", "one approval of two");
    assert_eq!(
        refusal(&w.send(voter(1), GovAct::Approve, 6_000, 0)),
        "not_council"
    );
    w.send(COUNCIL[1], GovAct::Approve, 6_000, 0);
    let queued = w.send(voter(9), GovAct::Queue, 6_001, 0);
    assert!(
        matches!(queued, ProposalEvent::Queued { eta_ms: 6_001, .. }),
        "no timelock"
    );
    assert!(matches!(
        w.send(voter(9), GovAct::Execute, 6_001, 0),
        ProposalEvent::Executed { .. }
    ));
}

#[test]
fn a_council_change_after_approval_counts_only_current_members() {
    let mut w = World::new();
    w.propose(ProposalType::Emergency, pause_jobs(), 0);
    w.send(voter(1), GovAct::Vote(Support::For), 1_000, 50_000);
    w.send(COUNCIL[0], GovAct::Approve, 1_000, 0);
    w.send(COUNCIL[1], GovAct::Approve, 1_000, 0);
    w.params.council = vec![COUNCIL[1], COUNCIL[2], Address([0xc4; 20])];
    assert_eq!(
        refusal(&w.send(voter(9), GovAct::Queue, 5_000, 0)),
        "not_active"
    );
    w.send(COUNCIL[2], GovAct::Approve, 5_000, 0);
    assert!(matches!(
        w.send(voter(9), GovAct::Queue, 5_001, 0),
        ProposalEvent::Queued { .. }
    ));
}

#[test]
fn a_proposal_expires_when_not_queued_or_not_executed_in_time() {
    // Queued, never executed: expires at eta + grace.
    let mut w = World::new();
    w.propose(ProposalType::ParameterChange, set_quorum(500), 0);
    w.send(voter(1), GovAct::Vote(Support::For), 10_000, 50_000);
    w.fire_timers(30_000);
    w.send(voter(9), GovAct::Queue, 30_000, 0);
    assert_eq!(w.status(109_999), Status::Queued);
    assert_eq!(w.status(110_000), Status::Expired);
    assert_eq!(
        refusal(&w.send(voter(9), GovAct::Execute, 110_000, 0)),
        "not_active"
    );
    assert!(matches!(
        &w.fire_timers(110_000)[..],
        [ProposalEvent::Expired { .. }]
    ));
    let (locked, out, _) = w.bond_flows();
    assert_eq!(locked, out, "an expiry returns the bond");
    // Succeeded, never queued: expires at voting end + grace.
    let mut w = World::new();
    w.propose(ProposalType::ParameterChange, set_quorum(500), 0);
    w.send(voter(1), GovAct::Vote(Support::For), 10_000, 50_000);
    w.fire_timers(30_000);
    assert_eq!(w.status(79_999), Status::Succeeded);
    assert!(matches!(
        &w.fire_timers(80_000)[..],
        [ProposalEvent::Expired { .. }]
    ));
    assert_eq!(
        refusal(&w.send(voter(9), GovAct::Queue, 80_000, 0)),
        "not_active"
    );
}

#[test]
fn execution_runs_only_the_voted_actions_and_rechecks_them() {
    let mut w = World::new();
    let pay = vec![Action::Pay {
        to: voter(7),
        amount: Amount(600_000),
        asset: None,
        vesting: None,
    }];
    w.propose(ProposalType::Treasury, pay.clone(), 0);
    w.send(voter(1), GovAct::Vote(Support::For), 10_000, 50_000);
    w.fire_timers(30_000);
    w.send(voter(9), GovAct::Queue, 30_000, 0);
    // The treasury paid others meanwhile: the execution is refused, nothing moves.
    w.treasury = Amount(599_999);
    assert_eq!(
        refusal(&w.send(voter(9), GovAct::Execute, 60_000, 0)),
        "bad_action"
    );
    w.treasury = Amount(600_000);
    // Parameters changed meanwhile: this proposal keeps the ones it was created under.
    w.params.timelock_s = 1;
    w.params.grace_period_s = 1;
    let executed = w.send(voter(9), GovAct::Execute, 60_000, 0);
    let ProposalEvent::Executed { actions, .. } = &executed else {
        panic!("{executed:?}")
    };
    assert_eq!(actions, &pay);
    let owner = Owner::Proposal {
        chain_id: Arc::from(CHAIN),
        id: w.id,
    };
    let steps = follow_ups(&owner, &Fact::Proposal(executed.clone()));
    let treasury_payouts: Vec<_> = steps
        .iter()
        .filter_map(|s| match s {
            FollowUp::PayOut { from, payout, .. } if *from == Address::treasury(CHAIN) => {
                Some(payout)
            }
            _ => None,
        })
        .collect();
    assert_eq!(treasury_payouts.len(), 1);
    assert_eq!(
        (treasury_payouts[0].to, treasury_payouts[0].amount),
        (voter(7), Amount(600_000))
    );
    // A stream whose stored actions no longer match their hash executes nothing.
    let mut tampered = World::new();
    tampered.propose(ProposalType::Treasury, pay, 0);
    if let ProposalEvent::Created(p) = &mut tampered.events[0]
        && let Action::Pay { to, .. } = &mut p.actions[0]
    {
        *to = voter(8);
    }
    tampered.send(voter(1), GovAct::Vote(Support::For), 10_000, 50_000);
    tampered.fire_timers(30_000);
    tampered.send(voter(9), GovAct::Queue, 30_000, 0);
    assert_eq!(
        refusal(&tampered.send(voter(9), GovAct::Execute, 60_000, 0)),
        "bad_action"
    );
}

#[test]
fn grants_and_vested_payouts_go_through_the_vesting_account() {
    let mut w = World::new();
    let grant = vec![Action::Grant {
        to: voter(7),
        amount: Amount(1_000),
        vesting: domain::actions::VestingTerms {
            cliff_s: 10,
            duration_s: 100,
        },
    }];
    w.propose(ProposalType::DaoGrants, grant, 0);
    w.send(voter(1), GovAct::Vote(Support::For), 10_000, 50_000);
    w.fire_timers(30_000);
    w.send(voter(9), GovAct::Queue, 30_000, 0);
    let executed = w.send(voter(9), GovAct::Execute, 60_000, 0);
    let owner = Owner::Proposal {
        chain_id: Arc::from(CHAIN),
        id: w.id,
    };
    let steps = follow_ups(&owner, &Fact::Proposal(executed));
    let vesting_account = domain::vesting::vesting_account(CHAIN);
    assert!(steps.iter().any(|s| matches!(s,
        FollowUp::PayOut { from, payout, .. }
            if *from == Address::treasury(CHAIN) && payout.to == vesting_account && payout.amount == Amount(1_000))));
    assert!(steps.iter().any(|s| matches!(s,
        FollowUp::Vesting { command: domain::vesting::VestingCommand::Create(schedule), .. }
            if schedule.beneficiary == voter(7) && schedule.start_ms == 60_000
                && schedule.cliff_ms == 70_000 && schedule.end_ms == 160_000)));
}

#[test]
fn agents_vote_by_themselves_when_voting_starts_and_followers_mirror_their_leader() {
    let (voter_agent, follower, stopped, leader) = (voter(20), voter(21), voter(22), voter(23));
    let mut w = World::new();
    w.agents = vec![
        (voter_agent, Plan::Vote(Support::For)),
        (follower, Plan::Follow(leader)),
        (stopped, Plan::Vote(Support::Against)),
    ];
    w.propose(ProposalType::ParameterChange, set_quorum(500), 0);
    assert!(w.fire_timers(9_999).is_empty(), "not before voting starts");
    let started = w.fire_timers(10_000);
    let [
        ProposalEvent::VotingStarted {
            votes, followers, ..
        },
    ] = &started[..]
    else {
        panic!("{started:?}")
    };
    assert_eq!(votes.len(), 2);
    assert_eq!(followers, &vec![(follower, leader)]);
    assert!(w.fire_timers(10_500).is_empty(), "voting starts once");
    // Stopped after voting started: its vote is skipped, the other counts.
    let mut recorded = Vec::new();
    for (agent, support) in votes.clone() {
        w.agent_active = agent != stopped;
        let step = ProposalStep::AutoVote { agent, support };
        recorded.extend(w.decide(step, Some(7_000), 10_100));
    }
    assert!(
        matches!(&recorded[0], ProposalEvent::VoteCast { tx: None, voter, support: Support::For, .. }
        if *voter == voter_agent)
    );
    assert!(
        matches!(&recorded[1], ProposalEvent::AutoVoteSkipped { agent, reason }
        if *agent == stopped && reason.code == "not_active")
    );
    w.agent_active = true;
    // The leader votes: its follower votes the same, attributed to itself.
    let led = w.send(leader, GovAct::Vote(Support::Against), 12_000, 3_000);
    assert!(
        matches!(&led, ProposalEvent::VoteCast { followed_by, .. } if followed_by == &vec![follower])
    );
    let mirrored = w.run_auto_votes(&led, 5_000, 12_000);
    assert!(
        matches!(&mirrored[..], [ProposalEvent::VoteCast { tx: None, voter, support: Support::Against, .. }]
        if *voter == follower),
        "{mirrored:?}"
    );
    let proposal = w.state().proposal.unwrap();
    assert_eq!(
        (proposal.tally.for_, proposal.tally.against),
        (Amount(7_000), Amount(8_000))
    );
    // An agent that already voted is not counted twice.
    let again = w.decide(
        ProposalStep::AutoVote {
            agent: follower,
            support: Support::For,
        },
        Some(5_000),
        12_500,
    );
    assert!(
        matches!(&again[..], [ProposalEvent::AutoVoteSkipped { reason, .. }] if reason.code == "already_voted")
    );
}

#[derive(Clone, Debug)]
enum Move {
    Vote(u8, u8, u128),
    Challenge,
    Resolve(u8, bool),
    Cancel,
    Approve(u8),
    Queue,
    Execute,
    Wait(u64),
}

fn moves() -> impl Strategy<Value = Move> {
    prop_oneof![
        (0u8..6, 0u8..3, 0u128..60_000).prop_map(|(v, s, p)| Move::Vote(v, s, p)),
        Just(Move::Challenge),
        (0u8..3, any::<bool>()).prop_map(|(m, u)| Move::Resolve(m, u)),
        Just(Move::Cancel),
        (0u8..3).prop_map(Move::Approve),
        Just(Move::Queue),
        Just(Move::Execute),
        (0u64..40_000).prop_map(Move::Wait),
    ]
}

proptest! {
    /// Whatever happens, every bond locked for a proposal leaves the bond account exactly once
    /// it ends, and never more than was locked before.
    #[test]
    fn bonds_are_conserved_on_every_path(
        emergency in any::<bool>(),
        script in proptest::collection::vec(moves(), 0..30),
    ) {
        let mut w = World::new();
        let (kind, actions) = match emergency {
            true => (ProposalType::Emergency, pause_jobs()),
            false => (ProposalType::ParameterChange, set_quorum(500)),
        };
        w.propose(kind, actions, 0);
        let mut now = 0;
        for step in script {
            match step {
                Move::Vote(v, s, p) => {
                    let support = [Support::For, Support::Against, Support::Abstain][s as usize];
                    w.send(voter(v), GovAct::Vote(support), now, p);
                }
                Move::Challenge => { w.send(CHALLENGER, GovAct::Challenge { reason: "r".into() }, now, 0); }
                Move::Resolve(m, uphold) => { w.send(COUNCIL[m as usize], GovAct::Resolve { uphold }, now, 0); }
                Move::Cancel => { w.send(PROPOSER, GovAct::Cancel, now, 0); }
                Move::Approve(m) => { w.send(COUNCIL[m as usize], GovAct::Approve, now, 0); }
                Move::Queue => { w.send(voter(9), GovAct::Queue, now, 0); }
                Move::Execute => { w.send(voter(9), GovAct::Execute, now, 0); }
                Move::Wait(ms) => { now += ms; w.fire_timers(now); }
            }
            let (locked, out, _) = w.bond_flows();
            prop_assert!(out <= locked, "paid {out} of {locked}");
        }
        // Run the clock out: every proposal ends and every bond is settled.
        w.fire_timers(u64::MAX / 4);
        w.fire_timers(u64::MAX / 2);
        let status = w.status(u64::MAX / 2);
        prop_assert!(matches!(status, Status::Defeated | Status::Executed | Status::Expired
            | Status::Canceled | Status::Rejected), "{status:?}");
        let (locked, out, _) = w.bond_flows();
        prop_assert_eq!(locked, out);
    }
}
