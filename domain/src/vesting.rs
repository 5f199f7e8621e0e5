//! Vesting schedules: tokens locked for a beneficiary that vest linearly from the commit time,
//! nothing before the cliff, everything at the end.
//!
//! `create_vesting` is decided first by the sender's wallet (nonce, fee, funds), which moves the
//! amount to the chain's vesting account; the schedule's stream (`vesting/<chain>/<id>`, id =
//! the transaction's hash) then records `VestingCreated`. `claim_vested` takes the fee in the
//! sender's wallet; the schedule records `VestingClaimed` with what has vested by the claim's
//! commit time and not been claimed, and the vesting account pays it out. A claim that passed
//! every check when submitted but lost a race (two claims at once) is recorded as
//! `ClaimRefused`: committed, nothing paid.

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::aggregate::{Aggregate, BatchClass, Context};
use crate::codec::DomainEvent;
use crate::error::TxError;
use crate::event_id::event_id;
use crate::hash::Hash32;
use crate::money::Amount;

/// Longest schedule: 100 years.
pub const DURATION_S_MAX: u64 = 100 * 365 * 24 * 3600;

/// Stream of a schedule.
pub fn vesting_stream(chain_id: &str, id: &Hash32) -> String {
    format!("vesting/{chain_id}/{id}")
}

/// The module account holding a chain's unvested tokens.
pub fn vesting_account(chain_id: &str) -> Address {
    Address::module(&format!("vesting/{chain_id}"))
}

/// Body of a `create_vesting`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateVestingBody {
    /// Who may claim.
    pub beneficiary: Address,
    /// Base units locked; positive.
    pub amount: Amount,
    /// Asset; the native one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// Nothing vests before commit time + `cliff_s`.
    pub cliff_s: u64,
    /// Everything has vested at commit time + `duration_s` (≥ `cliff_s`).
    pub duration_s: u64,
}

impl CreateVestingBody {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), TxError> {
        if self.amount == Amount::ZERO {
            return Err(TxError::Malformed("vesting amount must be positive".into()));
        }
        if self.cliff_s > self.duration_s || self.duration_s > DURATION_S_MAX {
            return Err(TxError::Malformed(format!(
                "vesting needs cliff_s <= duration_s <= {DURATION_S_MAX}"
            )));
        }
        Ok(())
    }
}

/// A schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Who may claim.
    pub beneficiary: Address,
    /// Asset (`None`: native).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// Base units locked.
    pub total: Amount,
    /// Vesting starts (the creating transaction's commit time), Unix ms.
    pub start_ms: u64,
    /// Nothing vests before, Unix ms.
    pub cliff_ms: u64,
    /// Everything has vested, Unix ms.
    pub end_ms: u64,
}

impl Schedule {
    /// What has vested at `now_ms`: 0 before the cliff, `total` from the end, linear in
    /// between (from the start, so the cliff releases what accrued until then).
    pub fn vested_at(&self, now_ms: u64) -> Amount {
        if now_ms < self.cliff_ms {
            return Amount::ZERO;
        }
        if now_ms >= self.end_ms {
            return self.total;
        }
        let (elapsed, span) = (
            (now_ms - self.start_ms) as u128,
            (self.end_ms - self.start_ms) as u128,
        );
        // total × elapsed / span without overflow: elapsed, span < 2^64.
        let total = self.total.0;
        Amount((total / span) * elapsed + (total % span) * elapsed / span)
    }
}

/// State of a schedule's stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VestingState {
    /// The schedule, once created.
    pub schedule: Option<Schedule>,
    /// Claimed so far.
    pub claimed: Amount,
}

impl VestingState {
    /// What `claimant` could claim at `now_ms`, or why not.
    pub fn claimable(&self, claimant: &Address, now_ms: u64) -> Result<Amount, TxError> {
        let schedule = self
            .schedule
            .as_ref()
            .ok_or_else(|| TxError::NotFound("no such vesting schedule".into()))?;
        if *claimant != schedule.beneficiary {
            return Err(TxError::NotOwner(format!(
                "only the beneficiary {} may claim",
                schedule.beneficiary
            )));
        }
        let vested = schedule.vested_at(now_ms);
        let claimable = vested.checked_sub(self.claimed).unwrap_or(Amount::ZERO);
        if claimable == Amount::ZERO {
            return Err(TxError::NothingToClaim(format!(
                "{vested} vested, {} already claimed",
                self.claimed
            )));
        }
        Ok(claimable)
    }
}

/// Commands to a schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VestingCommand {
    /// Record the schedule a committed `create_vesting` made.
    Create(Schedule),
    /// Settle a committed `claim_vested`.
    Claim {
        /// The claiming transaction.
        claim_tx: Hash32,
        /// Its sender.
        claimant: Address,
        /// Its commit time: what had vested then is what it gets.
        committed_at_ms: u64,
    },
}

/// A refusal recorded for a committed transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Error code.
    pub code: String,
    /// Human text.
    pub message: String,
}

