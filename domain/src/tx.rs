//! The signed transaction envelope (PRODUCT.md §1, API.md).
//!
//! Wire form: `{"payload": "<JSON text>", "public_key": "<64 hex>", "signature": "<128 hex>"}`.
//! Signed bytes: `AITBC-TX-V1\n` + the payload's UTF-8 bytes. Hash: hex SHA-256 of the payload
//! bytes. No canonicalisation: the payload text is signed and hashed exactly as sent.

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::error::TxError;
use crate::hash::Hash32;
use crate::keys::{PublicKey, SignedMessage, SigningKey, verify_batch};
use crate::kinds::{self, TxAction};
use crate::limits::PAYLOAD_LEN_MAX;
use crate::money::Amount;

/// Domain separation prefix of signed transaction bytes.
pub const TX_SIGNING_PREFIX: &[u8] = b"AITBC-TX-V1\n";

/// The envelope as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedEnvelope {
    /// Payload JSON text, signed as is.
    pub payload: String,
    /// Ed25519 public key, 64 hex.
    pub public_key: String,
    /// Ed25519 signature, 128 hex.
    pub signature: String,
}

/// The payload's fields. Unknown top-level fields are refused (`malformed`): kind-specific data
/// belongs in `body`, and nothing unchecked is kept in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxPayload {
    /// Chain the transaction is for.
    pub chain_id: String,
    /// Sending address; must be the signing key's address.
    pub sender: Address,
    /// Sender's nonce: 0, 1, 2... strictly sequential.
    pub nonce: u64,
    /// Fee in base units, paid to the chain's treasury.
    pub fee: Amount,
    /// Transaction kind, e.g. `transfer`.
    pub kind: String,
    /// Kind-specific body.
    pub body: serde_json::Value,
}

/// The payload's fields besides the body, as a verified transaction keeps them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxHeader {
    /// Chain the transaction is for.
    pub chain_id: String,
    /// Sending address (the signing key's).
    pub sender: Address,
    /// Sender's nonce.
    pub nonce: u64,
    /// Fee in base units.
    pub fee: Amount,
    /// Transaction kind.
    pub kind: String,
}

/// The payload as it is checked: the body stays raw text until its kind's strict type parses
/// it, so no key given twice (at any depth) is silently resolved.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WirePayload<'a> {
    chain_id: String,
    sender: Address,
    nonce: u64,
    fee: Amount,
    kind: String,
    #[serde(borrow)]
    body: &'a serde_json::value::RawValue,
}

impl TxPayload {
    /// A `transfer` payload.
    pub fn transfer(
        chain_id: &str,
        sender: Address,
        nonce: u64,
        fee: Amount,
        to: Address,
        amount: Amount,
    ) -> TxPayload {
        TxPayload {
            chain_id: chain_id.to_string(),
            sender,
            nonce,
            fee,
            kind: "transfer".to_string(),
            body: serde_json::json!({"to": to, "amount": amount}),
        }
    }
}

/// A transaction whose signature, shape and sender binding have been checked. Only
/// [`SignedEnvelope::verify`] makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTx {
    /// SHA-256 of the payload bytes.
    pub hash: Hash32,
    /// The payload's fields besides the body.
    pub payload: TxHeader,
    /// The kind-specific action.
    pub action: TxAction,
    /// The envelope as received, kept in the log so anyone can re-verify it.
    pub envelope: SignedEnvelope,
    /// The signer's key, parsed.
    pub public_key: PublicKey,
    /// What the sender locks besides the body's amounts, set by the node from its module's
    /// parameters before the wallet decides (a proposal or challenge bond); zero otherwise.
    pub deposit: Amount,
}

impl VerifiedTx {
    /// Checks that the transaction is for `chain_id`.
    pub fn ensure_chain(&self, chain_id: &str) -> Result<(), TxError> {
        if self.payload.chain_id != chain_id {
            return Err(TxError::WrongChain {
                expected: chain_id.to_string(),
                got: self.payload.chain_id.clone(),
            });
        }
        Ok(())
    }
}

/// Hash of a payload text.
pub fn tx_hash(payload: &str) -> Hash32 {
    Hash32::digest(payload.as_bytes())
}

/// Bytes that are signed for `payload`.
pub fn signing_bytes(payload: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(TX_SIGNING_PREFIX.len() + payload.len());
    bytes.extend_from_slice(TX_SIGNING_PREFIX);
    bytes.extend_from_slice(payload.as_bytes());
    bytes
}

