//! The tables a read model keeps on disk: one redb file per projection, byte keys and values,
//! and the log position everything in it reflects, committed together with each batch.
//!
//! A projection applies events in memory and commits what changed every so often
//! ([`crate::projection::Projection::persist`]); a restart opens the file and replays only the
//! events after its position, so restart time follows the events since the last commit, not
//! the length of the history. The file is a cache of the log, never data: one that cannot be
//! read, was written by another format, or is ahead of the log (a log restored from an older
//! copy) is deleted with a warning and the projection is rebuilt from zero.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

/// A table: byte keys (ordered bytewise) to byte values.
pub type Table = TableDefinition<'static, &'static [u8], &'static [u8]>;

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");
const POSITION: &str = "next_position";
const FORMAT: &str = "format";

/// Page cache of a projection's file.
const CACHE_BYTES: usize = 64 << 20;

/// Why a file was not opened.
enum Unusable {
    /// It cannot be trusted: rebuilt from the log.
    Untrusted(String),
    /// It could not be opened (in use, the disk fails): the node does not start.
    Failed(String),
}

/// A commit is synced to disk when the last synced one is this old (the fsync competes with
/// the log's own); the ones between are not kept by a crash.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(5);

/// One projection's file.
pub struct Kv {
    db: Database,
    path: PathBuf,
    /// When the last synced commit was made (`None`: none yet since opening).
    last_sync: Mutex<Option<Instant>>,
}

/// What changed since the last commit, written in one transaction.
#[derive(Default)]
pub struct Batch {
    puts: Vec<(Table, Vec<u8>, Vec<u8>)>,
}

impl Batch {
    /// Sets `key` of `table` to `value`.
    pub fn put(&mut self, table: Table, key: Vec<u8>, value: Vec<u8>) {
        self.puts.push((table, key, value));
    }

    /// Entries in the batch.
    pub fn len(&self) -> usize {
        self.puts.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty()
    }
}

fn failed(path: &Path) -> impl Fn(String) -> String + '_ {
    move |reason| format!("read model file {}: {reason}", path.display())
}

impl Kv {
    /// Opens (or creates) the file at `path` with `tables`, for a read model of `format` over a
    /// log whose next position is `log_head`. Returns the file and the position it reflects (0
    /// for a new or discarded file). Errors only when no usable file can be made at all.
    pub fn open(
        path: &Path,
        tables: &[Table],
        format: u64,
        log_head: u64,
    ) -> Result<(Kv, u64), String> {
        match Kv::try_open(path, tables, format, log_head) {
            Ok(opened) => Ok(opened),
            Err(Unusable::Failed(reason)) => Err(reason),
            Err(Unusable::Untrusted(reason)) => {
                tracing::warn!(path = %path.display(), %reason, "read model file not used; rebuilding it from the log");
                Ok((Kv::recreate(path, tables, format)?, 0))
            }
        }
    }

