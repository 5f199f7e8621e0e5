//! Shared test harness: one executor per test binary (one device per process), seeded inputs.
//!
//! Mesa prints a harmless `XDG_RUNTIME_DIR is invalid or not set` line when the variable is
//! unset; the workspace forbids `unsafe` (and so `std::env::set_var`), so set it in the shell
//! (`XDG_RUNTIME_DIR=$(mktemp -d) cargo test -p gpu`) to silence it.

#![allow(dead_code)]

use gpu::{Executor, JobLimits};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The process-wide executor.
pub fn exec() -> &'static Executor {
    match Executor::global() {
        Ok(e) => e,
        Err(e) => panic!("no executor: {e}"),
    }
}

/// Held by tests that make jobs fail on the device and by tests that assert the executor's
/// failure count did not move: they share one executor, so they must not overlap.
pub fn failure_count_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn limits() -> JobLimits {
    JobLimits::default()
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn random_f32(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}
