//! Custodial wallets: create/import/balance/send, secrets never returned or stored in clear,
//! duplicate names, and persistence across a restart.

use integration_tests::serde_json::{Value, json};
use integration_tests::*;

fn custody_files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let custody = dir.join("custody");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&custody).expect("custody dir") {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            out.push((path, bytes));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn assert_only_public(body: &Value) {
    let object = body.as_object().expect("object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort();
    // The credential is the wallet's own, not its key: it unlocks nothing without the
    // passphrase, and the node keeps only its hash.
    assert_eq!(keys, ["address", "credential", "public_key"], "{body}");
    let text = body.to_string().to_lowercase();
    for word in ["secret", "private", "seed", "passphrase", "mnemonic"] {
        assert!(!text.contains(word), "{body}");
    }
}

#[test]
fn custodial_wallets_end_to_end() {
    let dir = tempdir();
    let mut node = TestNode::start(dir.path());
    let bob = new_key();

    let (s, created) = node.post(
        "/v1/wallet/create",
        &json!({"name": "alice", "passphrase": "alice passphrase"}),
    );
    assert_eq!(s, 200, "{created}");
    assert_only_public(&created);
    let alice: domain::address::Address = created["address"].as_str().unwrap().parse().unwrap();
    let pk = hex::decode(created["public_key"].as_str().unwrap()).unwrap();
    assert_eq!(
        domain::address::Address::from_public_key(&pk.try_into().unwrap()),
        alice
    );

    // Import a known secret and check it is not stored in clear.
    let known = new_key();
    let secret_hex = hex::encode(known.secret_bytes());
    let (s, imported) = node.post(
        "/v1/wallet/import",
        &json!({"name": "known", "passphrase": "known passphrase", "secret_key": secret_hex}),
    );
    assert_eq!(s, 200, "{imported}");
    assert_only_public(&imported);
    assert_eq!(imported["address"], known.address().to_string());
    assert_eq!(imported["public_key"], hex::encode(known.public_key()));
    assert_ne!(
        imported["credential"],
        secret_hex.as_str(),
        "the credential is not the key"
    );
    let files = custody_files(dir.path());
    assert!(files.len() >= 2, "one custody file per wallet: {files:?}");
    for (path, bytes) in &files {
        assert!(
            !contains(bytes, secret_hex.as_bytes())
                && !contains(bytes, secret_hex.to_uppercase().as_bytes())
                && !contains(bytes, &known.secret_bytes()),
            "{} holds the secret in clear",
            path.display()
        );
        assert!(!contains(bytes, b"known passphrase"), "{}", path.display());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode & 0o077,
            0,
            "{} is readable by others: {mode:o}",
            path.display()
        );
    }
    assert!(
        !node.logs().contains(&secret_hex),
        "secret in the node's log"
    );

    // Duplicate name (and duplicate key) → 409 conflict.
    let (s, b) = node.post(
        "/v1/wallet/create",
        &json!({"name": "alice", "passphrase": "another passphrase"}),
    );
    assert_eq!((s, error_code(&b)), (409, "conflict"), "{b}");
    let (s, b) = node.post(
        "/v1/wallet/import",
        &json!({"name": "known2", "passphrase": "known passphrase", "secret_key": secret_hex}),
    );
    assert_eq!((s, error_code(&b)), (409, "conflict"), "{b}");
    let (s, b) = node.post(
        "/v1/wallet/import",
        &json!({"name": "bad", "passphrase": "known passphrase", "secret_key": "xyz"}),
    );
    assert_eq!((s, error_code(&b)), (400, "malformed"), "{b}");

    for (name, passphrase) in [
        ("", "long enough"),
        ("../evil", "long enough"),
        ("short", "1234567"),
    ] {
        let (s, b) = node.post(
            "/v1/wallet/create",
            &json!({"name": name, "passphrase": passphrase}),
        );
        assert_eq!((s, error_code(&b)), (400, "malformed"), "{name:?}: {b}");
    }

    // Balance and send.
    node.faucet(&alice, 1_000);
    let (s, b) = node.get(&format!("/v1/wallet/balance?address={alice}"));
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["balance"].clone(), b["nonce"].clone()),
        (json!("1000"), json!(0))
    );
    let send = |node: &TestNode, amount: &str, passphrase: &str| {
        node.post(
            "/v1/wallet/send",
            &json!({"from": alice.to_string(), "to": bob.address().to_string(), "amount": amount, "passphrase": passphrase}),
        )
    };
    let (s, b) = send(&node, "100", "alice passphrase");
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "committed");
    let sent = b["tx_hash"].as_str().unwrap().to_string();
    assert_eq!(node.tx(&sent)["sender"], alice.to_string());
    assert_eq!(node.account(&alice), (900, 1));
    assert_eq!(node.account(&bob.address()), (100, 0));

    let (s, b) = send(&node, "100", "wrong passphrase");
    assert_eq!((s, error_code(&b)), (401, "unauthorized"), "{b}");
    assert_eq!(node.account(&alice), (900, 1));
    let (s, b) = send(&node, "100000", "alice passphrase");
    assert_eq!((s, error_code(&b)), (422, "insufficient_funds"), "{b}");
    assert_eq!(node.account(&alice), (900, 1));
    let (s, b) = node.post(
        "/v1/wallet/send",
        &json!({"from": bob.address().to_string(), "to": alice.to_string(), "amount": "1", "passphrase": "whatever passphrase"}),
    );
    let (_, wrong) = send(&node, "100", "wrong passphrase");
    assert_eq!(
        (s, &b),
        (401, &wrong),
        "an address that is not custodial is refused as a wrong passphrase is"
    );
    // A wallet may be named by its name; a name the node does not hold is refused alike.
    let by_name = |from: &str| {
        node.post(
            "/v1/wallet/send",
            &json!({"from": from, "to": bob.address().to_string(), "amount": "1", "passphrase": "alice passphrase"}),
        )
    };
    let (s, b) = by_name("alice");
    assert_eq!(s, 200, "{b}");
    assert_eq!(node.account(&alice), (899, 2));
    assert_eq!(by_name("nobody").1["error"], wrong["error"]);

    // Across a restart.
    node.stop();
    node.restart();
    assert_eq!(node.account(&alice), (899, 2));
    let (s, b) = send(&node, "50", "alice passphrase");
    assert_eq!(s, 200, "{b}");
    assert_eq!(node.account(&alice), (849, 3));
    assert_eq!(node.account(&bob.address()), (151, 0));
    let (s, b) = node.post(
        "/v1/wallet/create",
        &json!({"name": "alice", "passphrase": "another passphrase"}),
    );
    assert_eq!(
        (s, error_code(&b)),
        (409, "conflict"),
        "name still taken after restart: {b}"
    );
    // The imported wallet can send after the restart too (funded first).
    node.faucet(&known.address(), 10);
    let (s, b) = node.post(
        "/v1/wallet/send",
        &json!({"from": known.address().to_string(), "to": bob.address().to_string(), "amount": "10", "passphrase": "known passphrase"}),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(node.account(&known.address()), (0, 1));
}

