//! The wallet aggregate: one account's balance and nonce on one chain.
//!
//! A transfer is two facts in two streams: `Debited` in the sender's stream (amount + fee leave,
//! nonce advances) and `Credited` in the recipient's (and, for the fee, the treasury's), linked
//! by the transfer id (= the tx hash). Between the two the value is *in flight*; the transfer
//! process manager delivers the credits. Credits carry deterministic event ids, so a credit
//! delivered twice is stored once.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::aggregate::{Aggregate, BatchClass, Context};
use crate::codec::DomainEvent;
use crate::error::TxError;
use crate::event_id::event_id;
use crate::hash::Hash32;
use crate::keys::SigningKey;
use crate::money::Amount;
use crate::tx::{SignedEnvelope, TxAction, TxPayload, VerifiedTx, sign_payload};

/// Stream of a wallet.
pub fn wallet_stream(chain_id: &str, address: &Address) -> String {
    format!("wallet/{chain_id}/{address}")
}

/// Balance and next nonce of an account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletState {
    /// Spendable balance.
    pub balance: Amount,
    /// Next expected nonce.
    pub nonce: u64,
}

/// Where minted value came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FundSource {
    /// Genesis allocation.
    Genesis,
}

/// What a credit pays for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditKind {
    /// The transferred amount, to the recipient.
    Transfer,
    /// The fee, to the chain's treasury.
    Fee,
}

impl CreditKind {
    fn tag(self) -> &'static str {
        match self {
            CreditKind::Transfer => "credit-transfer",
            CreditKind::Fee => "credit-fee",
        }
    }
}

/// A credit owed to an account by a debit elsewhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credit {
    /// Links the credit to its debit: the transaction hash.
    pub transfer_id: Hash32,
    /// Payer.
    pub from: Address,
    /// Base units.
    pub amount: Amount,
    /// Amount or fee.
    pub kind: CreditKind,
}

impl Credit {
    /// Deterministic event id of this credit.
    pub fn event_id(&self) -> u128 {
        event_id(self.kind.tag(), &self.transfer_id.0)
    }
}

/// The sender's side of a transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Debit {
    /// Transaction hash (also the transfer id).
    pub tx_hash: Hash32,
    /// Nonce consumed.
    pub nonce: u64,
    /// Recipient.
    pub to: Address,
    /// Amount sent.
    pub amount: Amount,
    /// Fee paid.
    pub fee: Amount,
    /// Treasury receiving the fee.
    pub treasury: Address,
    /// The node's clock when the transaction committed, Unix milliseconds. `Debited.v1` events
    /// did not record it; they are read with the log's `recorded_at_ms` instead.
    #[serde(default)]
    pub committed_at_ms: u64,
    /// The signed envelope, so the log can be re-verified by anyone.
    pub envelope: SignedEnvelope,
}

impl Debit {
    /// Total leaving the sender.
    pub fn total(&self) -> Amount {
        self.amount
            .checked_add(self.fee)
            .expect("checked when decided")
    }

    /// Credits this debit owes: (recipient, credit) for the amount, and the fee to the treasury
    /// when it is not zero.
    pub fn credits(&self, sender: Address) -> Vec<(Address, Credit)> {
        self.summary().credits(sender)
    }

    /// The debit without its envelope.
    pub fn summary(&self) -> DebitSummary {
        DebitSummary {
            tx_hash: self.tx_hash,
            nonce: self.nonce,
            to: self.to,
            amount: self.amount,
            fee: self.fee,
            treasury: self.treasury,
            committed_at_ms: self.committed_at_ms,
        }
    }

    /// Deterministic event id of this debit.
    pub fn event_id(&self) -> u128 {
        debit_event_id(&self.tx_hash)
    }
}

/// What followers of the log (block sealer, transfer manager) need of a debit. Decoding a
/// stored `Debited` event into this skips the envelope's strings instead of copying them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DebitSummary {
    /// Transaction hash.
    pub tx_hash: Hash32,
    /// Nonce consumed.
    pub nonce: u64,
    /// Recipient.
    pub to: Address,
    /// Amount sent.
    pub amount: Amount,
    /// Fee paid.
    pub fee: Amount,
    /// Treasury receiving the fee.
    pub treasury: Address,
    /// When it committed (see [`Debit::committed_at_ms`]).
    #[serde(default)]
    pub committed_at_ms: u64,
}

