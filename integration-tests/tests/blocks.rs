//! Blocks: sealing, signatures, hash links, Merkle proofs, paging, lookup by hash, SSE feed.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use domain::block::Block;
use integration_tests::serde_json::json;
use integration_tests::*;

#[test]
fn blocks_verify_link_and_prove_their_transactions() {
    let dir = tempdir();
    let node = TestNode::start(dir.path());
    let (alice, bob) = (new_key(), new_key());
    let mut hashes = vec![node.faucet(&alice.address(), 10_000)];
    for nonce in 0..5 {
        let (s, b) = node.transfer(&alice, nonce, &bob.address(), 10 + nonce as u128, 1);
        assert_eq!(s, 200, "{b}");
        hashes.push(b["tx_hash"].as_str().unwrap().to_string());
    }
    // Sealed within ~2 s (devnet block time 1 s).
    let started = Instant::now();
    let last = hashes.last().unwrap().clone();
    node.wait_for_block_with(&last);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    let blocks = node.verify_chain(DEVNET);
    assert!(blocks.len() >= 2, "genesis block and at least one more");
    let mut heights = Vec::new();
    for hash in &hashes {
        heights.push(node.check_tx_proof(hash, DEVNET));
    }
    // Every tx is in exactly one block, and in submission order.
    let listed: Vec<String> = blocks
        .iter()
        .flat_map(|b| b.tx_hashes.iter().map(|h| h.to_hex()))
        .collect();
    let ours: Vec<&String> = listed.iter().filter(|h| hashes.contains(h)).collect();
    assert_eq!(ours.len(), hashes.len(), "each tx sealed once");
    assert!(ours.iter().zip(&hashes).all(|(a, b)| *a == b), "log order");
    assert!(heights.windows(2).all(|w| w[0] <= w[1]));

    for block in &blocks {
        let (s, v) = node.get(&format!("/v1/blocks/{}/verify", block.height));
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["valid"], true, "{v}");
        // By hash too.
        let (s, by_hash) = node.get(&format!("/v1/blocks/{}", block.hash.to_hex()));
        assert_eq!(s, 200, "{by_hash}");
        let by_hash: Block = integration_tests::serde_json::from_value(by_hash).unwrap();
        assert_eq!(&by_hash, block);
    }

    // Proof verification endpoint: genuine and tampered.
    let tx = node.tx(&hashes[2]);
    let request =
        json!({"tx_hash": hashes[2], "merkle_root": tx["merkle_root"], "proof": tx["proof"]});
    let (s, v) = node.post("/v1/proofs/verify", &request);
    assert_eq!((s, v["valid"].clone()), (200, json!(true)), "{v}");
    let mut wrong_tx = request.clone();
    wrong_tx["tx_hash"] = json!(hashes[3]);
    let (s, v) = node.post("/v1/proofs/verify", &wrong_tx);
    assert_eq!((s, v["valid"].clone()), (200, json!(false)), "{v}");
    let mut wrong_root = request.clone();
    wrong_root["merkle_root"] = json!("00".repeat(32));
    let (s, v) = node.post("/v1/proofs/verify", &wrong_root);
    assert_eq!((s, v["valid"].clone()), (200, json!(false)), "{v}");
    if let Some(steps) = request["proof"]["steps"]
        .as_array()
        .filter(|s| !s.is_empty())
    {
        let mut tampered = request.clone();
        let mut step = steps[0].clone();
        step["hash"] = json!("11".repeat(32));
        tampered["proof"]["steps"][0] = step;
        let (s, v) = node.post("/v1/proofs/verify", &tampered);
        assert_eq!((s, v["valid"].clone()), (200, json!(false)), "{v}");
    }
}

#[test]
fn block_list_pages() {
    let dir = tempdir();
    let (node, _chain) = fast_devnet(dir.path(), 0);
    let alice = new_key();
    // Several blocks: one faucet request per ~block.
    for _ in 0..4 {
        let h = node.faucet(&alice.address(), 5);
        node.wait_for_block_with(&h);
    }
    let all = node.verify_chain(DEVNET);
    assert!(all.len() >= 5, "{} blocks", all.len());
    let (s, page) = node.get("/v1/blocks?from=1&limit=2");
    assert_eq!(s, 200, "{page}");
    let page: Vec<Block> =
        integration_tests::serde_json::from_value(page["blocks"].clone()).unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0], all[1]);
    assert_eq!(page[1], all[2]);
    let (s, page) = node.get(&format!(
        "/v1/blocks?chain={DEVNET}&from={}&limit=100",
        all.len()
    ));
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["blocks"].as_array().unwrap().len(), 0, "past the tip");
    let (s, page) = node.get("/v1/blocks?limit=101");
    assert_eq!((s, error_code(&page)), (400, "malformed"), "{page}");
}

