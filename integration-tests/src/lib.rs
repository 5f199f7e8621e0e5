//! End-to-end test harness: starts the real `aitbc` binary on a free port and talks real HTTP
//! to it. Every test gets its own data directory and node.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use domain::address::Address;
use domain::block::Block;
use domain::keys::SigningKey;
use domain::merkle::{MerkleProof, verify_proof};
use domain::money::Amount;
use domain::tx::{SignedEnvelope, TxPayload, sign_payload};
use serde_json::{Value, json};

pub use serde_json;

pub mod gov;
pub mod miner;
pub mod simulation;

/// Chain id of the devnet.
pub const DEVNET: &str = "ait-devnet";
/// Chain id of the second chain in the two-chain configuration.
pub const TESTNET: &str = "ait-testnet";
/// One AIT in base units.
pub const AIT: u128 = 1_000_000_000_000_000_000;

/// Path of the `aitbc` binary under test.
pub fn binary() -> PathBuf {
    let path = match std::env::var_os("AITBC_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/aitbc"),
    };
    assert!(
        path.exists(),
        "{} not found: run `cargo build -p aitbc` first (or set AITBC_BIN)",
        path.display()
    );
    path
}

/// A running node process.
pub struct TestNode {
    child: Option<Child>,
    url: String,
    data_dir: PathBuf,
    config: Option<PathBuf>,
    log: Arc<Mutex<Vec<String>>>,
    agent: ureq::Agent,
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
}

impl TestNode {
    /// Starts a node on `data_dir` (a devnet is created there on first start).
    pub fn start(data_dir: &Path) -> TestNode {
        TestNode::spawn(data_dir, None)
    }

    /// Starts a node on `data_dir` with the configuration file `config`.
    pub fn start_with_config(data_dir: &Path, config: &Path) -> TestNode {
        TestNode::spawn(data_dir, Some(config.to_path_buf()))
    }

    /// A client of a node this test does not own (one running in this process, say) at `url`.
    pub fn attach(url: &str, data_dir: &Path) -> TestNode {
        TestNode {
            child: None,
            url: url.to_string(),
            data_dir: data_dir.to_path_buf(),
            config: None,
            log: Arc::new(Mutex::new(Vec::new())),
            agent: agent(),
        }
    }

    fn spawn(data_dir: &Path, config: Option<PathBuf>) -> TestNode {
        let mut node = TestNode {
            child: None,
            url: String::new(),
            data_dir: data_dir.to_path_buf(),
            config,
            log: Arc::new(Mutex::new(Vec::new())),
            agent: agent(),
        };
        node.launch();
        node
    }

