//! GPU compute jobs (PRODUCT.md §6): one aggregate per job, stream `job/<chain>/<id>`, the id
//! being the hash of the `submit_job` transaction.
//!
//! `submit_job` escrows `max_price × redundancy` from the client into the chain's jobs escrow
//! account; its inputs are checked when it is parsed (a clear error and nothing escrowed). The
//! scheduler leases the job to `redundancy` distinct miners, each lease ending at
//! `lease_until_ms` (a durable timer: an expired lease without a result frees the slot and costs
//! the miner reputation). A miner's result carries its receipt signature (checked by the node);
//! once `redundancy` results are in, the job is verified: results are compared (exactly, or
//! within a tolerance for float kernels: [`JobInput::agree`]), and the platform's own reference
//! re-executes the job when the job
//! asks for it (`always`), when its deterministic sample falls within `sample_bps`, or when the
//! results disagree. Verified → each correct miner is paid its `price` less the 2.5% fee (to the
//! treasury), the rest of the escrow is refunded; a miner whose result is disproved is paid
//! nothing and loses reputation; with no correct result the job fails and the escrow is refunded.
//! `cancel_job` (the client, while queued with no lease) and the deadline (a durable timer)
//! refund the escrow. Escrow = paid + fees + refunded, for every job.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::address::Address;
use crate::aggregate::{Aggregate, BatchClass, Context};
use crate::codec::DomainEvent;
use crate::error::TxError;
use crate::event_id::event_id;
use crate::hash::Hash32;
use crate::llm_job::LlmRequest;
use crate::mlp::{self, LayerShape};
use crate::money::Amount;
use crate::vesting::Refusal;
use crate::wgsl::{Compare, ShaderError, ShaderHost, ShaderJob};

/// The platform's fee on a miner's price, basis points.
pub const FEE_BPS: u128 = 250;
/// Most messages of a `sha256` job.
pub const SHA_MESSAGES_MAX: usize = 256;
/// Most bytes of a `sha256` job's messages together (inputs travel in the transaction).
pub const SHA_BYTES_MAX: usize = 16 * 1024;
/// Most bytes of a `sha256` job's messages in a blob (a miner's lease must be able to hold it).
pub const SHA_BLOB_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Longest proof-of-work prefix.
pub const POW_PREFIX_MAX: usize = 256;
/// Most nonces a proof-of-work job searches (the platform re-executes it on a CPU core).
pub const POW_NONCES_MAX: u64 = 1 << 20;
/// Highest proof-of-work difficulty.
pub const POW_BITS_MAX: u32 = 64;
/// Longest job deadline: a week.
pub const DEADLINE_S_MAX: u64 = 7 * 24 * 3600;
/// Most miners per job.
pub const REDUNDANCY_MAX: u8 = 3;
/// Longest dimension of a `matmul` job.
pub const MATMUL_DIM_MAX: u32 = 1024;
/// Longest result that travels inline in the result's event; a longer one travels as a blob.
pub const RESULT_INLINE_MAX: usize = 128 * 1024;
/// Longest result (a `matmul` product at its largest: 1024 × 1024 f32 values).
pub const RESULT_LEN_MAX: usize = 4 << 20;
/// Share of `sampled` jobs the platform re-executes, basis points (5 %).
pub const SAMPLE_BPS_DEFAULT: u32 = 500;
/// Reputation a new miner starts with.
pub const REPUTATION_START: u16 = 100;

/// Domain separation of a receipt's signed bytes.
pub const RECEIPT_PREFIX: &str = "AITBC-RECEIPT-V1\n";

/// The bytes a miner signs for its receipt (API.md).
pub fn receipt_message(job: &Hash32, result_hash: &Hash32, gpu_ms: u64, price: Amount) -> String {
    format!("{RECEIPT_PREFIX}{job}\n{result_hash}\n{gpu_ms}\n{price}")
}

/// A receipt's id: the SHA-256 of its signed bytes, a newline and its signature (hex): two
/// miners returning the same result at the same price still have distinct receipts.
pub fn receipt_id(job: &Hash32, result: &MinerResult) -> Hash32 {
    let message = receipt_message(job, &result.result_hash, result.gpu_ms, result.price);
    let signature = result.receipt_signature.to_ascii_lowercase();
    Hash32::digest_parts(&[message.as_bytes(), b"\n", signature.as_bytes()])
}

fn yes() -> bool {
    true
}

/// Stream of a job.
pub fn job_stream(chain_id: &str, id: &Hash32) -> String {
    format!("job/{chain_id}/{id}")
}

/// The module account holding a chain's job escrows.
pub fn escrow_account(chain_id: &str) -> Address {
    Address::module(&format!("jobs/{chain_id}"))
}

/// Bytes written as hex in JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HexBytes(pub Vec<u8>);

impl Serialize for HexBytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        hex::decode(&text)
            .map(HexBytes)
            .map_err(|_| serde::de::Error::custom("not hex"))
    }
}

/// What a job computes, with its input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job_kind", content = "input", rename_all = "snake_case")]
pub enum JobInput {
    /// SHA-256 of each message → the digests concatenated, in order. The messages are inline,
    /// or in a blob (each message as u32 LE length + bytes).
    Sha256 {
        /// The messages, inline.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        messages: Vec<HexBytes>,
        /// The blob holding them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        messages_blob: Option<Hash32>,
    },
    /// C = A·B of f32 matrices (row-major, little-endian) held in blobs → C's bytes; results
    /// agree within [`crate::matmul::TOLERANCE`].
    Matmul {
        /// Rows of A and C.
        m: u32,
        /// Columns of A, rows of B.
        k: u32,
        /// Columns of B and C.
        n: u32,
        /// A, m·k values.
        a_blob: Hash32,
        /// B, k·n values.
        b_blob: Hash32,
    },
    /// The smallest nonce in `[start_nonce, end_nonce)` whose SHA-256(prefix ‖ nonce as 8 bytes
    /// LE) has at least `difficulty_bits` leading zero bits → the nonce as 8 bytes LE, or no
    /// bytes when there is none.
    Pow {
        /// The bytes before the nonce.
        prefix: HexBytes,
        /// Leading zero bits required.
        difficulty_bits: u32,
        /// First nonce.
        start_nonce: u64,
        /// One past the last nonce.
        end_nonce: u64,
    },
    /// A dense network (ReLU between layers) over a batch of samples → `batch × last outputs`
    /// f32 LE values; the layout of the blobs is [`crate::mlp`]'s.
    MlpInference {
        /// The layers' shapes, input first.
        layers: Vec<LayerShape>,
        /// Every layer's weights then biases (f32 LE).
        weights_blob: Hash32,
        /// `batch × layers[0].inputs` values (f32 LE).
        inputs_blob: Hash32,
        /// Samples.
        batch: u32,
    },
    /// A client's compute shader → its output buffers concatenated ([`crate::wgsl`]).
    Wgsl(ShaderJob),
    /// Text generation by a language model → canonical JSON `{"text", "token_ids"}`
    /// ([`crate::llm_job`]); every result is checked by the platform.
    LlmGenerate(LlmRequest),
}

