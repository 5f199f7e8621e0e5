//! The explorer is a pure function of the log: rebuilt from zero it equals the explorer resumed
//! from its file committed anywhere in the log (and read while a commit is under way); a file
//! it cannot trust is rebuilt; and it refuses a log that breaks conservation.

use std::sync::Arc;

use domain::block::BlockDraft;
use domain::chain::{ChainEvent, chain_stream};
use domain::codec::DomainEvent;
use domain::genesis::{Allocation, Genesis};
use domain::hash::Hash32;
use domain::keys::SigningKey;
use domain::merkle::Leaf;
use domain::money::Amount;
use domain::tx::{TxPayload, sign_payload};
use domain::wallet::{
    self, WalletCommand, WalletEvent, WalletFacts, WalletId, WalletState, wallet_event_id,
    wallet_stream,
};
use projections::explorer::Explorer;
use projections::kv::Kv;
use projections::projection::Projection;
use projections::runner::{PERSIST_INTERVAL, ProjectionRunner};
use store::{EventId, EventStore, ExpectedRevision, MemoryStore, NewEvent};

const CHAIN: &str = "ait-test";
const WITH_ZEROS: domain::Address =
    domain::Address([0, 7, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0]);

fn new_event(address: &domain::Address, event: &WalletEvent) -> NewEvent {
    NewEvent {
        id: EventId(wallet_event_id(CHAIN, address, event)),
        event_type: event.event_type().into(),
        data: DomainEvent::Wallet(event.clone()).encode(),
    }
}

/// A log with genesis, block 0, 30 transfers (debits and credits) and a block over them.
async fn build_log() -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let keys: Vec<SigningKey> = (1..=3).map(|i| SigningKey::from_seed([i; 32])).collect();
    let validator = SigningKey::from_seed([9; 32]);
    let genesis = Genesis {
        genesis_time: 1,
        allocations: keys
            .iter()
            .map(|k| Allocation {
                address: k.address(),
                amount: Amount(1000),
            })
            .chain([Allocation {
                address: WITH_ZEROS,
                amount: Amount(5),
            }])
            .collect(),
        ..Genesis::single_validator(CHAIN, hex::encode(validator.public_key()))
    };
    // An address with 0 bytes: the explorer's file keys must not split it.
    let funded = WalletEvent::Funded {
        amount: Amount(5),
        source: wallet::FundSource::Genesis,
    };
    store
        .append(
            &wallet_stream(CHAIN, &WITH_ZEROS),
            ExpectedRevision::Any,
            vec![new_event(&WITH_ZEROS, &funded)],
        )
        .await
        .unwrap();
    let mut states: [WalletState; 3] = Default::default();
    for (i, key) in keys.iter().enumerate() {
        let event = WalletEvent::Funded {
            amount: Amount(1000),
            source: wallet::FundSource::Genesis,
        };
        wallet::evolve(&mut states[i], &event);
        store
            .append(
                &wallet_stream(CHAIN, &key.address()),
                ExpectedRevision::Any,
                vec![new_event(&key.address(), &event)],
            )
            .await
            .unwrap();
    }
    let block0 = BlockDraft {
        chain_id: CHAIN.into(),
        height: 0,
        prev_hash: genesis.hash(),
        timestamp: 1,
        leaves: vec![],
        from_position: 4,
        to_position: 4,
    }
    .seal(std::slice::from_ref(&validator));
    let facts = WalletFacts::of(&genesis);
    let created = ChainEvent::ChainCreated {
        genesis: Box::new(genesis),
        block: block0.clone(),
    };
    let data = DomainEvent::Chain(created.clone()).encode();
    store
        .append(
            &chain_stream(CHAIN),
            ExpectedRevision::NoStream,
            vec![NewEvent {
                id: EventId(1),
                event_type: created.event_type().into(),
                data,
            }],
        )
        .await
        .unwrap();
    let mut hashes: Vec<Hash32> = Vec::new();
    for n in 0..30usize {
        let (from, to) = (n % 3, (n + 1) % 3);
        let id = WalletId {
            chain_id: CHAIN.into(),
            address: keys[from].address(),
        };
        let ctx = domain::aggregate::Context {
            id: &id,
            facts: &facts,
            now_ms: 1_700_000_000_000 + n as u64,
        };
        let payload = TxPayload::transfer(
            CHAIN,
            keys[from].address(),
            states[from].nonce,
            Amount(1),
            keys[to].address(),
            Amount(7),
        );
        let tx = sign_payload(&keys[from], &payload).verify().unwrap();
        hashes.push(tx.hash);
        let debit = wallet::decide(&states[from], &ctx, WalletCommand::Transfer(Box::new(tx)))
            .unwrap()
            .remove(0);
        wallet::evolve(&mut states[from], &debit);
        store
            .append(
                &wallet_stream(CHAIN, &keys[from].address()),
                ExpectedRevision::Any,
                vec![new_event(&keys[from].address(), &debit)],
            )
            .await
            .unwrap();
        let WalletEvent::Debited(d) = &debit else {
            unreachable!()
        };
        for (address, credit) in d.credits(keys[from].address()) {
            let event = WalletEvent::Credited(credit);
            store
                .append(
                    &wallet_stream(CHAIN, &address),
                    ExpectedRevision::Any,
                    vec![new_event(&address, &event)],
                )
                .await
                .unwrap();
        }
    }
    let block1 = BlockDraft {
        chain_id: CHAIN.into(),
        height: 1,
        prev_hash: block0.hash,
        timestamp: 2,
        leaves: hashes.iter().map(|h| Leaf::tx("transfer", *h)).collect(),
        from_position: 3,
        to_position: store.next_position(),
    }
    .seal(&[validator]);
    let sealed = ChainEvent::BlockSealed { block: block1 };
    let data = DomainEvent::Chain(sealed.clone()).encode();
    store
        .append(
            &chain_stream(CHAIN),
            ExpectedRevision::Exact(0),
            vec![NewEvent {
                id: EventId(2),
                event_type: sealed.event_type().into(),
                data,
            }],
        )
        .await
        .unwrap();
    store
}

