//! `aitbc miner`: a remote miner node. It registers with the node (its key, its wgpu adapter's
//! report, its price and capacity), long-polls for work, runs each job on its GPU through the
//! `gpu` executor, and returns the result with its signed receipt. Every request is signed
//! (API.md's miner protocol). A result is kept until the node acknowledges it, and posting it
//! again is answered with the same receipt, so network errors and node restarts neither lose
//! nor duplicate a job.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow};
use base64::Engine;
use clap::Args;
use domain::hash::Hash32;
use domain::job::JobInput;
use domain::keys::SigningKey;
use domain::llm_job::LlmResult;
use http::models::LoadedModel;
use serde_json::{Value, json};

/// How long one poll waits for work.
const POLL_WAIT_S: u64 = 25;
/// Pause after a failed request.
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MinerArgs {
    #[command(subcommand)]
    command: Option<MinerCommand>,
    /// File holding the miner's secret key (64 hex); its address is where it is paid.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Price per second of GPU time, base units.
    #[arg(long, default_value = "1")]
    price_per_s: String,
    /// Price per generated token of an `llm_generate` job, base units.
    #[arg(long, default_value = "1")]
    price_per_token: String,
    /// Jobs run at once.
    #[arg(long, default_value_t = 1)]
    capacity: u32,
    /// Region advertised to clients' constraints.
    #[arg(long)]
    region: Option<String>,
    /// A language model (GGUF file) to run `llm_generate` jobs with; repeatable. The node must
    /// accept it too (`GET /v1/models`).
    #[arg(long = "model", value_name = "FILE")]
    models: Vec<PathBuf>,
    /// Stop after this many jobs (default: run until killed).
    #[arg(long)]
    jobs: Option<u64>,
    /// Testing only: return wrong results, to show that the platform catches them.
    #[arg(long, hide = true)]
    forge_results: bool,
    /// Testing only: wait this long after taking a job before running it (to be killed
    /// mid-job).
    #[arg(long, hide = true)]
    hold_ms: Option<u64>,
}

#[derive(clap::Subcommand)]
enum MinerCommand {
    /// The chain's miners: offers, reputation, online.
    Status,
}

/// A signing client of the miner protocol.
pub struct Client {
    node: String,
    chain: Option<String>,
    key: SigningKey,
    agent: ureq::Agent,
}

impl Client {
    /// A client for `node` signing with `key`.
    pub fn new(node: &str, chain: Option<String>, key: SigningKey) -> Client {
        Client {
            node: node.trim_end_matches('/').to_string(),
            chain,
            key,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(POLL_WAIT_S + 10))
                .build(),
        }
    }

    fn path(&self, path: &str) -> String {
        match &self.chain {
            None => path.to_string(),
            Some(chain) if path.contains('?') => format!("{path}&chain={chain}"),
            Some(chain) => format!("{path}?chain={chain}"),
        }
    }

    /// A signed request; `Err` for transport errors, `Ok((status, body))` otherwise.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON"));
        self.send(
            method,
            path,
            bytes.as_deref().map(|b| (b, "application/json")),
        )
    }

    /// A signed request whose body is `bytes` of a content type; `Err` for transport errors,
    /// `Ok((status, JSON body))` otherwise.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&[u8], &str)>,
    ) -> Result<(u16, Value), String> {
        let path = self.path(path);
        let bytes = body.map(|(bytes, _)| bytes);
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis();
        let digest = Hash32::digest(bytes.unwrap_or(&[]));
        let signed = format!("AITBC-REQ-V1\n{method}\n{path}\n{time_ms}\n{digest}");
        let request = self
            .agent
            .request(method, &format!("{}{path}", self.node))
            .set("X-AITBC-Key", &hex::encode(self.key.public_key()))
            .set("X-AITBC-Time", &time_ms.to_string())
            .set(
                "X-AITBC-Signature",
                &hex::encode(self.key.sign(signed.as_bytes())),
            );
        let result = match body {
            Some((bytes, content_type)) => {
                request.set("Content-Type", content_type).send_bytes(bytes)
            }
            None => request.call(),
        };
        match result {
            Ok(response) => Ok((
                response.status(),
                response.into_json().unwrap_or(Value::Null),
            )),
            Err(ureq::Error::Status(status, response)) => {
                Ok((status, response.into_json().unwrap_or(Value::Null)))
            }
            Err(ureq::Error::Transport(error)) => Err(error.to_string()),
        }
    }

    /// Retries `call` until the node answers (it may be restarting).
    pub fn call_until_answered(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        loop {
            match self.call(method, path, body) {
                Ok(answer) => return answer,
                Err(error) => {
                    eprintln!("miner: {method} {path}: {error}; retrying");
                    std::thread::sleep(RETRY_AFTER);
                }
            }
        }
    }
}

