//! A clean stop (SIGTERM) and restart keeps everything, and the chain keeps growing.

use integration_tests::*;

#[test]
fn clean_restart_keeps_state_and_height_grows() {
    let dir = tempdir();
    let (mut node, chain) = fast_devnet(dir.path(), 0);
    let (alice, bob) = (new_key(), new_key());
    let funded = node.faucet(&alice.address(), 1_000);
    let mut hashes = vec![funded];
    for nonce in 0..3 {
        let (s, b) = node.transfer(&alice, nonce, &bob.address(), 100, 2);
        assert_eq!(s, 200, "{b}");
        hashes.push(b["tx_hash"].as_str().unwrap().to_string());
    }
    node.wait_for_block_with(hashes.last().unwrap());
    let before_accounts = (
        node.account(&alice.address()),
        node.account(&bob.address()),
        node.account(&chain.faucet.address()),
    );
    assert_eq!(before_accounts.0, (694, 3));
    let txs_before: Vec<_> = hashes.iter().map(|h| node.tx(h)).collect();
    let blocks_before = node.verify_chain(DEVNET);
    let height_before = node.chain()["height"].as_u64().unwrap();
    let old_url = node.url().to_string();

    let status = node.stop().expect("was running");
    assert!(
        status.success(),
        "SIGTERM exit status {status}:\n{}",
        node.logs()
    );
    assert!(
        node.try_get("/health").is_err(),
        "{old_url} still answers after stop"
    );
    node.restart();

    assert_eq!(
        (
            node.account(&alice.address()),
            node.account(&bob.address()),
            node.account(&chain.faucet.address()),
        ),
        before_accounts
    );
    let txs_after: Vec<_> = hashes.iter().map(|h| node.tx(h)).collect();
    assert_eq!(txs_after, txs_before, "transactions unchanged");
    let blocks_after = node.verify_chain(DEVNET);
    assert_eq!(&blocks_after[..blocks_before.len()], &blocks_before[..]);
    assert_eq!(node.chain()["height"].as_u64().unwrap(), height_before);
    assert_eq!(node.chain()["supply"]["conserved"], true);

    // The chain continues: nonce 3 next, new block on top.
    let (s, b) = node.transfer(&alice, 2, &bob.address(), 1, 0);
    assert_eq!((s, error_code(&b)), (409, "bad_nonce"), "{b}");
    let (s, b) = node.transfer(&alice, 3, &bob.address(), 1, 0);
    assert_eq!(s, 200, "{b}");
    let tx = node.wait_for_block_with(b["tx_hash"].as_str().unwrap());
    assert!(tx["block_height"].as_u64().unwrap() > height_before);
    assert!(node.chain()["height"].as_u64().unwrap() > height_before);
    let blocks = node.verify_chain(DEVNET);
    assert_eq!(&blocks[..blocks_before.len()], &blocks_before[..]);
    // Resubmitting an old transaction after the restart is still idempotent.
    let first = signed_transfer(DEVNET, &alice, 0, &bob.address(), 100, 2);
    let (s, b) = node.submit(&first);
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["tx_hash"], hashes[1]);
    assert_eq!(node.account(&alice.address()), (693, 4));
}

#[test]
fn sigterm_under_load_loses_no_acknowledged_transaction() {
    let dir = tempdir();
    let (mut node, _chain) = fast_devnet(dir.path(), 0);
    let senders: Vec<_> = (0..4).map(|_| new_key()).collect();
    let sink = new_key().address();
    for key in &senders {
        node.faucet(&key.address(), 1_000_000);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handles: Vec<_> = senders
        .iter()
        .map(|key| {
            let (client, key, stop) = (node.client(), key.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut nonce = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let env = signed_transfer(DEVNET, &key, nonce, &sink, 1, 0);
                    match client.try_submit(&env) {
                        Ok((200, body)) => {
                            acked.push(body);
                            nonce += 1;
                        }
                        _ => break,
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(700));
    node.stop();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let acked: Vec<Vec<_>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    node.restart();
    let mut total = 0;
    for (key, acked) in senders.iter().zip(&acked) {
        for body in acked {
            let tx = node.tx(body["tx_hash"].as_str().unwrap());
            assert_eq!(tx["position"], body["position"]);
        }
        let (_, nonce) = node.account(&key.address());
        assert!(
            nonce >= acked.len() as u64,
            "nonce {nonce} < {} acknowledged",
            acked.len()
        );
        total += nonce;
    }
    assert!(total > 0, "no load got through");
    assert_eq!(node.account(&sink).0, total as u128);
    let info = node.chain();
    assert_eq!(info["supply"]["conserved"], true, "{info}");
    assert_eq!(info["supply"]["in_flight"], "0", "{info}");
    node.verify_chain(DEVNET);
}
