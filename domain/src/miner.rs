//! Miners (PRODUCT.md §6): one aggregate per miner, stream `miner/<chain>/<address>` (the
//! address derived from its key, where it is paid), and the chain's index of open jobs that the
//! scheduler reloads at start.
//!
//! A miner registers through the signed miner protocol (not a transaction: it pays nothing),
//! with its adapter report, price and capacity; registering again updates them. Its reputation
//! (0–1000, from [`crate::job::REPUTATION_START`]) changes only by verified outcomes of its jobs:
//! up for a verified result, down for a disproved one or a lease that ran out.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::aggregate::{Aggregate, BatchClass, Context};
use crate::codec::DomainEvent;
use crate::error::TxError;
use crate::event_id::event_id;
use crate::hash::Hash32;
use crate::job::REPUTATION_START;
use crate::money::Amount;

/// Reputation gained by a verified result.
pub const VERIFIED_GAIN: i32 = 10;
/// Reputation lost by a disproved result.
pub const DISPROVED_LOSS: i32 = -100;
/// Reputation lost by a lease that ran out.
pub const LEASE_LOSS: i32 = -20;
/// Highest reputation.
pub const REPUTATION_MAX: u16 = 1_000;
/// Most jobs a miner runs at once.
pub const CAPACITY_MAX: u32 = 64;
/// Most models one miner advertises.
pub const MODELS_MAX: usize = 16;
/// Longest text field of a registration.
pub const TEXT_LEN_MAX: usize = 128;

/// Stream of a miner.
pub fn miner_stream(chain_id: &str, miner: &Address) -> String {
    format!("miner/{chain_id}/{miner}")
}

/// A miner's adapter report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuReport {
    /// Adapter name.
    pub name: String,
    /// wgpu backend.
    pub backend: String,
    /// Device type (discrete, integrated, cpu…).
    pub device_type: String,
    /// GPU memory, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vram_mb: Option<u64>,
}

/// Body of `POST /v1/miners/register`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterMiner {
    /// Its adapter.
    pub gpu: GpuReport,
    /// Its price per second of GPU time.
    pub price_per_s: Amount,
    /// Its region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Its pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_id: Option<String>,
    /// Jobs it runs at once.
    pub capacity: u32,
    /// The language models it holds (the SHA-256 of each file), for `llm_generate` jobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<Hash32>,
    /// Its price per generated token of an `llm_generate` job (none: its price per second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_per_token: Option<Amount>,
}

impl RegisterMiner {
    /// The least it asks for a job of `input`: a token of text generation, or a second of
    /// anything else (the scheduler leases it only jobs whose max_price covers it).
    pub fn least_price(&self, input: &crate::job::JobInput) -> Amount {
        match input {
            crate::job::JobInput::LlmGenerate(_) => {
                self.price_per_token.unwrap_or(self.price_per_s)
            }
            _ => self.price_per_s,
        }
    }

    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), TxError> {
        if !(1..=CAPACITY_MAX).contains(&self.capacity) {
            return Err(TxError::Malformed(format!(
                "capacity is 1..={CAPACITY_MAX}"
            )));
        }
        let texts = [
            Some(&self.gpu.name),
            Some(&self.gpu.backend),
            Some(&self.gpu.device_type),
            self.region.as_ref(),
            self.pool_id.as_ref(),
        ];
        if texts.into_iter().flatten().any(|t| t.len() > TEXT_LEN_MAX) {
            return Err(TxError::Malformed(format!(
                "text fields have at most {TEXT_LEN_MAX} bytes"
            )));
        }
        if self.models.len() > MODELS_MAX {
            return Err(TxError::Malformed(format!("at most {MODELS_MAX} models")));
        }
        Ok(())
    }
}

/// A registered miner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinerRecord {
    /// Its key, hex.
    pub public_key: String,
    /// What it registered last.
    pub offer: RegisterMiner,
    /// 0–1000.
    pub reputation: u16,
    /// When it first registered.
    pub registered_at_ms: u64,
    /// Whether it is in contact (a registration counts; silence for a while does not).
    #[serde(default)]
    pub online: bool,
}

/// State of a miner's stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinerState {
    /// The miner, once registered.
    pub record: Option<MinerRecord>,
}

/// Why a miner's reputation changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its result was verified.
    Verified,
    /// Its result was disproved.
    Disproved,
    /// Its lease ran out without a result.
    LeaseExpired,
}

impl Outcome {
    /// The reputation change.
    pub fn delta(self) -> i32 {
        match self {
            Outcome::Verified => VERIFIED_GAIN,
            Outcome::Disproved => DISPROVED_LOSS,
            Outcome::LeaseExpired => LEASE_LOSS,
        }
    }
}

