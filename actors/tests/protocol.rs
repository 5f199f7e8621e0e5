//! The cross-aggregate protocol through the real actors over the real file log, under random
//! sequences of native and USDX transfers (some with a wrong nonce), mints (by the minter and by others), vesting
//! schedules and claims (some refused before anything is written, some losing a race and
//! committed as refused), crashes after ANY step of a transaction, and restarts. Time is a
//! manual clock the test moves. After every sequence the whole log is audited: every asset is
//! conserved at EVERY position, nothing is left in flight, and every balance and nonce equals
//! a plain model's.

mod support;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::{Actor, Arbiter};
use actors::CommandError;
use actors::bootstrap::ensure_chain;
use actors::clock::{Clock, ManualClock};
use actors::protocol::ProtocolManager;
use actors::registry::Registry;
use actors::router::{Recorded, Router, fact_of};
use actors::wallet::{WalletRegistry, wallet_facts};
use domain::TxError;
use domain::address::Address;
use domain::asset::AssetSpec;
use domain::codec::DomainEvent;
use domain::genesis::{Allocation, Genesis};
use domain::hash::Hash32;
use domain::keys::SigningKey;
use domain::money::Amount;
use domain::protocol::follow_ups;
use domain::tx::{TxPayload, VerifiedTx, sign_payload};
use domain::vesting::{Schedule, schedule_of, vesting_account};
use domain::wallet::WalletEvent;
use proptest::prelude::*;
use store::{EventStore, FileStore};

const CHAIN: &str = "ait-test";
const ACCOUNTS: usize = 3;
const START: u128 = 1_000;
const T0: u64 = 1_800_000_000_000;

fn keys() -> Vec<SigningKey> {
    (0..ACCOUNTS)
        .map(|i| SigningKey::from_seed([i as u8 + 1; 32]))
        .collect()
}

/// Account 0 mints USDX.
fn genesis() -> Genesis {
    let validator = hex::encode(SigningKey::from_seed([99; 32]).public_key());
    Genesis {
        allocations: keys()
            .iter()
            .map(|k| Allocation {
                address: k.address(),
                amount: Amount(START),
            })
            .collect(),
        assets: vec![AssetSpec {
            symbol: "USDX".into(),
            decimals: 6,
            minter: Some(keys()[0].address()),
        }],
        ..Genesis::single_validator(CHAIN, validator)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Transfer {
        from: usize,
        to: usize,
        amount: u128,
        fee: u128,
        usdx: bool,
        /// Added to the expected nonce: anything but 0 is refused with `bad_nonce`.
        nonce_skew: i8,
    },
    Mint {
        by: usize,
        to: usize,
        amount: u128,
    },
    CreateVesting {
        from: usize,
        to: usize,
        amount: u128,
        cliff_s: u64,
        duration_s: u64,
    },
    /// A claim on the n-th schedule created so far (by anyone: strangers are refused).
    Claim {
        by: usize,
        schedule: usize,
    },
    /// Two claims on one schedule, both checked before either commits: the second loses.
    RacingClaims {
        schedule: usize,
    },
    Advance {
        ms: u64,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let account = 0..ACCOUNTS;
    prop_oneof![
        4 => (account.clone(), account.clone(), 1u128..300, 0u128..3, any::<bool>(), prop_oneof![8 => Just(0i8), 1 => Just(1i8), 1 => Just(-1i8)])
            .prop_map(|(from, to, amount, fee, usdx, nonce_skew)| Op::Transfer { from, to, amount, fee, usdx, nonce_skew }),
        2 => (account.clone(), account.clone(), 1u128..500).prop_map(|(by, to, amount)| Op::Mint { by, to, amount }),
        2 => (account.clone(), account.clone(), 1u128..300, 0u64..3, 0u64..6)
            .prop_map(|(from, to, amount, cliff_s, extra)| Op::CreateVesting { from, to, amount, cliff_s, duration_s: cliff_s + extra }),
        3 => (account.clone(), 0usize..4).prop_map(|(by, schedule)| Op::Claim { by, schedule }),
        1 => (0usize..4).prop_map(|schedule| Op::RacingClaims { schedule }),
        2 => (0u64..3000).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Restart),
    ]
}

/// How much of a transaction's protocol runs before the node dies: `None` all of it.
fn crash() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![6 => Just(None), 1 => (0usize..4).prop_map(Some)]
}

