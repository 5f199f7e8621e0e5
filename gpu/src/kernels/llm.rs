//! `llm_generate`: the Llama forward pass of `llm::model` in WGSL, one token per submission.
//!
//! The weights go to the GPU as f32 (dequantized at load by `llm`). Per token: the embedding
//! row; per block RMSNorm, Q/K/V projections (K and V written straight into the block's KV
//! cache at the token's position), RoPE on Q and the new key, attention (one workgroup per
//! query head over the cached positions), the output projection and its residual, RMSNorm,
//! SwiGLU and its residual; the final RMSNorm and the logits against the embeddings, read back
//! for the sampler (`llm::generate::decode`, the same loop as the CPU reference). Sums run in
//! other orders than the CPU's: logits agree within a tolerance, not bit for bit.

use std::sync::Arc;

use llm::generate::{Sampling, decode};
use llm::model::{Matrix, Model};

use crate::device::{Binding, Buf, Deadline, Gpu, Kernel, dispatch, storage_usage};
use crate::error::{GpuError, LimitKind, Result};
use crate::limits::Plan;

const SOURCE: &str = include_str!("llm.wgsl");
const BINDINGS: [Binding; 4] = [
    Binding::ReadOnly,
    Binding::ReadOnly,
    Binding::ReadWrite,
    Binding::Uniform,
];
pub use llm::CONTEXT_MAX;

/// Generate text with a loaded model.
#[derive(Clone)]
pub struct LlmJob {
    /// The model (weights dequantized).
    pub model: Arc<Model>,
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Stop after this token.
    pub eos: u32,
    /// How tokens are chosen.
    pub sampling: Sampling,
}

impl std::fmt::Debug for LlmJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmJob")
            .field("prompt", &self.prompt.len())
            .field("max_tokens", &self.max_tokens)
            .field("sampling", &self.sampling)
            .finish()
    }
}

impl PartialEq for LlmJob {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.model, &other.model)
            && (&self.prompt, self.max_tokens, self.eos, self.sampling)
                == (&other.prompt, other.max_tokens, other.eos, other.sampling)
    }
}

/// What a generation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmOutput {
    /// Generated token ids.
    pub tokens: Vec<u32>,
    /// The logits after the prompt (the first generated token's distribution).
    pub prompt_logits: Vec<f32>,
}

/// The `Params` uniform of llm.wgsl.
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Params {
    rows: u32,
    cols: u32,
    offset: u32,
    pos: u32,
    heads: u32,
    head_dim: u32,
    kv_heads: u32,
    eps_or_base: f32,
}

struct Weights {
    embeddings: Buf,
    output_norm: Buf,
    blocks: Vec<[Buf; 9]>,
}

impl LlmJob {
    fn context(&self) -> usize {
        self.prompt.len() + self.max_tokens as usize
    }

    pub(crate) fn plan(&self) -> Result<Plan> {
        if self.prompt.is_empty() {
            return Err(GpuError::InvalidJob("llm: an empty prompt".into()));
        }
        if self.context() > CONTEXT_MAX.min(self.model.config.context) {
            return Err(GpuError::LimitExceeded {
                kind: LimitKind::BatchSize,
                requested: self.context() as u64,
                max: CONTEXT_MAX as u64,
            });
        }
        let c = &self.model.config;
        if let Some(token) = self.prompt.iter().find(|t| **t as usize >= c.vocab) {
            return Err(GpuError::InvalidJob(format!(
                "llm: token {token} outside the vocabulary"
            )));
        }
        let f = |n: usize| (n * 4) as u64;
        let kv = c.kv_heads * c.head_dim;
        let mut buffers = vec![f(c.vocab * c.hidden), f(c.hidden), f(c.vocab), f(c.vocab)];
        for _ in 0..c.layers {
            buffers.extend([f(c.hidden); 2]);
            buffers.extend([f(c.hidden * c.hidden); 2]);
            buffers.extend([f(kv * c.hidden); 2]);
            buffers.extend([f(c.ffn * c.hidden); 3]);
            buffers.push(f(2 * self.context() * kv));
        }
        buffers.extend([f(c.hidden); 4]);
        buffers.extend([f(c.ffn); 2]);
        Ok(Plan {
            buffers_bytes: buffers,
            // One submission per token; the job's total is bounded by its wall time.
            dispatches: (c.layers * 14 + 3) as u64,
            workgroups: [c.vocab.div_ceil(64) as u32, 1, 1],
            workgroup_invocations: 256,
        })
    }

