//! `mlp_inference`: a batched dense network (ReLU between layers, linear output).
//!
//! GPU: each layer is one dispatch of the tiled `matmul.wgsl` kernel with its fused bias/ReLU
//! epilogue (activations stay on the GPU between layers; one submission per batch). CPU
//! reference: [`mlp_cpu`]. Results agree within `1e-4 · (1 + |cpu|)` for layers up to a few
//! hundred wide with weights of order 1/√fan_in (rounding only; see [`super::matmul`]).

use serde::{Deserialize, Serialize};

use crate::device::{Deadline, Gpu, storage_usage};
use crate::error::{GpuError, LimitKind, Result};
use crate::kernels::matmul::{self, BINDINGS, SOURCE};
use crate::limits::{MLP_LAYERS_MAX, MLP_WIDTH_MAX, Plan};

/// One dense layer: `y = x · W + b`, W stored row-major as `inputs × outputs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseLayer {
    /// Input width.
    pub inputs: u32,
    /// Output width.
    pub outputs: u32,
    /// `inputs · outputs` weights; `weights[i * outputs + j]` links input i to output j.
    pub weights: Vec<f32>,
    /// `outputs` biases.
    pub biases: Vec<f32>,
}

/// A network: ReLU after every layer but the last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mlp {
    /// The layers, input first.
    pub layers: Vec<DenseLayer>,
}

/// Run `network` over `batch` samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpInference {
    /// The network.
    pub network: Mlp,
    /// Samples.
    pub batch: u32,
    /// `batch × layers[0].inputs` values, row-major (one sample per row).
    pub inputs: Vec<f32>,
}

impl Mlp {
    /// Checks shapes and limits.
    pub fn validate(&self) -> Result<()> {
        if self.layers.is_empty() {
            return Err(GpuError::InvalidJob("mlp: no layers".into()));
        }
        if self.layers.len() > MLP_LAYERS_MAX {
            return Err(GpuError::LimitExceeded {
                kind: LimitKind::BatchSize,
                requested: self.layers.len() as u64,
                max: MLP_LAYERS_MAX as u64,
            });
        }
        for (i, l) in self.layers.iter().enumerate() {
            for width in [l.inputs, l.outputs] {
                if width == 0 {
                    return Err(GpuError::InvalidJob(format!("mlp: layer {i} has width 0")));
                }
                if width > MLP_WIDTH_MAX {
                    return Err(GpuError::LimitExceeded {
                        kind: LimitKind::ItemSize,
                        requested: u64::from(width),
                        max: u64::from(MLP_WIDTH_MAX),
                    });
                }
            }
            if l.weights.len() as u64 != u64::from(l.inputs) * u64::from(l.outputs) {
                return Err(GpuError::InvalidJob(format!(
                    "mlp: layer {i} has {} weights, expected {}×{}",
                    l.weights.len(),
                    l.inputs,
                    l.outputs
                )));
            }
            if l.biases.len() != l.outputs as usize {
                return Err(GpuError::InvalidJob(format!(
                    "mlp: layer {i} has {} biases, expected {}",
                    l.biases.len(),
                    l.outputs
                )));
            }
            if let Some(next) = self.layers.get(i + 1)
                && next.inputs != l.outputs
            {
                return Err(GpuError::InvalidJob(format!(
                    "mlp: layer {i} outputs {} values but layer {} takes {}",
                    l.outputs,
                    i + 1,
                    next.inputs
                )));
            }
        }
        Ok(())
    }

    fn widest(&self) -> u32 {
        self.layers.iter().map(|l| l.outputs).max().unwrap_or(1)
    }
}

impl MlpInference {
    pub(crate) fn plan(&self) -> Result<Plan> {
        self.network.validate()?;
        if self.batch == 0 {
            return Err(GpuError::InvalidJob("mlp: batch is 0".into()));
        }
        let in_width = self.network.layers[0].inputs;
        if self.inputs.len() as u64 != u64::from(self.batch) * u64::from(in_width) {
            return Err(GpuError::InvalidJob(format!(
                "mlp: {} input values, expected {}×{}",
                self.inputs.len(),
                self.batch,
                in_width
            )));
        }
        let batch = u64::from(self.batch);
        let act = batch * u64::from(self.network.widest()) * 4;
        let out_width = self.network.layers.last().map_or(1, |l| l.outputs);
        let mut buffers = vec![
            self.inputs.len() as u64 * 4,
            act,
            act,
            batch * u64::from(out_width) * 4,
        ];
        let mut workgroups = [1u32; 3];
        for l in &self.network.layers {
            buffers.push(l.weights.len() as u64 * 4);
            buffers.push(l.biases.len() as u64 * 4);
            buffers.push(16);
            let g = matmul::groups(self.batch, l.outputs);
            if u64::from(g[0]) * u64::from(g[1])
                > u64::from(workgroups[0]) * u64::from(workgroups[1])
            {
                workgroups = g;
            }
        }
        Ok(Plan {
            buffers_bytes: buffers,
            dispatches: self.network.layers.len() as u64,
            workgroups,
            workgroup_invocations: 256,
        })
    }

