//! OpenClawDAO's per-chain aggregate: the governance parameters, the council and the pause
//! state of every module (PRODUCT.md §3).
//!
//! Its stream is `dao/<chain>`. Council actions are transactions: `council_pause` `{"module",
//! "reason"}` and `council_unpause` `{"module"}`. The sender's wallet takes the nonce and fee;
//! the DAO then records the member's approval, and the approval that reaches
//! `council_threshold` distinct members takes effect at once: `ModulePaused` until the commit
//! time + `pause_expiry_s` (a pause of a paused module renews it from then), or
//! `ModuleResumed`. A pause sets a durable timer (`domain::protocol::timers`); when it fires
//! and the pause was not renewed meanwhile, the module resumes by itself. Approvals wait until their action takes effect;
//! the approvals for an unpause are dropped when the module resumes.
//!
//! A paused module's kinds are refused with `paused` before anything is written (reads keep
//! working). The council's own kinds are never paused, so a pause of governance can be undone.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::actions::{Action, AgentLimits};
use crate::address::Address;
use crate::aggregate::{Aggregate, BatchClass, Context};
use crate::codec::DomainEvent;
use crate::error::TxError;
use crate::event_id::event_id;
use crate::hash::Hash32;
use crate::kinds::Module;
use crate::money::{Amount, ONE_TOKEN};
use crate::vesting::Refusal;

/// Most council members.
pub const COUNCIL_MAX: usize = 32;
/// Longest reason given for a pause, in bytes.
pub const REASON_LEN_MAX: usize = 512;
/// Longest duration a governance parameter may take: 10 years.
pub const DURATION_S_MAX: u64 = 10 * 365 * 24 * 3600;

const DAY_S: u64 = 24 * 3600;

/// The chain's `[chains.genesis.governance]` table; every key optional, defaults from
/// PRODUCT.md §3.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GovernanceParams {
    /// Between a proposal's creation and the start of voting.
    pub voting_delay_s: u64,
    /// How long voting lasts.
    pub voting_period_s: u64,
    /// How long voting on an emergency proposal lasts.
    pub emergency_voting_period_s: u64,
    /// For + Abstain needed, in basis points of the supply at the snapshot.
    pub quorum_bps: u32,
    /// Voting power needed to propose, base units.
    pub proposal_threshold: Amount,
    /// Locked by a proposer, base units.
    pub proposal_bond: Amount,
    /// Locked by a challenger, base units.
    pub challenge_bond: Amount,
    /// Between success and execution.
    pub timelock_s: u64,
    /// How long a queued proposal may wait for execution.
    pub grace_period_s: u64,
    /// Most voting power of one address, in basis points of the supply at the snapshot.
    pub power_cap_bps: u32,
    /// Window of the time-weighted average balance before a snapshot.
    pub twas_window_s: u64,
    /// An unresolved challenge cancels its proposal after this long.
    pub challenge_timeout_s: u64,
    /// How long a council pause lasts unless renewed.
    pub pause_expiry_s: u64,
    /// Council members (none: council actions are impossible).
    pub council: Vec<Address>,
    /// Approvals that make a council action take effect.
    pub council_threshold: usize,
}

impl Default for GovernanceParams {
    fn default() -> Self {
        let thousand = Amount(1_000 * ONE_TOKEN);
        GovernanceParams {
            voting_delay_s: DAY_S,
            voting_period_s: 7 * DAY_S,
            emergency_voting_period_s: DAY_S,
            quorum_bps: 400,
            proposal_threshold: thousand,
            proposal_bond: thousand,
            challenge_bond: thousand,
            timelock_s: 2 * DAY_S,
            grace_period_s: 14 * DAY_S,
            power_cap_bps: 500,
            twas_window_s: DAY_S,
            challenge_timeout_s: 3 * DAY_S,
            pause_expiry_s: 7 * DAY_S,
            council: Vec::new(),
            council_threshold: 3,
        }
    }
}

impl GovernanceParams {
    /// Checks ranges: durations up to [`DURATION_S_MAX`] (pause expiry and voting periods at
    /// least a second), basis points up to 10,000, a council of distinct members with
    /// 1 ≤ threshold ≤ members.
    pub fn validate(&self) -> Result<(), String> {
        let durations = [
            ("voting_delay_s", self.voting_delay_s, 0),
            ("voting_period_s", self.voting_period_s, 1),
            (
                "emergency_voting_period_s",
                self.emergency_voting_period_s,
                1,
            ),
            ("timelock_s", self.timelock_s, 0),
            ("grace_period_s", self.grace_period_s, 1),
            ("twas_window_s", self.twas_window_s, 1),
            ("challenge_timeout_s", self.challenge_timeout_s, 1),
            ("pause_expiry_s", self.pause_expiry_s, 1),
        ];
        for (name, value, min) in durations {
            if !(min..=DURATION_S_MAX).contains(&value) {
                return Err(format!(
                    "governance {name} must be {min}..={DURATION_S_MAX}"
                ));
            }
        }
        for (name, value) in [
            ("quorum_bps", self.quorum_bps),
            ("power_cap_bps", self.power_cap_bps),
        ] {
            if !(1..=10_000).contains(&value) {
                return Err(format!("governance {name} must be 1..=10000"));
            }
        }
        if self.council.len() > COUNCIL_MAX {
            return Err(format!("a council has at most {COUNCIL_MAX} members"));
        }
        let distinct: BTreeSet<&Address> = self.council.iter().collect();
        if distinct.len() != self.council.len() {
            return Err("a council member is listed twice".into());
        }
        if !self.council.is_empty() && !(1..=self.council.len()).contains(&self.council_threshold) {
            return Err("council_threshold must be between 1 and the number of members".into());
        }
        Ok(())
    }

