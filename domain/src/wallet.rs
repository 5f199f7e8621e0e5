//! The wallet aggregate: one account's balances (per asset) and nonce on one chain.
//!
//! Every transaction is decided first by its sender's wallet: chain, fee, nonce and funds, then
//! `Debited` (the commit point: nonce and fee are used) records what leaves the account: the
//! fee, and the kind's outflow (a transfer's amount to its recipient, a vesting's amount to the
//! vesting account; a mint's amount is new value, not the sender's). The matching `Credited`
//! events land in the receiving streams, linked by the transfer id (= the tx hash). Between the
//! two the value is *in flight*; process managers deliver the credits. Module accounts, which
//! have no key, pay out with `PaidOut` events keyed by their cause. Every such event has a
//! deterministic id, so a credit or payout delivered twice is stored once.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::aggregate::{Aggregate, BatchClass, Context};
use crate::asset;
use crate::codec::DomainEvent;
use crate::error::TxError;
use crate::event_id::event_id;
use crate::hash::Hash32;
use crate::keys::SigningKey;
use crate::kinds::{self, TxAction};
use crate::money::Amount;
use crate::proposal::{self, GovAct};
use crate::staking::StakingAct;
use crate::tx::{SignedEnvelope, TxPayload, VerifiedTx, sign_payload};
use crate::vesting::{self, CreateVestingBody};

/// Stream of a wallet.
pub fn wallet_stream(chain_id: &str, address: &Address) -> String {
    format!("wallet/{chain_id}/{address}")
}

/// Balances and next nonce of an account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletState {
    /// Spendable balance of the native asset.
    pub balance: Amount,
    /// Next expected nonce.
    pub nonce: u64,
    /// Balances of other assets (none recorded: zero).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub assets: BTreeMap<String, Amount>,
    /// What this account minted of each asset (only an asset's minter has any): the total is
    /// kept within u128, so no supply, and no balance, can overflow.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub minted: BTreeMap<String, Amount>,
}

impl WalletState {
    /// Balance of `asset` (`None`: native).
    pub fn balance_of(&self, asset: &Option<String>) -> Amount {
        match asset {
            None => self.balance,
            Some(symbol) => self.assets.get(symbol).copied().unwrap_or(Amount::ZERO),
        }
    }

    fn add(&mut self, asset: &Option<String>, amount: Amount) {
        let slot = match asset {
            None => &mut self.balance,
            Some(symbol) => self.assets.entry(symbol.clone()).or_default(),
        };
        *slot = slot.checked_add(amount).expect("balance fits in u128");
    }

    fn sub(&mut self, asset: &Option<String>, amount: Amount) {
        let slot = match asset {
            None => &mut self.balance,
            Some(symbol) => self.assets.entry(symbol.clone()).or_default(),
        };
        *slot = slot
            .checked_sub(amount)
            .expect("balance never goes negative");
    }
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
    /// A module account's payout, to its recipient.
    Payout,
}

impl CreditKind {
    fn tag(self) -> &'static str {
        match self {
            CreditKind::Transfer => "credit-transfer",
            CreditKind::Fee => "credit-fee",
            CreditKind::Payout => "credit-payout",
        }
    }
}

/// A credit owed to an account by a debit or payout elsewhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credit {
    /// Links the credit to its cause: the transaction hash.
    pub transfer_id: Hash32,
    /// Payer.
    pub from: Address,
    /// Base units.
    pub amount: Amount,
    /// Amount, fee or payout.
    pub kind: CreditKind,
    /// Asset (`None`: native).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
}

impl Credit {
    /// Deterministic event id of this credit.
    pub fn event_id(&self) -> u128 {
        event_id(self.kind.tag(), &self.transfer_id.0)
    }
}

