//! The module platform end to end through the real binary: assets (the devnet's USDX minted by
//! its faucet), vesting (the first module: lock, vest, claim, payout), every kind in blocks,
//! transaction outcomes and commit times, the account list and the modules list.

use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use domain::address::Address;
use integration_tests::*;
use serde_json::{Value, json};

const USDX: u128 = 1_000_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn faucet_address(node: &TestNode) -> Address {
    read_key(&node.data_dir().join("keys/faucet.key")).address()
}

/// Balance of `asset` of `address` as `GET /v1/accounts/{address}` shows it.
fn balance_of(node: &TestNode, address: &Address, asset: &str) -> u128 {
    let (status, body) = node.get(&format!("/v1/accounts/{address}"));
    assert_eq!(status, 200, "{body}");
    amount(&body["balances"][asset])
}

fn nonce_of(node: &TestNode, address: &Address) -> u64 {
    node.account(address).1
}

fn asset_supply(node: &TestNode, symbol: &str) -> Value {
    let chain = node.chain();
    chain["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["symbol"] == symbol)
        .unwrap_or_else(|| panic!("no asset {symbol} in {chain}"))["supply"]
        .clone()
}

/// Every account of the devnet through `GET /v1/accounts`, page by page.
fn all_accounts(node: &TestNode, limit: usize) -> Vec<Value> {
    let mut accounts = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/accounts?limit={limit}&cursor={c}"),
            None => format!("/v1/accounts?limit={limit}"),
        };
        let (status, page) = node.get(&path);
        assert_eq!(status, 200, "{page}");
        let items = page["accounts"].as_array().unwrap();
        assert!(items.len() <= limit);
        accounts.extend(items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return accounts,
        }
    }
}

