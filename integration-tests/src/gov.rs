//! Governance helpers shared by the end-to-end tests: a devnet with short governance
//! durations, sending a governance or agent transaction, reading proposals.

use std::thread;
use std::time::{Duration, Instant};

use domain::address::Address;
use domain::keys::SigningKey;
use serde_json::{Value, json};

use crate::*;

/// TWAS window of [`governance_devnet`], seconds.
pub const WINDOW_S: u64 = 3;
/// Proposal bond of [`governance_devnet`].
pub const BOND: u128 = 100 * AIT;
/// Challenge bond of [`governance_devnet`].
pub const CHALLENGE_BOND: u128 = 50 * AIT;

/// A devnet with 1-second voting delay and timelock, 3-second voting and TWAS window, a
/// 1,000 AIT proposal threshold and a 2-of-3 council (returned).
pub fn governance_devnet(dir: &std::path::Path) -> (TestNode, ChainSetup, Vec<SigningKey>) {
    let (config, mut chains) = write_config(dir, &[(DEVNET, 0)], 200);
    let members: Vec<SigningKey> = (0..3).map(|_| new_key()).collect();
    let council: Vec<String> = members
        .iter()
        .map(|k| format!("\"{}\"", k.address()))
        .collect();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[chains.genesis.governance]\nvoting_delay_s = 1\nvoting_period_s = 3\n\
         emergency_voting_period_s = 2\ntimelock_s = 1\ngrace_period_s = 60\n\
         twas_window_s = {WINDOW_S}\nchallenge_timeout_s = 30\nquorum_bps = 400\n\
         proposal_threshold = \"{}\"\nproposal_bond = \"{BOND}\"\nchallenge_bond = \"{CHALLENGE_BOND}\"\n\
         council = [{}]\ncouncil_threshold = 2\n",
        1_000 * AIT,
        council.join(", ")
    ));
    std::fs::write(&config, text).unwrap();
    let node = TestNode::start_with_config(dir, &config);
    (node, chains.remove(0), members)
}

/// Signs `kind` with `body` from `key` at its next nonce and submits it.
pub fn send(node: &TestNode, key: &SigningKey, kind: &str, body: Value) -> (u16, Value) {
    let nonce = node.account(&key.address()).1;
    node.submit(&signed(DEVNET, key, nonce, kind, body))
}

/// [`send`], asserting it was applied; returns its hash.
pub fn applied(node: &TestNode, key: &SigningKey, kind: &str, body: Value) -> String {
    let (status, answer) = send(node, key, kind, body);
    assert_eq!(status, 200, "{kind}: {answer}");
    assert_eq!(answer["outcome"], "applied", "{kind}: {answer}");
    answer["tx_hash"].as_str().unwrap().to_string()
}

/// [`send`], asserting it was refused and changed nothing; returns the status and code.
pub fn refused_with(node: &TestNode, key: &SigningKey, kind: &str, body: Value) -> (u16, String) {
    let nonce = node.account(&key.address()).1;
    let (status, answer) = send(node, key, kind, body);
    assert_ne!(status, 200, "{kind} should be refused: {answer}");
    assert_eq!(
        node.account(&key.address()).1,
        nonce,
        "a refusal changes nothing"
    );
    (status, error_code(&answer).to_string())
}

/// Creates a proposal of `proposal_type` with `actions`; returns its id.
pub fn propose(node: &TestNode, key: &SigningKey, proposal_type: &str, actions: Value) -> String {
    let body = json!({
        "proposal_type": proposal_type,
        "title": format!("a {proposal_type} proposal"),
        "description": "as voted",
        "actions": actions,
    });
    applied(node, key, "propose", body)
}

/// `GET /v1/proposals/{id}`.
pub fn proposal(node: &TestNode, id: &str) -> Value {
    let (status, body) = node.get(&format!("/v1/proposals/{id}"));
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls until proposal `id` is in `state` (30 s at most).
pub fn wait_state(node: &TestNode, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let current = proposal(node, id);
        if current["state"] == state {
            return current;
        }
        assert!(Instant::now() < deadline, "never {state}: {current}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// A transfer from the chain's genesis holder (the faucet account holds nearly all the supply).
pub fn give(node: &TestNode, chain: &ChainSetup, to: &Address, amount: u128) -> Value {
    let nonce = node.account(&chain.faucet.address()).1;
    let (status, body) = node.transfer(&chain.faucet, nonce, to, amount, 0);
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until balances held now count fully in the TWAS window.
pub fn wait_window() {
    thread::sleep(Duration::from_millis(WINDOW_S * 1000 + 300));
}
