//! `aitbc`: the AITBC node and its command-line client.

mod agent;
mod bench;
mod blob;
mod client;
mod council;
mod gov;
mod gpu;
mod job;
mod kernels;
mod keystore;
mod miner;
mod node;
mod stake;
mod store;
mod vesting;
mod wallet;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// glibc's allocator was a tenth of the node's CPU under transfer load (`perf`: malloc, free and
/// their consolidation, with buffers freed on other threads than the one that allocated them).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// AITBC: GPU compute marketplace, staking, trading and governance on an event-sourced PoA chain.
#[derive(Parser)]
#[command(name = "aitbc", version, about)]
struct Cli {
    /// Node to talk to.
    #[arg(
        long,
        global = true,
        env = "AITBC_NODE",
        default_value = "http://127.0.0.1:18000"
    )]
    node: String,
    /// Chain (defaults to the node's default chain).
    #[arg(long, global = true, env = "AITBC_CHAIN")]
    chain: Option<String>,
    /// Local keystore directory (default: ~/.aitbc/keystore).
    #[arg(long, global = true, env = "AITBC_KEYSTORE")]
    keystore: Option<PathBuf>,
    /// Amounts are base units (`1000`), not tokens with their symbol (`12.5AIT`).
    #[arg(long, global = true)]
    base_units: bool,
    /// Print the node's answer as JSON, for scripts (`send` and `faucet` print a sentence
    /// otherwise; the other commands always print JSON).
    #[arg(long, global = true, env = "AITBC_JSON", value_parser = clap::builder::FalseyValueParser::new())]
    json: bool,
    /// Log filter, e.g. `info` or `aitbc=debug` (RUST_LOG also works).
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node (without arguments: a single-node devnet in ./aitbc-data).
    Node(node::NodeArgs),
    /// Manage local wallets (keys encrypted with Argon2id + ChaCha20-Poly1305).
    #[command(subcommand)]
    Wallet(wallet::WalletCommand),
    /// Sign and send a transfer (of the native asset or another one) from a local wallet.
    Send(wallet::SendArgs),
    /// Vesting schedules: create, claim, show.
    #[command(subcommand)]
    Vesting(vesting::VestingCommand),
    /// The council: approve pausing or resuming a module, show pauses and approvals.
    #[command(subcommand)]
    Council(council::CouncilCommand),
    /// GPU jobs: submit (escrowed), status, result, list, cancel.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// GPU staking pools: pools, pool, stake, add, claim, unstake, exit, positions.
    #[command(subcommand)]
    Stake(stake::StakeCommand),
    /// Blobs (job inputs too large for a transaction): put a file, get one by its hash.
    #[command(subcommand)]
    Blob(blob::BlobCommand),
    /// Run a remote miner (`--key FILE`): register, take jobs, run them on this GPU, get paid;
    /// `miner status` lists the chain's miners.
    Miner(miner::MinerArgs),
    /// Agent wallets: register, configure strategy and auto-voting, callers, stop, reactivate.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// OpenClawDAO governance: propose, vote, challenge, approve, queue, execute, and reads.
    #[command(subcommand)]
    Gov(gov::GovCommand),
    /// Show an account's balance and nonce (address or local wallet name).
    Balance {
        /// Address or wallet name.
        account: String,
    },
    /// Show a transaction.
    Tx {
        /// Transaction hash.
        hash: String,
    },
    /// Miners' signed receipts: one by id (with its block and inclusion proof once sealed), or
    /// a job's (`--job ID`).
    Receipts {
        /// A receipt id.
        #[arg(required_unless_present = "job", conflicts_with = "job")]
        id: Option<String>,
        /// The job whose receipts to list.
        #[arg(long)]
        job: Option<String>,
    },
    /// Show a block (height or hash), or the latest blocks.
    Block {
        /// Height or hash; omitted: the chain's latest block.
        id: Option<String>,
    },
    /// Ask the devnet faucet for tokens (the native asset, or one it mints such as USDX).
    Faucet {
        /// Address or wallet name.
        account: String,
        /// Amount: tokens like `100AIT` / `50USDX` (base units with --base-units).
        #[arg(long, default_value = "100AIT", allow_hyphen_values = true)]
        amount: String,
        /// Asset (default: the native one).
        #[arg(long)]
        asset: Option<String>,
    },
    /// The node at a glance: health, version, chains and their heights.
    Status,
    /// This client's version, and the node's when it answers.
    Version,
    /// The event log of a stopped node: check it, or cut it at a position.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Benchmarks against a running node.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// The GPU executor: adapter and kernel figures.
    #[command(subcommand)]
    Gpu(gpu::GpuCommand),
}