impl From<TxError> for Refusal {
    fn from(error: TxError) -> Self {
        Refusal {
            code: error.code().to_string(),
            message: error.to_string(),
        }
    }
}

/// Events of a schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VestingEvent {
    /// The schedule exists.
    VestingCreated(Schedule),
    /// A claim took `amount`; the vesting account owes it to the beneficiary.
    VestingClaimed {
        /// The claiming transaction.
        claim_tx: Hash32,
        /// Who is paid.
        beneficiary: Address,
        /// Asset (`None`: native).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        asset: Option<String>,
        /// Base units.
        amount: Amount,
    },
    /// A committed claim got nothing (it lost a race with another claim).
    ClaimRefused {
        /// The claiming transaction.
        claim_tx: Hash32,
        /// Why.
        reason: Refusal,
    },
}

impl VestingEvent {
    /// Versioned type name.
    pub fn event_type(&self) -> &'static str {
        match self {
            VestingEvent::VestingCreated(_) => "VestingCreated.v1",
            VestingEvent::VestingClaimed { .. } => "VestingClaimed.v1",
            VestingEvent::ClaimRefused { .. } => "ClaimRefused.v1",
        }
    }
}

/// Identity of a schedule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VestingId {
    /// Chain.
    pub chain_id: String,
    /// The creating transaction's hash.
    pub id: Hash32,
}

/// The vesting aggregate.
#[derive(Debug)]
pub enum Vesting {}

/// Id of the event `command` records on schedule `id`.
pub fn command_event_id(id: &Hash32, command: &VestingCommand) -> u128 {
    match command {
        VestingCommand::Create(_) => created_event_id(id),
        VestingCommand::Claim { claim_tx, .. } => claim_event_id(claim_tx),
    }
}

fn created_event_id(id: &Hash32) -> u128 {
    event_id("vesting-created", &id.0)
}

fn claim_event_id(claim_tx: &Hash32) -> u128 {
    event_id("vesting-claim", &claim_tx.0)
}

impl Aggregate for Vesting {
    type Id = VestingId;
    type Facts = ();
    type State = VestingState;
    type Command = VestingCommand;
    type Event = VestingEvent;
    type Error = TxError;

    const NAME: &'static str = "vesting";

    fn stream(id: &VestingId) -> String {
        vesting_stream(&id.chain_id, &id.id)
    }

    fn decide(
        state: &VestingState,
        _ctx: &Context<'_, Vesting>,
        command: VestingCommand,
    ) -> Result<Vec<VestingEvent>, TxError> {
        match command {
            VestingCommand::Create(schedule) => {
                if state.schedule.is_some() {
                    return Err(TxError::Malformed("vesting schedule exists".into()));
                }
                Ok(vec![VestingEvent::VestingCreated(schedule)])
            }
            VestingCommand::Claim {
                claim_tx,
                claimant,
                committed_at_ms,
            } => Ok(vec![match state.claimable(&claimant, committed_at_ms) {
                Ok(amount) => {
                    let schedule = state.schedule.as_ref().expect("claimable has one");
                    VestingEvent::VestingClaimed {
                        claim_tx,
                        beneficiary: schedule.beneficiary,
                        asset: schedule.asset.clone(),
                        amount,
                    }
                }
                Err(error) => VestingEvent::ClaimRefused {
                    claim_tx,
                    reason: error.into(),
                },
            }]),
        }
    }

    fn evolve(state: &mut VestingState, event: &VestingEvent) {
        match event {
            VestingEvent::VestingCreated(schedule) => {
                assert!(state.schedule.is_none(), "a schedule is created once");
                state.schedule = Some(schedule.clone());
            }
            VestingEvent::VestingClaimed { amount, .. } => {
                state.claimed = state.claimed.checked_add(*amount).expect("claimed fits");
                let total = state
                    .schedule
                    .as_ref()
                    .expect("claims follow creation")
                    .total;
                assert!(
                    state.claimed <= total,
                    "never more than the total is claimed"
                );
            }
            VestingEvent::ClaimRefused { .. } => {}
        }
    }

    fn event_id(id: &VestingId, event: &VestingEvent) -> u128 {
        match event {
            VestingEvent::VestingCreated(_) => created_event_id(&id.id),
            VestingEvent::VestingClaimed { claim_tx, .. }
            | VestingEvent::ClaimRefused { claim_tx, .. } => claim_event_id(claim_tx),
        }
    }

    fn command_event_id(id: &VestingId, command: &VestingCommand) -> Option<u128> {
        Some(command_event_id(&id.id, command))
    }

    fn batch_class(_command: &VestingCommand) -> BatchClass {
        BatchClass::Decision
    }

    fn encode(event: &VestingEvent) -> (&'static str, Vec<u8>) {
        let data = serde_json::to_vec(event).expect("events serialize");
        (event.event_type(), data)
    }

    fn from_stored(event: DomainEvent) -> Option<VestingEvent> {
        match event {
            DomainEvent::Vesting(event) => Some(event),
            _ => None,
        }
    }
}