    pub(crate) fn run(&self, gpu: &mut Gpu, deadline: &Deadline) -> Result<LlmOutput> {
        let m = &self.model;
        let upload = |gpu: &mut Gpu, data: &[f32]| gpu.storage_with(bytemuck::cast_slice(data));
        let matrix = |gpu: &mut Gpu, w: &Matrix| upload(gpu, &w.data);
        let weights = Weights {
            embeddings: matrix(gpu, &m.embeddings),
            output_norm: upload(gpu, &m.output_norm),
            blocks: m
                .blocks
                .iter()
                .map(|b| {
                    [
                        upload(gpu, &b.attn_norm),
                        matrix(gpu, &b.q),
                        matrix(gpu, &b.k),
                        matrix(gpu, &b.v),
                        matrix(gpu, &b.o),
                        upload(gpu, &b.ffn_norm),
                        matrix(gpu, &b.gate),
                        matrix(gpu, &b.up),
                        matrix(gpu, &b.down),
                    ]
                })
                .collect(),
        };
        let state = State::new(gpu, m, self.context());
        let mut prompt_logits = Vec::new();
        let prompt_len = self.prompt.len();
        let mut pos = 0;
        let tokens = decode(
            &self.prompt,
            self.max_tokens as usize,
            self.eos,
            self.sampling,
            |token| {
                let logits = state.step(gpu, m, &weights, token, pos, deadline)?;
                pos += 1;
                if pos == prompt_len {
                    prompt_logits = logits.clone();
                }
                Ok::<_, GpuError>(logits)
            },
        )?;
        state.release(gpu);
        let Weights {
            embeddings,
            output_norm,
            blocks,
        } = weights;
        gpu.recycle([embeddings, output_norm]);
        gpu.recycle(blocks.into_iter().flatten());
        Ok(LlmOutput {
            tokens,
            prompt_logits,
        })
    }
}

/// The activations, the KV caches and the kernels of one generation.
struct State {
    x: Buf,
    h: Buf,
    q: Buf,
    att: Buf,
    gate: Buf,
    up: Buf,
    logits: Buf,
    staging: Buf,
    zero: Buf,
    caches: Vec<Buf>,
    context: usize,
    kernels: Kernels,
}

struct Kernels {
    matvec: Arc<Kernel>,
    rms_norm: Arc<Kernel>,
    add: Arc<Kernel>,
    silu_mul: Arc<Kernel>,
    copy: Arc<Kernel>,
    rope: Arc<Kernel>,
    attention: Arc<Kernel>,
}

impl State {
    fn new(gpu: &mut Gpu, m: &Model, context: usize) -> State {
        let c = &m.config;
        let f = |n: usize| (n * 4) as u64;
        let mut buf = |n: usize| gpu.buffer(f(n), storage_usage());
        let (x, h, q, att) = (buf(c.hidden), buf(c.hidden), buf(c.hidden), buf(c.hidden));
        let (gate, up, logits, zero) = (buf(c.ffn), buf(c.ffn), buf(c.vocab), buf(1));
        let kv = c.kv_heads * c.head_dim;
        let caches = (0..c.layers).map(|_| buf(2 * context * kv)).collect();
        let staging = gpu.staging(f(c.vocab));
        let mut kernel =
            |name: &'static str, entry: &str| gpu.kernel(name, SOURCE, entry, &BINDINGS);
        let kernels = Kernels {
            matvec: kernel("llm.matvec", "matvec"),
            rms_norm: kernel("llm.rms_norm", "rms_norm"),
            add: kernel("llm.add", "add"),
            silu_mul: kernel("llm.silu_mul", "silu_mul"),
            copy: kernel("llm.copy", "copy"),
            rope: kernel("llm.rope", "rope"),
            attention: kernel("llm.attention", "attention"),
        };
        State {
            x,
            h,
            q,
            att,
            gate,
            up,
            logits,
            staging,
            zero,
            caches,
            context,
            kernels,
        }
    }

