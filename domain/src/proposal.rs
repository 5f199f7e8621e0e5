//! OpenClawDAO proposals (PRODUCT.md §3): one aggregate per proposal, stream
//! `proposal/<chain>/<id>`, the id being the hash of the `propose` transaction.
//!
//! Every governance transaction commits first in its sender's wallet (nonce, fee, and for
//! `propose` and `challenge` the bond, moved to the chain's bond account); the proposal then
//! decides it at the transaction's commit time. What a decision needs from outside the
//! proposal's own events — the parameters in force, the supply, a voter's power at the
//! snapshot, the treasury's funds — is measured by the host when the step runs and recorded in
//! the events, so replaying the stream never measures again.
//!
//! Lifecycle (times from the parameters in force at creation, which later parameter changes
//! never touch): `pending` until `voting_starts_ms` (creation + `voting_delay_s`; an emergency
//! has no delay), `active` until `voting_ends_ms`, then `succeeded` (For + Abstain ≥ quorum and
//! For > Against) or `defeated`; `queue` (after council approval for protocol upgrades and
//! emergencies) sets `eta_ms` = now + `timelock_s` (none for an emergency); `execute` runs the
//! actions between `eta_ms` and `eta_ms` + `grace_period_s`, after which the proposal expires
//! (so does a succeeded one never queued within the grace period after voting ends).
//!
//! Challenges: while pending, anyone may challenge with the challenge bond; a challenged
//! proposal stays pending (voting does not start) until `council_threshold` council members
//! agree to uphold (→ `rejected`: the challenger gets its bond back and half the proposer's,
//! the treasury the rest) or to dismiss (→ the challenger's bond goes to the treasury; if the
//! voting start has passed meanwhile, voting starts at the dismissal and lasts its full
//! period). A challenge unresolved after `challenge_timeout_s` cancels the proposal and
//! returns both bonds. The proposer's bond is returned at every other end: defeated,
//! executed, expired, canceled.
//!
//! A transaction that passed every check when submitted but no longer applies when it commits
//! (two votes at once) is recorded as `Refused`, and any bond it locked is returned.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::actions::{self, Action, ProposalType, ProposeBody};
use crate::address::Address;
use crate::agent::Plan;
use crate::aggregate::{Aggregate, BatchClass, Context};
use crate::codec::DomainEvent;
use crate::dao::{GovernanceParams, REASON_LEN_MAX};
use crate::error::TxError;
use crate::event_id::event_id;
use crate::hash::Hash32;
use crate::money::Amount;
use crate::twas::{BPS, Power};
use crate::vesting::Refusal;

/// Stream of a proposal.
pub fn proposal_stream(chain_id: &str, id: &Hash32) -> String {
    format!("proposal/{chain_id}/{id}")
}

/// The module account holding a chain's proposal and challenge bonds.
pub fn bond_account(chain_id: &str) -> Address {
    Address::module(&format!("bonds/{chain_id}"))
}

/// A vote's choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Support {
    /// For.
    For,
    /// Against.
    Against,
    /// Abstain (counts toward the quorum).
    Abstain,
}

/// Body of a `vote`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoteBody {
    /// The proposal.
    pub proposal_id: Hash32,
    /// The choice.
    pub support: Support,
}

/// Body of `cancel_proposal`, `queue`, `execute` and `council_approve`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalRef {
    /// The proposal.
    pub proposal_id: Hash32,
}

/// Body of a `challenge`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeBody {
    /// The proposal.
    pub proposal_id: Hash32,
    /// Why (at most 512 bytes).
    pub reason: String,
}

impl ChallengeBody {
    /// Checks the reason's length.
    pub fn validate(&self) -> Result<(), TxError> {
        if self.reason.is_empty() || self.reason.len() > REASON_LEN_MAX {
            return Err(TxError::Malformed(format!(
                "a challenge's reason has 1 to {REASON_LEN_MAX} bytes"
            )));
        }
        Ok(())
    }
}

/// Body of a `resolve_challenge`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// The proposal.
    pub proposal_id: Hash32,
    /// `true`: the challenge is right, reject the proposal; `false`: dismiss it.
    pub uphold: bool,
}

/// A governance transaction, as its proposal decides it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GovAct {
    /// Create the proposal (its id is the transaction's hash).
    Propose(ProposeBody),
    /// Vote.
    Vote(Support),
    /// The proposer withdraws it before voting starts.
    Cancel,
    /// A council member approves a protocol upgrade or an emergency.
    Approve,
    /// Challenge it while pending.
    Challenge {
        /// Why.
        reason: String,
    },
    /// A council member's resolution of the open challenge.
    Resolve {
        /// Uphold (reject the proposal) or dismiss.
        uphold: bool,
    },
    /// Start the timelock of a succeeded proposal.
    Queue,
    /// Run its actions.
    Execute,
}

/// Identity of a proposal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProposalId {
    /// Chain.
    pub chain_id: String,
    /// The `propose` transaction's hash.
    pub id: Hash32,
}