struct Running {
    store: Arc<FileStore>,
    router: Router,
    arbiters: Vec<Arbiter>,
}

async fn boot(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Running {
    let store = FileStore::open(dir).expect("log opens");
    let dyn_store: Arc<dyn EventStore> = store.clone();
    let arbiters = vec![Arbiter::new(), Arbiter::new()];
    let handles: Vec<_> = arbiters.iter().map(Arbiter::handle).collect();
    let wallets = WalletRegistry::new(Registry::new(
        dyn_store.clone(),
        clock.clone(),
        handles.clone(),
        wallet_facts([&genesis()]),
    ));
    let chains: Registry<domain::chain::Chain> = Registry::new(
        dyn_store.clone(),
        clock.clone(),
        handles.clone(),
        |_: &String| Ok(()),
    );
    let pauses = actors::dao::PauseBoard::default();
    let dao = Registry::new(
        dyn_store.clone(),
        clock.clone(),
        handles.clone(),
        actors::dao::dao_facts([&genesis()]),
    )
    .publishing(actors::dao::publish_to(pauses.clone()));
    let validator = SigningKey::from_seed([99; 32]);
    ensure_chain(&chains, &wallets, &genesis(), &[validator])
        .await
        .expect("chain boots");
    let registries = support::registries(&dyn_store, clock.clone(), &handles, wallets, dao);
    let router = Router::new(registries, pauses);
    let recovered = Arc::new(AtomicBool::new(false));
    let manager = ProtocolManager::load(router.clone(), recovered.clone())
        .await
        .expect("checkpoint loads");
    ProtocolManager::start_in_arbiter(&arbiters[1].handle(), |_| manager);
    for _ in 0..500 {
        if recovered.load(Ordering::Acquire) {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(recovered.load(Ordering::Acquire), "the manager recovered");
    Running {
        store,
        router,
        arbiters,
    }
}

async fn shutdown(running: Running) {
    for arbiter in &running.arbiters {
        arbiter.stop();
    }
    running.store.close();
    actix_rt::time::sleep(Duration::from_millis(20)).await;
}

/// The plain model: balances per (account, asset), nonces, schedules.
#[derive(Clone, Debug, Default)]
struct Model {
    balances: BTreeMap<(Address, &'static str), u128>,
    nonces: Vec<u64>,
    schedules: Vec<(Hash32, Schedule, u128)>,
    usdx_minted: u128,
    refused: usize,
}

impl Model {
    fn new() -> Model {
        let mut model = Model {
            nonces: vec![0; ACCOUNTS],
            ..Model::default()
        };
        for key in keys() {
            model.balances.insert((key.address(), "AIT"), START);
        }
        model
    }

    fn balance(&self, address: Address, asset: &'static str) -> u128 {
        self.balances.get(&(address, asset)).copied().unwrap_or(0)
    }

    fn add(&mut self, address: Address, asset: &'static str, amount: u128) {
        *self.balances.entry((address, asset)).or_default() += amount;
    }

    fn sub(&mut self, address: Address, asset: &'static str, amount: u128) {
        let slot = self.balances.entry((address, asset)).or_default();
        *slot = slot.checked_sub(amount).expect("model balance");
    }
}

fn tx(key: &SigningKey, nonce: u64, fee: u128, kind: &str, body: serde_json::Value) -> VerifiedTx {
    let mut payload = TxPayload::transfer(
        CHAIN,
        key.address(),
        nonce,
        Amount(fee),
        key.address(),
        Amount(1),
    );
    payload.kind = kind.into();
    payload.body = body;
    sign_payload(key, &payload).verify().expect("well formed")
}

/// Runs the first `budget` protocol steps of `first` (breadth first), then stops: the crash.
async fn run_partially(router: &Router, first: Recorded, budget: usize) {
    let mut queue: VecDeque<_> = fact_of(&first.event)
        .map(|f| follow_ups(&first.owner, &f))
        .unwrap_or_default()
        .into();
    let mut done = 0;
    while let Some(step) = queue.pop_front() {
        if done == budget {
            return;
        }
        done += 1;
        for recorded in router.execute(step).await.expect("step runs") {
            if let Some(fact) = fact_of(&recorded.event) {
                queue.extend(follow_ups(&recorded.owner, &fact));
            }
        }
    }
}

/// How a committed transaction ended (one refused before anything was written is an `Err`).
#[derive(Debug)]
enum Outcome {
    Applied,
    Refused(String),
}

/// Submits like the node does: module checks first, then the sender's wallet, then every step
/// (or only `crash_after` of them, after which the node dies and restarts).
async fn submit(
    running: &mut Option<Running>,
    dir: &std::path::Path,
    clock: &Arc<ManualClock>,
    tx: VerifiedTx,
    crash_after: Option<usize>,
) -> Result<Outcome, CommandError> {
    let router = running.as_ref().unwrap().router.clone();
    router.precheck(&tx).await?;
    let committed = router.wallets().submit(tx).await?;
    let first = Recorded::from(committed);
    match crash_after {
        None => {
            let completion = router.complete(first).await.expect("steps run");
            Ok(match completion.refused {
                Some(reason) => Outcome::Refused(reason.code),
                None => Outcome::Applied,
            })
        }
        Some(budget) => {
            let hash = match &first.event {
                DomainEvent::Wallet(WalletEvent::Debited(d)) => d.tx_hash,
                _ => unreachable!(),
            };
            run_partially(&router, first, budget).await;
            shutdown(running.take().unwrap()).await;
            *running = Some(boot(dir, clock).await);
            // The outcome, as the log now tells it.
            Ok(outcome_in_log(running.as_ref().unwrap(), hash).await)
        }
    }
}

async fn outcome_in_log(running: &Running, hash: Hash32) -> Outcome {
    let events = running
        .store
        .read_all(0, usize::MAX)
        .await
        .expect("log reads");
    for event in events {
        if let Ok(DomainEvent::Vesting(domain::vesting::VestingEvent::ClaimRefused {
            claim_tx,
            reason,
        })) = DomainEvent::decode(&event.event_type, &event.data, event.recorded_at_ms)
            && claim_tx == hash
        {
            return Outcome::Refused(reason.code);
        }
    }
    Outcome::Applied
}

async fn run_case(ops: Vec<(Op, Option<usize>)>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::at(T0);
    let keys = keys();
    let mut model = Model::new();
    let mut running = Some(boot(dir.path(), &clock).await);
    let treasury = Address::treasury(CHAIN);
    let pool = vesting_account(CHAIN);
    for (op, crash_after) in ops {
        match op {
            Op::Transfer {
                from,
                to,
                amount,
                fee,
                usdx,
                nonce_skew,
            } => {
                let asset = if usdx { "USDX" } else { "AIT" };
                let body = serde_json::json!({"to": keys[to].address(), "amount": amount.to_string(), "asset": asset});
                let nonce = (model.nonces[from] as i64 + i64::from(nonce_skew)).max(0) as u64;
                let tx = tx(&keys[from], nonce, fee, "transfer", body);
                let (sender, recipient) = (keys[from].address(), keys[to].address());
                let affordable = if usdx {
                    model.balance(sender, "USDX") >= amount && model.balance(sender, "AIT") >= fee
                } else {
                    model.balance(sender, "AIT") >= amount + fee
                };
                match submit(&mut running, dir.path(), &clock, tx, crash_after).await {
                    Ok(Outcome::Applied) => {
                        assert_eq!(nonce, model.nonces[from], "only the expected nonce commits");
                        assert!(affordable, "an unaffordable transfer committed");
                        model.sub(sender, asset, amount);
                        model.sub(sender, "AIT", fee);
                        model.add(recipient, asset, amount);
                        model.add(treasury, "AIT", fee);
                        model.nonces[from] += 1;
                    }
                    Err(CommandError::Rejected(TxError::BadNonce { expected, .. })) => {
                        assert_ne!(nonce, model.nonces[from]);
                        assert_eq!(expected, model.nonces[from]);
                    }
                    Err(CommandError::Rejected(e)) => {
                        assert_eq!(e.code(), "insufficient_funds");
                        assert_eq!(nonce, model.nonces[from]);
                        assert!(!affordable);
                    }
                    other => panic!("transfer: {other:?}"),
                }
            }
            Op::Mint { by, to, amount } => {
                let body = serde_json::json!({"to": keys[to].address(), "asset": "USDX", "amount": amount.to_string()});
                let tx = tx(&keys[by], model.nonces[by], 0, "mint", body);
                match submit(&mut running, dir.path(), &clock, tx, crash_after).await {
                    Ok(Outcome::Applied) => {
                        assert_eq!(by, 0, "only the minter mints");
                        model.add(keys[to].address(), "USDX", amount);
                        model.usdx_minted += amount;
                        model.nonces[by] += 1;
                    }
                    Err(CommandError::Rejected(e)) => {
                        assert_eq!((e.code(), by != 0), ("unauthorized", true));
                    }
                    other => panic!("mint: {other:?}"),
                }
            }
            Op::CreateVesting {
                from,
                to,
                amount,
                cliff_s,
                duration_s,
            } => {
                let body = serde_json::json!({
                    "beneficiary": keys[to].address(), "amount": amount.to_string(),
                    "cliff_s": cliff_s, "duration_s": duration_s,
                });
                let tx = tx(
                    &keys[from],
                    model.nonces[from],
                    0,
                    "create_vesting",
                    body.clone(),
                );
                let hash = tx.hash;
                let sender = keys[from].address();
                let affordable = model.balance(sender, "AIT") >= amount;
                match submit(&mut running, dir.path(), &clock, tx, crash_after).await {
                    Ok(Outcome::Applied) => {
                        assert!(affordable);
                        model.sub(sender, "AIT", amount);
                        model.add(pool, "AIT", amount);
                        let body = serde_json::from_value(body).unwrap();
                        model
                            .schedules
                            .push((hash, schedule_of(&body, clock.now_ms()), 0));
                        model.nonces[from] += 1;
                    }
                    Err(CommandError::Rejected(e)) => {
                        assert_eq!(e.code(), "insufficient_funds");
                        assert!(!affordable);
                    }
                    other => panic!("vesting: {other:?}"),
                }
            }
            Op::Claim { by, schedule } => {
                let Some((id, plan, claimed)) = model.schedules.get(schedule).cloned() else {
                    continue;
                };
                let body = serde_json::json!({"vesting_id": id});
                let tx = tx(&keys[by], model.nonces[by], 0, "claim_vested", body);
                let claimable = plan.vested_at(clock.now_ms()).0 - claimed;
                let beneficiary = plan.beneficiary == keys[by].address();
                match submit(&mut running, dir.path(), &clock, tx, crash_after).await {
                    Ok(Outcome::Applied) => {
                        assert!(beneficiary && claimable > 0);
                        model.sub(pool, "AIT", claimable);
                        model.add(plan.beneficiary, "AIT", claimable);
                        model.schedules[schedule].2 += claimable;
                        model.nonces[by] += 1;
                    }
                    Err(CommandError::Rejected(e)) => {
                        let expected = if beneficiary {
                            "nothing_to_claim"
                        } else {
                            "not_owner"
                        };
                        assert_eq!(e.code(), expected);
                        assert!(!beneficiary || claimable == 0);
                    }
                    Ok(Outcome::Refused(code)) => {
                        panic!("a checked claim that raced nobody was refused: {code}")
                    }
                    other => panic!("claim: {other:?}"),
                }
            }
            Op::RacingClaims { schedule } => {
                let Some((id, plan, claimed)) = model.schedules.get(schedule).cloned() else {
                    continue;
                };
                let by = keys
                    .iter()
                    .position(|k| k.address() == plan.beneficiary)
                    .unwrap();
                let claimable = plan.vested_at(clock.now_ms()).0 - claimed;
                if claimable == 0 {
                    continue;
                }
                let body = serde_json::json!({"vesting_id": id});
                let nonce = model.nonces[by];
                let first = tx(&keys[by], nonce, 0, "claim_vested", body.clone());
                let second = tx(&keys[by], nonce + 1, 0, "claim_vested", body);
                let router = running.as_ref().unwrap().router.clone();
                router.precheck(&first).await.expect("checks pass");
                router.precheck(&second).await.expect("checks pass too");
                for (tx, expect_refused) in [(first, false), (second, true)] {
                    let committed = router.wallets().submit(tx).await.expect("commits");
                    let completion = router.complete(committed.into()).await.expect("steps run");
                    assert_eq!(
                        completion.refused.map(|r| r.code),
                        expect_refused.then(|| "nothing_to_claim".to_string())
                    );
                }
                model.sub(pool, "AIT", claimable);
                model.add(plan.beneficiary, "AIT", claimable);
                model.schedules[schedule].2 += claimable;
                model.nonces[by] += 2;
                model.refused += 1;
            }
            Op::Advance { ms } => clock.advance(ms),
            Op::Restart => {
                shutdown(running.take().unwrap()).await;
                running = Some(boot(dir.path(), &clock).await);
            }
        }
    }
    let running = running.unwrap();
    let wallets = running.router.wallets();
    let mut accounts: Vec<Address> = keys.iter().map(|k| k.address()).collect();
    accounts.extend([treasury, pool]);
    for address in accounts {
        let state = wallets.state(CHAIN, address).await.expect("state");
        assert_eq!(
            state.balance.0,
            model.balance(address, "AIT"),
            "AIT of {address}"
        );
        assert_eq!(
            state.balance_of(&Some("USDX".into())).0,
            model.balance(address, "USDX"),
            "USDX of {address}"
        );
        if let Some(i) = keys.iter().position(|k| k.address() == address) {
            assert_eq!(state.nonce, model.nonces[i], "nonce of {i}");
        }
    }
    for (id, _, claimed) in &model.schedules {
        let vesting_id = domain::vesting::VestingId {
            chain_id: CHAIN.into(),
            id: *id,
        };
        let state = running.router.vesting().state(vesting_id).await.unwrap();
        assert_eq!(state.claimed.0, *claimed, "claimed from {id}");
    }
    let report = projections::audit::audit(running.store.as_ref())
        .await
        .expect("every asset is conserved at every position");
    let native = report.supply[CHAIN];
    assert_eq!(native.in_flight, Amount::ZERO, "no AIT left in flight");
    assert_eq!(native.minted.0, START * ACCOUNTS as u128);
    let usdx = report
        .asset_supply
        .get(&(CHAIN.to_string(), "USDX".to_string()))
        .copied()
        .unwrap_or_default();
    assert_eq!(usdx.in_flight, Amount::ZERO, "no USDX left in flight");
    assert_eq!(usdx.minted.0, model.usdx_minted);
    shutdown(running).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_asset_is_conserved_through_modules_refusals_and_crashes_at_every_step(
        ops in proptest::collection::vec((op(), crash()), 1..32)
    ) {
        actix::System::new().block_on(run_case(ops));
    }
}

/// A verified transfer of `amount` from account `from` to `to` at `nonce`.
fn transfer(from: usize, to: usize, nonce: u64, amount: u128) -> VerifiedTx {
    let keys = keys();
    let body = serde_json::json!({"to": keys[to].address(), "amount": amount.to_string()});
    tx(&keys[from], nonce, 0, "transfer", body)
}

#[test]
fn a_resubmitted_transfer_commits_once() {
    actix::System::new().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let running = boot(dir.path(), &ManualClock::at(T0)).await;
        let wallets = running.router.wallets().clone();
        let tx = transfer(0, 1, 0, 10);
        let (first, second) =
            futures::join!(wallets.submit(tx.clone()), wallets.submit(tx.clone()));
        let (first, second) = (first.expect("commits"), second.expect("same answer"));
        assert_eq!(
            (first.tx_hash(), first.position),
            (second.tx_hash(), second.position)
        );
        assert!(
            first.duplicate != second.duplicate,
            "exactly one of the two is the original"
        );
        let third = wallets.submit(tx).await.expect("same answer later");
        assert_eq!(third.position, first.position);
        for committed in [first, second] {
            // The second time, every step finds its event already there.
            running
                .router
                .complete(committed.into())
                .await
                .expect("steps run");
        }
        let keys = keys();
        let state = wallets
            .state(CHAIN, keys[1].address())
            .await
            .expect("state");
        assert_eq!(state.balance.0, START + 10, "credited once");
        let sender = wallets
            .state(CHAIN, keys[0].address())
            .await
            .expect("state");
        assert_eq!((sender.balance.0, sender.nonce), (START - 10, 1));
        shutdown(running).await;
    });
}

#[test]
fn a_manager_checkpoint_ahead_of_the_log_is_discarded_and_open_steps_still_finish() {
    actix::System::new().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::at(T0);
        let running = boot(dir.path(), &clock).await;
        let wallets = running.router.wallets().clone();
        wallets
            .submit(transfer(0, 1, 0, 10))
            .await
            .expect("debit commits");
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
        let running = boot(dir.path(), &clock).await;
        let state = running
            .router
            .wallets()
            .state(CHAIN, keys()[1].address())
            .await
            .expect("state");
        assert_eq!(state.balance.0, START + 10, "the open credit was delivered");
        shutdown(running).await;
    });
}