fn init_logging(level: Option<&str>) {
    let filter = match level {
        Some(level) => tracing_subscriber::EnvFilter::new(level),
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not in files and pipes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Mesa's Vulkan device-select layer looks for a Wayland display, and libwayland prints
/// `XDG_RUNTIME_DIR is invalid or not set` on every headless machine where the variable is
/// missing. Setting it in-process needs `unsafe` (`set_var`), which the workspace forbids, so a
/// command that opens the GPU replaces itself (same pid, via `exec`) with one where it is
/// `/dev/null`: absolute, as libwayland asks, and a place no display socket can ever be.
fn quiet_gpu_probe(command: &Command) {
    let uses_gpu = matches!(
        command,
        Command::Node(_) | Command::Miner(_) | Command::Gpu(_)
    );
    let set = std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| PathBuf::from(d).is_absolute());
    if !uses_gpu || set {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    use std::os::unix::process::CommandExt;
    // `exec` returns only when it failed; the command then runs here, with the noise.
    let _ = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("XDG_RUNTIME_DIR", "/dev/null")
        .exec();
}

fn main() {
    let cli = Cli::parse();
    quiet_gpu_probe(&cli.command);
    let result = match cli.command {
        Command::Node(args) => {
            init_logging(cli.log_level.as_deref());
            node::run(args)
        }
        Command::Store(command) => {
            init_logging(cli.log_level.as_deref());
            store::run(command)
        }
        command => {
            if let Some(level) = cli.log_level.as_deref() {
                init_logging(Some(level));
            }
            let ctx =
                client::Context::new(&cli.node, cli.chain, cli.keystore, cli.base_units, cli.json);
            match command {
                Command::Wallet(command) => wallet::run(&ctx, command),
                Command::Send(args) => wallet::send(&ctx, args),
                Command::Vesting(command) => vesting::run(&ctx, command),
                Command::Council(command) => council::run(&ctx, command),
                Command::Gov(command) => gov::run(&ctx, command),
                Command::Agent(command) => agent::run(&ctx, command),
                Command::Job(command) => job::run(&ctx, command),
                Command::Blob(command) => blob::run(&ctx, command),
                Command::Stake(command) => stake::run(&ctx, command),
                Command::Miner(args) => miner::run(&ctx, args),
                Command::Balance { account } => wallet::balance(&ctx, &account),
                Command::Tx { hash } => client::print(ctx.get(&format!("/v1/transactions/{hash}"))),
                Command::Receipts { id, job } => client::print(match (id, job) {
                    (Some(id), _) => ctx.get(&format!("/v1/receipts/{id}")),
                    (None, job) => {
                        ctx.get_with("/v1/receipts", &[("job_id", job.as_deref().unwrap_or(""))])
                    }
                }),
                Command::Block { id } => wallet::block(&ctx, id.as_deref()),
                Command::Faucet {
                    account,
                    amount,
                    asset,
                } => wallet::faucet(&ctx, &account, &amount, asset.as_deref()),
                Command::Status => client::print(client::status(&ctx)),
                Command::Version => client::print(Ok(client::versions(&ctx))),
                Command::Bench(command) => bench::run(&ctx, command),
                Command::Gpu(command) => gpu::run(command),
                Command::Node(_) | Command::Store(_) => unreachable!("handled above"),
            }
        }
    };
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
