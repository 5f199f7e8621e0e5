//! `aitbc blob`: upload a job's input (signed by a local wallet, within its quota) and fetch a
//! blob by its hash.

use std::path::PathBuf;

use anyhow::{Context as _, anyhow};
use clap::Subcommand;
use domain::hash::Hash32;

use crate::client::{Context, print};
use crate::keystore;
use crate::miner::Client;

#[derive(Subcommand)]
pub enum BlobCommand {
    /// Upload a file (at most 64 MiB; a funded account's quota applies); prints its hash.
    Put {
        /// The file.
        file: PathBuf,
        /// Local wallet that signs the upload.
        #[arg(long)]
        from: String,
        /// Read the passphrase from this file (else AITBC_PASSPHRASE, else a prompt).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Download a blob (checked against its hash) into a file.
    Get {
        /// The blob's hash.
        hash: String,
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(ctx: &Context, command: BlobCommand) -> anyhow::Result<()> {
    match command {
        BlobCommand::Put {
            file,
            from,
            passphrase_file,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            keystore::load(&ctx.keystore, &from)?;
            let passphrase = keystore::passphrase(passphrase_file.as_deref(), false)?;
            let key = keystore::unlock(&ctx.keystore, &from, &passphrase)?;
            let client = Client::new(&ctx.node, ctx.chain.clone(), key);
            let body = Some((bytes.as_slice(), "application/octet-stream"));
            let (status, answer) = client
                .send("POST", "/v1/blobs", body)
                .map_err(|e| anyhow!("cannot reach the node at {}: {e}", ctx.node))?;
            if status != 200 {
                let code = answer["error"]["code"].as_str().unwrap_or("error");
                let message = answer["error"]["message"].as_str().unwrap_or("");
                return Err(anyhow!(
                    "the node refused the upload ({status} {code}): {message}"
                ));
            }
            print(Ok(answer))
        }
        BlobCommand::Get { hash, out } => {
            let expected: Hash32 = hash
                .parse()
                .map_err(|_| anyhow!("a blob hash is 64 hex characters"))?;
            let bytes = ctx.get_bytes(&format!("/v1/blobs/{expected}"))?;
            if Hash32::digest(&bytes) != expected {
                return Err(anyhow!("the node sent other bytes than blob {expected}"));
            }
            std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            eprintln!("{} bytes written to {}", bytes.len(), out.display());
            Ok(())
        }
    }
}
