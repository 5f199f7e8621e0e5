//! GPU staking pools through the real binary (PRODUCT.md §5, API.md "Staking"): a provider that
//! mines stakes into a genesis pool, its verified jobs make the pool's utilization, epochs settle
//! on their timers (across a `kill -9`), rewards are claimed once, an unstake waits for the lock,
//! an early exit pays its penalty, a disproved result slashes 5 %, and every refusal changes
//! nothing.

use domain::keys::SigningKey;
use integration_tests::miner::*;
use integration_tests::*;
use serde_json::{Value, json};

const PRICE: u128 = 800;
const BUDGET: u128 = 1_000 * AIT;
const STAKE: u128 = 200 * AIT;

/// A devnet whose genesis has pool `gpu`: 1 AIT a second at full utilization, 2-second epochs.
fn staking_devnet(dir: &std::path::Path) -> TestNode {
    staking_devnet_with(dir, "")
}

/// The same, with `extra` appended to the chain's configuration.
fn staking_devnet_with(dir: &std::path::Path, extra: &str) -> TestNode {
    let (config, _chains) = write_config(dir, &[(DEVNET, 0)], 200);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(extra);
    text.push_str(&format!(
        "\n[[chains.genesis.pools]]\nid = \"gpu\"\nreward_rate = \"{AIT}\"\nbudget = \"{BUDGET}\"\n\
         min_stake = \"{}\"\nmin_lock_days = 7\nmax_lock_days = 365\nepoch_s = 2\n",
        100 * AIT
    ));
    std::fs::write(&config, text).unwrap();
    TestNode::start_with_config(dir, &config)
}

fn tx(node: &TestNode, key: &SigningKey, kind: &str, body: Value) -> (u16, Value) {
    let nonce = node.account(&key.address()).1;
    node.submit(&signed(DEVNET, key, nonce, kind, body))
}

fn position(node: &TestNode, id: &str) -> Value {
    let (status, body) = node.get(&format!("/v1/positions/{id}"));
    assert_eq!(status, 200, "{body}");
    body
}

fn pool(node: &TestNode) -> Value {
    let (status, body) = node.get("/v1/pools/gpu");
    assert_eq!(status, 200, "{body}");
    body
}

fn wait_for(what: &str, done: impl FnMut() -> bool) {
    wait_until(what, std::time::Duration::from_secs(30), done)
}

/// The miner runs one job of `client` that keeps its GPU busy `gpu_ms`; right or wrong.
fn run_job(
    node: &TestNode,
    client: &SigningKey,
    miner: &Miner,
    gpu_ms: u64,
    right: bool,
) -> String {
    let body = json!({"job_kind": "sha256", "input": {"messages": ["616263"]},
        "max_price": "1000", "redundancy": 1, "deadline_s": 60, "verification": "always"});
    let (status, answer) = tx(node, client, "submit_job", body);
    assert_eq!(status, 200, "{answer}");
    let job = miner.poll(node);
    let result = if right { digests(&job) } else { vec![0; 32] };
    let (status, answer) = miner.answer_with(node, &job, &result, PRICE, gpu_ms);
    assert_eq!(status, 200, "{answer}");
    job["job_id"].as_str().unwrap().to_string()
}

