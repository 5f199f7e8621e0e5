//! Ed25519 keys. Secret bytes are never printed: `SigningKey` has no `Debug` of its bytes.
//!
//! The verification rule is the cofactored equation of ZIP-215, so that checking signatures
//! one by one and in a batch accept exactly the same ones (the strict, cofactorless check of
//! RFC 8032 cannot be batched without a chance of disagreeing): a signature `R ‖ s` by key `A`
//! over `M` is valid when `A` is a point not of small order, `s` is a canonical scalar, `R`
//! decodes to a point, and `[8]([s]B − R − [k]A)` is the identity, `k = SHA-512(R ‖ A ‖ M)`.
//! Every signature the strict check accepts, this one accepts.

use std::fmt;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::Signer;
use sha2::{Digest, Sha512};

use crate::address::Address;

/// An Ed25519 signing key.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// From a 32-byte seed (the secret key).
    pub fn from_seed(seed: [u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Result<SigningKey, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        Ok(SigningKey::from_seed(seed))
    }

    /// Parses 64 hex characters of secret key.
    pub fn from_hex(text: &str) -> Option<SigningKey> {
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut seed).ok()?;
        Some(SigningKey::from_seed(seed))
    }

    /// The secret seed. Handle with care: never log it.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public key bytes.
    pub fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// The address of this key.
    pub fn address(&self) -> Address {
        Address::from_public_key(&self.public_key())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.address())
    }
}

/// A parsed Ed25519 public key. Parsing decompresses a curve point, which costs about as much
/// as a tenth of a verification: callers that see the same keys again keep these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// Parses 32 bytes; `None` if they are not a point on the curve or the point is of small
    /// order (anyone could sign for such a key).
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<PublicKey> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .ok()
            .filter(|key| !key.is_weak())
            .map(PublicKey)
    }

    /// The key's 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Verifies a signature by the module's rule.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let Some(signature) = Parsed::new(self, message, signature) else {
            return false;
        };
        let minus_a = -self.0.to_edwards();
        let expected_r =
            EdwardsPoint::vartime_double_scalar_mul_basepoint(&signature.k, &minus_a, &signature.s);
        (expected_r - signature.r).mul_by_cofactor().is_identity()
    }
}

/// Verifies an Ed25519 signature by the module's rule.
pub fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    PublicKey::from_bytes(public_key).is_some_and(|key| key.verify(message, signature))
}

/// One signature to check in [`verify_batch`].
#[derive(Clone, Copy, Debug)]
pub struct SignedMessage<'a> {
    /// The signer's key.
    pub key: &'a PublicKey,
    /// The signed bytes.
    pub message: &'a [u8],
    /// The signature.
    pub signature: &'a [u8; 64],
}