/// The schedule a committed `create_vesting` makes.
pub fn schedule_of(body: &CreateVestingBody, committed_at_ms: u64) -> Schedule {
    Schedule {
        beneficiary: body.beneficiary,
        asset: crate::asset::normalize(body.asset.as_deref()),
        total: body.amount,
        start_ms: committed_at_ms,
        cliff_ms: committed_at_ms.saturating_add(body.cliff_s.saturating_mul(1000)),
        end_ms: committed_at_ms.saturating_add(body.duration_s.saturating_mul(1000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::replay;

    const START: u64 = 1_000_000;

    fn alice() -> Address {
        Address([1; 20])
    }

    fn body(amount: u128, cliff_s: u64, duration_s: u64) -> CreateVestingBody {
        CreateVestingBody {
            beneficiary: alice(),
            amount: Amount(amount),
            asset: None,
            cliff_s,
            duration_s,
        }
    }

    fn when(state: &VestingState, command: VestingCommand) -> Vec<VestingEvent> {
        let id = VestingId {
            chain_id: "c".into(),
            id: Hash32::digest(b"create"),
        };
        let ctx = Context {
            id: &id,
            facts: &(),
            now_ms: 0,
        };
        Vesting::decide(state, &ctx, command).unwrap()
    }

    fn claim(n: u8, at_ms: u64) -> VestingCommand {
        VestingCommand::Claim {
            claim_tx: Hash32::digest(&[n]),
            claimant: alice(),
            committed_at_ms: at_ms,
        }
    }

    fn created(amount: u128, cliff_s: u64, duration_s: u64) -> Vec<VestingEvent> {
        vec![VestingEvent::VestingCreated(schedule_of(
            &body(amount, cliff_s, duration_s),
            START,
        ))]
    }

    fn claimed(events: &[VestingEvent]) -> Amount {
        match events {
            [VestingEvent::VestingClaimed { amount, .. }] => *amount,
            other => panic!("not a claim: {other:?}"),
        }
    }

    #[test]
    fn nothing_vests_before_the_cliff_then_linearly_from_the_start() {
        let given = created(1000, 10, 100);
        let state = replay::<Vesting>(&given);
        let refused = when(&state, claim(1, START + 9_999));
        assert!(matches!(
            &refused[..],
            [VestingEvent::ClaimRefused { reason, .. }] if reason.code == "nothing_to_claim"
        ));
        assert_eq!(
            claimed(&when(&state, claim(2, START + 10_000))),
            Amount(100)
        );
        assert_eq!(
            claimed(&when(&state, claim(3, START + 50_000))),
            Amount(500)
        );
        assert_eq!(
            claimed(&when(&state, claim(4, START + 500_000))),
            Amount(1000)
        );
    }

    #[test]
    fn claims_take_only_what_vested_since_the_last_claim_and_never_more_than_the_total() {
        let mut events = created(1000, 0, 100);
        let first = when(&replay::<Vesting>(&events), claim(1, START + 30_000));
        assert_eq!(claimed(&first), Amount(300));
        events.extend(first);
        let second = when(&replay::<Vesting>(&events), claim(2, START + 200_000));
        assert_eq!(claimed(&second), Amount(700));
        events.extend(second);
        let third = when(&replay::<Vesting>(&events), claim(3, START + 300_000));
        assert!(matches!(&third[..], [VestingEvent::ClaimRefused { .. }]));
        events.extend(third);
        assert_eq!(replay::<Vesting>(&events).claimed, Amount(1000));
    }

    #[test]
    fn only_the_beneficiary_claims_and_only_an_existing_schedule() {
        let state = replay::<Vesting>(&created(1000, 0, 100));
        assert_eq!(
            state
                .claimable(&Address([9; 20]), START + 50_000)
                .unwrap_err()
                .code(),
            "not_owner"
        );
        assert_eq!(
            VestingState::default()
                .claimable(&alice(), START)
                .unwrap_err()
                .code(),
            "not_found"
        );
    }

    #[test]
    fn a_zero_duration_vests_everything_at_once_and_bad_ranges_are_refused() {
        let state = replay::<Vesting>(&created(7, 0, 0));
        assert_eq!(claimed(&when(&state, claim(1, START))), Amount(7));
        assert_eq!(body(1, 11, 10).validate().unwrap_err().code(), "malformed");
        assert_eq!(body(0, 0, 10).validate().unwrap_err().code(), "malformed");
        assert_eq!(
            body(1, 0, DURATION_S_MAX + 1)
                .validate()
                .unwrap_err()
                .code(),
            "malformed"
        );
    }

    #[test]
    fn vesting_is_exact_for_huge_totals() {
        let schedule = schedule_of(&body(u128::MAX, 0, DURATION_S_MAX), START);
        let half = schedule.vested_at(START + DURATION_S_MAX * 500);
        assert_eq!(half, Amount(u128::MAX / 2));
    }
}