    /// These parameters with `name` set to `value` (the wire form: a number for durations and
    /// basis points, a string of base units for amounts), checked as a whole. Only the names of
    /// [`SETTABLE`] can be set this way; the council changes through `set_council`.
    pub fn with(&self, name: &str, value: &serde_json::Value) -> Result<GovernanceParams, String> {
        if !SETTABLE.iter().any(|p| p.name == name) {
            return Err(format!("{name:?} is not a settable governance parameter"));
        }
        if value.is_object() || value.is_array() {
            return Err(format!("{name} takes a number or a string"));
        }
        let mut fields = serde_json::to_value(self).expect("parameters serialize");
        fields[name] = value.clone();
        let changed: GovernanceParams =
            serde_json::from_value(fields).map_err(|e| format!("{name}: {e}"))?;
        changed.validate()?;
        Ok(changed)
    }

    /// Whether `address` sits on the council.
    pub fn is_council(&self, address: &Address) -> bool {
        self.council.contains(address)
    }
}

/// How a parameter's value is written and bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    /// Seconds, a number.
    DurationS,
    /// Basis points, a number.
    Bps,
    /// Base units of the native asset, a string.
    Amount,
}

/// A parameter `set_parameter` may change, with its allowed range (`GET /v1/governance/params`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Settable {
    /// Name.
    pub name: &'static str,
    /// Its unit.
    pub kind: ParamKind,
    /// Smallest value.
    pub min: u128,
    /// Largest value.
    pub max: u128,
}

const fn settable(name: &'static str, kind: ParamKind, min: u128, max: u128) -> Settable {
    Settable {
        name,
        kind,
        min,
        max,
    }
}

const DURATION_MAX: u128 = DURATION_S_MAX as u128;

/// Every parameter `set_parameter` may change; [`GovernanceParams::validate`] enforces the
/// same ranges.
pub const SETTABLE: &[Settable] = &[
    settable("voting_delay_s", ParamKind::DurationS, 0, DURATION_MAX),
    settable("voting_period_s", ParamKind::DurationS, 1, DURATION_MAX),
    settable(
        "emergency_voting_period_s",
        ParamKind::DurationS,
        1,
        DURATION_MAX,
    ),
    settable("quorum_bps", ParamKind::Bps, 1, 10_000),
    settable("proposal_threshold", ParamKind::Amount, 0, u128::MAX),
    settable("proposal_bond", ParamKind::Amount, 0, u128::MAX),
    settable("challenge_bond", ParamKind::Amount, 0, u128::MAX),
    settable("timelock_s", ParamKind::DurationS, 0, DURATION_MAX),
    settable("grace_period_s", ParamKind::DurationS, 1, DURATION_MAX),
    settable("power_cap_bps", ParamKind::Bps, 1, 10_000),
    settable("twas_window_s", ParamKind::DurationS, 1, DURATION_MAX),
    settable("challenge_timeout_s", ParamKind::DurationS, 1, DURATION_MAX),
    settable("pause_expiry_s", ParamKind::DurationS, 1, DURATION_MAX),
];

/// Stream of a chain's DAO.
pub fn dao_stream(chain_id: &str) -> String {
    format!("dao/{chain_id}")
}

/// A council action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CouncilAct {
    /// Pause a module (or renew its pause).
    Pause {
        /// The module.
        module: Module,
        /// Why, shown at `GET /v1/modules`.
        reason: String,
    },
    /// Resume a paused module.
    Unpause {
        /// The module.
        module: Module,
    },
}

impl CouncilAct {
    /// The module it acts on.
    pub fn module(&self) -> Module {
        match self {
            CouncilAct::Pause { module, .. } | CouncilAct::Unpause { module } => *module,
        }
    }
}

/// Body of a `council_pause`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CouncilPauseBody {
    /// The module.
    pub module: Module,
    /// Why (at most [`REASON_LEN_MAX`] bytes).
    pub reason: String,
}

impl CouncilPauseBody {
    /// Checks the reason's length.
    pub fn validate(&self) -> Result<(), TxError> {
        if self.reason.len() > REASON_LEN_MAX {
            return Err(TxError::Malformed(format!(
                "reason of {} bytes, at most {REASON_LEN_MAX}",
                self.reason.len()
            )));
        }
        Ok(())
    }
}