/// Appends a credit that no debit owes: value from nowhere.
async fn append_credit_for_no_debit(store: &MemoryStore) {
    let address = SigningKey::from_seed([1; 32]).address();
    let forged = WalletEvent::Credited(wallet::Credit {
        transfer_id: Hash32::digest(b"no such debit"),
        from: address,
        amount: Amount(5),
        kind: wallet::CreditKind::Transfer,
        asset: None,
    });
    let stream = wallet_stream(CHAIN, &address);
    store
        .append(
            &stream,
            ExpectedRevision::Any,
            vec![new_event(&address, &forged)],
        )
        .await
        .unwrap();
}

async fn apply_range(explorer: &Explorer, store: &dyn EventStore, end: u64) {
    while explorer.next_position() < end {
        let page = store.read_all(explorer.next_position(), 7).await.unwrap();
        for event in page.iter().take((end - explorer.next_position()) as usize) {
            explorer.apply(event).unwrap();
        }
    }
}

/// Commits what `explorer` applied, checking at each stage of the commit (frozen, written,
/// done) that reads still see everything.
fn commit(explorer: &Explorer) {
    let before = explorer.export();
    let Some((position, job)) = explorer.prepare_persist() else {
        return;
    };
    assert_eq!(position, explorer.next_position());
    assert!(explorer.prepare_persist().is_none(), "one commit at a time");
    assert_eq!(explorer.export(), before, "read while frozen");
    job().expect("committed");
    assert_eq!(explorer.export(), before, "read once written");
    explorer.persisted();
    assert_eq!(explorer.export(), before, "read from the file");
}

