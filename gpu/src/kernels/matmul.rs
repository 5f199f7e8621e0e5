//! `matmul`: C = A·B in f32, any M×K×N.
//!
//! GPU: `matmul.wgsl`, 64×64 output tiles per workgroup staged through workgroup memory, 4×4
//! outputs per thread. CPU reference: [`matmul_cpu`].
//!
//! Tolerance: the GPU sums in a different order (and with fused multiply-adds), so results differ
//! from the CPU's by rounding only. Both stay within [`tolerance`]:
//! `|gpu − cpu| ≤ 4 · K · ε · max|a| · max|b|` with ε = `f32::EPSILON`.

use serde::{Deserialize, Serialize};

use crate::device::{Binding, Buf, Deadline, Gpu, Kernel, dispatch, storage_usage};
use crate::error::{GpuError, Result};
use crate::limits::Plan;

pub(crate) const SOURCE: &str = include_str!("matmul.wgsl");
const TILE: u32 = 64;
pub(crate) const BINDINGS: [Binding; 5] = [
    Binding::ReadOnly,
    Binding::ReadOnly,
    Binding::ReadWrite,
    Binding::ReadOnly,
    Binding::Uniform,
];

/// A matrix product job: `a` is M×K, `b` is K×N, both row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matmul {
    /// Rows of A and C.
    pub m: u32,
    /// Columns of A, rows of B.
    pub k: u32,
    /// Columns of B and C.
    pub n: u32,
    /// A, row-major, M·K values.
    pub a: Vec<f32>,
    /// B, row-major, K·N values.
    pub b: Vec<f32>,
}

fn elems(rows: u32, cols: u32) -> u64 {
    u64::from(rows) * u64::from(cols)
}

impl Matmul {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.m == 0 || self.k == 0 || self.n == 0 {
            return Err(GpuError::InvalidJob(
                "matmul dimensions must be at least 1".into(),
            ));
        }
        if self.a.len() as u64 != elems(self.m, self.k) {
            return Err(GpuError::InvalidJob(format!(
                "matmul: a has {} values, M·K = {}",
                self.a.len(),
                elems(self.m, self.k)
            )));
        }
        if self.b.len() as u64 != elems(self.k, self.n) {
            return Err(GpuError::InvalidJob(format!(
                "matmul: b has {} values, K·N = {}",
                self.b.len(),
                elems(self.k, self.n)
            )));
        }
        Ok(())
    }

    pub(crate) fn plan(&self) -> Result<Plan> {
        self.validate()?;
        let c_bytes = elems(self.m, self.n) * 4;
        Ok(Plan {
            buffers_bytes: vec![
                elems(self.m, self.k) * 4,
                elems(self.k, self.n) * 4,
                c_bytes,
                4,
                16,
                c_bytes,
            ],
            dispatches: 1,
            workgroups: groups(self.m, self.n),
            workgroup_invocations: 256,
        })
    }

    pub(crate) fn run(&self, gpu: &mut Gpu, deadline: &Deadline) -> Result<Vec<f32>> {
        let kernel = gpu.kernel("matmul", SOURCE, "main", &BINDINGS);
        let a = gpu.storage_with(bytemuck::cast_slice(&self.a));
        let b = gpu.storage_with(bytemuck::cast_slice(&self.b));
        let c_bytes = elems(self.m, self.n) * 4;
        let c = gpu.buffer(c_bytes, storage_usage());
        let bias = gpu.storage_with(&[0u8; 4]);
        let dims = gpu.uniform_with(bytemuck::cast_slice(&[self.m, self.k, self.n, 0u32]));
        let staging = gpu.staging(c_bytes);
        let mut enc = gpu.encoder();
        encode(
            gpu,
            &mut enc,
            &kernel,
            [&a, &b, &c, &bias, &dims],
            self.m,
            self.n,
        );
        enc.copy_buffer_to_buffer(&c.buffer, 0, &staging.buffer, 0, c_bytes);
        gpu.submit_wait(enc, deadline)?;
        let out = gpu.read(&staging, deadline)?;
        gpu.recycle([a, b, c, bias, dims, staging]);
        Ok(bytemuck::pod_collect_to_vec(&out))
    }
}

/// Workgroups for an M×N output: one per 64×64 tile.
pub(crate) fn groups(m: u32, n: u32) -> [u32; 3] {
    [n.div_ceil(TILE), m.div_ceil(TILE), 1]
}

/// Records one tiled matmul dispatch into `enc`: `bufs` are A, B, C, bias and the dims uniform
/// (`[m, k, n, flags]`), C being M×N.
pub(crate) fn encode(
    gpu: &Gpu,
    enc: &mut wgpu::CommandEncoder,
    kernel: &Kernel,
    bufs: [&Buf; 5],
    m: u32,
    n: u32,
) {
    let bg = gpu.bind_group(kernel, &bufs);
    dispatch(enc, kernel, &bg, groups(m, n));
}

/// CPU reference: C = A·B, f32, straightforward i-k-j loop (vectorises well).
pub fn matmul_cpu(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        let row = &mut c[i * n..(i + 1) * n];
        for p in 0..k {
            let av = a[i * k + p];
            let brow = &b[p * n..(p + 1) * n];
            for (cv, &bv) in row.iter_mut().zip(brow) {
                *cv += av * bv;
            }
        }
    }
    c
}

/// Largest allowed |gpu − cpu| for one element of an M×K×N product of `a` and `b`.
pub fn tolerance(a: &[f32], b: &[f32], k: u32) -> f32 {
    let max_a = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let max_b = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    4.0 * k as f32 * f32::EPSILON * max_a * max_b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_reference_small_case() {
        // [1 2; 3 4] · [5 6; 7 8] = [19 22; 43 50]
        let c = matmul_cpu(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], 2, 2, 2);
        assert_eq!(c, vec![19.0, 22.0, 43.0, 50.0]);
    }

    #[test]
    fn mismatched_lengths_are_rejected() {
        let job = Matmul {
            m: 2,
            k: 2,
            n: 2,
            a: vec![0.0; 3],
            b: vec![0.0; 4],
        };
        assert!(matches!(job.plan(), Err(GpuError::InvalidJob(_))));
    }

    #[test]
    fn tiles_cover_odd_sizes() {
        assert_eq!(groups(65, 130), [3, 2, 1]);
        assert_eq!(groups(1, 1), [1, 1, 1]);
    }
}
