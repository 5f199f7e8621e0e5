//! Stored form of domain events: a versioned type name plus JSON data. Every event the node
//! writes goes through here, so readers (actors, projections, audits) decode one way.

use serde::Deserialize;

use crate::chain::ChainEvent;
use crate::wallet::{Credit, DebitSummary, WalletEvent};

/// Any event this version of the domain writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainEvent {
    /// An event of a wallet stream.
    Wallet(WalletEvent),
    /// An event of a chain stream.
    Chain(ChainEvent),
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
        }
    }

    /// JSON data.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            DomainEvent::Wallet(e) => serde_json::to_vec(e),
            DomainEvent::Chain(e) => serde_json::to_vec(e),
        }
        .expect("domain events serialize")
    }

    /// Decodes a stored event.
    pub fn decode(event_type: &str, data: &[u8]) -> Result<DomainEvent, DecodeError> {
        let bad = |e: serde_json::Error| DecodeError::BadData {
            event_type: event_type.to_string(),
            reason: e.to_string(),
        };
        match event_type {
            "Funded.v1" | "Debited.v1" | "Credited.v1" => serde_json::from_slice(data)
                .map(DomainEvent::Wallet)
                .map_err(bad),
            "ChainCreated.v1" | "BlockSealed.v1" => serde_json::from_slice(data)
                .map(DomainEvent::Chain)
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
}

/// Decodes a `Debited.v1` or `Credited.v1` event's data into a [`WalletFact`]; `None` for other
/// types.
pub fn decode_wallet_fact(
    event_type: &str,
    data: &[u8],
) -> Option<Result<WalletFact, DecodeError>> {
    if event_type != "Debited.v1" && event_type != "Credited.v1" {
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
            DomainEvent::decode(event.event_type(), &data).unwrap(),
            event
        );
        assert!(matches!(
            DomainEvent::decode("Nope.v1", &data),
            Err(DecodeError::UnknownType(_))
        ));
        assert!(matches!(
            DomainEvent::decode("Funded.v1", b"{}"),
            Err(DecodeError::BadData { .. })
        ));
    }
}
