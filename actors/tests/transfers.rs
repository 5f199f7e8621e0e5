//! Transfers through the real actors over the real file log, under random sequences of valid
//! and invalid transfers, crashes between a debit and its credits, and restarts (log reopened,
//! actors and process manager started afresh). After every sequence the whole log is audited:
//! conservation holds at EVERY position, nothing is left in flight, and every balance and
//! nonce equals a plain model's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::{Actor, Arbiter};
use actors::CommandError;
use actors::bootstrap::ensure_chain;
use actors::clock::SystemClock;
use actors::protocol::ProtocolManager;
use actors::registry::Registry;
use actors::router::Router;
use actors::wallet::{WalletRegistry, wallet_facts};
use domain::TxError;
use domain::address::Address;
use domain::genesis::{Allocation, Genesis};
use domain::keys::SigningKey;
use domain::money::Amount;
use domain::tx::{TxPayload, sign_payload};
use proptest::prelude::*;
use store::{EventStore, FileStore};

const CHAIN: &str = "ait-test";
const ACCOUNTS: usize = 4;
const START_BALANCE: u128 = 1_000;

#[derive(Clone, Debug)]
enum Op {
    Transfer {
        from: usize,
        to: usize,
        amount: u128,
        fee: u128,
        nonce_skew: i8,
    },
    /// The node dies after the debit is durable, before any credit is delivered.
    CrashAfterDebit {
        from: usize,
        to: usize,
        amount: u128,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..ACCOUNTS, 0..ACCOUNTS, 1u128..400, 0u128..5, prop_oneof![8 => Just(0i8), 1 => Just(1i8), 1 => Just(-1i8)])
            .prop_map(|(from, to, amount, fee, nonce_skew)| Op::Transfer { from, to, amount, fee, nonce_skew }),
        1 => (0..ACCOUNTS, 0..ACCOUNTS, 1u128..200).prop_map(|(from, to, amount)| Op::CrashAfterDebit { from, to, amount }),
        1 => Just(Op::Restart),
    ]
}

fn keys() -> Vec<SigningKey> {
    (0..ACCOUNTS)
        .map(|i| SigningKey::from_seed([i as u8 + 1; 32]))
        .collect()
}

fn validator() -> SigningKey {
    SigningKey::from_seed([99; 32])
}

fn genesis() -> Genesis {
    Genesis {
        chain_id: CHAIN.into(),
        genesis_time: 0,
        validators: vec![hex::encode(validator().public_key())],
        validator_threshold: 1,
        min_fee: Amount::ZERO,
        assets: vec![],
        allocations: keys()
            .iter()
            .map(|k| Allocation {
                address: k.address(),
                amount: Amount(START_BALANCE),
            })
            .collect(),
    }
}

struct Running {
    store: Arc<FileStore>,
    registry: WalletRegistry,
    arbiters: Vec<Arbiter>,
}

