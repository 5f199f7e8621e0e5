//! `sha256`: batch hashing of many messages, and proof-of-work nonce search.
//!
//! Padding is done on the CPU (FIPS 180-4 §5.1.1): the batch kernel receives whole padded blocks
//! and one invocation hashes one message. The proof-of-work kernel receives the prefix's midstate
//! and a padded tail template; each invocation ORs its nonce (u64, little-endian) into the tail.
//! CPU references: [`sha256_cpu`] (the `sha2` crate) and [`pow_cpu`]; [`verify_pow`] checks an
//! answer in microseconds.

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::device::{Binding, Deadline, Gpu, dispatch, storage_usage};
use crate::error::{GpuError, LimitKind, Result};
use crate::limits::{
    POW_BITS_MAX, POW_NONCES_PER_DISPATCH, POW_PREFIX_BYTES_MAX, Plan, SHA_MESSAGE_BYTES_MAX,
    SHA_MESSAGES_MAX,
};

const COMMON: &str = include_str!("sha256_common.wgsl");
const BATCH: &str = include_str!("sha256_batch.wgsl");
const POW: &str = include_str!("sha256_pow.wgsl");
const WORKGROUP: u64 = 64;

const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// Hash every message of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sha256Batch {
    /// The messages, any lengths up to [`SHA_MESSAGE_BYTES_MAX`].
    pub messages: Vec<Vec<u8>>,
}

/// Find a nonce whose SHA-256(prefix ‖ nonce as 8 little-endian bytes) has enough leading zero bits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofOfWork {
    /// The bytes before the nonce (up to [`POW_PREFIX_BYTES_MAX`]).
    pub prefix: Vec<u8>,
    /// Leading zero bits required (up to [`POW_BITS_MAX`]).
    pub difficulty_bits: u32,
    /// First nonce tried.
    pub start_nonce: u64,
    /// Nonces tried at most (`start_nonce..start_nonce + max_nonces`).
    pub max_nonces: u64,
}

/// A proof-of-work answer, already verified on the CPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowSolution {
    /// The nonce (the smallest that works within the dispatch that found it).
    pub nonce: u64,
    /// SHA-256(prefix ‖ nonce_le).
    pub digest: [u8; 32],
}

/// What a proof-of-work search did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowOutcome {
    /// The answer, if one was found in the range.
    pub solution: Option<PowSolution>,
    /// Nonces hashed (whole dispatches are counted).
    pub nonces_tried: u64,
}

impl Sha256Batch {
    pub(crate) fn plan(&self) -> Result<Plan> {
        let n = self.messages.len();
        if n > SHA_MESSAGES_MAX {
            return Err(GpuError::LimitExceeded {
                kind: LimitKind::BatchSize,
                requested: n as u64,
                max: SHA_MESSAGES_MAX as u64,
            });
        }
        let mut words_bytes: u64 = 0;
        for m in &self.messages {
            if m.len() > SHA_MESSAGE_BYTES_MAX {
                return Err(GpuError::LimitExceeded {
                    kind: LimitKind::ItemSize,
                    requested: m.len() as u64,
                    max: SHA_MESSAGE_BYTES_MAX as u64,
                });
            }
            words_bytes += padded_blocks(m.len()) * 64;
        }
        let n = n as u64;
        Ok(Plan {
            buffers_bytes: vec![words_bytes, n * 8, n * 32, n * 32],
            dispatches: u64::from(n > 0),
            workgroups: [n.div_ceil(WORKGROUP) as u32, 1, 1],
            workgroup_invocations: WORKGROUP as u32,
        })
    }

