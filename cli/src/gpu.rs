//! `aitbc gpu info` and `aitbc gpu bench`: the wgpu executor's adapter and figures.

use crate::client::outln;
use anyhow::anyhow;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum GpuCommand {
    /// Print the compute adapter this machine offers (name, backend, type, driver, limits).
    Info {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run every kernel on the GPU and its CPU reference, and print the figures.
    Bench {
        /// Square matmul size N (N×N×N f32).
        #[arg(long)]
        matmul: Option<u32>,
        /// Messages in the SHA-256 batch.
        #[arg(long)]
        sha_messages: Option<u32>,
        /// Proof-of-work difficulty in leading zero bits.
        #[arg(long)]
        pow_bits: Option<u32>,
        /// MLP batch size.
        #[arg(long)]
        mlp_batch: Option<u32>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: GpuCommand) -> anyhow::Result<()> {
    match command {
        GpuCommand::Info { json } => {
            let report = gpu::info().map_err(|e| anyhow!("{e}"))?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                outln!("{report}");
            }
        }
        GpuCommand::Bench {
            matmul,
            sha_messages,
            pow_bits,
            mlp_batch,
            json,
        } => {
            let mut config = gpu::bench::BenchConfig::default();
            config.matmul_n = matmul.unwrap_or(config.matmul_n);
            config.sha_messages = sha_messages.unwrap_or(config.sha_messages);
            config.pow_bits = pow_bits.unwrap_or(config.pow_bits);
            config.mlp_batch = mlp_batch.unwrap_or(config.mlp_batch);
            let report = gpu::bench::run(&config).map_err(|e| anyhow!("{e}"))?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                outln!("{report}");
            }
        }
    }
    Ok(())
}
