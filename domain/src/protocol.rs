//! The cross-aggregate protocol: what must follow a committed event in other streams.
//!
//! A transaction commits in its sender's wallet (`Debited`); every further step is a command to
//! another aggregate derived from an event alone, identified by the deterministic id of the
//! event it will record. So the request path can run the steps at once, a process manager can
//! run whatever a crash left undone (the step's event is absent from the log), and running a
//! step twice records it once. The steps:
//!
//! - `Debited` (sender's wallet): a credit to the outflow's recipient (if positive) and of the
//!   fee to the treasury (if positive); for `create_vesting` a `Create` to the new schedule,
//!   for `claim_vested` a `Claim` to the schedule, for the council's kinds a `Council` to the
//!   chain's DAO.
//! - `VestingClaimed` (schedule): the vesting account pays the beneficiary (`PaidOut`, keyed by
//!   the claim).
//! - `PaidOut` (module account): a credit to the payee.
//! - `Credited`, `VestingCreated`, `ClaimRefused`, `Funded`, the DAO's events: none.
//!
//! Some events also set timers ([`timers`]): a step that is owed only once the clock reaches
//! a time (a pause's expiry). A timer is durable because the event that sets it is; the step
//! checks, when it runs, that it still applies (a renewed pause outlives its first timer).
//! - `ModulePaused` (DAO): at its end, `ExpirePause` to the DAO.

use std::sync::Arc;

use crate::actions::Action;
use crate::address::Address;
use crate::agent::{self, AgentCommand, AgentEvent};
use crate::codec::WalletFact;
use crate::dao::{self, DaoCommand, DaoEvent};
use crate::hash::Hash32;
use crate::job::{self, JobCommand, JobEvent};
use crate::kinds::Module;
use crate::miner::{self, MarketCommand, MarketEvent, MinerCommand, MinerEvent, Outcome};
use crate::money::Amount;
use crate::proposal::{self, BondRef, GovAct, ProposalEvent, ProposalStep, Support};
use crate::staking::{self, StakingCommand, StakingEvent};
use crate::vesting::{self, VestingCommand, VestingEvent};
use crate::wallet::{self, Credit, Effect, Payout};

/// One step owed by a committed event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowUp {
    /// Credit a wallet.
    Credit {
        /// Chain.
        chain_id: Arc<str>,
        /// Receiving account.
        to: Address,
        /// The credit.
        credit: Credit,
    },
    /// A module account pays out.
    PayOut {
        /// Chain.
        chain_id: Arc<str>,
        /// The paying module account.
        from: Address,
        /// The payout.
        payout: Payout,
    },
    /// A command to a vesting schedule.
    Vesting {
        /// Chain.
        chain_id: Arc<str>,
        /// The schedule.
        id: Hash32,
        /// The command.
        command: VestingCommand,
    },
    /// A command to a chain's DAO.
    Dao {
        /// Chain.
        chain_id: Arc<str>,
        /// The command.
        command: DaoCommand,
    },
    /// A command to a job.
    Job {
        /// Chain.
        chain_id: Arc<str>,
        /// The job.
        id: Hash32,
        /// The command (a `Verify` gets the reference measured by the host).
        command: JobCommand,
    },
    /// A command to a miner.
    Miner {
        /// Chain.
        chain_id: Arc<str>,
        /// The miner.
        miner: Address,
        /// The command.
        command: MinerCommand,
    },
    /// A command to a chain's job and miner index.
    Market {
        /// Chain.
        chain_id: Arc<str>,
        /// The command.
        command: MarketCommand,
    },
    /// A command to an agent.
    Agent {
        /// Chain.
        chain_id: Arc<str>,
        /// The agent.
        agent: Address,
        /// The command.
        command: AgentCommand,
    },
    /// A command to a chain's staking pools (the host measures a staker as a provider).
    Staking {
        /// Chain.
        chain_id: Arc<str>,
        /// The command.
        command: StakingCommand,
    },
    /// A step of a proposal (the host measures what it needs before deciding it).
    Proposal {
        /// Chain.
        chain_id: Arc<str>,
        /// The proposal.
        id: Hash32,
        /// The step.
        step: ProposalStep,
    },
}

