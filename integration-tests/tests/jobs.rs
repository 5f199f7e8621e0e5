//! GPU jobs through the real binary (PRODUCT.md §6, API.md "Jobs and miners"): the signed miner
//! protocol (bad, stale and replayed requests refused), a client's job escrowed, leased to a
//! miner, its signed result verified and paid less the fee with the rest refunded; a forged
//! result caught by comparison and re-execution and not paid; cancellation rules; and a node
//! killed mid-job that loses nothing and pays once.

use base64::Engine;
use domain::address::Address;
use domain::hash::Hash32;
use domain::keys::SigningKey;
use integration_tests::miner::*;
use integration_tests::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const PRICE: u128 = 800;
const MAX_PRICE: u128 = 1_000;

fn submit(node: &TestNode, client: &SigningKey, redundancy: u8, verification: &str) -> String {
    let body = json!({
        "job_kind": "sha256",
        "input": {"messages": ["616263", hex::encode(b"aitbc")]},
        "max_price": MAX_PRICE.to_string(),
        "redundancy": redundancy,
        "deadline_s": 120,
        "verification": verification,
    });
    let nonce = node.account(&client.address()).1;
    let (status, answer) = node.submit(&signed(DEVNET, client, nonce, "submit_job", body));
    assert_eq!(status, 200, "{answer}");
    answer["tx_hash"].as_str().unwrap().to_string()
}

fn job(node: &TestNode, id: &str) -> Value {
    let (status, body) = node.get(&format!("/v1/jobs/{id}"));
    assert_eq!(status, 200, "{body}");
    body
}

fn escrow_balance(node: &TestNode) -> u128 {
    node.account(&domain::job::escrow_account(DEVNET)).0
}

