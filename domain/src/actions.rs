//! What a proposal does when executed (PRODUCT.md §3): typed actions, each proposal type taking
//! only its own, validated when the proposal is created and again when it is executed, and
//! bound by the hash of their canonical form.
//!
//! The canonical form is the JSON serde writes for the typed list (fields in declaration
//! order, no whitespace), so the hash does not depend on how the proposer spelled the body.
//! Execution re-checks everything that can have changed since creation (a parameter's range
//! against the parameters then in force, the treasury's funds); the proposal's stored actions
//! are the only ones that can run, and only if their hash still matches.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::dao::{COUNCIL_MAX, GovernanceParams};
use crate::error::TxError;
use crate::hash::Hash32;
use crate::kinds::Module;
use crate::money::Amount;
use crate::staking::PoolSpec;

/// Most actions one proposal carries.
pub const ACTIONS_MAX: usize = 16;
/// Longest proposal title, in bytes.
pub const TITLE_LEN_MAX: usize = 200;
/// Longest proposal description, in bytes.
pub const DESCRIPTION_LEN_MAX: usize = 8_192;
/// Longest vesting of a payout or grant: 10 years.
pub const VESTING_S_MAX: u64 = 10 * 365 * 24 * 3600;

/// The six proposal types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalType {
    /// Governance parameters within their ranges.
    ParameterChange,
    /// Protocol version and council membership; needs council approval.
    ProtocolUpgrade,
    /// Payouts from the treasury, optionally vested.
    Treasury,
    /// Pause/unpause modules, freeze/unfreeze accounts; council approval, no delay, no timelock.
    Emergency,
    /// Agents' trading permissions and risk limits.
    AgentTrading,
    /// Grants that vest.
    DaoGrants,
}

impl ProposalType {
    /// Every type, in wire order.
    pub const ALL: [ProposalType; 6] = [
        ProposalType::ParameterChange,
        ProposalType::ProtocolUpgrade,
        ProposalType::Treasury,
        ProposalType::Emergency,
        ProposalType::AgentTrading,
        ProposalType::DaoGrants,
    ];

    /// Wire name.
    pub fn name(self) -> &'static str {
        match self {
            ProposalType::ParameterChange => "parameter_change",
            ProposalType::ProtocolUpgrade => "protocol_upgrade",
            ProposalType::Treasury => "treasury",
            ProposalType::Emergency => "emergency",
            ProposalType::AgentTrading => "agent_trading",
            ProposalType::DaoGrants => "dao_grants",
        }
    }

    /// Whether `council_threshold` council approvals are needed before it may be queued.
    pub fn needs_council(self) -> bool {
        matches!(
            self,
            ProposalType::ProtocolUpgrade | ProposalType::Emergency
        )
    }

    /// Whether it skips the voting delay and the timelock and votes for
    /// `emergency_voting_period_s`.
    pub fn is_emergency(self) -> bool {
        self == ProposalType::Emergency
    }
}

/// A linear vesting schedule starting at execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VestingTerms {
    /// Nothing vests before execution + `cliff_s`.
    pub cliff_s: u64,
    /// Everything has vested at execution + `duration_s`.
    pub duration_s: u64,
}