/// A step owed to a proposal, derived from an event alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposalStep {
    /// Decide a committed governance transaction.
    Act {
        /// The transaction.
        tx: Hash32,
        /// Its sender.
        sender: Address,
        /// What it asks.
        act: GovAct,
        /// What its debit locked in the bond account.
        bond: Amount,
        /// Its commit time.
        committed_at_ms: u64,
    },
    /// Voting's start (a timer): the agents that vote by themselves cast their votes.
    StartVoting {
        /// The start that set the timer.
        starts_ms: u64,
    },
    /// An agent's autonomous vote (its strategy's, or mirroring the address it follows).
    AutoVote {
        /// The agent.
        agent: Address,
        /// Its choice.
        support: Support,
    },
    /// Voting's end (a timer): record the outcome if voting still ends then.
    EndVoting {
        /// The end that set the timer.
        ends_ms: u64,
    },
    /// A challenge's timeout (a timer): cancel the proposal if that challenge is still open.
    ExpireChallenge {
        /// The challenge.
        challenge_tx: Hash32,
    },
    /// The deadline to queue or execute (a timer): expire if it still applies.
    Expire {
        /// The deadline that set the timer.
        deadline_ms: u64,
    },
}

/// What the host measured for a step when it ran, from outside the proposal's stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Measured {
    /// The chain's governance parameters in force.
    pub params: GovernanceParams,
    /// The native supply.
    pub supply: Amount,
    /// The sender's voting power at the proposal's snapshot (`propose`, `vote`).
    pub power: Option<Power>,
    /// The treasury's balances by asset (`execute`).
    pub treasury: BTreeMap<Option<String>, Amount>,
    /// What each active, auto-voting agent does on this proposal (`StartVoting`).
    pub agents: Vec<(Address, Plan)>,
    /// Whether the agent of an `AutoVote` is still active.
    pub agent_active: bool,
}

/// A command to a proposal: a step and what the host measured for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalCommand {
    /// The step.
    pub step: ProposalStep,
    /// Measurements.
    pub measured: Measured,
}

/// Votes by choice, in voting power.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// For.
    #[serde(rename = "for")]
    pub for_: Amount,
    /// Against.
    pub against: Amount,
    /// Abstain.
    pub abstain: Amount,
}

impl Tally {
    /// Adds a vote.
    pub fn add(&mut self, support: Support, power: Amount) {
        let slot = match support {
            Support::For => &mut self.for_,
            Support::Against => &mut self.against,
            Support::Abstain => &mut self.abstain,
        };
        *slot = slot
            .checked_add(power)
            .expect("votes are bounded by the supply");
    }
}

/// An open challenge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The challenging transaction.
    pub tx: Hash32,
    /// Who challenged.
    pub challenger: Address,
    /// Why.
    pub reason: String,
    /// Its bond.
    pub bond: Amount,
    /// When it was made, Unix ms.
    pub at_ms: u64,
    /// Unresolved then, it cancels the proposal.
    pub expires_ms: u64,
    /// Council members for upholding.
    pub uphold: BTreeSet<Address>,
    /// Council members for dismissing.
    pub dismiss: BTreeSet<Address>,
}

impl Challenge {
    fn bond_ref(&self) -> BondRef {
        BondRef {
            tx: self.tx,
            owner: self.challenger,
            amount: self.bond,
        }
    }
}

/// A bond that moves when a proposal or a challenge ends: who locked it, with which
/// transaction, how much.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BondRef {
    /// The transaction that locked it.
    pub tx: Hash32,
    /// Who locked it.
    pub owner: Address,
    /// Base units.
    pub amount: Amount,
}

/// Where a proposal is; with the time, it gives the wire state ([`Proposal::status_at`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Pending or active, by the time.
    Voting,
    /// Voting ended without success.
    Defeated,
    /// Voting ended with success; not queued yet.
    Succeeded,
    /// In its timelock or waiting for execution.
    Queued,
    /// Its actions ran.
    Executed,
    /// Never queued or executed in time.
    Expired,
    /// Withdrawn, or its challenge timed out.
    Canceled,
    /// Its challenge was upheld.
    Rejected,
}

/// The wire state of a proposal (API.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Before voting (or challenged).
    Pending,
    /// Voting.
    Active,
    /// Voting ended without success.
    Defeated,
    /// Voting ended with success.
    Succeeded,
    /// Queued.
    Queued,
    /// Executed.
    Executed,
    /// Expired.
    Expired,
    /// Canceled.
    Canceled,
    /// Rejected.
    Rejected,
}

impl Status {
    /// Wire name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Active => "active",
            Status::Defeated => "defeated",
            Status::Succeeded => "succeeded",
            Status::Queued => "queued",
            Status::Executed => "executed",
            Status::Expired => "expired",
            Status::Canceled => "canceled",
            Status::Rejected => "rejected",
        }
    }

    fn is_final(self) -> bool {
        matches!(
            self,
            Status::Defeated
                | Status::Executed
                | Status::Expired
                | Status::Canceled
                | Status::Rejected
        )
    }
}

/// A recorded vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The voting transaction (`None`: an agent's autonomous vote).
    pub tx: Option<Hash32>,
    /// The choice.
    pub support: Support,
    /// Voting power at the snapshot.
    pub power: Amount,
}

