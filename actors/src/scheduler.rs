//! The job scheduler (PRODUCT.md §6): matches open jobs with miners that ask for work.
//!
//! The job actors publish each job's state after every durable append (and on load) to the
//! scheduler's board; at start the node loads every job the chain's index lists as open, so the
//! board is whole again after a restart. A miner asks with a long poll; the scheduler gives it
//! the oldest open job whose constraints it meets (GPU memory, reputation, region, pool, its
//! price at most the job's max price; not a job it already took; within its capacity), leasing it
//! through the job's actor (`Assign`, which sets the lease's durable timer). When no job fits, the
//! miner waits; when a job opens or a lease runs out, the best waiting miner that fits it
//! (highest reputation, then lowest price) is woken first.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use domain::address::Address;
use domain::hash::Hash32;
use domain::job::{JobCommand, JobInput, JobRecord, JobState};
use domain::miner::MinerRecord;
use domain::protocol::FollowUp;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::CommandError;
use crate::router::Router;

/// Longest long poll.
pub const WAIT_MS_MAX: u64 = 30_000;

/// What the board knows of an open job.
#[derive(Clone, Debug)]
struct OpenJob {
    record: JobRecord,
    open_slots: usize,
    /// Miners holding (or having held) a lease on it.
    miners: Vec<Address>,
    /// Miners working on it: a live lease, no result yet.
    working: Vec<Address>,
}

/// A miner waiting for work.
struct Waiter {
    /// Tells this poll's waiter from the same miner's other polls.
    token: u64,
    chain_id: String,
    miner: Address,
    record: MinerRecord,
    wake: oneshot::Sender<()>,
}

#[derive(Default)]
struct Board {
    /// Open jobs by (chain, submission time, id): the oldest first.
    jobs: BTreeMap<(String, u64, Hash32), OpenJob>,
    /// Where each job sits in `jobs`.
    keys: HashMap<Hash32, (String, u64, Hash32)>,
    waiting: Vec<Waiter>,
    next_token: u64,
}

/// A job leased to a miner.
#[derive(Clone, Debug)]
pub struct Lease {
    /// The job.
    pub job: JobRecord,
    /// Until when.
    pub lease_until_ms: u64,
}

/// The scheduler. Cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    board: Arc<Mutex<Board>>,
    /// How long a lease lasts (never past the job's deadline).
    lease_ms: u64,
}

fn fits(job: &JobRecord, miner: &MinerRecord) -> bool {
    let c = &job.request.constraints;
    let offer = &miner.offer;
    let holds = |model: &Hash32| offer.models.contains(model);
    let model_held = match &job.request.input {
        JobInput::LlmGenerate(request) => holds(&request.model),
        _ => true,
    };
    c.min_vram_mb
        .is_none_or(|min| offer.gpu.vram_mb.is_some_and(|v| v >= min))
        && c.min_reputation.is_none_or(|min| miner.reputation >= min)
        && c.region
            .as_ref()
            .is_none_or(|r| offer.region.as_ref() == Some(r))
        && c.pool_id
            .as_ref()
            .is_none_or(|p| offer.pool_id.as_ref() == Some(p))
        && c.model
            .as_ref()
            .is_none_or(|m| m.parse::<Hash32>().is_ok_and(|h| holds(&h)))
        && model_held
        && offer.least_price(&job.request.input) <= job.request.max_price
}

impl Scheduler {
    /// An empty scheduler whose leases last `lease_ms`.
    pub fn new(lease_ms: u64) -> Self {
        Scheduler {
            board: Arc::default(),
            lease_ms,
        }
    }