/// What a transaction asks a module aggregate to do once its debit is committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Create the vesting schedule whose tokens the debit moved to the vesting account.
    CreateVesting(CreateVestingBody),
    /// Claim from a vesting schedule.
    ClaimVested {
        /// The schedule.
        vesting_id: Hash32,
    },
    /// A council member's action, settled by the chain's DAO.
    Council(crate::dao::CouncilAct),
    /// A job submitted (its escrow moved to the jobs account by this debit).
    SubmitJob(Box<crate::job::SubmitJob>),
    /// A job's cancellation.
    CancelJob {
        /// The job.
        job_id: Hash32,
    },
    /// An agent act, decided by the agent (for `register_agent`, the sender).
    Agent {
        /// The agent.
        agent: Address,
        /// The act.
        act: crate::agent::AgentAct,
    },
    /// A staking act, decided by the chain's staking pools (a stake's tokens moved to the
    /// staking account by this debit).
    Staking(crate::staking::StakingAct),
    /// A governance act, decided by the proposal (for `propose`, the transaction's own).
    Governance {
        /// The proposal.
        proposal: Hash32,
        /// The act.
        act: crate::proposal::GovAct,
    },
}

fn transfer_kind() -> String {
    "transfer".to_string()
}

fn is_false(value: &bool) -> bool {
    !value
}

/// The sender's side of a transaction (the commit point).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Debit {
    /// Transaction hash (also the transfer id).
    pub tx_hash: Hash32,
    /// Nonce consumed.
    pub nonce: u64,
    /// Transaction kind (`Debited.v1` events were all transfers).
    #[serde(default = "transfer_kind")]
    pub kind: String,
    /// Where the outflow goes (the recipient, or a module account).
    pub to: Address,
    /// The outflow, base units (0 for kinds that move nothing).
    pub amount: Amount,
    /// Asset of the outflow (`None`: native).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// The outflow is new value (a mint), not taken from the sender.
    #[serde(default, skip_serializing_if = "is_false")]
    pub minted: bool,
    /// Fee paid (native).
    pub fee: Amount,
    /// Treasury receiving the fee.
    pub treasury: Address,
    /// The node's clock when the transaction committed, Unix milliseconds. `Debited.v1` events
    /// did not record it; they are read with the log's `recorded_at_ms` instead.
    #[serde(default)]
    pub committed_at_ms: u64,
    /// What a module aggregate does next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<Box<Effect>>,
    /// The signed envelope, so the log can be re-verified by anyone.
    pub envelope: SignedEnvelope,
}

impl Debit {
    /// Credits this debit owes: (recipient, credit) for a positive outflow, and the fee to the
    /// treasury when it is not zero.
    pub fn credits(&self, sender: Address) -> Vec<(Address, Credit)> {
        self.summary().credits(sender)
    }

    /// The debit without its envelope.
    pub fn summary(&self) -> DebitSummary {
        DebitSummary {
            tx_hash: self.tx_hash,
            nonce: self.nonce,
            kind: self.kind.clone(),
            to: self.to,
            amount: self.amount,
            asset: self.asset.clone(),
            minted: self.minted,
            fee: self.fee,
            treasury: self.treasury,
            committed_at_ms: self.committed_at_ms,
            effect: self.effect.clone(),
        }
    }

    /// Deterministic event id of this debit.
    pub fn event_id(&self) -> u128 {
        debit_event_id(&self.tx_hash)
    }

    /// What leaves the sender's native balance (see [`DebitSummary::native_out`]).
    pub fn native_out(&self) -> Amount {
        outflows(self.amount, &self.asset, self.minted, self.fee)
            .0
            .expect("checked when decided")
    }

    /// What leaves the sender's balance of another asset (see [`DebitSummary::asset_out`]).
    pub fn asset_out(&self) -> Option<(&str, Amount)> {
        outflows(self.amount, &self.asset, self.minted, self.fee).1
    }
}

/// What followers of the log (block sealer, process managers, explorer) need of a debit.
/// Decoding a stored `Debited` event into this skips the envelope's strings instead of copying
/// them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DebitSummary {
    /// Transaction hash.
    pub tx_hash: Hash32,
    /// Nonce consumed.
    pub nonce: u64,
    /// Transaction kind.
    #[serde(default = "transfer_kind")]
    pub kind: String,
    /// Where the outflow goes.
    pub to: Address,
    /// The outflow.
    pub amount: Amount,
    /// Its asset.
    #[serde(default)]
    pub asset: Option<String>,
    /// New value, not the sender's.
    #[serde(default)]
    pub minted: bool,
    /// Fee paid.
    pub fee: Amount,
    /// Treasury receiving the fee.
    pub treasury: Address,
    /// When it committed (see [`Debit::committed_at_ms`]).
    #[serde(default)]
    pub committed_at_ms: u64,
    /// What a module aggregate does next.
    #[serde(default)]
    pub effect: Option<Box<Effect>>,
}