#[test]
fn credentials_back_off_and_idempotency_keys_guard_custodial_sends() {
    let dir = tempdir();
    let node = TestNode::start(dir.path());
    let (s, created) = node.post(
        "/v1/wallet/create",
        &json!({"name": "carol", "passphrase": "carol passphrase"}),
    );
    assert_eq!(s, 200, "{created}");
    let credential = created["credential"]
        .as_str()
        .expect("a credential")
        .to_string();
    assert_eq!(credential.len(), 64);
    let carol = created["address"].as_str().unwrap().to_string();
    node.faucet(&carol.parse().unwrap(), 1_000);
    let to = new_key().address().to_string();
    let body = |passphrase: &str| {
        json!({"from": carol, "to": to, "amount": "10", "passphrase": passphrase}).to_string()
    };
    let send = |headers: &[(&str, String)], passphrase: &str| {
        node.request(
            "POST",
            "/v1/wallet/send",
            headers,
            Some(body(passphrase).as_bytes()),
        )
    };
    let bearer = |c: &str| ("Authorization", format!("Bearer {c}"));
    let (s, b) = send(&[bearer(&credential)], "carol passphrase");
    assert_eq!(s, 200, "with its credential: {b}");
    let (s, b) = send(&[bearer(&"0".repeat(64))], "carol passphrase");
    assert_eq!(
        (s, error_code(&b)),
        (401, "unauthorized"),
        "another credential: {b}"
    );

    // The same key twice: one payment, the same answer.
    let key = [("Idempotency-Key", "carol-1".to_string())];
    let (s, first) = send(&key, "carol passphrase");
    assert_eq!(s, 200, "{first}");
    let (_, again) = send(&key, "carol passphrase");
    assert_eq!(first, again);
    assert_eq!(
        node.account(&carol.parse().unwrap()),
        (980, 2),
        "two sends, not three"
    );
    let faucet = json!({"address": to, "amount": "5"}).to_string();
    let paid = |key: &str| {
        let headers = [("Idempotency-Key", key.to_string())];
        node.request("POST", "/v1/faucet", &headers, Some(faucet.as_bytes()))
    };
    assert_eq!(paid("f-1").1, paid("f-1").1);
    assert_eq!(
        node.account(&to.parse().unwrap()).0,
        20 + 5,
        "the faucet paid once"
    );

    // Failed unlocks back off: past three (the wrong credential above was one), the wallet must
    // wait 5 s (Retry-After), even with the right passphrase.
    for _ in 0..3 {
        assert_eq!(send(&[], "not carol's passphrase").0, 401);
    }
    let (s, b) = send(&[], "carol passphrase");
    assert_eq!((s, error_code(&b)), (429, "rate_limited"), "{b}");
    assert_eq!(
        node.account(&carol.parse().unwrap()),
        (980, 2),
        "nothing sent meanwhile"
    );
}

