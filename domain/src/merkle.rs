//! Merkle tree over a block's leaves, with inclusion proofs.
//!
//! Block version 1: leaf = SHA-256(0x00 ‖ tx hash). Version 2 has typed leaves (a transaction of
//! some kind; later, job receipts): leaf = SHA-256(0x02 ‖ type ‖ 0x00 ‖ kind ‖ 0x00 ‖ hash), so
//! a hash of one type can never pass for another's, nor for a version 1 leaf. Node =
//! SHA-256(0x01 ‖ left ‖ right) (domain separated, so a leaf can never pass for a node). An odd
//! node at the end of a level is promoted unchanged (never duplicated, which would let two
//! different lists share a root). The root of no leaves is 32 zero bytes.

use serde::{Deserialize, Serialize};

use crate::hash::Hash32;

fn leaf(tx_hash: &Hash32) -> Hash32 {
    Hash32::digest_parts(&[&[0x00], &tx_hash.0])
}

/// What a version 2 leaf is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeafType {
    /// A committed transaction (its hash).
    Tx,
    /// A miner's signed receipt for a job's result (its id; the kind is the job's).
    Receipt,
}

impl LeafType {
    fn tag(self) -> &'static str {
        match self {
            LeafType::Tx => "tx",
            LeafType::Receipt => "receipt",
        }
    }
}

/// A typed leaf of a version 2 block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leaf {
    /// What it is.
    #[serde(rename = "type")]
    pub leaf_type: LeafType,
    /// The transaction's kind (`transfer`, `create_vesting`...).
    pub kind: String,
    /// The transaction's hash.
    pub hash: Hash32,
}

impl Leaf {
    /// A transaction leaf.
    pub fn tx(kind: &str, hash: Hash32) -> Leaf {
        Leaf {
            leaf_type: LeafType::Tx,
            kind: kind.to_string(),
            hash,
        }
    }

    /// A receipt leaf.
    pub fn receipt(job_kind: &str, receipt_id: Hash32) -> Leaf {
        Leaf {
            leaf_type: LeafType::Receipt,
            kind: job_kind.to_string(),
            hash: receipt_id,
        }
    }

    /// The digest the tree is built over.
    pub fn digest(&self) -> Hash32 {
        Hash32::digest_parts(&[
            &[0x02],
            self.leaf_type.tag().as_bytes(),
            &[0x00],
            self.kind.as_bytes(),
            &[0x00],
            &self.hash.0,
        ])
    }
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

/// Root over `tx_hashes` in order (version 1).
pub fn merkle_root(tx_hashes: &[Hash32]) -> Hash32 {
    root_of_digests(tx_hashes.iter().map(leaf).collect())
}

/// Root over typed leaves in order (version 2).
pub fn leaves_root(leaves: &[Leaf]) -> Hash32 {
    root_of_digests(leaves.iter().map(Leaf::digest).collect())
}

fn root_of_digests(mut level: Vec<Hash32>) -> Hash32 {
    if level.is_empty() {
        return Hash32::default();
    }
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
    /// Index of the leaf in the block.
    pub index: usize,
    /// Steps from the leaf up.
    pub steps: Vec<ProofStep>,
    /// The typed leaf (version 2 blocks); absent for a version 1 block, whose leaf is the
    /// transaction hash alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf: Option<Leaf>,
}

/// Proof that `tx_hashes[index]` is under `merkle_root(tx_hashes)` (version 1); `None` if out
/// of range.
pub fn merkle_proof(tx_hashes: &[Hash32], index: usize) -> Option<MerkleProof> {
    let steps = proof_steps(tx_hashes.iter().map(leaf).collect(), index)?;
    Some(MerkleProof {
        index,
        steps,
        leaf: None,
    })
}

/// Proof that `leaves[index]` is under `leaves_root(leaves)` (version 2); `None` if out of
/// range.
pub fn leaf_proof(leaves: &[Leaf], index: usize) -> Option<MerkleProof> {
    let steps = proof_steps(leaves.iter().map(Leaf::digest).collect(), index)?;
    Some(MerkleProof {
        index,
        steps,
        leaf: Some(leaves[index].clone()),
    })
}

fn proof_steps(level: Vec<Hash32>, index: usize) -> Option<Vec<ProofStep>> {
    Levels::build(level).steps(index)
}

/// Every level of a tree, leaves first: built once, it gives any leaf's proof without hashing
/// again (a block's proofs are asked for one transaction at a time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Levels(Vec<Vec<Hash32>>);

impl Levels {
    /// The tree over leaf digests.
    fn build(leaves: Vec<Hash32>) -> Levels {
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|level| level.len() > 1) {
            let next = next_level(levels.last().expect("a level"));
            levels.push(next);
        }
        Levels(levels)
    }

    /// The tree of a version 1 block's transaction hashes.
    pub fn of_tx_hashes(tx_hashes: &[Hash32]) -> Levels {
        Levels::build(tx_hashes.iter().map(leaf).collect())
    }

    /// The tree of a version 2 block's leaves.
    pub fn of_leaves(leaves: &[Leaf]) -> Levels {
        Levels::build(leaves.iter().map(Leaf::digest).collect())
    }

    /// The steps from leaf `index` up; `None` if out of range.
    pub fn steps(&self, index: usize) -> Option<Vec<ProofStep>> {
        if index >= self.0.first().map_or(0, Vec::len) {
            return None;
        }
        let mut at = index;
        let mut steps = Vec::new();
        for level in &self.0[..self.0.len() - 1] {
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
            at /= 2;
        }
        Some(steps)
    }
}

/// Checks that `tx_hash` is included under `root` by `proof`: through its typed leaf when the
/// proof carries one (version 2), else as a version 1 leaf.
pub fn verify_proof(tx_hash: &Hash32, proof: &MerkleProof, root: &Hash32) -> bool {
    let mut current = match &proof.leaf {
        Some(typed) if typed.hash != *tx_hash => return false,
        Some(typed) => typed.digest(),
        None => leaf(tx_hash),
    };
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

    #[test]
    fn typed_leaves_are_bound_to_their_type_kind_and_hash() {
        let list: Vec<Leaf> = hashes(5)
            .into_iter()
            .map(|h| Leaf::tx("transfer", h))
            .collect();
        let root = leaves_root(&list);
        assert_ne!(
            root,
            merkle_root(&hashes(5)),
            "version 2 roots differ from version 1"
        );
        let proof = leaf_proof(&list, 3).unwrap();
        assert!(verify_proof(&list[3].hash, &proof, &root));
        assert!(!verify_proof(&list[2].hash, &proof, &root), "another hash");
        let mut relabelled = proof.clone();
        relabelled.leaf.as_mut().unwrap().kind = "mint".into();
        assert!(
            !verify_proof(&list[3].hash, &relabelled, &root),
            "another kind"
        );
        let mut untyped = proof;
        untyped.leaf = None;
        assert!(
            !verify_proof(&list[3].hash, &untyped, &root),
            "a typed leaf is not a v1 leaf"
        );
        assert!(leaf_proof(&list, 5).is_none());
    }

    proptest! {
        #[test]
        fn every_typed_leaf_has_a_proof_that_verifies(n in 1usize..70) {
            let list: Vec<Leaf> = hashes(n).into_iter().map(|h| Leaf::tx("k", h)).collect();
            let root = leaves_root(&list);
            for i in 0..n {
                let proof = leaf_proof(&list, i).unwrap();
                prop_assert!(verify_proof(&list[i].hash, &proof, &root));
            }
        }

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
