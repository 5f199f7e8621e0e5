//! The council's pause through the real binary: approvals up to the threshold, a paused
//! module refusing its kinds before anything is written (signed, faucet), reads and the
//! council's own kinds still working, the pause surviving `kill -9`, and its durable timer
//! resuming the module after a restart.

use std::thread;
use std::time::{Duration, Instant};

use domain::keys::SigningKey;
use integration_tests::*;
use serde_json::{Value, json};

const PAUSE_EXPIRY_S: u64 = 6;

/// A fast devnet whose genesis has a 2-of-3 council and short pauses.
fn council_devnet(dir: &std::path::Path) -> (TestNode, ChainSetup, Vec<SigningKey>) {
    let (config, mut chains) = write_config(dir, &[(DEVNET, 0)], 200);
    let members: Vec<SigningKey> = (0..3).map(|_| new_key()).collect();
    let council: Vec<String> = members
        .iter()
        .map(|k| format!("\"{}\"", k.address()))
        .collect();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[chains.genesis.governance]\ncouncil = [{}]\ncouncil_threshold = 2\npause_expiry_s = {PAUSE_EXPIRY_S}\n",
        council.join(", ")
    ));
    std::fs::write(&config, text).unwrap();
    let node = TestNode::start_with_config(dir, &config);
    (node, chains.remove(0), members)
}

fn module(node: &TestNode, name: &str) -> Value {
    let (status, body) = node.get("/v1/modules");
    assert_eq!(status, 200, "{body}");
    body["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["module"] == name)
        .unwrap_or_else(|| panic!("no module {name} in {body}"))
        .clone()
}

fn council_tx(node: &TestNode, key: &SigningKey, kind: &str, body: Value) -> (u16, Value) {
    let nonce = node.account(&key.address()).1;
    node.submit(&signed(DEVNET, key, nonce, kind, body))
}

fn pause_transfers(node: &TestNode, key: &SigningKey) -> (u16, Value) {
    council_tx(
        node,
        key,
        "council_pause",
        json!({"module": "transfers", "reason": "incident 42"}),
    )
}

#[test]
fn the_council_pauses_a_module_at_its_threshold_and_the_pause_expires_after_a_restart() {
    let dir = tempdir();
    let (mut node, _chain, members) = council_devnet(dir.path());
    let (alice, bob, outsider) = (new_key(), new_key(), new_key());
    node.faucet(&alice.address(), 10 * AIT);
    let (status, council) = node.get("/v1/council");
    assert_eq!(status, 200, "{council}");
    assert_eq!(council["threshold"], 2);
    assert_eq!(council["members"].as_array().unwrap().len(), 3);

    // Not a member: refused before anything is written.
    let (status, body) = pause_transfers(&node, &outsider);
    assert_eq!((status, error_code(&body)), (403, "not_council"), "{body}");
    assert_eq!(node.account(&outsider.address()).1, 0, "nothing written");
    // A module that is not paused cannot be resumed.
    let (status, body) = council_tx(
        &node,
        &members[0],
        "council_unpause",
        json!({"module": "transfers"}),
    );
    assert_eq!((status, error_code(&body)), (409, "not_active"), "{body}");

    // One approval of two: committed, nothing paused yet.
    let (status, first) = pause_transfers(&node, &members[0]);
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["outcome"], "applied");
    assert_eq!(module(&node, "transfers")["paused"], false);
    let (status, body) = pause_transfers(&node, &members[0]);
    assert_eq!(
        (status, error_code(&body)),
        (409, "already_voted"),
        "{body}"
    );
    node.transfer(&alice, 0, &bob.address(), AIT, 0);

    // The second approval pauses transfers at once.
    let (status, second) = pause_transfers(&node, &members[1]);
    assert_eq!(status, 200, "{second}");
    let paused = module(&node, "transfers");
    assert_eq!(paused["paused"], true, "{paused}");
    assert_eq!(paused["reason"], "incident 42");
    let tx = node.tx(second["tx_hash"].as_str().unwrap());
    assert_eq!(tx["kind"], "council_pause");
    assert!(
        tx["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "ModulePaused.v1"),
        "{tx}"
    );
    assert_eq!(module(&node, "staking")["paused"], false, "only transfers");

    // Its kinds are refused before anything is written, by every path; reads work.
    let nonce = node.account(&alice.address()).1;
    let (status, body) = node.submit(&signed_transfer(
        DEVNET,
        &alice,
        nonce,
        &bob.address(),
        AIT,
        0,
    ));
    assert_eq!((status, error_code(&body)), (403, "paused"), "{body}");
    assert_eq!(
        node.account(&alice.address()).1,
        nonce,
        "the nonce is not used"
    );
    let (status, body) = node.post(
        "/v1/faucet",
        &json!({"address": bob.address(), "amount": AIT.to_string()}),
    );
    assert_eq!((status, error_code(&body)), (403, "paused"), "{body}");
    assert_eq!(node.account(&bob.address()).0, AIT);

    // The pause survives kill -9; the council's own kinds are never paused.
    node.kill9();
    node.restart();
    assert_eq!(
        module(&node, "transfers")["paused"],
        true,
        "still paused after a restart"
    );
    let (status, body) = council_tx(
        &node,
        &members[2],
        "council_pause",
        json!({"module": "governance", "reason": "drill"}),
    );
    assert_eq!(status, 200, "{body}");

    // Down over the pause's end: on restart its timer fires and transfers work again.
    let until_ms = paused["paused_until_ms"].as_u64().unwrap();
    node.kill9();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    thread::sleep(Duration::from_millis(until_ms.saturating_sub(now_ms) + 200));
    node.restart();
    assert_eq!(module(&node, "transfers")["paused"], false);
    node.transfer(&alice, nonce, &bob.address(), AIT, 0);
    assert_eq!(node.account(&bob.address()).0, 2 * AIT);
    // The clock alone ends a pause; the timer records it: the DAO's pauses empty out.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, council) = node.get("/v1/council");
        let recorded: Vec<&Value> = council["pauses"].as_array().unwrap().iter().collect();
        if recorded.iter().all(|p| p["module"] != "transfers") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pause's timer never fired: {council}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_council_resumes_a_module_with_its_threshold() {
    let dir = tempdir();
    let (node, _chain, members) = council_devnet(dir.path());
    let alice = new_key();
    node.faucet(&alice.address(), 10 * AIT);
    for member in &members[..2] {
        let (status, body) = council_tx(
            &node,
            member,
            "council_pause",
            json!({"module": "transfers", "reason": "x"}),
        );
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(module(&node, "transfers")["paused"], true);
    let unpause = json!({"module": "transfers"});
    let (status, body) = council_tx(&node, &members[2], "council_unpause", unpause.clone());
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        module(&node, "transfers")["paused"],
        true,
        "one approval of two"
    );
    let (_, council) = node.get("/v1/council");
    assert_eq!(council["pending"][0]["action"], "unpause", "{council}");
    let (status, body) = council_tx(&node, &members[0], "council_unpause", unpause);
    assert_eq!(status, 200, "{body}");
    assert_eq!(module(&node, "transfers")["paused"], false);
    node.transfer(&alice, 0, &new_key().address(), AIT, 0);
}
