//! Transaction rejections with stable error codes (API.md). A rejected transaction changes
//! nothing.

use crate::money::Amount;

/// Why a transaction was rejected. `code()` is the stable, documented wire code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The signature does not verify over `AITBC-TX-V1\n` + payload with the given key.
    #[error("signature does not verify against the public key")]
    BadSignature,
    /// The payload's `sender` is not the address of the signing key.
    #[error("sender {sender} is not the address of the signing key ({key_address})")]
    SenderMismatch {
        /// `sender` of the payload.
        sender: String,
        /// Address derived from `public_key`.
        key_address: String,
    },
    /// The payload names a chain this node does not host for this request.
    #[error("transaction is for chain {got:?}, expected {expected}")]
    WrongChain {
        /// The chain(s) it could be for.
        expected: String,
        /// The payload's chain id.
        got: String,
    },
    /// The nonce is not the sender's next nonce.
    #[error("bad nonce {got}: expected nonce {expected}")]
    BadNonce {
        /// The sender's next nonce.
        expected: u64,
        /// The payload's nonce.
        got: u64,
    },
    /// The sender cannot pay amount + fee.
    #[error("insufficient funds: balance {balance}, needed {needed}")]
    InsufficientFunds {
        /// Current balance (base units).
        balance: Amount,
        /// amount + fee.
        needed: Amount,
    },
    /// The fee is below the chain's minimum.
    #[error("fee {fee} is below the chain's minimum fee {min_fee}")]
    FeeTooLow {
        /// Offered fee.
        fee: Amount,
        /// Chain minimum.
        min_fee: Amount,
    },
    /// The `kind` is not one this node executes.
    #[error("unsupported transaction kind {0:?}")]
    UnsupportedKind(String),
    /// The envelope or payload is not well formed.
    #[error("malformed transaction: {0}")]
    Malformed(String),
    /// The module that would execute it is paused.
    #[error("module {0} is paused")]
    Paused(String),
    /// The sender may not send this kind (e.g. a mint by anyone but the asset's minter).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The transaction names something that does not exist (an unknown vesting schedule).
    #[error("not found: {0}")]
    NotFound(String),
    /// The sender does not own what it acts on (a claim by someone else than the beneficiary).
    #[error("not the owner: {0}")]
    NotOwner(String),
    /// A claim when nothing is claimable.
    #[error("nothing to claim: {0}")]
    NothingToClaim(String),
    /// The sender is not a member of the chain's council.
    #[error("not a council member: {0}")]
    NotCouncil(String),
    /// The target is in a state that does not take this action (the message names the state).
    #[error("not active: {0}")]
    NotActive(String),
    /// The sender already voted or approved this.
    #[error("already voted: {0}")]
    AlreadyVoted(String),
    /// An action outside its documented range, or of another proposal type.
    #[error("bad action: {0}")]
    BadAction(String),
    /// The proposer's voting power at the snapshot is below the proposal threshold.
    #[error("below the proposal threshold: {0}")]
    BelowThreshold(String),
    /// The voter had no voting power at the proposal's snapshot.
    #[error("no voting power: {0}")]
    NoVotingPower(String),
    /// A bound on the work one request may cause (a GPU or risk limit, a history too long to
    /// read back).
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// A miner acting on a job that is not leased to it.
    #[error("not assigned: {0}")]
    NotAssigned(String),
    /// A miner's result that does not hold together (hash, price, size).
    #[error("bad result: {0}")]
    BadResult(String),
    /// The sender's account is frozen by an emergency proposal.
    #[error("frozen: {0}")]
    Frozen(String),
    /// A stake whose lock has not ended.
    #[error("locked: {0}")]
    Locked(String),
}

impl TxError {
    /// Stable snake_case code for the wire.
    pub fn code(&self) -> &'static str {
        match self {
            TxError::BadSignature => "bad_signature",
            TxError::SenderMismatch { .. } => "sender_mismatch",
            TxError::WrongChain { .. } => "wrong_chain",
            TxError::BadNonce { .. } => "bad_nonce",
            TxError::InsufficientFunds { .. } => "insufficient_funds",
            TxError::FeeTooLow { .. } => "fee_too_low",
            TxError::UnsupportedKind(_) => "unsupported_kind",
            TxError::Malformed(_) => "malformed",
            TxError::Paused(_) => "paused",
            TxError::Unauthorized(_) => "unauthorized",
            TxError::NotFound(_) => "not_found",
            TxError::NotOwner(_) => "not_owner",
            TxError::NothingToClaim(_) => "nothing_to_claim",
            TxError::NotCouncil(_) => "not_council",
            TxError::NotActive(_) => "not_active",
            TxError::AlreadyVoted(_) => "already_voted",
            TxError::BadAction(_) => "bad_action",
            TxError::BelowThreshold(_) => "below_threshold",
            TxError::NoVotingPower(_) => "no_voting_power",
            TxError::Frozen(_) => "frozen",
            TxError::LimitExceeded(_) => "limit_exceeded",
            TxError::NotAssigned(_) => "not_assigned",
            TxError::BadResult(_) => "bad_result",
            TxError::Locked(_) => "locked",
        }
    }
}