    /// Deletes the file at `path` (if any) and makes an empty one at position 0: for a file
    /// whose contents cannot be used. Close any handle on the old file first.
    pub fn recreate(path: &Path, tables: &[Table], format: u64) -> Result<Kv, String> {
        std::fs::remove_file(path)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            })
            .map_err(|e| failed(path)(e.to_string()))?;
        let (kv, _) = Kv::try_open(path, tables, format, 0).map_err(|e| match e {
            Unusable::Failed(reason) | Unusable::Untrusted(reason) => reason,
        })?;
        Ok(kv)
    }

    fn try_open(
        path: &Path,
        tables: &[Table],
        format: u64,
        log_head: u64,
    ) -> Result<(Kv, u64), Unusable> {
        let fail = |e: String| Unusable::Failed(failed(path)(e));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| match e {
                // Damaged or from an older redb: rebuilt. Anything else (another process has
                // it open, the disk fails) is not a reason to delete it.
                redb::DatabaseError::Storage(redb::StorageError::Corrupted(reason)) => {
                    Unusable::Untrusted(reason)
                }
                redb::DatabaseError::UpgradeRequired(version) => {
                    Unusable::Untrusted(format!("written by redb file format {version}"))
                }
                other => fail(other.to_string()),
            })?;
        let write = db.begin_write().map_err(|e| fail(e.to_string()))?;
        let position = {
            let mut meta = write.open_table(META).map_err(|e| fail(e.to_string()))?;
            for table in tables {
                write.open_table(*table).map_err(|e| fail(e.to_string()))?;
            }
            let read = |key| -> Result<Option<u64>, Unusable> {
                Ok(meta
                    .get(key)
                    .map_err(|e| fail(e.to_string()))?
                    .map(|v| v.value()))
            };
            match (read(FORMAT)?, read(POSITION)?) {
                (None, _) => {
                    meta.insert(FORMAT, format)
                        .map_err(|e| fail(e.to_string()))?;
                    meta.insert(POSITION, 0).map_err(|e| fail(e.to_string()))?;
                    0
                }
                (Some(found), _) if found != format => {
                    return Err(Unusable::Untrusted(format!(
                        "format {found}, this node writes {format}"
                    )));
                }
                (Some(_), position) => position.unwrap_or(0),
            }
        };
        write.commit().map_err(|e| fail(e.to_string()))?;
        if position > log_head {
            return Err(Unusable::Untrusted(format!(
                "it reflects log position {position}, but the log ends at {log_head}"
            )));
        }
        Ok((
            Kv {
                db,
                path: path.to_path_buf(),
                last_sync: Mutex::new(None),
            },
            position,
        ))
    }

    /// Commits `batch` and the new position in one transaction, synced to disk when the last
    /// synced commit is [`SYNC_INTERVAL`] old. A crash (of the process or the machine) falls
    /// back to the last synced commit, which is consistent: the log replays the rest, so a
    /// crash costs at most that much of the read model's work.
    pub fn commit(&self, position: u64, batch: Batch) -> Result<(), String> {
        let fail = failed(&self.path);
        let mut write = self.db.begin_write().map_err(|e| fail(e.to_string()))?;
        let mut last_sync = self.last_sync.lock().unwrap_or_else(|e| e.into_inner());
        let sync = last_sync.is_none_or(|at| at.elapsed() >= SYNC_INTERVAL);
        if sync {
            *last_sync = Some(Instant::now());
        }
        drop(last_sync);
        let durability = match sync {
            true => Durability::Immediate,
            false => Durability::None,
        };
        write
            .set_durability(durability)
            .map_err(|e| fail(e.to_string()))?;
        // The allocator state is saved with each commit, so opening after a crash does not
        // walk the whole file to rebuild it (seconds for a large one).
        write.set_quick_repair(true);
        {
            // Grouped by table, each opened once; within a table, a later put of a key wins.
            let mut by_table: BTreeMap<String, (Table, Vec<Entry>)> = BTreeMap::new();
            for (table, key, value) in batch.puts {
                by_table
                    .entry(table.name().to_string())
                    .or_insert_with(|| (table, Vec::new()))
                    .1
                    .push((key, value));
            }
            for (table, entries) in by_table.into_values() {
                let mut handle = write.open_table(table).map_err(|e| fail(e.to_string()))?;
                for (key, value) in &entries {
                    handle
                        .insert(key.as_slice(), value.as_slice())
                        .map_err(|e| fail(e.to_string()))?;
                }
            }
            let mut meta = write.open_table(META).map_err(|e| fail(e.to_string()))?;
            meta.insert(POSITION, position)
                .map_err(|e| fail(e.to_string()))?;
        }
        write.commit().map_err(|e| fail(e.to_string()))
    }

    /// The value of `key` in `table`. A read error (the disk failing under a file that opened)
    /// is logged and read as absent.
    pub fn get(&self, table: Table, key: &[u8]) -> Option<Vec<u8>> {
        self.read(|db| {
            let read = db.begin_read()?;
            let handle = read.open_table(table)?;
            Ok(handle.get(key)?.map(|v| v.value().to_vec()))
        })
        .flatten()
    }

    /// The last entry of `table` whose key starts with `prefix`.
    pub fn last(&self, table: Table, prefix: &[u8]) -> Option<Entry> {
        let mut end = prefix.to_vec();
        // The smallest key after every key with this prefix (prefixes here never end in 0xff).
        *end.last_mut()? += 1;
        self.read(|db| {
            let read = db.begin_read()?;
            let handle = read.open_table(table)?;
            let last = handle
                .range(prefix..end.as_slice())?
                .next_back()
                .transpose()?;
            Ok(last.map(|(k, v)| (k.value().to_vec(), v.value().to_vec())))
        })
        .flatten()
    }

    /// Every entry of `table`, in key order (loading a small table at start-up).
    pub fn all(&self, table: Table) -> Result<Vec<Entry>, String> {
        let mut entries = Vec::new();
        self.each(table, |key, value| {
            entries.push((key.to_vec(), value.to_vec()));
            Ok(())
        })?;
        Ok(entries)
    }

    /// Calls `f` with every entry of `table`, in key order, without copying them (loading a
    /// large table at start-up); stops at the first error.
    pub fn each(
        &self,
        table: Table,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        let fail = failed(&self.path);
        let read = self.db.begin_read().map_err(|e| fail(e.to_string()))?;
        let handle = read.open_table(table).map_err(|e| fail(e.to_string()))?;
        for entry in handle.iter().map_err(|e| fail(e.to_string()))? {
            let (key, value) = entry.map_err(|e| fail(e.to_string()))?;
            f(key.value(), value.value())?;
        }
        Ok(())
    }

    fn read<T>(&self, f: impl FnOnce(&Database) -> Result<T, redb::Error>) -> Option<T> {
        match f(&self.db) {
            Ok(value) => Some(value),
            Err(error) => {
                tracing::error!(path = %self.path.display(), %error, "read model file read failed");
                None
            }
        }
    }
}
