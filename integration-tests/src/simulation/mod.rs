//! A seeded fault simulation, after TigerBeetle's VOPR: one process runs the real event log,
//! actors, projections and HTTP server (an in-process [`node::SimNode`]) over a storage layer
//! that fails on purpose ([`disk::FaultyDisk`]: failed and torn writes, failed and slow syncs,
//! unsynced bytes lost, torn or zeroed at a crash), drives a random workload of every
//! transaction kind from a seed, crashes the node at random steps and whenever a fault stopped
//! its log, and after every crash and at the end checks:
//!
//! - every acknowledged transaction is there, with the outcome it was acknowledged with;
//! - supply is conserved on the chain for every asset;
//! - every block verifies (signature, height, hash link, Merkle root);
//! - a node that rebuilds its projections from an empty explorer answers as the live one does
//!   (accounts, transactions, supply).
//!
//! The seed decides the workload, the faults and the crash points. Thread timing is not under
//! its control (the node is a multi-threaded actor system), so a failing seed replays the same
//! requests, faults and crashes in the same order; how concurrent appends group can differ.

pub mod disk;
pub mod node;
mod workload;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use domain::address::Address;
use domain::dao::GovernanceParams;
use domain::keys::SigningKey;
use domain::money::Amount;
use serde_json::Value;

use crate::{AIT, DEVNET, Rng, TestNode, tempdir};
use disk::{FaultRates, FaultyDisk};
use node::SimNode;
use workload::World;

/// What one run does.
#[derive(Clone, Debug)]
pub struct Options {
    /// Transactions submitted.
    pub steps: u64,
    /// Crashes at random steps (besides those after a fault stopped the log).
    pub crashes: u64,
    /// Fault chances.
    pub rates: FaultRates,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            steps: 150,
            crashes: 2,
            rates: FaultRates::default(),
        }
    }
}

/// What one run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Transactions submitted.
    pub submitted: u64,
    /// Transactions acknowledged (committed: applied or refused).
    pub acknowledged: u64,
    /// Submissions refused before anything was written.
    pub rejected: u64,
    /// Crashes (planned and after faults).
    pub crashes: u64,
    /// Faults injected.
    pub faults: u64,
    /// Blocks verified at the end.
    pub blocks: u64,
    /// Distinct kinds acknowledged.
    pub kinds_acknowledged: usize,
}

/// Runs the simulation of `seed`; panics with the seed and what broke when a check fails.
pub fn run(seed: u64, options: &Options) -> Report {
    let dir = DataDir::new(seed);
    let mut rng = Rng::new(seed);
    let users_seed = rng.next_u64();
    let (config, faucet) = devnet(dir.path(), users_seed);
    let disk = Arc::new(FaultyDisk::new(rng.next_u64(), options.rates));
    let mut world = World::new(users_seed, faucet);
    let mut crash_at: Vec<u64> = (0..options.crashes)
        .map(|_| rng.below(options.steps.max(1)))
        .collect();
    crash_at.sort_unstable();

    let mut report = Report::default();
    let mut live = Some(boot_live(&config, dir.path(), &disk, &mut report));
    // The users' money arrives before faults begin, so that the workload is not all refusals.
    disk.hold(true);
    world.fund(&live.as_ref().unwrap().client, &mut report);
    disk.hold(false);
    for step in 0..options.steps {
        let node = &live.as_ref().unwrap().client;
        world.step(node, &mut rng, &mut report);
        let planned = crash_at.first() == Some(&step);
        if planned {
            crash_at.remove(0);
        }
        if planned || disk.broken() {
            let node = live.take().unwrap();
            let pause = Duration::from_millis(rng.below(30));
            let client = TestNode::attach(node.client.url(), dir.path());
            world.crash_under_load(&client, || {
                std::thread::sleep(pause);
                node.crash()
            });
            let damage = disk.crash();
            report.crashes += 1;
            log_crash(seed, step, &damage);
            live = Some(check_after_crash(&config, dir.path(), &disk, &world, seed));
        }
    }
    live.take().unwrap().crash();
    disk.crash();
    let node = check_after_crash(&config, dir.path(), &disk, &world, seed);
    report.blocks = node.client.verify_chain(DEVNET).len() as u64;
    report.faults = disk.injected();
    report.kinds_acknowledged = world.kinds_acknowledged();
    node.crash();
    report
}

/// The run's data directory: removed afterwards, unless `SIMULATE_KEEP` is set (to look at
/// what a failing seed left).
struct DataDir {
    path: std::path::PathBuf,
    _removed_on_drop: Option<tempfile::TempDir>,
}