/// The input of a `sha256` job.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sha256Wire {
    #[serde(default)]
    messages: Option<Vec<HexBytes>>,
    #[serde(default)]
    messages_blob: Option<Hash32>,
}

/// The input of a `matmul` job.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatmulWire {
    m: u32,
    k: u32,
    n: u32,
    a_blob: Hash32,
    b_blob: Hash32,
}

/// The input of an `mlp_inference` job.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MlpWire {
    layers: Vec<LayerShape>,
    weights_blob: Hash32,
    inputs_blob: Hash32,
    batch: u32,
}

/// The input of a `pow` job.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PowWire {
    prefix: HexBytes,
    difficulty_bits: u32,
    start_nonce: u64,
    end_nonce: u64,
}

impl JobInput {
    /// Parses `input` for `job_kind` strictly and checks its bounds.
    pub fn parse(job_kind: &str, input: &str) -> Result<JobInput, TxError> {
        let malformed = |e: serde_json::Error| TxError::Malformed(format!("input: {e}"));
        let parsed = match job_kind {
            "sha256" => {
                let wire: Sha256Wire = serde_json::from_str(input).map_err(malformed)?;
                match (wire.messages, wire.messages_blob) {
                    (Some(messages), None) => JobInput::Sha256 {
                        messages,
                        messages_blob: None,
                    },
                    (None, Some(blob)) => JobInput::Sha256 {
                        messages: Vec::new(),
                        messages_blob: Some(blob),
                    },
                    _ => {
                        return Err(TxError::Malformed(
                            "a sha256 input has messages or a messages_blob".into(),
                        ));
                    }
                }
            }
            "pow" => {
                let wire: PowWire = serde_json::from_str(input).map_err(malformed)?;
                JobInput::Pow {
                    prefix: wire.prefix,
                    difficulty_bits: wire.difficulty_bits,
                    start_nonce: wire.start_nonce,
                    end_nonce: wire.end_nonce,
                }
            }
            "matmul" => {
                let wire: MatmulWire = serde_json::from_str(input).map_err(malformed)?;
                JobInput::Matmul {
                    m: wire.m,
                    k: wire.k,
                    n: wire.n,
                    a_blob: wire.a_blob,
                    b_blob: wire.b_blob,
                }
            }
            "mlp_inference" => {
                let wire: MlpWire = serde_json::from_str(input).map_err(malformed)?;
                JobInput::MlpInference {
                    layers: wire.layers,
                    weights_blob: wire.weights_blob,
                    inputs_blob: wire.inputs_blob,
                    batch: wire.batch,
                }
            }
            "wgsl" => JobInput::Wgsl(serde_json::from_str(input).map_err(malformed)?),
            "llm_generate" => {
                JobInput::LlmGenerate(serde_json::from_str(input).map_err(malformed)?)
            }
            other => {
                return Err(TxError::Malformed(format!(
                    "job_kind {other:?} is not one this node runs \
                     (sha256, pow, matmul, mlp_inference, wgsl, llm_generate)"
                )));
            }
        };
        parsed.check()?;
        Ok(parsed)
    }

    fn check(&self) -> Result<(), TxError> {
        let limit = |what: String| Err(TxError::LimitExceeded(what));
        match self {
            JobInput::Sha256 {
                messages_blob: Some(_),
                ..
            } => {}
            JobInput::Sha256 { messages, .. } => {
                if messages.is_empty() || messages.len() > SHA_MESSAGES_MAX {
                    return limit(format!("a sha256 job has 1 to {SHA_MESSAGES_MAX} messages"));
                }
                let bytes: usize = messages.iter().map(|m| m.0.len()).sum();
                if bytes > SHA_BYTES_MAX {
                    return limit(format!(
                        "a sha256 job's messages hold at most {SHA_BYTES_MAX} bytes"
                    ));
                }
            }
            JobInput::Matmul { m, k, n, .. } => {
                if [m, k, n].iter().any(|d| !(1..=MATMUL_DIM_MAX).contains(*d)) {
                    return limit(format!("m, k and n are 1..={MATMUL_DIM_MAX}"));
                }
            }
            JobInput::Pow {
                prefix,
                difficulty_bits,
                start_nonce,
                end_nonce,
            } => {
                if prefix.0.len() > POW_PREFIX_MAX {
                    return limit(format!("a pow prefix has at most {POW_PREFIX_MAX} bytes"));
                }
                if !(1..=POW_BITS_MAX).contains(difficulty_bits) {
                    return limit(format!("difficulty_bits is 1..={POW_BITS_MAX}"));
                }
                let span = end_nonce.checked_sub(*start_nonce).unwrap_or(0);
                if span == 0 || span > POW_NONCES_MAX {
                    return limit(format!(
                        "a pow job searches 1 to {POW_NONCES_MAX} nonces (end_nonce > start_nonce)"
                    ));
                }
            }
            JobInput::MlpInference { layers, batch, .. } => mlp::check_shapes(layers, *batch)?,
            JobInput::Wgsl(shader) => shader.check()?,
            JobInput::LlmGenerate(request) => request.check()?,
        }
        Ok(())
    }

    /// Lease time beyond `[jobs] lease_s` a job of this input needs: text generation is
    /// sequential, so its lease grows with its tokens (250 ms each: a 512-token job fits at
    /// 4 tokens/s, what a CPU-emulated adapter manages).
    pub fn extra_lease_ms(&self) -> u64 {
        match self {
            JobInput::LlmGenerate(request) => u64::from(request.max_tokens) * 250,
            _ => 0,
        }
    }

