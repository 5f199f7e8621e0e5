//! Crash safety: concurrent load, `kill -9` mid-load, restart, and every acknowledged
//! transaction must have survived with its effects, books balanced, blocks valid. Twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use domain::address::Address;
use domain::keys::SigningKey;
use domain::tx::SignedEnvelope;
use integration_tests::serde_json::Value;
use integration_tests::*;

const SENDERS: usize = 16;
const FUNDING: u128 = 1_000_000;
const LOAD: Duration = Duration::from_millis(1500);

/// A transfer as the test model needs it.
#[derive(Clone, Debug)]
struct Sent {
    envelope: SignedEnvelope,
    from: Address,
    to: Address,
    amount: u128,
    fee: u128,
}

/// What one load thread saw.
#[derive(Default)]
struct ThreadLog {
    /// Acknowledged (200) transfers with their answers.
    acked: Vec<(Sent, Value)>,
    /// The transfer in flight when the node died (may or may not have committed).
    in_flight: Option<Sent>,
    /// Unexpected non-200 answers before the kill.
    failures: Vec<String>,
}

fn load_thread(
    client: Client,
    key: SigningKey,
    start_nonce: u64,
    recipients: Vec<Address>,
    seed: u64,
    killed: Arc<AtomicBool>,
) -> ThreadLog {
    let mut rng = Rng::new(seed);
    let mut log = ThreadLog::default();
    let mut nonce = start_nonce;
    loop {
        let to = loop {
            let to = recipients[rng.below(recipients.len() as u64) as usize];
            if to != key.address() {
                break to;
            }
        };
        let amount = 1 + rng.below(100) as u128;
        let fee = if rng.below(3) == 0 {
            1 + rng.below(5) as u128
        } else {
            0
        };
        let sent = Sent {
            envelope: signed_transfer(DEVNET, &key, nonce, &to, amount, fee),
            from: key.address(),
            to,
            amount,
            fee,
        };
        match client.try_submit(&sent.envelope) {
            Ok((200, body)) => {
                assert_eq!(body["tx_hash"], sent.envelope.hash().to_hex());
                log.acked.push((sent, body));
                nonce += 1;
            }
            Ok((status, body)) => {
                if !killed.load(Ordering::SeqCst) {
                    log.failures.push(format!("{status} {body}"));
                }
                log.in_flight = Some(sent);
                return log;
            }
            Err(_) => {
                log.in_flight = Some(sent);
                return log;
            }
        }
    }
}

/// What the faucet load thread saw: acknowledged (to, amount, answer) and the one in flight.
#[derive(Default)]
struct FaucetLog {
    acked: Vec<(Address, u128, Value)>,
    in_flight: Option<(Address, u128)>,
    failures: Vec<String>,
}

fn faucet_thread(
    client: Client,
    to: Vec<Address>,
    seed: u64,
    killed: Arc<AtomicBool>,
) -> FaucetLog {
    let mut rng = Rng::new(seed);
    let mut log = FaucetLog::default();
    loop {
        let address = to[rng.below(to.len() as u64) as usize];
        let amount = 1 + rng.below(1_000) as u128;
        let body = integration_tests::serde_json::json!({
            "address": address.to_string(),
            "amount": amount.to_string(),
        });
        match client.try_post("/v1/faucet", &body) {
            Ok((200, answer)) => log.acked.push((address, amount, answer)),
            other => {
                if let Ok((status, body)) = other
                    && !killed.load(Ordering::SeqCst)
                {
                    log.failures.push(format!("faucet {status} {body}"));
                }
                log.in_flight = Some((address, amount));
                return log;
            }
        }
    }
}

struct Model {
    balances: BTreeMap<Address, u128>,
    treasury: Address,
}

impl Model {
    fn credit_from(&mut self, from: Address, to: Address, amount: u128) {
        let source = self.balances.entry(from).or_default();
        *source = source.checked_sub(amount).expect("model: faucet overdrawn");
        *self.balances.entry(to).or_default() += amount;
    }

