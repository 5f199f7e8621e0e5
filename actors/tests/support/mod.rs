//! What the actor tests share: the registries of a test node.

use std::sync::Arc;

use actix::ArbiterHandle;
use actors::clock::SharedClock;
use actors::registry::Registry;
use actors::router::Registries;
use actors::wallet::WalletRegistry;
use domain::dao::Dao;
use store::EventStore;

/// The registries of a node hosting one chain: the given wallets and DAO, and every module's
/// registry on `handles` (each instance hosted, facts the defaults).
pub fn registries(
    store: &Arc<dyn EventStore>,
    clock: SharedClock,
    handles: &[ArbiterHandle],
    wallets: WalletRegistry,
    dao: Registry<Dao>,
) -> Registries {
    let hosted = || (store.clone(), clock.clone(), handles.to_vec());
    let (s, c, h) = hosted();
    let vesting = Registry::new(s, c, h, |_: &_| Ok(()));
    let (s, c, h) = hosted();
    let proposals = Registry::new(s, c, h, |_: &_| Ok(()));
    let (s, c, h) = hosted();
    let agents = Registry::new(s, c, h, |_: &_| Ok(()));
    let (s, c, h) = hosted();
    let jobs = Registry::new(s, c, h, |_: &_| Ok(domain::job::JobFacts { sample_bps: 0 }));
    let (s, c, h) = hosted();
    let miners = Registry::new(s, c, h, |_: &_| Ok(()));
    let (s, c, h) = hosted();
    let market = Registry::new(s, c, h, |_: &_| Ok(()));
    let (s, c, h) = hosted();
    let staking = Registry::new(s, c, h, |_: &_| Ok(()));
    Registries {
        wallets,
        vesting,
        dao,
        proposals,
        agents,
        jobs,
        miners,
        market,
        staking,
    }
}