#[test]
fn custodial_wallets_from_the_command_line() {
    let dir = tempdir();
    let node = TestNode::start(dir.path());
    let cli = Cli::new(node.url(), &dir.path().join("keystore")).with_passphrase("dana passphrase");
    let created = cli.run(&["wallet", "custodial", "create", "dana"]).json();
    let dana = created["address"].as_str().expect("an address").to_string();
    let credential = dir.path().join("dana.credential");
    std::fs::write(&credential, created["credential"].as_str().unwrap()).unwrap();
    node.faucet(&dana.parse().unwrap(), 100);
    let to = new_key().address().to_string();
    let send = |extra: &[&str]| {
        let base = [
            "wallet",
            "custodial",
            "send",
            "--from",
            "dana",
            "--to",
            &to,
            "--amount",
            "0.000000000000000007AIT",
        ];
        cli.run(&[&base[..], extra].concat())
    };
    let answer = send(&[
        "--credential-file",
        credential.to_str().unwrap(),
        "--idempotency-key",
        "d-1",
    ])
    .json();
    assert_eq!(answer["status"], "committed", "{answer}");
    let again = send(&[
        "--credential-file",
        credential.to_str().unwrap(),
        "--idempotency-key",
        "d-1",
    ])
    .json();
    assert_eq!(again["tx_hash"], answer["tx_hash"], "the retry paid once");
    let balance = cli.run(&["wallet", "custodial", "balance", &dana]).json();
    assert_eq!(balance["balance"], "93", "{balance}");
    let wrong = dir.path().join("wrong.credential");
    std::fs::write(&wrong, "0".repeat(64)).unwrap();
    let refused = send(&["--credential-file", wrong.to_str().unwrap()]);
    assert!(refused.err().contains("unauthorized"), "{refused:#?}");
}
