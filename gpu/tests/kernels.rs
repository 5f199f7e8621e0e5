//! GPU kernels against their CPU references, on seeded random inputs.

mod common;

use common::{exec, limits, random_f32, rng};
use gpu::kernels::matmul::{Matmul, matmul_cpu, tolerance};
use gpu::kernels::mlp::{DenseLayer, Mlp, MlpInference, mlp_cpu};
use gpu::kernels::sha256::{ProofOfWork, leading_zero_bits, pow_cpu, sha256_cpu, verify_pow};
use rand::Rng;

fn check_matmul(m: u32, k: u32, n: u32, seed: u64) {
    let mut r = rng(seed);
    let a = random_f32(&mut r, (m * k) as usize);
    let b = random_f32(&mut r, (k * n) as usize);
    let want = matmul_cpu(&a, &b, m as usize, k as usize, n as usize);
    let tol = tolerance(&a, &b, k);
    let got = exec()
        .matmul(
            Matmul {
                m,
                k,
                n,
                a: a.clone(),
                b: b.clone(),
            },
            &limits(),
        )
        .expect("matmul runs");
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "{m}x{k}x{n} element {i}: gpu {g} cpu {w} tol {tol}"
        );
    }
}

#[test]
fn matmul_matches_cpu_on_odd_sizes() {
    for (i, &(m, k, n)) in [
        (1, 1, 1),
        (17, 33, 9),
        (65, 3, 130),
        (64, 64, 64),
        (2, 100, 1),
        (129, 17, 65),
    ]
    .iter()
    .enumerate()
    {
        check_matmul(m, k, n, 100 + i as u64);
    }
}

#[test]
fn matmul_matches_cpu_on_random_sizes() {
    let mut r = rng(7);
    for i in 0..4 {
        let (m, k, n) = (
            r.random_range(1..90),
            r.random_range(1..90),
            r.random_range(1..90),
        );
        check_matmul(m, k, n, 200 + i);
    }
}

#[test]
fn sha256_matches_fips_180_4_vectors() {
    let got = exec()
        .sha256_batch(
            vec![
                b"abc".to_vec(),
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".to_vec(),
                Vec::new(),
            ],
            &limits(),
        )
        .expect("sha256 runs");
    let hex: Vec<String> = got
        .iter()
        .map(|d| d.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    assert_eq!(
        hex,
        vec![
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ]
    );
}

#[test]
fn sha256_batch_matches_sha2_crate_on_random_messages() {
    let mut r = rng(11);
    let messages: Vec<Vec<u8>> = (0..300)
        .map(|i| {
            // every length around the block edges, then random ones
            let len = if i < 130 { i } else { r.random_range(0..1500) };
            (0..len).map(|_| r.random()).collect()
        })
        .collect();
    let got = exec()
        .sha256_batch(messages.clone(), &limits())
        .expect("sha256 runs");
    for (m, d) in messages.iter().zip(&got) {
        assert_eq!(*d, sha256_cpu(m), "message of {} bytes", m.len());
    }
}

#[test]
fn proof_of_work_finds_the_first_nonce_the_cpu_finds() {
    for (prefix_len, bits, seed) in [(0usize, 8u32, 1u64), (20, 12, 2), (50, 10, 3), (130, 9, 4)] {
        let mut r = rng(seed);
        let prefix: Vec<u8> = (0..prefix_len).map(|_| r.random()).collect();
        let start = r.random_range(0..u64::from(u32::MAX)) + (u64::from(u32::MAX) - 1000);
        let outcome = exec()
            .proof_of_work(
                ProofOfWork {
                    prefix: prefix.clone(),
                    difficulty_bits: bits,
                    start_nonce: start,
                    max_nonces: 1 << 20,
                },
                &limits(),
            )
            .expect("pow runs");
        let sol = outcome.solution.expect("a nonce exists in 2^20 tries");
        assert!(verify_pow(&prefix, sol.nonce, bits));
        assert!(leading_zero_bits(&sol.digest) >= bits);
        let cpu = pow_cpu(&prefix, bits, start, 1 << 20);
        assert_eq!(Some(sol.nonce), cpu, "prefix {prefix_len} bits {bits}");
    }
}

#[test]
fn proof_of_work_reports_no_solution_in_a_short_range() {
    let outcome = exec()
        .proof_of_work(
            ProofOfWork {
                prefix: b"aitbc".to_vec(),
                difficulty_bits: 64,
                start_nonce: 0,
                max_nonces: 1000,
            },
            &limits(),
        )
        .expect("pow runs");
    assert_eq!(outcome.solution, None);
    assert_eq!(outcome.nonces_tried, 1000);
}

fn random_mlp(r: &mut rand::rngs::StdRng, widths: &[u32]) -> Mlp {
    let layers = widths
        .windows(2)
        .map(|w| {
            let scale = 1.0 / (w[0] as f32).sqrt();
            DenseLayer {
                inputs: w[0],
                outputs: w[1],
                weights: random_f32(r, (w[0] * w[1]) as usize)
                    .into_iter()
                    .map(|v| v * scale)
                    .collect(),
                biases: random_f32(r, w[1] as usize),
            }
        })
        .collect();
    Mlp { layers }
}

#[test]
fn mlp_matches_cpu() {
    for (seed, widths, batch) in [
        (1u64, vec![4u32, 1], 1u32),
        (2, vec![13, 70, 33, 5], 37),
        (3, vec![64, 128, 128, 10], 65),
    ] {
        let mut r = rng(seed);
        let network = random_mlp(&mut r, &widths);
        let inputs = random_f32(&mut r, (batch * widths[0]) as usize);
        let want = mlp_cpu(&network, &inputs, batch as usize);
        let got = exec()
            .mlp(
                MlpInference {
                    network,
                    batch,
                    inputs,
                },
                &limits(),
            )
            .expect("mlp runs");
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "gpu {g} cpu {w}");
        }
    }
}