/// A proposal as created, then as its events change it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Its id (the `propose` transaction's hash).
    pub id: Hash32,
    /// Who proposed.
    pub proposer: Address,
    /// Its type.
    pub proposal_type: ProposalType,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// What it does when executed.
    pub actions: Vec<Action>,
    /// Hash of the actions' canonical form.
    pub actions_hash: Hash32,
    /// Commit time of the `propose`: the snapshot.
    pub created_at_ms: u64,
    /// Voting starts.
    pub voting_starts_ms: u64,
    /// Voting ends.
    pub voting_ends_ms: u64,
    /// The parameters in force at creation, which govern it to its end.
    pub params: GovernanceParams,
    /// Native supply at the snapshot.
    pub supply: Amount,
    /// For + Abstain needed.
    pub quorum: Amount,
    /// The proposer's locked bond.
    pub bond: Amount,
    /// The proposer's power at the snapshot.
    pub proposer_power: Power,
    /// Votes so far.
    pub tally: Tally,
    /// Council approvals (protocol upgrades and emergencies).
    pub approvals: BTreeSet<Address>,
    /// The open challenge.
    pub challenge: Option<Challenge>,
    /// Where it is.
    pub phase: Phase,
    /// Earliest execution, once queued.
    pub eta_ms: Option<u64>,
    /// When it was executed.
    pub executed_at_ms: Option<u64>,
}

impl Proposal {
    /// Whether For + Abstain reached the quorum and For beat Against.
    pub fn succeeded(&self) -> bool {
        let counted = self.tally.for_.checked_add(self.tally.abstain);
        counted.is_some_and(|c| c >= self.quorum) && self.tally.for_ > self.tally.against
    }

    /// The deadline of a succeeded or queued proposal: expired from then on.
    pub fn deadline_ms(&self) -> Option<u64> {
        let grace_ms = self.params.grace_period_s.saturating_mul(1000);
        match self.phase {
            Phase::Succeeded => Some(self.voting_ends_ms.saturating_add(grace_ms)),
            Phase::Queued => self.eta_ms.map(|eta| eta.saturating_add(grace_ms)),
            _ => None,
        }
    }

    /// The wire state at `now_ms` (what the timers will record is already visible).
    pub fn status_at(&self, now_ms: u64) -> Status {
        let expired = self.deadline_ms().is_some_and(|d| now_ms >= d);
        match self.phase {
            Phase::Voting if self.challenge.is_some() || now_ms < self.voting_starts_ms => {
                Status::Pending
            }
            Phase::Voting if now_ms < self.voting_ends_ms => Status::Active,
            Phase::Voting if self.succeeded() => {
                let grace_ms = self.params.grace_period_s.saturating_mul(1000);
                if now_ms >= self.voting_ends_ms.saturating_add(grace_ms) {
                    Status::Expired
                } else {
                    Status::Succeeded
                }
            }
            Phase::Voting | Phase::Defeated => Status::Defeated,
            Phase::Succeeded | Phase::Queued if expired => Status::Expired,
            Phase::Succeeded => Status::Succeeded,
            Phase::Queued => Status::Queued,
            Phase::Executed => Status::Executed,
            Phase::Expired => Status::Expired,
            Phase::Canceled => Status::Canceled,
            Phase::Rejected => Status::Rejected,
        }
    }

    fn bond_ref(&self) -> BondRef {
        BondRef {
            tx: self.id,
            owner: self.proposer,
            amount: self.bond,
        }
    }

    fn council_short(&self, params: &GovernanceParams) -> Option<String> {
        let have = self
            .approvals
            .iter()
            .filter(|m| params.is_council(m))
            .count();
        (self.proposal_type.needs_council() && have < params.council_threshold).then(|| {
            format!(
                "awaiting council approval ({have} of {})",
                params.council_threshold
            )
        })
    }
}

/// State of a proposal's stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalState {
    /// The proposal, once created.
    pub proposal: Option<Proposal>,
    /// Votes by voter.
    pub votes: BTreeMap<Address, Vote>,
    /// Agents that mirror an address's vote: followed → followers (set when voting starts).
    #[serde(default)]
    pub followers: BTreeMap<Address, BTreeSet<Address>>,
    /// When voting started and the agents voted, if it has.
    #[serde(default)]
    pub started_ms: Option<u64>,
}

impl ProposalState {
    /// The agents that follow `voter` and have not voted yet.
    fn followers_of(&self, voter: &Address) -> Vec<Address> {
        self.followers
            .get(voter)
            .into_iter()
            .flatten()
            .filter(|agent| !self.votes.contains_key(agent))
            .copied()
            .collect()
    }
}