impl DebitSummary {
    /// Credits the debit owes: (recipient, credit) for a positive outflow, and the fee to the
    /// treasury when it is not zero.
    pub fn credits(&self, sender: Address) -> Vec<(Address, Credit)> {
        let credit = |amount, kind, asset| Credit {
            transfer_id: self.tx_hash,
            from: sender,
            amount,
            kind,
            asset,
        };
        let mut credits = Vec::with_capacity(2);
        if self.amount > Amount::ZERO {
            credits.push((
                self.to,
                credit(self.amount, CreditKind::Transfer, self.asset.clone()),
            ));
        }
        if self.fee > Amount::ZERO {
            credits.push((self.treasury, credit(self.fee, CreditKind::Fee, None)));
        }
        credits
    }

    /// What leaves the sender's native balance: the fee, and the outflow when it is native
    /// and not minted.
    pub fn native_out(&self) -> Amount {
        outflows(self.amount, &self.asset, self.minted, self.fee)
            .0
            .expect("checked when decided")
    }

    /// What leaves the sender's balance of another asset (asset, amount), if anything.
    pub fn asset_out(&self) -> Option<(&str, Amount)> {
        outflows(self.amount, &self.asset, self.minted, self.fee).1
    }
}

/// What a debit takes from its sender: (native: the fee plus a native, not minted outflow,
/// `None` if that overflows; another asset's outflow when it is not minted).
fn outflows(
    amount: Amount,
    asset: &Option<String>,
    minted: bool,
    fee: Amount,
) -> (Option<Amount>, Option<(&str, Amount)>) {
    match (asset, minted) {
        (_, true) => (Some(fee), None),
        (None, false) => (fee.checked_add(amount), None),
        (Some(symbol), false) => (Some(fee), Some((symbol.as_str(), amount))),
    }
}

/// A module account's payment, keyed by its cause (the transaction that owed it): made at most
/// once, without a signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payout {
    /// The transaction that owed it.
    pub cause: Hash32,
    /// Recipient.
    pub to: Address,
    /// Base units.
    pub amount: Amount,
    /// Asset (`None`: native).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
}

impl Payout {
    /// The credit this payout owes its recipient.
    pub fn credit(&self, module_account: Address) -> Credit {
        Credit {
            transfer_id: self.cause,
            from: module_account,
            amount: self.amount,
            kind: CreditKind::Payout,
            asset: self.asset.clone(),
        }
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
    /// A transaction committed: nonce and fee used, its outflow left.
    Debited(Debit),
    /// Value arrived from a debit or payout.
    Credited(Credit),
    /// A module account paid out.
    PaidOut(Payout),
}

impl WalletEvent {
    /// Versioned event type name.
    pub fn event_type(&self) -> &'static str {
        match self {
            WalletEvent::Funded { .. } => "Funded.v1",
            WalletEvent::Debited(_) => "Debited.v2",
            WalletEvent::Credited(_) => "Credited.v1",
            WalletEvent::PaidOut(_) => "PaidOut.v1",
        }
    }
}

/// A transfer the node signs with a key it holds (custodial wallets, the faucet): the wallet
/// assigns its next nonce when it decides.
#[derive(Clone, Debug)]
pub struct SignOrder {
    /// The wallet's own key.
    pub key: SigningKey,
    /// Kind and body to sign (`transfer` or `mint`).
    pub action: SignedAction,
    /// Fee.
    pub fee: Amount,
}

/// What a [`SignOrder`] signs.
#[derive(Clone, Debug)]
pub enum SignedAction {
    /// A transfer.
    Transfer(kinds::TransferBody),
    /// A mint by the asset's minter.
    Mint(kinds::MintBody),
}

impl SignedAction {
    /// The transaction kind it signs.
    pub fn kind(&self) -> &'static str {
        match self {
            SignedAction::Transfer(_) => "transfer",
            SignedAction::Mint(_) => "mint",
        }
    }
}

