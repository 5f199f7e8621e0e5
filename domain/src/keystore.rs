//! Encrypted secret keys at rest: Argon2id derives a 256-bit key from the passphrase, and
//! ChaCha20-Poly1305 seals the 32-byte Ed25519 secret. Salt and nonce arrive as data (the caller
//! draws them from the OS), so this module stays pure. Derived keys and decrypted secrets are
//! wiped from memory when dropped.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::address::Address;
use crate::keys::SigningKey;

/// Argon2id memory cost in KiB (OWASP's minimum recommendation).
pub const ARGON2_M_COST_KIB: u32 = 19 * 1024;
/// Argon2id passes.
pub const ARGON2_T_COST: u32 = 2;
/// Argon2id lanes.
pub const ARGON2_P_COST: u32 = 1;

/// An encrypted secret key, as stored on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedKey {
    /// Format version (1).
    pub version: u32,
    /// Address of the key (not secret).
    pub address: Address,
    /// Public key, hex (not secret).
    pub public_key: String,
    /// `argon2id`.
    pub kdf: String,
    /// Argon2 memory cost, KiB.
    pub m_cost_kib: u32,
    /// Argon2 passes.
    pub t_cost: u32,
    /// Argon2 lanes.
    pub p_cost: u32,
    /// Salt, hex (16 bytes).
    pub salt: String,
    /// `chacha20poly1305`.
    pub cipher: String,
    /// AEAD nonce, hex (12 bytes).
    pub nonce: String,
    /// Ciphertext + tag, hex.
    pub ciphertext: String,
}

/// Why a key could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeystoreError {
    /// The passphrase is wrong (or the file was altered).
    #[error("wrong passphrase (or the key file was altered)")]
    WrongPassphrase,
    /// The file is not a key file this version understands.
    #[error("unsupported or damaged key file: {0}")]
    Unsupported(String),
}

fn derive(
    passphrase: &str,
    salt: &[u8],
    m: u32,
    t: u32,
    p: u32,
) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    let params =
        Params::new(m, t, p, Some(32)).map_err(|e| KeystoreError::Unsupported(e.to_string()))?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, out.as_mut())
        .map_err(|e| KeystoreError::Unsupported(e.to_string()))?;
    Ok(out)
}

/// Encrypts `key` under `passphrase` with the given random `salt` and `nonce`.
pub fn encrypt(
    key: &SigningKey,
    passphrase: &str,
    salt: [u8; 16],
    nonce: [u8; 12],
) -> EncryptedKey {
    let derived = derive(
        passphrase,
        &salt,
        ARGON2_M_COST_KIB,
        ARGON2_T_COST,
        ARGON2_P_COST,
    )
    .expect("constant argon2 parameters are valid");
    let cipher = ChaCha20Poly1305::new(Key::from_slice(derived.as_ref()));
    let secret = Zeroizing::new(key.secret_bytes());
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), secret.as_slice())
        .expect("encryption of 32 bytes cannot fail");
    EncryptedKey {
        version: 1,
        address: key.address(),
        public_key: hex::encode(key.public_key()),
        kdf: "argon2id".into(),
        m_cost_kib: ARGON2_M_COST_KIB,
        t_cost: ARGON2_T_COST,
        p_cost: ARGON2_P_COST,
        salt: hex::encode(salt),
        cipher: "chacha20poly1305".into(),
        nonce: hex::encode(nonce),
        ciphertext: hex::encode(ciphertext),
    }
}

/// Decrypts a key file with `passphrase`.
pub fn decrypt(file: &EncryptedKey, passphrase: &str) -> Result<SigningKey, KeystoreError> {
    let unsupported = |what: &str| KeystoreError::Unsupported(what.to_string());
    if file.version != 1 || file.kdf != "argon2id" || file.cipher != "chacha20poly1305" {
        return Err(unsupported("unknown version, kdf or cipher"));
    }
    // Bound the KDF cost a file can ask for, so a crafted file cannot exhaust memory.
    if file.m_cost_kib > 1 << 20 || file.t_cost > 16 || file.p_cost > 8 {
        return Err(unsupported("argon2 parameters out of range"));
    }
    let salt = hex::decode(&file.salt).map_err(|_| unsupported("salt"))?;
    let nonce: [u8; 12] = hex::decode(&file.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| unsupported("nonce"))?;
    let ciphertext = hex::decode(&file.ciphertext).map_err(|_| unsupported("ciphertext"))?;
    let derived = derive(passphrase, &salt, file.m_cost_kib, file.t_cost, file.p_cost)?;
    let cipher = ChaCha20Poly1305::new(Key::from_slice(derived.as_ref()));
    let secret = Zeroizing::new(
        cipher
            .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
            .map_err(|_| KeystoreError::WrongPassphrase)?,
    );
    if secret.len() != 32 {
        return Err(unsupported("secret length"));
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&secret);
    let key = SigningKey::from_seed(*seed);
    if key.address() != file.address {
        return Err(unsupported("address does not match the key"));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_with_the_right_passphrase_only() {
        let key = SigningKey::from_seed([3; 32]);
        let file = encrypt(&key, "correct horse", [1; 16], [2; 12]);
        assert!(!file.ciphertext.contains(&hex::encode(key.secret_bytes())));
        assert_eq!(
            decrypt(&file, "correct horse").unwrap().address(),
            key.address()
        );
        assert_eq!(
            decrypt(&file, "wrong").unwrap_err(),
            KeystoreError::WrongPassphrase
        );
    }

    #[test]
    fn a_tampered_file_does_not_open() {
        let key = SigningKey::from_seed([3; 32]);
        let mut file = encrypt(&key, "pw", [1; 16], [2; 12]);
        file.address = Address([0; 20]);
        assert!(decrypt(&file, "pw").is_err());
        let mut file = encrypt(&key, "pw", [1; 16], [2; 12]);
        file.m_cost_kib = u32::MAX;
        assert!(matches!(
            decrypt(&file, "pw"),
            Err(KeystoreError::Unsupported(_))
        ));
    }
}