/// One action of a proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Set a governance parameter (names and ranges at `GET /v1/governance/params`).
    SetParameter {
        /// Parameter name.
        name: String,
        /// New value: a number for `_s` and `_bps`, a string of base units for amounts.
        value: serde_json::Value,
    },
    /// Pay from the treasury.
    Pay {
        /// Payee.
        to: Address,
        /// Base units; positive.
        amount: Amount,
        /// Asset; the native one when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        asset: Option<String>,
        /// Vest the payout instead of paying it at once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vesting: Option<VestingTerms>,
    },
    /// A grant from the treasury that vests.
    Grant {
        /// Grantee.
        to: Address,
        /// Base units (native); positive.
        amount: Amount,
        /// The schedule.
        vesting: VestingTerms,
    },
    /// Pause a module for `pause_expiry_s`.
    Pause {
        /// The module.
        module: Module,
    },
    /// Resume a module.
    Unpause {
        /// The module.
        module: Module,
    },
    /// Refuse every transaction an account sends.
    Freeze {
        /// The account.
        address: Address,
    },
    /// Lift a freeze.
    Unfreeze {
        /// The account.
        address: Address,
    },
    /// An agent's trading permissions and risk limits (used by the markets module).
    SetAgentLimits {
        /// The agent.
        agent: Address,
        /// Whether it may trade at all.
        trading_enabled: bool,
        /// Largest position, base units.
        max_position: Amount,
        /// Largest order, base units.
        max_order: Amount,
        /// Largest loss in a day, base units.
        daily_loss: Amount,
    },
    /// The protocol version.
    SetProtocolVersion {
        /// New version; greater than the current one.
        version: u32,
    },
    /// The council.
    SetCouncil {
        /// Members, distinct.
        members: Vec<Address>,
        /// Approvals needed, 1..=members.
        threshold: usize,
    },
    /// A new GPU staking pool, its budget paid from the treasury into the staking account.
    CreatePool {
        /// The pool (as a genesis declares one).
        pool: PoolSpec,
    },
}

impl Action {
    /// Wire name.
    pub fn name(&self) -> &'static str {
        match self {
            Action::SetParameter { .. } => "set_parameter",
            Action::Pay { .. } => "pay",
            Action::Grant { .. } => "grant",
            Action::Pause { .. } => "pause",
            Action::Unpause { .. } => "unpause",
            Action::Freeze { .. } => "freeze",
            Action::Unfreeze { .. } => "unfreeze",
            Action::SetAgentLimits { .. } => "set_agent_limits",
            Action::SetProtocolVersion { .. } => "set_protocol_version",
            Action::SetCouncil { .. } => "set_council",
            Action::CreatePool { .. } => "create_pool",
        }
    }

    /// The proposal type that may carry it.
    pub fn proposal_type(&self) -> ProposalType {
        match self {
            Action::SetParameter { .. } => ProposalType::ParameterChange,
            Action::Pay { .. } | Action::CreatePool { .. } => ProposalType::Treasury,
            Action::Grant { .. } => ProposalType::DaoGrants,
            Action::Pause { .. }
            | Action::Unpause { .. }
            | Action::Freeze { .. }
            | Action::Unfreeze { .. } => ProposalType::Emergency,
            Action::SetAgentLimits { .. } => ProposalType::AgentTrading,
            Action::SetProtocolVersion { .. } | Action::SetCouncil { .. } => {
                ProposalType::ProtocolUpgrade
            }
        }
    }

    /// What it takes from the treasury: (asset, amount), `None` asset being the native one.
    pub fn treasury_outflow(&self) -> Option<(Option<String>, Amount)> {
        match self {
            Action::Pay { amount, asset, .. } => {
                Some((crate::asset::normalize(asset.as_deref()), *amount))
            }
            Action::Grant { amount, .. } => Some((None, *amount)),
            Action::CreatePool { pool } => Some((None, pool.budget)),
            _ => None,
        }
    }

    /// The stateless checks: amounts positive, vesting in range, a council well formed, a
    /// parameter's name known and its value in range (against `params`, the parameters then in
    /// force: ranges that depend on other parameters are checked on the whole).
    pub fn validate(&self, params: &GovernanceParams) -> Result<(), TxError> {
        let bad = |message: String| Err(TxError::BadAction(message));
        match self {
            Action::SetParameter { name, value } => {
                params.with(name, value).map_err(TxError::BadAction)?;
            }
            Action::Pay {
                amount, vesting, ..
            } => {
                positive(*amount)?;
                if let Some(terms) = vesting {
                    terms.validate()?;
                }
            }
            Action::Grant {
                amount, vesting, ..
            } => {
                positive(*amount)?;
                vesting.validate()?;
            }
            Action::SetProtocolVersion { version } => {
                if *version == 0 {
                    return bad("a protocol version is at least 1".into());
                }
            }
            Action::SetCouncil { members, threshold } => {
                let candidate = GovernanceParams {
                    council: members.clone(),
                    council_threshold: *threshold,
                    ..params.clone()
                };
                if members.is_empty() || members.len() > COUNCIL_MAX {
                    return bad(format!("a council has 1 to {COUNCIL_MAX} members"));
                }
                candidate.validate().map_err(TxError::BadAction)?;
            }
            Action::CreatePool { pool } => {
                pool.validate().map_err(TxError::BadAction)?;
                positive(pool.budget)?;
            }
            Action::Pause { .. }
            | Action::Unpause { .. }
            | Action::Freeze { .. }
            | Action::Unfreeze { .. }
            | Action::SetAgentLimits { .. } => {}
        }
        Ok(())
    }
}