/// Events of a proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalEvent {
    /// The proposal exists.
    Created(Box<Proposal>),
    /// Voting started: the agents voting by themselves now, and those waiting for an address.
    VotingStarted {
        /// When.
        starts_ms: u64,
        /// Agents' votes owed now.
        votes: Vec<(Address, Support)>,
        /// (agent, the address it follows).
        followers: Vec<(Address, Address)>,
    },
    /// A vote counted.
    VoteCast {
        /// The voting transaction (`None`: an agent's autonomous vote).
        tx: Option<Hash32>,
        /// Who voted.
        voter: Address,
        /// The choice.
        support: Support,
        /// The voter's power at the snapshot, and how it was reached.
        power: Power,
        /// Agents following the voter, who now vote the same.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        followed_by: Vec<Address>,
    },
    /// An agent's autonomous vote that could not be cast.
    AutoVoteSkipped {
        /// The agent.
        agent: Address,
        /// Why.
        reason: Refusal,
    },
    /// A council member approved the proposal.
    CouncilApproved {
        /// The transaction.
        tx: Hash32,
        /// The member.
        member: Address,
    },
    /// A challenge is open.
    Challenged {
        /// The challenge.
        challenge: Challenge,
    },
    /// A council member's resolution, short of the threshold.
    ResolutionApproved {
        /// The transaction.
        tx: Hash32,
        /// The member.
        member: Address,
        /// Uphold or dismiss.
        uphold: bool,
    },
    /// The challenge was upheld: the proposal is rejected.
    ChallengeUpheld {
        /// The resolution that reached the threshold.
        tx: Hash32,
        /// The challenger's bond (returned) and who gets half the proposer's.
        challenge: BondRef,
        /// The proposer's bond (split between the challenger and the treasury).
        proposer_bond: BondRef,
    },
    /// The challenge was dismissed: voting goes on.
    ChallengeDismissed {
        /// The resolution that reached the threshold.
        tx: Hash32,
        /// The challenger's bond (to the treasury).
        challenge: BondRef,
        /// Voting starts (later than planned if the dismissal came after the planned start).
        voting_starts_ms: u64,
        /// Voting ends.
        voting_ends_ms: u64,
    },
    /// The challenge went unresolved too long: the proposal is canceled.
    ChallengeExpired {
        /// The challenger's bond (returned).
        challenge: BondRef,
        /// The proposer's bond (returned).
        proposer_bond: BondRef,
    },
    /// The proposer withdrew it.
    Canceled {
        /// The transaction.
        tx: Hash32,
        /// The proposer's bond (returned).
        proposer_bond: BondRef,
        /// An open challenge's bond (returned).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        challenge: Option<BondRef>,
    },
    /// Voting ended.
    VotingEnded {
        /// When.
        ends_ms: u64,
        /// Whether it succeeded.
        succeeded: bool,
        /// The final tally.
        tally: Tally,
        /// A succeeded proposal expires then unless queued.
        deadline_ms: u64,
        /// The proposer's bond (returned if defeated).
        proposer_bond: BondRef,
    },
    /// Queued for execution.
    Queued {
        /// The transaction.
        tx: Hash32,
        /// Earliest execution.
        eta_ms: u64,
        /// Expires then unless executed.
        deadline_ms: u64,
    },
    /// The actions ran.
    Executed {
        /// The transaction.
        tx: Hash32,
        /// When.
        at_ms: u64,
        /// What ran.
        actions: Vec<Action>,
        /// The proposer's bond (returned).
        proposer_bond: BondRef,
    },
    /// Not queued or executed in time.
    Expired {
        /// The deadline.
        deadline_ms: u64,
        /// The proposer's bond (returned).
        proposer_bond: BondRef,
    },
    /// A committed transaction that did not apply.
    Refused {
        /// The transaction.
        tx: Hash32,
        /// Its sender (gets `refund` back).
        sender: Address,
        /// Why.
        reason: Refusal,
        /// The bond it locked, returned.
        refund: Amount,
    },
}

impl ProposalEvent {
    /// Versioned type name.
    pub fn event_type(&self) -> &'static str {
        match self {
            ProposalEvent::Created(_) => "ProposalCreated.v1",
            ProposalEvent::VoteCast { .. } => "VoteCast.v1",
            ProposalEvent::CouncilApproved { .. } => "ProposalApproved.v1",
            ProposalEvent::Challenged { .. } => "ProposalChallenged.v1",
            ProposalEvent::ResolutionApproved { .. } => "ResolutionApproved.v1",
            ProposalEvent::ChallengeUpheld { .. } => "ChallengeUpheld.v1",
            ProposalEvent::ChallengeDismissed { .. } => "ChallengeDismissed.v1",
            ProposalEvent::ChallengeExpired { .. } => "ChallengeExpired.v1",
            ProposalEvent::Canceled { .. } => "ProposalCanceled.v1",
            ProposalEvent::VotingEnded { .. } => "VotingEnded.v1",
            ProposalEvent::Queued { .. } => "ProposalQueued.v1",
            ProposalEvent::Executed { .. } => "ProposalExecuted.v1",
            ProposalEvent::Expired { .. } => "ProposalExpired.v1",
            ProposalEvent::Refused { .. } => "ProposalActRefused.v1",
            ProposalEvent::VotingStarted { .. } => "VotingStarted.v1",
            ProposalEvent::AutoVoteSkipped { .. } => "AutoVoteSkipped.v1",
        }
    }

    /// Every type name, for the decoder.
    pub const TYPES: [&'static str; 16] = [
        "VotingStarted.v1",
        "AutoVoteSkipped.v1",
        "ProposalCreated.v1",
        "VoteCast.v1",
        "ProposalApproved.v1",
        "ProposalChallenged.v1",
        "ResolutionApproved.v1",
        "ChallengeUpheld.v1",
        "ChallengeDismissed.v1",
        "ChallengeExpired.v1",
        "ProposalCanceled.v1",
        "VotingEnded.v1",
        "ProposalQueued.v1",
        "ProposalExecuted.v1",
        "ProposalExpired.v1",
        "ProposalActRefused.v1",
    ];

    /// The transaction that caused it, if any (timers cause the others).
    pub fn tx(&self) -> Option<Hash32> {
        match self {
            ProposalEvent::Created(p) => Some(p.id),
            ProposalEvent::VoteCast { tx, .. } => *tx,
            ProposalEvent::CouncilApproved { tx, .. }
            | ProposalEvent::ResolutionApproved { tx, .. }
            | ProposalEvent::ChallengeUpheld { tx, .. }
            | ProposalEvent::ChallengeDismissed { tx, .. }
            | ProposalEvent::Canceled { tx, .. }
            | ProposalEvent::Queued { tx, .. }
            | ProposalEvent::Executed { tx, .. }
            | ProposalEvent::Refused { tx, .. } => Some(*tx),
            ProposalEvent::Challenged { challenge } => Some(challenge.tx),
            ProposalEvent::ChallengeExpired { .. }
            | ProposalEvent::VotingEnded { .. }
            | ProposalEvent::Expired { .. }
            | ProposalEvent::VotingStarted { .. }
            | ProposalEvent::AutoVoteSkipped { .. } => None,
        }
    }
}

