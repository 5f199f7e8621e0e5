//! Content-addressed blobs outside the event log (PRODUCT.md §6): job inputs and results larger
//! than a transaction holds. Events carry only their SHA-256.
//!
//! Each blob is a file named by the hex of its hash, written to a temporary file, synced and
//! renamed (so a blob either exists whole or not at all), beside a small record of who uploaded
//! it, its size and when. Reading checks the hash: a damaged file is an error, never wrong
//! bytes. Each account's stored bytes are counted against a quota. Blobs nothing refers to any
//! more are collected by [`BlobStore::collect`].

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use domain::address::Address;
use domain::hash::Hash32;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Largest blob.
pub const BLOB_LEN_MAX: usize = 64 * 1024 * 1024;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The account would hold more than its quota.
    #[error("quota exceeded: {stored} bytes stored, {adding} more asked, {quota} allowed")]
    Quota {
        /// Bytes the account stores.
        stored: u64,
        /// Bytes of the upload.
        adding: u64,
        /// The quota.
        quota: u64,
    },
    /// Larger than [`BLOB_LEN_MAX`].
    #[error("a blob has at most {BLOB_LEN_MAX} bytes")]
    TooLarge,
    /// The stored bytes no longer hash to their name.
    #[error("blob {0} is damaged on disk")]
    Damaged(Hash32),
    /// The file system failed.
    #[error("blob storage: {0}")]
    Io(#[from] std::io::Error),
}

/// What is recorded beside a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMeta {
    /// Who uploaded it first (its bytes count against this account's quota).
    pub owner: Address,
    /// Its size.
    pub size: u64,
    /// When it was stored, Unix ms.
    pub stored_at_ms: u64,
}

/// The blob directory.
pub struct BlobStore {
    dir: PathBuf,
    quota: u64,
    /// Every blob's record (rebuilt from the files at open).
    index: Mutex<BTreeMap<Hash32, BlobMeta>>,
    /// Held by every change (store, collect): a quota check and its write, or a collection and
    /// an upload of the same bytes, never interleave.
    writing: Mutex<()>,
}

fn meta_path(dir: &Path, hash: &Hash32) -> PathBuf {
    dir.join(format!("{hash}.meta"))
}

fn blob_path(dir: &Path, hash: &Hash32) -> PathBuf {
    dir.join(hash.to_string())
}

/// Writes `bytes` to `target` whole or not at all: a synced temporary file renamed over it.
fn write_atomically(dir: &Path, target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        Hash32::digest(target.as_os_str().as_encoded_bytes())
    ));
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_data()?;
    std::fs::rename(&temp, target).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}