#[test]
fn a_job_is_escrowed_leased_verified_and_paid_through_the_signed_miner_protocol() {
    let dir = tempdir();
    let (node, _chain) = fast_devnet(dir.path(), 0);
    let (client, miner) = (new_key(), Miner::new());
    node.faucet(&client.address(), AIT);

    // Unsigned, stale, badly signed and replayed requests are refused.
    let (status, body) = node.request("POST", "/v1/miners/heartbeat", &[], Some(b"{}"));
    assert_eq!((status, error_code(&body)), (401, "unauthorized"), "{body}");
    let stale = miner.headers("POST", "/v1/miners/heartbeat", b"{}", now_ms() - 60_000);
    let (status, _) = node.request("POST", "/v1/miners/heartbeat", &stale, Some(b"{}"));
    assert_eq!(status, 401, "more than 30 s off");
    let other_body = miner.headers("POST", "/v1/miners/heartbeat", b"{}", now_ms());
    let (status, _) = node.request("POST", "/v1/miners/heartbeat", &other_body, Some(b"{ }"));
    assert_eq!(status, 401, "the signature covers the body");
    let registered = miner.register(&node);
    assert_eq!(registered["reputation"], 100, "{registered}");
    let once = miner.headers("POST", "/v1/miners/heartbeat", b"{}", now_ms());
    let (status, _) = node.request("POST", "/v1/miners/heartbeat", &once, Some(b"{}"));
    assert_eq!(status, 200);
    let (status, body) = node.request("POST", "/v1/miners/heartbeat", &once, Some(b"{}"));
    assert_eq!(
        (status, error_code(&body)),
        (401, "unauthorized"),
        "a replay: {body}"
    );

    let before = node.account(&client.address()).0;
    let id = submit(&node, &client, 1, "always");
    assert_eq!(
        node.account(&client.address()).0,
        before - MAX_PRICE,
        "escrowed"
    );
    assert_eq!(escrow_balance(&node), MAX_PRICE);
    assert_eq!(job(&node, &id)["state"], "queued");
    let leased = miner.poll(&node);
    assert_eq!(leased["job_id"], id.as_str(), "{leased}");
    assert_eq!(job(&node, &id)["state"], "assigned");
    let (status, body) = miner.answer(&node, &leased, &digests(&leased), MAX_PRICE + 1);
    assert_eq!(
        (status, error_code(&body)),
        (422, "bad_result"),
        "above max_price: {body}"
    );
    let (status, receipt) = miner.answer(&node, &leased, &digests(&leased), PRICE);
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["receipt_id"].as_str().unwrap().len(), 64);

    let done = job(&node, &id);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(
        done["reexecuted"], true,
        "verification always: the platform re-ran it"
    );
    let fee = PRICE * 250 / 10_000;
    assert_eq!(
        node.account(&miner.address()).0,
        PRICE - fee,
        "paid less the 2.5 % fee"
    );
    assert_eq!(node.account(&Address::treasury(DEVNET)).0, fee);
    assert_eq!(
        node.account(&client.address()).0,
        before - PRICE,
        "the rest refunded"
    );
    assert_eq!(escrow_balance(&node), 0, "escrow = paid + fee + refunded");
    let (_, result) = node.get(&format!("/v1/jobs/{id}/result"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(result["result_b64"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, digests(&leased));
    let (_, miners) = node.get("/v1/miners");
    assert_eq!(miners["miners"][0]["reputation"], 110, "{miners}");
    assert_eq!(miners["miners"][0]["online"], true);

    // The receipt is a leaf of a block: its proof verifies against the signed root.
    let receipt_id = receipt["receipt_id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let sealed = loop {
        let (status, sealed) = node.get(&format!("/v1/receipts/{receipt_id}"));
        assert_eq!(status, 200, "{sealed}");
        if !sealed["block_height"].is_null() {
            break sealed;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never sealed: {sealed}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(sealed["miner"], miner.address().to_string());
    assert_eq!(sealed["proof"]["leaf"]["type"], "receipt", "{sealed}");
    let check = json!({"tx_hash": receipt_id, "proof": sealed["proof"], "merkle_root": sealed["merkle_root"]});
    let (_, verdict) = node.post("/v1/proofs/verify", &check);
    assert_eq!(verdict["valid"], true, "{verdict}");
    let (_, listed) = node.get(&format!("/v1/receipts?job_id={id}"));
    assert_eq!(listed["receipts"][0]["receipt_id"], receipt_id.as_str());
    let height = sealed["block_height"].as_u64().unwrap();
    node.verify_chain(DEVNET);
    let _ = (Hash32::digest(&bytes), height);
}

#[test]
fn a_forged_result_is_caught_and_not_paid() {
    let dir = tempdir();
    let (node, _chain) = fast_devnet(dir.path(), 0);
    let (client, honest, forger) = (new_key(), Miner::new(), Miner::new());
    node.faucet(&client.address(), AIT);
    honest.register(&node);
    forger.register(&node);
    let before = node.account(&client.address()).0;
    let id = submit(&node, &client, 2, "sampled");
    let first = honest.poll(&node);
    let second = forger.poll(&node);
    assert_eq!(
        (first["job_id"].as_str(), second["job_id"].as_str()),
        (Some(id.as_str()), Some(id.as_str()))
    );
    assert!(honest.poll(&node).is_null(), "a miner takes a job once");
    let (status, _) = honest.answer(&node, &first, &digests(&first), PRICE);
    assert_eq!(status, 200);
    let (status, _) = forger.answer(&node, &second, b"not the digests", 10);
    assert_eq!(status, 200, "accepted for verification");
    let done = job(&node, &id);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(
        done["reexecuted"], true,
        "results that disagree are re-executed"
    );
    assert_eq!(
        node.account(&forger.address()).0,
        0,
        "the forger is not paid"
    );
    assert_eq!(
        node.account(&honest.address()).0,
        PRICE - PRICE * 250 / 10_000
    );
    assert_eq!(node.account(&client.address()).0, before - PRICE);
    let (_, miners) = node.get("/v1/miners");
    let reputation = |m: &Miner| {
        miners["miners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["address"] == m.address().to_string())
            .unwrap()["reputation"]
            .as_u64()
            .unwrap()
    };
    assert_eq!((reputation(&honest), reputation(&forger)), (110, 0));
}

#[test]
fn a_queued_job_is_canceled_by_its_client_only_and_a_leased_one_not() {
    let dir = tempdir();
    let (node, _chain) = fast_devnet(dir.path(), 0);
    let (client, stranger, miner) = (new_key(), new_key(), Miner::new());
    node.faucet(&client.address(), AIT);
    node.faucet(&stranger.address(), AIT);
    let before = node.account(&client.address()).0;
    let id = submit(&node, &client, 1, "sampled");
    let cancel = json!({"job_id": id});
    let nonce = node.account(&stranger.address()).1;
    let (status, body) = node.submit(&signed(
        DEVNET,
        &stranger,
        nonce,
        "cancel_job",
        cancel.clone(),
    ));
    assert_eq!((status, error_code(&body)), (403, "not_owner"), "{body}");
    let nonce = node.account(&client.address()).1;
    let (status, body) = node.submit(&signed(DEVNET, &client, nonce, "cancel_job", cancel));
    assert_eq!(status, 200, "{body}");
    assert_eq!(job(&node, &id)["state"], "canceled");
    assert_eq!(node.account(&client.address()).0, before, "refunded");
    miner.register(&node);
    assert!(miner.poll(&node).is_null(), "a canceled job is not offered");

    let leased_id = submit(&node, &client, 1, "sampled");
    assert_eq!(miner.poll(&node)["job_id"], leased_id.as_str());
    let nonce = node.account(&client.address()).1;
    let cancel = json!({"job_id": leased_id});
    let (status, body) = node.submit(&signed(DEVNET, &client, nonce, "cancel_job", cancel));
    assert_eq!((status, error_code(&body)), (409, "not_active"), "{body}");
    let bad = json!({"job_kind": "sha256", "input": {"messages": ["zz"]}, "max_price": "1",
        "redundancy": 1, "deadline_s": 10});
    let nonce = node.account(&client.address()).1;
    let (status, body) = node.submit(&signed(DEVNET, &client, nonce, "submit_job", bad));
    assert_eq!((status, error_code(&body)), (400, "malformed"), "{body}");
    assert_eq!(
        node.account(&client.address()).1,
        nonce,
        "nothing escrowed, nonce unused"
    );
}

#[test]
fn a_node_killed_mid_job_loses_nothing_and_pays_once() {
    let dir = tempdir();
    let (mut node, _chain) = fast_devnet(dir.path(), 0);
    let (client, miner) = (new_key(), Miner::new());
    node.faucet(&client.address(), AIT);
    miner.register(&node);
    let before = node.account(&client.address()).0;
    let id = submit(&node, &client, 1, "sampled");
    let leased = miner.poll(&node);
    assert_eq!(leased["job_id"], id.as_str());
    let signed_before = miner.headers("POST", "/v1/miners/heartbeat", b"{}", now_ms());
    node.kill9();
    node.restart();
    let (status, body) = node.request("POST", "/v1/miners/heartbeat", &signed_before, Some(b"{}"));
    assert_eq!(
        (status, error_code(&body)),
        (401, "unauthorized"),
        "a request signed before the restart cannot be replayed after it: {body}"
    );
    assert_eq!(job(&node, &id)["state"], "assigned", "the lease survived");
    let (_, listed) = node.get(&format!("/v1/jobs?owner={}", client.address()));
    assert_eq!(
        (&listed["jobs"][0]["id"], &listed["jobs"][0]["state"]),
        (&json!(id), &json!("assigned")),
        "the list survived: {listed}"
    );
    assert_eq!(escrow_balance(&node), MAX_PRICE, "the escrow survived");
    let (status, first) = miner.answer(&node, &leased, &digests(&leased), PRICE);
    assert_eq!(status, 200, "{first}");
    // A miner that retries after a network error gets the same receipt; nothing happens twice.
    let (status, again) = miner.answer(&node, &leased, &digests(&leased), PRICE);
    assert_eq!(
        (status, &again["receipt_id"]),
        (200, &first["receipt_id"]),
        "{again}"
    );
    assert_eq!(job(&node, &id)["state"], "completed");
    assert_eq!(
        node.account(&miner.address()).0,
        PRICE - PRICE * 250 / 10_000,
        "paid once"
    );
    assert_eq!(node.account(&client.address()).0, before - PRICE);
    assert_eq!(escrow_balance(&node), 0);
}

#[test]
fn a_silent_miner_is_recorded_offline_and_online_again_when_it_calls() {
    let dir = tempdir();
    let (config, _chains) = write_config(dir.path(), &[(DEVNET, 0)], 200);
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen("[[chains]]", "[jobs]\noffline_after_s = 1\n\n[[chains]]", 1);
    std::fs::write(&config, text).unwrap();
    let node = TestNode::start_with_config(dir.path(), &config);
    let miner = Miner::new();
    assert_eq!(miner.register(&node)["online"], true);
    let online = |node: &TestNode| node.get("/v1/miners").1["miners"][0]["online"].clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while online(&node) != false {
        assert!(
            std::time::Instant::now() < deadline,
            "never recorded offline"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (status, _) = miner.call(&node, "POST", "/v1/miners/heartbeat", Some(&json!({})));
    assert_eq!(status, 200);
    assert_eq!(online(&node), true, "a call brings it back at once");
}

#[test]
fn jobs_are_listed_newest_first_by_client_state_and_kind_with_a_cursor() {
    let dir = tempdir();
    let (node, _chain) = fast_devnet(dir.path(), 0);
    let (client, other, miner) = (new_key(), new_key(), Miner::new());
    node.faucet(&client.address(), AIT);
    node.faucet(&other.address(), AIT);
    let mine: Vec<String> = (0..3)
        .map(|_| submit(&node, &client, 1, "sampled"))
        .collect();
    let theirs = submit(&node, &other, 1, "sampled");
    let list = |query: &str| {
        let (status, body) = node.get(&format!("/v1/jobs{query}"));
        assert_eq!(status, 200, "{body}");
        body
    };
    let ids = |body: &Value| -> Vec<String> {
        body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_string())
            .collect()
    };
    let newest_first: Vec<String> = mine.iter().rev().cloned().collect();
    let owner = format!("?owner={}", client.address());
    let listed = list(&owner);
    assert_eq!(ids(&listed), newest_first, "{listed}");
    assert_eq!(listed["jobs"][0]["state"], "queued");
    assert_eq!(listed["jobs"][0]["job_kind"], "sha256");
    assert_eq!(listed["jobs"][0]["owner"], client.address().to_string());
    assert_eq!(listed["next_cursor"], Value::Null);
    let all = list("");
    assert_eq!(ids(&all)[0], theirs, "every client's, newest first");
    assert_eq!(ids(&all).len(), 4);

    miner.register(&node);
    let leased = miner.poll(&node)["job_id"].as_str().unwrap().to_string();
    assert_eq!(leased, mine[0], "the oldest job first");
    assert_eq!(
        ids(&list(&format!("{owner}&state=assigned"))),
        vec![leased.clone()]
    );
    assert_eq!(
        ids(&list(&format!("{owner}&state=queued"))),
        newest_first[..2].to_vec()
    );
    assert!(ids(&list(&format!("{owner}&job_kind=pow"))).is_empty());

    let first = list(&format!("{owner}&limit=2"));
    assert_eq!(ids(&first), newest_first[..2].to_vec());
    let cursor = first["next_cursor"].as_str().unwrap();
    assert_eq!(cursor, newest_first[1]);
    let rest = list(&format!("{owner}&limit=2&cursor={cursor}"));
    assert_eq!(
        (ids(&rest), &rest["next_cursor"]),
        (newest_first[2..].to_vec(), &Value::Null)
    );
    for bad in [
        "?state=lost",
        "?owner=nobody",
        "?limit=0",
        &format!("?cursor={theirs}&{}", &owner[1..]),
    ] {
        let (status, body) = node.get(&format!("/v1/jobs{bad}"));
        assert_eq!(
            (status, error_code(&body)),
            (400, "malformed"),
            "{bad}: {body}"
        );
    }
}

#[test]
fn a_result_too_long_to_travel_inline_comes_as_a_blob_the_miner_uploaded() {
    let dir = tempdir();
    let (node, _chain) = fast_devnet(dir.path(), 0);
    let (client, miner) = (new_key(), Miner::new());
    node.faucet(&client.address(), AIT);
    miner.register(&node);
    let id = submit(&node, &client, 1, "always");
    let leased = miner.poll(&node);
    let digests = digests(&leased);
    let body = |field: &str, value: Value, hash: &str| {
        let receipt = format!("AITBC-RECEIPT-V1\n{id}\n{hash}\n7\n{PRICE}");
        json!({field: value, "result_hash": hash, "gpu_ms": 7, "price": PRICE.to_string(),
            "receipt_signature": hex::encode(miner.key.sign(receipt.as_bytes()))})
    };
    let path = format!("/v1/miners/jobs/{id}/result");
    let post = |body: &Value| miner.call(&node, "POST", &path, Some(body));
    let hash = hex::encode(Sha256::digest(&digests));

    let long = vec![7u8; domain::job::RESULT_INLINE_MAX + 1];
    let long_hash = hex::encode(Sha256::digest(&long));
    let inline = base64::engine::general_purpose::STANDARD.encode(&long);
    let (status, answer) = post(&body("result_b64", json!(inline), &long_hash));
    assert_eq!(
        (status, error_code(&answer)),
        (422, "bad_result"),
        "{answer}"
    );
    let (status, answer) = post(&body("result_blob", json!(hash), &hash));
    assert_eq!(
        (status, error_code(&answer)),
        (404, "not_found"),
        "not uploaded: {answer}"
    );

    // A registered miner may upload though it holds nothing.
    let headers = miner.headers("POST", "/v1/blobs", &digests, now_ms());
    let (status, stored) = node.request("POST", "/v1/blobs", &headers, Some(&digests));
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["hash"], hash.as_str());
    let mut both = body("result_blob", json!(hash), &hash);
    both["result_b64"] = json!("");
    assert_eq!(error_code(&post(&both).1), "malformed");
    let other = hex::encode(Sha256::digest(b"other"));
    let (status, answer) = post(&body("result_blob", json!(hash), &other));
    assert_eq!(
        (status, error_code(&answer)),
        (422, "bad_result"),
        "{answer}"
    );
    let (status, answer) = post(&body("result_blob", json!(hash), &hash));
    assert_eq!(status, 200, "{answer}");

    let job = job(&node, &id);
    assert_eq!(
        (&job["state"], &job["reexecuted"]),
        (&json!("completed"), &json!(true)),
        "{job}"
    );
    let (_, result) = node.get(&format!("/v1/jobs/{id}/result"));
    assert_eq!(result["result_blob"], hash.as_str(), "{result}");
    assert_eq!(result.get("result_b64"), None);
    let (status, bytes) = node.get_bytes(&format!("/v1/blobs/{hash}"));
    assert_eq!(
        (status, bytes),
        (200, digests),
        "the verified result, from the blob store"
    );
    assert_eq!(
        node.account(&miner.address()).0,
        PRICE - PRICE * 250 / 10_000,
        "paid"
    );
}
