//! OpenClawDAO through the real binary (PRODUCT.md §3, API.md "Governance"), with short
//! durations: a treasury proposal from creation to a real payout with the bond coming back, a
//! flash-loan attacker who cannot outvote honest holders, a whale clamped to the cap, an
//! emergency that freezes an account after council approval, a parameter change that applies
//! to later proposals only, and a challenge upheld by the council.

use std::thread;
use std::time::{Duration, Instant};

use domain::address::Address;
use domain::keys::SigningKey;
use integration_tests::gov::*;
use integration_tests::*;
use serde_json::{Value, json};

const HOLDING: u128 = 45_000_000 * AIT;

fn vote(node: &TestNode, key: &SigningKey, id: &str, support: &str) -> String {
    applied(
        node,
        key,
        "vote",
        json!({"proposal_id": id, "support": support}),
    )
}

fn of(id: &str) -> Value {
    json!({ "proposal_id": id })
}

/// The sum of every account's native balance (wallets and module accounts).
fn total_native(node: &TestNode) -> u128 {
    let (status, page) = node.get("/v1/accounts?limit=1000");
    assert_eq!(status, 200, "{page}");
    assert!(
        page["next_cursor"].is_null(),
        "one page holds every account"
    );
    page["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| amount(&a["balance"]))
        .sum()
}

fn treasury(node: &TestNode) -> Value {
    let (status, body) = node.get("/v1/treasury");
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn a_treasury_proposal_is_voted_queued_and_executed_for_real() {
    let dir = tempdir();
    let (node, chain, _council) = governance_devnet(dir.path());
    let (h1, h2, bob, nobody) = (new_key(), new_key(), new_key(), new_key());
    give(&node, &chain, &h1.address(), HOLDING);
    give(&node, &chain, &h2.address(), HOLDING);
    give(&node, &chain, &Address::treasury(DEVNET), 10_000 * AIT);
    wait_window();

    let pay = json!([{"action": "pay", "to": bob.address(), "amount": (1_000 * AIT).to_string()}]);
    let (status, code) = refused_with(
        &node,
        &nobody,
        "propose",
        json!({
            "proposal_type": "treasury", "title": "t", "description": "", "actions": pay,
        }),
    );
    assert_eq!((status, code.as_str()), (422, "below_threshold"));
    let (status, code) = refused_with(
        &node,
        &h1,
        "propose",
        json!({
            "proposal_type": "parameter_change", "title": "t", "description": "", "actions": pay,
        }),
    );
    assert_eq!(
        (status, code.as_str()),
        (422, "bad_action"),
        "a type takes only its own actions"
    );

    let id = propose(&node, &h1, "treasury", pay.clone());
    assert_eq!(
        node.account(&h1.address()).0,
        HOLDING - BOND,
        "the bond is locked"
    );
    assert_eq!(amount(&treasury(&node)["bonds"]["balance"]), BOND);
    let created = proposal(&node, &id);
    assert_eq!(created["state"], "pending", "{created}");
    assert_eq!(created["proposal_type"], "treasury");
    assert_eq!(created["actions"], pay);
    assert_eq!(
        amount(&created["quorum"]),
        FAUCET_SUPPLY / 25,
        "4 % of the supply"
    );
    assert_eq!(created["snapshot_ms"], created["created_at_ms"]);
    let (status, code) = refused_with(
        &node,
        &h2,
        "vote",
        json!({"proposal_id": id, "support": "for"}),
    );
    assert_eq!(
        (status, code.as_str()),
        (409, "not_active"),
        "no votes while pending"
    );

    wait_state(&node, &id, "active");
    vote(&node, &h1, &id, "for");
    vote(&node, &h2, &id, "abstain");
    let (status, code) = refused_with(
        &node,
        &h2,
        "vote",
        json!({"proposal_id": id, "support": "for"}),
    );
    assert_eq!((status, code.as_str()), (409, "already_voted"));
    let (status, code) = refused_with(
        &node,
        &nobody,
        "vote",
        json!({"proposal_id": id, "support": "for"}),
    );
    assert_eq!((status, code.as_str()), (422, "no_voting_power"));
    let (status, code) = refused_with(&node, &h2, "queue", of(&id));
    assert_eq!(
        (status, code.as_str()),
        (409, "not_active"),
        "not before voting ends"
    );
    let active = proposal(&node, &id);
    assert_eq!(amount(&active["tally"]["for"]), HOLDING, "{active}");
    assert_eq!(amount(&active["tally"]["abstain"]), HOLDING);

    wait_state(&node, &id, "succeeded");
    applied(&node, &nobody, "queue", of(&id));
    let queued = proposal(&node, &id);
    assert_eq!(queued["state"], "queued");
    let (status, code) = refused_with(&node, &nobody, "execute", of(&id));
    assert_eq!(
        (status, code.as_str()),
        (409, "not_active"),
        "in the timelock"
    );
    thread::sleep(Duration::from_millis(1_100));
    let execute = applied(&node, &nobody, "execute", of(&id));
    assert_eq!(
        node.account(&bob.address()).0,
        1_000 * AIT,
        "the treasury paid"
    );
    assert_eq!(amount(&treasury(&node)["balance"]), 9_000 * AIT);
    assert_eq!(node.account(&h1.address()).0, HOLDING, "the bond came back");
    assert_eq!(amount(&treasury(&node)["bonds"]["balance"]), 0);
    assert_eq!(proposal(&node, &id)["state"], "executed");
    let (status, code) = refused_with(&node, &nobody, "execute", of(&id));
    assert_eq!(
        (status, code.as_str()),
        (409, "not_active"),
        "executed once"
    );
    let tx = node.tx(&execute);
    assert_eq!(
        (tx["kind"].as_str(), tx["outcome"].as_str()),
        (Some("execute"), Some("applied"))
    );
    node.wait_for_block_with(&execute);

    let (status, listed) = node.get("/v1/proposals?state=executed&proposal_type=treasury");
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["proposals"][0]["id"], id.as_str());
    let (_, none) = node.get("/v1/proposals?state=active");
    assert_eq!(none["proposals"], json!([]));
    let (status, votes) = node.get(&format!("/v1/proposals/{id}/votes"));
    assert_eq!(status, 200, "{votes}");
    assert_eq!(votes["votes"].as_array().unwrap().len(), 2);
    let (status, power) = node.get(&format!("/v1/proposals/{id}/power/{}", h1.address()));
    assert_eq!(status, 200, "{power}");
    assert_eq!(amount(&power["power"]), HOLDING, "{power}");
    assert_eq!(amount(&power["voted"]["power"]), HOLDING);
    assert_eq!(total_native(&node), FAUCET_SUPPLY, "no token made or lost");
}

#[test]
fn a_flash_loan_cannot_outvote_honest_holders_and_a_whale_is_clamped() {
    let dir = tempdir();
    let (node, chain, _council) = governance_devnet(dir.path());
    let (h1, h2, attacker) = (new_key(), new_key(), new_key());
    give(&node, &chain, &h1.address(), HOLDING);
    give(&node, &chain, &h2.address(), HOLDING);
    give(&node, &chain, &attacker.address(), 2_000 * AIT);
    give(&node, &chain, &Address::treasury(DEVNET), 10_000 * AIT);
    wait_window();

    // Lent 60 % of the supply just before its proposal's snapshot, returned right after.
    let loan = FAUCET_SUPPLY / 10 * 6;
    let lent = give(&node, &chain, &attacker.address(), loan);
    let lent_at = node.tx(lent["tx_hash"].as_str().unwrap())["committed_at_ms"]
        .as_u64()
        .unwrap();
    let steal =
        json!([{"action": "pay", "to": attacker.address(), "amount": (5_000 * AIT).to_string()}]);
    let id = propose(&node, &attacker, "treasury", steal);
    let (status, body) = node.transfer(&attacker, 1, &chain.faucet.address(), loan, 0);
    assert_eq!(status, 200, "the loan is returned: {body}");
    let created = proposal(&node, &id);
    let snapshot = created["snapshot_ms"].as_u64().unwrap();
    let held_ms = u128::from(snapshot - lent_at);
    let window_ms = u128::from(WINDOW_S * 1000);
    let (_, power) = node.get(&format!("/v1/proposals/{id}/power/{}", attacker.address()));
    let bound = 2_000 * AIT + loan / window_ms * held_ms + 1;
    assert!(
        amount(&power["twas"]) <= bound,
        "held {held_ms} ms: {power}"
    );
    assert!(amount(&power["power"]) <= amount(&power["cap"]), "{power}");

    wait_state(&node, &id, "active");
    vote(&node, &attacker, &id, "for");
    // The genesis holder kept far more than 5 % through the whole window: clamped.
    vote(&node, &chain.faucet, &id, "for");
    vote(&node, &h1, &id, "against");
    vote(&node, &h2, &id, "against");
    let (_, votes) = node.get(&format!("/v1/proposals/{id}/votes"));
    let whale = votes["votes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["voter"] == chain.faucet.address().to_string())
        .unwrap()
        .clone();
    assert_eq!(
        amount(&whale["power"]),
        FAUCET_SUPPLY / 20,
        "the 5 % cap: {whale}"
    );
    let defeated = wait_state(&node, &id, "defeated");
    assert!(
        amount(&defeated["tally"]["for"]) < amount(&defeated["tally"]["against"]),
        "{defeated}"
    );
    let (status, code) = refused_with(&node, &h1, "queue", of(&id));
    assert_eq!((status, code.as_str()), (409, "not_active"));
    // The bond comes back on a defeat; the treasury paid nothing.
    let deadline = Instant::now() + Duration::from_secs(10);
    while amount(&treasury(&node)["bonds"]["balance"]) != 0 {
        assert!(Instant::now() < deadline, "bond never returned");
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(node.account(&attacker.address()).0, 2_000 * AIT);
    assert_eq!(amount(&treasury(&node)["balance"]), 10_000 * AIT);
    assert_eq!(total_native(&node), FAUCET_SUPPLY, "no token made or lost");
}

#[test]
fn an_emergency_freezes_after_council_approval_and_parameters_change_for_later_proposals() {
    let dir = tempdir();
    let (node, chain, council) = governance_devnet(dir.path());
    let (h1, suspect, bob) = (new_key(), new_key(), new_key());
    give(&node, &chain, &h1.address(), HOLDING);
    give(&node, &chain, &suspect.address(), 10 * AIT);
    let passphrase = "custodial passphrase";
    let (status, custodial) = node.post(
        "/v1/wallet/create",
        &json!({"name": "held", "passphrase": passphrase}),
    );
    assert_eq!(status, 200, "{custodial}");
    let held: Address = custodial["address"].as_str().unwrap().parse().unwrap();
    give(&node, &chain, &held, 10 * AIT);
    wait_window();

    let before = propose(
        &node,
        &h1,
        "parameter_change",
        json!([
            {"action": "set_parameter", "name": "voting_period_s", "value": 5}
        ]),
    );
    let freeze = propose(
        &node,
        &h1,
        "emergency",
        json!([
            {"action": "freeze", "address": suspect.address()},
            {"action": "freeze", "address": held},
        ]),
    );
    let emergency = proposal(&node, &freeze);
    assert_eq!(
        emergency["state"], "active",
        "an emergency has no voting delay"
    );
    vote(&node, &h1, &freeze, "for");
    let (status, code) = refused_with(&node, &h1, "council_approve", of(&freeze));
    assert_eq!((status, code.as_str()), (403, "not_council"));
    applied(&node, &council[0], "council_approve", of(&freeze));
    wait_state(&node, &freeze, "succeeded");
    let (status, code) = refused_with(&node, &h1, "queue", of(&freeze));
    assert_eq!(
        (status, code.as_str()),
        (409, "not_active"),
        "one approval of two"
    );
    applied(&node, &council[1], "council_approve", of(&freeze));
    applied(&node, &h1, "queue", of(&freeze));
    applied(&node, &h1, "execute", of(&freeze));
    let (status, body) = node.transfer(&suspect, 0, &bob.address(), AIT, 0);
    assert_eq!((status, error_code(&body)), (403, "frozen"), "{body}");
    let send = json!({"from": held, "to": bob.address(), "amount": "1", "passphrase": passphrase});
    let (status, body) = node.post("/v1/wallet/send", &send);
    assert_eq!(
        (status, error_code(&body)),
        (403, "frozen"),
        "custodial too: {body}"
    );
    let (_, council_view) = node.get("/v1/council");
    let mut frozen = vec![suspect.address().to_string(), held.to_string()];
    frozen.sort();
    assert_eq!(council_view["frozen"], json!(frozen));

    wait_state(&node, &before, "active");
    vote(&node, &h1, &before, "for");
    wait_state(&node, &before, "succeeded");
    applied(&node, &h1, "queue", of(&before));
    thread::sleep(Duration::from_millis(1_100));
    applied(&node, &h1, "execute", of(&before));
    let (_, params) = node.get("/v1/governance/params");
    let period = params["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "voting_period_s")
        .unwrap()
        .clone();
    assert_eq!(
        (period["value"].as_u64(), period["min"].as_u64()),
        (Some(5), Some(1)),
        "{period}"
    );
    let later = propose(
        &node,
        &h1,
        "parameter_change",
        json!([
            {"action": "set_parameter", "name": "quorum_bps", "value": 300}
        ]),
    );
    let later = proposal(&node, &later);
    let span =
        |p: &Value| p["voting_ends_ms"].as_u64().unwrap() - p["voting_starts_ms"].as_u64().unwrap();
    assert_eq!(span(&later), 5_000, "created after the change");
    assert_eq!(span(&proposal(&node, &before)), 3_000, "created before it");
}

#[test]
fn an_upheld_challenge_rejects_the_proposal_and_pays_the_challenger() {
    let dir = tempdir();
    let (node, chain, council) = governance_devnet(dir.path());
    let (h1, challenger) = (new_key(), new_key());
    give(&node, &chain, &h1.address(), HOLDING);
    give(&node, &chain, &challenger.address(), 1_000 * AIT);
    wait_window();

    let id = propose(
        &node,
        &h1,
        "agent_trading",
        json!([{
            "action": "set_agent_limits", "agent": challenger.address(), "trading_enabled": true,
            "max_position": "1", "max_order": "1", "daily_loss": "1"
        }]),
    );
    applied(
        &node,
        &challenger,
        "challenge",
        json!({"proposal_id": id, "reason": "limits too low"}),
    );
    assert_eq!(
        node.account(&challenger.address()).0,
        1_000 * AIT - CHALLENGE_BOND
    );
    thread::sleep(Duration::from_millis(1_500));
    assert_eq!(
        proposal(&node, &id)["state"],
        "pending",
        "a challenge holds the vote"
    );
    let resolve = json!({"proposal_id": id, "uphold": true});
    let (status, code) = refused_with(&node, &h1, "resolve_challenge", resolve.clone());
    assert_eq!((status, code.as_str()), (403, "not_council"));
    applied(&node, &council[0], "resolve_challenge", resolve.clone());
    applied(&node, &council[2], "resolve_challenge", resolve);
    assert_eq!(proposal(&node, &id)["state"], "rejected");
    assert_eq!(
        node.account(&challenger.address()).0,
        1_000 * AIT + BOND / 2,
        "its bond back and half the proposer's"
    );
    assert_eq!(node.account(&h1.address()).0, HOLDING - BOND);
    assert_eq!(amount(&treasury(&node)["balance"]), BOND / 2);
    assert_eq!(total_native(&node), FAUCET_SUPPLY, "no token made or lost");
}

#[test]
fn every_proposal_type_executes_for_real() {
    let dir = tempdir();
    let (node, chain, council) = governance_devnet(dir.path());
    let (h1, grantee, payee, trader) = (new_key(), new_key(), new_key(), new_key());
    give(&node, &chain, &h1.address(), HOLDING);
    give(&node, &chain, &Address::treasury(DEVNET), 10_000 * AIT);
    wait_window();

    let vesting = json!({"cliff_s": 0, "duration_s": 2});
    let members = json!([council[0].address(), council[1].address()]);
    let proposals = [
        (
            "protocol_upgrade",
            json!([
                {"action": "set_protocol_version", "version": 2},
                {"action": "set_council", "members": members, "threshold": 1},
            ]),
        ),
        (
            "dao_grants",
            json!([{"action": "grant", "to": grantee.address(), "amount": (1_000 * AIT).to_string(), "vesting": vesting}]),
        ),
        (
            "treasury",
            json!([{"action": "pay", "to": payee.address(), "amount": (500 * AIT).to_string(), "vesting": vesting}]),
        ),
        (
            "agent_trading",
            json!([{"action": "set_agent_limits", "agent": trader.address(), "trading_enabled": true,
            "max_position": "1000", "max_order": "100", "daily_loss": "10"}]),
        ),
        (
            "emergency",
            json!([{"action": "pause", "module": "markets"}]),
        ),
    ];
    let ids: Vec<String> = proposals
        .iter()
        .map(|(kind, actions)| propose(&node, &h1, kind, actions.clone()))
        .collect();
    for id in &ids {
        wait_state(&node, id, "active");
        vote(&node, &h1, id, "for");
    }
    for id in [&ids[0], &ids[4]] {
        applied(&node, &council[0], "council_approve", of(id));
        applied(&node, &council[2], "council_approve", of(id));
    }
    for id in &ids {
        wait_state(&node, id, "succeeded");
        applied(&node, &h1, "queue", of(id));
    }
    thread::sleep(Duration::from_millis(1_100));
    for id in &ids {
        applied(&node, &h1, "execute", of(id));
        assert_eq!(proposal(&node, id)["state"], "executed");
    }

    let (_, params) = node.get("/v1/governance/params");
    assert_eq!(params["protocol_version"], 2, "{params}");
    assert_eq!(params["council"]["members"], members);
    assert_eq!(params["council"]["threshold"], 1);
    assert_eq!(
        amount(&treasury(&node)["balance"]),
        8_500 * AIT,
        "both payouts left the treasury"
    );
    for (who, total) in [(&grantee, 1_000 * AIT), (&payee, 500 * AIT)] {
        let (_, account) = node.get(&format!("/v1/accounts/{}", who.address()));
        let schedule = &account["vesting"][0];
        assert_eq!(amount(&schedule["total"]), total, "{account}");
        assert_eq!(
            amount(&account["balance"]),
            0,
            "it vests; nothing is paid at once"
        );
        thread::sleep(Duration::from_millis(2_100));
        let claim = json!({"vesting_id": schedule["id"]});
        applied(&node, who, "claim_vested", claim);
        assert_eq!(node.account(&who.address()).0, total);
    }
    let (_, council_view) = node.get("/v1/council");
    let limits = &council_view["agent_limits"][0];
    assert_eq!(
        limits["agent"],
        trader.address().to_string(),
        "{council_view}"
    );
    assert_eq!(
        (
            limits["max_order"].as_str(),
            limits["trading_enabled"].as_bool()
        ),
        (Some("100"), Some(true))
    );
    let (_, modules) = node.get("/v1/modules");
    let markets = modules["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["module"] == "markets")
        .unwrap()
        .clone();
    assert_eq!(markets["paused"], true, "{markets}");
    assert_eq!(total_native(&node), FAUCET_SUPPLY, "no token made or lost");
}

#[test]
fn a_voting_end_missed_while_the_node_was_down_settles_after_a_restart() {
    let dir = tempdir();
    let (mut node, chain, _council) = governance_devnet(dir.path());
    let h1 = new_key();
    give(&node, &chain, &h1.address(), HOLDING);
    wait_window();
    let id = propose(
        &node,
        &h1,
        "parameter_change",
        json!([
            {"action": "set_parameter", "name": "quorum_bps", "value": 300}
        ]),
    );
    wait_state(&node, &id, "active");
    node.kill9();
    // Voting (3 s) ends while the node is down; nobody voted: defeated, the bond comes back.
    thread::sleep(Duration::from_millis(3_500));
    node.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.account(&h1.address()).0 != HOLDING {
        assert!(Instant::now() < deadline, "the bond never came back");
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(proposal(&node, &id)["state"], "defeated");
    assert_eq!(amount(&treasury(&node)["bonds"]["balance"]), 0);
}

#[test]
fn a_treasury_proposal_creates_a_staking_pool_funded_from_the_treasury() {
    let dir = tempdir();
    let (node, chain, _council) = governance_devnet(dir.path());
    let (h1, h2, nobody) = (new_key(), new_key(), new_key());
    give(&node, &chain, &h1.address(), HOLDING);
    give(&node, &chain, &h2.address(), HOLDING);
    give(&node, &chain, &Address::treasury(DEVNET), 10_000 * AIT);
    wait_window();
    let pool = json!({"id": "h100", "reward_rate": AIT.to_string(),
        "budget": (4_000 * AIT).to_string(), "min_stake": (100 * AIT).to_string(),
        "min_lock_days": 30, "max_lock_days": 365, "epoch_s": 3600,
        "requirements": {"min_vram_mb": 81920}});
    let create = json!([{"action": "create_pool", "pool": pool}]);
    let mut bad = create.clone();
    bad[0]["pool"]["min_lock_days"] = json!(3);
    let body = |actions: &Value| json!({"proposal_type": "treasury", "title": "pool", "description": "", "actions": actions});
    let (status, code) = refused_with(&node, &h1, "propose", body(&bad));
    assert_eq!(
        (status, code.as_str()),
        (422, "bad_action"),
        "a lock under 7 days"
    );

    let id = propose(&node, &h1, "treasury", create);
    wait_state(&node, &id, "active");
    vote(&node, &h1, &id, "for");
    vote(&node, &h2, &id, "for");
    wait_state(&node, &id, "succeeded");
    applied(&node, &nobody, "queue", of(&id));
    thread::sleep(Duration::from_millis(1_100));
    applied(&node, &nobody, "execute", of(&id));
    let (status, created) = node.get("/v1/pools/h100");
    assert_eq!(status, 200, "{created}");
    assert_eq!(amount(&created["budget_left"]), 4_000 * AIT);
    assert_eq!(created["requirements"]["min_vram_mb"], 81_920);
    assert_eq!(
        amount(&treasury(&node)["balance"]),
        6_000 * AIT,
        "paid from the treasury"
    );
    let staking = domain::staking::staking_account(DEVNET);
    assert_eq!(
        node.account(&staking).0,
        4_000 * AIT,
        "into the staking account"
    );
    let (_, pools) = node.get("/v1/pools");
    assert_eq!(pools["pools"].as_array().unwrap().len(), 1, "{pools}");
}