/// The proposal aggregate.
#[derive(Debug)]
pub enum ProposalAggregate {}

fn tx_event_id(tx: &Hash32) -> u128 {
    event_id("proposal-tx", &tx.0)
}

fn timer_event_id(tag: &str, id: &Hash32, at_ms: u64) -> u128 {
    let mut subject = id.0.to_vec();
    subject.extend_from_slice(&at_ms.to_be_bytes());
    event_id(tag, &subject)
}

/// Id of the event `step` records on proposal `id`.
pub fn step_event_id(id: &Hash32, step: &ProposalStep) -> u128 {
    match step {
        ProposalStep::Act { tx, .. } => tx_event_id(tx),
        ProposalStep::StartVoting { starts_ms } => {
            timer_event_id("proposal-voting-started", id, *starts_ms)
        }
        ProposalStep::AutoVote { agent, .. } => auto_vote_event_id(id, agent),
        ProposalStep::EndVoting { ends_ms } => {
            timer_event_id("proposal-voting-ended", id, *ends_ms)
        }
        ProposalStep::ExpireChallenge { challenge_tx } => {
            event_id("proposal-challenge-expired", &challenge_tx.0)
        }
        ProposalStep::Expire { deadline_ms } => {
            timer_event_id("proposal-expired", id, *deadline_ms)
        }
    }
}

fn auto_vote_event_id(id: &Hash32, agent: &Address) -> u128 {
    let mut subject = id.0.to_vec();
    subject.extend_from_slice(&agent.0);
    event_id("proposal-auto-vote", &subject)
}

fn quorum(supply: Amount, quorum_bps: u32) -> Amount {
    let bps = u128::from(quorum_bps).min(BPS);
    Amount((supply.0 / BPS) * bps + (supply.0 % BPS) * bps / BPS)
}

/// A committed transaction as its proposal sees it.
#[derive(Clone, Copy, Debug)]
pub struct Sent {
    /// The transaction.
    pub tx: Hash32,
    /// Its sender.
    pub sender: Address,
    /// The bond its debit locked.
    pub bond: Amount,
    /// Its commit time.
    pub at_ms: u64,
}