/// Serializes `payload` and signs it with `key`.
pub fn sign_payload(key: &SigningKey, payload: &TxPayload) -> SignedEnvelope {
    let text = serde_json::to_string(payload).expect("payload serializes");
    sign_text(key, text)
}

/// Signs an already serialized payload text.
pub fn sign_text(key: &SigningKey, payload: String) -> SignedEnvelope {
    let signature = key.sign(&signing_bytes(&payload));
    SignedEnvelope {
        payload,
        public_key: hex::encode(key.public_key()),
        signature: hex::encode(signature),
    }
}

/// An envelope's signature, decoded, and its signer's key, parsed: to check alone
/// ([`SignatureClaim::check`]) or with others ([`check_claims`]).
#[derive(Clone, Debug)]
pub struct SignatureClaim {
    key: PublicKey,
    message: Vec<u8>,
    signature: [u8; 64],
}

/// A signature that held: the only way to [`SignedEnvelope::verified`], for the envelope whose
/// payload it signs.
#[derive(Clone, Debug)]
pub struct HeldSignature {
    key: PublicKey,
    message: Vec<u8>,
    signature: [u8; 64],
}

impl SignatureClaim {
    /// Checks the signature alone.
    pub fn check(self) -> Option<HeldSignature> {
        self.key
            .verify(&self.message, &self.signature)
            .then(|| self.held())
    }

    fn held(self) -> HeldSignature {
        HeldSignature {
            key: self.key,
            message: self.message,
            signature: self.signature,
        }
    }

    fn signed(&self) -> SignedMessage<'_> {
        SignedMessage {
            key: &self.key,
            message: &self.message,
            signature: &self.signature,
        }
    }
}

/// Most signatures checked in one batch: past this the batch's cost per signature gains
/// little, and one bad signature sends fewer good ones to be checked again alone.
pub const CLAIMS_PER_BATCH_MAX: usize = 64;

/// Checks the claims in batches of at most [`CLAIMS_PER_BATCH_MAX`], each claim of a batch
/// that fails alone again; answers in order. Accepts exactly what [`SignatureClaim::check`]
/// accepts (see [`crate::keys`]), at about half its cost per signature.
pub fn check_claims(claims: Vec<SignatureClaim>) -> Vec<Option<HeldSignature>> {
    let mut answers = Vec::with_capacity(claims.len());
    let mut claims = claims.into_iter().peekable();
    while claims.peek().is_some() {
        let batch: Vec<SignatureClaim> = claims.by_ref().take(CLAIMS_PER_BATCH_MAX).collect();
        let signed: Vec<SignedMessage<'_>> = batch.iter().map(SignatureClaim::signed).collect();
        if batch.len() > 1 && verify_batch(&signed) {
            answers.extend(batch.into_iter().map(|claim| Some(claim.held())));
        } else {
            answers.extend(batch.into_iter().map(SignatureClaim::check));
        }
    }
    answers
}

fn decode_fixed<const N: usize>(text: &str, what: &str) -> Result<[u8; N], TxError> {
    let mut out = [0u8; N];
    if text.len() != N * 2 {
        return Err(TxError::Malformed(format!(
            "{what} must be {} hex characters",
            N * 2
        )));
    }
    hex::decode_to_slice(text, &mut out)
        .map_err(|_| TxError::Malformed(format!("{what} is not hex")))?;
    Ok(out)
}

impl SignedEnvelope {
    /// Hash of the payload.
    pub fn hash(&self) -> Hash32 {
        tx_hash(&self.payload)
    }

    /// Checks the envelope: sizes and hex, the signature over the exact payload bytes, the
    /// payload's shape, the sender/key binding and the kind's body. Chain and nonce are checked
    /// later against state.
    pub fn verify(&self) -> Result<VerifiedTx, TxError> {
        self.verify_with(PublicKey::from_bytes)
    }

    /// [`SignedEnvelope::verify`], with the caller parsing the public key (from a cache of
    /// parsed keys, say).
    pub fn verify_with(
        &self,
        parse_key: impl FnOnce(&[u8; 32]) -> Option<PublicKey>,
    ) -> Result<VerifiedTx, TxError> {
        self.verify_bound(parse_key, true)
    }

