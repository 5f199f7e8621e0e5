//! Generation and its verification: greedy decoding, seeded temperature/top-p sampling that a
//! verifier can replay, and the teacher-forced check of a claimed greedy completion.
//!
//! Sampling draws from SplitMix64 seeded by the job's seed, one draw per token:
//! `u = (next >> 11) / 2^53`. The distribution is the softmax of logits / temperature (in f64),
//! cut to the smallest set of most likely tokens whose probability reaches `top_p` (ties by
//! token id), renormalized; the token is the first, in token-id order, whose running sum exceeds
//! `u`.

use crate::model::{Cache, Model, ModelError, argmax};

/// How far below the step's largest logit a claimed greedy token may be (the platform's
/// check). Our GPU path's logits are within 2·10⁻⁵ (relative) of the CPU's; llama.cpp's, with
/// activations quantized to 8 bits, differ by more: its greedy choices sit up to 0.22 below our
/// largest logit (`tests/llama_cpp.rs` measures it and keeps it under half the margin).
pub const GREEDY_MARGIN: f32 = 0.5;
/// How far outside its interval a sampled token's draw may fall (the platform's check): the
/// boundaries move with another implementation's rounding.
pub const DRAW_TOLERANCE: f64 = 1e-3;

/// How tokens are chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The most likely token (the first on a tie).
    Greedy,
    /// Seeded temperature and top-p sampling.
    Seeded {
        /// Softmax temperature, > 0.
        temperature: f32,
        /// Nucleus mass, in (0, 1].
        top_p: f32,
        /// The generator's seed.
        seed: u64,
    },
}

/// SplitMix64.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A draw in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The tokens sampling at `temperature` and `top_p` may draw from `logits`, with their
/// probabilities renormalized over them, in token-id order: the smallest set of most likely
/// tokens (ties by id) whose probability reaches `top_p`. The draw walks them in id order, not
/// by probability, so two implementations whose logits differ in the last bits order them the
/// same and disagree only when the draw lands within that difference of a boundary.
pub fn nucleus(logits: &[f32], temperature: f32, top_p: f32) -> Vec<(u32, f64)> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let t = f64::from(temperature);
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u32, ((f64::from(*l) - f64::from(max)) / t).exp()))
        .collect();
    let total: f64 = probs.iter().map(|(_, p)| p).sum();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept = 0;
    let mut mass = 0.0;
    for (_, p) in &probs {
        kept += 1;
        mass += p / total;
        if mass >= f64::from(top_p) {
            break;
        }
    }
    probs.truncate(kept);
    let nucleus_total: f64 = probs.iter().map(|(_, p)| p).sum();
    probs.sort_by_key(|(id, _)| *id);
    for (_, p) in &mut probs {
        *p /= nucleus_total;
    }
    probs
}

/// The token `logits` give for draw `u` at `temperature` and `top_p`: the first of the
/// [`nucleus`] whose running sum exceeds `u`.
pub fn sample(logits: &[f32], temperature: f32, top_p: f32, u: f64) -> u32 {
    let nucleus = nucleus(logits, temperature, top_p);
    let mut running = 0.0;
    for (id, p) in &nucleus {
        running += p;
        if running > u {
            return *id;
        }
    }
    nucleus[nucleus.len() - 1].0
}

/// The draws `[low, high)` for which sampling gives `token` (none when it is outside the
/// nucleus).
pub fn draw_interval(
    logits: &[f32],
    temperature: f32,
    top_p: f32,
    token: u32,
) -> Option<(f64, f64)> {
    let mut low = 0.0;
    for (id, p) in nucleus(logits, temperature, top_p) {
        if id == token {
            return Some((low, low + p));
        }
        low += p;
    }
    None
}

/// Runs `prompt` on the CPU reference, then generates up to `max_tokens` tokens (stopping
/// after `eos`); the generated ids.
pub fn generate(
    model: &Model,
    prompt: &[u32],
    max_tokens: usize,
    eos: u32,
    sampling: Sampling,
) -> Result<Vec<u32>, ModelError> {
    let mut cache = model.cache(prompt.len() + max_tokens);
    if prompt.is_empty() {
        return Err(ModelError::EmptyPrompt);
    }
    decode(prompt, max_tokens, eos, sampling, |token| {
        model.forward(token, &mut cache)
    })
}

/// The decoding loop over any forward pass (`forward` runs one token at the next position
/// and returns its logits): the prompt, then up to `max_tokens` tokens chosen by `sampling`,
/// stopping after `eos`. The CPU reference and the GPU run the same loop.
pub fn decode<E>(
    prompt: &[u32],
    max_tokens: usize,
    eos: u32,
    sampling: Sampling,
    mut forward: impl FnMut(u32) -> Result<Vec<f32>, E>,
) -> Result<Vec<u32>, E> {
    let mut logits = Vec::new();
    for token in prompt {
        logits = forward(*token)?;
    }
    if logits.is_empty() {
        return Ok(Vec::new());
    }
    let mut rng = match sampling {
        Sampling::Seeded { seed, .. } => Some(Rng::new(seed)),
        Sampling::Greedy => None,
    };
    let mut out = Vec::new();
    while out.len() < max_tokens {
        let next = match (sampling, rng.as_mut()) {
            (
                Sampling::Seeded {
                    temperature, top_p, ..
                },
                Some(rng),
            ) => sample(&logits, temperature, top_p, rng.uniform()),
            _ => argmax(&logits),
        };
        out.push(next);
        if next == eos || out.len() == max_tokens {
            break;
        }
        logits = forward(next)?;
    }
    Ok(out)
}

