//! Wallet actor lifecycle: passivation when idle, rehydration from snapshot + stream, and a
//! snapshot that cannot be read is ignored rather than trusted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Arbiter;
use actors::registry::WalletRegistry;
use domain::address::Address;
use domain::hash::Hash32;
use domain::money::Amount;
use domain::wallet::{Credit, CreditKind, WalletState, wallet_stream};
use store::{EventStore, FileStore, Snapshot};

const CHAIN: &str = "ait-test";

fn registry(store: Arc<dyn EventStore>, arbiter: &Arbiter, idle: Duration) -> WalletRegistry {
    let chains = BTreeMap::from([(Arc::from(CHAIN), Amount::ZERO)]);
    WalletRegistry::new(store, chains, vec![arbiter.handle()]).with_idle_timeout(idle)
}

fn credit(n: u64) -> Credit {
    Credit {
        transfer_id: Hash32::digest(&n.to_le_bytes()),
        from: Address([7; 20]),
        amount: Amount(n.into()),
        kind: CreditKind::Transfer,
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
            nonce: 0
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