    /// [`SignedEnvelope::verify_with`] without the sender/key binding: for a transaction whose
    /// sender is an agent and whose signer claims to be one of its callers. The caller of this
    /// must check that claim against the agent's state.
    pub fn verify_as_caller(
        &self,
        parse_key: impl FnOnce(&[u8; 32]) -> Option<PublicKey>,
    ) -> Result<VerifiedTx, TxError> {
        self.verify_bound(parse_key, false)
    }

    fn verify_bound(
        &self,
        parse_key: impl FnOnce(&[u8; 32]) -> Option<PublicKey>,
        bind_sender: bool,
    ) -> Result<VerifiedTx, TxError> {
        let held = self
            .signature_claim(parse_key)?
            .check()
            .ok_or(TxError::BadSignature)?;
        self.verified_bound(&held, bind_sender)
    }

    /// The first half of [`SignedEnvelope::verify_with`]: sizes, hex and the key, leaving the
    /// signature itself to check, alone or in a batch with others ([`check_claims`]).
    pub fn signature_claim(
        &self,
        parse_key: impl FnOnce(&[u8; 32]) -> Option<PublicKey>,
    ) -> Result<SignatureClaim, TxError> {
        if self.payload.len() > PAYLOAD_LEN_MAX {
            return Err(TxError::Malformed(format!(
                "payload is longer than {PAYLOAD_LEN_MAX} bytes"
            )));
        }
        let public_key: [u8; 32] = decode_fixed(&self.public_key, "public_key")?;
        let signature: [u8; 64] = decode_fixed(&self.signature, "signature")?;
        let key = parse_key(&public_key).ok_or(TxError::BadSignature)?;
        Ok(SignatureClaim {
            key,
            message: signing_bytes(&self.payload),
            signature,
        })
    }

    /// The second half of [`SignedEnvelope::verify_with`], once its signature held: the
    /// payload's shape, the sender/key binding and the kind's body.
    pub fn verified(&self, held: &HeldSignature) -> Result<VerifiedTx, TxError> {
        self.verified_bound(held, true)
    }

    /// [`SignedEnvelope::verified`] without the sender/key binding, as
    /// [`SignedEnvelope::verify_as_caller`].
    pub fn verified_as_caller(&self, held: &HeldSignature) -> Result<VerifiedTx, TxError> {
        self.verified_bound(held, false)
    }

