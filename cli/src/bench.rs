//! `aitbc bench transfers`: a load generator that signs transfers up front and sends them over
//! HTTP with N concurrent connections, then prints committed transfers/s and latency
//! percentiles. Every transfer counted was answered `committed` by the node.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use clap::Subcommand;
use domain::address::Address;
use domain::keys::SigningKey;
use domain::money::Amount;
use domain::tx::{TxPayload, sign_payload};
use serde_json::json;

use crate::client::Context;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Signed transfers over HTTP.
    Transfers {
        /// Concurrent connections (one sender account each).
        #[arg(long, default_value_t = 256)]
        connections: usize,
        /// Transfers in total.
        #[arg(long, default_value_t = 50_000)]
        transfers: usize,
        /// Send every transfer to a new account (measures memory per account), instead of to
        /// the next sender.
        #[arg(long)]
        new_accounts: bool,
        /// Another node serving the same chain (one log on a NATS cluster), repeatable: the
        /// connections are spread over `--node` and these, each sender on one node.
        #[arg(long = "also", value_name = "URL")]
        also: Vec<String>,
    },
    /// Signed `stake` transactions over HTTP, a kind that crosses aggregates: each debits its
    /// sender's wallet, credits the staking account and opens a position in the chain's staking
    /// aggregate (the smallest stake the chain's first pool takes, for its shortest lock).
    /// Connections and output as `transfers`.
    Stakes {
        /// Concurrent connections (one staker account each).
        #[arg(long, default_value_t = 256)]
        connections: usize,
        /// Stakes in total.
        #[arg(long, default_value_t = 50_000)]
        stakes: usize,
    },
    /// Small `sha256` jobs end to end: submitted by a client, run by miners in this process on
    /// this machine's GPU adapter, verified and paid by the node. Prints jobs/s and the
    /// submit → assigned latency.
    Jobs {
        /// Jobs in total.
        #[arg(long, default_value_t = 200)]
        jobs: usize,
        /// Miners (threads, each its own key and connection).
        #[arg(long, default_value_t = 2)]
        miners: usize,
    },
}

pub fn run(ctx: &Context, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Transfers {
            connections,
            transfers,
            new_accounts,
            also,
        } => {
            let workload = match new_accounts {
                true => Workload::TransfersToNewAccounts,
                false => Workload::Transfers,
            };
            transfers_bench(ctx, connections, transfers, workload, &also)
        }
        BenchCommand::Stakes {
            connections,
            stakes,
        } => {
            let pools = ctx.get("/v1/pools")?;
            let pool = pools["pools"]
                .get(0)
                .ok_or_else(|| anyhow!("the chain has no staking pool"))?;
            let workload = Workload::Stakes {
                pool_id: pool["id"].as_str().unwrap_or_default().to_string(),
                amount: pool["min_stake"]
                    .as_str()
                    .unwrap_or("0")
                    .parse()
                    .map_err(|_| anyhow!("bad min_stake"))?,
                lock_days: pool["min_lock_days"].as_u64().unwrap_or(0) as u32,
            };
            transfers_bench(ctx, connections, stakes, workload, &[])
        }
        BenchCommand::Jobs { jobs, miners } => jobs_bench(ctx, jobs, miners),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// What each signed transaction of a run does.
enum Workload {
    /// 1 base unit to the next sender.
    Transfers,
    /// 1 base unit to an address no key holds, a new one each time.
    TransfersToNewAccounts,
    /// A new stake position.
    Stakes {
        pool_id: String,
        amount: Amount,
        lock_days: u32,
    },
}

impl Workload {
    /// Base units each transaction takes from its sender besides the fee.
    fn outflow(&self) -> u128 {
        match self {
            Workload::Transfers | Workload::TransfersToNewAccounts => 1,
            Workload::Stakes { amount, .. } => amount.0,
        }
    }

    /// The payload of sender `i`'s transaction `nonce` (`next`: the next sender's address).
    fn payload(
        &self,
        chain_id: &str,
        key: &SigningKey,
        i: usize,
        nonce: u64,
        fee: Amount,
        next: Address,
    ) -> TxPayload {
        match self {
            Workload::Transfers => {
                TxPayload::transfer(chain_id, key.address(), nonce, fee, next, Amount(1))
            }
            Workload::TransfersToNewAccounts => {
                let to = Address::module(&format!("bench/{i}/{nonce}"));
                TxPayload::transfer(chain_id, key.address(), nonce, fee, to, Amount(1))
            }
            Workload::Stakes {
                pool_id,
                amount,
                lock_days,
            } => TxPayload {
                chain_id: chain_id.to_string(),
                sender: key.address(),
                nonce,
                fee,
                kind: "stake".to_string(),
                body: json!({"pool_id": pool_id, "amount": amount, "lock_days": lock_days}),
            },
        }
    }

    fn noun(&self) -> &'static str {
        match self {
            Workload::Stakes { .. } => "stakes",
            _ => "transfers",
        }
    }
}

