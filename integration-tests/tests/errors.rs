//! Every documented error code through real HTTP; state never changes on a rejection.

use domain::tx::{SignedEnvelope, TxPayload, sign_payload, sign_text};
use integration_tests::serde_json::{Value, json};
use integration_tests::*;

struct Fixture {
    node: TestNode,
    alice: domain::keys::SigningKey,
    bob: domain::keys::SigningKey,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempdir();
    let node = TestNode::start(dir.path());
    let (alice, bob) = (new_key(), new_key());
    node.faucet(&alice.address(), 1_000);
    Fixture {
        node,
        alice,
        bob,
        _dir: dir,
    }
}

impl Fixture {
    fn state(&self) -> (Value, (u128, u64), (u128, u64)) {
        (
            self.node.chain()["supply"].clone(),
            self.node.account(&self.alice.address()),
            self.node.account(&self.bob.address()),
        )
    }

    /// Posts `body` to `path` and asserts the status, the code and that nothing changed.
    fn reject(&self, path: &str, body: &Value, status: u16, code: &str) -> Value {
        let before = self.state();
        let (s, b) = self.node.post(path, body);
        assert_eq!((s, error_code(&b)), (status, code), "{path} {body} → {b}");
        assert!(b["error"]["message"].is_string(), "{b}");
        assert_eq!(self.state(), before, "state changed after {code}");
        b
    }

    fn reject_env(&self, envelope: &SignedEnvelope, status: u16, code: &str) -> Value {
        self.reject("/v1/transactions", &envelope_json(envelope), status, code)
    }

    fn payload(&self) -> TxPayload {
        TxPayload::transfer(
            DEVNET,
            self.alice.address(),
            0,
            domain::money::Amount(0),
            self.bob.address(),
            domain::money::Amount(10),
        )
    }
}

#[test]
fn signature_chain_nonce_and_funds_errors() {
    let f = fixture();
    let good = sign_payload(&f.alice, &f.payload());

    let mut flipped = good.clone();
    let mut sig = hex::decode(&flipped.signature).unwrap();
    sig[10] ^= 0x01;
    flipped.signature = hex::encode(sig);
    f.reject_env(&flipped, 400, "bad_signature");

    let mut other = f.payload();
    other.chain_id = "ait-other".into();
    f.reject_env(&sign_payload(&f.alice, &other), 400, "wrong_chain");

    let mut skipped = f.payload();
    skipped.nonce = 3;
    let b = f.reject_env(&sign_payload(&f.alice, &skipped), 409, "bad_nonce");
    assert!(b["error"]["message"].as_str().unwrap().contains('0'), "{b}");

    let mut rich = f.payload();
    rich.body = json!({"to": f.bob.address(), "amount": "1000000"});
    f.reject_env(&sign_payload(&f.alice, &rich), 422, "insufficient_funds");

    let mut mismatch = f.payload();
    mismatch.sender = f.bob.address();
    f.reject_env(&sign_payload(&f.alice, &mismatch), 400, "sender_mismatch");

    let mut kind = f.payload();
    kind.kind = "print_money".into();
    f.reject_env(&sign_payload(&f.alice, &kind), 400, "unsupported_kind");

    // The good one still works afterwards (nonce 0 was never consumed).
    let (s, b) = f.node.submit(&good);
    assert_eq!(s, 200, "{b}");
}

#[test]
fn malformed_requests() {
    let f = fixture();
    let good = sign_payload(&f.alice, &f.payload());
    let before = f.state();

    let (s, b) = f.node.post_raw("/v1/transactions", b"{not json");
    assert_eq!((s, error_code(&b)), (400, "malformed"), "{b}");

    let mut bad_key = good.clone();
    bad_key.public_key = "zz".repeat(32);
    f.reject_env(&bad_key, 400, "malformed");

    f.reject_env(&sign_text(&f.alice, "not json".into()), 400, "malformed");

    let mut numeric = f.payload();
    numeric.body = json!({"to": f.bob.address(), "amount": 10});
    f.reject_env(&sign_payload(&f.alice, &numeric), 400, "malformed");

    let mut zero = f.payload();
    zero.body = json!({"to": f.bob.address(), "amount": "0"});
    f.reject_env(&sign_payload(&f.alice, &zero), 400, "malformed");

    let mut extra = envelope_json(&good);
    extra["extra"] = json!(1);
    f.reject("/v1/transactions", &extra, 400, "malformed");

    let mut missing = envelope_json(&good);
    missing.as_object_mut().unwrap().remove("signature");
    f.reject("/v1/transactions", &missing, 400, "malformed");

    f.reject(
        "/v1/faucet",
        &json!({"address": "nonsense", "amount": "1"}),
        400,
        "malformed",
    );
    f.reject(
        "/v1/faucet",
        &json!({"address": f.bob.address(), "amount": "0"}),
        400,
        "malformed",
    );
    let (s, b) = f.node.get("/v1/accounts/nonsense");
    assert_eq!((s, error_code(&b)), (400, "malformed"), "{b}");
    let (s, b) = f.node.get("/v1/blocks?limit=0");
    assert_eq!((s, error_code(&b)), (400, "malformed"), "{b}");
    assert_eq!(f.state(), before);
}

