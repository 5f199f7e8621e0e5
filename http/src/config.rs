//! Node configuration (TOML), and the devnet that `aitbc node` creates when it has none.

use std::path::{Path, PathBuf};

use domain::address::Address;
use domain::asset::AssetSpec;
use domain::genesis::{Allocation, Genesis};
use domain::keys::SigningKey;
use domain::money::Amount;
use domain::staking::PoolSpec;
use serde::{Deserialize, Serialize};

/// Default listen address (API.md).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:18000";
/// Chain id of the devnet.
pub const DEVNET_CHAIN_ID: &str = "ait-devnet";
/// The devnet's stable asset, minted by its faucet.
pub const DEVNET_STABLE: &str = "USDX";
/// Decimals of the devnet's stable asset.
pub const DEVNET_STABLE_DECIMALS: u8 = 6;
/// Name of the configuration file inside a data directory.
pub const CONFIG_FILE: &str = "aitbc.toml";

/// The node's configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Listen address.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Chain used when a request names none.
    pub default_chain: String,
    /// HTTP worker threads (default: number of CPUs).
    #[serde(default)]
    pub http_workers: Option<usize>,
    /// Threads the aggregate actors run on (default: half the CPUs, at least one; see
    /// `NodeConfig::actor_threads`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_threads: Option<usize>,
    /// Hosted chains.
    pub chains: Vec<ChainConfig>,
    /// GPU jobs.
    #[serde(default)]
    pub jobs: JobsConfig,
    /// Hosts the node answers besides loopback names when it listens on a loopback address
    /// (`host` or `host:port`); on another address, when set, the only hosts it answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    /// Web origins (`https://wallet.example`) whose pages may send requests, besides the
    /// node's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    /// Custodial wallets.
    #[serde(default)]
    pub custody: CustodyConfig,
    /// The peer this node follows (`http://host:port`): it replicates and checks the peer's
    /// log, serves reads and forwards transactions, and writes nothing itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow: Option<String>,
    /// Where the event log lives: this data directory (no table) or a NATS JetStream cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreConfig>,
}

/// The `[store]` table: the event log on a NATS JetStream cluster, shared by every node that
/// names the same servers and prefix.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The cluster's servers (`nats://host:port`).
    pub nats: Vec<String>,
    /// Names the log's JetStream objects (`<PREFIX>_LOG`, `<prefix>-snapshots`,
    /// `<prefix>-leases`): nodes of one network share it, other networks use another.
    #[serde(default = "default_store_prefix")]
    pub prefix: String,
    /// Replicas of the log when the first node creates it (3: a cluster of three or more).
    #[serde(default = "default_store_replicas")]
    pub replicas: usize,
}

fn default_store_prefix() -> String {
    "aitbc".into()
}

fn default_store_replicas() -> usize {
    3
}

impl StoreConfig {
    /// A `[store]` for the servers in `urls` (comma-separated `nats://` URLs, `--store`).
    pub fn from_urls(urls: &str) -> Result<StoreConfig, ConfigError> {
        let config = StoreConfig {
            nats: urls.split(',').map(|u| u.trim().to_string()).collect(),
            prefix: default_store_prefix(),
            replicas: default_store_replicas(),
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |why: String| Err(ConfigError::Invalid(format!("[store] {why}")));
        if self.nats.is_empty() || self.nats.len() > 64 {
            return invalid("nats: between 1 and 64 server URLs".into());
        }
        if let Some(url) = self
            .nats
            .iter()
            .find(|u| !u.starts_with("nats://") || u.len() <= 7)
        {
            return invalid(format!("nats: {url:?} is not a nats://host:port URL"));
        }
        if let Err(why) = store::JetStreamOptions::check_prefix(&self.prefix) {
            return invalid(why);
        }
        if !(1..=5).contains(&self.replicas) {
            return invalid("replicas: between 1 and 5".into());
        }
        Ok(())
    }
}

/// The `[custody]` table.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CustodyConfig {
    /// Whether a custodial send needs the wallet's credential (`Authorization: Bearer`) besides
    /// its passphrase. Off by default, as API.md's custodial section has no credential; turn it
    /// on for any node others can reach.
    pub require_credential: bool,
}

