//! Stored form of domain events: a versioned type name plus JSON data. Every event the node
//! writes goes through here, so readers (actors, projections, audits) decode one way.

use serde::Deserialize;

use crate::agent::AgentEvent;
use crate::chain::ChainEvent;
use crate::dao::DaoEvent;
use crate::job::JobEvent;
use crate::miner::{MarketEvent, MinerEvent};
use crate::proposal::ProposalEvent;
use crate::staking::StakingEvent;
use crate::vesting::VestingEvent;
use crate::wallet::{Credit, DebitSummary, Payout, WalletEvent};

/// Any event this version of the domain writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainEvent {
    /// An event of a wallet stream.
    Wallet(WalletEvent),
    /// An event of a chain stream.
    Chain(ChainEvent),
    /// An event of a vesting schedule's stream.
    Vesting(VestingEvent),
    /// An event of a chain's DAO stream.
    Dao(DaoEvent),
    /// An event of a proposal's stream.
    Proposal(ProposalEvent),
    /// An event of an agent's stream.
    Agent(AgentEvent),
    /// An event of a job's stream.
    Job(JobEvent),
    /// An event of a miner's stream.
    Miner(MinerEvent),
    /// An event of a chain's job and miner index.
    Market(MarketEvent),
    /// An event of a chain's staking pools.
    Staking(StakingEvent),
}

/// Why stored bytes are not a known event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// No decoder for this type name.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// The data does not match the type.
    #[error("event {event_type} does not decode: {reason}")]
    BadData {
        /// Type name.
        event_type: String,
        /// serde's message.
        reason: String,
    },
}

impl DomainEvent {
    /// Versioned type name.
    pub fn event_type(&self) -> &'static str {
        match self {
            DomainEvent::Wallet(e) => e.event_type(),
            DomainEvent::Chain(e) => e.event_type(),
            DomainEvent::Vesting(e) => e.event_type(),
            DomainEvent::Dao(e) => e.event_type(),
            DomainEvent::Proposal(e) => e.event_type(),
            DomainEvent::Agent(e) => e.event_type(),
            DomainEvent::Job(e) => e.event_type(),
            DomainEvent::Miner(e) => e.event_type(),
            DomainEvent::Market(e) => e.event_type(),
            DomainEvent::Staking(e) => e.event_type(),
        }
    }

    /// JSON data.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            DomainEvent::Wallet(e) => serde_json::to_vec(e),
            DomainEvent::Chain(e) => serde_json::to_vec(e),
            DomainEvent::Vesting(e) => serde_json::to_vec(e),
            DomainEvent::Dao(e) => serde_json::to_vec(e),
            DomainEvent::Proposal(e) => serde_json::to_vec(e),
            DomainEvent::Agent(e) => serde_json::to_vec(e),
            DomainEvent::Job(e) => serde_json::to_vec(e),
            DomainEvent::Miner(e) => serde_json::to_vec(e),
            DomainEvent::Market(e) => serde_json::to_vec(e),
            DomainEvent::Staking(e) => serde_json::to_vec(e),
        }
        .expect("domain events serialize")
    }

    /// Decodes a stored event, upcasting older versions to the current shape.
    /// `recorded_at_ms` is the log's metadata for the event: what a `Debited.v1` did not record
    /// (`committed_at_ms`) is taken from it.
    pub fn decode(
        event_type: &str,
        data: &[u8],
        recorded_at_ms: u64,
    ) -> Result<DomainEvent, DecodeError> {
        let bad = |e: serde_json::Error| DecodeError::BadData {
            event_type: event_type.to_string(),
            reason: e.to_string(),
        };
        match event_type {
            "Debited.v1" => match serde_json::from_slice(data).map_err(bad)? {
                WalletEvent::Debited(mut debit) => {
                    debit.committed_at_ms = recorded_at_ms;
                    Ok(DomainEvent::Wallet(WalletEvent::Debited(debit)))
                }
                _ => Err(DecodeError::BadData {
                    event_type: event_type.to_string(),
                    reason: "not a debit".into(),
                }),
            },
            "Funded.v1" | "Debited.v2" | "Credited.v1" | "PaidOut.v1" => {
                serde_json::from_slice(data)
                    .map(DomainEvent::Wallet)
                    .map_err(bad)
            }
            "ChainCreated.v1" | "BlockSealed.v1" => serde_json::from_slice(data)
                .map(DomainEvent::Chain)
                .map_err(bad),
            "VestingCreated.v1" | "VestingClaimed.v1" | "ClaimRefused.v1" => {
                serde_json::from_slice(data)
                    .map(DomainEvent::Vesting)
                    .map_err(bad)
            }
            "CouncilApproved.v1"
            | "ModulePaused.v1"
            | "ModuleResumed.v1"
            | "CouncilActRefused.v1"
            | "ProposalTracked.v1"
            | "AgentTracked.v1"
            | "Enacted.v1" => serde_json::from_slice(data)
                .map(DomainEvent::Dao)
                .map_err(bad),
            proposal if ProposalEvent::TYPES.contains(&proposal) => serde_json::from_slice(data)
                .map(DomainEvent::Proposal)
                .map_err(bad),
            agent if AgentEvent::TYPES.contains(&agent) => serde_json::from_slice(data)
                .map(DomainEvent::Agent)
                .map_err(bad),
            job if JobEvent::TYPES.contains(&job) => serde_json::from_slice(data)
                .map(DomainEvent::Job)
                .map_err(bad),
            miner if MinerEvent::TYPES.contains(&miner) => serde_json::from_slice(data)
                .map(DomainEvent::Miner)
                .map_err(bad),
            market if MarketEvent::TYPES.contains(&market) => serde_json::from_slice(data)
                .map(DomainEvent::Market)
                .map_err(bad),
            staking if StakingEvent::TYPES.contains(&staking) => serde_json::from_slice(data)
                .map(DomainEvent::Staking)
                .map_err(bad),
            other => Err(DecodeError::UnknownType(other.to_string())),
        }
    }
}

