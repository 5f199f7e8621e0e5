//! Runs the cross-aggregate protocol's steps ([`domain::protocol`]) on the aggregates' actors.
//!
//! The request path calls [`Router::complete`] right after a transaction's debit is durable: it
//! runs every step the debit owes, then the steps those steps owe, until none is left, so the
//! answer can say the whole transaction is applied (or, if a module refused it, that it was
//! refused) and every read after it sees the effect. The process manager calls
//! [`Router::execute`] for a single step a crash left undone.

use std::sync::Arc;

use domain::codec::DomainEvent;
use domain::dao::{Dao, DaoEvent};
use domain::kinds::{self, TxAction};
use domain::protocol::{Fact, FollowUp, Owner, follow_ups};
use domain::tx::VerifiedTx;
use domain::vesting::{Refusal, Vesting, VestingEvent, VestingId};
use domain::wallet::{WalletCommand, WalletEvent, WalletId};
use store::EventStore;

use crate::aggregate::Applied;
use crate::dao::PauseBoard;
use crate::error::CommandError;
use crate::registry::Registry;
use crate::wallet::{Committed, WalletRegistry};

/// An event a step recorded (or found already recorded).
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Whose stream it is in.
    pub owner: Owner,
    /// The event.
    pub event: DomainEvent,
    /// Its log position.
    pub position: u64,
}

impl From<Committed> for Recorded {
    /// A transaction's debit, as the protocol replays it.
    fn from(committed: Committed) -> Self {
        Recorded {
            owner: Owner::Wallet {
                chain_id: committed.chain_id,
                address: committed.sender,
            },
            event: DomainEvent::Wallet(WalletEvent::Debited(*committed.debit)),
            position: committed.position,
        }
    }
}

/// How a transaction ended once every step ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The highest log position any step wrote or found.
    pub last_position: u64,
    /// Set when a module refused the committed transaction.
    pub refused: Option<Refusal>,
}

/// The aggregates' registries, by what the protocol's steps address.
#[derive(Clone)]
pub struct Router {
    wallets: WalletRegistry,
    vesting: Registry<Vesting>,
    dao: Registry<Dao>,
    pauses: PauseBoard,
}

/// What a step's command recorded in `owner`'s stream, as stored events.
fn recorded<E>(owner: Owner, applied: Applied<E>, stored: fn(E) -> DomainEvent) -> Vec<Recorded> {
    applied
        .events
        .into_iter()
        .map(|(event, position)| Recorded {
            owner: owner.clone(),
            event: stored(event),
            position,
        })
        .collect()
}

/// The protocol's view of a stored event.
pub fn fact_of(event: &DomainEvent) -> Option<Fact> {
    use domain::codec::WalletFact;
    match event {
        DomainEvent::Wallet(WalletEvent::Debited(debit)) => {
            Some(Fact::Wallet(WalletFact::Debited(debit.summary())))
        }
        DomainEvent::Wallet(WalletEvent::PaidOut(payout)) => {
            Some(Fact::Wallet(WalletFact::PaidOut(payout.clone())))
        }
        DomainEvent::Wallet(WalletEvent::Credited(credit)) => {
            Some(Fact::Wallet(WalletFact::Credited(credit.clone())))
        }
        DomainEvent::Vesting(event) => Some(Fact::Vesting(event.clone())),
        DomainEvent::Dao(event) => Some(Fact::Dao(event.clone())),
        DomainEvent::Wallet(WalletEvent::Funded { .. }) | DomainEvent::Chain(_) => None,
    }
}

impl Router {
    /// A router over the node's registries; `pauses` is the board the DAO registry publishes
    /// to (see [`crate::dao::publish_to`]).
    pub fn new(
        wallets: WalletRegistry,
        vesting: Registry<Vesting>,
        dao: Registry<Dao>,
        pauses: PauseBoard,
    ) -> Self {
        Router {
            wallets,
            vesting,
            dao,
            pauses,
        }
    }

    /// The chains' DAOs.
    pub fn dao(&self) -> &Registry<Dao> {
        &self.dao
    }

    /// The modules' pause state.
    pub fn pauses(&self) -> &PauseBoard {
        &self.pauses
    }

    /// `paused` when `kind`'s module is paused on `chain_id` now. Every path that writes a
    /// transaction (signed, faucet, custodial) asks this first.
    pub fn check_paused(&self, chain_id: &str, kind: &str) -> Result<(), CommandError> {
        let spec = kinds::spec(kind)?;
        let now_ms = self.wallets.registry().clock().now_ms();
        Ok(self.pauses.check(chain_id, spec, now_ms)?)
    }

    /// The wallets.
    pub fn wallets(&self) -> &WalletRegistry {
        &self.wallets
    }

