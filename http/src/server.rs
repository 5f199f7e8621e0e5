//! Assembles a node: event log, aggregate actors, projections, chains, the protocol manager and the
//! HTTP server.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::{Actor, Arbiter, ArbiterHandle};
use actix_web::{HttpServer, web};
use actors::CommandError;
use actors::bootstrap::ensure_chain;
use actors::chain::{ChainActor, SealPermit, SealingConfig};
use actors::clock::SystemClock;
use actors::dao::{PauseBoard, dao_facts, publish_to};
use actors::protocol::ProtocolManager;
use actors::registry::Registry;
use actors::router::{Registries, Router};
use actors::scheduler::Scheduler;
use actors::wallet::{WalletRegistry, wallet_facts};
use domain::agent::{AgentAggregate, AgentId};
use domain::chain::Chain;
use domain::dao::Dao;
use domain::job::{JobAggregate, JobFacts, JobId};
use domain::miner::{MarketIndex, MinerAggregate, MinerId};
use domain::proposal::{ProposalAggregate, ProposalId};
use domain::staking::{Staking, StakingCommand};
use domain::vesting::{Vesting, VestingId};
use domain::wgsl::ShaderHost;
use projections::explorer::Explorer;
use projections::runner::ProjectionRunner;
use store::{EventStore, FileStore, FileStoreOptions, JetStreamOptions, JetStreamStore};

use crate::app::{App, Components, Faucet, HostedChain};
use crate::config::{NodeConfig, read_key_file};
use crate::custody::Custody;
use crate::limits::KDF_CONCURRENCY_MAX;
use crate::replication::{Upstream, Verifier};
use crate::routes;

/// How long a client has to send a request's headers.
pub const CLIENT_HEADERS_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections one HTTP worker serves at once.
pub const CONNECTIONS_PER_WORKER_MAX: usize = 4096;

/// From this many CPUs on, the protocol manager has a thread of its own beside the sealers'.
/// Below, it shares theirs: on two cores that gave 4–5 % more transfers/s and 5 % less CPU per
/// transfer (BENCHMARKS.md, issue 13).
const OWN_MANAGER_THREAD_FROM_CPUS: usize = 4;

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

fn fail(context: &str) -> impl FnOnce(String) -> StartError + '_ {
    move |reason| StartError(format!("{context}: {reason}"))
}

/// A started node.
pub struct Node {
    /// The service (for in-process use and tests).
    pub app: Arc<App>,
    /// The HTTP server; await it to run until stopped.
    pub server: actix_web::dev::Server,
    /// Address bound.
    pub addr: SocketAddr,
    log: Log,
    _arbiters: Vec<Arbiter>,
}

/// Where this node's event log lives.
#[derive(Clone)]
enum Log {
    /// In the data directory.
    File(Arc<FileStore>),
    /// On a NATS JetStream cluster shared with other nodes.
    JetStream(Arc<JetStreamStore>),
}

impl Log {
    async fn open(
        config: &NodeConfig,
        data_dir: &Path,
        options: FileStoreOptions,
    ) -> Result<Log, StartError> {
        match &config.store {
            None => FileStore::open_with(data_dir.join("store"), options)
                .map(Log::File)
                .map_err(|e| fail("event log")(e.to_string())),
            Some(cluster) => JetStreamStore::connect(JetStreamOptions {
                urls: cluster.nats.clone(),
                prefix: cluster.prefix.clone(),
                replicas: cluster.replicas,
            })
            .await
            .map(|store| Log::JetStream(Arc::new(store)))
            .map_err(|e| fail("event log on the NATS cluster")(e.to_string())),
        }
    }

    fn store(&self) -> Arc<dyn EventStore> {
        match self {
            Log::File(store) => store.clone(),
            Log::JetStream(store) => store.clone(),
        }
    }

    /// What lets this node seal `chain_id`: on a shared log, holding the chain's lease.
    fn seal_permit(&self, chain_id: &str) -> Option<SealPermit> {
        match self {
            Log::File(_) => None,
            Log::JetStream(store) => {
                let lease = store.lease(&format!("sealer-{}", hex::encode(chain_id)));
                Some(SealPermit(Arc::new(move || lease.held())))
            }
        }
    }