#[tokio::test]
async fn rebuild_from_zero_equals_resume_from_its_file_at_any_commit() {
    let store = build_log().await;
    let end = store.next_position();
    let from_zero = Explorer::default();
    apply_range(&from_zero, store.as_ref(), end).await;
    let full = from_zero.export();
    assert_eq!(full.txs.len(), 30);
    assert!(
        full.txs.values().all(|tx| tx.block_height == Some(1)),
        "every tx is sealed in block 1"
    );
    assert!(full.supply[CHAIN].conserved());
    for cut in [0, 1, 4, 17, end / 2, end - 1, end] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("explorer.redb");
        let first = Explorer::open(&path, end).unwrap();
        // Two commits before the cut: history spread over the file and memory.
        apply_range(&first, store.as_ref(), cut / 2).await;
        commit(&first);
        apply_range(&first, store.as_ref(), cut).await;
        commit(&first);
        drop(first);
        let resumed = Explorer::open(&path, end).unwrap();
        assert_eq!(resumed.next_position(), cut);
        apply_range(&resumed, store.as_ref(), end).await;
        assert_eq!(resumed.export(), full, "resumed from position {cut}");
    }
}

#[tokio::test]
async fn a_file_ahead_of_the_log_or_of_another_format_is_rebuilt() {
    let store = build_log().await;
    let end = store.next_position();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("explorer.redb");
    let explorer = Explorer::open(&path, end).unwrap();
    apply_range(&explorer, store.as_ref(), end).await;
    commit(&explorer);
    drop(explorer);
    // The log was restored from an older copy: the file is ahead of it.
    let shorter = Explorer::open(&path, end - 1).unwrap();
    assert_eq!(shorter.next_position(), 0, "rebuilt from zero");
    assert!(shorter.export().txs.is_empty());
    drop(shorter);
    let (other, _) = Kv::open(&path, &[], 99, end).unwrap();
    drop(other);
    let rebuilt = Explorer::open(&path, end).unwrap();
    assert_eq!(
        rebuilt.next_position(),
        0,
        "a file of another format is not read"
    );
}

#[actix_rt::test]
async fn the_runner_commits_to_the_file_and_a_restart_resumes_there() {
    let store = build_log().await;
    let end = store.next_position();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("explorer.redb");
    let dyn_store: Arc<dyn EventStore> = store.clone();
    let (runner, handle) = ProjectionRunner::new(dyn_store, Explorer::open(&path, end).unwrap());
    let arbiter = actix::Arbiter::new();
    actix::Actor::start_in_arbiter(&arbiter.handle(), |_| runner);
    handle.wait_applied(end).await.unwrap();
    let expected = handle.read_model.export();
    // The runner commits within its interval (the log is shorter than a batch of events).
    actix_rt::time::sleep(PERSIST_INTERVAL * 2).await;
    arbiter.stop();
    arbiter.join().unwrap();
    drop(handle);
    let resumed = Explorer::open(&path, end).unwrap();
    assert_eq!(resumed.next_position(), end, "nothing to replay");
    assert_eq!(resumed.export(), expected);
}

#[tokio::test]
async fn a_credit_for_no_debit_is_refused() {
    let store = build_log().await;
    append_credit_for_no_debit(store.as_ref()).await;
    let error = projections::audit::audit(store.as_ref()).await.unwrap_err();
    assert!(
        error.to_string().contains("credit for an unknown transfer"),
        "{error}"
    );
}

#[tokio::test]
async fn a_second_credit_for_one_debit_breaks_conservation_and_is_refused() {
    let store = build_log().await;
    let first_debit = store
        .read_all(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .find(|e| domain::codec::is_debit(&e.event_type))
        .expect("the log has debits");
    let Ok(DomainEvent::Wallet(WalletEvent::Debited(debit))) = DomainEvent::decode(
        &first_debit.event_type,
        &first_debit.data,
        first_debit.recorded_at_ms,
    ) else {
        panic!("a debit decodes");
    };
    // The same credit again, under an event id the log has not seen: money from nowhere.
    let (to, credit) = debit
        .credits(debit.envelope.verify().unwrap().payload.sender)
        .remove(0);
    let forged = WalletEvent::Credited(credit);
    let event = NewEvent {
        id: EventId(0xF0F0),
        event_type: forged.event_type().into(),
        data: DomainEvent::Wallet(forged).encode(),
    };
    store
        .append(
            &wallet_stream(CHAIN, &to),
            ExpectedRevision::Any,
            vec![event],
        )
        .await
        .unwrap();
    let error = projections::audit::audit(store.as_ref()).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("credit without a matching debit in flight"),
        "{error}"
    );
}

