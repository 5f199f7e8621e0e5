//! Follower nodes (PRODUCT.md §2): `aitbc node --follow URL` replicates its peer's log over
//! HTTP, checks every signature, block and Merkle root, serves reads, forwards transactions,
//! and refuses a peer whose log does not check. Real binaries over real HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::thread;
use std::time::Duration;

use base64::Engine as _;
use integration_tests::serde_json::{Value, json};
use integration_tests::*;

/// Starts a follower of `peer_url` in `dir`, with `config` (the peer's chains) and no keys.
fn follower(dir: &Path, config: &Path, peer_url: &str) -> TestNode {
    let text = std::fs::read_to_string(config).unwrap();
    let own = dir.join("aitbc.toml");
    std::fs::write(&own, format!("follow = \"{peer_url}\"\n{text}")).unwrap();
    TestNode::start_with_config(dir, &own)
}

fn peers(node: &TestNode) -> Value {
    let (status, body) = node.get("/v1/peers");
    assert_eq!(status, 200, "{body}");
    body["peers"][0].clone()
}

/// Waits until the follower holds everything its peer had at its last contact.
fn wait_caught_up(node: &TestNode) {
    wait_until("the follower to catch up", Duration::from_secs(20), || {
        let status = peers(node);
        status["state"] == "following" && status["lag"] == 0
    });
}

#[test]
fn a_follower_replicates_checks_serves_and_forwards() {
    let (peer_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let peer = TestNode::start(peer_dir.path());
    let alice = new_key();
    peer.faucet(&alice.address(), 1_000_000);
    let bob = new_key().address();
    let (status, body) = peer.transfer(&alice, 0, &bob, 100, 1);
    assert_eq!(status, 200, "{body}");
    let node = follower(
        follower_dir.path(),
        &peer_dir.path().join("aitbc.toml"),
        peer.url(),
    );

    // A transaction sent to the follower is committed by the peer, and readable here at once.
    let (status, body) = node.transfer(&alice, 1, &bob, 50, 1);
    assert_eq!(status, 200, "forwarded: {body}");
    assert_eq!(body["status"], "committed");
    // The answer waited for the credit, after the debit in the log, not only the debit.
    assert!(
        body["last_position"].as_u64() > body["position"].as_u64(),
        "{body}"
    );
    let hash = body["tx_hash"].as_str().unwrap().to_string();
    assert_eq!(node.tx(&hash)["status"], "committed");
    assert_eq!(node.account(&bob).0, 150);
    assert_eq!(peer.account(&bob).0, 150);
    assert_eq!(
        node.account(&alice.address()),
        peer.account(&alice.address())
    );

    // The same blocks, every one checked, with the transaction's proof.
    let sealed = peer.wait_for_block_with(&hash)["block_height"]
        .as_u64()
        .unwrap();
    node.wait_for_block_with(&hash);
    wait_caught_up(&node);
    let (ours, theirs) = (node.verify_chain(DEVNET), peer.verify_chain(DEVNET));
    assert_eq!(ours[..=sealed as usize], theirs[..=sealed as usize]);
    node.check_tx_proof(&hash, DEVNET);
    let status = peers(&node);
    assert_eq!(status["url"], peer.url());
    assert!(
        status["heights"][DEVNET].as_u64().unwrap() >= sealed,
        "{status}"
    );
    assert!(status["last_contact_ms"].as_u64().is_some(), "{status}");
    // A node that follows nobody has no peers; its log pages are bounded.
    assert_eq!(peer.get("/v1/peers").1["peers"], json!([]));
    for bad in ["limit=0", "limit=1001", "wait_ms=30001", "from=x"] {
        let (status, body) = peer.get(&format!("/v1/log?{bad}"));
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (_, page) = peer.get("/v1/log?from=0&limit=2");
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["events"][1]["position"], 1);

    // Writes other than transactions are the peer's to take.
    let (status, body) = node.post(
        "/v1/faucet",
        &json!({"address": bob.to_string(), "amount": "1"}),
    );
    assert_eq!((status, error_code(&body)), (503, "unavailable"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(peer.url())
    );

    // Restarted, it goes on from what it holds.
    let mut node = node;
    node.kill9();
    let (status, body) = peer.transfer(&alice, 2, &bob, 25, 1);
    assert_eq!(status, 200, "{body}");
    node.restart();
    wait_until("the restarted follower", Duration::from_secs(20), || {
        node.account(&bob).0 == 175
    });
    // The block after the restart is checked against what it took up from its own copy.
    node.wait_for_block_with(body["tx_hash"].as_str().unwrap());
    wait_caught_up(&node);
    assert_eq!(peers(&node)["state"], "following");
}

/// A peer that serves its log with one transaction's signed payload changed.
fn tampering_peer(real: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let real = real.clone();
            thread::spawn(move || serve_tampered(stream, &real));
        }
    });
    url
}

fn serve_tampered(mut stream: TcpStream, real: &str) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let mut body = String::new();
    let status = match ureq::get(&format!("{real}{path}")).call() {
        Ok(response) => {
            response.into_reader().read_to_string(&mut body).unwrap();
            200
        }
        Err(_) => 502,
    };
    if path.starts_with("/v1/log") {
        let mut page: Value = integration_tests::serde_json::from_str(&body).unwrap();
        let engine = base64::engine::general_purpose::STANDARD;
        for event in page["events"].as_array_mut().unwrap() {
            if event["type"] != "Debited.v2" {
                continue;
            }
            let data = engine.decode(event["data"].as_str().unwrap()).unwrap();
            let mut debit: Value = integration_tests::serde_json::from_slice(&data).unwrap();
            let envelope = &mut debit["Debited"]["envelope"];
            let payload = envelope["payload"].as_str().unwrap().to_string();
            envelope["payload"] = json!(payload.replacen("\"amount\":\"", "\"amount\":\"9", 1));
            event["data"] = json!(engine.encode(debit.to_string()));
            break;
        }
        body = page.to_string();
    }
    let _ = write!(
        stream,
        "HTTP/1.1 {status} OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

#[test]
fn a_follower_refuses_a_log_that_does_not_verify() {
    let (peer_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let peer = TestNode::start(peer_dir.path());
    let alice = new_key();
    peer.faucet(&alice.address(), 1_000_000);
    let fake = tampering_peer(peer.url().to_string());
    let node = follower(
        follower_dir.path(),
        &peer_dir.path().join("aitbc.toml"),
        &fake,
    );
    wait_until("the follower to refuse", Duration::from_secs(20), || {
        peers(&node)["state"]
            .as_str()
            .unwrap()
            .starts_with("refused")
    });
    let status = peers(&node);
    let why = status["state"].as_str().unwrap();
    assert!(why.contains("does not verify"), "{why}");
    // Nothing of the refused page was written: the faucet's transfer is not here.
    assert_eq!(status["applied"], 0, "{status}");
    assert_eq!(node.account(&alice.address()).1, 0);
}