    /// Wire name of the kind.
    pub fn kind(&self) -> &'static str {
        match self {
            JobInput::Sha256 { .. } => "sha256",
            JobInput::Matmul { .. } => "matmul",
            JobInput::Pow { .. } => "pow",
            JobInput::MlpInference { .. } => "mlp_inference",
            JobInput::Wgsl(_) => "wgsl",
            JobInput::LlmGenerate(_) => "llm_generate",
        }
    }

    /// The blobs the input refers to, in the order [`JobInput::reference`] takes their bytes.
    pub fn blobs(&self) -> Vec<Hash32> {
        match self {
            JobInput::Sha256 {
                messages_blob: Some(blob),
                ..
            } => vec![*blob],
            JobInput::Matmul { a_blob, b_blob, .. } => vec![*a_blob, *b_blob],
            JobInput::MlpInference {
                weights_blob,
                inputs_blob,
                ..
            } => vec![*weights_blob, *inputs_blob],
            JobInput::Wgsl(shader) => shader.input_blobs(),
            _ => Vec::new(),
        }
    }

    /// Checks the bytes of the input's blobs (in [`JobInput::blobs`]'s order): a sha256
    /// job's framing, a matmul or mlp job's value counts, a wgsl job's non-empty inputs (its
    /// source is the [`ShaderHost`]'s to check).
    pub fn check_blobs(&self, blobs: &[Vec<u8>]) -> Result<(), TxError> {
        match self {
            JobInput::Sha256 { .. } => self
                .sha256_messages(blobs.first().map(Vec::as_slice))
                .map(|_| ()),
            JobInput::Matmul { m, k, n, .. } => {
                let sizes = [u64::from(*m) * u64::from(*k), u64::from(*k) * u64::from(*n)];
                for (blob, elements) in blobs.iter().zip(sizes) {
                    if blob.len() as u64 != 4 * elements {
                        return Err(TxError::Malformed(format!(
                            "a matrix blob of {} bytes, {} expected ({elements} f32 values)",
                            blob.len(),
                            4 * elements
                        )));
                    }
                }
                Ok(())
            }
            JobInput::MlpInference { layers, batch, .. } => {
                let sizes = [
                    ("weights", mlp::weights_len(layers)),
                    ("inputs", u64::from(*batch) * u64::from(layers[0].inputs)),
                ];
                for (blob, (what, values)) in blobs.iter().zip(sizes) {
                    if blob.len() as u64 != 4 * values {
                        return Err(TxError::Malformed(format!(
                            "a {what} blob of {} bytes, {} expected ({values} f32 values)",
                            blob.len(),
                            4 * values
                        )));
                    }
                }
                Ok(())
            }
            JobInput::Wgsl(_) => match blobs.iter().position(Vec::is_empty) {
                Some(i) => Err(TxError::Malformed(format!("input buffer {i} is empty"))),
                None => Ok(()),
            },
            JobInput::Pow { .. } | JobInput::LlmGenerate(_) => Ok(()),
        }
    }

    /// Whether two results agree: exactly for the integer kernels and `wgsl` (unless it asks
    /// for `f32`), within the float tolerance for `matmul` and `mlp_inference`.
    pub fn agree(&self, x: &[u8], y: &[u8]) -> bool {
        match self {
            JobInput::Matmul { .. } | JobInput::MlpInference { .. } => crate::matmul::agree(x, y),
            JobInput::Wgsl(shader) if shader.compare == Compare::F32 => {
                x.len().is_multiple_of(4) && crate::matmul::agree(x, y)
            }
            _ => x == y,
        }
    }

    /// The messages of a `sha256` job, from `blob` (the bytes of its `messages_blob`) when
    /// it has one.
    pub fn sha256_messages(&self, blob: Option<&[u8]>) -> Result<Vec<Vec<u8>>, TxError> {
        match (self, blob) {
            (
                JobInput::Sha256 {
                    messages_blob: Some(hash),
                    ..
                },
                blob,
            ) => {
                let bytes = blob.ok_or_else(|| TxError::NotFound(format!("no blob {hash}")))?;
                framed_messages(bytes)
            }
            (JobInput::Sha256 { messages, .. }, _) => {
                Ok(messages.iter().map(|m| m.0.clone()).collect())
            }
            _ => Err(TxError::Malformed("not a sha256 job".into())),
        }
    }

    /// The platform's reference: the result bytes, on a CPU core (a `wgsl` job on the node's
    /// GPU executor, `shaders`); `blobs` holds the bytes of the input's blobs in
    /// [`JobInput::blobs`]'s order. [`ShaderError::Busy`] asks to try again later; any other
    /// error means the platform has no reference for this job.
    pub fn reference(
        &self,
        blobs: &[Vec<u8>],
        shaders: Option<&dyn ShaderHost>,
    ) -> Result<Vec<u8>, ShaderError> {
        match self {
            JobInput::Wgsl(shader) => {
                let host = shaders.ok_or_else(|| {
                    ShaderError::NotRun("this node has no GPU executor for wgsl jobs".into())
                })?;
                host.run(shader, blobs)
            }
            _ => self
                .cpu_reference(blobs)
                .map_err(|e| ShaderError::NotRun(e.to_string())),
        }
    }

    fn cpu_reference(&self, blobs: &[Vec<u8>]) -> Result<Vec<u8>, TxError> {
        let missing = || TxError::NotFound("an input blob is gone".into());
        Ok(match self {
            JobInput::Sha256 { .. } => self
                .sha256_messages(blobs.first().map(Vec::as_slice))?
                .iter()
                .flat_map(|m| Sha256::digest(m).to_vec())
                .collect(),
            JobInput::Matmul { m, k, n, .. } => {
                self.check_blobs(blobs)?;
                let (a, b) = (
                    blobs.first().ok_or_else(missing)?,
                    blobs.get(1).ok_or_else(missing)?,
                );
                let (a, b) = (crate::matmul::floats(a), crate::matmul::floats(b));
                let c = crate::matmul::product(*m as usize, *k as usize, *n as usize, &a, &b);
                crate::matmul::bytes(&c)
            }
            JobInput::Pow {
                prefix,
                difficulty_bits,
                start_nonce,
                end_nonce,
            } => (*start_nonce..*end_nonce)
                .find(|nonce| leading_zero_bits(&pow_digest(&prefix.0, *nonce)) >= *difficulty_bits)
                .map(|nonce| nonce.to_le_bytes().to_vec())
                .unwrap_or_default(),
            JobInput::MlpInference { layers, batch, .. } => {
                self.check_blobs(blobs)?;
                let (weights, inputs) = (
                    blobs.first().ok_or_else(missing)?,
                    blobs.get(1).ok_or_else(missing)?,
                );
                let (weights, inputs) = (
                    crate::matmul::floats(weights),
                    crate::matmul::floats(inputs),
                );
                crate::matmul::bytes(&mlp::forward(layers, &weights, &inputs, *batch as usize))
            }
            JobInput::Wgsl(_) | JobInput::LlmGenerate(_) => {
                return Err(TxError::Malformed("no CPU reference for this kind".into()));
            }
        })
    }
}