impl FollowUp {
    /// Id of the event the step records: its presence in the log means the step is done.
    pub fn event_id(&self) -> u128 {
        match self {
            FollowUp::Credit { credit, .. } => credit.event_id(),
            FollowUp::PayOut { payout, .. } => wallet::payout_event_id(&payout.cause),
            FollowUp::Vesting { id, command, .. } => vesting::command_event_id(id, command),
            FollowUp::Dao { chain_id, command } => dao::command_event_id(chain_id, command),
            FollowUp::Proposal { id, step, .. } => proposal::step_event_id(id, step),
            FollowUp::Agent { command, .. } => agent::tx_event_id(&command.tx),
            FollowUp::Job { id, command, .. } => job::command_event_id(id, command),
            FollowUp::Miner { miner, command, .. } => match command {
                MinerCommand::Outcome { job, outcome } => {
                    miner::outcome_event_id(job, miner, *outcome)
                }
                MinerCommand::Register { at_ms, .. } => miner::register_event_id(miner, *at_ms),
                MinerCommand::Presence { online, at_ms } => {
                    miner::presence_event_id(miner, *online, *at_ms)
                }
            },
            FollowUp::Market { command, .. } => miner::market_event_id(command),
            FollowUp::Staking { chain_id, command } => staking::command_event_id(chain_id, command),
        }
    }
}

/// An event, as far as the protocol needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fact {
    /// A wallet's event.
    Wallet(WalletFact),
    /// A vesting schedule's event.
    Vesting(VestingEvent),
    /// A DAO's event.
    Dao(DaoEvent),
    /// A proposal's event.
    Proposal(ProposalEvent),
    /// An agent's event.
    Agent(AgentEvent),
    /// A job's event.
    Job(JobEvent),
    /// A miner's event.
    Miner(MinerEvent),
    /// The job index's event.
    Market(MarketEvent),
    /// The staking pools' event.
    Staking(StakingEvent),
}

/// Where an event was recorded: a wallet (chain, address) or a vesting schedule (chain, id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// `wallet/<chain>/<address>`.
    Wallet {
        /// Chain.
        chain_id: Arc<str>,
        /// Account.
        address: Address,
    },
    /// `vesting/<chain>/<id>`.
    Vesting {
        /// Chain.
        chain_id: Arc<str>,
        /// Schedule.
        id: Hash32,
    },
    /// `dao/<chain>`.
    Dao {
        /// Chain.
        chain_id: Arc<str>,
    },
    /// `job/<chain>/<id>`.
    Job {
        /// Chain.
        chain_id: Arc<str>,
        /// The job.
        id: Hash32,
    },
    /// `miner/<chain>/<address>`.
    Miner {
        /// Chain.
        chain_id: Arc<str>,
        /// The miner.
        miner: Address,
    },
    /// `jobs/<chain>`.
    Market {
        /// Chain.
        chain_id: Arc<str>,
    },
    /// `staking/<chain>`.
    Staking {
        /// Chain.
        chain_id: Arc<str>,
    },
    /// `agent/<chain>/<address>`.
    Agent {
        /// Chain.
        chain_id: Arc<str>,
        /// The agent.
        agent: Address,
    },
    /// `proposal/<chain>/<id>`.
    Proposal {
        /// Chain.
        chain_id: Arc<str>,
        /// The proposal.
        id: Hash32,
    },
}

/// The owner of a stream; `None` for streams whose events owe no steps (chains).
pub fn stream_owner(stream: &str) -> Option<Owner> {
    let (prefix, rest) = stream.split_once('/')?;
    match prefix {
        "dao" => {
            return Some(Owner::Dao {
                chain_id: Arc::from(rest),
            });
        }
        "jobs" => {
            return Some(Owner::Market {
                chain_id: Arc::from(rest),
            });
        }
        "staking" => {
            return Some(Owner::Staking {
                chain_id: Arc::from(rest),
            });
        }
        _ => {}
    }
    let (chain, id) = rest.split_once('/')?;
    match prefix {
        "wallet" => Some(Owner::Wallet {
            chain_id: Arc::from(chain),
            address: id.parse().ok()?,
        }),
        "vesting" => Some(Owner::Vesting {
            chain_id: Arc::from(chain),
            id: id.parse().ok()?,
        }),
        "job" => Some(Owner::Job {
            chain_id: Arc::from(chain),
            id: id.parse().ok()?,
        }),
        "miner" => Some(Owner::Miner {
            chain_id: Arc::from(chain),
            miner: id.parse().ok()?,
        }),
        "agent" => Some(Owner::Agent {
            chain_id: Arc::from(chain),
            agent: id.parse().ok()?,
        }),
        "proposal" => Some(Owner::Proposal {
            chain_id: Arc::from(chain),
            id: id.parse().ok()?,
        }),
        _ => None,
    }
}

