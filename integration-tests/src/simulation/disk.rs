//! The simulation's storage layer: the event log's real segment files, with faults drawn from
//! the seed injected into its writes and syncs, and a crash that loses, tears or zeroes what was
//! written but never made durable — what a power cut may do to a page cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use store::{StorageFaults, SyncFault, WriteFault};

use crate::Rng;

/// Chances of each fault, per 10,000 writes or syncs.
#[derive(Clone, Copy, Debug)]
pub struct FaultRates {
    /// A write fails before any byte lands.
    pub write_fail: u64,
    /// A write lands only in part, then fails.
    pub torn_write: u64,
    /// An fdatasync fails.
    pub sync_fail: u64,
    /// An fdatasync takes 1–20 ms.
    pub slow_sync: u64,
}

impl Default for FaultRates {
    fn default() -> Self {
        FaultRates {
            write_fail: 40,
            torn_write: 40,
            sync_fail: 40,
            slow_sync: 300,
        }
    }
}

#[derive(Default)]
struct FileState {
    /// Bytes from the start that an fdatasync made durable.
    durable: u64,
    /// End of what was written (durable or not).
    written: u64,
}

struct Disk {
    rng: Rng,
    rates: FaultRates,
    files: BTreeMap<PathBuf, FileState>,
    /// A fault the store cannot go on after (it refuses appends until restarted).
    broken: bool,
    injected: u64,
    /// Faults are held back (while the checks run: a store a fault stopped cannot agree with
    /// the one it is compared with).
    held: bool,
}

/// The fault-injecting storage layer; one per simulation, across restarts.
pub struct FaultyDisk(Mutex<Disk>);

impl FaultyDisk {
    /// Faults drawn from `seed` at `rates`.
    pub fn new(seed: u64, rates: FaultRates) -> FaultyDisk {
        FaultyDisk(Mutex::new(Disk {
            rng: Rng::new(seed),
            rates,
            files: BTreeMap::new(),
            broken: false,
            injected: 0,
            held: false,
        }))
    }

    /// Holds faults back (`true`) or lets them happen again.
    pub fn hold(&self, held: bool) {
        self.0.lock().unwrap().held = held;
    }

    /// Whether a fault stopped the store (the node must restart to write again).
    pub fn broken(&self) -> bool {
        self.0.lock().unwrap().broken
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.0.lock().unwrap().injected
    }

    /// The crash: in every segment file, what was written but not made durable is kept, lost,
    /// torn at a random byte, or zeroed in a random range (the length kept). Returns what it did.
    pub fn crash(&self) -> Vec<String> {
        let mut disk = self.0.lock().unwrap();
        let disk = &mut *disk;
        let mut done = Vec::new();
        for (path, file) in &mut disk.files {
            if file.written > file.durable {
                let unsynced = file.written - file.durable;
                let what = match disk.rng.below(4) {
                    0 => "kept".to_string(),
                    1 => {
                        set_len(path, file.durable);
                        "lost".to_string()
                    }
                    2 => {
                        let keep = disk.rng.below(unsynced);
                        set_len(path, file.durable + keep);
                        format!("torn after {keep} bytes")
                    }
                    _ => {
                        let start = disk.rng.below(unsynced);
                        let len = 1 + disk.rng.below(unsynced - start);
                        zero(path, file.durable + start, len);
                        format!("{len} bytes zeroed at +{start}")
                    }
                };
                done.push(format!(
                    "{}: {unsynced} unsynced bytes {what}",
                    path.file_name().unwrap_or_default().to_string_lossy()
                ));
            }
            let len = std::fs::metadata(path).map_or(0, |m| m.len());
            *file = FileState {
                durable: len,
                written: len,
            };
        }
        disk.broken = false;
        done
    }
}

impl Disk {
    /// Where in 0..10,000 this write or sync falls (past every fault while faults are held).
    fn roll(&mut self) -> u64 {
        match self.held {
            true => u64::MAX,
            false => self.rng.below(10_000),
        }
    }
}

fn set_len(path: &Path, len: u64) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(len).unwrap();
}

fn zero(path: &Path, offset: u64, len: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(&vec![0; len as usize], offset).unwrap();
}

impl StorageFaults for FaultyDisk {
    fn write(&self, file: &Path, offset: u64, len: usize) -> WriteFault {
        let mut disk = self.0.lock().unwrap();
        let rates = disk.rates;
        let roll = disk.roll();
        let fault = if roll < rates.write_fail {
            WriteFault::Fail
        } else if roll < rates.write_fail + rates.torn_write && len > 1 {
            WriteFault::Torn(disk.rng.below(len as u64) as usize)
        } else {
            WriteFault::None
        };
        let landed = match fault {
            WriteFault::None => len as u64,
            WriteFault::Fail => 0,
            WriteFault::Torn(n) => n as u64,
        };
        if fault != WriteFault::None {
            disk.broken = true;
            disk.injected += 1;
        }
        let state = disk.files.entry(file.to_path_buf()).or_default();
        // A write at `offset` follows a recovery that cut the file there.
        state.durable = state.durable.min(offset);
        state.written = offset + landed;
        fault
    }

    fn sync(&self, file: &Path) -> SyncFault {
        let mut disk = self.0.lock().unwrap();
        let rates = disk.rates;
        let roll = disk.roll();
        if roll < rates.sync_fail {
            disk.broken = true;
            disk.injected += 1;
            return SyncFault::Fail;
        }
        let fault = if roll < rates.sync_fail + rates.slow_sync {
            disk.injected += 1;
            SyncFault::Slow(Duration::from_millis(1 + disk.rng.below(20)))
        } else {
            SyncFault::None
        };
        let state = disk.files.entry(file.to_path_buf()).or_default();
        state.durable = state.written;
        fault
    }
}