    fn apply(&mut self, sent: &Sent) {
        let from = self.balances.entry(sent.from).or_default();
        *from = from
            .checked_sub(sent.amount + sent.fee)
            .expect("model: sender overdrawn");
        *self.balances.entry(sent.to).or_default() += sent.amount;
        *self.balances.entry(self.treasury).or_default() += sent.fee;
    }
}

#[test]
fn acknowledged_transactions_survive_kill_9() {
    let dir = tempdir();
    let (mut node, chain) = fast_devnet(dir.path(), 0);
    let senders: Vec<SigningKey> = (0..SENDERS).map(|_| new_key()).collect();
    let outsiders: Vec<Address> = (0..8).map(|_| new_key().address()).collect();
    let treasury = Address::treasury(DEVNET);
    let mut model = Model {
        balances: BTreeMap::new(),
        treasury,
    };
    model.balances.insert(chain.faucet.address(), FAUCET_SUPPLY);
    model.balances.insert(treasury, 0);
    for a in &outsiders {
        model.balances.insert(*a, 0);
    }
    for key in &senders {
        node.faucet(&key.address(), FUNDING);
        *model.balances.get_mut(&chain.faucet.address()).unwrap() -= FUNDING;
        model.balances.insert(key.address(), FUNDING);
    }
    let mut recipients: Vec<Address> = senders.iter().map(SigningKey::address).collect();
    recipients.extend(&outsiders);
    let mut nonces = [0u64; SENDERS];
    let mut all_acked: Vec<(Sent, Value)> = Vec::new();
    let mut faucet_nonce = SENDERS as u64;

    for round in 0..2u64 {
        let killed = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = senders
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let (client, key, recipients, killed) = (
                    node.client(),
                    key.clone(),
                    recipients.clone(),
                    killed.clone(),
                );
                let start = nonces[i];
                let seed = (round + 1) * 1_000 + i as u64 + 1;
                thread::spawn(move || load_thread(client, key, start, recipients, seed, killed))
            })
            .collect();
        let faucet_load = {
            let (client, to, killed) = (node.client(), outsiders.clone(), killed.clone());
            thread::spawn(move || faucet_thread(client, to, 77 + round, killed))
        };
        thread::sleep(LOAD);
        node.kill9();
        killed.store(true, Ordering::SeqCst);
        let logs: Vec<ThreadLog> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let faucet_log = faucet_load.join().unwrap();
        assert!(faucet_log.failures.is_empty(), "{:?}", faucet_log.failures);
        let acked_now: usize = logs.iter().map(|l| l.acked.len()).sum();
        let failures: Vec<&String> = logs.iter().flat_map(|l| &l.failures).collect();
        assert!(
            failures.is_empty(),
            "round {round}: rejected under load: {failures:?}"
        );
        assert!(
            acked_now >= SENDERS,
            "round {round}: only {acked_now} txs acknowledged"
        );

        node.restart();
        let mut in_flight_committed = 0;
        for (i, log) in logs.iter().enumerate() {
            let key = &senders[i];
            for (sent, answer) in &log.acked {
                let hash = sent.envelope.hash().to_hex();
                let (status, tx) = node.get(&format!("/v1/transactions/{hash}"));
                assert_eq!(
                    status, 200,
                    "round {round}: acknowledged tx {hash} lost: {tx}"
                );
                assert_eq!(tx["status"], "committed");
                assert_eq!(tx["position"], answer["position"], "position of {hash}");
                model.apply(sent);
            }
            let acked = nonces[i] + log.acked.len() as u64;
            let (_, nonce) = node.account(&key.address());
            assert!(
                nonce == acked || nonce == acked + 1,
                "round {round}: sender {i} nonce {nonce}, acknowledged up to {acked}"
            );
            if nonce == acked + 1 {
                // The unacknowledged in-flight tx made it; it must be complete and readable.
                let sent = log.in_flight.as_ref().expect("an in-flight tx");
                let hash = sent.envelope.hash().to_hex();
                let (status, tx) = node.get(&format!("/v1/transactions/{hash}"));
                assert_eq!(status, 200, "nonce advanced but tx {hash} unknown: {tx}");
                model.apply(sent);
                in_flight_committed += 1;
            } else if let Some(sent) = &log.in_flight {
                let hash = sent.envelope.hash().to_hex();
                let (status, tx) = node.get(&format!("/v1/transactions/{hash}"));
                assert_eq!(
                    status, 404,
                    "tx {hash} visible but nonce not advanced: {tx}"
                );
            }
            nonces[i] = nonce;
        }
        // The faucet's own sequential nonce survives too.
        let faucet = chain.faucet.address();
        for (to, amount, answer) in &faucet_log.acked {
            let hash = answer["tx_hash"].as_str().unwrap();
            let tx = node.tx(hash);
            assert_eq!(tx["position"], answer["position"], "faucet tx {hash}");
            model.credit_from(faucet, *to, *amount);
        }
        let faucet_acked = faucet_nonce + faucet_log.acked.len() as u64;
        let (_, nonce) = node.account(&faucet);
        assert!(
            nonce == faucet_acked || nonce == faucet_acked + 1,
            "round {round}: faucet nonce {nonce}, acknowledged up to {faucet_acked}"
        );
        if nonce == faucet_acked + 1 {
            let (to, amount) = faucet_log.in_flight.expect("faucet in flight");
            model.credit_from(faucet, to, amount);
            in_flight_committed += 1;
        }
        faucet_nonce = nonce;
        eprintln!(
            "round {round}: {acked_now} + {} faucet acknowledged, {in_flight_committed} unacknowledged committed",
            faucet_log.acked.len()
        );
        all_acked.extend(logs.into_iter().flat_map(|l| l.acked));

        // Books.
        let info = node.chain();
        assert_eq!(info["supply"]["conserved"], true, "round {round}: {info}");
        assert_eq!(info["supply"]["in_flight"], "0", "round {round}: {info}");
        let minted = amount(&info["supply"]["minted"]);
        assert_eq!(minted, FAUCET_SUPPLY);
        let mut sum = 0u128;
        for (address, expected) in &model.balances {
            let (balance, _) = node.account(address);
            assert_eq!(balance, *expected, "round {round}: balance of {address}");
            sum += balance;
        }
        assert_eq!(
            sum, minted,
            "round {round}: balances of every account = minted"
        );
        assert_eq!(amount(&info["supply"]["balances"]), minted);

        // Blocks: every acknowledged tx ends up sealed with a valid proof; chain verifies.
        for sent in all_acked.iter().rev().take(SENDERS) {
            node.check_tx_proof(&sent.0.envelope.hash().to_hex(), DEVNET);
        }
        let blocks = node.verify_chain(DEVNET);
        let sealed: std::collections::HashSet<String> = blocks
            .iter()
            .flat_map(|b| b.tx_hashes.iter().map(|h| h.to_hex()))
            .collect();
        let last_block_pos = blocks.last().unwrap().to_position;
        for (sent, answer) in &all_acked {
            let hash = sent.envelope.hash().to_hex();
            if answer["position"].as_u64().unwrap() < last_block_pos {
                assert!(
                    sealed.contains(&hash),
                    "tx {hash} before the last block is not sealed"
                );
            }
        }

        // Still accepts writes.
        let (status, body) = node.transfer(&senders[0], nonces[0], &outsiders[0], 1, 0);
        assert_eq!(status, 200, "round {round}: transfer after restart: {body}");
        model.apply(&Sent {
            envelope: signed_transfer(DEVNET, &senders[0], nonces[0], &outsiders[0], 1, 0),
            from: senders[0].address(),
            to: outsiders[0],
            amount: 1,
            fee: 0,
        });
        nonces[0] += 1;
        assert_eq!(node.account(&outsiders[0]).0, model.balances[&outsiders[0]]);
        node.faucet(&outsiders[1], 3);
        model.credit_from(faucet, outsiders[1], 3);
        faucet_nonce += 1;
        assert_eq!(node.account(&outsiders[1]).0, model.balances[&outsiders[1]]);
        assert_eq!(node.account(&faucet).1, faucet_nonce);
    }
}
