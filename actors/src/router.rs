//! Runs the cross-aggregate protocol's steps ([`domain::protocol`]) on the aggregates' actors.
//!
//! The request path calls [`Router::complete`] right after a transaction's debit is durable: it
//! runs every step the debit owes, then the steps those steps owe, until none is left, so the
//! answer can say the whole transaction is applied (or, if a module refused it, that it was
//! refused) and every read after it sees the effect. The process manager calls
//! [`Router::execute`] for a single step a crash left undone.

use std::collections::BTreeMap;
use std::sync::Arc;

use domain::TxError;
use domain::actions::Action;
use domain::address::Address;
use domain::agent::{self, AgentAggregate, AgentCommand, AgentEvent, AgentId, AgentRecord};
use domain::codec::DomainEvent;
use domain::dao::{Dao, DaoEvent, GovernanceParams};
use domain::hash::Hash32;
use domain::job::{self, JobAggregate, JobCommand, JobEvent, JobId, JobInput, JobState};
use domain::kinds::{self, TxAction};
use domain::llm_job::ModelHost;
use domain::miner::{MarketIndex, MinerAggregate, MinerId};
use domain::money::Amount;
use domain::proposal::Measured;
use domain::proposal::{
    self, GovAct, Proposal, ProposalAggregate, ProposalCommand, ProposalEvent, ProposalId,
    ProposalState, ProposalStep, Sent,
};
use domain::protocol::{Fact, FollowUp, Owner, follow_ups};
use domain::staking::{ProviderFacts, Staking, StakingAct, StakingCommand, StakingState};
use domain::twas::Power;
use domain::tx::VerifiedTx;
use domain::vesting::{Refusal, Vesting, VestingEvent, VestingId};
use domain::wallet::{WalletCommand, WalletEvent, WalletId};
use domain::wgsl::{ShaderError, ShaderHost};

use crate::power;
use store::EventStore;
use store::blobs::BlobStore;

use crate::aggregate::Applied;
use crate::dao::PauseBoard;
use crate::error::CommandError;
use crate::registry::Registry;
use crate::wallet::{Committed, WalletRegistry};

/// An event a step recorded (or found already recorded).
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Whose stream it is in.
    pub owner: Owner,
    /// The event.
    pub event: DomainEvent,
    /// Its log position.
    pub position: u64,
}

impl From<Committed> for Recorded {
    /// A transaction's debit, as the protocol replays it.
    fn from(committed: Committed) -> Self {
        Recorded {
            owner: Owner::Wallet {
                chain_id: committed.chain_id,
                address: committed.sender,
            },
            event: DomainEvent::Wallet(WalletEvent::Debited(*committed.debit)),
            position: committed.position,
        }
    }
}

/// How a transaction ended once every step ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The highest log position any step wrote or found.
    pub last_position: u64,
    /// Set when a module refused the committed transaction.
    pub refused: Option<Refusal>,
}

/// The aggregates' registries, by what the protocol's steps address.
#[derive(Clone)]
pub struct Registries {
    /// Wallets.
    pub wallets: WalletRegistry,
    /// Vesting schedules.
    pub vesting: Registry<Vesting>,
    /// The chains' DAOs.
    pub dao: Registry<Dao>,
    /// Proposals.
    pub proposals: Registry<ProposalAggregate>,
    /// Agents.
    pub agents: Registry<AgentAggregate>,
    /// GPU jobs.
    pub jobs: Registry<JobAggregate>,
    /// Miners.
    pub miners: Registry<MinerAggregate>,
    /// The chains' indexes of open jobs and miners.
    pub market: Registry<MarketIndex>,
    /// Staking pools, one aggregate per chain.
    pub staking: Registry<Staking>,
}

/// Runs the protocol's steps on the registries.
#[derive(Clone)]
pub struct Router {
    wallets: WalletRegistry,
    vesting: Registry<Vesting>,
    dao: Registry<Dao>,
    proposals: Registry<ProposalAggregate>,
    agents: Registry<AgentAggregate>,
    jobs: Registry<JobAggregate>,
    miners: Registry<MinerAggregate>,
    market: Registry<MarketIndex>,
    staking: Registry<Staking>,
    pauses: PauseBoard,
    /// Job inputs too large for a transaction (none in tests that run no such job).
    blobs: Option<Arc<BlobStore>>,
    /// The node's secret in the draw of the jobs it re-executes.
    sample_secret: [u8; 32],
    /// The node's GPU executor, for `wgsl` jobs (none: the node takes no such job).
    shaders: Option<Arc<dyn ShaderHost>>,
    /// The node's language models, for `llm_generate` jobs (none: it takes no such job).
    models: Option<Arc<dyn ModelHost>>,
    /// Bounds the CPU checks of `llm_generate` results running at once.
    llm_checks: Arc<tokio::sync::Semaphore>,
}

