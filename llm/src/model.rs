//! The Llama forward pass on a CPU core: the reference the GPU path and the platform's
//! verification are held to.
//!
//! Per token: the embedding row; per block, RMSNorm, Q/K/V projections, RoPE (llama.cpp's
//! "normal" mode: adjacent pairs rotated, since GGUF's converter permuted Q and K for it),
//! causal grouped-query attention over the KV cache, the output projection and its residual,
//! RMSNorm, SwiGLU (down(silu(gate(x)) × up(x))) and its residual; then the final RMSNorm and
//! the logits against the token embeddings (tied output). Weights are dequantized to f32 when
//! the model loads; sums run in f32.

use crate::gguf::{Gguf, GgufError};
use crate::quant::dequantize;

/// Shapes and constants of a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Blocks.
    pub layers: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// FFN width.
    pub ffn: usize,
    /// Vocabulary.
    pub vocab: usize,
    /// Longest context.
    pub context: usize,
    /// RMSNorm epsilon.
    pub eps: f32,
    /// RoPE base.
    pub rope_base: f32,
}

impl Config {
    /// The configuration a GGUF's `llama.*` metadata gives.
    pub fn from_gguf(gguf: &Gguf) -> Result<Config, GgufError> {
        let arch = gguf.str("general.architecture")?;
        if arch != "llama" {
            return Err(GgufError::Metadata(format!(
                "general.architecture is {arch:?}: only llama is run"
            )));
        }
        let n = |key: &str| gguf.uint(&format!("llama.{key}")).map(|v| v as usize);
        let (hidden, heads) = (n("embedding_length")?, n("attention.head_count")?);
        let kv_heads = n("attention.head_count_kv")?;
        if heads == 0 || kv_heads == 0 || hidden % heads != 0 || heads % kv_heads != 0 {
            return Err(GgufError::Metadata(format!(
                "{heads} heads, {kv_heads} KV heads of a width {hidden}"
            )));
        }
        Ok(Config {
            layers: n("block_count")?,
            hidden,
            heads,
            kv_heads,
            head_dim: hidden / heads,
            ffn: n("feed_forward_length")?,
            vocab: n("vocab_size")?,
            context: n("context_length")?,
            eps: gguf.float("llama.attention.layer_norm_rms_epsilon")? as f32,
            rope_base: gguf.float("llama.rope.freq_base")? as f32,
        })
    }

