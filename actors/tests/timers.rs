//! Durable timers through the real actors, the protocol manager and the file log, with a
//! manual clock: a council pause's timer resumes the module when due and not before, runs
//! after a restart from the manager's checkpoint (also when the pause came due while the node
//! was down, and when the checkpoint has moved past the event that set it), a renewed pause
//! ignores the old timer, and a checkpoint ahead of the log is discarded rather than trusted.

mod support;

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};

use actix::{Actor, Addr, Arbiter};
use actors::clock::{Clock, ManualClock};
use actors::dao::{PauseBoard, dao_facts, publish_to};
use actors::protocol::{CHECKPOINT_KEY, PendingTimers, ProtocolManager};
use actors::registry::Registry;
use actors::router::Router;
use actors::wallet::{WalletRegistry, wallet_facts};
use domain::address::Address;
use domain::dao::{CouncilAct, Dao, DaoCommand, GovernanceParams};
use domain::genesis::Genesis;
use domain::hash::Hash32;
use domain::kinds::Module;
use store::{EventStore, FileStore, Snapshot};

const CHAIN: &str = "ait-test";
const T0: u64 = 1_800_000_000_000;
const EXPIRY_S: u64 = 60;
const MEMBERS: [Address; 2] = [Address([1; 20]), Address([2; 20])];
/// The manager looks for due timers every 500 ms.
const TICK: Duration = Duration::from_millis(500);

fn genesis() -> Genesis {
    Genesis {
        governance: Some(Box::new(GovernanceParams {
            council: MEMBERS.to_vec(),
            council_threshold: 2,
            pause_expiry_s: EXPIRY_S,
            ..GovernanceParams::default()
        })),
        ..Genesis::single_validator(CHAIN, "ab".repeat(32))
    }
}

struct Node {
    store: Arc<FileStore>,
    dao: Registry<Dao>,
    board: PauseBoard,
    manager: Addr<ProtocolManager>,
    arbiter: Arbiter,
}