/// `true` when every signature is valid by the module's rule, at about half the cost of
/// checking them one by one from a few dozen on. One random linear combination of the
/// equations, so `false` says only that at least one is invalid: check each to learn which.
/// The coefficients come from a hash of everything checked, so nobody can choose signatures
/// that cancel out.
pub fn verify_batch(items: &[SignedMessage<'_>]) -> bool {
    let mut parsed = Vec::with_capacity(items.len());
    let mut transcript = Sha512::new();
    transcript.update(b"AITBC batch verification");
    for item in items {
        let Some(signature) = Parsed::new(item.key, item.message, item.signature) else {
            return false;
        };
        transcript.update(signature.k.as_bytes());
        transcript.update(signature.s.as_bytes());
        parsed.push(signature);
    }
    let seed = transcript.finalize();
    let coefficients: Vec<Scalar> = (0..items.len() as u64)
        .map(|i| {
            let wide = Sha512::new()
                .chain_update(seed)
                .chain_update(i.to_le_bytes())
                .finalize();
            let mut z = [0u8; 16];
            z.copy_from_slice(&wide[..16]);
            Scalar::from(u128::from_le_bytes(z))
        })
        .collect();
    let basepoint: Scalar = parsed.iter().zip(&coefficients).map(|(p, z)| z * p.s).sum();
    let scalars = std::iter::once(basepoint)
        .chain(coefficients.iter().map(|z| -z))
        .chain(parsed.iter().zip(&coefficients).map(|(p, z)| -(z * p.k)));
    let points = std::iter::once(ED25519_BASEPOINT_POINT)
        .chain(parsed.iter().map(|p| p.r))
        .chain(items.iter().map(|item| item.key.0.to_edwards()));
    EdwardsPoint::vartime_multiscalar_mul(scalars, points)
        .mul_by_cofactor()
        .is_identity()
}

/// A signature's parts, decoded: `R` as a point, `s` canonical, and `k = SHA-512(R ‖ A ‖ M)`.
struct Parsed {
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

impl Parsed {
    fn new(key: &PublicKey, message: &[u8], signature: &[u8; 64]) -> Option<Parsed> {
        let (r_bytes, s_bytes) = signature.split_at(32);
        let s = Option::from(Scalar::from_canonical_bytes(s_bytes.try_into().ok()?))?;
        let r = CompressedEdwardsY(r_bytes.try_into().ok()?).decompress()?;
        let hram: [u8; 64] = Sha512::new()
            .chain_update(r_bytes)
            .chain_update(key.0.as_bytes())
            .chain_update(message)
            .finalize()
            .into();
        Some(Parsed {
            r,
            s,
            k: Scalar::from_bytes_mod_order_wide(&hram),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed([seed; 32])
    }

    fn public(key: &SigningKey) -> PublicKey {
        PublicKey::from_bytes(&key.public_key()).expect("a key")
    }

    /// Every signature alone, and all of them in one batch: the two must agree.
    fn singles_and_batch(items: &[(PublicKey, Vec<u8>, [u8; 64])]) -> (Vec<bool>, bool) {
        let singles = items.iter().map(|(k, m, s)| k.verify(m, s)).collect();
        let signed: Vec<SignedMessage<'_>> = items
            .iter()
            .map(|(key, message, signature)| SignedMessage {
                key,
                message,
                signature,
            })
            .collect();
        (singles, verify_batch(&signed))
    }

    /// Signs by hand with secret scalar `a`, adding small-order components to the key and to
    /// `R` (what no honest wallet does; only the signer can, as `k` hashes `R`).
    fn sign_crafted(
        a: Scalar,
        key_torsion: EdwardsPoint,
        r_torsion: EdwardsPoint,
        message: &[u8],
    ) -> ([u8; 32], [u8; 64]) {
        let public = (EdwardsPoint::mul_base(&a) + key_torsion)
            .compress()
            .to_bytes();
        let r = Scalar::from_bytes_mod_order_wide(&Sha512::digest(message).into());
        let big_r = (EdwardsPoint::mul_base(&r) + r_torsion)
            .compress()
            .to_bytes();
        let k: [u8; 64] = Sha512::new()
            .chain_update(big_r)
            .chain_update(public)
            .chain_update(message)
            .finalize()
            .into();
        let s = r + Scalar::from_bytes_mod_order_wide(&k) * a;
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&big_r);
        signature[32..].copy_from_slice(s.as_bytes());
        (public, signature)
    }

    #[test]
    fn keys_of_small_order_are_refused() {
        for point in EIGHT_TORSION {
            assert_eq!(PublicKey::from_bytes(point.compress().as_bytes()), None);
        }
        assert!(PublicKey::from_bytes(&key(1).public_key()).is_some());
    }

    #[test]
    fn a_scalar_s_not_reduced_is_refused() {
        let (k, message) = (key(2), b"pay 5".to_vec());
        let signature = k.sign(&message);
        assert!(public(&k).verify(&message, &signature));
        // s + ℓ encodes the same scalar non-canonically.
        let s = Scalar::from_canonical_bytes(signature[32..].try_into().unwrap()).unwrap();
        let mut unreduced = [0u8; 32];
        let mut carry = 0u16;
        let l_minus_one = (-Scalar::ONE).to_bytes();
        for i in 0..32 {
            let sum =
                u16::from(s.as_bytes()[i]) + u16::from(l_minus_one[i]) + carry + u16::from(i == 0);
            unreduced[i] = sum as u8;
            carry = sum >> 8;
        }
        let mut changed = signature;
        changed[32..].copy_from_slice(&unreduced);
        let items = vec![(public(&k), message, changed)];
        assert_eq!(singles_and_batch(&items), (vec![false], false));
    }

    /// Torsion in `R` or in the key changes nothing for the cofactored equation: one by one and
    /// in a batch, such a signature holds (where the strict check would refuse some), so the
    /// two never disagree, whoever crafts the signature.
    #[test]
    fn torsion_components_are_judged_alike_alone_and_in_a_batch() {
        let message = b"vote yes".to_vec();
        let signer = key(3);
        let mut items = vec![(public(&signer), message.clone(), signer.sign(&message))];
        let identity = EIGHT_TORSION[0];
        for (i, torsion) in EIGHT_TORSION.iter().enumerate().skip(1) {
            let a = Scalar::from(7u64 + i as u64);
            for (on_key, on_r) in [
                (identity, *torsion),
                (*torsion, identity),
                (*torsion, *torsion),
            ] {
                let (key, signature) = sign_crafted(a, on_key, on_r, &message);
                let key = PublicKey::from_bytes(&key).expect("not of small order");
                items.push((key, message.clone(), signature));
            }
        }
        let (singles, batch) = singles_and_batch(&items);
        assert!(singles.iter().all(|&ok| ok), "{singles:?}");
        assert!(batch);
        // The same signatures with one wrong by a point of large order: both refuse.
        let wrong = items.len() / 2;
        items[wrong].1.push(b'!');
        let (singles, batch) = singles_and_batch(&items);
        assert_eq!(singles.iter().filter(|&&ok| !ok).count(), 1);
        assert!(!batch);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// What the strict check of RFC 8032 accepts, this rule accepts, alone and in a batch;
        /// one changed byte anywhere makes both refuse.
        #[test]
        fn batch_and_singles_agree(
            seeds in proptest::collection::vec(any::<u8>(), 1..12),
            flip in proptest::option::of((any::<prop::sample::Index>(), 0..3usize, 1..=255u8)),
        ) {
            let mut items: Vec<(PublicKey, Vec<u8>, [u8; 64])> = seeds
                .iter()
                .enumerate()
                .map(|(i, &seed)| {
                    let k = key(seed);
                    let message = format!("transfer {i} from {seed}").into_bytes();
                    let signature = k.sign(&message);
                    let dalek = ed25519_dalek::VerifyingKey::from_bytes(&k.public_key()).unwrap();
                    let strict = dalek.verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&signature));
                    assert!(strict.is_ok());
                    (public(&k), message, signature)
                })
                .collect();
            if let Some((which, part, xor)) = flip {
                let item = &mut items[which.index(seeds.len())];
                match part {
                    0 => item.1[0] ^= xor,
                    1 => item.2[xor as usize % 32] ^= xor,
                    _ => item.2[32 + xor as usize % 32] ^= xor,
                }
            }
            let (singles, batch) = singles_and_batch(&items);
            prop_assert_eq!(batch, singles.iter().all(|&ok| ok));
            prop_assert_eq!(singles.iter().filter(|&&ok| !ok).count(), usize::from(flip.is_some()));
        }
    }
}