/// The messages framed in a blob: each as its length (u32 LE) then its bytes, nothing after
/// the last; at most [`SHA_MESSAGES_MAX`] of them (the digests travel inline).
pub fn framed_messages(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, TxError> {
    if bytes.len() > SHA_BLOB_BYTES_MAX + 4 * SHA_MESSAGES_MAX {
        return Err(TxError::LimitExceeded(format!(
            "a messages_blob holds at most {SHA_BLOB_BYTES_MAX} bytes of messages"
        )));
    }
    let mut messages = Vec::new();
    while !bytes.is_empty() {
        if messages.len() == SHA_MESSAGES_MAX {
            return Err(TxError::LimitExceeded(format!(
                "a sha256 job has at most {SHA_MESSAGES_MAX} messages"
            )));
        }
        let (length, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or_else(|| TxError::Malformed("a message's length is cut short".into()))?;
        let length = u32::from_le_bytes(*length) as usize;
        if rest.len() < length {
            return Err(TxError::Malformed("a message is cut short".into()));
        }
        messages.push(rest[..length].to_vec());
        bytes = &rest[length..];
    }
    if messages.is_empty() {
        return Err(TxError::Malformed(
            "a messages_blob holds no message".into(),
        ));
    }
    Ok(messages)
}

/// SHA-256(prefix ‖ nonce as 8 bytes LE).
pub fn pow_digest(prefix: &[u8], nonce: u64) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prefix);
    hasher.update(nonce.to_le_bytes());
    hasher.finalize().into()
}

/// Leading zero bits of a digest.
pub fn leading_zero_bits(digest: &[u8; 32]) -> u32 {
    let mut bits = 0;
    for byte in digest {
        if *byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

/// What a miner must offer to take a job.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    /// Least GPU memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_vram_mb: Option<u64>,
    /// Least reputation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_reputation: Option<u16>,
    /// Only miners of this pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_id: Option<String>,
    /// Only miners of this region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Only miners holding this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// When the platform re-executes a job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// A configured share of jobs, chosen by the job's id.
    #[default]
    Sampled,
    /// Every job.
    Always,
}

/// Body of `submit_job` as it travels (the input parsed by its kind).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitJobWire<'a> {
    job_kind: String,
    #[serde(borrow)]
    input: &'a serde_json::value::RawValue,
    max_price: Amount,
    redundancy: u8,
    #[serde(default)]
    constraints: Constraints,
    deadline_s: u64,
    #[serde(default)]
    verification: Option<Verification>,
}

/// A checked `submit_job` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitJob {
    /// Kind and input.
    #[serde(flatten)]
    pub input: JobInput,
    /// Most one miner is paid.
    pub max_price: Amount,
    /// Distinct miners that must return the same result.
    pub redundancy: u8,
    /// What miners must offer.
    pub constraints: Constraints,
    /// Seconds from submission until the job expires.
    pub deadline_s: u64,
    /// When the platform re-executes it.
    pub verification: Verification,
}

impl SubmitJob {
    /// Parses and checks a `submit_job` body.
    pub fn parse(body: &str) -> Result<SubmitJob, TxError> {
        let wire: SubmitJobWire =
            serde_json::from_str(body).map_err(|e| TxError::Malformed(format!("body: {e}")))?;
        let input = JobInput::parse(&wire.job_kind, wire.input.get())?;
        if wire.max_price == Amount::ZERO {
            return Err(TxError::Malformed("max_price must be positive".into()));
        }
        if !(1..=REDUNDANCY_MAX).contains(&wire.redundancy) {
            return Err(TxError::Malformed(format!(
                "redundancy is 1..={REDUNDANCY_MAX}"
            )));
        }
        if !(1..=DEADLINE_S_MAX).contains(&wire.deadline_s) {
            return Err(TxError::Malformed(format!(
                "deadline_s is 1..={DEADLINE_S_MAX}"
            )));
        }
        wire.max_price
            .0
            .checked_mul(u128::from(wire.redundancy))
            .ok_or_else(|| TxError::Malformed("max_price × redundancy overflows".into()))?;
        Ok(SubmitJob {
            input,
            max_price: wire.max_price,
            redundancy: wire.redundancy,
            constraints: wire.constraints,
            deadline_s: wire.deadline_s,
            verification: wire.verification.unwrap_or_default(),
        })
    }

    /// What the client escrows.
    pub fn escrow(&self) -> Amount {
        Amount(self.max_price.0 * u128::from(self.redundancy))
    }
}

/// Body of `cancel_job`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelJobBody {
    /// The job.
    pub job_id: Hash32,
}

/// A job as submitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Its id.
    pub id: Hash32,
    /// The client.
    pub owner: Address,
    /// What it asked.
    pub request: SubmitJob,
    /// What the client escrowed.
    pub escrow: Amount,
    /// When it was submitted.
    pub submitted_at_ms: u64,
    /// When it expires.
    pub deadline_ms: u64,
}

/// The bytes of results that came as blobs, by result hash (the host loads them for the
/// verification).
pub type BlobResults = BTreeMap<Hash32, Vec<u8>>;

/// A miner's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinerResult {
    /// The result bytes, when inline (empty when they are the blob `result_hash`).
    pub result: HexBytes,
    /// The bytes are in the blob store, under `result_hash` (results over
    /// [`RESULT_INLINE_MAX`]); the node checked the blob when the result arrived.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_blob: bool,
    /// Hex SHA-256 of them.
    pub result_hash: Hash32,
    /// GPU time the miner reports.
    pub gpu_ms: u64,
    /// What it asks to be paid (≤ max_price).
    pub price: Amount,
    /// Its receipt signature (checked by the node).
    pub receipt_signature: String,
    /// When it arrived.
    pub at_ms: u64,
}

impl MinerResult {
    /// The result's bytes: inline, or from `blobs` (`None` when they were not loaded).
    pub fn bytes<'r>(&'r self, blobs: &'r BlobResults) -> Option<&'r [u8]> {
        match self.in_blob {
            true => blobs.get(&self.result_hash).map(Vec::as_slice),
            false => Some(&self.result.0),
        }
    }
}