/// A step owed once the clock reaches `due_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timer {
    /// When, Unix milliseconds.
    pub due_ms: u64,
    /// The step.
    pub step: FollowUp,
}

/// The timers `fact`, recorded in `owner`'s stream, sets.
pub fn timers(owner: &Owner, fact: &Fact) -> Vec<Timer> {
    let pause_expiry = |chain_id: &Arc<str>, module: Module, until_ms: u64| Timer {
        due_ms: until_ms,
        step: FollowUp::Dao {
            chain_id: chain_id.clone(),
            command: DaoCommand::ExpirePause { module, until_ms },
        },
    };
    match (owner, fact) {
        (
            Owner::Dao { chain_id },
            Fact::Dao(DaoEvent::ModulePaused {
                module, until_ms, ..
            }),
        ) => vec![pause_expiry(chain_id, *module, *until_ms)],
        (
            Owner::Dao { chain_id },
            Fact::Dao(DaoEvent::Enacted {
                action: Action::Pause { module },
                until_ms: Some(until_ms),
                refused: None,
                ..
            }),
        ) => vec![pause_expiry(chain_id, *module, *until_ms)],
        (Owner::Job { chain_id, id }, Fact::Job(event)) => {
            let timer = |due_ms: u64, command: JobCommand| Timer {
                due_ms,
                step: FollowUp::Job {
                    chain_id: chain_id.clone(),
                    id: *id,
                    command,
                },
            };
            match event {
                JobEvent::Submitted(job) => vec![timer(job.deadline_ms, JobCommand::Expire)],
                JobEvent::Assigned {
                    miner,
                    lease_until_ms,
                } => {
                    let command = JobCommand::LeaseEnd {
                        miner: *miner,
                        lease_until_ms: *lease_until_ms,
                    };
                    vec![timer(*lease_until_ms, command)]
                }
                _ => Vec::new(),
            }
        }
        (Owner::Staking { chain_id }, Fact::Staking(event)) => {
            let settle = |pool_id: &str, epoch: u64, due_ms: u64| Timer {
                due_ms,
                step: FollowUp::Staking {
                    chain_id: chain_id.clone(),
                    command: StakingCommand::Settle {
                        pool_id: pool_id.to_string(),
                        epoch,
                    },
                },
            };
            match event {
                StakingEvent::PoolsOpened { pools, at_ms } => pools
                    .iter()
                    .map(|pool| settle(&pool.id, 0, at_ms + pool.epoch_s * 1000))
                    .collect(),
                StakingEvent::EpochSettled {
                    pool_id,
                    record,
                    next_end_ms,
                } => vec![settle(pool_id, record.epoch + 1, *next_end_ms)],
                StakingEvent::PoolAdded { pool, at_ms, .. } => {
                    vec![settle(&pool.id, 0, at_ms + pool.epoch_s * 1000)]
                }
                _ => Vec::new(),
            }
        }
        (Owner::Proposal { chain_id, id }, Fact::Proposal(event)) => {
            let timer = |due_ms: u64, step: ProposalStep| Timer {
                due_ms,
                step: FollowUp::Proposal {
                    chain_id: chain_id.clone(),
                    id: *id,
                    step,
                },
            };
            match event {
                ProposalEvent::Created(proposal) => {
                    let (starts_ms, ends_ms) = (proposal.voting_starts_ms, proposal.voting_ends_ms);
                    vec![
                        timer(starts_ms, ProposalStep::StartVoting { starts_ms }),
                        timer(ends_ms, ProposalStep::EndVoting { ends_ms }),
                    ]
                }
                ProposalEvent::ChallengeDismissed {
                    voting_starts_ms,
                    voting_ends_ms,
                    ..
                } => {
                    let (starts_ms, ends_ms) = (*voting_starts_ms, *voting_ends_ms);
                    vec![
                        timer(starts_ms, ProposalStep::StartVoting { starts_ms }),
                        timer(ends_ms, ProposalStep::EndVoting { ends_ms }),
                    ]
                }
                ProposalEvent::Challenged { challenge } => vec![timer(
                    challenge.expires_ms,
                    ProposalStep::ExpireChallenge {
                        challenge_tx: challenge.tx,
                    },
                )],
                ProposalEvent::VotingEnded {
                    succeeded: true,
                    deadline_ms,
                    ..
                }
                | ProposalEvent::Queued { deadline_ms, .. } => {
                    let deadline_ms = *deadline_ms;
                    vec![timer(deadline_ms, ProposalStep::Expire { deadline_ms })]
                }
                _ => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

/// A payout from a module account, keyed by `cause` (unique per payout).
fn pay(chain_id: &Arc<str>, from: Address, cause: Hash32, to: Address, amount: Amount) -> FollowUp {
    FollowUp::PayOut {
        chain_id: chain_id.clone(),
        from,
        payout: Payout {
            cause,
            to,
            amount,
            asset: None,
        },
    }
}

/// The cause of a payout that is not a transaction's own: `tag` and what it concerns.
fn cause(tag: &str, subject: &Hash32, index: Option<u32>) -> Hash32 {
    let mut bytes = tag.as_bytes().to_vec();
    bytes.extend_from_slice(&subject.0);
    if let Some(index) = index {
        bytes.extend_from_slice(&index.to_be_bytes());
    }
    Hash32::digest(&bytes)
}

/// What a proposal's event owes: bonds move from the bond account, an executed proposal's
/// actions run, and a created proposal is listed by the DAO.
fn proposal_follow_ups(chain_id: &Arc<str>, id: Hash32, event: &ProposalEvent) -> Vec<FollowUp> {
    let bonds = proposal::bond_account(chain_id);
    let treasury = Address::treasury(chain_id);
    let give_back = |bond: &BondRef, tag: &str| {
        (bond.amount > Amount::ZERO).then(|| {
            pay(
                chain_id,
                bonds,
                cause(tag, &bond.tx, None),
                bond.owner,
                bond.amount,
            )
        })
    };
    let auto_vote = |agent: Address, support: Support| {
        Some(FollowUp::Proposal {
            chain_id: chain_id.clone(),
            id,
            step: ProposalStep::AutoVote { agent, support },
        })
    };
    let steps: Vec<Option<FollowUp>> = match event {
        ProposalEvent::Created(_) => vec![Some(FollowUp::Dao {
            chain_id: chain_id.clone(),
            command: DaoCommand::Track { proposal: id },
        })],
        ProposalEvent::VotingStarted { votes, .. } => votes
            .iter()
            .map(|(agent, support)| auto_vote(*agent, *support))
            .collect(),
        ProposalEvent::VoteCast {
            followed_by,
            support,
            ..
        } => followed_by
            .iter()
            .map(|agent| auto_vote(*agent, *support))
            .collect(),
        ProposalEvent::Refused {
            tx, sender, refund, ..
        } => vec![(*refund > Amount::ZERO).then(|| pay(chain_id, bonds, *tx, *sender, *refund))],
        ProposalEvent::ChallengeUpheld {
            challenge,
            proposer_bond,
            ..
        } => {
            let to_challenger = Amount(proposer_bond.amount.0 / 2);
            let to_treasury = Amount(proposer_bond.amount.0 - to_challenger.0);
            vec![
                give_back(challenge, "challenge-bond-returned"),
                (to_challenger > Amount::ZERO).then(|| {
                    let cause = cause("bond-to-challenger", &id, None);
                    pay(chain_id, bonds, cause, challenge.owner, to_challenger)
                }),
                (to_treasury > Amount::ZERO).then(|| {
                    let cause = cause("bond-to-treasury", &id, None);
                    pay(chain_id, bonds, cause, treasury, to_treasury)
                }),
            ]
        }
        ProposalEvent::ChallengeDismissed { challenge, .. } => {
            vec![(challenge.amount > Amount::ZERO).then(|| {
                let cause = cause("challenge-bond-forfeited", &challenge.tx, None);
                pay(chain_id, bonds, cause, treasury, challenge.amount)
            })]
        }
        ProposalEvent::ChallengeExpired {
            challenge,
            proposer_bond,
        } => vec![
            give_back(challenge, "challenge-bond-returned"),
            give_back(proposer_bond, "proposal-bond-returned"),
        ],
        ProposalEvent::Canceled {
            proposer_bond,
            challenge,
            ..
        } => vec![
            give_back(proposer_bond, "proposal-bond-returned"),
            challenge.and_then(|c| give_back(&c, "challenge-bond-returned")),
        ],
        ProposalEvent::VotingEnded {
            succeeded: false,
            proposer_bond,
            ..
        }
        | ProposalEvent::Expired { proposer_bond, .. } => {
            vec![give_back(proposer_bond, "proposal-bond-returned")]
        }
        ProposalEvent::Executed {
            at_ms,
            actions,
            proposer_bond,
            ..
        } => {
            let mut steps = vec![give_back(proposer_bond, "proposal-bond-returned")];
            for (index, action) in actions.iter().enumerate() {
                let index = index as u32;
                steps.extend(
                    enact(chain_id, id, index, action, *at_ms)
                        .into_iter()
                        .map(Some),
                );
            }
            steps
        }
        _ => Vec::new(),
    };
    steps.into_iter().flatten().collect()
}

/// What a job's event owes: the escrow's payouts (miners, fees, refund), the miners'
/// reputation, the index of open jobs, and the verification once every result is in.
fn job_follow_ups(chain_id: &Arc<str>, id: Hash32, event: &JobEvent) -> Vec<FollowUp> {
    let escrow = job::escrow_account(chain_id);
    let keyed = |tag: &str, miner: Option<&Address>| {
        let mut bytes = id.0.to_vec();
        if let Some(miner) = miner {
            bytes.extend_from_slice(&miner.0);
        }
        cause(tag, &Hash32::digest(&bytes), None)
    };
    let pay_from_escrow = |tag: &str, miner: Option<&Address>, to: Address, amount: Amount| {
        (amount > Amount::ZERO).then(|| pay(chain_id, escrow, keyed(tag, miner), to, amount))
    };
    let outcome = |miner: Address, outcome: Outcome| {
        Some(FollowUp::Miner {
            chain_id: chain_id.clone(),
            miner,
            command: MinerCommand::Outcome { job: id, outcome },
        })
    };
    let staking = |command: StakingCommand| {
        Some(FollowUp::Staking {
            chain_id: chain_id.clone(),
            command,
        })
    };
    let slash = |miner: Address| staking(StakingCommand::Slash { job: id, miner });
    let close = || {
        Some(FollowUp::Market {
            chain_id: chain_id.clone(),
            command: MarketCommand::Close(id),
        })
    };
    let steps: Vec<Option<FollowUp>> = match event {
        JobEvent::Submitted(_) => vec![Some(FollowUp::Market {
            chain_id: chain_id.clone(),
            command: MarketCommand::Open(id),
        })],
        JobEvent::ResultSubmitted {
            complete, result, ..
        } => {
            let receipt = job::receipt_id(&id, result);
            let mut steps = vec![Some(FollowUp::Market {
                chain_id: chain_id.clone(),
                command: MarketCommand::Receipt { receipt, job: id },
            })];
            if *complete {
                steps.push(Some(FollowUp::Job {
                    chain_id: chain_id.clone(),
                    id,
                    command: JobCommand::Verify {
                        reference: None,
                        blob_results: Default::default(),
                        verdicts: Default::default(),
                    },
                }));
            }
            steps
        }
        JobEvent::LeaseExpired {
            miner,
            penalized: true,
            ..
        } => vec![outcome(*miner, Outcome::LeaseExpired)],
        JobEvent::Verified {
            payments,
            disproved,
            owner,
            refund,
            ..
        } => {
            let treasury = Address::treasury(chain_id);
            let mut steps = vec![
                pay_from_escrow("job-refund", None, *owner, *refund),
                close(),
            ];
            for payment in payments {
                let miner = Some(&payment.miner);
                steps.push(pay_from_escrow(
                    "job-paid",
                    miner,
                    payment.miner,
                    payment.paid,
                ));
                steps.push(pay_from_escrow("job-fee", miner, treasury, payment.fee));
                steps.push(outcome(payment.miner, Outcome::Verified));
                steps.push(staking(StakingCommand::Work {
                    job: id,
                    miner: payment.miner,
                    gpu_ms: payment.gpu_ms,
                }));
            }
            steps.extend(disproved.iter().map(|m| outcome(*m, Outcome::Disproved)));
            steps.extend(disproved.iter().map(|m| slash(*m)));
            steps
        }
        JobEvent::Failed {
            disproved,
            owner,
            refund,
        } => {
            let mut steps = vec![
                pay_from_escrow("job-refund", None, *owner, *refund),
                close(),
            ];
            steps.extend(disproved.iter().map(|m| outcome(*m, Outcome::Disproved)));
            steps.extend(disproved.iter().map(|m| slash(*m)));
            steps
        }
        JobEvent::Expired { owner, refund } | JobEvent::Canceled { owner, refund, .. } => {
            vec![
                pay_from_escrow("job-refund", None, *owner, *refund),
                close(),
            ]
        }
        _ => Vec::new(),
    };
    steps.into_iter().flatten().collect()
}

/// The steps that carry out action `index` of executed proposal `id`: a payout from the
/// treasury (into a new vesting schedule when it vests), or the DAO's enactment.
fn enact(
    chain_id: &Arc<str>,
    id: Hash32,
    index: u32,
    action: &Action,
    at_ms: u64,
) -> Vec<FollowUp> {
    let treasury = Address::treasury(chain_id);
    let cause = cause("proposal-action", &id, Some(index));
    let (to, amount, asset, vesting) = match action {
        Action::Pay {
            to,
            amount,
            asset,
            vesting,
        } => (
            *to,
            *amount,
            crate::asset::normalize(asset.as_deref()),
            *vesting,
        ),
        Action::Grant {
            to,
            amount,
            vesting,
        } => (*to, *amount, None, Some(*vesting)),
        Action::CreatePool { pool } => {
            let payout = Payout {
                cause,
                to: staking::staking_account(chain_id),
                amount: pool.budget,
                asset: None,
            };
            return vec![
                FollowUp::PayOut {
                    chain_id: chain_id.clone(),
                    from: treasury,
                    payout,
                },
                FollowUp::Staking {
                    chain_id: chain_id.clone(),
                    command: StakingCommand::AddPool {
                        pool: pool.clone(),
                        at_ms,
                        proposal: id,
                        index,
                    },
                },
            ];
        }
        _ => {
            return vec![FollowUp::Dao {
                chain_id: chain_id.clone(),
                command: DaoCommand::Enact {
                    proposal: id,
                    index,
                    action: action.clone(),
                    at_ms,
                },
            }];
        }
    };
    let Some(terms) = vesting else {
        let payout = Payout {
            cause,
            to,
            amount,
            asset,
        };
        return vec![FollowUp::PayOut {
            chain_id: chain_id.clone(),
            from: treasury,
            payout,
        }];
    };
    let schedule = vesting::Schedule {
        beneficiary: to,
        asset: asset.clone(),
        total: amount,
        start_ms: at_ms,
        cliff_ms: at_ms.saturating_add(terms.cliff_s.saturating_mul(1000)),
        end_ms: at_ms.saturating_add(terms.duration_s.saturating_mul(1000)),
    };
    vec![
        FollowUp::PayOut {
            chain_id: chain_id.clone(),
            from: treasury,
            payout: Payout {
                cause,
                to: vesting::vesting_account(chain_id),
                amount,
                asset,
            },
        },
        FollowUp::Vesting {
            chain_id: chain_id.clone(),
            id: cause,
            command: VestingCommand::Create(schedule),
        },
    ]
}

/// The steps owed by `fact`, recorded in `owner`'s stream.
pub fn follow_ups(owner: &Owner, fact: &Fact) -> Vec<FollowUp> {
    match (owner, fact) {
        (
            Owner::Wallet {
                chain_id,
                address: sender,
            },
            Fact::Wallet(WalletFact::Debited(debit)),
        ) => {
            let mut steps: Vec<FollowUp> = debit
                .credits(*sender)
                .into_iter()
                .map(|(to, credit)| FollowUp::Credit {
                    chain_id: chain_id.clone(),
                    to,
                    credit,
                })
                .collect();
            match debit.effect.as_deref() {
                Some(Effect::CreateVesting(body)) => steps.push(FollowUp::Vesting {
                    chain_id: chain_id.clone(),
                    id: debit.tx_hash,
                    command: VestingCommand::Create(vesting::schedule_of(
                        body,
                        debit.committed_at_ms,
                    )),
                }),
                Some(Effect::ClaimVested { vesting_id }) => steps.push(FollowUp::Vesting {
                    chain_id: chain_id.clone(),
                    id: *vesting_id,
                    command: VestingCommand::Claim {
                        claim_tx: debit.tx_hash,
                        claimant: *sender,
                        committed_at_ms: debit.committed_at_ms,
                    },
                }),
                Some(Effect::Council(act)) => steps.push(FollowUp::Dao {
                    chain_id: chain_id.clone(),
                    command: DaoCommand::Council {
                        tx: debit.tx_hash,
                        member: *sender,
                        act: act.clone(),
                        committed_at_ms: debit.committed_at_ms,
                    },
                }),
                Some(Effect::SubmitJob(request)) => steps.push(FollowUp::Job {
                    chain_id: chain_id.clone(),
                    id: debit.tx_hash,
                    command: JobCommand::Submit {
                        tx: debit.tx_hash,
                        owner: *sender,
                        request: request.clone(),
                        escrow: debit.amount,
                        committed_at_ms: debit.committed_at_ms,
                    },
                }),
                Some(Effect::CancelJob { job_id }) => steps.push(FollowUp::Job {
                    chain_id: chain_id.clone(),
                    id: *job_id,
                    command: JobCommand::Cancel {
                        tx: debit.tx_hash,
                        sender: *sender,
                    },
                }),
                Some(Effect::Staking(act)) => steps.push(FollowUp::Staking {
                    chain_id: chain_id.clone(),
                    command: StakingCommand::Act {
                        tx: debit.tx_hash,
                        sender: *sender,
                        act: act.clone(),
                        amount: debit.amount,
                        committed_at_ms: debit.committed_at_ms,
                        provider: Default::default(),
                    },
                }),
                Some(Effect::Agent { agent, act }) => steps.push(FollowUp::Agent {
                    chain_id: chain_id.clone(),
                    agent: *agent,
                    command: AgentCommand {
                        tx: debit.tx_hash,
                        sender: *sender,
                        act: act.clone(),
                        committed_at_ms: debit.committed_at_ms,
                    },
                }),
                Some(Effect::Governance { proposal, act }) => {
                    let locks = matches!(act, GovAct::Propose(_) | GovAct::Challenge { .. });
                    steps.push(FollowUp::Proposal {
                        chain_id: chain_id.clone(),
                        id: *proposal,
                        step: ProposalStep::Act {
                            tx: debit.tx_hash,
                            sender: *sender,
                            act: act.clone(),
                            bond: if locks { debit.amount } else { Amount::ZERO },
                            committed_at_ms: debit.committed_at_ms,
                        },
                    })
                }
                None => {}
            }
            steps
        }
        (Owner::Proposal { chain_id, id }, Fact::Proposal(event)) => {
            proposal_follow_ups(chain_id, *id, event)
        }
        (Owner::Job { chain_id, id }, Fact::Job(event)) => job_follow_ups(chain_id, *id, event),
        (
            Owner::Miner { chain_id, miner },
            Fact::Miner(MinerEvent::Registered { first: true, .. }),
        ) => vec![FollowUp::Market {
            chain_id: chain_id.clone(),
            command: MarketCommand::Miner(*miner),
        }],
        (
            Owner::Miner { chain_id, miner },
            Fact::Miner(MinerEvent::ReputationChanged {
                job, reputation, ..
            }),
        ) => vec![FollowUp::Staking {
            chain_id: chain_id.clone(),
            command: StakingCommand::Reputation {
                job: *job,
                miner: *miner,
                reputation: *reputation,
            },
        }],
        (Owner::Staking { chain_id }, Fact::Staking(event)) => {
            let (account, treasury) = (
                staking::staking_account(chain_id),
                Address::treasury(chain_id),
            );
            event
                .payments(treasury)
                .into_iter()
                .map(|(tag, subject, payment)| {
                    let cause = cause(tag, &subject, None);
                    pay(chain_id, account, cause, payment.to, payment.amount)
                })
                .collect()
        }
        (Owner::Agent { chain_id, agent }, Fact::Agent(AgentEvent::Registered { .. })) => {
            vec![FollowUp::Dao {
                chain_id: chain_id.clone(),
                command: DaoCommand::TrackAgent { agent: *agent },
            }]
        }
        (
            Owner::Wallet {
                chain_id,
                address: module,
            },
            Fact::Wallet(WalletFact::PaidOut(payout)),
        ) => vec![FollowUp::Credit {
            chain_id: chain_id.clone(),
            to: payout.to,
            credit: payout.credit(*module),
        }],
        (
            Owner::Vesting { chain_id, .. },
            Fact::Vesting(VestingEvent::VestingClaimed {
                claim_tx,
                beneficiary,
                asset,
                amount,
            }),
        ) => vec![FollowUp::PayOut {
            chain_id: chain_id.clone(),
            from: vesting::vesting_account(chain_id),
            payout: Payout {
                cause: *claim_tx,
                to: *beneficiary,
                amount: *amount,
                asset: asset.clone(),
            },
        }],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Amount;
    use crate::vesting::CreateVestingBody;
    use crate::wallet::{CreditKind, DebitSummary};

    const CHAIN: &str = "c";

    fn debit(amount: u128, fee: u128, effect: Option<Effect>) -> Fact {
        Fact::Wallet(WalletFact::Debited(DebitSummary {
            tx_hash: Hash32::digest(b"tx"),
            nonce: 0,
            kind: "k".into(),
            to: Address([2; 20]),
            amount: Amount(amount),
            asset: None,
            minted: false,
            fee: Amount(fee),
            treasury: Address::treasury(CHAIN),
            committed_at_ms: 5_000,
            effect: effect.map(Box::new),
        }))
    }

    fn sender_stream() -> Owner {
        stream_owner(&crate::wallet::wallet_stream(CHAIN, &Address([1; 20]))).unwrap()
    }

    #[test]
    fn a_debit_owes_its_credits_and_only_positive_ones() {
        let steps = follow_ups(&sender_stream(), &debit(7, 1, None));
        assert_eq!(steps.len(), 2);
        let kinds: Vec<CreditKind> = steps
            .iter()
            .map(|s| match s {
                FollowUp::Credit { credit, .. } => credit.kind,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(kinds, [CreditKind::Transfer, CreditKind::Fee]);
        assert!(follow_ups(&sender_stream(), &debit(0, 0, None)).is_empty());
    }

    #[test]
    fn a_vesting_debit_creates_its_schedule_and_a_claim_goes_to_its_schedule() {
        let body = CreateVestingBody {
            beneficiary: Address([3; 20]),
            amount: Amount(7),
            asset: None,
            cliff_s: 1,
            duration_s: 2,
        };
        let steps = follow_ups(
            &sender_stream(),
            &debit(7, 0, Some(Effect::CreateVesting(body))),
        );
        assert!(matches!(
            &steps[1],
            FollowUp::Vesting { id, command: VestingCommand::Create(schedule), .. }
                if *id == Hash32::digest(b"tx") && schedule.start_ms == 5_000 && schedule.end_ms == 7_000
        ));
        let vesting_id = Hash32::digest(b"schedule");
        let steps = follow_ups(
            &sender_stream(),
            &debit(0, 0, Some(Effect::ClaimVested { vesting_id })),
        );
        assert!(matches!(
            &steps[..],
            [FollowUp::Vesting { id, command: VestingCommand::Claim { claimant, committed_at_ms: 5_000, .. }, .. }]
                if *id == vesting_id && *claimant == Address([1; 20])
        ));
    }

    #[test]
    fn a_claim_is_paid_by_the_vesting_account_and_the_payout_credits_the_payee() {
        let claim_tx = Hash32::digest(b"claim");
        let claimed = Fact::Vesting(VestingEvent::VestingClaimed {
            claim_tx,
            beneficiary: Address([3; 20]),
            asset: None,
            amount: Amount(4),
        });
        let stream = stream_owner(&vesting::vesting_stream(
            CHAIN,
            &Hash32::digest(b"schedule"),
        ))
        .unwrap();
        let [FollowUp::PayOut { from, payout, .. }] = &follow_ups(&stream, &claimed)[..] else {
            panic!("one payout")
        };
        assert_eq!(*from, vesting::vesting_account(CHAIN));
        assert_eq!((payout.cause, payout.amount), (claim_tx, Amount(4)));
        let paid = Fact::Wallet(WalletFact::PaidOut(payout.clone()));
        let payer = stream_owner(&crate::wallet::wallet_stream(CHAIN, from)).unwrap();
        let [FollowUp::Credit { to, credit, .. }] = &follow_ups(&payer, &paid)[..] else {
            panic!("one credit")
        };
        assert_eq!(
            (*to, credit.kind, credit.from),
            (Address([3; 20]), CreditKind::Payout, *from)
        );
        let refused = Fact::Vesting(VestingEvent::ClaimRefused {
            claim_tx,
            reason: vesting::Refusal {
                code: "nothing_to_claim".into(),
                message: String::new(),
            },
        });
        assert!(follow_ups(&stream, &refused).is_empty());
        assert_eq!(stream_owner("chain/c"), None, "chain events owe no steps");
    }
}
