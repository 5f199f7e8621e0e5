//! Custodial wallets: keys the node holds for users, encrypted at rest (Argon2id +
//! ChaCha20-Poly1305, see `domain::keystore`), one file per wallet under `<data>/custody/`.
//! Secrets are never logged or returned; only the address and public key leave this module.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use dashmap::DashMap;
use domain::address::Address;
use domain::keys::SigningKey;
use domain::keystore::{self, EncryptedKey, KeystoreError};
use domain::limits::{PASSPHRASE_LEN_MAX, WALLET_NAME_LEN_MAX};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::limits::PASSPHRASE_LEN_MIN;

#[derive(Clone, Serialize, Deserialize)]
struct CustodyFile {
    name: String,
    key: EncryptedKey,
}

/// The node's custodial keystore.
pub struct Custody {
    dir: PathBuf,
    by_name: DashMap<String, Address>,
    by_address: DashMap<Address, CustodyFile>,
    create_lock: Mutex<()>,
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= WALLET_NAME_LEN_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !ok {
        return Err(ApiError::malformed(format!(
            "name must be 1-{WALLET_NAME_LEN_MAX} characters of letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(())
}

fn check_passphrase(passphrase: &str) -> Result<(), ApiError> {
    if passphrase.len() < PASSPHRASE_LEN_MIN || passphrase.len() > PASSPHRASE_LEN_MAX {
        return Err(ApiError::malformed(format!(
            "passphrase must be {PASSPHRASE_LEN_MIN}-{PASSPHRASE_LEN_MAX} bytes"
        )));
    }
    Ok(())
}

impl Custody {
    /// Opens (creating) the keystore directory and indexes its wallets.
    pub fn open(dir: PathBuf) -> std::io::Result<Custody> {
        std::fs::create_dir_all(&dir)?;
        let custody = Custody {
            dir,
            by_name: DashMap::new(),
            by_address: DashMap::new(),
            create_lock: Mutex::new(()),
        };
        for entry in std::fs::read_dir(&custody.dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&path)?;
            match serde_json::from_str::<CustodyFile>(&text) {
                Ok(file) => {
                    custody.by_name.insert(file.name.clone(), file.key.address);
                    custody.by_address.insert(file.key.address, file);
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "skipping unreadable custody file")
                }
            }
        }
        Ok(custody)
    }

    /// Encrypts and stores `key` under `name` (blocking: runs Argon2id and fsyncs).
    pub fn store(&self, name: &str, passphrase: &str, key: &SigningKey) -> Result<(), ApiError> {
        check_name(name)?;
        check_passphrase(passphrase)?;
        let _guard = self.create_lock.lock();
        if self.by_name.contains_key(name) {
            return Err(ApiError::new(
                "conflict",
                format!("a wallet named {name:?} exists"),
            ));
        }
        if self.by_address.contains_key(&key.address()) {
            return Err(ApiError::new(
                "conflict",
                format!("wallet {} is already held", key.address()),
            ));
        }
        let mut salt = [0u8; 16];
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut salt).map_err(|e| ApiError::internal(e.to_string()))?;
        getrandom::fill(&mut nonce).map_err(|e| ApiError::internal(e.to_string()))?;
        let file = CustodyFile {
            name: name.to_string(),
            key: keystore::encrypt(key, passphrase, salt, nonce),
        };
        let path = self.dir.join(format!("{}.json", key.address()));
        let write = || -> std::io::Result<()> {
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            out.write_all(&serde_json::to_vec_pretty(&file).expect("serializes"))?;
            out.sync_all()?;
            std::fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| ApiError::internal(format!("custody file not written: {e}")))?;
        self.by_name.insert(name.to_string(), key.address());
        self.by_address.insert(key.address(), file);
        Ok(())
    }

    /// Opens the key of `address` with `passphrase` (blocking: runs Argon2id).
    pub fn unlock(&self, address: &Address, passphrase: &str) -> Result<SigningKey, ApiError> {
        let file = self
            .by_address
            .get(address)
            .map(|f| f.key.clone())
            .ok_or_else(|| ApiError::not_found(format!("no custodial wallet {address}")))?;
        if passphrase.len() > PASSPHRASE_LEN_MAX {
            return Err(ApiError::unauthorized("wrong passphrase"));
        }
        keystore::decrypt(&file, passphrase).map_err(|e| match e {
            KeystoreError::WrongPassphrase => ApiError::unauthorized("wrong passphrase"),
            KeystoreError::Unsupported(reason) => {
                ApiError::internal(format!("custody file damaged: {reason}"))
            }
        })
    }

    /// Public key (hex) of a held wallet.
    pub fn public_key(&self, address: &Address) -> Option<String> {
        self.by_address
            .get(address)
            .map(|f| f.key.public_key.clone())
    }
}
