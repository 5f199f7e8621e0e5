//! A test miner: the signed miner protocol spoken by hand, so tests control every request.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use domain::address::Address;
use domain::keys::SigningKey;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{TestNode, new_key};

/// The clock, Unix ms.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A miner talking the signed protocol (API.md's `X-AITBC-*` headers).
pub struct Miner {
    /// Its key.
    pub key: SigningKey,
}

impl Default for Miner {
    fn default() -> Self {
        Miner::new()
    }
}

impl Miner {
    /// A miner with a fresh key.
    pub fn new() -> Miner {
        Miner { key: new_key() }
    }

    /// Its address (where it is paid).
    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// The signature headers of a request made at `time_ms`.
    pub fn headers(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        time_ms: u64,
    ) -> Vec<(&'static str, String)> {
        let digest = hex::encode(Sha256::digest(body));
        let signed = format!("AITBC-REQ-V1\n{method}\n{path}\n{time_ms}\n{digest}");
        vec![
            ("X-AITBC-Key", hex::encode(self.key.public_key())),
            ("X-AITBC-Time", time_ms.to_string()),
            (
                "X-AITBC-Signature",
                hex::encode(self.key.sign(signed.as_bytes())),
            ),
        ]
    }

    /// A signed request.
    pub fn call(
        &self,
        node: &TestNode,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
        let headers = self.headers(method, path, bytes.as_deref().unwrap_or(&[]), now_ms());
        node.request(method, path, &headers, bytes.as_deref())
    }

    /// Registers (capacity 2, price 1 per second); the answer.
    pub fn register(&self, node: &TestNode) -> Value {
        let offer = json!({
            "gpu": {"name": "llvmpipe", "backend": "vulkan", "device_type": "cpu"},
            "price_per_s": "1", "capacity": 2,
        });
        let (status, body) = self.call(node, "POST", "/v1/miners/register", Some(&offer));
        assert_eq!(status, 200, "{body}");
        body
    }

    /// A long poll of up to 5 s: the job offered, or null.
    pub fn poll(&self, node: &TestNode) -> Value {
        let (status, body) = self.call(node, "GET", "/v1/miners/jobs?wait_s=5", None);
        assert_eq!(status, 200, "{body}");
        body["job"].clone()
    }

    /// Returns `result` for `job` at `price`, reporting 7 ms of GPU time.
    pub fn answer(&self, node: &TestNode, job: &Value, result: &[u8], price: u128) -> (u16, Value) {
        self.answer_with(node, job, result, price, 7)
    }

    /// Returns `result` for `job` at `price`, reporting `gpu_ms` of GPU time.
    pub fn answer_with(
        &self,
        node: &TestNode,
        job: &Value,
        result: &[u8],
        price: u128,
        gpu_ms: u64,
    ) -> (u16, Value) {
        let id = job["job_id"].as_str().unwrap();
        let hash = hex::encode(Sha256::digest(result));
        let receipt = format!("AITBC-RECEIPT-V1\n{id}\n{hash}\n{gpu_ms}\n{price}");
        let body = json!({
            "result_b64": base64::engine::general_purpose::STANDARD.encode(result),
            "result_hash": hash,
            "gpu_ms": gpu_ms,
            "price": price.to_string(),
            "receipt_signature": hex::encode(self.key.sign(receipt.as_bytes())),
        });
        self.call(
            node,
            "POST",
            &format!("/v1/miners/jobs/{id}/result"),
            Some(&body),
        )
    }
}

/// The digests of a sha256 job's messages, computed here.
pub fn digests(job: &Value) -> Vec<u8> {
    job["input"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| Sha256::digest(hex::decode(m.as_str().unwrap()).unwrap()).to_vec())
        .collect()
}

/// An `aitbc miner` process for `key` (its key file written into `dir`) asking 100 per second,
/// that runs one job unless `extra` gives `--jobs`; output discarded.
pub fn spawn_miner_with(
    node: &TestNode,
    key: &SigningKey,
    dir: &std::path::Path,
    name: &str,
    extra: &[&str],
) -> std::process::Child {
    use std::process::{Command, Stdio};
    let file = dir.join(format!("{name}.key"));
    std::fs::write(&file, hex::encode(key.secret_bytes())).unwrap();
    let mut command = Command::new(crate::binary());
    command
        .args(["--node", node.url(), "miner", "--key"])
        .arg(&file)
        .args(["--price-per-s", "100"])
        .args(if extra.contains(&"--jobs") {
            &[][..]
        } else {
            &["--jobs", "1"][..]
        })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .args(extra);
    command.spawn().expect("the miner starts")
}