    fn launch(&mut self) {
        // The nodes log warnings; `AITBC_TEST_LOG` (a `RUST_LOG` filter) shows more.
        let log_filter = std::env::var("AITBC_TEST_LOG").unwrap_or_else(|_| "warn".into());
        let mut cmd = Command::new(binary());
        cmd.arg("node")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env("RUST_LOG", log_filter)
            .env_remove("AITBC_DATA_DIR")
            .env_remove("AITBC_LISTEN")
            .env_remove("AITBC_CONFIG")
            .env_remove("AITBC_STORE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        let mut child = cmd.spawn().expect("spawn aitbc");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = self.log.clone();
        let (tx, rx) = mpsc::channel::<String>();
        thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1)
                    && let Some(sender) = tx.take()
                {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = sender.send(addr);
                }
                log.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                thread::sleep(Duration::from_millis(100));
                panic!(
                    "node did not print its listen address ({e}); stderr:\n{}",
                    self.logs()
                );
            }
        };
        self.url = format!("http://{addr}");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = self.try_get("/health") {
                break;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("node exited with {status}; stderr:\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "/health not 200 within 30 s; stderr:\n{}",
                self.logs()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// A cheap, thread-safe client for this node's current address.
    pub fn client(&self) -> Client {
        Client {
            url: self.url.clone(),
            agent: agent(),
        }
    }

    /// Everything the node wrote to stderr so far.
    pub fn logs(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Process id of the running node.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("node running").id()
    }

    /// Kills the node with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
        }
    }

    /// Stops the node with SIGTERM and waits for it to exit (SIGKILL after 20 s); returns
    /// its exit status (`None` if it was not running).
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -TERM failed");
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    return Some(status);
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("node did not exit within 20 s of SIGTERM:\n{}", self.logs());
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        None
    }

    /// Starts the node again on the same data directory and configuration.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the node first");
        self.launch();
    }

    fn answer(result: Result<ureq::Response, ureq::Error>) -> Result<(u16, String), String> {
        match result {
            Ok(r) => {
                let status = r.status();
                Ok((status, r.into_string().map_err(|e| e.to_string())?))
            }
            Err(ureq::Error::Status(status, r)) => {
                Ok((status, r.into_string().unwrap_or_default()))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
    }

    /// GET, transport errors as `Err`.
    pub fn try_get(&self, path: &str) -> Result<(u16, Value), String> {
        let (status, text) = Self::answer(self.agent.get(&self.url_of(path)).call())?;
        Ok((status, Self::json(&text)))
    }

    /// POST JSON, transport errors as `Err`.
    pub fn try_post(&self, path: &str, body: &Value) -> Result<(u16, Value), String> {
        let (status, text) = Self::answer(self.agent.post(&self.url_of(path)).send_json(body))?;
        Ok((status, Self::json(&text)))
    }

    fn url_of(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// GET `path` → (status, JSON body; a non-JSON body as a JSON string).
    pub fn get(&self, path: &str) -> (u16, Value) {
        self.try_get(path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\nstderr:\n{}", self.logs()))
    }

    /// GET `path` → (status, body text).
    pub fn get_text(&self, path: &str) -> (u16, String) {
        Self::answer(self.agent.get(&self.url_of(path)).call())
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// GET `path` → (status, body bytes).
    pub fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let response = match self.agent.get(&self.url_of(path)).call() {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(e) => panic!("GET {path}: {e}"),
        };
        let status = response.status();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).expect("body");
        (status, bytes)
    }

    /// POST JSON.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.try_post(path, body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}\nstderr:\n{}", self.logs()))
    }

    /// POST raw bytes as `application/json`.
    pub fn post_raw(&self, path: &str, bytes: &[u8]) -> (u16, Value) {
        let request = self
            .agent
            .post(&self.url_of(path))
            .set("Content-Type", "application/json");
        let (status, text) = Self::answer(request.send_bytes(bytes))
            .unwrap_or_else(|e| panic!("POST {path}: {e}\nstderr:\n{}", self.logs()));
        (status, Self::json(&text))
    }

    /// A request with extra headers and a raw body (`None`: a GET).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> (u16, Value) {
        let mut request = self.agent.request(method, &self.url_of(path));
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let result = match body {
            Some(bytes) => request
                .set("Content-Type", "application/json")
                .send_bytes(bytes),
            None => request.call(),
        };
        let (status, text) = Self::answer(result)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\nstderr:\n{}", self.logs()));
        (status, Self::json(&text))
    }

    /// Submits a signed envelope.
    pub fn submit(&self, envelope: &SignedEnvelope) -> (u16, Value) {
        self.post("/v1/transactions", &envelope_json(envelope))
    }

    /// Faucet on the default chain; asserts 200 and returns the tx hash.
    pub fn faucet(&self, address: &Address, amount: u128) -> String {
        self.faucet_on(None, address, amount)
    }

    /// Faucet on `chain` (None: default); asserts 200 and returns the tx hash.
    pub fn faucet_on(&self, chain: Option<&str>, address: &Address, amount: u128) -> String {
        let mut body = json!({"address": address.to_string(), "amount": amount.to_string()});
        if let Some(chain) = chain {
            body["chain_id"] = json!(chain);
        }
        let (status, body) = self.post("/v1/faucet", &body);
        assert_eq!(status, 200, "faucet: {body}");
        body["tx_hash"].as_str().expect("tx_hash").to_string()
    }

    /// Signs and submits a transfer on the devnet.
    pub fn transfer(
        &self,
        key: &SigningKey,
        nonce: u64,
        to: &Address,
        amount: u128,
        fee: u128,
    ) -> (u16, Value) {
        self.transfer_on(DEVNET, key, nonce, to, amount, fee)
    }

    /// Signs and submits a transfer on `chain`.
    pub fn transfer_on(
        &self,
        chain: &str,
        key: &SigningKey,
        nonce: u64,
        to: &Address,
        amount: u128,
        fee: u128,
    ) -> (u16, Value) {
        self.submit(&signed_transfer(chain, key, nonce, to, amount, fee))
    }

    /// (balance, nonce) of `address` on the default chain.
    pub fn account(&self, address: &Address) -> (u128, u64) {
        self.account_on(None, address)
    }

    /// (balance, nonce) of `address` on `chain`.
    pub fn account_on(&self, chain: Option<&str>, address: &Address) -> (u128, u64) {
        let path = match chain {
            Some(c) => format!("/v1/accounts/{address}?chain={c}"),
            None => format!("/v1/accounts/{address}"),
        };
        let (status, body) = self.get(&path);
        assert_eq!(status, 200, "GET {path}: {body}");
        (
            amount(&body["balance"]),
            body["nonce"].as_u64().expect("nonce"),
        )
    }

    /// GET /v1/chains/ait-devnet.
    pub fn chain(&self) -> Value {
        self.chain_info(DEVNET)
    }

    /// GET /v1/chains/{id}.
    pub fn chain_info(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/chains/{id}"));
        assert_eq!(status, 200, "chain {id}: {body}");
        body
    }

    /// GET /v1/transactions/{hash}, asserting 200.
    pub fn tx(&self, hash: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/transactions/{hash}"));
        assert_eq!(status, 200, "tx {hash}: {body}");
        body
    }

    /// Polls the transaction until it is in a block (≤ 10 s); returns its JSON.
    pub fn wait_for_block_with(&self, hash: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let tx = self.tx(hash);
            if tx["block_height"].is_u64() {
                return tx;
            }
            assert!(
                Instant::now() < deadline,
                "tx {hash} not sealed within 10 s: {tx}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every block of `chain`, height 0..=current, fetched through paging.
    pub fn all_blocks(&self, chain: &str) -> Vec<Block> {
        let height = self.chain_info(chain)["height"].as_u64().expect("height");
        let mut blocks: Vec<Block> = Vec::new();
        while (blocks.len() as u64) <= height {
            let from = blocks.len();
            let (status, body) =
                self.get(&format!("/v1/blocks?chain={chain}&from={from}&limit=100"));
            assert_eq!(status, 200, "blocks: {body}");
            let page: Vec<Block> =
                serde_json::from_value(body["blocks"].clone()).expect("blocks parse");
            assert!(!page.is_empty(), "no blocks from {from} (height {height})");
            blocks.extend(page);
        }
        blocks
    }

    /// Fetches every block of `chain` and checks signatures (against the chain's own
    /// validators), heights, hash links, and `GET /v1/blocks/{h}/verify`. Returns the blocks.
    pub fn verify_chain(&self, chain: &str) -> Vec<Block> {
        let info = self.chain_info(chain);
        let (validators, threshold) = validators_of(&info);
        let blocks = self.all_blocks(chain);
        assert_eq!(
            blocks[0].prev_hash.to_hex(),
            info["genesis_hash"].as_str().unwrap(),
            "block 0 links to the genesis hash"
        );
        for (i, block) in blocks.iter().enumerate() {
            assert_eq!(block.height, i as u64, "heights are consecutive");
            assert_eq!(block.chain_id, chain);
            block
                .verify(&validators, threshold)
                .unwrap_or_else(|e| panic!("block {} of {chain} does not verify: {e}", i));
            if i > 0 {
                assert_eq!(
                    block.prev_hash,
                    blocks[i - 1].hash,
                    "block {i} links to {}",
                    i - 1
                );
                assert!(
                    block.from_position >= blocks[i - 1].to_position,
                    "block {i} positions overlap the previous block"
                );
            }
        }
        blocks
    }

    /// Checks the transaction's Merkle proof against its block's root; returns the block height.
    pub fn check_tx_proof(&self, hash: &str, chain: &str) -> u64 {
        let tx = self.wait_for_block_with(hash);
        let height = tx["block_height"].as_u64().unwrap();
        let (status, block) = self.get(&format!("/v1/blocks/{height}?chain={chain}"));
        assert_eq!(status, 200);
        let block: Block = serde_json::from_value(block).unwrap();
        let proof: MerkleProof = serde_json::from_value(tx["proof"].clone()).expect("proof");
        let tx_hash = hash.parse().unwrap();
        assert!(block.tx_hashes.contains(&tx_hash), "block lists the tx");
        assert!(
            verify_proof(&tx_hash, &proof, &block.merkle_root),
            "proof of {hash} verifies"
        );
        height
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A client that outlives nothing but the URL (for load threads).
#[derive(Clone)]
pub struct Client {
    url: String,
    agent: ureq::Agent,
}

impl Client {
    /// POST JSON; transport errors (node gone) as `Err`.
    pub fn try_post(&self, path: &str, body: &Value) -> Result<(u16, Value), String> {
        let (status, text) = TestNode::answer(
            self.agent
                .post(&format!("{}{path}", self.url))
                .send_json(body),
        )?;
        Ok((status, TestNode::json(&text)))
    }

    /// Submits an envelope; transport errors as `Err`.
    pub fn try_submit(&self, envelope: &SignedEnvelope) -> Result<(u16, Value), String> {
        self.try_post("/v1/transactions", &envelope_json(envelope))
    }
}

/// Validators and threshold from a `GET /v1/chains/{id}` body.
pub fn validators_of(chain: &Value) -> (Vec<String>, usize) {
    let validators: Vec<String> =
        serde_json::from_value(chain["validators"].clone()).expect("validators");
    let threshold = chain["validator_threshold"].as_u64().expect("threshold") as usize;
    (validators, threshold)
}

/// The envelope as JSON.
pub fn envelope_json(envelope: &SignedEnvelope) -> Value {
    serde_json::to_value(envelope).expect("envelope serializes")
}

/// A signed transfer.
pub fn signed_transfer(
    chain: &str,
    key: &SigningKey,
    nonce: u64,
    to: &Address,
    amount: u128,
    fee: u128,
) -> SignedEnvelope {
    let payload = TxPayload::transfer(
        chain,
        key.address(),
        nonce,
        Amount(fee),
        *to,
        Amount(amount),
    );
    sign_payload(key, &payload)
}

/// A fresh random key.
pub fn new_key() -> SigningKey {
    SigningKey::generate().expect("OS randomness")
}

/// A base-unit amount from a JSON string.
pub fn amount(value: &Value) -> u128 {
    value
        .as_str()
        .unwrap_or_else(|| panic!("amount is not a string: {value}"))
        .parse()
        .unwrap_or_else(|_| panic!("bad amount {value}"))
}

/// `error.code` of an error body ("" if none).
pub fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// Reads a 64-hex key file.
pub fn read_key(path: &Path) -> SigningKey {
    let text = std::fs::read_to_string(path).expect("key file");
    SigningKey::from_hex(&text).expect("64 hex key")
}

/// A small deterministic PRNG (xorshift64*), enough for load generation.
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (seed 0 is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// One chain of a test configuration, with the keys the test wrote.
pub struct ChainSetup {
    /// Chain id.
    pub chain_id: String,
    /// Its validator's key.
    pub validator: SigningKey,
    /// Its faucet account's key.
    pub faucet: SigningKey,
    /// Minimum fee.
    pub min_fee: u128,
}

/// Faucet allocation of every test chain: one billion AIT.
pub const FAUCET_SUPPLY: u128 = 1_000_000_000 * AIT;

/// Writes a configuration with the chains `(chain_id, min_fee)` (the first is the default
/// chain), each with its own validator and faucet key files under `data_dir/keys/`, and
/// blocks every `block_time_ms`. Returns the config path and the chains.
pub fn write_config(
    data_dir: &Path,
    chains: &[(&str, u128)],
    block_time_ms: u64,
) -> (PathBuf, Vec<ChainSetup>) {
    let keys = data_dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut text = format!(
        "listen = \"127.0.0.1:0\"\ndefault_chain = \"{}\"\n",
        chains[0].0
    );
    let mut setups = Vec::new();
    for (chain_id, min_fee) in chains {
        let (validator, faucet) = (new_key(), new_key());
        let vfile = format!("keys/{chain_id}-validator.key");
        let ffile = format!("keys/{chain_id}-faucet.key");
        std::fs::write(data_dir.join(&vfile), hex::encode(validator.secret_bytes())).unwrap();
        std::fs::write(data_dir.join(&ffile), hex::encode(faucet.secret_bytes())).unwrap();
        text.push_str(&format!(
            "\n[[chains]]\nblock_time_ms = {block_time_ms}\nempty_blocks = false\n\
             validator_key_files = [\"{vfile}\"]\n\n\
             [chains.faucet]\nkey_file = \"{ffile}\"\nmax_amount = \"{}\"\n\n\
             {UNPACED_FAUCET}\
             [chains.genesis]\nchain_id = \"{chain_id}\"\ngenesis_time = {now}\n\
             validators = [\"{}\"]\nvalidator_threshold = 1\nmin_fee = \"{min_fee}\"\n\n\
             [[chains.genesis.allocations]]\naddress = \"{}\"\namount = \"{FAUCET_SUPPLY}\"\n",
            1_000_000 * AIT,
            hex::encode(validator.public_key()),
            faucet.address(),
        ));
        setups.push(ChainSetup {
            chain_id: chain_id.to_string(),
            validator,
            faucet,
            min_fee: *min_fee,
        });
    }
    let path = data_dir.join("test-config.toml");
    std::fs::write(&path, text).unwrap();
    (path, setups)
}

/// Test chains fund their load from the faucet: its pace is tested on the devnet's defaults
/// (`tests/hardening.rs`).
const UNPACED_FAUCET: &str = "[chains.faucet.limits]\nper_recipient_burst = 1000000000\n\
    global_burst = 1000000000\nglobal_per_s = 1000000000\ndaily_max_requests_worth = 1000000000\n\n";

/// The two-chain configuration (`ait-devnet` default, `ait-testnet`), min fee 0, 200 ms blocks.
pub fn write_two_chain_config(data_dir: &Path) -> (PathBuf, Vec<ChainSetup>) {
    write_config(data_dir, &[(DEVNET, 0), (TESTNET, 0)], 200)
}

/// A fast single-chain devnet (200 ms blocks) with `min_fee`; returns the node and its chain.
pub fn fast_devnet(data_dir: &Path, min_fee: u128) -> (TestNode, ChainSetup) {
    let (config, mut chains) = write_config(data_dir, &[(DEVNET, min_fee)], 200);
    let node = TestNode::start_with_config(data_dir, &config);
    (node, chains.remove(0))
}

/// Polls `done` every 100 ms until it holds; panics after `within`.
pub fn wait_until(what: &str, within: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Copies a data directory (without its `LOCK` file, which belongs to the process holding it).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A fresh temporary data directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("aitbc-it-")
        .tempdir()
        .expect("tempdir")
}

/// What one run of the `aitbc` client printed.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit status.
    pub status: std::process::ExitStatus,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl CliOutput {
    /// Asserts exit status 0; returns stdout.
    pub fn ok(&self) -> &str {
        assert!(self.status.success(), "expected success: {self:#?}");
        &self.stdout
    }

    /// Asserts a non-zero exit status; returns stderr.
    pub fn err(&self) -> &str {
        assert!(!self.status.success(), "expected failure: {self:#?}");
        &self.stderr
    }

    /// Stdout parsed as JSON (asserting exit status 0).
    pub fn json(&self) -> Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// The `aitbc` binary as a command-line client: runs it as a subprocess with `AITBC_NODE`
/// and `AITBC_KEYSTORE` set, answers as JSON (`AITBC_JSON=1`), stdin null (so never a TTY), no
/// inherited `AITBC_*` variables, and `HOME` pointed away from the real home directory.
#[derive(Clone)]
pub struct Cli {
    node: String,
    keystore: PathBuf,
    env: Vec<(String, String)>,
}

impl Cli {
    /// A client for the node at `node` with the keystore `keystore`.
    pub fn new(node: &str, keystore: &Path) -> Cli {
        Cli {
            node: node.to_string(),
            keystore: keystore.to_path_buf(),
            env: Vec::new(),
        }
    }

    /// The same client with `AITBC_PASSPHRASE` set.
    pub fn with_passphrase(&self, passphrase: &str) -> Cli {
        self.with_env("AITBC_PASSPHRASE", passphrase)
    }

    /// The same client with another environment variable set.
    pub fn with_env(&self, key: &str, value: &str) -> Cli {
        let mut cli = self.clone();
        cli.env.retain(|(k, _)| k != key);
        cli.env.push((key.to_string(), value.to_string()));
        cli
    }

    /// The command, ready to run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary());
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.keystore.parent().unwrap_or(&self.keystore))
            .env("AITBC_NODE", &self.node)
            .env("AITBC_KEYSTORE", &self.keystore)
            .env("AITBC_JSON", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        cmd
    }

    /// Runs `aitbc ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> CliOutput {
        let output = self.command(args).output().expect("run aitbc");
        CliOutput {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Signs a transaction of any kind.
pub fn signed(
    chain: &str,
    key: &SigningKey,
    nonce: u64,
    kind: &str,
    body: Value,
) -> SignedEnvelope {
    let mut payload = TxPayload::transfer(
        chain,
        key.address(),
        nonce,
        Amount::ZERO,
        key.address(),
        Amount(1),
    );
    payload.kind = kind.to_string();
    payload.body = body;
    sign_payload(key, &payload)
}