fn prefill(model: &Model, prompt: &[u32], cache: &mut Cache) -> Result<Vec<f32>, ModelError> {
    let mut logits = Vec::new();
    for token in prompt {
        logits = model.forward(*token, cache)?;
    }
    if logits.is_empty() {
        return Err(ModelError::EmptyPrompt);
    }
    Ok(logits)
}

/// Where a claimed completion left the model's choices.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("token {step} ({claimed}) has logit {claimed_logit}, {max_logit} is the largest")]
pub struct Divergence {
    /// The step (0: the first generated token).
    pub step: usize,
    /// The claimed token.
    pub claimed: u32,
    /// Its logit.
    pub claimed_logit: f32,
    /// The largest logit at that step.
    pub max_logit: f32,
}

/// Teacher-forces `claimed` after `prompt` and accepts it when every claimed token's logit is
/// within `margin` of the largest at its step (GPUs sum in other orders, so an honest greedy
/// choice may differ from this CPU's argmax when two logits nearly tie; a fabricated text
/// does not stay within the margin).
pub fn check_greedy(
    model: &Model,
    prompt: &[u32],
    claimed: &[u32],
    margin: f32,
) -> Result<Result<(), Divergence>, ModelError> {
    teacher_force(model, prompt, claimed, |logits, token| {
        logits[token as usize] >= logits[argmax(logits) as usize] - margin
    })
}

/// Teacher-forces `claimed` after `prompt` and accepts it when, replaying the seeded draws,
/// each claimed token's [`draw_interval`] on these logits holds its step's draw give or take
/// `tolerance` (another implementation's logits move the boundaries by their rounding). Stops
/// at the first token that fails.
pub fn check_sampled(
    model: &Model,
    prompt: &[u32],
    claimed: &[u32],
    (temperature, top_p, seed): (f32, f32, u64),
    tolerance: f64,
) -> Result<Result<(), Divergence>, ModelError> {
    let mut rng = Rng::new(seed);
    teacher_force(model, prompt, claimed, |logits, token| {
        let u = rng.uniform();
        draw_interval(logits, temperature, top_p, token)
            .is_some_and(|(low, high)| low - tolerance <= u && u < high + tolerance)
    })
}

/// Runs `prompt`, then each of `claimed` in turn, asking `holds` of each claimed token with the
/// logits it was chosen from; the first that does not hold is the divergence.
fn teacher_force(
    model: &Model,
    prompt: &[u32],
    claimed: &[u32],
    mut holds: impl FnMut(&[f32], u32) -> bool,
) -> Result<Result<(), Divergence>, ModelError> {
    let mut cache = model.cache(prompt.len() + claimed.len());
    let mut logits = prefill(model, prompt, &mut cache)?;
    for (step, token) in claimed.iter().enumerate() {
        let Some(claimed_logit) = logits.get(*token as usize).copied() else {
            return Err(ModelError::Token(*token));
        };
        if !holds(&logits, *token) {
            return Ok(Err(Divergence {
                step,
                claimed: *token,
                claimed_logit,
                max_logit: logits[argmax(&logits) as usize],
            }));
        }
        if step + 1 < claimed.len() {
            logits = model.forward(*token, &mut cache)?;
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_the_published_sequence() {
        // SplitMix64 seeded with 0: its first outputs (Vigna's reference implementation).
        let mut rng = Rng::new(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        let u = Rng::new(42).uniform();
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn sampling_keeps_the_nucleus_and_follows_the_draw() {
        // Probabilities at temperature 1: token 0 ≈ 0.24, token 1 ≈ 0.09, token 2 ≈ 0.66,
        // drawn in id order.
        let logits = [1.0, 0.0, 2.0];
        assert_eq!(sample(&logits, 1.0, 1.0, 0.0), 0, "in id order");
        assert_eq!(sample(&logits, 1.0, 1.0, 0.3), 1);
        assert_eq!(sample(&logits, 1.0, 1.0, 0.99), 2);
        let (low, high) = draw_interval(&logits, 1.0, 1.0, 1).unwrap();
        assert!(
            (low - 0.2447).abs() < 1e-3 && (high - 0.3348).abs() < 1e-3,
            "{low} {high}"
        );
        assert_eq!(
            draw_interval(&logits, 1.0, 0.5, 0),
            None,
            "outside the nucleus"
        );
        let near_tie = [1.0, 1.0 + 1e-6, -5.0];
        assert_eq!(
            sample(&near_tie, 1.0, 1.0, 0.25),
            sample(&[1.0 + 1e-6, 1.0, -5.0], 1.0, 1.0, 0.25),
            "a near-tie's order does not decide the draw"
        );
        assert_eq!(
            sample(&logits, 1.0, 0.5, 0.99),
            2,
            "top-p 0.5 keeps token 2 alone"
        );
        assert_eq!(
            sample(&logits, 0.01, 1.0, 0.99),
            2,
            "a cold temperature is greedy"
        );
    }
}
