//! Real miner processes: a node and two `aitbc miner` processes running jobs on this machine's
//! wgpu adapter (the software Vulkan driver in CI); one returns forged results (a test-only
//! flag) and is caught and not paid, the other is paid.

use std::process::Child;
use std::time::Duration;

use domain::keys::SigningKey;
use integration_tests::miner::spawn_miner_with;
use integration_tests::*;
use serde_json::{Value, json};

fn spawn_miner(
    node: &TestNode,
    key: &SigningKey,
    dir: &std::path::Path,
    name: &str,
    forge: bool,
) -> Child {
    let extra: &[&str] = if forge { &["--forge-results"] } else { &[] };
    spawn_miner_with(node, key, dir, name, extra)
}

fn wait_for(what: &str, done: impl FnMut() -> bool) {
    wait_until(what, Duration::from_secs(120), done)
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
    // Each miner's result was answered once the payments were made: wait for both to exit.
    for miner in &mut miners {
        let status = miner.wait().expect("the miner exits after its job");
        assert!(status.success(), "{status}");
    }
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
            "0.0000000000000005AIT",
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
    let nothing = cli.run(&[
        "job",
        "submit",
        "--from",
        "client",
        "--max-price",
        "0.0000000000000005AIT",
    ]);
    assert!(nothing.err().contains("--sha256"), "{nothing:#?}");

    // Any kind: its input blobs put first, its input as JSON from a file.
    let x = dir.path().join("x.bin");
    std::fs::write(&x, [1u8, 0, 0, 0, 2, 0, 0, 0]).unwrap();
    let put = cli
        .run(&["blob", "put", x.to_str().unwrap(), "--from", "client"])
        .json();
    let hash = put["hash"].as_str().unwrap().to_string();
    let back = dir.path().join("back.bin");
    cli.run(&["blob", "get", &hash, "--out", back.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&x).unwrap());
    let input = dir.path().join("input.json");
    std::fs::write(&input, wgsl_input(SQUARES, &hash, 2).to_string()).unwrap();
    let at_input = format!("@{}", input.display());
    let answer = cli
        .run(&[
            "job",
            "submit",
            "--from",
            "client",
            "--kind",
            "wgsl",
            "--input",
            &at_input,
            "--max-price",
            "0.0000000000000005AIT",
        ])
        .json();
    assert_eq!(answer["outcome"], "applied", "{answer}");
    let wgsl_id = answer["tx_hash"].as_str().unwrap().to_string();
    let listed = cli.run(&["job", "list", "--state", "queued"]).json();
    assert_eq!(listed["jobs"][0]["id"], wgsl_id.as_str(), "{listed}");
    assert_eq!(listed["jobs"][0]["job_kind"], "wgsl");
    assert_eq!(
        listed["jobs"].as_array().unwrap().len(),
        1,
        "the canceled job is not queued"
    );
    let broken = cli.run(&[
        "job",
        "submit",
        "--from",
        "client",
        "--kind",
        "wgsl",
        "--input",
        "{\"source\": 1}",
        "--max-price",
        "0.0000000000000005AIT",
    ]);
    assert!(broken.err().contains("malformed"), "{broken:#?}");
    assert_eq!(cli.run(&["miner", "status"]).json()["miners"], json!([]));
    let keyless = cli.run(&["miner"]);
    assert!(keyless.err().contains("--key"), "{keyless:#?}");
}