    fn verified_bound(
        &self,
        held: &HeldSignature,
        bind_sender: bool,
    ) -> Result<VerifiedTx, TxError> {
        let signed = held.message.strip_prefix(TX_SIGNING_PREFIX);
        let public_key: [u8; 32] = decode_fixed(&self.public_key, "public_key")?;
        let signature: [u8; 64] = decode_fixed(&self.signature, "signature")?;
        if signed != Some(self.payload.as_bytes())
            || public_key != held.key.to_bytes()
            || signature != held.signature
        {
            // Another envelope's signature: over another payload, by another key, or this
            // envelope carries other signature bytes than those checked.
            return Err(TxError::BadSignature);
        }
        let key = held.key;
        let wire: WirePayload = serde_json::from_str(&self.payload)
            .map_err(|e| TxError::Malformed(format!("payload: {e}")))?;
        let key_address = Address::from_public_key(&public_key);
        if bind_sender && wire.sender != key_address {
            return Err(TxError::SenderMismatch {
                sender: wire.sender.to_string(),
                key_address: key_address.to_string(),
            });
        }
        let spec = kinds::spec(&wire.kind)?;
        let len_max = kinds::payload_len_max(spec.name);
        if self.payload.len() > len_max {
            return Err(TxError::LimitExceeded(format!(
                "a {} payload holds at most {len_max} bytes",
                spec.name
            )));
        }
        let action = (spec.parse)(wire.body.get())?;
        let payload = TxHeader {
            chain_id: wire.chain_id,
            sender: wire.sender,
            nonce: wire.nonce,
            fee: wire.fee,
            kind: wire.kind,
        };
        Ok(VerifiedTx {
            hash: self.hash(),
            payload,
            action,
            envelope: self.clone(),
            public_key: key,
            deposit: Amount::ZERO,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_seed([9; 32])
    }

    fn transfer(nonce: u64) -> TxPayload {
        TxPayload::transfer(
            "ait-devnet",
            key().address(),
            nonce,
            Amount(1),
            Address([2; 20]),
            Amount(10),
        )
    }

    #[test]
    fn signed_bytes_are_prefix_and_payload_and_hash_is_sha256_of_payload() {
        let envelope = sign_payload(&key(), &transfer(0));
        let mut bytes = b"AITBC-TX-V1\n".to_vec();
        bytes.extend_from_slice(envelope.payload.as_bytes());
        let signature: [u8; 64] = hex::decode(&envelope.signature)
            .unwrap()
            .try_into()
            .unwrap();
        assert!(crate::keys::verify(&key().public_key(), &bytes, &signature));
        assert_eq!(envelope.hash(), Hash32::digest(envelope.payload.as_bytes()));
        let verified = envelope.verify().unwrap();
        assert_eq!(verified.hash, envelope.hash());
        assert_eq!(
            verified.action,
            TxAction::Transfer(kinds::TransferBody {
                to: Address([2; 20]),
                amount: Amount(10),
                asset: None,
            })
        );
    }

    #[test]
    fn a_changed_payload_byte_breaks_the_signature() {
        let mut envelope = sign_payload(&key(), &transfer(0));
        envelope.payload = envelope.payload.replace("\"nonce\":0", "\"nonce\":1");
        assert_eq!(envelope.verify(), Err(TxError::BadSignature));
    }

    /// Batches of up to 64, each with a forgery among good signatures: exactly the forgeries
    /// are refused, answers in order.
    #[test]
    fn claims_checked_in_batches_answer_each_in_order() {
        let envelopes: Vec<SignedEnvelope> = (0..70u8)
            .map(|i| {
                let key = SigningKey::from_seed([i; 32]);
                let payload = TxPayload::transfer(
                    "ait-devnet",
                    key.address(),
                    0,
                    Amount(1),
                    Address([2; 20]),
                    Amount(3),
                );
                sign_payload(&key, &payload)
            })
            .collect();
        let forged = [5, 66];
        let claims = envelopes
            .iter()
            .enumerate()
            .map(|(i, envelope)| {
                let mut envelope = envelope.clone();
                if forged.contains(&i) {
                    envelope.signature = envelopes[i + 1].signature.clone();
                }
                envelope.signature_claim(PublicKey::from_bytes).unwrap()
            })
            .collect();
        let answers = check_claims(claims);
        assert_eq!(answers.len(), envelopes.len());
        for (i, (answer, envelope)) in answers.iter().zip(&envelopes).enumerate() {
            match answer {
                Some(held) => assert_eq!(envelope.verified(held).unwrap().hash, envelope.hash()),
                None => assert!(forged.contains(&i), "{i} is good"),
            }
        }
        assert_eq!(answers.iter().filter(|a| a.is_none()).count(), forged.len());
    }

    #[test]
    fn a_held_signature_verifies_only_the_envelope_it_signs() {
        let (first, second) = (
            sign_payload(&key(), &transfer(0)),
            sign_payload(&key(), &transfer(1)),
        );
        let held = first
            .signature_claim(PublicKey::from_bytes)
            .unwrap()
            .check()
            .unwrap();
        assert_eq!(second.verified(&held), Err(TxError::BadSignature));
        assert_eq!(second.verified_as_caller(&held), Err(TxError::BadSignature));
        // The same payload under another key's name.
        let mut renamed = first.clone();
        renamed.public_key = hex::encode(SigningKey::from_seed([3; 32]).public_key());
        assert_eq!(
            renamed.verified_as_caller(&held),
            Err(TxError::BadSignature)
        );
        // The same payload and key with other signature bytes: those were never checked.
        let mut resigned = first.clone();
        resigned.signature = "00".repeat(64);
        assert_eq!(resigned.verified(&held), Err(TxError::BadSignature));
        assert_eq!(first.verified(&held).unwrap(), first.verify().unwrap());
    }

    #[test]
    fn verify_with_uses_the_given_key_parser() {
        let envelope = sign_payload(&key(), &transfer(0));
        let cached = PublicKey::from_bytes(&key().public_key());
        assert!(envelope.verify_with(|_| cached).is_ok());
        assert_eq!(envelope.verify_with(|_| None), Err(TxError::BadSignature));
        let stranger = PublicKey::from_bytes(&SigningKey::from_seed([5; 32]).public_key());
        assert_eq!(
            envelope.verify_with(|_| stranger),
            Err(TxError::BadSignature)
        );
    }

    #[test]
    fn a_signature_by_another_key_is_bad() {
        let mut envelope = sign_payload(&key(), &transfer(0));
        let other = sign_payload(&SigningKey::from_seed([1; 32]), &transfer(0));
        envelope.signature = other.signature;
        assert_eq!(envelope.verify(), Err(TxError::BadSignature));
    }

    #[test]
    fn sender_must_be_the_signing_key_address() {
        let mut payload = transfer(0);
        payload.sender = Address([3; 20]);
        let envelope = sign_payload(&key(), &payload);
        assert_eq!(envelope.verify().unwrap_err().code(), "sender_mismatch");
    }

    #[test]
    fn a_kind_with_short_bodies_refuses_a_padded_payload_and_a_long_kind_does_not() {
        let text = serde_json::to_string(&transfer(0)).unwrap();
        let padded = format!("{}{}}}", &text[..text.len() - 1], " ".repeat(5_000));
        let envelope = sign_text(&key(), padded);
        let refused = envelope.verify().unwrap_err();
        assert_eq!(refused.code(), "limit_exceeded", "{refused}");
        assert!(refused.to_string().contains("transfer"), "{refused}");
        let mut propose = transfer(0);
        propose.kind = "propose".into();
        propose.body = serde_json::json!({"proposal_type": "treasury", "title": "t",
            "description": "d".repeat(6_000), "actions": [{"action": "pay",
            "to": Address([2; 20]), "amount": "1"}]});
        let long = sign_payload(&key(), &propose);
        assert!(long.payload.len() > crate::kinds::PAYLOAD_LEN_MAX_DEFAULT);
        assert!(
            long.verify().is_ok(),
            "a long description is what a proposal may hold"
        );
    }

    #[test]
    fn malformed_envelopes_are_rejected_with_malformed() {
        let good = sign_payload(&key(), &transfer(0));
        let cases = [
            SignedEnvelope {
                public_key: "zz".into(),
                ..good.clone()
            },
            SignedEnvelope {
                signature: "00".into(),
                ..good.clone()
            },
            SignedEnvelope {
                payload: "x".repeat(PAYLOAD_LEN_MAX + 1),
                ..good.clone()
            },
        ];
        for case in cases {
            assert_eq!(case.verify().unwrap_err().code(), "malformed");
        }
        for text in [
            "not json",
            "{}",
            r#"{"chain_id":"c","sender":"ait1","nonce":0,"fee":"0","kind":"transfer","body":{}}"#,
        ] {
            let envelope = sign_text(&key(), text.to_string());
            assert_eq!(envelope.verify().unwrap_err().code(), "malformed", "{text}");
        }
        let mut zero = transfer(0);
        zero.body = serde_json::json!({"to": Address([2; 20]), "amount": "0"});
        assert_eq!(
            sign_payload(&key(), &zero).verify().unwrap_err().code(),
            "malformed"
        );
        let mut numeric = transfer(0);
        numeric.body = serde_json::json!({"to": Address([2; 20]), "amount": 5});
        assert_eq!(
            sign_payload(&key(), &numeric).verify().unwrap_err().code(),
            "malformed"
        );
    }

    #[test]
    fn a_payload_field_given_twice_is_malformed_not_resolved() {
        let good = serde_json::to_string(&transfer(0)).unwrap();
        let twice = good.replacen("\"nonce\":0", "\"nonce\":0,\"nonce\":1", 1);
        assert_ne!(good, twice);
        let envelope = sign_text(&key(), twice);
        assert_eq!(envelope.verify().unwrap_err().code(), "malformed");
        let body_twice = good.replacen(
            "\"amount\":\"10\"",
            "\"amount\":\"10\",\"amount\":\"99\"",
            1,
        );
        assert_ne!(good, body_twice);
        let envelope = sign_text(&key(), body_twice);
        assert_eq!(envelope.verify().unwrap_err().code(), "malformed");
    }

    #[test]
    fn unknown_kinds_are_unsupported() {
        let mut payload = transfer(0);
        payload.kind = "print_money".into();
        assert_eq!(
            sign_payload(&key(), &payload).verify().unwrap_err().code(),
            "unsupported_kind"
        );
    }

    #[test]
    fn wrong_chain_is_detected() {
        let verified = sign_payload(&key(), &transfer(0)).verify().unwrap();
        assert_eq!(
            verified.ensure_chain("other").unwrap_err().code(),
            "wrong_chain"
        );
        assert!(verified.ensure_chain("ait-devnet").is_ok());
    }
}
