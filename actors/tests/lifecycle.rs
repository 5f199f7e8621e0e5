//! Wallet actor lifecycle: passivation when idle, rehydration from snapshot + stream, and a
//! snapshot that cannot be read is ignored rather than trusted.

use std::sync::Arc;
use std::time::Duration;

use actix::Arbiter;
use actors::clock::SystemClock;
use actors::registry::Registry;
use actors::wallet::{WalletRegistry, wallet_facts};
use domain::address::Address;
use domain::hash::Hash32;
use domain::money::Amount;
use domain::wallet::{Credit, CreditKind, WalletState, wallet_stream};
use store::{EventStore, FileStore, Snapshot};

const CHAIN: &str = "ait-test";

fn registry(store: Arc<dyn EventStore>, arbiter: &Arbiter, idle: Duration) -> WalletRegistry {
    let genesis = domain::genesis::Genesis::single_validator(CHAIN, "ab".repeat(32));
    let registry = Registry::new(
        store,
        SystemClock::shared(),
        vec![arbiter.handle()],
        wallet_facts([&genesis]),
    );
    WalletRegistry::new(registry.with_idle_timeout(idle))
}

fn credit(n: u64) -> Credit {
    Credit {
        transfer_id: Hash32::digest(&n.to_le_bytes()),
        from: Address([7; 20]),
        amount: Amount(n.into()),
        kind: CreditKind::Transfer,
        asset: None,
    }
}

async fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if condition() {
            return true;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[actix_rt::test]
async fn an_idle_wallet_passivates_and_comes_back_with_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = FileStore::open(dir.path()).unwrap();
    let arbiter = Arbiter::new();
    let wallets = registry(store.clone(), &arbiter, Duration::from_millis(100));
    let address = Address([1; 20]);
    wallets.credit(CHAIN, address, credit(5)).await.unwrap();
    assert_eq!(wallets.active(), 1);
    assert!(
        wait_until(|| wallets.active() == 0).await,
        "the idle wallet passivated"
    );
    let state = wallets.state(CHAIN, address).await.unwrap();
    assert_eq!(
        state,
        WalletState {
            balance: Amount(5),
            nonce: 0,
            ..Default::default()
        },
        "rehydrated from the log"
    );
    // A credit delivered again after reactivation is still recognised as the same fact.
    wallets.credit(CHAIN, address, credit(5)).await.unwrap();
    assert_eq!(
        wallets.state(CHAIN, address).await.unwrap().balance,
        Amount(5)
    );
    arbiter.stop();
}

#[actix_rt::test]
async fn a_long_stream_rehydrates_from_its_snapshot_and_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = FileStore::open(dir.path()).unwrap();
    let arbiter = Arbiter::new();
    let wallets = registry(store.clone(), &arbiter, Duration::from_millis(100));
    let address = Address([2; 20]);
    let credits = (1..=300u64).map(|n| wallets.credit(CHAIN, address, credit(n)));
    futures::future::try_join_all(credits).await.unwrap();
    let expected = Amount((1..=300u128).sum());
    assert_eq!(
        wallets.state(CHAIN, address).await.unwrap().balance,
        expected
    );
    let stream = wallet_stream(CHAIN, &address);
    let mut snapshot = None;
    assert!(
        wait_until(|| {
            snapshot = futures::executor::block_on(store.load_snapshot(&stream)).unwrap();
            snapshot.is_some()
        })
        .await,
        "a snapshot was written after 256 events"
    );
    let snapshot = snapshot.unwrap();
    assert!(snapshot.revision >= 255 && snapshot.revision < 300);
    assert!(wait_until(|| wallets.active() == 0).await);
    assert_eq!(
        wallets.state(CHAIN, address).await.unwrap().balance,
        expected,
        "snapshot + tail"
    );
    arbiter.stop();
}

#[actix_rt::test]
async fn an_unreadable_snapshot_is_ignored_and_the_stream_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = FileStore::open(dir.path()).unwrap();
    let arbiter = Arbiter::new();
    let wallets = registry(store.clone(), &arbiter, Duration::from_millis(100));
    let address = Address([3; 20]);
    for n in 1..=3 {
        wallets.credit(CHAIN, address, credit(n)).await.unwrap();
    }
    assert!(wait_until(|| wallets.active() == 0).await);
    let garbage = Snapshot {
        revision: 1,
        data: b"not a wallet".to_vec(),
    };
    store
        .save_snapshot(&wallet_stream(CHAIN, &address), garbage)
        .await
        .unwrap();
    assert_eq!(
        wallets.state(CHAIN, address).await.unwrap().balance,
        Amount(6)
    );
    arbiter.stop();
}