    fn kv_width(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

/// A matrix of `rows` rows of `cols` values.
pub struct Matrix {
    /// Rows.
    pub rows: usize,
    /// Columns (the contiguous dimension).
    pub cols: usize,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl Matrix {
    /// `y = W x`.
    fn apply(&self, x: &[f32], y: &mut [f32]) {
        for (out, row) in y.iter_mut().zip(self.data.chunks_exact(self.cols)) {
            *out = dot(row, x);
        }
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// Σ a·b with four accumulators (the order is fixed: results are reproducible).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 4];
    let (chunks_a, rest_a) = a.split_at(a.len() / 4 * 4);
    let (chunks_b, rest_b) = b.split_at(chunks_a.len());
    for (x, y) in chunks_a.chunks_exact(4).zip(chunks_b.chunks_exact(4)) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f32 = rest_a.iter().zip(rest_b).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// One block's weights.
pub struct Block {
    /// RMSNorm before attention.
    pub attn_norm: Vec<f32>,
    /// Query projection.
    pub q: Matrix,
    /// Key projection.
    pub k: Matrix,
    /// Value projection.
    pub v: Matrix,
    /// Output projection.
    pub o: Matrix,
    /// RMSNorm before the FFN.
    pub ffn_norm: Vec<f32>,
    /// FFN gate.
    pub gate: Matrix,
    /// FFN up.
    pub up: Matrix,
    /// FFN down.
    pub down: Matrix,
}

/// A loaded model.
pub struct Model {
    /// Its shapes.
    pub config: Config,
    /// Token embeddings (also the output projection).
    pub embeddings: Matrix,
    /// The blocks.
    pub blocks: Vec<Block>,
    /// The final RMSNorm.
    pub output_norm: Vec<f32>,
}

fn matrix(gguf: &Gguf, name: &str, rows: usize, cols: usize) -> Result<Matrix, GgufError> {
    let info = gguf.tensor(name)?;
    if info.dims != [cols as u64, rows as u64] {
        return Err(GgufError::Tensor(format!(
            "{name} is {:?}, {cols}×{rows} expected",
            info.dims
        )));
    }
    let mut data = vec![0f32; rows * cols];
    dequantize(info.kind, gguf.tensor_bytes(info)?, &mut data);
    Ok(Matrix { rows, cols, data })
}

fn vector(gguf: &Gguf, name: &str, len: usize) -> Result<Vec<f32>, GgufError> {
    let info = gguf.tensor(name)?;
    if info.dims != [len as u64] {
        return Err(GgufError::Tensor(format!(
            "{name} is {:?}, {len} expected",
            info.dims
        )));
    }
    let mut data = vec![0f32; len];
    dequantize(info.kind, gguf.tensor_bytes(info)?, &mut data);
    Ok(data)
}

impl Model {
    /// Loads (and dequantizes) a GGUF llama model.
    pub fn from_gguf(gguf: &Gguf) -> Result<Model, GgufError> {
        let c = Config::from_gguf(gguf)?;
        let kv = c.kv_width();
        let blocks = (0..c.layers)
            .map(|i| {
                let name = |part: &str| format!("blk.{i}.{part}.weight");
                Ok(Block {
                    attn_norm: vector(gguf, &name("attn_norm"), c.hidden)?,
                    q: matrix(gguf, &name("attn_q"), c.hidden, c.hidden)?,
                    k: matrix(gguf, &name("attn_k"), kv, c.hidden)?,
                    v: matrix(gguf, &name("attn_v"), kv, c.hidden)?,
                    o: matrix(gguf, &name("attn_output"), c.hidden, c.hidden)?,
                    ffn_norm: vector(gguf, &name("ffn_norm"), c.hidden)?,
                    gate: matrix(gguf, &name("ffn_gate"), c.ffn, c.hidden)?,
                    up: matrix(gguf, &name("ffn_up"), c.ffn, c.hidden)?,
                    down: matrix(gguf, &name("ffn_down"), c.hidden, c.ffn)?,
                })
            })
            .collect::<Result<Vec<_>, GgufError>>()?;
        if gguf.tensors.contains_key("output.weight") {
            return Err(GgufError::Tensor(
                "output.weight: only models with tied embeddings are run".into(),
            ));
        }
        Ok(Model {
            embeddings: matrix(gguf, "token_embd.weight", c.vocab, c.hidden)?,
            output_norm: vector(gguf, "output_norm.weight", c.hidden)?,
            blocks,
            config: c,
        })
    }

    /// An empty KV cache for up to `capacity` positions (at most the context).
    pub fn cache(&self, capacity: usize) -> Cache {
        let c = &self.config;
        let capacity = capacity.min(c.context);
        Cache {
            keys: vec![Vec::with_capacity(capacity * c.kv_width()); c.layers],
            values: vec![Vec::with_capacity(capacity * c.kv_width()); c.layers],
            len: 0,
            capacity,
        }
    }

    /// Runs `token` at the cache's next position; the logits.
    pub fn forward(&self, token: u32, cache: &mut Cache) -> Result<Vec<f32>, ModelError> {
        let c = &self.config;
        if token as usize >= c.vocab {
            return Err(ModelError::Token(token));
        }
        if cache.len >= cache.capacity {
            return Err(ModelError::Context(cache.capacity));
        }
        let pos = cache.len;
        let mut x = self.embeddings.row(token as usize).to_vec();
        let (mut h, mut q, mut att) = (
            vec![0f32; c.hidden],
            vec![0f32; c.hidden],
            vec![0f32; c.hidden],
        );
        let (mut k, mut v) = (vec![0f32; c.kv_width()], vec![0f32; c.kv_width()]);
        let (mut gate, mut up) = (vec![0f32; c.ffn], vec![0f32; c.ffn]);
        let mut scores = vec![0f32; pos + 1];
        let group = c.heads / c.kv_heads;
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        for (layer, block) in self.blocks.iter().enumerate() {
            rms_norm(&x, &block.attn_norm, c.eps, &mut h);
            block.q.apply(&h, &mut q);
            block.k.apply(&h, &mut k);
            block.v.apply(&h, &mut v);
            rope(&mut q, c.head_dim, pos, c.rope_base);
            rope(&mut k, c.head_dim, pos, c.rope_base);
            cache.keys[layer].extend_from_slice(&k);
            cache.values[layer].extend_from_slice(&v);
            let (keys, values) = (&cache.keys[layer], &cache.values[layer]);
            for head in 0..c.heads {
                let kv_head = head / group;
                let qh = &q[head * c.head_dim..(head + 1) * c.head_dim];
                for (t, score) in scores.iter_mut().enumerate() {
                    let at = t * c.kv_width() + kv_head * c.head_dim;
                    *score = dot(qh, &keys[at..at + c.head_dim]) * scale;
                }
                softmax(&mut scores);
                let out = &mut att[head * c.head_dim..(head + 1) * c.head_dim];
                out.fill(0.0);
                for (t, p) in scores.iter().enumerate() {
                    let at = t * c.kv_width() + kv_head * c.head_dim;
                    for (o, value) in out.iter_mut().zip(&values[at..at + c.head_dim]) {
                        *o += p * value;
                    }
                }
            }
            block.o.apply(&att, &mut h);
            add(&mut x, &h);
            rms_norm(&x, &block.ffn_norm, c.eps, &mut h);
            block.gate.apply(&h, &mut gate);
            block.up.apply(&h, &mut up);
            for (g, u) in gate.iter_mut().zip(&up) {
                *g = silu(*g) * u;
            }
            block.down.apply(&gate, &mut h);
            add(&mut x, &h);
        }
        cache.len += 1;
        rms_norm(&x.clone(), &self.output_norm, c.eps, &mut x);
        let mut logits = vec![0f32; c.vocab];
        self.embeddings.apply(&x, &mut logits);
        Ok(logits)
    }
}

/// The keys and values of the positions run so far, per block.
pub struct Cache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    len: usize,
    capacity: usize,
}

impl Cache {
    /// Positions run.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none ran.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Why a forward pass could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A token outside the vocabulary.
    #[error("token {0} is outside the vocabulary")]
    Token(u32),
    /// The context is full.
    #[error("the context of {0} tokens is full")]
    Context(usize),
    /// Nothing to run.
    #[error("the prompt is empty")]
    EmptyPrompt,
}

fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let mean = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, v), w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * scale * w;
    }
}

/// Rotates each head's adjacent pairs (2i, 2i+1) by pos × base^(−2i/d).
fn rope(x: &mut [f32], head_dim: usize, pos: usize, base: f32) {
    for head in x.chunks_exact_mut(head_dim) {
        for i in 0..head_dim / 2 {
            let theta = pos as f32 * base.powf(-2.0 * i as f32 / head_dim as f32);
            let (sin, cos) = theta.sin_cos();
            let (a, b) = (head[2 * i], head[2 * i + 1]);
            head[2 * i] = a * cos - b * sin;
            head[2 * i + 1] = a * sin + b * cos;
        }
    }
}

fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// The index of the largest logit (the first on a tie).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in logits.iter().enumerate() {
        if *v > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_rotates_adjacent_pairs_and_keeps_the_norm() {
        let mut x = vec![1.0, 0.0, 0.0, 1.0];
        rope(&mut x, 4, 0, 10_000.0);
        assert_eq!(x, vec![1.0, 0.0, 0.0, 1.0], "position 0 is the identity");
        let mut x = vec![1.0, 0.0, 3.0, 4.0];
        rope(&mut x, 4, 1, 10_000.0);
        assert!((x[0] - 1f32.cos()).abs() < 1e-6 && (x[1] - 1f32.sin()).abs() < 1e-6);
        assert!(((x[2] * x[2] + x[3] * x[3]) - 25.0).abs() < 1e-4);
    }

    #[test]
    fn norms_and_activations_follow_their_formulas() {
        let mut out = [0f32; 2];
        rms_norm(&[3.0, 4.0], &[1.0, 2.0], 0.0, &mut out);
        let scale = 1.0 / 12.5f32.sqrt();
        assert_eq!(out, [3.0 * scale, 8.0 * scale]);
        let mut p = [1.0, 1.0, 1.0 + 2f32.ln()];
        softmax(&mut p);
        assert!((p[2] - 0.5).abs() < 1e-6 && (p[0] - 0.25).abs() < 1e-6);
        assert_eq!(silu(0.0), 0.0);
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1, "the first maximum");
        assert_eq!(dot(&[1.0, 2.0, 3.0, 4.0, 5.0], &[1.0; 5]), 15.0);
    }
}
