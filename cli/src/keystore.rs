//! The local keystore: one file per wallet, `<keystore>/<name>.json`, holding the key encrypted
//! with Argon2id + ChaCha20-Poly1305 (`domain::keystore`). The passphrase comes from
//! `--passphrase-file`, the `AITBC_PASSPHRASE` variable, or a prompt, in that order.

use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use domain::keys::SigningKey;
use domain::keystore::{self, EncryptedKey, KeystoreError};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

#[derive(Serialize, Deserialize)]
pub struct WalletFile {
    pub name: String,
    pub key: EncryptedKey,
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.');
    if !ok {
        bail!("wallet names are 1-64 letters, digits, '-', '_' or '.' (not starting with '.')");
    }
    Ok(())
}

fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

/// Reads the passphrase; `confirm` asks twice at a prompt.
pub fn passphrase(file: Option<&Path>, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
    if let Some(file) = file {
        let text = Zeroizing::new(
            std::fs::read_to_string(file)
                .with_context(|| format!("reading passphrase file {}", file.display()))?,
        );
        return Ok(Zeroizing::new(
            text.trim_end_matches(['\n', '\r']).to_string(),
        ));
    }
    if let Ok(value) = std::env::var("AITBC_PASSPHRASE") {
        return Ok(Zeroizing::new(value));
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: pass --passphrase-file FILE or set AITBC_PASSPHRASE");
    }
    let first = Zeroizing::new(rpassword::prompt_password("Passphrase: ")?);
    if confirm && *Zeroizing::new(rpassword::prompt_password("Repeat passphrase: ")?) != *first {
        bail!("the passphrases differ");
    }
    Ok(first)
}

/// Fails if `name` is not a valid wallet name or a wallet of that name exists (checked before
/// asking for a passphrase).
pub fn ensure_new(dir: &Path, name: &str) -> anyhow::Result<()> {
    check_name(name)?;
    if path(dir, name).exists() {
        bail!(
            "a wallet named {name:?} already exists in {}",
            dir.display()
        );
    }
    Ok(())
}

/// Stores `key` as wallet `name`.
pub fn save(dir: &Path, name: &str, key: &SigningKey, passphrase: &str) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    if passphrase.len() < 8 {
        bail!("the passphrase must be at least 8 characters");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating keystore {}", dir.display()))?;
    let file_path = path(dir, name);
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut salt).map_err(|e| anyhow!("no OS randomness: {e}"))?;
    getrandom::fill(&mut nonce).map_err(|e| anyhow!("no OS randomness: {e}"))?;
    let wallet = WalletFile {
        name: name.to_string(),
        key: keystore::encrypt(key, passphrase, salt, nonce),
    };
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file_path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => anyhow!(
                "a wallet named {name:?} already exists in {}",
                dir.display()
            ),
            _ => anyhow!("writing {}: {e}", file_path.display()),
        })?;
    out.write_all(&serde_json::to_vec_pretty(&wallet)?)?;
    out.sync_all()?;
    Ok(file_path)
}

/// Reads wallet `name` (without decrypting).
pub fn load(dir: &Path, name: &str) -> anyhow::Result<WalletFile> {
    check_name(name)?;
    let file_path = path(dir, name);
    let text = std::fs::read_to_string(&file_path).with_context(|| {
        format!(
            "no wallet named {name:?} in {} (see `aitbc wallet list`)",
            dir.display()
        )
    })?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a wallet file", file_path.display()))
}

/// Decrypts wallet `name`.
pub fn unlock(dir: &Path, name: &str, passphrase: &str) -> anyhow::Result<SigningKey> {
    let wallet = load(dir, name)?;
    keystore::decrypt(&wallet.key, passphrase).map_err(|e| match e {
        KeystoreError::WrongPassphrase => anyhow!("wrong passphrase for wallet {name:?}"),
        KeystoreError::Unsupported(reason) => anyhow!("wallet {name:?} cannot be opened: {reason}"),
    })
}

/// All wallets, sorted by name.
pub fn list(dir: &Path) -> anyhow::Result<Vec<WalletFile>> {
    let mut wallets = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(wallets);
    };
    for entry in entries {
        let file_path = entry?.path();
        if file_path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        if let Ok(wallet) =
            serde_json::from_str::<WalletFile>(&std::fs::read_to_string(&file_path)?)
        {
            wallets.push(wallet);
        }
    }
    wallets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(wallets)
}