/// What a step's command recorded in `owner`'s stream, as stored events.
fn recorded<E>(owner: Owner, applied: Applied<E>, stored: fn(E) -> DomainEvent) -> Vec<Recorded> {
    applied
        .events
        .into_iter()
        .map(|(event, position)| Recorded {
            owner: owner.clone(),
            event: stored(event),
            position,
        })
        .collect()
}

/// The protocol's view of a stored event.
pub fn fact_of(event: &DomainEvent) -> Option<Fact> {
    use domain::codec::WalletFact;
    match event {
        DomainEvent::Wallet(WalletEvent::Debited(debit)) => {
            Some(Fact::Wallet(WalletFact::Debited(debit.summary())))
        }
        DomainEvent::Wallet(WalletEvent::PaidOut(payout)) => {
            Some(Fact::Wallet(WalletFact::PaidOut(payout.clone())))
        }
        DomainEvent::Wallet(WalletEvent::Credited(credit)) => {
            Some(Fact::Wallet(WalletFact::Credited(credit.clone())))
        }
        DomainEvent::Vesting(event) => Some(Fact::Vesting(event.clone())),
        DomainEvent::Dao(event) => Some(Fact::Dao(event.clone())),
        DomainEvent::Proposal(event) => Some(Fact::Proposal(event.clone())),
        DomainEvent::Agent(event) => Some(Fact::Agent(event.clone())),
        DomainEvent::Job(event) => Some(Fact::Job(event.clone())),
        DomainEvent::Miner(event) => Some(Fact::Miner(event.clone())),
        DomainEvent::Market(event) => Some(Fact::Market(event.clone())),
        DomainEvent::Staking(event) => Some(Fact::Staking(event.clone())),
        DomainEvent::Wallet(WalletEvent::Funded { .. }) | DomainEvent::Chain(_) => None,
    }
}