    /// The vesting schedules.
    pub fn vesting(&self) -> &Registry<Vesting> {
        &self.vesting
    }

    /// The event log.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        self.wallets.registry().store()
    }

    /// The checks a transaction's module makes before anything is written, so that one that
    /// would be refused is answered with its error and changes nothing (its nonce included).
    /// A race can still make it fail after it commits: then it is recorded as refused.
    pub async fn precheck(&self, tx: &VerifiedTx) -> Result<(), CommandError> {
        self.check_paused(&tx.payload.chain_id, &tx.payload.kind)?;
        match &tx.action {
            TxAction::ClaimVested(body) => {
                let id = VestingId {
                    chain_id: tx.payload.chain_id.clone(),
                    id: body.vesting_id,
                };
                let state = self.vesting.state(id).await?;
                let now_ms = self.vesting.clock().now_ms();
                state.claimable(&tx.payload.sender, now_ms)?;
                Ok(())
            }
            TxAction::Council(act) => {
                let chain_id = tx.payload.chain_id.clone();
                let params = self.dao.facts(&chain_id)?;
                let now_ms = self.dao.clock().now_ms();
                let state = self.dao.state(chain_id).await?;
                state.check(&params, &tx.payload.sender, act, now_ms)?;
                Ok(())
            }
            TxAction::Transfer(_) | TxAction::Mint(_) | TxAction::CreateVesting(_) => Ok(()),
        }
    }

    /// Runs one step; returns what it recorded (or found recorded).
    pub async fn execute(&self, step: FollowUp) -> Result<Vec<Recorded>, CommandError> {
        match step {
            FollowUp::Credit {
                chain_id,
                to,
                credit,
            } => {
                self.wallet_step(chain_id, to, WalletCommand::Credit(credit))
                    .await
            }
            FollowUp::PayOut {
                chain_id,
                from,
                payout,
            } => {
                self.wallet_step(chain_id, from, WalletCommand::PayOut(payout))
                    .await
            }
            FollowUp::Vesting {
                chain_id,
                id,
                command,
            } => {
                let owner = Owner::Vesting {
                    chain_id: chain_id.clone(),
                    id,
                };
                let vesting_id = VestingId {
                    chain_id: chain_id.to_string(),
                    id,
                };
                let applied = self.vesting.execute(vesting_id, command).await?;
                Ok(recorded(owner, applied, DomainEvent::Vesting))
            }
            FollowUp::Dao { chain_id, command } => {
                let owner = Owner::Dao {
                    chain_id: chain_id.clone(),
                };
                let applied = self.dao.execute(chain_id.to_string(), command).await?;
                Ok(recorded(owner, applied, DomainEvent::Dao))
            }
        }
    }

    async fn wallet_step(
        &self,
        chain_id: Arc<str>,
        address: domain::address::Address,
        command: WalletCommand,
    ) -> Result<Vec<Recorded>, CommandError> {
        let owner = Owner::Wallet {
            chain_id: chain_id.clone(),
            address,
        };
        let id = WalletId { chain_id, address };
        let applied = self.wallets.registry().execute(id, command).await?;
        Ok(recorded(owner, applied, DomainEvent::Wallet))
    }

    /// Runs every step `first` owes, and the steps those owe, until none is left. Steps of one
    /// round run concurrently.
    pub async fn complete(&self, first: Recorded) -> Result<Completion, CommandError> {
        let position = first.position;
        self.complete_all(vec![first], position).await
    }

    /// Runs `step`, then every step what it recorded owes, until none is left.
    pub async fn run_to_end(&self, step: FollowUp) -> Result<Completion, CommandError> {
        let recorded = self.execute(step).await?;
        let position = recorded.iter().map(|r| r.position).max().unwrap_or(0);
        self.complete_all(recorded, position).await
    }

    async fn complete_all(
        &self,
        mut round: Vec<Recorded>,
        position: u64,
    ) -> Result<Completion, CommandError> {
        let mut completion = Completion {
            last_position: position,
            refused: None,
        };
        while !round.is_empty() {
            for recorded in &round {
                completion.last_position = completion.last_position.max(recorded.position);
                match &recorded.event {
                    DomainEvent::Vesting(VestingEvent::ClaimRefused { reason, .. })
                    | DomainEvent::Dao(DaoEvent::CouncilActRefused { reason, .. }) => {
                        completion.refused = Some(reason.clone());
                    }
                    _ => {}
                }
            }
            let steps: Vec<FollowUp> = round
                .iter()
                .filter_map(|r| fact_of(&r.event).map(|fact| follow_ups(&r.owner, &fact)))
                .flatten()
                .collect();
            let results =
                futures::future::try_join_all(steps.into_iter().map(|s| self.execute(s))).await?;
            round = results.into_iter().flatten().collect();
        }
        Ok(completion)
    }
}
