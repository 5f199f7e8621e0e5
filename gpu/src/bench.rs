//! Benchmarks: every kernel at given sizes, against its CPU reference.
//!
//! Figures are best-of-`repeats` after one warm-up run (which also compiles the pipeline).
//! CPU references run single-threaded. On the software adapter (lavapipe) the GPU figures
//! measure correctness plumbing, not speed.

use std::fmt;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::adapter::AdapterReport;
use crate::error::{GpuError, Result};
use crate::executor::{Executor, Job};
use crate::kernels::matmul::{Matmul, matmul_cpu};
use crate::kernels::mlp::{DenseLayer, Mlp, MlpInference, mlp_cpu};
use crate::kernels::sha256::{ProofOfWork, pow_cpu, sha256_cpu};
use crate::limits::JobLimits;

/// Sizes to measure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BenchConfig {
    /// Square matmul size N (N×N×N).
    pub matmul_n: u32,
    /// Messages in the SHA-256 batch.
    pub sha_messages: u32,
    /// Bytes per message.
    pub sha_message_bytes: u32,
    /// Proof-of-work difficulty (high enough not to be found: the search then runs in full).
    pub pow_bits: u32,
    /// Nonces tried by the proof-of-work run.
    pub pow_nonces: u64,
    /// MLP batch size.
    pub mlp_batch: u32,
    /// MLP layer widths, input first.
    pub mlp_widths: Vec<u32>,
    /// Timed runs per figure (best kept).
    pub repeats: u32,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            matmul_n: 256,
            sha_messages: 16_384,
            sha_message_bytes: 64,
            pow_bits: 40,
            pow_nonces: 1 << 20,
            mlp_batch: 256,
            mlp_widths: vec![256, 512, 512, 10],
            repeats: 3,
        }
    }
}

/// One measured figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchRow {
    /// Kernel name.
    pub kernel: String,
    /// Problem size, in words.
    pub size: String,
    /// Unit of `gpu` and `cpu` (higher is better, except for `µs`).
    pub unit: String,
    /// GPU figure.
    pub gpu: f64,
    /// CPU reference figure, when there is one.
    pub cpu: Option<f64>,
    /// GPU / CPU (higher: GPU faster), when there is a CPU figure.
    pub ratio: Option<f64>,
}

/// The benchmark's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// What ran it.
    pub adapter: AdapterReport,
    /// One row per figure.
    pub rows: Vec<BenchRow>,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "adapter: {} ({}, {})",
            self.adapter.name, self.adapter.backend, self.adapter.device_type
        )?;
        writeln!(
            f,
            "{:<16} {:<26} {:>14} {:>14} {:>9}  unit",
            "kernel", "size", "gpu", "cpu", "gpu/cpu"
        )?;
        for r in &self.rows {
            let cpu = r.cpu.map_or("-".to_string(), |c| format!("{c:.3}"));
            let ratio = r.ratio.map_or("-".to_string(), |x| format!("{x:.3}"));
            writeln!(
                f,
                "{:<16} {:<26} {:>14.3} {:>14} {:>9}  {}",
                r.kernel, r.size, r.gpu, cpu, ratio, r.unit
            )?;
        }
        Ok(())
    }
}

/// Best wall time of `repeats` runs of `f`, after one warm-up, in seconds.
fn best_of<T>(repeats: u32, mut f: impl FnMut() -> Result<T>) -> Result<f64> {
    f()?;
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best.max(1e-9))
}

/// A tiny deterministic generator (benchmarks need data, not randomness).
struct Lcg(u64);

impl Lcg {
    fn next_f32(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next_f32()).collect()
    }
}

fn row(kernel: &str, size: String, unit: &str, gpu: f64, cpu: Option<f64>) -> BenchRow {
    BenchRow {
        kernel: kernel.into(),
        size,
        unit: unit.into(),
        gpu,
        cpu,
        ratio: cpu.map(|c| gpu / c),
    }
}

/// Runs every kernel at the configured sizes on the process's executor.
pub fn run(config: &BenchConfig) -> Result<BenchReport> {
    let exec = Executor::global()?;
    run_on(exec, config)
}

