//! The chains' DAOs on the generic host, and the pause board every transaction is checked
//! against before anything is written.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dashmap::DashMap;
use domain::address::Address;
use domain::dao::{Dao, DaoState, GovernanceParams, Pause};
use domain::error::TxError;
use domain::genesis::Genesis;
use domain::kinds::{KindSpec, Module};

use crate::error::CommandError;

/// The pause state of every chain's modules, as the DAO actors publish it after each durable
/// append (see [`crate::registry::Registry::publishing`]). Transactions are checked against it
/// without a message to the DAO actor, which would serialize every transaction of a chain.
#[derive(Clone, Debug, Default)]
pub struct PauseBoard {
    chains: Arc<DashMap<String, Restrictions>>,
}

/// A chain's paused modules and frozen accounts.
#[derive(Clone, Debug, Default)]
struct Restrictions {
    pauses: BTreeMap<Module, Pause>,
    frozen: BTreeSet<Address>,
}

impl PauseBoard {
    /// Records `chain_id`'s pauses and frozen accounts (called by its DAO actor).
    pub fn publish(&self, chain_id: &str, state: &DaoState) {
        let restrictions = Restrictions {
            pauses: state.pauses.clone(),
            frozen: state.frozen.clone(),
        };
        self.chains.insert(chain_id.to_string(), restrictions);
    }

    /// The pause of `module` on `chain_id` in force at `now_ms`.
    pub fn pause(&self, chain_id: &str, module: Module, now_ms: u64) -> Option<Pause> {
        self.chains
            .get(chain_id)?
            .pauses
            .get(&module)
            .filter(|p| p.in_force_at(now_ms))
            .cloned()
    }

    /// `frozen` when an emergency proposal froze `address` on `chain_id`.
    pub fn check_frozen(&self, chain_id: &str, address: &Address) -> Result<(), TxError> {
        match self
            .chains
            .get(chain_id)
            .is_some_and(|c| c.frozen.contains(address))
        {
            true => Err(TxError::Frozen(format!(
                "{address} is frozen on {chain_id}"
            ))),
            false => Ok(()),
        }
    }

    /// `paused` when `kind`'s module is paused on `chain_id` at `now_ms`.
    pub fn check(&self, chain_id: &str, kind: &KindSpec, now_ms: u64) -> Result<(), TxError> {
        let Some(module) = kind.paused_by() else {
            return Ok(());
        };
        match self.pause(chain_id, module, now_ms) {
            None => Ok(()),
            Some(pause) => Err(TxError::Paused(format!(
                "{} (until {} ms: {})",
                module.name(),
                pause.until_ms,
                pause.reason
            ))),
        }
    }
}

/// The DAO facts of the hosted chains: each genesis's governance parameters.
pub fn dao_facts<'g>(
    geneses: impl IntoIterator<Item = &'g Genesis>,
) -> impl Fn(&String) -> Result<GovernanceParams, CommandError> + Send + Sync + 'static {
    let params: BTreeMap<String, GovernanceParams> = geneses
        .into_iter()
        .map(|g| (g.chain_id.clone(), g.governance()))
        .collect();
    move |chain_id: &String| {
        params
            .get(chain_id)
            .cloned()
            .ok_or_else(|| CommandError::NotFound(format!("chain {chain_id:?} is not hosted here")))
    }
}

/// The publisher that keeps `board` in step with the DAO actors.
pub fn publish_to(
    board: PauseBoard,
) -> impl Fn(&String, &<Dao as domain::aggregate::Aggregate>::State) + Send + Sync {
    move |chain_id, state| board.publish(chain_id, state)
}