impl DebitSummary {
    /// Credits the debit owes: (recipient, credit) for the amount, and the fee to the treasury
    /// when it is not zero.
    pub fn credits(&self, sender: Address) -> Vec<(Address, Credit)> {
        let credit = |amount, kind| Credit {
            transfer_id: self.tx_hash,
            from: sender,
            amount,
            kind,
        };
        let mut credits = vec![(self.to, credit(self.amount, CreditKind::Transfer))];
        if self.fee > Amount::ZERO {
            credits.push((self.treasury, credit(self.fee, CreditKind::Fee)));
        }
        credits
    }
}

/// Events of a wallet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WalletEvent {
    /// Value minted into the account (genesis).
    Funded {
        /// Base units.
        amount: Amount,
        /// Why.
        source: FundSource,
    },
    /// Value left for a transfer; the nonce advanced.
    Debited(Debit),
    /// Value arrived from a transfer.
    Credited(Credit),
}

impl WalletEvent {
    /// Versioned event type name.
    pub fn event_type(&self) -> &'static str {
        match self {
            WalletEvent::Funded { .. } => "Funded.v1",
            WalletEvent::Debited(_) => "Debited.v2",
            WalletEvent::Credited(_) => "Credited.v1",
        }
    }
}

/// A transfer the node signs with a key it holds (custodial wallets, the faucet): the wallet
/// assigns its next nonce when it decides.
#[derive(Clone, Debug)]
pub struct SignOrder {
    /// The wallet's own key.
    pub key: SigningKey,
    /// Recipient.
    pub to: Address,
    /// Amount.
    pub amount: Amount,
    /// Fee.
    pub fee: Amount,
}

/// Commands to a wallet.
#[derive(Clone, Debug)]
pub enum WalletCommand {
    /// Genesis allocation.
    Fund {
        /// Base units.
        amount: Amount,
    },
    /// A verified transfer signed by this wallet's key.
    Transfer(Box<VerifiedTx>),
    /// A transfer to sign with the wallet's own key at its next nonce.
    SignAndTransfer(Box<SignOrder>),
    /// A credit owed by a debit in another stream.
    Credit(Credit),
}

/// Identity of a wallet: an account on a chain.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WalletId {
    /// Chain.
    pub chain_id: Arc<str>,
    /// Account.
    pub address: Address,
}

/// What a wallet knows about its chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletFacts {
    /// The chain's minimum fee.
    pub min_fee: Amount,
}

/// The wallet aggregate.
#[derive(Debug)]
pub enum Wallet {}

impl Aggregate for Wallet {
    type Id = WalletId;
    type Facts = WalletFacts;
    type State = WalletState;
    type Command = WalletCommand;
    type Event = WalletEvent;
    type Error = TxError;

    const NAME: &'static str = "wallet";

    fn stream(id: &WalletId) -> String {
        wallet_stream(&id.chain_id, &id.address)
    }

    fn decide(
        state: &WalletState,
        ctx: &Context<'_, Wallet>,
        command: WalletCommand,
    ) -> Result<Vec<WalletEvent>, TxError> {
        decide(state, ctx, command)
    }

    fn evolve(state: &mut WalletState, event: &WalletEvent) {
        evolve(state, event)
    }

    fn event_id(id: &WalletId, event: &WalletEvent) -> u128 {
        wallet_event_id(&id.chain_id, &id.address, event)
    }

    fn command_event_id(id: &WalletId, command: &WalletCommand) -> Option<u128> {
        match command {
            WalletCommand::Fund { .. } => Some(fund_event_id(&id.chain_id, &id.address)),
            WalletCommand::Transfer(tx) => Some(debit_event_id(&tx.hash)),
            WalletCommand::SignAndTransfer(_) => None,
            WalletCommand::Credit(credit) => Some(credit.event_id()),
        }
    }

