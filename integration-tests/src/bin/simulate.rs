//! The seeded fault simulation (see `integration_tests::simulation`).
//!
//! ```text
//! cargo run --release -p integration-tests --bin simulate -- --seeds 20    # 20 random seeds
//! cargo run --release -p integration-tests --bin simulate -- --seed 1234   # replay one
//!     [--steps N] [--crashes N]
//! ```
//! Exit status 1 when a seed fails; its panic message names the seed and what broke.
//! `SIMULATE_VERBOSE=1` prints each crash's damage and each refusal; `SIMULATE_KEEP=1` keeps
//! the data directories.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use integration_tests::simulation::{Options, run};

fn main() {
    let mut options = Options::default();
    let (mut seeds, mut first) = (1u64, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = |what: &str| -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage(&format!("{flag} needs {what}")))
        };
        match flag.as_str() {
            "--seeds" => seeds = value("a count"),
            "--seed" => first = Some(value("a seed")),
            "--steps" => options.steps = value("a count"),
            "--crashes" => options.crashes = value("a count"),
            "--help" | "-h" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let first = first.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let mut failed = Vec::new();
    for seed in first..first.saturating_add(seeds) {
        let started = Instant::now();
        match std::panic::catch_unwind(|| run(seed, &options)) {
            Ok(r) => println!(
                "seed {seed}: ok in {:.1} s: {} submitted, {} acknowledged ({} kinds), \
                 {} rejected, {} crashes, {} faults, {} blocks verified",
                started.elapsed().as_secs_f64(),
                r.submitted,
                r.acknowledged,
                r.kinds_acknowledged,
                r.rejected,
                r.crashes,
                r.faults,
                r.blocks
            ),
            Err(_) => {
                println!("seed {seed}: FAILED (replay: --seed {seed})");
                failed.push(seed);
            }
        }
    }
    if !failed.is_empty() {
        eprintln!("failed seeds: {failed:?}");
        std::process::exit(1);
    }
}

fn usage(problem: &str) -> ! {
    eprintln!("{problem}\nusage: simulate [--seeds N] [--seed FIRST] [--steps N] [--crashes N]");
    std::process::exit(2)
}
