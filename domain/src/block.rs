//! Blocks: a signed, tamper-evident checkpoint of a chain's part of the event log.
//!
//! Signing bytes (language neutral, one field per line):
//! `AITBC-BLOCK-V1\n{chain_id}\n{height}\n{prev_hash}\n{timestamp}\n{merkle_root}\n{from_position}\n{to_position}\n{tx_count}`.
//! The block hash is SHA-256 of those bytes; each validator signs those bytes. Signatures are not
//! part of the hash, so m of n validators sign the same block.

use serde::{Deserialize, Serialize};

use crate::hash::Hash32;
use crate::keys::{self, SigningKey};
use crate::merkle::merkle_root;

/// One validator's signature of a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockSignature {
    /// Validator public key, 64 hex.
    pub validator: String,
    /// Ed25519 signature over the block's signing bytes, 128 hex.
    pub signature: String,
}

/// A sealed block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Chain id.
    pub chain_id: String,
    /// Height; the genesis block is 0.
    pub height: u64,
    /// SHA-256 of the signing bytes.
    pub hash: Hash32,
    /// Hash of the previous block (the genesis hash for height 0).
    pub prev_hash: Hash32,
    /// Unix seconds when sealed.
    pub timestamp: u64,
    /// Transaction hashes in log order.
    pub tx_hashes: Vec<Hash32>,
    /// Merkle root over `tx_hashes`.
    pub merkle_root: Hash32,
    /// First log position covered (inclusive).
    pub from_position: u64,
    /// End of the covered log positions (exclusive).
    pub to_position: u64,
    /// Public key of the first signer (the proposer).
    pub validator: String,
    /// Its signature (same as `signatures[0].signature`).
    pub signature: String,
    /// All signatures collected.
    pub signatures: Vec<BlockSignature>,
}

/// The unsigned content of a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDraft {
    /// Chain id.
    pub chain_id: String,
    /// Height.
    pub height: u64,
    /// Previous block hash.
    pub prev_hash: Hash32,
    /// Unix seconds.
    pub timestamp: u64,
    /// Transaction hashes in log order.
    pub tx_hashes: Vec<Hash32>,
    /// First covered position (inclusive).
    pub from_position: u64,
    /// End of covered positions (exclusive).
    pub to_position: u64,
}

/// Bytes validators sign for a block with these header fields.
pub fn block_signing_bytes(draft: &BlockDraft, merkle_root: &Hash32) -> Vec<u8> {
    format!(
        "AITBC-BLOCK-V1\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
        draft.chain_id,
        draft.height,
        draft.prev_hash,
        draft.timestamp,
        merkle_root,
        draft.from_position,
        draft.to_position,
        draft.tx_hashes.len()
    )
    .into_bytes()
}

impl BlockDraft {
    /// Seals the draft with the given validator keys (at least one).
    pub fn seal(self, signers: &[SigningKey]) -> Block {
        assert!(!signers.is_empty(), "a block needs at least one signer");
        let root = merkle_root(&self.tx_hashes);
        let bytes = block_signing_bytes(&self, &root);
        let signatures: Vec<BlockSignature> = signers
            .iter()
            .map(|key| BlockSignature {
                validator: hex::encode(key.public_key()),
                signature: hex::encode(key.sign(&bytes)),
            })
            .collect();
        Block {
            hash: Hash32::digest(&bytes),
            validator: signatures[0].validator.clone(),
            signature: signatures[0].signature.clone(),
            signatures,
            chain_id: self.chain_id,
            height: self.height,
            prev_hash: self.prev_hash,
            timestamp: self.timestamp,
            tx_hashes: self.tx_hashes,
            merkle_root: root,
            from_position: self.from_position,
            to_position: self.to_position,
        }
    }
}

/// Why a block does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Merkle root does not match the transaction list.
    #[error("merkle root does not match the transactions")]
    BadMerkleRoot,
    /// Hash does not match the header.
    #[error("block hash does not match its header")]
    BadHash,
    /// A signature does not verify or is not by a validator.
    #[error("signature by {0} does not verify or is not by a validator of the chain")]
    BadSignature(String),
    /// Fewer valid distinct validator signatures than the threshold.
    #[error("{got} validator signatures, {needed} needed")]
    NotFinal {
        /// Distinct valid signatures.
        got: usize,
        /// Threshold m.
        needed: usize,
    },
    /// `validator`/`signature` are not the first signature.
    #[error("proposer fields do not match the first signature")]
    ProposerMismatch,
}