/// One miner's lease on a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The lease ends then unless a result came.
    pub lease_until_ms: u64,
    /// Its result, once returned.
    pub result: Option<MinerResult>,
    /// The lease ran out without a result.
    pub expired: bool,
}

/// Where a job is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobPhase {
    /// Waiting for miners or results.
    #[default]
    Open,
    /// Verified and paid.
    Completed,
    /// No correct result.
    Failed,
    /// Past its deadline.
    Expired,
    /// Canceled by its client.
    Canceled,
}

/// The wire state of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a miner.
    Queued,
    /// Leased to a miner.
    Assigned,
    /// Every lease holder returned; waiting for verification.
    Running,
    /// Verified and paid.
    Completed,
    /// No correct result.
    Failed,
    /// Past its deadline.
    Expired,
    /// Canceled.
    Canceled,
}

/// A payment out of a job's escrow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// The miner.
    pub miner: Address,
    /// Paid to it: its price less the fee.
    pub paid: Amount,
    /// To the treasury.
    pub fee: Amount,
    /// GPU time the miner reported (its busy time in its staking pools).
    #[serde(default)]
    pub gpu_ms: u64,
}

/// State of a job's stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobState {
    /// The job, once submitted.
    pub job: Option<JobRecord>,
    /// Leases by miner (a miner takes a job once).
    pub assignments: BTreeMap<Address, Assignment>,
    /// Where it is.
    pub phase: JobPhase,
    /// The accepted result's hash, once verified.
    pub verified_hash: Option<Hash32>,
    /// Whether the platform re-executed it.
    pub reexecuted: bool,
    /// Payments made.
    pub payments: Vec<Payment>,
    /// Refunded to the client.
    pub refunded: Amount,
}

impl JobState {
    /// Leases still running or holding a result.
    fn live(&self) -> impl Iterator<Item = (&Address, &Assignment)> {
        self.assignments.iter().filter(|(_, a)| !a.expired)
    }

    /// Results returned so far.
    pub fn results(&self) -> usize {
        self.live().filter(|(_, a)| a.result.is_some()).count()
    }

    /// Open slots: miners still needed.
    pub fn open_slots(&self) -> usize {
        let wanted = self
            .job
            .as_ref()
            .map_or(0, |j| usize::from(j.request.redundancy));
        match self.phase {
            JobPhase::Open => wanted.saturating_sub(self.live().count()),
            _ => 0,
        }
    }

    /// The wire state.
    pub fn status(&self) -> JobStatus {
        let wanted = self
            .job
            .as_ref()
            .map_or(0, |j| usize::from(j.request.redundancy));
        status_of(
            self.phase,
            wanted,
            self.live().map(|(_, a)| a.result.is_some()),
        )
    }

    /// Whether the job is done with (no more steps apply).
    pub fn is_final(&self) -> bool {
        self.phase != JobPhase::Open
    }
}

/// The wire state of a job in `phase` that wants `wanted` miners, whose live leases (not expired)
/// are `leases` (each: whether its result is in): queued while no miner holds it, running once
/// every wanted miner has returned its result, assigned in between.
pub(crate) fn status_of(
    phase: JobPhase,
    wanted: usize,
    leases: impl Iterator<Item = bool>,
) -> JobStatus {
    let (mut live, mut answered) = (0, 0);
    for has_result in leases {
        live += 1;
        answered += usize::from(has_result);
    }
    match phase {
        JobPhase::Completed => JobStatus::Completed,
        JobPhase::Failed => JobStatus::Failed,
        JobPhase::Expired => JobStatus::Expired,
        JobPhase::Canceled => JobStatus::Canceled,
        JobPhase::Open if live == 0 && wanted > 0 => JobStatus::Queued,
        JobPhase::Open if live >= wanted && answered == live => JobStatus::Running,
        JobPhase::Open => JobStatus::Assigned,
    }
}

/// A job's miner-side or timer steps, and its transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobCommand {
    /// A committed `submit_job`.
    Submit {
        /// The transaction (the job's id).
        tx: Hash32,
        /// The client.
        owner: Address,
        /// The request.
        request: Box<SubmitJob>,
        /// What its debit escrowed.
        escrow: Amount,
        /// Its commit time.
        committed_at_ms: u64,
    },
    /// A committed `cancel_job`.
    Cancel {
        /// The transaction.
        tx: Hash32,
        /// Its sender.
        sender: Address,
    },
    /// The scheduler leases the job to a miner.
    Assign {
        /// The miner.
        miner: Address,
        /// The lease's end.
        lease_until_ms: u64,
    },
    /// A miner's result (its request signature and receipt checked by the node).
    Result {
        /// The miner.
        miner: Address,
        /// The result.
        result: Box<MinerResult>,
    },
    /// A lease's end (a timer).
    LeaseEnd {
        /// The miner.
        miner: Address,
        /// The end that set the timer.
        lease_until_ms: u64,
    },
    /// Every result is in: verify, with the platform's reference when the host computed it.
    Verify {
        /// The reference result bytes, if re-executed.
        reference: Option<Vec<u8>>,
        /// The bytes of the results that came as blobs.
        blob_results: BlobResults,
        /// The platform's check of each result of an `llm_generate` job, by result hash.
        verdicts: BTreeMap<Hash32, bool>,
    },
    /// The deadline (a timer).
    Expire,
}

/// Events of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobEvent {
    /// Submitted; its escrow is held.
    Submitted(Box<JobRecord>),
    /// Leased to a miner.
    Assigned {
        /// The miner.
        miner: Address,
        /// Until then.
        lease_until_ms: u64,
    },
    /// A miner's lease ran out without a result.
    LeaseExpired {
        /// The miner.
        miner: Address,
        /// The lease's end.
        lease_until_ms: u64,
        /// Whether it costs the miner reputation (not when the deadline cut the lease short).
        #[serde(default = "yes")]
        penalized: bool,
    },
    /// A miner returned a result.
    ResultSubmitted {
        /// The miner.
        miner: Address,
        /// The result.
        result: Box<MinerResult>,
        /// Whether every result is now in (verification follows).
        complete: bool,
        /// The job's kind (its receipt's leaf names it).
        #[serde(default)]
        job_kind: String,
    },
    /// Verified: the correct miners are paid, the wrong ones not, the rest refunded.
    Verified {
        /// The accepted result's hash.
        result_hash: Hash32,
        /// Whether the platform re-executed it.
        reexecuted: bool,
        /// Payments to the correct miners.
        payments: Vec<Payment>,
        /// Miners whose result was disproved.
        disproved: Vec<Address>,
        /// The client.
        owner: Address,
        /// Refunded to it.
        refund: Amount,
    },
    /// No correct result: nothing paid, the escrow refunded.
    Failed {
        /// Miners whose result was disproved.
        disproved: Vec<Address>,
        /// The client.
        owner: Address,
        /// Refunded to it.
        refund: Amount,
    },
    /// Past its deadline: the escrow refunded.
    Expired {
        /// The client.
        owner: Address,
        /// Refunded to it.
        refund: Amount,
    },
    /// Canceled by its client: the escrow refunded.
    Canceled {
        /// The transaction.
        tx: Hash32,
        /// The client.
        owner: Address,
        /// Refunded to it.
        refund: Amount,
    },
    /// Verification found the job over already (it expired as the last result came).
    VerificationSkipped,
    /// A committed `cancel_job` that no longer applied.
    CancelRefused {
        /// The transaction.
        tx: Hash32,
        /// Why.
        reason: Refusal,
    },
}