/// Commands to a wallet.
#[derive(Clone, Debug)]
pub enum WalletCommand {
    /// Genesis allocation.
    Fund {
        /// Base units.
        amount: Amount,
    },
    /// A verified transaction signed by this wallet's key.
    Transfer(Box<VerifiedTx>),
    /// A transaction to sign with the wallet's own key at its next nonce.
    SignAndTransfer(Box<SignOrder>),
    /// A credit owed by a debit or payout in another stream.
    Credit(Credit),
    /// A payout from this (module) account.
    PayOut(Payout),
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
    /// Its minimum fee per payload byte, on top.
    pub min_fee_per_byte: Amount,
    /// Declared assets besides the native one: symbol → its minter, if any.
    pub assets: Arc<BTreeMap<String, Option<Address>>>,
    /// The native supply (the genesis allocations; the native asset is never minted).
    pub native_supply: Amount,
}

impl WalletFacts {
    /// The least fee of a transaction whose payload has `payload_len` bytes.
    pub fn min_fee_for(&self, payload_len: usize) -> Amount {
        let per_bytes = self.min_fee_per_byte.0.saturating_mul(payload_len as u128);
        Amount(self.min_fee.0.saturating_add(per_bytes))
    }

    /// What a wallet on the chain of `genesis` knows.
    pub fn of(genesis: &crate::genesis::Genesis) -> WalletFacts {
        WalletFacts {
            min_fee: genesis.min_fee,
            min_fee_per_byte: genesis.min_fee_per_byte,
            native_supply: genesis.total_supply().unwrap_or(Amount(u128::MAX)),
            assets: Arc::new(
                genesis
                    .assets
                    .iter()
                    .map(|a| (a.symbol.clone(), a.minter))
                    .collect(),
            ),
        }
    }
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
            WalletCommand::PayOut(payout) => Some(payout_event_id(&payout.cause)),
        }
    }

    fn batch_class(command: &WalletCommand) -> BatchClass {
        match command {
            WalletCommand::Transfer(_)
            | WalletCommand::SignAndTransfer(_)
            | WalletCommand::PayOut(_) => BatchClass::Decision,
            WalletCommand::Fund { .. } | WalletCommand::Credit(_) => BatchClass::Idempotent,
        }
    }

    fn encode(event: &WalletEvent) -> (&'static str, Vec<u8>) {
        let data = serde_json::to_vec(event).expect("events serialize");
        (event.event_type(), data)
    }

    fn from_stored(event: DomainEvent) -> Option<WalletEvent> {
        match event {
            DomainEvent::Wallet(event) => Some(event),
            _ => None,
        }
    }
}

/// The outflow a transaction asks of its sender's wallet.
struct Outflow {
    to: Address,
    amount: Amount,
    asset: Option<String>,
    minted: bool,
    effect: Option<Box<Effect>>,
}