/// Like [`run`], on a given executor.
pub fn run_on(exec: &Executor, config: &BenchConfig) -> Result<BenchReport> {
    let limits = JobLimits::default();
    let reps = config.repeats;
    let mut rng = Lcg(42);
    let mut rows = Vec::new();

    // Dispatch overhead: one invocation, one word written and read back.
    let t = best_of(reps.max(10), || exec.run(Job::Noop, &limits))?;
    rows.push(row(
        "dispatch",
        "1 invocation + readback".into(),
        "µs",
        t * 1e6,
        None,
    ));

    // matmul
    let n = config.matmul_n;
    if n > 0 {
        let len = (n as usize) * (n as usize);
        let a = rng.vec(len);
        let b = rng.vec(len);
        let job = Matmul {
            m: n,
            k: n,
            n,
            a: a.clone(),
            b: b.clone(),
        };
        let flops = 2.0 * f64::from(n).powi(3);
        let g = best_of(reps, || exec.matmul(job.clone(), &limits))?;
        let c = best_of(reps, || {
            Ok(matmul_cpu(&a, &b, n as usize, n as usize, n as usize))
        })?;
        rows.push(row(
            "matmul",
            format!("{n}x{n}x{n} f32"),
            "GFLOP/s",
            flops / g / 1e9,
            Some(flops / c / 1e9),
        ));
    }

    // sha256 batch
    if config.sha_messages > 0 {
        let messages: Vec<Vec<u8>> = (0..config.sha_messages)
            .map(|i| {
                (0..config.sha_message_bytes)
                    .map(|j| (i.wrapping_mul(31).wrapping_add(j)) as u8)
                    .collect()
            })
            .collect();
        let count = f64::from(config.sha_messages);
        let g = best_of(reps, || exec.sha256_batch(messages.clone(), &limits))?;
        let c = best_of(reps, || {
            Ok(messages.iter().map(|m| sha256_cpu(m)).collect::<Vec<_>>())
        })?;
        rows.push(row(
            "sha256 batch",
            format!("{} x {} B", config.sha_messages, config.sha_message_bytes),
            "Mhash/s",
            count / g / 1e6,
            Some(count / c / 1e6),
        ));
    }

    // proof of work: a difficulty not met in range, so the whole range is searched.
    if config.pow_nonces > 0 {
        let prefix = b"aitbc proof-of-work benchmark prefix".to_vec();
        let job = ProofOfWork {
            prefix: prefix.clone(),
            difficulty_bits: config.pow_bits,
            start_nonce: 0,
            max_nonces: config.pow_nonces,
        };
        let mut tried = 0u64;
        let g = best_of(reps, || {
            tried = exec.proof_of_work(job.clone(), &limits)?.nonces_tried;
            Ok(())
        })?;
        let mut cpu_tried = 0u64;
        let c = best_of(reps, || {
            cpu_tried = pow_cpu(&prefix, config.pow_bits, 0, config.pow_nonces)
                .map_or(config.pow_nonces, |n| n + 1);
            Ok(())
        })?;
        rows.push(row(
            "sha256 pow",
            format!("{} nonces, {} bits", config.pow_nonces, config.pow_bits),
            "Mhash/s",
            tried as f64 / g / 1e6,
            Some(cpu_tried as f64 / c / 1e6),
        ));
    }

    // MLP
    if config.mlp_batch > 0 && config.mlp_widths.len() >= 2 {
        let layers = config
            .mlp_widths
            .windows(2)
            .map(|w| DenseLayer {
                inputs: w[0],
                outputs: w[1],
                weights: rng.vec((w[0] as usize) * (w[1] as usize)),
                biases: rng.vec(w[1] as usize),
            })
            .collect();
        let network = Mlp { layers };
        let inputs = rng.vec(config.mlp_batch as usize * config.mlp_widths[0] as usize);
        let job = MlpInference {
            network: network.clone(),
            batch: config.mlp_batch,
            inputs: inputs.clone(),
        };
        let batch = f64::from(config.mlp_batch);
        let g = best_of(reps, || exec.mlp(job.clone(), &limits))?;
        let c = best_of(reps, || {
            Ok(mlp_cpu(&network, &inputs, config.mlp_batch as usize))
        })?;
        let widths: Vec<String> = config.mlp_widths.iter().map(u32::to_string).collect();
        rows.push(row(
            "mlp",
            format!("batch {} [{}]", config.mlp_batch, widths.join("-")),
            "ksamples/s",
            batch / g / 1e3,
            Some(batch / c / 1e3),
        ));
    }

    if rows.is_empty() {
        return Err(GpuError::InvalidJob("benchmark: nothing to run".into()));
    }
    Ok(BenchReport {
        adapter: exec.adapter().clone(),
        rows,
    })
}
