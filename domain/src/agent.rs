//! Agent wallets (PRODUCT.md §4): one aggregate per agent, stream `agent/<chain>/<address>`.
//!
//! An agent is a wallet registered with a role, an owner (the wallet that manages it), a set of
//! authorized caller keys (each may sign transactions whose sender is the agent), a reputation
//! (0–1000, earned from verified work by the jobs module, never set by the agent or its owner),
//! a voting strategy with auto-voting on or off, and an active/stopped flag. `register_agent` is
//! signed by the agent's own key; everything else is sent by the owner. A stopped agent casts
//! no autonomous vote and its callers cannot sign for it until it is reactivated.
//!
//! Strategies decide an autonomous vote when a proposal becomes active ([`plan`]):
//! RolePreference (For when preference + threshold > 256, else Against; the defaults per role are
//! PRODUCT.md's table, an owner's preferences replace them type by type; an emergency is never
//! supported automatically: Against), Fixed (a vote per proposal type; none for a type it does not
//! name), Follow (the same vote as a chosen address, once it has voted) and Abstain.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::actions::ProposalType;
use crate::address::Address;
use crate::aggregate::{Aggregate, BatchClass, Context};
use crate::codec::DomainEvent;
use crate::error::TxError;
use crate::event_id::event_id;
use crate::hash::Hash32;
use crate::proposal::Support;
use crate::vesting::Refusal;

/// Most caller keys an agent holds.
pub const CALLERS_MAX: usize = 16;
/// A preference or threshold above this is out of range.
pub const PREFERENCE_MAX: u16 = 1_000;
/// RolePreference votes For when preference + threshold exceeds this.
pub const SUPPORT_BAR: u32 = 256;

/// Stream of an agent.
pub fn agent_stream(chain_id: &str, agent: &Address) -> String {
    format!("agent/{chain_id}/{agent}")
}

/// An agent's role in the swarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Offers GPUs.
    Provider,
    /// Buys compute.
    Consumer,
    /// Builds on the platform.
    Builder,
    /// Coordinates other agents.
    Coordinator,
}

impl Role {
    /// Wire name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Provider => "provider",
            Role::Consumer => "consumer",
            Role::Builder => "builder",
            Role::Coordinator => "coordinator",
        }
    }

    /// PRODUCT.md §4's default threshold and preferences (a type not named has preference 0).
    pub fn defaults(self) -> (u16, &'static [(ProposalType, u16)]) {
        use ProposalType::*;
        match self {
            Role::Provider => (
                128,
                &[(ParameterChange, 180), (Treasury, 160), (AgentTrading, 200)],
            ),
            Role::Consumer => (
                128,
                &[(ParameterChange, 140), (Treasury, 180), (AgentTrading, 160)],
            ),
            Role::Builder => (150, &[(ProtocolUpgrade, 200), (DaoGrants, 180)]),
            Role::Coordinator => (140, &[(ParameterChange, 160), (ProtocolUpgrade, 180)]),
        }
    }
}

/// How an agent votes by itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Strategy {
    /// By its role's preferences (an owner's replace the defaults type by type).
    RolePreference {
        /// Preference per proposal type, 0–1000.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preferences: Option<BTreeMap<ProposalType, u16>>,
        /// Threshold, 0–1000 (default: the role's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        threshold: Option<u16>,
    },
    /// A fixed vote per proposal type.
    Fixed {
        /// The votes.
        votes: BTreeMap<ProposalType, Support>,
    },
    /// The vote of another address, once it has voted.
    Follow {
        /// The address followed.
        address: Address,
    },
    /// Always abstain.
    Abstain,
}

impl Strategy {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), TxError> {
        if let Strategy::RolePreference {
            preferences,
            threshold,
        } = self
        {
            let values = preferences.iter().flat_map(|p| p.values()).chain(threshold);
            if values.into_iter().any(|v| *v > PREFERENCE_MAX) {
                return Err(TxError::Malformed(format!(
                    "preferences and thresholds are 0..={PREFERENCE_MAX}"
                )));
            }
        }
        Ok(())
    }
}

/// What an agent does when a proposal becomes active.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// Vote now.
    Vote(Support),
    /// Vote as this address does, once it has.
    Follow(Address),
}

/// A registered agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// Its role.
    pub role: Role,
    /// The wallet that manages it.
    pub owner: Address,
    /// Keys that may sign for it (hex, lowercase).
    pub callers: BTreeSet<String>,
    /// 0–1000, from verified work.
    pub reputation: u16,
    /// Its voting strategy.
    pub strategy: Strategy,
    /// Whether it votes by itself.
    pub auto_vote: bool,
    /// Not stopped.
    pub active: bool,
    /// When it registered.
    pub registered_at_ms: u64,
}