/// What proposal `id` in `state` records for `act` sent as `sent`, or why it refuses: the
/// rules of every governance transaction. The node runs them before committing (with the time
/// of submission) so that a transaction that would be refused changes nothing.
pub fn decide_act(
    state: &ProposalState,
    id: Hash32,
    sent: Sent,
    act: GovAct,
    measured: &Measured,
) -> Result<ProposalEvent, TxError> {
    let Sent {
        tx,
        sender,
        bond,
        at_ms,
    } = sent;
    if let GovAct::Propose(body) = act {
        return create(state, id, sender, body, bond, at_ms, measured);
    }
    let proposal = state
        .proposal
        .as_ref()
        .ok_or_else(|| TxError::NotFound(format!("no proposal {id}")))?;
    let status = proposal.status_at(at_ms);
    let not_active = |wants: &str| {
        Err(TxError::NotActive(format!(
            "proposal {id} is {}; {wants}",
            status.name()
        )))
    };
    let params = &measured.params;
    match act {
        GovAct::Propose(_) => unreachable!("handled above"),
        GovAct::Vote(support) => {
            if status != Status::Active {
                return not_active("votes are taken while it is active");
            }
            if state.votes.contains_key(&sender) {
                return Err(TxError::AlreadyVoted(format!(
                    "{sender} already voted on {id}"
                )));
            }
            let power = measured.power.expect("the host measures a voter's power");
            if power.power == Amount::ZERO {
                return Err(TxError::NoVotingPower(format!(
                    "{sender} had no voting power at the snapshot"
                )));
            }
            Ok(ProposalEvent::VoteCast {
                tx: Some(tx),
                voter: sender,
                support,
                power,
                followed_by: state.followers_of(&sender),
            })
        }
        GovAct::Cancel => {
            if sender != proposal.proposer {
                return Err(TxError::NotOwner(format!(
                    "only the proposer {} may cancel",
                    proposal.proposer
                )));
            }
            if status != Status::Pending {
                return not_active("it can be canceled only before voting starts");
            }
            Ok(ProposalEvent::Canceled {
                tx,
                proposer_bond: proposal.bond_ref(),
                challenge: proposal.challenge.as_ref().map(Challenge::bond_ref),
            })
        }
        GovAct::Approve => {
            if !proposal.proposal_type.needs_council() {
                return Err(TxError::NotActive(format!(
                    "a {} proposal takes no council approval",
                    proposal.proposal_type.name()
                )));
            }
            council_member(params, &sender)?;
            if status.is_final() {
                return not_active("it takes no more approvals");
            }
            if proposal.approvals.contains(&sender) {
                return Err(TxError::AlreadyVoted(format!(
                    "{sender} already approved {id}"
                )));
            }
            Ok(ProposalEvent::CouncilApproved { tx, member: sender })
        }
        GovAct::Challenge { reason } => {
            if status != Status::Pending || proposal.challenge.is_some() {
                return not_active("a challenge is taken while it is pending and unchallenged");
            }
            Ok(ProposalEvent::Challenged {
                challenge: Challenge {
                    tx,
                    challenger: sender,
                    reason,
                    bond,
                    at_ms,
                    expires_ms: at_ms
                        .saturating_add(proposal.params.challenge_timeout_s.saturating_mul(1000)),
                    uphold: BTreeSet::new(),
                    dismiss: BTreeSet::new(),
                },
            })
        }
        GovAct::Resolve { uphold } => {
            let Some(challenge) = &proposal.challenge else {
                return Err(TxError::NotActive(format!(
                    "proposal {id} has no open challenge"
                )));
            };
            council_member(params, &sender)?;
            if challenge.uphold.contains(&sender) || challenge.dismiss.contains(&sender) {
                return Err(TxError::AlreadyVoted(format!(
                    "{sender} already resolved this challenge"
                )));
            }
            let side = if uphold {
                &challenge.uphold
            } else {
                &challenge.dismiss
            };
            let agreeing = side.iter().filter(|m| params.is_council(m)).count() + 1;
            if agreeing < params.council_threshold {
                return Ok(ProposalEvent::ResolutionApproved {
                    tx,
                    member: sender,
                    uphold,
                });
            }
            if uphold {
                return Ok(ProposalEvent::ChallengeUpheld {
                    tx,
                    challenge: challenge.bond_ref(),
                    proposer_bond: proposal.bond_ref(),
                });
            }
            let (mut starts, mut ends) = (proposal.voting_starts_ms, proposal.voting_ends_ms);
            if at_ms > starts {
                (starts, ends) = (at_ms, at_ms.saturating_add(ends - starts));
            }
            Ok(ProposalEvent::ChallengeDismissed {
                tx,
                challenge: challenge.bond_ref(),
                voting_starts_ms: starts,
                voting_ends_ms: ends,
            })
        }
        GovAct::Queue => {
            if status != Status::Succeeded {
                return not_active("only a succeeded proposal is queued");
            }
            if let Some(short) = proposal.council_short(params) {
                return Err(TxError::NotActive(format!("proposal {id} is {short}")));
            }
            let timelock_s = match proposal.proposal_type.is_emergency() {
                true => 0,
                false => proposal.params.timelock_s,
            };
            let eta_ms = at_ms.saturating_add(timelock_s.saturating_mul(1000));
            Ok(ProposalEvent::Queued {
                tx,
                eta_ms,
                deadline_ms: eta_ms
                    .saturating_add(proposal.params.grace_period_s.saturating_mul(1000)),
            })
        }
        GovAct::Execute => {
            if status != Status::Queued {
                return not_active("only a queued proposal is executed");
            }
            let eta_ms = proposal.eta_ms.expect("a queued proposal has an eta");
            if at_ms < eta_ms {
                return Err(TxError::NotActive(format!(
                    "proposal {id} is queued until {eta_ms} ms"
                )));
            }
            if let Some(short) = proposal.council_short(params) {
                return Err(TxError::NotActive(format!("proposal {id} is {short}")));
            }
            if actions::actions_hash(&proposal.actions) != proposal.actions_hash {
                return Err(TxError::BadAction(
                    "the actions no longer match their hash".into(),
                ));
            }
            actions::validate_actions(&proposal.actions, params)?;
            for (asset, needed) in actions::treasury_outflows(&proposal.actions) {
                let held = measured.treasury.get(&asset).copied().unwrap_or_default();
                if held < needed {
                    return Err(TxError::BadAction(format!(
                        "the treasury holds {held} {}, the actions pay {needed}",
                        asset.as_deref().unwrap_or("of the native asset")
                    )));
                }
            }
            Ok(ProposalEvent::Executed {
                tx,
                at_ms,
                actions: proposal.actions.clone(),
                proposer_bond: proposal.bond_ref(),
            })
        }
    }
}

fn council_member(params: &GovernanceParams, sender: &Address) -> Result<(), TxError> {
    if !params.is_council(sender) {
        return Err(TxError::NotCouncil(format!(
            "{sender} is not on the council"
        )));
    }
    Ok(())
}

fn create(
    state: &ProposalState,
    id: Hash32,
    proposer: Address,
    body: ProposeBody,
    bond: Amount,
    at_ms: u64,
    measured: &Measured,
) -> Result<ProposalEvent, TxError> {
    assert!(
        state.proposal.is_none(),
        "a proposal's id is its transaction"
    );
    let params = &measured.params;
    body.validate_shape()?;
    actions::validate_actions(&body.actions, params)?;
    let power = measured
        .power
        .expect("the host measures a proposer's power");
    if power.power < params.proposal_threshold {
        return Err(TxError::BelowThreshold(format!(
            "{proposer} has {} voting power at the snapshot, {} needed",
            power.power, params.proposal_threshold
        )));
    }
    let emergency = body.proposal_type.is_emergency();
    let (delay_s, period_s) = match emergency {
        true => (0, params.emergency_voting_period_s),
        false => (params.voting_delay_s, params.voting_period_s),
    };
    let voting_starts_ms = at_ms.saturating_add(delay_s.saturating_mul(1000));
    Ok(ProposalEvent::Created(Box::new(Proposal {
        id,
        proposer,
        proposal_type: body.proposal_type,
        title: body.title,
        description: body.description,
        actions_hash: actions::actions_hash(&body.actions),
        actions: body.actions,
        created_at_ms: at_ms,
        voting_starts_ms,
        voting_ends_ms: voting_starts_ms.saturating_add(period_s.saturating_mul(1000)),
        params: params.clone(),
        supply: measured.supply,
        quorum: quorum(measured.supply, params.quorum_bps),
        bond,
        proposer_power: power,
        tally: Tally::default(),
        approvals: BTreeSet::new(),
        challenge: None,
        phase: Phase::Voting,
        eta_ms: None,
        executed_at_ms: None,
    })))
}