/// The follower's view of a wallet event: debits without their envelope.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub enum WalletFact {
    /// A debit.
    Debited(DebitSummary),
    /// A credit.
    Credited(Credit),
    /// A module account's payout.
    PaidOut(Payout),
}

/// Whether `event_type` is a debit (of any version).
pub fn is_debit(event_type: &str) -> bool {
    matches!(event_type, "Debited.v1" | "Debited.v2")
}

/// Decodes a debit's, credit's or payout's data into a [`WalletFact`]; `None` for other types.
pub fn decode_wallet_fact(
    event_type: &str,
    data: &[u8],
) -> Option<Result<WalletFact, DecodeError>> {
    if !is_debit(event_type) && event_type != "Credited.v1" && event_type != "PaidOut.v1" {
        return None;
    }
    Some(
        serde_json::from_slice(data).map_err(|e| DecodeError::BadData {
            event_type: event_type.to_string(),
            reason: e.to_string(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Amount;
    use crate::wallet::FundSource;

    #[test]
    fn events_round_trip_and_match_the_stored_fixture() {
        let event = DomainEvent::Wallet(WalletEvent::Funded {
            amount: Amount(5),
            source: FundSource::Genesis,
        });
        let data = event.encode();
        // The stored form is a contract with every log ever written: changing it needs an upcaster.
        assert_eq!(
            String::from_utf8(data.clone()).unwrap(),
            r#"{"Funded":{"amount":"5","source":"genesis"}}"#
        );
        assert_eq!(
            DomainEvent::decode(event.event_type(), &data, 0).unwrap(),
            event
        );
        assert!(matches!(
            DomainEvent::decode("Nope.v1", &data, 0),
            Err(DecodeError::UnknownType(_))
        ));
        assert!(matches!(
            DomainEvent::decode("Funded.v1", b"{}", 0),
            Err(DecodeError::BadData { .. })
        ));
    }

    #[test]
    fn each_aggregate_encodes_its_events_as_the_stored_form() {
        use crate::aggregate::Aggregate;
        let funded = WalletEvent::Funded {
            amount: Amount(5),
            source: FundSource::Genesis,
        };
        let stored = DomainEvent::Wallet(funded.clone());
        assert_eq!(
            crate::wallet::Wallet::encode(&funded),
            (stored.event_type(), stored.encode())
        );
        let claimed = crate::vesting::VestingEvent::VestingClaimed {
            claim_tx: crate::hash::Hash32::digest(b"c"),
            beneficiary: crate::address::Address([1; 20]),
            asset: None,
            amount: Amount(3),
        };
        let stored = DomainEvent::Vesting(claimed.clone());
        assert_eq!(
            crate::vesting::Vesting::encode(&claimed),
            (stored.event_type(), stored.encode())
        );
        let resumed = DaoEvent::ModuleResumed {
            module: crate::kinds::Module::Jobs,
            cause: crate::dao::Resumed::Expired { until_ms: 9 },
            member: None,
        };
        let stored = DomainEvent::Dao(resumed.clone());
        assert_eq!(
            crate::dao::Dao::encode(&resumed),
            (stored.event_type(), stored.encode())
        );
    }

    #[test]
    fn a_v1_debit_is_upcast_with_the_time_the_log_recorded_it() {
        // Exactly as release 0.1 stored it (no committed_at_ms).
        let v1 = concat!(
            r#"{"Debited":{"tx_hash":"ba767815624e3f397735b964399429258a3a72930d8f4724235b83f8f724a19b","#,
            r#""nonce":0,"to":"ait113f999de089b08dca4b38f57ad3800da28884dfa","amount":"5","fee":"0","#,
            r#""treasury":"ait1f7bb14a06945cdb97a6922000000000000000000","#,
            r#""envelope":{"payload":"{}","public_key":"00","signature":"00"}}}"#
        );
        let Ok(DomainEvent::Wallet(WalletEvent::Debited(debit))) =
            DomainEvent::decode("Debited.v1", v1.as_bytes(), 1_795_940_592_000)
        else {
            panic!("a v1 debit decodes")
        };
        assert_eq!(debit.committed_at_ms, 1_795_940_592_000);
        assert_eq!(debit.amount, Amount(5));
        let v2 = DomainEvent::Wallet(WalletEvent::Debited(debit.clone()));
        assert_eq!(v2.event_type(), "Debited.v2");
        assert_eq!(
            DomainEvent::decode("Debited.v2", &v2.encode(), 1).unwrap(),
            v2,
            "a v2 debit keeps its own commit time"
        );
        assert!(is_debit("Debited.v1") && is_debit("Debited.v2"));
    }
}