    fn batch_class(command: &WalletCommand) -> BatchClass {
        match command {
            WalletCommand::Transfer(_) | WalletCommand::SignAndTransfer(_) => BatchClass::Decision,
            WalletCommand::Fund { .. } | WalletCommand::Credit(_) => BatchClass::Idempotent,
        }
    }

    fn to_stored(event: &WalletEvent) -> DomainEvent {
        DomainEvent::Wallet(event.clone())
    }

    fn from_stored(event: DomainEvent) -> Option<WalletEvent> {
        match event {
            DomainEvent::Wallet(event) => Some(event),
            _ => None,
        }
    }
}

/// Decides a wallet command. Pure: same state, context and command, same answer.
pub fn decide(
    state: &WalletState,
    ctx: &Context<'_, Wallet>,
    command: WalletCommand,
) -> Result<Vec<WalletEvent>, TxError> {
    match command {
        WalletCommand::Fund { amount } => {
            state
                .balance
                .checked_add(amount)
                .ok_or_else(|| TxError::Malformed("balance overflow".into()))?;
            Ok(vec![WalletEvent::Funded {
                amount,
                source: FundSource::Genesis,
            }])
        }
        WalletCommand::Credit(credit) => {
            state
                .balance
                .checked_add(credit.amount)
                .ok_or_else(|| TxError::Malformed("balance overflow".into()))?;
            Ok(vec![WalletEvent::Credited(credit)])
        }
        WalletCommand::SignAndTransfer(order) => {
            let payload = TxPayload::transfer(
                &ctx.id.chain_id,
                ctx.id.address,
                state.nonce,
                order.fee,
                order.to,
                order.amount,
            );
            let tx = sign_payload(&order.key, &payload).verify()?;
            decide(state, ctx, WalletCommand::Transfer(Box::new(tx)))
        }
        WalletCommand::Transfer(tx) => {
            tx.ensure_chain(&ctx.id.chain_id)?;
            assert_eq!(
                tx.payload.sender, ctx.id.address,
                "transfers are routed to the sender's wallet"
            );
            let TxAction::Transfer(body) = &tx.action;
            if tx.payload.fee < ctx.facts.min_fee {
                return Err(TxError::FeeTooLow {
                    fee: tx.payload.fee,
                    min_fee: ctx.facts.min_fee,
                });
            }
            if tx.payload.nonce != state.nonce {
                return Err(TxError::BadNonce {
                    expected: state.nonce,
                    got: tx.payload.nonce,
                });
            }
            let needed =
                body.amount
                    .checked_add(tx.payload.fee)
                    .ok_or(TxError::InsufficientFunds {
                        balance: state.balance,
                        needed: Amount(u128::MAX),
                    })?;
            if state.balance < needed {
                return Err(TxError::InsufficientFunds {
                    balance: state.balance,
                    needed,
                });
            }
            Ok(vec![WalletEvent::Debited(Debit {
                tx_hash: tx.hash,
                nonce: tx.payload.nonce,
                to: body.to,
                amount: body.amount,
                fee: tx.payload.fee,
                treasury: Address::treasury(&ctx.id.chain_id),
                committed_at_ms: ctx.now_ms,
                envelope: tx.envelope.clone(),
            })])
        }
    }
}

/// Applies a wallet event. Panics on an event that breaks an invariant (a negative balance, a
/// skipped nonce): the log would be corrupt, and the actor must stop rather than go on.
pub fn evolve(state: &mut WalletState, event: &WalletEvent) {
    match event {
        WalletEvent::Funded { amount, .. } => {
            state.balance = state
                .balance
                .checked_add(*amount)
                .expect("balance fits in u128");
        }
        WalletEvent::Credited(credit) => {
            state.balance = state
                .balance
                .checked_add(credit.amount)
                .expect("balance fits in u128");
        }
        WalletEvent::Debited(debit) => {
            assert_eq!(debit.nonce, state.nonce, "nonces are strictly sequential");
            state.balance = state
                .balance
                .checked_sub(debit.total())
                .expect("balance never goes negative");
            state.nonce += 1;
        }
    }
}