/// Commands to a miner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MinerCommand {
    /// A signed registration.
    Register {
        /// Its key, hex.
        public_key: String,
        /// The offer (boxed: the largest variant).
        offer: Box<RegisterMiner>,
        /// The request's time.
        at_ms: u64,
    },
    /// Its contact changed: heard from again after silence (`online`), or silent too long.
    Presence {
        /// Online or offline.
        online: bool,
        /// When the change was seen.
        at_ms: u64,
    },
    /// An outcome of one of its jobs.
    Outcome {
        /// The job.
        job: Hash32,
        /// What happened.
        outcome: Outcome,
    },
}

/// Events of a miner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MinerEvent {
    /// Registered, or its offer updated.
    Registered {
        /// Its key, hex.
        public_key: String,
        /// The offer (boxed: the largest variant).
        offer: Box<RegisterMiner>,
        /// When.
        at_ms: u64,
        /// Its first registration (the index lists it).
        first: bool,
    },
    /// It is in contact again, or went silent: the only events its heartbeats cause.
    PresenceChanged {
        /// Online or offline.
        online: bool,
        /// When.
        at_ms: u64,
    },
    /// Its reputation changed.
    ReputationChanged {
        /// The job.
        job: Hash32,
        /// Why.
        outcome: Outcome,
        /// The reputation after the change.
        reputation: u16,
    },
}

impl MinerEvent {
    /// Every type name, for the decoder.
    pub const TYPES: [&'static str; 3] = [
        "MinerRegistered.v1",
        "MinerReputationChanged.v1",
        "MinerPresenceChanged.v1",
    ];

    /// Versioned type name.
    pub fn event_type(&self) -> &'static str {
        match self {
            MinerEvent::Registered { .. } => Self::TYPES[0],
            MinerEvent::ReputationChanged { .. } => Self::TYPES[1],
            MinerEvent::PresenceChanged { .. } => Self::TYPES[2],
        }
    }
}

/// Identity of a miner.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MinerId {
    /// Chain.
    pub chain_id: String,
    /// Its address.
    pub miner: Address,
}

/// The miner aggregate.
#[derive(Debug)]
pub enum MinerAggregate {}

/// Id of the event an outcome records.
pub fn outcome_event_id(job: &Hash32, miner: &Address, outcome: Outcome) -> u128 {
    let mut subject = job.0.to_vec();
    subject.extend_from_slice(&miner.0);
    subject.push(outcome as u8);
    event_id("miner-outcome", &subject)
}

/// Id of the event a change of presence at `at_ms` records.
pub fn presence_event_id(miner: &Address, online: bool, at_ms: u64) -> u128 {
    let mut subject = miner.0.to_vec();
    subject.push(u8::from(online));
    subject.extend_from_slice(&at_ms.to_be_bytes());
    event_id("miner-presence", &subject)
}

/// Id of the event a registration at `at_ms` records.
pub fn register_event_id(miner: &Address, at_ms: u64) -> u128 {
    let mut subject = miner.0.to_vec();
    subject.extend_from_slice(&at_ms.to_be_bytes());
    event_id("miner-registered", &subject)
}

impl Aggregate for MinerAggregate {
    type Id = MinerId;
    type Facts = ();
    type State = MinerState;
    type Command = MinerCommand;
    type Event = MinerEvent;
    type Error = TxError;

    const NAME: &'static str = "miner";

    fn stream(id: &MinerId) -> String {
        miner_stream(&id.chain_id, &id.miner)
    }

    fn decide(
        state: &MinerState,
        _ctx: &Context<'_, MinerAggregate>,
        command: MinerCommand,
    ) -> Result<Vec<MinerEvent>, TxError> {
        match command {
            MinerCommand::Register {
                public_key,
                offer,
                at_ms,
            } => {
                offer.validate()?;
                Ok(vec![MinerEvent::Registered {
                    public_key,
                    offer,
                    at_ms,
                    first: state.record.is_none(),
                }])
            }
            MinerCommand::Presence { online, at_ms } => {
                let changed = state.record.as_ref().is_some_and(|r| r.online != online);
                Ok(match changed {
                    true => vec![MinerEvent::PresenceChanged { online, at_ms }],
                    false => Vec::new(),
                })
            }
            MinerCommand::Outcome { job, outcome } => {
                let current = state
                    .record
                    .as_ref()
                    .map_or(REPUTATION_START, |r| r.reputation);
                let reputation = (i32::from(current) + outcome.delta())
                    .clamp(0, i32::from(REPUTATION_MAX)) as u16;
                Ok(vec![MinerEvent::ReputationChanged {
                    job,
                    outcome,
                    reputation,
                }])
            }
        }
    }