fn positive(amount: Amount) -> Result<(), TxError> {
    if amount == Amount::ZERO {
        return Err(TxError::BadAction("an amount must be positive".into()));
    }
    Ok(())
}

impl VestingTerms {
    fn validate(&self) -> Result<(), TxError> {
        if self.cliff_s > self.duration_s || self.duration_s > VESTING_S_MAX {
            return Err(TxError::BadAction(format!(
                "vesting needs cliff_s <= duration_s <= {VESTING_S_MAX}"
            )));
        }
        Ok(())
    }
}

/// Body of a `propose`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposeBody {
    /// One of the six types.
    pub proposal_type: ProposalType,
    /// Short title.
    pub title: String,
    /// What and why.
    pub description: String,
    /// What it does when executed: 1 to [`ACTIONS_MAX`] actions of its type.
    pub actions: Vec<Action>,
}

impl ProposeBody {
    /// The checks that need nothing but the body: lengths, counts, every action of the
    /// proposal's type (their ranges are checked against the parameters in force by
    /// [`validate_actions`]).
    pub fn validate_shape(&self) -> Result<(), TxError> {
        if self.title.is_empty() || self.title.len() > TITLE_LEN_MAX {
            return Err(TxError::Malformed(format!(
                "a title has 1 to {TITLE_LEN_MAX} bytes"
            )));
        }
        if self.description.len() > DESCRIPTION_LEN_MAX {
            return Err(TxError::Malformed(format!(
                "a description has at most {DESCRIPTION_LEN_MAX} bytes"
            )));
        }
        if self.actions.is_empty() || self.actions.len() > ACTIONS_MAX {
            return Err(TxError::BadAction(format!(
                "a proposal carries 1 to {ACTIONS_MAX} actions"
            )));
        }
        if let Some(other) = self
            .actions
            .iter()
            .find(|a| a.proposal_type() != self.proposal_type)
        {
            return Err(TxError::BadAction(format!(
                "a {} proposal cannot {}",
                self.proposal_type.name(),
                other.name()
            )));
        }
        Ok(())
    }
}

/// Checks every action against the parameters in force (`params`), as a whole: the parameter
/// changes applied in order must leave valid parameters.
pub fn validate_actions(actions: &[Action], params: &GovernanceParams) -> Result<(), TxError> {
    let mut after = params.clone();
    for action in actions {
        action.validate(&after)?;
        if let Action::SetParameter { name, value } = action {
            after = after.with(name, value).map_err(TxError::BadAction)?;
        }
    }
    Ok(())
}

/// Hash of the canonical form of `actions`.
pub fn actions_hash(actions: &[Action]) -> Hash32 {
    Hash32::digest(&serde_json::to_vec(actions).expect("actions serialize"))
}

/// What `actions` take from the treasury, by asset (`None`: native).
pub fn treasury_outflows(actions: &[Action]) -> BTreeMap<Option<String>, Amount> {
    let mut total: BTreeMap<Option<String>, Amount> = BTreeMap::new();
    for (asset, amount) in actions.iter().filter_map(Action::treasury_outflow) {
        let sum = total.entry(asset).or_default();
        *sum = sum.checked_add(amount).unwrap_or(Amount(u128::MAX));
    }
    total
}