#[tokio::test]
async fn a_refused_event_changes_nothing_in_the_explorer() {
    let store = build_log().await;
    let explorer = Explorer::default();
    apply_range(&explorer, store.as_ref(), store.next_position()).await;
    let before = explorer.export();
    let address = SigningKey::from_seed([1; 32]).address();
    let forged = WalletEvent::Credited(wallet::Credit {
        transfer_id: hashes_of(&before)[0],
        from: address,
        amount: Amount(1_000_000),
        kind: wallet::CreditKind::Transfer,
        asset: None,
    });
    let event = store::RecordedEvent {
        position: before.next_position,
        stream: Arc::from(wallet_stream(CHAIN, &address).as_str()),
        revision: 99,
        id: EventId(7),
        event_type: forged.event_type().into(),
        data: DomainEvent::Wallet(forged).encode(),
        recorded_at_ms: 0,
    };
    assert!(
        explorer.apply(&event).is_err(),
        "a second credit would create money"
    );
    assert_eq!(explorer.export(), before, "nothing was half-applied");
}

fn hashes_of(state: &projections::explorer::ExplorerState) -> Vec<Hash32> {
    state.txs.keys().copied().collect()
}

#[test]
fn a_stopped_runner_fails_the_writers_waiting_on_it() {
    actix::System::new().block_on(async {
        let store = build_log().await;
        append_credit_for_no_debit(store.as_ref()).await;
        let end = store.next_position();
        let (runner, handle) =
            projections::runner::ProjectionRunner::new(store.clone(), Explorer::default());
        let runner = actix::Actor::start(runner);
        assert_eq!(
            handle.wait_applied(end).await,
            Err(projections::watermark::ProjectionStopped),
            "a writer is told, not left believing its effect is readable"
        );
        assert!(
            handle.wait_applied(end - 1).await.is_ok(),
            "what was applied stays readable"
        );
        actix_rt::time::sleep(std::time::Duration::from_millis(10)).await;
        assert!(!runner.connected(), "the runner stopped");
    });
}

#[tokio::test]
async fn a_refused_block_changes_nothing_in_the_explorer() {
    let store = build_log().await;
    let explorer = Explorer::default();
    apply_range(&explorer, store.as_ref(), store.next_position()).await;
    let before = explorer.export();
    let last = &before.chains[CHAIN].blocks[1];
    let validator = SigningKey::from_seed([9; 32]);
    // One known transaction, then one the log never committed.
    let block = BlockDraft {
        chain_id: CHAIN.into(),
        height: 2,
        prev_hash: last.hash,
        timestamp: 3,
        leaves: vec![
            Leaf::tx("transfer", last.tx_hashes[0]),
            Leaf::tx("transfer", Hash32::digest(b"never committed")),
        ],
        from_position: last.to_position,
        to_position: before.next_position,
    }
    .seal(&[validator]);
    let sealed = ChainEvent::BlockSealed { block };
    let event = store::RecordedEvent {
        position: before.next_position,
        stream: Arc::from(chain_stream(CHAIN).as_str()),
        revision: 2,
        id: EventId(3),
        event_type: sealed.event_type().into(),
        data: DomainEvent::Chain(sealed).encode(),
        recorded_at_ms: 0,
    };
    assert!(explorer.apply(&event).is_err());
    assert_eq!(
        explorer.export(),
        before,
        "no block pushed, no transaction re-labelled"
    );
}
