//! Blocks: a signed, tamper-evident checkpoint of a chain's part of the event log.
//!
//! Signing bytes (language neutral, one field per line):
//! `AITBC-BLOCK-V{version}\n{chain_id}\n{height}\n{prev_hash}\n{timestamp}\n{merkle_root}\n{from_position}\n{to_position}\n{leaf_count}`.
//! The block hash is SHA-256 of those bytes; each validator signs those bytes. Signatures are not
//! part of the hash, so m of n validators sign the same block.
//!
//! Version 2 (sealed since the module platform) has typed leaves: every committed transaction of
//! every kind as `{"type": "tx", "kind", "hash"}` (see [`crate::merkle`]); `tx_hashes` still
//! lists the transactions' hashes. Version 1 blocks (release 0.1) have untyped leaves, the
//! transaction hashes alone, and still verify.

use serde::{Deserialize, Serialize};

use crate::hash::Hash32;
use crate::keys::{self, SigningKey};
use crate::merkle::{Leaf, LeafType, leaves_root, merkle_root};

/// Version of the blocks this release seals.
pub const BLOCK_VERSION: u32 = 2;

fn version_1() -> u32 {
    1
}

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
    /// Format version: 1 (untyped leaves) or 2 (typed leaves). Blocks stored before versions
    /// existed are version 1.
    #[serde(default = "version_1")]
    pub version: u32,
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
    /// Typed leaves in log order (version 2; empty in version 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leaves: Vec<Leaf>,
    /// Merkle root over the leaves (version 1: over `tx_hashes`).
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
    /// Typed leaves in log order.
    pub leaves: Vec<Leaf>,
    /// First covered position (inclusive).
    pub from_position: u64,
    /// End of covered positions (exclusive).
    pub to_position: u64,
}

/// Bytes validators sign for a block of `version` with these header fields.
#[allow(clippy::too_many_arguments)]
fn signing_bytes(
    version: u32,
    chain_id: &str,
    height: u64,
    prev_hash: &Hash32,
    timestamp: u64,
    merkle_root: &Hash32,
    from_position: u64,
    to_position: u64,
    leaf_count: usize,
) -> Vec<u8> {
    format!(
        "AITBC-BLOCK-V{version}\n{chain_id}\n{height}\n{prev_hash}\n{timestamp}\n{merkle_root}\n{from_position}\n{to_position}\n{leaf_count}"
    )
    .into_bytes()
}

impl BlockDraft {
    /// Seals the draft (as a block of [`BLOCK_VERSION`]) with the given validator keys (at
    /// least one).
    pub fn seal(self, signers: &[SigningKey]) -> Block {
        assert!(!signers.is_empty(), "a block needs at least one signer");
        let root = leaves_root(&self.leaves);
        let bytes = signing_bytes(
            BLOCK_VERSION,
            &self.chain_id,
            self.height,
            &self.prev_hash,
            self.timestamp,
            &root,
            self.from_position,
            self.to_position,
            self.leaves.len(),
        );
        let signatures: Vec<BlockSignature> = signers
            .iter()
            .map(|key| BlockSignature {
                validator: hex::encode(key.public_key()),
                signature: hex::encode(key.sign(&bytes)),
            })
            .collect();
        Block {
            version: BLOCK_VERSION,
            hash: Hash32::digest(&bytes),
            validator: signatures[0].validator.clone(),
            signature: signatures[0].signature.clone(),
            signatures,
            chain_id: self.chain_id,
            height: self.height,
            prev_hash: self.prev_hash,
            timestamp: self.timestamp,
            tx_hashes: tx_hashes_of(&self.leaves),
            leaves: self.leaves,
            merkle_root: root,
            from_position: self.from_position,
            to_position: self.to_position,
        }
    }
}

fn tx_hashes_of(leaves: &[Leaf]) -> Vec<Hash32> {
    leaves
        .iter()
        .filter(|l| l.leaf_type == LeafType::Tx)
        .map(|l| l.hash)
        .collect()
}

