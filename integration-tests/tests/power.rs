//! Voting power through the real binary (`GET /v1/accounts/{address}/power`): tokens just
//! received count for the time they were held in the window, a balance held through the whole
//! window counts fully, and a whale is clamped to the cap. The chain uses a 4-second window.

use std::thread;
use std::time::Duration;

use integration_tests::*;
use serde_json::Value;

const WINDOW_S: u64 = 4;

fn power(node: &TestNode, address: &domain::address::Address) -> Value {
    let (status, body) = node.get(&format!("/v1/accounts/{address}/power"));
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn power_is_the_time_weighted_balance_over_the_window_clamped_to_the_cap() {
    let dir = tempdir();
    let (config, mut chains) = write_config(dir.path(), &[(DEVNET, 0)], 200);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[chains.genesis.governance]\ntwas_window_s = {WINDOW_S}\npower_cap_bps = 500\n"
    ));
    std::fs::write(&config, text).unwrap();
    let node = TestNode::start_with_config(dir.path(), &config);
    let chain = chains.remove(0);
    let (alice, bob) = (new_key(), new_key());

    // Just received: it counts only for the moments it was held (a flash loan gets nothing).
    node.faucet(&alice.address(), 100 * AIT);
    let fresh = power(&node, &alice.address());
    assert_eq!(fresh["window_s"], WINDOW_S);
    assert!(amount(&fresh["twas"]) < 10 * AIT, "{fresh}");

    // Held for about half the window: about half of it.
    thread::sleep(Duration::from_millis(WINDOW_S * 500));
    let half = amount(&power(&node, &alice.address())["twas"]);
    assert!(
        (35 * AIT..=70 * AIT).contains(&half),
        "half the window: {half}"
    );

    // After a full window without changes: exactly the balance, on both sides of a transfer.
    node.transfer(&alice, 0, &bob.address(), 40 * AIT, 0);
    thread::sleep(Duration::from_millis(WINDOW_S * 1000 + 300));
    let alice_power = power(&node, &alice.address());
    assert_eq!(amount(&alice_power["twas"]), 60 * AIT, "{alice_power}");
    assert_eq!(amount(&alice_power["power"]), 60 * AIT);
    assert_eq!(amount(&power(&node, &bob.address())["twas"]), 40 * AIT);

    // The faucet holds nearly all the supply: clamped to 5 % of it.
    let whale = power(&node, &chain.faucet.address());
    let supply = FAUCET_SUPPLY;
    assert_eq!(amount(&whale["cap"]), supply / 20, "{whale}");
    assert_eq!(whale["power"], whale["cap"]);
    assert!(amount(&whale["uncapped"]) > amount(&whale["cap"]));

    let (status, _) = node.get(&format!(
        "/v1/accounts/{}/power?window_s=0",
        alice.address()
    ));
    assert_eq!(status, 400);
    let (status, _) = node.get(&format!("/v1/accounts/{}/power?at=1", alice.address()));
    assert_eq!(status, 400, "unknown parameter");
}
