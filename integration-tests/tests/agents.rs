//! Agent wallets through the real binary (PRODUCT.md §4, API.md "Agents"): registration signed
//! by the agent, management by its owner only, a caller key signing for the agent, the
//! emergency stop, and four agents — one per role — voting by themselves on one proposal of
//! each type, the tally matching PRODUCT.md's preference table.

use std::thread;
use std::time::{Duration, Instant};

use domain::address::Address;
use domain::keys::SigningKey;
use integration_tests::gov::*;
use integration_tests::*;
use serde_json::{Value, json};

const ROLES: [&str; 4] = ["provider", "consumer", "builder", "coordinator"];
/// The six proposal types with a valid action each.
fn proposals(payee: &Address) -> Vec<(&'static str, Value)> {
    vec![
        (
            "parameter_change",
            json!([{"action": "set_parameter", "name": "quorum_bps", "value": 400}]),
        ),
        (
            "protocol_upgrade",
            json!([{"action": "set_protocol_version", "version": 2}]),
        ),
        (
            "treasury",
            json!([{"action": "pay", "to": payee, "amount": AIT.to_string()}]),
        ),
        (
            "emergency",
            json!([{"action": "pause", "module": "markets"}]),
        ),
        (
            "agent_trading",
            json!([{"action": "set_agent_limits", "agent": payee, "trading_enabled": false,
                    "max_position": "0", "max_order": "0", "daily_loss": "0"}]),
        ),
        (
            "dao_grants",
            json!([{"action": "grant", "to": payee, "amount": AIT.to_string(),
                    "vesting": {"cliff_s": 0, "duration_s": 60}}]),
        ),
    ]
}

/// PRODUCT.md §4: For when preference + threshold > 256 (an emergency never), per role, in the
/// order of [`proposals`].
const TABLE: [[&str; 6]; 4] = [
    ["for", "against", "for", "against", "for", "against"],
    ["for", "against", "for", "against", "for", "against"],
    ["against", "for", "against", "against", "against", "for"],
    ["for", "for", "against", "against", "against", "against"],
];

fn agent(node: &TestNode, address: &Address) -> Value {
    let (status, body) = node.get(&format!("/v1/agents/{address}"));
    assert_eq!(status, 200, "{body}");
    body
}

/// A transfer whose sender is `agent`, signed by `signer`.
fn transfer_as(
    node: &TestNode,
    agent: &Address,
    signer: &SigningKey,
    to: &Address,
) -> (u16, Value) {
    let nonce = node.account(agent).1;
    let mut payload = domain::tx::TxPayload::transfer(
        DEVNET,
        *agent,
        nonce,
        domain::money::Amount::ZERO,
        *to,
        domain::money::Amount(AIT),
    );
    payload.sender = *agent;
    node.submit(&domain::tx::sign_payload(signer, &payload))
}

#[test]
fn agents_vote_by_their_role_on_every_proposal_type() {
    let dir = tempdir();
    let (node, chain, _council) = governance_devnet(dir.path());
    let (owner, proposer, payee) = (new_key(), new_key(), new_key());
    let agents: Vec<SigningKey> = ROLES.iter().map(|_| new_key()).collect();
    give(&node, &chain, &proposer.address(), 45_000_000 * AIT);
    for (key, role) in agents.iter().zip(ROLES) {
        give(&node, &chain, &key.address(), 1_000 * AIT);
        applied(
            &node,
            key,
            "register_agent",
            json!({"role": role, "owner": owner.address()}),
        );
        let configure = json!({
            "agent": key.address(), "strategy": {"type": "role_preference"}, "auto_vote": true,
        });
        applied(&node, &owner, "configure_agent", configure);
    }
    let (status, listed) = node.get("/v1/agents?role=builder");
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["agents"].as_array().unwrap().len(), 1);
    assert_eq!(
        listed["agents"][0]["address"],
        agents[2].address().to_string()
    );
    assert_eq!(listed["agents"][0]["reputation"], 0);
    wait_window();

    let ids: Vec<String> = proposals(&payee.address())
        .into_iter()
        .map(|(kind, actions)| propose(&node, &proposer, kind, actions))
        .collect();
    for (column, id) in ids.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let votes = loop {
            let (_, votes) = node.get(&format!("/v1/proposals/{id}/votes"));
            if votes["votes"].as_array().unwrap().len() == ROLES.len() {
                break votes;
            }
            assert!(
                Instant::now() < deadline,
                "agents never voted on {id}: {votes}"
            );
            thread::sleep(Duration::from_millis(100));
        };
        for (row, key) in agents.iter().enumerate() {
            let vote = votes["votes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["voter"] == key.address().to_string())
                .unwrap_or_else(|| panic!("{} did not vote: {votes}", ROLES[row]));
            assert_eq!(
                vote["support"], TABLE[row][column],
                "{} on {id}",
                ROLES[row]
            );
            assert!(
                vote["tx_hash"].is_null(),
                "an autonomous vote has no transaction"
            );
            assert_eq!(
                amount(&vote["power"]),
                1_000 * AIT,
                "its power at the snapshot"
            );
        }
        let tally = &proposal(&node, id)["tally"];
        let expected_for = TABLE.iter().filter(|row| row[column] == "for").count() as u128;
        assert_eq!(
            amount(&tally["for"]),
            expected_for * 1_000 * AIT,
            "{id}: {tally}"
        );
    }
}