/// What agent `record` does on a proposal of `proposal_type` that became active; `None`: it
/// does not vote (auto-voting off, stopped, or a Fixed strategy silent on the type).
pub fn plan(record: &AgentRecord, proposal_type: ProposalType) -> Option<Plan> {
    if !record.active || !record.auto_vote {
        return None;
    }
    match &record.strategy {
        Strategy::Abstain => Some(Plan::Vote(Support::Abstain)),
        Strategy::Follow { address } => Some(Plan::Follow(*address)),
        Strategy::Fixed { votes } => votes.get(&proposal_type).map(|s| Plan::Vote(*s)),
        Strategy::RolePreference {
            preferences,
            threshold,
        } => {
            let (default_threshold, defaults) = record.role.defaults();
            let preference = preferences
                .as_ref()
                .and_then(|p| p.get(&proposal_type).copied())
                .or_else(|| {
                    defaults
                        .iter()
                        .find(|(t, _)| *t == proposal_type)
                        .map(|(_, p)| *p)
                })
                .unwrap_or(0);
            let score = u32::from(preference) + u32::from(threshold.unwrap_or(default_threshold));
            let supported = score > SUPPORT_BAR && !proposal_type.is_emergency();
            Some(Plan::Vote(match supported {
                true => Support::For,
                false => Support::Against,
            }))
        }
    }
}

/// Body of `register_agent` (signed by the agent's own key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// Its role.
    pub role: Role,
    /// The wallet that will manage it.
    pub owner: Address,
}

/// Body of `configure_agent` (by the owner).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigureBody {
    /// The agent.
    pub agent: Address,
    /// Its strategy.
    pub strategy: Strategy,
    /// Whether it votes by itself.
    pub auto_vote: bool,
}

/// Body of `add_caller` and `remove_caller` (by the owner).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerBody {
    /// The agent.
    pub agent: Address,
    /// An Ed25519 public key, 64 hex.
    pub public_key: String,
}

impl CallerBody {
    /// The key, lowercase, checked to be 32 bytes of hex.
    pub fn key(&self) -> Result<String, TxError> {
        let key = self.public_key.to_ascii_lowercase();
        match key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            true => Ok(key),
            false => Err(TxError::Malformed(
                "public_key must be 64 hex characters".into(),
            )),
        }
    }
}

/// Body of `agent_stop` and `agent_reactivate` (by the owner).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRef {
    /// The agent.
    pub agent: Address,
}

/// An agent transaction, as the agent decides it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentAct {
    /// Register (the sender is the agent).
    Register {
        /// Role.
        role: Role,
        /// Owner.
        owner: Address,
    },
    /// Set the strategy and auto-voting.
    Configure {
        /// Strategy.
        strategy: Strategy,
        /// Auto-voting.
        auto_vote: bool,
    },
    /// Authorize a caller key.
    AddCaller {
        /// Hex, lowercase.
        public_key: String,
    },
    /// Revoke a caller key.
    RemoveCaller {
        /// Hex, lowercase.
        public_key: String,
    },
    /// Halt every autonomous action.
    Stop,
    /// Resume.
    Reactivate,
}

/// Identity of an agent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AgentId {
    /// Chain.
    pub chain_id: String,
    /// The agent's address.
    pub agent: Address,
}

/// A committed agent transaction, to decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentCommand {
    /// The transaction.
    pub tx: Hash32,
    /// Its sender.
    pub sender: Address,
    /// What it asks.
    pub act: AgentAct,
    /// Its commit time.
    pub committed_at_ms: u64,
}

/// Events of an agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentEvent {
    /// Registered.
    Registered {
        /// The transaction.
        tx: Hash32,
        /// The record (default strategy: its role's preferences, auto-voting off).
        record: AgentRecord,
    },
    /// Strategy set.
    Configured {
        /// The transaction.
        tx: Hash32,
        /// Strategy.
        strategy: Strategy,
        /// Auto-voting.
        auto_vote: bool,
    },
    /// A caller key added.
    CallerAdded {
        /// The transaction.
        tx: Hash32,
        /// The key.
        public_key: String,
    },
    /// A caller key removed.
    CallerRemoved {
        /// The transaction.
        tx: Hash32,
        /// The key.
        public_key: String,
    },
    /// Stopped.
    Stopped {
        /// The transaction.
        tx: Hash32,
    },
    /// Reactivated.
    Reactivated {
        /// The transaction.
        tx: Hash32,
    },
    /// A committed transaction that no longer applied.
    Refused {
        /// The transaction.
        tx: Hash32,
        /// Why.
        reason: Refusal,
    },
}

