//! Merkle tree over a block's transaction hashes, with inclusion proofs.
//!
//! Leaf = SHA-256(0x00 ‖ tx hash), node = SHA-256(0x01 ‖ left ‖ right) (domain separated, so a
//! leaf can never pass for a node). An odd node at the end of a level is promoted unchanged
//! (never duplicated, which would let two different lists share a root). The root of no
//! transactions is 32 zero bytes.

use serde::{Deserialize, Serialize};

use crate::hash::Hash32;

fn leaf(tx_hash: &Hash32) -> Hash32 {
    Hash32::digest_parts(&[&[0x00], &tx_hash.0])
}

fn node(left: &Hash32, right: &Hash32) -> Hash32 {
    Hash32::digest_parts(&[&[0x01], &left.0, &right.0])
}

fn next_level(level: &[Hash32]) -> Vec<Hash32> {
    level
        .chunks(2)
        .map(|pair| {
            if pair.len() == 2 {
                node(&pair[0], &pair[1])
            } else {
                pair[0]
            }
        })
        .collect()
}

/// Root over `tx_hashes` in order.
pub fn merkle_root(tx_hashes: &[Hash32]) -> Hash32 {
    if tx_hashes.is_empty() {
        return Hash32::default();
    }
    let mut level: Vec<Hash32> = tx_hashes.iter().map(leaf).collect();
    while level.len() > 1 {
        level = next_level(&level);
    }
    level[0]
}

/// Which side a proof step's sibling is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Sibling is the left child: parent = node(sibling, current).
    Left,
    /// Sibling is the right child: parent = node(current, sibling).
    Right,
}

/// One step from a leaf towards the root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofStep {
    /// Sibling hash.
    pub hash: Hash32,
    /// Side of the sibling.
    pub side: Side,
}

/// Inclusion proof of one transaction hash under a root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerkleProof {
    /// Index of the transaction in the block.
    pub index: usize,
    /// Steps from the leaf up.
    pub steps: Vec<ProofStep>,
}

/// Proof that `tx_hashes[index]` is under `merkle_root(tx_hashes)`; `None` if out of range.
pub fn merkle_proof(tx_hashes: &[Hash32], index: usize) -> Option<MerkleProof> {
    if index >= tx_hashes.len() {
        return None;
    }
    let mut level: Vec<Hash32> = tx_hashes.iter().map(leaf).collect();
    let mut at = index;
    let mut steps = Vec::new();
    while level.len() > 1 {
        let sibling = at ^ 1;
        if sibling < level.len() {
            let side = if sibling < at {
                Side::Left
            } else {
                Side::Right
            };
            steps.push(ProofStep {
                hash: level[sibling],
                side,
            });
        }
        level = next_level(&level);
        at /= 2;
    }
    Some(MerkleProof { index, steps })
}

/// Checks that `tx_hash` is included under `root` by `proof`.
pub fn verify_proof(tx_hash: &Hash32, proof: &MerkleProof, root: &Hash32) -> bool {
    let mut current = leaf(tx_hash);
    for step in &proof.steps {
        current = match step.side {
            Side::Left => node(&step.hash, &current),
            Side::Right => node(&current, &step.hash),
        };
    }
    current == *root
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hashes(n: usize) -> Vec<Hash32> {
        (0..n)
            .map(|i| Hash32::digest(&(i as u64).to_le_bytes()))
            .collect()
    }

    #[test]
    fn empty_root_is_zero_and_single_root_is_the_leaf() {
        assert_eq!(merkle_root(&[]), Hash32::default());
        let one = hashes(1);
        assert_eq!(merkle_root(&one), leaf(&one[0]));
    }

    #[test]
    fn odd_levels_promote_instead_of_duplicating() {
        let three = hashes(3);
        let mut four = three.clone();
        four.push(three[2]);
        assert_ne!(merkle_root(&three), merkle_root(&four));
    }

    #[test]
    fn a_proof_for_another_hash_or_root_fails() {
        let list = hashes(5);
        let root = merkle_root(&list);
        let proof = merkle_proof(&list, 2).unwrap();
        assert!(verify_proof(&list[2], &proof, &root));
        assert!(!verify_proof(&list[3], &proof, &root));
        assert!(!verify_proof(&list[2], &proof, &Hash32::default()));
        assert!(merkle_proof(&list, 5).is_none());
    }

    proptest! {
        #[test]
        fn every_leaf_has_a_proof_that_verifies(n in 1usize..70) {
            let list = hashes(n);
            let root = merkle_root(&list);
            for i in 0..n {
                let proof = merkle_proof(&list, i).unwrap();
                prop_assert!(verify_proof(&list[i], &proof, &root));
            }
        }
    }
}
