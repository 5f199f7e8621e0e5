//! Text generation end to end (issue 9): a devnet node that accepts the installed model
//! (`scripts/fetch-model.sh`), two `aitbc miner --model` processes generating on this machine's
//! wgpu adapter, a prompt submitted with the CLI; the honest answer is checked by the node
//! (teacher-forced on its CPU reference), returned and paid, the forged one disproved.

use std::time::Duration;

use integration_tests::miner::spawn_miner_with;
use integration_tests::*;
use serde_json::{Value, json};

/// The model file the devnet names (`llm::default_model_path`).
fn model_file() -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI installs the model first (scripts/fetch-model.sh)"
    );
    eprintln!(
        "\n*** SKIPPED: no model at {} — run scripts/fetch-model.sh ***\n",
        path.display()
    );
    None
}

#[test]
fn a_prompt_is_answered_by_a_miner_on_its_gpu_checked_by_the_node_and_paid() {
    let Some(model) = model_file() else { return };
    let dir = tempdir();
    let node = TestNode::start(dir.path());
    let (_, listed) = node.get("/v1/models");
    let models = listed["models"].as_array().expect("a list");
    assert_eq!(models.len(), 1, "{listed}");
    assert_eq!(models[0]["name"], "smollm2-135m");
    assert_eq!(
        models[0]["sha256"], "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "the file's SHA-256 names the model"
    );
    let sha256 = models[0]["sha256"].as_str().unwrap().to_string();

    let (honest, forger) = (new_key(), new_key());
    let model_arg = [
        "--model",
        model.to_str().unwrap(),
        "--price-per-token",
        "100",
    ];
    let honest_args = [&model_arg[..], &["--jobs", "2"]].concat();
    let mut miners = [
        spawn_miner_with(&node, &honest, dir.path(), "honest", &honest_args),
        spawn_miner_with(
            &node,
            &forger,
            dir.path(),
            "forger",
            &[&model_arg[..], &["--forge-results"]].concat(),
        ),
    ];
    wait_until("both miners to register", Duration::from_secs(120), || {
        node.get("/v1/models").1["models"][0]["miners"] == 2
    });

    let cli = Cli::new(node.url(), &dir.path().join("keystore")).with_passphrase("llm passphrase");
    cli.run(&["wallet", "new", "client"]).ok();
    cli.run(&["faucet", "client", "--amount", "1AIT"]).json();
    let listed = cli.run(&["job", "models"]).json();
    assert_eq!(listed["models"][0]["sha256"], sha256.as_str());
    let submit = |extra: &[&str]| {
        let base = [
            "--base-units",
            "job",
            "submit",
            "--from",
            "client",
            "--max-price",
            "5000",
        ];
        cli.run(&[&base[..], extra].concat())
    };
    let prompt = "The capital of France is";
    let answer = submit(&[
        prompt,
        "--model",
        "smollm2-135m",
        "--max-tokens",
        "4",
        "--redundancy",
        "2",
    ])
    .json();
    assert_eq!(answer["outcome"], "applied", "{answer}");
    let id = answer["tx_hash"].as_str().unwrap().to_string();
    let mut job = Value::Null;
    wait_until("the job to complete", Duration::from_secs(300), || {
        job = node.get(&format!("/v1/jobs/{id}")).1;
        job["state"] == "completed"
    });
    assert_eq!(job["job_kind"], "llm_generate");
    assert_eq!(job["input"]["model"], sha256.as_str());
    assert_eq!(
        job["reexecuted"], true,
        "the node checked the results: {job}"
    );
    let paid: Vec<&str> = job["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["miner"].as_str().unwrap())
        .collect();
    assert_eq!(
        paid,
        vec![honest.address().to_string()],
        "only the honest miner: {job}"
    );

    let result = cli.run(&["job", "result", &id]).json();
    let text = result["text"].as_str().expect("the result's text");
    assert!(text.starts_with(" Paris"), "{result}");
    assert_eq!(result["token_ids"].as_array().unwrap().len(), 4, "{result}");

    // Priced per generated token: 4 × 100, less the 2.5 % fee.
    assert_eq!(job["payments"][0]["paid"], "390", "{job}");
    assert_eq!(job["payments"][0]["fee"], "10", "{job}");
    let [honest_miner, forger_miner] = &mut miners;
    let status = forger_miner.wait().expect("the forger exits after its job");
    assert!(status.success(), "{status}");
    assert_eq!(
        node.account(&forger.address()).0,
        0,
        "the forger is not paid"
    );

    // A chat question, sampled: the node replays the seeded sampler on its own logits.
    let answer = submit(&[
        "What is the capital of France?",
        "--chat",
        "--model",
        "smollm2-135m",
        "--max-tokens",
        "8",
        "--temperature",
        "0.7",
        "--seed",
        "42",
    ])
    .json();
    let chat_id = answer["tx_hash"].as_str().unwrap().to_string();
    wait_until("the chat job to complete", Duration::from_secs(300), || {
        job = node.get(&format!("/v1/jobs/{chat_id}")).1;
        job["state"] == "completed"
    });
    assert_eq!(job["input"]["messages"][0]["role"], "user", "{job}");
    assert_eq!(job["input"]["temperature"], 0.7, "{job}");
    let result = cli.run(&["job", "result", &chat_id]).json();
    let tokens = result["token_ids"].as_array().unwrap().len() as u128;
    assert!((1..=8).contains(&tokens), "{result}");
    assert!(!result["text"].as_str().unwrap().is_empty(), "{result}");
    let status = honest_miner
        .wait()
        .expect("the honest miner exits after two jobs");
    assert!(status.success(), "{status}");
    assert_eq!(
        node.account(&honest.address()).0,
        390 + (tokens * 100 - tokens * 100 * 250 / 10_000),
        "the honest miner is paid for both"
    );
    let (_, listed) = node.get("/v1/miners");
    let reputation = |key: &domain::keys::SigningKey| {
        let miners = listed["miners"].as_array().unwrap();
        let me = miners
            .iter()
            .find(|m| m["address"] == key.address().to_string());
        me.map(|m| m["reputation"].as_i64().unwrap()).unwrap()
    };
    assert!(reputation(&forger) < reputation(&honest), "{listed}");

    // Refused before anything is escrowed: a model the node does not have, a context too long.
    let unknown = "ab".repeat(32);
    let refused = submit(&[prompt, "--model", &unknown]);
    assert!(refused.err().contains("not_found"), "{refused:#?}");
    let long = "word ".repeat(1_500);
    let refused = submit(&[&long, "--model", &sha256]);
    assert!(refused.err().contains("limit_exceeded"), "{refused:#?}");
    let refused = submit(&[prompt, "--model", "gpt-9"]);
    assert!(refused.err().contains("no model \"gpt-9\""), "{refused:#?}");
    let input = json!({"model": sha256, "prompt": prompt, "max_tokens": 4, "temperature": 3});
    let input = input.to_string();
    let refused = submit(&["--kind", "llm_generate", "--input", &input]);
    assert!(refused.err().contains("temperature"), "{refused:#?}");
}
