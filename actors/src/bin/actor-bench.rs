//! What one transfer costs in the wallet actors and the event log, without HTTP, signature or
//! explorer (issue 13: a figure per hot stage): the sender's debit through its actor, durable
//! in the log, then the recipient's credit through its actor, durable, as the node's request
//! path runs them.
//!
//! ```text
//! cargo run --release -p actors --bin actor-bench -- --dir <a directory on the real disk> \
//!     [--senders 256] [--transfers 50000]
//! ```
//! Prints transfers per second and the CPU time of this process per transfer (every thread:
//! actors, log writer, the tasks standing in for HTTP workers).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use actix::{Arbiter, System};
use actors::clock::SystemClock;
use actors::registry::Registry;
use actors::wallet::{WalletRegistry, wallet_facts};
use domain::address::Address;
use domain::genesis::Genesis;
use domain::keys::SigningKey;
use domain::money::Amount;
use domain::tx::{TxPayload, VerifiedTx, sign_payload};
use store::{EventStore, FileStore};

const CHAIN: &str = "ait-bench";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

fn number(name: &str, default: u64) -> u64 {
    arg(name).map_or(default, |v| v.parse().expect("a number"))
}

/// CPU time (user + system) of this process so far, in seconds, from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which may hold spaces) start at its closing parenthesis.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// One sender's transfers to its own recipient, signed and verified up front.
fn transactions(sender: &SigningKey, to: Address, count: u64) -> Vec<VerifiedTx> {
    (0..count)
        .map(|nonce| {
            let payload =
                TxPayload::transfer(CHAIN, sender.address(), nonce, Amount(0), to, Amount(1));
            sign_payload(sender, &payload).verify().expect("verifies")
        })
        .collect()
}

/// Debit, then each of its credits, as the request path does; answers when all are durable.
async fn transfer(wallets: &WalletRegistry, tx: VerifiedTx) {
    let sender = tx.payload.sender;
    let committed = wallets.submit(tx).await.expect("the debit commits");
    for (to, credit) in committed.debit.credits(sender) {
        wallets
            .credit(CHAIN, to, credit)
            .await
            .expect("the credit commits");
    }
}

fn main() {
    let dir = PathBuf::from(arg("--dir").expect("--dir <directory on the disk to measure>"));
    let senders = number("--senders", 256);
    let per_sender = number("--transfers", 50_000) / senders;
    let total = senders * per_sender;
    std::fs::create_dir_all(&dir).expect("creates --dir");
    let log = tempfile_in(&dir);
    eprintln!("signing {total} transfers from {senders} senders...");
    let keys: Vec<SigningKey> = (0..senders)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&i.to_le_bytes());
            SigningKey::from_seed(seed)
        })
        .collect();
    let work: Vec<Vec<VerifiedTx>> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| transactions(key, Address([i as u8; 20]), per_sender))
        .collect();
    let system = System::new();
    let log_dir = log.clone();
    system.block_on(async move {
        let store: Arc<dyn EventStore> = FileStore::open(&log_dir).expect("opens the log");
        let arbiter = Arbiter::new();
        let registry = Registry::new(
            store,
            SystemClock::shared(),
            vec![arbiter.handle()],
            wallet_facts([&Genesis::single_validator(CHAIN, "ab".repeat(32))]),
        );
        let wallets = WalletRegistry::new(registry);
        for key in &keys {
            let amount = Amount(u128::from(per_sender) * 10);
            wallets
                .fund(CHAIN, key.address(), amount)
                .await
                .expect("funds");
        }
        let (cpu_before, started) = (cpu_seconds(), Instant::now());
        let runs = work.into_iter().map(|txs| {
            let wallets = wallets.clone();
            async move {
                for tx in txs {
                    transfer(&wallets, tx).await;
                }
            }
        });
        futures::future::join_all(runs).await;
        let (elapsed, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu_before);
        println!(
            "{total} transfers (debit + credit, each durable) from {senders} concurrent senders: \
             {:.0} transfers/s, {:.1} µs of CPU per transfer",
            total as f64 / elapsed,
            cpu * 1e6 / total as f64
        );
        arbiter.stop();
    });
    let _ = std::fs::remove_dir_all(&log);
}

/// A fresh directory for the log under `dir`.
fn tempfile_in(dir: &std::path::Path) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos();
    dir.join(format!("actor-bench-{}-{nanos}", std::process::id()))
}