#[test]
fn only_the_owner_manages_an_agent_and_its_callers_sign_for_it_until_stopped() {
    let dir = tempdir();
    let (node, chain, _council) = governance_devnet(dir.path());
    let (owner, stranger, caller, bob) = (new_key(), new_key(), new_key(), new_key());
    let bot = new_key();
    give(&node, &chain, &bot.address(), 10 * AIT);
    let (status, code) = refused_with(
        &node,
        &bot,
        "register_agent",
        json!({"role": "pilot", "owner": owner.address()}),
    );
    assert_eq!((status, code.as_str()), (400, "malformed"));
    applied(
        &node,
        &bot,
        "register_agent",
        json!({"role": "provider", "owner": owner.address()}),
    );
    let (status, code) = refused_with(
        &node,
        &bot,
        "register_agent",
        json!({"role": "builder", "owner": bot.address()}),
    );
    assert_eq!(
        (status, code.as_str()),
        (409, "not_active"),
        "registered once"
    );
    let shown = agent(&node, &bot.address());
    assert_eq!(
        (shown["role"].as_str(), shown["active"].as_bool()),
        (Some("provider"), Some(true))
    );
    assert_eq!(shown["owner"], owner.address().to_string());

    let add = json!({"agent": bot.address(), "public_key": hex::encode(caller.public_key())});
    let (status, code) = refused_with(&node, &stranger, "add_caller", add.clone());
    assert_eq!((status, code.as_str()), (403, "not_owner"));
    let (status, code) = refused_with(&node, &bot, "add_caller", add.clone());
    assert_eq!(
        (status, code.as_str()),
        (403, "not_owner"),
        "not even the agent itself"
    );
    // A key that is not a caller cannot sign for the agent.
    let (status, body) = transfer_as(&node, &bot.address(), &caller, &bob.address());
    assert_eq!(
        (status, error_code(&body)),
        (400, "sender_mismatch"),
        "{body}"
    );
    applied(&node, &owner, "add_caller", add.clone());
    let (status, body) = transfer_as(&node, &bot.address(), &caller, &bob.address());
    assert_eq!(status, 200, "a caller signs for the agent: {body}");
    assert_eq!(node.account(&bob.address()).0, AIT);

    applied(&node, &owner, "agent_stop", json!({"agent": bot.address()}));
    assert_eq!(agent(&node, &bot.address())["active"], false);
    let (status, body) = transfer_as(&node, &bot.address(), &caller, &bob.address());
    assert_eq!(
        (status, error_code(&body)),
        (409, "not_active"),
        "stopped: {body}"
    );
    let (status, code) = refused_with(&node, &owner, "agent_stop", json!({"agent": bot.address()}));
    assert_eq!((status, code.as_str()), (409, "not_active"));
    applied(
        &node,
        &owner,
        "agent_reactivate",
        json!({"agent": bot.address()}),
    );
    let (status, body) = transfer_as(&node, &bot.address(), &caller, &bob.address());
    assert_eq!(status, 200, "reactivated: {body}");

    applied(&node, &owner, "remove_caller", add);
    let (status, body) = transfer_as(&node, &bot.address(), &caller, &bob.address());
    assert_eq!(
        (status, error_code(&body)),
        (400, "sender_mismatch"),
        "removed: {body}"
    );
    assert_eq!(node.account(&bob.address()).0, 2 * AIT);
    let (status, _) = node.get(&format!("/v1/agents/{}", stranger.address()));
    assert_eq!(status, 404);
}

#[test]
fn an_agent_that_mines_votes_with_the_reputation_its_verified_work_earned() {
    let dir = tempdir();
    let (node, chain, _council) = governance_devnet(dir.path());
    let (owner, bot) = (new_key(), new_key());
    give(&node, &chain, &bot.address(), 1_000 * AIT);
    let power = |node: &TestNode| node.get(&format!("/v1/accounts/{}/power", bot.address())).1;
    assert_eq!(power(&node)["reputation"], 0, "not an agent: no multiplier");
    applied(
        &node,
        &bot,
        "register_agent",
        json!({"role": "provider", "owner": owner.address()}),
    );
    assert_eq!(
        power(&node)["reputation"],
        0,
        "an agent with no verified work yet"
    );
    // The agent registers as a miner too (the signed miner protocol): it starts at 100.
    let offer = serde_json::to_vec(&json!({
        "gpu": {"name": "gpu", "backend": "vulkan", "device_type": "cpu"},
        "price_per_s": "1", "capacity": 1,
    }))
    .unwrap();
    let time_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let digest = domain::hash::Hash32::digest(&offer);
    let signed = format!("AITBC-REQ-V1\nPOST\n/v1/miners/register\n{time_ms}\n{digest}");
    let headers = vec![
        ("X-AITBC-Key", hex::encode(bot.public_key())),
        ("X-AITBC-Time", time_ms.to_string()),
        (
            "X-AITBC-Signature",
            hex::encode(bot.sign(signed.as_bytes())),
        ),
    ];
    let (status, body) = node.request("POST", "/v1/miners/register", &headers, Some(&offer));
    assert_eq!(status, 200, "{body}");
    let with_work = power(&node);
    assert_eq!(with_work["reputation"], 100, "{with_work}");
    assert_eq!(with_work["multiplier_bps"], 11_000, "× (1 + 100/1000)");
    let (_, shown) = node.get(&format!("/v1/agents/{}", bot.address()));
    assert_eq!(shown["reputation"], 100, "{shown}");
}
