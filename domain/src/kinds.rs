//! The transaction kinds, as one table: each kind's name, its module (whose pause stops it), who
//! may send it, the aggregate that decides it after the sender's wallet, and its strict body.
//!
//! Adding a kind means a row here, its body and rules in its domain module, and its routes:
//! nothing else. Bodies are parsed straight from the payload's text into their types, whose
//! fields are all typed structs with `deny_unknown_fields`: an unknown field, a missing one or a
//! key given twice, at any depth, is `malformed`.

use serde::{Deserialize, Serialize};

use crate::actions::ProposeBody;
use crate::address::Address;
use crate::agent::{AgentAct, AgentRef, CallerBody, ConfigureBody, RegisterBody};
use crate::dao::{CouncilAct, CouncilPauseBody, CouncilUnpauseBody};
use crate::error::TxError;
use crate::hash::Hash32;
use crate::job::{CancelJobBody, SubmitJob};
use crate::money::Amount;
use crate::proposal::{ChallengeBody, GovAct, ProposalRef, ResolveBody, VoteBody};
use crate::staking::{AddStakeBody, PositionRef, StakeBody, StakingAct};
use crate::vesting;

/// A module of the platform; a paused module refuses its kinds with `paused`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Module {
    /// Transfers, mints, vesting.
    Transfers,
    /// OpenClawDAO.
    Governance,
    /// GPU staking pools.
    Staking,
    /// GPU jobs and miners.
    Jobs,
    /// Exchange.
    Markets,
}

impl Module {
    /// Every module, in the order `GET /v1/modules` lists them.
    pub const ALL: [Module; 5] = [
        Module::Transfers,
        Module::Governance,
        Module::Staking,
        Module::Jobs,
        Module::Markets,
    ];

    /// Wire name.
    pub fn name(self) -> &'static str {
        match self {
            Module::Transfers => "transfers",
            Module::Governance => "governance",
            Module::Staking => "staking",
            Module::Jobs => "jobs",
            Module::Markets => "markets",
        }
    }
}

/// Who may send a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenderRule {
    /// Any account (it pays the fee and whatever the kind locks).
    AnyAccount,
    /// Only the minter the genesis names for the asset in the body.
    AssetMinter,
    /// Only a member of the chain's council. These kinds are never paused, so that the
    /// council can always undo a pause.
    Council,
}

/// The aggregate that decides a kind once the sender's wallet has taken its nonce and fee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecidedBy {
    /// The sender's wallet alone.
    Wallet,
    /// The vesting schedule named or created by the transaction.
    Vesting,
    /// The chain's DAO.
    Dao,
    /// The proposal named by the body (or created by the transaction).
    Proposal,
    /// The agent named by the body (or, registering, the sender).
    Agent,
    /// The job named by the body (or created by the transaction).
    Job,
    /// The chain's staking pools.
    Staking,
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
pub struct KindSpec {
    /// Wire name (`kind` of the payload).
    pub name: &'static str,
    /// Module whose pause stops it.
    pub module: Module,
    /// Who may send it.
    pub sender: SenderRule,
    /// Which aggregate decides it after the wallet.
    pub decided_by: DecidedBy,
    /// Parses and checks its body (the payload's `body` text).
    pub parse: fn(&str) -> Result<TxAction, TxError>,
}

impl KindSpec {
    /// The module whose pause stops this kind (`None`: never paused).
    pub fn paused_by(&self) -> Option<Module> {
        (self.sender != SenderRule::Council).then_some(self.module)
    }
}

/// A row of a kind a proposal decides: `$parse` gives the proposal the body names (none for
/// `propose`, whose proposal is the transaction itself) and the act.
macro_rules! governance {
    ($name:literal, $parse:expr) => {
        KindSpec {
            name: $name,
            module: Module::Governance,
            sender: SenderRule::AnyAccount,
            decided_by: DecidedBy::Proposal,
            parse: |body| {
                let parse: fn(&str) -> Result<(Option<Hash32>, GovAct), TxError> = $parse;
                let (proposal, act) = parse(body)?;
                Ok(TxAction::Governance { proposal, act })
            },
        }
    };
}

