//! `aitbc gov`: OpenClawDAO proposals from the command line: propose, vote, challenge and
//! resolve, council approval, queue and execute, cancel, the council's pauses, and the reads
//! (show, list, power, params).

use anyhow::{Context as _, anyhow};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::{Context, print};
use crate::wallet::{Signer, chain_info, resolve, sign_and_submit};

/// The proposal types.
const TYPES: [&str; 6] = [
    "parameter_change",
    "protocol_upgrade",
    "treasury",
    "emergency",
    "agent_trading",
    "dao_grants",
];
/// The proposal states.
const STATES: [&str; 9] = [
    "pending",
    "active",
    "defeated",
    "succeeded",
    "queued",
    "executed",
    "expired",
    "canceled",
    "rejected",
];
/// Modules a pause can stop.
const MODULES: [&str; 5] = ["transfers", "governance", "staking", "jobs", "markets"];

/// A proposal named on the command line.
#[derive(Args)]
pub struct Target {
    #[command(flatten)]
    signer: Signer,
    /// The proposal id (the hash of its `propose` transaction).
    proposal_id: String,
}

#[derive(Subcommand)]
pub enum GovCommand {
    /// Create a proposal (locks the proposal bond; needs the proposal threshold of voting
    /// power at this moment). Actions are JSON, e.g.
    /// `--action '{"action":"set_parameter","name":"quorum_bps","value":500}'` or
    /// `--action '{"action":"pay","to":"ait1…","amount":"1000000000000000000"}'`.
    Propose {
        #[command(flatten)]
        signer: Signer,
        /// The proposal type.
        #[arg(long = "type", value_parser = TYPES)]
        proposal_type: String,
        /// Short title.
        #[arg(long)]
        title: String,
        /// What and why.
        #[arg(long, default_value = "")]
        description: String,
        /// An action as JSON (repeat for several).
        #[arg(long = "action")]
        actions: Vec<String>,
        /// A file holding the JSON array of actions.
        #[arg(long, conflicts_with = "actions")]
        actions_file: Option<std::path::PathBuf>,
    },
    /// Vote on an active proposal, with your voting power at its snapshot.
    Vote {
        #[command(flatten)]
        target: Target,
        /// for, against or abstain.
        #[arg(value_parser = ["for", "against", "abstain"])]
        support: String,
    },
    /// Challenge a pending proposal (locks the challenge bond; the council resolves it).
    Challenge {
        #[command(flatten)]
        target: Target,
        /// Why the proposal should be rejected.
        #[arg(long)]
        reason: String,
    },
    /// A council member's resolution of a proposal's open challenge.
    Resolve {
        #[command(flatten)]
        target: Target,
        /// Uphold the challenge (reject the proposal); without it, dismiss the challenge.
        #[arg(long)]
        uphold: bool,
    },
    /// A council member's approval of a protocol upgrade or an emergency proposal.
    Approve(Target),
    /// Start the timelock of a succeeded proposal.
    Queue(Target),
    /// Run the actions of a queued proposal whose timelock has passed.
    Execute(Target),
    /// Withdraw your proposal before voting starts (the bond comes back).
    Cancel(Target),
    /// A council member's approval to pause a module at once (same as `council pause`).
    Pause {
        #[command(flatten)]
        signer: Signer,
        /// The module.
        #[arg(value_parser = MODULES)]
        module: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// A council member's approval to resume a paused module.
    Unpause {
        #[command(flatten)]
        signer: Signer,
        /// The module.
        #[arg(value_parser = MODULES)]
        module: String,
    },
    /// Show a proposal with its votes.
    Show {
        /// The proposal id.
        proposal_id: String,
    },
    /// List proposals, newest first.
    List {
        /// Only in this state.
        #[arg(long, value_parser = STATES)]
        state: Option<String>,
        /// Only of this type.
        #[arg(long = "type", value_parser = TYPES)]
        proposal_type: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Voting power of an account (address or wallet name): at a proposal's snapshot, or for a
    /// snapshot taken now.
    Power {
        /// Address or local wallet name.
        account: String,
        /// The proposal whose snapshot counts.
        #[arg(long)]
        proposal: Option<String>,
    },
    /// The governance parameters in force, with their ranges, the council and the version.
    Params,
}

fn actions_of(actions: Vec<String>, file: Option<std::path::PathBuf>) -> anyhow::Result<Value> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        return serde_json::from_str(&text)
            .with_context(|| format!("{} is not a JSON array of actions", file.display()));
    }
    if actions.is_empty() {
        return Err(anyhow!("give at least one --action or an --actions-file"));
    }
    let parsed: Result<Vec<Value>, _> = actions.iter().map(|a| serde_json::from_str(a)).collect();
    Ok(Value::Array(parsed.context("an --action is not JSON")?))
}