    pub(crate) fn run(&self, gpu: &mut Gpu, deadline: &Deadline) -> Result<Vec<[u8; 32]>> {
        let n = self.messages.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let source = format!("{COMMON}\n{BATCH}");
        let kernel = gpu.kernel(
            "sha256_batch",
            &source,
            "hash_batch",
            &[Binding::ReadOnly, Binding::ReadOnly, Binding::ReadWrite],
        );
        let mut words: Vec<u32> = Vec::new();
        let mut spans: Vec<u32> = Vec::with_capacity(n * 2);
        for m in &self.messages {
            let padded = pad(m);
            spans.push(words.len() as u32);
            spans.push((padded.len() / 16) as u32);
            words.extend_from_slice(&padded);
        }
        let words = gpu.storage_with(bytemuck::cast_slice(&words));
        let spans = gpu.storage_with(bytemuck::cast_slice(&spans));
        let out_bytes = n as u64 * 32;
        let digests = gpu.buffer(out_bytes, storage_usage());
        let staging = gpu.staging(out_bytes);
        let bg = gpu.bind_group(&kernel, &[&words, &spans, &digests]);
        let mut enc = gpu.encoder();
        dispatch(
            &mut enc,
            &kernel,
            &bg,
            [(n as u64).div_ceil(WORKGROUP) as u32, 1, 1],
        );
        enc.copy_buffer_to_buffer(&digests.buffer, 0, &staging.buffer, 0, out_bytes);
        gpu.submit_wait(enc, deadline)?;
        let raw = gpu.read(&staging, deadline)?;
        gpu.recycle([words, spans, digests, staging]);
        let state_words: Vec<u32> = bytemuck::pod_collect_to_vec(&raw);
        Ok(state_words
            .chunks_exact(8)
            .map(|s| {
                let mut d = [0u8; 32];
                for (i, w) in s.iter().enumerate() {
                    d[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
                }
                d
            })
            .collect())
    }
}

impl ProofOfWork {
    fn validate(&self) -> Result<()> {
        if self.prefix.len() > POW_PREFIX_BYTES_MAX {
            return Err(GpuError::LimitExceeded {
                kind: LimitKind::ItemSize,
                requested: self.prefix.len() as u64,
                max: POW_PREFIX_BYTES_MAX as u64,
            });
        }
        if self.difficulty_bits > POW_BITS_MAX {
            return Err(GpuError::LimitExceeded {
                kind: LimitKind::ItemSize,
                requested: u64::from(self.difficulty_bits),
                max: u64::from(POW_BITS_MAX),
            });
        }
        if self.max_nonces == 0 {
            return Err(GpuError::InvalidJob(
                "proof of work: max_nonces is 0".into(),
            ));
        }
        if self.start_nonce.checked_add(self.max_nonces - 1).is_none() {
            return Err(GpuError::InvalidJob(
                "proof of work: nonce range runs past u64::MAX".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn plan(&self) -> Result<Plan> {
        self.validate()?;
        Ok(Plan {
            buffers_bytes: vec![48 * 4, 4, 4],
            dispatches: self.max_nonces.div_ceil(POW_NONCES_PER_DISPATCH),
            workgroups: [
                (self.max_nonces.min(POW_NONCES_PER_DISPATCH)).div_ceil(WORKGROUP) as u32,
                1,
                1,
            ],
            workgroup_invocations: WORKGROUP as u32,
        })
    }

    pub(crate) fn run(&self, gpu: &mut Gpu, deadline: &Deadline) -> Result<PowOutcome> {
        let source = format!("{COMMON}\n{POW}");
        let kernel = gpu.kernel(
            "sha256_pow",
            &source,
            "pow_search",
            &[Binding::ReadOnly, Binding::ReadWrite],
        );
        let mut params = pow_template(&self.prefix);
        params[3] = self.difficulty_bits;
        let params_buf = gpu.buffer(48 * 4, storage_usage());
        let found = gpu.buffer(4, storage_usage());
        let staging = gpu.staging(4);
        let bg = gpu.bind_group(&kernel, &[&params_buf, &found]);
        let mut tried: u64 = 0;
        let mut solution = None;
        while tried < self.max_nonces {
            let count = (self.max_nonces - tried).min(POW_NONCES_PER_DISPATCH);
            let start = self.start_nonce + tried;
            params[0] = start as u32;
            params[1] = (start >> 32) as u32;
            params[2] = count as u32;
            gpu.write(&params_buf, bytemuck::cast_slice(&params));
            gpu.write(&found, &u32::MAX.to_le_bytes());
            let mut enc = gpu.encoder();
            dispatch(
                &mut enc,
                &kernel,
                &bg,
                [count.div_ceil(WORKGROUP) as u32, 1, 1],
            );
            enc.copy_buffer_to_buffer(&found.buffer, 0, &staging.buffer, 0, 4);
            gpu.submit_wait(enc, deadline)?;
            let raw = gpu.read(&staging, deadline)?;
            let index = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
            if index != u32::MAX {
                let nonce = start + u64::from(index);
                let digest = pow_digest(&self.prefix, nonce);
                if leading_zero_bits(&digest) < self.difficulty_bits {
                    return Err(GpuError::Backend(format!(
                        "GPU proposed nonce {nonce}, which fails CPU verification"
                    )));
                }
                tried += u64::from(index) + 1;
                solution = Some(PowSolution { nonce, digest });
                break;
            }
            tried += count;
        }
        gpu.recycle([params_buf, found, staging]);
        Ok(PowOutcome {
            solution,
            nonces_tried: tried,
        })
    }
}

/// Blocks of a padded message of `len` bytes.
fn padded_blocks(len: usize) -> u64 {
    (len as u64 + 9).div_ceil(64)
}

/// Pads a message (FIPS 180-4 §5.1.1) into big-endian words, 16 per block.
pub fn pad(message: &[u8]) -> Vec<u32> {
    let blocks = padded_blocks(message.len()) as usize;
    let mut bytes = vec![0u8; blocks * 64];
    bytes[..message.len()].copy_from_slice(message);
    bytes[message.len()] = 0x80;
    let bits = (message.len() as u64) * 8;
    let end = bytes.len();
    bytes[end - 8..].copy_from_slice(&bits.to_be_bytes());
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// One SHA-256 compression on the CPU (used for the proof-of-work midstate).
pub fn compress_cpu(state: &mut [u32; 8], block: &[u32; 16]) {
    let mut w = [0u32; 64];
    w[..16].copy_from_slice(block);
    for i in 16..64 {
        let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
        let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16]
            .wrapping_add(s0)
            .wrapping_add(w[i - 7])
            .wrapping_add(s1);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for i in 0..64 {
        let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        let ch = (e & f) ^ (!e & g);
        let t1 = h
            .wrapping_add(s1)
            .wrapping_add(ch)
            .wrapping_add(K[i])
            .wrapping_add(w[i]);
        let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
        let maj = (a & b) ^ (a & c) ^ (b & c);
        let t2 = s0.wrapping_add(maj);
        h = g;
        g = f;
        f = e;
        e = d.wrapping_add(t1);
        d = c;
        c = b;
        b = a;
        a = t1.wrapping_add(t2);
    }
    for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = s.wrapping_add(v);
    }
}

/// The proof-of-work kernel's parameter words for `prefix` (nonce range and bits left zero).
fn pow_template(prefix: &[u8]) -> [u32; 48] {
    let full = prefix.len() / 64 * 64;
    let mut state = IV;
    for block in prefix[..full].chunks_exact(64) {
        let mut words = [0u32; 16];
        for (w, c) in words.iter_mut().zip(block.chunks_exact(4)) {
            *w = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
        compress_cpu(&mut state, &words);
    }
    let tail = &prefix[full..];
    let blocks = if tail.len() + 8 + 9 <= 64 { 1 } else { 2 };
    let mut bytes = [0u8; 128];
    bytes[..tail.len()].copy_from_slice(tail);
    bytes[tail.len() + 8] = 0x80;
    let bits = (prefix.len() as u64 + 8) * 8;
    bytes[blocks * 64 - 8..blocks * 64].copy_from_slice(&bits.to_be_bytes());
    let mut p = [0u32; 48];
    p[4] = tail.len() as u32;
    p[5] = blocks as u32;
    p[8..16].copy_from_slice(&state);
    for (w, c) in p[16..48].iter_mut().zip(bytes.chunks_exact(4)) {
        *w = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
    }
    p
}

/// CPU reference: SHA-256 of one message (the `sha2` crate).
pub fn sha256_cpu(message: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(message).into()
}

/// SHA-256(prefix ‖ nonce as 8 little-endian bytes).
pub fn pow_digest(prefix: &[u8], nonce: u64) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(prefix);
    h.update(nonce.to_le_bytes());
    h.finalize().into()
}

/// Leading zero bits of a digest.
pub fn leading_zero_bits(digest: &[u8; 32]) -> u32 {
    let mut bits = 0;
    for &b in digest {
        bits += b.leading_zeros();
        if b != 0 {
            break;
        }
    }
    bits
}

/// Checks a proof-of-work answer on the CPU (one hash).
pub fn verify_pow(prefix: &[u8], nonce: u64, difficulty_bits: u32) -> bool {
    leading_zero_bits(&pow_digest(prefix, nonce)) >= difficulty_bits
}

/// CPU reference search: the first nonce in `start..start + count` that meets the difficulty.
pub fn pow_cpu(prefix: &[u8], difficulty_bits: u32, start: u64, count: u64) -> Option<u64> {
    let base = sha2::Sha256::new_with_prefix(prefix);
    (0..count).map(|i| start.wrapping_add(i)).find(|&nonce| {
        let mut h = base.clone();
        h.update(nonce.to_le_bytes());
        leading_zero_bits(&h.finalize().into()) >= difficulty_bits
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words_to_bytes(state: &[u32; 8]) -> [u8; 32] {
        let mut d = [0u8; 32];
        for (i, w) in state.iter().enumerate() {
            d[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
        }
        d
    }

    fn cpu_own(message: &[u8]) -> [u8; 32] {
        let mut state = IV;
        for block in pad(message).chunks_exact(16) {
            let mut b = [0u32; 16];
            b.copy_from_slice(block);
            compress_cpu(&mut state, &b);
        }
        words_to_bytes(&state)
    }

    #[test]
    fn own_compression_matches_sha2_at_every_length_around_block_edges() {
        for len in 0..200 {
            let msg: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            assert_eq!(cpu_own(&msg), sha256_cpu(&msg), "length {len}");
        }
    }

    #[test]
    fn pow_template_reproduces_the_digest() {
        for len in [0usize, 1, 47, 48, 55, 56, 63, 64, 100, 119, 120, 200] {
            let prefix: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let nonce = 0x0102_0304_0506_0708u64;
            let p = pow_template(&prefix);
            let mut tail = [0u32; 32];
            tail.copy_from_slice(&p[16..48]);
            let mut bytes: Vec<u8> = tail.iter().flat_map(|w| w.to_be_bytes()).collect();
            let off = p[4] as usize;
            bytes[off..off + 8].copy_from_slice(&nonce.to_le_bytes());
            let mut state = [0u32; 8];
            state.copy_from_slice(&p[8..16]);
            for b in 0..p[5] as usize {
                let mut words = [0u32; 16];
                for (w, c) in words
                    .iter_mut()
                    .zip(bytes[b * 64..b * 64 + 64].chunks_exact(4))
                {
                    *w = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
                }
                compress_cpu(&mut state, &words);
            }
            assert_eq!(
                words_to_bytes(&state),
                pow_digest(&prefix, nonce),
                "len {len}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn own_compression_matches_sha2_on_any_message(msg in proptest::collection::vec(0u8.., 0..300)) {
            proptest::prop_assert_eq!(cpu_own(&msg), sha256_cpu(&msg));
        }

        #[test]
        fn pow_cpu_answers_verify(prefix in proptest::collection::vec(0u8.., 0..80), start in 0u64..u64::MAX / 2) {
            if let Some(n) = pow_cpu(&prefix, 6, start, 10_000) {
                proptest::prop_assert!(verify_pow(&prefix, n, 6));
            }
        }
    }

    #[test]
    fn leading_zero_bits_counts_across_bytes() {
        let mut d = [0u8; 32];
        d[2] = 0x10;
        assert_eq!(leading_zero_bits(&d), 19);
        assert_eq!(leading_zero_bits(&[0u8; 32]), 256);
    }

    #[test]
    fn pow_limits_are_checked() {
        let job = ProofOfWork {
            prefix: vec![],
            difficulty_bits: POW_BITS_MAX + 1,
            start_nonce: 0,
            max_nonces: 1,
        };
        assert!(matches!(job.plan(), Err(GpuError::LimitExceeded { .. })));
        let job = ProofOfWork {
            prefix: vec![],
            difficulty_bits: 1,
            start_nonce: u64::MAX,
            max_nonces: 2,
        };
        assert!(matches!(job.plan(), Err(GpuError::InvalidJob(_))));
    }
}
