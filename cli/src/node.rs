//! `aitbc node`.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow};
use clap::Args;
use http::config::{
    CONFIG_FILE, DEFAULT_LISTEN, NodeConfig, StoreConfig, create_devnet, faucet_address,
};

#[derive(Args)]
pub struct NodeArgs {
    /// Data directory (event log, keys, custodial wallets).
    #[arg(long, env = "AITBC_DATA_DIR", default_value = "aitbc-data")]
    data_dir: PathBuf,
    /// Listen address for this start (overrides the configuration, and is not written into
    /// a devnet configuration created now).
    #[arg(long, env = "AITBC_LISTEN")]
    listen: Option<String>,
    /// The event log on a NATS JetStream cluster shared with other nodes: its servers as
    /// comma-separated nats://host:port URLs (overrides `[store] nats`; default: the log in the
    /// data directory). Nodes of one network share the configuration's chains and keys.
    #[arg(long, env = "AITBC_STORE", value_name = "URLS")]
    store: Option<String>,
    /// Follow the node at this URL (http://host:port): replicate and check its log, serve
    /// reads, forward transactions to it, write nothing here. Use its configuration (chains)
    /// without its keys.
    #[arg(long, env = "AITBC_FOLLOW", value_name = "URL")]
    follow: Option<String>,
    /// Configuration file (default: <data-dir>/aitbc.toml, created as a devnet if missing).
    #[arg(long, env = "AITBC_CONFIG")]
    config: Option<PathBuf>,
}

pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let default_config = args.data_dir.join(CONFIG_FILE);
    let mut config = match &args.config {
        Some(path) => NodeConfig::load(path)?,
        None if default_config.exists() => NodeConfig::load(&default_config)?,
        None => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let config = create_devnet(&args.data_dir, DEFAULT_LISTEN, now)?;
            eprintln!(
                "created a new devnet in {} (configuration: {})",
                args.data_dir.display(),
                default_config.display()
            );
            config
        }
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(peer) = &args.follow {
        config.follow = Some(peer.clone());
    }
    if let Some(urls) = &args.store {
        let mut store = StoreConfig::from_urls(urls)?;
        if let Some(configured) = config.store.take() {
            (store.prefix, store.replicas) = (configured.prefix, configured.replicas);
        }
        config.store = Some(store);
    }
    config.validate()?;
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        let shaders: std::sync::Arc<dyn domain::wgsl::ShaderHost> =
            std::sync::Arc::new(crate::kernels::NodeShaders);
        let node = http::server::start(config.clone(), &args.data_dir, Some(shaders))
            .await
            .map_err(|e| anyhow!("{e}"))?;
        for chain in &config.chains {
            let faucet = faucet_address(&args.data_dir, chain)
                .map(|a| format!(", faucet {a}"))
                .unwrap_or_default();
            eprintln!(
                "chain {} ({}){faucet}",
                chain.genesis.chain_id,
                chain.genesis.token_symbol()
            );
        }
        eprintln!(
            "AITBC node listening on http://{} (data in {})",
            node.addr,
            args.data_dir.display()
        );
        node.run().await.context("server")
    })
}