#[test]
fn a_miner_killed_mid_job_loses_its_lease_and_another_completes_the_job_once() {
    let dir = tempdir();
    let (config, mut chains) = write_config(dir.path(), &[(DEVNET, 0)], 200);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replacen("[[chains]]", "[jobs]\nlease_s = 2\n\n[[chains]]", 1);
    std::fs::write(&config, text).unwrap();
    let node = TestNode::start_with_config(dir.path(), &config);
    let _chain = chains.remove(0);
    let (stalled, rescuer, client) = (new_key(), new_key(), new_key());
    let mut doomed = spawn_miner_with(
        &node,
        &stalled,
        dir.path(),
        "stalled",
        &["--hold-ms", "600000"],
    );
    wait_for("the first miner to register", || {
        node.get("/v1/miners").1["miners"]
            .as_array()
            .is_some_and(|m| m.len() == 1)
    });
    node.faucet(&client.address(), AIT);
    let body = json!({
        "job_kind": "pow",
        "input": {"prefix": "61697462", "difficulty_bits": 8, "start_nonce": 0, "end_nonce": 65536},
        "max_price": "1000", "redundancy": 1, "deadline_s": 300,
    });
    let (status, answer) = node.submit(&signed(DEVNET, &client, 0, "submit_job", body));
    assert_eq!(status, 200, "{answer}");
    let id = answer["tx_hash"].as_str().unwrap().to_string();
    wait_for("the first miner to take the job", || {
        node.get(&format!("/v1/jobs/{id}")).1["state"] == "assigned"
    });
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    let mut rescue = spawn_miner(&node, &rescuer, dir.path(), "rescuer", false);
    let mut job = Value::Null;
    wait_for("another miner to complete the job", || {
        job = node.get(&format!("/v1/jobs/{id}")).1;
        job["state"] == "completed"
    });
    // The rescuer's result was answered once its payments were made: wait for it to exit.
    assert!(rescue.wait().unwrap().success());
    let assignments = job["assignments"].as_array().unwrap();
    assert_eq!(assignments.len(), 2, "{job}");
    let expired: Vec<&Value> = assignments
        .iter()
        .filter(|a| a["expired"] == true)
        .collect();
    assert_eq!(expired.len(), 1, "the killed miner's lease ran out: {job}");
    assert_eq!(expired[0]["miner"], stalled.address().to_string());
    assert_eq!(
        job["payments"].as_array().unwrap().len(),
        1,
        "completed once: {job}"
    );
    assert!(
        node.account(&rescuer.address()).0 > 0,
        "the rescuer is paid"
    );
    assert_eq!(node.account(&stalled.address()).0, 0);
    let (_, miners) = node.get("/v1/miners");
    let stalled_view = miners["miners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["address"] == stalled.address().to_string())
        .unwrap()
        .clone();
    assert_eq!(
        stalled_view["reputation"], 80,
        "a lease that ran out costs reputation"
    );
    let nonce = u64::from_le_bytes(
        hex::decode(job_result_hex(&node, &id))
            .unwrap()
            .try_into()
            .expect("a nonce was found"),
    );
    let digest = domain::job::pow_digest(b"aitb", nonce);
    assert!(
        domain::job::leading_zero_bits(&digest) >= 8,
        "the GPU's answer holds"
    );
}

fn job_result_hex(node: &TestNode, id: &str) -> String {
    use base64::Engine;
    let (_, result) = node.get(&format!("/v1/jobs/{id}/result"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(result["result_b64"].as_str().unwrap())
        .unwrap();
    hex::encode(bytes)
}

/// Headers of a request signed by `key` (the miner protocol's signature, also for blobs).
fn signed_headers(
    key: &SigningKey,
    method: &str,
    path: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    use sha2::Digest;
    let time_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let digest = hex::encode(sha2::Sha256::digest(body));
    let signed = format!("AITBC-REQ-V1\n{method}\n{path}\n{time_ms}\n{digest}");
    vec![
        ("X-AITBC-Key", hex::encode(key.public_key())),
        ("X-AITBC-Time", time_ms.to_string()),
        (
            "X-AITBC-Signature",
            hex::encode(key.sign(signed.as_bytes())),
        ),
    ]
}

#[test]
fn a_job_whose_messages_are_a_blob_is_run_by_a_miner_that_fetches_it() {
    let dir = tempdir();
    let (config, mut chains) = write_config(dir.path(), &[(DEVNET, 0)], 200);
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen("[[chains]]", "[jobs]\nblob_quota_mb = 1\n\n[[chains]]", 1);
    std::fs::write(&config, text).unwrap();
    let node = TestNode::start_with_config(dir.path(), &config);
    let _chain = chains.remove(0);
    let (client, miner) = (new_key(), new_key());
    let messages: Vec<Vec<u8>> = (0..100u32)
        .map(|i| vec![i as u8; 1_000 + i as usize])
        .collect();
    let blob: Vec<u8> = messages
        .iter()
        .flat_map(|m| [(m.len() as u32).to_le_bytes().to_vec(), m.clone()].concat())
        .collect();

    let upload = |key: &SigningKey, bytes: &[u8]| {
        let headers = signed_headers(key, "POST", "/v1/blobs", bytes);
        node.request("POST", "/v1/blobs", &headers, Some(bytes))
    };
    let (status, body) = upload(&client, &blob);
    assert_eq!(
        (status, error_code(&body)),
        (401, "unauthorized"),
        "an unfunded account: {body}"
    );
    node.faucet(&client.address(), AIT);
    let (status, body) = upload(&client, &blob);
    assert_eq!(status, 200, "{body}");
    let hash = body["hash"].as_str().unwrap().to_string();
    assert_eq!(hash, hex::encode(domain::hash::Hash32::digest(&blob).0));
    let (status, _) = node.request("POST", "/v1/blobs", &[], Some(&blob));
    assert_eq!(status, 401, "unsigned");
    let (status, body) = upload(&client, &vec![7u8; 1 << 20]);
    assert_eq!(
        (status, error_code(&body)),
        (422, "limit_exceeded"),
        "over the quota: {body}"
    );
    let (status, fetched) = node.get_bytes(&format!("/v1/blobs/{hash}"));
    assert_eq!((status, fetched == blob), (200, true), "the same bytes");

    let submit = |nonce: u64, input: Value| {
        let body = json!({"job_kind": "sha256", "input": input, "max_price": "1000",
            "redundancy": 1, "deadline_s": 300, "verification": "always"});
        node.submit(&signed(DEVNET, &client, nonce, "submit_job", body))
    };
    let missing = hex::encode(domain::hash::Hash32::digest(b"never uploaded").0);
    let (status, body) = submit(0, json!({"messages_blob": missing}));
    assert_eq!((status, error_code(&body)), (404, "not_found"), "{body}");
    let (status, answer) = submit(0, json!({"messages_blob": hash}));
    assert_eq!(status, 200, "{answer}");
    let id = answer["tx_hash"].as_str().unwrap().to_string();
    let mut running = spawn_miner(&node, &miner, dir.path(), "miner", false);
    let mut job = Value::Null;
    wait_for("the job to complete", || {
        job = node.get(&format!("/v1/jobs/{id}")).1;
        job["state"] == "completed"
    });
    assert_eq!(job["reexecuted"], true, "{job}");
    let expected: Vec<u8> = messages
        .iter()
        .flat_map(|m| domain::hash::Hash32::digest(m).0)
        .collect();
    assert_eq!(
        job_result_hex(&node, &id),
        hex::encode(expected),
        "the GPU's digests of the blob's messages"
    );
    assert!(running.wait().unwrap().success());
}

#[test]
fn a_matmul_job_is_run_by_two_miners_on_their_gpus_and_their_results_agree_within_the_tolerance() {
    let dir = tempdir();
    let (node, _chain) = fast_devnet(dir.path(), 0);
    let (client, first, second) = (new_key(), new_key(), new_key());
    node.faucet(&client.address(), AIT);
    let (m, k, n) = (48usize, 40usize, 32usize);
    let a: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let b: Vec<f32> = (0..k * n)
        .map(|i| ((i * 104_729) % 1000) as f32 / 250.0 - 2.0)
        .collect();
    let mut hashes = Vec::new();
    for matrix in [&a, &b] {
        let bytes = domain::matmul::bytes(matrix);
        let headers = signed_headers(&client, "POST", "/v1/blobs", &bytes);
        let (status, body) = node.request("POST", "/v1/blobs", &headers, Some(&bytes));
        assert_eq!(status, 200, "{body}");
        hashes.push(body["hash"].as_str().unwrap().to_string());
    }
    let body = json!({
        "job_kind": "matmul",
        "input": {"m": m, "k": k, "n": n, "a_blob": hashes[0], "b_blob": hashes[1]},
        "max_price": "1000", "redundancy": 2, "deadline_s": 300, "verification": "always",
    });
    let (status, answer) = node.submit(&signed(DEVNET, &client, 0, "submit_job", body));
    assert_eq!(status, 200, "{answer}");
    let id = answer["tx_hash"].as_str().unwrap().to_string();
    let mut miners = [
        spawn_miner(&node, &first, dir.path(), "first", false),
        spawn_miner(&node, &second, dir.path(), "second", false),
    ];
    let mut job = Value::Null;
    wait_for("the job to complete", || {
        job = node.get(&format!("/v1/jobs/{id}")).1;
        job["state"] == "completed"
    });
    assert_eq!(
        job["payments"].as_array().unwrap().len(),
        2,
        "both agree: {job}"
    );
    let result = hex::decode(job_result_hex(&node, &id)).unwrap();
    let expected = domain::matmul::bytes(&domain::matmul::product(m, k, n, &a, &b));
    assert!(
        domain::matmul::agree(&result, &expected),
        "the GPU's product is the CPU's, within the tolerance"
    );
    for miner in &mut miners {
        assert!(miner.wait().unwrap().success());
    }
}

/// Uploads `bytes` as a blob signed by `key`; its hash.
fn upload(node: &TestNode, key: &SigningKey, bytes: &[u8]) -> String {
    let headers = signed_headers(key, "POST", "/v1/blobs", bytes);
    let (status, body) = node.request("POST", "/v1/blobs", &headers, Some(bytes));
    assert_eq!(status, 200, "{body}");
    body["hash"].as_str().unwrap().to_string()
}

const SQUARES: &str = "@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> y: array<u32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < arrayLength(&x)) {
        y[id.x] = x[id.x] * x[id.x] + id.x;
    }
}";

fn wgsl_input(source: &str, blob: &str, values: usize) -> Value {
    json!({"source": source, "entry_point": "main", "workgroups": [values.div_ceil(64), 1, 1],
        "buffers": [{"binding": 0, "blob": blob, "output": false},
                    {"binding": 1, "size": 4 * values, "output": true}]})
}

#[test]
fn mlp_and_wgsl_jobs_are_run_by_two_miners_and_re_executed_by_the_platform() {
    let dir = tempdir();
    let (node, _chain) = fast_devnet(dir.path(), 0);
    let (client, first, second) = (new_key(), new_key(), new_key());
    node.faucet(&client.address(), AIT);

    let layers = [
        domain::mlp::LayerShape {
            inputs: 12,
            outputs: 24,
        },
        domain::mlp::LayerShape {
            inputs: 24,
            outputs: 5,
        },
    ];
    let batch = 9usize;
    let weights: Vec<f32> = (0..domain::mlp::weights_len(&layers) as usize)
        .map(|i| ((i * 7919) % 1000) as f32 / 2000.0 - 0.25)
        .collect();
    let inputs: Vec<f32> = (0..batch * 12)
        .map(|i| ((i * 104_729) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let weights_blob = upload(&node, &client, &domain::matmul::bytes(&weights));
    let inputs_blob = upload(&node, &client, &domain::matmul::bytes(&inputs));
    let mlp = json!({"job_kind": "mlp_inference",
        "input": {"layers": layers.iter().map(|l| json!({"inputs": l.inputs, "outputs": l.outputs}))
            .collect::<Vec<_>>(), "weights_blob": weights_blob, "inputs_blob": inputs_blob, "batch": batch},
        "max_price": "1000", "redundancy": 2, "deadline_s": 300, "verification": "always"});
    let (status, answer) = node.submit(&signed(DEVNET, &client, 0, "submit_job", mlp));
    assert_eq!(status, 200, "{answer}");
    let mlp_id = answer["tx_hash"].as_str().unwrap().to_string();

    let values: Vec<u32> = (0..100u32).map(|i| i * 3 + 1).collect();
    let x: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let x_blob = upload(&node, &client, &x);
    let wgsl = json!({"job_kind": "wgsl", "input": wgsl_input(SQUARES, &x_blob, values.len()),
        "max_price": "1000", "redundancy": 2, "deadline_s": 300, "verification": "always"});
    let (status, answer) = node.submit(&signed(DEVNET, &client, 1, "submit_job", wgsl));
    assert_eq!(status, 200, "{answer}");
    let wgsl_id = answer["tx_hash"].as_str().unwrap().to_string();

    let mut miners = [
        spawn_miner_with(&node, &first, dir.path(), "first", &["--jobs", "2"]),
        spawn_miner_with(&node, &second, dir.path(), "second", &["--jobs", "2"]),
    ];
    for id in [&mlp_id, &wgsl_id] {
        let mut job = Value::Null;
        wait_for("the job to complete", || {
            job = node.get(&format!("/v1/jobs/{id}")).1;
            job["state"] == "completed"
        });
        assert_eq!(job["reexecuted"], true, "{job}");
        assert_eq!(job["payments"].as_array().unwrap().len(), 2, "{job}");
    }
    let result = hex::decode(job_result_hex(&node, &mlp_id)).unwrap();
    let expected = domain::mlp::forward(&layers, &weights, &inputs, batch);
    assert_eq!(result.len(), 4 * batch * 5);
    assert!(
        domain::matmul::agree(&result, &domain::matmul::bytes(&expected)),
        "the GPU's network is the CPU's, within the tolerance"
    );
    let squares: Vec<u8> = values
        .iter()
        .enumerate()
        .flat_map(|(i, v)| (v * v + i as u32).to_le_bytes())
        .collect();
    assert_eq!(
        job_result_hex(&node, &wgsl_id),
        hex::encode(squares),
        "the client's shader ran"
    );
    for miner in &mut miners {
        assert!(miner.wait().unwrap().success());
    }
}

#[test]
fn a_shader_that_does_not_validate_or_breaks_a_limit_is_refused_and_nothing_is_escrowed() {
    let dir = tempdir();
    let (node, _chain) = fast_devnet(dir.path(), 0);
    let client = new_key();
    node.faucet(&client.address(), AIT);
    let x_blob = upload(&node, &client, &[1u8; 64]);
    let balance = node.account(&client.address()).0;
    let refusals = [
        (
            SQUARES.replace("x[id.x] * x[id.x]", "x[id.x] * z"),
            400,
            "malformed",
            "line 5",
        ),
        (
            SQUARES.replace("main", "start"),
            400,
            "malformed",
            "entry point",
        ),
        (
            SQUARES.replace("var<storage, read> x", "var<storage, read_write> x"),
            400,
            "malformed",
            "input",
        ),
        (
            SQUARES.replace("workgroup_size(64)", "workgroup_size(1024)"),
            422,
            "limit_exceeded",
            "limit",
        ),
    ];
    for (source, status, code, said) in refusals {
        let body = json!({"job_kind": "wgsl", "input": wgsl_input(&source, &x_blob, 16),
            "max_price": "1000", "redundancy": 1, "deadline_s": 300});
        let (got, answer) = node.submit(&signed(DEVNET, &client, 0, "submit_job", body));
        assert_eq!((got, error_code(&answer)), (status, code), "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(said), "{said:?} in {message:?}");
    }
    let missing = hex::encode(domain::hash::Hash32::digest(b"never uploaded").0);
    let body = json!({"job_kind": "wgsl", "input": wgsl_input(SQUARES, &missing, 16),
        "max_price": "1000", "redundancy": 1, "deadline_s": 300});
    let (status, answer) = node.submit(&signed(DEVNET, &client, 0, "submit_job", body));
    assert_eq!(
        (status, error_code(&answer)),
        (404, "not_found"),
        "{answer}"
    );
    assert_eq!(
        node.account(&client.address()),
        (balance, 0),
        "nothing escrowed, nonce unused"
    );
}

#[test]
fn a_product_too_long_to_travel_inline_is_uploaded_by_the_miner_and_fetched_by_the_client() {
    let dir = tempdir();
    let (node, _chain) = fast_devnet(dir.path(), 0);
    let (client, miner) = (new_key(), new_key());
    node.faucet(&client.address(), AIT);
    let (m, k, n) = (256usize, 16usize, 160usize);
    let a: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 - 8.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 / 4.0).collect();
    let a_blob = upload(&node, &client, &domain::matmul::bytes(&a));
    let b_blob = upload(&node, &client, &domain::matmul::bytes(&b));
    let body = json!({
        "job_kind": "matmul",
        "input": {"m": m, "k": k, "n": n, "a_blob": a_blob, "b_blob": b_blob},
        "max_price": "1000", "redundancy": 1, "deadline_s": 300, "verification": "always",
    });
    let (status, answer) = node.submit(&signed(DEVNET, &client, 0, "submit_job", body));
    assert_eq!(status, 200, "{answer}");
    let id = answer["tx_hash"].as_str().unwrap().to_string();
    let mut running = spawn_miner(&node, &miner, dir.path(), "miner", false);
    let mut job = Value::Null;
    wait_for("the job to complete", || {
        job = node.get(&format!("/v1/jobs/{id}")).1;
        job["state"] == "completed"
    });
    assert_eq!(job["reexecuted"], true, "{job}");
    let (_, result) = node.get(&format!("/v1/jobs/{id}/result"));
    assert!(result["result_blob"].is_string(), "{result}");
    let cli = Cli::new(node.url(), &dir.path().join("keystore"));
    let out = dir.path().join("c.bin");
    cli.run(&["job", "result", &id, "--out", out.to_str().unwrap()])
        .ok();
    let product = std::fs::read(&out).unwrap();
    assert!(product.len() > domain::job::RESULT_INLINE_MAX);
    let expected = domain::matmul::bytes(&domain::matmul::product(m, k, n, &a, &b));
    assert!(
        domain::matmul::agree(&product, &expected),
        "C = A·B, from the blob store"
    );
    let receipts = cli.run(&["receipts", "--job", &id]).json();
    let receipt = receipts["receipts"][0]["receipt_id"]
        .as_str()
        .unwrap()
        .to_string();
    let shown = cli.run(&["receipts", &receipt]).json();
    assert_eq!(shown["job_id"], id.as_str(), "{shown}");
    assert_eq!(shown["miner"], miner.address().to_string(), "{shown}");
    assert!(running.wait().unwrap().success());
}
