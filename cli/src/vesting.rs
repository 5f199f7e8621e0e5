//! `aitbc vesting`: lock tokens for a beneficiary, claim what has vested, show schedules.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::{Context, print};
use crate::wallet::{Signer, asset_amount, chain_info, resolve, sign_and_submit};

#[derive(Subcommand)]
pub enum VestingCommand {
    /// Lock tokens of a local wallet for a beneficiary: nothing vests before the cliff, then
    /// linearly from now until the end.
    Create {
        #[command(flatten)]
        signer: Signer,
        /// Who may claim (address or local wallet name).
        #[arg(long)]
        beneficiary: String,
        /// Amount: tokens like `100AIT` / `50USDX` (base units with --base-units).
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// Asset (default: the native one).
        #[arg(long)]
        asset: Option<String>,
        /// Seconds from now before anything vests.
        #[arg(long, default_value_t = 0)]
        cliff_s: u64,
        /// Seconds from now until everything has vested.
        #[arg(long)]
        duration_s: u64,
    },
    /// Claim what has vested on a schedule (signed by its beneficiary).
    Claim {
        #[command(flatten)]
        signer: Signer,
        /// The schedule: the hash of the transaction that created it.
        vesting_id: String,
    },
    /// Show the schedules of an account (address or local wallet name).
    Show { account: String },
}

pub fn run(ctx: &Context, command: VestingCommand) -> anyhow::Result<()> {
    match command {
        VestingCommand::Create {
            signer,
            beneficiary,
            amount,
            asset,
            cliff_s,
            duration_s,
        } => {
            let chain = chain_info(ctx)?;
            let beneficiary = resolve(ctx, &beneficiary)?;
            let value = asset_amount(ctx, &chain, asset.as_deref(), &amount)?;
            let mut body = json!({
                "beneficiary": beneficiary,
                "amount": value,
                "cliff_s": cliff_s,
                "duration_s": duration_s,
            });
            if let Some(asset) = asset {
                body["asset"] = json!(asset);
            }
            sign_and_submit(ctx, &chain, &signer, "create_vesting", body)
        }
        VestingCommand::Claim { signer, vesting_id } => {
            let chain = chain_info(ctx)?;
            let body = json!({"vesting_id": vesting_id});
            sign_and_submit(ctx, &chain, &signer, "claim_vested", body)
        }
        VestingCommand::Show { account } => {
            let address = resolve(ctx, &account)?;
            let account = ctx.get(&format!("/v1/accounts/{address}"))?;
            print(Ok(json!({
                "address": address,
                "vesting": account.get("vesting").cloned().unwrap_or(Value::Array(vec![])),
            })))
        }
    }
}
