//! `aitbc job`: pay for a GPU job (its max price × redundancy is escrowed), follow it, take its
//! verified result, cancel it while queued.

use anyhow::anyhow;
use base64::Engine;
use clap::Subcommand;
use domain::money::DECIMALS;
use serde_json::{Value, json};

use crate::client::{Context, print};
use crate::wallet::{Signer, chain_info, parse_amount, sign_and_submit};

#[derive(Subcommand)]
pub enum JobCommand {
    /// Submit a job: `--sha256 HEX` (repeat for several messages), `--pow PREFIX_HEX` with
    /// `--difficulty-bits` and `--nonces`, a `PROMPT` with `--model` (text generation),
    /// or any kind as `--kind KIND --input JSON` (its blobs uploaded first with `aitbc blob put`).
    Submit(Box<SubmitArgs>),
    /// A job's state, leases, results, verification and payments.
    Status {
        /// The job id (its submit transaction's hash).
        job_id: String,
    },
    /// A completed job's verified result: hex, or its raw bytes into `--out FILE` (a result
    /// too long to travel inline is fetched from the blob store).
    Result {
        /// The job id.
        job_id: String,
        /// Write the raw bytes here.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Jobs, newest first: a client's (`--owner`), in a state (`--state`), of a kind (`--kind`).
    List {
        /// The client's address.
        #[arg(long)]
        owner: Option<String>,
        /// queued, assigned, running, completed, failed, expired or canceled.
        #[arg(long)]
        state: Option<String>,
        /// A job kind (sha256, pow, matmul, mlp_inference, wgsl).
        #[arg(long)]
        kind: Option<String>,
        /// Most jobs shown (1–1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// The language models this node's `llm_generate` jobs may name, and the miners holding each.
    Models,
    /// Cancel a queued job (the escrow comes back).
    Cancel {
        #[command(flatten)]
        signer: Signer,
        /// The job id.
        job_id: String,
    },
}

/// What `aitbc job submit` takes.
#[derive(clap::Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    signer: Signer,
    /// A message to hash (hex); repeat for a batch.
    #[arg(long = "sha256", conflicts_with_all = ["pow", "kind", "prompt"])]
    messages: Vec<String>,
    /// A job kind (sha256, pow, matmul, mlp_inference, wgsl, llm_generate), with `--input`.
    #[arg(long, requires = "input", conflicts_with_all = ["pow", "prompt"])]
    kind: Option<String>,
    /// Text for a language model (an `llm_generate` job), with `--model`: continued as is, or
    /// answered as a user's message with `--chat`.
    #[arg(value_name = "PROMPT", requires = "model", conflicts_with = "pow")]
    prompt: Option<String>,
    /// Frame the prompt as a user's message in the model's chat template.
    #[arg(long, requires = "prompt")]
    chat: bool,
    /// The model: its name or SHA-256 (`aitbc job models`).
    #[arg(long)]
    model: Option<String>,
    /// Most tokens generated (1–512).
    #[arg(long, default_value_t = 64)]
    max_tokens: u32,
    /// Sampling temperature (0: the most likely tokens), with `--seed`.
    #[arg(long)]
    temperature: Option<f64>,
    /// The sampler's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// The kind's input as JSON (API.md), or `@FILE` to read it from a file.
    #[arg(long, requires = "kind")]
    input: Option<String>,
    /// A proof-of-work prefix (hex).
    #[arg(long)]
    pow: Option<String>,
    /// Leading zero bits a proof of work needs.
    #[arg(long, default_value_t = 16)]
    difficulty_bits: u32,
    /// Nonces a proof of work searches, from 0.
    #[arg(long, default_value_t = 1 << 20)]
    nonces: u64,
    /// Most one miner is paid, like `0.001AIT` (base units with --base-units).
    #[arg(long, allow_hyphen_values = true)]
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
}

/// The SHA-256 of model `name_or_hash` (a name is looked up in `GET /v1/models`).
fn model_sha256(ctx: &Context, name_or_hash: &str) -> anyhow::Result<String> {
    if name_or_hash.parse::<domain::hash::Hash32>().is_ok() {
        return Ok(name_or_hash.to_string());
    }
    let listed = ctx.get("/v1/models")?;
    let models = listed["models"].as_array().cloned().unwrap_or_default();
    models
        .iter()
        .find(|m| m["name"] == name_or_hash)
        .and_then(|m| m["sha256"].as_str().map(str::to_string))
        .ok_or_else(|| {
            let names: Vec<_> = models.iter().filter_map(|m| m["name"].as_str()).collect();
            anyhow!("no model {name_or_hash:?} on this node (it has {names:?})")
        })
}

/// A job's input: JSON, or `@FILE` holding it.
fn parse_input(input: &str) -> anyhow::Result<Value> {
    let text = match input.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file).map_err(|e| anyhow!("reading {file}: {e}"))?,
        None => input.to_string(),
    };
    serde_json::from_str(&text).map_err(|e| anyhow!("--input is not JSON: {e}"))
}