impl JobEvent {
    /// Every type name, for the decoder.
    pub const TYPES: [&'static str; 10] = [
        "JobSubmitted.v1",
        "JobAssigned.v1",
        "JobLeaseExpired.v1",
        "JobResultSubmitted.v1",
        "JobVerified.v1",
        "JobFailed.v1",
        "JobExpired.v1",
        "JobCanceled.v1",
        "JobCancelRefused.v1",
        "JobVerificationSkipped.v1",
    ];

    /// Versioned type name.
    pub fn event_type(&self) -> &'static str {
        let index = match self {
            JobEvent::Submitted(_) => 0,
            JobEvent::Assigned { .. } => 1,
            JobEvent::LeaseExpired { .. } => 2,
            JobEvent::ResultSubmitted { .. } => 3,
            JobEvent::Verified { .. } => 4,
            JobEvent::Failed { .. } => 5,
            JobEvent::Expired { .. } => 6,
            JobEvent::Canceled { .. } => 7,
            JobEvent::CancelRefused { .. } => 8,
            JobEvent::VerificationSkipped => 9,
        };
        Self::TYPES[index]
    }

    /// The transaction that caused it, if any.
    pub fn tx(&self) -> Option<Hash32> {
        match self {
            JobEvent::Submitted(job) => Some(job.id),
            JobEvent::Canceled { tx, .. } | JobEvent::CancelRefused { tx, .. } => Some(*tx),
            _ => None,
        }
    }
}

/// Identity of a job.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JobId {
    /// Chain.
    pub chain_id: String,
    /// The `submit_job` hash.
    pub id: Hash32,
}

/// Facts a job's decisions need: the share of jobs the platform re-executes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobFacts {
    /// Basis points of `sampled` jobs re-executed.
    pub sample_bps: u32,
}

/// The job aggregate.
#[derive(Debug)]
pub enum JobAggregate {}

fn keyed(tag: &str, id: &Hash32, miner: Option<&Address>, at_ms: Option<u64>) -> u128 {
    let mut subject = id.0.to_vec();
    if let Some(miner) = miner {
        subject.extend_from_slice(&miner.0);
    }
    if let Some(at_ms) = at_ms {
        subject.extend_from_slice(&at_ms.to_be_bytes());
    }
    event_id(tag, &subject)
}

/// Id of the event `command` records on job `id`.
pub fn command_event_id(id: &Hash32, command: &JobCommand) -> u128 {
    match command {
        JobCommand::Submit { tx, .. } | JobCommand::Cancel { tx, .. } => event_id("job-tx", &tx.0),
        JobCommand::Assign { miner, .. } => keyed("job-assigned", id, Some(miner), None),
        JobCommand::Result { miner, .. } => keyed("job-result", id, Some(miner), None),
        JobCommand::LeaseEnd {
            miner,
            lease_until_ms,
        } => keyed("job-lease-expired", id, Some(miner), Some(*lease_until_ms)),
        JobCommand::Verify { .. } => keyed("job-verified", id, None, None),
        JobCommand::Expire => keyed("job-expired", id, None, None),
    }
}

/// Whether the platform re-executes a `sampled` job: a share of `sample_bps` basis points,
/// drawn from the node's secret, the job and its results. A miner cannot tell beforehand
/// whether its result will be re-executed (the draw depends on a secret and on every result);
/// the decision is recorded with the verification, so replays never draw again.
pub fn sampled(secret: &[u8; 32], state: &JobState, sample_bps: u32) -> bool {
    let Some(job) = &state.job else { return false };
    let mut parts: Vec<&[u8]> = vec![secret, &job.id.0];
    let results: Vec<&MinerResult> = state
        .live()
        .filter_map(|(_, a)| a.result.as_ref())
        .collect();
    parts.extend(results.iter().map(|r| &r.result_hash.0[..]));
    let draw = Hash32::digest_parts(&parts);
    u32::from_be_bytes([draw.0[0], draw.0[1], draw.0[2], draw.0[3]]) % 10_000 < sample_bps
}

/// Whether the host must compute the platform's reference for a job whose results are all in:
/// the job asks it always, the draw picks it ([`sampled`]), or its results disagree.
/// `blob_results` holds the bytes of results that came as blobs (one not there disagrees).
pub fn needs_reference(
    state: &JobState,
    secret: &[u8; 32],
    sample_bps: u32,
    blob_results: &BlobResults,
) -> bool {
    let Some(job) = &state.job else { return false };
    if state.is_final() {
        return false;
    }
    let results: Vec<&MinerResult> = state
        .live()
        .filter_map(|(_, a)| a.result.as_ref())
        .collect();
    let input = &job.request.input;
    let bytes: Option<Vec<&[u8]>> = results.iter().map(|r| r.bytes(blob_results)).collect();
    let disagree = bytes.is_none_or(|bytes| bytes.windows(2).any(|w| !input.agree(w[0], w[1])));
    job.request.verification == Verification::Always
        || sampled(secret, state, sample_bps)
        || disagree
}

/// The platform's fee on `price` (rounded down).
pub fn fee_of(price: Amount) -> Amount {
    Amount((price.0 / 10_000) * FEE_BPS + (price.0 % 10_000) * FEE_BPS / 10_000)
}