fn outflow(tx: &VerifiedTx, ctx: &Context<'_, Wallet>) -> Result<Outflow, TxError> {
    let declared = |asset: Option<String>| match asset {
        Some(symbol) if !ctx.facts.assets.contains_key(&symbol) => {
            Err(TxError::Malformed(format!(
                "asset {symbol} is not declared on chain {}",
                ctx.id.chain_id
            )))
        }
        other => Ok(other),
    };
    Ok(match &tx.action {
        TxAction::Transfer(body) => Outflow {
            to: body.to,
            amount: body.amount,
            asset: declared(asset::normalize(body.asset.as_deref()))?,
            minted: false,
            effect: None,
        },
        TxAction::Mint(body) => {
            let asset = declared(asset::normalize(Some(&body.asset)))?;
            let minter = asset.as_ref().and_then(|s| ctx.facts.assets[s]);
            if minter != Some(tx.payload.sender) {
                return Err(TxError::Unauthorized(format!(
                    "only the minter of {} may mint it",
                    body.asset
                )));
            }
            Outflow {
                to: body.to,
                amount: body.amount,
                asset,
                minted: true,
                effect: None,
            }
        }
        TxAction::CreateVesting(body) => Outflow {
            to: vesting::vesting_account(&ctx.id.chain_id),
            amount: body.amount,
            asset: declared(asset::normalize(body.asset.as_deref()))?,
            minted: false,
            effect: Some(Box::new(Effect::CreateVesting(body.clone()))),
        },
        TxAction::ClaimVested(body) => Outflow {
            to: tx.payload.sender,
            amount: Amount::ZERO,
            asset: None,
            minted: false,
            effect: Some(Box::new(Effect::ClaimVested {
                vesting_id: body.vesting_id,
            })),
        },
        TxAction::Council(act) => Outflow {
            to: tx.payload.sender,
            amount: Amount::ZERO,
            asset: None,
            minted: false,
            effect: Some(Box::new(Effect::Council(act.clone()))),
        },
        TxAction::SubmitJob(request) => Outflow {
            to: crate::job::escrow_account(&ctx.id.chain_id),
            amount: request.escrow(),
            asset: None,
            minted: false,
            effect: Some(Box::new(Effect::SubmitJob(request.clone()))),
        },
        TxAction::Staking(act) => Outflow {
            to: match act {
                StakingAct::Stake(_) | StakingAct::AddStake(_) => {
                    crate::staking::staking_account(&ctx.id.chain_id)
                }
                _ => tx.payload.sender,
            },
            amount: match act {
                StakingAct::Stake(body) => body.amount,
                StakingAct::AddStake(body) => body.amount,
                _ => Amount::ZERO,
            },
            asset: None,
            minted: false,
            effect: Some(Box::new(Effect::Staking(act.clone()))),
        },
        TxAction::CancelJob(job_id) => Outflow {
            to: tx.payload.sender,
            amount: Amount::ZERO,
            asset: None,
            minted: false,
            effect: Some(Box::new(Effect::CancelJob { job_id: *job_id })),
        },
        TxAction::Agent { agent, act } => Outflow {
            to: tx.payload.sender,
            amount: Amount::ZERO,
            asset: None,
            minted: false,
            effect: Some(Box::new(Effect::Agent {
                agent: agent.unwrap_or(tx.payload.sender),
                act: act.clone(),
            })),
        },
        TxAction::Governance { proposal, act } => {
            // Proposing and challenging lock a bond (the node sets it from the parameters in
            // force); every other act moves nothing.
            let locks = matches!(act, GovAct::Propose(_) | GovAct::Challenge { .. });
            Outflow {
                to: match locks {
                    true => proposal::bond_account(&ctx.id.chain_id),
                    false => tx.payload.sender,
                },
                amount: match locks {
                    true => tx.deposit,
                    false => Amount::ZERO,
                },
                asset: None,
                minted: false,
                effect: Some(Box::new(Effect::Governance {
                    proposal: proposal.unwrap_or(tx.hash),
                    act: act.clone(),
                })),
            }
        }
    })
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
                .balance_of(&credit.asset)
                .checked_add(credit.amount)
                .ok_or_else(|| TxError::Malformed("balance overflow".into()))?;
            Ok(vec![WalletEvent::Credited(credit)])
        }
        WalletCommand::PayOut(payout) => {
            let balance = state.balance_of(&payout.asset);
            if balance < payout.amount {
                return Err(TxError::InsufficientFunds {
                    balance,
                    needed: payout.amount,
                });
            }
            Ok(vec![WalletEvent::PaidOut(payout)])
        }
        WalletCommand::SignAndTransfer(order) => {
            let mut payload = TxPayload::transfer(
                &ctx.id.chain_id,
                ctx.id.address,
                state.nonce,
                order.fee,
                ctx.id.address,
                Amount::ZERO,
            );
            let (kind, body) = match &order.action {
                SignedAction::Transfer(body) => (order.action.kind(), serde_json::to_value(body)),
                SignedAction::Mint(body) => (order.action.kind(), serde_json::to_value(body)),
            };
            payload.kind = kind.to_string();
            payload.body = body.expect("bodies serialize");
            // The node pays by the byte like anyone: sized with the longest fee there is.
            payload.fee = Amount(u128::MAX);
            let longest = serde_json::to_string(&payload)
                .expect("payloads serialize")
                .len();
            payload.fee = order.fee.max(ctx.facts.min_fee_for(longest));
            let tx = sign_payload(&order.key, &payload).verify()?;
            decide(state, ctx, WalletCommand::Transfer(Box::new(tx)))
        }
        WalletCommand::Transfer(tx) => {
            tx.ensure_chain(&ctx.id.chain_id)?;
            assert_eq!(
                tx.payload.sender, ctx.id.address,
                "transactions are routed to the sender's wallet"
            );
            let min_fee = ctx.facts.min_fee_for(tx.envelope.payload.len());
            if tx.payload.fee < min_fee {
                return Err(TxError::FeeTooLow {
                    fee: tx.payload.fee,
                    min_fee,
                });
            }
            if tx.payload.nonce != state.nonce {
                return Err(TxError::BadNonce {
                    expected: state.nonce,
                    got: tx.payload.nonce,
                });
            }
            let out = outflow(&tx, ctx)?;
            if let (true, Some(symbol)) = (out.minted, &out.asset) {
                let so_far = state.minted.get(symbol).copied().unwrap_or(Amount::ZERO);
                if so_far.checked_add(out.amount).is_none() {
                    return Err(TxError::Malformed(format!(
                        "minting {} more {symbol} would exceed the largest supply",
                        out.amount
                    )));
                }
            }
            let debit = Debit {
                tx_hash: tx.hash,
                nonce: tx.payload.nonce,
                kind: tx.payload.kind.clone(),
                to: out.to,
                amount: out.amount,
                asset: out.asset,
                minted: out.minted,
                fee: tx.payload.fee,
                treasury: Address::treasury(&ctx.id.chain_id),
                committed_at_ms: ctx.now_ms,
                effect: out.effect,
                envelope: tx.envelope.clone(),
            };
            let (native, other) = outflows(debit.amount, &debit.asset, debit.minted, debit.fee);
            let needed = native.ok_or(TxError::InsufficientFunds {
                balance: state.balance,
                needed: Amount(u128::MAX),
            })?;
            if state.balance < needed {
                return Err(TxError::InsufficientFunds {
                    balance: state.balance,
                    needed,
                });
            }
            if let Some((symbol, amount)) = other {
                let balance = state.assets.get(symbol).copied().unwrap_or(Amount::ZERO);
                if balance < amount {
                    return Err(TxError::InsufficientFunds {
                        balance,
                        needed: amount,
                    });
                }
            }
            Ok(vec![WalletEvent::Debited(debit)])
        }
    }
}