/// An agent's trading permissions and limits as stored by the DAO.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentLimits {
    /// Whether it may trade at all.
    pub trading_enabled: bool,
    /// Largest position, base units.
    pub max_position: Amount,
    /// Largest order, base units.
    pub max_order: Amount,
    /// Largest loss in a day, base units.
    pub daily_loss: Amount,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(proposal_type: &str, actions: &str) -> Result<ProposeBody, serde_json::Error> {
        serde_json::from_str(&format!(
            r#"{{"proposal_type":"{proposal_type}","title":"t","description":"d","actions":{actions}}}"#
        ))
    }

    #[test]
    fn each_type_takes_only_its_own_actions() {
        let pay = format!(
            r#"[{{"action":"pay","to":"{}","amount":"5"}}]"#,
            Address([2; 20])
        );
        let parsed = body("treasury", &pay).unwrap();
        parsed.validate_shape().unwrap();
        let swapped = ProposeBody {
            proposal_type: ProposalType::ParameterChange,
            ..parsed
        };
        assert_eq!(swapped.validate_shape().unwrap_err().code(), "bad_action");
        let set = r#"[{"action":"set_parameter","name":"quorum_bps","value":500}]"#;
        let parsed = body("parameter_change", set).unwrap();
        parsed.validate_shape().unwrap();
        validate_actions(&parsed.actions, &GovernanceParams::default()).unwrap();
        let empty = body("parameter_change", "[]").unwrap();
        assert_eq!(empty.validate_shape().unwrap_err().code(), "bad_action");
    }

    #[test]
    fn parameters_are_checked_against_their_ranges() {
        let params = GovernanceParams::default();
        let set = |name: &str, value: serde_json::Value| {
            validate_actions(
                &[Action::SetParameter {
                    name: name.into(),
                    value,
                }],
                &params,
            )
            .map_err(|e| e.code())
        };
        assert_eq!(set("quorum_bps", serde_json::json!(500)), Ok(()));
        assert_eq!(set("quorum_bps", serde_json::json!(0)), Err("bad_action"));
        assert_eq!(
            set("quorum_bps", serde_json::json!(10_001)),
            Err("bad_action")
        );
        assert_eq!(set("council", serde_json::json!([])), Err("bad_action"));
        assert_eq!(set("moon", serde_json::json!(1)), Err("bad_action"));
        assert_eq!(
            set("proposal_bond", serde_json::json!("5000000")),
            Ok(()),
            "amounts are strings"
        );
        assert_eq!(
            set("proposal_bond", serde_json::json!(5)),
            Err("bad_action")
        );
        assert_eq!(
            set("voting_period_s", serde_json::json!(0)),
            Err("bad_action")
        );
    }

    #[test]
    fn unknown_and_duplicate_fields_are_malformed_at_every_depth() {
        for actions in [
            r#"[{"action":"pause","module":"jobs","extra":1}]"#,
            r#"[{"action":"pause","module":"jobs","module":"staking"}]"#,
            r#"[{"action":"launch"}]"#,
            r#"[{"action":"pay","to":"x","amount":"1"}]"#,
        ] {
            assert!(body("emergency", actions).is_err(), "{actions}");
        }
        assert!(body("emergency", r#"[{"action":"pause","module":"jobs"}]"#).is_ok());
    }

    #[test]
    fn the_hash_binds_the_typed_actions_not_their_spelling() {
        let address = Address([2; 20]);
        let a = body(
            "emergency",
            &format!(r#"[{{"action":"freeze","address":"{address}"}}]"#),
        )
        .unwrap();
        let b = body(
            "emergency",
            &format!(r#"[ {{ "address" : "{address}", "action":"freeze" }} ]"#),
        )
        .unwrap();
        assert_eq!(actions_hash(&a.actions), actions_hash(&b.actions));
        let pause = |module| vec![Action::Pause { module }];
        assert_ne!(
            actions_hash(&pause(Module::Jobs)),
            actions_hash(&pause(Module::Staking))
        );
    }
}