/// Why `miner` may not return a result for the job in `state` at `now_ms`.
pub fn check_result(
    state: &JobState,
    miner: &Address,
    result: &MinerResult,
    now_ms: u64,
) -> Result<(), TxError> {
    let job = state
        .job
        .as_ref()
        .ok_or_else(|| TxError::NotFound("no such job".into()))?;
    if state.is_final() {
        return Err(TxError::NotActive(format!("job {} is over", job.id)));
    }
    let assignment = state
        .assignments
        .get(miner)
        .filter(|a| !a.expired && a.lease_until_ms > now_ms)
        .ok_or_else(|| TxError::NotAssigned(format!("job {} is not leased to {miner}", job.id)))?;
    if assignment.result.is_some() {
        return Err(TxError::NotActive(format!(
            "{miner} already returned its result"
        )));
    }
    if result.price > job.request.max_price {
        return Err(TxError::BadResult(format!(
            "price {} above the job's max_price {}",
            result.price, job.request.max_price
        )));
    }
    if result.in_blob {
        // The blob store holds bytes under their own hash: the node checked it has them.
        return Ok(());
    }
    if result.result.0.len() > RESULT_INLINE_MAX {
        return Err(TxError::BadResult(format!(
            "a result over {RESULT_INLINE_MAX} bytes travels as a blob (result_blob)"
        )));
    }
    if Hash32::digest(&result.result.0) != result.result_hash {
        return Err(TxError::BadResult(
            "result_hash is not the SHA-256 of the result".into(),
        ));
    }
    Ok(())
}

/// The verification of a job whose results are all in. A result that came as a blob whose bytes
/// the host could not load (`blob_results`) is neither paid nor blamed.
/// An `llm_generate` job's results are each checked by the platform (`verdicts`, by result
/// hash): those that hold are paid, those that do not are disproved, unchecked ones neither.
fn verify(
    state: &JobState,
    reference: Option<Vec<u8>>,
    blob_results: &BlobResults,
    verdicts: &BTreeMap<Hash32, bool>,
) -> Option<JobEvent> {
    let job = state.job.as_ref()?;
    if state.is_final()
        || state.open_slots() > 0
        || state.results() < usize::from(job.request.redundancy)
    {
        return None;
    }
    let all: Vec<(Address, &MinerResult)> = state
        .live()
        .filter_map(|(m, a)| a.result.as_ref().map(|r| (*m, r)))
        .collect();
    let results: Vec<(Address, &MinerResult, &[u8])> = all
        .iter()
        .filter_map(|(m, r)| Some((*m, *r, r.bytes(blob_results)?)))
        .collect();
    let input = &job.request.input;
    if let JobInput::LlmGenerate(_) = input {
        let verdict = |r: &MinerResult| verdicts.get(&r.result_hash).copied();
        let correct: Vec<_> = results
            .iter()
            .filter(|(_, r, _)| verdict(r) == Some(true))
            .copied()
            .collect();
        let disproved: Vec<Address> = results
            .iter()
            .filter(|(_, r, _)| verdict(r) == Some(false))
            .map(|(m, _, _)| *m)
            .collect();
        return Some(settle(job, correct, disproved, !verdicts.is_empty()));
    }
    // The yardstick: the platform's reference, or (when every result is there and they agree)
    // the first result.
    let yardstick: &[u8] = match &reference {
        Some(bytes) => bytes,
        None if results.len() == all.len()
            && results.windows(2).all(|w| input.agree(w[0].2, w[1].2)) =>
        {
            results[0].2
        }
        // Results disagree and nothing can settle it (the input's blob is gone): no result is
        // accepted, nobody is blamed, the client is refunded.
        None => {
            return Some(JobEvent::Failed {
                disproved: Vec::new(),
                owner: job.owner,
                refund: job.escrow,
            });
        }
    };
    let (correct, wrong): (Vec<_>, Vec<_>) = results
        .into_iter()
        .partition(|(_, _, bytes)| input.agree(bytes, yardstick));
    let disproved: Vec<Address> = wrong.into_iter().map(|(m, _, _)| m).collect();
    Some(settle(job, correct, disproved, reference.is_some()))
}

/// The end of a verification: each correct miner paid its price less the fee, the rest
/// refunded; no correct result, the job failed and the escrow refunded.
fn settle(
    job: &JobRecord,
    correct: Vec<(Address, &MinerResult, &[u8])>,
    disproved: Vec<Address>,
    reexecuted: bool,
) -> JobEvent {
    if correct.is_empty() {
        return JobEvent::Failed {
            disproved,
            owner: job.owner,
            refund: job.escrow,
        };
    }
    let payments: Vec<Payment> = correct
        .iter()
        .map(|(miner, result, _)| {
            let fee = fee_of(result.price);
            Payment {
                miner: *miner,
                paid: Amount(result.price.0 - fee.0),
                fee,
                gpu_ms: result.gpu_ms,
            }
        })
        .collect();
    let spent: u128 = correct.iter().map(|(_, r, _)| r.price.0).sum();
    // The accepted result is a correct miner's (a float one may differ from the reference in
    // its last bits).
    let accepted = correct[0].1.result_hash;
    JobEvent::Verified {
        result_hash: accepted,
        reexecuted,
        payments,
        disproved,
        owner: job.owner,
        refund: Amount(job.escrow.0 - spent),
    }
}

impl Aggregate for JobAggregate {
    type Id = JobId;
    type Facts = JobFacts;
    type State = JobState;
    type Command = JobCommand;
    type Event = JobEvent;
    type Error = TxError;

    const NAME: &'static str = "job";

    fn stream(id: &JobId) -> String {
        job_stream(&id.chain_id, &id.id)
    }