/// The `[jobs]` table.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// How long a miner's lease on a job lasts, seconds (1..=3600).
    pub lease_s: u64,
    /// Share of `sampled` jobs the platform re-executes, basis points (0..=10000).
    pub sample_bps: u32,
    /// Bytes of blobs one account may store, MiB.
    pub blob_quota_mb: u64,
    /// A blob no open job refers to is collected this long after its upload, seconds.
    pub blob_ttl_s: u64,
    /// A miner silent this long is recorded offline, seconds.
    pub offline_after_s: u64,
    /// The language models `llm_generate` jobs may name (`[[jobs.models]]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelConfig>,
}

/// A language model the node accepts: a GGUF file, identified by its SHA-256.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// A short name (`GET /v1/models`; the CLI resolves it).
    pub name: String,
    /// The file (relative to the data directory, or absolute).
    pub path: std::path::PathBuf,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            lease_s: 30,
            sample_bps: domain::job::SAMPLE_BPS_DEFAULT,
            blob_quota_mb: 256,
            blob_ttl_s: 3600,
            offline_after_s: 60,
            models: Vec::new(),
        }
    }
}

fn default_listen() -> String {
    DEFAULT_LISTEN.to_string()
}

/// One hosted chain.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// Milliseconds between blocks.
    #[serde(default = "default_block_time_ms")]
    pub block_time_ms: u64,
    /// Seal blocks without transactions.
    #[serde(default)]
    pub empty_blocks: bool,
    /// Files holding validator secret keys (64 hex), relative to the data directory.
    pub validator_key_files: Vec<PathBuf>,
    /// Faucet (devnets only).
    #[serde(default)]
    pub faucet: Option<FaucetConfig>,
    /// Consensus-relevant genesis.
    pub genesis: Genesis,
}

fn default_block_time_ms() -> u64 {
    1000
}

/// A chain's faucet.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaucetConfig {
    /// File with the faucet account's secret key, relative to the data directory.
    pub key_file: PathBuf,
    /// Most one request may ask for of the native asset, base units.
    pub max_amount: Amount,
    /// Most one request may ask for of each other asset the faucet's key mints, base units; an
    /// asset without an entry is not handed out.
    #[serde(default)]
    pub max_asset_amounts: std::collections::BTreeMap<String, Amount>,
    /// How fast it hands out (`[chains.faucet.limits]`).
    #[serde(default)]
    pub limits: crate::faucet_limits::FaucetLimits,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Bad content.
    #[error("{0}")]
    Invalid(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ConfigError + '_ {
    move |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl NodeConfig {
    /// Parses and checks a configuration.
    pub fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
        let config: NodeConfig =
            toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Threads for the aggregate actors: the configured number, or half the CPUs (at least
    /// one). Every transaction crosses from an HTTP worker to its actor and back, so actor
    /// threads beyond what the cores can run at once only add task switches: on two cores one
    /// actor thread beside the two HTTP workers gave 3-5 % more transfers/s than two
    /// (BENCHMARKS.md, issue 6).
    pub fn actor_threads(&self) -> usize {
        self.actor_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
        })
    }

    /// Reads a configuration file.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(io_error(path))?;
        NodeConfig::parse(&text)
            .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))
    }

    /// Checks the configuration (also after command-line options changed it).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let jobs = &self.jobs;
        if !(1..=3600).contains(&jobs.lease_s)
            || jobs.sample_bps > 10_000
            || !(1..=1 << 20).contains(&jobs.blob_quota_mb)
            || !(1..=30 * 24 * 3600).contains(&jobs.blob_ttl_s)
            || !(1..=3600).contains(&jobs.offline_after_s)
        {
            return Err(ConfigError::Invalid(
                "[jobs] lease_s is 1..=3600, sample_bps 0..=10000, blob_quota_mb 1..=1048576, \
                 blob_ttl_s 1..=2592000 and offline_after_s 1..=3600"
                    .into(),
            ));
        }
        if self.chains.is_empty() {
            return Err(ConfigError::Invalid(
                "at least one chain must be configured".into(),
            ));
        }
        let mut ids = std::collections::BTreeSet::new();
        for chain in &self.chains {
            chain
                .genesis
                .validate()
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
            if !ids.insert(chain.genesis.chain_id.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "chain {} is configured twice",
                    chain.genesis.chain_id
                )));
            }
            if chain.block_time_ms == 0 || chain.block_time_ms > 3_600_000 {
                return Err(ConfigError::Invalid(
                    "block_time_ms must be between 1 and 3600000".into(),
                ));
            }
        }
        if self.http_workers.is_some_and(|n| n == 0 || n > 256) {
            return Err(ConfigError::Invalid(
                "http_workers must be between 1 and 256".into(),
            ));
        }
        if let Some(store) = &self.store {
            store.validate()?;
        }
        if let Some(peer) = &self.follow {
            if !peer.starts_with("http://") || peer.len() <= 7 || peer.len() > 2048 {
                return Err(ConfigError::Invalid(format!(
                    "follow: {peer:?} is not an http://host:port URL"
                )));
            }
            if self.store.is_some() {
                return Err(ConfigError::Invalid(
                    "follow and [store]: a follower keeps its own copy of its peer's log".into(),
                ));
            }
        }
        if self.actor_threads.is_some_and(|n| n == 0 || n > 256) {
            return Err(ConfigError::Invalid(
                "actor_threads must be between 1 and 256".into(),
            ));
        }
        if !ids.contains(self.default_chain.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "default_chain {} is not configured",
                self.default_chain
            )));
        }
        Ok(())
    }
}