#[test]
fn the_faucet_mints_usdx_which_moves_by_transfer_and_every_asset_is_conserved() {
    let dir = tempdir();
    let node = TestNode::start(dir.path());
    let chain = node.chain();
    let usdx = chain["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["symbol"] == "USDX")
        .expect("the devnet declares USDX");
    assert_eq!(usdx["decimals"], 6);
    assert_eq!(usdx["minter"], json!(faucet_address(&node)));
    assert_eq!(chain["assets"][0]["symbol"], "AIT");

    let (alice, bob) = (new_key(), new_key());
    let (status, minted) = node.post(
        "/v1/faucet",
        &json!({"address": alice.address(), "amount": (5 * USDX).to_string(), "asset": "USDX"}),
    );
    assert_eq!(status, 200, "{minted}");
    assert_eq!(minted["outcome"], "applied");
    let mint_tx = node.tx(minted["tx_hash"].as_str().unwrap());
    assert_eq!(mint_tx["kind"], "mint");
    assert_eq!(mint_tx["asset"], "USDX");
    assert_eq!(balance_of(&node, &alice.address(), "USDX"), 5 * USDX);
    assert_eq!(balance_of(&node, &alice.address(), "AIT"), 0);

    let send = |nonce: u64, asset: &str, amount: u128| {
        node.submit(&signed(
            DEVNET,
            &alice,
            nonce,
            "transfer",
            json!({"to": bob.address(), "amount": amount.to_string(), "asset": asset}),
        ))
    };
    let (status, body) = send(0, "USDX", 2 * USDX);
    assert_eq!(status, 200, "{body}");
    assert_eq!(balance_of(&node, &alice.address(), "USDX"), 3 * USDX);
    assert_eq!(balance_of(&node, &bob.address(), "USDX"), 2 * USDX);

    // Refusals change nothing, the nonce included.
    let (status, body) = send(1, "USDX", 4 * USDX);
    assert_eq!(
        (status, error_code(&body)),
        (422, "insufficient_funds"),
        "{body}"
    );
    let (status, body) = send(1, "EURX", 1);
    assert_eq!((status, error_code(&body)), (400, "malformed"), "{body}");
    let forged_mint = signed(
        DEVNET,
        &alice,
        1,
        "mint",
        json!({"to": alice.address(), "asset": "USDX", "amount": "1"}),
    );
    let (status, body) = node.submit(&forged_mint);
    assert_eq!((status, error_code(&body)), (401, "unauthorized"), "{body}");
    let (status, body) = node.post(
        "/v1/faucet",
        &json!({"address": alice.address(), "amount": "1", "asset": "EURX"}),
    );
    assert_eq!((status, error_code(&body)), (400, "malformed"), "{body}");
    let too_much = (1_000_000 * USDX + 1).to_string();
    let (status, body) = node.post(
        "/v1/faucet",
        &json!({"address": alice.address(), "amount": too_much, "asset": "USDX"}),
    );
    assert_eq!(
        (status, error_code(&body)),
        (400, "malformed"),
        "per-asset faucet limit: {body}"
    );
    assert_eq!(nonce_of(&node, &alice.address()), 1);
    assert_eq!(balance_of(&node, &alice.address(), "USDX"), 3 * USDX);

    // Per-asset supply, and the account list sums to it.
    let supply = asset_supply(&node, "USDX");
    assert_eq!(amount(&supply["minted"]), 5 * USDX);
    assert_eq!(amount(&supply["balances"]), 5 * USDX);
    assert_eq!(supply["conserved"], true);
    let accounts = all_accounts(&node, 2);
    let sum = |asset: &str| -> u128 {
        accounts
            .iter()
            .map(|a| {
                a["balances"][asset]
                    .as_str()
                    .map_or(0, |v| v.parse::<u128>().unwrap())
            })
            .sum()
    };
    assert_eq!(sum("USDX"), 5 * USDX);
    let native = asset_supply(&node, "AIT");
    assert_eq!(sum("AIT"), amount(&native["minted"]));
    let mut addresses: Vec<&str> = accounts
        .iter()
        .map(|a| a["address"].as_str().unwrap())
        .collect();
    let listed = addresses.len();
    addresses.dedup();
    assert_eq!(addresses.len(), listed, "pages do not overlap");
    assert!(addresses.is_sorted(), "address order");
    for bad in ["limit=0", "limit=1001", "cursor=nope"] {
        let (status, body) = node.get(&format!("/v1/accounts?{bad}"));
        assert_eq!((status, error_code(&body)), (400, "malformed"), "{bad}");
    }
}

#[test]
fn vesting_locks_the_senders_tokens_releases_them_linearly_and_pays_the_beneficiary() {
    let dir = tempdir();
    let node = TestNode::start(dir.path());
    let (alice, bob, carol) = (new_key(), new_key(), new_key());
    node.faucet(&alice.address(), 100 * AIT);
    let vesting_account: Address = {
        let (status, modules) = node.get("/v1/modules");
        assert_eq!(status, 200, "{modules}");
        let names: Vec<&str> = modules["modules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["module"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["transfers", "governance", "staking", "jobs", "markets"]
        );
        assert!(
            modules["modules"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["paused"] == false)
        );
        let account = modules["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["label"] == "vesting")
            .expect("the vesting account is listed");
        account["address"].as_str().unwrap().parse().unwrap()
    };

    let before = now_ms();
    let create = signed(
        DEVNET,
        &alice,
        0,
        "create_vesting",
        json!({"beneficiary": bob.address(), "amount": (10 * AIT).to_string(), "cliff_s": 1, "duration_s": 2}),
    );
    let (status, created) = node.submit(&create);
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["outcome"], "applied");
    let vesting_id = created["tx_hash"].as_str().unwrap().to_string();
    assert_eq!(balance_of(&node, &alice.address(), "AIT"), 90 * AIT);
    assert_eq!(balance_of(&node, &vesting_account, "AIT"), 10 * AIT);
    assert_eq!(
        balance_of(&node, &bob.address(), "AIT"),
        0,
        "unvested is not the beneficiary's"
    );

    let (_, account) = node.get(&format!("/v1/accounts/{}", bob.address()));
    let schedule = &account["vesting"][0];
    assert_eq!(schedule["id"], vesting_id.as_str());
    assert_eq!(amount(&schedule["total"]), 10 * AIT);
    assert_eq!(amount(&schedule["claimed"]), 0);
    let start_at = schedule["start_at"].as_u64().unwrap();
    assert!(start_at * 1000 + 999 >= before && start_at * 1000 <= now_ms());
    assert_eq!(schedule["cliff_at"].as_u64().unwrap(), start_at + 1);
    assert_eq!(schedule["end_at"].as_u64().unwrap(), start_at + 2);
    let created_tx = node.tx(&vesting_id);
    assert_eq!(created_tx["kind"], "create_vesting");
    let committed_at = created_tx["committed_at_ms"].as_u64().unwrap();
    assert!(
        committed_at >= before && committed_at <= now_ms(),
        "{created_tx}"
    );

    let claim = |key: &domain::keys::SigningKey, nonce: u64, id: &str| {
        node.submit(&signed(
            DEVNET,
            key,
            nonce,
            "claim_vested",
            json!({"vesting_id": id}),
        ))
    };
    // Checks made before anything is written: each is refused and changes nothing.
    let (status, body) = claim(&bob, 0, &vesting_id);
    assert_eq!(
        (status, error_code(&body)),
        (422, "nothing_to_claim"),
        "{body}"
    );
    let (status, body) = claim(&carol, 0, &vesting_id);
    assert_eq!((status, error_code(&body)), (403, "not_owner"), "{body}");
    let unknown = "ab".repeat(32);
    let (status, body) = claim(&bob, 0, &unknown);
    assert_eq!((status, error_code(&body)), (404, "not_found"), "{body}");
    let (status, body) = claim(&bob, 0, "not-a-hash");
    assert_eq!((status, error_code(&body)), (400, "malformed"), "{body}");
    assert_eq!(nonce_of(&node, &bob.address()), 0);

    thread::sleep(Duration::from_millis(2_200));
    let (status, claimed) = claim(&bob, 0, &vesting_id);
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["outcome"], "applied");
    assert_eq!(balance_of(&node, &bob.address(), "AIT"), 10 * AIT);
    assert_eq!(balance_of(&node, &vesting_account, "AIT"), 0);
    let claim_hash = claimed["tx_hash"].as_str().unwrap().to_string();
    let claim_tx = node.tx(&claim_hash);
    assert_eq!(claim_tx["kind"], "claim_vested");
    let types: Vec<&str> = claim_tx["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for expected in [
        "Debited.v2",
        "VestingClaimed.v1",
        "PaidOut.v1",
        "Credited.v1",
    ] {
        assert!(types.contains(&expected), "{expected} in {types:?}");
    }
    let (status, body) = claim(&bob, 1, &vesting_id);
    assert_eq!(
        (status, error_code(&body)),
        (422, "nothing_to_claim"),
        "{body}"
    );

    // Every kind is in a block with a proof.
    node.check_tx_proof(&vesting_id, DEVNET);
    node.check_tx_proof(&claim_hash, DEVNET);
    let supply = asset_supply(&node, "AIT");
    assert_eq!(
        (supply["conserved"].clone(), supply["in_flight"].clone()),
        (json!(true), json!("0"))
    );

    // What the schedule shows survives a restart.
    let mut node = node;
    node.stop();
    node.restart();
    let (_, account) = node.get(&format!("/v1/accounts/{}", bob.address()));
    assert_eq!(amount(&account["vesting"][0]["claimed"]), 10 * AIT);
    assert_eq!(amount(&account["vesting"][0]["vested"]), 10 * AIT);
    assert_eq!(balance_of(&node, &bob.address(), "AIT"), 10 * AIT);
}

#[test]
fn a_body_with_a_key_given_twice_is_refused_at_the_node() {
    let dir = tempdir();
    let node = TestNode::start(dir.path());
    let alice = new_key();
    node.faucet(&alice.address(), AIT);
    let payload = format!(
        r#"{{"chain_id":"{DEVNET}","sender":"{}","nonce":0,"fee":"0","kind":"transfer","body":{{"to":"{}","amount":"1","amount":"2"}}}}"#,
        alice.address(),
        alice.address()
    );
    let envelope = domain::tx::sign_text(&alice, payload);
    let (status, body) = node.submit(&envelope);
    assert_eq!((status, error_code(&body)), (400, "malformed"), "{body}");
    assert_eq!(nonce_of(&node, &alice.address()), 0);
}