impl AgentEvent {
    /// Every type name, for the decoder.
    pub const TYPES: [&'static str; 7] = [
        "AgentRegistered.v1",
        "AgentConfigured.v1",
        "AgentCallerAdded.v1",
        "AgentCallerRemoved.v1",
        "AgentStopped.v1",
        "AgentReactivated.v1",
        "AgentActRefused.v1",
    ];

    /// Versioned type name.
    pub fn event_type(&self) -> &'static str {
        let index = match self {
            AgentEvent::Registered { .. } => 0,
            AgentEvent::Configured { .. } => 1,
            AgentEvent::CallerAdded { .. } => 2,
            AgentEvent::CallerRemoved { .. } => 3,
            AgentEvent::Stopped { .. } => 4,
            AgentEvent::Reactivated { .. } => 5,
            AgentEvent::Refused { .. } => 6,
        };
        Self::TYPES[index]
    }

    /// The transaction that caused it.
    pub fn tx(&self) -> Hash32 {
        match self {
            AgentEvent::Registered { tx, .. }
            | AgentEvent::Configured { tx, .. }
            | AgentEvent::CallerAdded { tx, .. }
            | AgentEvent::CallerRemoved { tx, .. }
            | AgentEvent::Stopped { tx }
            | AgentEvent::Reactivated { tx }
            | AgentEvent::Refused { tx, .. } => *tx,
        }
    }
}

/// State of an agent's stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    /// The agent, once registered.
    pub record: Option<AgentRecord>,
}

/// The agent aggregate.
#[derive(Debug)]
pub enum AgentAggregate {}

/// Id of the event transaction `tx` records on an agent.
pub fn tx_event_id(tx: &Hash32) -> u128 {
    event_id("agent-tx", &tx.0)
}

/// What agent `agent` in `state` records for `command`, or why it refuses: the rules of every
/// agent transaction, also run by the node before committing.
pub fn decide_act(
    state: &AgentState,
    agent: Address,
    command: &AgentCommand,
) -> Result<AgentEvent, TxError> {
    let tx = command.tx;
    if let AgentAct::Register { role, owner } = &command.act {
        assert_eq!(command.sender, agent, "an agent registers itself");
        if state.record.is_some() {
            return Err(TxError::NotActive(format!("{agent} is already an agent")));
        }
        let (threshold, _) = role.defaults();
        let record = AgentRecord {
            role: *role,
            owner: *owner,
            callers: BTreeSet::new(),
            reputation: 0,
            strategy: Strategy::RolePreference {
                preferences: None,
                threshold: Some(threshold),
            },
            auto_vote: false,
            active: true,
            registered_at_ms: command.committed_at_ms,
        };
        return Ok(AgentEvent::Registered { tx, record });
    }
    let record = state
        .record
        .as_ref()
        .ok_or_else(|| TxError::NotFound(format!("{agent} is not a registered agent")))?;
    if command.sender != record.owner {
        return Err(TxError::NotOwner(format!(
            "only the owner {} manages agent {agent}",
            record.owner
        )));
    }
    Ok(match &command.act {
        AgentAct::Register { .. } => unreachable!("handled above"),
        AgentAct::Configure {
            strategy,
            auto_vote,
        } => AgentEvent::Configured {
            tx,
            strategy: strategy.clone(),
            auto_vote: *auto_vote,
        },
        AgentAct::AddCaller { public_key } => {
            if record.callers.contains(public_key) {
                return Err(TxError::NotActive(format!(
                    "{public_key} is already a caller of {agent}"
                )));
            }
            if record.callers.len() >= CALLERS_MAX {
                return Err(TxError::LimitExceeded(format!(
                    "an agent has at most {CALLERS_MAX} callers"
                )));
            }
            AgentEvent::CallerAdded {
                tx,
                public_key: public_key.clone(),
            }
        }
        AgentAct::RemoveCaller { public_key } => {
            if !record.callers.contains(public_key) {
                return Err(TxError::NotFound(format!(
                    "{public_key} is not a caller of {agent}"
                )));
            }
            AgentEvent::CallerRemoved {
                tx,
                public_key: public_key.clone(),
            }
        }
        AgentAct::Stop if !record.active => {
            return Err(TxError::NotActive(format!("agent {agent} is stopped")));
        }
        AgentAct::Stop => AgentEvent::Stopped { tx },
        AgentAct::Reactivate if record.active => {
            return Err(TxError::NotActive(format!("agent {agent} is active")));
        }
        AgentAct::Reactivate => AgentEvent::Reactivated { tx },
    })
}