/// Why a block does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Merkle root does not match the transaction list.
    #[error("merkle root does not match the transactions")]
    BadMerkleRoot,
    /// A block format this release does not know.
    #[error("unknown block version {0}")]
    UnknownVersion(u32),
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
    /// The bytes its validators signed, after checking that its root matches its leaves.
    fn checked_signing_bytes(&self) -> Result<Vec<u8>, BlockError> {
        let (root, leaf_count) = match self.version {
            1 if self.leaves.is_empty() => (merkle_root(&self.tx_hashes), self.tx_hashes.len()),
            BLOCK_VERSION if tx_hashes_of(&self.leaves) == self.tx_hashes => {
                (leaves_root(&self.leaves), self.leaves.len())
            }
            1 | BLOCK_VERSION => return Err(BlockError::BadMerkleRoot),
            other => return Err(BlockError::UnknownVersion(other)),
        };
        if root != self.merkle_root {
            return Err(BlockError::BadMerkleRoot);
        }
        Ok(signing_bytes(
            self.version,
            &self.chain_id,
            self.height,
            &self.prev_hash,
            self.timestamp,
            &self.merkle_root,
            self.from_position,
            self.to_position,
            leaf_count,
        ))
    }

    /// Inclusion proof of the transaction `tx_hash` in this block.
    pub fn tx_proof(&self, tx_hash: &Hash32) -> Option<crate::merkle::MerkleProof> {
        if self.version == 1 {
            let index = self.tx_hashes.iter().position(|h| h == tx_hash)?;
            return crate::merkle::merkle_proof(&self.tx_hashes, index);
        }
        let index = self
            .leaves
            .iter()
            .position(|l| l.leaf_type == LeafType::Tx && l.hash == *tx_hash)?;
        crate::merkle::leaf_proof(&self.leaves, index)
    }

    /// The block's tree and where each of its transactions is, to prove any of them without
    /// hashing again.
    pub fn proven(self: std::sync::Arc<Self>) -> ProvenBlock {
        let (levels, tx_index) = match self.version {
            1 => (
                crate::merkle::Levels::of_tx_hashes(&self.tx_hashes),
                self.tx_hashes
                    .iter()
                    .enumerate()
                    .map(|(i, h)| (*h, i))
                    .collect(),
            ),
            _ => (
                crate::merkle::Levels::of_leaves(&self.leaves),
                self.leaves
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.leaf_type == LeafType::Tx)
                    .map(|(i, l)| (l.hash, i))
                    .collect(),
            ),
        };
        ProvenBlock {
            block: self,
            levels,
            tx_index,
        }
    }

    /// Inclusion proof of the job receipt `receipt_id` in this block.
    pub fn receipt_proof(&self, receipt_id: &Hash32) -> Option<crate::merkle::MerkleProof> {
        let index = self
            .leaves
            .iter()
            .position(|l| l.leaf_type == LeafType::Receipt && l.hash == *receipt_id)?;
        crate::merkle::leaf_proof(&self.leaves, index)
    }

    /// Verifies the Merkle root, the hash and that at least `threshold` distinct members of
    /// `validators` (public keys, hex) signed it, and that every signature present is valid.
    pub fn verify(&self, validators: &[String], threshold: usize) -> Result<(), BlockError> {
        let bytes = self.checked_signing_bytes()?;
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
            leaves: vec![
                Leaf::tx("transfer", Hash32::digest(b"a")),
                Leaf::tx("create_vesting", Hash32::digest(b"b")),
            ],
            from_position: 0,
            to_position: 5,
        }
    }

    /// A version 1 block exactly as release 0.1 sealed it (its JSON has no version or leaves).
    fn v1_block(k: &[SigningKey]) -> Block {
        let tx_hashes = vec![Hash32::digest(b"a"), Hash32::digest(b"b")];
        let root = merkle_root(&tx_hashes);
        let bytes = format!(
            "AITBC-BLOCK-V1\nc\n1\n{}\n10\n{root}\n0\n5\n2",
            Hash32::default()
        );
        let signature = hex::encode(k[0].sign(bytes.as_bytes()));
        let json = serde_json::json!({
            "chain_id": "c", "height": 1, "hash": Hash32::digest(bytes.as_bytes()),
            "prev_hash": Hash32::default(), "timestamp": 10, "tx_hashes": tx_hashes,
            "merkle_root": root, "from_position": 0, "to_position": 5,
            "validator": hex::encode(k[0].public_key()), "signature": signature,
            "signatures": [{"validator": hex::encode(k[0].public_key()), "signature": signature}],
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn version_1_blocks_still_verify_and_prove_their_transactions() {
        let k = keys(1);
        let block = v1_block(&k);
        assert_eq!(block.version, 1);
        block.verify(&pubs(&k), 1).unwrap();
        let proof = block.tx_proof(&block.tx_hashes[1]).unwrap();
        assert!(proof.leaf.is_none());
        assert!(crate::merkle::verify_proof(
            &block.tx_hashes[1],
            &proof,
            &block.merkle_root
        ));
        let mut typed = block.clone();
        typed.leaves = vec![Leaf::tx("transfer", block.tx_hashes[0])];
        assert_eq!(typed.verify(&pubs(&k), 1), Err(BlockError::BadMerkleRoot));
    }

    #[test]
    fn a_full_block_with_the_longest_kind_fits_its_json_budget() {
        let kind = "k".repeat(crate::limits::KIND_LEN_MAX);
        let leaves = (0..crate::limits::BLOCK_TXS_MAX)
            .map(|i| Leaf::tx(&kind, Hash32::digest(&(i as u64).to_le_bytes())))
            .collect();
        let block = BlockDraft { leaves, ..draft() }.seal(&keys(3));
        let json = serde_json::to_vec(&block).unwrap();
        let budget = crate::limits::BLOCK_TXS_MAX * crate::limits::BLOCK_TX_JSON_LEN_MAX;
        assert!(json.len() <= budget + 64 * 1024, "{} bytes", json.len());
    }

    #[test]
    fn version_2_blocks_bind_every_leaf_with_its_kind() {
        let k = keys(1);
        let block = draft().seal(&k);
        assert_eq!(block.version, BLOCK_VERSION);
        assert_eq!(
            block.tx_hashes,
            vec![Hash32::digest(b"a"), Hash32::digest(b"b")]
        );
        let proof = block.tx_proof(&block.tx_hashes[1]).unwrap();
        assert_eq!(proof.leaf.as_ref().unwrap().kind, "create_vesting");
        assert!(crate::merkle::verify_proof(
            &block.tx_hashes[1],
            &proof,
            &block.merkle_root
        ));
        let mut relabelled = block.clone();
        relabelled.leaves[0].kind = "mint".into();
        assert_eq!(
            relabelled.verify(&pubs(&k), 1),
            Err(BlockError::BadMerkleRoot)
        );
        let mut listed = block.clone();
        listed.tx_hashes.reverse();
        assert_eq!(listed.verify(&pubs(&k), 1), Err(BlockError::BadMerkleRoot));
        let mut future = block;
        future.version = 3;
        assert_eq!(
            future.verify(&pubs(&k), 1),
            Err(BlockError::UnknownVersion(3))
        );
    }

    #[test]
    fn a_proven_block_gives_every_transaction_the_proof_the_block_gives() {
        let k = keys(1);
        for count in [1usize, 2, 3, 7, 64, 101] {
            let leaves = (0..count)
                .map(|i| {
                    let hash = Hash32::digest(&(i as u64).to_le_bytes());
                    match i % 3 {
                        2 => Leaf::receipt("sha256", hash),
                        _ => Leaf::tx("transfer", hash),
                    }
                })
                .collect();
            let block = std::sync::Arc::new(BlockDraft { leaves, ..draft() }.seal(&k));
            let proven = std::sync::Arc::clone(&block).proven();
            for leaf in &block.leaves {
                let proof = proven.tx_proof(&leaf.hash);
                match leaf.leaf_type {
                    LeafType::Tx => {
                        let proof = proof.expect("a transaction is proven");
                        assert_eq!(Some(&proof), block.tx_proof(&leaf.hash).as_ref());
                        assert!(crate::merkle::verify_proof(
                            &leaf.hash,
                            &proof,
                            &block.merkle_root
                        ));
                    }
                    LeafType::Receipt => assert_eq!(proof, None, "a receipt is not a transaction"),
                }
            }
        }
        let v1 = std::sync::Arc::new(v1_block(&k));
        let proven = std::sync::Arc::clone(&v1).proven();
        for hash in &v1.tx_hashes {
            assert_eq!(proven.tx_proof(hash), v1.tx_proof(hash));
        }
        assert_eq!(proven.tx_proof(&Hash32::digest(b"elsewhere")), None);
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
        b.leaves.pop();
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

/// A block with its Merkle tree built and its transactions indexed ([`Block::proven`]).
#[derive(Clone, Debug)]
pub struct ProvenBlock {
    /// The block.
    pub block: std::sync::Arc<Block>,
    levels: crate::merkle::Levels,
    tx_index: std::collections::HashMap<Hash32, usize>,
}

impl ProvenBlock {
    /// Inclusion proof of the transaction `tx_hash`: the same as [`Block::tx_proof`], from the
    /// built tree.
    pub fn tx_proof(&self, tx_hash: &Hash32) -> Option<crate::merkle::MerkleProof> {
        let index = *self.tx_index.get(tx_hash)?;
        Some(crate::merkle::MerkleProof {
            index,
            steps: self.levels.steps(index)?,
            leaf: (self.block.version != 1).then(|| self.block.leaves[index].clone()),
        })
    }
}
