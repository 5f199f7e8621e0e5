//! The job kinds on this process's GPU executor: what a miner runs for each kind, and the
//! node's [`ShaderHost`] (validation and re-execution of clients' shaders).

use anyhow::anyhow;
use domain::TxError;
use domain::job::JobInput;
use domain::llm_job::{LlmRequest, LlmResult};
use domain::matmul::{bytes, floats};
use domain::mlp;
use domain::wgsl::{ShaderError, ShaderHost, ShaderJob};
use gpu::kernels::llm::LlmJob;
use gpu::kernels::mlp::{DenseLayer, Mlp, MlpInference};
use gpu::kernels::wgsl::WgslJob;
use gpu::{AdapterReport, Executor, GpuError, JobLimits};
use http::models::LoadedModel;

/// The result bytes of a job (API.md's layout for its kind); `blobs` holds the bytes of its
/// input blobs in [`JobInput::blobs`]'s order.
pub fn run(executor: &Executor, input: &JobInput, blobs: &[Vec<u8>]) -> anyhow::Result<Vec<u8>> {
    let limits = JobLimits::default();
    let gpu = |e: GpuError| anyhow!("{e}");
    input.check_blobs(blobs)?;
    let blob = |i: usize| {
        blobs
            .get(i)
            .map(Vec::as_slice)
            .ok_or_else(|| anyhow!("input blob {i} missing"))
    };
    match input {
        JobInput::Sha256 { .. } => {
            let messages = input.sha256_messages(blobs.first().map(Vec::as_slice))?;
            Ok(executor
                .sha256_batch(messages, &limits)
                .map_err(gpu)?
                .concat())
        }
        JobInput::Matmul { m, k, n, .. } => {
            let job = gpu::kernels::matmul::Matmul {
                m: *m,
                k: *k,
                n: *n,
                a: floats(blob(0)?),
                b: floats(blob(1)?),
            };
            Ok(bytes(&executor.matmul(job, &limits).map_err(gpu)?))
        }
        JobInput::Pow {
            prefix,
            difficulty_bits,
            start_nonce,
            end_nonce,
        } => {
            let job = gpu::kernels::sha256::ProofOfWork {
                prefix: prefix.0.clone(),
                difficulty_bits: *difficulty_bits,
                start_nonce: *start_nonce,
                max_nonces: end_nonce - start_nonce,
            };
            let outcome = executor.proof_of_work(job, &limits).map_err(gpu)?;
            Ok(outcome
                .solution
                .map(|s| s.nonce.to_le_bytes().to_vec())
                .unwrap_or_default())
        }
        JobInput::MlpInference { layers, batch, .. } => {
            let weights = floats(blob(0)?);
            let network = Mlp {
                layers: layers
                    .iter()
                    .zip(mlp::split_weights(layers, &weights))
                    .map(|(shape, (w, b))| DenseLayer {
                        inputs: shape.inputs,
                        outputs: shape.outputs,
                        weights: w.to_vec(),
                        biases: b.to_vec(),
                    })
                    .collect(),
            };
            let job = MlpInference {
                network,
                batch: *batch,
                inputs: floats(blob(1)?),
            };
            Ok(bytes(&executor.mlp(job, &limits).map_err(gpu)?))
        }
        JobInput::Wgsl(shader) => Ok(executor
            .wgsl(wgsl_job(shader, blobs), &limits)
            .map_err(gpu)?
            .concat()),
        JobInput::LlmGenerate(_) => Err(anyhow!("an llm_generate job runs with its model")),
    }
}

/// The result bytes of an `llm_generate` job: `model` generating on the executor, given at
/// most `wall_ms`.
pub fn generate(
    executor: &Executor,
    model: &LoadedModel,
    request: &LlmRequest,
    wall_ms: u64,
) -> anyhow::Result<Vec<u8>> {
    let job = LlmJob {
        model: std::sync::Arc::clone(&model.model),
        prompt: model.prompt_ids(request),
        max_tokens: request.max_tokens,
        eos: model.tokenizer.eos,
        sampling: http::models::sampling(request),
    };
    let limits = JobLimits {
        wall_time_max_ms: wall_ms.clamp(1, gpu::limits::WALL_TIME_MAX_MS),
        ..JobLimits::default()
    };
    let output = executor.llm(job, &limits).map_err(|e| anyhow!("{e}"))?;
    Ok(model.result(output.tokens).to_bytes())
}