    fn close(&self) {
        match self {
            Log::File(store) => store.close(),
            // Acknowledged appends are on the cluster already; the connection closes with it.
            Log::JetStream(_) => {}
        }
    }
}

/// Starts a node for `config` with its data in `data_dir`; `shaders` is its GPU executor for
/// `wgsl` jobs (none: it takes no such job). Must run inside an actix system.
pub async fn start(
    config: NodeConfig,
    data_dir: &Path,
    shaders: Option<Arc<dyn ShaderHost>>,
) -> Result<Node, StartError> {
    start_with(config, data_dir, shaders, FileStoreOptions::default()).await
}

/// [`start`] with the event log's options (a fault simulation gives its storage faults here).
pub async fn start_with(
    config: NodeConfig,
    data_dir: &Path,
    shaders: Option<Arc<dyn ShaderHost>>,
    store_options: FileStoreOptions,
) -> Result<Node, StartError> {
    let log = Log::open(&config, data_dir, store_options).await?;
    let store = log.store();
    tracing::info!(events = store.next_position(), "event log open");

    let mut arbiters: Vec<Arbiter> = (0..config.actor_threads())
        .map(|_| Arbiter::new())
        .collect();
    let clock = SystemClock::shared();
    let handles: Vec<ArbiterHandle> = arbiters.iter().map(Arbiter::handle).collect();
    let registry = WalletRegistry::new(Registry::new(
        store.clone(),
        clock.clone(),
        handles.clone(),
        wallet_facts(config.chains.iter().map(|c| &c.genesis)),
    ));
    let hosted_chains: BTreeSet<String> = config
        .chains
        .iter()
        .map(|c| c.genesis.chain_id.clone())
        .collect();
    let hosted = move |chain_id: &str| {
        if hosted_chains.contains(chain_id) {
            Ok(())
        } else {
            Err(CommandError::NotFound(format!(
                "chain {chain_id:?} is not hosted here"
            )))
        }
    };
    // The block sealers and the protocol manager each follow the whole log. A chain's actor
    // verifies every block it records (a Merkle root over up to 10,000 leaves and the
    // signatures): it lives on the sealers' thread, so wallets never wait behind it. With
    // cores to spare the protocol manager (and the DAO's actor) get a thread of their own; on
    // fewer, one thread serves both: a thread fewer to wake at every group commit.
    let sealer_arbiter = Arbiter::new();
    let manager_arbiter = (cpus() >= OWN_MANAGER_THREAD_FROM_CPUS).then(Arbiter::new);
    let manager_handle = manager_arbiter.as_ref().unwrap_or(&sealer_arbiter).handle();
    let chain_registry: Registry<Chain> = Registry::new(
        store.clone(),
        clock.clone(),
        vec![sealer_arbiter.handle()],
        {
            let hosted = hosted.clone();
            move |id: &String| hosted(id)
        },
    );
    let vesting: Registry<Vesting> =
        Registry::new(store.clone(), clock.clone(), handles.clone(), {
            let hosted = hosted.clone();
            move |id: &VestingId| hosted(&id.chain_id)
        });
    let proposals: Registry<ProposalAggregate> =
        Registry::new(store.clone(), clock.clone(), handles.clone(), {
            let hosted = hosted.clone();
            move |id: &ProposalId| hosted(&id.chain_id)
        });
    let agents: Registry<AgentAggregate> =
        Registry::new(store.clone(), clock.clone(), handles.clone(), {
            let hosted = hosted.clone();
            move |id: &AgentId| hosted(&id.chain_id)
        });
    let scheduler = Scheduler::new(config.jobs.lease_s * 1000);
    let blob_quota = config.jobs.blob_quota_mb << 20;
    let blobs = Arc::new(
        store::blobs::BlobStore::open(data_dir.join("blobs"), blob_quota)
            .map_err(|e| fail("blobs")(e.to_string()))?,
    );
    let sample_bps = config.jobs.sample_bps;
    let jobs: Registry<JobAggregate> =
        Registry::new(store.clone(), clock.clone(), handles.clone(), {
            let hosted = hosted.clone();
            move |id: &JobId| hosted(&id.chain_id).map(|()| JobFacts { sample_bps })
        })
        .publishing(scheduler.publisher());
    let miners: Registry<MinerAggregate> =
        Registry::new(store.clone(), clock.clone(), handles.clone(), {
            let hosted = hosted.clone();
            move |id: &MinerId| hosted(&id.chain_id)
        });
    let market: Registry<MarketIndex> =
        Registry::new(store.clone(), clock.clone(), handles.clone(), {
            let hosted = hosted.clone();
            move |id: &String| hosted(id)
        });
    let staking: Registry<Staking> =
        Registry::new(store.clone(), clock.clone(), handles, move |id: &String| {
            hosted(id)
        });
    let pauses = PauseBoard::default();
    let dao: Registry<Dao> = Registry::new(
        store.clone(),
        clock.clone(),
        vec![manager_handle.clone()],
        dao_facts(config.chains.iter().map(|c| &c.genesis)),
    )
    .publishing(publish_to(pauses.clone()));
    let registries = Registries {
        wallets: registry.clone(),
        vesting,
        dao: dao.clone(),
        proposals,
        agents,
        jobs: jobs.clone(),
        miners,
        market: market.clone(),
        staking: staking.clone(),
    };
    let sample_secret = crate::config::node_secret(&data_dir.join("keys").join("job-sample.key"))
        .map_err(|e| fail("job sample secret")(e.to_string()))?;
    let mut router = Router::new(registries, pauses).with_jobs(blobs.clone(), sample_secret);
    let models = crate::models::NodeModels::open(&config.jobs.models, data_dir);
    router = router.with_models(Arc::new(models));
    if let Some(shaders) = shaders {
        router = router.with_shaders(shaders);
    }

    let explorer_file = data_dir.join("projections").join("explorer.redb");
    let started = std::time::Instant::now();
    let explorer =
        Explorer::open(&explorer_file, store.next_position()).map_err(|e| fail("explorer")(e))?;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        position = explorer.next_position(),
        elapsed_ms,
        "explorer open"
    );
    let (runner, projections) = ProjectionRunner::new(store.clone(), explorer);
    let projection_arbiter = Arbiter::new();
    let projection = ProjectionRunner::start_in_arbiter(&projection_arbiter.handle(), |_| runner);
    arbiters.push(projection_arbiter);

    let upstream = config.follow.as_deref().map(Upstream::new);
    let mut chains = BTreeMap::new();
    let mut sealers = Vec::new();
    for chain in &config.chains {
        let chain_id = chain.genesis.chain_id.clone();
        if upstream.is_some() {
            // A follower's chains come from its peer's log: no genesis, no keys, no sealing.
            chains.insert(
                chain_id,
                HostedChain {
                    genesis: chain.genesis.clone(),
                    faucet: None,
                    block_time_ms: chain.block_time_ms,
                },
            );
            continue;
        }
        let signers = chain
            .validator_key_files
            .iter()
            .map(|file| read_key_file(data_dir, file))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(&chain_id)(e.to_string()))?;
        if let Some(stranger) = signers.iter().find(|k| {
            !chain
                .genesis
                .validators
                .contains(&hex::encode(k.public_key()))
        }) {
            return Err(StartError(format!(
                "{chain_id}: the validator key of {} is not one of the chain's validators",
                stranger.address()
            )));
        }
        let faucet = match &chain.faucet {
            Some(f) => Some(Faucet {
                key: read_key_file(data_dir, &f.key_file)
                    .map_err(|e| fail(&chain_id)(e.to_string()))?,
                max_amount: f.max_amount,
                max_asset_amounts: f.max_asset_amounts.clone(),
                gate: crate::faucet_limits::FaucetGate::new(f.limits),
            }),
            None => None,
        };
        let started = std::time::Instant::now();
        let state = ensure_chain(&chain_registry, &registry, &chain.genesis, &signers)
            .await
            .map_err(|e| StartError(e.to_string()))?;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(chain = %chain_id, height = state.height, elapsed_ms, "chain loaded");
        if !chain.genesis.pools.is_empty() {
            let open = StakingCommand::Open {
                pools: chain.genesis.pools.clone(),
                at_ms: chain.genesis.genesis_time * 1000,
            };
            staking
                .execute(chain_id.clone(), open)
                .await
                .map_err(|e| fail(&chain_id)(format!("staking pools: {e}")))?;
        }
        if signers.len() >= chain.genesis.validator_threshold {
            let sealing = SealingConfig {
                block_time: Duration::from_millis(chain.block_time_ms),
                empty_blocks: chain.empty_blocks,
                permit: log.seal_permit(&chain_id),
            };
            let sealer = ChainActor::new(state, chain_registry.clone(), signers, sealing);
            sealers.push((
                chain_id.clone(),
                ChainActor::start_in_arbiter(&sealer_arbiter.handle(), |_| sealer),
            ));
        } else {
            tracing::warn!(chain = %chain_id, "this node holds too few validator keys to seal blocks");
        }
        chains.insert(
            chain_id,
            HostedChain {
                genesis: chain.genesis.clone(),
                faucet,
                block_time_ms: chain.block_time_ms,
            },
        );
    }

    // The protocol's steps are the writing node's to run; a follower receives their events.
    let recovered = Arc::new(AtomicBool::new(upstream.is_some()));
    let (manager, progress) = match upstream {
        Some(_) => (None, Arc::default()),
        None => {
            let started = std::time::Instant::now();
            let manager = ProtocolManager::load(router.clone(), recovered.clone())
                .await
                .map_err(|e| fail("protocol manager")(e.to_string()))?;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            tracing::info!(elapsed_ms, "protocol manager loaded");
            let progress = manager.progress();
            let manager = ProtocolManager::start_in_arbiter(&manager_handle, |_| manager);
            (Some(manager), progress)
        }
    };
    for chain in &config.chains {
        // A DAO with history is loaded now, so its pauses are on the board before any request.
        dao.state(chain.genesis.chain_id.clone())
            .await
            .map_err(|e| fail("dao")(e.to_string()))?;
        // Every open job is loaded now: its actor publishes it to the scheduler's board.
        let chain_id = chain.genesis.chain_id.clone();
        let open = market
            .state(chain_id.clone())
            .await
            .map_err(|e| fail("jobs")(e.to_string()))?
            .open;
        for id in open {
            let job = JobId {
                chain_id: chain_id.clone(),
                id,
            };
            jobs.state(job)
                .await
                .map_err(|e| fail("jobs")(e.to_string()))?;
        }
    }

    arbiters.push(sealer_arbiter);
    arbiters.extend(manager_arbiter);
    if upstream.is_none() {
        actix_rt::spawn(crate::blobs::collect_forever(
            blobs.clone(),
            scheduler.clone(),
            clock.clone(),
            config.jobs.blob_ttl_s * 1000,
        ));
    }

    let ready = Arc::new(AtomicBool::new(false));
    let head_at_start = store.next_position();
    let (ready_flag, waiting_projections) = (ready.clone(), projections.clone());
    actix::spawn(async move {
        if let Err(stopped) = waiting_projections.wait_applied(head_at_start).await {
            tracing::error!(%stopped, "the node cannot become ready");
            return;
        }
        while !recovered.load(Ordering::Acquire) {
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        ready_flag.store(true, Ordering::Release);
        tracing::info!(
            "node ready: log recovered, open protocol steps finished, projections caught up"
        );
    });

    let custody =
        Custody::open(data_dir.join("custody")).map_err(|e| fail("custody")(e.to_string()))?;
    let started_ms = clock.now_ms();
    if let Some(upstream) = &upstream {
        let verifier = Verifier::new(config.chains.iter().map(|c| c.genesis.clone()));
        crate::replication::follow(store.clone(), upstream.clone(), verifier);
        tracing::info!(peer = %upstream.url, "following");
    }
    let following = upstream.is_some();
    let app = Arc::new(App {
        upstream,
        store,
        clock,
        router,
        projections,
        chains,
        default_chain: config.default_chain.clone(),
        custody,
        ready,
        kdf_permits: Arc::new(tokio::sync::Semaphore::new(KDF_CONCURRENCY_MAX)),
        block_feeds: Arc::new(tokio::sync::Semaphore::new(crate::feed::SUBSCRIBERS_MAX)),
        unlock_failures: Default::default(),
        idempotency: Default::default(),
        require_credential: config.custody.require_credential,
        progress,
        components: Components {
            projection,
            manager,
            sealers,
        },
        key_cache: dashmap::DashMap::new(),
        scheduler,
        miner_requests: crate::jobs::MinerRequests::new(started_ms),
        blobs: blobs.clone(),
    });
    if !following {
        actix_rt::spawn(crate::jobs::watch_presence(
            app.clone(),
            config.jobs.offline_after_s * 1000,
        ));
    }
    let data = web::Data::new(app.clone());
    let policy = web::Data::new(crate::origin::RequestPolicy::new(
        &config.listen,
        &config.allowed_hosts,
        &config.allowed_origins,
    ));
    let mut server = HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .app_data(policy.clone())
            .wrap(actix_web::middleware::Condition::new(
                following,
                actix_web::middleware::from_fn(crate::replication::follower_guard),
            ))
            .wrap(actix_web::middleware::from_fn(crate::origin::guard))
            .configure(routes::configure)
    })
    .shutdown_timeout(5)
    .disable_signals()
    // Slow clients cannot pin the node: headers within 5 s, idle keep-alive connections closed
    // after 30 s, and a bound on connections per worker (past it, new ones wait in the
    // kernel's backlog).
    .client_request_timeout(CLIENT_HEADERS_TIMEOUT)
    .client_disconnect_timeout(Duration::from_secs(2))
    .keep_alive(Duration::from_secs(30))
    .max_connections(CONNECTIONS_PER_WORKER_MAX);
    if let Some(workers) = config.http_workers {
        server = server.workers(workers);
    }
    let server = server.bind(&config.listen).map_err(|e| {
        StartError(format!(
            "cannot listen on {}: {e} (choose another address with --listen)",
            config.listen
        ))
    })?;
    let addr = *server
        .addrs()
        .first()
        .ok_or_else(|| StartError("no listen address bound".into()))?;
    tracing::info!(%addr, "listening");
    Ok(Node {
        app,
        server: server.run(),
        addr,
        log,
        _arbiters: arbiters,
    })
}