#[test]
fn sse_feed_delivers_new_blocks() {
    let dir = tempdir();
    let (node, _chain) = fast_devnet(dir.path(), 0);
    let alice = new_key();
    let url = format!("{}/v1/stream/blocks", node.url());
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout_read(Duration::from_secs(10))
        .build();
    let faucet_url = format!("{}/v1/faucet", node.url());
    let address = alice.address().to_string();
    // Trigger a block a little after the subscription is open.
    let trigger = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        ureq::post(&faucet_url)
            .send_json(json!({"address": address, "amount": "7"}))
            .map(|r| r.status())
            .map_err(|e| e.to_string())
    });
    let response = agent.get(&url).call().expect("stream opens");
    assert_eq!(response.status(), 200);
    assert!(
        response.content_type().starts_with("text/event-stream"),
        "{}",
        response.content_type()
    );
    let mut reader = BufReader::new(response.into_reader());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut saw_event = false;
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        let n = reader.read_line(&mut line).expect("stream read");
        assert!(n > 0, "stream ended");
        if line.trim_end() == "event: block" {
            saw_event = true;
            continue;
        }
        if saw_event && let Some(data) = line.trim_end().strip_prefix("data: ") {
            let block: Block = integration_tests::serde_json::from_str(data).expect("block JSON");
            assert_eq!(block.chain_id, DEVNET);
            let (validators, threshold) = validators_of(&node.chain());
            block
                .verify(&validators, threshold)
                .expect("streamed block verifies");
            break;
        }
    }
    assert!(saw_event, "no `event: block` within 10 s");
    assert_eq!(trigger.join().unwrap(), Ok(200));
}

/// The heights of the next `count` block events of an SSE stream, checking each `id:`.
fn stream_heights(reader: &mut impl BufRead, count: usize) -> Vec<u64> {
    let mut heights = Vec::new();
    let mut id = None;
    let mut line = String::new();
    while heights.len() < count {
        line.clear();
        assert!(
            reader.read_line(&mut line).expect("stream read") > 0,
            "stream ended"
        );
        if let Some(value) = line.trim_end().strip_prefix("id: ") {
            id = Some(value.parse::<u64>().expect("a height"));
        }
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            let block: Block = integration_tests::serde_json::from_str(data).expect("block JSON");
            assert_eq!(
                id.take(),
                Some(block.height),
                "each event's id is its height"
            );
            heights.push(block.height);
        }
    }
    heights
}

#[test]
fn sse_feed_resumes_after_last_event_id_without_gaps_or_repeats() {
    let dir = tempdir();
    let (node, _chain) = fast_devnet(dir.path(), 0);
    for amount in 1..=3 {
        let hash = node.faucet(&new_key().address(), amount);
        node.wait_for_block_with(&hash);
    }
    let height = node.chain()["height"].as_u64().unwrap();
    assert!(height >= 3, "{height}");
    let agent = ureq::AgentBuilder::new()
        .timeout_read(Duration::from_secs(10))
        .build();
    let url = format!("{}/v1/stream/blocks", node.url());
    let response = agent
        .get(&url)
        .set("Last-Event-ID", "1")
        .call()
        .expect("stream opens");
    let mut reader = BufReader::new(response.into_reader());
    let missed = stream_heights(&mut reader, (height - 1) as usize);
    assert_eq!(
        missed,
        (2..=height).collect::<Vec<_>>(),
        "every block after 1, in order"
    );
    let hash = node.faucet(&new_key().address(), 9);
    node.wait_for_block_with(&hash);
    assert_eq!(
        stream_heights(&mut reader, 1),
        vec![height + 1],
        "then the live ones"
    );
    let bad = agent.get(&url).set("Last-Event-ID", "x").call();
    assert!(matches!(bad, Err(ureq::Error::Status(400, _))), "{bad:?}");
}
