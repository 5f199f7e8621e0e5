//! Crash safety of the module protocol through the real binary: concurrent vesting schedules,
//! claims, USDX mints and USDX transfers, `kill -9` mid-load (so transactions die between any
//! two of their steps), restart. Every acknowledged transaction must be there with its outcome
//! and all its effects, every asset's books balanced with nothing in flight, blocks valid.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use domain::keys::SigningKey;
use integration_tests::serde_json::{Value, json};
use integration_tests::*;

const PAIRS: usize = 6;
const LOAD: Duration = Duration::from_millis(1500);

/// What one pair's thread saw acknowledged.
#[derive(Default)]
struct PairLog {
    /// (vesting id, amount) of acknowledged schedules.
    schedules: Vec<(String, u128)>,
    /// Acknowledged claims: (tx hash, vesting id).
    claims: Vec<(String, String)>,
    /// Acknowledged USDX transactions (mint answers and transfers).
    usdx: Vec<String>,
    failures: Vec<String>,
}

/// `giver` locks tokens for `taker`, who claims them at once (the schedule vests fully at
/// creation); the faucet mints USDX to a new address each round (it paces each recipient),
/// and `giver` passes some of its own on. Until the node dies.
fn pair_thread(
    client: Client,
    giver: SigningKey,
    taker: SigningKey,
    killed: Arc<AtomicBool>,
) -> PairLog {
    let mut log = PairLog::default();
    let (mut giver_nonce, mut taker_nonce) = (0u64, 0u64);
    let mut round = 0u128;
    let ok = |log: &mut PairLog, result: Result<(u16, Value), String>| -> Option<Value> {
        match result {
            Ok((200, body)) => Some(body),
            Ok((status, body)) if !killed.load(Ordering::SeqCst) => {
                log.failures.push(format!("{status} {body}"));
                None
            }
            _ => None,
        }
    };
    loop {
        round += 1;
        let amount = 1_000 + round;
        let create = signed(
            DEVNET,
            &giver,
            giver_nonce,
            "create_vesting",
            json!({"beneficiary": taker.address(), "amount": amount.to_string(), "cliff_s": 0, "duration_s": 0}),
        );
        let Some(body) = ok(&mut log, client.try_submit(&create)) else {
            return log;
        };
        giver_nonce += 1;
        let id = body["tx_hash"].as_str().unwrap().to_string();
        log.schedules.push((id.clone(), amount));
        let claim = signed(
            DEVNET,
            &taker,
            taker_nonce,
            "claim_vested",
            json!({"vesting_id": id}),
        );
        let Some(body) = ok(&mut log, client.try_submit(&claim)) else {
            return log;
        };
        assert_eq!(body["outcome"], "applied", "{body}");
        taker_nonce += 1;
        log.claims
            .push((body["tx_hash"].as_str().unwrap().to_string(), id));
        let mint = json!({"address": new_key().address(), "amount": "100", "asset": "USDX"});
        let Some(body) = ok(&mut log, client.try_post("/v1/faucet", &mint)) else {
            return log;
        };
        log.usdx.push(body["tx_hash"].as_str().unwrap().to_string());
        let pass_on = signed(
            DEVNET,
            &giver,
            giver_nonce,
            "transfer",
            json!({"to": taker.address(), "amount": "40", "asset": "USDX"}),
        );
        let Some(body) = ok(&mut log, client.try_submit(&pass_on)) else {
            return log;
        };
        giver_nonce += 1;
        log.usdx.push(body["tx_hash"].as_str().unwrap().to_string());
    }
}

fn check_books(node: &TestNode) {
    for asset in node.chain()["assets"].as_array().unwrap() {
        let supply = &asset["supply"];
        assert_eq!(supply["conserved"], true, "{asset}");
        assert_eq!(supply["in_flight"], "0", "nothing left in flight: {asset}");
    }
}

#[test]
fn module_transactions_survive_kill_9_between_any_two_steps() {
    let dir = tempdir();
    let mut node = TestNode::start(dir.path());
    let pairs: Vec<(SigningKey, SigningKey)> = (0..PAIRS).map(|_| (new_key(), new_key())).collect();
    for (giver, _) in &pairs {
        node.faucet(&giver.address(), 1_000_000 * AIT);
        let usdx = json!({"address": giver.address(), "amount": "1000000", "asset": "USDX"});
        assert_eq!(node.post("/v1/faucet", &usdx).0, 200);
    }
    let killed = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = pairs
        .iter()
        .map(|(giver, taker)| {
            let (client, killed) = (node.client(), killed.clone());
            let (giver, taker) = (giver.clone(), taker.clone());
            thread::spawn(move || pair_thread(client, giver, taker, killed))
        })
        .collect();
    thread::sleep(LOAD);
    killed.store(true, Ordering::SeqCst);
    node.kill9();
    let logs: Vec<PairLog> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for log in &logs {
        assert!(
            log.failures.is_empty(),
            "before the kill: {:?}",
            log.failures
        );
    }
    let acknowledged: usize = logs.iter().map(|l| l.claims.len()).sum();
    assert!(
        acknowledged > 0,
        "the load committed claims before the kill"
    );

    node.restart();
    for (log, (_, taker)) in logs.iter().zip(&pairs) {
        let (_, account) = node.get(&format!("/v1/accounts/{}", taker.address()));
        let schedules = account["vesting"].as_array().unwrap();
        for (id, total) in &log.schedules {
            let schedule = schedules
                .iter()
                .find(|s| s["id"] == id.as_str())
                .unwrap_or_else(|| panic!("acknowledged schedule {id} lost"));
            assert_eq!(amount(&schedule["total"]), *total);
        }
        for (hash, id) in &log.claims {
            let tx = node.tx(hash);
            assert_eq!(tx["outcome"], "applied", "{tx}");
            let schedule = schedules.iter().find(|s| s["id"] == id.as_str()).unwrap();
            assert_eq!(
                schedule["claimed"], schedule["total"],
                "an acknowledged claim was paid in full"
            );
        }
        for hash in &log.usdx {
            assert_eq!(node.tx(hash)["status"], "committed");
        }
    }
    check_books(&node);
    node.verify_chain(DEVNET);

    // The chain goes on: a new schedule and its claim commit and are sealed.
    let (giver, taker) = &pairs[0];
    let giver_nonce = node.account(&giver.address()).1;
    let create = signed(
        DEVNET,
        giver,
        giver_nonce,
        "create_vesting",
        json!({"beneficiary": taker.address(), "amount": "7", "cliff_s": 0, "duration_s": 0}),
    );
    let (status, created) = node.submit(&create);
    assert_eq!(status, 200, "{created}");
    let id = created["tx_hash"].as_str().unwrap();
    let claim = signed(
        DEVNET,
        taker,
        node.account(&taker.address()).1,
        "claim_vested",
        json!({"vesting_id": id}),
    );
    let (status, claimed) = node.submit(&claim);
    assert_eq!(
        (status, claimed["outcome"].clone()),
        (200, json!("applied")),
        "{claimed}"
    );
    node.check_tx_proof(claimed["tx_hash"].as_str().unwrap(), DEVNET);
    check_books(&node);
}