/// An agent's autonomous vote at `now_ms`, or why it is skipped.
fn auto_vote(
    state: &ProposalState,
    agent: Address,
    support: Support,
    measured: &Measured,
    now_ms: u64,
) -> ProposalEvent {
    let proposal = state
        .proposal
        .as_ref()
        .expect("agents vote on created proposals");
    let status = proposal.status_at(now_ms);
    let power = measured.power.unwrap_or_default();
    let skip = if !measured.agent_active {
        Some(TxError::NotActive(format!("agent {agent} is stopped")))
    } else if status != Status::Active {
        Some(TxError::NotActive(format!(
            "proposal {} is {}",
            proposal.id,
            status.name()
        )))
    } else if state.votes.contains_key(&agent) {
        Some(TxError::AlreadyVoted(format!("{agent} already voted")))
    } else if power.power == Amount::ZERO {
        Some(TxError::NoVotingPower(format!(
            "{agent} had no voting power at the snapshot"
        )))
    } else {
        None
    };
    match skip {
        Some(error) => ProposalEvent::AutoVoteSkipped {
            agent,
            reason: error.into(),
        },
        None => ProposalEvent::VoteCast {
            tx: None,
            voter: agent,
            support,
            power,
            followed_by: state.followers_of(&agent),
        },
    }
}

/// What the start of voting records: the plans of the agents that vote by themselves.
fn start_voting(agents: &[(Address, Plan)], starts_ms: u64) -> ProposalEvent {
    let mut votes = Vec::new();
    let mut followers = Vec::new();
    for (agent, plan) in agents {
        match plan {
            Plan::Vote(support) => votes.push((*agent, *support)),
            Plan::Follow(followed) => followers.push((*agent, *followed)),
        }
    }
    ProposalEvent::VotingStarted {
        starts_ms,
        votes,
        followers,
    }
}

fn timer(
    state: &ProposalState,
    step: ProposalStep,
    measured: &Measured,
    now_ms: u64,
) -> Option<ProposalEvent> {
    let proposal = state.proposal.as_ref()?;
    match step {
        ProposalStep::Act { .. } => unreachable!("transactions are acts"),
        ProposalStep::AutoVote { agent, support } => {
            Some(auto_vote(state, agent, support, measured, now_ms))
        }
        ProposalStep::StartVoting { starts_ms } => (proposal.phase == Phase::Voting
            && proposal.challenge.is_none()
            && proposal.voting_starts_ms == starts_ms
            && state.started_ms.is_none()
            && now_ms >= starts_ms)
            .then(|| start_voting(&measured.agents, starts_ms)),
        ProposalStep::EndVoting { ends_ms } => (proposal.phase == Phase::Voting
            && proposal.challenge.is_none()
            && proposal.voting_ends_ms == ends_ms
            && now_ms >= ends_ms)
            .then(|| ProposalEvent::VotingEnded {
                ends_ms,
                succeeded: proposal.succeeded(),
                tally: proposal.tally,
                deadline_ms: ends_ms
                    .saturating_add(proposal.params.grace_period_s.saturating_mul(1000)),
                proposer_bond: proposal.bond_ref(),
            }),
        ProposalStep::ExpireChallenge { challenge_tx } => {
            let challenge = proposal.challenge.as_ref()?;
            (challenge.tx == challenge_tx && now_ms >= challenge.expires_ms).then(|| {
                ProposalEvent::ChallengeExpired {
                    challenge: challenge.bond_ref(),
                    proposer_bond: proposal.bond_ref(),
                }
            })
        }
        ProposalStep::Expire { deadline_ms } => (proposal.deadline_ms() == Some(deadline_ms)
            && now_ms >= deadline_ms)
            .then(|| ProposalEvent::Expired {
                deadline_ms,
                proposer_bond: proposal.bond_ref(),
            }),
    }
}

impl Aggregate for ProposalAggregate {
    type Id = ProposalId;
    type Facts = ();
    type State = ProposalState;
    type Command = ProposalCommand;
    type Event = ProposalEvent;
    type Error = TxError;

    const NAME: &'static str = "proposal";
    // A state holds every vote: a snapshot of a busy proposal is large (a million votes: about
    // 150 MB of JSON), so it is saved rarely; activation replays at most this many votes.
    const SNAPSHOT_EVERY_EVENTS: u64 = 65_536;

    fn stream(id: &ProposalId) -> String {
        proposal_stream(&id.chain_id, &id.id)
    }

