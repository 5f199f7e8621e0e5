//! Real miner processes: a node and two `aitbc miner` processes running jobs on this machine's
//! wgpu adapter (the software Vulkan driver in CI); one returns forged results (a test-only
//! flag) and is caught and not paid, the other is paid.

use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use domain::keys::SigningKey;
use integration_tests::*;
use serde_json::{Value, json};

fn spawn_miner(
    node: &TestNode,
    key: &SigningKey,
    dir: &std::path::Path,
    name: &str,
    forge: bool,
) -> Child {
    let file = dir.join(format!("{name}.key"));
    std::fs::write(&file, hex::encode(key.secret_bytes())).unwrap();
    let mut command = Command::new(binary());
    command
        .args(["--node", node.url(), "miner", "--key"])
        .arg(&file)
        .args(["--jobs", "1", "--price-per-s", "100"])
        .env("XDG_RUNTIME_DIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if forge {
        command.arg("--forge-results");
    }
    command.spawn().expect("the miner starts")
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_miner_processes_run_a_redundant_job_and_the_forger_is_not_paid() {
    let dir = tempdir();
    let (node, _chain) = fast_devnet(dir.path(), 0);
    let (honest, forger, client) = (new_key(), new_key(), new_key());
    let mut miners = [
        spawn_miner(&node, &honest, dir.path(), "honest", false),
        spawn_miner(&node, &forger, dir.path(), "forger", true),
    ];
    wait_for("both miners to register", || {
        let (_, listed) = node.get("/v1/miners");
        listed["miners"].as_array().is_some_and(|m| m.len() == 2)
    });
    node.faucet(&client.address(), AIT);
    let body = json!({
        "job_kind": "sha256",
        "input": {"messages": ["616263", "00ff"]},
        "max_price": "1000",
        "redundancy": 2,
        "deadline_s": 300,
    });
    let (status, answer) = node.submit(&signed(DEVNET, &client, 0, "submit_job", body));
    assert_eq!(status, 200, "{answer}");
    let id = answer["tx_hash"].as_str().unwrap().to_string();
    let mut job = Value::Null;
    wait_for("the job to complete", || {
        job = node.get(&format!("/v1/jobs/{id}")).1;
        job["state"] == "completed"
    });
    assert_eq!(
        job["reexecuted"], true,
        "results that disagree are re-executed: {job}"
    );
    assert_eq!(
        job["result_hash"],
        hex::encode(
            domain::hash::Hash32::digest(
                &[
                    domain::hash::Hash32::digest(b"abc").0,
                    domain::hash::Hash32::digest(&[0x00, 0xff]).0,
                ]
                .concat()
            )
            .0
        ),
        "the digests computed on the GPU"
    );
    let price = 100; // the miner's price per second, for its one (started) second
    assert_eq!(
        node.account(&honest.address()).0,
        price - price * 250 / 10_000
    );
    assert_eq!(
        node.account(&forger.address()).0,
        0,
        "the forger is not paid"
    );
    for miner in &mut miners {
        let status = miner.wait().expect("the miner exits after its job");
        assert!(status.success(), "{status}");
    }
}

#[test]
fn jobs_from_the_command_line() {
    let dir = tempdir();
    let node = TestNode::start(dir.path());
    let cli = Cli::new(node.url(), &dir.path().join("keystore")).with_passphrase("job passphrase");
    cli.run(&["wallet", "new", "client"]).ok();
    cli.run(&["faucet", "client", "--amount", "1AIT"]).json();
    let answer = cli
        .run(&[
            "job",
            "submit",
            "--from",
            "client",
            "--sha256",
            "616263",
            "--max-price",
            "500",
        ])
        .json();
    assert_eq!(answer["outcome"], "applied", "{answer}");
    let id = answer["tx_hash"].as_str().unwrap().to_string();
    let status = cli.run(&["job", "status", &id]).json();
    assert_eq!(
        (status["state"].as_str(), status["job_kind"].as_str()),
        (Some("queued"), Some("sha256"))
    );
    let result = cli.run(&["job", "result", &id]);
    assert!(
        result.err().contains("not_active"),
        "no result yet: {result:#?}"
    );
    let answer = cli.run(&["job", "cancel", "--from", "client", &id]).json();
    assert_eq!(answer["outcome"], "applied", "{answer}");
    assert_eq!(cli.run(&["job", "status", &id]).json()["state"], "canceled");
    let nothing = cli.run(&["job", "submit", "--from", "client", "--max-price", "500"]);
    assert!(nothing.err().contains("--sha256"), "{nothing:#?}");
    assert_eq!(cli.run(&["miner", "status"]).json()["miners"], json!([]));
    let keyless = cli.run(&["miner"]);
    assert!(keyless.err().contains("--key"), "{keyless:#?}");
}