impl BlobStore {
    /// Opens (creating) `dir`, each account allowed `quota` bytes. Temporary files a crash
    /// left are removed; a blob without its record, or a record without its blob, is removed.
    pub fn open(dir: impl AsRef<Path>, quota: u64) -> Result<BlobStore, BlobError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)?;
        let mut index = BTreeMap::new();
        let mut blobs = BTreeSet::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                std::fs::remove_file(entry.path())?;
            } else if let Some(hash) = name.strip_suffix(".meta") {
                let parsed = hash.parse::<Hash32>().ok();
                let meta = std::fs::read(entry.path())
                    .ok()
                    .and_then(|bytes| serde_json::from_slice::<BlobMeta>(&bytes).ok());
                match (parsed, meta) {
                    (Some(hash), Some(meta)) => {
                        index.insert(hash, meta);
                    }
                    _ => std::fs::remove_file(entry.path())?,
                }
            } else if let Ok(hash) = name.parse::<Hash32>() {
                blobs.insert(hash);
            }
        }
        for hash in &blobs {
            if !index.contains_key(hash) {
                std::fs::remove_file(blob_path(&dir, hash))?;
            }
        }
        index.retain(|hash, _| {
            let keep = blobs.contains(hash);
            if !keep {
                let _ = std::fs::remove_file(meta_path(&dir, hash));
            }
            keep
        });
        Ok(BlobStore {
            dir,
            quota,
            index: Mutex::new(index),
            writing: Mutex::new(()),
        })
    }

    /// Bytes `owner` stores.
    pub fn usage(&self, owner: &Address) -> u64 {
        self.index
            .lock()
            .values()
            .filter(|m| m.owner == *owner)
            .map(|m| m.size)
            .sum()
    }

    /// Stores `bytes` for `owner` at `now_ms`; returns their hash. Storing bytes already
    /// stored counts nothing and only renews their time (so the collector keeps them).
    pub fn put(&self, owner: Address, bytes: &[u8], now_ms: u64) -> Result<Hash32, BlobError> {
        if bytes.len() > BLOB_LEN_MAX {
            return Err(BlobError::TooLarge);
        }
        let hash = Hash32::digest(bytes);
        let _writing = self.writing.lock();
        let known = self.index.lock().get(&hash).copied();
        if let Some(mut meta) = known {
            meta.stored_at_ms = meta.stored_at_ms.max(now_ms);
            let record = serde_json::to_vec(&meta).expect("records serialize");
            write_atomically(&self.dir, &meta_path(&self.dir, &hash), &record)?;
            self.index.lock().insert(hash, meta);
            return Ok(hash);
        }
        let (stored, adding) = (self.usage(&owner), bytes.len() as u64);
        if stored.saturating_add(adding) > self.quota {
            return Err(BlobError::Quota {
                stored,
                adding,
                quota: self.quota,
            });
        }
        let meta = BlobMeta {
            owner,
            size: adding,
            stored_at_ms: now_ms,
        };
        write_atomically(&self.dir, &blob_path(&self.dir, &hash), bytes)?;
        let record = serde_json::to_vec(&meta).expect("records serialize");
        write_atomically(&self.dir, &meta_path(&self.dir, &hash), &record)?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        self.index.lock().insert(hash, meta);
        Ok(hash)
    }

    /// The bytes of blob `hash`, checked against it; `None` if there is no such blob.
    pub fn get(&self, hash: &Hash32) -> Result<Option<Vec<u8>>, BlobError> {
        if !self.index.lock().contains_key(hash) {
            return Ok(None);
        }
        let bytes = match std::fs::read(blob_path(&self.dir, hash)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if Hash32::digest(&bytes) != *hash {
            return Err(BlobError::Damaged(*hash));
        }
        Ok(Some(bytes))
    }

    /// The record of blob `hash`.
    pub fn meta(&self, hash: &Hash32) -> Option<BlobMeta> {
        self.index.lock().get(hash).copied()
    }

    /// Removes every blob stored before `older_than_ms` that `referenced` does not name;
    /// returns how many.
    pub fn collect(
        &self,
        older_than_ms: u64,
        referenced: &BTreeSet<Hash32>,
    ) -> Result<usize, BlobError> {
        let _writing = self.writing.lock();
        let doomed: Vec<Hash32> = self
            .index
            .lock()
            .iter()
            .filter(|(hash, meta)| meta.stored_at_ms < older_than_ms && !referenced.contains(hash))
            .map(|(hash, _)| *hash)
            .collect();
        let gone = |result: std::io::Result<()>| match result {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        for hash in &doomed {
            self.index.lock().remove(hash);
            gone(std::fs::remove_file(meta_path(&self.dir, hash)))?;
            gone(std::fs::remove_file(blob_path(&self.dir, hash)))?;
        }
        Ok(doomed.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Address = Address([1; 20]);
    const BOB: Address = Address([2; 20]);

    #[test]
    fn blobs_are_stored_by_hash_checked_on_read_and_counted_against_a_quota() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path(), 10).unwrap();
        let hash = store.put(ALICE, b"hello", 1).unwrap();
        assert_eq!(hash, Hash32::digest(b"hello"));
        assert_eq!(store.get(&hash).unwrap().as_deref(), Some(&b"hello"[..]));
        assert_eq!(store.put(BOB, b"hello", 2).unwrap(), hash, "stored once");
        assert_eq!((store.usage(&ALICE), store.usage(&BOB)), (5, 0));
        assert!(matches!(
            store.put(ALICE, b"too much", 3),
            Err(BlobError::Quota { stored: 5, .. })
        ));
        store.put(BOB, b"bob's", 3).unwrap();
        assert_eq!(store.get(&Hash32::digest(b"nothing")).unwrap(), None);

        std::fs::write(dir.path().join(hash.to_string()), b"HELLO").unwrap();
        assert!(
            matches!(store.get(&hash), Err(BlobError::Damaged(_))),
            "never wrong bytes"
        );
    }

    #[test]
    fn a_reopened_store_knows_its_blobs_and_drops_what_a_crash_left_half_written() {
        let dir = tempfile::tempdir().unwrap();
        let kept = {
            let store = BlobStore::open(dir.path(), 1 << 20).unwrap();
            store.put(ALICE, b"kept", 1).unwrap()
        };
        std::fs::write(dir.path().join(".tmp-1-x"), b"partial").unwrap();
        let orphan = Hash32::digest(b"orphan");
        std::fs::write(dir.path().join(orphan.to_string()), b"orphan").unwrap();
        let store = BlobStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.get(&kept).unwrap().as_deref(), Some(&b"kept"[..]));
        assert_eq!(
            store.meta(&kept).map(|m| (m.owner, m.size)),
            Some((ALICE, 4))
        );
        assert_eq!(
            store.get(&orphan).unwrap(),
            None,
            "a blob without its record is dropped"
        );
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "the blob and its record only: {names:?}");
    }

    #[test]
    fn unreferenced_old_blobs_are_collected() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path(), 1 << 20).unwrap();
        let (old, used, young) = (
            store.put(ALICE, b"old", 1_000).unwrap(),
            store.put(ALICE, b"used", 1_000).unwrap(),
            store.put(ALICE, b"young", 5_000).unwrap(),
        );
        let referenced = BTreeSet::from([used]);
        assert_eq!(store.collect(2_000, &referenced).unwrap(), 1);
        assert_eq!(store.get(&old).unwrap(), None);
        assert!(store.get(&used).unwrap().is_some() && store.get(&young).unwrap().is_some());
        assert_eq!(store.usage(&ALICE), 9, "the quota is freed");
    }
}
