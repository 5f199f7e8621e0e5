//! JSON-RPC, /health, /metrics, /openapi.json.

use integration_tests::serde_json::{Value, json};
use integration_tests::*;

fn rpc(node: &TestNode, method: &str, params: Value) -> Value {
    let (s, b) = node.post(
        "/rpc",
        &json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["jsonrpc"], "2.0");
    assert_eq!(b["id"], 7);
    b
}

#[test]
fn json_rpc_methods() {
    let dir = tempdir();
    let (node, _chain) = fast_devnet(dir.path(), 0);
    let (alice, bob) = (new_key(), new_key());
    node.faucet(&alice.address(), 1_000);

    let status = rpc(&node, "status", json!({}));
    assert_eq!(status["result"]["default_chain"], DEVNET, "{status}");
    assert!(status["result"]["chains"].is_array(), "{status}");

    let envelope = signed_transfer(DEVNET, &alice, 0, &bob.address(), 10, 0);
    let sent = rpc(
        &node,
        "broadcast_tx",
        json!({"envelope": envelope_json(&envelope)}),
    );
    assert_eq!(sent["result"]["status"], "committed", "{sent}");
    let hash = sent["result"]["tx_hash"].as_str().unwrap().to_string();
    assert_eq!(hash, envelope.hash().to_hex());
    // Same as REST resubmission.
    let (s, rest) = node.submit(&envelope);
    assert_eq!((s, &rest), (200, &sent["result"]));

    let balance = rpc(&node, "get_balance", json!({"address": bob.address()}));
    assert_eq!(balance["result"]["balance"], "10", "{balance}");
    let balance = rpc(
        &node,
        "get_balance",
        json!({"address": alice.address(), "chain_id": DEVNET}),
    );
    assert_eq!(balance["result"]["balance"], "990", "{balance}");
    assert_eq!(balance["result"]["nonce"], 1, "{balance}");

    let tx = rpc(&node, "get_tx", json!({"hash": hash}));
    assert_eq!(tx["result"]["tx_hash"], hash, "{tx}");
    let sealed = node.wait_for_block_with(&hash);
    let height = sealed["block_height"].as_u64().unwrap();
    let block = rpc(&node, "get_block", json!({"height": height}));
    assert_eq!(block["result"]["height"], height, "{block}");
    assert!(
        block["result"]["tx_hashes"]
            .as_array()
            .unwrap()
            .contains(&json!(hash))
    );
    let by_hash = rpc(&node, "get_block", json!({"hash": block["result"]["hash"]}));
    assert_eq!(by_hash["result"], block["result"]);

    // Errors.
    let stale = rpc(
        &node,
        "broadcast_tx",
        json!({"envelope": envelope_json(&signed_transfer(DEVNET, &alice, 9, &bob.address(), 1, 0))}),
    );
    assert_eq!(stale["error"]["data"]["code"], "bad_nonce", "{stale}");
    assert!(stale["error"]["code"].is_i64(), "{stale}");
    let missing = rpc(&node, "get_tx", json!({"hash": "ab".repeat(32)}));
    assert_eq!(missing["error"]["data"]["code"], "not_found", "{missing}");
    let unknown = rpc(&node, "no_such_method", json!({}));
    assert_eq!(unknown["error"]["code"], -32601, "{unknown}");
    let bad_params = rpc(&node, "get_balance", json!({}));
    assert_eq!(bad_params["error"]["code"], -32602, "{bad_params}");
    let (s, parse) = node.post_raw("/rpc", b"{oops");
    assert_eq!(s, 200, "{parse}");
    assert_eq!(parse["error"]["code"], -32700, "{parse}");
    assert_eq!(parse["id"], Value::Null);
    assert_eq!(node.account(&alice.address()), (990, 1));
}

#[test]
fn health_metrics_and_openapi() {
    let dir = tempdir();
    let node = TestNode::start(dir.path());
    let (s, health) = node.get("/health");
    assert_eq!(s, 200);
    assert_eq!(health["status"], "ok", "{health}");

    let alice = new_key();
    node.faucet(&alice.address(), 1);
    let (s, metrics) = node.get_text("/metrics");
    assert_eq!(s, 200);
    assert!(metrics.contains("aitbc_store_"), "{metrics}");
    assert!(metrics.contains("aitbc_commands_total"), "{metrics}");

    let (s, doc) = node.get("/openapi.json");
    assert_eq!(s, 200);
    assert!(doc.is_object(), "openapi.json is JSON");
    assert!(doc["openapi"].is_string(), "openapi version field");
    let paths = doc["paths"].as_object().expect("paths");
    let expected = [
        ("/v1/transactions", "post"),
        ("/v1/transactions/{hash}", "get"),
        ("/v1/accounts", "get"),
        ("/v1/accounts/{address}", "get"),
        ("/v1/modules", "get"),
        ("/v1/chains", "get"),
        ("/v1/chains/{id}", "get"),
        ("/v1/blocks", "get"),
        ("/v1/blocks/{id}", "get"),
        ("/v1/faucet", "post"),
        ("/v1/wallet/create", "post"),
        ("/v1/wallet/import", "post"),
        ("/v1/wallet/balance", "get"),
        ("/v1/wallet/send", "post"),
        ("/rpc", "post"),
        ("/", "get"),
        ("/health", "get"),
        ("/v1/governance/params", "get"),
        ("/v1/treasury", "get"),
        ("/v1/proposals", "get"),
        ("/v1/proposals/{id}", "get"),
        ("/v1/proposals/{id}/votes", "get"),
        ("/v1/proposals/{id}/power/{address}", "get"),
        ("/v1/agents", "get"),
        ("/v1/agents/{address}", "get"),
        ("/v1/miners/register", "post"),
        ("/v1/miners/heartbeat", "post"),
        ("/v1/miners/jobs", "get"),
        ("/v1/miners/jobs/{id}/result", "post"),
        ("/v1/miners", "get"),
        ("/v1/models", "get"),
        ("/v1/jobs", "get"),
        ("/v1/jobs/{id}", "get"),
        ("/v1/jobs/{id}/result", "get"),
        ("/v1/receipts", "get"),
        ("/v1/receipts/{id}", "get"),
        ("/v1/blobs", "post"),
        ("/v1/blobs/{hash}", "get"),
        ("/v1/pools", "get"),
        ("/v1/pools/{id}", "get"),
        ("/v1/positions", "get"),
        ("/v1/positions/{id}", "get"),
    ];
    for (path, method) in expected {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("openapi.json lacks {path}"));
        assert!(
            item.get(method).is_some(),
            "openapi.json lacks {method} {path}"
        );
    }
}
