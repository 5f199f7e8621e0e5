//! `aitbc council`: a council member's approvals to pause or resume a module, and the council's
//! state with the modules' pauses.

use clap::Subcommand;
use serde_json::json;

use crate::client::{Context, print};
use crate::wallet::{Signer, chain_info, sign_and_submit};

/// Modules a pause can stop.
const MODULES: [&str; 5] = ["transfers", "governance", "staking", "jobs", "markets"];

#[derive(Subcommand)]
pub enum CouncilCommand {
    /// Approve pausing a module (it pauses once the council's threshold approved; a pause of a
    /// paused module renews it).
    Pause {
        #[command(flatten)]
        signer: Signer,
        /// The module.
        #[arg(value_parser = MODULES)]
        module: String,
        /// Why (shown to everyone at `GET /v1/modules`).
        #[arg(long)]
        reason: String,
    },
    /// Approve resuming a paused module.
    Unpause {
        #[command(flatten)]
        signer: Signer,
        /// The module.
        #[arg(value_parser = MODULES)]
        module: String,
    },
    /// Show the council, the approvals short of the threshold and every module's pause state.
    Show,
}

pub fn run(ctx: &Context, command: CouncilCommand) -> anyhow::Result<()> {
    match command {
        CouncilCommand::Pause {
            signer,
            module,
            reason,
        } => {
            let chain = chain_info(ctx)?;
            let body = json!({"module": module, "reason": reason});
            sign_and_submit(ctx, &chain, &signer, "council_pause", body)
        }
        CouncilCommand::Unpause { signer, module } => {
            let chain = chain_info(ctx)?;
            sign_and_submit(
                ctx,
                &chain,
                &signer,
                "council_unpause",
                json!({"module": module}),
            )
        }
        CouncilCommand::Show => {
            let council = ctx.get("/v1/council")?;
            let modules = ctx.get("/v1/modules")?;
            print(Ok(json!({
                "council": council,
                "modules": modules["modules"],
            })))
        }
    }
}