#[test]
fn a_provider_stakes_earns_by_its_verified_work_claims_once_and_exits_with_the_penalty() {
    let dir = tempdir();
    let mut node = staking_devnet(dir.path());
    let (provider, client) = (Miner::new(), new_key());
    provider.register(&node);
    node.faucet(&provider.address(), 1_000 * AIT);
    node.faucet(&client.address(), 10 * AIT);
    let listed = node.get("/v1/pools").1;
    assert_eq!(listed["pools"][0]["id"], "gpu", "{listed}");
    assert_eq!(amount(&pool(&node)["budget_left"]), BUDGET);

    // Refusals change nothing.
    let key = &provider.key;
    let stake = |amount: u128, lock_days: u32, pool: &str| json!({"pool_id": pool, "amount": amount.to_string(), "lock_days": lock_days});
    let refusals = [
        (stake(99 * AIT, 30, "gpu"), 422, "limit_exceeded"),
        (stake(STAKE, 6, "gpu"), 400, "malformed"),
        (stake(STAKE, 30, "cpu"), 404, "not_found"),
    ];
    for (body, status, code) in refusals {
        let (got, answer) = tx(&node, key, "stake", body);
        assert_eq!((got, error_code(&answer)), (status, code), "{answer}");
    }
    assert_eq!(
        node.account(&provider.address()),
        (1_000 * AIT, 0),
        "nothing changed"
    );

    // Voting power over the last second: the whole balance, staked or not.
    let power = |node: &TestNode| {
        std::thread::sleep(std::time::Duration::from_millis(1_100));
        let path = format!("/v1/accounts/{}/power?window_s=1", provider.address());
        amount(&node.get(&path).1["twas"])
    };
    assert_eq!(power(&node), 1_000 * AIT);
    let (status, answer) = tx(&node, key, "stake", stake(STAKE, 7, "gpu"));
    assert_eq!(status, 200, "{answer}");
    let id = answer["tx_hash"].as_str().unwrap().to_string();
    assert_eq!(node.account(&provider.address()).0, 800 * AIT);
    assert_eq!(power(&node), 1_000 * AIT, "staked tokens still count");
    let held = position(&node, &id);
    assert_eq!(
        (amount(&held["amount"]), &held["lock_days"]),
        (STAKE, &json!(7))
    );
    assert_eq!(held["owner"], provider.address().to_string());

    // Its verified work makes the pool's utilization; an epoch settles on its timer.
    run_job(&node, &client, &provider, 1_500, true);
    wait_for("rewards", || amount(&position(&node, &id)["accrued"]) > 0);
    let accrued = amount(&position(&node, &id)["accrued"]);
    assert!(accrued <= 2 * AIT, "at most rate × epoch: {accrued}");
    let settled = pool(&node);
    assert_eq!(
        amount(&settled["budget_left"]) + amount(&settled["distributed"]),
        BUDGET
    );
    assert!(
        settled["epochs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["utilization_bps"] != 0),
        "{settled}"
    );

    // Killed and restarted: the position and its rewards are there, epochs keep settling.
    node.kill9();
    node.restart();
    assert!(amount(&position(&node, &id)["accrued"]) >= accrued);
    let epoch = pool(&node)["epoch"].as_u64().unwrap();
    wait_for("the next epoch", || {
        pool(&node)["epoch"].as_u64().unwrap() > epoch
    });

    let before = node.account(&provider.address()).0;
    let claimable = amount(&position(&node, &id)["claimable"]);
    let (status, answer) = tx(&node, key, "claim_rewards", json!({"position_id": id}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        node.account(&provider.address()).0,
        before + claimable,
        "paid what settled"
    );
    let again = position(&node, &id);
    if amount(&again["claimable"]) == 0 {
        let (status, answer) = tx(&node, key, "claim_rewards", json!({"position_id": id}));
        assert_eq!(
            (status, error_code(&answer)),
            (422, "nothing_to_claim"),
            "{answer}"
        );
    }
    let stranger = new_key();
    node.faucet(&stranger.address(), AIT);
    let (status, answer) = tx(
        &node,
        &stranger,
        "claim_rewards",
        json!({"position_id": id}),
    );
    assert_eq!(
        (status, error_code(&answer)),
        (403, "not_owner"),
        "{answer}"
    );

    let (status, answer) = tx(&node, key, "unstake", json!({"position_id": id}));
    assert_eq!((status, error_code(&answer)), (422, "locked"), "{answer}");
    let treasury = node.account(&domain::address::Address::treasury(DEVNET)).0;
    let before = node.account(&provider.address()).0;
    let (status, answer) = tx(&node, key, "early_exit", json!({"position_id": id}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(node.account(&provider.address()).0, before + STAKE * 9 / 10);
    assert_eq!(
        node.account(&domain::address::Address::treasury(DEVNET)).0,
        treasury + STAKE / 10,
        "the penalty"
    );
    assert_eq!(position(&node, &id)["closed"], true);
    let listed = node
        .get(&format!("/v1/positions?owner={}", provider.address()))
        .1;
    assert_eq!(listed["positions"][0]["id"], id.as_str(), "{listed}");
}

#[test]
fn a_disproved_result_slashes_five_percent_of_the_providers_stake_once() {
    let dir = tempdir();
    let node = staking_devnet(dir.path());
    let (provider, client) = (Miner::new(), new_key());
    provider.register(&node);
    node.faucet(&provider.address(), 1_000 * AIT);
    node.faucet(&client.address(), 10 * AIT);
    let body = json!({"pool_id": "gpu", "amount": STAKE.to_string(), "lock_days": 30});
    let (status, answer) = tx(&node, &provider.key, "stake", body);
    assert_eq!(status, 200, "{answer}");
    let id = answer["tx_hash"].as_str().unwrap().to_string();
    let treasury = domain::address::Address::treasury(DEVNET);
    let before = node.account(&treasury).0;
    let job = run_job(&node, &client, &provider, 100, false);
    assert_eq!(node.get(&format!("/v1/jobs/{job}")).1["state"], "failed");
    wait_for("the slash", || {
        amount(&position(&node, &id)["amount"]) < STAKE
    });
    assert_eq!(amount(&position(&node, &id)["amount"]), STAKE * 95 / 100);
    assert_eq!(
        node.account(&treasury).0,
        before + STAKE * 5 / 100,
        "to the treasury"
    );
    let weight: u128 = position(&node, &id)["weight"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(weight > 0);
}

#[test]
fn a_paused_staking_module_refuses_its_kinds_and_the_cli_stakes_and_lists() {
    let dir = tempdir();
    let member = new_key();
    let council = format!(
        "\n[chains.genesis.governance]\ncouncil = [\"{}\"]\ncouncil_threshold = 1\n",
        member.address()
    );
    let node = staking_devnet_with(dir.path(), &council);
    let cli = Cli::new(node.url(), &dir.path().join("keystore")).with_passphrase("stake pass");
    cli.run(&["wallet", "new", "provider"]).ok();
    cli.run(&["faucet", "provider", "--amount", "500AIT"])
        .json();
    let pools = cli.run(&["stake", "pools"]).json();
    assert_eq!(pools["pools"][0]["id"], "gpu", "{pools}");
    let staked = cli
        .run(&[
            "stake",
            "stake",
            "--from",
            "provider",
            "--pool",
            "gpu",
            "--amount",
            "150AIT",
            "--lock-days",
            "30",
        ])
        .json();
    assert_eq!(staked["outcome"], "applied", "{staked}");
    let id = staked["tx_hash"].as_str().unwrap().to_string();
    let positions = cli.run(&["stake", "positions", "provider"]).json();
    assert_eq!(positions["positions"][0]["id"], id.as_str(), "{positions}");
    assert_eq!(amount(&positions["positions"][0]["amount"]), 150 * AIT);
    let locked = cli.run(&["stake", "unstake", "--from", "provider", &id]);
    assert!(locked.err().contains("locked"), "{locked:#?}");

    node.faucet(&member.address(), AIT);
    let pause = json!({"module": "staking", "reason": "audit"});
    let (status, answer) = tx(&node, &member, "council_pause", pause);
    assert_eq!(status, 200, "{answer}");
    let paused = cli.run(&["stake", "claim", "--from", "provider", &id]);
    assert!(paused.err().contains("paused"), "{paused:#?}");
    let provider = cli.run(&["wallet", "show", "provider"]).json();
    let address = provider["address"].as_str().unwrap();
    let (balance, nonce) = node.account(&address.parse().unwrap());
    assert_eq!(
        (balance, nonce),
        (350 * AIT, 1),
        "nothing changed while paused"
    );
}