    fn decide(
        state: &JobState,
        ctx: &Context<'_, JobAggregate>,
        command: JobCommand,
    ) -> Result<Vec<JobEvent>, TxError> {
        let now_ms = ctx.now_ms;
        let event = match command {
            JobCommand::Submit {
                tx,
                owner,
                request,
                escrow,
                committed_at_ms,
            } => {
                if state.job.is_some() {
                    // Its event is older than the host remembers: nothing new to record.
                    return Ok(Vec::new());
                }
                let deadline_ms =
                    committed_at_ms.saturating_add(request.deadline_s.saturating_mul(1000));
                Some(JobEvent::Submitted(Box::new(JobRecord {
                    id: tx,
                    owner,
                    request: *request,
                    escrow,
                    submitted_at_ms: committed_at_ms,
                    deadline_ms,
                })))
            }
            JobCommand::Cancel { tx, sender } => Some(match check_cancel(state, &sender) {
                Ok(job) => JobEvent::Canceled {
                    tx,
                    owner: job.owner,
                    refund: job.escrow,
                },
                Err(error) => JobEvent::CancelRefused {
                    tx,
                    reason: error.into(),
                },
            }),
            JobCommand::Assign {
                miner,
                lease_until_ms,
            } => {
                if state.open_slots() == 0 || state.assignments.contains_key(&miner) {
                    return Err(TxError::NotActive("the job takes no more miners".into()));
                }
                let deadline_ms = state.job.as_ref().map_or(0, |j| j.deadline_ms);
                if lease_until_ms <= now_ms || now_ms >= deadline_ms {
                    return Err(TxError::NotActive("the job is past its deadline".into()));
                }
                Some(JobEvent::Assigned {
                    miner,
                    lease_until_ms,
                })
            }
            JobCommand::Result { miner, result } => {
                check_result(state, &miner, &result, now_ms)?;
                let job = state.job.as_ref().expect("checked");
                let complete = state.results() + 1 == usize::from(job.request.redundancy)
                    && state.open_slots() == 0;
                Some(JobEvent::ResultSubmitted {
                    miner,
                    result,
                    complete,
                    job_kind: job.request.input.kind().to_string(),
                })
            }
            JobCommand::LeaseEnd {
                miner,
                lease_until_ms,
            } => state
                .assignments
                .get(&miner)
                .filter(|a| {
                    !state.is_final()
                        && !a.expired
                        && a.result.is_none()
                        && a.lease_until_ms == lease_until_ms
                        && now_ms >= lease_until_ms
                })
                .map(|_| JobEvent::LeaseExpired {
                    miner,
                    lease_until_ms,
                    // A lease the deadline cut short costs the miner nothing.
                    penalized: state
                        .job
                        .as_ref()
                        .is_some_and(|j| lease_until_ms < j.deadline_ms),
                }),
            JobCommand::Verify {
                reference,
                blob_results,
                verdicts,
            } => Some(
                verify(state, reference, &blob_results, &verdicts)
                    .unwrap_or(JobEvent::VerificationSkipped),
            ),
            // A job whose results are all in is settled by its verification, not its deadline.
            JobCommand::Expire => state
                .job
                .as_ref()
                .filter(|job| {
                    !state.is_final()
                        && state.status() != JobStatus::Running
                        && now_ms >= job.deadline_ms
                })
                .map(|job| JobEvent::Expired {
                    owner: job.owner,
                    refund: job.escrow,
                }),
        };
        Ok(event.into_iter().collect())
    }

    fn evolve(state: &mut JobState, event: &JobEvent) {
        match event {
            JobEvent::Submitted(job) => {
                assert!(state.job.is_none(), "a job is submitted once");
                state.job = Some((**job).clone());
            }
            JobEvent::Assigned {
                miner,
                lease_until_ms,
            } => {
                state.assignments.insert(
                    *miner,
                    Assignment {
                        lease_until_ms: *lease_until_ms,
                        result: None,
                        expired: false,
                    },
                );
            }
            JobEvent::LeaseExpired { miner, .. } => {
                if let Some(a) = state.assignments.get_mut(miner) {
                    a.expired = true;
                }
            }
            JobEvent::ResultSubmitted { miner, result, .. } => {
                let a = state.assignments.get_mut(miner).expect("a leased miner");
                a.result = Some((**result).clone());
            }
            JobEvent::Verified {
                result_hash,
                reexecuted,
                payments,
                refund,
                ..
            } => {
                state.phase = JobPhase::Completed;
                state.verified_hash = Some(*result_hash);
                state.reexecuted = *reexecuted;
                state.payments = payments.clone();
                state.refunded = *refund;
                let job = state.job.as_ref().expect("submitted");
                let out: u128 =
                    payments.iter().map(|p| p.paid.0 + p.fee.0).sum::<u128>() + refund.0;
                assert_eq!(out, job.escrow.0, "escrow = paid + fees + refunded");
            }
            JobEvent::Failed { refund, .. } => {
                state.phase = JobPhase::Failed;
                state.refunded = *refund;
            }
            JobEvent::Expired { refund, .. } => {
                state.phase = JobPhase::Expired;
                state.refunded = *refund;
            }
            JobEvent::Canceled { refund, .. } => {
                state.phase = JobPhase::Canceled;
                state.refunded = *refund;
            }
            JobEvent::CancelRefused { .. } | JobEvent::VerificationSkipped => {}
        }
    }

    fn event_id(id: &JobId, event: &JobEvent) -> u128 {
        let id = &id.id;
        match event {
            JobEvent::Submitted(job) => event_id("job-tx", &job.id.0),
            JobEvent::Canceled { tx, .. } | JobEvent::CancelRefused { tx, .. } => {
                event_id("job-tx", &tx.0)
            }
            JobEvent::Assigned { miner, .. } => keyed("job-assigned", id, Some(miner), None),
            JobEvent::ResultSubmitted { miner, .. } => keyed("job-result", id, Some(miner), None),
            JobEvent::LeaseExpired {
                miner,
                lease_until_ms,
                ..
            } => keyed("job-lease-expired", id, Some(miner), Some(*lease_until_ms)),
            JobEvent::Verified { .. } | JobEvent::Failed { .. } | JobEvent::VerificationSkipped => {
                keyed("job-verified", id, None, None)
            }
            JobEvent::Expired { .. } => keyed("job-expired", id, None, None),
        }
    }

    fn command_event_id(id: &JobId, command: &JobCommand) -> Option<u128> {
        Some(command_event_id(&id.id, command))
    }

    fn batch_class(_command: &JobCommand) -> BatchClass {
        BatchClass::Decision
    }

    fn encode(event: &JobEvent) -> (&'static str, Vec<u8>) {
        let data = serde_json::to_vec(event).expect("events serialize");
        (event.event_type(), data)
    }

    fn from_stored(event: DomainEvent) -> Option<JobEvent> {
        match event {
            DomainEvent::Job(event) => Some(event),
            _ => None,
        }
    }
}

/// Why `sender` may not cancel the job in `state`.
pub fn check_cancel<'s>(state: &'s JobState, sender: &Address) -> Result<&'s JobRecord, TxError> {
    let job = state
        .job
        .as_ref()
        .ok_or_else(|| TxError::NotFound("no such job".into()))?;
    if *sender != job.owner {
        return Err(TxError::NotOwner(format!(
            "only {} may cancel it",
            job.owner
        )));
    }
    if state.status() != JobStatus::Queued {
        return Err(TxError::NotActive(format!(
            "job {} is {:?}: only a queued job is canceled",
            job.id,
            state.status()
        )));
    }
    Ok(job)
}
