//! Several API nodes on one event log kept by a 3-server NATS JetStream cluster (R3,
//! `sync_interval: always`): the real `aitbc` binary, real `nats-server` processes, real HTTP.
//! Writes through any node, one sealer per chain (a lease), and `kill -9` of a NATS server and
//! of the sealing node under transfer load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use domain::address::Address;
use domain::keys::SigningKey;
use integration_tests::*;
use store::NatsCluster;

/// The tests each run three NATS servers and two nodes: one at a time on a small machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A devnet whose log is on `cluster`, served by `nodes` API nodes sharing its configuration
/// and keys (each its own data directory: explorer, custody, blobs).
fn network(cluster: &NatsCluster, nodes: usize) -> (Vec<tempfile::TempDir>, Vec<TestNode>) {
    let dirs: Vec<tempfile::TempDir> = (0..nodes).map(|_| tempfile::tempdir().unwrap()).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    http::config::create_devnet(dirs[0].path(), "127.0.0.1:0", now).unwrap();
    let config = dirs[0].path().join("aitbc.toml");
    let urls: Vec<String> = cluster.urls().iter().map(|u| format!("{u:?}")).collect();
    let text = std::fs::read_to_string(&config).unwrap()
        + &format!("\n[store]\nnats = [{}]\n", urls.join(", "));
    for dir in &dirs {
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        for key in ["validator.key", "faucet.key"] {
            let from = dirs[0].path().join("keys").join(key);
            let to = dir.path().join("keys").join(key);
            if from != to {
                std::fs::copy(&from, &to).unwrap();
            }
        }
        std::fs::write(dir.path().join("aitbc.toml"), &text).unwrap();
    }
    let nodes = dirs
        .iter()
        .map(|d| TestNode::start_with_config(d.path(), &d.path().join("aitbc.toml")))
        .collect();
    (dirs, nodes)
}

