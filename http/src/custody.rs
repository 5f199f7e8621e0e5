//! Custodial wallets: keys the node holds for users, encrypted at rest (Argon2id +
//! ChaCha20-Poly1305, see `domain::keystore`), one file per wallet under `<data>/custody/`.
//! Secrets are never logged or returned; only the address and public key leave this module,
//! and a wallet's credential once, when it is created or imported (its SHA-256 is kept).
//!
//! An unlock is refused with the same 401 whether the wallet does not exist, the passphrase is
//! wrong or the credential is: each runs one Argon2id derivation, so neither the answer nor its
//! time tells which addresses are custodial.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::LazyLock;

use dashmap::DashMap;
use domain::address::Address;
use domain::hash::Hash32;
use domain::keys::SigningKey;
use domain::keystore::{self, EncryptedKey, KeystoreError};
use domain::limits::{PASSPHRASE_LEN_MAX, WALLET_NAME_LEN_MAX};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::limits::PASSPHRASE_LEN_MIN;

#[derive(Clone, Serialize, Deserialize)]
struct CustodyFile {
    name: String,
    key: EncryptedKey,
    /// SHA-256 of the wallet's credential (wallets stored before credentials have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    credential_sha256: Option<Hash32>,
}

/// Decrypted in place of a wallet that does not exist, so that refusal costs the same time.
static DECOY: LazyLock<EncryptedKey> = LazyLock::new(|| {
    let key = SigningKey::from_seed([7; 32]);
    keystore::encrypt(&key, "not a wallet's passphrase", [1; 16], [2; 12])
});

/// Equal, in time independent of where they differ.
fn same_hash(a: &Hash32, b: &Hash32) -> bool {
    a.0.iter()
        .zip(&b.0)
        .fold(0u8, |diff, (x, y)| diff | (x ^ y))
        == 0
}

fn refused() -> ApiError {
    ApiError::unauthorized("wrong passphrase or credential, or no such custodial wallet")
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

    /// Encrypts and stores `key` under `name` (blocking: runs Argon2id and fsyncs); its new
    /// credential (64 hex), which is not kept.
    pub fn store(
        &self,
        name: &str,
        passphrase: &str,
        key: &SigningKey,
    ) -> Result<Zeroizing<String>, ApiError> {
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
        let mut credential = Zeroizing::new([0u8; 32]);
        for bytes in [&mut salt[..], &mut nonce[..], &mut credential[..]] {
            getrandom::fill(bytes).map_err(|e| ApiError::internal(e.to_string()))?;
        }
        let credential = Zeroizing::new(hex::encode(*credential));
        let file = CustodyFile {
            name: name.to_string(),
            key: keystore::encrypt(key, passphrase, salt, nonce),
            credential_sha256: Some(Hash32::digest(credential.as_bytes())),
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
        Ok(credential)
    }

    /// Opens the key of `address` with `passphrase` and, when given or `required`, its
    /// `credential` (blocking: runs Argon2id, also when refusing).
    pub fn unlock(
        &self,
        address: &Address,
        passphrase: &str,
        credential: Option<&str>,
        required: bool,
    ) -> Result<SigningKey, ApiError> {
        // Too long to be anyone's: refused after the same work as any other refusal.
        let too_long = passphrase.len() > PASSPHRASE_LEN_MAX;
        let passphrase = if too_long { "" } else { passphrase };
        let Some(file) = self.by_address.get(address).map(|f| f.clone()) else {
            let _ = keystore::decrypt(&DECOY, passphrase);
            return Err(refused());
        };
        let given = credential.map(|c| Hash32::digest(c.as_bytes()));
        let credential_holds = match (&file.credential_sha256, &given) {
            (Some(expected), Some(given)) => same_hash(expected, given),
            (None, Some(_)) => false,
            (_, None) => !required,
        };
        let decrypted = keystore::decrypt(&file.key, passphrase);
        if !credential_holds || too_long {
            return Err(refused());
        }
        decrypted.map_err(|e| match e {
            KeystoreError::WrongPassphrase => refused(),
            KeystoreError::Unsupported(reason) => {
                ApiError::internal(format!("custody file damaged: {reason}"))
            }
        })
    }

    /// The wallet named `name_or_address` (its address, or the name it was created under), if
    /// the node holds it.
    pub fn find(&self, name_or_address: &str) -> Option<Address> {
        match name_or_address.parse::<Address>() {
            Ok(address) => self.by_address.contains_key(&address).then_some(address),
            Err(_) => self.by_name.get(name_or_address).map(|a| *a),
        }
    }

    /// Public key (hex) of a held wallet.
    pub fn public_key(&self, address: &Address) -> Option<String> {
        self.by_address
            .get(address)
            .map(|f| f.key.public_key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custody() -> (Custody, PathBuf) {
        let unique = format!(
            "aitbc-custody-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        );
        let dir = std::env::temp_dir().join(unique.replace([' ', ':', '{', '}'], ""));
        (Custody::open(dir.clone()).unwrap(), dir)
    }

    #[test]
    fn an_unlock_needs_the_passphrase_and_when_required_the_credential_and_refusals_look_alike() {
        let (custody, dir) = custody();
        let key = SigningKey::from_seed([3; 32]);
        let credential = custody.store("dana", "dana passphrase", &key).unwrap();
        let address = key.address();
        let unlock = |passphrase: &str, credential: Option<&str>, required| {
            custody
                .unlock(&address, passphrase, credential, required)
                .map(|k| k.address())
        };
        assert_eq!(
            unlock("dana passphrase", None, false),
            Ok(address),
            "as API.md has it"
        );
        assert_eq!(
            unlock("dana passphrase", Some(&credential), true),
            Ok(address)
        );
        let refusals = [
            unlock("dana passphrase", None, true).unwrap_err(),
            unlock("dana passphrase", Some(&"f".repeat(64)), false).unwrap_err(),
            unlock("wrong passphrase", Some(&credential), true).unwrap_err(),
            custody
                .unlock(&Address([9; 20]), "dana passphrase", None, false)
                .map(|k| k.address())
                .unwrap_err(),
            unlock(&"x".repeat(PASSPHRASE_LEN_MAX + 1), None, false).unwrap_err(),
        ];
        for refusal in &refusals {
            assert_eq!(refusal, &refusals[0], "every refusal is the same 401");
        }
        assert_eq!(refusals[0].code, "unauthorized");
        let file = std::fs::read_to_string(dir.join(format!("{address}.json"))).unwrap();
        assert!(
            !file.contains(credential.as_str()),
            "only the credential's hash is kept"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
