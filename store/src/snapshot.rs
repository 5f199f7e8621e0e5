//! Snapshot files: `<dir>/snapshots/<hex of key>.snap`, written via a temporary file and a
//! rename, checksummed. A snapshot is a cache: no fsync, and a damaged one reads as missing.
//!
//! ```text
//! "ASNP" magic, crc32c u32 of the rest, key_len u32, key, revision u64, data_len u64, data
//! ```

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Snapshot, StoreError, StoreResult, limits};

const MAGIC: &[u8; 4] = b"ASNP";
/// Keys longer than this get a hashed file name (file names are at most 255 bytes).
const KEY_HEX_LEN_MAX: usize = 96;

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

pub(crate) fn check_key(key: &str) -> StoreResult<()> {
    if key.is_empty() || key.len() > limits::SNAPSHOT_KEY_LEN_MAX {
        return Err(StoreError::Invalid(format!(
            "snapshot key of {} bytes, must be 1..={}",
            key.len(),
            limits::SNAPSHOT_KEY_LEN_MAX
        )));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// File of `key`: the hex of the key, or for long keys the hex of a prefix plus a hash (the key
/// is stored in the file and checked on load, so a collision reads as a missing snapshot).
pub(crate) fn path(dir: &Path, key: &str) -> PathBuf {
    let name = if key.len() <= KEY_HEX_LEN_MAX {
        hex(key.as_bytes())
    } else {
        let h1 = crc32c::crc32c(key.as_bytes());
        let h2 = crc32c::crc32c_append(0x9e37_79b9, key.as_bytes());
        format!(
            "{}-{h1:08x}{h2:08x}",
            hex(&key.as_bytes()[..KEY_HEX_LEN_MAX / 2])
        )
    };
    dir.join(format!("{name}.snap"))
}

pub(crate) fn encode(key: &str, snapshot: &Snapshot) -> Vec<u8> {
    let mut buf = Vec::with_capacity(8 + 4 + key.len() + 16 + snapshot.data.len());
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(&snapshot.revision.to_le_bytes());
    buf.extend_from_slice(&(snapshot.data.len() as u64).to_le_bytes());
    buf.extend_from_slice(&snapshot.data);
    let crc = crc32c::crc32c(&buf[8..]);
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
    buf
}

/// Decodes a snapshot file of `key`; `Err` says why it is unusable.
pub(crate) fn decode(key: &str, b: &[u8]) -> Result<Snapshot, &'static str> {
    if b.len() < 8 + 4 || &b[0..4] != MAGIC {
        return Err("bad magic");
    }
    if crc32c::crc32c(&b[8..]) != u32::from_le_bytes(b[4..8].try_into().expect("4 bytes")) {
        return Err("checksum mismatch");
    }
    let key_len = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")) as usize;
    let rest = &b[12..];
    if rest.len() < key_len + 16 {
        return Err("truncated");
    }
    if &rest[..key_len] != key.as_bytes() {
        return Err("snapshot of another key");
    }
    let rest = &rest[key_len..];
    let revision = u64::from_le_bytes(rest[0..8].try_into().expect("8 bytes"));
    let data_len = u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes"));
    let data = &rest[16..];
    if data.len() as u64 != data_len {
        return Err("data length mismatch");
    }
    Ok(Snapshot {
        revision,
        data: data.to_vec(),
    })
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

/// Checks a snapshot to save against [`limits`].
pub(crate) fn check_save(key: &str, snapshot: &Snapshot) -> StoreResult<()> {
    check_key(key)?;
    if snapshot.data.len() > limits::SNAPSHOT_DATA_LEN_MAX {
        return Err(StoreError::Invalid(format!(
            "snapshot of {} bytes, at most {}",
            snapshot.data.len(),
            limits::SNAPSHOT_DATA_LEN_MAX
        )));
    }
    Ok(())
}

/// Removes the temporary files a crash left between a write and its rename (called with the
/// directory locked, so no save is under way); how many.
pub(crate) fn remove_leftovers(dir: &Path) -> StoreResult<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(".tmp-"))
        {
            std::fs::remove_file(&path).map_err(io)?;
            removed += 1;
        }
    }
    Ok(removed)
}

pub(crate) fn save(dir: &Path, key: &str, snapshot: &Snapshot) -> StoreResult<()> {
    check_save(key, snapshot)?;
    let target = path(dir, key);
    let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let temp = dir.join(format!(".tmp-{}-{seq}", std::process::id()));
    std::fs::write(&temp, encode(key, snapshot)).map_err(io)?;
    std::fs::rename(&temp, &target).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        io(e)
    })
}

pub(crate) fn load(dir: &Path, key: &str) -> StoreResult<Option<Snapshot>> {
    check_key(key)?;
    let file = path(dir, key);
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    match decode(key, &bytes) {
        Ok(s) => Ok(Some(s)),
        Err(reason) => {
            tracing::warn!(file = %file.display(), reason, "ignoring unusable snapshot");
            Ok(None)
        }
    }
}