impl Node {
    /// Runs until the server stops (SIGINT/SIGTERM), then closes the log.
    pub async fn run(self) -> std::io::Result<()> {
        // Our own signal handling: actix-server's would stop the whole actor system at once,
        // before the explorer could take its last commit.
        let handle = self.server.handle();
        actix_rt::spawn(async move {
            let mut terminate =
                actix_rt::signal::unix::signal(actix_rt::signal::unix::SignalKind::terminate());
            let terminated = async {
                match terminate.as_mut() {
                    Ok(terminate) => terminate.recv().await,
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = actix_rt::signal::ctrl_c() => tracing::info!("interrupted: stopping"),
                _ = terminated => tracing::info!("SIGTERM: stopping"),
            }
            handle.stop(true).await;
        });
        let result = self.server.await;
        // The explorer's last commit, so that the next start replays nothing.
        let explorer = self
            .app
            .components
            .projection
            .send(projections::runner::Shutdown)
            .await;
        match explorer {
            Ok(Ok(position)) => tracing::info!(position, "explorer committed at shutdown"),
            Ok(Err(error)) => {
                tracing::warn!(%error, "no explorer commit at shutdown (the next start replays)")
            }
            Err(_) => tracing::warn!("the explorer had stopped: no commit at shutdown"),
        }
        self.log.close();
        result
    }
}
