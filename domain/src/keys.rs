//! Ed25519 keys. Secret bytes are never printed: `SigningKey` has no `Debug` of its bytes.

use std::fmt;

use ed25519_dalek::Signer;

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
/// as a third of a verification: callers that see the same keys again keep these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// Parses 32 bytes; `None` if they are not a point on the curve.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<PublicKey> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .ok()
            .map(PublicKey)
    }

    /// The key's 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Verifies a signature (strict: rejects malleable and small-order forms).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify_strict(message, &signature).is_ok()
    }
}

/// Verifies an Ed25519 signature (strict: rejects malleable and small-order forms).
pub fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    PublicKey::from_bytes(public_key).is_some_and(|key| key.verify(message, signature))
}
