//! Multi-chain isolation on one node.

use domain::address::Address;
use integration_tests::serde_json::json;
use integration_tests::*;

#[test]
fn chains_are_isolated() {
    let dir = tempdir();
    let (config, chains) = write_two_chain_config(dir.path());
    let node = TestNode::start_with_config(dir.path(), &config);
    let (dev, test) = (&chains[0], &chains[1]);
    let (alice, bob) = (new_key(), new_key());

    let (s, list) = node.get("/v1/chains");
    assert_eq!(s, 200, "{list}");
    let ids: Vec<&str> = list["chains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["chain_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&DEVNET) && ids.contains(&TESTNET), "{ids:?}");

    // Faucet on the testnet credits only there.
    let h_test = node.faucet_on(Some(TESTNET), &alice.address(), 500);
    assert_eq!(node.account_on(Some(TESTNET), &alice.address()), (500, 0));
    assert_eq!(node.account_on(Some(DEVNET), &alice.address()), (0, 0));
    assert_eq!(
        node.account(&alice.address()),
        (0, 0),
        "default chain is the devnet"
    );
    let h_dev = node.faucet(&alice.address(), 1_000);
    assert_eq!(node.account_on(Some(DEVNET), &alice.address()), (1_000, 0));
    assert_eq!(node.account_on(Some(TESTNET), &alice.address()), (500, 0));

    // Devnet transfers leave the testnet alone, and nonces are per chain.
    let (s, b) = node.transfer_on(DEVNET, &alice, 0, &bob.address(), 100, 2);
    assert_eq!(s, 200, "{b}");
    let h_dev2 = b["tx_hash"].as_str().unwrap().to_string();
    assert_eq!(node.account_on(Some(DEVNET), &alice.address()), (898, 1));
    assert_eq!(node.account_on(Some(TESTNET), &alice.address()), (500, 0));
    assert_eq!(node.account_on(Some(TESTNET), &bob.address()), (0, 0));
    assert_eq!(
        node.account_on(Some(TESTNET), &Address::treasury(DEVNET)).0,
        0
    );
    let (s, b) = node.transfer_on(TESTNET, &alice, 0, &bob.address(), 50, 1);
    assert_eq!(s, 200, "{b}");
    let h_test2 = b["tx_hash"].as_str().unwrap().to_string();
    assert_eq!(node.account_on(Some(TESTNET), &alice.address()), (449, 1));
    assert_eq!(
        node.account_on(Some(TESTNET), &Address::treasury(TESTNET))
            .0,
        1
    );
    assert_eq!(node.account_on(Some(DEVNET), &bob.address()), (100, 0));

    // Unknown chain.
    let (s, b) = node.transfer_on("ait-unknown", &alice, 1, &bob.address(), 1, 0);
    assert_eq!((s, error_code(&b)), (400, "wrong_chain"), "{b}");
    let (s, b) = node.get(&format!(
        "/v1/accounts/{}?chain=ait-unknown",
        alice.address()
    ));
    assert_eq!((s, error_code(&b)), (404, "not_found"), "{b}");
    let (s, b) = node.post(
        "/v1/faucet",
        &json!({"address": alice.address(), "amount": "1", "chain_id": "ait-unknown"}),
    );
    assert_eq!((s, error_code(&b)), (404, "not_found"), "{b}");

    // Wallet balance endpoint per chain.
    let (s, b) = node.get(&format!(
        "/v1/wallet/balance?address={}&chain={TESTNET}",
        alice.address()
    ));
    assert_eq!((s, b["balance"].clone()), (200, json!("449")), "{b}");

    // Blocks: each chain's txs in its own blocks, signed by its own validator only.
    for (hash, chain) in [
        (&h_dev, DEVNET),
        (&h_dev2, DEVNET),
        (&h_test, TESTNET),
        (&h_test2, TESTNET),
    ] {
        node.check_tx_proof(hash, chain);
        assert_eq!(node.tx(hash)["chain_id"], chain);
    }
    let dev_blocks = node.verify_chain(DEVNET);
    let test_blocks = node.verify_chain(TESTNET);
    let dev_validators = vec![hex::encode(dev.validator.public_key())];
    let test_validators = vec![hex::encode(test.validator.public_key())];
    assert_eq!(validators_of(&node.chain_info(DEVNET)).0, dev_validators);
    assert_eq!(validators_of(&node.chain_info(TESTNET)).0, test_validators);
    for block in &dev_blocks {
        assert!(
            block.verify(&test_validators, 1).is_err(),
            "devnet block verifies as testnet"
        );
        assert!(
            !block
                .tx_hashes
                .iter()
                .any(|h| h.to_hex() == h_test || h.to_hex() == h_test2)
        );
    }
    for block in &test_blocks {
        assert!(
            block.verify(&dev_validators, 1).is_err(),
            "testnet block verifies as devnet"
        );
        assert!(
            !block
                .tx_hashes
                .iter()
                .any(|h| h.to_hex() == h_dev || h.to_hex() == h_dev2)
        );
    }
    for chain in [DEVNET, TESTNET] {
        let info = node.chain_info(chain);
        assert_eq!(info["supply"]["conserved"], true, "{info}");
        assert_eq!(
            info["supply"]["minted"],
            FAUCET_SUPPLY.to_string(),
            "{info}"
        );
    }
    assert_ne!(
        node.chain_info(DEVNET)["token"],
        node.chain_info(TESTNET)["token"]
    );
}