    /// The publisher the job registry calls with each job's state (see
    /// [`crate::registry::Registry::publishing`]).
    pub fn publisher(&self) -> impl Fn(&domain::job::JobId, &JobState) + Send + Sync + 'static {
        let board = self.board.clone();
        move |id, state| {
            let Some(record) = &state.job else { return };
            let key = (id.chain_id.clone(), record.submitted_at_ms, id.id);
            let mut board = board.lock();
            if state.is_final() {
                board.jobs.remove(&key);
                board.keys.remove(&id.id);
            } else {
                let working: Vec<Address> = state
                    .assignments
                    .iter()
                    .filter(|(_, a)| !a.expired && a.result.is_none())
                    .map(|(m, _)| *m)
                    .collect();
                let open = OpenJob {
                    record: record.clone(),
                    open_slots: state.open_slots(),
                    miners: state.assignments.keys().copied().collect(),
                    working,
                };
                board.jobs.insert(key.clone(), open);
                board.keys.insert(id.id, key);
            }
            // A slot opened, or a miner's capacity was freed: wake who can take work now.
            rematch(&mut board);
        }
    }

    /// Jobs a miner is working on (a live lease, no result yet).
    fn load(board: &Board, chain_id: &str, miner: &Address) -> usize {
        board
            .jobs
            .iter()
            .filter(|((chain, _, _), job)| chain == chain_id && job.working.contains(miner))
            .count()
    }

    /// Whether `miner` may take `job` now: it fits, never took it, and has capacity left.
    fn may_take(
        board: &Board,
        chain_id: &str,
        job: &OpenJob,
        miner: &Address,
        record: &MinerRecord,
    ) -> bool {
        job.open_slots > 0
            && !job.miners.contains(miner)
            && fits(&job.record, record)
            && Self::load(board, chain_id, miner) < record.offer.capacity as usize
    }

    /// The oldest open job on `chain_id` that `miner` may take.
    fn pick(
        board: &Board,
        chain_id: &str,
        miner: &Address,
        record: &MinerRecord,
    ) -> Option<JobRecord> {
        board
            .jobs
            .iter()
            .filter(|((chain, _, _), job)| {
                chain == chain_id && Self::may_take(board, chain_id, job, miner, record)
            })
            .map(|(_, job)| job.record.clone())
            .next()
    }

    /// Gives `miner` a job, waiting up to `wait_ms` for one; `None` when none came.
    pub async fn take(
        &self,
        router: &Router,
        chain_id: &str,
        miner: Address,
        record: MinerRecord,
        wait_ms: u64,
    ) -> Result<Option<Lease>, CommandError> {
        let clock = router.jobs().clock().clone();
        let deadline = clock.now_ms().saturating_add(wait_ms.min(WAIT_MS_MAX));
        loop {
            let (picked, woken) = {
                let mut board = self.board.lock();
                match Self::pick(&board, chain_id, &miner, &record) {
                    Some(job) => (Some(job), None),
                    None => {
                        let (wake, woken) = oneshot::channel();
                        board.next_token += 1;
                        let token = board.next_token;
                        board.waiting.push(Waiter {
                            token,
                            chain_id: chain_id.to_string(),
                            miner,
                            record: record.clone(),
                            wake,
                        });
                        (None, Some((token, woken)))
                    }
                }
            };
            if let Some(job) = picked {
                let now_ms = clock.now_ms();
                let lease_ms = self
                    .lease_ms
                    .saturating_add(job.request.input.extra_lease_ms());
                let lease_until_ms = now_ms.saturating_add(lease_ms).min(job.deadline_ms);
                let step = FollowUp::Job {
                    chain_id: Arc::from(chain_id),
                    id: job.id,
                    command: JobCommand::Assign {
                        miner,
                        lease_until_ms,
                    },
                };
                match router.run_to_end(step).await {
                    Ok(_) => {
                        return Ok(Some(Lease {
                            job,
                            lease_until_ms,
                        }));
                    }
                    // Another miner took the last slot meanwhile: look again while time is left.
                    Err(CommandError::Rejected(_)) if clock.now_ms() < deadline => continue,
                    Err(CommandError::Rejected(_)) => return Ok(None),
                    Err(error) => return Err(error),
                }
            }
            let (token, woken) = woken.expect("a waiter when nothing was picked");
            // However this wait ends (a wake, the deadline, the request dropped), its waiter goes.
            let _forget = Forget {
                board: &self.board,
                token,
            };
            let now_ms = clock.now_ms();
            if now_ms >= deadline {
                return Ok(None);
            }
            let wait = Duration::from_millis(deadline - now_ms);
            let _ = tokio::time::timeout(wait, woken).await;
        }
    }

    /// The blobs open jobs refer to (the blob collector keeps them).
    pub fn referenced_blobs(&self) -> std::collections::BTreeSet<Hash32> {
        self.board
            .lock()
            .jobs
            .values()
            .flat_map(|job| job.record.request.input.blobs())
            .collect()
    }
}

/// Removes one poll's waiter when the poll stops waiting, however it stops.
struct Forget<'a> {
    board: &'a Mutex<Board>,
    token: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.board.lock().waiting.retain(|w| w.token != self.token);
    }
}