/// Applies a wallet event. Panics on an event that breaks an invariant (a negative balance, a
/// skipped nonce): the log would be corrupt, and the actor must stop rather than go on.
pub fn evolve(state: &mut WalletState, event: &WalletEvent) {
    match event {
        WalletEvent::Funded { amount, .. } => state.add(&None, *amount),
        WalletEvent::Credited(credit) => state.add(&credit.asset, credit.amount),
        WalletEvent::PaidOut(payout) => state.sub(&payout.asset, payout.amount),
        WalletEvent::Debited(debit) => {
            assert_eq!(debit.nonce, state.nonce, "nonces are strictly sequential");
            let (native, other) = outflows(debit.amount, &debit.asset, debit.minted, debit.fee);
            state.sub(&None, native.expect("checked when decided"));
            if let Some((symbol, amount)) = other {
                state.sub(&Some(symbol.to_string()), amount);
            }
            if let (true, Some(symbol)) = (debit.minted, &debit.asset) {
                let minted = state.minted.entry(symbol.clone()).or_default();
                *minted = minted
                    .checked_add(debit.amount)
                    .expect("checked when decided");
            }
            state.nonce += 1;
        }
    }
}

/// Deterministic event id of the debit of transaction `tx_hash`.
pub fn debit_event_id(tx_hash: &Hash32) -> u128 {
    event_id("debit", &tx_hash.0)
}