/// A row of a kind an agent decides: `$parse` gives the agent the body names (none for
/// `register_agent`, whose agent is the sender) and the act.
macro_rules! staking {
    ($name:literal, $parse:expr) => {
        KindSpec {
            name: $name,
            module: Module::Staking,
            sender: SenderRule::AnyAccount,
            decided_by: DecidedBy::Staking,
            parse: |body| {
                let parse: fn(&str) -> Result<StakingAct, TxError> = $parse;
                Ok(TxAction::Staking(parse(body)?))
            },
        }
    };
}

macro_rules! agent {
    ($name:literal, $parse:expr) => {
        KindSpec {
            name: $name,
            module: Module::Governance,
            sender: SenderRule::AnyAccount,
            decided_by: DecidedBy::Agent,
            parse: |body| {
                let parse: fn(&str) -> Result<(Option<Address>, AgentAct), TxError> = $parse;
                let (agent, act) = parse(body)?;
                Ok(TxAction::Agent { agent, act })
            },
        }
    };
}

/// Longest payload of most kinds, bytes: their bodies hold a few ids, amounts and short texts
/// (a 512-byte reason escaped six times over still fits), so a longer payload is padding.
pub const PAYLOAD_LEN_MAX_DEFAULT: usize = 4 * 1024;

/// Longest payload of `kind`, bytes: [`PAYLOAD_LEN_MAX_DEFAULT`], but the whole envelope limit
/// for the kinds whose bodies hold long texts or data (a proposal's description and actions, a
/// job's inline input or shader).
pub fn payload_len_max(kind: &str) -> usize {
    match kind {
        "propose" | "submit_job" => crate::limits::PAYLOAD_LEN_MAX,
        _ => PAYLOAD_LEN_MAX_DEFAULT,
    }
}