async fn boot(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Node {
    let store = FileStore::open(dir).expect("log opens");
    let dyn_store: Arc<dyn EventStore> = store.clone();
    let arbiter = Arbiter::new();
    let board = PauseBoard::default();
    let handles = vec![arbiter.handle()];
    let wallets = WalletRegistry::new(Registry::new(
        dyn_store.clone(),
        clock.clone(),
        handles.clone(),
        wallet_facts([&genesis()]),
    ));
    let dao = Registry::new(
        dyn_store.clone(),
        clock.clone(),
        handles.clone(),
        dao_facts([&genesis()]),
    )
    .publishing(publish_to(board.clone()));
    dao.state(CHAIN.to_string()).await.expect("the DAO loads");
    let registries = support::registries(&dyn_store, clock.clone(), &handles, wallets, dao.clone());
    let router = Router::new(registries, board.clone());
    let recovered = Arc::new(AtomicBool::new(false));
    let manager = ProtocolManager::load(router, recovered.clone())
        .await
        .expect("checkpoint loads");
    let manager = ProtocolManager::start_in_arbiter(&arbiter.handle(), |_| manager);
    for _ in 0..300 {
        if recovered.load(Ordering::Acquire) {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    Node {
        store,
        dao,
        board,
        manager,
        arbiter,
    }
}

impl Node {
    async fn approve_pause(&self, n: u8, member: Address, clock: &ManualClock) {
        let command = DaoCommand::Council {
            tx: Hash32::digest(&[n]),
            member,
            act: CouncilAct::Pause {
                module: Module::Jobs,
                reason: "drill".into(),
            },
            committed_at_ms: clock.now_ms(),
        };
        self.dao
            .execute(CHAIN.to_string(), command)
            .await
            .expect("recorded");
    }

    async fn pause_jobs(&self, first: u8, clock: &ManualClock) {
        self.approve_pause(first, MEMBERS[0], clock).await;
        self.approve_pause(first + 1, MEMBERS[1], clock).await;
    }

    fn paused(&self, clock: &ManualClock) -> bool {
        self.board
            .pause(CHAIN, Module::Jobs, clock.now_ms())
            .is_some()
    }

    async fn recorded_pause(&self) -> Option<u64> {
        let state = self.dao.state(CHAIN.to_string()).await.unwrap();
        state.pauses.get(&Module::Jobs).map(|p| p.until_ms)
    }

    async fn pending_timers(&self) -> usize {
        self.manager.send(PendingTimers).await.unwrap()
    }

    /// Waits (real time) until the manager holds `n` timers.
    async fn until_pending(&self, n: usize) -> bool {
        for _ in 0..100 {
            if self.pending_timers().await == n {
                return true;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    async fn stop(self) {
        self.arbiter.stop();
        self.store.close();
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (real time, a few manager ticks) until the DAO's recorded pause of jobs is `expected`.
async fn settles(node: &Node, expected: Option<u64>) -> bool {
    for _ in 0..300 {
        if node.recorded_pause().await == expected {
            return true;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[actix_rt::test]
async fn a_pause_resumes_when_its_timer_is_due_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let node = boot(dir.path(), &clock).await;
    node.pause_jobs(1, &clock).await;
    let until = T0 + EXPIRY_S * 1000;
    assert!(node.paused(&clock), "published before the answer");
    assert!(settles(&node, Some(until)).await);
    clock.advance(EXPIRY_S * 1000 - 1);
    actix_rt::time::sleep(TICK * 3).await;
    assert_eq!(
        node.recorded_pause().await,
        Some(until),
        "one ms early: still recorded"
    );
    assert_eq!(node.pending_timers().await, 1);
    clock.advance(1);
    assert!(!node.paused(&clock), "the clock alone ends it for readers");
    assert!(settles(&node, None).await, "the timer recorded the expiry");
    // The manager drops a timer once it has seen its step recorded (a tick after it runs).
    assert!(node.until_pending(0).await, "the timer is done");
    node.stop().await;
}

#[actix_rt::test]
async fn a_timer_fires_after_a_restart_even_when_it_came_due_while_down() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let node = boot(dir.path(), &clock).await;
    node.pause_jobs(1, &clock).await;
    // Let the manager see the pause and checkpoint past it: the timer lives in its data.
    assert!(node.until_pending(1).await, "one timer pending");
    actix_rt::time::sleep(TICK * 2).await;
    let checkpoint = node
        .store
        .load_snapshot(CHECKPOINT_KEY)
        .await
        .unwrap()
        .expect("the manager saved its checkpoint");
    assert_eq!(
        checkpoint.revision,
        node.store.next_position(),
        "not held back by the timer"
    );
    assert!(!checkpoint.data.is_empty(), "the timer's event is listed");
    node.stop().await;

    clock.advance(EXPIRY_S * 1000 + 5_000);
    let node = boot(dir.path(), &clock).await;
    assert!(!node.paused(&clock));
    assert!(
        settles(&node, None).await,
        "fired from the checkpoint after the restart"
    );
    node.stop().await;
}

#[actix_rt::test]
async fn a_renewed_pause_outlives_its_first_timer() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let node = boot(dir.path(), &clock).await;
    node.pause_jobs(1, &clock).await;
    clock.advance(30_000);
    node.pause_jobs(3, &clock).await;
    let renewed_until = T0 + 30_000 + EXPIRY_S * 1000;
    clock.advance(EXPIRY_S * 1000 - 30_000);
    // The first timer is due now: it fires and finds a later end.
    assert!(
        node.until_pending(1).await,
        "the first timer fired, the second waits"
    );
    assert_eq!(node.recorded_pause().await, Some(renewed_until));
    assert!(node.paused(&clock));
    clock.advance(30_000);
    assert!(settles(&node, None).await);
    node.stop().await;
}

#[actix_rt::test]
async fn a_timer_checkpoint_ahead_of_the_log_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(T0);
    let node = boot(dir.path(), &clock).await;
    node.pause_jobs(1, &clock).await;
    actix_rt::time::sleep(TICK * 2).await;
    // Stop first, then plant a checkpoint from a longer log (restored from another machine):
    // far ahead, no timers.
    node.stop().await;
    let store = FileStore::open(dir.path()).unwrap();
    let ahead = Snapshot {
        revision: store.next_position() + 1_000,
        data: br#"{"timers":[]}"#.to_vec(),
    };
    store.save_snapshot(CHECKPOINT_KEY, ahead).await.unwrap();
    store.close();
    clock.advance(EXPIRY_S * 1000);
    let node = boot(dir.path(), &clock).await;
    assert!(
        settles(&node, None).await,
        "the log was read from zero and the timer found"
    );
    node.stop().await;
}
