//! What one signed transfer costs in the domain's stages, before any actor or I/O (issue 13:
//! a figure per hot stage, so that a regression shows without a full HTTP run):
//!
//! ```text
//! cargo run --release -p domain --bin tx-bench -- [--transactions N]
//! ```
//! Each stage runs over N distinct transactions (N keys, as `bench transfers` has many senders)
//! and prints µs per transaction on one core.

mod common;

use std::hint::black_box;
use std::time::Instant;

use common::arg;

use domain::address::Address;
use domain::keys::{PublicKey, SignedMessage, SigningKey, verify_batch};
use domain::money::Amount;
use domain::tx::{
    HeldSignature, SignedEnvelope, TxPayload, check_claims, sign_payload, signing_bytes, tx_hash,
};

/// The bytes of a hex field of the envelope.
fn bytes<const N: usize>(hex_text: &str) -> [u8; N] {
    let mut bytes = [0u8; N];
    hex::decode_to_slice(hex_text, &mut bytes).expect("hex");
    bytes
}

/// Runs `stage` over every item and prints its cost per item.
fn stage<T>(name: &str, items: &[T], mut stage: impl FnMut(&T)) {
    let started = Instant::now();
    for item in items {
        stage(item);
    }
    let each = started.elapsed().as_secs_f64() * 1e6 / items.len() as f64;
    println!("{name:<44} {each:>8.2} µs");
}

fn main() {
    let n = arg("--transactions", 20_000) as usize;
    let to = Address([7; 20]);
    let envelopes: Vec<SignedEnvelope> = (0..n)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let key = SigningKey::from_seed(seed);
            let payload =
                TxPayload::transfer("ait-devnet", key.address(), 0, Amount(0), to, Amount(1));
            sign_payload(&key, &payload)
        })
        .collect();
    let bodies: Vec<Vec<u8>> = envelopes
        .iter()
        .map(|e| serde_json::to_vec(e).expect("serializes"))
        .collect();
    let keys: Vec<[u8; 32]> = envelopes.iter().map(|e| bytes(&e.public_key)).collect();
    println!(
        "{n} signed transfers, {} bytes of JSON each",
        bodies[0].len()
    );
    stage("envelope JSON → SignedEnvelope", &bodies, |b| {
        black_box(serde_json::from_slice::<SignedEnvelope>(b).expect("parses"));
    });
    stage("SHA-256 of the payload (its hash)", &envelopes, |e| {
        black_box(tx_hash(&e.payload));
    });
    stage("public key decompression", &keys, |k| {
        black_box(PublicKey::from_bytes(k).expect("a key"));
    });
    let parsed: Vec<PublicKey> = keys
        .iter()
        .map(|k| PublicKey::from_bytes(k).unwrap())
        .collect();
    let signatures: Vec<[u8; 64]> = envelopes.iter().map(|e| bytes(&e.signature)).collect();
    let indexes: Vec<usize> = (0..n).collect();
    let messages: Vec<Vec<u8>> = envelopes
        .iter()
        .map(|e| signing_bytes(&e.payload))
        .collect();
    stage("signature check, one by one, key parsed", &indexes, |&i| {
        assert!(parsed[i].verify(&messages[i], &signatures[i]));
    });
    for size in [8, 16, 32, 64, 128] {
        let batches: Vec<Vec<SignedMessage>> = indexes
            .chunks(size)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|&i| SignedMessage {
                        key: &parsed[i],
                        message: &messages[i],
                        signature: &signatures[i],
                    })
                    .collect()
            })
            .collect();
        let started = Instant::now();
        for batch in &batches {
            assert!(verify_batch(batch));
        }
        let each = started.elapsed().as_secs_f64() * 1e6 / n as f64;
        let name = format!("signature check, batches of {size}");
        println!("{name:<44} {each:>8.2} µs");
    }
    let held: Vec<HeldSignature> = check_claims(
        envelopes
            .iter()
            .map(|e| {
                e.signature_claim(PublicKey::from_bytes)
                    .expect("well formed")
            })
            .collect(),
    )
    .into_iter()
    .map(|held| held.expect("holds"))
    .collect();
    stage("payload JSON and body, signature held", &indexes, |&i| {
        black_box(envelopes[i].verified(&held[i]).expect("well formed"));
    });
    stage(
        "verify(): hex, key, signature, payload, body",
        &envelopes,
        |e| {
            black_box(e.verify().expect("verifies"));
        },
    );
    stage(
        "the answer's JSON (tx_hash, status, outcome)",
        &envelopes,
        |e| {
            let answer = serde_json::json!({
                "tx_hash": e.hash(), "status": "committed", "position": 1, "outcome": "applied",
            });
            black_box(serde_json::to_vec(&answer).expect("serializes"));
        },
    );
}