#[test]
fn not_found_and_oversized() {
    let f = fixture();
    let before = f.state();
    let (s, b) = f.node.get(&format!("/v1/transactions/{}", "ab".repeat(32)));
    assert_eq!((s, error_code(&b)), (404, "not_found"), "{b}");
    let (s, b) = f.node.get("/v1/no/such/route");
    assert_eq!((s, error_code(&b)), (404, "not_found"), "{b}");
    let (s, b) = f.node.get("/v1/blocks/999999");
    assert_eq!((s, error_code(&b)), (404, "not_found"), "{b}");
    let (s, b) = f.node.get(&format!("/v1/blocks/{}", "cd".repeat(32)));
    assert_eq!((s, error_code(&b)), (404, "not_found"), "{b}");
    let (s, b) = f.node.get("/v1/chains/ait-nowhere");
    assert_eq!((s, error_code(&b)), (404, "not_found"), "{b}");

    // A body over 1 MiB: 413 payload_too_large.
    let mut big = envelope_json(&sign_payload(&f.alice, &f.payload()));
    big["payload"] = json!("x".repeat((1 << 20) + 10));
    let bytes = integration_tests::serde_json::to_vec(&big).unwrap();
    let (s, b) = f.node.post_raw("/v1/transactions", &bytes);
    assert_eq!((s, error_code(&b)), (413, "payload_too_large"), "{b}");
    // Every JSON endpoint answers an oversized body with the documented error shape.
    for path in [
        "/v1/faucet",
        "/v1/wallet/send",
        "/v1/wallet/create",
        "/v1/proofs/verify",
    ] {
        let (s, b) = f.node.post_raw(path, &bytes);
        assert_eq!(
            (s, error_code(&b)),
            (413, "payload_too_large"),
            "{path}: {b}"
        );
    }
    assert_eq!(f.state(), before);
    // The node still serves afterwards.
    assert_eq!(f.node.get("/health").0, 200);
}

#[test]
fn custodial_wrong_passphrase_is_unauthorized() {
    let f = fixture();
    let (s, w) = f.node.post(
        "/v1/wallet/create",
        &json!({"name": "carol", "passphrase": "correct horse"}),
    );
    assert_eq!(s, 200, "{w}");
    let carol = w["address"].as_str().unwrap().to_string();
    let (s, b) = f.node.post(
        "/v1/transactions",
        &envelope_json(&signed_transfer(
            DEVNET,
            &f.alice,
            0,
            &carol.parse().unwrap(),
            100,
            0,
        )),
    );
    assert_eq!(s, 200, "{b}");
    let before = f.state();
    let carol_before = f.node.account(&carol.parse().unwrap());
    f.reject(
        "/v1/wallet/send",
        &json!({"from": carol, "to": f.bob.address(), "amount": "1", "passphrase": "wrong horse"}),
        401,
        "unauthorized",
    );
    assert_eq!(f.state(), before);
    assert_eq!(f.node.account(&carol.parse().unwrap()), carol_before);
}

/// API.md: errors are `{"error": {"code", "message"}}` and oversized bodies get 413 — on
/// `/rpc` too (its body is read as raw bytes, outside the JSON extractor's error handler).
#[test]
fn oversized_rpc_body_gets_413_with_the_error_shape() {
    let dir = tempdir();
    let node = TestNode::start(dir.path());
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "status", "params": {"pad": "x".repeat((1 << 20) + 10)}});
    let bytes = integration_tests::serde_json::to_vec(&big).unwrap();
    let (s, b) = node.post_raw("/rpc", &bytes);
    assert_eq!(s, 413, "{b}");
    assert_eq!(error_code(&b), "payload_too_large", "body: {b}");
    assert_eq!(node.get("/health").0, 200);
}