impl DataDir {
    fn new(seed: u64) -> DataDir {
        let dir = tempdir();
        match std::env::var_os("SIMULATE_KEEP") {
            Some(_) => {
                let kept = dir.keep();
                eprintln!("seed {seed}: data kept in {}", kept.display());
                DataDir {
                    path: kept,
                    _removed_on_drop: None,
                }
            }
            None => DataDir {
                path: dir.path().to_path_buf(),
                _removed_on_drop: Some(dir),
            },
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

fn log_crash(seed: u64, step: u64, damage: &[String]) {
    if std::env::var_os("SIMULATE_VERBOSE").is_some() {
        eprintln!("seed {seed}: crash after step {step}: {damage:?}");
    }
}

/// Boots the node under faults; one that stopped its log while starting is a crash too.
fn boot_live(
    config: &http::config::NodeConfig,
    dir: &Path,
    disk: &Arc<FaultyDisk>,
    report: &mut Report,
) -> SimNode {
    loop {
        match SimNode::boot(config, dir, Some(disk.clone())) {
            Ok(node) => return node,
            Err(_) if disk.broken() => {
                disk.crash();
                report.crashes += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Reboots the node on the crashed data, checks it, and checks a copy that rebuilds its
/// projections from nothing against it; returns the live node.
fn check_after_crash(
    config: &http::config::NodeConfig,
    dir: &Path,
    disk: &Arc<FaultyDisk>,
    world: &World,
    seed: u64,
) -> SimNode {
    let rebuilt_dir = tempdir();
    crate::copy_dir(dir, rebuilt_dir.path());
    std::fs::remove_dir_all(rebuilt_dir.path().join("projections")).ok();
    disk.hold(true);
    let live = SimNode::boot(config, dir, Some(disk.clone())).unwrap_or_else(|e| panic!("{e}"));
    let rebuilt = SimNode::boot(config, rebuilt_dir.path(), None).unwrap_or_else(|e| panic!("{e}"));
    for node in [&live.client, &rebuilt.client] {
        caught_up(node, seed);
        world.check_acknowledged(node, seed);
        conserved(node, seed);
        node.verify_chain(DEVNET);
    }
    world.check_same_reads(&live.client, &rebuilt.client, seed);
    rebuilt.crash();
    disk.hold(false);
    live
}

/// Waits until the node's projections have read its whole log.
fn caught_up(node: &TestNode, seed: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, health) = node.get("/health");
        let log = health["log_position"].as_u64().expect("the log's position");
        if health["projection_position"].as_u64() == Some(log) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "seed {seed}: projections never caught up: {health}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn conserved(node: &TestNode, seed: u64) {
    let chain = node.chain();
    for asset in chain["assets"].as_array().expect("assets") {
        assert_eq!(
            asset["supply"]["conserved"], true,
            "seed {seed}: supply of {} not conserved: {asset}",
            asset["symbol"]
        );
    }
}

/// A devnet with fast blocks, short governance durations and a council of the first three
/// simulated users; returns its configuration and the faucet's key.
fn devnet(dir: &Path, users_seed: u64) -> (http::config::NodeConfig, SigningKey) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut config = http::config::create_devnet(dir, "127.0.0.1:0", now).unwrap();
    config.jobs.models.clear();
    let chain = &mut config.chains[0];
    chain.block_time_ms = 100;
    let council: Vec<Address> = workload::user_keys(users_seed)[..3]
        .iter()
        .map(SigningKey::address)
        .collect();
    chain.genesis.governance = Some(Box::new(GovernanceParams {
        voting_delay_s: 1,
        voting_period_s: 2,
        emergency_voting_period_s: 1,
        timelock_s: 1,
        grace_period_s: 30,
        twas_window_s: 1,
        challenge_timeout_s: 5,
        pause_expiry_s: 2,
        quorum_bps: 100,
        proposal_threshold: Amount(AIT),
        proposal_bond: Amount(10 * AIT),
        challenge_bond: Amount(5 * AIT),
        council,
        council_threshold: 2,
        ..GovernanceParams::default()
    }));
    let faucet = crate::read_key(&dir.join("keys").join("faucet.key"));
    (config, faucet)
}

/// Every kind the workload sends.
pub fn workload_kinds() -> &'static [&'static str] {
    &workload::KINDS
}

/// The chain's own books: the treasury, for proposals to pay from.
pub(crate) fn treasury() -> Address {
    Address::treasury(DEVNET)
}

/// `tx["field"]` for the fields that must be the same wherever the transaction is read.
pub(crate) fn durable_fields(tx: &Value) -> Value {
    serde_json::json!({
        "status": tx["status"],
        "outcome": tx["outcome"],
        "kind": tx["kind"],
        "committed_at_ms": tx["committed_at_ms"],
        "events": tx["events"],
    })
}