#[actix_rt::test]
async fn a_snapshot_ahead_of_the_log_is_discarded_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = FileStore::open(dir.path()).unwrap();
    let arbiter = Arbiter::new();
    let wallets = registry(store.clone(), &arbiter, Duration::from_millis(100));
    let address = Address([4; 20]);
    for n in 1..=2 {
        wallets.credit(CHAIN, address, credit(n)).await.unwrap();
    }
    assert!(wait_until(|| wallets.active() == 0).await);
    // A snapshot from a future the log never reached (its tail was lost, say): trusting it
    // would show a balance no event supports.
    let ahead = serde_json::json!({"state": {"balance": "1000", "nonce": 9}});
    let snapshot = Snapshot {
        revision: 5,
        data: serde_json::to_vec(&ahead).unwrap(),
    };
    store
        .save_snapshot(&wallet_stream(CHAIN, &address), snapshot)
        .await
        .unwrap();
    assert_eq!(
        wallets.state(CHAIN, address).await.unwrap(),
        WalletState {
            balance: Amount(3),
            nonce: 0,
            ..Default::default()
        },
        "replayed from the log"
    );
    // And the wallet keeps working on the state the log supports.
    wallets.credit(CHAIN, address, credit(3)).await.unwrap();
    assert_eq!(
        wallets.state(CHAIN, address).await.unwrap().balance,
        Amount(6)
    );
    arbiter.stop();
}

#[actix_rt::test]
async fn a_transfer_from_a_never_funded_key_is_refused_without_activating_an_actor() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = FileStore::open(dir.path()).unwrap();
    let arbiter = Arbiter::new();
    let wallets = registry(store.clone(), &arbiter, Duration::from_secs(60));
    for seed in 0..50u8 {
        let key = domain::keys::SigningKey::from_seed([seed; 32]);
        let payload = domain::tx::TxPayload::transfer(
            CHAIN,
            key.address(),
            0,
            Amount::ZERO,
            Address([9; 20]),
            Amount(1),
        );
        let tx = domain::tx::sign_payload(&key, &payload).verify().unwrap();
        let error = wallets.submit(tx).await.unwrap_err();
        assert_eq!(error.code(), "insufficient_funds", "{error}");
    }
    assert_eq!(wallets.active(), 0, "no actor stays resident for junk");
    assert_eq!(store.next_position(), 0, "nothing was written");
    arbiter.stop();
}

#[actix_rt::test]
async fn a_repeated_payout_covered_by_the_snapshot_is_answered_with_the_stored_event() {
    use domain::wallet::{Payout, WalletCommand, WalletEvent, WalletId};
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = FileStore::open(dir.path()).unwrap();
    let arbiter = Arbiter::new();
    let wallets = registry(store.clone(), &arbiter, Duration::from_millis(100));
    let module = Address([5; 20]);
    wallets.credit(CHAIN, module, credit(300)).await.unwrap();
    let id = WalletId {
        chain_id: CHAIN.into(),
        address: module,
    };
    let payout = |n: u64| Payout {
        cause: Hash32::digest(&n.to_be_bytes()),
        to: Address([6; 20]),
        amount: Amount(1),
        asset: None,
    };
    let mut first_position = 0;
    for n in 0..300u64 {
        let applied = wallets
            .registry()
            .execute(id.clone(), WalletCommand::PayOut(payout(n)))
            .await
            .unwrap();
        if n == 3 {
            first_position = applied.last_position().unwrap();
        }
    }
    assert_eq!(
        wallets.state(CHAIN, module).await.unwrap().balance,
        Amount(0)
    );
    assert!(wait_until(|| wallets.active() == 0).await, "passivated");
    // Reloaded from a snapshot that already covers payout 3: the repeat must not be decided
    // again (the account is empty now) but answered with what the log holds.
    let again = wallets
        .registry()
        .execute(id, WalletCommand::PayOut(payout(3)))
        .await
        .expect("a repeated payout is answered, not refused");
    assert!(again.duplicate);
    assert!(
        matches!(&again.events[..], [(WalletEvent::PaidOut(p), position)]
        if *p == payout(3) && *position == first_position)
    );
    assert_eq!(
        wallets.state(CHAIN, module).await.unwrap().balance,
        Amount(0)
    );
    arbiter.stop();
}

#[actix_rt::test]
async fn a_query_reads_in_the_actor_and_a_versioned_state_names_its_revision() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = FileStore::open(dir.path()).unwrap();
    let arbiter = Arbiter::new();
    let wallets = registry(store.clone(), &arbiter, Duration::from_secs(60));
    let id = |address| domain::wallet::WalletId {
        chain_id: CHAIN.into(),
        address,
    };
    let (known, unknown) = (Address([1; 20]), Address([2; 20]));
    for n in 1..=3 {
        wallets.credit(CHAIN, known, credit(n)).await.unwrap();
    }
    let balance = |state: &WalletState| state.balance;
    let read = wallets.registry().query(id(known), balance).await.unwrap();
    assert_eq!(read, Amount(6));
    let (state, revision) = wallets.registry().versioned_state(id(known)).await.unwrap();
    assert_eq!((state.balance, revision), (Amount(6), Some(2)));
    let none = wallets
        .registry()
        .query(id(unknown), balance)
        .await
        .unwrap();
    assert_eq!(
        none,
        Amount::ZERO,
        "an unknown stream reads as the empty state"
    );
    let (_, revision) = wallets
        .registry()
        .versioned_state(id(unknown))
        .await
        .unwrap();
    assert_eq!(revision, None);
    assert_eq!(
        wallets.active(),
        1,
        "reading an unknown stream activates nothing"
    );
    arbiter.stop();
}
