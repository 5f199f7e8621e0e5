//! `aitbc gov` end to end: the real binary as a client of a real node with short governance
//! durations, from a proposal to its execution, with the reads and a refusal on the way.

use std::thread;
use std::time::{Duration, Instant};

use integration_tests::serde_json::{self, Value};
use integration_tests::*;

const PASSPHRASE: &str = "correct horse battery";

fn wait_state(cli: &Cli, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let shown = cli.run(&["gov", "show", id]).json();
        if shown["proposal"]["state"] == state {
            return shown;
        }
        assert!(Instant::now() < deadline, "never {state}: {shown}");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_parameter_change_from_proposal_to_execution_through_the_command_line() {
    let dir = tempdir();
    let (config, mut chains) = write_config(dir.path(), &[(DEVNET, 0)], 200);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "\n[chains.genesis.governance]\nvoting_delay_s = 1\nvoting_period_s = 2\ntimelock_s = 0\n\
         twas_window_s = 1\nproposal_threshold = \"1000000000000000000\"\n\
         proposal_bond = \"1000000000000000000\"\n",
    );
    std::fs::write(&config, text).unwrap();
    let node = TestNode::start_with_config(dir.path(), &config);
    let chain = chains.remove(0);
    let cli = Cli::new(node.url(), &dir.path().join("keystore")).with_passphrase(PASSPHRASE);
    let out = cli.run(&["wallet", "new", "alice"]);
    let alice: domain::address::Address = out
        .ok()
        .lines()
        .find_map(|l| l.strip_prefix("address: "))
        .expect("address line")
        .trim()
        .parse()
        .unwrap();
    let (status, body) = node.transfer(&chain.faucet, 0, &alice, FAUCET_SUPPLY / 20, 0);
    assert_eq!(status, 200, "{body}");
    thread::sleep(Duration::from_millis(1_200));

    let action = r#"{"action":"set_parameter","name":"quorum_bps","value":300}"#;
    let answer = cli
        .run(&[
            "gov",
            "propose",
            "--from",
            "alice",
            "--type",
            "parameter_change",
            "--title",
            "lower the quorum",
            "--action",
            action,
        ])
        .json();
    assert_eq!(answer["outcome"], "applied", "{answer}");
    let id = answer["tx_hash"].as_str().unwrap().to_string();
    let listed = cli.run(&["gov", "list", "--state", "pending"]).json();
    assert_eq!(listed["proposals"][0]["id"], id.as_str(), "{listed}");
    assert_eq!(listed["proposals"][0]["title"], "lower the quorum");

    wait_state(&cli, &id, "active");
    let answer = cli
        .run(&["gov", "vote", "--from", "alice", &id, "for"])
        .json();
    assert_eq!(answer["outcome"], "applied", "{answer}");
    let again = cli.run(&["gov", "vote", "--from", "alice", &id, "against"]);
    assert!(again.err().contains("already_voted"), "{again:#?}");
    let power = cli
        .run(&["gov", "power", "alice", "--proposal", &id])
        .json();
    assert_eq!(amount(&power["power"]), FAUCET_SUPPLY / 20, "{power}");

    let shown = wait_state(&cli, &id, "succeeded");
    assert_eq!(shown["votes"][0]["support"], "for", "{shown}");
    for verb in ["queue", "execute"] {
        let answer = cli.run(&["gov", verb, "--from", "alice", &id]).json();
        assert_eq!(answer["outcome"], "applied", "{verb}: {answer}");
    }
    let params = cli.run(&["gov", "params"]).json();
    let quorum = params["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "quorum_bps")
        .cloned()
        .unwrap();
    assert_eq!(quorum["value"], 300, "{params}");
    let bad = cli.run(&[
        "gov", "propose", "--from", "alice", "--type", "treasury", "--title", "t",
    ]);
    assert!(bad.err().contains("--action"), "{bad:#?}");
    let _: Value = serde_json::from_str(cli.run(&["gov", "list"]).ok()).unwrap();
}

#[test]
fn an_agent_registered_configured_and_stopped_through_the_command_line() {
    let dir = tempdir();
    let node = TestNode::start(dir.path());
    let cli = Cli::new(node.url(), &dir.path().join("keystore")).with_passphrase(PASSPHRASE);
    for name in ["bot", "owner"] {
        cli.run(&["wallet", "new", name]).ok();
    }
    let answer = cli
        .run(&[
            "agent", "register", "--from", "bot", "--role", "builder", "--owner", "owner",
        ])
        .json();
    assert_eq!(answer["outcome"], "applied", "{answer}");
    let strategy = r#"{"type":"fixed","votes":{"treasury":"against"}}"#;
    let answer = cli
        .run(&[
            "agent",
            "configure",
            "--from",
            "owner",
            "bot",
            "--strategy",
            strategy,
        ])
        .json();
    assert_eq!(answer["outcome"], "applied", "{answer}");
    let key = "ab".repeat(32);
    let answer = cli
        .run(&["agent", "callers", "--from", "owner", "add", "bot", &key])
        .json();
    assert_eq!(answer["outcome"], "applied", "{answer}");
    let shown = cli.run(&["agent", "show", "bot"]).json();
    assert_eq!(shown["role"], "builder", "{shown}");
    assert_eq!(shown["strategy"]["votes"]["treasury"], "against");
    assert_eq!(
        (shown["auto_vote"].as_bool(), shown["callers"][0].as_str()),
        (Some(true), Some(key.as_str()))
    );
    let stranger = cli.run(&["agent", "stop", "--from", "bot", "bot"]);
    assert!(stranger.err().contains("not_owner"), "{stranger:#?}");
    cli.run(&["agent", "stop", "--from", "owner", "bot"]).json();
    assert_eq!(cli.run(&["agent", "show", "bot"]).json()["active"], false);
    cli.run(&["agent", "reactivate", "--from", "owner", "bot"])
        .json();
    let listed = cli.run(&["agent", "list", "--role", "builder"]).json();
    assert_eq!(listed["agents"][0]["active"], true, "{listed}");
    assert_eq!(
        cli.run(&["agent", "list", "--role", "provider"]).json()["agents"],
        serde_json::json!([])
    );
}
