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
//!   for `claim_vested` a `Claim` to the schedule.
//! - `VestingClaimed` (schedule): the vesting account pays the beneficiary (`PaidOut`, keyed by
//!   the claim).
//! - `PaidOut` (module account): a credit to the payee.
//! - `Credited`, `VestingCreated`, `ClaimRefused`, `Funded`: none.

use std::sync::Arc;

use crate::address::Address;
use crate::codec::WalletFact;
use crate::hash::Hash32;
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
}

impl FollowUp {
    /// Id of the event the step records: its presence in the log means the step is done.
    pub fn event_id(&self) -> u128 {
        match self {
            FollowUp::Credit { credit, .. } => credit.event_id(),
            FollowUp::PayOut { payout, .. } => wallet::payout_event_id(&payout.cause),
            FollowUp::Vesting { id, command, .. } => vesting::command_event_id(id, command),
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
}

/// Where a stream belongs: a wallet (chain, address) or a vesting schedule (chain, id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamOwner<'a> {
    /// `wallet/<chain>/<address>`.
    Wallet(&'a str, Address),
    /// `vesting/<chain>/<id>`.
    Vesting(&'a str, Hash32),
}

/// Parses a stream name; `None` for streams without follow-ups (chains).
pub fn stream_owner(stream: &str) -> Option<StreamOwner<'_>> {
    let (prefix, rest) = stream.split_once('/')?;
    let (chain, id) = rest.split_once('/')?;
    match prefix {
        "wallet" => Some(StreamOwner::Wallet(chain, id.parse().ok()?)),
        "vesting" => Some(StreamOwner::Vesting(chain, id.parse().ok()?)),
        _ => None,
    }
}

/// The steps owed by `fact`, recorded in `stream`.
pub fn follow_ups(stream: &str, fact: &Fact) -> Vec<FollowUp> {
    let Some(owner) = stream_owner(stream) else {
        return Vec::new();
    };
    match (owner, fact) {
        (StreamOwner::Wallet(chain, sender), Fact::Wallet(WalletFact::Debited(debit))) => {
            let chain_id: Arc<str> = Arc::from(chain);
            let mut steps: Vec<FollowUp> = debit
                .credits(sender)
                .into_iter()
                .map(|(to, credit)| FollowUp::Credit {
                    chain_id: chain_id.clone(),
                    to,
                    credit,
                })
                .collect();
            match debit.effect.as_deref() {
                Some(Effect::CreateVesting(body)) => steps.push(FollowUp::Vesting {
                    chain_id,
                    id: debit.tx_hash,
                    command: VestingCommand::Create(vesting::schedule_of(
                        body,
                        debit.committed_at_ms,
                    )),
                }),
                Some(Effect::ClaimVested { vesting_id }) => steps.push(FollowUp::Vesting {
                    chain_id,
                    id: *vesting_id,
                    command: VestingCommand::Claim {
                        claim_tx: debit.tx_hash,
                        claimant: sender,
                        committed_at_ms: debit.committed_at_ms,
                    },
                }),
                None => {}
            }
            steps
        }
        (StreamOwner::Wallet(chain, module), Fact::Wallet(WalletFact::PaidOut(payout))) => {
            vec![FollowUp::Credit {
                chain_id: Arc::from(chain),
                to: payout.to,
                credit: payout.credit(module),
            }]
        }
        (
            StreamOwner::Vesting(chain, _),
            Fact::Vesting(VestingEvent::VestingClaimed {
                claim_tx,
                beneficiary,
                asset,
                amount,
            }),
        ) => vec![FollowUp::PayOut {
            chain_id: Arc::from(chain),
            from: vesting::vesting_account(chain),
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
