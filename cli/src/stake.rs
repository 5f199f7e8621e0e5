//! `aitbc stake`: GPU staking pools: list them, stake into one, add to a position, claim its
//! rewards, unstake after the lock or exit early, list positions.

use clap::Subcommand;
use serde_json::json;

use crate::client::{Context, print};
use crate::wallet::{Signer, asset_amount, chain_info, resolve, sign_and_submit};

#[derive(Subcommand)]
pub enum StakeCommand {
    /// The chain's pools: rate, budget left, stake, settled epochs, APR estimate.
    Pools,
    /// One pool.
    Pool {
        /// Pool id.
        id: String,
    },
    /// Stake from a local wallet into a pool (a position; its id is the transaction's hash).
    Stake {
        #[command(flatten)]
        signer: Signer,
        /// Pool id.
        #[arg(long)]
        pool: String,
        /// Amount: tokens like `100AIT` (base units with --base-units).
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// Lock, days (within the pool's range; 7 to 365).
        #[arg(long)]
        lock_days: u32,
    },
    /// Add to a position (rewards kept; a new lock counts when it ends later).
    Add {
        #[command(flatten)]
        signer: Signer,
        /// Position id.
        position: String,
        /// Amount: tokens like `100AIT` (base units with --base-units).
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// A new lock from now, days.
        #[arg(long)]
        lock_days: Option<u32>,
    },
    /// Claim a position's settled rewards.
    Claim {
        #[command(flatten)]
        signer: Signer,
        /// Position id.
        position: String,
    },
    /// Take a position's stake back once its lock has ended.
    Unstake {
        #[command(flatten)]
        signer: Signer,
        /// Position id.
        position: String,
    },
    /// Take a position's stake back before its lock ends, less 10 % to the treasury.
    Exit {
        #[command(flatten)]
        signer: Signer,
        /// Position id.
        position: String,
    },
    /// Positions: an account's (address or local wallet name), or all.
    Positions {
        /// Owner.
        owner: Option<String>,
    },
}

pub fn run(ctx: &Context, command: StakeCommand) -> anyhow::Result<()> {
    let position_act = |signer: &Signer, kind: &str, position: &str| {
        let chain = chain_info(ctx)?;
        sign_and_submit(
            ctx,
            &chain,
            signer,
            kind,
            json!({ "position_id": position }),
        )
    };
    match command {
        StakeCommand::Pools => print(ctx.get("/v1/pools")),
        StakeCommand::Pool { id } => print(ctx.get(&format!("/v1/pools/{id}"))),
        StakeCommand::Stake {
            signer,
            pool,
            amount,
            lock_days,
        } => {
            let chain = chain_info(ctx)?;
            let amount = asset_amount(ctx, &chain, None, &amount)?;
            let body = json!({"pool_id": pool, "amount": amount, "lock_days": lock_days});
            sign_and_submit(ctx, &chain, &signer, "stake", body)
        }
        StakeCommand::Add {
            signer,
            position,
            amount,
            lock_days,
        } => {
            let chain = chain_info(ctx)?;
            let amount = asset_amount(ctx, &chain, None, &amount)?;
            let mut body = json!({"position_id": position, "amount": amount});
            if let Some(days) = lock_days {
                body["lock_days"] = json!(days);
            }
            sign_and_submit(ctx, &chain, &signer, "add_stake", body)
        }
        StakeCommand::Claim { signer, position } => {
            position_act(&signer, "claim_rewards", &position)
        }
        StakeCommand::Unstake { signer, position } => position_act(&signer, "unstake", &position),
        StakeCommand::Exit { signer, position } => position_act(&signer, "early_exit", &position),
        StakeCommand::Positions { owner } => match owner {
            Some(owner) => {
                let owner = resolve(ctx, &owner)?.to_string();
                print(ctx.get_with("/v1/positions", &[("owner", &owner)]))
            }
            None => print(ctx.get("/v1/positions")),
        },
    }
}