fn transfers_bench(
    ctx: &Context,
    connections: usize,
    transfers: usize,
    workload: Workload,
    also: &[String],
) -> anyhow::Result<()> {
    if connections == 0 || connections > 4096 || transfers < connections {
        bail!("need 1..=4096 connections and at least one transfer per connection");
    }
    let chains = ctx.get("/v1/chains")?;
    let chain = match &ctx.chain {
        Some(id) => chains["chains"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["chain_id"] == id.as_str()))
            .cloned(),
        None => chains["chains"].get(0).cloned(),
    }
    .ok_or_else(|| anyhow!("chain not found on the node"))?;
    let chain_id = chain["chain_id"].as_str().unwrap_or_default().to_string();
    let fee: Amount = chain["min_fee"]
        .as_str()
        .unwrap_or("0")
        .parse()
        .map_err(|_| anyhow!("bad min_fee"))?;
    let per_sender = transfers.div_ceil(connections);
    let keys: Vec<SigningKey> = (0..connections)
        .map(|_| SigningKey::generate().map_err(|e| anyhow!("{e}")))
        .collect::<Result<_, _>>()?;

    eprintln!("funding {connections} senders from the faucet...");
    let funding = Amount((workload.outflow() + fee.0) * per_sender as u128 + 1);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let handles: Vec<_> = keys
            .chunks(connections.div_ceil(16))
            .map(|chunk| {
                let chain_id = chain_id.clone();
                scope.spawn(move || -> anyhow::Result<()> {
                    for key in chunk {
                        ctx.post("/v1/faucet", &json!({"address": key.address(), "amount": funding, "chain_id": chain_id}))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow!("funding thread panicked"))??;
        }
        Ok(())
    })?;

    let noun = workload.noun();
    eprintln!("signing {} {noun}...", per_sender * connections);
    let bodies: Vec<Vec<String>> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let next = keys[(i + 1) % connections].address();
            (0..per_sender as u64)
                .map(|nonce| {
                    let payload = workload.payload(&chain_id, key, i, nonce, fee, next);
                    serde_json::to_string(&sign_payload(key, &payload)).expect("serializes")
                })
                .collect()
        })
        .collect();

    eprintln!("sending with {connections} connections...");
    let addresses: Vec<&str> = std::iter::once(ctx.node.as_str())
        .chain(also.iter().map(String::as_str))
        .map(|url| {
            url.strip_prefix("http://")
                .ok_or_else(|| anyhow!("the load generator speaks plain http:// only: {url}"))
        })
        .collect::<Result<_, _>>()?;
    // Connection i (sender i) goes to node i mod n.
    let requests: Vec<(String, Vec<Vec<u8>>)> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, bodies)| {
            let address = addresses[i % addresses.len()];
            let requests = bodies
                .iter()
                .map(|body| raw::post_request(address, "/v1/transactions", body))
                .collect();
            (address.to_string(), requests)
        })
        .collect();
    let barrier = Arc::new(Barrier::new(connections + 1));
    let workers: Vec<_> = requests
        .into_iter()
        .map(|(address, requests)| {
            let barrier = barrier.clone();
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut latencies = Vec::with_capacity(requests.len());
                    let mut errors = 0usize;
                    let connection = raw::Connection::open(&address);
                    barrier.wait();
                    let Ok(mut connection) = connection else {
                        return (latencies, requests.len());
                    };
                    for request in &requests {
                        let started = Instant::now();
                        match connection.exchange(request) {
                            Ok(200) => latencies.push(started.elapsed()),
                            Ok(_) => errors += 1,
                            Err(_) => {
                                errors += 1;
                                match raw::Connection::open(&address) {
                                    Ok(fresh) => connection = fresh,
                                    Err(_) => break,
                                }
                            }
                        }
                    }
                    (latencies, errors)
                })
                .map_err(|e| anyhow!("cannot start a connection thread: {e}"))
        })
        .collect::<Result<_, _>>()?;
    barrier.wait();
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (mut l, e) = worker
            .join()
            .map_err(|_| anyhow!("connection thread panicked"))?;
        latencies.append(&mut l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let committed = latencies.len();
    println!(
        "bench {noun}: chain {chain_id}, {connections} connections, node {}",
        std::iter::once(&ctx.node)
            .chain(also)
            .cloned()
            .collect::<Vec<_>>()
            .join(" + ")
    );
    println!(
        "  committed:   {committed} {noun} ({errors} errors) in {:.2} s",
        elapsed.as_secs_f64()
    );
    println!(
        "  throughput:  {:.0} committed {noun}/s",
        committed as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  latency:     p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    if errors > 0 {
        bail!("{errors} {noun} failed");
    }
    Ok(())
}

/// A minimal HTTP/1.1 keep-alive client: requests are built before the clock starts, so the
/// generator spends its share of the two cores on sending, not on a general-purpose client.
mod raw {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;

    /// The bytes of a `POST path` with a JSON body.
    pub fn post_request(host: &str, path: &str, body: &str) -> Vec<u8> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        [head.as_bytes(), body.as_bytes()].concat()
    }

    pub struct Connection {
        writer: TcpStream,
        reader: BufReader<TcpStream>,
        line: String,
        body: Vec<u8>,
    }

    impl Connection {
        pub fn open(address: &str) -> std::io::Result<Connection> {
            let stream = TcpStream::connect(address)?;
            stream.set_nodelay(true)?;
            Ok(Connection {
                reader: BufReader::new(stream.try_clone()?),
                writer: stream,
                line: String::new(),
                body: Vec::new(),
            })
        }

        /// Sends one request and reads the whole response; returns its status code.
        pub fn exchange(&mut self, request: &[u8]) -> std::io::Result<u16> {
            let bad =
                |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
            self.writer.write_all(request)?;
            self.line.clear();
            self.reader.read_line(&mut self.line)?;
            let status: u16 = self
                .line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("status line"))?;
            let mut length = 0usize;
            loop {
                self.line.clear();
                if self.reader.read_line(&mut self.line)? == 0 {
                    return Err(bad("connection closed"));
                }
                let header = self.line.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().map_err(|_| bad("content-length"))?;
                }
            }
            self.body.resize(length, 0);
            self.reader.read_exact(&mut self.body)?;
            Ok(status)
        }
    }
}