impl Aggregate for AgentAggregate {
    type Id = AgentId;
    type Facts = ();
    type State = AgentState;
    type Command = AgentCommand;
    type Event = AgentEvent;
    type Error = TxError;

    const NAME: &'static str = "agent";

    fn stream(id: &AgentId) -> String {
        agent_stream(&id.chain_id, &id.agent)
    }

    fn decide(
        state: &AgentState,
        ctx: &Context<'_, AgentAggregate>,
        command: AgentCommand,
    ) -> Result<Vec<AgentEvent>, TxError> {
        let event =
            decide_act(state, ctx.id.agent, &command).unwrap_or_else(|error| AgentEvent::Refused {
                tx: command.tx,
                reason: error.into(),
            });
        Ok(vec![event])
    }

    fn evolve(state: &mut AgentState, event: &AgentEvent) {
        if let AgentEvent::Registered { record, .. } = event {
            assert!(state.record.is_none(), "an agent registers once");
            state.record = Some(record.clone());
            return;
        }
        if let AgentEvent::Refused { .. } = event {
            return;
        }
        let record = state.record.as_mut().expect("events follow registration");
        match event {
            AgentEvent::Registered { .. } | AgentEvent::Refused { .. } => unreachable!(),
            AgentEvent::Configured {
                strategy,
                auto_vote,
                ..
            } => {
                record.strategy = strategy.clone();
                record.auto_vote = *auto_vote;
            }
            AgentEvent::CallerAdded { public_key, .. } => {
                record.callers.insert(public_key.clone());
            }
            AgentEvent::CallerRemoved { public_key, .. } => {
                record.callers.remove(public_key);
            }
            AgentEvent::Stopped { .. } => record.active = false,
            AgentEvent::Reactivated { .. } => record.active = true,
        }
    }

    fn event_id(_id: &AgentId, event: &AgentEvent) -> u128 {
        tx_event_id(&event.tx())
    }

    fn command_event_id(_id: &AgentId, command: &AgentCommand) -> Option<u128> {
        Some(tx_event_id(&command.tx))
    }

    fn batch_class(_command: &AgentCommand) -> BatchClass {
        BatchClass::Decision
    }

    fn encode(event: &AgentEvent) -> (&'static str, Vec<u8>) {
        let data = serde_json::to_vec(event).expect("events serialize");
        (event.event_type(), data)
    }

