//! `aitbc store`: the operator's tools for a node's event log, run while the node is stopped.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Subcommand;
use serde_json::json;

use crate::client::print;

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Read and verify every record of the log; report its events, a torn tail (which the
    /// next start truncates) or damage (which keeps the node from starting). Changes nothing.
    Check {
        /// The node's data directory.
        #[arg(long, env = "AITBC_DATA_DIR", default_value = "aitbc-data")]
        data_dir: PathBuf,
    },
    /// Cut the log so that it ends before POSITION, which must start a group commit (`check`
    /// and the refusal name the nearest); the node rebuilds its read models on the next start.
    Truncate {
        /// The node's data directory.
        #[arg(long, env = "AITBC_DATA_DIR", default_value = "aitbc-data")]
        data_dir: PathBuf,
        /// The first log position to remove.
        #[arg(long)]
        at: u64,
    },
}

pub fn run(command: StoreCommand) -> anyhow::Result<()> {
    match command {
        StoreCommand::Check { data_dir } => {
            let report = store::check(&data_dir.join("store"))?;
            let damage = |d: &Option<store::LogDamage>| {
                d.as_ref()
                    .map(|d| json!({"file": d.file, "offset": d.offset, "reason": d.reason}))
            };
            let healthy = report.corrupt.is_none();
            print(Ok(json!({
                "segments": report.segments,
                "bytes": report.bytes,
                "events": report.events,
                "torn_tail": damage(&report.torn),
                "corrupt": damage(&report.corrupt),
            })))?;
            match healthy {
                true => Ok(()),
                false => Err(anyhow!("the log is damaged: the node will not start on it")),
            }
        }
        StoreCommand::Truncate { data_dir, at } => {
            let removed = store::truncate(&data_dir.join("store"), at)?;
            print(Ok(json!({"removed_events": removed, "next_position": at})))
        }
    }
}