/// `bench jobs`: one client submits `jobs` small sha256 jobs back to back while `miners` miner
/// threads take, run and return them; the node verifies and pays each.
fn jobs_bench(ctx: &Context, jobs: usize, miners: usize) -> anyhow::Result<()> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    if jobs == 0 || !(1..=64).contains(&miners) {
        bail!("need at least one job and 1..=64 miners");
    }
    let chains = ctx.get("/v1/chains")?;
    let chain_id = match &ctx.chain {
        Some(id) => id.clone(),
        None => chains["default_chain"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };
    let executor = gpu::Executor::new().map_err(|e| anyhow!("no GPU adapter: {e}"))?;
    let client = SigningKey::generate().map_err(|e| anyhow!("{e}"))?;
    ctx.post(
        "/v1/faucet",
        &json!({"address": client.address(), "amount": ((jobs as u128) * 1_000).to_string(), "chain_id": chain_id}),
    )?;
    let keys: Vec<SigningKey> = (0..miners)
        .map(|_| SigningKey::generate().map_err(|e| anyhow!("{e}")))
        .collect::<Result<_, _>>()?;
    let offer = json!({
        "gpu": {"name": executor.adapter().name, "backend": executor.adapter().backend,
                "device_type": executor.adapter().device_type},
        "price_per_s": "1", "capacity": 1,
    });
    for key in &keys {
        let miner = crate::miner::Client::new(&ctx.node, ctx.chain.clone(), key.clone());
        let (status, answer) =
            miner.call_until_answered("POST", "/v1/miners/register", Some(&offer));
        if status != 200 {
            bail!("registration refused ({status}): {answer}");
        }
    }
    let submitted: Mutex<std::collections::HashMap<String, Instant>> = Mutex::default();
    let latencies: Mutex<Vec<Duration>> = Mutex::default();
    let done = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        for key in &keys {
            let (executor, submitted, latencies, done) = (&executor, &submitted, &latencies, &done);
            scope.spawn(move || {
                let miner = crate::miner::Client::new(&ctx.node, ctx.chain.clone(), key.clone());
                while done.load(Ordering::Acquire) < jobs {
                    let (status, answer) =
                        miner.call_until_answered("GET", "/v1/miners/jobs?wait_s=1", None);
                    let job = &answer["job"];
                    if status != 200 || job.is_null() {
                        continue;
                    }
                    let id = job["job_id"].as_str().unwrap_or_default().to_string();
                    if let Some(at) = submitted.lock().expect("not poisoned").get(&id) {
                        latencies.lock().expect("not poisoned").push(at.elapsed());
                    }
                    let run = Instant::now();
                    let Ok(result) =
                        crate::miner::run_job(&miner, executor, &Default::default(), job)
                    else {
                        continue;
                    };
                    let gpu_ms = run.elapsed().as_millis() as u64;
                    let body = crate::miner::result_body(key, &id, &result, gpu_ms, 1, false);
                    let path = format!("/v1/miners/jobs/{id}/result");
                    let (status, _) = miner.call_until_answered("POST", &path, Some(&body));
                    if status == 200 {
                        done.fetch_add(1, Ordering::AcqRel);
                    }
                }
            });
        }
        for nonce in 0..jobs as u64 {
            let message = hex::encode(nonce.to_le_bytes());
            let mut payload = TxPayload::transfer(
                &chain_id,
                client.address(),
                nonce,
                Amount::ZERO,
                client.address(),
                Amount(1),
            );
            payload.kind = "submit_job".into();
            payload.body = json!({
                "job_kind": "sha256", "input": {"messages": [message]},
                "max_price": "1", "redundancy": 1, "deadline_s": 600,
            });
            let envelope = sign_payload(&client, &payload);
            // The job's id is the transaction's hash: known before it is sent.
            submitted
                .lock()
                .expect("not poisoned")
                .insert(envelope.hash().to_string(), Instant::now());
            ctx.post("/v1/transactions", &serde_json::to_value(envelope)?)?;
        }
        Ok(())
    })?;
    let elapsed = started.elapsed();
    let mut latencies = latencies.into_inner().expect("not poisoned");
    latencies.sort();
    println!(
        "jobs: {jobs} sha256 jobs, {miners} miners on {}: {:.1} jobs/s end to end (submit → verified and paid); \
         submit → assigned p50 {:.1} ms, p99 {:.1} ms",
        executor.adapter().name,
        jobs as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
    Ok(())
}