impl Router {
    /// A router over the node's registries; `pauses` is the board the DAO registry publishes
    /// to (see [`crate::dao::publish_to`]).
    pub fn new(registries: Registries, pauses: PauseBoard) -> Self {
        let Registries {
            wallets,
            vesting,
            dao,
            proposals,
            agents,
            jobs,
            miners,
            market,
            staking,
        } = registries;
        Router {
            wallets,
            vesting,
            dao,
            proposals,
            agents,
            jobs,
            miners,
            market,
            staking,
            pauses,
            blobs: None,
            sample_secret: [0; 32],
            shaders: None,
            models: None,
            llm_checks: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            )),
        }
    }

    /// The router with the node's blob store (jobs whose input is a blob are re-executed with
    /// its bytes) and its secret for drawing the jobs it re-executes.
    pub fn with_jobs(self, blobs: Arc<BlobStore>, sample_secret: [u8; 32]) -> Self {
        Router {
            blobs: Some(blobs),
            sample_secret,
            ..self
        }
    }

    /// The router with the node's GPU executor: `wgsl` jobs are validated and re-executed there.
    pub fn with_shaders(self, shaders: Arc<dyn ShaderHost>) -> Self {
        Router {
            shaders: Some(shaders),
            ..self
        }
    }

    /// The router with the node's language models: `llm_generate` results are checked there.
    pub fn with_models(self, models: Arc<dyn ModelHost>) -> Self {
        Router {
            models: Some(models),
            ..self
        }
    }

    /// The node's language models, if it has any.
    pub fn models(&self) -> Option<&Arc<dyn ModelHost>> {
        self.models.as_ref()
    }

    /// The node's GPU executor for `wgsl` jobs, if it has one.
    pub fn shaders(&self) -> Option<&Arc<dyn ShaderHost>> {
        self.shaders.as_ref()
    }

    /// The staking pools.
    pub fn staking(&self) -> &Registry<Staking> {
        &self.staking
    }

    /// What the chain knows of `address` as a GPU provider (its miner's registration).
    async fn provider(
        &self,
        chain_id: &str,
        address: Address,
    ) -> Result<ProviderFacts, CommandError> {
        let id = MinerId {
            chain_id: chain_id.to_string(),
            miner: address,
        };
        let record = self.miners.state(id).await?.record;
        Ok(
            record.map_or_else(ProviderFacts::default, |r| ProviderFacts {
                capacity: r.offer.capacity,
                reputation: r.reputation,
                vram_mb: r.offer.gpu.vram_mb.unwrap_or(0),
            }),
        )
    }

    /// The jobs.
    pub fn jobs(&self) -> &Registry<JobAggregate> {
        &self.jobs
    }

    /// The miners.
    pub fn miners(&self) -> &Registry<MinerAggregate> {
        &self.miners
    }

    /// The chains' indexes of open jobs and miners.
    pub fn market(&self) -> &Registry<MarketIndex> {
        &self.market
    }

    /// The agents.
    pub fn agents(&self) -> &Registry<AgentAggregate> {
        &self.agents
    }

    /// An agent's record, if `address` is a registered agent on `chain_id`.
    pub async fn agent(
        &self,
        chain_id: &str,
        address: Address,
    ) -> Result<Option<AgentRecord>, CommandError> {
        let id = AgentId {
            chain_id: chain_id.to_string(),
            agent: address,
        };
        Ok(self.agents.state(id).await?.record)
    }

    /// Whether `public_key` (hex) may sign for `sender` on `chain_id`: `sender` is an active
    /// agent and the key one of its callers.
    pub async fn check_caller(
        &self,
        chain_id: &str,
        sender: Address,
        public_key: &str,
    ) -> Result<(), CommandError> {
        let key = public_key.to_ascii_lowercase();
        match self.agent(chain_id, sender).await? {
            Some(record) if record.callers.contains(&key) && record.active => Ok(()),
            Some(record) if record.callers.contains(&key) => Err(TxError::NotActive(format!(
                "agent {sender} is stopped: its callers cannot sign for it"
            ))
            .into()),
            _ => Err(TxError::SenderMismatch {
                sender: sender.to_string(),
                key_address: format!("the key {key}, not an authorized caller of {sender},"),
            }
            .into()),
        }
    }

    /// An account's reputation: an agent's, 0 for any other.
    ///
    /// An agent's reputation is earned by verified work: when the agent is also a miner, its
    /// miner's reputation (from its jobs' verified outcomes); otherwise what its record holds.
    pub async fn reputation(&self, chain_id: &str, address: Address) -> Result<u16, CommandError> {
        let Some(agent) = self.agent(chain_id, address).await? else {
            return Ok(0);
        };
        let miner = MinerId {
            chain_id: chain_id.to_string(),
            miner: address,
        };
        let mined = self.miners.state(miner).await?.record.map(|m| m.reputation);
        Ok(mined.unwrap_or(agent.reputation))
    }

    /// The proposals.
    pub fn proposals(&self) -> &Registry<ProposalAggregate> {
        &self.proposals
    }

    /// The governance parameters in force on `chain_id`: its genesis ones with every change
    /// an executed proposal made.
    pub async fn governance_params(
        &self,
        chain_id: &str,
    ) -> Result<GovernanceParams, CommandError> {
        let genesis = self.dao.facts(&chain_id.to_string())?;
        let read = move |state: &domain::dao::DaoState| state.params(&genesis);
        self.dao.query(chain_id.to_string(), read).await
    }

    /// The native supply of `chain_id`.
    pub fn native_supply(&self, chain_id: &str) -> Result<Amount, CommandError> {
        let id = WalletId {
            chain_id: Arc::from(chain_id),
            address: Address::treasury(chain_id),
        };
        Ok(self.wallets.registry().facts(&id)?.native_supply)
    }

    /// `address`'s voting power on `chain_id` at `proposal`'s snapshot (with the window, cap and
    /// supply it was created under), its agent reputation included.
    pub async fn power_at_snapshot(
        &self,
        chain_id: &str,
        proposal: &Proposal,
        address: Address,
    ) -> Result<Power, CommandError> {
        let snapshot = (
            proposal.created_at_ms,
            proposal.params.twas_window_s.saturating_mul(1000),
        );
        let reputation = self.reputation(chain_id, address).await?;
        let terms = (proposal.supply, proposal.params.power_cap_bps, reputation);
        self.power_at(chain_id, address, snapshot, terms).await
    }

    /// `address`'s voting power on `chain_id` for `snapshot` = (time, window) and `terms` =
    /// (supply, cap, reputation): its liquid balance and its stake, time-weighted.
    pub async fn power_at(
        &self,
        chain_id: &str,
        address: Address,
        snapshot: (u64, u64),
        terms: (Amount, u32, u16),
    ) -> Result<Power, CommandError> {
        let staked = self
            .staking
            .query(chain_id.to_string(), move |state| {
                state.stake_history(&address)
            })
            .await?;
        power::power_at(&self.wallets, chain_id, address, &staked, snapshot, terms).await
    }

    /// What a proposal's step needs measured from outside the proposal: the parameters in force
    /// and the supply always; the sender's power at the snapshot for a proposal or a vote (a new
    /// proposal's snapshot is its commit time); the treasury's balances for an execution; the
    /// plans of the auto-voting agents when voting starts; an agent's power and whether it is
    /// still active for its autonomous vote.
    async fn measure(
        &self,
        chain_id: &str,
        proposal: Option<&Proposal>,
        step: &ProposalStep,
    ) -> Result<Measured, CommandError> {
        let params = self.governance_params(chain_id).await?;
        let supply = self.native_supply(chain_id)?;
        let mut measured = Measured {
            params,
            supply,
            agent_active: true,
            ..Measured::default()
        };
        match (step, proposal) {
            (
                ProposalStep::Act {
                    sender,
                    act: GovAct::Propose(_),
                    committed_at_ms,
                    ..
                },
                _,
            ) => {
                let window_ms = measured.params.twas_window_s.saturating_mul(1000);
                let reputation = self.reputation(chain_id, *sender).await?;
                let terms = (supply, measured.params.power_cap_bps, reputation);
                let snapshot = (*committed_at_ms, window_ms);
                let power = self.power_at(chain_id, *sender, snapshot, terms);
                measured.power = Some(power.await?);
            }
            (
                ProposalStep::Act {
                    sender,
                    act: GovAct::Vote(_),
                    ..
                },
                Some(proposal),
            ) => {
                let power = self.power_at_snapshot(chain_id, proposal, *sender);
                measured.power = Some(power.await?);
            }
            (
                ProposalStep::Act {
                    act: GovAct::Execute,
                    ..
                },
                _,
            ) => {
                let treasury = self
                    .wallets
                    .state(chain_id, Address::treasury(chain_id))
                    .await?;
                measured.treasury.insert(None, treasury.balance);
                for (symbol, balance) in &treasury.assets {
                    measured.treasury.insert(Some(symbol.clone()), *balance);
                }
            }
            (ProposalStep::StartVoting { .. }, Some(proposal)) => {
                let agents = self.dao.state(chain_id.to_string()).await?.agents;
                for agent in agents {
                    if let Some(record) = self.agent(chain_id, agent).await?
                        && let Some(plan) = agent::plan(&record, proposal.proposal_type)
                    {
                        measured.agents.push((agent, plan));
                    }
                }
            }
            (ProposalStep::AutoVote { agent, .. }, Some(proposal)) => {
                let record = self.agent(chain_id, *agent).await?;
                measured.agent_active = record.is_some_and(|r| r.active);
                let power = self.power_at_snapshot(chain_id, proposal, *agent);
                measured.power = Some(power.await?);
            }
            _ => {}
        }
        Ok(measured)
    }

    /// The checks of a governance transaction before it commits: its proposal's own rules,
    /// decided now against the proposal's current state. Returns the bond it locks.
    async fn precheck_governance(
        &self,
        tx: &VerifiedTx,
        proposal: Option<Hash32>,
        act: &GovAct,
    ) -> Result<Amount, CommandError> {
        let chain_id = &tx.payload.chain_id;
        let id = ProposalId {
            chain_id: chain_id.clone(),
            id: proposal.unwrap_or(tx.hash),
        };
        let record = match proposal {
            None => None,
            Some(_) => self.proposal(id.clone()).await?,
        };
        let now_ms = self.proposals.clock().now_ms();
        let sender = tx.payload.sender;
        let step = ProposalStep::Act {
            tx: tx.hash,
            sender,
            act: act.clone(),
            bond: Amount::ZERO,
            committed_at_ms: now_ms,
        };
        let measured = self.measure(chain_id, record.as_ref(), &step).await?;
        let bond = match act {
            GovAct::Propose(body) => {
                self.check_assets(chain_id, &body.actions)?;
                measured.params.proposal_bond
            }
            GovAct::Challenge { .. } => measured.params.challenge_bond,
            _ => Amount::ZERO,
        };
        let sent = Sent {
            tx: tx.hash,
            sender,
            bond,
            at_ms: now_ms,
        };
        let act = act.clone();
        let decide = move |state: &ProposalState| {
            proposal::decide_act(state, id.id, sent, act.clone(), &measured).map(|_| ())
        };
        match proposal {
            // A new proposal's stream is empty.
            None => decide(&ProposalState::default())?,
            // Decided in the proposal's actor: its state (every vote) is not copied.
            Some(_) => self.proposals.query(id, decide).await??,
        }
        Ok(bond)
    }

    /// The verification of a job whose results are all in: the bytes of results that came as
    /// blobs, and the platform's reference (run on a blocking thread) when the job is
    /// re-executed.
    async fn verification(&self, id: &JobId) -> Result<JobCommand, CommandError> {
        let sample_bps = self.jobs.facts(id)?.sample_bps;
        let secret = self.sample_secret;
        let (in_blobs, generates_text) = self
            .jobs
            .query(id.clone(), |state| {
                let in_blobs: Vec<Hash32> = state
                    .assignments
                    .values()
                    .filter_map(|a| a.result.as_ref().filter(|r| r.in_blob))
                    .map(|r| r.result_hash)
                    .collect();
                let input = state.job.as_ref().map(|j| &j.request.input);
                (in_blobs, matches!(input, Some(JobInput::LlmGenerate(_))))
            })
            .await?;
        let blob_results = Arc::new(self.load_blobs(in_blobs).await?);
        if generates_text {
            return Ok(JobCommand::Verify {
                verdicts: self.llm_verdicts(id, &blob_results).await?,
                reference: None,
                blob_results: Arc::unwrap_or_clone(blob_results),
            });
        }
        let input = self
            .jobs
            .query(id.clone(), {
                let blob_results = Arc::clone(&blob_results);
                move |state| {
                    job::needs_reference(state, &secret, sample_bps, &blob_results)
                        .then(|| state.job.as_ref().map(|j| j.request.input.clone()))
                        .flatten()
                }
            })
            .await?;
        let blob_results = Arc::unwrap_or_clone(blob_results);
        let Some(input) = input else {
            return Ok(JobCommand::Verify {
                reference: None,
                blob_results,
                verdicts: Default::default(),
            });
        };
        let (blobs, shaders) = (self.blobs.clone(), self.shaders.clone());
        let run = move || -> Result<Option<Vec<u8>>, CommandError> {
            let mut bytes = Vec::new();
            for hash in input.blobs() {
                // A disk error is retried; a blob gone since submission means no reference
                // (the job then fails without blame if its results disagree).
                let blob = match &blobs {
                    Some(store) => store
                        .get(&hash)
                        .map_err(|e| CommandError::Unavailable(e.to_string()))?,
                    None => None,
                };
                match blob {
                    Some(blob) => bytes.push(blob),
                    None => return Ok(None),
                }
            }
            let shaders = shaders.as_deref();
            match input.reference(&bytes, shaders) {
                Ok(reference) => Ok(Some(reference)),
                Err(ShaderError::Busy(reason)) => Err(CommandError::Unavailable(reason)),
                Err(reason) => {
                    tracing::warn!(%reason, "no reference for a job");
                    Ok(None)
                }
            }
        };
        let reference = tokio::task::spawn_blocking(run)
            .await
            .map_err(|e| CommandError::Unavailable(format!("reference run: {e}")))??;
        Ok(JobCommand::Verify {
            reference,
            blob_results,
            verdicts: Default::default(),
        })
    }

    /// The platform's check of every result of an `llm_generate` job (on a blocking thread, at
    /// most as many at once as the machine has cores), by result hash.
    /// A check that could not run (the model failed to load) is retried until the job's
    /// deadline (`unavailable`), then its result is left out: neither paid nor blamed.
    async fn llm_verdicts(
        &self,
        id: &JobId,
        blob_results: &Arc<job::BlobResults>,
    ) -> Result<BTreeMap<Hash32, bool>, CommandError> {
        let loaded = Arc::clone(blob_results);
        let work = self
            .jobs
            .query(id.clone(), move |state| {
                let job = state.job.as_ref()?;
                let JobInput::LlmGenerate(request) = &job.request.input else {
                    return None;
                };
                // A settled job needs no check (its verification records nothing).
                let results: Vec<(Hash32, Vec<u8>)> = match state.is_final() {
                    true => Vec::new(),
                    false => state
                        .assignments
                        .values()
                        .filter(|a| !a.expired)
                        .filter_map(|a| a.result.as_ref())
                        .filter_map(|r| Some((r.result_hash, r.bytes(&loaded)?.to_vec())))
                        .collect(),
                };
                Some((request.clone(), results, job.deadline_ms))
            })
            .await?;
        let Some((request, results, deadline_ms)) = work else {
            return Ok(BTreeMap::new());
        };
        let _permit = self
            .llm_checks
            .acquire()
            .await
            .map_err(|e| CommandError::Unavailable(format!("llm check: {e}")))?;
        let models = self.models.clone();
        let check = move || {
            let mut verdicts = BTreeMap::new();
            let mut not_run = None;
            for (hash, bytes) in results {
                match models.as_ref().map(|m| m.check(&request, &bytes)) {
                    Some(Ok(holds)) => {
                        verdicts.insert(hash, holds);
                    }
                    Some(Err(reason)) => not_run = Some(reason),
                    None => not_run = Some("this node has no language model".to_string()),
                }
            }
            (verdicts, not_run)
        };
        let (verdicts, not_run) = tokio::task::spawn_blocking(check)
            .await
            .map_err(|e| CommandError::Unavailable(format!("llm check: {e}")))?;
        if let Some(reason) = not_run {
            let now_ms = self.jobs.clock().now_ms();
            if now_ms < deadline_ms {
                return Err(CommandError::Unavailable(format!("llm check: {reason}")));
            }
            tracing::warn!(%reason, job = %id.id, "llm results left unchecked past the deadline");
        }
        Ok(verdicts)
    }

    /// The bytes of the blobs `hashes` that are stored (one gone is left out; a disk error is
    /// retried).
    async fn load_blobs(&self, hashes: Vec<Hash32>) -> Result<job::BlobResults, CommandError> {
        let Some(store) = self.blobs.clone().filter(|_| !hashes.is_empty()) else {
            return Ok(job::BlobResults::new());
        };
        let load = move || -> Result<job::BlobResults, CommandError> {
            let mut loaded = job::BlobResults::new();
            for hash in hashes {
                let blob = store
                    .get(&hash)
                    .map_err(|e| CommandError::Unavailable(e.to_string()))?;
                loaded.extend(blob.map(|bytes| (hash, bytes)));
            }
            Ok(loaded)
        };
        tokio::task::spawn_blocking(load)
            .await
            .map_err(|e| CommandError::Unavailable(format!("loading results: {e}")))?
    }

    /// A proposal's record without its votes.
    async fn proposal(&self, id: ProposalId) -> Result<Option<Proposal>, CommandError> {
        self.proposals
            .query(id, |state| state.proposal.clone())
            .await
    }

    /// `bad_action` for a payout in an asset the chain does not declare.
    fn check_assets(&self, chain_id: &str, actions: &[Action]) -> Result<(), CommandError> {
        let id = WalletId {
            chain_id: Arc::from(chain_id),
            address: Address::treasury(chain_id),
        };
        let facts = self.wallets.registry().facts(&id)?;
        for (asset, _) in actions.iter().filter_map(Action::treasury_outflow) {
            if let Some(symbol) = asset.filter(|s| !facts.assets.contains_key(s)) {
                return Err(TxError::BadAction(format!(
                    "asset {symbol} is not declared on chain {chain_id}"
                ))
                .into());
            }
        }
        Ok(())
    }

    /// The chains' DAOs.
    pub fn dao(&self) -> &Registry<Dao> {
        &self.dao
    }

    /// The modules' pause state.
    pub fn pauses(&self) -> &PauseBoard {
        &self.pauses
    }

    /// `paused` when `kind`'s module is paused on `chain_id` now, `frozen` when an emergency
    /// proposal froze `sender`. Every path that writes a transaction (signed, faucet,
    /// custodial) asks this first.
    pub fn check_sendable(
        &self,
        chain_id: &str,
        kind: &str,
        sender: &Address,
    ) -> Result<(), CommandError> {
        let spec = kinds::spec(kind)?;
        let now_ms = self.wallets.registry().clock().now_ms();
        self.pauses.check(chain_id, spec, now_ms)?;
        Ok(self.pauses.check_frozen(chain_id, sender)?)
    }

    /// The wallets.
    pub fn wallets(&self) -> &WalletRegistry {
        &self.wallets
    }

    /// The vesting schedules.
    pub fn vesting(&self) -> &Registry<Vesting> {
        &self.vesting
    }

    /// The event log.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        self.wallets.registry().store()
    }

    /// The checks a transaction's module makes before anything is written, so that one that
    /// would be refused is answered with its error and changes nothing (its nonce included).
    /// A race can still make it fail after it commits: then it is recorded as refused.
    /// Returns what the sender must lock besides the body's amounts (a bond), for
    /// [`VerifiedTx::deposit`].
    pub async fn precheck(&self, tx: &VerifiedTx) -> Result<Amount, CommandError> {
        let payload = &tx.payload;
        self.check_sendable(&payload.chain_id, &payload.kind, &payload.sender)?;
        match &tx.action {
            TxAction::Governance { proposal, act } => {
                return self.precheck_governance(tx, *proposal, act).await;
            }
            TxAction::CancelJob(job_id) => {
                let id = JobId {
                    chain_id: tx.payload.chain_id.clone(),
                    id: *job_id,
                };
                let sender = tx.payload.sender;
                let check = move |state: &JobState| job::check_cancel(state, &sender).map(|_| ());
                self.jobs.query(id, check).await??;
            }
            TxAction::SubmitJob(_) => {}
            TxAction::Staking(act) => {
                let chain_id = tx.payload.chain_id.clone();
                let sender = tx.payload.sender;
                let provider = self.provider(&chain_id, sender).await?;
                let amount = match act {
                    StakingAct::Stake(body) => body.amount,
                    StakingAct::AddStake(body) => body.amount,
                    _ => Amount::ZERO,
                };
                let (act, now_ms) = (act.clone(), self.staking.clock().now_ms());
                let check = move |state: &StakingState| {
                    state.check(&act, &sender, amount, &provider, now_ms)
                };
                self.staking.query(chain_id, check).await??;
            }
            TxAction::Agent { agent, act } => {
                let agent = agent.unwrap_or(tx.payload.sender);
                let id = AgentId {
                    chain_id: tx.payload.chain_id.clone(),
                    agent,
                };
                let state = self.agents.state(id).await?;
                let command = AgentCommand {
                    tx: tx.hash,
                    sender: tx.payload.sender,
                    act: act.clone(),
                    committed_at_ms: self.agents.clock().now_ms(),
                };
                agent::decide_act(&state, agent, &command)?;
            }
            TxAction::ClaimVested(body) => {
                let id = VestingId {
                    chain_id: tx.payload.chain_id.clone(),
                    id: body.vesting_id,
                };
                let state = self.vesting.state(id).await?;
                let now_ms = self.vesting.clock().now_ms();
                state.claimable(&tx.payload.sender, now_ms)?;
            }
            TxAction::Council(act) => {
                let chain_id = tx.payload.chain_id.clone();
                let params = self.dao.facts(&chain_id)?;
                let now_ms = self.dao.clock().now_ms();
                let state = self.dao.state(chain_id).await?;
                state.check(&state.params(&params), &tx.payload.sender, act, now_ms)?;
            }
            TxAction::Transfer(_) | TxAction::Mint(_) | TxAction::CreateVesting(_) => {}
        }
        Ok(Amount::ZERO)
    }

    /// Runs one step; returns what it recorded (or found recorded).
    pub async fn execute(&self, step: FollowUp) -> Result<Vec<Recorded>, CommandError> {
        match step {
            FollowUp::Credit {
                chain_id,
                to,
                credit,
            } => {
                self.wallet_step(chain_id, to, WalletCommand::Credit(credit))
                    .await
            }
            FollowUp::PayOut {
                chain_id,
                from,
                payout,
            } => {
                self.wallet_step(chain_id, from, WalletCommand::PayOut(payout))
                    .await
            }
            FollowUp::Vesting {
                chain_id,
                id,
                command,
            } => {
                let owner = Owner::Vesting {
                    chain_id: chain_id.clone(),
                    id,
                };
                let vesting_id = VestingId {
                    chain_id: chain_id.to_string(),
                    id,
                };
                let applied = self.vesting.execute(vesting_id, command).await?;
                Ok(recorded(owner, applied, DomainEvent::Vesting))
            }
            FollowUp::Dao { chain_id, command } => {
                let owner = Owner::Dao {
                    chain_id: chain_id.clone(),
                };
                let applied = self.dao.execute(chain_id.to_string(), command).await?;
                Ok(recorded(owner, applied, DomainEvent::Dao))
            }
            FollowUp::Job {
                chain_id,
                id,
                command,
            } => {
                let job_id = JobId {
                    chain_id: chain_id.to_string(),
                    id,
                };
                let command = match command {
                    JobCommand::Verify {
                        reference: None, ..
                    } => self.verification(&job_id).await?,
                    other => other,
                };
                let applied = self.jobs.execute(job_id, command).await?;
                let owner = Owner::Job { chain_id, id };
                Ok(recorded(owner, applied, DomainEvent::Job))
            }
            FollowUp::Miner {
                chain_id,
                miner,
                command,
            } => {
                let miner_id = MinerId {
                    chain_id: chain_id.to_string(),
                    miner,
                };
                let applied = self.miners.execute(miner_id, command).await?;
                let owner = Owner::Miner { chain_id, miner };
                Ok(recorded(owner, applied, DomainEvent::Miner))
            }
            FollowUp::Market { chain_id, command } => {
                let applied = self.market.execute(chain_id.to_string(), command).await?;
                let owner = Owner::Market { chain_id };
                Ok(recorded(owner, applied, DomainEvent::Market))
            }
            FollowUp::Staking { chain_id, command } => {
                let command = match command {
                    StakingCommand::Act {
                        tx,
                        sender,
                        act: act @ (StakingAct::Stake(_) | StakingAct::AddStake(_)),
                        amount,
                        committed_at_ms,
                        ..
                    } => StakingCommand::Act {
                        provider: self.provider(&chain_id, sender).await?,
                        tx,
                        sender,
                        act,
                        amount,
                        committed_at_ms,
                    },
                    other => other,
                };
                let applied = self.staking.execute(chain_id.to_string(), command).await?;
                let owner = Owner::Staking { chain_id };
                Ok(recorded(owner, applied, DomainEvent::Staking))
            }
            FollowUp::Agent {
                chain_id,
                agent,
                command,
            } => {
                let id = AgentId {
                    chain_id: chain_id.to_string(),
                    agent,
                };
                let applied = self.agents.execute(id, command).await?;
                let owner = Owner::Agent { chain_id, agent };
                Ok(recorded(owner, applied, DomainEvent::Agent))
            }
            FollowUp::Proposal { chain_id, id, step } => {
                let proposal_id = ProposalId {
                    chain_id: chain_id.to_string(),
                    id,
                };
                let record = self.proposal(proposal_id.clone()).await?;
                let measured = self.measure(&chain_id, record.as_ref(), &step).await?;
                let command = ProposalCommand { step, measured };
                let applied = self.proposals.execute(proposal_id, command).await?;
                let owner = Owner::Proposal { chain_id, id };
                Ok(recorded(owner, applied, DomainEvent::Proposal))
            }
        }
    }

    async fn wallet_step(
        &self,
        chain_id: Arc<str>,
        address: domain::address::Address,
        command: WalletCommand,
    ) -> Result<Vec<Recorded>, CommandError> {
        let owner = Owner::Wallet {
            chain_id: chain_id.clone(),
            address,
        };
        let id = WalletId { chain_id, address };
        let applied = self.wallets.registry().execute(id, command).await?;
        Ok(recorded(owner, applied, DomainEvent::Wallet))
    }

    /// Runs every step `first` owes, and the steps those owe, until none is left. Steps of one
    /// round run concurrently.
    pub async fn complete(&self, first: Recorded) -> Result<Completion, CommandError> {
        let position = first.position;
        self.complete_all(vec![first], position).await
    }

    /// Runs `step`, then every step what it recorded owes, until none is left.
    pub async fn run_to_end(&self, step: FollowUp) -> Result<Completion, CommandError> {
        let recorded = self.execute(step).await?;
        let position = recorded.iter().map(|r| r.position).max().unwrap_or(0);
        self.complete_all(recorded, position).await
    }

    async fn complete_all(
        &self,
        mut round: Vec<Recorded>,
        position: u64,
    ) -> Result<Completion, CommandError> {
        let mut completion = Completion {
            last_position: position,
            refused: None,
        };
        while !round.is_empty() {
            for recorded in &round {
                completion.last_position = completion.last_position.max(recorded.position);
                match &recorded.event {
                    DomainEvent::Vesting(VestingEvent::ClaimRefused { reason, .. })
                    | DomainEvent::Dao(DaoEvent::CouncilActRefused { reason, .. })
                    | DomainEvent::Proposal(ProposalEvent::Refused { reason, .. })
                    | DomainEvent::Agent(AgentEvent::Refused { reason, .. })
                    | DomainEvent::Job(JobEvent::CancelRefused { reason, .. }) => {
                        completion.refused = Some(reason.clone());
                    }
                    _ => {}
                }
            }
            let steps: Vec<FollowUp> = round
                .iter()
                .filter_map(|r| fact_of(&r.event).map(|fact| follow_ups(&r.owner, &fact)))
                .flatten()
                .collect();
            let results =
                futures::future::try_join_all(steps.into_iter().map(|s| self.execute(s))).await?;
            round = results.into_iter().flatten().collect();
        }
        Ok(completion)
    }
}