/// Deterministic event id of a module account's payout for `cause`.
pub fn payout_event_id(cause: &Hash32) -> u128 {
    event_id("payout", &cause.0)
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
        WalletEvent::PaidOut(payout) => payout_event_id(&payout.cause),
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
    fn facts() -> WalletFacts {
        WalletFacts {
            min_fee: Amount(1),
            min_fee_per_byte: Amount::ZERO,
            assets: Arc::new(BTreeMap::from([(
                "USDX".to_string(),
                Some(alice().address()),
            )])),
            native_supply: Amount(1_000_000),
        }
    }

    /// Alice's wallet on the devnet decides `command` at `NOW_MS`.
    fn when(state: &WalletState, command: WalletCommand) -> Result<Vec<WalletEvent>, TxError> {
        let (id, facts) = (id_on("ait-devnet"), facts());
        let ctx = Context {
            id: &id,
            facts: &facts,
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

    /// The node's order to sign a transfer of 5 to bob from alice, at fee 1.
    fn send_5_to_bob() -> SignOrder {
        SignOrder {
            key: alice(),
            action: SignedAction::Transfer(kinds::TransferBody {
                to: bob(),
                amount: Amount(5),
                asset: None,
            }),
            fee: Amount(1),
        }
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
                nonce: 1,
                ..Default::default()
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
    fn a_chain_with_a_fee_per_byte_charges_each_payload_byte_and_the_node_pays_it_too() {
        let state = given(&[funded(100_000)]);
        let (id, facts) = (
            id_on("ait-devnet"),
            WalletFacts {
                min_fee_per_byte: Amount(3),
                ..facts()
            },
        );
        let ctx = Context {
            id: &id,
            facts: &facts,
            now_ms: NOW_MS,
        };
        // A payload with a three-digit fee, and the fee its bytes require (three digits too).
        let WalletCommand::Transfer(probe) = transfer(0, 1, 100) else {
            unreachable!()
        };
        let required = 1 + 3 * probe.envelope.payload.len() as u128;
        assert!((100..1000).contains(&required), "{required}");
        assert_eq!(
            decide(&state, &ctx, transfer(0, 1, required - 1)),
            Err(TxError::FeeTooLow {
                fee: Amount(required - 1),
                min_fee: Amount(required),
            })
        );
        assert!(decide(&state, &ctx, transfer(0, 1, required)).is_ok());
        let order = send_5_to_bob();
        let signed = decide(
            &state,
            &ctx,
            WalletCommand::SignAndTransfer(Box::new(order)),
        );
        assert!(
            signed.is_ok(),
            "the node's own orders pay their bytes: {signed:?}"
        );
    }

    #[test]
    fn a_transfer_for_another_chain_is_refused() {
        let state = given(&[funded(10)]);
        let (other, facts) = (id_on("ait-other"), facts());
        let ctx = Context {
            id: &other,
            facts: &facts,
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
            asset: None,
        };
        let events = when(&given(&[funded(1)]), WalletCommand::Credit(credit)).unwrap();
        assert_eq!(
            given(&[funded(1), events[0].clone()]),
            WalletState {
                balance: Amount(8),
                nonce: 0,
                ..Default::default()
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
        let order = send_5_to_bob();
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

    #[test]
    fn a_minter_cannot_mint_past_the_largest_supply_and_nobody_else_mints() {
        let mint = |nonce: u64, key: &SigningKey, amount: u128| {
            let mut payload = TxPayload::transfer(
                "ait-devnet",
                key.address(),
                nonce,
                Amount(1),
                bob(),
                Amount(1),
            );
            payload.kind = "mint".into();
            payload.body =
                serde_json::json!({"to": bob(), "asset": "USDX", "amount": amount.to_string()});
            WalletCommand::Transfer(Box::new(sign_payload(key, &payload).verify().unwrap()))
        };
        let state = given(&[funded(10)]);
        let first = when(&state, mint(0, &alice(), u128::MAX - 5)).unwrap();
        let WalletEvent::Debited(debit) = &first[0] else {
            panic!("{first:?}")
        };
        assert!(debit.minted);
        let state = given(&[funded(10), first[0].clone()]);
        assert_eq!(state.balance, Amount(9), "the minter pays only the fee");
        assert_eq!(
            when(&state, mint(1, &alice(), 6)).unwrap_err().code(),
            "malformed"
        );
        assert!(when(&state, mint(1, &alice(), 5)).is_ok());
        let stranger = SigningKey::from_seed([7; 32]);
        let (id, facts) = (
            WalletId {
                chain_id: "ait-devnet".into(),
                address: stranger.address(),
            },
            facts(),
        );
        let ctx = Context {
            id: &id,
            facts: &facts,
            now_ms: NOW_MS,
        };
        assert_eq!(
            decide(&given(&[funded(10)]), &ctx, mint(0, &stranger, 1))
                .unwrap_err()
                .code(),
            "unauthorized"
        );
    }
}