/// For every open job, oldest first, wakes as many waiting miners as it has open slots among
/// those that may take it, the best first (highest reputation, then lowest price).
fn rematch(board: &mut Board) {
    board.waiting.retain(|w| !w.wake.is_closed());
    let keys: Vec<(String, u64, Hash32)> = board.jobs.keys().cloned().collect();
    for key in keys {
        let job = board.jobs[&key].clone();
        let mut takers: Vec<usize> = board
            .waiting
            .iter()
            .enumerate()
            .filter(|(_, w)| {
                w.chain_id == key.0 && Scheduler::may_take(board, &key.0, &job, &w.miner, &w.record)
            })
            .map(|(i, _)| i)
            .collect();
        takers.sort_by(|a, b| {
            let (a, b) = (&board.waiting[*a].record, &board.waiting[*b].record);
            b.reputation
                .cmp(&a.reputation)
                .then(a.offer.price_per_s.cmp(&b.offer.price_per_s))
        });
        takers.truncate(job.open_slots);
        // Highest index first, so each removal leaves the others' indexes valid.
        takers.sort_unstable_by(|a, b| b.cmp(a));
        for index in takers {
            let waiter = board.waiting.swap_remove(index);
            let _ = waiter.wake.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use domain::miner::RegisterMiner;
    use domain::money::Amount;

    use super::*;

    fn job(kind: &str, input: &str, max_price: u128, constraints: &str) -> JobRecord {
        let body = format!(
            r#"{{"job_kind":"{kind}","input":{input},"max_price":"{max_price}","redundancy":1,
                "deadline_s":60{constraints}}}"#
        );
        JobRecord {
            id: Hash32::digest(b"job"),
            owner: Address([1; 20]),
            request: domain::job::SubmitJob::parse(&body).unwrap(),
            escrow: Amount(max_price),
            submitted_at_ms: 0,
            deadline_ms: 60_000,
        }
    }

    fn miner(models: Vec<Hash32>, price_per_s: u128, price_per_token: Option<u128>) -> MinerRecord {
        let offer = serde_json::json!({
            "gpu": {"name": "llvmpipe", "backend": "vulkan", "device_type": "cpu"},
            "price_per_s": price_per_s.to_string(),
            "capacity": 1,
            "models": models,
            "price_per_token": price_per_token.map(|p| p.to_string()),
        });
        MinerRecord {
            public_key: "ab".repeat(32),
            offer: serde_json::from_value::<RegisterMiner>(offer).unwrap(),
            reputation: 100,
            registered_at_ms: 0,
            online: true,
        }
    }

    #[test]
    fn text_generation_goes_to_miners_holding_the_model_at_their_price_per_token() {
        let (model, other) = (Hash32::digest(b"model"), Hash32::digest(b"other"));
        let prompt = format!(r#"{{"model":"{model}","prompt":"hi","max_tokens":8}}"#);
        let generate = job("llm_generate", &prompt, 10, "");
        assert!(fits(&generate, &miner(vec![model], 1, None)));
        assert!(
            !fits(&generate, &miner(vec![other], 1, None)),
            "not its model"
        );
        assert!(!fits(&generate, &miner(vec![], 1, None)), "no model");
        let per_token = miner(vec![model], 1_000, Some(5));
        assert!(fits(&generate, &per_token), "5 per token is within 10");
        assert!(
            !fits(&generate, &miner(vec![model], 1, Some(11))),
            "11 per token is not"
        );
        let hashing = job("sha256", r#"{"messages":["00"]}"#, 10, "");
        assert!(
            !fits(&hashing, &per_token),
            "1,000 per second is not within 10"
        );
        let constrained = format!(r#","constraints":{{"model":"{model}"}}"#);
        let hashing_on_model = job("sha256", r#"{"messages":["00"]}"#, 10, &constrained);
        assert!(fits(&hashing_on_model, &miner(vec![model], 1, None)));
        assert!(!fits(&hashing_on_model, &miner(vec![other], 1, None)));
        let unparsable = job(
            "sha256",
            r#"{"messages":["00"]}"#,
            10,
            r#","constraints":{"model":"llama"}"#,
        );
        assert!(
            !fits(&unparsable, &miner(vec![model], 1, None)),
            "a name matches no miner"
        );
    }
}