async fn boot(dir: &std::path::Path) -> Running {
    let store = FileStore::open(dir).expect("log opens");
    let dyn_store: Arc<dyn EventStore> = store.clone();
    let arbiters = vec![Arbiter::new(), Arbiter::new()];
    let registry = WalletRegistry::new(Registry::new(
        dyn_store.clone(),
        SystemClock::shared(),
        arbiters.iter().map(Arbiter::handle).collect(),
        wallet_facts([&genesis()]),
    ));
    let vesting = Registry::new(
        dyn_store.clone(),
        SystemClock::shared(),
        vec![arbiters[0].handle()],
        |_: &domain::vesting::VestingId| Ok(()),
    );
    let chain_registry: Registry<domain::chain::Chain> = Registry::new(
        dyn_store.clone(),
        SystemClock::shared(),
        vec![arbiters[0].handle()],
        |_: &String| Ok(()),
    );
    ensure_chain(&chain_registry, &registry, &genesis(), &[validator()])
        .await
        .expect("chain boots");
    let recovered = Arc::new(AtomicBool::new(false));
    let router = Router::new(registry.clone(), vesting);
    let manager = ProtocolManager::load(router, recovered.clone())
        .await
        .expect("checkpoint loads");
    ProtocolManager::start_in_arbiter(&arbiters[1].handle(), |_| manager);
    // Like the node's /health: serve only once transfers left open by a crash are finished.
    for _ in 0..400 {
        if recovered.load(Ordering::Acquire) {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        recovered.load(Ordering::Acquire),
        "the transfer manager finished recovery"
    );
    Running {
        store,
        registry,
        arbiters,
    }
}

async fn shutdown(running: Running) {
    for arbiter in &running.arbiters {
        arbiter.stop();
    }
    running.store.close();
    // Let the stopped arbiters' threads wind down before the log is reopened.
    actix_rt::time::sleep(Duration::from_millis(20)).await;
}

#[derive(Default, Clone)]
struct Model {
    balances: Vec<u128>,
    nonces: Vec<u64>,
    treasury: u128,
}

impl Model {
    fn new() -> Model {
        Model {
            balances: vec![START_BALANCE; ACCOUNTS],
            nonces: vec![0; ACCOUNTS],
            treasury: 0,
        }
    }
}

async fn run_case(ops: Vec<Op>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = keys();
    let mut model = Model::new();
    let mut running = boot(dir.path()).await;
    for op in ops {
        match op {
            Op::Transfer {
                from,
                to,
                amount,
                fee,
                nonce_skew,
            } => {
                let nonce = (model.nonces[from] as i64 + nonce_skew as i64).max(0) as u64;
                let payload = TxPayload::transfer(
                    CHAIN,
                    keys[from].address(),
                    nonce,
                    Amount(fee),
                    keys[to].address(),
                    Amount(amount),
                );
                let tx = sign_payload(&keys[from], &payload)
                    .verify()
                    .expect("well formed");
                let result = running.registry.submit(tx).await;
                let affordable = model.balances[from] >= amount + fee;
                match result {
                    Ok(committed) => {
                        assert_eq!(nonce, model.nonces[from], "only the expected nonce commits");
                        assert!(affordable, "an unaffordable transfer committed");
                        running
                            .registry
                            .deliver_credits(&committed)
                            .await
                            .expect("credits deliver");
                        model.balances[from] -= amount + fee;
                        model.balances[to] += amount;
                        model.treasury += fee;
                        model.nonces[from] += 1;
                    }
                    Err(CommandError::Rejected(TxError::BadNonce { expected, .. })) => {
                        assert_ne!(nonce, model.nonces[from]);
                        assert_eq!(expected, model.nonces[from]);
                    }
                    Err(CommandError::Rejected(TxError::InsufficientFunds { .. })) => {
                        assert_eq!(nonce, model.nonces[from]);
                        assert!(!affordable);
                    }
                    Err(other) => panic!("unexpected {other:?}"),
                }
            }
            Op::CrashAfterDebit { from, to, amount } => {
                if model.balances[from] < amount {
                    continue;
                }
                let nonce = model.nonces[from];
                let payload = TxPayload::transfer(
                    CHAIN,
                    keys[from].address(),
                    nonce,
                    Amount::ZERO,
                    keys[to].address(),
                    Amount(amount),
                );
                let tx = sign_payload(&keys[from], &payload)
                    .verify()
                    .expect("well formed");
                running.registry.submit(tx).await.expect("debit commits");
                shutdown(running).await;
                running = boot(dir.path()).await;
                model.balances[from] -= amount;
                model.balances[to] += amount;
                model.nonces[from] += 1;
            }
            Op::Restart => {
                shutdown(running).await;
                running = boot(dir.path()).await;
            }
        }
    }
    // Credits delivered by the manager are durable once the wallet answers after them.
    for (i, key) in keys.iter().enumerate() {
        let state = running
            .registry
            .state(CHAIN, key.address())
            .await
            .expect("state");
        assert_eq!(
            (state.balance.0, state.nonce),
            (model.balances[i], model.nonces[i]),
            "account {i}"
        );
    }
    let treasury = running
        .registry
        .state(CHAIN, Address::treasury(CHAIN))
        .await
        .expect("treasury");
    assert_eq!(treasury.balance.0, model.treasury);
    let report = projections::audit::audit(running.store.as_ref())
        .await
        .expect("conservation holds at every position");
    let supply = report.supply[CHAIN];
    assert_eq!(supply.in_flight, Amount::ZERO, "nothing is left in flight");
    assert_eq!(supply.minted.0, START_BALANCE * ACCOUNTS as u128);
    shutdown(running).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn transfers_conserve_tokens_through_failures_crashes_and_restarts(ops in proptest::collection::vec(op(), 1..40)) {
        actix::System::new().block_on(run_case(ops));
    }
}

#[test]
fn a_resubmitted_transfer_commits_once() {
    actix::System::new().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let running = boot(dir.path()).await;
        let keys = keys();
        let payload = TxPayload::transfer(
            CHAIN,
            keys[0].address(),
            0,
            Amount::ZERO,
            keys[1].address(),
            Amount(10),
        );
        let tx = sign_payload(&keys[0], &payload)
            .verify()
            .expect("well formed");
        let (first, second) = futures::join!(
            running.registry.submit(tx.clone()),
            running.registry.submit(tx.clone())
        );
        let (first, second) = (first.expect("commits"), second.expect("same answer"));
        assert_eq!(
            (first.tx_hash(), first.position),
            (second.tx_hash(), second.position)
        );
        assert!(
            first.duplicate != second.duplicate,
            "exactly one of the two is the original"
        );
        let third = running
            .registry
            .submit(tx)
            .await
            .expect("same answer later");
        assert_eq!(third.position, first.position);
        running
            .registry
            .deliver_credits(&first)
            .await
            .expect("credits");
        running
            .registry
            .deliver_credits(&second)
            .await
            .expect("credits again are idempotent");
        let state = running
            .registry
            .state(CHAIN, keys[1].address())
            .await
            .expect("state");
        assert_eq!(state.balance.0, START_BALANCE + 10, "credited once");
        let sender = running
            .registry
            .state(CHAIN, keys[0].address())
            .await
            .expect("state");
        assert_eq!((sender.balance.0, sender.nonce), (START_BALANCE - 10, 1));
        shutdown(running).await;
    });
}

#[test]
fn a_manager_checkpoint_ahead_of_the_log_is_discarded_and_open_transfers_still_finish() {
    actix::System::new().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let running = boot(dir.path()).await;
        let keys = keys();
        let payload = TxPayload::transfer(
            CHAIN,
            keys[0].address(),
            0,
            Amount::ZERO,
            keys[1].address(),
            Amount(10),
        );
        let tx = sign_payload(&keys[0], &payload)
            .verify()
            .expect("well formed");
        running.registry.submit(tx).await.expect("debit commits");
        // The node dies before the credit; its checkpoint claims a log far longer than this one.
        let ahead = store::Snapshot {
            revision: 1_000_000,
            data: Vec::new(),
        };
        running
            .store
            .save_snapshot(actors::protocol::CHECKPOINT_KEY, ahead)
            .await
            .unwrap();
        shutdown(running).await;
        let running = boot(dir.path()).await;
        let state = running
            .registry
            .state(CHAIN, keys[1].address())
            .await
            .expect("state");
        assert_eq!(
            state.balance.0,
            START_BALANCE + 10,
            "the open credit was delivered"
        );
        shutdown(running).await;
    });
}