/// Testing only: a well-formed `llm_generate` result whose first token is not the model's
/// choice (what a miner that skips the work would send).
pub fn forge_llm(model: &LoadedModel, result: &[u8]) -> Vec<u8> {
    let Some(LlmResult { mut token_ids, .. }) = LlmResult::from_bytes(result) else {
        return result.to_vec();
    };
    let vocab = model.model.config.vocab as u32;
    let first = token_ids.first().copied().unwrap_or(0);
    let mut other = (first + 1) % vocab;
    if other == model.tokenizer.eos {
        other = (other + 1) % vocab;
    }
    match token_ids.first_mut() {
        Some(token) => *token = other,
        None => token_ids.push(other),
    }
    model.result(token_ids).to_bytes()
}

/// The executor's form of a shader job.
fn wgsl_job(job: &ShaderJob, inputs: &[Vec<u8>]) -> WgslJob {
    WgslJob {
        source: job.source.clone(),
        entry_point: job.entry_point.clone(),
        inputs: inputs.to_vec(),
        output_sizes: job.output_sizes(),
        workgroups: job.workgroups,
    }
}

/// The node's GPU executor for clients' shaders. Shaders are validated against the limits every
/// WebGPU adapter offers (so any miner can run what the node accepts), without a device; the
/// process's executor starts with the first shader the platform re-executes.
pub struct NodeShaders;

fn refused(e: GpuError) -> ShaderError {
    match e {
        GpuError::LimitExceeded { .. } => {
            ShaderError::Refused(TxError::LimitExceeded(e.to_string()))
        }
        GpuError::InvalidJob(_) | GpuError::ShaderRejected { .. } => {
            ShaderError::Refused(TxError::Malformed(e.to_string()))
        }
        GpuError::Busy { .. } => ShaderError::Busy(e.to_string()),
        other => ShaderError::NotRun(other.to_string()),
    }
}

impl ShaderHost for NodeShaders {
    fn validate(&self, job: &ShaderJob, inputs: &[Vec<u8>]) -> Result<(), ShaderError> {
        wgsl_job(job, inputs)
            .validate(&JobLimits::default(), &AdapterReport::portable())
            .map_err(refused)
    }

    fn run(&self, job: &ShaderJob, inputs: &[Vec<u8>]) -> Result<Vec<u8>, ShaderError> {
        let executor = Executor::global().map_err(|e| ShaderError::NotRun(e.to_string()))?;
        let outputs = executor
            .wgsl(wgsl_job(job, inputs), &JobLimits::default())
            .map_err(refused)?;
        Ok(outputs.concat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::hash::Hash32;
    use domain::wgsl::{Compare, ShaderBuffer};

    fn job(source: &str) -> ShaderJob {
        ShaderJob {
            source: source.into(),
            entry_point: "main".into(),
            workgroups: [1, 1, 1],
            buffers: vec![
                ShaderBuffer {
                    binding: 0,
                    blob: Some(Hash32([0; 32])),
                    size: None,
                    output: false,
                },
                ShaderBuffer {
                    binding: 1,
                    blob: None,
                    size: Some(16),
                    output: true,
                },
            ],
            compare: Compare::Exact,
        }
    }

    const DOUBLE: &str = "@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> y: array<u32>;
@compute @workgroup_size(4) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    y[id.x] = x[id.x] * 2u;
}";

    #[test]
    fn shaders_are_checked_without_a_device_and_refusals_name_the_line() {
        let input = vec![vec![1u8; 16]];
        assert!(NodeShaders.validate(&job(DOUBLE), &input).is_ok());
        let broken = DOUBLE.replace("* 2u", "* two");
        match NodeShaders.validate(&job(&broken), &input) {
            Err(ShaderError::Refused(TxError::Malformed(message))) => {
                assert!(message.contains("line 4"), "{message}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let wide = DOUBLE.replace("workgroup_size(4)", "workgroup_size(1024)");
        assert!(matches!(
            NodeShaders.validate(&job(&wide), &input),
            Err(ShaderError::Refused(TxError::LimitExceeded(_)))
        ));
    }
}
