//! `aitbc agent`: agent wallets: register (signed by the agent's own wallet), and its owner's
//! management (strategy and auto-voting, caller keys, emergency stop), and the reads.

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::{Context, print};
use crate::wallet::{Signer, chain_info, resolve, sign_and_submit};

/// The roles.
const ROLES: [&str; 4] = ["provider", "consumer", "builder", "coordinator"];

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Register the `--from` wallet as an agent with a role and an owner.
    Register {
        #[command(flatten)]
        signer: Signer,
        /// Its role.
        #[arg(long, value_parser = ROLES)]
        role: String,
        /// The wallet that manages it (address or local wallet name).
        #[arg(long)]
        owner: String,
    },
    /// Set an agent's voting strategy and auto-voting (sent by its owner). Strategies:
    /// `{"type":"role_preference","preferences":{"treasury":200},"threshold":128}`,
    /// `{"type":"fixed","votes":{"treasury":"for"}}`, `{"type":"follow","address":"ait1…"}`,
    /// `{"type":"abstain"}`.
    Configure {
        #[command(flatten)]
        signer: Signer,
        /// The agent (address or local wallet name).
        agent: String,
        /// The strategy as JSON.
        #[arg(long, default_value = r#"{"type":"role_preference"}"#)]
        strategy: String,
        /// Whether it votes by itself when a proposal becomes active.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        auto_vote: bool,
    },
    /// Authorize or revoke a key that may sign for an agent (sent by its owner).
    Callers {
        #[command(flatten)]
        signer: Signer,
        /// add or remove.
        #[arg(value_parser = ["add", "remove"])]
        change: String,
        /// The agent (address or local wallet name).
        agent: String,
        /// The caller's Ed25519 public key, 64 hex.
        public_key: String,
    },
    /// Halt every autonomous action of an agent at once (sent by its owner).
    Stop {
        #[command(flatten)]
        signer: Signer,
        /// The agent (address or local wallet name).
        agent: String,
    },
    /// Resume a stopped agent (sent by its owner).
    Reactivate {
        #[command(flatten)]
        signer: Signer,
        /// The agent (address or local wallet name).
        agent: String,
    },
    /// Show an agent: role, owner, callers, reputation, strategy, active.
    Show {
        /// The agent (address or local wallet name).
        agent: String,
    },
    /// List the agents of the chain.
    List {
        /// Only of this role.
        #[arg(long, value_parser = ROLES)]
        role: Option<String>,
    },
}

pub fn run(ctx: &Context, command: AgentCommand) -> anyhow::Result<()> {
    match command {
        AgentCommand::Register {
            signer,
            role,
            owner,
        } => {
            let chain = chain_info(ctx)?;
            let body = json!({"role": role, "owner": resolve(ctx, &owner)?});
            sign_and_submit(ctx, &chain, &signer, "register_agent", body)
        }
        AgentCommand::Configure {
            signer,
            agent,
            strategy,
            auto_vote,
        } => {
            let chain = chain_info(ctx)?;
            let strategy: Value =
                serde_json::from_str(&strategy).context("--strategy is not JSON")?;
            let body = json!({
                "agent": resolve(ctx, &agent)?,
                "strategy": strategy,
                "auto_vote": auto_vote,
            });
            sign_and_submit(ctx, &chain, &signer, "configure_agent", body)
        }
        AgentCommand::Callers {
            signer,
            change,
            agent,
            public_key,
        } => {
            let chain = chain_info(ctx)?;
            let kind = format!("{change}_caller");
            let body = json!({"agent": resolve(ctx, &agent)?, "public_key": public_key});
            sign_and_submit(ctx, &chain, &signer, &kind, body)
        }
        AgentCommand::Stop { signer, agent } => {
            let chain = chain_info(ctx)?;
            let body = json!({"agent": resolve(ctx, &agent)?});
            sign_and_submit(ctx, &chain, &signer, "agent_stop", body)
        }
        AgentCommand::Reactivate { signer, agent } => {
            let chain = chain_info(ctx)?;
            let body = json!({"agent": resolve(ctx, &agent)?});
            sign_and_submit(ctx, &chain, &signer, "agent_reactivate", body)
        }
        AgentCommand::Show { agent } => {
            let address = resolve(ctx, &agent)?;
            print(ctx.get(&format!("/v1/agents/{address}")))
        }
        AgentCommand::List { role } => match role {
            Some(role) => print(ctx.get(&format!("/v1/agents?role={role}"))),
            None => print(ctx.get("/v1/agents")),
        },
    }
}
