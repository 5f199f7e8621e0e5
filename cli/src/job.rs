//! `aitbc job`: pay for a GPU job (its max price × redundancy is escrowed), follow it, take its
//! verified result, cancel it while queued.

use anyhow::anyhow;
use base64::Engine;
use clap::Subcommand;
use serde_json::json;

use crate::client::{Context, print};
use crate::wallet::{Signer, chain_info, sign_and_submit};

#[derive(Subcommand)]
pub enum JobCommand {
    /// Submit a job: `--sha256 HEX` (repeat for several messages) or `--pow PREFIX_HEX` with
    /// `--difficulty-bits` and `--nonces`.
    Submit {
        #[command(flatten)]
        signer: Signer,
        /// A message to hash (hex); repeat for a batch.
        #[arg(long = "sha256", conflicts_with = "pow")]
        messages: Vec<String>,
        /// A proof-of-work prefix (hex).
        #[arg(long)]
        pow: Option<String>,
        /// Leading zero bits a proof of work needs.
        #[arg(long, default_value_t = 16)]
        difficulty_bits: u32,
        /// Nonces a proof of work searches, from 0.
        #[arg(long, default_value_t = 1 << 20)]
        nonces: u64,
        /// Most one miner is paid, base units.
        #[arg(long)]
        max_price: String,
        /// Distinct miners that must agree (1–3).
        #[arg(long, default_value_t = 1)]
        redundancy: u8,
        /// Seconds until the job expires and is refunded.
        #[arg(long, default_value_t = 600)]
        deadline_s: u64,
        /// `sampled` (the platform re-executes a share) or `always`.
        #[arg(long, default_value = "sampled", value_parser = ["sampled", "always"])]
        verification: String,
    },
    /// A job's state, leases, results, verification and payments.
    Status {
        /// The job id (its submit transaction's hash).
        job_id: String,
    },
    /// A completed job's verified result (hex).
    Result {
        /// The job id.
        job_id: String,
    },
    /// Cancel a queued job (the escrow comes back).
    Cancel {
        #[command(flatten)]
        signer: Signer,
        /// The job id.
        job_id: String,
    },
}

pub fn run(ctx: &Context, command: JobCommand) -> anyhow::Result<()> {
    match command {
        JobCommand::Submit {
            signer,
            messages,
            pow,
            difficulty_bits,
            nonces,
            max_price,
            redundancy,
            deadline_s,
            verification,
        } => {
            let (job_kind, input) = match (pow, messages.is_empty()) {
                (Some(prefix), _) => (
                    "pow",
                    json!({"prefix": prefix, "difficulty_bits": difficulty_bits,
                           "start_nonce": 0, "end_nonce": nonces}),
                ),
                (None, false) => ("sha256", json!({ "messages": messages })),
                (None, true) => {
                    return Err(anyhow!("give --sha256 HEX (repeatable) or --pow PREFIX"));
                }
            };
            let chain = chain_info(ctx)?;
            let body = json!({
                "job_kind": job_kind,
                "input": input,
                "max_price": max_price,
                "redundancy": redundancy,
                "deadline_s": deadline_s,
                "verification": verification,
            });
            sign_and_submit(ctx, &chain, &signer, "submit_job", body)
        }
        JobCommand::Status { job_id } => print(ctx.get(&format!("/v1/jobs/{job_id}"))),
        JobCommand::Result { job_id } => {
            let result = ctx.get(&format!("/v1/jobs/{job_id}/result"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(result["result_b64"].as_str().unwrap_or(""))
                .map_err(|_| anyhow!("the node sent a result that is not base64"))?;
            print(Ok(json!({
                "job_id": result["job_id"],
                "result_hash": result["result_hash"],
                "result_hex": hex::encode(bytes),
            })))
        }
        JobCommand::Cancel { signer, job_id } => {
            let chain = chain_info(ctx)?;
            sign_and_submit(
                ctx,
                &chain,
                &signer,
                "cancel_job",
                json!({ "job_id": job_id }),
            )
        }
    }
}