/// Body of a `council_unpause`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CouncilUnpauseBody {
    /// The module.
    pub module: Module,
}

/// A module's pause.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// The pause ends then, Unix ms, unless renewed.
    pub until_ms: u64,
    /// Why.
    pub reason: String,
    /// The transaction that made it take effect.
    pub tx: Hash32,
}

impl Pause {
    /// Whether it is in force at `now_ms` (one past its end whose timer has not fired yet is
    /// over).
    pub fn in_force_at(&self, now_ms: u64) -> bool {
        self.until_ms > now_ms
    }
}

/// State of a chain's DAO.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaoState {
    /// Parameters changed by executed proposals (name → wire value), over the genesis ones.
    #[serde(default)]
    pub changes: BTreeMap<String, serde_json::Value>,
    /// Accounts whose transactions are refused (`frozen`).
    #[serde(default)]
    pub frozen: BTreeSet<Address>,
    /// Agents' trading permissions and limits.
    #[serde(default)]
    pub agent_limits: BTreeMap<Address, AgentLimits>,
    /// Protocol version (1 until an upgrade).
    #[serde(default = "first_version")]
    pub protocol_version: u32,
    /// Every proposal created on the chain, oldest first.
    #[serde(default)]
    pub proposals: Vec<Hash32>,
    /// Every agent registered on the chain, oldest first.
    #[serde(default)]
    pub agents: Vec<Address>,
    /// Modules paused, until when.
    pub pauses: BTreeMap<Module, Pause>,
    /// Council members who approved pausing a module, with the reason each gave.
    pub pause_approvals: BTreeMap<Module, BTreeMap<Address, String>>,
    /// Council members who approved resuming a module.
    pub unpause_approvals: BTreeMap<Module, BTreeSet<Address>>,
}

fn first_version() -> u32 {
    1
}

impl Default for DaoState {
    fn default() -> Self {
        DaoState {
            changes: BTreeMap::new(),
            frozen: BTreeSet::new(),
            agent_limits: BTreeMap::new(),
            protocol_version: first_version(),
            proposals: Vec::new(),
            agents: Vec::new(),
            pauses: BTreeMap::new(),
            pause_approvals: BTreeMap::new(),
            unpause_approvals: BTreeMap::new(),
        }
    }
}

impl DaoState {
    /// The parameters in force: the genesis ones with every executed change.
    pub fn params(&self, genesis: &GovernanceParams) -> GovernanceParams {
        if self.changes.is_empty() {
            return genesis.clone();
        }
        let mut fields = serde_json::to_value(genesis).expect("parameters serialize");
        for (name, value) in &self.changes {
            fields[name.as_str()] = value.clone();
        }
        serde_json::from_value(fields).expect("changes were checked when enacted")
    }

    /// Applies an enacted action (checked when decided).
    fn enact(&mut self, proposal: &Hash32, action: &Action, until_ms: Option<u64>) {
        match action {
            Action::SetParameter { name, value } => {
                self.changes.insert(name.clone(), value.clone());
            }
            Action::SetCouncil { members, threshold } => {
                let members = serde_json::to_value(members).expect("addresses serialize");
                self.changes.insert("council".into(), members);
                self.changes
                    .insert("council_threshold".into(), (*threshold).into());
            }
            Action::SetProtocolVersion { version } => self.protocol_version = *version,
            Action::Pause { module } => {
                self.pause_approvals.remove(module);
                let until_ms = until_ms.expect("a pause has an end");
                let reason = format!("emergency proposal {proposal}");
                let tx = *proposal;
                self.pauses.insert(
                    *module,
                    Pause {
                        until_ms,
                        reason,
                        tx,
                    },
                );
            }
            Action::Unpause { module } => {
                self.pauses.remove(module);
                self.unpause_approvals.remove(module);
            }
            Action::Freeze { address } => {
                self.frozen.insert(*address);
            }
            Action::Unfreeze { address } => {
                self.frozen.remove(address);
            }
            Action::SetAgentLimits {
                agent,
                trading_enabled,
                max_position,
                max_order,
                daily_loss,
            } => {
                let limits = AgentLimits {
                    trading_enabled: *trading_enabled,
                    max_position: *max_position,
                    max_order: *max_order,
                    daily_loss: *daily_loss,
                };
                self.agent_limits.insert(*agent, limits);
            }
            Action::Pay { .. } | Action::Grant { .. } | Action::CreatePool { .. } => {
                unreachable!("payouts and pools are the treasury's and staking's, not the DAO's")
            }
        }
    }

    /// The pause of `module` in force at `now_ms` (an expired one whose timer has not fired yet
    /// is over).
    pub fn pause_at(&self, module: Module, now_ms: u64) -> Option<&Pause> {
        self.pauses.get(&module).filter(|p| p.in_force_at(now_ms))
    }