impl Client {
    /// Uploads a result too long to travel inline, retrying while the lease runs; whether it
    /// is stored.
    fn upload_until_stored(&self, result: &[u8], lease_until_ms: u64) -> bool {
        let body = Some((result, "application/octet-stream"));
        loop {
            match self.send("POST", "/v1/blobs", body) {
                Ok((200, _)) => return true,
                Ok((status, answer)) if status < 500 => {
                    eprintln!("miner: result upload refused ({status}): {answer}");
                    return false;
                }
                Ok((_, answer)) => eprintln!("miner: result upload: {answer}; retrying"),
                Err(error) => eprintln!("miner: result upload: {error}; retrying"),
            }
            if now_ms() >= lease_until_ms {
                return false;
            }
            std::thread::sleep(RETRY_AFTER);
        }
    }
}

/// The signed body of a job's result: the bytes (or, `in_blob`, the blob holding them), their
/// hash, the receipt signature.
pub fn result_body(
    key: &SigningKey,
    job_id: &str,
    result: &[u8],
    gpu_ms: u64,
    price: u128,
    in_blob: bool,
) -> Value {
    let hash = Hash32::digest(result);
    let receipt = format!("AITBC-RECEIPT-V1\n{job_id}\n{hash}\n{gpu_ms}\n{price}");
    let (field, value) = match in_blob {
        true => ("result_blob", json!(hash)),
        false => (
            "result_b64",
            json!(base64::engine::general_purpose::STANDARD.encode(result)),
        ),
    };
    json!({
        field: value,
        "result_hash": hash,
        "gpu_ms": gpu_ms,
        "price": price.to_string(),
        "receipt_signature": hex::encode(key.sign(receipt.as_bytes())),
    })
}

impl Client {
    /// The bytes of blob `hash` (blobs are public; the hash is checked).
    pub fn blob(&self, hash: &str) -> anyhow::Result<Vec<u8>> {
        let response = self
            .agent
            .get(&format!("{}/v1/blobs/{hash}", self.node))
            .call()
            .map_err(|e| anyhow!("blob {hash}: {e}"))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes)?;
        if Hash32::digest(&bytes).to_string() != hash {
            return Err(anyhow!("blob {hash} came back with other bytes"));
        }
        Ok(bytes)
    }
}

/// The language models a miner holds, by the SHA-256 of their files.
pub type Models = HashMap<Hash32, LoadedModel>;