pub fn run(ctx: &Context, command: JobCommand) -> anyhow::Result<()> {
    match command {
        JobCommand::Submit(args) => {
            let SubmitArgs {
                signer,
                messages,
                kind,
                input,
                prompt,
                chat,
                model,
                max_tokens,
                temperature,
                seed,
                pow,
                difficulty_bits,
                nonces,
                max_price,
                redundancy,
                deadline_s,
                verification,
            } = *args;
            let (job_kind, input) = match (pow, messages.is_empty(), kind.zip(input)) {
                (_, _, Some((kind, input))) => (kind, parse_input(&input)?),
                (None, true, None) if prompt.is_some() => {
                    let mut input = json!({
                        "model": model_sha256(ctx, model.as_deref().unwrap_or_default())?,
                        "max_tokens": max_tokens,
                    });
                    match chat {
                        true => {
                            input["messages"] = json!([{"role": "user", "content": prompt}]);
                        }
                        false => input["prompt"] = json!(prompt),
                    }
                    if let Some(temperature) = temperature {
                        input["temperature"] = json!(temperature);
                    }
                    if let Some(seed) = seed {
                        input["seed"] = json!(seed);
                    }
                    ("llm_generate".to_string(), input)
                }
                (Some(prefix), _, None) => (
                    "pow".to_string(),
                    json!({"prefix": prefix, "difficulty_bits": difficulty_bits,
                           "start_nonce": 0, "end_nonce": nonces}),
                ),
                (None, false, None) => ("sha256".to_string(), json!({ "messages": messages })),
                (None, true, None) => {
                    return Err(anyhow!(
                        "give --sha256 HEX (repeatable), --pow PREFIX, PROMPT --model NAME, \
                         or --kind KIND --input JSON"
                    ));
                }
            };
            let chain = chain_info(ctx)?;
            let max_price = parse_amount(&max_price, "AIT", DECIMALS, ctx.base_units)
                .map_err(|e| anyhow!("--max-price: {e:#}"))?;
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
        JobCommand::Models => print(ctx.get("/v1/models")),
        JobCommand::Status { job_id } => print(ctx.get(&format!("/v1/jobs/{job_id}"))),
        JobCommand::List {
            owner,
            state,
            kind,
            limit,
        } => {
            let limit = limit.to_string();
            let mut params = vec![("limit", limit.as_str())];
            let filters = [("owner", &owner), ("state", &state), ("job_kind", &kind)];
            for (name, value) in filters {
                if let Some(value) = value {
                    params.push((name, value.as_str()));
                }
            }
            print(ctx.get_with("/v1/jobs", &params))
        }
        JobCommand::Result { job_id, out } => {
            let result = ctx.get(&format!("/v1/jobs/{job_id}/result"))?;
            let hash = result["result_hash"].as_str().unwrap_or_default();
            let bytes = match result["result_blob"].as_str() {
                Some(blob) => ctx.get_bytes(&format!("/v1/blobs/{blob}"))?,
                None => base64::engine::general_purpose::STANDARD
                    .decode(result["result_b64"].as_str().unwrap_or(""))
                    .map_err(|_| anyhow!("the node sent a result that is not base64"))?,
            };
            if domain::hash::Hash32::digest(&bytes).to_string() != hash {
                return Err(anyhow!("the node sent other bytes than result {hash}"));
            }
            if let Some(out) = out {
                std::fs::write(&out, &bytes)
                    .map_err(|e| anyhow!("writing {}: {e}", out.display()))?;
                eprintln!("{} bytes written to {}", bytes.len(), out.display());
                return Ok(());
            }
            if let Some(generated) = domain::llm_job::LlmResult::from_bytes(&bytes) {
                return print(Ok(json!({
                    "job_id": result["job_id"],
                    "result_hash": result["result_hash"],
                    "text": generated.text,
                    "token_ids": generated.token_ids,
                })));
            }
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
