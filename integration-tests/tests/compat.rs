//! A data directory written by an older release opens with this one: its balances, nonces,
//! transactions, blocks and proofs read as before, supply is conserved, and the chain goes on.
//! The fixture (`fixtures/log-v0.1`, see its README) is what release 0.1 left on disk.

use std::path::Path;

use integration_tests::*;

const ALICE: &str = "ait113f999de089b08dca4b38f57ad3800da28884dfa";
const BOB: &str = "ait162f8b2bc84974e03d0a5994ec5b2c6ed0beffdf6";
const FAUCET: &str = "ait1492f9405294aa48a39b8719eb9e52fa875013803";
const TXS: [(&str, u64); 4] = [
    (
        "468ef1e5b81df075296b86e88815adfff4165f1a0f5d0985944b349f2eb0f5d1",
        1,
    ),
    (
        "79c03d07cd4c2edd319de8b3c3ee0dd8e69a7b5aed3106470ac161924a0e39a2",
        1,
    ),
    (
        "6f20a6abbf96651c72dbf83cc66ff1b2a060fb69eb8bdc74e3ff73dde459f542",
        1,
    ),
    (
        "ba767815624e3f397735b964399429258a3a72930d8f4724235b83f8f724a19b",
        2,
    ),
];

fn fixture_copy() -> tempfile::TempDir {
    let dir = tempdir();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/log-v0.1");
    copy_dir(&fixture, dir.path());
    dir
}

/// Checks what the fixture holds; `paid` is what the faucet paid bob after it was written.
fn check_fixture_state(node: &TestNode, paid: u128) {
    let (alice, alice_nonce) = node.account(&ALICE.parse().unwrap());
    assert_eq!((alice, alice_nonce), (88_500_000_000_000_000_000, 2));
    let (bob, bob_nonce) = node.account(&BOB.parse().unwrap());
    assert_eq!((bob, bob_nonce), (11_499_999_999_999_999_000 + paid, 1));
    let (faucet, _) = node.account(&FAUCET.parse().unwrap());
    assert_eq!(faucet, 999_999_900 * AIT - paid);
    for (hash, height) in TXS {
        assert_eq!(node.check_tx_proof(hash, DEVNET), height, "tx {hash}");
    }
    let fee_tx = node.tx(TXS[3].0);
    assert_eq!(fee_tx["status"], "committed");
    // Release 0.1 did not record commit times: the log's time of the debit stands in.
    let committed_at_ms = fee_tx["committed_at_ms"].as_u64().unwrap_or(0);
    assert!(committed_at_ms > 1_700_000_000_000, "{fee_tx}");
    node.verify_chain(DEVNET);
    let supply = &node.chain()["supply"];
    assert_eq!(supply["conserved"], true, "{supply}");
    assert_eq!(supply["in_flight"], "0", "{supply}");
}

#[test]
fn a_log_written_by_release_0_1_opens_reads_and_goes_on() {
    let dir = fixture_copy();
    let config = dir.path().join("aitbc.toml");
    let mut node = TestNode::start_with_config(dir.path(), &config);
    check_fixture_state(&node, 0);

    // The chain goes on: a new transfer from the old faucet key commits and is sealed.
    let faucet_key = read_key(&dir.path().join("keys/faucet.key"));
    let bob: domain::address::Address = BOB.parse().unwrap();
    let (status, body) = node.transfer(&faucet_key, 1, &bob, AIT, 0);
    assert_eq!(status, 200, "{body}");
    let hash = body["tx_hash"].as_str().unwrap().to_string();
    assert_eq!(node.check_tx_proof(&hash, DEVNET), 3);
    assert_eq!(node.account(&bob).0, 12_499_999_999_999_999_000);

    // And it reopens once more with what this release wrote beside the old events.
    node.stop();
    node.restart();
    check_fixture_state(&node, AIT);
}