/// The result bytes of a job, run on the executor (its blobs fetched from the node; an
/// `llm_generate` job with its model, before its lease runs out).
pub fn run_job(
    client: &Client,
    executor: &gpu::Executor,
    models: &Models,
    job: &Value,
) -> anyhow::Result<Vec<u8>> {
    let kind = job["job_kind"]
        .as_str()
        .ok_or_else(|| anyhow!("a job without a kind"))?;
    let input = JobInput::parse(kind, &job["input"].to_string())?;
    if let JobInput::LlmGenerate(request) = &input {
        let model = models
            .get(&request.model)
            .ok_or_else(|| anyhow!("model {} is not one of this miner's", request.model))?;
        let lease_left_ms = job["lease_until_ms"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(now_ms());
        return crate::kernels::generate(executor, model, request, lease_left_ms);
    }
    let blobs = input
        .blobs()
        .iter()
        .map(|hash| client.blob(&hash.to_string()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    crate::kernels::run(executor, &input, &blobs)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// What a miner asks for a job: its price per second for the (whole) seconds it ran, at least
/// one, never above the job's max price.
fn price_of(price_per_s: u128, gpu_ms: u64, max_price: u128) -> u128 {
    let seconds = u128::from(gpu_ms.div_ceil(1000).max(1));
    price_per_s.saturating_mul(seconds).min(max_price)
}

pub fn run(ctx: &crate::client::Context, args: MinerArgs) -> anyhow::Result<()> {
    if let Some(MinerCommand::Status) = args.command {
        return crate::client::print(ctx.get("/v1/miners"));
    }
    let key_file = args
        .key
        .clone()
        .ok_or_else(|| anyhow!("give the miner's key: aitbc miner --key FILE"))?;
    let text = std::fs::read_to_string(&key_file)
        .with_context(|| format!("cannot read the key file {}", key_file.display()))?;
    let key = SigningKey::from_hex(text.trim())
        .ok_or_else(|| anyhow!("{} does not hold a 64-hex secret key", key_file.display()))?;
    let price_per_s: u128 = args
        .price_per_s
        .parse()
        .map_err(|_| anyhow!("--price-per-s is base units"))?;
    let price_per_token: u128 = args
        .price_per_token
        .parse()
        .map_err(|_| anyhow!("--price-per-token is base units"))?;
    let (node, chain) = (ctx.node.as_str(), ctx.chain.clone());
    let mut models = Models::new();
    for path in &args.models {
        let model = LoadedModel::open(path).map_err(|e| anyhow!("--model: {e}"))?;
        eprintln!("miner: model {} is {}", path.display(), model.sha256);
        models.insert(model.sha256, model);
    }
    let executor = gpu::Executor::new().map_err(|e| anyhow!("no GPU adapter: {e}"))?;
    let adapter = executor.adapter().clone();
    let client = Client::new(node, chain, key);
    let offer = json!({
        "gpu": {"name": adapter.name, "backend": adapter.backend, "device_type": adapter.device_type},
        "price_per_s": args.price_per_s,
        "region": args.region,
        "capacity": args.capacity,
        "models": models.keys().collect::<Vec<_>>(),
        "price_per_token": (!models.is_empty()).then_some(&args.price_per_token),
    });
    let (status, answer) = client.call_until_answered("POST", "/v1/miners/register", Some(&offer));
    if status != 200 {
        return Err(anyhow!(
            "the node refused the registration ({status}): {answer}"
        ));
    }
    eprintln!(
        "miner {} registered on {} with {} ({})",
        client.key.address(),
        client.node,
        adapter.name,
        adapter.backend
    );
    let mut done = 0u64;
    while args.jobs.is_none_or(|jobs| done < jobs) {
        let poll = format!("/v1/miners/jobs?wait_s={POLL_WAIT_S}");
        let (status, answer) = client.call_until_answered("GET", &poll, None);
        if status == 404 {
            // The node lost nothing, but a fresh node may not know this miner: register again.
            client.call_until_answered("POST", "/v1/miners/register", Some(&offer));
            continue;
        }
        if status != 200 {
            eprintln!("miner: poll refused ({status}): {answer}");
            std::thread::sleep(RETRY_AFTER);
            continue;
        }
        let job = &answer["job"];
        if job.is_null() {
            continue;
        }
        let id = job["job_id"].as_str().unwrap_or_default().to_string();
        if let Some(hold_ms) = args.hold_ms {
            std::thread::sleep(Duration::from_millis(hold_ms));
        }
        let started = std::time::Instant::now();
        let mut result = match run_job(&client, &executor, &models, job) {
            Ok(result) => result,
            Err(error) => {
                eprintln!("miner: job {id} failed: {error}; its lease will run out");
                continue;
            }
        };
        if args.forge_results {
            let model = job["input"]["model"].as_str().and_then(|m| m.parse().ok());
            result = match model.and_then(|m: Hash32| models.get(&m)) {
                Some(model) => crate::kernels::forge_llm(model, &result),
                None => b"forged".to_vec(),
            };
        }
        let gpu_ms = started.elapsed().as_millis() as u64;
        let max_price: u128 = job["max_price"]
            .as_str()
            .unwrap_or("0")
            .parse()
            .unwrap_or(0);
        // Text generation is priced per generated token, the other kinds per second of GPU time.
        let price = match LlmResult::from_bytes(&result) {
            Some(generated) if job["job_kind"] == "llm_generate" => price_per_token
                .saturating_mul(generated.token_ids.len() as u128)
                .min(max_price),
            _ => price_of(price_per_s, gpu_ms, max_price),
        };
        let lease_until_ms = job["lease_until_ms"].as_u64().unwrap_or(0);
        let in_blob = result.len() > domain::job::RESULT_INLINE_MAX;
        if in_blob && !client.upload_until_stored(&result, lease_until_ms) {
            continue;
        }
        let body = result_body(&client.key, &id, &result, gpu_ms, price, in_blob);
        let path = format!("/v1/miners/jobs/{id}/result");
        let (status, answer) = loop {
            let (status, answer) = client.call_until_answered("POST", &path, Some(&body));
            // The node is busy or restarting (a request signed just before its start is refused):
            // the result, signed again, is worth retrying while the lease runs.
            if (status >= 500 || status == 401) && now_ms() < lease_until_ms {
                std::thread::sleep(RETRY_AFTER);
                continue;
            }
            break (status, answer);
        };
        match status {
            200 => eprintln!(
                "miner: job {id} done in {gpu_ms} ms, receipt {}",
                answer["receipt_id"]
            ),
            _ => eprintln!("miner: result of {id} refused ({status}): {answer}"),
        }
        done += 1;
    }
    Ok(())
}