    /// Why `member` may not take `act` now, checked against `params`.
    pub fn check(
        &self,
        params: &GovernanceParams,
        member: &Address,
        act: &CouncilAct,
        now_ms: u64,
    ) -> Result<(), TxError> {
        if !params.is_council(member) {
            return Err(TxError::NotCouncil(format!(
                "{member} is not on the council"
            )));
        }
        let module = act.module();
        match act {
            CouncilAct::Pause { .. } => {
                if self
                    .pause_approvals
                    .get(&module)
                    .is_some_and(|a| a.contains_key(member))
                {
                    return Err(TxError::AlreadyVoted(format!(
                        "{member} already approved pausing {}",
                        module.name()
                    )));
                }
            }
            CouncilAct::Unpause { .. } => {
                if self.pause_at(module, now_ms).is_none() {
                    return Err(TxError::NotActive(format!(
                        "module {} is not paused",
                        module.name()
                    )));
                }
                if self
                    .unpause_approvals
                    .get(&module)
                    .is_some_and(|a| a.contains(member))
                {
                    return Err(TxError::AlreadyVoted(format!(
                        "{member} already approved resuming {}",
                        module.name()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Commands to a chain's DAO.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DaoCommand {
    /// Settle a committed council transaction.
    Council {
        /// The transaction.
        tx: Hash32,
        /// Its sender.
        member: Address,
        /// What it asks.
        act: CouncilAct,
        /// Its commit time.
        committed_at_ms: u64,
    },
    /// A pause's timer: resume `module` if its pause still ends at `until_ms`.
    ExpirePause {
        /// The module.
        module: Module,
        /// The end of the pause that set the timer.
        until_ms: u64,
    },
    /// Enact one action of an executed proposal.
    Enact {
        /// The proposal.
        proposal: Hash32,
        /// The action's index in it.
        index: u32,
        /// The action.
        action: Action,
        /// The execution's commit time.
        at_ms: u64,
    },
    /// List a created proposal.
    Track {
        /// The proposal.
        proposal: Hash32,
    },
    /// List a registered agent.
    TrackAgent {
        /// The agent.
        agent: Address,
    },
}

/// Why a module resumed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resumed {
    /// The council's unpause reached the threshold with this transaction.
    Unpaused {
        /// The transaction.
        tx: Hash32,
    },
    /// The pause ran out.
    Expired {
        /// When it ended.
        until_ms: u64,
    },
}

/// Events of a chain's DAO.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DaoEvent {
    /// A council member approved an action that has not reached the threshold yet.
    CouncilApproved {
        /// The transaction.
        tx: Hash32,
        /// The member.
        member: Address,
        /// The action.
        act: CouncilAct,
    },
    /// A module is paused until `until_ms` (the approval in `tx` reached the threshold).
    ModulePaused {
        /// The transaction.
        tx: Hash32,
        /// Its sender.
        member: Address,
        /// The module.
        module: Module,
        /// Until when.
        until_ms: u64,
        /// Why (the reason of the approval that reached the threshold).
        reason: String,
    },
    /// A paused module works again.
    ModuleResumed {
        /// The module.
        module: Module,
        /// Why.
        cause: Resumed,
        /// The sender of the unpause that reached the threshold, if that was the cause.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        member: Option<Address>,
    },
    /// An action of an executed proposal took effect (or, `refused`, could not: a change that
    /// another proposal's made invalid in between).
    Enacted {
        /// The proposal.
        proposal: Hash32,
        /// The action's index in it.
        index: u32,
        /// The action.
        action: Action,
        /// When.
        at_ms: u64,
        /// A pause's end.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_ms: Option<u64>,
        /// Why it did not take effect.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refused: Option<Refusal>,
    },
    /// A proposal was created.
    ProposalTracked {
        /// The proposal.
        proposal: Hash32,
    },
    /// An agent registered.
    AgentTracked {
        /// The agent.
        agent: Address,
    },
    /// A committed council transaction that no longer applied (it lost a race).
    CouncilActRefused {
        /// The transaction.
        tx: Hash32,
        /// Why.
        reason: Refusal,
    },
}

impl DaoEvent {
    /// Versioned type name.
    pub fn event_type(&self) -> &'static str {
        match self {
            DaoEvent::CouncilApproved { .. } => "CouncilApproved.v1",
            DaoEvent::ModulePaused { .. } => "ModulePaused.v1",
            DaoEvent::ModuleResumed { .. } => "ModuleResumed.v1",
            DaoEvent::CouncilActRefused { .. } => "CouncilActRefused.v1",
            DaoEvent::Enacted { .. } => "Enacted.v1",
            DaoEvent::ProposalTracked { .. } => "ProposalTracked.v1",
            DaoEvent::AgentTracked { .. } => "AgentTracked.v1",
        }
    }

    /// The transaction that caused it, if any.
    pub fn tx(&self) -> Option<Hash32> {
        match self {
            DaoEvent::CouncilApproved { tx, .. }
            | DaoEvent::ModulePaused { tx, .. }
            | DaoEvent::CouncilActRefused { tx, .. }
            | DaoEvent::ModuleResumed {
                cause: Resumed::Unpaused { tx },
                ..
            } => Some(*tx),
            DaoEvent::ModuleResumed { .. }
            | DaoEvent::Enacted { .. }
            | DaoEvent::ProposalTracked { .. }
            | DaoEvent::AgentTracked { .. } => None,
        }
    }
}

/// The DAO aggregate; its id is the chain id, its facts the genesis parameters.
#[derive(Debug)]
pub enum Dao {}

fn council_event_id(tx: &Hash32) -> u128 {
    event_id("dao-council", &tx.0)
}

fn expiry_event_id(chain_id: &str, module: Module, until_ms: u64) -> u128 {
    let subject = format!("{chain_id}/{}/{until_ms}", module.name());
    event_id("dao-pause-expired", subject.as_bytes())
}

fn enact_event_id(proposal: &Hash32, index: u32) -> u128 {
    let mut subject = proposal.0.to_vec();
    subject.extend_from_slice(&index.to_be_bytes());
    event_id("dao-enact", &subject)
}

fn track_event_id(proposal: &Hash32) -> u128 {
    event_id("dao-track", &proposal.0)
}

fn track_agent_event_id(agent: &Address) -> u128 {
    event_id("dao-track-agent", &agent.0)
}

/// Id of the event `command` records on `chain_id`'s DAO.
pub fn command_event_id(chain_id: &str, command: &DaoCommand) -> u128 {
    match command {
        DaoCommand::Council { tx, .. } => council_event_id(tx),
        DaoCommand::ExpirePause { module, until_ms } => {
            expiry_event_id(chain_id, *module, *until_ms)
        }
        DaoCommand::Enact {
            proposal, index, ..
        } => enact_event_id(proposal, *index),
        DaoCommand::Track { proposal } => track_event_id(proposal),
        DaoCommand::TrackAgent { agent } => track_agent_event_id(agent),
    }
}

/// What enacting `action` at `at_ms` records, given the state and the parameters in force.
fn enact(
    state: &DaoState,
    params: &GovernanceParams,
    (proposal, index, at_ms): (Hash32, u32, u64),
    action: Action,
) -> DaoEvent {
    let mut until_ms = None;
    let refused = match &action {
        Action::SetParameter { name, value } => params.with(name, value).err(),
        Action::SetProtocolVersion { version } => (*version <= state.protocol_version)
            .then(|| format!("version {version} is not above {}", state.protocol_version)),
        Action::SetCouncil { .. } => action.validate(params).err().map(|e| e.to_string()),
        Action::Pause { .. } => {
            until_ms = Some(at_ms.saturating_add(params.pause_expiry_s.saturating_mul(1000)));
            None
        }
        _ => None,
    };
    DaoEvent::Enacted {
        proposal,
        index,
        action,
        at_ms,
        until_ms,
        refused: refused.map(|message| Refusal {
            code: "bad_action".into(),
            message,
        }),
    }
}

impl Aggregate for Dao {
    type Id = String;
    type Facts = GovernanceParams;
    type State = DaoState;
    type Command = DaoCommand;
    type Event = DaoEvent;
    type Error = TxError;

    const NAME: &'static str = "dao";

    fn stream(id: &String) -> String {
        dao_stream(id)
    }

    fn decide(
        state: &DaoState,
        ctx: &Context<'_, Dao>,
        command: DaoCommand,
    ) -> Result<Vec<DaoEvent>, TxError> {
        let params = state.params(ctx.facts);
        match command {
            DaoCommand::Enact {
                proposal,
                index,
                action,
                at_ms,
            } => Ok(vec![enact(
                state,
                &params,
                (proposal, index, at_ms),
                action,
            )]),
            DaoCommand::Track { proposal } => Ok(vec![DaoEvent::ProposalTracked { proposal }]),
            DaoCommand::TrackAgent { agent } => Ok(vec![DaoEvent::AgentTracked { agent }]),
            DaoCommand::Council {
                tx,
                member,
                act,
                committed_at_ms,
            } => {
                if let Err(error) = state.check(&params, &member, &act, committed_at_ms) {
                    return Ok(vec![DaoEvent::CouncilActRefused {
                        tx,
                        reason: error.into(),
                    }]);
                }
                let threshold = params.council_threshold;
                Ok(vec![match act {
                    CouncilAct::Pause { module, reason } => {
                        let approvals = state.pause_approvals.get(&module).map_or(0, |a| a.len());
                        if approvals + 1 >= threshold {
                            DaoEvent::ModulePaused {
                                tx,
                                member,
                                module,
                                until_ms: committed_at_ms
                                    .saturating_add(params.pause_expiry_s.saturating_mul(1000)),
                                reason,
                            }
                        } else {
                            DaoEvent::CouncilApproved {
                                tx,
                                member,
                                act: CouncilAct::Pause { module, reason },
                            }
                        }
                    }
                    CouncilAct::Unpause { module } => {
                        let approvals = state.unpause_approvals.get(&module).map_or(0, |a| a.len());
                        if approvals + 1 >= threshold {
                            DaoEvent::ModuleResumed {
                                module,
                                cause: Resumed::Unpaused { tx },
                                member: Some(member),
                            }
                        } else {
                            DaoEvent::CouncilApproved {
                                tx,
                                member,
                                act: CouncilAct::Unpause { module },
                            }
                        }
                    }
                }])
            }
            DaoCommand::ExpirePause { module, until_ms } => {
                let still_applies = state
                    .pauses
                    .get(&module)
                    .is_some_and(|p| p.until_ms == until_ms && until_ms <= ctx.now_ms);
                Ok(if still_applies {
                    vec![DaoEvent::ModuleResumed {
                        module,
                        cause: Resumed::Expired { until_ms },
                        member: None,
                    }]
                } else {
                    Vec::new()
                })
            }
        }
    }

    fn evolve(state: &mut DaoState, event: &DaoEvent) {
        match event {
            DaoEvent::CouncilApproved { member, act, .. } => match act {
                CouncilAct::Pause { module, reason } => {
                    state
                        .pause_approvals
                        .entry(*module)
                        .or_default()
                        .insert(*member, reason.clone());
                }
                CouncilAct::Unpause { module } => {
                    state
                        .unpause_approvals
                        .entry(*module)
                        .or_default()
                        .insert(*member);
                }
            },
            DaoEvent::ModulePaused {
                tx,
                module,
                until_ms,
                reason,
                ..
            } => {
                state.pause_approvals.remove(module);
                state.pauses.insert(
                    *module,
                    Pause {
                        until_ms: *until_ms,
                        reason: reason.clone(),
                        tx: *tx,
                    },
                );
            }
            DaoEvent::ModuleResumed { module, .. } => {
                state.pauses.remove(module);
                state.unpause_approvals.remove(module);
            }
            DaoEvent::CouncilActRefused { .. } => {}
            DaoEvent::ProposalTracked { proposal } => state.proposals.push(*proposal),
            DaoEvent::AgentTracked { agent } => state.agents.push(*agent),
            DaoEvent::Enacted {
                refused: Some(_), ..
            } => {}
            DaoEvent::Enacted {
                proposal,
                action,
                until_ms,
                ..
            } => state.enact(proposal, action, *until_ms),
        }
    }

    fn event_id(id: &String, event: &DaoEvent) -> u128 {
        match event {
            DaoEvent::ModuleResumed {
                module,
                cause: Resumed::Expired { until_ms },
                ..
            } => expiry_event_id(id, *module, *until_ms),
            DaoEvent::Enacted {
                proposal, index, ..
            } => enact_event_id(proposal, *index),
            DaoEvent::ProposalTracked { proposal } => track_event_id(proposal),
            DaoEvent::AgentTracked { agent } => track_agent_event_id(agent),
            other => council_event_id(&other.tx().expect("every other DAO event has a cause")),
        }
    }

    fn command_event_id(id: &String, command: &DaoCommand) -> Option<u128> {
        Some(command_event_id(id, command))
    }

    fn batch_class(_command: &DaoCommand) -> BatchClass {
        BatchClass::Decision
    }

    fn encode(event: &DaoEvent) -> (&'static str, Vec<u8>) {
        let data = serde_json::to_vec(event).expect("events serialize");
        (event.event_type(), data)
    }

    fn from_stored(event: DomainEvent) -> Option<DaoEvent> {
        match event {
            DomainEvent::Dao(event) => Some(event),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::replay;

    const MEMBERS: [Address; 3] = [Address([1; 20]), Address([2; 20]), Address([3; 20])];

    fn params() -> GovernanceParams {
        GovernanceParams {
            council: MEMBERS.to_vec(),
            council_threshold: 2,
            pause_expiry_s: 60,
            ..GovernanceParams::default()
        }
    }

    fn decide(events: &[DaoEvent], now_ms: u64, command: DaoCommand) -> Vec<DaoEvent> {
        let id = "c".to_string();
        let facts = params();
        let ctx = Context {
            id: &id,
            facts: &facts,
            now_ms,
        };
        Dao::decide(&replay::<Dao>(events), &ctx, command).unwrap()
    }

    fn council(n: u8, member: Address, act: CouncilAct, at: u64) -> DaoCommand {
        DaoCommand::Council {
            tx: Hash32::digest(&[n]),
            member,
            act,
            committed_at_ms: at,
        }
    }

    fn pause(module: Module) -> CouncilAct {
        CouncilAct::Pause {
            module,
            reason: "incident".into(),
        }
    }

    #[test]
    fn a_pause_takes_effect_at_the_threshold_and_lasts_the_expiry() {
        let first = decide(
            &[],
            0,
            council(1, MEMBERS[0], pause(Module::Transfers), 1_000),
        );
        assert!(matches!(&first[..], [DaoEvent::CouncilApproved { .. }]));
        let state = replay::<Dao>(&first);
        assert_eq!(
            state.pause_at(Module::Transfers, 1_000),
            None,
            "one approval pauses nothing"
        );
        let second = decide(
            &first,
            0,
            council(2, MEMBERS[1], pause(Module::Transfers), 2_000),
        );
        let [DaoEvent::ModulePaused { until_ms, .. }] = &second[..] else {
            panic!("{second:?}")
        };
        assert_eq!(*until_ms, 62_000);
        let state = replay::<Dao>(&[first, second].concat());
        assert!(state.pause_at(Module::Transfers, 61_999).is_some());
        assert!(
            state.pause_at(Module::Transfers, 62_000).is_none(),
            "over at the end"
        );
        assert!(
            state.pause_at(Module::Staking, 2_000).is_none(),
            "other modules run"
        );
        assert!(state.pause_approvals.is_empty(), "the approvals were used");
    }

    #[test]
    fn only_council_members_act_and_each_once() {
        let outsider = Address([9; 20]);
        let state = DaoState::default();
        let check = |state: &DaoState, member, act: CouncilAct| {
            state
                .check(&params(), member, &act, 0)
                .map_err(|e| e.code())
        };
        assert_eq!(
            check(&state, &outsider, pause(Module::Jobs)),
            Err("not_council")
        );
        let approved = decide(&[], 0, council(1, MEMBERS[0], pause(Module::Jobs), 0));
        let state = replay::<Dao>(&approved);
        assert_eq!(
            check(&state, &MEMBERS[0], pause(Module::Jobs)),
            Err("already_voted")
        );
        assert_eq!(
            check(
                &state,
                &MEMBERS[0],
                CouncilAct::Unpause {
                    module: Module::Jobs
                }
            ),
            Err("not_active"),
            "a module that is not paused cannot be resumed"
        );
        // A race past the checks is recorded as refused: committed, nothing changes.
        let raced = decide(&approved, 0, council(2, MEMBERS[0], pause(Module::Jobs), 0));
        assert!(
            matches!(&raced[..], [DaoEvent::CouncilActRefused { reason, .. }] if reason.code == "already_voted")
        );
        assert_eq!(replay::<Dao>(&[approved, raced].concat()), state);
    }

    #[test]
    fn unpause_needs_the_threshold_and_clears_its_approvals() {
        let mut events = decide(&[], 0, council(1, MEMBERS[0], pause(Module::Jobs), 0));
        events.extend(decide(
            &events,
            0,
            council(2, MEMBERS[1], pause(Module::Jobs), 0),
        ));
        let unpause = CouncilAct::Unpause {
            module: Module::Jobs,
        };
        events.extend(decide(
            &events,
            0,
            council(3, MEMBERS[2], unpause.clone(), 10),
        ));
        assert!(
            replay::<Dao>(&events).pause_at(Module::Jobs, 10).is_some(),
            "one of two"
        );
        let resumed = decide(&events, 0, council(4, MEMBERS[0], unpause, 20));
        assert!(matches!(
            &resumed[..],
            [DaoEvent::ModuleResumed {
                cause: Resumed::Unpaused { .. },
                member: Some(_),
                ..
            }]
        ));
        events.extend(resumed);
        let state = replay::<Dao>(&events);
        assert!(state.pause_at(Module::Jobs, 20).is_none());
        assert!(state.unpause_approvals.is_empty());
    }

    #[test]
    fn a_pause_expires_by_its_timer_unless_renewed() {
        let mut events = decide(&[], 0, council(1, MEMBERS[0], pause(Module::Jobs), 0));
        events.extend(decide(
            &events,
            0,
            council(2, MEMBERS[1], pause(Module::Jobs), 0),
        ));
        let owner = crate::protocol::stream_owner(&dao_stream("c")).unwrap();
        let fact = crate::protocol::Fact::Dao(events.last().unwrap().clone());
        let [timer] = &crate::protocol::timers(&owner, &fact)[..] else {
            panic!("a pause sets one timer")
        };
        assert_eq!(timer.due_ms, 60_000);
        let crate::protocol::FollowUp::Dao {
            command: expire, ..
        } = timer.step.clone()
        else {
            panic!("the DAO's step")
        };
        assert!(
            decide(&events, 59_999, expire.clone()).is_empty(),
            "not due yet"
        );
        // Renewed at 30 s: the first timer finds a later end and does nothing.
        let mut renewed = events.clone();
        renewed.extend(decide(
            &renewed,
            0,
            council(3, MEMBERS[2], pause(Module::Jobs), 30_000),
        ));
        renewed.extend(decide(
            &renewed,
            0,
            council(4, MEMBERS[0], pause(Module::Jobs), 30_000),
        ));
        assert!(decide(&renewed, 60_000, expire.clone()).is_empty());
        assert!(
            replay::<Dao>(&renewed)
                .pause_at(Module::Jobs, 60_000)
                .is_some()
        );
        let expired = decide(&events, 60_000, expire);
        assert!(matches!(
            &expired[..],
            [DaoEvent::ModuleResumed {
                cause: Resumed::Expired { until_ms: 60_000 },
                ..
            }]
        ));
        events.extend(expired);
        assert!(replay::<Dao>(&events).pauses.is_empty());
    }

    #[test]
    fn every_event_has_the_id_its_command_announces() {
        let id = "c".to_string();
        let command = council(1, MEMBERS[0], pause(Module::Jobs), 0);
        let events = decide(&[], 0, command.clone());
        assert_eq!(
            Dao::event_id(&id, &events[0]),
            command_event_id(&id, &command)
        );
        let expire = DaoCommand::ExpirePause {
            module: Module::Jobs,
            until_ms: 5,
        };
        let resumed = DaoEvent::ModuleResumed {
            module: Module::Jobs,
            cause: Resumed::Expired { until_ms: 5 },
            member: None,
        };
        assert_eq!(Dao::event_id(&id, &resumed), command_event_id(&id, &expire));
    }

    fn enact(events: &[DaoEvent], index: u32, action: Action, at_ms: u64) -> DaoEvent {
        let command = DaoCommand::Enact {
            proposal: Hash32::digest(b"proposal"),
            index,
            action,
            at_ms,
        };
        let mut decided = decide(events, at_ms, command);
        assert_eq!(decided.len(), 1);
        decided.remove(0)
    }

    #[test]
    fn executed_actions_change_parameters_council_version_pauses_and_freezes() {
        let mut events = Vec::new();
        let set = Action::SetParameter {
            name: "voting_period_s".into(),
            value: 99.into(),
        };
        events.push(enact(&events, 0, set, 1_000));
        let council = Action::SetCouncil {
            members: vec![MEMBERS[2]],
            threshold: 1,
        };
        events.push(enact(&events, 1, council, 1_000));
        events.push(enact(
            &events,
            2,
            Action::SetProtocolVersion { version: 2 },
            1_000,
        ));
        let frozen = Address([7; 20]);
        events.push(enact(&events, 3, Action::Freeze { address: frozen }, 1_000));
        let pause_staking = Action::Pause {
            module: Module::Staking,
        };
        events.push(enact(&events, 4, pause_staking, 1_000));
        let state = replay::<Dao>(&events);
        let now = state.params(&params());
        assert_eq!(now.voting_period_s, 99);
        assert_eq!(
            (now.council.clone(), now.council_threshold),
            (vec![MEMBERS[2]], 1)
        );
        assert_eq!(now.pause_expiry_s, 60, "the rest stays as the genesis says");
        assert_eq!(state.protocol_version, 2);
        assert!(state.frozen.contains(&frozen));
        assert_eq!(
            state.pause_at(Module::Staking, 60_999).map(|p| p.until_ms),
            Some(61_000)
        );
        let owner = crate::protocol::stream_owner(&dao_stream("c")).unwrap();
        let fact = crate::protocol::Fact::Dao(events[4].clone());
        assert_eq!(
            crate::protocol::timers(&owner, &fact)[0].due_ms,
            61_000,
            "a pause by proposal expires like the council's"
        );
        // The new council alone acts now; the old members no longer can.
        assert_eq!(
            state
                .check(&now, &MEMBERS[0], &pause(Module::Jobs), 0)
                .unwrap_err()
                .code(),
            "not_council"
        );
        // A version that does not go up, or a parameter out of range, changes nothing.
        let stale = enact(&events, 5, Action::SetProtocolVersion { version: 2 }, 2_000);
        let bad = Action::SetParameter {
            name: "quorum_bps".into(),
            value: 0.into(),
        };
        let out_of_range = enact(&events, 6, bad, 2_000);
        for refused in [stale, out_of_range] {
            assert!(
                matches!(&refused, DaoEvent::Enacted { refused: Some(r), .. } if r.code == "bad_action")
            );
            let mut after = events.clone();
            after.push(refused);
            assert_eq!(replay::<Dao>(&after), state);
        }
        let unfreeze = Action::Unfreeze { address: frozen };
        events.push(enact(&events, 7, unfreeze, 3_000));
        assert!(replay::<Dao>(&events).frozen.is_empty());
    }

    #[test]
    fn parameters_are_checked() {
        params().validate().unwrap();
        GovernanceParams::default().validate().unwrap();
        let mut p = params();
        p.council_threshold = 4;
        assert!(p.validate().is_err());
        let mut p = params();
        p.council.push(MEMBERS[0]);
        assert!(p.validate().is_err(), "a member twice");
        let mut p = params();
        p.pause_expiry_s = 0;
        assert!(p.validate().is_err());
        let mut p = params();
        p.power_cap_bps = 10_001;
        assert!(p.validate().is_err());
    }
}
