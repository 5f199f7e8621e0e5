//! m-of-n validators: a block is final when `validator_threshold` distinct validators of the
//! chain signed it. A node holding enough validator keys seals blocks signed by all of them; a
//! node holding too few cannot create the chain.

use std::path::{Path, PathBuf};

use domain::block::BlockError;
use integration_tests::*;

fn write_multi_validator_config(dir: &Path, held: usize) -> (PathBuf, domain::keys::SigningKey) {
    let keys_dir = dir.join("keys");
    std::fs::create_dir_all(&keys_dir).unwrap();
    let validators: Vec<_> = (0..3).map(|_| new_key()).collect();
    let faucet = new_key();
    let mut files = Vec::new();
    for (i, key) in validators.iter().take(held).enumerate() {
        let file = format!("keys/validator-{i}.key");
        std::fs::write(dir.join(&file), hex::encode(key.secret_bytes())).unwrap();
        files.push(format!("\"{file}\""));
    }
    std::fs::write(
        dir.join("keys/faucet.key"),
        hex::encode(faucet.secret_bytes()),
    )
    .unwrap();
    let publics: Vec<String> = validators
        .iter()
        .map(|k| format!("\"{}\"", hex::encode(k.public_key())))
        .collect();
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndefault_chain = \"ait-devnet\"\n\n[[chains]]\nblock_time_ms = 200\n\
         validator_key_files = [{}]\n\n[chains.faucet]\nkey_file = \"keys/faucet.key\"\nmax_amount = \"{}\"\n\n\
         [chains.genesis]\nchain_id = \"ait-devnet\"\ngenesis_time = 1\nvalidators = [{}]\nvalidator_threshold = 2\n\n\
         [[chains.genesis.allocations]]\naddress = \"{}\"\namount = \"{FAUCET_SUPPLY}\"\n",
        files.join(", "),
        1_000 * AIT,
        publics.join(", "),
        faucet.address(),
    );
    let path = dir.join("multi.toml");
    std::fs::write(&path, text).unwrap();
    (path, faucet)
}

#[test]
fn blocks_carry_m_of_n_signatures_and_are_final_only_with_m() {
    let dir = tempdir();
    let (config, _) = write_multi_validator_config(dir.path(), 2);
    let node = TestNode::start_with_config(dir.path(), &config);
    let hash = node.faucet(&new_key().address(), AIT);
    let tx = node.wait_for_block_with(&hash);
    let height = tx["block_height"].as_u64().expect("sealed");
    let (validators, threshold) = validators_of(&node.chain_info("ait-devnet"));
    assert_eq!((validators.len(), threshold), (3, 2));
    for block in node.all_blocks("ait-devnet") {
        assert_eq!(
            block.signatures.len(),
            2,
            "block {} is signed by both held keys",
            block.height
        );
        block.verify(&validators, 2).expect("final with 2 of 3");
        assert_eq!(
            block.verify(&validators, 3),
            Err(BlockError::NotFinal { got: 2, needed: 3 })
        );
        let mut one = block.clone();
        one.signatures.truncate(1);
        assert_eq!(
            one.verify(&validators, 2),
            Err(BlockError::NotFinal { got: 1, needed: 2 })
        );
    }
    let (status, verdict) = node.get(&format!("/v1/blocks/{height}/verify"));
    assert_eq!((status, verdict["valid"].as_bool()), (200, Some(true)));
}

#[test]
fn a_node_holding_fewer_keys_than_the_threshold_cannot_create_the_chain() {
    let dir = tempdir();
    let (config, _) = write_multi_validator_config(dir.path(), 1);
    let output = std::process::Command::new(binary())
        .args(["node", "--data-dir"])
        .arg(dir.path())
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("needs 2 validator keys, this node holds 1"),
        "{stderr}"
    );
}