/// Reads a secret key file (64 hex characters).
pub fn read_key_file(data_dir: &Path, file: &Path) -> Result<SigningKey, ConfigError> {
    let path = data_dir.join(file);
    let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
    SigningKey::from_hex(&text).ok_or_else(|| {
        ConfigError::Invalid(format!(
            "{}: not a 64-hex-character secret key",
            path.display()
        ))
    })
}

fn write_secret(path: &Path, key: &SigningKey) -> Result<(), ConfigError> {
    write_private(path, &key.secret_bytes())
}

/// Writes `secret` as hex to a new file only its owner can read, synced.
fn write_private(path: &Path, secret: &[u8]) -> Result<(), ConfigError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(hex::encode(secret).as_bytes())
        .map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// The node's 32-byte secret kept in `path` (64 hex), made from the OS's randomness the first
/// time. It never leaves the node.
pub fn node_secret(path: &Path) -> Result<[u8; 32], ConfigError> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let mut secret = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut secret).map_err(|_| {
            ConfigError::Invalid(format!(
                "{} does not hold 64 hex characters",
                path.display()
            ))
        })?;
        return Ok(secret);
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|e| ConfigError::Invalid(format!("no OS randomness: {e}")))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    write_private(path, &secret)?;
    Ok(secret)
}

/// Devnet faucet funds: one billion AIT.
pub fn devnet_faucet_supply() -> Amount {
    Amount::tokens(1_000_000_000).expect("fits")
}

/// The devnet's staking pool: 0.01 AIT a second at full utilization, a 100,000 AIT budget,
/// stakes of 100 AIT or more locked 7 to 365 days, hourly epochs.
pub fn devnet_pool() -> PoolSpec {
    PoolSpec {
        id: "gpu-standard".into(),
        reward_rate: Amount(10_000_000_000_000_000),
        budget: Amount::tokens(100_000).expect("fits"),
        min_stake: Amount::tokens(100).expect("fits"),
        min_lock_days: 7,
        max_lock_days: 365,
        epoch_s: 3_600,
        requirements: None,
    }
}

/// The devnet's language model: the one `scripts/fetch-model.sh` installs, when it is there.
fn devnet_models() -> Vec<ModelConfig> {
    let path = llm::default_model_path();
    match path.exists() {
        true => vec![ModelConfig {
            name: DEVNET_MODEL.into(),
            path,
        }],
        false => Vec::new(),
    }
}

/// The name of the devnet's language model.
pub const DEVNET_MODEL: &str = "smollm2-135m";