    fn from_stored(event: DomainEvent) -> Option<AgentEvent> {
        match event {
            DomainEvent::Agent(event) => Some(event),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::replay;

    const AGENT: Address = Address([7; 20]);
    const OWNER: Address = Address([8; 20]);

    fn command(n: u8, sender: Address, act: AgentAct) -> AgentCommand {
        AgentCommand {
            tx: Hash32::digest(&[n]),
            sender,
            act,
            committed_at_ms: 1_000,
        }
    }

    fn decide(events: &[AgentEvent], command: AgentCommand) -> AgentEvent {
        let id = AgentId {
            chain_id: "c".into(),
            agent: AGENT,
        };
        let ctx = Context {
            id: &id,
            facts: &(),
            now_ms: 0,
        };
        let mut events = AgentAggregate::decide(&replay::<AgentAggregate>(events), &ctx, command)
            .expect("always an event");
        events.remove(0)
    }

    fn registered(role: Role) -> Vec<AgentEvent> {
        let register = AgentAct::Register { role, owner: OWNER };
        vec![decide(&[], command(0, AGENT, register))]
    }

    fn code(event: &AgentEvent) -> &str {
        match event {
            AgentEvent::Refused { reason, .. } => &reason.code,
            other => panic!("expected a refusal: {other:?}"),
        }
    }

    #[test]
    fn the_role_preference_table_of_product_md() {
        use ProposalType::*;
        use Support::{Against, For};
        let table = [
            (Role::Provider, [For, Against, For, Against, For, Against]),
            (Role::Consumer, [For, Against, For, Against, For, Against]),
            (
                Role::Builder,
                [Against, For, Against, Against, Against, For],
            ),
            (
                Role::Coordinator,
                [For, For, Against, Against, Against, Against],
            ),
        ];
        for (role, votes) in table {
            let mut record = match &registered(role)[0] {
                AgentEvent::Registered { record, .. } => record.clone(),
                other => panic!("{other:?}"),
            };
            assert_eq!(
                plan(&record, ParameterChange),
                None,
                "auto-voting starts off"
            );
            record.auto_vote = true;
            for (proposal_type, vote) in ProposalType::ALL.iter().zip(votes) {
                assert_eq!(
                    plan(&record, *proposal_type),
                    Some(Plan::Vote(vote)),
                    "{role:?} on {proposal_type:?}"
                );
            }
            record.active = false;
            assert_eq!(
                plan(&record, ParameterChange),
                None,
                "a stopped agent is silent"
            );
        }
    }

    #[test]
    fn owners_configure_preferences_fixed_votes_follow_and_abstain() {
        let mut record = match &registered(Role::Builder)[0] {
            AgentEvent::Registered { record, .. } => record.clone(),
            other => panic!("{other:?}"),
        };
        record.auto_vote = true;
        record.strategy = Strategy::RolePreference {
            preferences: Some(BTreeMap::from([
                (ProposalType::Treasury, 200),
                (ProposalType::Emergency, 1_000),
            ])),
            threshold: None,
        };
        assert_eq!(
            plan(&record, ProposalType::Treasury),
            Some(Plan::Vote(Support::For))
        );
        assert_eq!(
            plan(&record, ProposalType::Emergency),
            Some(Plan::Vote(Support::Against)),
            "an emergency is never supported automatically"
        );
        assert_eq!(
            plan(&record, ProposalType::DaoGrants),
            Some(Plan::Vote(Support::For)),
            "the role's default where the owner named nothing"
        );
        record.strategy = Strategy::Fixed {
            votes: BTreeMap::from([(ProposalType::Emergency, Support::For)]),
        };
        assert_eq!(
            plan(&record, ProposalType::Emergency),
            Some(Plan::Vote(Support::For))
        );
        assert_eq!(plan(&record, ProposalType::Treasury), None);
        record.strategy = Strategy::Follow { address: OWNER };
        assert_eq!(
            plan(&record, ProposalType::Treasury),
            Some(Plan::Follow(OWNER))
        );
        record.strategy = Strategy::Abstain;
        assert_eq!(
            plan(&record, ProposalType::Treasury),
            Some(Plan::Vote(Support::Abstain))
        );
    }

    #[test]
    fn only_the_owner_manages_an_agent_and_nobody_sets_its_reputation() {
        let mut events = registered(Role::Provider);
        assert_eq!(
            code(&decide(&events, command(1, AGENT, AgentAct::Stop))),
            "not_owner"
        );
        let again = AgentAct::Register {
            role: Role::Builder,
            owner: AGENT,
        };
        assert_eq!(
            code(&decide(&events, command(2, AGENT, again))),
            "not_active"
        );
        let key = "ab".repeat(32);
        let add = AgentAct::AddCaller {
            public_key: key.clone(),
        };
        events.push(decide(&events, command(3, OWNER, add.clone())));
        assert_eq!(code(&decide(&events, command(4, OWNER, add))), "not_active");
        events.push(decide(&events, command(5, OWNER, AgentAct::Stop)));
        assert_eq!(
            code(&decide(&events, command(6, OWNER, AgentAct::Stop))),
            "not_active"
        );
        events.push(decide(&events, command(7, OWNER, AgentAct::Reactivate)));
        let remove = AgentAct::RemoveCaller { public_key: key };
        events.push(decide(&events, command(8, OWNER, remove.clone())));
        assert_eq!(
            code(&decide(&events, command(9, OWNER, remove))),
            "not_found"
        );
        let record = replay::<AgentAggregate>(&events).record.unwrap();
        assert!(record.active && record.callers.is_empty());
        assert_eq!(record.reputation, 0);
        // No body carries a reputation: a configure that tries is malformed.
        let body = format!(
            r#"{{"agent":"{AGENT}","strategy":{{"type":"abstain"}},"auto_vote":true,"reputation":1000}}"#
        );
        assert!(serde_json::from_str::<ConfigureBody>(&body).is_err());
        let strategy = r#"{"type":"role_preference","threshold":1001}"#;
        let strategy: Strategy = serde_json::from_str(strategy).unwrap();
        assert_eq!(strategy.validate().unwrap_err().code(), "malformed");
    }
}