/// Blocks this node has sealed (`aitbc_blocks_sealed_total` on its `/metrics`).
fn blocks_sealed(node: &TestNode) -> u64 {
    let (status, text) = node.get_text("/metrics");
    assert_eq!(status, 200);
    text.lines()
        .filter(|l| l.starts_with("aitbc_blocks_sealed_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Waits until `node`'s explorer shows `address` at `nonce` (another node's writes reach it
/// through the log).
fn wait_for_nonce(node: &TestNode, address: &Address, nonce: u64) -> u128 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (balance, seen) = node.account(address);
        if seen >= nonce {
            return balance;
        }
        assert!(
            Instant::now() < deadline,
            "{address} stuck at nonce {seen} on {}",
            node.url()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn funded(node: &TestNode, n: usize, amount: u128) -> Vec<SigningKey> {
    (0..n)
        .map(|_| {
            let key = new_key();
            node.faucet(&key.address(), amount);
            key
        })
        .collect()
}

#[test]
fn two_api_nodes_serve_one_chain_with_one_sealer() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = NatsCluster::start(3).unwrap();
    let (_dirs, nodes) = network(&cluster, 2);
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut senders = funded(a, 3, 1_000_000);
    senders.extend(funded(b, 3, 1_000_000));
    let recipient = new_key().address();
    // Each sender alternates between the nodes: every transfer after the first finds the
    // other node's wallet actor behind the log, which reloads and decides again.
    let mut last = String::new();
    for round in 0..6u64 {
        for (i, key) in senders.iter().enumerate() {
            let node = &nodes[(i + round as usize) % 2];
            let (status, body) = node.transfer(key, round, &recipient, 10, 1);
            assert_eq!(status, 200, "round {round} via {}: {body}", node.url());
            assert_eq!(body["status"], "committed");
            last = body["tx_hash"].as_str().unwrap().to_string();
        }
    }
    for node in &nodes {
        for key in &senders {
            assert_eq!(wait_for_nonce(node, &key.address(), 6), 1_000_000 - 6 * 11);
        }
        assert_eq!(node.account(&recipient).0, 6 * 6 * 10);
        let chain = node.chain();
        assert_eq!(chain["supply"]["conserved"], true, "{chain}");
    }
    // Both nodes serve the same blocks, every transaction in one, sealed by one node.
    a.wait_for_block_with(&last);
    b.wait_for_block_with(&last);
    let (blocks_a, blocks_b) = (a.verify_chain(DEVNET), b.verify_chain(DEVNET));
    let common = blocks_a.len().min(blocks_b.len());
    assert_eq!(blocks_a[..common], blocks_b[..common]);
    let sealed = [blocks_sealed(a), blocks_sealed(b)];
    assert!(
        sealed.contains(&0) && sealed.iter().sum::<u64>() > 0,
        "one sealer: {sealed:?}"
    );
}

#[test]
fn the_whole_cluster_restarted_brings_everything_back() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut cluster = NatsCluster::start(3).unwrap();
    let (_dirs, mut nodes) = network(&cluster, 1);
    let key = funded(&nodes[0], 1, 1_000_000).remove(0);
    let to = new_key().address();
    let mut hashes = Vec::new();
    for nonce in 0..5 {
        let (status, body) = nodes[0].transfer(&key, nonce, &to, 10, 1);
        assert_eq!(status, 200, "{body}");
        hashes.push(body["tx_hash"].as_str().unwrap().to_string());
    }
    let height = nodes[0].wait_for_block_with(&hashes[4])["block_height"]
        .as_u64()
        .unwrap();
    // Every server and the node die; the servers come back, then the node.
    nodes[0].kill9();
    for i in 0..3 {
        cluster.kill(i);
    }
    for i in 0..3 {
        cluster.restart(i).unwrap();
    }
    nodes[0].restart();
    let node = &nodes[0];
    assert_eq!(node.account(&key.address()), (1_000_000 - 5 * 11, 5));
    assert_eq!(node.account(&to).0, 50);
    for hash in &hashes {
        assert_eq!(node.tx(hash)["status"], "committed");
    }
    assert!(node.verify_chain(DEVNET).len() as u64 > height);
    // And it goes on.
    let (status, body) = node.transfer(&key, 5, &to, 10, 1);
    assert_eq!(status, 200, "{body}");
    node.wait_for_block_with(body["tx_hash"].as_str().unwrap());
    assert_eq!(node.chain()["supply"]["conserved"], true);
}

/// What a load thread saw: every acknowledged transfer with its hash.
struct Acked {
    hashes: Vec<String>,
    last_nonce: Option<u64>,
}

/// Sends transfers from `key` through `node` until `stop`, each nonce until answered 200 (a
/// transient 503 while a server or node dies is retried with the same envelope).
fn load(client: Client, key: SigningKey, to: Address, stop: Arc<AtomicBool>) -> Acked {
    load_from(client, key, 0, to, stop)
}

/// [`load`] from nonce `nonce`; a transfer still unanswered when `stop` is set is left
/// unacknowledged (its node may have died).
fn load_from(
    client: Client,
    key: SigningKey,
    mut nonce: u64,
    to: Address,
    stop: Arc<AtomicBool>,
) -> Acked {
    let mut acked = Acked {
        hashes: Vec::new(),
        last_nonce: None,
    };
    while !stop.load(Ordering::Relaxed) {
        let envelope = signed_transfer(DEVNET, &key, nonce, &to, 1, 1);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match client.try_submit(&envelope) {
                Ok((200, body)) => {
                    acked
                        .hashes
                        .push(body["tx_hash"].as_str().unwrap().to_string());
                    acked.last_nonce = Some(nonce);
                    break;
                }
                _ if stop.load(Ordering::Relaxed) => return acked,
                other => {
                    assert!(
                        Instant::now() < deadline,
                        "nonce {nonce} never taken: {other:?}"
                    );
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
        nonce += 1;
    }
    acked
}

/// Every acknowledged transfer is committed on both nodes, and the books balance.
fn check_acknowledged(nodes: &[&TestNode], keys: &[SigningKey], acked: &[Acked]) {
    for node in nodes {
        for (key, acked) in keys.iter().zip(acked) {
            if let Some(last) = acked.last_nonce {
                wait_for_nonce(node, &key.address(), last + 1);
            }
            for hash in &acked.hashes {
                let tx = node.tx(hash);
                assert_eq!(tx["status"], "committed", "{hash} on {}: {tx}", node.url());
            }
        }
        let chain = node.chain();
        assert_eq!(chain["supply"]["conserved"], true, "{chain}");
    }
}

#[test]
fn a_killed_nats_server_and_a_killed_sealer_lose_nothing_and_sealing_moves() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut cluster = NatsCluster::start(3).unwrap();
    let (_dirs, mut nodes) = network(&cluster, 2);
    let keys = funded(&nodes[0], 4, 1_000_000);
    let sink = new_key().address();
    let stop = Arc::new(AtomicBool::new(false));
    // Two senders through each node.
    let threads: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let (client, key, stop) = (nodes[i % 2].client(), key.clone(), Arc::clone(&stop));
            thread::spawn(move || load(client, key, sink, stop))
        })
        .collect();
    thread::sleep(Duration::from_secs(1));
    cluster.kill(1);
    thread::sleep(Duration::from_secs(2));
    cluster.restart(1).unwrap();
    thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<Acked> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(acked.iter().all(|a| !a.hashes.is_empty()));
    check_acknowledged(&[&nodes[0], &nodes[1]], &keys, &acked);

    // The sealing node dies: the other takes the chain's lease and seals what follows. (The
    // lease may have moved while the NATS server was down: the sealer is the node whose count
    // grows with the next block.)
    let before = [blocks_sealed(&nodes[0]), blocks_sealed(&nodes[1])];
    let key = &keys[0];
    let mut next = acked[0].last_nonce.map_or(0, |n| n + 1);
    // Just after the server's restart an append can still fail (503, nothing acknowledged):
    // a client sends the same transaction again.
    let deadline = Instant::now() + Duration::from_secs(15);
    let body = loop {
        let (status, body) = nodes[0].transfer(key, next, &sink, 1, 1);
        if status == 200 {
            break body;
        }
        assert!(
            status == 503 && Instant::now() < deadline,
            "{status} {body}"
        );
        thread::sleep(Duration::from_millis(200));
    };
    next += 1;
    nodes[0].wait_for_block_with(body["tx_hash"].as_str().unwrap());
    // The sealer counts a block once its append is answered, which may come after the block
    // is readable: wait for the count.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let after = [blocks_sealed(&nodes[0]), blocks_sealed(&nodes[1])];
        if after != before || Instant::now() > deadline {
            break after;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let sealer = match (after[0] > before[0], after[1] > before[1]) {
        (true, false) => 0,
        (false, true) => 1,
        both => panic!("sealed by {both:?}: {before:?} -> {after:?}"),
    };
    // It dies under load: three senders through the other node, one through it.
    let survivor = 1 - sealer;
    let stop = Arc::new(AtomicBool::new(false));
    let starts: Vec<u64> = (0..keys.len())
        .map(|i| match i {
            0 => next,
            i => acked[i].last_nonce.map_or(0, |n| n + 1),
        })
        .collect();
    let threads: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let via = if i == 3 { sealer } else { survivor };
            let (client, key, stop) = (nodes[via].client(), key.clone(), Arc::clone(&stop));
            let start = starts[i];
            thread::spawn(move || load_from(client, key, start, sink, stop))
        })
        .collect();
    thread::sleep(Duration::from_secs(1));
    let sealed_before = blocks_sealed(&nodes[survivor]);
    nodes[sealer].kill9();
    let killed = Instant::now();
    while blocks_sealed(&nodes[survivor]) == sealed_before {
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "the survivor never sealed"
        );
        thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "sealing moved to the other node: its first block {:?} after the kill",
        killed.elapsed()
    );
    thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<Acked> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(acked[..3].iter().all(|a| !a.hashes.is_empty()));
    check_acknowledged(&[&nodes[survivor]], &keys, &acked);
    // Blocks keep coming: the last transfer acknowledged through the survivor is in one.
    let key = &keys[0];
    let next = acked[0].last_nonce.expect("acknowledged") + 1;
    nodes[survivor].wait_for_block_with(acked[0].hashes.last().unwrap());
    assert!(blocks_sealed(&nodes[survivor]) > 0);
    nodes[survivor].verify_chain(DEVNET);
    // The dead node comes back and follows: it serves the same chain.
    nodes[sealer].restart();
    wait_for_nonce(&nodes[sealer], &key.address(), next);
    let node_blocks = nodes[sealer].verify_chain(DEVNET);
    let survivor_blocks = nodes[survivor].all_blocks(DEVNET);
    let common = node_blocks.len().min(survivor_blocks.len());
    assert_eq!(node_blocks[..common], survivor_blocks[..common]);
}