/// Deterministic event id of the debit of transaction `tx_hash`.
pub fn debit_event_id(tx_hash: &Hash32) -> u128 {
    event_id("debit", &tx_hash.0)
}

/// Deterministic event id of a genesis allocation.
pub fn fund_event_id(chain_id: &str, address: &Address) -> u128 {
    event_id("fund", format!("{chain_id}/{address}").as_bytes())
}

/// Event id of a wallet event of `address` on `chain_id`.
pub fn wallet_event_id(chain_id: &str, address: &Address, event: &WalletEvent) -> u128 {
    match event {
        WalletEvent::Funded { .. } => fund_event_id(chain_id, address),
        WalletEvent::Debited(debit) => debit.event_id(),
        WalletEvent::Credited(credit) => credit.event_id(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use crate::tx::{TxPayload, sign_payload};

    fn alice() -> SigningKey {
        SigningKey::from_seed([1; 32])
    }
    fn bob() -> Address {
        SigningKey::from_seed([2; 32]).address()
    }
    const NOW_MS: u64 = 1_700_000_000_123;

    fn id_on(chain: &str) -> WalletId {
        WalletId {
            chain_id: chain.into(),
            address: alice().address(),
        }
    }
    const FACTS: WalletFacts = WalletFacts { min_fee: Amount(1) };

    /// Alice's wallet on the devnet decides `command` at `NOW_MS`.
    fn when(state: &WalletState, command: WalletCommand) -> Result<Vec<WalletEvent>, TxError> {
        let id = id_on("ait-devnet");
        let ctx = Context {
            id: &id,
            facts: &FACTS,
            now_ms: NOW_MS,
        };
        decide(state, &ctx, command)
    }
    fn transfer(nonce: u64, amount: u128, fee: u128) -> WalletCommand {
        let payload = TxPayload::transfer(
            "ait-devnet",
            alice().address(),
            nonce,
            Amount(fee),
            bob(),
            Amount(amount),
        );
        WalletCommand::Transfer(Box::new(sign_payload(&alice(), &payload).verify().unwrap()))
    }

    /// given(events).when(command) → events or error.
    fn given(events: &[WalletEvent]) -> WalletState {
        let mut state = WalletState::default();
        events.iter().for_each(|e| evolve(&mut state, e));
        state
    }
    fn funded(amount: u128) -> WalletEvent {
        WalletEvent::Funded {
            amount: Amount(amount),
            source: FundSource::Genesis,
        }
    }

    #[test]
    fn a_transfer_debits_amount_plus_fee_and_advances_the_nonce() {
        let state = given(&[funded(100)]);
        let events = when(&state, transfer(0, 40, 2)).unwrap();
        let [WalletEvent::Debited(debit)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(
            (debit.amount, debit.fee, debit.to, debit.nonce),
            (Amount(40), Amount(2), bob(), 0)
        );
        assert_eq!(
            debit.committed_at_ms, NOW_MS,
            "the decision's clock is recorded"
        );
        let after = given(&[funded(100), events[0].clone()]);
        assert_eq!(
            after,
            WalletState {
                balance: Amount(58),
                nonce: 1
            }
        );
    }

    #[test]
    fn the_debit_owes_the_amount_to_the_recipient_and_the_fee_to_the_treasury() {
        let events = when(&given(&[funded(100)]), transfer(0, 40, 2)).unwrap();
        let WalletEvent::Debited(debit) = &events[0] else {
            panic!()
        };
        let credits = debit.credits(alice().address());
        assert_eq!(credits.len(), 2);
        assert_eq!((credits[0].0, credits[0].1.amount), (bob(), Amount(40)));
        assert_eq!(
            (credits[1].0, credits[1].1.amount),
            (Address::treasury("ait-devnet"), Amount(2))
        );
        assert_ne!(credits[0].1.event_id(), credits[1].1.event_id());
    }

    #[test]
    fn nonces_are_strictly_sequential() {
        let state = given(&[funded(100)]);
        assert_eq!(
            when(&state, transfer(1, 1, 1)),
            Err(TxError::BadNonce {
                expected: 0,
                got: 1
            })
        );
        let debit = when(&state, transfer(0, 1, 1)).unwrap().remove(0);
        let state = given(&[funded(100), debit]);
        assert_eq!(
            when(&state, transfer(0, 1, 1)),
            Err(TxError::BadNonce {
                expected: 1,
                got: 0
            })
        );
    }

    #[test]
    fn a_sender_cannot_spend_more_than_balance_including_fee() {
        let state = given(&[funded(10)]);
        assert_eq!(
            when(&state, transfer(0, 10, 1)),
            Err(TxError::InsufficientFunds {
                balance: Amount(10),
                needed: Amount(11)
            })
        );
        assert!(when(&state, transfer(0, 9, 1)).is_ok());
    }

    #[test]
    fn a_fee_below_the_minimum_is_refused() {
        let state = given(&[funded(10)]);
        assert_eq!(
            when(&state, transfer(0, 1, 0)),
            Err(TxError::FeeTooLow {
                fee: Amount(0),
                min_fee: Amount(1)
            })
        );
    }

    #[test]
    fn a_transfer_for_another_chain_is_refused() {
        let state = given(&[funded(10)]);
        let other = id_on("ait-other");
        let ctx = Context {
            id: &other,
            facts: &FACTS,
            now_ms: NOW_MS,
        };
        assert_eq!(
            decide(&state, &ctx, transfer(0, 1, 1)).unwrap_err().code(),
            "wrong_chain"
        );
    }

    #[test]
    fn credits_add_to_the_balance_and_keep_the_nonce() {
        let credit = Credit {
            transfer_id: Hash32::digest(b"t"),
            from: bob(),
            amount: Amount(7),
            kind: CreditKind::Transfer,
        };
        let events = when(&given(&[funded(1)]), WalletCommand::Credit(credit)).unwrap();
        assert_eq!(
            given(&[funded(1), events[0].clone()]),
            WalletState {
                balance: Amount(8),
                nonce: 0
            }
        );
    }

    #[test]
    fn event_ids_are_deterministic_per_fact() {
        let events = when(&given(&[funded(100)]), transfer(0, 40, 2)).unwrap();
        let again = when(&given(&[funded(100)]), transfer(0, 40, 2)).unwrap();
        let id = |e: &WalletEvent| wallet_event_id("ait-devnet", &alice().address(), e);
        assert_eq!(id(&events[0]), id(&again[0]));
        assert_ne!(
            id(&events[0]),
            fund_event_id("ait-devnet", &alice().address())
        );
    }

    #[test]
    fn sign_and_transfer_uses_the_next_nonce_and_commits_like_a_signed_transfer() {
        let debit = when(&given(&[funded(100)]), transfer(0, 1, 1))
            .unwrap()
            .remove(0);
        let state = given(&[funded(100), debit]);
        let order = SignOrder {
            key: alice(),
            to: bob(),
            amount: Amount(5),
            fee: Amount(1),
        };
        let events = when(&state, WalletCommand::SignAndTransfer(Box::new(order))).unwrap();
        let WalletEvent::Debited(debit) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!((debit.nonce, debit.amount), (1, Amount(5)));
        assert!(
            debit.envelope.verify().is_ok(),
            "the node's signature verifies"
        );
    }

    #[test]
    fn a_command_names_the_event_it_will_record_before_it_is_decided() {
        let id = id_on("ait-devnet");
        let command = transfer(0, 40, 2);
        let events = when(&given(&[funded(100)]), command.clone()).unwrap();
        assert_eq!(
            Wallet::command_event_id(&id, &command),
            Some(Wallet::event_id(&id, &events[0]))
        );
        assert_eq!(Wallet::batch_class(&command), BatchClass::Decision);
        let fund = WalletCommand::Fund { amount: Amount(1) };
        assert_eq!(Wallet::batch_class(&fund), BatchClass::Idempotent);
    }
}