/// Creates a single-validator devnet in `data_dir` (fresh keys, a faucet holding the whole
/// supply, the installed language model) and returns its configuration. Refuses to overwrite
/// an existing configuration.
pub fn create_devnet(
    data_dir: &Path,
    listen: &str,
    genesis_time: u64,
) -> Result<NodeConfig, ConfigError> {
    let config_path = data_dir.join(CONFIG_FILE);
    if config_path.exists() {
        return Err(ConfigError::Invalid(format!(
            "{} already exists",
            config_path.display()
        )));
    }
    let keys = data_dir.join("keys");
    std::fs::create_dir_all(&keys).map_err(io_error(&keys))?;
    let random_key = || {
        SigningKey::generate().map_err(|e| ConfigError::Invalid(format!("no OS randomness: {e}")))
    };
    let (validator, faucet) = (random_key()?, random_key()?);
    let validator_file = PathBuf::from("keys/validator.key");
    let faucet_file = PathBuf::from("keys/faucet.key");
    write_secret(&data_dir.join(&validator_file), &validator)?;
    write_secret(&data_dir.join(&faucet_file), &faucet)?;
    let config = NodeConfig {
        listen: listen.to_string(),
        default_chain: DEVNET_CHAIN_ID.into(),
        http_workers: None,
        actor_threads: None,
        follow: None,
        store: None,
        allowed_hosts: Vec::new(),
        allowed_origins: Vec::new(),
        custody: CustodyConfig::default(),
        jobs: JobsConfig {
            models: devnet_models(),
            ..JobsConfig::default()
        },
        chains: vec![ChainConfig {
            block_time_ms: 1000,
            empty_blocks: false,
            validator_key_files: vec![validator_file],
            faucet: Some(FaucetConfig {
                key_file: faucet_file,
                max_amount: Amount::tokens(1_000_000).expect("fits"),
                // 1,000,000 USDX.
                max_asset_amounts: [(
                    DEVNET_STABLE.to_string(),
                    Amount(1_000_000 * 10u128.pow(u32::from(DEVNET_STABLE_DECIMALS))),
                )]
                .into(),
                limits: Default::default(),
            }),
            genesis: Genesis {
                genesis_time,
                allocations: vec![Allocation {
                    address: faucet.address(),
                    amount: devnet_faucet_supply(),
                }],
                assets: vec![AssetSpec {
                    symbol: DEVNET_STABLE.into(),
                    decimals: DEVNET_STABLE_DECIMALS,
                    minter: Some(faucet.address()),
                }],
                pools: vec![devnet_pool()],
                ..Genesis::single_validator(DEVNET_CHAIN_ID, hex::encode(validator.public_key()))
            },
        }],
    };
    let text = toml::to_string_pretty(&config).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let header = "# AITBC node configuration (see README.md, \"Configuration\").\n";
    std::fs::write(&config_path, format!("{header}{text}")).map_err(io_error(&config_path))?;
    Ok(config)
}

/// The faucet address of a devnet configuration, for display.
pub fn faucet_address(data_dir: &Path, chain: &ChainConfig) -> Option<Address> {
    let faucet = chain.faucet.as_ref()?;
    read_key_file(data_dir, &faucet.key_file)
        .ok()
        .map(|k| k.address())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of a fresh devnet's configuration with `line` added at the top level.
    fn devnet_with(line: &str) -> String {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("aitbc-config-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        create_devnet(&dir, "127.0.0.1:0", 0).unwrap();
        let text = std::fs::read_to_string(dir.join(CONFIG_FILE)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        format!("{line}\n{text}")
    }

    #[test]
    fn actor_threads_are_configured_or_half_the_cpus() {
        let default = NodeConfig::parse(&devnet_with("")).unwrap();
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(default.actor_threads(), (cpus / 2).max(1));
        let three = NodeConfig::parse(&devnet_with("actor_threads = 3")).unwrap();
        assert_eq!(three.actor_threads(), 3);
        for refused in ["actor_threads = 0", "actor_threads = 257"] {
            let error = NodeConfig::parse(&devnet_with(refused)).unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains("actor_threads must be between 1 and 256"),
                "{refused}: {error}"
            );
        }
    }
}
