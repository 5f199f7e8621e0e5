//! Transfers end to end: read-after-write, fees, idempotency, nonces, no change on rejection.

use domain::address::Address;
use integration_tests::*;

#[test]
fn transfer_is_visible_immediately_and_the_fee_goes_to_the_treasury() {
    let dir = tempdir();
    let node = TestNode::start(dir.path());
    let (alice, bob) = (new_key(), new_key());
    let treasury = Address::treasury(DEVNET);
    node.faucet(&alice.address(), 1_000);
    assert_eq!(node.account(&alice.address()), (1_000, 0));
    let treasury_before = node.account(&treasury).0;

    let (status, body) = node.transfer(&alice, 0, &bob.address(), 300, 5);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "committed");
    assert_eq!(body["tx_hash"].as_str().unwrap().len(), 64);
    assert!(body["position"].is_u64(), "{body}");
    // Read after write: both sides and the nonce, right after the 200.
    assert_eq!(node.account(&alice.address()), (1_000 - 300 - 5, 1));
    assert_eq!(node.account(&bob.address()), (300, 0));
    assert_eq!(node.account(&treasury).0, treasury_before + 5);

    let tx = node.tx(body["tx_hash"].as_str().unwrap());
    assert_eq!(tx["status"], "committed");
    assert_eq!(tx["kind"], "transfer");
    // The transaction as served is the signed envelope, byte for byte: anyone can re-verify it.
    let served = domain::tx::SignedEnvelope {
        payload: tx["payload"]
            .as_str()
            .expect("payload is the signed text")
            .to_string(),
        public_key: tx["public_key"].as_str().unwrap().to_string(),
        signature: tx["signature"].as_str().unwrap().to_string(),
    };
    let verified = served.verify().expect("the served envelope verifies");
    assert_eq!(verified.hash.to_string(), body["tx_hash"].as_str().unwrap());
    assert_eq!(
        (tx["to"].as_str(), tx["amount"].as_str(), tx["fee"].as_str()),
        (
            Some(bob.address().to_string().as_str()),
            Some("300"),
            Some("5")
        )
    );
    assert!(
        tx["events"].as_array().is_some_and(|e| !e.is_empty()),
        "{tx}"
    );

    let chain = node.chain();
    assert_eq!(chain["supply"]["conserved"], true, "{chain}");
    assert_eq!(chain["supply"]["in_flight"], "0", "{chain}");
}

#[test]
fn min_fee_is_enforced_and_paid_to_the_treasury() {
    let dir = tempdir();
    let (node, chain) = fast_devnet(dir.path(), 7);
    assert_eq!(node.chain()["min_fee"], "7");
    let (alice, bob) = (new_key(), new_key());
    let treasury = Address::treasury(DEVNET);
    node.faucet(&alice.address(), 1_000);
    // The faucet itself pays the minimum fee.
    assert_eq!(
        node.account(&chain.faucet.address()).0,
        FAUCET_SUPPLY - 1_000 - 7
    );
    let treasury_before = node.account(&treasury).0;
    assert_eq!(treasury_before, 7);

    let (status, body) = node.transfer(&alice, 0, &bob.address(), 100, 6);
    assert_eq!(status, 422, "fee below min: {body}");
    assert_eq!(error_code(&body), "fee_too_low");
    assert_eq!(node.account(&alice.address()), (1_000, 0));

    let (status, body) = node.transfer(&alice, 0, &bob.address(), 100, 7);
    assert_eq!(status, 200, "{body}");
    assert_eq!(node.account(&alice.address()), (893, 1));
    assert_eq!(node.account(&bob.address()), (100, 0));
    assert_eq!(node.account(&treasury).0, treasury_before + 7);
}

#[test]
fn resubmitting_the_same_envelope_is_idempotent() {
    let dir = tempdir();
    let node = TestNode::start(dir.path());
    let (alice, bob) = (new_key(), new_key());
    node.faucet(&alice.address(), 1_000);
    let first = signed_transfer(DEVNET, &alice, 0, &bob.address(), 100, 1);
    let (s1, b1) = node.submit(&first);
    assert_eq!(s1, 200, "{b1}");
    let (s2, b2) = node.submit(&first);
    assert_eq!(s2, 200, "{b2}");
    assert_eq!(b1, b2, "same answer");
    assert_eq!(node.account(&alice.address()), (899, 1));
    assert_eq!(node.account(&bob.address()), (100, 0));

    // Later transfers, then the first one again.
    for nonce in 1..4 {
        let (s, b) = node.transfer(&alice, nonce, &bob.address(), 10, 0);
        assert_eq!(s, 200, "{b}");
    }
    let (s3, b3) = node.submit(&first);
    assert_eq!(s3, 200, "{b3}");
    assert_eq!(b1, b3, "same answer after later transfers");
    assert_eq!(node.account(&alice.address()), (869, 4));
    assert_eq!(node.account(&bob.address()), (130, 0));
}