    pub(crate) fn run(&self, gpu: &mut Gpu, deadline: &Deadline) -> Result<Vec<f32>> {
        let kernel = gpu.kernel("matmul", SOURCE, "main", &BINDINGS);
        let batch = u64::from(self.batch);
        let act_bytes = batch * u64::from(self.network.widest()) * 4;
        let input = gpu.storage_with(bytemuck::cast_slice(&self.inputs));
        let ping = [
            gpu.buffer(act_bytes, storage_usage()),
            gpu.buffer(act_bytes, storage_usage()),
        ];
        let last = self.network.layers.len() - 1;
        let mut per_layer = Vec::with_capacity(self.network.layers.len() * 3);
        let mut enc = gpu.encoder();
        for (i, l) in self.network.layers.iter().enumerate() {
            let w = gpu.storage_with(bytemuck::cast_slice(&l.weights));
            let b = gpu.storage_with(bytemuck::cast_slice(&l.biases));
            let flags = if i == last { 1u32 } else { 3u32 };
            let dims = gpu.uniform_with(bytemuck::cast_slice(&[
                self.batch, l.inputs, l.outputs, flags,
            ]));
            let src = if i == 0 { &input } else { &ping[(i - 1) % 2] };
            matmul::encode(
                gpu,
                &mut enc,
                &kernel,
                [src, &w, &ping[i % 2], &b, &dims],
                self.batch,
                l.outputs,
            );
            per_layer.extend([w, b, dims]);
        }
        let out_width = self.network.layers[last].outputs;
        let out_bytes = batch * u64::from(out_width) * 4;
        let staging = gpu.staging(out_bytes);
        enc.copy_buffer_to_buffer(&ping[last % 2].buffer, 0, &staging.buffer, 0, out_bytes);
        gpu.submit_wait(enc, deadline)?;
        let raw = gpu.read(&staging, deadline)?;
        let [p0, p1] = ping;
        gpu.recycle([input, p0, p1, staging]);
        gpu.recycle(per_layer);
        Ok(bytemuck::pod_collect_to_vec(&raw))
    }
}

/// CPU reference: the same network, layer by layer, in f32.
pub fn mlp_cpu(network: &Mlp, inputs: &[f32], batch: usize) -> Vec<f32> {
    let mut x = inputs.to_vec();
    let last = network.layers.len().saturating_sub(1);
    for (i, l) in network.layers.iter().enumerate() {
        let mut y =
            matmul::matmul_cpu(&x, &l.weights, batch, l.inputs as usize, l.outputs as usize);
        for row in y.chunks_exact_mut(l.outputs as usize) {
            for (v, b) in row.iter_mut().zip(&l.biases) {
                *v += b;
                if i != last {
                    *v = v.max(0.0);
                }
            }
        }
        x = y;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(inputs: u32, outputs: u32) -> DenseLayer {
        DenseLayer {
            inputs,
            outputs,
            weights: vec![1.0; (inputs * outputs) as usize],
            biases: vec![0.0; outputs as usize],
        }
    }

    #[test]
    fn cpu_reference_applies_relu_between_layers_only() {
        let net = Mlp {
            layers: vec![
                DenseLayer {
                    inputs: 1,
                    outputs: 1,
                    weights: vec![-1.0],
                    biases: vec![0.0],
                },
                DenseLayer {
                    inputs: 1,
                    outputs: 1,
                    weights: vec![1.0],
                    biases: vec![-2.0],
                },
            ],
        };
        // layer 1: -3 → ReLU → 0; layer 2: 0 − 2 = −2 (no ReLU on the output).
        assert_eq!(mlp_cpu(&net, &[3.0], 1), vec![-2.0]);
    }

    #[test]
    fn mismatched_layers_are_rejected() {
        let net = Mlp {
            layers: vec![layer(2, 3), layer(4, 1)],
        };
        assert!(matches!(net.validate(), Err(GpuError::InvalidJob(_))));
    }
}