    fn evolve(state: &mut MinerState, event: &MinerEvent) {
        match event {
            MinerEvent::Registered {
                public_key,
                offer,
                at_ms,
                ..
            } => match &mut state.record {
                Some(record) => {
                    record.offer = RegisterMiner::clone(offer);
                    record.online = true;
                }
                None => {
                    state.record = Some(MinerRecord {
                        public_key: public_key.clone(),
                        offer: RegisterMiner::clone(offer),
                        reputation: REPUTATION_START,
                        registered_at_ms: *at_ms,
                        online: true,
                    })
                }
            },
            MinerEvent::PresenceChanged { online, .. } => {
                if let Some(record) = &mut state.record {
                    record.online = *online;
                }
            }
            MinerEvent::ReputationChanged { reputation, .. } => {
                if let Some(record) = &mut state.record {
                    record.reputation = *reputation;
                }
            }
        }
    }

    fn event_id(id: &MinerId, event: &MinerEvent) -> u128 {
        match event {
            MinerEvent::Registered { at_ms, .. } => register_event_id(&id.miner, *at_ms),
            MinerEvent::ReputationChanged { job, outcome, .. } => {
                outcome_event_id(job, &id.miner, *outcome)
            }
            MinerEvent::PresenceChanged { online, at_ms } => {
                presence_event_id(&id.miner, *online, *at_ms)
            }
        }
    }

    fn command_event_id(id: &MinerId, command: &MinerCommand) -> Option<u128> {
        Some(match command {
            MinerCommand::Register { at_ms, .. } => register_event_id(&id.miner, *at_ms),
            MinerCommand::Outcome { job, outcome } => outcome_event_id(job, &id.miner, *outcome),
            MinerCommand::Presence { online, at_ms } => {
                presence_event_id(&id.miner, *online, *at_ms)
            }
        })
    }

    fn batch_class(_command: &MinerCommand) -> BatchClass {
        BatchClass::Decision
    }

    fn encode(event: &MinerEvent) -> (&'static str, Vec<u8>) {
        let data = serde_json::to_vec(event).expect("events serialize");
        (event.event_type(), data)
    }

    fn from_stored(event: DomainEvent) -> Option<MinerEvent> {
        match event {
            DomainEvent::Miner(event) => Some(event),
            _ => None,
        }
    }
}

/// Stream of a chain's index of open jobs and registered miners.
pub fn market_stream(chain_id: &str) -> String {
    format!("jobs/{chain_id}")
}

/// A chain's open jobs and its miners: what the scheduler reloads at start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketState {
    /// Jobs not yet over.
    pub open: BTreeSet<Hash32>,
    /// Every registered miner.
    pub miners: BTreeSet<Address>,
    /// The job of every receipt.
    #[serde(default)]
    pub receipts: BTreeMap<Hash32, Hash32>,
}

/// Commands to the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MarketCommand {
    /// A job was submitted.
    Open(Hash32),
    /// A job is over.
    Close(Hash32),
    /// A miner registered.
    Miner(Address),
    /// A miner's receipt for a job's result.
    Receipt {
        /// The receipt.
        receipt: Hash32,
        /// The job.
        job: Hash32,
    },
}

/// Events of the index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarketEvent {
    /// A job is open.
    JobOpened(Hash32),
    /// A job is over.
    JobClosed(Hash32),
    /// A miner is known.
    MinerListed(Address),
    /// A receipt is known.
    ReceiptListed {
        /// The receipt.
        receipt: Hash32,
        /// The job.
        job: Hash32,
    },
}

impl MarketEvent {
    /// Every type name, for the decoder.
    pub const TYPES: [&'static str; 4] = [
        "JobOpened.v1",
        "JobClosed.v1",
        "MinerListed.v1",
        "ReceiptListed.v1",
    ];

    /// Versioned type name.
    pub fn event_type(&self) -> &'static str {
        match self {
            MarketEvent::JobOpened(_) => Self::TYPES[0],
            MarketEvent::JobClosed(_) => Self::TYPES[1],
            MarketEvent::MinerListed(_) => Self::TYPES[2],
            MarketEvent::ReceiptListed { .. } => Self::TYPES[3],
        }
    }
}

/// The index aggregate; its id is the chain.
#[derive(Debug)]
pub enum MarketIndex {}

/// Id of the event `command` records.
pub fn market_event_id(command: &MarketCommand) -> u128 {
    match command {
        MarketCommand::Open(job) => event_id("market-open", &job.0),
        MarketCommand::Close(job) => event_id("market-close", &job.0),
        MarketCommand::Miner(miner) => event_id("market-miner", &miner.0),
        MarketCommand::Receipt { receipt, .. } => event_id("market-receipt", &receipt.0),
    }
}

impl Aggregate for MarketIndex {
    type Id = String;
    type Facts = ();
    type State = MarketState;
    type Command = MarketCommand;
    type Event = MarketEvent;
    type Error = TxError;