/// Every kind this node executes.
pub const KINDS: &[KindSpec] = &[
    KindSpec {
        name: "transfer",
        module: Module::Transfers,
        sender: SenderRule::AnyAccount,
        decided_by: DecidedBy::Wallet,
        parse: |body| {
            let body: TransferBody = strict(body)?;
            positive(body.amount, "transfer amount")?;
            Ok(TxAction::Transfer(body))
        },
    },
    KindSpec {
        name: "mint",
        module: Module::Transfers,
        sender: SenderRule::AssetMinter,
        decided_by: DecidedBy::Wallet,
        parse: |body| {
            let body: MintBody = strict(body)?;
            positive(body.amount, "mint amount")?;
            Ok(TxAction::Mint(body))
        },
    },
    KindSpec {
        name: "create_vesting",
        module: Module::Transfers,
        sender: SenderRule::AnyAccount,
        decided_by: DecidedBy::Vesting,
        parse: |body| {
            let body: vesting::CreateVestingBody = strict(body)?;
            body.validate()?;
            Ok(TxAction::CreateVesting(body))
        },
    },
    KindSpec {
        name: "claim_vested",
        module: Module::Transfers,
        sender: SenderRule::AnyAccount,
        decided_by: DecidedBy::Vesting,
        parse: |body| Ok(TxAction::ClaimVested(strict(body)?)),
    },
    KindSpec {
        name: "council_pause",
        module: Module::Governance,
        sender: SenderRule::Council,
        decided_by: DecidedBy::Dao,
        parse: |body| {
            let body: CouncilPauseBody = strict(body)?;
            body.validate()?;
            Ok(TxAction::Council(CouncilAct::Pause {
                module: body.module,
                reason: body.reason,
            }))
        },
    },
    KindSpec {
        name: "council_unpause",
        module: Module::Governance,
        sender: SenderRule::Council,
        decided_by: DecidedBy::Dao,
        parse: |body| {
            let body: CouncilUnpauseBody = strict(body)?;
            Ok(TxAction::Council(CouncilAct::Unpause {
                module: body.module,
            }))
        },
    },
    governance!("propose", |body| {
        let body: ProposeBody = strict(body)?;
        body.validate_shape()?;
        Ok((None, GovAct::Propose(body)))
    }),
    governance!("vote", |body| {
        let body: VoteBody = strict(body)?;
        Ok((Some(body.proposal_id), GovAct::Vote(body.support)))
    }),
    governance!("cancel_proposal", |body| {
        let body: ProposalRef = strict(body)?;
        Ok((Some(body.proposal_id), GovAct::Cancel))
    }),
    governance!("council_approve", |body| {
        let body: ProposalRef = strict(body)?;
        Ok((Some(body.proposal_id), GovAct::Approve))
    }),
    governance!("challenge", |body| {
        let body: ChallengeBody = strict(body)?;
        body.validate()?;
        let act = GovAct::Challenge {
            reason: body.reason,
        };
        Ok((Some(body.proposal_id), act))
    }),
    governance!("resolve_challenge", |body| {
        let body: ResolveBody = strict(body)?;
        let act = GovAct::Resolve {
            uphold: body.uphold,
        };
        Ok((Some(body.proposal_id), act))
    }),
    governance!("queue", |body| {
        let body: ProposalRef = strict(body)?;
        Ok((Some(body.proposal_id), GovAct::Queue))
    }),
    governance!("execute", |body| {
        let body: ProposalRef = strict(body)?;
        Ok((Some(body.proposal_id), GovAct::Execute))
    }),
    KindSpec {
        name: "submit_job",
        module: Module::Jobs,
        sender: SenderRule::AnyAccount,
        decided_by: DecidedBy::Job,
        parse: |body| Ok(TxAction::SubmitJob(Box::new(SubmitJob::parse(body)?))),
    },
    KindSpec {
        name: "cancel_job",
        module: Module::Jobs,
        sender: SenderRule::AnyAccount,
        decided_by: DecidedBy::Job,
        parse: |body| {
            let body: CancelJobBody = strict(body)?;
            Ok(TxAction::CancelJob(body.job_id))
        },
    },
    staking!("stake", |body| {
        let body: StakeBody = strict(body)?;
        positive(body.amount, "stake amount")?;
        Ok(StakingAct::Stake(body))
    }),
    staking!("add_stake", |body| {
        let body: AddStakeBody = strict(body)?;
        positive(body.amount, "added amount")?;
        Ok(StakingAct::AddStake(body))
    }),
    staking!("claim_rewards", |body| Ok(StakingAct::Claim(
        strict::<PositionRef>(body)?.position_id
    ))),
    staking!("unstake", |body| Ok(StakingAct::Unstake(
        strict::<PositionRef>(body)?.position_id
    ))),
    staking!("early_exit", |body| Ok(StakingAct::EarlyExit(
        strict::<PositionRef>(body)?.position_id
    ))),
    agent!("register_agent", |body| {
        let body: RegisterBody = strict(body)?;
        let act = AgentAct::Register {
            role: body.role,
            owner: body.owner,
        };
        Ok((None, act))
    }),
    agent!("configure_agent", |body| {
        let body: ConfigureBody = strict(body)?;
        body.strategy.validate()?;
        let act = AgentAct::Configure {
            strategy: body.strategy,
            auto_vote: body.auto_vote,
        };
        Ok((Some(body.agent), act))
    }),
    agent!("add_caller", |body| {
        let body: CallerBody = strict(body)?;
        let public_key = body.key()?;
        Ok((Some(body.agent), AgentAct::AddCaller { public_key }))
    }),
    agent!("remove_caller", |body| {
        let body: CallerBody = strict(body)?;
        let public_key = body.key()?;
        Ok((Some(body.agent), AgentAct::RemoveCaller { public_key }))
    }),
    agent!("agent_stop", |body| {
        let body: AgentRef = strict(body)?;
        Ok((Some(body.agent), AgentAct::Stop))
    }),
    agent!("agent_reactivate", |body| {
        let body: AgentRef = strict(body)?;
        Ok((Some(body.agent), AgentAct::Reactivate))
    }),
];

/// The row of `kind`.
pub fn spec(kind: &str) -> Result<&'static KindSpec, TxError> {
    KINDS
        .iter()
        .find(|k| k.name == kind)
        .ok_or_else(|| TxError::UnsupportedKind(kind.to_string()))
}

fn strict<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, TxError> {
    serde_json::from_str(body).map_err(|e| TxError::Malformed(format!("body: {e}")))
}

fn positive(amount: Amount, what: &str) -> Result<(), TxError> {
    if amount == Amount::ZERO {
        return Err(TxError::Malformed(format!("{what} must be positive")));
    }
    Ok(())
}