#[test]
fn nonces_are_strictly_sequential_and_rejections_change_nothing() {
    let dir = tempdir();
    let node = TestNode::start(dir.path());
    let (alice, bob) = (new_key(), new_key());
    node.faucet(&alice.address(), 1_000);
    let (s, b) = node.transfer(&alice, 0, &bob.address(), 10, 0);
    assert_eq!(s, 200, "{b}");
    let before = (node.account(&alice.address()), node.account(&bob.address()));
    let chain_before = node.chain()["supply"].clone();

    // Skipped nonce.
    let (s, b) = node.transfer(&alice, 5, &bob.address(), 10, 0);
    assert_eq!(s, 409, "{b}");
    assert_eq!(error_code(&b), "bad_nonce");
    let message = b["error"]["message"].as_str().unwrap();
    assert!(
        message.contains('1'),
        "message names the expected nonce 1: {message}"
    );
    // Reused nonce with a different payload.
    let (s, b) = node.transfer(&alice, 0, &bob.address(), 11, 0);
    assert_eq!(s, 409, "{b}");
    assert_eq!(error_code(&b), "bad_nonce");
    // Insufficient funds.
    let (s, b) = node.transfer(&alice, 1, &bob.address(), 10_000, 0);
    assert_eq!(s, 422, "{b}");
    assert_eq!(error_code(&b), "insufficient_funds");
    // Amount fits but the fee does not.
    let (s, b) = node.transfer(&alice, 1, &bob.address(), 990, 1);
    assert_eq!(s, 422, "{b}");
    assert_eq!(error_code(&b), "insufficient_funds");

    assert_eq!(
        (node.account(&alice.address()), node.account(&bob.address())),
        before,
        "rejections change nothing"
    );
    assert_eq!(node.chain()["supply"], chain_before);
    // The next nonce is still 1.
    let (s, b) = node.transfer(&alice, 1, &bob.address(), 990, 0);
    assert_eq!(s, 200, "{b}");
    assert_eq!(node.account(&alice.address()), (0, 2));
}

#[test]
fn self_transfer_keeps_the_balance_minus_fee() {
    let dir = tempdir();
    let node = TestNode::start(dir.path());
    let alice = new_key();
    node.faucet(&alice.address(), 1_000);
    let (s, b) = node.transfer(&alice, 0, &alice.address(), 400, 3);
    assert_eq!(s, 200, "{b}");
    assert_eq!(node.account(&alice.address()), (997, 1));
    assert_eq!(node.chain()["supply"]["conserved"], true);
}

#[test]
fn concurrent_identical_submissions_apply_once() {
    let dir = tempdir();
    let node = TestNode::start(dir.path());
    let (alice, bob) = (new_key(), new_key());
    node.faucet(&alice.address(), 1_000);
    let envelope = signed_transfer(DEVNET, &alice, 0, &bob.address(), 100, 1);
    let answers: Vec<(u16, integration_tests::serde_json::Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (client, envelope) = (node.client(), envelope.clone());
                s.spawn(move || client.try_submit(&envelope).expect("transport"))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body, &answers[0].1, "identical answers");
    }
    assert_eq!(node.account(&alice.address()), (899, 1));
    assert_eq!(node.account(&bob.address()), (100, 0));
    assert_eq!(node.chain()["supply"]["conserved"], true);
}

#[test]
fn concurrent_faucet_requests_all_land() {
    let dir = tempdir();
    let node = TestNode::start(dir.path());
    let keys: Vec<_> = (0..12).map(|_| new_key()).collect();
    std::thread::scope(|s| {
        for (i, key) in keys.iter().enumerate() {
            let client = node.client();
            s.spawn(move || {
                let body = integration_tests::serde_json::json!({
                    "address": key.address().to_string(),
                    "amount": (1_000 + i).to_string(),
                });
                let (status, b) = client.try_post("/v1/faucet", &body).expect("transport");
                assert_eq!(status, 200, "{b}");
            });
        }
    });
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(node.account(&key.address()), (1_000 + i as u128, 0));
    }
    let chain = node.chain();
    assert_eq!(chain["supply"]["conserved"], true, "{chain}");
    assert_eq!(chain["supply"]["in_flight"], "0", "{chain}");
}

#[test]
fn huge_amounts_are_rejected_without_overflow() {
    let dir = tempdir();
    let node = TestNode::start(dir.path());
    let (alice, bob) = (new_key(), new_key());
    node.faucet(&alice.address(), 1_000);
    let before = node.chain()["supply"].clone();
    for (amount, fee) in [
        (u128::MAX, 0),
        (u128::MAX, 1),
        (1, u128::MAX),
        (u128::MAX / 2 + 1, u128::MAX / 2 + 1),
    ] {
        let (s, b) = node.transfer(&alice, 0, &bob.address(), amount, fee);
        assert_eq!(s, 422, "amount {amount} fee {fee}: {b}");
        assert_eq!(error_code(&b), "insufficient_funds", "{b}");
    }
    let (s, b) = node.post(
        "/v1/faucet",
        &integration_tests::serde_json::json!({"address": bob.address(), "amount": u128::MAX.to_string()}),
    );
    assert_eq!((s, error_code(&b)), (400, "malformed"), "{b}");
    assert_eq!(node.account(&alice.address()), (1_000, 0));
    assert_eq!(node.account(&bob.address()), (0, 0));
    assert_eq!(node.chain()["supply"], before);
}