    const NAME: &'static str = "market-index";

    fn stream(id: &String) -> String {
        market_stream(id)
    }

    fn decide(
        _state: &MarketState,
        _ctx: &Context<'_, MarketIndex>,
        command: MarketCommand,
    ) -> Result<Vec<MarketEvent>, TxError> {
        Ok(match command {
            MarketCommand::Open(job) => vec![MarketEvent::JobOpened(job)],
            MarketCommand::Close(job) => vec![MarketEvent::JobClosed(job)],
            MarketCommand::Miner(miner) => vec![MarketEvent::MinerListed(miner)],
            MarketCommand::Receipt { receipt, job } => {
                vec![MarketEvent::ReceiptListed { receipt, job }]
            }
        })
    }

    fn evolve(state: &mut MarketState, event: &MarketEvent) {
        match event {
            MarketEvent::JobOpened(job) => {
                state.open.insert(*job);
            }
            MarketEvent::JobClosed(job) => {
                state.open.remove(job);
            }
            MarketEvent::MinerListed(miner) => {
                state.miners.insert(*miner);
            }
            MarketEvent::ReceiptListed { receipt, job } => {
                state.receipts.insert(*receipt, *job);
            }
        }
    }

    fn event_id(_id: &String, event: &MarketEvent) -> u128 {
        market_event_id(&match event {
            MarketEvent::JobOpened(job) => MarketCommand::Open(*job),
            MarketEvent::JobClosed(job) => MarketCommand::Close(*job),
            MarketEvent::MinerListed(miner) => MarketCommand::Miner(*miner),
            MarketEvent::ReceiptListed { receipt, job } => MarketCommand::Receipt {
                receipt: *receipt,
                job: *job,
            },
        })
    }

    fn command_event_id(_id: &String, command: &MarketCommand) -> Option<u128> {
        Some(market_event_id(command))
    }

    fn batch_class(_command: &MarketCommand) -> BatchClass {
        BatchClass::Decision
    }

    fn encode(event: &MarketEvent) -> (&'static str, Vec<u8>) {
        let data = serde_json::to_vec(event).expect("events serialize");
        (event.event_type(), data)
    }

    fn from_stored(event: DomainEvent) -> Option<MarketEvent> {
        match event {
            DomainEvent::Market(event) => Some(event),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::replay;

    fn decide(events: &[MinerEvent], command: MinerCommand) -> Vec<MinerEvent> {
        let id = MinerId {
            chain_id: "c".into(),
            miner: Address([5; 20]),
        };
        let ctx = Context {
            id: &id,
            facts: &(),
            now_ms: 0,
        };
        MinerAggregate::decide(&replay::<MinerAggregate>(events), &ctx, command).unwrap()
    }

    fn offer() -> RegisterMiner {
        RegisterMiner {
            gpu: GpuReport {
                name: "gpu".into(),
                backend: "vulkan".into(),
                device_type: "cpu".into(),
                vram_mb: None,
            },
            price_per_s: Amount(1),
            region: None,
            pool_id: None,
            capacity: 1,
            models: Vec::new(),
            price_per_token: None,
        }
    }

    #[test]
    fn only_changes_of_presence_are_events_and_reputation_stays_in_range() {
        let register = MinerCommand::Register {
            public_key: "ab".repeat(32),
            offer: Box::new(offer()),
            at_ms: 1,
        };
        let mut events = decide(&[], register);
        assert!(matches!(
            &events[..],
            [MinerEvent::Registered { first: true, .. }]
        ));
        let presence = |online, at_ms| MinerCommand::Presence { online, at_ms };
        assert!(
            decide(&events, presence(true, 2)).is_empty(),
            "online already"
        );
        events.extend(decide(&events, presence(false, 3)));
        assert!(!replay::<MinerAggregate>(&events).record.unwrap().online);
        assert!(
            decide(&events, presence(false, 4)).is_empty(),
            "offline already"
        );
        let update = MinerCommand::Register {
            public_key: "ab".repeat(32),
            offer: Box::new(offer()),
            at_ms: 5,
        };
        let again = decide(&events, update);
        assert!(matches!(
            &again[..],
            [MinerEvent::Registered { first: false, .. }]
        ));
        events.extend(again);
        assert!(
            replay::<MinerAggregate>(&events).record.unwrap().online,
            "registering is contact"
        );
        for n in 0..20u8 {
            let job = Hash32::digest(&[n]);
            events.extend(decide(
                &events,
                MinerCommand::Outcome {
                    job,
                    outcome: Outcome::Disproved,
                },
            ));
        }
        assert_eq!(
            replay::<MinerAggregate>(&events).record.unwrap().reputation,
            0,
            "never below 0"
        );
    }
}