impl Block {
    fn draft(&self) -> BlockDraft {
        BlockDraft {
            chain_id: self.chain_id.clone(),
            height: self.height,
            prev_hash: self.prev_hash,
            timestamp: self.timestamp,
            tx_hashes: self.tx_hashes.clone(),
            from_position: self.from_position,
            to_position: self.to_position,
        }
    }

    /// Verifies the Merkle root, the hash and that at least `threshold` distinct members of
    /// `validators` (public keys, hex) signed it, and that every signature present is valid.
    pub fn verify(&self, validators: &[String], threshold: usize) -> Result<(), BlockError> {
        if merkle_root(&self.tx_hashes) != self.merkle_root {
            return Err(BlockError::BadMerkleRoot);
        }
        let bytes = block_signing_bytes(&self.draft(), &self.merkle_root);
        if Hash32::digest(&bytes) != self.hash {
            return Err(BlockError::BadHash);
        }
        let first = self.signatures.first().ok_or(BlockError::NotFinal {
            got: 0,
            needed: threshold,
        })?;
        if first.validator != self.validator || first.signature != self.signature {
            return Err(BlockError::ProposerMismatch);
        }
        let mut signed_by: Vec<&str> = Vec::new();
        for sig in &self.signatures {
            let bad = || BlockError::BadSignature(sig.validator.clone());
            if !validators.iter().any(|v| v == &sig.validator) {
                return Err(bad());
            }
            let key: [u8; 32] = hex_array(&sig.validator).ok_or_else(bad)?;
            let signature: [u8; 64] = hex_array(&sig.signature).ok_or_else(bad)?;
            if !keys::verify(&key, &bytes, &signature) {
                return Err(bad());
            }
            if !signed_by.contains(&sig.validator.as_str()) {
                signed_by.push(&sig.validator);
            }
        }
        if signed_by.len() < threshold {
            return Err(BlockError::NotFinal {
                got: signed_by.len(),
                needed: threshold,
            });
        }
        Ok(())
    }
}

fn hex_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> BlockDraft {
        BlockDraft {
            chain_id: "c".into(),
            height: 1,
            prev_hash: Hash32::default(),
            timestamp: 10,
            tx_hashes: vec![Hash32::digest(b"a"), Hash32::digest(b"b")],
            from_position: 0,
            to_position: 5,
        }
    }

    fn keys(n: u8) -> Vec<SigningKey> {
        (1..=n).map(|i| SigningKey::from_seed([i; 32])).collect()
    }

    fn pubs(keys: &[SigningKey]) -> Vec<String> {
        keys.iter().map(|k| hex::encode(k.public_key())).collect()
    }

    #[test]
    fn a_sealed_block_verifies() {
        let k = keys(1);
        draft().seal(&k).verify(&pubs(&k), 1).unwrap();
    }

    #[test]
    fn tampering_with_any_field_is_detected() {
        let k = keys(1);
        let block = draft().seal(&k);
        let mut b = block.clone();
        b.tx_hashes.pop();
        assert_eq!(b.verify(&pubs(&k), 1), Err(BlockError::BadMerkleRoot));
        let mut b = block.clone();
        b.timestamp += 1;
        assert_eq!(b.verify(&pubs(&k), 1), Err(BlockError::BadHash));
        let mut b = block.clone();
        b.signatures[0].signature = hex::encode([0u8; 64]);
        b.signature = b.signatures[0].signature.clone();
        assert!(matches!(
            b.verify(&pubs(&k), 1),
            Err(BlockError::BadSignature(_))
        ));
    }

    #[test]
    fn a_block_is_final_with_m_of_n_signatures() {
        let all = keys(3);
        let block = draft().seal(&all[..1]);
        assert_eq!(
            block.verify(&pubs(&all), 2),
            Err(BlockError::NotFinal { got: 1, needed: 2 })
        );
        let block = draft().seal(&all[..2]);
        block.verify(&pubs(&all), 2).unwrap();
    }

    #[test]
    fn a_signature_by_a_non_validator_is_rejected() {
        let k = keys(2);
        let block = draft().seal(&k[1..]);
        assert!(matches!(
            block.verify(&pubs(&k[..1]), 1),
            Err(BlockError::BadSignature(_))
        ));
    }
}