fn act(ctx: &Context, target: Target, kind: &str, mut body: Value) -> anyhow::Result<()> {
    let chain = chain_info(ctx)?;
    body["proposal_id"] = json!(target.proposal_id);
    sign_and_submit(ctx, &chain, &target.signer, kind, body)
}

pub fn run(ctx: &Context, command: GovCommand) -> anyhow::Result<()> {
    match command {
        GovCommand::Propose {
            signer,
            proposal_type,
            title,
            description,
            actions,
            actions_file,
        } => {
            let chain = chain_info(ctx)?;
            let body = json!({
                "proposal_type": proposal_type,
                "title": title,
                "description": description,
                "actions": actions_of(actions, actions_file)?,
            });
            sign_and_submit(ctx, &chain, &signer, "propose", body)
        }
        GovCommand::Vote { target, support } => {
            act(ctx, target, "vote", json!({"support": support}))
        }
        GovCommand::Challenge { target, reason } => {
            act(ctx, target, "challenge", json!({"reason": reason}))
        }
        GovCommand::Resolve { target, uphold } => {
            act(ctx, target, "resolve_challenge", json!({"uphold": uphold}))
        }
        GovCommand::Approve(target) => act(ctx, target, "council_approve", json!({})),
        GovCommand::Queue(target) => act(ctx, target, "queue", json!({})),
        GovCommand::Execute(target) => act(ctx, target, "execute", json!({})),
        GovCommand::Cancel(target) => act(ctx, target, "cancel_proposal", json!({})),
        GovCommand::Pause {
            signer,
            module,
            reason,
        } => {
            let chain = chain_info(ctx)?;
            let body = json!({"module": module, "reason": reason});
            sign_and_submit(ctx, &chain, &signer, "council_pause", body)
        }
        GovCommand::Unpause { signer, module } => {
            let chain = chain_info(ctx)?;
            let body = json!({"module": module});
            sign_and_submit(ctx, &chain, &signer, "council_unpause", body)
        }
        GovCommand::Show { proposal_id } => {
            let proposal = ctx.get(&format!("/v1/proposals/{proposal_id}"))?;
            let votes = ctx.get(&format!("/v1/proposals/{proposal_id}/votes"))?;
            print(Ok(json!({"proposal": proposal, "votes": votes["votes"]})))
        }
        GovCommand::List {
            state,
            proposal_type,
            limit,
        } => {
            let mut path = format!("/v1/proposals?limit={limit}");
            if let Some(state) = state {
                path.push_str(&format!("&state={state}"));
            }
            if let Some(proposal_type) = proposal_type {
                path.push_str(&format!("&proposal_type={proposal_type}"));
            }
            print(ctx.get(&path))
        }
        GovCommand::Power { account, proposal } => {
            let address = resolve(ctx, &account)?;
            match proposal {
                Some(id) => print(ctx.get(&format!("/v1/proposals/{id}/power/{address}"))),
                None => print(ctx.get(&format!("/v1/accounts/{address}/power"))),
            }
        }
        GovCommand::Params => print(ctx.get("/v1/governance/params")),
    }
}