/// Body of a `transfer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// Recipient.
    pub to: Address,
    /// Amount in base units; must be positive.
    pub amount: Amount,
    /// Asset symbol; the native one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
}

/// Body of a `mint`: new units of a declared asset, by its minter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintBody {
    /// Recipient.
    pub to: Address,
    /// A declared asset whose minter is the sender.
    pub asset: String,
    /// Amount in base units; must be positive.
    pub amount: Amount,
}

/// Body of a `claim_vested`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimVestedBody {
    /// The schedule: the hash of the `create_vesting` that made it.
    pub vesting_id: Hash32,
}

/// What a verified transaction asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxAction {
    /// Move `amount` of an asset to `to`.
    Transfer(TransferBody),
    /// Create new units of a declared asset.
    Mint(MintBody),
    /// Lock the sender's tokens in a vesting schedule for a beneficiary.
    CreateVesting(vesting::CreateVestingBody),
    /// Take what has vested.
    ClaimVested(ClaimVestedBody),
    /// A council member's approval of a pause or an unpause.
    Council(CouncilAct),
    /// Pay for a GPU job (escrowed).
    SubmitJob(Box<SubmitJob>),
    /// Cancel a queued job.
    CancelJob(Hash32),
    /// A staking act.
    Staking(StakingAct),
    /// An agent's registration or its owner's management of it.
    Agent {
        /// The agent the body names (`None`: the sender registers itself).
        agent: Option<Address>,
        /// The act.
        act: AgentAct,
    },
    /// A governance act on a proposal.
    Governance {
        /// The proposal the body names (`None`: the transaction creates it).
        proposal: Option<Hash32>,
        /// The act.
        act: GovAct,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_row() {
        assert!(
            KINDS
                .iter()
                .all(|k| k.name.len() <= crate::limits::KIND_LEN_MAX && !k.name.contains('\0')),
            "kind names fit a block leaf"
        );
        let mut names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KINDS.len());
        assert_eq!(spec("transfer").unwrap().decided_by, DecidedBy::Wallet);
        assert_eq!(spec("claim_vested").unwrap().decided_by, DecidedBy::Vesting);
        assert_eq!(spec("mint").unwrap().sender, SenderRule::AssetMinter);
        assert_eq!(spec("nope").unwrap_err().code(), "unsupported_kind");
        assert_eq!(
            spec("transfer").unwrap().paused_by(),
            Some(Module::Transfers)
        );
        assert_eq!(
            spec("council_unpause").unwrap().paused_by(),
            None,
            "a pause can be undone"
        );
        let unpause = (spec("council_unpause").unwrap().parse)(r#"{"module":"jobs"}"#).unwrap();
        assert_eq!(
            unpause,
            TxAction::Council(CouncilAct::Unpause {
                module: Module::Jobs
            })
        );
        assert!(
            (spec("council_pause").unwrap().parse)(r#"{"module":"moon","reason":""}"#).is_err()
        );
    }

    #[test]
    fn bodies_refuse_duplicate_and_unknown_keys_at_every_depth() {
        let to = Address([2; 20]);
        let parse = |kind: &str, body: String| (spec(kind).unwrap().parse)(&body);
        assert!(parse("transfer", format!(r#"{{"to":"{to}","amount":"5"}}"#)).is_ok());
        for body in [
            format!(r#"{{"to":"{to}","amount":"5","amount":"6"}}"#),
            format!(r#"{{"to":"{to}","amount":"5","memo":"x"}}"#),
            format!(r#"{{"to":"{to}","amount":"0"}}"#),
            format!(r#"{{"to":"{to}","amount":5}}"#),
            format!(r#"{{"to":"{to}"}}"#),
        ] {
            assert_eq!(
                parse("transfer", body.clone()).unwrap_err().code(),
                "malformed",
                "{body}"
            );
        }
        let id = Hash32::digest(b"v");
        assert!(parse("claim_vested", format!(r#"{{"vesting_id":"{id}"}}"#)).is_ok());
        assert_eq!(
            parse(
                "claim_vested",
                format!(r#"{{"vesting_id":"{id}","vesting_id":"{id}"}}"#)
            )
            .unwrap_err()
            .code(),
            "malformed"
        );
    }
}