    fn decide(
        state: &ProposalState,
        ctx: &Context<'_, ProposalAggregate>,
        command: ProposalCommand,
    ) -> Result<Vec<ProposalEvent>, TxError> {
        let ProposalCommand { step, measured } = command;
        let ProposalStep::Act {
            tx,
            sender,
            act: gov_act,
            bond,
            committed_at_ms,
        } = step
        else {
            return Ok(timer(state, step, &measured, ctx.now_ms)
                .into_iter()
                .collect());
        };
        let sent = Sent {
            tx,
            sender,
            bond,
            at_ms: committed_at_ms,
        };
        let decided = decide_act(state, ctx.id.id, sent, gov_act.clone(), &measured);
        Ok(vec![decided.unwrap_or_else(|error| {
            let refund = match gov_act {
                GovAct::Propose(_) | GovAct::Challenge { .. } => bond,
                _ => Amount::ZERO,
            };
            ProposalEvent::Refused {
                tx,
                sender,
                reason: error.into(),
                refund,
            }
        })])
    }

    fn evolve(state: &mut ProposalState, event: &ProposalEvent) {
        if let ProposalEvent::Created(proposal) = event {
            assert!(state.proposal.is_none(), "a proposal is created once");
            state.proposal = Some((**proposal).clone());
            return;
        }
        if let ProposalEvent::Refused { .. } = event {
            return;
        }
        let proposal = state
            .proposal
            .as_mut()
            .expect("a proposal's events follow its creation");
        match event {
            ProposalEvent::Created(_) | ProposalEvent::Refused { .. } => unreachable!(),
            ProposalEvent::VoteCast {
                tx,
                voter,
                support,
                power,
                ..
            } => {
                proposal.tally.add(*support, power.power);
                let first = state.votes.insert(
                    *voter,
                    Vote {
                        tx: *tx,
                        support: *support,
                        power: power.power,
                    },
                );
                assert!(first.is_none(), "one vote per address");
            }
            ProposalEvent::VotingStarted {
                starts_ms,
                followers,
                ..
            } => {
                state.started_ms = Some(*starts_ms);
                for (agent, followed) in followers {
                    state.followers.entry(*followed).or_default().insert(*agent);
                }
            }
            ProposalEvent::AutoVoteSkipped { .. } => {}
            ProposalEvent::CouncilApproved { member, .. } => {
                proposal.approvals.insert(*member);
            }
            ProposalEvent::Challenged { challenge } => {
                proposal.challenge = Some(challenge.clone());
            }
            ProposalEvent::ResolutionApproved { member, uphold, .. } => {
                let challenge = proposal.challenge.as_mut().expect("an open challenge");
                match uphold {
                    true => challenge.uphold.insert(*member),
                    false => challenge.dismiss.insert(*member),
                };
            }
            ProposalEvent::ChallengeUpheld { .. } => {
                proposal.challenge = None;
                proposal.phase = Phase::Rejected;
            }
            ProposalEvent::ChallengeDismissed {
                voting_starts_ms,
                voting_ends_ms,
                ..
            } => {
                proposal.challenge = None;
                proposal.voting_starts_ms = *voting_starts_ms;
                proposal.voting_ends_ms = *voting_ends_ms;
            }
            ProposalEvent::ChallengeExpired { .. } | ProposalEvent::Canceled { .. } => {
                proposal.challenge = None;
                proposal.phase = Phase::Canceled;
            }
            ProposalEvent::VotingEnded { succeeded, .. } => {
                proposal.phase = match succeeded {
                    true => Phase::Succeeded,
                    false => Phase::Defeated,
                };
            }
            ProposalEvent::Queued { eta_ms, .. } => {
                proposal.phase = Phase::Queued;
                proposal.eta_ms = Some(*eta_ms);
            }
            ProposalEvent::Executed { at_ms, .. } => {
                proposal.phase = Phase::Executed;
                proposal.executed_at_ms = Some(*at_ms);
            }
            ProposalEvent::Expired { .. } => proposal.phase = Phase::Expired,
        }
    }

    fn event_id(id: &ProposalId, event: &ProposalEvent) -> u128 {
        match event {
            ProposalEvent::VoteCast {
                tx: None, voter, ..
            }
            | ProposalEvent::AutoVoteSkipped { agent: voter, .. } => {
                auto_vote_event_id(&id.id, voter)
            }
            ProposalEvent::VotingStarted { starts_ms, .. } => {
                timer_event_id("proposal-voting-started", &id.id, *starts_ms)
            }
            ProposalEvent::VotingEnded { ends_ms, .. } => {
                timer_event_id("proposal-voting-ended", &id.id, *ends_ms)
            }
            ProposalEvent::ChallengeExpired { challenge, .. } => {
                event_id("proposal-challenge-expired", &challenge.tx.0)
            }
            ProposalEvent::Expired { deadline_ms, .. } => {
                timer_event_id("proposal-expired", &id.id, *deadline_ms)
            }
            other => tx_event_id(&other.tx().expect("every other event has a transaction")),
        }
    }

    fn command_event_id(id: &ProposalId, command: &ProposalCommand) -> Option<u128> {
        Some(step_event_id(&id.id, &command.step))
    }

    fn batch_class(_command: &ProposalCommand) -> BatchClass {
        BatchClass::Decision
    }

    fn encode(event: &ProposalEvent) -> (&'static str, Vec<u8>) {
        let data = serde_json::to_vec(event).expect("events serialize");
        (event.event_type(), data)
    }

    fn from_stored(event: DomainEvent) -> Option<ProposalEvent> {
        match event {
            DomainEvent::Proposal(event) => Some(event),
            _ => None,
        }
    }
}