    /// Runs `token` at `pos`; its logits.
    fn step(
        &self,
        gpu: &mut Gpu,
        m: &Model,
        w: &Weights,
        token: u32,
        pos: usize,
        deadline: &Deadline,
    ) -> Result<Vec<f32>> {
        let c = &m.config;
        let (hidden, ffn) = (c.hidden as u32, c.ffn as u32);
        let kv = (c.kv_heads * c.head_dim) as u32;
        let values = (self.context as u32) * kv;
        let pos32 = pos as u32;
        let base = Params {
            pos: pos32,
            heads: c.heads as u32,
            head_dim: c.head_dim as u32,
            kv_heads: c.kv_heads as u32,
            ..Params::default()
        };
        let mut enc = gpu.encoder();
        let mut uniforms = Vec::new();
        let (k, s) = (&self.kernels, self);
        // One dispatch: `kernel` over `groups` with a, b, out and the params.
        let mut run = |gpu: &mut Gpu,
                       enc: &mut wgpu::CommandEncoder,
                       kernel: &Kernel,
                       bufs: [&Buf; 3],
                       params: Params,
                       groups: u32| {
            let uniform = gpu.uniform_with(bytemuck::bytes_of(&params));
            let group = gpu.bind_group(kernel, &[bufs[0], bufs[1], bufs[2], &uniform]);
            dispatch(enc, kernel, &group, [groups, 1, 1]);
            uniforms.push(uniform);
        };
        let rows = |n: u32| n.div_ceil(64);
        let vector = |rows: u32| Params { rows, ..base };
        let matvec = |rows: u32, cols: u32, offset: u32| Params {
            rows,
            cols,
            offset,
            ..base
        };
        let copy = Params {
            rows: hidden,
            offset: token * hidden,
            ..base
        };
        run(
            gpu,
            &mut enc,
            &k.copy,
            [&w.embeddings, &s.zero, &s.x],
            copy,
            rows(hidden),
        );
        for (block, cache) in w.blocks.iter().zip(&s.caches) {
            let [attn_norm, wq, wk, wv, wo, ffn_norm, wgate, wup, wdown] = block;
            let norm = Params {
                rows: hidden,
                eps_or_base: c.eps,
                ..base
            };
            run(gpu, &mut enc, &k.rms_norm, [&s.x, attn_norm, &s.h], norm, 1);
            let q = matvec(hidden, hidden, 0);
            run(gpu, &mut enc, &k.matvec, [wq, &s.h, &s.q], q, rows(hidden));
            let key = matvec(kv, hidden, pos32 * kv);
            run(gpu, &mut enc, &k.matvec, [wk, &s.h, cache], key, rows(kv));
            let value = matvec(kv, hidden, values + pos32 * kv);
            run(gpu, &mut enc, &k.matvec, [wv, &s.h, cache], value, rows(kv));
            let half = (c.head_dim / 2) as u32;
            let rope_q = Params {
                eps_or_base: c.rope_base,
                ..base
            };
            let pairs = rows(c.heads as u32 * half);
            run(
                gpu,
                &mut enc,
                &k.rope,
                [&s.zero, &s.zero, &s.q],
                rope_q,
                pairs,
            );
            let rope_k = Params {
                heads: c.kv_heads as u32,
                offset: pos32 * kv,
                ..rope_q
            };
            let pairs = rows(c.kv_heads as u32 * half);
            run(
                gpu,
                &mut enc,
                &k.rope,
                [&s.zero, &s.zero, cache],
                rope_k,
                pairs,
            );
            let attend = Params {
                offset: values,
                ..base
            };
            let heads = c.heads as u32;
            run(
                gpu,
                &mut enc,
                &k.attention,
                [&s.q, cache, &s.att],
                attend,
                heads,
            );
            let o = matvec(hidden, hidden, 0);
            run(
                gpu,
                &mut enc,
                &k.matvec,
                [wo, &s.att, &s.h],
                o,
                rows(hidden),
            );
            run(
                gpu,
                &mut enc,
                &k.add,
                [&s.h, &s.zero, &s.x],
                vector(hidden),
                rows(hidden),
            );
            run(gpu, &mut enc, &k.rms_norm, [&s.x, ffn_norm, &s.h], norm, 1);
            let up = matvec(ffn, hidden, 0);
            run(
                gpu,
                &mut enc,
                &k.matvec,
                [wgate, &s.h, &s.gate],
                up,
                rows(ffn),
            );
            run(gpu, &mut enc, &k.matvec, [wup, &s.h, &s.up], up, rows(ffn));
            let silu = vector(ffn);
            run(
                gpu,
                &mut enc,
                &k.silu_mul,
                [&s.up, &s.zero, &s.gate],
                silu,
                rows(ffn),
            );
            let down = matvec(hidden, ffn, 0);
            run(
                gpu,
                &mut enc,
                &k.matvec,
                [wdown, &s.gate, &s.h],
                down,
                rows(hidden),
            );
            run(
                gpu,
                &mut enc,
                &k.add,
                [&s.h, &s.zero, &s.x],
                vector(hidden),
                rows(hidden),
            );
        }
        let norm = Params {
            rows: hidden,
            eps_or_base: c.eps,
            ..base
        };
        run(
            gpu,
            &mut enc,
            &k.rms_norm,
            [&s.x, &w.output_norm, &s.h],
            norm,
            1,
        );
        let vocab = c.vocab as u32;
        let logits = matvec(vocab, hidden, 0);
        run(
            gpu,
            &mut enc,
            &k.matvec,
            [&w.embeddings, &s.h, &s.logits],
            logits,
            rows(vocab),
        );
        enc.copy_buffer_to_buffer(&s.logits.buffer, 0, &s.staging.buffer, 0, s.logits.size);
        gpu.submit_wait(enc, deadline)?;
        let raw = gpu.read(&s.staging, deadline)?;
        gpu.recycle(uniforms);
        Ok(bytemuck::pod_collect_to_vec(&raw))
    }

    fn release(self, gpu: &mut Gpu) {
        let State {
            x,
            h,
            q,
            att,
            gate,
            up,
            logits,
            staging,
            zero,
            caches,
            ..
        } = self;
        gpu.recycle([x, h, q, att, gate, up, logits, staging, zero]);
        gpu.recycle(caches);
    }
}
